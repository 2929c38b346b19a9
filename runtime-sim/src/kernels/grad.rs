//! Backward kernels: the gradient soma (reverse time), error propagation through the
//! transposed weights, and weight and bias gradients.
//!
//! Gradient soma, one timestep, t from T−1 down to 0, with gV = 0 at T−1 (README §3):
//!
//! ```text
//! g    = fl(surrogate'(fl(H−θ)))            derivative in f32, rounded once
//! dVdH = hard: (1−S) [+ (v_reset − H)·g if not detached]
//!        soft: 1     [− θ·g             if not detached]
//! gH   = gS·g + gV·dVdH                     one rounding per op
//! gV  ← β·gH                                (dL/dV[t−1])
//! ```
//!
//! Error propagation and weight gradients are accumulate-engine work: they skip zero errors
//! (sparse with a windowed surrogate) and zero input spikes, count executed against skipped
//! operations, and sum in the accumulator width of [`Accum`]. Weight and bias gradients
//! accumulate into caller-owned f32 accumulators over all rows (T·B) and are rounded once
//! with [`crate::fp::store`].

use super::accumulate::{Conv2dShape, add_rounded};
use super::soma::{LifParams, Reset};
use super::{ConvScratch, conv_input_grad, conv_weight_grad, correlate};
use super::{Input, OpCount};
use crate::fp::{Accum, Storage, acc_add, acc_mac, add, axpy, mul, store, sub};
use crate::spikes::SpikeSlice;

/// One gradient-soma timestep of a LIF layer. `gv` holds `dL/dV[t]` on entry (zero at the
/// last step) and `dL/dV[t−1]` on exit; `gh` receives `dL/dH[t]` (= `dL/dX[t]`).
pub fn lif_backward_step<S: Storage>(
    p: &LifParams,
    grad_s: &[S],
    h: &[S],
    spikes: SpikeSlice<'_>,
    gv: &mut [S],
    gh: &mut [S],
) {
    let n = grad_s.len();
    assert!(h.len() == n && spikes.len() == n && gv.len() == n && gh.len() == n, "lif lengths");
    let thr = S::from_f32(p.threshold);
    let beta = S::from_f32(p.beta);
    let one = S::from_f32(1.0);
    for i in 0..n {
        let sg = S::from_f32(p.surrogate.grad(sub(h[i], thr).to_f32()));
        let dvdh = match p.reset {
            Reset::Hard { v_reset } => {
                let keep = if spikes.get(i) { S::default() } else { one };
                if p.detach_reset { keep } else { add(keep, mul(sub(S::from_f32(v_reset), h[i]), sg)) }
            }
            Reset::Soft if p.detach_reset => one,
            Reset::Soft => sub(one, mul(thr, sg)),
        };
        let g = add(mul(grad_s[i], sg), mul(gv[i], dvdh));
        gh[i] = g;
        gv[i] = mul(beta, g);
    }
}

/// One backward timestep of the readout: `gu = g + β·carry`, then `carry = gu`. `carry`
/// holds dL/dU[t+1] on entry (zero at the last step).
pub fn readout_backward_step<S: Storage>(beta: f32, grad: &[S], carry: &mut [S], gu: &mut [S]) {
    assert!(grad.len() == carry.len() && grad.len() == gu.len(), "readout lengths");
    let beta = S::from_f32(beta);
    for i in 0..grad.len() {
        let g = add(grad[i], mul(beta, carry[i]));
        gu[i] = g;
        carry[i] = g;
    }
}

/// fc error propagation for one row: `gin = gout·W` (W `[gout.len(), gin.len()]`).
/// `acc` is the engine's partial-sum buffer (length `gin.len()`); zero errors are skipped.
pub fn linear_backward_input<S: Storage>(
    mode: Accum,
    weight: &[S],
    gout: &[S],
    gin: &mut [S],
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    let n_in = gin.len();
    assert_eq!(weight.len(), gout.len() * n_in, "fc weight shape");
    assert_eq!(acc.len(), n_in, "partial-sum buffer");
    acc.fill(0.0);
    for (j, &g) in gout.iter().enumerate() {
        let g = g.to_f32();
        if g == 0.0 {
            ops.skipped += n_in as u64;
            continue;
        }
        for (a, w) in acc.iter_mut().zip(&weight[j * n_in..(j + 1) * n_in]) {
            *a = acc_mac::<S>(*a, g, w.to_f32(), mode);
        }
        ops.executed += n_in as u64;
    }
    store(acc, gin);
}

