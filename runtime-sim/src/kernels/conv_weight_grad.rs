//! Weight gradient of a stride-1 convolution, with the accumulators of one input channel in
//! vector registers.
//!
//! `dW[co,ci,ky,kx] += Σ_{oy,ox} g[co,oy,ox] · x[ci, oy+ky−pad, ox+kx−pad]`, each sum taking
//! its terms in increasing output position, as in
//! [`conv2d_weight_grad`](super::grad::conv2d_weight_grad). The work follows the non-zero
//! inputs (spike maps are mostly zeros): input (ci, iy, ix) adds `x` times the errors of
//! the outputs it reaches to the accumulators of channel ci. For one kernel row ky those
//! outputs are the `kw` adjacent positions `ox = ix+pad−kx` of output row `oy = iy+pad−ky`,
//! so with the errors stored channel-last (`[oy][ox][co]`) and the accumulators of one
//! (ci, ky) laid out as `[kw−1−kx][co]`, one input adds one contiguous run of `kw·cout`
//! errors to one contiguous run of accumulators. All kernel rows of a channel form one
//! block of vectors (or several, when they do not fit the registers), so the block has
//! several independent sums to add to per input instead of one long dependent chain.
//!
//! The error rows and columns are zero-padded, so an input near the border reads zeros
//! where the general kernel has no tap; it also multiplies the zero errors the general
//! kernel skips. Both are products of zero with a finite input: ±0, which leaves the
//! accumulators as they are when [`applies`] holds (see [`super::lanes`]).

use super::accumulate::Conv2dShape;
use super::lanes::{Block, ConvScratch, LANES, blocks, dispatch, mac, zero_terms_are_exact, zeroed};
use super::{Input, OpCount};
use crate::fp::{Accum, Storage};

/// Whether [`weight_grad`] computes bit for bit what the general kernel does: stride 1,
/// finite inputs, and accumulators that a ±0 term leaves as they are.
pub(crate) fn applies<S: Storage>(shape: &Conv2dShape, input: &Input<'_, S>, acc: &[f32], mode: Accum) -> bool {
    let finite = match input {
        Input::Spikes(_) => true,
        Input::Dense(d) => d.iter().all(|v| v.to_f32().is_finite()),
    };
    shape.stride == 1 && finite && zero_terms_are_exact::<S>(acc, mode)
}

/// Adds the weight gradient of one row to `acc` (`[cout,cin,kh,kw]`); see the module doc.
/// With `count`, returns the executed and skipped operations as the general kernel counts
/// them, from the non-zero counts the passes over the errors and inputs take on the way
/// (a caller that has them from `conv_counts` skips that). `scratch` is working memory
/// reused across calls.
pub(crate) fn weight_grad<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    gout: &[S],
    input: &Input<'_, S>,
    acc: &mut [f32],
    scratch: &mut ConvScratch,
    count: bool,
) -> Option<OpCount> {
    let [input_counts, _, across] = &mut scratch.counts;
    let p = scratch.wg_errors.columns(shape, gout);
    let entries = Entries::new(shape, input, &p, &mut scratch.items, &mut scratch.starts, input_counts);
    // Vectors per kernel row, and for all kernel rows of a channel.
    let per_row = (shape.kw * shape.cout).div_ceil(LANES);
    let lanes = zeroed(&mut scratch.sums, shape.kh * per_row * LANES);
    let grid = Grid { kh: shape.kh, per_row, row_step: p.cols * shape.cout };
    for ci in 0..shape.cin {
        gather(shape, acc, ci, per_row, lanes);
        let items = entries.channel(ci);
        let mut v0 = 0;
        for nv in blocks(shape.kh * per_row) {
            dispatch!(weight_block::<S>(mode, nv)(p.data, items, &grid, v0, lanes));
            v0 += nv;
        }
        scatter(shape, lanes, ci, per_row, acc);
    }
    count.then(|| count_ops(shape, entries.per_position, p.per_position, across))
}

