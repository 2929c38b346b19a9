//! Staged programs (every layer cut into tiles over its cores, DRAM between layers) against
//! resident ones (one layer per core, golden-checked): on models where every staged tile
//! sums its inputs in one chunk, both must train to bit-identical weights and losses, with
//! the tiles on the mapping's cores (the default) and on all cores alike.

use isa::{ChipDesc, Program};
use sim::{Machine, SimOptions};
use snnc::codegen::{self, CodegenOptions, CoreMap, Placement, PlacementChoice};
use snnc::graph::LayerGraph;
use snnc::map::{MapOptions, map_graph};
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

/// Trains `model` for two steps as a resident program on `chip` and as staged programs on
/// `staged_chip` (tiles on the mapping's cores segment by segment, the default; on each
/// unit's own cores, as if every unit were a segment of its own; and on all cores), and
/// checks the losses, outputs and weights are bit for bit the same.
/// Returns whether the unit-level placement differs from all cores (if it does not, the
/// mapping gave every unit all cores, or the chip has one).
fn same_training(model: &str, chip: &ChipDesc, staged_chip: &ChipDesc) -> bool {
    same_training_graph(model, &graph(model), chip, staged_chip)
}

/// [`same_training`] of a layer graph.
fn same_training_graph(model: &str, g: &LayerGraph, chip: &ChipDesc, staged_chip: &ChipDesc) -> bool {
    let options = CodegenOptions { steps: 2, outputs: true, ..CodegenOptions::default() };
    let placement = Placement::default_for(g, chip).unwrap_or_else(|e| panic!("{e}"));
    let resident = codegen::compile_placed(g, chip, &placement, &options).unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = ["loss", "output"].iter().map(|s| s.to_string()).collect();
    for l in g.layers().iter().filter(|l| l.op.has_weights()) {
        names.push(format!("{}.weight", l.name));
        names.push(format!("{}.weight_master", l.name));
    }
    // The biases of the layers that have one, which follow their weights in DRAM.
    let has = |name: &String| resident.symbols.iter().any(|s| &s.name == name);
    names.extend(
        g.layers().iter().flat_map(|l| [format!("{}.bias", l.name), format!("{}.bias_master", l.name)]).filter(has),
    );
    let a = run(&resident, chip, &names);
    let staged = |cores: &CoreMap| {
        codegen::compile_staged_with(g, staged_chip, cores, &options).unwrap_or_else(|e| panic!("{e}"))
    };
    let spread = staged(&CoreMap::choose(g, staged_chip, PlacementChoice::AllCores));
    same_outputs(model, "all-cores", &names, &a, &run(&spread, staged_chip, &names));
    let mut differ = false;
    let placements = [("mapped", segment_cores(g, staged_chip)), ("unit-level", unit_cores(g, staged_chip))];
    for (i, (what, cores)) in placements.iter().enumerate() {
        let program = staged(cores);
        // On one core, or when the mapping gives every layer all cores, the programs are one.
        if program.to_bytes() != spread.to_bytes() {
            same_outputs(model, what, &names, &a, &run(&program, staged_chip, &names));
            differ |= i == 1;
        }
    }
    differ
}

/// The default chip with `fp.w` and `bp.w` of 2,560 elements, room for every weight tile of
/// the small models whole, so that staged programs round their sums as resident ones do.
fn whole_sums_chip() -> ChipDesc {
    let mut chip = ChipDesc::default();
    for engine in [&mut chip.engines.fp, &mut chip.engines.bp] {
        if let Some(w) = engine.buffers.get_mut("w") {
            w.bits = 2560 * 16;
        }
    }
    chip
}

/// The default placement: every staged layer on the cores of its mapping segment.
fn segment_cores(g: &LayerGraph, chip: &ChipDesc) -> CoreMap {
    CoreMap::choose(g, chip, PlacementChoice::Mapped)
}