/// fc weight gradient of one row, accumulated: `acc[j,i] += gout[j]·x[i]` (`acc` of shape
/// `[gout.len(), input.len()]`). Zero errors and zero inputs are skipped.
pub fn linear_weight_grad<S: Storage>(
    mode: Accum,
    gout: &[S],
    input: Input<'_, S>,
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    let n_in = input.len();
    assert_eq!(acc.len(), gout.len() * n_in, "fc weight-gradient shape");
    let mut done = 0u64;
    for (j, &g) in gout.iter().enumerate() {
        let g = g.to_f32();
        if g == 0.0 {
            continue;
        }
        let row = &mut acc[j * n_in..(j + 1) * n_in];
        done += input.for_each_nonzero(|i, x| row[i] = acc_mac::<S>(row[i], g, x, mode)) as u64;
    }
    ops.executed += done;
    ops.skipped += (gout.len() * n_in) as u64 - done;
}

/// Bias gradient of one row, accumulated: `acc[j] += Σ_{p} gout[j·plane + p]` where `plane`
/// is 1 for fc and `oh·ow` for conv.
pub fn bias_grad<S: Storage>(mode: Accum, gout: &[S], plane: usize, acc: &mut [f32]) {
    assert_eq!(gout.len(), acc.len() * plane, "bias-gradient shape");
    for (a, g) in acc.iter_mut().zip(gout.chunks_exact(plane)) {
        for &v in g {
            *a = acc_add::<S>(*a, v.to_f32(), mode);
        }
    }
}

/// conv error propagation for one row (transposed convolution): `gout` `[cout,oh,ow]`,
/// `gin` `[cin,h,w]`, `acc` a partial-sum buffer of `gin.len()`. Zero errors are skipped.
///
/// Every input gradient sums its terms in (ky, kx, co) order, which is PyTorch's CPU order;
/// with f32 accumulators that reproduces the golden oracle's value even where the exact sum
/// lies next to an f16 rounding boundary. Dense errors of a stride-1 conv with finite
/// weights go through `conv_input_grad`, which keeps blocks of
/// accumulators in registers; everything else through `conv2d_backward_input_general`.
pub fn conv2d_backward_input<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    gin: &mut [S],
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    conv2d_backward_input_with(mode, shape, weight, gout, (gin, acc), Some(ops), &mut ConvScratch::default());
}

/// [`conv2d_backward_input`] with working memory the caller keeps across calls; `ops` is
/// `None` when the caller has the counts already (`conv_counts`), which the fast kernel
/// then does not compute again.
pub(crate) fn conv2d_backward_input_with<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    (gin, acc): (&mut [S], &mut [f32]),
    ops: Option<&mut OpCount>,
    scratch: &mut ConvScratch,
) {
    assert_eq!(gin.len(), acc.len(), "conv input-gradient shape");
    conv2d_backward_input_sums(mode, shape, weight, gout, acc, ops, scratch);
    store(acc, gin);
}

/// [`conv2d_backward_input_with`] without the rounding to storage: only the unrounded sums
/// into `acc`, for a caller that adds them into a stored gradient (see
/// [`add_rounded`]). `ops` as there.
pub(crate) fn conv2d_backward_input_sums<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    acc: &mut [f32],
    ops: Option<&mut OpCount>,
    scratch: &mut ConvScratch,
) {
    assert_eq!(acc.len(), shape.in_len(), "conv input-gradient shape");
    if let Some(counted) = fast_input_grad(shape, weight, gout, ops.is_some()) {
        let parallel = correlate::worth_splitting(conv_input_grad::work(shape));
        conv_input_grad::backward_input(mode, shape, weight, gout, acc, scratch, parallel);
        if let Some(ops) = ops {
            ops.merge(counted);
        }
    } else {
        // The general kernels count as they go, at little cost.
        conv2d_backward_input_general(mode, shape, weight, gout, acc, ops.unwrap_or(&mut OpCount::default()));
    }
}

