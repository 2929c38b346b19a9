//! Weight gradient of a stride-1 convolution, with the accumulators of one input channel in
//! vector registers.
//!
//! `dW[co,ci,ky,kx] += Σ_{oy,ox} g[co,oy,ox] · x[ci, oy+ky−pad, ox+kx−pad]`, each sum taking
//! its terms in increasing output position, as in
//! [`conv2d_weight_grad`](super::grad::conv2d_weight_grad). The work follows the non-zero
//! inputs (spike maps are mostly zeros): input (ci, iy, ix) adds `x` times the errors of
//! the outputs it reaches to the accumulators of channel ci; through tap (ky, kx) that is
//! output `(iy+pad−ky, ix+pad−kx)`. The errors are laid out so that all those one input
//! reaches form one contiguous run of `kw·kh·cout` values, `[kw−1−kx][kh−1−ky][co]`: each
//! position of the layout holds the error columns (all output channels) of `kh` outputs
//! one above the other, so each error is stored once per kernel row (see [`Columns`]).
//! With the accumulators of a channel laid out the same way, one input adds one run of
//! vectors to one run of vectors. The vectors
//! of a channel form one block (or several, when they do not fit the registers), so the
//! block has several independent sums to add to per input instead of one long dependent
//! chain, and it reads an input's errors through one slice, one bounds check per input.
//!
//! The error layout is zero where no output is, so an input near the border reads zeros
//! where the general kernel has no tap; it also multiplies the zero errors the general
//! kernel skips. Both are products of zero with a finite input: ±0, which leaves the
//! accumulators as they are when [`applies`] holds (see [`super::lanes`]). The lanes past
//! the run in a channel's last vector add values nobody reads back.
//!
//! The operations are counted from the layout too: it keeps, per input position, the
//! non-zero errors an input there meets through the taps, so a non-zero input adds one
//! number ([`super::conv_counts`] counts at issue the same way).

use super::accumulate::Conv2dShape;
use super::lanes::{Block, ConvScratch, LANES, blocks, dispatch, mac, zero_terms_are_exact, zeroed};
use super::{Input, OpCount};
use crate::fp::{Accum, Storage};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// Whether [`weight_grad`] computes bit for bit what the general kernel does: stride 1,
/// finite inputs, and accumulators that a ±0 term leaves as they are.
pub(crate) fn applies<S: Storage>(shape: &Conv2dShape, input: &Input<'_, S>, acc: &[f32], mode: Accum) -> bool {
    let finite = match input {
        Input::Spikes(_) => true,
        Input::Dense(d) => all_finite(d),
    };
    shape.stride == 1 && finite && zero_terms_are_exact::<S>(acc, mode)
}

/// Whether every value of `d` is finite; sixteen values at a time, widened in hardware
/// where the CPU can, and tested without a branch per value.
fn all_finite<S: Storage>(d: &[S]) -> bool {
    let mut wide = [0.0f32; 16];
    let mut chunks = d.chunks_exact(16);
    for chunk in &mut chunks {
        let Ok(chunk) = <&[S; 16]>::try_from(chunk) else { return false };
        S::to_f32_16(chunk, &mut wide);
        if !wide.iter().fold(true, |finite, v| finite & v.is_finite()) {
            return false;
        }
    }
    chunks.remainder().iter().all(|v| v.to_f32().is_finite())
}

/// Adds the weight gradient of one row to `acc` (`[cout,cin,kh,kw]`); see the module doc.
/// With `count`, returns the executed and skipped operations as the general kernel counts
/// them: each non-zero input adds the number of (non-zero error, tap) pairs it meets,
/// which the error layout keeps per input position. `scratch` is working memory reused
/// across calls.
pub(crate) fn weight_grad<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    gout: &[S],
    input: &Input<'_, S>,
    acc: &mut [f32],
    scratch: &mut ConvScratch,
    count: bool,
) -> Option<OpCount> {
    let p = scratch.wg_errors.columns(shape, gout);
    let (entries, executed) = Entries::new(shape, input, &p, (&mut scratch.items, &mut scratch.starts), count);
    // Vectors per channel: the run of an input's errors, rounded up.
    let vectors = (shape.kh * shape.kw * shape.cout).div_ceil(LANES);
    let width = vectors * LANES;
    let lanes = zeroed(&mut scratch.sums, shape.cin * width);
    gather(shape, acc, width, lanes);
    for (ci, lanes) in lanes.chunks_exact_mut(width).enumerate() {
        channel::<S>(mode, vectors, p.data, entries.channel(ci), lanes);
    }
    scatter(shape, lanes, width, acc);
    count.then(|| {
        let total = in_bounds_pairs(shape) * (shape.cin * shape.cout) as u64;
        OpCount { executed, skipped: total - executed }
    })
}

