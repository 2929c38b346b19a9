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
    // resnet18_imagenet's stem pooling has padding, which code generation does not support.
    let out = snnc(&["compile", &model("resnet18_imagenet.snn"), "-o", "resnet.bin"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("layer `stem_pool`"), "{}", text(&out.stderr));
    assert!(!dir.join("resnet.bin").exists());
    let leftovers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0);
}
