//! The executed and skipped operations of the three conv kernels, from their inputs alone.
//!
//! The simulator charges an instruction's cycles, SRAM accesses and energy when it issues
//! it, and may compute the arithmetic later on another host thread (see
//! `machine/jobs.rs`). The counts therefore have to be known without running the kernel:
//! each function here returns exactly the [`OpCount`] the kernel of the same name adds
//! (whichever of its paths it takes), from the shape and which inputs and errors are
//! non-zero. A test holds them to the kernels on random cases.
//!
//! All three count alike: every in-bounds (output, tap) pair is `cin·cout` operations,
//! executed where the operand the engine skips on is non-zero (the input in the forward
//! conv, the error in error propagation, both in the weight gradient).

use super::accumulate::Conv2dShape;
use super::conv_weight_grad::{ErrorCache, in_bounds_pairs};
use super::{Input, OpCount};
use crate::fp::Storage;
use crate::spikes::SpikeSlice;

/// For each input coordinate `i < size` along one axis, the number of the `k` taps through
/// which it reaches one of `out` outputs (any stride).
fn reach(shape: &Conv2dShape, size: usize, k: usize, out: usize) -> Vec<u64> {
    // Stride 1, the common case, needs no division.
    let reaches = |i: usize, t: usize| {
        (i + shape.pad)
            .checked_sub(t)
            .is_some_and(|y| if shape.stride == 1 { y < out } else { y % shape.stride == 0 && y / shape.stride < out })
    };
    (0..size).map(|i| (0..k).filter(|&t| reaches(i, t)).count() as u64).collect()
}

/// For each output coordinate `o < out` along one axis, the number of the `k` taps that
/// read one of `size` inputs rather than padding.
fn taps(shape: &Conv2dShape, out: usize, k: usize, size: usize) -> Vec<u64> {
    (0..out).map(|o| (0..k).filter(|&t| shape.input_coord(o, t, size).is_some()).count() as u64).collect()
}

/// Calls `f(row, column)` for every non-zero element of a `[rows][w]` tensor, in order,
/// walking the rows alongside the increasing indices instead of dividing each one.
fn for_each_nonzero_at<S: Storage>(input: &Input<'_, S>, w: usize, mut f: impl FnMut(usize, usize)) {
    let (mut row, mut row_start) = (0usize, 0usize);
    input.for_each_nonzero(|i, _| {
        while i >= row_start + w {
            row += 1;
            row_start += w;
        }
        f(row, i - row_start);
    });
}

/// The operations of [`conv2d_forward`](super::accumulate::conv2d_forward): a non-zero
/// input executes `cout` operations per tap through which it reaches an output.
pub(crate) fn forward_ops<S: Storage>(shape: &Conv2dShape, input: &Input<'_, S>) -> OpCount {
    let (ny, nx) = forward_reach(shape);
    let executed = match input {
        Input::Spikes(s) if shape.w <= 64 => spike_rows(shape, s, &ny, &nx),
        Input::Dense(d) => {
            let mut wide = [0.0f32; 64];
            let mut executed = 0u64;
            for (r, row) in d.chunks_exact(shape.w).enumerate() {
                executed += ny[r % shape.h] * weigh_nonzero(row, &nx, &mut wide);
            }
            executed
        }
        _ => {
            let mut executed = 0u64;
            for_each_nonzero_at(input, shape.w, |row, ix| executed += ny[row % shape.h] * nx[ix]);
            executed
        }
    };
    forward_count(shape, executed, (&ny, &nx))
}

/// The operations of a forward conv that skips no zero input (`skip=false`): every
/// in-bounds pair executed, whatever the inputs, so nothing needs counting.
pub(crate) fn forward_unskipped(shape: &Conv2dShape) -> OpCount {
    let (ny, nx) = forward_reach(shape);
    forward_count(shape, 0, (&ny, &nx)).unskipped()
}

/// Per axis of the input, the taps through which each coordinate reaches an output:
/// `(ny, nx)`, the weights of a non-zero input in the forward conv's count.
pub(super) fn forward_reach(shape: &Conv2dShape) -> (Vec<u64>, Vec<u64>) {
    (reach(shape, shape.h, shape.kh, shape.oh()), reach(shape, shape.w, shape.kw, shape.ow()))
}

/// The forward conv's count from `Σ ny[iy]·nx[ix]` over its non-zero inputs: that many
/// taps times `cout` executed, of `Σny·Σnx·cin·cout` (every in-bounds pair).
pub(super) fn forward_count(shape: &Conv2dShape, reached: u64, (ny, nx): (&[u64], &[u64])) -> OpCount {
    let executed = reached * shape.cout as u64;
    let total = ny.iter().sum::<u64>() * nx.iter().sum::<u64>() * (shape.cin * shape.cout) as u64;
    OpCount { executed, skipped: total - executed }
}

