//! `snnc sim`: run a program on the instruction-level simulator and say what it cost.
//!
//! The binary links the simulator; the compiler library never does (the two meet only
//! through `isa`). This module is the one place that turns simulator results into text.

use super::Failure;
use super::chip_file::load_chip;
use super::output::{print, write_atomically};
use super::program_cmds::load_program;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
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
    /// How many times to run the program (training steps on the same data); at least 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
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
    /// The model the program was compiled from: adds a comparison of the simulated totals
    /// with the mapping report's estimates (run with the rates this run measured), and
    /// gives every sample a one-hot target (class = sample index mod classes). Without it
    /// the targets stay zero, and a cross-entropy loss then back-propagates no error.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Stop with an error once a step runs past N simulated cycles, so that a program that
    /// loops without end (a corrupted loop count, say) is reported instead of running for
    /// hours. The default, 2^40, is 37 minutes of the built-in chip at 500 MHz.
    #[arg(long, value_name = "N", default_value_t = SimOptions::default().max_cycles)]
    max_cycles: u64,
}

/// `snnc sim PROGRAM ...`.
pub fn sim(args: &SimArgs) -> Result<(), Failure> {
    let chip = load_chip(args.chip.as_deref())?;
    let program = load_program(&args.program)?;
    let options = SimOptions { trace: args.trace.is_some(), max_cycles: args.max_cycles, ..SimOptions::default() };
    let mut machine = Machine::new(&program, &chip, options).map_err(|e| Failure::Input(format!("error: {e}\n")))?;
    if let Some(path) = &args.input {
        let bytes = std::fs::read(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
        machine
            .write_symbol("input", &bytes)
            .map_err(|e| Failure::Input(format!("error: {}: {e}\n", path.display())))?;
    } else if program.symbols.iter().any(|s| s.name == "input") {
        // Zero input is a legal run, but its figures (no spikes, forward work all skipped)
        // are rarely the ones wanted.
        eprintln!("note: no --input: the program's input is all zeros, so no layer fires (see docs/simulator.md)");
    }
    if let Some(model) = &args.model {
        let classes = super::model_cmds::load_graph(model)?.classes() as usize;
        write_targets(&mut machine, &program, classes)?;
    }
    let bar = steps_bar(args.steps);
    let mut last = None;
    for _ in 0..args.steps {
        let run = machine.run();
        bar.inc(1);
        last = Some(run.map_err(|e| {
            bar.finish_and_clear();
            Failure::Input(format!("error: the program failed: {e}\n"))
        })?);
    }
    bar.finish_and_clear();
    let Some(stats) = last else { return Ok(()) };
    if let (Some(path), Some(trace)) = (&args.trace, &stats.trace) {
        write_atomically(path, trace.to_chrome_json().as_bytes())?;
    }
    let mut out = if args.json { stats.to_json() + "\n" } else { report(&stats, args.profile) };
    if let (Some(model), false) = (&args.model, args.json) {
        out.push_str(&compare_with_map(model, &chip, &stats)?);
    }
    print(&out);
    Ok(())
}

/// A progress bar over `steps` runs, on standard error when it is a terminal (indicatif
/// draws nothing otherwise), and none for a single run.
fn steps_bar(steps: u32) -> ProgressBar {
    if steps <= 1 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::from(steps));
    if let Ok(style) = ProgressStyle::with_template("sim [{bar:24}] step {pos}/{len}, {elapsed} elapsed, {eta} left") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// One-hot targets for every sample slot of the `target` symbol (`[S][B][classes]` FP16):
/// slot `i` is of class `i mod classes`.
fn write_targets(machine: &mut Machine, program: &isa::Program, classes: usize) -> Result<(), Failure> {
    let Some(sym) = program.symbols.iter().find(|s| s.name == "target") else { return Ok(()) };
    let classes = classes.max(1);
    let slots = sym.len as usize / 2 / classes;
    let onehot: Vec<f32> =
        (0..slots * classes).map(|i| f32::from(u8::from(i % classes == (i / classes) % classes))).collect();
    machine.write_f16("target", &onehot).map_err(|e| Failure::Input(format!("error: {e}\n")))
}

/// Simulated totals against the mapping pass's estimates for the same model and chip, with
/// the firing rates and error density this run measured fed to the cost model.
fn compare_with_map(model: &std::path::Path, chip: &isa::ChipDesc, stats: &RunStats) -> Result<String, Failure> {
    let graph = super::model_cmds::load_graph(model)?;
    let json = stats.to_json();
    let measured = super::measured::measured_from_json(&json, &graph, model)?;
    let options = snnc::map::MapOptions {
        error_density: measured.error_density.unwrap_or(snnc::map::MapOptions::default().error_density),
        measured_firing: measured.firing,
        ..snnc::map::MapOptions::default()
    };
    let mapping = snnc::map::map_graph(&graph, chip, &options)
        .map_err(|e| Failure::Input(format!("error: cannot map {}: {e}\n", model.display())))?;
    let estimate = &mapping.total;
    let mut rows = vec![
        ("cycles", stats.cycles as f64, estimate.cycles as f64),
        ("DRAM bytes", stats.dram.total_bytes() as f64, estimate.dram.total() as f64),
    ];
    rows.extend(dram_by_kind(&stats.dram, &estimate.dram));
    rows.extend([
        ("NoC bytes", stats.noc.bytes as f64, estimate.noc_bytes as f64),
        ("energy (uJ)", stats.energy.total_pj() * 1e-6, estimate.energy.total() * 1e-6),
    ]);
    let mut text = String::from("\nsimulated vs mapping estimate (snnc map, measured rates)\n");
    let _ = writeln!(text, "{:<16} {:>14} {:>14} {:>8}", "", "simulated", "estimated", "ratio");
    for (name, simulated, estimated) in rows {
        let ratio = if estimated > 0.0 { format!("{:.2}", simulated / estimated) } else { "-".to_string() };
        let _ = writeln!(text, "{name:<16} {simulated:>14.1} {estimated:>14.1} {ratio:>8}");
    }
    Ok(text)
}

/// The DRAM bytes (read and written) of the run and of the estimate by kind, in the
/// mapping's kinds: its weights are FP16 weights and FP32 masters, which the simulator
/// counts as weights and optimizer state, so the two go together with the moments. The
/// run's bytes at addresses no symbol names (`other`) have no estimate.
fn dram_by_kind(sim: &sim::machine::DramStats, map: &snnc::map::cost::DramBytes) -> [(&'static str, f64, f64); 8] {
    use sim::machine::DramKind as K;
    let moved = |kinds: &[K]| -> f64 {
        let of = |m: &std::collections::BTreeMap<K, u64>, k: &K| m.get(k).copied().unwrap_or(0);
        kinds.iter().map(|k| of(&sim.read, k) + of(&sim.written, k)).sum::<u64>() as f64
    };
    [
        ("  weights+opt", moved(&[K::Weights, K::OptimizerState]), (map.weights + map.optimizer) as f64),
        ("  input", moved(&[K::Inputs]), map.input_spikes as f64),
        ("  spikes", moved(&[K::Spikes]), map.spikes as f64),
        ("  membranes", moved(&[K::Membranes]), map.membranes as f64),
        ("  masks", moved(&[K::Masks]), map.masks as f64),
        ("  errors", moved(&[K::Errors]), map.errors as f64),
        ("  gradients", moved(&[K::Gradients]), map.gradients as f64),
        ("  other", moved(&[K::Other]), 0.0),
    ]
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
