//! Blocks of eight-lane accumulators for the conv kernels.
//!
//! A block is `NV` vectors of eight f32 accumulators, a fixed-size array the compiler keeps
//! in vector registers (AVX2 on the x86-64-v3 build) for as long as a kernel loops over the
//! terms of its sums. Each lane sees exactly the operations of [`crate::fp::acc_mac`]: the
//! accumulator mode is a const parameter (`NARROW` for [`Accum::Storage`]), so the choice is
//! made once per call and the f32 case compiles to plain vector multiplies and adds, never
//! fused (Rust does not contract `a + b·c` on its own).
//!
//! The kernels that use these blocks add terms the direct loop would skip (a zero input, an
//! error read from zero padding). Such a term is a product with a zero factor; with a finite
//! other factor it is ±0, and adding ±0 leaves an accumulator as it is unless the
//! accumulator is −0 (or, in [`Accum::Storage`] mode, not a value of the storage type, which
//! the add would round). [`zero_terms_are_exact`] checks that condition on accumulators that
//! come from the caller; accumulators that start at +0 never become −0, because a sum of two
//! values that is zero is +0 in round-to-nearest, and they hold storage values in
//! [`Accum::Storage`] mode by construction.

use crate::fp::{Accum, Storage, mac_exact};

/// Lanes of one vector.
pub(crate) const LANES: usize = 8;

/// `NV` vectors of accumulators.
pub(crate) type Block<const NV: usize> = [[f32; LANES]; NV];

/// The most vectors a kernel keeps in one block: with the products and the broadcast
/// operand this still fits the sixteen vector registers of AVX2.
pub(crate) const MAX_VECTORS: usize = 6;

/// `acc + a·b` with the roundings of [`crate::fp::acc_mac`] in [`Accum::F32`] mode
/// (`NARROW = false`) or [`Accum::Storage`] mode (`NARROW = true`). The F32 case is one fused
/// multiply-add where [`mac_exact`] allows it, so `a` and `b` must be values of `S`: every
/// caller passes weights, errors and inputs read from `S` buffers, or a spike's 1.0.
#[inline(always)]
pub(crate) fn mac<S: Storage, const NARROW: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if NARROW { S::round(acc + S::round(a * b)) } else { mac_exact::<S>(acc, a, b) }
}

/// Whether adding a ±0 term leaves every accumulator of `acc` bit for bit as it is: none is
/// −0 or NaN, and in [`Accum::Storage`] mode each already holds a value of the storage type.
pub(crate) fn zero_terms_are_exact<S: Storage>(acc: &[f32], mode: Accum) -> bool {
    acc.iter().all(|&a| {
        let plain = !a.is_nan() && a.to_bits() != (-0.0f32).to_bits();
        plain && (mode == Accum::F32 || S::round(a).to_bits() == a.to_bits())
    })
}

/// Working memory of the fast conv kernels, kept by the caller from call to call: a
/// training step runs the same convs row after row, and allocating (and faulting in) the
/// same large buffers for every row cost as much as a fifth of the kernels' time.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConvScratch {
    /// Zero-padded or channel-last errors.
    pub(crate) errors: Vec<f32>,
    /// Rearranged, widened weights.
    pub(crate) weights: Vec<f32>,
    /// Accumulator planes or rows.
    pub(crate) sums: Vec<f32>,
    /// Zero-padded input planes of the forward conv.
    pub(crate) planes: Vec<f32>,
    /// The source offsets of a correlation's terms.
    pub(crate) offsets: Vec<usize>,
    /// The weight gradient's non-zero inputs, `(error index, value)`.
    pub(crate) items: Vec<(usize, f32)>,
    /// Where each channel's inputs start in `items`.
    pub(crate) starts: Vec<usize>,
    /// Non-zero counts per position (inputs, errors) and their sums along rows.
    pub(crate) counts: [Vec<u64>; 3],
    /// The weight gradient's last errors, laid out.
    pub(crate) wg_errors: super::conv_weight_grad::ErrorCache,
    /// Weights widened in their stored order, before they are rearranged into `weights`.
    pub(crate) wide: Vec<f32>,
}

/// `v` as `n` zeros, reusing its allocation.
pub(crate) fn zeroed<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    v.clear();
    v.resize(n, T::default());
    v
}

/// Splits `vectors` vectors into blocks of at most [`MAX_VECTORS`], as even as possible:
/// the vector count of each block, in order.
pub(crate) fn blocks(vectors: usize) -> impl Iterator<Item = usize> {
    let n = vectors.div_ceil(MAX_VECTORS);
    let per = if n == 0 { 0 } else { vectors.div_ceil(n) };
    (0..n).map(move |i| per.min(vectors - i * per))
}

/// Calls `$f::<S, NARROW, NV>($args)` with the const parameters chosen at run time from
/// `$mode` and `$nv` (1 to [`MAX_VECTORS`]).
macro_rules! dispatch {
    ($f:ident::<$s:ty>($mode:expr, $nv:expr)($($arg:expr),* $(,)?)) => {{
        macro_rules! by_nv {
            ($narrow:literal) => {
                match $nv {
                    1 => $f::<$s, $narrow, 1>($($arg),*),
                    2 => $f::<$s, $narrow, 2>($($arg),*),
                    3 => $f::<$s, $narrow, 3>($($arg),*),
                    4 => $f::<$s, $narrow, 4>($($arg),*),
                    5 => $f::<$s, $narrow, 5>($($arg),*),
                    _ => $f::<$s, $narrow, 6>($($arg),*),
                }
            };
        }
        match $mode {
            $crate::fp::Accum::F32 => by_nv!(false),
            $crate::fp::Accum::Storage => by_nv!(true),
        }
    }};
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn blocks_cover_every_vector_evenly() {
        for n in 0..40 {
            let b: Vec<usize> = blocks(n).collect();
            assert_eq!(b.iter().sum::<usize>(), n);
            assert!(b.iter().all(|&v| (1..=MAX_VECTORS).contains(&v)), "{n}: {b:?}");
        }
        assert_eq!(blocks(5).collect::<Vec<_>>(), [5]);
        assert_eq!(blocks(7).collect::<Vec<_>>(), [4, 3]);
    }

    #[test]
    fn zero_terms_condition() {
        assert!(zero_terms_are_exact::<f16>(&[0.0, 1.5, f32::INFINITY], Accum::Storage));
        assert!(!zero_terms_are_exact::<f16>(&[1.0, -0.0], Accum::F32));
        assert!(!zero_terms_are_exact::<f16>(&[f32::NAN], Accum::F32));
        assert!(zero_terms_are_exact::<f16>(&[0.1], Accum::F32));
        assert!(!zero_terms_are_exact::<f16>(&[0.1], Accum::Storage));
        assert!(zero_terms_are_exact::<f32>(&[0.1], Accum::Storage));
    }
}
