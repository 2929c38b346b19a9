//! Pooling on spike maps, forward and backward.
//!
//! Pooling follows a LIF layer, so its input is a 1-bit spike map and its output is
//! fractional: average pooling gives `count/k²`, max pooling gives 0 or 1. Windows are `k×k`,
//! moved by `stride`, over the input with `pad` rows and columns of padding on every side,
//! exactly as PyTorch's `MaxPool2d` / `AvgPool2d` (floor mode, `count_include_pad = True`):
//! max pooling pads with -inf, so on spikes it is the OR of the window's in-bounds bits, and
//! average pooling counts padding as zeros and always divides by `k²`.
//!
//! Backward, average pooling spreads `g/k²` over its window's in-bounds elements; max pooling
//! routes `g` to the first maximum of the window's in-bounds elements in row-major order
//! (PyTorch's rule; for an all-zero window that is its first in-bounds element). The max-pool
//! backward recomputes that position from the stored input spikes rather than keeping
//! indices. Where windows overlap, an input element's gradient is the FP16 sum of what every
//! window sends it, added (rounding after each add) in row-major order of the windows, as
//! PyTorch's CPU kernel visits them.
//!
//! Non-overlapping windows that tile the map (`stride = k`, no padding, `k` dividing both
//! sides) keep a fast path backward that writes each gradient once instead of adding it.

use super::OpCount;
use crate::fp::Storage;
use crate::spikes::SpikeSlice;

/// Geometry of a `k×k` pooling with stride `stride` and padding `pad` over one `[c,h,w]` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side (at most `k/2`).
    pub pad: usize,
}

impl PoolShape {
    /// Non-overlapping `k×k` windows with stride `k` and no padding.
    pub fn tiled(c: usize, h: usize, w: usize, k: usize) -> PoolShape {
        PoolShape { c, h, w, k, stride: k, pad: 0 }
    }

    /// Output height, `(h + 2*pad - k)/stride + 1`.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Elements of one input row.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output row.
    pub fn out_len(&self) -> usize {
        self.c * self.oh() * self.ow()
    }

    /// Whether the windows tile the map exactly (stride `k`, no padding, `k` divides both
    /// sides): every input element is in exactly one window.
    pub fn tiles(&self) -> bool {
        self.stride == self.k && self.pad == 0 && self.h % self.k == 0 && self.w % self.k == 0
    }

    /// In-bounds window elements over all outputs: the elements the engine visits (`in_len`
    /// when the windows tile the map).
    pub fn taps(&self) -> usize {
        let per_axis = |n: usize, o: usize| -> usize { (0..o).map(|i| self.span(i, n).len()).sum() };
        self.c * per_axis(self.h, self.oh()) * per_axis(self.w, self.ow())
    }

    /// The in-bounds input positions along one axis of length `n` of output position `o`.
    #[inline]
    fn span(&self, o: usize, n: usize) -> core::ops::Range<usize> {
        let first = o * self.stride;
        first.saturating_sub(self.pad).min(n)..(first + self.k).saturating_sub(self.pad).min(n)
    }

