//! Forward convolution of stride 1: a correlation over padded planes, or one output row at
//! a time.
//!
//! With finite weights, [`forward_planes`] copies the inputs into zero-padded planes and
//! computes every output over every input, zero or not, as a correlation in vector
//! registers ([`super::correlate`]). Otherwise (an infinite or NaN weight times a zero
//! input would be NaN where the general kernel skips the input) the row kernel below runs.
//!
//! Row kernel: each output sums `W[co,ci,ky,kx]·x[ci, oy+ky−pad, ox+kx−pad]` over its
//! non-zero inputs in (ci, ky, kx) order, as in
//! [`conv2d_forward`](super::accumulate::conv2d_forward). For one output row the
//! accumulators, channel-last (`[ox][co]`), fit the L1 cache. For each (ci, ky, kx) in that
//! order, every non-zero input of input row `oy+ky−pad` adds its weights for all output
//! channels to output `ox = ix+pad−kx`: within one pass no two inputs touch the same
//! accumulators, and the passes keep each output's order. The non-zero inputs are listed
//! once per call, row by row, so a pass costs one step per non-zero input and no division.
//!
//! Inputs whose output column falls outside the map add into spare columns either side,
//! which are thrown away, so the inner loop has no bounds test. Skipped (zero) inputs are
//! never added, as in the general kernel, so no condition on the values is needed.

use super::accumulate::{Conv2dShape, Finish, round_into};
use super::conv_counts::{forward_count, forward_reach};
use super::correlate::{Correlation, correlate, transpose_widened};
use super::lanes::{ConvScratch, LANES, mac};
use super::{Input, OpCount};
use crate::fp::{Accum, Storage, acc_add};

/// The non-zero inputs of each input row `(ci, iy)`, in increasing column: `(ix, value)`.
pub(crate) struct NonzeroRows {
    starts: Vec<usize>,
    items: Vec<(usize, f32)>,
}

impl NonzeroRows {
    /// Lists the non-zero inputs of `input` (`[cin,h,w]`), walking the rows alongside the
    /// increasing indices instead of dividing each one.
    pub(crate) fn new<S: Storage>(shape: &Conv2dShape, input: &Input<'_, S>) -> Self {
        let w = shape.w;
        let rows = shape.cin * shape.h;
        let mut starts = vec![0usize; rows + 1];
        let mut items = Vec::new();
        let (mut row, mut row_end) = (0usize, w);
        input.for_each_nonzero(|i, x| {
            while i >= row_end {
                row += 1;
                row_end += w;
                starts[row] = items.len();
            }
            items.push((i + w - row_end, x));
        });
        starts[row + 1..].fill(items.len());
        NonzeroRows { starts, items }
    }

    /// The non-zero inputs of row `row` (`ci·h + iy`).
    pub(crate) fn row(&self, row: usize) -> &[(usize, f32)] {
        &self.items[self.starts[row]..self.starts[row + 1]]
    }
}

/// The forward conv of one row into `out` (`[cout,oh,ow]`), `bias` added to each
/// accumulator before it is rounded; stride 1 only. Returns the executed and skipped
/// operations as the general kernel counts them.
pub(crate) fn forward<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    bias: Option<&[S]>,
    input: &Input<'_, S>,
    out: &mut [S],
) -> OpCount {
    assert_eq!(shape.stride, 1, "the row-wise forward conv is for stride 1");
    let rows = NonzeroRows::new(shape, input);
    let wt = tap_major_weights(shape, weight);
    let (oh, ow, cout) = (shape.oh(), shape.ow(), shape.cout);
    // Column `ox + kw − 1` holds output ox; inputs reach columns up to w − 1 + pad + kw − 1.
    let cols = (shape.w + shape.pad + shape.kw - 1).max(ow + shape.kw - 1);
    let mut acc = vec![0.0f32; cols * cout];
    for oy in 0..oh {
        acc.fill(0.0);
        match (mode, cout) {
            (Accum::F32, 4) => output_row::<S, false, 4>(shape, &wt, &rows, oy, &mut acc),
            (Accum::F32, 8) => output_row::<S, false, 8>(shape, &wt, &rows, oy, &mut acc),
            (Accum::F32, 16) => output_row::<S, false, 16>(shape, &wt, &rows, oy, &mut acc),
            (Accum::F32, _) => output_row::<S, false, 0>(shape, &wt, &rows, oy, &mut acc),
            (Accum::Storage, _) => output_row::<S, true, 0>(shape, &wt, &rows, oy, &mut acc),
        }
        for co in 0..cout {
            for ox in 0..ow {
                let mut a = acc[(ox + shape.kw - 1) * cout + co];
                if let Some(b) = bias {
                    a = acc_add::<S>(a, b[co].to_f32(), mode);
                }
                out[(co * oh + oy) * ow + ox] = S::from_f32(a);
            }
        }
    }
    forward_ops(shape, &rows)
}

