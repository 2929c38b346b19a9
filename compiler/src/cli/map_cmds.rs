//! `snnc map` and `snnc chip`: the commands that put a model on a chip.

use super::Failure;
pub use super::chip_file::load_chip;
use super::model_cmds::load_graph;
use super::output::print;
use clap::{Args, ValueEnum};
use snnc::map::{MapOptions, Objective, map_graph};
use snnc::report::{Report, dot, text};
use std::path::PathBuf;

/// Arguments of `snnc map`.
#[derive(Args)]
pub struct MapArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
    /// Chip description (TOML); the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
    /// What the mapping minimises per training step.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Latency)]
    objective: ObjectiveArg,
    /// Assumed fraction of neurons spiking per timestep (0..=1).
    #[arg(long, default_value_t = 0.15, value_parser = fraction)]
    firing_rate: f64,
    /// Assumed fraction of non-zero back-propagated errors (0..=1).
    #[arg(long, default_value_t = 0.3, value_parser = fraction)]
    error_density: f64,
    /// Use the firing rates and error density a simulator run measured (`snnc sim --json`
    /// output of this model's program) instead of the assumed ones.
    #[arg(long)]
    measured: Option<PathBuf>,
    /// Print the `snnc-map/1` JSON document instead of the table.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print the mapped graph as Graphviz DOT (`| dot -Tsvg`), cores as clusters.
    #[arg(long)]
    dot: bool,
}

/// Arguments of `snnc chip`.
#[derive(Args)]
pub struct ChipArgs {
    /// Chip description (TOML) laid over the built-in one; the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
}

/// Objectives of `snnc map`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    /// Fewest cycles per training step.
    Latency,
    /// Least energy per training step.
    Energy,
    /// Least DRAM traffic per training step.
    Dram,
}

fn fraction(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is outside 0..=1")) }
}

/// `snnc map MODEL [--chip CHIP] [--objective O] [--json | --dot]`.
pub fn map(args: &MapArgs) -> Result<(), Failure> {
    let graph = load_graph(&args.model)?;
    let chip = load_chip(args.chip.as_deref())?;
    let objective = match args.objective {
        ObjectiveArg::Latency => Objective::Latency,
        ObjectiveArg::Energy => Objective::Energy,
        ObjectiveArg::Dram => Objective::Dram,
    };
    let measured = match &args.measured {
        Some(path) => super::measured::load_measured(path, &graph)?,
        None => super::measured::Measured::default(),
    };
    let options = MapOptions {
        objective,
        firing_rate: args.firing_rate,
        error_density: measured.error_density.unwrap_or(args.error_density),
        measured_firing: measured.firing,
    };
    let mapping = map_graph(&graph, &chip, &options)
        .map_err(|e| Failure::Input(format!("error: cannot map {}: {e}\n", args.model.display())))?;
    let report = Report::new(&mapping, &graph, &chip);
    let out = match (args.json, args.dot) {
        (true, _) => report.to_json(),
        (_, true) => dot::render(&report),
        _ => text::render(&report, &chip),
    };
    print(&out);
    Ok(())
}

/// `snnc chip [--chip CHIP]`: the effective description as TOML.
pub fn chip(args: &ChipArgs) -> Result<(), Failure> {
    let chip = load_chip(args.chip.as_deref())?;
    print(&chip.to_toml_string());
    Ok(())
}