/// The in-bounds (output position, tap) pairs of a stride-1 conv.
pub(crate) fn in_bounds_pairs(shape: &Conv2dShape) -> u64 {
    let pad = shape.pad;
    // Output o reads input o + k − pad for the taps k in `span(o)`.
    let span = |o: usize, k: usize, size: usize| pad.saturating_sub(o)..k.min((size + pad).saturating_sub(o));
    let count = |o: usize, k: usize, size: usize| (0..o).map(|o| span(o, k, size).len() as u64).sum::<u64>();
    count(shape.oh(), shape.kh, shape.h) * count(shape.ow(), shape.kw, shape.w)
}

/// The errors laid out for the inputs: error (co, oy, ox) at `((r·cols + ox + kw−1)·kh + t)
/// ·cout + co` with `r = oy + r0 − t`, for each `t < kh` with `r ≥ 0` (kernel row
/// `kh−1−t`), where `r0 = max(kh−1−pad, 0)` places every error an input reaches at a
/// row of zero or more. An input at (iy, ix) reads the run of `kw·kh·cout` values from
/// position `(iy + pad + r0 + 1 − kh, ix + pad)`; a tail of zeros takes the last vector's
/// overrun. `reach` holds, per input position, the non-zero errors times the taps through
/// which an input there meets them: the operations a non-zero input there executes.
struct Columns<'a> {
    data: &'a [f32],
    cols: usize,
    r0: usize,
    reach: &'a [u64],
}

/// The [`Columns`] of the last errors laid out, kept from call to call: a core runs the
/// weight gradients of many input tiles against the same errors one after another, and
/// laying them out again cost about a quarter of each call. The cache is keyed by the
/// errors' contents (their widened bit patterns) and the shape, so it needs no telling when
/// the buffer the errors came from is written: any change of value misses.
///
/// A clone shares the layout: the simulator gives a job a clone and keeps one for the
/// core's next instruction, which may come while the job runs. New errors are laid out in
/// place when no clone shares the layout, else in the layout before it (kept as a spare)
/// once no job reads that one any more, else in a new one: two layouts take turns while
/// jobs run, and neither is allocated and zeroed again.
#[derive(Debug, Default)]
pub(crate) struct ErrorCache {
    layout: Arc<Layout>,
    /// The layout before the current one, which a job may still read.
    spare: Option<Arc<Layout>>,
}

impl Clone for ErrorCache {
    /// Shares the current layout; the spare stays with the original.
    fn clone(&self) -> Self {
        ErrorCache { layout: Arc::clone(&self.layout), spare: None }
    }
}

/// The contents of an [`ErrorCache`].
#[derive(Debug, Default)]
struct Layout {
    /// The shape the layout is for; `None` while nothing valid is cached.
    shape: Option<Conv2dShape>,
    /// The errors the layout was made from, widened.
    key: Vec<f32>,
    reach: Vec<u64>,
    /// Non-zero errors per output position, and their sums along rows: working memory.
    counts: [Vec<u64>; 2],
    cols: usize,
    r0: usize,
    /// The errors laid out, made by the first kernel that runs on them, on whichever
    /// thread runs it: counting at issue needs only `reach`, so the scheduler's thread
    /// does not lay them out.
    data: OnceLock<Vec<f32>>,
    /// The memory of the `data` before, for the next, and the shape it was laid out for:
    /// every element that layout leaves unwritten is zero, so laying out errors of the
    /// same shape again needs no zeroing.
    spare: Mutex<(Vec<f32>, Option<Conv2dShape>)>,
}

