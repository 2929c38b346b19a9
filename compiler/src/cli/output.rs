//! Reading inputs and writing outputs safely: a failed command never leaves a partial file.

use super::Failure;
use std::io::Write;
use std::path::Path;

/// Reads a text file, naming it in the error.
pub fn read_text(path: &Path) -> Result<String, Failure> {
    let bytes = std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Failure::Io(format!("{} is not UTF-8 text (byte {} is invalid)", path.display(), e.utf8_error().valid_up_to()))
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so
/// readers see either the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.snnc-tmp"));
    let io = |e: std::io::Error| Failure::Io(format!("cannot write {}: {e}", path.display()));
    let result = std::fs::File::create(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io)
}

/// Prints to stdout, ignoring a closed pipe (`snnc graph m.snn | head`).
pub fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}
