//! `snnc compile` as a user runs it: it writes the program, prints each stage on request,
//! and a failing compile leaves no file behind.

mod common;

use common::text;
use std::path::{Path, PathBuf};
use std::process::Output;

fn snnc(args: &[&str], dir: &Path) -> Output {
    common::snnc_in(dir, args)
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("codegen-cli", name)
}

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name).to_string_lossy().into_owned()
}

#[test]
fn compile_writes_a_program_that_verifies() {
    let dir = scratch("writes");
    let out = snnc(&["compile", &model("fc16.snn"), "-o", "fc16.bin"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("instructions"), "{}", text(&out.stdout));
    let verify = snnc(&["verify", "fc16.bin"], &dir);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

#[test]
fn compile_defaults_to_the_model_stem_in_the_current_folder() {
    let dir = scratch("default");
    let out = snnc(&["compile", &model("fc16_rect_cemem.snn")], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("fc16_rect_cemem.bin").is_file());
}

#[test]
fn emit_asm_prints_a_listing_that_assembles_to_the_binary() {
    let dir = scratch("emit");
    let asm = snnc(&["compile", &model("fc16.snn"), "--emit", "asm"], &dir);
    assert!(asm.status.success(), "{}", text(&asm.stderr));
    let bin = snnc(&["compile", &model("fc16.snn"), "--emit", "bin"], &dir);
    let program = isa::asm::assemble(&text(&asm.stdout)).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(program.to_bytes(), bin.stdout);
    for stage in ["ast", "graph", "mapping"] {
        let out = snnc(&["compile", &model("fc16.snn"), "--emit", stage], &dir);
        assert!(out.status.success() && !out.stdout.is_empty(), "{stage}: {}", text(&out.stderr));
    }
}

#[test]
fn a_failing_compile_leaves_no_file() {
    let dir = scratch("fails");
    // Padding beyond half a pooling window is valid for the graph but not for PyTorch or
    // `fp.pool`, so code generation refuses it, naming the layer.
    let models = scratch("fails-model");
    let source = std::fs::read_to_string(model("conv16.snn")).unwrap_or_default();
    let source = source
        .replace("p1 = avgpool(s1, kernel = 2, stride = 2)", "p1 = maxpool(s1, kernel = 3, stride = 1, padding = 2)");
    let path = models.join("padded.snn");
    std::fs::write(&path, source).unwrap_or_else(|e| panic!("{e}"));
    let out = snnc(&["compile", &path.to_string_lossy(), "-o", "padded.bin"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("layer `p1`"), "{}", text(&out.stderr));
    assert!(!dir.join("padded.bin").exists());
    let leftovers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0);
}

/// A tensor of a weights file: name, shape and values.
type Named<'a> = (&'a str, Vec<usize>, Vec<f32>);

/// Writes a safetensors file of `tensors` for model `model`.
fn weights_file(dir: &Path, model: &str, tensors: &[Named<'_>]) -> String {
    use sim::record::{Tensor, TensorData, Weights};
    let tensors = tensors
        .iter()
        .map(|(name, shape, v)| Tensor {
            name: name.to_string(),
            shape: shape.clone(),
            data: TensorData::F32(v.clone()),
        })
        .collect();
    let weights = Weights::new(Some(model.to_string()), tensors).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("given.safetensors");
    weights.save(&path).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

/// The FP16 values of a program's data segment, widened.
fn segment(program: &isa::Program, name: &str) -> Vec<f32> {
    let seg = program.data.iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no segment {name}"));
    seg.bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

fn program_at(path: &Path) -> isa::Program {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    isa::Program::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e:?}"))
}

/// `--weights` puts the file's layer into the program, transposed to the chip's `[in][out]`
/// and rounded to FP16; a layer the file does not name is drawn from `init` as without it.
#[test]
fn given_weights_replace_the_drawn_ones_layer_by_layer() {
    let dir = scratch("weights");
    let w1: Vec<f32> = (0..32 * 16).map(|i| (i as f32 - 250.0) / 300.0).collect();
    let file = weights_file(&dir, "fc16", &[("f1.weight", vec![32, 16], w1.clone())]);
    let out = snnc(&["compile", &model("fc16.snn"), "--weights", &file, "-o", "given.bin"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let drawn = snnc(&["compile", &model("fc16.snn"), "-o", "drawn.bin"], &dir);
    assert!(drawn.status.success(), "{}", text(&drawn.stderr));
    let (given, drawn) = (program_at(&dir.join("given.bin")), program_at(&dir.join("drawn.bin")));
    let want: Vec<f32> = (0..16 * 32).map(|j| half::f16::from_f32(w1[(j % 32) * 16 + j / 32]).to_f32()).collect();
    assert_eq!(segment(&given, "f1.weight"), want);
    assert_eq!(segment(&given, "f2.weight"), segment(&drawn, "f2.weight"));
    assert_ne!(segment(&given, "f1.weight"), segment(&drawn, "f1.weight"));
}

/// Weights of another model, a tensor of no layer, a wrong size or an unreadable file are
/// errors that name the problem and leave no program behind.
#[test]
fn bad_weight_files_are_clear_errors() {
    let dir = scratch("bad-weights");
    let w1 = vec![0.5; 32 * 16];
    let cases: Vec<(Vec<Named<'_>>, &str, &str)> = vec![
        (vec![("f1.weight", vec![32, 16], w1.clone())], "digits", "the weights are of model `digits`, not `fc16`"),
        (vec![("f9.weight", vec![32, 16], w1.clone())], "fc16", "tensor `f9.weight` belongs to no layer"),
        (vec![("f1.weight", vec![16, 16], vec![0.5; 256])], "fc16", "256 weights given, expected 32 x 16 = 512"),
        (vec![("f1.bias", vec![32], vec![0.5; 32])], "fc16", "`f1.bias` is given without `f1.weight`"),
    ];
    for (tensors, owner, message) in cases {
        let file = weights_file(&dir, owner, &tensors);
        let out = snnc(&["compile", &model("fc16.snn"), "--weights", &file, "-o", "bad.bin"], &dir);
        assert_eq!(out.status.code(), Some(1), "{message}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(message), "{message}: {}", text(&out.stderr));
        assert!(!dir.join("bad.bin").exists(), "{message}: a program was written");
    }
    let out = snnc(&["compile", &model("fc16.snn"), "--weights", "missing.safetensors", "-o", "bad.bin"], &dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!dir.join("bad.bin").exists());
}

/// The `cores` column of `snnc map`'s table, by the unit's weight layer.
fn mapped_cores(table: &str) -> Vec<(String, String)> {
    let rows = table.lines().skip_while(|l| !l.starts_with("unit ")).skip(1);
    let rows = rows.take_while(|l| l.starts_with('L'));
    rows.filter_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let weight = cols.get(1)?.split('+').next()?.to_string();
        Some((weight, cols.get(3)?.to_string()))
    })
    .collect()
}

/// The cores `--emit mapping` gives the unit whose weight layer is `weight`.
fn emitted_cores(text: &str, weight: &str) -> Option<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("{weight} + ")));
    let line = lines.nth(1)?;
    Some(line.strip_prefix("  cores ")?.split_whitespace().next()?.to_string())
}

#[test]
fn emit_mapping_gives_each_layer_the_cores_snnc_map_reports() {
    let dir = scratch("mapped");
    let vgg = model("vgg_cifar_small.snn");
    let table = text(&snnc(&["map", &vgg], &dir).stdout);
    let units = mapped_cores(&table);
    assert_eq!(units.len(), 4, "{table}");
    let out = snnc(&["compile", &vgg, "--emit", "mapping"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let emitted = text(&out.stdout);
    assert!(emitted.starts_with("placement mapped:"), "{emitted}");
    for (weight, cores) in &units {
        assert_eq!(emitted_cores(&emitted, weight).as_ref(), Some(cores), "{weight}: {emitted}");
        assert!(emitted.contains(&format!("  cores {cores} (mapped);")), "{emitted}");
    }
    let all = snnc(&["compile", &vgg, "--emit", "mapping", "--placement", "all-cores"], &dir);
    let all = text(&all.stdout);
    assert!(all.starts_with("placement all-cores:") && all.matches("  cores 0-19 (all);").count() == 4, "{all}");
}

#[test]
fn placement_is_explained_and_checked_on_the_command_line() {
    let dir = scratch("placement-help");
    for command in ["compile", "train"] {
        let help = text(&snnc(&[command, "--help"], &dir).stdout);
        assert!(help.contains("--placement") && help.contains("all-cores") && help.contains("mapped"), "{help}");
    }
    let out = snnc(&["compile", &model("fc16.snn"), "--placement", "nowhere"], &dir);
    assert!(!out.status.success(), "an unknown placement is refused");
    assert!(text(&out.stderr).contains("all-cores"), "{}", text(&out.stderr));
    let compiled = snnc(&["compile", &model("fc16.snn"), "--placement", "all-cores", "-o", "fc16.bin"], &dir);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
}
