//! `wg.update` in place against the copying path: the same masters, state, FP16 weights
//! and zeroed gradient, bit for bit.

use super::{data, run};
use isa::{Buf, DataKind};

/// A program that updates sixteen weights from a gradient at `grad` (in `wg.grad`, the
/// in-place layout, or in `opt` beside the masters, which takes the copying path).
fn listing(kind: &str, grad: &str, state_len: usize) -> String {
    format!(
        "
.core 0
.stream wg
    cfg.opt slot=0 kind={kind} lr=0.0625 m=0.9 beta2=0.999 eps=1e-8 wd=0.01
    dma.ld dst=opt[0:16] src=@0x0 rows=1 row=64 stride=64
    dma.ld dst=opt[16:{state_len}] src=@0x40 rows=1 row={} stride={}
    dma.ld dst={grad} src=@0xc0 rows=1 row=64 stride=64
    wg.update grad={grad} master=opt[0:16] state=opt[16:{state_len}] w16=fp.w[0:16] n=16 cfg=0 scale=0.5 zero=true
    halt
",
        4 * state_len,
        4 * state_len
    )
}

/// Sixteen FP32 values from `seed`, with ±0, ±inf and NaN among them.
fn values(seed: u32) -> Vec<f32> {
    let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    (0..16u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503));
            if x % 7 == 0 { special[(x / 7 % 5) as usize] } else { (x % 2001) as f32 / 500.0 - 2.0 }
        })
        .collect()
}

/// The bits of `len` values of buffer `b` of core 0 after running `kind` with the gradient
/// at `grad`.
fn after(kind: &str, grad: &str, state_len: usize) -> Vec<Vec<u32>> {
    let mut p = super::program(&listing(kind, grad, state_len));
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    data(&mut p, "master", DataKind::Fp32, 0, bytes(&values(1)));
    let state: Vec<f32> = [values(2), values(3)].concat().iter().map(|x| x.abs()).collect();
    data(&mut p, "state", DataKind::Fp32, 0x40, bytes(&state[..state_len]));
    data(&mut p, "grad", DataKind::Fp32, 0xc0, bytes(&values(4)));
    let (m, r) = run(&p);
    r.unwrap_or_else(|e| panic!("{e}"));
    let bits = |b: Buf, at: usize, len: usize| -> Vec<u32> {
        m.buffer(0, b, at, len).unwrap_or_default().iter().map(|x| x.to_bits()).collect()
    };
    let (gb, ga) = if grad.starts_with("opt") { (Buf::Opt, 64) } else { (Buf::WgGrad, 0) };
    vec![bits(Buf::Opt, 0, 16 + state_len), bits(Buf::FpW, 0, 16), bits(gb, ga, 16)]
}

#[test]
fn update_in_place_matches_the_copying_path() {
    for (kind, state_len) in [("adam", 32), ("sgd", 16)] {
        let (in_place, copied) = (after(kind, "wg.grad[0:16]", state_len), after(kind, "opt[64:16]", state_len));
        assert_eq!(in_place, copied, "{kind}");
        assert!(in_place[2].iter().all(|&b| b == 0), "{kind}: the gradient is zeroed");
        assert!(in_place[1].iter().any(|&b| b != 0), "{kind}: the weights were written");
    }
}