/// `Σ weight[i]` over the non-zero values of `v`, widened a block at a time through
/// `wide` (in hardware where the CPU can) rather than one value at a time.
fn weigh_nonzero<S: Storage>(v: &[S], weight: &[u64], wide: &mut [f32; 64]) -> u64 {
    let mut sum = 0u64;
    for (c, w) in v.chunks(64).zip(weight.chunks(64)) {
        let x = &mut wide[..c.len()];
        S::to_f32_slice(c, x);
        sum += x.iter().zip(w).map(|(x, w)| if *x != 0.0 { *w } else { 0 }).sum::<u64>();
    }
    sum
}

/// Adds 1 to `count[i]` for every non-zero `v[i]`, widening as [`weigh_nonzero`] does.
fn count_nonzero<S: Storage>(v: &[S], count: &mut [u64], wide: &mut [f32; 64]) {
    for (c, n) in v.chunks(64).zip(count.chunks_mut(64)) {
        let x = &mut wide[..c.len()];
        S::to_f32_slice(c, x);
        n.iter_mut().zip(x.iter()).for_each(|(n, x)| *n += u64::from(*x != 0.0));
    }
}

/// `Σ ny[iy]·nx[ix]` over the spikes of a map whose rows fit a word: a row's `Σ nx[ix]` is
/// `Σ_t popcount(row & M_t)`, where `M_t` marks the columns that reach at least `t`
/// outputs, a few word operations per row instead of one step per spike.
fn spike_rows(shape: &Conv2dShape, s: &SpikeSlice<'_>, ny: &[u64], nx: &[u64]) -> u64 {
    let w = shape.w;
    let masks: Vec<u64> = (1..=shape.kw as u64)
        .map(|t| nx.iter().enumerate().filter(|(_, n)| **n >= t).fold(0u64, |m, (ix, _)| m | 1 << ix))
        .collect();
    let mut executed = 0u64;
    for r in 0..shape.cin * shape.h {
        let (at, shift) = ((r * w) / 64, (r * w) % 64);
        let mut row = s.word(at) >> shift;
        if shift + w > 64 {
            row |= s.word(at + 1) << (64 - shift);
        }
        let per_row: u32 = masks.iter().map(|m| (row & m).count_ones()).sum();
        executed += u64::from(per_row) * ny[r % shape.h];
    }
    executed
}

/// The operations of [`conv2d_backward_input`](super::grad::conv2d_backward_input): a
/// non-zero error executes `cin` operations per tap that reads the map.
pub(crate) fn input_grad_ops<S: Storage>(shape: &Conv2dShape, gout: &[S]) -> OpCount {
    super::conv_input_grad::input_grad_ops(shape, gout)
}

/// The operations of [`conv2d_weight_grad`](super::grad::conv2d_weight_grad): each
/// in-bounds (output position, tap) pair executes one operation per pair of a non-zero
/// error at the output position and a non-zero input at the position the tap reads.
///
/// At stride 1 that is, summed over the non-zero inputs, the non-zero errors each meets
/// through the taps: the reach of its position, which the fast kernel's error layout in
/// `cache` holds. New errors are taken into the cache here (their reach counted; the
/// kernel that runs next on them lays them out), and kept while they stay the same.
pub(crate) fn weight_grad_ops<S: Storage>(
    shape: &Conv2dShape,
    gout: &[S],
    input: &Input<'_, S>,
    cache: &mut ErrorCache,
) -> OpCount {
    if shape.stride != 1 {
        return strided_weight_grad_ops(shape, gout, input);
    }
    let reach = cache.reach(shape, gout);
    let plane = shape.h * shape.w;
    let executed = match input {
        Input::Dense(d) => {
            let mut wide = [0.0f32; 64];
            d.chunks_exact(plane).map(|c| weigh_nonzero(c, reach, &mut wide)).sum()
        }
        Input::Spikes(s) => {
            let (mut executed, mut start) = (0u64, 0usize);
            for i in s.ones() {
                while i >= start + plane {
                    start += plane;
                }
                executed += reach[i - start];
            }
            executed
        }
    };
    let total = in_bounds_pairs(shape) * (shape.cin * shape.cout) as u64;
    OpCount { executed, skipped: total - executed }
}

/// The operations of a weight gradient that skips nothing (`skip=false`): every in-bounds
/// pair executed, whatever the errors and inputs. At stride 1 the errors are taken into
/// `cache` all the same, for the kernel that runs next on them (see [`weight_grad_ops`]).
pub(crate) fn weight_grad_unskipped<S: Storage>(shape: &Conv2dShape, gout: &[S], cache: &mut ErrorCache) -> OpCount {
    let pairs = if shape.stride == 1 {
        cache.reach(shape, gout);
        in_bounds_pairs(shape)
    } else {
        let (ty, tx) = (taps(shape, shape.oh(), shape.kh, shape.h), taps(shape, shape.ow(), shape.kw, shape.w));
        ty.iter().sum::<u64>() * tx.iter().sum::<u64>()
    };
    OpCount { executed: pairs * (shape.cin * shape.cout) as u64, skipped: 0 }
}