/// Every staged layer on its own unit's mapped cores: the mapping with each unit made a
/// segment of its own, which moves tiles between cores as a multi-segment mapping does.
fn unit_cores(g: &LayerGraph, chip: &ChipDesc) -> CoreMap {
    // A chip the mapping pass cannot take (the shrunken ones below) keeps all cores.
    let Ok(mut m) = map_graph(g, chip, &MapOptions::default()) else {
        return CoreMap::choose(g, chip, PlacementChoice::AllCores);
    };
    for (i, unit) in m.units.values_mut().enumerate() {
        unit.segment = i;
    }
    CoreMap::from_mapping(g, chip, &m, PlacementChoice::Mapped)
}

/// Checks the resident program's symbols `a` equal a staged program's `b`.
fn same_outputs(model: &str, placement: &str, names: &[String], a: &[Vec<u8>], b: &[Vec<u8>]) {
    let differ: Vec<String> = names
        .iter()
        .zip(a)
        .zip(b)
        .filter(|((_, a), b)| a != b)
        .map(|((n, a), b)| {
            format!("{n} ({} of {} bytes)", a.iter().zip(b.iter()).filter(|(x, y)| x != y).count(), a.len())
        })
        .collect();
    assert!(differ.is_empty(), "{model}: the resident and the {placement} staged program differ in {differ:?}");
}

#[test]
fn fc_models_train_identically_staged() {
    let chip = ChipDesc::default();
    let mut moved = false;
    for model in ["fc16", "fc16_rect_cemem", "fc16_soft_detach_tri", "fc16_soft_sigmoid_ce"] {
        moved |= same_training(model, &chip, &chip);
    }
    assert!(moved, "the mapping should place some layer on fewer than all cores");
}

