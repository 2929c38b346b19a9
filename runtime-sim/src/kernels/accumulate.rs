//! Forward accumulate engine: fc and conv synaptic sums.
//!
//! The FP engine's "MAC" for a spike input is a mux and an add: a set spike bit selects a
//! weight, a zero bit is skipped. Multi-bit inputs (direct current into the first layer,
//! average-pooled spike maps) multiply instead. Either way the sum runs in the accumulator
//! width of [`Accum`] and is rounded once to the storage type; the bias, when there is one,
//! is added to the accumulator before that rounding (as `x·Wᵀ + b` is computed in the golden
//! data).

use super::{ConvScratch, Input, OpCount, conv_forward, correlate};
use crate::fp::{Accum, Storage, acc_add, acc_mac, axpy};

/// Geometry of a 2-D convolution for one row (one timestep of one sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding (both directions, both sides).
    pub pad: usize,
}

impl Conv2dShape {
    /// Output height.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }

    /// Output width.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }

    /// Elements of one input row `[cin,h,w]`.
    pub fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    /// Elements of one output row `[cout,oh,ow]`.
    pub fn out_len(&self) -> usize {
        self.cout * self.oh() * self.ow()
    }

    /// Elements of the weight `[cout,cin,kh,kw]`.
    pub fn weight_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }

    /// The input coordinate read by output coordinate `o` at kernel tap `k`, or `None` if it
    /// falls into the zero padding.
    #[inline]
    pub fn input_coord(&self, o: usize, k: usize, size: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(self.pad).filter(|&i| i < size)
    }

    /// Number of kernel taps of output `(oy, ox)` that read real input (not padding), per
    /// input channel.
    pub fn taps_in_bounds(&self, oy: usize, ox: usize) -> usize {
        let ny = (0..self.kh).filter(|&k| self.input_coord(oy, k, self.h).is_some()).count();
        let nx = (0..self.kw).filter(|&k| self.input_coord(ox, k, self.w).is_some()).count();
        ny * nx
    }
}

/// fc forward for one row: `out[j] = Σ_i x[i]·W[j,i] (+ b[j])`, W of shape `[out.len(), n_in]`.
///
/// Spike inputs are visited through their set bits only; every skipped zero counts as
/// `out.len()` skipped adds.
pub fn linear_forward<S: Storage>(
    mode: Accum,
    weight: &[S],
    bias: Option<&[S]>,
    input: Input<'_, S>,
    out: &mut [S],
    ops: &mut OpCount,
) {
    let n_in = input.len();
    assert_eq!(weight.len(), out.len() * n_in, "fc weight shape");
    let mut nonzero = 0;
    for (j, o) in out.iter_mut().enumerate() {
        let row = &weight[j * n_in..(j + 1) * n_in];
        let mut acc = 0.0f32;
        nonzero = input.for_each_nonzero(|i, x| acc = acc_mac::<S>(acc, row[i].to_f32(), x, mode));
        if let Some(b) = bias {
            acc = acc_add::<S>(acc, b[j].to_f32(), mode);
        }
        *o = S::from_f32(acc);
    }
    let n_out = out.len() as u64;
    ops.executed += nonzero as u64 * n_out;
    ops.skipped += (n_in - nonzero) as u64 * n_out;
}

/// conv2d forward (cross-correlation, zero padding) for one row: input `[cin,h,w]`, weight
/// `[cout,cin,kh,kw]`, output `[cout,oh,ow]`. Taps that read padding are not operations;
/// taps that read a zero input are counted as skipped.
///
/// Every output sums its taps in `(ci, ky, kx)` order, the order a gather over the window
/// would use. Stride 1 with finite weights goes through
/// `conv_forward::forward_planes`, a correlation over every input in vector registers;
/// other stride-1 convs through the row kernel of `conv_forward`,
/// and other strides through `conv2d_forward_general`.
pub fn conv2d_forward<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    bias: Option<&[S]>,
    input: Input<'_, S>,
    out: &mut [S],
    ops: &mut OpCount,
) {
    conv2d_forward_with(mode, shape, (weight, bias), input, (out, false), ops, &mut ConvScratch::default());
}

