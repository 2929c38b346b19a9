//! Staged programs (every layer cut into tiles over all cores, DRAM between layers) against
//! resident ones (one layer per core, golden-checked): on models where every staged tile
//! sums its inputs in one chunk, both must train to bit-identical weights and losses.

use isa::{ChipDesc, Program};
use sim::{Machine, SimOptions};
use snnc::codegen::{self, CodegenOptions, Placement};
use snnc::graph::LayerGraph;
use std::path::Path;

fn graph(model: &str) -> LayerGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{model}.snn"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A splitmix64 stream of bytes, so inputs differ between bytes but repeat between runs.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) & (z >> 13) & 0xff) as u8
        })
        .collect()
}

/// Runs `program` on the same sparse input and one-hot targets; returns the DRAM bytes of
/// the symbols named.
fn run(program: &Program, chip: &ChipDesc, names: &[String]) -> Vec<Vec<u8>> {
    let mut m = Machine::new(program, chip, SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let size = |n: &str| program.symbols.iter().find(|s| s.name == n).map_or(0, |s| s.len as usize);
    m.write_symbol("input", &bytes(size("input"), 7)).unwrap_or_else(|e| panic!("{e}"));
    let targets = size("target") / 2;
    let classes = 10.min(targets);
    let onehot: Vec<f32> =
        (0..targets).map(|i| if (i / classes) % classes == i % classes { 1.0 } else { 0.0 }).collect();
    m.write_f16("target", &onehot).unwrap_or_else(|e| panic!("{e}"));
    m.run().unwrap_or_else(|e| panic!("{e}"));
    names.iter().map(|n| m.read_symbol(n).unwrap_or_else(|e| panic!("{n}: {e}"))).collect()
}

/// Trains `model` for two steps as a resident program on `chip` and as a staged program on
/// `staged_chip`, and checks the losses, outputs and weights are bit for bit the same.
fn same_training(model: &str, chip: &ChipDesc, staged_chip: &ChipDesc) {
    let g = graph(model);
    let options = CodegenOptions { steps: 2, outputs: true, ..CodegenOptions::default() };
    let placement = Placement::default_for(&g, chip).unwrap_or_else(|e| panic!("{e}"));
    let resident = codegen::compile_placed(&g, chip, &placement, &options).unwrap_or_else(|e| panic!("{e}"));
    let staged = codegen::compile_staged(&g, staged_chip, &options).unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = ["loss", "output"].iter().map(|s| s.to_string()).collect();
    for l in g.layers().iter().filter(|l| l.op.has_weights()) {
        names.push(format!("{}.weight", l.name));
        names.push(format!("{}.weight_master", l.name));
    }
    let (a, b) = (run(&resident, chip, &names), run(&staged, staged_chip, &names));
    let differ: Vec<String> = names
        .iter()
        .zip(&a)
        .zip(&b)
        .filter(|((_, a), b)| a != b)
        .map(|((n, a), b)| {
            format!("{n} ({} of {} bytes)", a.iter().zip(b.iter()).filter(|(x, y)| x != y).count(), a.len())
        })
        .collect();
    assert!(differ.is_empty(), "{model}: the resident and the staged program differ in {differ:?}");
}

#[test]
fn fc_models_train_identically_staged() {
    let chip = ChipDesc::default();
    for model in ["fc16", "fc16_rect_cemem", "fc16_soft_detach_tri", "fc16_soft_sigmoid_ce"] {
        same_training(model, &chip, &chip);
    }
}

#[test]
fn a_staged_program_on_one_core_trains_like_one_core_per_layer() {
    let mut one = ChipDesc::default();
    one.cores.truncate(1);
    one.noc.width = 1;
    one.noc.height = 1;
    same_training("fc16_soft_sigmoid_ce", &ChipDesc::default(), &one);
    same_training("conv16", &ChipDesc::default(), &one);
}

#[test]
fn conv_models_train_identically_staged() {
    same_training("conv16", &ChipDesc::default(), &ChipDesc::default());
    // The classifier's 256 x 10 weights exceed the default `fp.w` and `bp.w`, so a staged
    // program would sum them in FP16 chunks; with room for them all it is one sum, as resident.
    let mut chip = ChipDesc::default();
    for engine in [&mut chip.engines.fp, &mut chip.engines.bp] {
        if let Some(w) = engine.buffers.get_mut("w") {
            w.bits = 2560 * 16;
        }
    }
    same_training("conv16_maxpool_ce", &chip, &chip);
}

#[test]
fn row_blocks_and_channel_tiles_over_many_cores_train_identically() {
    // Tiles over output channels and rows, spread over the cores, do not change how any sum
    // is rounded (only chunks of the inputs do, and these buffers hold them whole): a
    // 128-element `fp.psum` cuts conv16_maxpool_ce's first layer into blocks of 8 rows and
    // its second into blocks of 2 channels.
    let mut chip = ChipDesc::default();
    for engine in [&mut chip.engines.fp, &mut chip.engines.bp] {
        if let Some(w) = engine.buffers.get_mut("w") {
            w.bits = 2560 * 16;
        }
    }
    let mut small = chip.clone();
    if let Some(psum) = small.engines.fp.buffers.get_mut("psum") {
        psum.bits = 128 * 16;
    }
    let text = codegen::placement_text(&graph("conv16_maxpool_ce"), &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("c1 + s1: conv 1x16x16 -> 8x16x16; 16 tiles of 1 ch x 8 rows"), "{text}");
    assert!(text.contains("c2 + s2: conv 8x8x8 -> 16x8x8; 8 tiles of 2 ch x 8 rows"), "{text}");
    same_training("conv16_maxpool_ce", &chip, &small);
}

#[test]
fn chunked_sums_train_like_whole_ones() {
    // Weight buffers of 80 elements cut every sum into FP16 chunks (input channels, weight
    // rows, blocks of errors): the updates differ by rounding only, so they point the same
    // way as the resident program's (cosine similarity) and have the same size.
    let (g, chip) = (graph("conv16_maxpool_ce"), ChipDesc::default());
    let mut small = chip.clone();
    for engine in [&mut small.engines.fp, &mut small.engines.bp] {
        if let Some(w) = engine.buffers.get_mut("w") {
            w.bits = 80 * 16;
        }
    }
    let options = CodegenOptions { steps: 1, ..CodegenOptions::default() };
    let placement = Placement::default_for(&g, &chip).unwrap_or_else(|e| panic!("{e}"));
    let resident = codegen::compile_placed(&g, &chip, &placement, &options).unwrap_or_else(|e| panic!("{e}"));
    let staged = codegen::compile_staged(&g, &small, &options).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = ["c1", "c2", "f3"].iter().map(|l| format!("{l}.weight_master")).collect();
    let before: Vec<Vec<f32>> = names
        .iter()
        .map(|n| {
            let d = resident.data.iter().find(|d| &d.name == n).unwrap_or_else(|| panic!("{n}"));
            d.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
        .collect();
    let (a, b) = (run(&resident, &chip, &names), run(&staged, &small, &names));
    for (i, name) in names.iter().enumerate() {
        let f32s = |v: &[u8]| -> Vec<f32> {
            v.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        };
        let da: Vec<f32> = f32s(&a[i]).iter().zip(&before[i]).map(|(x, y)| x - y).collect();
        let db: Vec<f32> = f32s(&b[i]).iter().zip(&before[i]).map(|(x, y)| x - y).collect();
        let dot: f32 = da.iter().zip(&db).map(|(x, y)| x * y).sum();
        let (na, nb) = (da.iter().map(|x| x * x).sum::<f32>().sqrt(), db.iter().map(|x| x * x).sum::<f32>().sqrt());
        let cosine = dot / (na * nb).max(f32::MIN_POSITIVE);
        assert!(na > 0.0, "{name}: no update");
        assert!(cosine > 0.99 && (nb / na - 1.0).abs() < 0.05, "{name}: cosine {cosine}, norms {na} vs {nb}");
    }
}