/// With `B x T` not a multiple of 8 (T = 3, B = 2: 6 sample-steps), the output layer's
/// tiles hold spikes and masks that are not whole bytes: they go to DRAM in blocks padded to
/// whole bytes, and the staged programs train as the resident ones do. Spiking outputs (the
/// rate losses) and a readout with the rectangular surrogate's masks are covered.
#[test]
fn odd_sample_step_counts_train_identically_staged() {
    let chip = ChipDesc::default();
    for model in ["fc16", "fc16_rect_cemem", "fc16_soft_sigmoid_ce"] {
        let text = graph_text(model).replace("timesteps = 4", "timesteps = 3");
        assert!(text.contains("timesteps = 3") && text.contains("batch = 2"), "{model}: {text}");
        let g = snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"));
        same_training_graph(&format!("{model} at T = 3"), &g, &chip, &chip);
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
    let moved = same_training("conv16", &ChipDesc::default(), &ChipDesc::default());
    assert!(moved, "the mapping should place some layer of conv16 on fewer than all cores");
    // The classifier's 256 x 10 weights exceed the default `fp.w` and `bp.w`, so a staged
    // program would sum them in FP16 chunks; with room for them all it is one sum, as resident.
    let chip = whole_sums_chip();
    same_training("conv16_maxpool_ce", &chip, &chip);
    // Biased convs (and fc), whose 192 x 10 classifier fits these buffers whole too:
    // `fp.conv` adds each channel's bias in its accumulator, resident or staged.
    same_training("conv16_bias", &chip, &chip);
    // Spike rows that are not whole bytes (12 wide from DRAM, 6 wide over the NoC), which a
    // resident program places through a stage and `pad`.
    same_training("conv12_narrow", &chip, &chip);
}

#[test]
fn row_blocks_and_channel_tiles_over_many_cores_train_identically() {
    // Tiles over output channels and rows, spread over the cores, do not change how any sum
    // is rounded (only chunks of the inputs do, and these buffers hold them whole): a
    // 128-element `fp.psum` cuts conv16_maxpool_ce's first layer into blocks of 8 rows (each
    // reading a window of 10 input rows) and its second into blocks of 2 channels.
    let chip = whole_sums_chip();
    let mut small = chip.clone();
    if let Some(psum) = small.engines.fp.buffers.get_mut("psum") {
        psum.bits = 128 * 16;
    }
    let text = codegen::placement_text(&graph("conv16_maxpool_ce"), &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("c1 + s1: conv 1x16x16 -> 8x16x16; 16 tiles of 1 ch x 8 rows, input chunks of 1 ch x 10 rows"),
        "{text}"
    );
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

/// A model whose maps are cut into row windows on a chip with small `fp.in`, `fp.mem`,
/// `fp.psum` and `bp.delta`: `encoding` and `stride` vary the second conv's input (spikes
/// or FP16) and step.
fn windowed_model(encoding: &str, stride: u32) -> LayerGraph {
    let text = format!(
        "model rows {{
  timesteps = 4
  batch = 2
  neuron = lif(beta = 0.75, threshold = 1.0, reset = hard, detach_reset = true, surrogate = atan(2.0))
  init = uniform(gain = 3.0, seed = 5)
  x = input(shape = [1, 16, 16], encoding = {encoding})
  c1 = conv2d(x, out = 2, kernel = 3, stride = 1, padding = 1, bias = false)
  s1 = lif(c1)
  c2 = conv2d(s1, out = 4, kernel = 3, stride = {stride}, padding = 1, bias = false)
  s2 = lif(c2)
  p2 = avgpool(s2, kernel = 2, stride = 2)
  flat = flatten(p2)
  f3 = linear(flat, out = 10, bias = false)
  s3 = lif(f3)
  loss = ce_rate(s3)
  optimizer = sgd(lr = 0.5, momentum = 0.9)
}}
"
    );
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The default chip with buffers of `elems` elements (bits of 1-bit buffers).
fn with_buffers(chip: &ChipDesc, sizes: &[(&str, &str, u64)]) -> ChipDesc {
    let mut chip = chip.clone();
    for &(engine, name, elems) in sizes {
        let e = match engine {
            "fp" => &mut chip.engines.fp,
            _ => &mut chip.engines.bp,
        };
        let b = e.buffers.get_mut(name).unwrap_or_else(|| panic!("{engine}.{name}"));
        b.bits = elems * u64::from(b.elem_bits);
    }
    chip
}

#[test]
fn row_windows_of_inputs_and_errors_train_like_whole_maps() {
    // A 256-bit `fp.in` holds no padded 18 x 18 channel, so every conv tile reads a window of
    // its input rows (on one core, a 64-element `fp.psum` makes the tiles 2 rows of 2
    // channels, stored channel by channel, whose window of 2 x 4 rows holds every input
    // channel, so no sum is cut into chunks); a 512-element `bp.delta` cuts the errors of
    // `s1` into single input rows, each from the 3 error rows that reach it. The 10
    // outputs become 2 tiles of 5. Weight buffers of 2560 elements hold the classifier's
    // weights whole on both chips.
    let g = windowed_model("bernoulli(max_rate = 0.8, seed = 5)", 1);
    let chip = with_buffers(&ChipDesc::default(), &[("fp", "w", 2560), ("bp", "w", 2560)]);
    let mut small = with_buffers(&chip, &[("fp", "in", 256), ("fp", "psum", 64), ("bp", "delta", 512)]);
    small.cores.truncate(1);
    small.noc.width = 1;
    small.noc.height = 1;
    let text = codegen::placement_text(&g, &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("c1 + s1: conv 1x16x16 -> 2x16x16; 8 tiles of 2 ch x 2 rows, input chunks of 1 ch x 4 rows"),
        "{text}"
    );
    assert!(
        text.contains("c2 + s2: conv 2x16x16 -> 4x16x16; 16 tiles of 2 ch x 2 rows, input chunks of 2 ch x 4 rows"),
        "{text}"
    );
    assert!(text.contains("errors: chunks of 2 ch x 1 rows x blocks of 4 ch"), "{text}");
    assert!(text.contains("f3 + s3: linear 256 -> 10; 2 tiles of 5 outputs"), "{text}");
    same_training_graph("rows", &g, &chip, &small);
}

#[test]
fn row_windows_of_dense_inputs_with_a_stride_train_like_whole_maps() {
    // FP16 input currents are windowed in `fp.mem` (a quarter of it per padded chunk), on 20
    // cores in tiles of one channel, and a stride of 2 makes the windows of the errors of
    // `s1` overlap unevenly.
    let g = windowed_model("current(scale = 1.0)", 2);
    let chip = with_buffers(&ChipDesc::default(), &[("fp", "w", 2560), ("bp", "w", 2560)]);
    let small = with_buffers(&chip, &[("fp", "mem", 1024), ("fp", "psum", 64), ("bp", "delta", 512)]);
    let text = codegen::placement_text(&g, &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("c1 + s1: conv 1x16x16 -> 2x16x16; 8 tiles of 1 ch x 4 rows, input chunks of 1 ch x 6 rows"),
        "{text}"
    );
    assert!(text.contains("c2 + s2: conv 2x16x16 -> 4x8x8; 4 tiles of 1 ch x 8 rows"), "{text}");
    assert!(text.contains("errors: chunks of 2 ch x 4 rows x blocks of 4 ch"), "{text}");
    same_training_graph("rows_dense", &g, &chip, &small);
}

/// A core loops over the linear tiles it owns instead of repeating their code: on one
/// core, each of fc784_512's two linear layers (32 and 1 output tiles) has at most two
/// `fp.linear` in the FP stream (a loop over weight chunks and its remainder), and
/// doubling `B x T` on the default chip changes the program's size by less than a tenth
/// (unrolled tiles, as before, doubled the linear layers' code).
#[test]
fn linear_tiles_are_a_loop_so_program_size_does_not_follow_batch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fc784_512.snn");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let options = CodegenOptions { steps: 1, train: true, ..CodegenOptions::default() };
    assert!(text.contains("batch = 32"), "the model states its batch");
    let compile = |batch: u32, chip: &ChipDesc| -> Program {
        let model = text.replace("batch = 32", &format!("batch = {batch}"));
        let g = snnc::compile_graph(&model).unwrap_or_else(|e| panic!("{e:?}"));
        codegen::compile(&g, chip, &options).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut one = ChipDesc::default();
    one.cores.truncate(1);
    one.noc.width = 1;
    one.noc.height = 1;
    let p = compile(32, &one);
    let fp = &p.cores[0].streams[isa::Stream::Fp.index()];
    let linear = fp.iter().filter(|i| matches!(i, isa::Instr::FpLinear { .. })).count();
    assert!(linear <= 4, "{linear} fp.linear instructions for 2 layers on one core");
    let size = |p: &Program| p.cores.iter().flat_map(|c| &c.streams).map(Vec::len).sum::<usize>();
    let (small, big) = (size(&compile(32, &ChipDesc::default())), size(&compile(64, &ChipDesc::default())));
    assert!(big * 10 < small * 11, "{small} instructions at B = 32, {big} at B = 64");
}

/// A 64-element `fp.psum` and a 32-element `bp.psum` hold the partial sums of no tile for
/// all 16 x 4 sample-steps, so both layers take their samples in groups (2 and 8 samples;
/// the output layer's loss and the biases with them), on one core that loops over its
/// tiles. They still train exactly as the resident program.
#[test]
fn sample_groups_train_like_the_whole_batch() {
    let text = "model groups {
  timesteps = 4
  batch = 16
  neuron = lif(beta = 0.75, threshold = 1.0, reset = hard, detach_reset = true, surrogate = atan(2.0))
  init = uniform(gain = 3.0, seed = 7)
  x = input(shape = [64], encoding = bernoulli(max_rate = 0.8, seed = 5))
  f1 = linear(x, out = 32, bias = true)
  s1 = lif(f1)
  f2 = linear(s1, out = 10, bias = true)
  s2 = lif(f2)
  loss = ce_rate(s2)
  optimizer = adam(lr = 0.01)
}
";
    let g = snnc::compile_graph(text).unwrap_or_else(|e| panic!("{e:?}"));
    let mut small = with_buffers(&ChipDesc::default(), &[("fp", "psum", 64), ("bp", "psum", 32)]);
    small.cores.truncate(1);
    small.noc.width = 1;
    small.noc.height = 1;
    let plan = codegen::placement_text(&g, &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(plan.contains("f1 + s1: linear 64 -> 32;") && plan.contains("in groups of 2 samples"), "{plan}");
    assert!(plan.contains("f2 + s2: linear 32 -> 10;") && plan.contains("in groups of 8 samples"), "{plan}");
    same_training_graph("groups", &g, &ChipDesc::default(), &small);
}

/// conv16's shapes with torchvision's stem pooling (`maxpool`, window 3, stride 2, padding 1)
/// after the first conv and a padded overlapping `avgpool` after the second: 16 -> 8 -> 4.
fn overlapping_pools() -> LayerGraph {
    let text = graph_text("conv16")
        .replace("p1 = avgpool(s1, kernel = 2, stride = 2)", "p1 = maxpool(s1, kernel = 3, stride = 2, padding = 1)")
        .replace("p2 = avgpool(s2, kernel = 2, stride = 2)", "p2 = avgpool(s2, kernel = 3, stride = 2, padding = 1)");
    assert!(text.contains("maxpool(s1, kernel = 3") && text.contains("avgpool(s2, kernel = 3"));
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn graph_text(model: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{model}.snn"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn overlapping_padded_pools_train_identically_staged() {
    // Whole-map conv tiles; both poolings run in a pass of their own over whole maps, whose
    // `bp.pool` sums overlapping windows exactly as the resident program's does.
    let g = overlapping_pools();
    let chip = with_buffers(&ChipDesc::default(), &[("fp", "w", 2560), ("bp", "w", 2560)]);
    let text = codegen::placement_text(&g, &chip).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("\nplacement of"), "fits one core per layer: {text}");
    let mut one = chip.clone();
    one.cores.truncate(1);
    one.noc.width = 1;
    one.noc.height = 1;
    let text = codegen::placement_text(&g, &one).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("c1 + s1: conv 1x16x16 -> 8x16x16; 1 tiles of 8 ch x 16 rows"), "{text}");
    assert!(text.contains("pooled in a pass of groups of 8 whole maps"), "{text}");
    same_training_graph("overlapping_pools", &g, &chip, &chip);
    same_training_graph("overlapping_pools_one_core", &g, &chip, &one);
}

