//! Random conv cases for the tests that hold the fast conv kernels to the general ones.
//!
//! Shapes cover stride 1 and 2, padding from none to the kernel size, one to many channels
//! and maps narrower and wider than a vector block. Values mix zeros of both signs, values
//! with full f32 significands (which binary16 cannot hold, so the f16 runs round them and
//! the f32 runs keep them), tiny and large magnitudes, and, when asked, ±inf and NaN.

use super::accumulate::Conv2dShape;
use crate::data::rng::Rng;
use crate::fp::Storage;

/// A random geometry with at least one output position.
pub(crate) fn shape(rng: &mut Rng) -> Conv2dShape {
    loop {
        let (kh, kw) = (1 + rng.below(3) as usize, 1 + rng.below(4) as usize);
        let s = Conv2dShape {
            cin: 1 + rng.below(9) as usize,
            cout: 1 + rng.below(17) as usize,
            h: 1 + rng.below(20) as usize,
            w: 1 + rng.below(40) as usize,
            kh,
            kw,
            stride: 1 + usize::from(rng.below(4) == 0),
            pad: rng.below(kh.max(kw) as u64 + 1) as usize,
        };
        if s.h + 2 * s.pad >= kh && s.w + 2 * s.pad >= kw {
            return s;
        }
    }
}

/// `n` values, a fraction `zeros` of them ±0; `special` mixes in ±inf and NaN.
pub(crate) fn values<S: Storage>(rng: &mut Rng, n: usize, zeros: f64, special: bool) -> Vec<S> {
    (0..n).map(|_| S::from_f32(value(rng, zeros, special))).collect()
}

/// Spike-like values: 1 with probability `density`, otherwise +0.
pub(crate) fn ones<S: Storage>(rng: &mut Rng, n: usize, density: f64) -> Vec<S> {
    (0..n).map(|_| S::from_f32(if rng.bernoulli(density) { 1.0 } else { 0.0 })).collect()
}

fn value(rng: &mut Rng, zeros: f64, special: bool) -> f32 {
    if rng.bernoulli(zeros) {
        return if rng.bernoulli(0.5) { 0.0 } else { -0.0 };
    }
    if special && rng.bernoulli(0.05) {
        return [f32::INFINITY, f32::NEG_INFINITY, f32::NAN][rng.below(3) as usize];
    }
    // A full random significand, mostly near 1, sometimes far from it.
    let m = 1.0 + (rng.next_u64() >> 41) as f32 / (1u64 << 23) as f32;
    let e = match rng.below(10) {
        0 => -20 - rng.below(10) as i32,
        1 => 8 + rng.below(6) as i32,
        _ => rng.below(8) as i32 - 5,
    };
    let sign = if rng.bernoulli(0.5) { -1.0 } else { 1.0 };
    sign * m * 2f32.powi(e)
}

/// Bit patterns, for comparisons that tell −0 from +0, with every NaN made one pattern:
/// Rust leaves the sign and payload of a NaN result unspecified (when both operands of an
/// add are NaN, which one the CPU returns depends on the order the compiler chose), so
/// only "NaN" is part of the contract.
pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| if x.is_nan() { f32::NAN.to_bits() } else { x.to_bits() }).collect()
}