/// [`conv2d_forward`] with working memory the caller keeps across calls; with `add`, the
/// rounded outputs are added to what `out` holds (one more rounding each), as a conv that
/// accumulates into its output does.
pub(crate) fn conv2d_forward_with<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    (weight, bias): (&[S], Option<&[S]>),
    input: Input<'_, S>,
    (out, add): (&mut [S], bool),
    ops: &mut OpCount,
    scratch: &mut ConvScratch,
) {
    assert_eq!(input.len(), shape.in_len(), "conv input shape");
    assert_eq!(weight.len(), shape.weight_len(), "conv weight shape");
    assert_eq!(out.len(), shape.out_len(), "conv output shape");
    if conv_forward::planes_apply(shape, weight) {
        let parallel = correlate::worth_splitting(conv_forward::planes_work(shape));
        let ops_here = conv_forward::forward_planes(mode, shape, (weight, bias), &input, (out, add), scratch, parallel);
        ops.merge(ops_here);
    } else if add {
        // The other kernels only store: a temporary takes their outputs, added after.
        let mut tmp = vec![S::default(); out.len()];
        conv2d_forward_with(mode, shape, (weight, bias), input, (&mut tmp, false), ops, scratch);
        crate::fp::add_assign_slice(out, &tmp);
    } else if shape.stride == 1 {
        ops.merge(conv_forward::forward(mode, shape, weight, bias, &input, out));
    } else {
        conv2d_forward_general(mode, shape, weight, bias, input, out, ops);
    }
}

/// [`conv2d_forward`] for any geometry.
///
/// The sums are scattered from the non-zero inputs (a spike map is mostly zeros) into one
/// accumulator per output, channel-last so the innermost loop runs over output channels.
/// Visiting inputs in increasing `(ci, iy, ix)` order gives every output its taps in
/// `(ci, ky, kx)` order, so each output sees the same sequence of roundings.
pub(crate) fn conv2d_forward_general<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    bias: Option<&[S]>,
    input: Input<'_, S>,
    out: &mut [S],
    ops: &mut OpCount,
) {
    let (oh, ow, cout) = (shape.oh(), shape.ow(), shape.cout);
    let taps = shape.kh * shape.kw;
    // Weights as [ci][ky][kx][co], so one tap's weights for every output channel are adjacent.
    let mut wt = vec![0.0f32; weight.len()];
    for (co, filter) in weight.chunks_exact((shape.cin * taps).max(1)).enumerate() {
        for (rest, w) in filter.iter().enumerate() {
            wt[rest * cout + co] = w.to_f32();
        }
    }
    let mut acc = vec![0.0f32; oh * ow * cout];
    let mut executed = 0u64;
    // Per input row and column, the (tap, output) pairs it reaches, in tap order: looked
    // up rather than divided out per input and tap.
    let (ys, xs) = (AxisTaps::new(shape, shape.h, shape.kh, oh), AxisTaps::new(shape, shape.w, shape.kw, ow));
    // The channel and row of each input follow from walking the rows alongside the
    // increasing indices.
    let (mut row_start, mut ci, mut iy) = (0usize, 0usize, 0usize);
    input.for_each_nonzero(|i, x| {
        while i >= row_start + shape.w {
            row_start += shape.w;
            iy += 1;
            if iy == shape.h {
                (ci, iy) = (ci + 1, 0);
            }
        }
        for &(ky, oy) in ys.of(iy) {
            for &(kx, ox) in xs.of(i - row_start) {
                let w = &wt[((ci * shape.kh + ky) * shape.kw + kx) * cout..][..cout];
                axpy::<S>(&mut acc[(oy * ow + ox) * cout..][..cout], w, x, mode);
                executed += cout as u64;
            }
        }
    });
    for co in 0..cout {
        for pos in 0..oh * ow {
            let mut a = acc[pos * cout + co];
            if let Some(b) = bias {
                a = acc_add::<S>(a, b[co].to_f32(), mode);
            }
            out[co * oh * ow + pos] = S::from_f32(a);
        }
    }
    let valid = |o: usize, k: usize, size: usize| {
        (0..o).map(|p| (0..k).filter(|&t| shape.input_coord(p, t, size).is_some()).count()).sum::<usize>()
    };
    let total = (valid(oh, shape.kh, shape.h) * valid(ow, shape.kw, shape.w) * shape.cin * cout) as u64;
    ops.executed += executed;
    ops.skipped += total - executed;
}