/// [`conv2d_backward_input_with`] for a caller that keeps only the stored gradient: the sums
/// rounded into `gin`, or with `add` rounded and added to what `gin` holds (one more
/// rounding each, as [`add_rounded`] does). On the fast path
/// they go straight from the correlation into `gin`, with no partial-sum buffer between.
/// `ops` as there.
pub(crate) fn conv2d_backward_input_into<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    (gin, add): (&mut [S], bool),
    ops: Option<&mut OpCount>,
    scratch: &mut ConvScratch,
) {
    assert_eq!(gin.len(), shape.in_len(), "conv input-gradient shape");
    if let Some(counted) = fast_input_grad(shape, weight, gout, ops.is_some()) {
        let parallel = correlate::worth_splitting(conv_input_grad::work(shape));
        conv_input_grad::backward_input_into(mode, shape, weight, gout, (gin, add), scratch, parallel);
        if let Some(ops) = ops {
            ops.merge(counted);
        }
        return;
    }
    // The general kernel writes every partial sum, so the buffer needs no clearing.
    let mut acc = std::mem::take(&mut scratch.sums);
    if acc.len() < gin.len() {
        acc.resize(gin.len(), 0.0);
    }
    let sums = &mut acc[..gin.len()];
    conv2d_backward_input_general(mode, shape, weight, gout, sums, ops.unwrap_or(&mut OpCount::default()));
    if add {
        add_rounded(gin, sums);
    } else {
        store(sums, gin);
    }
    scratch.sums = acc;
}

/// Whether the fast kernel of `conv_input_grad` takes the conv: its conditions hold
/// ([`conv_input_grad::applies`]) and at least a quarter of the errors are non-zero (below
/// that the scatter of the general kernel does less work). If so, the operations as the
/// general kernel counts them when `count` asks for them (all zero otherwise), found in the
/// same pass over the errors as the non-zero ones.
fn fast_input_grad<S: Storage>(shape: &Conv2dShape, weight: &[S], gout: &[S], count: bool) -> Option<OpCount> {
    assert_eq!(weight.len(), shape.weight_len(), "conv weight shape");
    assert_eq!(gout.len(), shape.out_len(), "conv gradient shape");
    let (nonzero, ops) = conv_input_grad::count_errors(shape, gout, count);
    (4 * nonzero >= gout.len() && conv_input_grad::applies(shape, weight)).then_some(ops)
}

/// [`conv2d_backward_input`] for any geometry and any values, into `acc`: along rows for
/// dense errors of a stride-1 conv, otherwise scattering each non-zero error.
///
/// The scatter is tap-major: for each kernel tap (ky, kx), each output channel scatters its
/// shifted error plane, so every input gradient receives its terms in (ky, kx, co) order.
pub(crate) fn conv2d_backward_input_general<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    let nonzero = gout.iter().filter(|g| g.to_f32() != 0.0).count();
    // The row kernel multiplies zero errors too, which only finite weights allow.
    if shape.stride == 1 && 4 * nonzero >= gout.len() && super::conv_forward::all_finite(weight) {
        conv2d_backward_input_rows(mode, shape, weight, gout, acc, ops);
        return;
    }
    let (cin, plane) = (shape.cin, shape.h * shape.w);
    // Channel-last accumulators and weights ([iy][ix][ci], [co][ky][kx][ci]) make the
    // innermost loop, over input channels, contiguous; each accumulator still receives its
    // terms in (ky, kx, co) order.
    let taps = shape.kh * shape.kw;
    let mut wt = vec![0.0f32; weight.len()];
    for (co_ci, filter) in weight.chunks_exact(taps.max(1)).enumerate() {
        let (co, ci) = (co_ci / cin.max(1), co_ci % cin.max(1));
        for (tap, w) in filter.iter().enumerate() {
            wt[(co * taps + tap) * cin + ci] = w.to_f32();
        }
    }
    let mut last = vec![0.0f32; acc.len()];
    // The non-zero errors, in (co, oy, ox) order: error maps are mostly zeros.
    let (oh, ow) = (shape.oh(), shape.ow());
    let mut nonzero: Vec<(usize, usize, usize, f32)> = Vec::new();
    for (r, row) in gout.chunks_exact(ow.max(1)).enumerate() {
        let (co, oy) = (r / oh.max(1), r % oh.max(1));
        for (ox, g) in row.iter().enumerate() {
            let g = g.to_f32();
            if g != 0.0 {
                nonzero.push((co, oy, ox, g));
            }
        }
    }
    let (iys, ixs) = (input_coords(shape, oh, shape.kh, shape.h), input_coords(shape, ow, shape.kw, shape.w));
    let mut executed = 0u64;
    for ky in 0..shape.kh {
        for kx in 0..shape.kw {
            for &(co, oy, ox, g) in &nonzero {
                let (Some(iy), Some(ix)) = (iys[oy * shape.kh + ky], ixs[ox * shape.kw + kx]) else {
                    continue;
                };
                let w = &wt[(co * taps + ky * shape.kw + kx) * cin..][..cin];
                // `acc_mac(a, g, w)` multiplies g by w, the same product as w by g.
                axpy::<S>(&mut last[(iy * shape.w + ix) * cin..][..cin], w, g, mode);
                executed += cin as u64;
            }
        }
    }
    let total: u64 =
        (0..oh * ow).map(|p| (shape.taps_in_bounds(p / ow, p % ow) * cin) as u64).sum::<u64>() * shape.cout as u64;
    ops.executed += executed;
    ops.skipped += total - executed;
    for (ci, plane_acc) in acc.chunks_exact_mut(plane.max(1)).enumerate() {
        for (p, a) in plane_acc.iter_mut().enumerate() {
            *a = last[p * cin + ci];
        }
    }
}