/// Executed and skipped operations of one row's weight gradient, as the general kernel
/// counts them: every in-bounds (output, tap) pair is `cin·cout` operations, executed
/// where both the error and the input are non-zero. `inputs` holds the non-zero inputs
/// of each input position over the channels, `errors` the non-zero errors of each output
/// position; `across` is working memory.
pub(crate) fn count_ops(shape: &Conv2dShape, inputs: &[u64], errors: &[u64], across: &mut Vec<u64>) -> OpCount {
    let (oh, ow, w) = (shape.oh(), shape.ow(), shape.w);
    // Stride 1: output o reads input o + k − pad for the taps k in `span(o)`.
    let pad = shape.pad;
    let span = |o: usize, k: usize, size: usize| pad.saturating_sub(o)..k.min((size + pad).saturating_sub(o));
    // Non-zero inputs each output column reads along one input row, then along the rows.
    // Output column ox reads input columns lo..hi; with the running sums `prefix` of a row
    // (`prefix[j]` = the first j counts) that is `prefix[hi] − prefix[lo]`.
    let across = zeroed(across, shape.h * ow + w + 1);
    let (across, prefix) = across.split_at_mut(shape.h * ow);
    for iy in 0..shape.h {
        let row = &inputs[iy * w..][..w];
        for j in 0..w {
            prefix[j + 1] = prefix[j] + row[j];
        }
        let sums = &mut across[iy * ow..][..ow];
        for (ox, sum) in sums.iter_mut().enumerate() {
            let lo = ox.saturating_sub(pad).min(w);
            let hi = (ox + shape.kw).saturating_sub(pad).min(w).max(lo);
            *sum = prefix[hi] - prefix[lo];
        }
    }
    let mut executed = 0u64;
    for oy in 0..oh {
        let row = &errors[oy * ow..][..ow];
        for ky in span(oy, shape.kh, shape.h) {
            let sums = &across[(oy + ky - pad) * ow..][..ow];
            for ox in 0..ow {
                executed += row[ox] * sums[ox];
            }
        }
    }
    let count = |o: usize, k: usize, size: usize| (0..o).map(|o| span(o, k, size).len() as u64).sum::<u64>();
    let pairs = count(oh, shape.kh, shape.h) * count(ow, shape.kw, w);
    let total = pairs * (shape.cin * shape.cout) as u64;
    OpCount { executed, skipped: total - executed }
}

/// The errors channel-last and zero-padded: error (co, oy, ox) at `((oy + r0)·cols + ox +
/// kw−1)·cout + co`, where `r0 = max(kh−1−pad, 0)` keeps every row an input reaches at an
/// index of zero or more; a tail of zeros takes the last block's overrun. `per_position`
/// counts the non-zero errors of each output position over the channels.
struct Columns<'a> {
    data: &'a [f32],
    cols: usize,
    r0: usize,
    per_position: &'a [u64],
}

/// The [`Columns`] of the last errors laid out, kept from call to call: a core runs the
/// weight gradients of many input tiles against the same errors one after another, and
/// laying them out again cost about a quarter of each call. The cache is keyed by the
/// errors' contents (their widened bit patterns) and the shape, so it needs no telling when
/// the buffer the errors came from is written: any change of value misses.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorCache {
    /// The shape the layout is for; `None` while nothing valid is cached.
    shape: Option<Conv2dShape>,
    /// The errors the layout was made from, widened.
    key: Vec<f32>,
    data: Vec<f32>,
    per_position: Vec<u64>,
    cols: usize,
    r0: usize,
}

impl ErrorCache {
    /// The layout of `gout`, made afresh unless the cache holds that of the same values.
    fn columns<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) -> Columns<'_> {
        if self.shape != Some(*shape) || !widens_to(gout, &self.key) {
            self.shape = None;
            self.lay_out(shape, gout);
            self.key.resize(gout.len(), 0.0);
            S::to_f32_slice(gout, &mut self.key);
            self.shape = Some(*shape);
        }
        Columns { data: &self.data, cols: self.cols, r0: self.r0, per_position: &self.per_position }
    }

    /// Lays `gout` out in `data`, counting into `per_position`.
    fn lay_out<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) {
        let (oh, ow, cout, kw) = (shape.oh(), shape.ow(), shape.cout, shape.kw);
        let r0 = (shape.kh - 1).saturating_sub(shape.pad);
        // Inputs reach output rows up to h−1+pad and columns up to w−1+pad.
        let (rows, cols) = (shape.h + shape.pad + r0, shape.w + shape.pad + kw - 1);
        (self.cols, self.r0) = (cols, r0);
        let data = zeroed(&mut self.data, rows * cols * cout + kw * cout + LANES);
        let per_position = zeroed(&mut self.per_position, oh * ow);
        for (co, g) in gout.chunks_exact(oh * ow).enumerate() {
            for (oy, (row, counts)) in g.chunks_exact(ow).zip(per_position.chunks_exact_mut(ow)).enumerate() {
                // Outputs past the rows and columns any input reaches are counted only.
                let reached = if oy < rows - r0 { cols + 1 - kw } else { 0 };
                for (ox, (v, n)) in row.iter().zip(counts).enumerate() {
                    let v = v.to_f32();
                    *n += u64::from(v != 0.0);
                    if ox < reached {
                        data[((oy + r0) * cols + ox + kw - 1) * cout + co] = v;
                    }
                }
            }
        }
    }
}

