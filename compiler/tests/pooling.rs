//! Pooling with overlapping, padded windows end to end: a model with torchvision's stem
//! pooling (`maxpool`, window 3, stride 2, padding 1) and a padded `avgpool` compiles to a
//! program that verifies and trains on the simulator, and the pooled maps it stores
//! (`keep_activations`) are exactly the pooling of the spikes it stores, recomputed here.

use half::f16;
use isa::ChipDesc;
use sim::{Machine, SimOptions};
use snnc::codegen::{self, CodegenOptions};
use std::path::Path;

const T: usize = 4;
const B: usize = 2;

/// conv16 with `p1 = maxpool(3, 2, 1)` over 8x16x16 spikes and `p2 = avgpool(3, 2, 1)`
/// over 16x8x8 ones.
fn model() -> snnc::graph::LayerGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/conv16.snn");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = text
        .replace("p1 = avgpool(s1, kernel = 2, stride = 2)", "p1 = maxpool(s1, kernel = 3, stride = 2, padding = 1)")
        .replace("p2 = avgpool(s2, kernel = 2, stride = 2)", "p2 = avgpool(s2, kernel = 3, stride = 2, padding = 1)");
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Pools one `c x h x w` spike map (window 3, stride 2, padding 1) as PyTorch defines it:
/// max over the in-bounds elements, or their sum over all 9 positions (padding counts 0).
fn pool_ref(spikes: &[bool], (c, h, w): (usize, usize, usize), max: bool) -> Vec<f16> {
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut out = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut count = 0;
                for y in (oy * 2).saturating_sub(1)..(oy * 2 + 2).min(h) {
                    for x in (ox * 2).saturating_sub(1)..(ox * 2 + 2).min(w) {
                        count += usize::from(spikes[(ch * h + y) * w + x]);
                    }
                }
                let v = if max { f32::from(u8::from(count > 0)) } else { count as f32 / 9.0 };
                out.push(f16::from_f32(v));
            }
        }
    }
    out
}

/// Sample `b`, timestep `t` of a `[B][ceil(T*n/8)]` spike tensor, as booleans.
fn spikes_at(bytes: &[u8], n: usize, b: usize, t: usize) -> Vec<bool> {
    let sample = &bytes[b * (T * n).div_ceil(8)..];
    (t * n..(t + 1) * n).map(|i| sample[i / 8] >> (i % 8) & 1 == 1).collect()
}

/// Checks the stored pooled map of `neuron` against the pooling of its stored spikes;
/// returns how many pooled values are nonzero, so a test can see the check is not vacuous.
fn check_pooled(m: &Machine, neuron: &str, map: (usize, usize, usize), max: bool) -> usize {
    let n = map.0 * map.1 * map.2;
    let s = m.read_symbol(&format!("{neuron}.S")).unwrap_or_else(|e| panic!("{e}"));
    let pooled = m.read_symbol(&format!("{neuron}.pooled")).unwrap_or_else(|e| panic!("{e}"));
    let pooled: Vec<f16> = pooled.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect();
    let len = pooled.len() / (B * T);
    let mut nonzero = 0;
    for b in 0..B {
        for t in 0..T {
            let want = pool_ref(&spikes_at(&s, n, b, t), map, max);
            let got = &pooled[(b * T + t) * len..(b * T + t + 1) * len];
            assert_eq!(got, want.as_slice(), "{neuron}: sample {b}, timestep {t}");
            nonzero += got.iter().filter(|v| v.to_f32() != 0.0).count();
        }
    }
    nonzero
}

#[test]
fn pooled_maps_are_the_pooling_of_the_stored_spikes() {
    let chip = ChipDesc::default();
    let options = CodegenOptions { keep_activations: true, ..CodegenOptions::default() };
    let program = codegen::compile(&model(), &chip, &options).unwrap_or_else(|e| panic!("{e}"));
    assert!(isa::verify::verify(&program, &chip).is_empty());
    let listing = isa::asm::print(&program);
    assert!(listing.contains("k=3 stride=2 pad=1"), "the pools keep their geometry");
    let mut m = Machine::new(&program, &chip, SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let input = vec![0x5a_u8; program.symbols.iter().find(|s| s.name == "input").map_or(0, |s| s.len as usize)];
    m.write_symbol("input", &input).unwrap_or_else(|e| panic!("{e}"));
    // Sample b's target is class b: the loss has a gradient whether or not the output fires.
    let onehot: Vec<f32> = (0..B * 10).map(|i| f32::from(u8::from(i % 10 == i / 10))).collect();
    m.write_f16("target", &onehot).unwrap_or_else(|e| panic!("{e}"));
    let before = m.read_symbol("c1.weight").unwrap_or_else(|e| panic!("{e}"));
    m.run().unwrap_or_else(|e| panic!("{e}"));
    let max_ones = check_pooled(&m, "s1", (8, 16, 16), true);
    let avg_nonzero = check_pooled(&m, "s2", (16, 8, 8), false);
    assert!(max_ones > 0 && avg_nonzero > 0, "the layers fire: {max_ones} and {avg_nonzero} pooled values");
    // The step trains through both poolings down to the first conv.
    assert_ne!(m.read_symbol("c1.weight").unwrap_or_else(|e| panic!("{e}")), before);
}
