//! The BP and WG instructions against the kernels called directly: the gradient soma (from
//! the rect mask and from H), error propagation with a nonzero bitmap, the weight and bias
//! gradient, and an SGD-with-momentum update on FP32 master weights.

use super::*;
use crate::fp::Accum;
use crate::kernels::Input;
use crate::kernels::OpCount;
use crate::kernels::accumulate::Conv2dShape;
use crate::kernels::grad::{
    bias_grad, conv2d_weight_grad, lif_backward_step, linear_backward_input, linear_weight_grad,
};
use crate::kernels::soma::{LifParams, Reset, Surrogate};
use crate::kernels::update::{Momentum, sgd_momentum};
use crate::spikes::SpikeBits;
use half::f16;
use isa::Buf;

const N: usize = 8;
const K: usize = 4;

const BACKWARD: &str = "
.core 0
.stream bp
    cfg.neuron slot=0 beta=0.75 theta=1 reset=hard detach=true sg=rect alpha=1
    dma.ld dst=bp.err[0:8] src=@0x0 rows=1 row=16 stride=16
    dma.ld dst=bp.psum[0:8] src=@0x10 rows=1 row=16 stride=16
    dma.ld dst=fp.spk[0:8] src=@0x20 rows=1 row=1 stride=1
    dma.ld dst=fp.mask[0:8] src=@0x21 rows=1 row=1 stride=1
    dma.ld dst=bp.vgrad[0:8] src=@0x30 rows=1 row=16 stride=16
    dma.ld dst=bp.vgrad[8:8] src=@0x30 rows=1 row=16 stride=16
    dma.ld dst=bp.w[0:32] src=@0x40 rows=1 row=64 stride=64
    bp.soma ds=bp.err[0:8] h=- mask=fp.mask[0:8] spk=fp.spk[0:8] dv=bp.vgrad[0:8] dh=bp.delta[0:8] nz=fp.mask[8:8] n=8 rows=1 cfg=0 fire=true
    bp.soma ds=bp.err[0:8] h=bp.psum[0:8] mask=- spk=fp.spk[0:8] dv=bp.vgrad[8:8] dh=bp.delta[8:8] nz=- n=8 rows=1 cfg=0 fire=true
    bp.linear err=bp.delta[0:8] w=bp.w[0:32] out=bp.psum[16:4] n=8 k=4 rows=1 err_stride=0 out_stride=0 acc=false nz=fp.mask[8:8]
    signal core=0 stream=wg tok=0
    halt
.stream wg
    cfg.opt slot=1 kind=sgd lr=0.125 m=0.9 beta2=0 eps=0 wd=0.01
    dma.ld dst=wg.spk[0:8] src=@0x22 rows=1 row=1 stride=1
    dma.ld dst=opt[0:32] src=@0x80 rows=1 row=128 stride=128
    fill dst=opt[32:32] value=0.5
    fill dst=wg.grad[0:40] value=0
    wait tok=0 n=1
    wg.linear spk=wg.spk[0:4] err=bp.delta[0:8] dw=wg.grad[0:32] db=wg.grad[32:8] k=4 n=8 rows=1 spk_stride=0 err_stride=0 skip=true nz=fp.mask[8:8]
    wg.update grad=wg.grad[0:32] master=opt[0:32] state=opt[32:32] w16=fp.w[0:32] n=32 cfg=1 scale=0.5 zero=false
    halt
";

fn h16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|x| f16::from_f32(*x)).collect()
}

struct Inputs {
    ds: Vec<f16>,
    h: Vec<f16>,
    spk: Vec<bool>,
    dv: Vec<f16>,
    w: Vec<f16>,
    x: Vec<bool>,
    master: Vec<f32>,
}

fn inputs() -> Inputs {
    let h = h16(&[0.2, 0.7, 1.2, 1.6, 0.45, 0.55, 1.49, -0.3]);
    Inputs {
        ds: h16(&[0.5, -0.25, 0.125, 1.0, -1.0, 0.75, 0.3, 0.1]),
        spk: h.iter().map(|v| v.to_f32() >= 1.0).collect(),
        h,
        dv: h16(&[0.1, 0.2, -0.3, 0.4, 0.0, -0.6, 0.7, 0.8]),
        w: h16(&(0..K * N).map(|i| (i as f32 - 13.0) / 17.0).collect::<Vec<_>>()),
        x: vec![true, false, true, true],
        master: (0..K * N).map(|i| (i as f32 - 9.0) / 21.0).collect(),
    }
}

