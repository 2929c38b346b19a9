//! Weight update: plain SGD on the stored weights, and SGD with momentum and Adam on FP32
//! master weights (the stored copy, f16 on the chip, is the rounded master).
//!
//! Plain SGD follows the golden oracle: `W' = fl(W − lr·dW)` with `lr·dW` and the
//! subtraction computed in f32, then one rounding to storage.

use crate::fp::Storage;

/// Plain SGD in place: `w = fl(w − lr·g)`.
pub fn sgd<S: Storage>(lr: f32, grad: &[S], weight: &mut [S]) {
    assert_eq!(grad.len(), weight.len(), "sgd shapes");
    for (w, g) in weight.iter_mut().zip(grad) {
        *w = S::from_f32(w.to_f32() - lr * g.to_f32());
    }
}

/// `out[i] = fl(grad[i]·scale + wd·master[i])`: a gradient scaled, with L2 weight decay
/// added, and rounded to storage, as the optimizer instructions read it. Blocks of sixteen
/// are computed in f32 and rounded together (one vector conversion rather than one call
/// per element); each element is the same expression either way.
pub fn scaled_grad<S: Storage>(grad: &[f32], master: &[f32], (scale, wd): (f32, f32), out: &mut [S]) {
    let n = out.len().min(grad.len()).min(master.len());
    let (grad, master, out) = (&grad[..n], &master[..n], &mut out[..n]);
    // Whole blocks as arrays, so that the expression is a few full vectors with no
    // per-element bounds or length checks; then the last, shorter block.
    let blocks = grad.chunks_exact(ADAM_BLOCK).zip(master.chunks_exact(ADAM_BLOCK));
    for ((g, m), o) in blocks.zip(out.chunks_exact_mut(ADAM_BLOCK)) {
        if let (Ok(g), Ok(m)) = (<&[f32; ADAM_BLOCK]>::try_from(g), <&[f32; ADAM_BLOCK]>::try_from(m)) {
            let tmp: [f32; ADAM_BLOCK] = std::array::from_fn(|l| g[l] * scale + wd * m[l]);
            S::from_f32_slice(&tmp, o);
        }
    }
    let whole = n - n % ADAM_BLOCK;
    let mut tmp = [0.0f32; ADAM_BLOCK];
    let len = n - whole;
    for l in 0..len {
        tmp[l] = grad[whole + l] * scale + wd * master[whole + l];
    }
    S::from_f32_slice(&tmp[..len], &mut out[whole..]);
}

/// Hyper-parameters of SGD with momentum (PyTorch semantics, no dampening, no Nesterov).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Momentum {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor μ.
    pub momentum: f32,
    /// L2 weight decay λ (added to the gradient).
    pub weight_decay: f32,
}

/// SGD with momentum on f32 master weights: `g' = g + λ·w; v = μ·v + g'; w −= lr·v`, then
/// the stored copy is `fl(w)`. `velocity` starts at zero.
pub fn sgd_momentum<S: Storage>(p: &Momentum, grad: &[S], master: &mut [f32], velocity: &mut [f32], weight: &mut [S]) {
    let n = grad.len();
    assert!(master.len() == n && velocity.len() == n && weight.len() == n, "momentum shapes");
    for i in 0..n {
        let g = grad[i].to_f32() + p.weight_decay * master[i];
        velocity[i] = p.momentum * velocity[i] + g;
        master[i] -= p.lr * velocity[i];
        weight[i] = S::from_f32(master[i]);
    }
}

/// Hyper-parameters of Adam (PyTorch semantics, no AMSGrad).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
}