/// Along one axis, for each input coordinate, the (tap, output coordinate) pairs through
/// which it reaches an output, taps in increasing order.
struct AxisTaps {
    starts: Vec<usize>,
    pairs: Vec<(usize, usize)>,
}

impl AxisTaps {
    /// The pairs of the `size` input coordinates of an axis with `k` taps and `out` outputs.
    fn new(shape: &Conv2dShape, size: usize, k: usize, out: usize) -> Self {
        let (mut starts, mut pairs) = (Vec::with_capacity(size + 1), Vec::new());
        for i in 0..size {
            starts.push(pairs.len());
            pairs.extend((0..k).filter_map(|t| output_coord(shape, i, t, out).map(|o| (t, o))));
        }
        starts.push(pairs.len());
        AxisTaps { starts, pairs }
    }

    /// The pairs of input coordinate `i`.
    fn of(&self, i: usize) -> &[(usize, usize)] {
        &self.pairs[self.starts[i]..self.starts[i + 1]]
    }
}

/// The output coordinate that reads input coordinate `i` at kernel tap `k`, if any.
#[inline]
fn output_coord(shape: &Conv2dShape, i: usize, k: usize, size: usize) -> Option<usize> {
    let y = (i + shape.pad).checked_sub(k)?;
    // Stride 1 is the common case; it needs no division.
    if shape.stride == 1 {
        return (y < size).then_some(y);
    }
    (y % shape.stride == 0 && y / shape.stride < size).then_some(y / shape.stride)
}

/// `dst[i] = add(dst[i], S::from_f32(acc[i]))` for every `i`: unrounded sums stored and
/// added to what `dst` holds, as a conv that accumulates into its output does, without a
/// temporary of the storage type. `acc` is left rounded to the storage type. The values
/// are those of the two steps one after the other: [`Storage::round_slice`] gives the value
/// `S::from_f32` stores, and the add rounds once, as [`crate::fp::add`] does.
pub(crate) fn add_rounded<S: Storage>(dst: &mut [S], acc: &mut [f32]) {
    const BLOCK: usize = 256;
    assert_eq!(dst.len(), acc.len(), "accumulated output shape");
    S::round_slice(acc);
    let mut a = [0.0f32; BLOCK];
    for (d, s) in dst.chunks_mut(BLOCK).zip(acc.chunks(BLOCK)) {
        let a = &mut a[..d.len()];
        S::to_f32_slice(d, a);
        for (x, y) in a.iter_mut().zip(s) {
            *x += y;
        }
        S::from_f32_slice(a, d);
    }
}

/// Where [`round_into`] puts the rounded sums, and what it adds to them first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finish {
    /// The accumulator width, for the bias add.
    pub(crate) mode: Accum,
    /// Added to each accumulator before it is rounded, as [`acc_add`] adds it.
    pub(crate) bias: Option<f32>,
    /// Whether the rounded sums are added to what the output holds instead of replacing it.
    pub(crate) add: bool,
}

/// Outputs [`round_into`] finishes at once: one vector of the storage type.
const FINISH: usize = 16;

/// Rounds the sums `src` into `dst` (the same length) as `finish` says, sixteen at a time in
/// vector registers: per element the bias add of [`acc_add`], then `S::from_f32`, or with
/// `add` what [`add_rounded`] computes. A row of a conv's output goes straight from the
/// correlation's layout into the output this way, with no pass over a temporary.
#[inline]
pub(crate) fn round_into<S: Storage>(dst: &mut [S], src: &[f32], finish: Finish) {
    assert_eq!(dst.len(), src.len(), "rounded output shape");
    let (len, n) = (dst.len(), dst.len() / FINISH * FINISH);
    if len < FINISH {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = finish_one(*d, s, finish));
        return;
    }
    // A row that is not a whole number of blocks ends with the block of its last sixteen,
    // which overlaps the one before: it is finished from the outputs as they were, so the
    // outputs it shares with that block get the same values again.
    let last = <&[S; FINISH]>::try_from(&dst[len - FINISH..]).ok().copied().filter(|_| n < len);
    for (d, s) in dst.chunks_exact_mut(FINISH).zip(src.chunks_exact(FINISH)) {
        if let (Ok(d), Ok(s)) = (<&mut [S; FINISH]>::try_from(d), <&[f32; FINISH]>::try_from(s)) {
            finish_block(d, *s, finish);
        }
    }
    if let (Some(mut d), Ok(s)) = (last, <&[f32; FINISH]>::try_from(&src[len - FINISH..])) {
        finish_block(&mut d, *s, finish);
        dst[len - FINISH..].copy_from_slice(&d);
    }
}

