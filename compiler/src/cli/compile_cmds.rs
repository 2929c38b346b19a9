//! `snnc compile`: the whole pipeline from a model file to a program, or any stage's text.
//!
//! Without `--emit`, the binary program goes to `-o FILE`, or to `<model-stem>.bin` in the
//! current folder, and a summary (instructions per core and engine, program size) is
//! printed. With `--emit STAGE` the pipeline stops after that stage and prints its stable
//! text form (raw bytes for `bin`) on stdout, or writes it to `-o FILE`. Any error leaves no
//! output file.

use super::Failure;
use super::chip_file::load_chip;
use super::model_cmds::load_graph;
use super::output::{print, read_text, write_atomically};
use clap::{Args, ValueEnum};
use snnc::codegen::{self, CodegenOptions, CoreMap, PlacementChoice, WeightSource};
use snnc::diagnostics::render;
use snnc::graph::dump;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `snnc compile`.
#[derive(Args)]
pub struct CompileArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
    /// Chip description (TOML); the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
    /// Output file (default without --emit: `<model-stem>.bin` in the current folder).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Stop after a stage and print its text form: ast, graph, mapping, asm or bin.
    #[arg(long, value_enum)]
    emit: Option<Stage>,
    /// Seed of the initial weights (overrides the model's `init` seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Initial weights from a safetensors file (as `snnc train` writes them: `<layer>.weight`
    /// and `<layer>.bias`, PyTorch layouts) instead of the model's `init`; layers the file
    /// does not name are drawn from `init`.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Also store S, V, H of every neuron layer and the weight gradients to DRAM.
    #[arg(long)]
    keep_activations: bool,
    /// Training steps (batches) per run of the program.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Which cores each layer's work goes to. `--emit mapping` prints the choice, the cores
    /// of every layer, and why any layer does not follow the mapping (which then uses the
    /// all-cores placement).
    #[arg(long, value_enum, default_value_t = PlacementArg::Mapped)]
    placement: PlacementArg,
}

/// Choices of `--placement`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlacementArg {
    /// Each layer on the cores `snnc map` gives it (default options). A resident program
    /// needs one core per unit: when the mapping splits a unit, it keeps unit i on core i.
    Mapped,
    /// No mapping: resident unit i on core i, a staged program's tiles over all cores
    /// (its layers run one after another, so this may be a few percent faster).
    AllCores,
}

impl PlacementArg {
    /// The library's choice.
    pub fn choice(self) -> PlacementChoice {
        match self {
            PlacementArg::Mapped => PlacementChoice::Mapped,
            PlacementArg::AllCores => PlacementChoice::AllCores,
        }
    }
}

/// Stages `--emit` can stop at.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// The model in canonical form (the formatter's output).
    Ast,
    /// The layer graph table.
    Graph,
    /// The placement: each layer's cores (and a staged program's tiling), and why any
    /// layer does not follow the mapping.
    Mapping,
    /// The program listing.
    Asm,
    /// The binary program.
    Bin,
}

/// `snnc compile MODEL [--chip CHIP] [-o OUT] [--emit STAGE] [--seed N] [--weights FILE]`.
pub fn compile(args: &CompileArgs) -> Result<(), Failure> {
    if args.emit == Some(Stage::Ast) {
        let source = read_text(&args.model)?;
        let text = snnc::format_source(&source)
            .map_err(|errors| Failure::Input(render(&args.model.display().to_string(), &source, &errors)))?;
        return emit(args, text.as_bytes());
    }
    let graph = load_graph(&args.model)?;
    if args.emit == Some(Stage::Graph) {
        return emit(args, dump::to_text(&graph).as_bytes());
    }
    let chip = load_chip(args.chip.as_deref())?;
    let failed = |e: codegen::CodegenError| Failure::Input(format!("error: {}: {e}\n", args.model.display()));
    let cores = CoreMap::choose(&graph, &chip, args.placement.choice());
    if args.emit == Some(Stage::Mapping) {
        return emit(args, codegen::placement_text_with(&graph, &chip, &cores).map_err(failed)?.as_bytes());
    }
    let weights = match &args.weights {
        Some(path) => super::given_weights::load(path, &graph)?,
        None => WeightSource::Init,
    };
    let options = CodegenOptions {
        weights,
        seed: args.seed,
        keep_activations: args.keep_activations,
        steps: args.steps,
        placement: args.placement.choice(),
        ..CodegenOptions::default()
    };
    let program = codegen::compile_with(&graph, &chip, &cores, &options).map_err(failed)?;
    match args.emit {
        Some(Stage::Asm) => emit(args, isa::asm::print(&program).as_bytes()),
        Some(_) => emit(args, &program.to_bytes()),
        None => {
            let path = args.output.clone().unwrap_or_else(|| default_output(&args.model));
            write_atomically(&path, &program.to_bytes())?;
            print(&format!("{}: wrote {}\n{}", graph.name, path.display(), codegen::summary(&program)));
            Ok(())
        }
    }
}

/// `<model-stem>.bin` in the current folder.
fn default_output(model: &Path) -> PathBuf {
    let stem = model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.bin"))
}

/// A stage's output to `-o FILE` or stdout.
fn emit(args: &CompileArgs, bytes: &[u8]) -> Result<(), Failure> {
    match &args.output {
        Some(path) => write_atomically(path, bytes),
        None => {
            // A closed pipe (`| head`) is not an error of the compiler.
            let _ = std::io::stdout().write_all(bytes);
            Ok(())
        }
    }
}
