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