    /// In-bounds input indices of the window of output `(c, oy, ox)`, in row-major window
    /// order (padding positions are skipped).
    #[inline]
    fn window(&self, c: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + use<> {
        let (h, w) = (self.h, self.w);
        let (ys, xs) = (self.span(oy, h), self.span(ox, w));
        ys.flat_map(move |y| xs.clone().map(move |x| (c * h + y) * w + x))
    }

    /// Output positions `(c, oy, ox)` in row-major order, with their flat index.
    fn outputs(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + use<> {
        let (oh, ow) = (self.oh(), self.ow());
        (0..self.c * oh * ow).map(move |o| (o, o / (oh * ow), o / ow % oh, o % ow))
    }
}

/// Average pooling of a spike map: `out = fl(count/k²)`. Counting spikes is one add per set
/// bit (executed); zero bits are skipped.
pub fn avgpool_forward<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, out: &mut [S], ops: &mut OpCount) {
    check(shape, input.len(), out.len());
    if shape.tiles() && shape.k <= MAX_TILED_K {
        avgpool_forward_tiled(shape, input, out, ops);
    } else {
        avgpool_forward_general(shape, input, out, ops);
    }
}

/// The largest window [`avgpool_forward_tiled`] takes: its `k²+1` possible quotients fit a
/// table of [`QUOTIENTS`] entries.
const MAX_TILED_K: usize = 8;

/// Entries of the quotient table of [`avgpool_forward_tiled`].
const QUOTIENTS: usize = MAX_TILED_K * MAX_TILED_K + 1;

/// [`avgpool_forward`] for windows that tile the map, `k ≤ 8`: each window's spikes are
/// counted a window row at a time from whole words of the input row (a popcount of `k`
/// bits), and its quotient comes from a table of the `k²+1` possible ones. Every input bit
/// lies in exactly one window, so the executed operations are the spikes of the map and the
/// skipped ones its zeros.
fn avgpool_forward_tiled<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, out: &mut [S], ops: &mut OpCount) {
    let PoolShape { h, w, k, .. } = *shape;
    let (oh, ow) = (shape.oh(), shape.ow());
    let area = (k * k) as f32;
    let mut quotient = [S::default(); QUOTIENTS];
    for (n, q) in quotient.iter_mut().enumerate().take(k * k + 1) {
        *q = S::from_f32(n as f32 / area);
    }
    // Windows per word read: as many whole windows as 64 bits hold.
    let per_word = 64 / k;
    let window_mask = (1u64 << k) - 1;
    let mut counts = [0u32; 64];
    let mut executed = 0u64;
    for (r, row) in out.chunks_exact_mut(ow).enumerate() {
        let (c, oy) = (r / oh, r % oh);
        for ox0 in (0..ow).step_by(per_word) {
            let m = (ow - ox0).min(per_word);
            let counts = &mut counts[..m];
            counts.fill(0);
            for dy in 0..k {
                let word = input.bits_at(((c * h) + oy * k + dy) * w + ox0 * k, m * k);
                for (j, n) in counts.iter_mut().enumerate() {
                    *n += ((word >> (j * k)) & window_mask).count_ones();
                }
            }
            for (o, &n) in row[ox0..ox0 + m].iter_mut().zip(counts.iter()) {
                *o = quotient[n as usize];
                executed += u64::from(n);
            }
        }
    }
    ops.executed += executed;
    ops.skipped += input.len() as u64 - executed;
}

/// [`avgpool_forward`] for any geometry, window by window.
fn avgpool_forward_general<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, out: &mut [S], ops: &mut OpCount) {
    let area = (shape.k * shape.k) as f32;
    for (o, c, oy, ox) in shape.outputs() {
        let (mut n, mut len) = (0, 0);
        for i in shape.window(c, oy, ox) {
            n += usize::from(input.get(i));
            len += 1;
        }
        out[o] = S::from_f32(n as f32 / area);
        ops.executed += n as u64;
        ops.skipped += (len - n) as u64;
    }
}

/// Max pooling of a spike map: the OR of the window, as 0.0 / 1.0. The OR stops at the first
/// spike of a window: the bits it reads count as executed, the rest of the window's
/// in-bounds bits as skipped.
pub fn maxpool_forward<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, out: &mut [S], ops: &mut OpCount) {
    check(shape, input.len(), out.len());
    for (o, c, oy, ox) in shape.outputs() {
        let len = shape.window(c, oy, ox).count() as u64;
        let first = shape.window(c, oy, ox).position(|i| input.get(i));
        out[o] = S::from_f32(if first.is_some() { 1.0 } else { 0.0 });
        let read = first.map_or(len, |p| p as u64 + 1);
        ops.executed += read;
        ops.skipped += len - read;
    }
}

/// Average pooling backward: `fl(g/k²)` to every in-bounds element of each window (the
/// quotient computed in f32, so its only rounding is the final one, which matters when it is
/// subnormal in f16); overlapping windows add up as the module doc says.
pub fn avgpool_backward<S: Storage>(shape: &PoolShape, gout: &[S], gin: &mut [S]) {
    check(shape, gin.len(), gout.len());
    let area = (shape.k * shape.k) as f32;
    let tiles = shape.tiles();
    if tiles {
        return avgpool_backward_tiled(shape, gout, gin);
    }
    gin.fill(S::default());
    for (o, c, oy, ox) in shape.outputs() {
        let g = S::from_f32(gout[o].to_f32() / area);
        for i in shape.window(c, oy, ox) {
            gin[i] = add(gin[i], g);
        }
    }
}

/// [`avgpool_backward`] for windows that tile the map: each window's share is written once
/// into the first input row of its window row, and that row is copied to the window row's
/// other `k − 1` input rows.
fn avgpool_backward_tiled<S: Storage>(shape: &PoolShape, gout: &[S], gin: &mut [S]) {
    let (k, w) = (shape.k, shape.w);
    let area = (k * k) as f32;
    for (rows, g) in gin.chunks_exact_mut(k * w).zip(gout.chunks_exact(shape.ow())) {
        let (first, rest) = rows.split_at_mut(w);
        for (window, g) in first.chunks_exact_mut(k).zip(g) {
            window.fill(S::from_f32(g.to_f32() / area));
        }
        for row in rest.chunks_exact_mut(w) {
            row.copy_from_slice(first);
        }
    }
}