/// [`conv2d_backward_input`] for stride 1 and dense errors, into `acc` (`[cin,h,w]`).
///
/// For one tap and one output channel, each input gradient receives exactly one term, so
/// looping over taps, then output channels, keeps every accumulator's (ky, kx, co) order
/// while the innermost loop runs along an output row, which vectorises. Zero errors are
/// multiplied too: with finite weights their products are ±0, which leave an accumulator
/// as it is (it starts at +0 and a sum of non-zero terms is never −0); only the counts skip
/// them.
fn conv2d_backward_input_rows<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    weight: &[S],
    gout: &[S],
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    let (cin, cout, h, w) = (shape.cin, shape.cout, shape.h, shape.w);
    let (oh, ow, taps) = (shape.oh(), shape.ow(), shape.kh * shape.kw);
    let mut g = vec![0.0f32; gout.len()];
    S::to_f32_slice(gout, &mut g);
    acc.fill(0.0);
    let mut executed = 0u64;
    for ky in 0..shape.kh {
        for kx in 0..shape.kw {
            // Output columns whose input column `ox + kx − pad` lies inside the map.
            let ox0 = shape.pad.saturating_sub(kx);
            let ox1 = ow.min((w + shape.pad).saturating_sub(kx));
            if ox0 >= ox1 {
                continue;
            }
            let ix0 = ox0 + kx - shape.pad;
            for co in 0..cout {
                for oy in 0..oh {
                    let Some(iy) = shape.input_coord(oy, ky, h) else { continue };
                    let grow = &g[(co * oh + oy) * ow..][ox0..ox1];
                    executed += (grow.iter().filter(|v| **v != 0.0).count() * cin) as u64;
                    for ci in 0..cin {
                        let wv = weight[(co * cin + ci) * taps + ky * shape.kw + kx].to_f32();
                        let a = &mut acc[(ci * h + iy) * w + ix0..][..ox1 - ox0];
                        axpy::<S>(a, grow, wv, mode);
                    }
                }
            }
        }
    }
    let total: u64 =
        (0..oh * ow).map(|p| (shape.taps_in_bounds(p / ow, p % ow) * cin) as u64).sum::<u64>() * cout as u64;
    ops.executed += executed;
    ops.skipped += total - executed;
}

/// conv weight gradient of one row, accumulated: `acc[co,ci,ky,kx] += Σ_{oy,ox}
/// gout[co,oy,ox]·x[ci,iy,ix]`. Zero errors and zero inputs are skipped.
///
/// Each accumulator receives its terms in increasing output position, as the direct loop
/// would. A stride-1 conv whose accumulators and inputs allow it goes through
/// `conv_weight_grad`, which keeps a channel's accumulators in
/// registers; everything else through `conv2d_weight_grad_general`.
pub fn conv2d_weight_grad<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    gout: &[S],
    input: Input<'_, S>,
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    conv2d_weight_grad_with(mode, shape, gout, input, acc, Some(ops), &mut ConvScratch::default());
}

