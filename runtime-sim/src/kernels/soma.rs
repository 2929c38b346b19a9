//! Soma units: the LIF neuron and the non-spiking readout, forward in time, and the
//! surrogate derivatives the gradient soma uses.
//!
//! Forward, one timestep over a vector (golden README §3):
//!
//! ```text
//! H[t] = β·V[t−1] + X[t]                 two roundings, no FMA
//! S[t] = H[t] >= θ                       non-strict, as SpikingJelly and the oracle
//! hard: V[t] = S ? v_reset : H[t]
//! soft: V[t] = S ? H[t] − θ : H[t]
//! readout: U[t] = β·U[t−1] + X[t]
//! ```
//!
//! The soma keeps H (storage type) and the spike bit for the backward pass.

use crate::fp::{Storage, add, mul};
use crate::spikes::SpikeBits;

/// How the membrane is reset after a spike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reset {
    /// Hard reset: `V = v_reset` after a spike.
    Hard {
        /// The reset potential (0 in every golden case).
        v_reset: f32,
    },
    /// Soft reset: `V = H − θ` after a spike.
    Soft,
}

/// Surrogate derivative dS/dH as a function of `x = H − θ` (golden README §1 table).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surrogate {
    /// `α/2 / (1 + (π/2·α·x)²)`.
    Atan {
        /// Sharpness α.
        alpha: f32,
    },
    /// `α·σ(αx)·(1−σ(αx))`.
    Sigmoid {
        /// Sharpness α.
        alpha: f32,
    },
    /// `1/w` if `|x| < w/2`, else 0: the chip's native 1-bit mask.
    Rect {
        /// Window width w.
        width: f32,
    },
    /// `max(0, α − α²|x|)`.
    Triangle {
        /// Peak α.
        alpha: f32,
    },
    /// `1/(1+k|x|)²`.
    FastSigmoid {
        /// Slope k.
        slope: f32,
    },
}

impl Surrogate {
    /// dS/dH at `x`, computed in f32 with the operation order of the golden oracle (which
    /// runs PyTorch on an f32 tensor: Python scalars become f32 constants, and `c / t` is
    /// computed as `reciprocal(t) · c`). The caller rounds the result to storage.
    #[inline]
    pub fn grad(&self, x: f32) -> f32 {
        match *self {
            Surrogate::Atan { alpha } => {
                let c = (core::f64::consts::PI / 2.0 * f64::from(alpha)) as f32;
                let z = c * x;
                (1.0 / (1.0 + z * z)) * (alpha / 2.0)
            }
            Surrogate::Sigmoid { alpha } => {
                let s = 1.0 / (1.0 + (-(alpha * x)).exp());
                alpha * s * (1.0 - s)
            }
            Surrogate::Rect { width } => {
                if x.abs() < width / 2.0 {
                    1.0 / width
                } else {
                    0.0
                }
            }
            Surrogate::Triangle { alpha } => (alpha - alpha * alpha * x.abs()).max(0.0),
            Surrogate::FastSigmoid { slope } => {
                let d = 1.0 + slope * x.abs();
                1.0 / (d * d)
            }
        }
    }

    /// [`grad`](Self::grad) of every element, in place, with the surrogate chosen once so
    /// the loop is one formula.
    pub fn grad_slice(&self, x: &mut [f32]) {
        match *self {
            Surrogate::Atan { .. } => x.iter_mut().for_each(|v| *v = self.grad(*v)),
            Surrogate::Sigmoid { .. } => x.iter_mut().for_each(|v| *v = self.grad(*v)),
            Surrogate::Rect { .. } => x.iter_mut().for_each(|v| *v = self.grad(*v)),
            Surrogate::Triangle { .. } => x.iter_mut().for_each(|v| *v = self.grad(*v)),
            Surrogate::FastSigmoid { .. } => x.iter_mut().for_each(|v| *v = self.grad(*v)),
        }
    }

    /// Whether the derivative is exactly zero outside a window, so the gradient soma's output
    /// error is sparse and a 1-bit mask describes where it can be non-zero.
    pub fn is_windowed(&self) -> bool {
        matches!(self, Surrogate::Rect { .. } | Surrogate::Triangle { .. })
    }
}