impl ErrorCache {
    /// The layout of `gout` with its reach counted, made afresh unless the cache holds
    /// that of the same values; its `data` may still be to be laid out.
    fn layout<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) -> &Layout {
        if self.layout.shape != Some(*shape) || !widens_to(gout, &self.layout.key) {
            // A layout a clone still reads is left to it, and becomes the spare.
            if Arc::get_mut(&mut self.layout).is_none() {
                let mut next = self.spare.take().filter(|s| Arc::strong_count(s) == 1).unwrap_or_default();
                std::mem::swap(&mut self.layout, &mut next);
                self.spare = Some(next);
            }
            if let Some(layout) = Arc::get_mut(&mut self.layout) {
                layout.count(shape, gout);
            } else {
                // Not reached (the layout was just made unshared); a fresh one does as well.
                let mut layout = Layout::default();
                layout.count(shape, gout);
                self.layout = Arc::new(layout);
            }
        }
        &self.layout
    }

    /// The layout of `gout` with its errors laid out (see [`ErrorCache::layout`]).
    fn columns<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) -> Columns<'_> {
        let l = self.layout(shape, gout);
        Columns { data: l.data.get_or_init(|| l.lay_out(shape)), cols: l.cols, r0: l.r0, reach: &l.reach }
    }

    /// For each input position of a stride-1 conv, the operations a non-zero input there
    /// executes against `gout` (see [`Columns`]), from the cached layout when it is that of
    /// `gout`; a kernel that runs on these errors next finds the counts made.
    pub(crate) fn reach<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) -> &[u64] {
        &self.layout(shape, gout).reach
    }
}

/// Locks a layout's spare memory; a panic while it was held (none is expected) leaves
/// plain memory, which is still usable.
fn lock_spare(m: &Mutex<(Vec<f32>, Option<Conv2dShape>)>) -> MutexGuard<'_, (Vec<f32>, Option<Conv2dShape>)> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Layout {
    /// Takes `gout` as the errors of this layout: widens them into the key, counts the
    /// reach of each input position, and forgets the errors laid out before (keeping
    /// their memory).
    fn count<S: Storage>(&mut self, shape: &Conv2dShape, gout: &[S]) {
        if let Some(old) = self.data.take() {
            *lock_spare(&self.spare) = (old, self.shape);
        }
        self.shape = None;
        let (oh, ow, kh, kw) = (shape.oh(), shape.ow(), shape.kh, shape.kw);
        self.r0 = (kh - 1).saturating_sub(shape.pad);
        self.cols = shape.w + shape.pad + kw - 1;
        // All the errors widened at once (in hardware where the CPU can), then counted.
        self.key.resize(gout.len(), 0.0);
        S::to_f32_slice(gout, &mut self.key);
        let [per_position, across] = &mut self.counts;
        let per_position = zeroed(per_position, oh * ow);
        for g in self.key.chunks_exact((oh * ow).max(1)).take(shape.cout) {
            per_position.iter_mut().zip(g).for_each(|(n, v)| *n += u64::from(*v != 0.0));
        }
        reach(shape, per_position, across, &mut self.reach);
        self.shape = Some(*shape);
    }

    /// The errors of the key laid out (see [`Columns`]), in the memory of the layout
    /// before when there is some.
    fn lay_out(&self, shape: &Conv2dShape) -> Vec<f32> {
        let (oh, ow, cout, kh, kw) = (shape.oh(), shape.ow(), shape.cout, shape.kh, shape.kw);
        let (r0, cols) = (self.r0, self.cols);
        let rows = shape.h + shape.pad + r0;
        let len = rows * cols * kh * cout + LANES;
        let (mut data, zeros_for) = std::mem::take(&mut *lock_spare(&self.spare));
        if zeros_for != Some(*shape) || data.len() != len {
            zeroed(&mut data, len);
        }
        let plane = oh * ow;
        // The key holds `cout` planes of errors unless the errors were short.
        let padded: Vec<f32>;
        let wide = if self.key.len() >= cout * plane {
            &self.key[..cout * plane]
        } else {
            padded = self.key.iter().copied().chain(std::iter::repeat(0.0)).take(cout * plane).collect();
            &padded[..]
        };
        // Outputs past the rows and columns any input reaches are counted only. Each row of
        // errors is made channel-last once and copied as runs of `cout` into the place of
        // each kernel row: a plane at a time, every store was to another cache line.
        let (rows_reached, cols_reached) = ((rows - r0).min(oh), (cols + 1 - kw).min(ow));
        let mut run = vec![0.0f32; cout * cols_reached];
        for oy in 0..rows_reached {
            channels_last(&mut run, &wide[oy * ow..], plane, cout);
            for t in 0..kh.min(oy + r0 + 1) {
                let base = ((oy + r0 - t) * cols + kw - 1) * kh + t;
                spread(&mut data[base * cout..], &run, kh, cout);
            }
        }
        data
    }
}