/// [`weight_grad_ops`] at any stride, from the non-zero counts per position.
fn strided_weight_grad_ops<S: Storage>(shape: &Conv2dShape, gout: &[S], input: &Input<'_, S>) -> OpCount {
    let (oh, ow, positions) = (shape.oh(), shape.ow(), shape.h * shape.w);
    let (mut errors, mut inputs, mut wide) = (vec![0u64; oh * ow], vec![0u64; positions], [0.0f32; 64]);
    gout.chunks_exact(oh * ow).for_each(|plane| count_nonzero(plane, &mut errors, &mut wide));
    match input {
        Input::Dense(d) => d.chunks_exact(positions).for_each(|c| count_nonzero(c, &mut inputs, &mut wide)),
        Input::Spikes(_) => for_each_nonzero_at(input, positions, |_, p| inputs[p] += 1),
    }
    let (ty, tx) = (taps(shape, oh, shape.kh, shape.h), taps(shape, ow, shape.kw, shape.w));
    let mut executed = 0u64;
    for (o, &e) in errors.iter().enumerate().filter(|(_, e)| **e > 0) {
        for ky in 0..shape.kh {
            let Some(iy) = shape.input_coord(o / ow, ky, shape.h) else { continue };
            let row = &inputs[iy * shape.w..][..shape.w];
            let reached = (0..shape.kw).filter_map(|kx| shape.input_coord(o % ow, kx, shape.w)).map(|ix| row[ix]);
            executed += e * reached.sum::<u64>();
        }
    }
    let total = ty.iter().sum::<u64>() * tx.iter().sum::<u64>() * (shape.cin * shape.cout) as u64;
    OpCount { executed, skipped: total - executed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::fp::Accum;
    use crate::kernels::accumulate::conv2d_forward_with;
    use crate::kernels::conv_cases::{ones, shape, values};
    use crate::kernels::grad::{conv2d_backward_input_sums, conv2d_weight_grad_with};
    use crate::kernels::lanes::ConvScratch;
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The counts against the ones the kernels return, on random shapes of any stride,
    /// spike and dense inputs and errors of several densities, and weights with and without
    /// ±inf and NaN (which send the kernels down their general paths), with one scratch
    /// for all cases as the simulator keeps it.
    #[test]
    fn counts_equal_the_kernels_counts() {
        let mut rng = Rng::new(71);
        let (mut scratch, mut cache) = (ConvScratch::default(), ErrorCache::default());
        for case in 0..300 {
            let s = shape(&mut rng);
            check::<f16>(&mut rng, &s, case, &mut scratch, &mut cache);
            check::<f32>(&mut rng, &s, case, &mut scratch, &mut cache);
        }
    }

    fn check<S: Storage>(
        rng: &mut Rng,
        s: &Conv2dShape,
        case: usize,
        scratch: &mut ConvScratch,
        cache: &mut ErrorCache,
    ) {
        let special = rng.bernoulli(0.2);
        let weight: Vec<S> = values(rng, s.weight_len(), 0.1, special);
        let density = [0.0, 0.05, 0.3, 0.8, 1.0][rng.below(5) as usize];
        let spikes = SpikeBits::from_nonzero(&ones::<f32>(rng, s.in_len(), density));
        let dense: Vec<S> = values(rng, s.in_len(), 1.0 - density, special);
        let zeros = [0.0, 0.5, 0.9, 1.0][rng.below(4) as usize];
        let gout: Vec<S> = values(rng, s.out_len(), zeros, special);
        let mode = if rng.bernoulli(0.5) { Accum::F32 } else { Accum::Storage };
        let what = format!("case {case} {s:?} {} {mode:?}", S::NAME);
        for input in [Input::Spikes(spikes.slice(0, s.in_len())), Input::Dense(&dense)] {
            let (mut out, mut ops) = (vec![S::default(); s.out_len()], OpCount::default());
            let add = rng.bernoulli(0.3);
            conv2d_forward_with(mode, s, (&weight, None), input, (&mut out, add), &mut ops, scratch);
            assert_eq!(forward_ops(s, &input), ops, "{what} forward");
            assert_eq!(forward_unskipped(s), ops.unskipped(), "{what} forward, all");
            let (mut acc, mut ops) = (vec![0.0f32; s.weight_len()], OpCount::default());
            conv2d_weight_grad_with(mode, s, &gout, input, &mut acc, Some(&mut ops), scratch);
            assert_eq!(weight_grad_ops(s, &gout, &input, cache), ops, "{what} weight gradient");
            assert_eq!(weight_grad_unskipped(s, &gout, cache), ops.unskipped(), "{what} weight gradient, all");
        }
        let (mut acc, mut ops) = (vec![0.0f32; s.in_len()], OpCount::default());
        conv2d_backward_input_sums(mode, s, &weight, &gout, &mut acc, Some(&mut ops), scratch);
        assert_eq!(input_grad_ops(s, &gout), ops, "{what} input gradient");
    }
}
