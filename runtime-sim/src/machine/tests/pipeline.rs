//! A DMA → `fp.linear` → `fp.lif` → DMA pipeline over a loop of timesteps, checked
//! against the kernels called directly, and the example training step of the ISA crate.

use super::*;
use crate::fp::Accum;
use crate::kernels::accumulate::linear_forward;
use crate::kernels::soma::{LifParams, Reset, Surrogate, lif_forward_step};
use crate::kernels::{Input, OpCount};
use crate::spikes::SpikeBits;
use half::f16;

const K: usize = 16;
const N: usize = 8;
const T: usize = 3;

/// FP loads W, then per timestep r0 loads spikes at a register offset, accumulates, fires
/// and stores the synaptic sums; finally the spikes and membranes go to DRAM.
const PIPELINE: &str = "
.core 0
.stream fp
    cfg.neuron slot=0 beta=0.5 theta=1 reset=hard detach=true sg=rect alpha=1
    dma.ld dst=fp.w[0:128] src=@0x1000 rows=1 row=256 stride=256
    fill dst=fp.mem[0:8] value=0
    loop r=r0 n=3
    dma.ld dst=fp.in[0+r0*16:16] src=@0x0+r0*2 rows=1 row=2 stride=2
    fp.linear spk=fp.in[0+r0*16:16] w=fp.w[0:128] out=fp.psum[0:8] k=16 n=8 rows=1 spk_stride=0 out_stride=0 acc=false skip=true
    dma.st dst=@0x2000+r0*16 src=fp.psum[0:8] rows=1 row=16 stride=16
    fp.lif x=fp.psum[0:8] bias=- v=fp.mem[0:8] h=fp.mem[8+r0*8:8] spk=fp.spk[0+r0*8:8] mask=- n=8 rows=1 cfg=0 fire=true
    endloop r=r0
    dma.st dst=@0x3000 src=fp.spk[0:24] rows=1 row=3 stride=3
    dma.st dst=@0x3100 src=fp.mem[8:24] rows=1 row=48 stride=48
    halt
";

fn weights() -> Vec<f32> {
    (0..K * N).map(|i| f16::from_f32(((i * 29 % 23) as f32 - 8.0) / 16.0).to_f32()).collect()
}

fn pipeline(spikes: &[bool]) -> Program {
    let mut p = program(PIPELINE);
    data(&mut p, "x.spikes", DataKind::Spikes, 0, pack(spikes));
    data(&mut p, "fc.w", DataKind::Fp16, 0x1000, f16_bytes(&weights()));
    tensor(&mut p, "fc.psum", 0x2000, (T * N * 2) as u32);
    tensor(&mut p, "fc.spk", 0x3000, 3);
    tensor(&mut p, "fc.mem", 0x3100, 48);
    p
}

fn input_spikes() -> Vec<bool> {
    (0..T * K).map(|i| i % 3 == 0 || i % 5 == 1).collect()
}