/// `run[ox·c + co] = row[co·plane + ox]` for every column `ox` of `run`: one row of
/// errors, channel-last. The usual channel counts copy fixed-size runs (the loops unroll).
fn channels_last(run: &mut [f32], row: &[f32], plane: usize, c: usize) {
    fn fixed<const C: usize>(run: &mut [f32], row: &[f32], plane: usize) {
        for (ox, r) in run.chunks_exact_mut(C).enumerate() {
            for (co, v) in r.iter_mut().enumerate() {
                *v = row[co * plane + ox];
            }
        }
    }
    match c {
        4 => fixed::<4>(run, row, plane),
        8 => fixed::<8>(run, row, plane),
        16 => fixed::<16>(run, row, plane),
        _ => {
            for (ox, r) in run.chunks_exact_mut(c.max(1)).enumerate() {
                for (co, v) in r.iter_mut().enumerate() {
                    *v = row[co * plane + ox];
                }
            }
        }
    }
}

/// Copies the runs of `c` values of `run` into `dst`, that of column `ox` to `ox·kh·c`.
/// The usual channel counts copy arrays of a fixed size, a few vector moves each, where a
/// copy of a length known only at run time is a call to `memcpy`.
fn spread(dst: &mut [f32], run: &[f32], kh: usize, c: usize) {
    fn fixed<const C: usize>(dst: &mut [f32], run: &[f32], kh: usize) {
        for (d, r) in dst.chunks_mut(kh * C).zip(run.chunks_exact(C)) {
            if let (Some(d), Ok(r)) = (d.first_chunk_mut::<C>(), <&[f32; C]>::try_from(r)) {
                *d = *r;
            }
        }
    }
    match c {
        4 => fixed::<4>(dst, run, kh),
        8 => fixed::<8>(dst, run, kh),
        16 => fixed::<16>(dst, run, kh),
        _ => {
            for (d, r) in dst.chunks_mut(kh * c).zip(run.chunks_exact(c.max(1))) {
                d[..c].copy_from_slice(r);
            }
        }
    }
}