/// Whether [`forward_planes`] computes bit for bit what the general kernel does: stride 1
/// and finite weights, so that a zero input, which the general kernel skips, contributes a
/// product of ±0, which leaves an accumulator that starts at +0 as it is (see
/// [`super::lanes`]).
pub(crate) fn planes_apply<S: Storage>(shape: &Conv2dShape, weight: &[S]) -> bool {
    shape.stride == 1 && all_finite(weight)
}

/// Whether every weight is finite: a test of every one, with no early exit, which the
/// compiler turns into vector conversions and compares (an early exit kept it to one
/// weight at a time, and the weights are almost always all finite).
pub(crate) fn all_finite<S: Storage>(weight: &[S]) -> bool {
    weight.iter().fold(true, |ok, w| ok & w.to_f32().is_finite())
}

/// Multiply-adds of the forward conv as [`forward_planes`] computes it, for
/// [`worth_splitting`](super::correlate::worth_splitting).
pub(crate) fn planes_work(shape: &Conv2dShape) -> usize {
    shape.weight_len() * shape.oh() * (shape.w + 2 * shape.pad)
}

/// The forward conv of one row into `out` (`[cout,oh,ow]`) as a correlation over every
/// input, zero or not ([`super::correlate`]): the inputs are copied into zero-padded planes
/// whose rows are `w + 2·pad` long, and output (oy, ox), flattened with that row length to
/// `q`, takes the term of (ci, ky, kx) from `q + ky·cols + kx` of plane ci. Dense work
/// in vector registers beats the scatter of the row kernel already at a tenth of the
/// inputs non-zero. `bias` is added to each accumulator before it is rounded; with `add`
/// the rounded outputs are added to what `out` holds (as
/// [`add_rounded`](super::accumulate::add_rounded) does) instead of replacing it, a row
/// at a time straight from the correlation's layout ([`round_into`]). The operations are
/// counted as the general kernel counts them. Needs [`planes_apply`].
pub(crate) fn forward_planes<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    (weight, bias): (&[S], Option<&[S]>),
    input: &Input<'_, S>,
    (out, add): (&mut [S], bool),
    scratch: &mut ConvScratch,
    parallel: bool,
) -> OpCount {
    let (oh, ow, cout) = (shape.oh(), shape.ow(), shape.cout);
    let cols = shape.w + 2 * shape.pad;
    let vectors = (oh * cols).div_ceil(LANES);
    let plane = vectors * LANES + (shape.kh - 1) * cols + shape.kw - 1;
    let [ny, nx, words] = &mut scratch.counts;
    let (ny, nx) =
        (reach_counts(shape.h, shape.kh, oh, shape.pad, ny), reach_counts(shape.w, shape.kw, ow, shape.pad, nx));
    let src = sized(&mut scratch.planes, shape.cin * plane);
    let reached = fill_planes(shape, input, (cols, plane), src, (ny, nx), words);
    // The weights as `[ci][ky][kx][co]`, a transposition of the stored `[co][ci·ky·kx]`.
    let weights = transpose_widened(weight, cout, &mut scratch.wide, &mut scratch.weights);
    let offsets = &mut scratch.offsets;
    offsets.clear();
    for ci in 0..shape.cin {
        for ky in 0..shape.kh {
            for kx in 0..shape.kw {
                offsets.push(ci * plane + ky * cols + kx);
            }
        }
    }
    let k = Correlation { src, offsets, weights, channels: cout, vectors, row: cols };
    let layout = correlate::<S>(mode, &k, &mut scratch.sums, parallel);
    // Each output row straight from the layout into `out`: bias, rounding and add in one
    // pass over the row.
    for (co, per_out) in out.chunks_exact_mut(oh * ow).enumerate() {
        let finish = Finish { mode, bias: bias.map(|b| b[co].to_f32()), add };
        for (row, at) in per_out.chunks_exact_mut(ow).zip(layout.row_starts(co, cols, oh)) {
            round_into(row, &scratch.sums[at..][..ow], finish);
        }
    }
    let executed = reached * cout as u64;
    let total = ny.iter().sum::<u64>() * nx.iter().sum::<u64>() * (shape.cin * cout) as u64;
    OpCount { executed, skipped: total - executed }
}