#[test]
fn overlapping_pools_after_row_blocks_train_identically() {
    // A 128-element `fp.psum` cuts the first conv into blocks of 8 rows (as ResNet's stem is
    // cut): pooled rows 3 and 4 need conv rows 5..10 of both blocks, which the pooling pass
    // reads back from DRAM as whole maps.
    let g = overlapping_pools();
    let chip = with_buffers(&ChipDesc::default(), &[("fp", "w", 2560), ("bp", "w", 2560)]);
    let small = with_buffers(&chip, &[("fp", "psum", 128)]);
    let text = codegen::placement_text(&g, &small).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("c1 + s1: conv 1x16x16 -> 8x16x16; 16 tiles of 1 ch x 8 rows"), "{text}");
    assert!(text.contains("pooled in a pass of groups of"), "{text}");
    same_training_graph("overlapping_pools_rows", &g, &chip, &small);
}

/// A small generator (64-bit LCG, high bits out) for the random shapes below.
struct Draw(u64);

impl Draw {
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        from[(self.0 >> 33) as usize % from.len()]
    }
}

/// A random small conv model: one or two convs of random width (often not whole bytes of
/// spikes), kernel, stride, padding and bias, spike or direct-current input, an optional
/// pooling, then a classifier, over 3 or 4 timesteps; `None` when the draw has no valid
/// shape.
fn random_conv_model(draw: &mut Draw, name: &str) -> Option<String> {
    let (cin, hw, k): (u32, u32, u32) =
        (draw.pick(&[1, 2, 3]), draw.pick(&[5, 6, 7, 8, 9, 10, 12, 16]), draw.pick(&[1, 3, 5]));
    let (pad, stride, cout) = (draw.pick(&[0, 1, 2]).min(k / 2), draw.pick(&[1, 1, 2]), draw.pick(&[2, 3, 4]));
    let out = (hw + 2 * pad).checked_sub(k)? / stride + 1;
    let encoding = draw.pick(&["bernoulli(max_rate = 0.8, seed = 3)", "current(scale = 1.0)"]);
    let mut layers = format!(
        "  c1 = conv2d(x, out = {cout}, kernel = {k}, stride = {stride}, padding = {pad}, bias = {})\n  s1 = lif(c1)\n",
        draw.pick(&[false, true])
    );
    let (mut last, mut size) = ("s1", cout * out * out);
    if draw.pick(&[false, true]) {
        layers += &format!(
            "  c2 = conv2d(s1, out = 4, kernel = 3, padding = 1, bias = {})\n  s2 = lif(c2)\n",
            draw.pick(&[false, true])
        );
        (last, size) = ("s2", 4 * out * out);
    }
    if out >= 2 && (size > 256 || draw.pick(&[false, true])) {
        let pool = draw.pick(&["avgpool", "maxpool"]);
        layers += &format!("  p = {pool}({last}, kernel = 2, stride = 2)\n");
        size = size / (out * out) * (out / 2) * (out / 2);
        last = "p";
    }
    if size > 256 {
        return None;
    }
    let (bias, timesteps) = (draw.pick(&[false, true]), draw.pick(&[3, 4]));
    Some(format!(
        "model {name} {{
  timesteps = {timesteps}
  batch = 2
  neuron = lif(beta = 0.75, threshold = 1.0, reset = hard, detach_reset = true, surrogate = atan(2.0))
  init = uniform(gain = 3.0, seed = 4)
  x = input(shape = [{cin}, {hw}, {hw}], encoding = {encoding})
{layers}  flat = flatten({last})
  f = linear(flat, out = 10, bias = {bias})
  sf = lif(f)
  loss = mse_rate(sf)
  optimizer = sgd(lr = 0.5)
}}
"
    ))
}