/// [`conv2d_weight_grad`] with working memory the caller keeps across calls; `ops` is
/// `None` when the caller has the counts already (`conv_counts`), which the fast kernel
/// then does not compute again.
pub(crate) fn conv2d_weight_grad_with<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    gout: &[S],
    input: Input<'_, S>,
    acc: &mut [f32],
    ops: Option<&mut OpCount>,
    scratch: &mut ConvScratch,
) {
    assert_eq!(gout.len(), shape.out_len(), "conv gradient shape");
    assert_eq!(input.len(), shape.in_len(), "conv input shape");
    assert_eq!(acc.len(), shape.weight_len(), "conv weight-gradient shape");
    if conv_weight_grad::applies(shape, &input, acc, mode) {
        let counted = conv_weight_grad::weight_grad(mode, shape, gout, &input, acc, scratch, ops.is_some());
        if let (Some(ops), Some(counted)) = (ops, counted) {
            ops.merge(counted);
        }
    } else {
        // The general kernel counts as it goes, at little cost.
        conv2d_weight_grad_general(mode, shape, gout, input, acc, ops.unwrap_or(&mut OpCount::default()));
    }
}

/// [`conv2d_weight_grad`] for any geometry and any values.
///
/// The work is organised around the non-zero inputs (spike maps are mostly zeros):
/// for each output position and tap, every non-zero input channel adds the position's
/// error column (all output channels, channel-last) to its accumulators. The terms this
/// adds and the direct loop skips are zero errors times an input, and the direct loop adds
/// zero inputs times an error; both are ±0, which leave an accumulator as it is (they
/// start at +0 and a sum of non-zero terms is never −0).
pub(crate) fn conv2d_weight_grad_general<S: Storage>(
    mode: Accum,
    shape: &Conv2dShape,
    gout: &[S],
    input: Input<'_, S>,
    acc: &mut [f32],
    ops: &mut OpCount,
) {
    let (oh, ow, cin, cout) = (shape.oh(), shape.ow(), shape.cin, shape.cout);
    let taps = shape.kh * shape.kw;
    let inputs = NonzeroByPosition::new(&input, shape.h * shape.w);
    // Error columns `[oy][ox][co]` and accumulators `[ky][kx][ci][co]`, both channel-last.
    let mut cols = vec![0.0f32; gout.len()];
    for (co, plane) in gout.chunks_exact((oh * ow).max(1)).enumerate() {
        for (o, g) in plane.iter().enumerate() {
            cols[o * cout + co] = g.to_f32();
        }
    }
    let mut at = vec![0.0f32; acc.len()];
    let index = |co: usize, ci: usize, tap: usize| (co * cin + ci) * taps + tap;
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..taps {
                at[(tap * cin + ci) * cout + co] = acc[index(co, ci, tap)];
            }
        }
    }
    let (iys, ixs) = (input_coords(shape, oh, shape.kh, shape.h), input_coords(shape, ow, shape.kw, shape.w));
    for o in 0..oh * ow {
        let col = &cols[o * cout..][..cout];
        let errors = col.iter().filter(|g| **g != 0.0).count();
        let (oy, ox) = (o / ow, o % ow);
        for (ky, iy) in iys[oy * shape.kh..][..shape.kh].iter().enumerate() {
            let Some(iy) = *iy else { continue };
            for (kx, ix) in ixs[ox * shape.kw..][..shape.kw].iter().enumerate() {
                let Some(ix) = *ix else { continue };
                let pos = iy * shape.w + ix;
                let nonzero = inputs.at(pos);
                ops.executed += (errors * nonzero.len()) as u64;
                ops.skipped += (errors * (cin - nonzero.len()) + (cout - errors) * cin) as u64;
                if errors == 0 {
                    continue;
                }
                let tap = ky * shape.kw + kx;
                for &(ci, x) in nonzero {
                    add_nonzero_errors::<S>(&mut at[(tap * cin + ci) * cout..][..cout], col, x, mode);
                }
            }
        }
    }
    for co in 0..cout {
        for ci in 0..cin {
            for tap in 0..taps {
                acc[index(co, ci, tap)] = at[(tap * cin + ci) * cout + co];
            }
        }
    }
}

/// Along one axis, the input coordinate that output coordinate `o < out` reads through tap
/// `t < k`, at `o·k + t` (`None` where it reads padding): the general kernels look these
/// up instead of computing them, with a division at strides above 1, for every term.
fn input_coords(shape: &Conv2dShape, out: usize, k: usize, size: usize) -> Vec<Option<usize>> {
    (0..out).flat_map(|o| (0..k).map(move |t| shape.input_coord(o, t, size))).collect()
}

