//! Error propagation of a stride-1 convolution, a block of input gradients at a time.
//!
//! `gin[ci,iy,ix] = Σ_{ky,kx,co} g[co, iy+pad−ky, ix+pad−kx] · W[co,ci,ky,kx]`, the terms of
//! every sum in (ky, kx, co) order as in
//! [`conv2d_backward_input`](super::grad::conv2d_backward_input). The error planes are
//! copied once into zero-padded planes whose rows are `w + kw − 1` long, so that every tap
//! of every input position reads inside them. An input-gradient plane, flattened with that
//! same row length, is then a one-dimensional correlation: the
//! term of tap (ky, kx) for position `q` is at `q + (kh−1−ky)·cols + (kw−1−kx)` of the
//! padded error plane, which [`super::correlate`] computes for blocks of input channels and
//! positions in vector registers (and splits over host threads when the work is large);
//! the positions that fall into the padding columns are computed too and thrown away.
//!
//! Terms read from the padding, and terms of zero errors, which the general kernel skips or
//! multiplies, are products of zero with a finite weight here (see [`applies`]): ±0, which
//! leaves an accumulator that starts at +0 as it is (see [`super::lanes`]).

use super::OpCount;
use super::accumulate::Conv2dShape;
use super::correlate::{Correlation, correlate};
use super::lanes::{ConvScratch, LANES, zeroed};
use crate::fp::{Accum, Storage};

/// Whether [`backward_input`] computes bit for bit what the general kernel does: stride 1,
/// padding smaller than the kernel (so the padded planes start at an offset of zero or
/// more), and finite weights (so a zero error contributes ±0, never NaN).
pub(crate) fn applies<S: Storage>(shape: &Conv2dShape, weight: &[S]) -> bool {
    shape.stride == 1 && shape.pad < shape.kh && shape.pad < shape.kw && weight.iter().all(|w| w.to_f32().is_finite())
}

/// The input gradient of one row into `acc` (`[cin,h,w]`), unrounded; see the module doc.
/// `scratch` is working memory reused across calls; `parallel` splits the work over the
/// pool.
pub(crate) fn backward_input<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    acc: &mut [f32],
    scratch: &mut ConvScratch,
    parallel: bool,
) {
    let p = Padded::new(shape, gout, &mut scratch.errors);
    let weights = flipped_weights(shape, weight, &mut scratch.weights);
    let offsets = term_offsets(shape, &p, &mut scratch.offsets);
    let vectors = (shape.h * p.cols).div_ceil(LANES);
    let k = Correlation { src: p.data, offsets, weights, channels: shape.cin, vectors, row: p.cols };
    let layout = correlate::<S>(mode, &k, &mut scratch.sums, parallel);
    let (h, w) = (shape.h, shape.w);
    for (r, row) in acc.chunks_exact_mut(w).enumerate() {
        let (ci, iy) = (r / h, r % h);
        row.copy_from_slice(&scratch.sums[layout.at(ci, iy * p.cols)..][..w]);
    }
}

/// Multiply-adds of error propagation as [`backward_input`] computes it, for
/// [`worth_splitting`](super::correlate::worth_splitting).
pub(crate) fn work(shape: &Conv2dShape) -> usize {
    shape.weight_len() * shape.h * (shape.w + shape.kw - 1)
}

/// The offsets of the terms in (ky, kx, co) order: the error of tap (ky, kx) and output
/// channel co for position `q` is at `q + co·plane + (kh−1−ky)·cols + (kw−1−kx)`.
fn term_offsets<'a>(shape: &Conv2dShape, p: &Padded, buf: &'a mut Vec<usize>) -> &'a [usize] {
    buf.clear();
    for ky in 0..shape.kh {
        for kx in 0..shape.kw {
            for co in 0..shape.cout {
                buf.push(co * p.plane + (shape.kh - 1 - ky) * p.cols + (shape.kw - 1 - kx));
            }
        }
    }
    buf
}

/// Executed and skipped operations of error propagation, as the general kernel counts
/// them: every in-bounds (output, tap) pair is `cin` operations, executed if the error is
/// non-zero.
pub(crate) fn input_grad_ops<S: Storage>(shape: &Conv2dShape, gout: &[S]) -> OpCount {
    let taps = |o: usize, k: usize, size: usize| (0..k).filter(|&t| shape.input_coord(o, t, size).is_some()).count();
    let ny: Vec<u64> = (0..shape.oh()).map(|oy| taps(oy, shape.kh, shape.h) as u64).collect();
    let nx: Vec<u64> = (0..shape.ow()).map(|ox| taps(ox, shape.kw, shape.w) as u64).collect();
    let executed = weigh_rows(shape, gout, &ny, &nx) * shape.cin as u64;
    let total = ny.iter().sum::<u64>() * nx.iter().sum::<u64>() * (shape.cin * shape.cout) as u64;
    OpCount { executed, skipped: total - executed }
}

/// `Σ ny[oy]·nx[ox]` over the non-zero errors `(co, oy, ox)`: the in-bounds taps of each.
/// The errors are widened a block at a time (in hardware where the CPU can), which the
/// scheduler thread, counting every `bp.conv` at issue, does far faster than one at a time.
fn weigh_rows<S: Storage>(shape: &Conv2dShape, gout: &[S], ny: &[u64], nx: &[u64]) -> u64 {
    let (mut sum, mut wide) = (0u64, [0.0f32; 64]);
    // Rows run over (co, oy), so the row index modulo `oh` is oy.
    for (r, row) in gout.chunks_exact(shape.ow()).enumerate() {
        let mut per_row = 0u64;
        for (g, n) in row.chunks(64).zip(nx.chunks(64)) {
            let x = &mut wide[..g.len()];
            S::to_f32_slice(g, x);
            per_row += x.iter().zip(n).map(|(x, n)| if *x != 0.0 { *n } else { 0 }).sum::<u64>();
        }
        sum += per_row * ny[r % ny.len()];
    }
    sum
}