/// `v` as `n` elements, reusing its allocation; unlike [`zeroed`](super::lanes::zeroed)
/// they keep whatever they held, for a caller that writes every one of them.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// For each input coordinate `i < size` along one axis, the number of the `k` taps through
/// which it reaches one of `out` outputs, into `buf`.
fn reach_counts(size: usize, k: usize, out: usize, pad: usize, buf: &mut Vec<u64>) -> &[u64] {
    buf.clear();
    for i in 0..size {
        let n = (0..k).filter(|&t| (i + pad).checked_sub(t).is_some_and(|o| o < out)).count();
        buf.push(n as u64);
    }
    buf
}

/// Writes every element of the planes `dst` (`cols`-long rows, `plane` apart): input
/// (ci, iy, ix) at `ci·plane + (iy+pad)·cols + ix+pad`, zero everywhere else, each element
/// once (no zeroing pass before). Returns `Σ ny[iy]·nx[ix]` over the non-zero inputs: the
/// (output, tap) pairs that execute, per output channel. `words` is working memory.
fn fill_planes<S: Storage>(
    shape: &Conv2dShape,
    input: &Input<'_, S>,
    (cols, plane): (usize, usize),
    dst: &mut [f32],
    (ny, nx): (&[u64], &[u64]),
    words: &mut Vec<u64>,
) -> u64 {
    let (h, w) = (shape.h, shape.w);
    // The counts of the rows of a run from row `iy` of plane `ci` on, and the input row
    // (`ci·h + iy`) it starts at.
    let rows = |(ci, iy): (usize, usize), run: &[f32]| (ci * h + iy, &ny[iy..][..run.len() / w]);
    match input {
        Input::Spikes(bits) => {
            let spikes = SpikeRows::new(bits, nx, words);
            fill_runs(shape, (cols, plane), dst, |at, run| {
                let (r0, ny) = rows(at, run);
                expand(&words[spikes.first_word..], r0 * w, run);
                ny.iter().enumerate().map(|(i, &n)| spikes.reached(words, (r0 + i) * w, w) * n).sum()
            })
        }
        Input::Dense(d) => fill_runs(shape, (cols, plane), dst, |at, run| {
            let (r0, ny) = rows(at, run);
            S::to_f32_slice(&d[r0 * w..][..run.len()], run);
            let per_row = |row: &[f32]| row.iter().zip(nx).map(|(x, &n)| if *x != 0.0 { n } else { 0 }).sum::<u64>();
            run.chunks_exact(w).zip(ny).map(|(row, &n)| per_row(row) * n).sum()
        }),
    }
}

/// [`fill_planes`] with `write((ci, iy), run)` writing the input rows from row `iy` of
/// plane `ci` on into `run`, which holds a whole number of them, and returning their
/// `Σ ny[iy]·nx[ix]`; the padding is zeroed here. Without padding a plane's rows follow
/// one another, and one run holds them all.
fn fill_runs(
    shape: &Conv2dShape,
    (cols, plane): (usize, usize),
    dst: &mut [f32],
    mut write: impl FnMut((usize, usize), &mut [f32]) -> u64,
) -> u64 {
    let (h, w, pad) = (shape.h, shape.w, shape.pad);
    let mut reached = 0u64;
    for (ci, p) in dst.chunks_exact_mut(plane).enumerate() {
        let (top, rest) = p.split_at_mut(pad * cols);
        top.fill(0.0);
        let (rows, bottom) = rest.split_at_mut(h * cols);
        bottom.fill(0.0);
        if pad == 0 {
            reached += write((ci, 0), rows);
            continue;
        }
        for (iy, padded) in rows.chunks_exact_mut(cols).enumerate() {
            let (left, rest) = padded.split_at_mut(pad);
            left.fill(0.0);
            let (inside, right) = rest.split_at_mut(w);
            right.fill(0.0);
            reached += write((ci, iy), inside);
        }
    }
    reached
}