/// `acc[co] += errors[co]·x` for the non-zero errors only: the engine skips a pair whose
/// error is zero, and adding its product would not always leave the accumulator as it is
/// (zero times an infinite or NaN input is NaN, and +0 turns an accumulator of −0 into
/// +0). A select rather than a branch, so that the loop stays vectorised.
fn add_nonzero_errors<S: Storage>(acc: &mut [f32], errors: &[f32], x: f32, mode: Accum) {
    for (a, &g) in acc.iter_mut().zip(errors) {
        let sum = acc_mac::<S>(*a, g, x, mode);
        *a = if g != 0.0 { sum } else { *a };
    }
}

/// Calls `f(channel, position, value)` for every non-zero element of a `[c][positions]`
/// input, in order, walking the planes alongside the increasing indices instead of
/// dividing each one.
fn for_each_nonzero_in_planes<S: Storage>(
    input: &Input<'_, S>,
    positions: usize,
    mut f: impl FnMut(usize, usize, f32),
) {
    let (mut c, mut start) = (0usize, 0usize);
    input.for_each_nonzero(|i, v| {
        while i >= start + positions {
            (c, start) = (c + 1, start + positions);
        }
        f(c, i - start, v);
    });
}

/// The non-zero elements of a `[c][positions]` input, grouped by position in increasing
/// channel order: `(channel, value)`.
struct NonzeroByPosition {
    starts: Vec<usize>,
    entries: Vec<(usize, f32)>,
}

impl NonzeroByPosition {
    fn new<S: Storage>(input: &Input<'_, S>, positions: usize) -> Self {
        let mut starts = vec![0usize; positions + 1];
        for_each_nonzero_in_planes(input, positions, |_, p, _| starts[p + 1] += 1);
        for p in 0..positions {
            starts[p + 1] += starts[p];
        }
        let mut next = starts.clone();
        let mut entries = vec![(0usize, 0.0f32); starts[positions]];
        // The input is channel-major, so each position's entries arrive in channel order.
        for_each_nonzero_in_planes(input, positions, |c, p, v| {
            entries[next[p]] = (c, v);
            next[p] += 1;
        });
        NonzeroByPosition { starts, entries }
    }

