//! The general conv kernels against the direct loops of their definitions, on random
//! shapes of stride 1 and 2: the same bits in every output and the same operation counts.
//!
//! The general kernels are what the fast paths are held to (and what strided convs run),
//! so they are held here to the plainest statement of the chip's order of additions: the
//! forward conv adds each output's terms in (ci, ky, kx) order, error propagation each
//! input gradient's in (ky, kx, co) order, the weight gradient each weight's in increasing
//! output position; each skips the terms whose input (forward) or error (both backward
//! kernels) or either (weight gradient) is zero, and counts the in-bounds terms.

use super::accumulate::{Conv2dShape, conv2d_forward_general};
use super::conv_cases::{bits, ones, shape, values};
use super::grad::{conv2d_backward_input_general, conv2d_weight_grad_general};
use super::{Input, OpCount};
use crate::data::rng::Rng;
use crate::fp::{Accum, Storage, acc_add, acc_mac};
use crate::spikes::SpikeBits;
use half::f16;

/// Calls `f(co, ci, ky, kx, o, i)` for every in-bounds (output, tap) pair of `s`, output
/// channel outermost, then output position, input channel and tap.
fn pairs(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
    let (oh, ow) = (s.oh(), s.ow());
    for co in 0..s.cout {
        for o in 0..oh * ow {
            for ci in 0..s.cin {
                for ky in 0..s.kh {
                    for kx in 0..s.kw {
                        let iy = s.input_coord(o / ow, ky, s.h);
                        let ix = s.input_coord(o % ow, kx, s.w);
                        if let (Some(iy), Some(ix)) = (iy, ix) {
                            f(co, ci, ky, kx, o, (ci * s.h + iy) * s.w + ix);
                        }
                    }
                }
            }
        }
    }
}

/// Asserts that `got` and `want` have the same bits, naming the first element that differs.
fn same(got: &[f32], want: &[f32], what: &str) {
    let (g, w) = (bits(got), bits(want));
    if let Some(i) = (0..g.len().max(w.len())).find(|&i| g.get(i) != w.get(i)) {
        panic!("{what}: element {i} of {} is {:?}, want {:?}", g.len(), got.get(i), want.get(i));
    }
}

fn weight_index(s: &Conv2dShape, co: usize, ci: usize, ky: usize, kx: usize) -> usize {
    ((co * s.cin + ci) * s.kh + ky) * s.kw + kx
}

#[test]
fn general_kernels_follow_the_direct_loops() {
    let mut rng = Rng::new(83);
    let mut strided = 0;
    for case in 0..400 {
        let s = shape(&mut rng);
        strided += usize::from(s.stride > 1);
        check::<f16>(&mut rng, &s, case);
        check::<f32>(&mut rng, &s, case);
    }
    assert!(strided > 50, "only {strided} strided cases");
}

fn check<S: Storage>(rng: &mut Rng, s: &Conv2dShape, case: usize) {
    let special = rng.bernoulli(0.2);
    let density = [0.0, 0.1, 0.5, 1.0][rng.below(4) as usize];
    let weight: Vec<S> = values(rng, s.weight_len(), 0.1, special);
    let bias: Vec<S> = values(rng, s.cout, 0.2, special);
    let spikes = SpikeBits::from_nonzero(&ones::<f32>(rng, s.in_len(), density));
    let dense: Vec<S> = values(rng, s.in_len(), 1.0 - density, special);
    let zero_errors = [0.0, 0.5, 0.95][rng.below(3) as usize];
    let gout: Vec<S> = values(rng, s.out_len(), zero_errors, special);
    let mode = if rng.bernoulli(0.5) { Accum::F32 } else { Accum::Storage };
    let what = format!("case {case} {s:?} {} {mode:?}", S::NAME);
    for input in [Input::Spikes(spikes.slice(0, s.in_len())), Input::Dense(&dense)] {
        let with_bias = rng.bernoulli(0.5).then_some(&bias[..]);
        forward::<S>(mode, s, (&weight, with_bias), input, &what);
        weight_grad::<S>(mode, s, &gout, input, &what);
    }
    input_grad::<S>(mode, s, &weight, &gout, &what);
}