/// The error planes, zero-padded: error (co, oy, ox) at `co·plane + (oy+kh−1−pad)·cols +
/// ox+kw−1−pad`, with room after each plane for the last block's overrun.
struct Padded<'a> {
    data: &'a [f32],
    cols: usize,
    plane: usize,
}

impl<'a> Padded<'a> {
    /// Pads `gout` into `buf`.
    fn new<S: Storage>(shape: &Conv2dShape, gout: &[S], buf: &'a mut Vec<f32>) -> Self {
        let (oh, ow) = (shape.oh(), shape.ow());
        let cols = shape.w + shape.kw - 1;
        let reach = (shape.kh - 1) * cols + shape.kw - 1;
        let plane = (shape.h * cols).next_multiple_of(LANES) + reach;
        let data = zeroed(buf, shape.cout * plane);
        let (py, px) = (shape.kh - 1 - shape.pad, shape.kw - 1 - shape.pad);
        for (co, g) in gout.chunks_exact(oh * ow).enumerate() {
            for (oy, row) in g.chunks_exact(ow).enumerate() {
                S::to_f32_slice(row, &mut data[co * plane + (oy + py) * cols + px..][..ow]);
            }
        }
        Padded { data, cols, plane }
    }
}

/// The weights as `[ky][kx][co][ci]`, widened into `buf`: one term's weights for every
/// input channel are adjacent. The source is walked in chunks, with no division.
fn flipped_weights<'a, S: Storage>(shape: &Conv2dShape, weight: &[S], buf: &'a mut Vec<f32>) -> &'a [f32] {
    let (cin, cout, taps) = (shape.cin, shape.cout, shape.kh * shape.kw);
    let wt = zeroed(buf, weight.len());
    for (co, per_out) in weight.chunks_exact((cin * taps).max(1)).enumerate() {
        for (ci, per_in) in per_out.chunks_exact(taps.max(1)).enumerate() {
            for (tap, w) in per_in.iter().enumerate() {
                wt[(tap * cout + co) * cin + ci] = w.to_f32();
            }
        }
    }
    wt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::kernels::conv_cases::{bits, shape, values};
    use crate::kernels::grad::{conv2d_backward_input_general, conv2d_backward_input_with};
    use half::f16;

    /// The fast path against the general kernel on random shapes, values and densities, in
    /// both accumulator modes and both storage types: the same partial sums bit for bit and
    /// the same operation counts. The entry point must agree with the general kernel too,
    /// whichever path it takes (stride 2, non-finite weights, sparse errors). The fast path
    /// runs on one thread and split over the pool.
    #[test]
    fn fast_path_matches_the_general_kernel() {
        let mut rng = Rng::new(11);
        let mut fast = 0;
        // One scratch for every case, as the simulator keeps it: what a call leaves in it
        // must not change the next call's result.
        let mut scratch = ConvScratch::default();
        for case in 0..300 {
            let s = shape(&mut rng);
            fast += check::<f16>(&mut rng, &s, case, &mut scratch) + check::<f32>(&mut rng, &s, case, &mut scratch);
        }
        assert!(fast > 200, "the fast path ran {fast} times");
    }

    /// Checks one case in both modes; returns how often the fast path applied.
    fn check<S: Storage>(rng: &mut Rng, s: &Conv2dShape, case: usize, scratch: &mut ConvScratch) -> usize {
        let mut fast = 0;
        let special = rng.bernoulli(0.2);
        let odd_weights = special && rng.bernoulli(0.5);
        let weight: Vec<S> = values(rng, s.weight_len(), 0.1, odd_weights);
        let zeros = [0.0, 0.2, 0.7, 0.95][rng.below(4) as usize];
        let gout: Vec<S> = values(rng, s.out_len(), zeros, special);
        for mode in [Accum::F32, Accum::Storage] {
            let what = format!("case {case} {s:?} {} {mode:?}", S::NAME);
            let (mut want, mut want_ops) = (vec![0.0f32; s.in_len()], OpCount::default());
            conv2d_backward_input_general(mode, s, &weight, &gout, &mut want, &mut want_ops);
            if applies(s, &weight) {
                let mut got = vec![f32::NAN; s.in_len()];
                backward_input(mode, s, &weight, &gout, &mut got, scratch, false);
                assert_eq!(bits(&got), bits(&want), "{what}");
                let mut split = vec![f32::NAN; s.in_len()];
                backward_input(mode, s, &weight, &gout, &mut split, scratch, true);
                assert_eq!(bits(&split), bits(&want), "{what} split");
                assert_eq!(input_grad_ops(s, &gout), want_ops, "{what}");
                fast += 1;
            }
            let (mut gin, mut acc, mut ops) =
                (vec![S::default(); s.in_len()], vec![0.0; s.in_len()], OpCount::default());
            conv2d_backward_input_with(mode, s, &weight, &gout, (&mut gin, &mut acc), Some(&mut ops), scratch);
            assert_eq!(bits(&acc), bits(&want), "{what}");
            assert_eq!(ops, want_ops, "{what}");
        }
        fast
    }
}