/// Random small conv models (`random_conv_model`), which must compile as resident programs,
/// and as staged ones on a chip whose weight buffers hold every sum whole: where both compile, two
/// training steps give bit-identical weights, biases, losses and outputs. The draws cover
/// the conv bias and spike rows that are not whole bytes (which resident programs place
/// through a stage), against the staged generator's own tiling of the same layers.
#[test]
fn random_conv_shapes_train_identically_resident_and_staged() {
    let chip = whole_sums_chip();
    let (mut draw, mut skipped) = (Draw(11), Vec::new());
    let (mut compared, mut biased, mut narrow) = (0, 0, 0);
    for case in 0..80 {
        let name = format!("shape{case}");
        let Some(text) = random_conv_model(&mut draw, &name) else { continue };
        let g = snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{text}\n{e:?}"));
        let options = CodegenOptions::default();
        // Every draw fits one core per layer: the resident generator must take it.
        let resident = Placement::default_for(&g, &chip).and_then(|p| codegen::compile_placed(&g, &chip, &p, &options));
        if let Err(e) = resident {
            panic!("{text}\nthe resident program does not compile: {e}");
        }
        let cores = CoreMap::choose(&g, &chip, PlacementChoice::AllCores);
        match codegen::compile_staged_with(&g, &chip, &cores, &options) {
            Ok(_) => {
                same_training_graph(&name, &g, &chip, &chip);
                compared += 1;
                biased += usize::from(
                    text.contains("conv2d(x") && text.lines().any(|l| l.contains("c1 =") && l.contains("bias = true")),
                );
                narrow +=
                    usize::from(text.contains("bernoulli") && !text.contains(", 8, 8]") && !text.contains(", 16, 16]"));
            }
            // The staged generator has layouts of its own (whole bytes of spikes per map,
            // blocks that fit): models it cannot tile are no comparison.
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    let why = skipped.join("\n");
    assert!(
        compared >= 25 && biased >= 5 && narrow >= 3,
        "{compared} compared ({biased} with a biased first conv, {narrow} with narrow spike rows); skipped:\n{why}"
    );
}

/// Conv tiles whose weights `fp.w` cannot hold all at once wait in `fp.mem` for the whole
/// tile (`park_weights`, the default) instead of streaming from DRAM for every sample and
/// timestep: `resnet_digits` trains two steps to the same bytes in every tensor either way,
/// and reads less from DRAM when they wait.
#[test]
fn parked_weights_train_like_streamed_ones() {
    parked_like_streamed(&graph("resnet_digits"), &ChipDesc::default());
}

/// The same for tiles of rows, each reading a window of its input rows: the windowed model
/// on one core with a 256-bit `fp.in`, a 64-element `fp.psum` and a 9-element `fp.w`,
/// which holds the weights of one input channel of one output channel at a time, so each
/// tile of `c2` waits with its two input channels' weights in `fp.mem`.
#[test]
fn parked_weights_of_row_tiles_train_like_streamed_ones() {
    let g = windowed_model("bernoulli(max_rate = 0.8, seed = 5)", 1);
    let chip = ChipDesc::default();
    let mut small = with_buffers(&chip, &[("fp", "in", 256), ("fp", "psum", 64), ("fp", "w", 9), ("bp", "w", 2560)]);
    small.cores.truncate(1);
    small.noc.width = 1;
    small.noc.height = 1;
    let text = codegen::placement_text(&g, &small).unwrap_or_else(|e| panic!("{e}"));
    let c2 = "c2 + s2: conv 2x16x16 -> 4x16x16; 16 tiles of 1 ch x 4 rows, input chunks of 1 ch x 6 rows";
    assert!(text.contains(&format!("{c2}, weights held in fp.mem")), "{text}");
    parked_like_streamed(&g, &small);
}

/// Compiles `g` for `chip` with and without parked weights and checks both train two steps
/// to the same bytes, the parked program reading its conv weights from `fp.mem` and fewer
/// weight bytes from DRAM.
fn parked_like_streamed(g: &LayerGraph, chip: &ChipDesc) {
    let compile = |park_weights: bool| {
        let options = CodegenOptions { steps: 1, park_weights, ..CodegenOptions::default() };
        codegen::compile_staged(g, chip, &options).unwrap_or_else(|e| panic!("{e}"))
    };
    let (parked, streamed) = (compile(true), compile(false));
    let from_mem = |p: &Program| {
        let fp = p.cores.iter().flat_map(|c| &c.streams[0]);
        fp.filter(|i| matches!(i, isa::Instr::FpConv { w, .. } if w.buf == isa::Buf::FpMem)).count()
    };
    assert!(from_mem(&parked) > 0 && from_mem(&streamed) == 0, "{} {}", from_mem(&parked), from_mem(&streamed));
    let (a, b) = (train_two_steps(&parked, chip), train_two_steps(&streamed, chip));
    assert_eq!(a.1, b.1, "the tensors after two steps");
    let weights = |s: &sim::RunStats| s.dram.read.get(&sim::machine::DramKind::Weights).copied().unwrap_or(0);
    assert!(weights(&a.0) < weights(&b.0), "weight bytes read: {} parked, {} streamed", weights(&a.0), weights(&b.0));
}

/// Two training steps of `program` on FP16 inputs of 0 and 1 (one in eight set) and
/// one-hot targets: the second step's statistics and every tensor's bytes after it.
fn train_two_steps(program: &Program, chip: &ChipDesc) -> (sim::RunStats, Vec<Vec<u8>>) {
    let mut m = Machine::new(program, chip, SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let size = |n: &str| program.symbols.iter().find(|s| s.name == n).map_or(0, |s| s.len as usize);
    let input: Vec<f32> = bytes(size("input") / 2, 3).iter().map(|b| f32::from(u8::from(b % 8 == 0))).collect();
    m.write_f16("input", &input).unwrap_or_else(|e| panic!("{e}"));
    let targets = size("target") / 2;
    let onehot: Vec<f32> = (0..targets).map(|i| if (i / 10) % 10 == i % 10 { 1.0 } else { 0.0 }).collect();
    m.write_f16("target", &onehot).unwrap_or_else(|e| panic!("{e}"));
    m.run().unwrap_or_else(|e| panic!("{e}"));
    let stats = m.run().unwrap_or_else(|e| panic!("{e}"));
    let tensors = program.symbols.iter().filter(|s| s.kind == isa::SymbolKind::Tensor);
    (stats, tensors.map(|s| m.read_symbol(&s.name).unwrap_or_else(|e| panic!("{e}"))).collect())
}