/// Whether `gout` widens to `key` bit for bit, NaN payloads and the sign of zero included:
/// then its layout is the same. Sixteen values at a time, converted in hardware where the
/// CPU can, and compared without a branch per value.
fn widens_to<S: Storage>(gout: &[S], key: &[f32]) -> bool {
    if gout.len() != key.len() {
        return false;
    }
    let mut wide = [0.0f32; 16];
    let (mut values, mut keys) = (gout.chunks_exact(16), key.chunks_exact(16));
    for (v, k) in (&mut values).zip(&mut keys) {
        let Ok(v) = <&[S; 16]>::try_from(v) else { return false };
        S::to_f32_16(v, &mut wide);
        let mut diff = 0;
        for l in 0..16 {
            diff |= wide[l].to_bits() ^ k[l].to_bits();
        }
        if diff != 0 {
            return false;
        }
    }
    values.remainder().iter().zip(keys.remainder()).all(|(v, k)| v.to_f32().to_bits() == k.to_bits())
}

/// The non-zero inputs of each channel in increasing position, each as the index of the
/// first error it multiplies in the last kernel row (the last kernel column), and its
/// value. The error of kernel row ky lies `(kh−1−ky)` error rows after that index.
/// `per_position` counts the non-zero inputs of each input position over the channels.
struct Entries<'a> {
    starts: &'a [usize],
    items: &'a [(usize, f32)],
    per_position: &'a [u64],
}

impl<'a> Entries<'a> {
    /// Lists the inputs into `items`, the channel starts into `starts` and the counts into
    /// `counts`, reusing their allocations.
    fn new<S: Storage>(
        shape: &Conv2dShape,
        input: &Input<'_, S>,
        p: &Columns<'_>,
        items: &'a mut Vec<(usize, f32)>,
        starts: &'a mut Vec<usize>,
        counts: &'a mut Vec<u64>,
    ) -> Self {
        let (h, w, cout) = (shape.h, shape.w, shape.cout);
        let per_position = zeroed(counts, h * w);
        let starts = zeroed(starts, shape.cin + 1);
        items.clear();
        // Walk the rows alongside the increasing indices instead of dividing each one; a
        // channel starts where the list stands when the walk enters it.
        // `pad + r0 ≥ kh − 1`, so the first row an input reaches is at index zero or more.
        let first = shape.pad + p.r0 + 1 - shape.kh;
        let mut walk = Walk { w, h, ci: 0, iy: 0, row_end: w, first, cols: p.cols, pad: shape.pad, cout };
        // The two loops call `add` directly (a closure through `for_each_nonzero` was not
        // inlined: one call per input).
        match input {
            Input::Spikes(bits) => {
                for i in bits.ones() {
                    walk.add(i, 1.0, items, starts, per_position);
                }
            }
            Input::Dense(d) => {
                // A word of non-zero flags per 64 values, then one step per non-zero: a
                // branch per value mispredicts on the random zeros of a spike map.
                for (k, chunk) in d.chunks(64).enumerate() {
                    let mut nonzero = nonzero_mask(chunk);
                    while nonzero != 0 {
                        let j = nonzero.trailing_zeros() as usize;
                        nonzero &= nonzero - 1;
                        walk.add(k * 64 + j, chunk[j].to_f32(), items, starts, per_position);
                    }
                }
            }
        }
        let ci = walk.ci;
        starts[ci + 1..].fill(items.len());
        Entries { starts, items, per_position }
    }

    fn channel(&self, ci: usize) -> &[(usize, f32)] {
        &self.items[self.starts[ci]..self.starts[ci + 1]]
    }
}

