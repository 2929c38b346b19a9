//! Whole-file writes that never leave a partial output behind.
//!
//! The repository's rule is that a failed command leaves no partial output file. Every output
//! of this module is therefore written to a temporary file in the destination's folder and
//! renamed over the destination only once complete (a rename within one file system is
//! atomic on the platforms we target).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::RecordError;

/// Writes `bytes` to `path` through a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let tmp = temp_path(path);
    let io = |source| RecordError::Io { path: path.to_path_buf(), source };
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        // The temporary file is ours and useless now; failing to remove it changes nothing.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// `.NAME.tmp-PID` beside `path`, so the rename stays within one folder.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, RecordError> {
    std::fs::read(path).map_err(|source| RecordError::Io { path: path.to_path_buf(), source })
}