/// Parameters of a LIF layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifParams {
    /// Decay β (should be exact in f16: 0.5, 0.75, 0.875).
    pub beta: f32,
    /// Threshold θ.
    pub threshold: f32,
    /// Reset mechanism.
    pub reset: Reset,
    /// Whether the gradient is stopped through the reset term.
    pub detach_reset: bool,
    /// Surrogate derivative.
    pub surrogate: Surrogate,
}

/// Elements the soma kernels process per pass: each operation runs over a block of this
/// many f32 values and the block is rounded to storage in one slice conversion, which keeps
/// the operation order (and every rounding) of the element-wise definition.
pub(crate) const SOMA_BLOCK: usize = 64;

/// One LIF timestep over a vector. `v` holds `V[t−1]` on entry and `V[t]` on exit; `h`
/// receives `H[t]`; bit `spike_offset + i` of `spikes` receives `S[t][i]`. Returns the
/// number of spikes.
pub fn lif_forward_step<S: Storage>(
    p: &LifParams,
    x: &[S],
    v: &mut [S],
    h: &mut [S],
    spikes: &mut SpikeBits,
    spike_offset: usize,
) -> usize {
    assert!(x.len() == v.len() && x.len() == h.len(), "lif vector lengths");
    let beta = S::round(p.beta);
    let thr = S::round(p.threshold);
    let (mut a, mut b) = ([0.0f32; SOMA_BLOCK], [0.0f32; SOMA_BLOCK]);
    let mut fired = 0;
    for start in (0..x.len()).step_by(SOMA_BLOCK) {
        let m = SOMA_BLOCK.min(x.len() - start);
        let r = start..start + m;
        let (x, v, h) = (&x[r.clone()], &mut v[r.clone()], &mut h[r]);
        // Most instructions cover 16 neurons: a copy of the block with that length known
        // lets the compiler drop the loop set-up and tails, which dominate so short a block.
        let word = if m == 16 {
            lif_block(p, (beta, thr), x, v, h, (&mut a[..16], &mut b[..16]))
        } else {
            lif_block(p, (beta, thr), x, v, h, (&mut a[..m], &mut b[..m]))
        };
        spikes.write_bits(spike_offset + start, &[word], m);
        fired += word.count_ones() as usize;
    }
    fired
}

/// One block of [`lif_forward_step`] (at most 64 neurons): updates `vs` and `hs` and
/// returns the spikes as bits. `a` and `b` are scratch of the block's length.
#[inline(always)]
fn lif_block<S: Storage>(
    p: &LifParams,
    (beta, thr): (f32, f32),
    x: &[S],
    vs: &mut [S],
    hs: &mut [S],
    (a, b): (&mut [f32], &mut [f32]),
) -> u64 {
    // `H = fl(fl(β·V) + X)`: the product of two stored values and the sum are formed in
    // f32 and rounded to storage (the same roundings as `add(mul(β, v), x)`).
    S::to_f32_slice(vs, a);
    a.iter_mut().for_each(|ai| *ai *= beta);
    S::round_slice(a);
    S::to_f32_slice(x, b);
    a.iter_mut().zip(b.iter()).for_each(|(ai, bi)| *ai += *bi);
    S::round_slice(a);
    S::from_f32_slice(a, hs);
    let word = a.iter().enumerate().fold(0u64, |w, (i, &hi)| w | (u64::from(hi >= thr) << i));
    // The reset tests `H ≥ θ` again rather than the spike's bit, so that each arm is one
    // select over the block, which vectorises; a bit taken from the word per neuron did not.
    match p.reset {
        Reset::Hard { v_reset } => {
            let v_reset = S::round(v_reset);
            b.iter_mut().zip(a.iter()).for_each(|(bi, &hi)| *bi = if hi >= thr { v_reset } else { hi });
        }
        Reset::Soft => b.iter_mut().zip(a.iter()).for_each(|(bi, &hi)| *bi = if hi >= thr { hi - thr } else { hi }),
    }
    // `H − θ` is the one operation above that can round; the others are stored values.
    S::round_slice(b);
    S::from_f32_slice(b, vs);
    word
}

