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
