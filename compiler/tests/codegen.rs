//! Code generation, model by model: every program that compiles verifies, is deterministic,
//! survives a listing round trip, and does not grow with T x B; the listings of the small
//! models and the summaries (or errors) of the large ones are pinned by snapshots.

use isa::ChipDesc;
use snnc::codegen::{self, CodegenOptions, LayerWeights, WeightSource};
use snnc::graph::LayerGraph;
use std::path::Path;

/// Models whose whole listing is pinned.
const SMALL: &[&str] = &[
    "fc16",
    "fc16_rect_cemem",
    "fc16_soft_detach_tri",
    "fc16_soft_sigmoid_ce",
    "fc24_deep_bias",
    "fc784",
    "conv16",
    "conv16_maxpool_ce",
    "conv16_s2_fastsig",
    "conv16_bias",
    "conv12_narrow",
    "conv16_current",
    "conv16_readout",
    "digits",
];
/// Models pinned by their summary or their error.
const LARGE: &[&str] = &[
    "fc784_512",
    "vgg_cifar_small",
    "vgg11_cifar10",
    "vgg16_imagenet",
    "resnet18_imagenet",
    "resnet50_imagenet",
    "resnet_digits",
    "dvs_gesture",
];

fn source(model: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{model}.snn"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn graph_of(text: &str) -> LayerGraph {
    snnc::compile_graph(text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn graph(model: &str) -> LayerGraph {
    graph_of(&source(model))
}

fn compile(g: &LayerGraph) -> Result<isa::Program, codegen::CodegenError> {
    codegen::compile(g, &ChipDesc::default(), &CodegenOptions::default())
}

/// The listing without the hex dump of the initial data (weights), which is pinned by its
/// size on the `.data` line instead.
fn listing(p: &isa::Program) -> String {
    let text = isa::asm::print(p);
    text.lines().filter(|l| !l.trim_start().starts_with(".hex")).map(|l| format!("{l}\n")).collect()
}

#[test]
fn small_model_listings() {
    for model in SMALL {
        let p = compile(&graph(model)).unwrap_or_else(|e| panic!("{model}: {e}"));
        insta::assert_snapshot!(format!("listing_{model}"), listing(&p));
    }
}

#[test]
fn large_model_summaries_or_errors() {
    for model in LARGE {
        let text = match compile(&graph(model)) {
            Ok(p) => codegen::summary(&p),
            Err(e) => format!("error: {e}\n"),
        };
        insta::assert_snapshot!(format!("summary_{model}"), text);
    }
}

#[test]
fn every_compiled_program_verifies_reassembles_and_repeats() {
    let chip = ChipDesc::default();
    for model in SMALL.iter().chain(LARGE) {
        let g = graph(model);
        let p = compile(&g).unwrap_or_else(|e| panic!("{model}: {e}"));
        let violations = isa::verify::verify(&p, &chip);
        assert!(violations.is_empty(), "{model}: {violations:?}");
        let again = compile(&g).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(p.to_bytes(), again.to_bytes(), "{model}: compiling twice differs");
        // The listing round trip of every instruction and symbol, with the initial data cut
        // short: the hex of vgg16_imagenet's 830 MB of weights checks nothing more.
        let mut p = p;
        p.data.iter_mut().for_each(|d| d.bytes.truncate(1 << 16));
        let text = isa::asm::print(&p);
        let back = isa::asm::assemble(&text).unwrap_or_else(|e| panic!("{model}: {e:?}"));
        assert_eq!(back, p, "{model}: listing round trip");
    }
}

/// The model text with other timesteps and batch settings.
fn resized(model: &str, t: u32, b: u32) -> LayerGraph {
    let g = graph(model);
    let text = source(model)
        .replace(&format!("timesteps = {}", g.timesteps), &format!("timesteps = {t}"))
        .replace(&format!("batch = {}", g.batch), &format!("batch = {b}"));
    graph_of(&text)
}

fn instruction_counts(p: &isa::Program) -> Vec<usize> {
    p.cores.iter().flat_map(|c| c.streams.iter().map(Vec::len)).collect()
}

#[test]
fn program_size_does_not_grow_with_timesteps_and_batch() {
    // fc784 keeps T x 784 input bits of a sample on chip, so it is scaled in B only.
    let cases = [
        ("fc16", 4, 4),
        ("fc16_soft_sigmoid_ce", 4, 4),
        ("fc16_rect_cemem", 4, 4),
        ("digits", 4, 4),
        ("fc784", 1, 4),
        ("conv16", 2, 4),
        ("conv16_maxpool_ce", 2, 4),
    ];
    for (model, ft, fb) in cases {
        let g = graph(model);
        let small = compile(&g).unwrap_or_else(|e| panic!("{model}: {e}"));
        let big = compile(&resized(model, g.timesteps * ft, g.batch * fb)).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(instruction_counts(&small), instruction_counts(&big), "{model}");
        let code = |p: &isa::Program| p.to_bytes().len() - p.data.iter().map(|d| d.bytes.len()).sum::<usize>();
        // Symbol lengths of T x B tensors differ in value, not in size.
        assert_eq!(code(&small), code(&big), "{model}");
    }
}

#[test]
fn keep_activations_adds_the_parity_symbols_and_still_verifies() {
    let g = graph("fc16_soft_sigmoid_ce");
    let options = CodegenOptions { keep_activations: true, ..CodegenOptions::default() };
    let p = codegen::compile(&g, &ChipDesc::default(), &options).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p.symbols.iter().map(|s| s.name.as_str()).collect();
    for want in ["s1.S", "s1.V", "s1.H", "s2.S", "f1.grad", "f2.grad", "f1.bias", "f1.bias_master"] {
        assert!(names.contains(&want), "missing {want} in {names:?}");
    }
    assert!(isa::verify::verify(&p, &ChipDesc::default()).is_empty());
}

#[test]
fn given_weights_are_stored_transposed() {
    let g = graph("fc16");
    // f1 is [out=32][in=16]; make W[o][i] = o + i/100 so the layout is visible.
    let w1: Vec<f32> = (0..32).flat_map(|o| (0..16).map(move |i| o as f32 + i as f32 / 100.0)).collect();
    let mut map = std::collections::BTreeMap::new();
    map.insert("f1".to_string(), LayerWeights { weight: w1, bias: None });
    let options = CodegenOptions { weights: WeightSource::Given(map), ..CodegenOptions::default() };
    let p = codegen::compile(&g, &ChipDesc::default(), &options).unwrap_or_else(|e| panic!("{e}"));
    let seg = p.data.iter().find(|d| d.name == "f1.weight_master").unwrap_or_else(|| panic!("no f1.weight_master"));
    let word = |j: usize| {
        f32::from_le_bytes([seg.bytes[4 * j], seg.bytes[4 * j + 1], seg.bytes[4 * j + 2], seg.bytes[4 * j + 3]])
    };
    // Element [i=1][o=2] of the k x n matrix is W[2][1].
    assert_eq!(word(32 + 2), half::f16::from_f32(2.01).to_f32());
}

#[test]
fn conv_weights_keep_pytorch_layout_and_parity_symbols_verify() {
    let g = graph("conv16");
    // c1 is [cout=8][cin=1][3][3]; W[j] = j/128 is exact in FP16, so any reordering shows.
    let w1: Vec<f32> = (0..72).map(|j| j as f32 / 128.0).collect();
    let mut map = std::collections::BTreeMap::new();
    map.insert("c1".to_string(), LayerWeights { weight: w1.clone(), bias: None });
    let weights = WeightSource::Given(map);
    let options = CodegenOptions { weights, keep_activations: true, ..CodegenOptions::default() };
    let p = codegen::compile(&g, &ChipDesc::default(), &options).unwrap_or_else(|e| panic!("{e}"));
    let seg = p.data.iter().find(|d| d.name == "c1.weight").unwrap_or_else(|| panic!("no c1.weight"));
    let got: Vec<f32> = seg.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
    assert_eq!(got, w1);
    let names: Vec<&str> = p.symbols.iter().map(|s| s.name.as_str()).collect();
    for want in ["s1.S", "s1.H", "s1.dS", "s1.dH", "c1.grad", "c2.grad", "f3.grad"] {
        assert!(names.contains(&want), "missing {want} in {names:?}");
    }
    assert!(isa::verify::verify(&p, &ChipDesc::default()).is_empty());
}

/// The graph accepts padding below the window; PyTorch (and `fp.pool`) only up to half of it.
#[test]
fn pooling_padded_beyond_half_its_window_is_a_clear_error() {
    let text = source("conv16")
        .replace("p1 = avgpool(s1, kernel = 2, stride = 2)", "p1 = avgpool(s1, kernel = 3, stride = 1, padding = 2)");
    let err = compile(&graph_of(&text)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("layer `p1`: code generation does not support this pooling yet: pool window 3"), "{err}");
    assert!(err.contains("padding at most half the window"), "{err}");
}

/// A model that must be staged (its fc has more inputs than `fp.w` holds) with a staged
/// limit in the way: the error gives the staged reason with the sizes that cause it, then
/// why a resident program would not do.
#[test]
fn a_layer_that_can_be_neither_resident_nor_staged_says_both_why() {
    let model = |shape: &str, fc: &str| {
        format!(
            "model odd {{\n  timesteps = 2\n  batch = 2\n  x = input(shape = {shape}, encoding = bernoulli(max_rate = 1.0, seed = 1))\n\
             {fc}\n  o = linear(f, out = 6)\n  os = lif(o)\n  loss = mse_rate(os)\n  optimizer = sgd(lr = 0.1, momentum = 0.0)\n}}\n"
        )
    };
    let conv =
        model("[3, 11, 11]", "  c = conv2d(x, out = 11, kernel = 3, padding = 1)\n  s = lif(c)\n  f = flatten(s)");
    let err = compile(&graph_of(&conv)).err().map(|e| e.to_string()).unwrap_or_default();
    let staged = "layer `c`: code generation does not support spike maps that are not whole bytes in a staged \
                  program yet: 363 input spikes (3x11x11) and 1331 output spikes (11x11x11) per sample-step";
    assert!(err.starts_with(staged), "{err}");
    assert!(err.contains("resident one does not fit: layer `o` needs 1331 elements of `fp.w`"), "{err}");
    let fc = model("[1331]", "  h = linear(x, out = 24)\n  f = lif(h)");
    let err = compile(&graph_of(&fc)).err().map(|e| e.to_string()).unwrap_or_default();
    let staged = "layer `h`: code generation does not support this layer in a staged program yet: no chunk of the \
                  1331 inputs fits `fp.w`: a chunk must divide 1331, be a multiple of 8";
    assert!(err.starts_with(staged), "{err}");
    assert!(err.contains("resident one does not fit: layer `h` needs 1331 elements of `fp.w`"), "{err}");
    // A multiple of 8 inputs compiles, so the test's models differ from good ones only there.
    assert!(compile(&graph_of(&fc.replace("[1331]", "[1336]"))).is_ok());
    assert!(compile(&graph_of(&conv.replace("[3, 11, 11]", "[3, 12, 12]").replace("out = 11", "out = 12"))).is_ok());
}

#[test]
fn wrong_given_weights_name_the_layer() {
    let g = graph("fc16");
    let mut map = std::collections::BTreeMap::new();
    map.insert("f2".to_string(), LayerWeights { weight: vec![0.0; 3], bias: None });
    let options = CodegenOptions { weights: WeightSource::Given(map), ..CodegenOptions::default() };
    let err = codegen::compile(&g, &ChipDesc::default(), &options).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("weights of layer `f2`: 3 weights given, expected 10 x 32 = 320"));
}

#[test]
fn a_chip_with_fewer_cores_than_layers_gets_a_staged_program() {
    let mut chip = ChipDesc::default();
    chip.cores.truncate(1);
    chip.noc.width = 1;
    chip.noc.height = 1;
    let p = codegen::compile(&graph("fc16"), &chip, &CodegenOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.cores.len(), 1);
    assert!(isa::verify::verify(&p, &chip).is_empty());
    // Staged programs keep everything between layers in DRAM.
    assert!(p.symbols.iter().any(|s| s.name == "s1.spikes"), "{:?}", p.symbols);
}

#[test]
fn steps_per_run_loop_instead_of_growing_the_program() {
    let g = graph("digits");
    let one = compile(&g).unwrap_or_else(|e| panic!("{e}"));
    let options = CodegenOptions { steps: 50, ..CodegenOptions::default() };
    let many = codegen::compile(&g, &ChipDesc::default(), &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(instruction_counts(&one), instruction_counts(&many));
    let size = |p: &isa::Program, name: &str| p.symbols.iter().find(|s| s.name == name).map(|s| s.len);
    assert_eq!(size(&many, "loss"), Some(50 * 4));
    assert_eq!(size(&many, "input").zip(size(&one, "input")).map(|(m, o)| m / o), Some(50));
}

#[test]
fn default_placements() {
    let chip = ChipDesc::default();
    let text: String = ["fc16", "fc784", "digits"]
        .iter()
        .map(|m| {
            let g = graph(m);
            codegen::Placement::default_for(&g, &chip).map_or_else(|e| format!("error: {e}\n"), |p| p.to_text(&g))
        })
        .collect();
    insta::assert_snapshot!(text);
}

/// Every model in `models/` is in one of the lists above, so a new model cannot skip the
/// verifier, determinism and round-trip checks.
#[test]
fn every_model_file_is_checked() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".snn").map(str::to_string)).collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        assert!(SMALL.contains(&name.as_str()) || LARGE.contains(&name.as_str()), "models/{name}.snn is in no list");
    }
}
