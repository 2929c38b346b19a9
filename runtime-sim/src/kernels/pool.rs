//! Pooling on spike maps, forward and backward.
//!
//! Pooling follows a LIF layer, so its input is a 1-bit spike map and its output is
//! fractional: average pooling gives `count/k²`, max pooling gives 0 or 1. Windows are
//! `k×k` with stride `k` (non-overlapping). Backward, average pooling spreads `g/k²` over its
//! window; max pooling routes `g` to the first maximum in row-major window order (PyTorch's
//! rule; for an all-zero window that is its first element). The max-pool backward recomputes
//! that position from the stored input spikes rather than keeping indices.

use super::OpCount;
use crate::fp::Storage;
use crate::spikes::SpikeSlice;

/// Geometry of a `k×k`, stride-`k` pooling over one `[c,h,w]` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Channels.
    pub c: usize,
    /// Input height (a multiple of `k`).
    pub h: usize,
    /// Input width (a multiple of `k`).
    pub w: usize,
    /// Window size and stride.
    pub k: usize,
}

impl PoolShape {
    /// Output height.
    pub fn oh(&self) -> usize {
        self.h / self.k
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        self.w / self.k
    }

    /// Elements of one input row.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output row.
    pub fn out_len(&self) -> usize {
        self.c * self.oh() * self.ow()
    }

    /// Input indices of the window of output `(c, oy, ox)`, in row-major window order.
    #[inline]
    fn window(&self, c: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + use<> {
        let (h, w, k) = (self.h, self.w, self.k);
        (0..k * k).map(move |d| (c * h + oy * k + d / k) * w + ox * k + d % k)
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
    let area = (shape.k * shape.k) as f32;
    for (o, c, oy, ox) in shape.outputs() {
        let n = shape.window(c, oy, ox).filter(|&i| input.get(i)).count();
        out[o] = S::from_f32(n as f32 / area);
        ops.executed += n as u64;
        ops.skipped += (shape.k * shape.k - n) as u64;
    }
}

/// Max pooling of a spike map: the OR of the window, as 0.0 / 1.0. The OR stops at the first
/// spike of a window: the bits it reads count as executed, the rest of the window as skipped.
pub fn maxpool_forward<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, out: &mut [S], ops: &mut OpCount) {
    check(shape, input.len(), out.len());
    let area = (shape.k * shape.k) as u64;
    for (o, c, oy, ox) in shape.outputs() {
        let first = shape.window(c, oy, ox).position(|i| input.get(i));
        out[o] = S::from_f32(if first.is_some() { 1.0 } else { 0.0 });
        let read = first.map_or(area, |p| p as u64 + 1);
        ops.executed += read;
        ops.skipped += area - read;
    }
}

/// Average pooling backward: `gin = fl(g/k²)` over each window (computed in f32, so the
/// only rounding is the final one, which matters when the quotient is subnormal in f16).
pub fn avgpool_backward<S: Storage>(shape: &PoolShape, gout: &[S], gin: &mut [S]) {
    check(shape, gin.len(), gout.len());
    let area = (shape.k * shape.k) as f32;
    for (o, c, oy, ox) in shape.outputs() {
        let g = S::from_f32(gout[o].to_f32() / area);
        for i in shape.window(c, oy, ox) {
            gin[i] = g;
        }
    }
}

/// Max pooling backward: `g` goes to the first spike of each window (or the window's first
/// element if it has none); every other input gets 0.
pub fn maxpool_backward<S: Storage>(shape: &PoolShape, input: SpikeSlice<'_>, gout: &[S], gin: &mut [S]) {
    check(shape, input.len(), gout.len());
    assert_eq!(gin.len(), shape.in_len(), "pool gradient shape");
    gin.fill(S::default());
    for (o, c, oy, ox) in shape.outputs() {
        let mut win = shape.window(c, oy, ox);
        let first = win.next().unwrap_or(0);
        let at = core::iter::once(first).chain(win).find(|&i| input.get(i)).unwrap_or(first);
        gin[at] = gout[o];
    }
}

fn check(shape: &PoolShape, in_len: usize, out_len: usize) {
    assert!(shape.k > 0 && shape.h % shape.k == 0 && shape.w % shape.k == 0, "pool window");
    assert_eq!(in_len, shape.in_len(), "pool input shape");
    assert_eq!(out_len, shape.out_len(), "pool output shape");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spikes::SpikeBits;

    // One channel, 2x4 input, k = 2: windows [0,1,4,5] and [2,3,6,7].
    const SHAPE: PoolShape = PoolShape { c: 1, h: 2, w: 4, k: 2 };

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