fn backward_program(i: &Inputs) -> Program {
    let mut p = program(BACKWARD);
    let bytes = |v: &[f16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mask: Vec<bool> = i.h.iter().map(|v| (v.to_f32() - 1.0).abs() < 0.5).collect();
    data(&mut p, "ds", DataKind::Fp16, 0, bytes(&i.ds));
    data(&mut p, "h", DataKind::Fp16, 0x10, bytes(&i.h));
    data(&mut p, "bits", DataKind::Spikes, 0x20, [pack(&i.spk), pack(&mask), pack(&i.x)].concat());
    data(&mut p, "dv", DataKind::Fp16, 0x30, bytes(&i.dv));
    data(&mut p, "w", DataKind::Fp16, 0x40, bytes(&i.w));
    data(&mut p, "master", DataKind::Fp32, 0x80, i.master.iter().flat_map(|x| x.to_le_bytes()).collect());
    p
}

fn buf(m: &Machine, b: Buf, start: usize, len: usize) -> Vec<f32> {
    m.buffer(0, b, start, len).unwrap_or_default()
}

#[test]
fn backward_and_update_match_kernels() {
    let i = inputs();
    let (m, r) = run(&backward_program(&i));
    r.unwrap_or_else(|e| panic!("{e}"));
    let mode: Accum = m.precision().accum();
    let p = LifParams {
        beta: 0.75,
        threshold: 1.0,
        reset: Reset::Hard { v_reset: 0.0 },
        detach_reset: true,
        surrogate: Surrogate::Rect { width: 1.0 },
    };
    let s = SpikeBits::from_bools(&i.spk);
    let (mut gv, mut gh) = (i.dv.clone(), vec![f16::ZERO; N]);
    lif_backward_step(&p, &i.ds, &i.h, s.slice(0, N), &mut gv, &mut gh);
    let f = |v: &[f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    // The mask path and the H path both reproduce the kernel.
    assert_eq!(buf(&m, Buf::BpDelta, 0, N), f(&gh));
    assert_eq!(buf(&m, Buf::BpDelta, N, N), f(&gh));
    assert_eq!(buf(&m, Buf::BpVgrad, 0, N), f(&gv));
    let nz: Vec<f32> = gh.iter().map(|v| if v.to_f32() != 0.0 { 1.0 } else { 0.0 }).collect();
    assert_eq!(buf(&m, Buf::FpMask, N, N), nz);
    assert!(nz.contains(&0.0) && nz.contains(&1.0), "the rect window makes some errors zero");

    // Error propagation: the kernel takes `[out,in]` = `[n,k]` weights.
    let wt: Vec<f16> = (0..K * N).map(|t| i.w[(t % K) * N + t / K]).collect();
    let (mut gin, mut ops) = (vec![f16::ZERO; K], OpCount::default());
    linear_backward_input(mode, &wt, &gh, &mut gin, &mut [0.0; K], &mut ops);
    assert_eq!(buf(&m, Buf::BpPsum, 16, K), f(&gin));

    // Weight and bias gradients, then the update (gradient scaled and rounded first).
    let x = SpikeBits::from_bools(&i.x);
    let mut dw = vec![0.0f32; K * N];
    linear_weight_grad(mode, &gh, Input::Spikes(x.slice(0, K)), &mut dw, &mut ops);
    let dw_kn: Vec<f32> = (0..K * N).map(|t| dw[(t % N) * K + t / N]).collect();
    assert_eq!(buf(&m, Buf::WgGrad, 0, K * N), dw_kn);
    let mut db = vec![0.0f32; N];
    bias_grad(mode, &gh, 1, &mut db);
    assert_eq!(buf(&m, Buf::WgGrad, K * N, N), db);
    let g: Vec<f16> = dw_kn.iter().map(|v| f16::from_f32(v * 0.5)).collect();
    let (mut master, mut vel, mut w16) = (i.master.clone(), vec![0.5f32; K * N], vec![f16::ZERO; K * N]);
    sgd_momentum(&Momentum { lr: 0.125, momentum: 0.9, weight_decay: 0.01 }, &g, &mut master, &mut vel, &mut w16);
    assert_eq!(buf(&m, Buf::Opt, 0, K * N), master);
    assert_eq!(buf(&m, Buf::Opt, K * N, K * N), vel);
    assert_eq!(buf(&m, Buf::FpW, 0, K * N), f(&w16));
}

#[test]
fn loss_over_a_batch_matches_the_kernels_and_skips_padding() {
    use crate::kernels::loss::{LossKind, loss_value, output_grad, time_mean};
    let mut p = program(
        "
.core 0
.stream bp
    dma.ld dst=bp.err[0:8] src=@0x0 rows=1 row=16 stride=16
    dma.ld dst=bp.err[8:12] src=@0x10 rows=1 row=24 stride=24
    fill dst=wg.grad[0:1] value=0
    fill dst=bp.psum[8:4] value=7
    loop r=r0 n=2
    bp.loss kind=ce_rate x=bp.err[0+r0*4:4] target=bp.err[8+r0*4:4] out=bp.psum[0+r0*4:4] loss=wg.grad[0:1] n=4 t=4 b=2
    endloop r=r0
    bp.loss kind=ce_rate x=bp.err[0:4] target=bp.err[16:4] out=bp.psum[8:4] loss=wg.grad[0:1] n=4 t=4 b=2
    halt
",
    );
    // Spike counts over T = 4 for two samples of 4 classes; labels 2 and 0; then padding.
    let counts = [1.0, 0.0, 3.0, 2.0, 4.0, 1.0, 0.0, 1.0];
    let targets = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    data(&mut p, "counts", DataKind::Fp16, 0, f16_bytes(&counts));
    data(&mut p, "targets", DataKind::Fp16, 0x10, f16_bytes(&targets));
    let (m, r) = run(&p);
    r.unwrap_or_else(|e| panic!("{e}"));
    // The kernels take the output sequence [T, B*C]; spread each count over T steps.
    let seq: Vec<f32> =
        (0..4).flat_map(|t| counts.iter().map(move |c| if (*c as usize) > t { 1.0 } else { 0.0 })).collect();
    let mut z = vec![0.0f32; 8];
    time_mean(&seq, 4, &mut z);
    let mut g = vec![f16::ZERO; 8];
    output_grad(LossKind::CeRate, &z, &[2, 0], 4, &mut g);
    assert_eq!(buf(&m, Buf::BpPsum, 0, 8), g.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
    assert_eq!(buf(&m, Buf::BpPsum, 8, 4), vec![0.0; 4]);
    let want = loss_value(LossKind::CeRate, &z, &[2, 0]);
    let got = f64::from(buf(&m, Buf::WgGrad, 0, 1)[0]);
    assert!((got - want).abs() < 1e-6, "loss {got} against {want}");
}

/// `wg.conv` against the kernel, four times on the same buffers: twice on the same errors
/// (where the core hands its masked copy out again), then after one error changes, then
/// after one bit of the `nz` mask is cleared. Each result is that of the errors and mask
/// of its own time.
#[test]
fn weight_gradients_follow_changes_to_errors_and_mask() {
    let mut p = program(
        "
.core 0
.stream wg
    dma.ld dst=wg.err[0:16] src=@0x0 rows=1 row=32 stride=32
    dma.ld dst=fp.mask[0:16] src=@0x20 rows=1 row=2 stride=2
    dma.ld dst=wg.spk[0:40] src=@0x30 rows=1 row=5 stride=5
    fill dst=wg.grad[0:36] value=0
    wg.conv spk=wg.spk[0:36] err=wg.err[0:16] dw=wg.grad[0:9] db=- cin=1 cout=1 ih=6 iw=6 kh=3 kw=3 stride=1 skip=true nz=fp.mask[0:16]
    wg.conv spk=wg.spk[0:36] err=wg.err[0:16] dw=wg.grad[9:9] db=- cin=1 cout=1 ih=6 iw=6 kh=3 kw=3 stride=1 skip=true nz=fp.mask[0:16]
    fill dst=wg.err[5:1] value=0.75
    wg.conv spk=wg.spk[0:36] err=wg.err[0:16] dw=wg.grad[18:9] db=- cin=1 cout=1 ih=6 iw=6 kh=3 kw=3 stride=1 skip=true nz=fp.mask[0:16]
    fill dst=fp.mask[2:1] value=0
    wg.conv spk=wg.spk[0:36] err=wg.err[0:16] dw=wg.grad[27:9] db=- cin=1 cout=1 ih=6 iw=6 kh=3 kw=3 stride=1 skip=true nz=fp.mask[0:16]
    halt
",
    );
    let errors: Vec<f32> = (0..16).map(|i| (i as f32 - 6.5) / 8.0).collect();
    let mask: Vec<bool> = (0..16).map(|i| i % 5 != 4).collect();
    let spikes: Vec<bool> = (0..40).map(|i| i % 3 != 1).collect();
    data(&mut p, "err", DataKind::Fp16, 0, f16_bytes(&errors));
    data(&mut p, "mask", DataKind::Spikes, 0x20, pack(&mask));
    data(&mut p, "spk", DataKind::Spikes, 0x30, pack(&spikes));
    let (m, r) = run(&p);
    r.unwrap_or_else(|e| panic!("{e}"));
    let shape = Conv2dShape { cin: 1, cout: 1, h: 6, w: 6, kh: 3, kw: 3, stride: 1, pad: 0 };
    let x = SpikeBits::from_bools(&spikes);
    let want = |errors: &[f32], mask: &[bool]| {
        let g: Vec<f16> = errors.iter().zip(mask).map(|(e, k)| f16::from_f32(if *k { *e } else { 0.0 })).collect();
        let mut dw = vec![0.0f32; 9];
        conv2d_weight_grad(
            m.precision().accum(),
            &shape,
            &g,
            Input::Spikes(x.slice(0, 36)),
            &mut dw,
            &mut OpCount::default(),
        );
        dw
    };
    let first = want(&errors, &mask);
    assert_eq!(buf(&m, Buf::WgGrad, 0, 9), first);
    assert_eq!(buf(&m, Buf::WgGrad, 9, 9), first);
    let mut changed = errors.clone();
    changed[5] = 0.75;
    let second = want(&changed, &mask);
    assert_ne!(second, first, "the changed error reaches the weights");
    assert_eq!(buf(&m, Buf::WgGrad, 18, 9), second);
    let mut cleared = mask.clone();
    cleared[2] = false;
    let third = want(&changed, &cleared);
    assert_ne!(third, second, "the cleared mask bit reaches the weights");
    assert_eq!(buf(&m, Buf::WgGrad, 27, 9), third);
}
