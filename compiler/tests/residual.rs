//! Residual joins (`add`) and branches in staged programs: small SEW-ResNet-style models
//! compile to verified, deterministic programs that round-trip through the assembler and
//! train, and the forward sums and backward error sums of the joins match a reference
//! computed here from the tensors the program leaves in DRAM.

use isa::{ChipDesc, Program};
use sim::{Machine, SimOptions};
use snnc::codegen::{self, CodegenOptions};
use snnc::graph::LayerGraph;

/// A residual model on `[2, 8, 8]` currents: two blocks whose joins add the spikes of a
/// branch to a shortcut, the second shortcut identity (`proj = false`) or a 1x1 conv and
/// LIF (`proj = true`); the head averages the last join over the whole map, into LIF
/// neurons and `ce_rate` (`readout = false`) or a readout and `ce_mem`.
fn model(proj: bool, beta: f32, readout: bool) -> LayerGraph {
    let shortcut = if proj {
        "d3 = conv2d(o1, out = 8, kernel = 1, bias = false)\n  ds3 = lif(d3)\n  o2 = add(s3, ds3)"
    } else {
        "o2 = add(s3, o1)"
    };
    let head = if readout {
        "s4 = readout(f, beta = 0.875)\n  loss = ce_mem(s4)"
    } else {
        "s4 = lif(f)\n  loss = ce_rate(s4)"
    };
    let text = format!(
        "model res {{
  timesteps = 4
  batch = 2
  neuron = lif(beta = {beta}, threshold = 1.0, reset = hard, detach_reset = true, surrogate = rect(1.0))
  init = uniform(gain = 3.0, seed = 3)
  x = input(shape = [2, 8, 8], encoding = current(scale = 1.0))
  c1 = conv2d(x, out = 8, kernel = 3, padding = 1, bias = false)
  s1 = lif(c1)
  c2 = conv2d(s1, out = 8, kernel = 3, padding = 1, bias = false)
  s2 = lif(c2)
  o1 = add(s2, s1)
  c3 = conv2d(o1, out = 8, kernel = 3, padding = 1, bias = false)
  s3 = lif(c3)
  {shortcut}
  p = avgpool(o2, kernel = 8)
  flat = flatten(p)
  f = linear(flat, out = 10, bias = false)
  {head}
  optimizer = sgd(lr = 0.01, momentum = 0.0)
}}
"
    );
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn compile(g: &LayerGraph, steps: u32) -> Program {
    let options = CodegenOptions { steps, ..CodegenOptions::default() };
    codegen::compile(g, &ChipDesc::default(), &options).unwrap_or_else(|e| panic!("{e}"))
}

/// Currents in `[0, 2)` from a fixed splitmix64 stream, the same batch for every step.
fn currents(len: usize, steps: usize) -> Vec<f32> {
    let mut x = 11u64;
    let one: Vec<f32> = (0..len / steps)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            ((z >> 40) % 1000) as f32 / 500.0
        })
        .collect();
    one.iter().cycle().take(len).copied().collect()
}