/// One Adam step (`step` counts from 1) on f32 master weights; `m` and `v` start at zero.
/// The stored copy is `fl(w)`.
///
/// Whole blocks of sixteen elements go through `adam_block`, whose loop the compiler
/// turns into vector code (the square roots and divisions dominate, and one element at a
/// time they were half of the update's host time); the rest one by one. Either way each
/// element sees the same operations in the same order.
pub fn adam<S: Storage>(
    p: &Adam,
    step: u32,
    grad: &[S],
    master: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    weight: &mut [S],
) {
    let n = grad.len();
    assert!(master.len() == n && m.len() == n && v.len() == n && weight.len() == n, "adam shapes");
    let t = step.max(1) as i32;
    let bc1 = 1.0 - p.beta1.powi(t);
    let bc2_sqrt = (1.0 - p.beta2.powi(t)).sqrt();
    let c = AdamStep { p: *p, step_size: p.lr / bc1, bc2_sqrt };
    let whole = n - n % ADAM_BLOCK;
    for i in (0..whole).step_by(ADAM_BLOCK) {
        let r = i..i + ADAM_BLOCK;
        let (Ok(g), Ok(w), Ok(mm), Ok(vv), Ok(ww)) = (
            <&[S; ADAM_BLOCK]>::try_from(&grad[r.clone()]),
            <&mut [f32; ADAM_BLOCK]>::try_from(&mut master[r.clone()]),
            <&mut [f32; ADAM_BLOCK]>::try_from(&mut m[r.clone()]),
            <&mut [f32; ADAM_BLOCK]>::try_from(&mut v[r.clone()]),
            <&mut [S; ADAM_BLOCK]>::try_from(&mut weight[r]),
        ) else {
            continue;
        };
        adam_block(&c, g, (w, mm, vv), ww);
    }
    for i in whole..n {
        let mut w = master[i];
        c.element(grad[i].to_f32(), &mut w, &mut m[i], &mut v[i]);
        master[i] = w;
        weight[i] = S::from_f32(w);
    }
}

/// Elements per block of [`adam`].
const ADAM_BLOCK: usize = 16;

/// The constants of one Adam step.
struct AdamStep {
    p: Adam,
    /// `lr / (1 − β1^t)`.
    step_size: f32,
    /// `sqrt(1 − β2^t)`.
    bc2_sqrt: f32,
}

impl AdamStep {
    /// One element: the moments, then the master weight.
    #[inline(always)]
    fn element(&self, g: f32, w: &mut f32, m: &mut f32, v: &mut f32) {
        let p = &self.p;
        *m = p.beta1 * *m + (1.0 - p.beta1) * g;
        *v = p.beta2 * *v + (1.0 - p.beta2) * g * g;
        let denom = v.sqrt() / self.bc2_sqrt + p.eps;
        *w -= self.step_size * *m / denom;
    }
}