/// Max pooling backward: `g` goes to the first spike of each window (or the window's first
/// in-bounds element if it has none); every other input gets 0, or the sum of what the
/// windows it wins send it where windows overlap.
pub fn maxpool_backward<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, gout: &[S], gin: &mut [S]) {
    check(shape, input.len(), gout.len());
    assert_eq!(gin.len(), shape.in_len(), "pool gradient shape");
    let tiles = shape.tiles();
    gin.fill(S::default());
    if tiles && shape.k <= 64 {
        return maxpool_backward_tiled(shape, input, gout, gin);
    }
    for (o, c, oy, ox) in shape.outputs() {
        let mut win = shape.window(c, oy, ox);
        let first = win.next().unwrap_or(0);
        let at = core::iter::once(first).chain(win).find(|&i| input.get(i)).unwrap_or(first);
        gin[at] = if tiles { gout[o] } else { add(gin[at], gout[o]) };
    }
}

/// [`maxpool_backward`] for windows that tile the map (and rows of at most 64 bits per
/// window row), into a zeroed `gin`: each window's rows are read as words of `k` bits,
/// and the first set bit of the first row that has one wins, with no division per output.
fn maxpool_backward_tiled<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, gout: &[S], gin: &mut [S]) {
    let (k, w, ow) = (shape.k, shape.w, shape.ow());
    for (band, g) in gout.chunks_exact(ow).enumerate() {
        // Window row `band` (over all channels) starts at input row `band·k`.
        let row0 = band * k * w;
        for (ox, &g) in g.iter().enumerate() {
            let base = row0 + ox * k;
            let at = (0..k)
                .map(|r| base + r * w)
                .find_map(|start| {
                    let bits = input.bits_at(start, k);
                    (bits != 0).then(|| start + bits.trailing_zeros() as usize)
                })
                .unwrap_or(base);
            gin[at] = g;
        }
    }
}

/// One FP16 (storage-type) add, rounded to nearest even.
#[inline]
fn add<S: Storage>(a: S, b: S) -> S {
    S::from_f32(a.to_f32() + b.to_f32())
}

fn check(shape: &PoolShape, in_len: usize, out_len: usize) {
    let PoolShape { h, w, k, stride, pad, .. } = *shape;
    assert!(k > 0 && stride > 0 && 2 * pad <= k && h + 2 * pad >= k && w + 2 * pad >= k, "pool window");
    assert_eq!(in_len, shape.in_len(), "pool input shape");
    assert_eq!(out_len, shape.out_len(), "pool output shape");
}

#[cfg(test)]
#[path = "pool_reference_tests.rs"]
mod reference_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spikes::SpikeBits;

    // One channel, 2x4 input, k = 2: windows [0,1,4,5] and [2,3,6,7].
    const SHAPE: PoolShape = PoolShape { c: 1, h: 2, w: 4, k: 2, stride: 2, pad: 0 };

    #[test]
    fn avg_and_max_forward() {
        let s = SpikeBits::from_bools(&[false, true, false, false, true, true, false, false]);
        let mut avg = [0.0f32; 2];
        let mut ops = OpCount::default();
        avgpool_forward(&SHAPE, s.slice(0, 8), &mut avg, &mut ops);
        assert_eq!(avg, [0.75, 0.0]);
        assert_eq!(ops, OpCount { executed: 3, skipped: 5 });
        let mut max = [0.0f32; 2];
        let mut ops = OpCount::default();
        maxpool_forward(&SHAPE, s.slice(0, 8), &mut max, &mut ops);
        assert_eq!(max, [1.0, 0.0]);
        // The first window stops at its second bit; the second reads all four.
        assert_eq!(ops, OpCount { executed: 6, skipped: 2 });
    }

    #[test]
    fn max_backward_routes_to_first_max() {
        let s = SpikeBits::from_bools(&[false, true, false, false, true, true, false, false]);
        let mut gin = [9.0f32; 8];
        maxpool_backward(&SHAPE, s.slice(0, 8), &[0.5, -2.0], &mut gin);
        assert_eq!(gin, [0.0, 0.5, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut gavg = [0.0f32; 8];
        avgpool_backward(&SHAPE, &[0.5, -2.0], &mut gavg);
        assert_eq!(gavg, [0.125, 0.125, -0.5, -0.5, 0.125, 0.125, -0.5, -0.5]);
    }
}
