//! Helpers shared by the tests that run the `snnc` binary: running it, finding repository
//! files, and scratch folders; and by those that run the simulator on a model's training
//! program. Each test binary uses a subset, hence the allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `snnc` with `args` in the current folder.
pub fn snnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snnc")).args(args).output().unwrap_or_else(|e| panic!("cannot run snnc: {e}"))
}

/// Runs `snnc` with `args` in `dir`, for commands that write next to where they run.
pub fn snnc_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snnc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run snnc: {e}"))
}

/// A path relative to the repository root, as a string argument.
pub fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path).to_string_lossy().into_owned()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh, empty scratch folder named after the test binary's `prefix` and the test.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snnc-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// The training program of `models/MODEL.snn` for one step on `chip`, as `snnc compile`
/// makes it.
pub fn training_program(model: &str, chip: &isa::ChipDesc) -> isa::Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{model}.snn"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let graph = snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let options = snnc::codegen::CodegenOptions { steps: 1, train: true, ..Default::default() };
    snnc::codegen::compile(&graph, chip, &options).unwrap_or_else(|e| panic!("{model}: {e:?}"))
}
