//! `snnc sim`: run a program on the instruction-level simulator and say what it cost.
//!
//! The binary links the simulator; the compiler library never does (the two meet only
//! through `isa`). This module is the one place that turns simulator results into text.

use super::Failure;
use super::chip_file::load_chip;
use super::output::{print, write_atomically};
use super::program_cmds::load_program;
use clap::Args;
use sim::{Machine, RunStats, SimOptions};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `snnc sim`.
#[derive(Args)]
pub struct SimArgs {
    /// The binary program (`*.bin`), as `snnc compile` writes it.
    program: PathBuf,
    /// Chip description (TOML); the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
    /// Raw bytes to place at the program's `input` symbol before running (the layout
    /// `snnc compile` documents: bit-packed spikes [B, T, features] or FP16 currents).
    #[arg(long)]
    input: Option<PathBuf>,
    /// How many times to run the program (training steps on the same data).
    #[arg(long, default_value_t = 1)]
    steps: u32,
    /// List the instruction kinds that cost the most cycles.
    #[arg(long)]
    profile: bool,
    /// Write a Chrome/Perfetto trace of engine activity per core to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Print the statistics as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `snnc sim PROGRAM ...`.
pub fn sim(args: &SimArgs) -> Result<(), Failure> {
    let chip = load_chip(args.chip.as_deref())?;
    let program = load_program(&args.program)?;
    let options = SimOptions { trace: args.trace.is_some(), ..SimOptions::default() };
    let mut machine = Machine::new(&program, &chip, options).map_err(|e| Failure::Input(format!("error: {e}\n")))?;
    if let Some(path) = &args.input {
        let bytes = std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
        machine
            .write_symbol("input", &bytes)
            .map_err(|e| Failure::Input(format!("error: {}: {e}\n", path.display())))?;
    }
    let mut last = None;
    for _ in 0..args.steps.max(1) {
        last = Some(machine.run().map_err(|e| Failure::Input(format!("error: the program failed: {e}\n")))?);
    }
    let Some(stats) = last else { return Ok(()) };
    if let (Some(path), Some(trace)) = (&args.trace, &stats.trace) {
        write_atomically(path, trace.to_chrome_json().as_bytes())?;
    }
    print(&if args.json { stats.to_json() + "\n" } else { report(&stats, args.profile) });
    Ok(())
}

/// The human report: totals, then busy and stall shares per core and engine.
fn report(stats: &RunStats, profile: bool) -> String {
    let mut text = String::new();
    for line in stats.summary().lines() {
        // The summary ends with the per-instruction profile, shown only with --profile.
        if profile || !line.starts_with("  ") {
            let _ = writeln!(text, "{line}");
        }
    }
    let _ = writeln!(text, "\ncore  engine  instructions       busy      stall  busy%");
    for (core, streams) in stats.streams.iter().enumerate() {
        for (name, s) in ["fp", "bp", "wg", "dma"].iter().zip(streams) {
            if s.instructions == 0 {
                continue;
            }
            let share = 100.0 * s.busy as f64 / stats.cycles.max(1) as f64;
            let _ = writeln!(
                text,
                "{core:>4}  {name:<6}  {:>12} {:>10} {:>10} {share:>6.1}",
                s.instructions, s.busy, s.stall
            );
        }
    }
    text
}