fn forward<S: Storage>(mode: Accum, s: &Conv2dShape, (w, bias): (&[S], Option<&[S]>), x: Input<'_, S>, what: &str) {
    let mut sums = vec![0.0f32; s.out_len()];
    let mut want_ops = OpCount::default();
    let plane = s.oh() * s.ow();
    // Output channel, position, then (ci, ky, kx): each output's terms in that order.
    pairs(s, |co, ci, ky, kx, o, i| match x.nonzero(i) {
        Some(v) => {
            let at = co * plane + o;
            sums[at] = acc_mac::<S>(sums[at], w[weight_index(s, co, ci, ky, kx)].to_f32(), v, mode);
            want_ops.executed += 1;
        }
        None => want_ops.skipped += 1,
    });
    let want: Vec<f32> = sums
        .iter()
        .enumerate()
        .map(|(at, &a)| {
            let a = bias.map_or(a, |b| acc_add::<S>(a, b[at / plane.max(1)].to_f32(), mode));
            S::from_f32(a).to_f32()
        })
        .collect();
    let (mut out, mut ops) = (vec![S::default(); s.out_len()], OpCount::default());
    conv2d_forward_general(mode, s, w, bias, x, &mut out, &mut ops);
    let got: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
    same(&got, &want, &format!("{what} forward"));
    assert_eq!(ops, want_ops, "{what} forward");
}

fn input_grad<S: Storage>(mode: Accum, s: &Conv2dShape, w: &[S], gout: &[S], what: &str) {
    let mut want = vec![0.0f32; s.in_len()];
    let mut want_ops = OpCount::default();
    let plane = s.oh() * s.ow();
    // Each input gradient's terms in (ky, kx, co) order.
    for ky in 0..s.kh {
        for kx in 0..s.kw {
            pairs(s, |co, ci, y, x, o, i| {
                if (y, x) != (ky, kx) {
                    return;
                }
                let g = gout[co * plane + o].to_f32();
                if g == 0.0 {
                    want_ops.skipped += 1;
                    return;
                }
                want[i] = acc_mac::<S>(want[i], w[weight_index(s, co, ci, ky, kx)].to_f32(), g, mode);
                want_ops.executed += 1;
            });
        }
    }
    let (mut got, mut ops) = (vec![f32::NAN; s.in_len()], OpCount::default());
    conv2d_backward_input_general(mode, s, w, gout, &mut got, &mut ops);
    same(&got, &want, &format!("{what} input gradient"));
    assert_eq!(ops, want_ops, "{what} input gradient");
}

fn weight_grad<S: Storage>(mode: Accum, s: &Conv2dShape, gout: &[S], x: Input<'_, S>, what: &str) {
    // Accumulators that start from earlier sums (values of the storage type, as a datapath
    // of that width holds them).
    let start: Vec<f32> = (0..s.weight_len()).map(|i| S::round(i as f32 / 7.0 - 1.0)).collect();
    let mut want = start.clone();
    let mut want_ops = OpCount::default();
    let plane = s.oh() * s.ow();
    // Each weight's terms in increasing output position.
    pairs(s, |co, ci, ky, kx, o, i| {
        let g = gout[co * plane + o].to_f32();
        match (g != 0.0, x.nonzero(i)) {
            (true, Some(v)) => {
                let at = weight_index(s, co, ci, ky, kx);
                want[at] = acc_mac::<S>(want[at], g, v, mode);
                want_ops.executed += 1;
            }
            _ => want_ops.skipped += 1,
        }
    });
    let (mut got, mut ops) = (start, OpCount::default());
    conv2d_weight_grad_general(mode, s, gout, x, &mut got, &mut ops);
    same(&got, &want, &format!("{what} weight gradient"));
    assert_eq!(ops, want_ops, "{what} weight gradient");
}