/// Bit j set where `chunk[j]` (at most 64 values) is not ±0; sixteen values at a time,
/// widened in hardware where the CPU can.
fn nonzero_mask<S: Storage>(chunk: &[S]) -> u64 {
    let mut mask = 0u64;
    let mut wide = [0.0f32; 16];
    let mut blocks = chunk.chunks_exact(16);
    for (b, block) in (&mut blocks).enumerate() {
        match <&[S; 16]>::try_from(block) {
            Ok(block) => S::to_f32_16(block, &mut wide),
            Err(_) => S::to_f32_slice(block, &mut wide),
        }
        for (l, v) in wide.iter().enumerate() {
            mask |= u64::from(*v != 0.0) << (b * 16 + l);
        }
    }
    let done = chunk.len() - blocks.remainder().len();
    for (j, v) in blocks.remainder().iter().enumerate() {
        mask |= u64::from(v.to_f32() != 0.0) << (done + j);
    }
    mask
}

/// Where [`Entries::new`] stands in the input: channel `ci`, row `iy`, which ends before
/// index `row_end`; and what it needs to place an input's errors.
struct Walk {
    w: usize,
    h: usize,
    ci: usize,
    iy: usize,
    row_end: usize,
    first: usize,
    cols: usize,
    pad: usize,
    cout: usize,
}

impl Walk {
    /// Lists the non-zero input at index `i` (past every earlier one) with value `x`.
    #[inline(always)]
    fn add(&mut self, i: usize, x: f32, items: &mut Vec<(usize, f32)>, starts: &mut [usize], counts: &mut [u64]) {
        while i >= self.row_end {
            self.row_end += self.w;
            self.iy += 1;
            if self.iy == self.h {
                (self.ci, self.iy) = (self.ci + 1, 0);
                starts[self.ci] = items.len();
            }
        }
        let ix = i + self.w - self.row_end;
        items.push((((self.iy + self.first) * self.cols + ix + self.pad) * self.cout, x));
        counts[self.iy * self.w + ix] += 1;
    }
}

/// Where the vectors of a block read: vector `v` of the lanes of one channel holds lanes
/// `(v % per_row)·8 ..` of kernel row `v / per_row`, whose errors lie `row_step` before
/// those of the next kernel row.
struct Grid {
    kh: usize,
    per_row: usize,
    row_step: usize,
}

impl Grid {
    /// The offset of vector `v`'s errors from an input's index in [`Entries`].
    fn offset(&self, v: usize) -> usize {
        let (ky, part) = (v / self.per_row, v % self.per_row);
        (self.kh - 1 - ky) * self.row_step + part * LANES
    }
}

/// Adds the terms of the inputs `items` to vectors `v0 .. v0+NV` of `lanes`.
fn weight_block<S: Storage, const NARROW: bool, const NV: usize>(
    errors: &[f32],
    items: &[(usize, f32)],
    grid: &Grid,
    v0: usize,
    lanes: &mut [f32],
) {
    let mut acc: Block<NV> = [[0.0; LANES]; NV];
    let mut offsets = [0usize; NV];
    for (v, (a, off)) in acc.iter_mut().zip(offsets.iter_mut()).enumerate() {
        a.copy_from_slice(&lanes[(v0 + v) * LANES..][..LANES]);
        *off = grid.offset(v0 + v);
    }
    for &(at, x) in items {
        for (a, off) in acc.iter_mut().zip(&offsets) {
            let src = &errors[at + off..][..LANES];
            for l in 0..LANES {
                a[l] = mac::<S, NARROW>(a[l], src[l], x);
            }
        }
    }
    for (v, a) in acc.iter().enumerate() {
        lanes[(v0 + v) * LANES..][..LANES].copy_from_slice(a);
    }
}

/// Loads the accumulators of channel `ci` into `lanes` as `[ky][kw−1−kx][co]`, each kernel
/// row padded to whole vectors.
fn gather(shape: &Conv2dShape, acc: &[f32], ci: usize, per_row: usize, lanes: &mut [f32]) {
    let (cin, kh, kw) = (shape.cin, shape.kh, shape.kw);
    for ky in 0..kh {
        for j in 0..kw {
            for co in 0..shape.cout {
                lanes[ky * per_row * LANES + j * shape.cout + co] = acc[((co * cin + ci) * kh + ky) * kw + kw - 1 - j];
            }
        }
    }
}