/// For each input position, `Σ errors[o]` over the outputs o it meets through a tap: the
/// sum of `errors` (per output position) over a window, along the rows into `across`, then
/// along the columns into `reach`.
fn reach(shape: &Conv2dShape, errors: &[u64], across: &mut Vec<u64>, reach: &mut Vec<u64>) {
    let (oh, ow, h, w, pad) = (shape.oh(), shape.ow(), shape.h, shape.w, shape.pad);
    // Stride 1: input i meets outputs i + pad − k for the taps k; those in range form
    // `lo..hi`.
    let window = |i: usize, k: usize, out: usize| (i + pad + 1).saturating_sub(k).min(out)..(i + pad + 1).min(out);
    let across = zeroed(across, oh * w);
    for (sums, row) in across.chunks_exact_mut(w).zip(errors.chunks_exact(ow)) {
        for (ix, sum) in sums.iter_mut().enumerate() {
            *sum = row[window(ix, shape.kw, ow)].iter().sum();
        }
    }
    let reach = zeroed(reach, h * w);
    for (iy, sums) in reach.chunks_exact_mut(w).enumerate() {
        for oy in window(iy, shape.kh, oh) {
            sums.iter_mut().zip(&across[oy * w..][..w]).for_each(|(s, a)| *s += a);
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

/// The non-zero inputs of each channel in increasing position, each as the index in the
/// error layout where the run of the errors it meets starts, and its value.
struct Entries<'a> {
    starts: &'a [usize],
    items: &'a [(usize, f32)],
}

impl<'a> Entries<'a> {
    /// Lists the inputs into `items` and the channel starts into `starts`, reusing their
    /// allocations; with `count`, also sums the operations they execute (else 0).
    fn new<S: Storage>(
        shape: &Conv2dShape,
        input: &Input<'_, S>,
        p: &Columns<'_>,
        lists: (&'a mut Vec<(usize, f32)>, &'a mut Vec<usize>),
        count: bool,
    ) -> (Self, u64) {
        if count {
            Self::fill::<S, true>(shape, input, p, lists)
        } else {
            Self::fill::<S, false>(shape, input, p, lists)
        }
    }

    /// [`Entries::new`], with the choice to count made at compile time.
    fn fill<S: Storage, const COUNT: bool>(
        shape: &Conv2dShape,
        input: &Input<'_, S>,
        p: &Columns<'_>,
        (items, starts): (&'a mut Vec<(usize, f32)>, &'a mut Vec<usize>),
    ) -> (Self, u64) {
        let starts = zeroed(starts, shape.cin + 1);
        items.clear();
        let mut walk = Walk::new(shape, p);
        // The two loops call `add` directly (a closure through `for_each_nonzero` was not
        // inlined: one call per input).
        match input {
            Input::Spikes(bits) => {
                for i in bits.ones() {
                    walk.add::<COUNT>(i, 1.0, items, starts);
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
                        walk.add::<COUNT>(k * 64 + j, chunk[j].to_f32(), items, starts);
                    }
                }
            }
        }
        starts[walk.ci + 1..].fill(items.len());
        (Entries { starts, items }, walk.executed)
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

/// Where [`Entries::fill`] stands in the input: channel `ci`, row `iy`, which ends before
/// index `row_end`; what it needs to place an input in the error layout; and the operations
/// counted so far.
struct Walk<'r> {
    w: usize,
    h: usize,
    ci: usize,
    iy: usize,
    row_end: usize,
    /// The layout position (row·cols + column) of the input at index `i` of the current
    /// row is `base + i`, wrapping (`base` is a position minus an index).
    base: usize,
    /// The index where the current channel starts.
    plane: usize,
    /// Where an input of row 0 starts in the layout: row `first`, column `pad`.
    first: usize,
    cols: usize,
    pad: usize,
    /// Layout values per position: `kh·cout`.
    step: usize,
    reach: &'r [u64],
    executed: u64,
}

impl<'r> Walk<'r> {
    fn new(shape: &Conv2dShape, p: &Columns<'r>) -> Self {
        // `pad + r0 ≥ kh − 1`, so the first row an input reaches is at index zero or more.
        let first = shape.pad + p.r0 + 1 - shape.kh;
        let (cols, pad) = (p.cols, shape.pad);
        let (w, h, step) = (shape.w, shape.h, shape.kh * shape.cout);
        let base = first * cols + pad;
        Walk { w, h, ci: 0, iy: 0, row_end: w, base, plane: 0, first, cols, pad, step, reach: p.reach, executed: 0 }
    }

    /// Lists the non-zero input at index `i` (past every earlier one) with value `x`;
    /// with `COUNT`, adds the operations it executes.
    #[inline(always)]
    fn add<const COUNT: bool>(&mut self, i: usize, x: f32, items: &mut Vec<(usize, f32)>, starts: &mut [usize]) {
        if i >= self.row_end {
            self.next_row(i, items.len(), starts);
        }
        items.push((self.base.wrapping_add(i) * self.step, x));
        if COUNT {
            self.executed += self.reach[i - self.plane];
        }
    }

    /// Moves on to the row holding index `i`, starting the channels it passes at `listed`.
    #[inline(never)]
    fn next_row(&mut self, i: usize, listed: usize, starts: &mut [usize]) {
        while i >= self.row_end {
            self.row_end += self.w;
            self.iy += 1;
            if self.iy == self.h {
                (self.ci, self.iy) = (self.ci + 1, 0);
                self.plane += self.h * self.w;
                starts[self.ci] = listed;
            }
        }
        let row_start = self.row_end - self.w;
        self.base = ((self.iy + self.first) * self.cols + self.pad).wrapping_sub(row_start);
    }
}

/// The most vectors of a block in [`Accum::F32`] mode: twelve accumulators and the
/// broadcast input fit the sixteen vector registers of AVX2 (the error loads fold into
/// the multiply-adds). [`Accum::Storage`] mode, whose roundings take registers of their
/// own, keeps the shared blocks of at most [`MAX_VECTORS`](super::lanes::MAX_VECTORS).
const MAX_F32: usize = 12;

/// Adds the terms of the inputs `items` to the `vectors` vectors of a channel's `lanes`,
/// a block of vectors at a time.
fn channel<S: Storage>(mode: Accum, vectors: usize, errors: &[f32], items: &[(usize, f32)], lanes: &mut [f32]) {
    let mut v0 = 0;
    if mode == Accum::F32 {
        for nv in wide_blocks(vectors) {
            wide_block::<S>(nv, errors, items, v0, lanes);
            v0 += nv;
        }
    } else {
        for nv in blocks(vectors) {
            dispatch!(weight_block::<S>(mode, nv)(errors, items, v0, lanes));
            v0 += nv;
        }
    }
}

/// Splits `vectors` vectors into blocks of at most [`MAX_F32`], as even as possible: the
/// vector count of each block, in order.
fn wide_blocks(vectors: usize) -> impl Iterator<Item = usize> {
    let n = vectors.div_ceil(MAX_F32);
    let per = if n == 0 { 0 } else { vectors.div_ceil(n) };
    (0..n).map(move |i| per.min(vectors - i * per))
}

/// Calls [`weight_block`] in [`Accum::F32`] mode with the block's size `nv` (from
/// [`wide_blocks`]) as a const parameter.
fn wide_block<S: Storage>(nv: usize, errors: &[f32], items: &[(usize, f32)], v0: usize, lanes: &mut [f32]) {
    macro_rules! by_nv {
        ($($n:literal)*) => {
            match nv {
                $($n => weight_block::<S, false, $n>(errors, items, v0, lanes),)*
                _ => weight_block::<S, false, MAX_F32>(errors, items, v0, lanes),
            }
        };
    }
    by_nv!(1 2 3 4 5 6 7 8 9 10 11)
}

/// Adds the terms of the inputs `items` to vectors `v0 .. v0+NV` of a channel's `lanes`.
/// An input's errors for the block are one slice of constant length, so the loads need
/// no bounds check of their own.
fn weight_block<S: Storage, const NARROW: bool, const NV: usize>(
    errors: &[f32],
    items: &[(usize, f32)],
    v0: usize,
    lanes: &mut [f32],
) {
    let lanes = &mut lanes[v0 * LANES..][..NV * LANES];
    let mut acc: Block<NV> = [[0.0; LANES]; NV];
    for (v, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&lanes[v * LANES..][..LANES]);
    }
    let skip = v0 * LANES;
    for &(at, x) in items {
        let src = &errors[at + skip..][..NV * LANES];
        for (v, a) in acc.iter_mut().enumerate() {
            let e = &src[v * LANES..][..LANES];
            for l in 0..LANES {
                a[l] = mac::<S, NARROW>(a[l], e[l], x);
            }
        }
    }
    for (v, a) in acc.iter().enumerate() {
        lanes[v * LANES..][..LANES].copy_from_slice(a);
    }
}

/// Calls `f(a, l)` for each accumulator: `a` its index in `[cout,cin,kh,kw]`, `l` its lane
/// among channels of `width` lanes each laid out `[kw−1−kx][kh−1−ky][co]`, the order of the
/// errors in an input's run.
fn for_each_lane(shape: &Conv2dShape, width: usize, mut f: impl FnMut(usize, usize)) {
    let (cin, kh, kw, cout) = (shape.cin, shape.kh, shape.kw, shape.cout);
    let mut a = 0;
    for co in 0..cout {
        for ci in 0..cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    f(a, ci * width + ((kw - 1 - kx) * kh + kh - 1 - ky) * cout + co);
                    a += 1;
                }
            }
        }
    }
}