/// [`adam`] on one block: the gradients widened and the weights rounded a block at a time.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn adam_block<S: Storage>(
    c: &AdamStep,
    grad: &[S; ADAM_BLOCK],
    (master, m, v): (&mut [f32; ADAM_BLOCK], &mut [f32; ADAM_BLOCK], &mut [f32; ADAM_BLOCK]),
    weight: &mut [S; ADAM_BLOCK],
) {
    let mut g = [0.0f32; ADAM_BLOCK];
    S::to_f32_16(grad, &mut g);
    for l in 0..ADAM_BLOCK {
        c.element(g[l], &mut master[l], &mut m[l], &mut v[l]);
    }
    S::from_f32_slice(master, weight);
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn sgd_rounds_once_in_f16() {
        let mut w = [f16::from_f32(1.0)];
        // 1 − 0.5·2^-12 = 1 − 2^-13 lies between f16 neighbours 1 − 2^-11 and 1: rounds to 1.
        sgd(0.5, &[f16::from_f32(2f32.powi(-12))], &mut w);
        assert_eq!(w[0].to_f32(), 1.0);
    }

    #[test]
    fn master_weights_keep_small_updates() {
        let p = Momentum { lr: 2f32.powi(-13), momentum: 0.0, weight_decay: 0.0 };
        let mut master = [1.0f32];
        let mut vel = [0.0f32];
        let mut w = [f16::from_f32(1.0)];
        for _ in 0..4 {
            sgd_momentum(&p, &[f16::from_f32(1.0)], &mut master, &mut vel, &mut w);
        }
        // Each update is below half an f16 ulp; the master accumulates them.
        assert_eq!(master[0], 1.0 - 4.0 * 2f32.powi(-13));
        assert_eq!(w[0].to_f32(), 1.0 - 2f32.powi(-11));
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let p = Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let (mut master, mut m, mut v, mut w) = ([0.5f32], [0.0f32], [0.0f32], [0.5f32]);
        adam(&p, 1, &[3.0f32], &mut master, &mut m, &mut v, &mut w);
        assert!((master[0] - 0.49).abs() < 1e-6);
        assert_eq!(w[0], master[0]);
    }

    /// The old one-element-at-a-time Adam loop, the reference for the blocked one.
    #[allow(clippy::too_many_arguments)]
    fn adam_elementwise(p: &Adam, step: u32, g: &[f16], w: &mut [f32], m: &mut [f32], v: &mut [f32], out: &mut [f16]) {
        let t = step.max(1) as i32;
        let (bc1, bc2_sqrt) = (1.0 - p.beta1.powi(t), (1.0 - p.beta2.powi(t)).sqrt());
        let step_size = p.lr / bc1;
        for i in 0..g.len() {
            let g = g[i].to_f32();
            m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * g;
            v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
            let denom = v[i].sqrt() / bc2_sqrt + p.eps;
            w[i] -= step_size * m[i] / denom;
            out[i] = f16::from_f32(w[i]);
        }
    }

    /// A value for the randomised tests: often ordinary, sometimes ±0, ±inf, NaN or tiny.
    fn special(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let r = (*seed >> 33) as u32;
        match r % 23 {
            0 => -0.0,
            1 => 0.0,
            2 => f32::INFINITY,
            3 => f32::NEG_INFINITY,
            4 => f32::NAN,
            5 => 1e-30,
            _ => (r % 20_001) as f32 / 5_000.0 - 2.0,
        }
    }

    /// Bits, with every NaN as one pattern (Rust does not specify which NaN an operation on
    /// two NaNs returns).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect()
    }

    /// The blocked Adam step against the element-by-element loop on random lengths (whole
    /// blocks, a part block, fewer than one) and steps, with ±0, ±inf and NaN in the
    /// gradients, masters and moments: every output agrees.
    #[test]
    fn blocked_adam_matches_elementwise_loop() {
        let mut seed = 3u64;
        let p = Adam { lr: 0.005, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        for case in 0..60 {
            let n = [0, 1, 15, 16, 17, 48, 70][case % 7];
            let g: Vec<f16> = (0..n).map(|_| f16::from_f32(special(&mut seed))).collect();
            let w0: Vec<f32> = (0..n).map(|_| special(&mut seed)).collect();
            let m0: Vec<f32> = (0..n).map(|_| special(&mut seed)).collect();
            let v0: Vec<f32> = (0..n).map(|_| special(&mut seed).abs()).collect();
            let step = 1 + case as u32 % 5;
            let (mut w, mut m, mut v, mut out) = (w0.clone(), m0.clone(), v0.clone(), vec![f16::ZERO; n]);
            adam_elementwise(&p, step, &g, &mut w, &mut m, &mut v, &mut out);
            let (mut w2, mut m2, mut v2, mut out2) = (w0, m0, v0, vec![f16::ZERO; n]);
            adam(&p, step, &g, &mut w2, &mut m2, &mut v2, &mut out2);
            assert_eq!((bits(&w2), bits(&m2), bits(&v2)), (bits(&w), bits(&m), bits(&v)), "case {case}");
            let wide = |o: &[f16]| o.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
            assert_eq!(bits(&wide(&out2)), bits(&wide(&out)), "case {case}");
        }
    }

    /// The blocked scaled gradient against the expression element by element.
    #[test]
    fn scaled_grad_matches_elementwise_expression() {
        let mut seed = 8u64;
        for n in [0, 1, 15, 16, 33, 48, 1000] {
            let g: Vec<f32> = (0..n).map(|_| special(&mut seed)).collect();
            let w: Vec<f32> = (0..n).map(|_| special(&mut seed)).collect();
            for (scale, wd) in [(1.0, 0.0), (0.25, 1e-4)] {
                let want: Vec<f32> = (0..n).map(|i| f16::from_f32(g[i] * scale + wd * w[i]).to_f32()).collect();
                let mut got = vec![f16::ZERO; n];
                scaled_grad(&g, &w, (scale, wd), &mut got);
                assert_eq!(bits(&got.iter().map(|x| x.to_f32()).collect::<Vec<_>>()), bits(&want));
            }
        }
    }
}
