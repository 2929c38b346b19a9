//! Loading the chip description every command that targets a chip takes with `--chip`.

use super::Failure;
use super::output::read_text;
use isa::{ChipDesc, ChipError};
use std::path::Path;

/// The chip described by `path` (a partial TOML file over the built-in default), or the
/// built-in default when there is no file. Every problem in the file is listed.
pub fn load_chip(path: Option<&Path>) -> Result<ChipDesc, Failure> {
    let Some(path) = path else { return Ok(ChipDesc::default()) };
    let text = read_text(path)?;
    ChipDesc::from_toml_str(&text).map_err(|error| Failure::Input(describe(path, &error)))
}

fn describe(path: &Path, error: &ChipError) -> String {
    match error {
        ChipError::Syntax(message) => format!("error: {} is not a valid chip description: {message}\n", path.display()),
        ChipError::Invalid(problems) => {
            let mut text = format!("error: {} describes an impossible chip:\n", path.display());
            for problem in problems {
                text.push_str(&format!("  - {problem}\n"));
            }
            text.push_str("  = help: `snnc chip` prints the built-in description with every key and its unit\n");
            text
        }
    }
}
