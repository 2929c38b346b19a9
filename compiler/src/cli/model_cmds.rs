//! `snnc check`, `snnc graph` and `snnc fmt`: the commands that read a model file.

use super::Failure;
use super::output::{print, read_text, write_atomically};
use clap::{Args, ValueEnum};
use snnc::diagnostics::render;
use snnc::graph::{LayerGraph, dump, stats};
use std::path::{Path, PathBuf};

/// Arguments of `snnc check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
}

/// Arguments of `snnc graph`.
#[derive(Args)]
pub struct GraphArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
    /// Output format: a table, Graphviz DOT (`| dot -Tsvg`), or JSON (`snnc-graph/1`).
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
}

/// Formats of `snnc graph`.
#[derive(Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// A table of layers.
    Text,
    /// Graphviz DOT.
    Dot,
    /// JSON for tools.
    Json,
}

/// Arguments of `snnc fmt`.
#[derive(Args)]
pub struct FmtArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
    /// Rewrite the file in place instead of printing it.
    #[arg(long, conflicts_with = "check")]
    write: bool,
    /// Exit with status 1 if the file is not in canonical form; print nothing.
    #[arg(long)]
    check: bool,
}

/// Reads and checks a model, rendering its errors against the file.
pub fn load_graph(path: &Path) -> Result<LayerGraph, Failure> {
    let source = read_text(path)?;
    snnc::compile_graph(&source).map_err(|errors| Failure::Input(render(&path.display().to_string(), &source, &errors)))
}

/// `snnc check MODEL`.
pub fn check(args: &CheckArgs) -> Result<(), Failure> {
    let graph = load_graph(&args.model)?;
    let totals = stats::graph_stats(&graph);
    print(&format!("{}: ok\n{}\n", graph.name, dump::totals_text(&totals)));
    Ok(())
}

/// `snnc graph MODEL --format F`.
pub fn graph(args: &GraphArgs) -> Result<(), Failure> {
    let graph = load_graph(&args.model)?;
    let text = match args.format {
        GraphFormat::Text => dump::to_text(&graph),
        GraphFormat::Dot => dump::to_dot(&graph),
        GraphFormat::Json => dump::to_json(&graph),
    };
    print(&text);
    Ok(())
}

/// `snnc fmt MODEL [--write | --check]`.
pub fn fmt(args: &FmtArgs) -> Result<(), Failure> {
    let source = read_text(&args.model)?;
    let formatted = snnc::format_source(&source)
        .map_err(|errors| Failure::Input(render(&args.model.display().to_string(), &source, &errors)))?;
    if args.check {
        return match formatted == source {
            true => Ok(()),
            false => Err(Failure::Input(format!(
                "{} is not in canonical form; run `snnc fmt --write {}`\n",
                args.model.display(),
                args.model.display()
            ))),
        };
    }
    if args.write {
        return if formatted == source { Ok(()) } else { write_atomically(&args.model, formatted.as_bytes()) };
    }
    print(&formatted);
    Ok(())
}