/// The spikes of a forward conv's input in `words`: the masks of the columns by the number
/// of outputs they reach, then the input's words.
struct SpikeRows {
    /// The most outputs one column reaches.
    deepest: usize,
    /// Where the input's words start in `words`; the masks come first, `deepest` per piece
    /// of 64 columns: bit `x` of mask `d` of piece `k` is set if column `64k + x` reaches
    /// more than `d` outputs.
    first_word: usize,
    /// The masks of a row of at most 64 columns that reach at most [`SHORT`] outputs,
    /// padded with empty masks: the common case, counted without a loop.
    short: Option<[u64; SHORT]>,
}

/// The most outputs a column may reach for [`SpikeRows::short`].
const SHORT: usize = 4;

impl SpikeRows {
    /// Writes the masks of `nx`, then the words of `bits`, into `words`.
    fn new(bits: &crate::spikes::SpikeSlice<'_>, nx: &[u64], words: &mut Vec<u64>) -> Self {
        let deepest = nx.iter().copied().max().unwrap_or(0) as usize;
        words.clear();
        for piece in nx.chunks(64) {
            for d in 0..deepest {
                words.push(piece.iter().enumerate().fold(0u64, |m, (x, &n)| m | u64::from(n > d as u64) << x));
            }
        }
        let mut short = (nx.len() <= 64 && deepest <= SHORT).then_some([0u64; SHORT]);
        if let Some(s) = &mut short {
            s[..words.len()].copy_from_slice(words);
        }
        let first_word = words.len();
        words.extend((0..bits.len().div_ceil(64)).map(|k| bits.word(k)));
        SpikeRows { deepest, first_word, short }
    }

    /// `Σ nx[ix]` over the spikes of the row of `w` bits from bit `at`: a few population
    /// counts per 64 columns.
    #[inline]
    fn reached(&self, words: &[u64], at: usize, w: usize) -> u64 {
        let (masks, bits) = words.split_at(self.first_word);
        let weigh = |m: u64, masks: &[u64]| masks.iter().map(|&mask| u64::from((m & mask).count_ones())).sum::<u64>();
        if let Some(short) = &self.short {
            return weigh(bits_at(bits, at, w), short);
        }
        let pieces = masks.chunks_exact(self.deepest.max(1)).take(w.div_ceil(64));
        pieces.enumerate().map(|(k, masks)| weigh(bits_at(bits, at + 64 * k, (w - 64 * k).min(64)), masks)).sum()
    }
}

/// Bits `at .. at + len` (`len` at most 64) of `words`, in the low bits.
#[inline]
fn bits_at(words: &[u64], at: usize, len: usize) -> u64 {
    let (w, shift) = (at / 64, at % 64);
    let mut v = words[w] >> shift;
    if shift > 0 && shift + len > 64 {
        v |= words[w + 1] << (64 - shift);
    }
    if len < 64 { v & ((1u64 << len) - 1) } else { v }
}

/// The bits of `bits` from bit `at` on as 1.0 and 0.0 into `dst`, 64 at a time without a
/// branch.
fn expand(bits: &[u64], at: usize, dst: &mut [f32]) {
    let done = dst.len() / 64 * 64;
    let mut chunks = dst.chunks_exact_mut(64);
    for (k, chunk) in chunks.by_ref().enumerate() {
        if let Ok(chunk) = <&mut [f32; 64]>::try_from(chunk) {
            expand_64(bits_at(bits, at + 64 * k, 64), chunk);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut all = [0.0f32; 64];
        expand_64(bits_at(bits, at + done, rest.len()), &mut all);
        rest.copy_from_slice(&all[..rest.len()]);
    }
}

/// Bit `x` of `m` as 1.0 or 0.0 into `dst[x]`.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn expand_64(m: u64, dst: &mut [f32; 64]) {
    const ONE: u32 = 0x3f80_0000;
    for k in 0..64 / LANES {
        let byte = (m >> (LANES * k)) as u32;
        for x in 0..LANES {
            dst[LANES * k + x] = f32::from_bits(((byte >> x) & 1).wrapping_neg() & ONE);
        }
    }
}

