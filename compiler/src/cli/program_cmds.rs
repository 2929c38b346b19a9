//! `snnc asm`, `snnc disasm` and `snnc verify`: the commands that read and write programs.

use super::Failure;
use super::chip_file::load_chip;
use super::output::{print, read_text, write_atomically};
use clap::Args;
use snnc::diagnostics::{Diagnostic, Span, render};
use std::path::{Path, PathBuf};

/// Arguments of `snnc asm`.
#[derive(Args)]
pub struct AsmArgs {
    /// The assembly listing (`*.s`), as `snnc disasm` prints it.
    listing: PathBuf,
    /// Where to write the binary program.
    #[arg(short, long)]
    output: PathBuf,
}

/// Arguments of `snnc disasm`.
#[derive(Args)]
pub struct DisasmArgs {
    /// The binary program (`*.bin`).
    program: PathBuf,
}

/// Arguments of `snnc verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The binary program (`*.bin`).
    program: PathBuf,
    /// Chip description (TOML); the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
}

/// Reads and decodes a binary program, naming the byte offset of any damage.
pub fn load_program(path: &Path) -> Result<isa::Program, Failure> {
    let bytes = std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
    isa::Program::from_bytes(&bytes)
        .map_err(|e| Failure::Input(format!("error: {} is not a valid program: {e}\n", path.display())))
}

/// `snnc asm LISTING -o PROGRAM`.
pub fn asm(args: &AsmArgs) -> Result<(), Failure> {
    let text = read_text(&args.listing)?;
    let program = isa::asm::assemble(&text).map_err(|errors| {
        let diagnostics: Vec<Diagnostic> = errors.iter().map(|e| asm_diagnostic(&text, e)).collect();
        Failure::Input(render(&args.listing.display().to_string(), &text, &diagnostics))
    })?;
    write_atomically(&args.output, &program.to_bytes())
}

/// An assembler error as a diagnostic pointing at its line and column.
fn asm_diagnostic(text: &str, error: &isa::AsmError) -> Diagnostic {
    let line_start: usize = text.split_inclusive('\n').take(error.line.saturating_sub(1)).map(str::len).sum();
    let line = text.get(line_start..).and_then(|rest| rest.lines().next()).unwrap_or("");
    let start = (line_start + error.col.saturating_sub(1)).min(line_start + line.len());
    let token_len = text.get(start..).map_or(0, |rest| rest.find(char::is_whitespace).unwrap_or(rest.len()));
    Diagnostic::error(Span::new(start, start + token_len.max(1)), &error.message, "here")
        .with_help("`snnc disasm` prints listings in the form `snnc asm` reads; isa/ISA.md lists every instruction")
}

/// `snnc disasm PROGRAM`.
pub fn disasm(args: &DisasmArgs) -> Result<(), Failure> {
    let program = load_program(&args.program)?;
    print(&isa::asm::print(&program));
    Ok(())
}

/// `snnc verify PROGRAM [--chip CHIP]`.
pub fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let chip = load_chip(args.chip.as_deref())?;
    let program = load_program(&args.program)?;
    let violations = isa::verify::verify(&program, &chip);
    if violations.is_empty() {
        let instructions: usize = program.cores.iter().flat_map(|c| c.streams.iter()).map(Vec::len).sum();
        print(&format!(
            "{}: ok ({instructions} instructions on {} cores)\n",
            args.program.display(),
            program.cores.len()
        ));
        return Ok(());
    }
    let mut text = format!("error: {} breaks {} rule(s) of the chip:\n", args.program.display(), violations.len());
    for violation in &violations {
        text.push_str(&format!("  - {violation}\n"));
    }
    Err(Failure::Input(text))
}