/// Runs `p` for its steps on [`currents`] with one-hot targets (class `b` for sample `b` of
/// the batch of 2, every step).
fn run(p: &Program, steps: usize) -> Machine {
    let chip = ChipDesc::default();
    let mut m = Machine::new(p, &chip, SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let size = |n: &str| p.symbols.iter().find(|s| s.name == n).map_or(0, |s| s.len as usize);
    m.write_f16("input", &currents(size("input") / 2, steps)).unwrap_or_else(|e| panic!("{e}"));
    let target: Vec<f32> = (0..size("target") / 2).map(|i| if (i / 10) % 2 == i % 10 { 1.0 } else { 0.0 }).collect();
    m.write_f16("target", &target).unwrap_or_else(|e| panic!("{e}"));
    m.run().unwrap_or_else(|e| panic!("{e}"));
    m
}

#[test]
fn residual_models_compile_deterministically_and_round_trip() {
    for proj in [false, true] {
        let g = model(proj, 0.75, true);
        let text = codegen::placement_text(&g, &ChipDesc::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("o1: add of 2 inputs, 512 elements"), "{text}");
        assert!(text.contains("o2: add of 2 inputs, 512 elements") && text.contains("windows of 8x8"), "{text}");
        let (a, b) = (compile(&g, 1), compile(&g, 1));
        assert!(isa::verify::verify(&a, &ChipDesc::default()).is_empty());
        assert_eq!(a.to_bytes(), b.to_bytes(), "compiling twice gives the same bytes");
        let back = isa::asm::assemble(&isa::asm::print(&a)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(back.to_bytes(), a.to_bytes(), "disassembly assembles to the same bytes");
    }
}

/// A join moves the chunk of all its timesteps at once: every `fp.sum` adds the input that
/// the `dma.ld` just before it brought in one strided transfer of 4 rows (T = 4), and every
/// join's sum or mean leaves in one such store, so a sample pays the DRAM latency once per
/// input instead of once per timestep.
#[test]
fn joins_move_every_timestep_of_a_chunk_at_once() {
    let p = compile(&model(true, 0.75, true), 1);
    let (mut sums, mut stores) = (0, 0);
    // The FP code of the joins `o1` and `o2`, by their layer symbols.
    for sym in p.symbols.iter().filter(|s| s.name == "o1" || s.name == "o2") {
        let isa::SymbolKind::Layer { core, stream: isa::Stream::Fp } = sym.kind else { continue };
        let code = &p.cores[usize::from(core)].streams[0][sym.addr as usize..][..sym.len as usize];
        for (i, instr) in code.iter().enumerate().skip(1) {
            if let isa::Instr::FpSum { src, .. } = instr {
                let isa::Instr::DmaLoad { dst, rows, .. } = &code[i - 1] else { panic!("{:?}", code[i - 1]) };
                assert_eq!((dst, *rows), (src, 4), "the input of {instr:?}");
                sums += 1;
            }
            if let isa::Instr::DmaStore { rows: 4, .. } = instr {
                stores += 1;
            }
        }
    }
    assert!(sums >= 4 && stores >= 2, "{sums} sums, {stores} stores of four timesteps");
}

#[test]
fn residual_models_train() {
    let steps = 8;
    for proj in [false, true] {
        let g = model(proj, 0.75, true);
        let p = compile(&g, steps as u32);
        let before = p.data.iter().find(|d| d.name == "c1.weight_master").map(|d| d.bytes.clone());
        let m = run(&p, steps);
        let loss = m.read_f32("loss").unwrap_or_else(|e| panic!("{e}"));
        assert!(loss.iter().all(|l| l.is_finite()), "{loss:?}");
        assert!(loss[steps - 1] < loss[0], "proj {proj}: the loss falls on a repeated batch: {loss:?}");
        let after = m.read_symbol("c1.weight_master").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(Some(after), before, "the first conv, below both joins, learns");
    }
}

/// Reads `name` as 0/1 values of `n` bits.
fn bits(m: &Machine, name: &str) -> Vec<f32> {
    let b = m.read_symbol(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (0..b.len() * 8).map(|i| f32::from((b[i / 8] >> (i % 8)) & 1)).collect()
}

fn f16s(m: &Machine, name: &str) -> Vec<f32> {
    m.read_f16(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The initial FP16 weights of layer `name`.
fn weights(p: &Program, name: &str) -> Vec<f32> {
    let d = p.data.iter().find(|d| d.name == format!("{name}.weight")).unwrap_or_else(|| panic!("{name}"));
    d.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

/// dL/d(input) of a 3x3 conv with padding 1 on `c x 8 x 8` maps, from `dh` of its outputs
/// (`[cout][8][8]`), for one sample-step: the transpose of the forward conv.
fn conv3_back(w: &[f32], dh: &[f32], c: usize) -> Vec<f32> {
    let mut out = vec![0.0; c * 64];
    for co in 0..dh.len() / 64 {
        for ci in 0..c {
            for (oy, ox, ky, kx) in
                (0..8).flat_map(|y| (0..8).flat_map(move |x| (0..9).map(move |k| (y, x, k / 3, k % 3))))
            {
                let (y, x) = (oy + ky, ox + kx);
                if (1..9).contains(&y) && (1..9).contains(&x) {
                    out[ci * 64 + (y - 1) * 8 + x - 1] +=
                        w[((co * c + ci) * 3 + ky) * 3 + kx] * dh[co * 64 + oy * 8 + ox];
                }
            }
        }
    }
    out
}

/// With `beta = 0` and the rectangular surrogate of width 1, `dL/dH = dL/dS * mask`: no
/// membrane carries gradient between timesteps, so the whole backward pass below the loss
/// is sums, products and the conv transposes, which this test computes in f32 from the
/// spikes, masks and output sums the program stored, and the initial weights. The join
/// group's region ends holding `dL/ds1`, the sum of what `c2` sends back and of `o1`'s
/// error, itself `c3`'s plus the pooled head's: dropping any branch changes it.
#[test]
fn joins_sum_forward_and_backward_like_a_reference() {
    let g = model(false, 0.001, false);
    let p = compile(&g, 1);
    let m = run(&p, 1);
    let (bt, n, t, b) = (8, 512, 4usize, 2usize);
    let (s1, s2, s3) = (bits(&m, "s1.spikes"), bits(&m, "s2.spikes"), bits(&m, "s3.spikes"));
    let o1 = f16s(&m, "o1.sum");
    assert!(s1.iter().any(|&s| s > 0.0) && s2.iter().any(|&s| s > 0.0), "the branches fire");
    for i in 0..bt * n {
        assert_eq!(o1[i], s2[i] + s1[i], "o1 = s2 + s1 at {i}");
    }
    let pooled = f16s(&m, "p.pooled");
    for (r, &v) in pooled.iter().enumerate() {
        let (row, ch) = (r / 8, r % 8);
        let sum: f32 = (0..64).map(|i| s3[row * n + ch * 64 + i] + o1[row * n + ch * 64 + i]).sum();
        assert_eq!(v, sum / 64.0, "the mean of o2 = s3 + o1 at {r}");
    }
    // Backward, per sample-step (b, t): the loss gradient of ce_rate, then down the layers.
    let (sums, masks) = (m.read_f32("s4.spike_sum").unwrap_or_else(|e| panic!("{e}")), bits(&m, "s4.mask"));
    let (m2, m3) = (bits(&m, "s2.mask"), bits(&m, "s3.mask"));
    let (wf, w2, w3) = (weights(&p, "f"), weights(&p, "c2"), weights(&p, "c3"));
    let mut want = Vec::new();
    for bi in 0..b {
        let z: Vec<f32> = (0..10).map(|j| sums[bi * 10 + j] / t as f32).collect();
        let e: f32 = z.iter().map(|v| v.exp()).sum();
        let ds4: Vec<f32> =
            (0..10).map(|j| (z[j].exp() / e - if j == bi { 1.0 } else { 0.0 }) / (b * t) as f32).collect();
        for ti in 0..t {
            let row = bi * t + ti;
            let dh4: Vec<f32> = (0..10).map(|j| ds4[j] * masks[row * 10 + j]).collect();
            let dp: Vec<f32> = (0..8).map(|i| (0..10).map(|j| wf[i * 10 + j] * dh4[j]).sum()).collect();
            let do2: Vec<f32> = (0..n).map(|i| dp[i / 64] / 64.0).collect();
            let dh3: Vec<f32> = (0..n).map(|i| do2[i] * m3[row * n + i]).collect();
            let do1: Vec<f32> = conv3_back(&w3, &dh3, 8).iter().zip(&do2).map(|(a, b)| a + b).collect();
            let dh2: Vec<f32> = (0..n).map(|i| do1[i] * m2[row * n + i]).collect();
            want.extend(conv3_back(&w2, &dh2, 8).iter().zip(&do1).map(|(a, b)| a + b));
        }
    }
    let got = f16s(&m, "s1.err");
    let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(scale > 0.0, "errors reach s1");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 0.02 * scale, "dL/ds1 at {i}: {g} against the reference {w} (scale {scale})");
    }
}

/// A branch read by a layer after the join that adds it would need its error without the
/// join's, which the shared error region cannot give: the code generator says so, naming
/// the value, instead of training with a wrong gradient.
#[test]
fn a_branch_read_after_its_join_is_refused() {
    let text = "model late {
  timesteps = 2
  batch = 2
  init = uniform(gain = 3.0, seed = 3)
  x = input(shape = [2, 8, 8], encoding = current(scale = 1.0))
  c1 = conv2d(x, out = 8, kernel = 3, padding = 1, bias = false)
  s1 = lif(c1)
  c2 = conv2d(s1, out = 8, kernel = 3, padding = 1, bias = false)
  s2 = lif(c2)
  o1 = add(s2, s1)
  c3 = conv2d(s1, out = 8, kernel = 3, padding = 1, bias = false)
  s3 = lif(c3)
  o2 = add(s3, o1)
  p = avgpool(o2, kernel = 8)
  flat = flatten(p)
  f = linear(flat, out = 10, bias = false)
  s4 = lif(f)
  loss = ce_rate(s4)
  optimizer = sgd(lr = 0.1)
}
";
    let g = snnc::compile_graph(text).unwrap_or_else(|e| panic!("{e:?}"));
    let err = codegen::compile(&g, &ChipDesc::default(), &CodegenOptions::default()).err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("cannot be summed in place"), "{err}");
}
