//! Helpers shared by the end-to-end tests: where the repository's files are.

use std::path::{Path, PathBuf};

/// The repository root (the folder holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The model files directly in `dir` (relative to the root), sorted by name.
pub fn model_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "snn"));
    files.sort();
    files
}

/// A path relative to the repository root, with `/` separators, as users write it.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).to_string_lossy().replace('\\', "/")
}
