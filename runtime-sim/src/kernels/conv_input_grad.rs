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
use super::accumulate::{Conv2dShape, Finish, round_into};
use super::conv_forward::all_finite;
use super::correlate::{Correlation, Layout, correlate, transpose_widened};
use super::lanes::{ConvScratch, LANES};
use crate::fp::{Accum, Storage};

/// Whether [`backward_input`] computes bit for bit what the general kernel does: stride 1,
/// padding smaller than the kernel (so the padded planes start at an offset of zero or
/// more), and finite weights (so a zero error contributes ±0, never NaN).
pub(crate) fn applies<S: Storage>(shape: &Conv2dShape, weight: &[S]) -> bool {
    shape.stride == 1 && shape.pad < shape.kh && shape.pad < shape.kw && all_finite(weight)
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
    let (layout, cols) = correlate_errors(mode, shape, weight, gout, scratch, parallel);
    for (ci, per_in) in acc.chunks_exact_mut(shape.h * shape.w).enumerate() {
        for (row, at) in per_in.chunks_exact_mut(shape.w).zip(layout.row_starts(ci, cols, shape.h)) {
            row.copy_from_slice(&scratch.sums[at..][..shape.w]);
        }
    }
}

/// The input gradient of one row rounded into `gin` (`[cin,h,w]`), or with `add` rounded and
/// added to what `gin` holds (one more rounding each, as
/// [`add_rounded`](super::accumulate::add_rounded) does): [`backward_input`] and the
/// rounding in one pass over each row, with no partial sums in between.
pub(crate) fn backward_input_into<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    (gin, add): (&mut [S], bool),
    scratch: &mut ConvScratch,
    parallel: bool,
) {
    let (layout, cols) = correlate_errors(mode, shape, weight, gout, scratch, parallel);
    let finish = Finish { mode, bias: None, add };
    for (ci, per_in) in gin.chunks_exact_mut(shape.h * shape.w).enumerate() {
        for (row, at) in per_in.chunks_exact_mut(shape.w).zip(layout.row_starts(ci, cols, shape.h)) {
            round_into(row, &scratch.sums[at..][..shape.w], finish);
        }
    }
}

/// The correlation of [`backward_input`] into `scratch.sums`: where the sums lie, and the
/// length of their rows.
fn correlate_errors<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    scratch: &mut ConvScratch,
    parallel: bool,
) -> (Layout, usize) {
    let p = Padded::new(shape, gout, &mut scratch.errors);
    // The weights as `[ky][kx][co][ci]`: one term's weights for every input channel are
    // adjacent. Stored as `[co][ci][ky·kx]`, that is a transposition.
    let weights = transpose_widened(weight, shape.cout * shape.cin, &mut scratch.wide, &mut scratch.weights);
    let offsets = term_offsets(shape, &p, &mut scratch.offsets);
    let vectors = (shape.h * p.cols).div_ceil(LANES);
    let k = Correlation { src: p.data, offsets, weights, channels: shape.cin, vectors, row: p.cols };
    (correlate::<S>(mode, &k, &mut scratch.sums, parallel), p.cols)
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
    count_errors(shape, gout, true).1
}

/// The non-zero errors of `gout`, and with `weigh` the operations of [`input_grad_ops`] (all
/// zero without), in one pass over the errors.
pub(crate) fn count_errors<S: Storage>(shape: &Conv2dShape, gout: &[S], weigh: bool) -> (usize, OpCount) {
    if !weigh {
        return (count_nonzero(gout) as usize, OpCount::default());
    }
    let taps = |o: usize, k: usize, size: usize| (0..k).filter(|&t| shape.input_coord(o, t, size).is_some()).count();
    let ny: Vec<u64> = (0..shape.oh()).map(|oy| taps(oy, shape.kh, shape.h) as u64).collect();
    let nx: Vec<u64> = (0..shape.ow()).map(|ox| taps(ox, shape.kw, shape.w) as u64).collect();
    let (nonzero, weighed) = weigh_rows(shape, gout, &ny, &nx);
    let executed = weighed * shape.cin as u64;
    let total = ny.iter().sum::<u64>() * nx.iter().sum::<u64>() * (shape.cin * shape.cout) as u64;
    (nonzero, OpCount { executed, skipped: total - executed })
}

/// The number of non-zero errors `(co, oy, ox)` and `Σ ny[oy]·nx[ox]` over them: the
/// in-bounds taps of each. Most columns have the most taps, `full`; a row's sum is `full`
/// times its non-zero errors less what the few other columns lack, so the pass over the
/// errors only counts. They are widened sixteen at a time (in hardware where the CPU can),
/// which the scheduler thread, counting every `bp.conv` at issue, does far faster than one
/// at a time.
fn weigh_rows<S: Storage>(shape: &Conv2dShape, gout: &[S], ny: &[u64], nx: &[u64]) -> (usize, u64) {
    let full = nx.iter().copied().max().unwrap_or(0);
    let short: Vec<(usize, u64)> =
        nx.iter().enumerate().filter(|(_, n)| **n < full).map(|(x, n)| (x, full - n)).collect();
    let (mut nonzero, mut sum) = (0u64, 0u64);
    // Rows run over (co, oy), oy cycling through the rows of each channel.
    for (row, &n) in gout.chunks_exact(shape.ow()).zip(ny.iter().cycle()) {
        let count = count_nonzero(row);
        let lack: u64 = short.iter().map(|&(x, d)| if row[x].to_f32() != 0.0 { d } else { 0 }).sum();
        nonzero += count;
        sum += (full * count - lack) * n;
    }
    (nonzero as usize, sum)
}