/// One readout timestep: `u = β·u + x` (two roundings), in place.
pub fn readout_forward_step<S: Storage>(beta: f32, x: &[S], u: &mut [S]) {
    assert_eq!(x.len(), u.len(), "readout vector lengths");
    let beta = S::from_f32(beta);
    for (ui, &xi) in u.iter_mut().zip(x) {
        *ui = add(mul(beta, *ui), xi);
    }
}

/// The 1-bit surrogate mask of a windowed surrogate: bit set where `fl(H−θ)` lies inside the
/// window, i.e. where the surrogate derivative is non-zero. Writes bits `offset..` of `mask`
/// and returns how many are set.
///
/// Sixty-four neurons at a time: their `fl(H−θ)` into a block (as [`crate::fp::sub`] does: the
/// f32 difference rounded to storage), the derivative of the whole block
/// ([`Surrogate::grad_slice`], which picks the surrogate's formula once per block rather
/// than once per neuron), and the block's bits stored as one word.
pub fn surrogate_mask<S: Storage>(p: &LifParams, h: &[S], mask: &mut SpikeBits, offset: usize) -> usize {
    let thr = S::from_f32(p.threshold);
    let mut n = 0;
    let mut block = [0.0f32; 64];
    for (k, chunk) in h.chunks(64).enumerate() {
        let x = &mut block[..chunk.len()];
        // `sub` one block at a time: the difference in f32, rounded to storage at once.
        S::to_f32_slice(chunk, x);
        x.iter_mut().for_each(|v| *v -= thr.to_f32());
        S::round_slice(x);
        p.surrogate.grad_slice(x);
        let word = x.iter().enumerate().fold(0u64, |w, (j, g)| w | u64::from(*g != 0.0) << j);
        mask.write_word(offset + 64 * k, chunk.len(), word);
        n += word.count_ones() as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(reset: Reset) -> LifParams {
        LifParams { beta: 0.75, threshold: 1.0, reset, detach_reset: true, surrogate: Surrogate::Atan { alpha: 2.0 } }
    }

    fn run(reset: Reset, input: f32, steps: usize) -> Vec<bool> {
        let p = params(reset);
        let mut v = [0.0f32];
        let mut h = [0.0f32];
        let mut s = SpikeBits::zeros(steps);
        for t in 0..steps {
            lif_forward_step(&p, &[input], &mut v, &mut h, &mut s, t);
        }
        (0..steps).map(|t| s.get(t)).collect()
    }

    #[test]
    fn soft_reset_spike_train_of_readme() {
        // README §2: constant input 0.6, β = 0.75, SpikingJelly soft reset.
        let want = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1].map(|b| b == 1);
        assert_eq!(run(Reset::Soft, 0.6, 10), want);
    }

    /// A block of 16 neurons (compiled with its length known) against the same neurons one
    /// at a time, in f16 and for both resets, over several timesteps.
    #[test]
    fn block_of_sixteen_matches_single_neurons() {
        use half::f16;
        for reset in [Reset::Soft, Reset::Hard { v_reset: 0.0 }] {
            let p = params(reset);
            let x: Vec<f16> = (0..16).map(|i| f16::from_f32(0.1 + 0.173 * i as f32)).collect();
            let (mut v, mut h) = (vec![f16::ZERO; 16], vec![f16::ZERO; 16]);
            let (mut v1, mut h1) = (v.clone(), h.clone());
            let (mut s, mut s1) = (SpikeBits::zeros(16 * 6 + 3), SpikeBits::zeros(16 * 6 + 3));
            for t in 0..6 {
                let fired = lif_forward_step(&p, &x, &mut v, &mut h, &mut s, 3 + 16 * t);
                let mut fired1 = 0;
                for i in 0..16 {
                    let (vi, hi) = (&mut v1[i..i + 1], &mut h1[i..i + 1]);
                    fired1 += lif_forward_step(&p, &x[i..i + 1], vi, hi, &mut s1, 3 + 16 * t + i);
                }
                assert_eq!(fired, fired1);
                assert_eq!(v, v1);
                assert_eq!(h, h1);
            }
            assert_eq!(s.to_f32(), s1.to_f32());
        }
    }

    #[test]
    fn threshold_tie_fires() {
        assert_eq!(run(Reset::Hard { v_reset: 0.0 }, 1.0, 2), [true, true]);
    }

    #[test]
    fn rect_mask_marks_the_window() {
        let p = LifParams { surrogate: Surrogate::Rect { width: 1.0 }, ..params(Reset::Soft) };
        let mut mask = SpikeBits::zeros(4);
        let n = surrogate_mask(&p, &[0.4f32, 0.6, 1.49, 1.5], &mut mask, 0);
        assert_eq!(n, 2);
        assert_eq!(mask.to_f32(), [0.0, 1.0, 1.0, 0.0]);
    }

    /// Masks of every surrogate, over random membranes (with ±0, ±inf and NaN), written
    /// at random offsets into masks whose other bits are set at random: each bit is the
    /// surrogate's derivative at `fl(H−θ)` tested against zero, the other bits stay, and
    /// the count is that of the bits set.
    #[test]
    fn masks_match_the_derivative_of_each_neuron() {
        use crate::data::rng::Rng;
        use crate::fp::sub;
        use crate::kernels::conv_cases::values;
        use half::f16;
        let mut rng = Rng::new(61);
        let surrogates = [
            Surrogate::Atan { alpha: 2.0 },
            Surrogate::Sigmoid { alpha: 4.0 },
            Surrogate::Rect { width: 1.0 },
            Surrogate::Triangle { alpha: 1.0 },
            Surrogate::FastSigmoid { slope: 25.0 },
        ];
        for case in 0..200 {
            let p = LifParams { surrogate: surrogates[case % surrogates.len()], ..params(Reset::Soft) };
            let (len, offset) = (rng.below(300) as usize, rng.below(100) as usize);
            // Values near 1 of both signs, ±0 (a tenth), and sometimes ±inf and NaN.
            let h: Vec<f32> = values(&mut rng, len, 0.1, case % 2 == 0);
            let h16: Vec<f16> = h.iter().map(|v| f16::from_f32(*v)).collect();
            let background: Vec<bool> = (0..offset + len + 70).map(|_| rng.bernoulli(0.5)).collect();
            check(&p, &h, offset, &background);
            check(&p, &h16, offset, &background);
        }

        fn check<S: Storage>(p: &LifParams, h: &[S], offset: usize, background: &[bool]) {
            let thr = S::from_f32(p.threshold);
            let on: Vec<bool> = h.iter().map(|&v| p.surrogate.grad(sub(v, thr).to_f32()) != 0.0).collect();
            let mut mask = SpikeBits::from_bools(background);
            let n = surrogate_mask(p, h, &mut mask, offset);
            assert_eq!(n, on.iter().filter(|b| **b).count(), "{} {:?}", S::NAME, p.surrogate);
            for (i, &b) in background.iter().enumerate() {
                let want = if (offset..offset + h.len()).contains(&i) { on[i - offset] } else { b };
                assert_eq!(mask.get(i), want, "{} {:?} bit {i}", S::NAME, p.surrogate);
            }
        }
    }

    #[test]
    fn surrogates_peak_at_zero() {
        assert_eq!(Surrogate::Atan { alpha: 2.0 }.grad(0.0), 1.0);
        assert_eq!(Surrogate::Sigmoid { alpha: 4.0 }.grad(0.0), 1.0);
        assert_eq!(Surrogate::Rect { width: 1.0 }.grad(0.49), 1.0);
        assert_eq!(Surrogate::Rect { width: 1.0 }.grad(0.5), 0.0);
        assert_eq!(Surrogate::Triangle { alpha: 1.0 }.grad(-0.25), 0.75);
        assert_eq!(Surrogate::FastSigmoid { slope: 1.0 }.grad(1.0), 0.25);
    }
}