/// Stores the accumulators of channel `ci` back from `lanes`; the inverse of [`gather`].
fn scatter(shape: &Conv2dShape, lanes: &[f32], ci: usize, per_row: usize, acc: &mut [f32]) {
    let (cin, kh, kw) = (shape.cin, shape.kh, shape.kw);
    for ky in 0..kh {
        for j in 0..kw {
            for co in 0..shape.cout {
                acc[((co * cin + ci) * kh + ky) * kw + kw - 1 - j] = lanes[ky * per_row * LANES + j * shape.cout + co];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::kernels::conv_cases::{bits, ones, shape, values};
    use crate::kernels::grad::{conv2d_weight_grad_general, conv2d_weight_grad_with};
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The fast path against the general kernel on random shapes, spike and dense inputs,
    /// in both accumulator modes and both storage types: the same accumulators bit for bit
    /// and the same operation counts. The entry point must agree with the general kernel
    /// too, whichever path it takes (stride 2, −0 or NaN accumulators, infinite inputs).
    #[test]
    fn fast_path_matches_the_general_kernel() {
        let mut rng = Rng::new(12);
        let mut fast = 0;
        // One scratch for every case, as the simulator keeps it: what a call leaves in it
        // must not change the next call's result.
        let mut scratch = ConvScratch::default();
        for case in 0..300 {
            let s = shape(&mut rng);
            fast += check::<f16>(&mut rng, &s, case, &mut scratch) + check::<f32>(&mut rng, &s, case, &mut scratch);
        }
        assert!(fast > 400, "the fast path ran {fast} times");
    }

    /// The cached error layout is used only for the errors it was made from: weight
    /// gradients of one shape against errors that change by one value between calls (a
    /// sign of zero, a NaN payload, an infinity, a new value) or not at all, through one
    /// scratch, each agree with the general kernel.
    #[test]
    fn error_cache_follows_the_errors() {
        let mut rng = Rng::new(31);
        let mut scratch = ConvScratch::default();
        for case in 0..40 {
            let s = loop {
                let s = shape(&mut rng);
                if s.stride == 1 {
                    break s;
                }
            };
            let mut gout: Vec<f16> = values(&mut rng, s.out_len(), 0.5, false);
            let spikes = SpikeBits::from_nonzero(&ones::<f32>(&mut rng, s.in_len(), 0.3));
            let input = Input::Spikes(spikes.slice(0, s.in_len()));
            for step in 0..8 {
                if step % 2 == 1 {
                    let i = rng.below(gout.len() as u64) as usize;
                    let nan = f16::from_bits(0x7e00 | rng.below(0x100) as u16);
                    let old = gout[i];
                    gout[i] = [-old, f16::from_f32(0.0), f16::NEG_ZERO, nan, f16::INFINITY, f16::from_f32(0.5)]
                        [rng.below(6) as usize];
                }
                let mut want = vec![0.0f32; s.weight_len()];
                let mut want_ops = OpCount::default();
                conv2d_weight_grad_general(Accum::F32, &s, &gout, input, &mut want, &mut want_ops);
                let mut got = vec![0.0f32; s.weight_len()];
                let ops = weight_grad(Accum::F32, &s, &gout, &input, &mut got, &mut scratch, true);
                assert_eq!(bits(&got), bits(&want), "case {case} step {step} {s:?}");
                assert_eq!(ops, Some(want_ops), "case {case} step {step} {s:?}");
            }
        }
    }

    /// The non-zero flags of a chunk agree with `v != 0.0` value by value, for chunks of
    /// every length up to 64 holding ±0, subnormals, infinities and NaNs.
    #[test]
    fn nonzero_mask_flags_each_value() {
        let mut rng = Rng::new(5);
        for _ in 0..400 {
            let n = rng.below(65) as usize;
            let h: Vec<f16> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => f16::from_bits(rng.below(1 << 16) as u16),
                    1 => f16::NEG_ZERO,
                    2 => f16::ZERO,
                    _ => f16::from_bits(rng.below(4) as u16 | (0x8000 * rng.below(2) as u16)),
                })
                .collect();
            let f: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
            let want = f.iter().enumerate().fold(0u64, |m, (j, v)| m | u64::from(*v != 0.0) << j);
            assert_eq!(nonzero_mask(&h), want, "{h:?}");
            assert_eq!(nonzero_mask(&f), want, "{f:?}");
        }
    }

    /// The cache key compares bit patterns: −0 is not +0, and NaNs differ by payload.
    #[test]
    fn widened_keys_compare_bits() {
        let g: Vec<f16> = (0..37).map(|i| f16::from_f32(i as f32 - 18.0)).collect();
        let key: Vec<f32> = g.iter().map(|v| v.to_f32()).collect();
        assert!(widens_to(&g, &key));
        assert!(!widens_to(&g[1..], &key));
        for i in [0, 17, 18, 36] {
            for v in [f16::NEG_ZERO, f16::from_bits(0x7e01), f16::from_bits(0x7e02), f16::NEG_INFINITY] {
                let mut h = g.clone();
                h[i] = v;
                let k: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
                assert_eq!(widens_to(&h, &key), h[i].to_bits() == g[i].to_bits(), "{i} {v:?}");
                assert!(widens_to(&h, &k));
            }
        }
    }

    /// Checks one case with spike and dense inputs in both modes; returns how often the
    /// fast path applied.
    fn check<S: Storage>(rng: &mut Rng, s: &Conv2dShape, case: usize, scratch: &mut ConvScratch) -> usize {
        let special = rng.bernoulli(0.2);
        let zeros = [0.0, 0.2, 0.7, 0.95][rng.below(4) as usize];
        let gout: Vec<S> = values(rng, s.out_len(), zeros, special);
        // Sometimes no input at all, or one channel's worth, so channels with no inputs
        // (first, last, in a run) get their empty lists.
        let density = [0.0, 0.05, 0.2, 0.6][rng.below(4) as usize];
        let mut spikes = SpikeBits::from_nonzero(&ones::<f32>(rng, s.in_len(), density));
        if rng.bernoulli(0.15) {
            let keep = rng.below(s.cin as u64) as usize;
            let plane = s.h * s.w;
            for i in (0..s.in_len()).filter(|i| i / plane != keep) {
                spikes.set(i, false);
            }
        }
        let odd_inputs = special && rng.bernoulli(0.3);
        let dense: Vec<S> = values(rng, s.in_len(), 1.0 - density, odd_inputs);
        // Accumulators as a running sum leaves them (never −0: adding +0 makes it +0),
        // sometimes with a value the fast path must refuse.
        let start = values::<S>(rng, s.weight_len(), 0.3, false);
        let mut start: Vec<f32> = start.iter().map(|v| v.to_f32() + 0.0).collect();
        if rng.bernoulli(0.2) {
            let i = rng.below(start.len() as u64) as usize;
            start[i] = [-0.0, f32::NAN, 0.1][rng.below(3) as usize];
        }
        let mut fast = 0;
        for input in [Input::Spikes(spikes.slice(0, s.in_len())), Input::Dense(&dense)] {
            for mode in [Accum::F32, Accum::Storage] {
                let what =
                    format!("case {case} {s:?} {} {mode:?} spikes {}", S::NAME, matches!(input, Input::Spikes(_)));
                let (mut want, mut want_ops) = (start.clone(), OpCount::default());
                conv2d_weight_grad_general(mode, s, &gout, input, &mut want, &mut want_ops);
                if applies(s, &input, &start, mode) {
                    let mut got = start.clone();
                    let ops = weight_grad(mode, s, &gout, &input, &mut got, scratch, true);
                    assert_eq!(bits(&got), bits(&want), "{what}");
                    assert_eq!(ops, Some(want_ops), "{what}");
                    // A fresh scratch gives the same: nothing left over from earlier calls
                    // (longer lists, larger counts) leaks into this one.
                    let mut fresh = start.clone();
                    let ops = weight_grad(mode, s, &gout, &input, &mut fresh, &mut ConvScratch::default(), true);
                    assert_eq!(bits(&fresh), bits(&want), "{what} fresh scratch");
                    assert_eq!(ops, Some(want_ops), "{what} fresh scratch");
                    fast += 1;
                }
                let (mut got, mut ops) = (start.clone(), OpCount::default());
                conv2d_weight_grad_with(mode, s, &gout, input, &mut got, Some(&mut ops), scratch);
                assert_eq!(bits(&got), bits(&want), "{what}");
                assert_eq!(ops, want_ops, "{what}");
            }
        }
        fast
    }
}