/// The number of non-zero values in `row`.
fn count_nonzero<S: Storage>(row: &[S]) -> u64 {
    let mut blocks = row.chunks_exact(16);
    let mut count = 0u32;
    let mut wide = [0.0f32; 16];
    for block in blocks.by_ref() {
        if let Ok(block) = <&[S; 16]>::try_from(block) {
            S::to_f32_16(block, &mut wide);
            count += wide.iter().map(|x| u32::from(*x != 0.0)).sum::<u32>();
        }
    }
    let rest: u32 = blocks.remainder().iter().map(|x| u32::from(x.to_f32() != 0.0)).sum();
    u64::from(count + rest)
}

/// The error planes, zero-padded: error (co, oy, ox) at `co·plane + (oy+kh−1−pad)·cols +
/// ox+kw−1−pad`, with room after each plane for the last block's overrun.
struct Padded<'a> {
    data: &'a [f32],
    cols: usize,
    plane: usize,
}

impl<'a> Padded<'a> {
    /// Pads `gout` into `buf`, writing each element once: the errors widened, the padding
    /// zeroed (what `buf` held before does not matter).
    fn new<S: Storage>(shape: &Conv2dShape, gout: &[S], buf: &'a mut Vec<f32>) -> Self {
        let (oh, ow) = (shape.oh(), shape.ow());
        let cols = shape.w + shape.kw - 1;
        let reach = (shape.kh - 1) * cols + shape.kw - 1;
        let plane = (shape.h * cols).next_multiple_of(LANES) + reach;
        if buf.len() < shape.cout * plane {
            buf.resize(shape.cout * plane, 0.0);
        }
        let data = &mut buf[..shape.cout * plane];
        let (py, px) = (shape.kh - 1 - shape.pad, shape.kw - 1 - shape.pad);
        for (p, g) in data.chunks_exact_mut(plane).zip(gout.chunks_exact(oh * ow)) {
            let (top, rest) = p.split_at_mut(py * cols);
            top.fill(0.0);
            let (rows, bottom) = rest.split_at_mut(oh * cols);
            bottom.fill(0.0);
            for (padded, src) in rows.chunks_exact_mut(cols).zip(g.chunks_exact(ow)) {
                let (left, rest) = padded.split_at_mut(px);
                left.fill(0.0);
                let (inside, right) = rest.split_at_mut(ow);
                right.fill(0.0);
                S::to_f32_slice(src, inside);
            }
        }
        Padded { data, cols, plane }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::kernels::conv_cases::{bits, shape, values};
    use crate::kernels::grad::{conv2d_backward_input_general, conv2d_backward_input_into, conv2d_backward_input_with};
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
        // What an accumulating conv adds its rounded sums to.
        let start: Vec<S> = values(rng, s.in_len(), 0.2, special);
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
                let nonzero = gout.iter().filter(|g| g.to_f32() != 0.0).count();
                assert_eq!(count_errors(s, &gout, false).0, nonzero, "{what}");
                assert_eq!(count_errors(s, &gout, true), (nonzero, want_ops), "{what}");
                for (add, parallel) in [(false, false), (true, false), (true, true)] {
                    let mut got = start.clone();
                    backward_input_into(mode, s, &weight, &gout, (&mut got, add), scratch, parallel);
                    let want = rounded(&want, &start, add);
                    assert_eq!(wide(&got), wide(&want), "{what} rounded, add {add}, split {parallel}");
                }
                fast += 1;
            }
            let (mut gin, mut acc, mut ops) =
                (vec![S::default(); s.in_len()], vec![0.0; s.in_len()], OpCount::default());
            conv2d_backward_input_with(mode, s, &weight, &gout, (&mut gin, &mut acc), Some(&mut ops), scratch);
            assert_eq!(bits(&acc), bits(&want), "{what}");
            assert_eq!(ops, want_ops, "{what}");
            // The entry point that rounds into the gradient, on whichever path it takes.
            for add in [false, true] {
                let (mut got, mut ops) = (start.clone(), OpCount::default());
                conv2d_backward_input_into(mode, s, &weight, &gout, (&mut got, add), Some(&mut ops), scratch);
                assert_eq!(wide(&got), wide(&rounded(&want, &start, add)), "{what} entry point, add {add}");
                assert_eq!(ops, want_ops, "{what} entry point, add {add}");
            }
        }
        fast
    }

    /// The sums `acc` stored, or with `add` stored and added to `start`.
    fn rounded<S: Storage>(acc: &[f32], start: &[S], add: bool) -> Vec<S> {
        let mut stored = vec![S::default(); acc.len()];
        crate::fp::store(acc, &mut stored);
        if add {
            let mut sum = start.to_vec();
            crate::fp::add_assign_slice(&mut sum, &stored);
            return sum;
        }
        stored
    }

    /// Widened bits, for comparisons that tell −0 from +0.
    fn wide<S: Storage>(v: &[S]) -> Vec<u32> {
        bits(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>())
    }
}