    fn at(&self, pos: usize) -> &[(usize, f32)] {
        &self.entries[self.starts[pos]..self.starts[pos + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::soma::Surrogate;
    use crate::spikes::SpikeBits;

    #[test]
    fn linear_backward_is_transposed_matvec() {
        // W = [[1,2,3],[4,5,6]], g = [0, 2] → gin = [8, 10, 12], 3 adds skipped.
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut gin = [0.0f32; 3];
        let mut acc = [0.0f32; 3];
        let mut ops = OpCount::default();
        linear_backward_input(Accum::F32, &w, &[0.0, 2.0], &mut gin, &mut acc, &mut ops);
        assert_eq!(gin, [8.0, 10.0, 12.0]);
        assert_eq!(ops, OpCount { executed: 3, skipped: 3 });
    }

    #[test]
    fn weight_grad_is_outer_product_over_nonzeros() {
        let s = SpikeBits::from_bools(&[true, false, true]);
        let mut acc = [0.0f32; 6];
        let mut ops = OpCount::default();
        linear_weight_grad(Accum::F32, &[0.5f32, 0.0], Input::Spikes(s.slice(0, 3)), &mut acc, &mut ops);
        assert_eq!(acc, [0.5, 0.0, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(ops, OpCount { executed: 2, skipped: 4 });
    }

    /// A strided, padded conv whose backward kernels are checked against direct sums over
    /// every (output, tap) pair.
    fn strided() -> (Conv2dShape, Vec<f32>, Vec<f32>, Vec<f32>) {
        let shape = Conv2dShape { cin: 2, cout: 3, h: 5, w: 4, kh: 3, kw: 2, stride: 2, pad: 1 };
        // Small integers (and some zeros) keep every sum exact in f32.
        let w: Vec<f32> = (0..shape.weight_len()).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let x: Vec<f32> = (0..shape.in_len()).map(|i| ((i * 3) % 5) as f32 - 1.0).collect();
        let g: Vec<f32> = (0..shape.out_len()).map(|i| ((i * 5) % 3) as f32 - 1.0).collect();
        (shape, w, x, g)
    }

    /// Calls `f(co, ci, ky, kx, out_index, in_index)` for every in-bounds (output, tap) pair.
    fn pairs(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for co in 0..s.cout {
            for (oy, ox) in (0..s.oh()).flat_map(|y| (0..s.ow()).map(move |x| (y, x))) {
                for (ci, ky, kx) in
                    (0..s.cin).flat_map(|c| (0..s.kh).flat_map(move |y| (0..s.kw).map(move |x| (c, y, x))))
                {
                    let iy = (oy * s.stride + ky).checked_sub(s.pad).filter(|&v| v < s.h);
                    let ix = (ox * s.stride + kx).checked_sub(s.pad).filter(|&v| v < s.w);
                    if let (Some(iy), Some(ix)) = (iy, ix) {
                        f(co, ci, ky, kx, (co * s.oh() + oy) * s.ow() + ox, (ci * s.h + iy) * s.w + ix);
                    }
                }
            }
        }
    }

    /// With inexact values the order of the terms matters: the weight gradient must add
    /// them per accumulator in increasing output position, as the direct loop does, and
    /// count as executed exactly the (non-zero error, non-zero input) pairs.
    #[test]
    fn conv_weight_grad_keeps_the_direct_order_and_counts() {
        use half::f16;
        let shape = Conv2dShape { cin: 3, cout: 5, h: 6, w: 5, kh: 3, kw: 3, stride: 1, pad: 1 };
        let g: Vec<f16> = (0..shape.out_len())
            .map(|i| f16::from_f32(if i % 4 == 1 { 0.0 } else { ((i * 37 % 101) as f32 - 50.0) / 77.0 }))
            .collect();
        let spikes = SpikeBits::from_fn(shape.in_len(), |i| i % 3 == 0 || i % 7 == 2);
        let dense: Vec<f16> =
            (0..shape.in_len()).map(|i| f16::from_f32(if i % 5 == 0 { 0.0 } else { 0.3 - i as f32 / 41.0 })).collect();
        for mode in [Accum::F32, Accum::Storage] {
            for input in [Input::Spikes(spikes.slice(0, shape.in_len())), Input::Dense(&dense)] {
                // Accumulators of a storage-width datapath hold storage values.
                let start: Vec<f32> = (0..shape.weight_len()).map(|i| f16::from_f32(i as f32 / 9.0).to_f32()).collect();
                let (mut want, mut want_ops) = (start.clone(), OpCount::default());
                for co in 0..shape.cout {
                    for o in 0..shape.oh() * shape.ow() {
                        let gv = g[co * shape.oh() * shape.ow() + o].to_f32();
                        for ci in 0..shape.cin {
                            for (ky, kx) in (0..3).flat_map(|y| (0..3).map(move |x| (y, x))) {
                                let iy = shape.input_coord(o / shape.ow(), ky, shape.h);
                                let ix = shape.input_coord(o % shape.ow(), kx, shape.w);
                                let (Some(iy), Some(ix)) = (iy, ix) else { continue };
                                let xv = input.nonzero((ci * shape.h + iy) * shape.w + ix);
                                match (gv != 0.0, xv) {
                                    (true, Some(xv)) => {
                                        let wi = ((co * shape.cin + ci) * 3 + ky) * 3 + kx;
                                        want[wi] = acc_mac::<f16>(want[wi], gv, xv, mode);
                                        want_ops.executed += 1;
                                    }
                                    _ => want_ops.skipped += 1,
                                }
                            }
                        }
                    }
                }
                let (mut got, mut ops) = (start.clone(), OpCount::default());
                conv2d_weight_grad(mode, &shape, &g, input, &mut got, &mut ops);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
                assert_eq!(ops, want_ops);
            }
        }
    }

    /// Both ways of propagating errors (row-wise for dense errors, per non-zero error for
    /// sparse ones) sum every input gradient in (ky, kx, co) order, as the direct loop does.
    #[test]
    fn conv_input_grad_keeps_the_direct_order_dense_or_sparse() {
        use half::f16;
        let shape = Conv2dShape { cin: 3, cout: 4, h: 6, w: 7, kh: 3, kw: 3, stride: 1, pad: 1 };
        let w: Vec<f16> =
            (0..shape.weight_len()).map(|i| f16::from_f32(((i * 53 % 97) as f32 - 48.0) / 61.0)).collect();
        for every in [1usize, 2, 9] {
            let g: Vec<f16> = (0..shape.out_len())
                .map(|i| f16::from_f32(if i % every != 0 { 0.0 } else { ((i * 37 % 101) as f32 - 50.0) / 77.0 }))
                .collect();
            for mode in [Accum::F32, Accum::Storage] {
                let (mut want, mut want_ops) = (vec![0.0f32; shape.in_len()], OpCount::default());
                for (ky, kx) in (0..3).flat_map(|y| (0..3).map(move |x| (y, x))) {
                    for co in 0..shape.cout {
                        for o in 0..shape.oh() * shape.ow() {
                            let iy = shape.input_coord(o / shape.ow(), ky, shape.h);
                            let ix = shape.input_coord(o % shape.ow(), kx, shape.w);
                            let (Some(iy), Some(ix)) = (iy, ix) else { continue };
                            let gv = g[co * shape.oh() * shape.ow() + o].to_f32();
                            for ci in 0..shape.cin {
                                if gv == 0.0 {
                                    want_ops.skipped += 1;
                                    continue;
                                }
                                let i = (ci * shape.h + iy) * shape.w + ix;
                                let wv = w[((co * shape.cin + ci) * 3 + ky) * 3 + kx].to_f32();
                                want[i] = acc_mac::<f16>(want[i], gv, wv, mode);
                                want_ops.executed += 1;
                            }
                        }
                    }
                }
                let (mut gin, mut acc, mut ops) =
                    (vec![f16::ZERO; shape.in_len()], vec![0.0f32; shape.in_len()], OpCount::default());
                conv2d_backward_input(mode, &shape, &w, &g, &mut gin, &mut acc, &mut ops);
                let want16: Vec<f16> = want.iter().map(|v| f16::from_f32(*v)).collect();
                assert_eq!(gin, want16, "errors every {every}, {mode:?}");
                assert_eq!(ops, want_ops);
            }
        }
    }

    #[test]
    fn strided_conv_backward_matches_direct_sums() {
        let (s, w, x, g) = strided();
        let (mut want_gin, mut want_dw) = (vec![0.0f32; s.in_len()], vec![0.0f32; s.weight_len()]);
        pairs(&s, |co, ci, ky, kx, o, i| {
            let wi = ((co * s.cin + ci) * s.kh + ky) * s.kw + kx;
            want_gin[i] += g[o] * w[wi];
            want_dw[wi] += g[o] * x[i];
        });
        let mut gin = vec![0.0f32; s.in_len()];
        let mut acc = vec![0.0f32; s.in_len()];
        let mut ops = OpCount::default();
        conv2d_backward_input(Accum::F32, &s, &w, &g, &mut gin, &mut acc, &mut ops);
        assert_eq!(gin, want_gin);
        let mut dw = vec![0.0f32; s.weight_len()];
        let mut wg = OpCount::default();
        conv2d_weight_grad(Accum::F32, &s, &g, Input::Dense(&x), &mut dw, &mut wg);
        assert_eq!(dw, want_dw);
        // Both kernels see every in-bounds (output, tap) pair once: error propagation
        // executes it when the error is non-zero, the weight gradient when the input is too.
        let (mut n, mut with_g, mut with_both) = (0u64, 0u64, 0u64);
        pairs(&s, |_, _, _, _, o, i| {
            n += 1;
            with_g += u64::from(g[o] != 0.0);
            with_both += u64::from(g[o] != 0.0 && x[i] != 0.0);
        });
        assert_eq!((ops.executed, ops.total()), (with_g, n));
        assert_eq!((wg.executed, wg.total()), (with_both, n));
        assert!(with_both < with_g && with_g < n, "the test data has zero errors and zero inputs");
    }

    #[test]
    fn hard_detached_soma_blocks_carry_after_spike() {
        let p = LifParams {
            beta: 0.5,
            threshold: 1.0,
            reset: Reset::Hard { v_reset: 0.0 },
            detach_reset: true,
            surrogate: Surrogate::Rect { width: 1.0 },
        };
        // H = 1.2 spiked (inside the window, g = 1); H = 3 did not matter.
        let s = SpikeBits::from_bools(&[true, false]);
        let mut gv = [4.0f32, 4.0];
        let mut gh = [0.0f32; 2];
        lif_backward_step(&p, &[1.0, 1.0], &[1.2, 0.2], s.slice(0, 2), &mut gv, &mut gh);
        // Spiked: gH = 1·1 + 4·0; not spiked, outside the window: gH = 0 + 4·1.
        assert_eq!(gh, [1.0, 4.0]);
        assert_eq!(gv, [0.5, 2.0]);
    }
}
