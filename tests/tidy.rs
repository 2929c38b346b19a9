//! Repository hygiene: every Rust module opens with a `//!` doc saying what it is for.

use snnc_e2e::{display_path, repo_root};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') && name != "target" && name != "snapshots" {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_has_a_doc_comment() {
    let mut files = Vec::new();
    for crate_dir in ["isa", "compiler", "runtime-sim", "tests"] {
        rust_files(&repo_root().join(crate_dir), &mut files);
    }
    assert!(files.len() > 10, "found too few Rust files: {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|path| display_path(path))
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` doc: {missing:?}");
}