/// [`round_into`] of one output: the operations of [`finish_block`] on one lane.
#[inline]
fn finish_one<S: Storage>(dst: S, mut a: f32, finish: Finish) -> S {
    if let Some(b) = finish.bias {
        a = acc_add::<S>(a, b, finish.mode);
    }
    if finish.add {
        a = dst.to_f32() + S::round(a);
    }
    S::from_f32(a)
}

/// [`round_into`] of one block.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn finish_block<S: Storage>(dst: &mut [S; FINISH], mut a: [f32; FINISH], finish: Finish) {
    if let Some(b) = finish.bias {
        for x in &mut a {
            *x = acc_add::<S>(*x, b, finish.mode);
        }
    }
    if finish.add {
        // The sums as stored, then the stored outputs plus those, in that order.
        let mut stored = [S::default(); FINISH];
        S::from_f32_slice(&a, &mut stored);
        let (mut sums, mut prior) = ([0.0f32; FINISH], [0.0f32; FINISH]);
        S::to_f32_16(&stored, &mut sums);
        S::to_f32_16(dst, &mut prior);
        for j in 0..FINISH {
            a[j] = prior[j] + sums[j];
        }
    }
    S::from_f32_slice(&a, dst);
}

/// Element-wise bias add on stored values: `y[j] = fl(y[j] + b[j % b.len()])`, one rounding
/// per element, `b` repeated over `y`. Use it when the synaptic sum has already been rounded
/// to storage (the accumulate kernels take the bias into the accumulator instead). For a conv
/// output, whose bias is per channel, pass the bias expanded to one value per element.
pub fn bias_add<S: Storage>(y: &mut [S], bias: &[S]) {
    assert!(!bias.is_empty() && y.len() % bias.len() == 0, "bias shape");
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = crate::fp::add(*v, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spikes::SpikeBits;
    use half::f16;

    fn h(v: &[f32]) -> Vec<f16> {
        v.iter().map(|&x| f16::from_f32(x)).collect()
    }

    #[test]
    fn linear_spikes_selects_weights_and_counts() {
        // W = [[1,2,3],[4,5,6]], spikes 1 0 1.
        let w = h(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = SpikeBits::from_bools(&[true, false, true]);
        let mut out = vec![f16::ZERO; 2];
        let mut ops = OpCount::default();
        linear_forward(Accum::F32, &w, Some(&h(&[0.5, -1.0])), Input::Spikes(s.slice(0, 3)), &mut out, &mut ops);
        assert_eq!(out, h(&[4.5, 9.0]));
        assert_eq!(ops, OpCount { executed: 4, skipped: 2 });
    }

    #[test]
    fn dense_input_multiplies_and_skips_zeros() {
        let w = [0.5f32, 2.0, 4.0];
        let mut out = [0.0f32];
        let mut ops = OpCount::default();
        linear_forward(Accum::F32, &w, None, Input::Dense(&[3.0, 0.0, 0.25]), &mut out, &mut ops);
        assert_eq!(out, [2.5]);
        assert_eq!(ops, OpCount { executed: 2, skipped: 1 });
    }

    #[test]
    fn f16_accumulator_rounds_each_add() {
        // 2048 + 1 + 1: an f32 accumulator keeps 2050, an f16 one ties to even twice.
        let w = h(&[2048.0, 1.0, 1.0]);
        let s = SpikeBits::from_bools(&[true, true, true]);
        let mut out = [f16::ZERO];
        let mut ops = OpCount::default();
        linear_forward(Accum::F32, &w, None, Input::Spikes(s.slice(0, 3)), &mut out, &mut ops);
        assert_eq!(out[0].to_f32(), 2050.0);
        linear_forward(Accum::Storage, &w, None, Input::Spikes(s.slice(0, 3)), &mut out, &mut ops);
        assert_eq!(out[0].to_f32(), 2048.0);
    }

    /// [`add_rounded`] against storing the sums and adding them, for random values with
    /// zeros of both signs, infinities, NaN and values f16 cannot hold: the same bits.
    #[test]
    fn add_rounded_is_store_then_add() {
        let mut rng = crate::data::rng::Rng::new(5);
        for case in 0..50 {
            let n = rng.below(700) as usize;
            let acc: Vec<f32> = (0..n)
                .map(|_| {
                    let v = crate::kernels::conv_cases::values::<f32>(&mut rng, 1, 0.2, true)[0];
                    if rng.bernoulli(0.1) { v * 65536.0 } else { v }
                })
                .collect();
            let dst: Vec<f16> = crate::kernels::conv_cases::values(&mut rng, n, 0.2, true);
            let mut tmp = vec![f16::ZERO; n];
            crate::fp::store(&acc, &mut tmp);
            let mut want = dst.clone();
            crate::fp::add_assign_slice(&mut want, &tmp);
            let (mut got, mut acc) = (dst, acc);
            add_rounded(&mut got, &mut acc);
            let bits = |v: &[f16]| crate::kernels::conv_cases::bits(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>());
            assert_eq!(bits(&got), bits(&want), "case {case}");
        }
    }

    /// [`round_into`] against its definition one element at a time (the bias add, then
    /// storing, or storing and adding to the output), for rows shorter than a block, whole
    /// blocks and blocks with a tail, with and without bias and add, both accumulator
    /// modes and both storage types, on values with zeros of both signs, infinities, NaN
    /// and values f16 cannot hold: the same bits.
    #[test]
    fn round_into_is_bias_then_store_or_add() {
        let mut rng = crate::data::rng::Rng::new(8);
        for case in 0..400 {
            let n = rng.below(70) as usize;
            check_round_into::<f16>(&mut rng, n, case);
            check_round_into::<f32>(&mut rng, n, case);
        }
    }

    fn check_round_into<S: Storage>(rng: &mut crate::data::rng::Rng, n: usize, case: usize) {
        use crate::kernels::conv_cases::{bits, values};
        let src: Vec<f32> = values::<f32>(rng, n, 0.2, true)
            .into_iter()
            .map(|v| if rng.bernoulli(0.1) { v * 65536.0 } else { v })
            .collect();
        let dst: Vec<S> = values(rng, n, 0.2, true);
        let bias = rng.bernoulli(0.5).then(|| values::<S>(rng, 1, 0.2, true)[0].to_f32());
        for mode in [Accum::F32, Accum::Storage] {
            for add in [false, true] {
                let want: Vec<S> = src
                    .iter()
                    .zip(&dst)
                    .map(|(&a, &d)| {
                        let a = bias.map_or(a, |b| acc_add::<S>(a, b, mode));
                        if add { crate::fp::add(d, S::from_f32(a)) } else { S::from_f32(a) }
                    })
                    .collect();
                let mut got = dst.clone();
                round_into(&mut got, &src, Finish { mode, bias, add });
                let wide = |v: &[S]| bits(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>());
                assert_eq!(wide(&got), wide(&want), "case {case} {} n {n} {mode:?} add {add} bias {bias:?}", S::NAME);
            }
        }
    }

    #[test]
    fn conv_matches_direct_cross_correlation() {
        // 1 channel 3x3 input, 2x2 kernel, stride 1, pad 1 → 4x4 output.
        let shape = Conv2dShape { cin: 1, cout: 1, h: 3, w: 3, kh: 2, kw: 2, stride: 1, pad: 1 };
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let w = [1.0f32, 10.0, 100.0, 1000.0];
        let mut out = vec![0.0f32; 16];
        let mut ops = OpCount::default();
        conv2d_forward(Accum::F32, &shape, &w, None, Input::Dense(&x), &mut out, &mut ops);
        // Output (1,1) reads x[0..2,0..2] = 1 2 / 4 5.
        assert_eq!(out[5], 1.0 + 20.0 + 400.0 + 5000.0);
        // Output (0,0) reads only x[0,0] through tap (1,1).
        assert_eq!(out[0], 1000.0);
        assert_eq!(ops.executed, 36);
        assert_eq!(ops.skipped, 0);
    }
}