/// Loads the accumulators of every channel into `lanes` (see [`for_each_lane`]).
fn gather(shape: &Conv2dShape, acc: &[f32], width: usize, lanes: &mut [f32]) {
    for_each_lane(shape, width, |a, l| lanes[l] = acc[a]);
}

/// Stores the accumulators back from `lanes`; the inverse of [`gather`].
fn scatter(shape: &Conv2dShape, lanes: &[f32], width: usize, acc: &mut [f32]) {
    for_each_lane(shape, width, |a, l| acc[a] = lanes[l]);
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
        // The block sizes the fast path ran, as bit masks: F32 mode, storage mode.
        let mut sizes = [0u32; 2];
        for case in 0..300 {
            let s = shape(&mut rng);
            fast += check::<f16>(&mut rng, &s, case, &mut scratch, &mut sizes);
            fast += check::<f32>(&mut rng, &s, case, &mut scratch, &mut sizes);
        }
        assert!(fast > 400, "the fast path ran {fast} times");
        // Every block size of either mode ran.
        assert_eq!(sizes, [(1 << (MAX_F32 + 1)) - 2, (1 << (crate::kernels::lanes::MAX_VECTORS + 1)) - 2]);
    }

    /// The cached error layout is used only for the errors it was made from: weight
    /// gradients of one shape against errors that change by one value between calls (a
    /// sign of zero, a NaN payload, an infinity, a new value) or not at all, through one
    /// scratch, each agree with the general kernel. Clones of the cache are held and let
    /// go at random, as running jobs hold them, so that new errors are laid out in place,
    /// in the spare layout (laid out before for the same shape or another) or afresh.
    #[test]
    fn error_cache_follows_the_errors() {
        let mut rng = Rng::new(31);
        let mut scratch = ConvScratch::default();
        let mut held: Vec<ErrorCache> = Vec::new();
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
                if rng.bernoulli(0.5) {
                    held.push(scratch.wg_errors.clone());
                }
                if !held.is_empty() && rng.bernoulli(0.4) {
                    held.swap_remove(rng.below(held.len() as u64) as usize);
                }
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

    /// Layouts of two shapes that take the same memory, 2x9 and 4x5 maps with a 3x3 kernel
    /// and padding 1, one after the other through one scratch: memory laid out for one
    /// shape is zeroed before it takes the other's, whose padding lies elsewhere.
    #[test]
    fn layouts_of_shapes_of_one_size_do_not_mix() {
        let mut rng = Rng::new(47);
        let mut scratch = ConvScratch::default();
        let a = Conv2dShape { cin: 2, cout: 4, h: 2, w: 9, kh: 3, kw: 3, stride: 1, pad: 1 };
        let b = Conv2dShape { h: 4, w: 5, ..a };
        for round in 0..6 {
            let s = if round % 2 == 0 { a } else { b };
            let gout: Vec<f16> = values(&mut rng, s.out_len(), 0.1, false);
            let spikes = SpikeBits::from_nonzero(&ones::<f32>(&mut rng, s.in_len(), 0.6));
            let input = Input::Spikes(spikes.slice(0, s.in_len()));
            let mut want = vec![0.0f32; s.weight_len()];
            conv2d_weight_grad_general(Accum::F32, &s, &gout, input, &mut want, &mut OpCount::default());
            let mut got = vec![0.0f32; s.weight_len()];
            weight_grad(Accum::F32, &s, &gout, &input, &mut got, &mut scratch, false);
            assert_eq!(bits(&got), bits(&want), "round {round} {s:?}");
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
    /// fast path applied, and marks the block sizes it ran in `sizes`.
    fn check<S: Storage>(
        rng: &mut Rng,
        s: &Conv2dShape,
        case: usize,
        scratch: &mut ConvScratch,
        sizes: &mut [u32; 2],
    ) -> usize {
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
                    let vectors = (s.kh * s.kw * s.cout).div_ceil(LANES);
                    if mode == Accum::F32 {
                        wide_blocks(vectors).for_each(|nv| sizes[0] |= 1 << nv);
                    } else {
                        blocks(vectors).for_each(|nv| sizes[1] |= 1 << nv);
                    }
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