/// The weights as `[ci][ky][kx][co]`, widened, so one tap's weights for every output
/// channel are adjacent.
fn tap_major_weights<S: Storage>(shape: &Conv2dShape, weight: &[S]) -> Vec<f32> {
    let (cin, cout, taps) = (shape.cin, shape.cout, shape.kh * shape.kw);
    let mut wt = vec![0.0f32; weight.len()];
    for (co, per_out) in weight.chunks_exact(cin * taps).enumerate() {
        for (k, w) in per_out.iter().enumerate() {
            wt[k * cout + co] = w.to_f32();
        }
    }
    wt
}

/// Adds every term of output row `oy` to `acc` (`[col][co]`), pass by pass in (ci, ky, kx)
/// order. `C` is the number of output channels when it is a constant the compiler can
/// unroll for, or 0 for any.
fn output_row<S: Storage, const NARROW: bool, const C: usize>(
    shape: &Conv2dShape,
    wt: &[f32],
    rows: &NonzeroRows,
    oy: usize,
    acc: &mut [f32],
) {
    let (kh, kw) = (shape.kh, shape.kw);
    let n = if C == 0 { shape.cout } else { C };
    for ci in 0..shape.cin {
        for ky in 0..kh {
            let Some(iy) = (oy + ky).checked_sub(shape.pad).filter(|&iy| iy < shape.h) else { continue };
            let inputs = rows.row(ci * shape.h + iy);
            for kx in 0..kw {
                let w = &wt[((ci * kh + ky) * kw + kx) * n..][..n];
                // Input ix reaches output ix + pad − kx, at column ix + pad + kw − 1 − kx.
                let shift = shape.pad + kw - 1 - kx;
                if C == 0 {
                    add_taps::<S, NARROW>(inputs, w, shift, acc);
                } else {
                    add_taps_fixed::<S, NARROW, C>(inputs, w, shift, acc);
                }
            }
        }
    }
}

/// Adds one tap's weights `w` (one per output channel), times each input, to the
/// accumulators of the outputs the inputs reach.
fn add_taps<S: Storage, const NARROW: bool>(inputs: &[(usize, f32)], w: &[f32], shift: usize, acc: &mut [f32]) {
    let n = w.len();
    for &(ix, x) in inputs {
        let a = &mut acc[(ix + shift) * n..][..n];
        for (a, &w) in a.iter_mut().zip(w) {
            *a = mac::<S, NARROW>(*a, w, x);
        }
    }
}

/// [`add_taps`] for exactly `C` output channels, with the weights held in registers.
fn add_taps_fixed<S: Storage, const NARROW: bool, const C: usize>(
    inputs: &[(usize, f32)],
    w: &[f32],
    shift: usize,
    acc: &mut [f32],
) {
    let w = &w[..C];
    let w: [f32; C] = std::array::from_fn(|l| w[l]);
    for &(ix, x) in inputs {
        let a = &mut acc[(ix + shift) * C..][..C];
        for l in 0..C {
            a[l] = mac::<S, NARROW>(a[l], w[l], x);
        }
    }
}