#[test]
fn pipeline_matches_kernels() {
    let spikes = input_spikes();
    let (m, r) = run(&pipeline(&spikes));
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    let mode: Accum = m.precision().accum();
    // The kernels use `[out,in]` weights; the ISA holds `k x n`.
    let w = weights();
    let wt: Vec<f16> = (0..K * N).map(|t| f16::from_f32(w[(t % K) * N + t / K])).collect();
    let s = SpikeBits::from_bools(&spikes);
    let p = LifParams {
        beta: 0.5,
        threshold: 1.0,
        reset: Reset::Hard { v_reset: 0.0 },
        detach_reset: true,
        surrogate: Surrogate::Rect { width: 1.0 },
    };
    let (mut v, mut h, mut out_s) = (vec![f16::ZERO; N], vec![f16::ZERO; T * N], SpikeBits::zeros(T * N));
    let mut ops = OpCount::default();
    let psum = m.read_f16("fc.psum").unwrap_or_default();
    for t in 0..T {
        let mut x = vec![f16::ZERO; N];
        linear_forward(mode, &wt, None, Input::Spikes(s.slice(t * K, K)), &mut x, &mut ops);
        let got: Vec<f32> = psum[t * N..(t + 1) * N].to_vec();
        assert_eq!(got, x.iter().map(|v| v.to_f32()).collect::<Vec<_>>(), "psum of t={t}");
        lif_forward_step(&p, &x, &mut v, &mut h[t * N..(t + 1) * N], &mut out_s, t * N);
    }
    assert_eq!(
        m.read_symbol("fc.spk").unwrap_or_default(),
        pack(&(0..T * N).map(|i| out_s.get(i)).collect::<Vec<_>>())
    );
    assert_eq!(m.read_f16("fc.mem").unwrap_or_default(), h.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
    assert!(out_s.count_ones() > 0 && out_s.count_ones() < T * N, "the test should fire some neurons");
    let lin = &stats.profile["fp.linear"];
    assert_eq!((lin.count, lin.ops_executed, lin.ops_skipped), (T as u64, ops.executed, ops.skipped));
}

#[test]
fn all_zero_input_skips_all_accumulate_work() {
    let (_, r) = run(&pipeline(&[false; T * K]));
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    let lin = &stats.profile["fp.linear"];
    assert_eq!(lin.ops_executed, 0);
    assert_eq!(lin.ops_skipped, (T * K * N) as u64);
    // The soma still runs every neuron.
    assert_eq!(stats.profile["fp.lif"].ops_executed, (3 * T * N) as u64);
}

#[test]
fn host_access_by_symbol_round_trips() {
    let mut m = machine(&pipeline(&input_spikes()), SimOptions::default());
    let w: Vec<f32> = (0..K * N).map(|i| i as f32 / 64.0).collect();
    m.write_f16("fc.w", &w).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.read_f16("fc.w").unwrap_or_default(), w);
    assert!(matches!(m.write_f16("fc.w", &w[1..]), Err(SimError::SymbolSize { .. })));
    assert!(matches!(m.read_symbol("nope"), Err(SimError::UnknownSymbol(_))));
    m.write_spikes("x.spikes", &[false; T * K]).unwrap_or_else(|e| panic!("{e}"));
    let stats = m.run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.profile["fp.linear"].ops_executed, 0);
}

const EXAMPLE: &str = include_str!("../../../../isa/testdata/linear_layer.s");

/// The example program of the ISA crate: one training step of a 64-16 LIF layer.
pub(super) fn example() -> Program {
    let chip = ChipDesc::default();
    let text: String = EXAMPLE
        .lines()
        .map(|l| if l.starts_with(".chip ") { format!(".chip cores=20 hash={:#018x}", chip.hash()) } else { l.into() })
        .collect::<Vec<_>>()
        .join("\n");
    asm::assemble(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn example_training_step_runs_and_updates_weights() {
    let p = example();
    let (m, r) = run(&p);
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    let before: Vec<f32> = p.data[1].bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
    let after = m.read_f16("fc1.w").unwrap_or_default();
    assert_eq!(before.len(), after.len());
    assert!(before.iter().zip(&after).any(|(a, b)| a != b), "the update should move some weights");
    let layer = &stats.layers[0];
    assert_eq!(layer.name, "fc1");
    assert_eq!(layer.neuron_steps, 4 * 8 * 16);
    assert!(layer.firing_rate() > 0.0 && layer.firing_rate() < 1.0);
    assert!(layer.error_elems > 0 && layer.error_density() < 1.0, "rect errors are sparse");
    // The layer's symbols cover every instruction of the three streams: all their busy
    // cycles are the layer's (and stalls are not).
    let streams: Vec<u64> = stats.streams[0].iter().map(|s| s.busy).collect();
    assert_eq!(layer.busy.to_vec(), streams);
    assert!(stats.streams[0][0].stall > 0 && layer.busy[0] > 0);
    assert!(stats.profile["wg.linear"].ops_skipped > 0);
}