/// Executed and skipped operations as the general kernel counts them: a non-zero input
/// executes `cout` operations per tap that reaches an output; every (output, tap) pair
/// that reads the map (not the padding) is `cin·cout` operations.
fn forward_ops(shape: &Conv2dShape, rows: &NonzeroRows) -> OpCount {
    let (ny, nx) = forward_reach(shape);
    let mut reached = 0u64;
    for r in 0..shape.cin * shape.h {
        let per_row: u64 = rows.row(r).iter().map(|&(ix, _)| nx[ix]).sum();
        reached += per_row * ny[r % shape.h];
    }
    forward_count(shape, reached, (&ny, &nx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::fp::add_assign_slice;
    use crate::kernels::accumulate::{conv2d_forward, conv2d_forward_general, conv2d_forward_with};
    use crate::kernels::conv_cases::{ones, shape, values};
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The row-wise kernel and the correlation over planes (on one thread and split over the
    /// pool) against the general one on random shapes (stride 1 for the fast kernels, any
    /// for the entry point), spike and dense inputs with and without bias, in both
    /// accumulator modes and both storage types: the same outputs bit for bit and the same
    /// operation counts.
    #[test]
    fn row_kernel_matches_the_general_kernel() {
        let mut rng = Rng::new(13);
        // One scratch for every case, as the simulator keeps it: what a call leaves in it
        // must not change the next call's result.
        let mut scratch = ConvScratch::default();
        for case in 0..300 {
            let s = shape(&mut rng);
            check::<f16>(&mut rng, &s, case, &mut scratch);
            check::<f32>(&mut rng, &s, case, &mut scratch);
        }
    }

    fn check<S: Storage>(rng: &mut Rng, s: &Conv2dShape, case: usize, scratch: &mut ConvScratch) {
        let special = rng.bernoulli(0.2);
        let mut weight: Vec<S> = values(rng, s.weight_len(), 0.1, special);
        // Sometimes weights large enough that f16 outputs round to the largest values and
        // overflow to infinity, where the rounding of each output row is put to the test.
        if rng.bernoulli(0.2) {
            let scale = [1024.0f32, 16384.0][rng.below(2) as usize];
            weight.iter_mut().for_each(|w| *w = S::from_f32(w.to_f32() * scale));
        }
        let bias: Vec<S> = values(rng, s.cout, 0.2, false);
        let density = [0.05, 0.2, 0.6][rng.below(3) as usize];
        let spikes = SpikeBits::from_nonzero(&ones::<f32>(rng, s.in_len(), density));
        let dense: Vec<S> = values(rng, s.in_len(), 1.0 - density, special);
        let with_bias = rng.bernoulli(0.3);
        let start: Vec<S> = values(rng, s.out_len(), 0.2, special);
        let b = with_bias.then_some(&bias[..]);
        for input in [Input::Spikes(spikes.slice(0, s.in_len())), Input::Dense(&dense)] {
            for mode in [Accum::F32, Accum::Storage] {
                let what = format!("case {case} {s:?} {} {mode:?} bias {with_bias}", S::NAME);
                let (mut want, mut want_ops) = (vec![S::default(); s.out_len()], OpCount::default());
                conv2d_forward_general(mode, s, &weight, b, input, &mut want, &mut want_ops);
                let bits =
                    |v: &[S]| crate::kernels::conv_cases::bits(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>());
                if s.stride == 1 {
                    let mut got = vec![S::default(); s.out_len()];
                    let ops = forward(mode, s, &weight, b, &input, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{what}");
                    assert_eq!(ops, want_ops, "{what}");
                }
                if planes_apply(s, &weight) {
                    for parallel in [false, true] {
                        let mut got = vec![S::default(); s.out_len()];
                        let ops = forward_planes(mode, s, (&weight, b), &input, (&mut got, false), scratch, parallel);
                        assert_eq!(bits(&got), bits(&want), "{what} planes, parallel {parallel}");
                        assert_eq!(ops, want_ops, "{what} planes, parallel {parallel}");
                    }
                }
                // Accumulating into an output that holds values already: the same as storing
                // into a temporary and adding that, on either path of the entry point.
                let mut want_sum = start.clone();
                add_assign_slice(&mut want_sum, &want);
                let (mut got, mut ops) = (start.clone(), OpCount::default());
                conv2d_forward_with(mode, s, (&weight, b), input, (&mut got, true), &mut ops, scratch);
                assert_eq!(bits(&got), bits(&want_sum), "{what} accumulating");
                assert_eq!(ops, want_ops, "{what} accumulating");
                let (mut got, mut ops) = (vec![S::default(); s.out_len()], OpCount::default());
                conv2d_forward(mode, s, &weight, b, input, &mut got, &mut ops);
                assert_eq!(bits(&got), bits(&want), "{what}");
                assert_eq!(ops, want_ops, "{what}");
            }
        }
    }
}
