//! `snnc train`: compile a model, load its data, and train it on the instruction-level
//! simulator, epoch by epoch, with a held-out evaluation after each.
//!
//! The loop itself is `sim::train` (the simulator crate, so tests can drive it without the
//! binary); this module wires it to the command line: it compiles the programs the loop
//! asks for (`snnc::codegen`, with `train`, `first_step` and `outputs`), picks and checks
//! the data, shows progress, writes the trained weights (safetensors), the run record
//! (JSON, rewritten after every epoch) and the optional plot, and prints a summary of the
//! accuracy and of what training cost on the chip against a GPU.
//!
//! Ctrl-C stops after the program run in progress; the weights trained so far and the
//! record (marked interrupted) are written as at a normal end. `--resume FILE` loads
//! weights into DRAM before training (with a fresh optimizer state).

mod data;
mod report;

use super::Failure;
use super::chip_file::load_chip;
use super::compile_cmds::PlacementArg;
use super::model_cmds::load_graph;
use super::output::print;
use clap::{Args, ValueEnum};
use isa::{AccWidth, ChipDesc};
use sim::record::{ChipId, DatasetInfo, Interrupt, RunRecord, Weights};
use sim::train::{EpochOutcome, ParamLayer, ProgramRequest, TrainConfig, TrainData, TrainError, Trainer};
use snnc::codegen::{self, CodegenOptions, CoreMap};
use snnc::graph::LayerGraph;
use snnc::model::Op;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `snnc train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The model file (`*.snn`).
    model: PathBuf,
    /// Data: `digits` (bundled 8x8 digits, resized for a larger [C, H, W] image input),
    /// `events` (synthetic DVS-style events), or a CSV
    /// file `label,f0,f1,...` (values scaled by each column's maximum). Default: `events`
    /// for a spiking [2, H, W] input, else `digits`.
    #[arg(long)]
    data: Option<String>,
    /// Epochs to train.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Chip description (TOML); the built-in 20-core chip when absent.
    #[arg(long)]
    chip: Option<PathBuf>,
    /// Numerics: the chip description's, or FP16 storage with FP32 or FP16 accumulators, or
    /// FP32 storage and accumulators throughout (a reference mode).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Chip)]
    precision: PrecisionArg,
    /// Seed of the 80/20 train/test split and the per-epoch shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only the first N samples of the data set, or generate N synthetic event samples
    /// (quick runs).
    #[arg(long)]
    samples: Option<usize>,
    /// At most this many batches per program run (cut to a divisor of the epoch's batches).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    steps_per_run: u32,
    /// Trained weights (safetensors); default `<model-stem>.safetensors`.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Run record (JSON, `snnc-run/1`); default `<model-stem>.run.json`.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Also draw loss and accuracy per epoch into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Start from these weights (safetensors, as `snnc train` writes them).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// No progress bar and no per-epoch lines; only the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Which cores each layer's work goes to, as for `snnc compile` (its `--emit mapping`
    /// shows the result). The weights train the same either way; only the cost differs.
    #[arg(long, value_enum, default_value_t = PlacementArg::Mapped)]
    placement: PlacementArg,
}

/// Numeric modes of `--precision`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// As the chip description says.
    Chip,
    /// FP16 storage, FP32 accumulators.
    Fp16,
    /// FP16 storage, FP16 accumulators.
    Fp16Acc16,
    /// FP32 storage and accumulators.
    Fp32,
}

/// Where the outputs go.
struct Outputs {
    weights: PathBuf,
    record: PathBuf,
    plot: Option<PathBuf>,
}

/// `snnc train MODEL ...`.
pub fn train(args: &TrainArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let graph = load_graph(&args.model)?;
    let chip = with_precision(load_chip(args.chip.as_deref())?, args.precision);
    let failed = |e: codegen::CodegenError| Failure::Input(format!("error: {}: {e}\n", args.model.display()));
    // The mapping is made once: every program of the run (training and evaluation, which
    // share one DRAM layout) is generated on the same cores.
    let cores = CoreMap::choose(&graph, &chip, args.placement.choice());
    // Compile once up front, so a model the code generator cannot handle is reported
    // before any data is loaded.
    codegen::compile_with(&graph, &chip, &cores, &options(1, 0, true)).map_err(failed)?;
    let data = data::load(args, &graph)?;
    let outputs = outputs(args);
    let config = config(args, &graph);
    let programs = Box::new(|r: ProgramRequest| {
        let options = options(r.steps, r.first_step, r.train);
        codegen::compile_with(&graph, &chip, &cores, &options).map_err(|e| e.to_string())
    });
    let mut trainer = Trainer::new(&chip, config, &data, programs).map_err(|e| train_failure(args, &e))?;
    let mut record = new_record(args, &graph, &chip, &data, &trainer);
    if let Some(path) = &args.resume {
        resume(&mut trainer, path)?;
    }
    let stop = Interrupt::install().map_err(|e| Failure::Io(e.to_string()))?;
    let mut run = report::Run::new(&graph, args.epochs, trainer.batches_per_epoch(), args.quiet);
    for epoch in 1..=args.epochs {
        let outcome = trainer.epoch(epoch, &stop, &mut |p| run.progress(p)).map_err(|e| train_failure(args, &e))?;
        match outcome {
            EpochOutcome::Done(report) => {
                run.epoch_done(&report);
                record.push_epoch(report.record);
                record.save(&outputs.record).map_err(|e| Failure::Io(e.to_string()))?;
            }
            EpochOutcome::Interrupted { train } => {
                run.interrupted(&train);
                break;
            }
        }
    }
    record.finish(stop.requested());
    write_outputs(&trainer, &record, &outputs)?;
    let mut written = vec![outputs.weights.as_path(), outputs.record.as_path()];
    written.extend(outputs.plot.as_deref());
    run.finish(&record, &written, started.elapsed().as_secs_f64());
    Ok(())
}

/// The chip with `--precision` applied to its numerics.
fn with_precision(mut chip: ChipDesc, p: PrecisionArg) -> ChipDesc {
    let n = &mut chip.numerics;
    match p {
        PrecisionArg::Chip => {}
        PrecisionArg::Fp16 => (n.fp32_storage, n.accumulator) = (false, AccWidth::Fp32),
        PrecisionArg::Fp16Acc16 => (n.fp32_storage, n.accumulator) = (false, AccWidth::Fp16),
        PrecisionArg::Fp32 => (n.fp32_storage, n.accumulator) = (true, AccWidth::Fp32),
    }
    chip
}

/// Code generation options of the programs the loop runs: all store the output sums.
fn options(steps: u32, first_step: u32, train: bool) -> CodegenOptions {
    CodegenOptions { steps, first_step, train, outputs: true, ..CodegenOptions::default() }
}

/// The loop's configuration from the model and the arguments.
fn config(args: &TrainArgs, graph: &LayerGraph) -> TrainConfig {
    TrainConfig {
        model: graph.name.clone(),
        batch: graph.batch as usize,
        timesteps: graph.timesteps as usize,
        classes: graph.classes() as usize,
        features: graph.input().numel() as usize,
        seed: args.seed,
        steps_per_run: args.steps_per_run as usize,
        layers: param_layers(graph),
        sim: sim::SimOptions::default(),
        eval_threads: 0,
    }
}

/// The weight layers in source order, with their shapes in the model's layout.
fn param_layers(graph: &LayerGraph) -> Vec<ParamLayer> {
    let mut layers = Vec::new();
    for l in graph.layers() {
        let input = l.inputs.first().map(|&i| graph.layer(i));
        let fan_in = input.map_or(0, |i| i.numel() as usize);
        let (shape, bias) = match l.op {
            Op::Linear { out, bias } => (vec![out as usize, fan_in], bias),
            Op::Conv2d { out, kernel, bias, .. } => {
                let cin = input.and_then(|i| i.shape.first()).copied().unwrap_or(1) as usize;
                (vec![out as usize, cin, kernel as usize, kernel as usize], bias)
            }
            _ => continue,
        };
        layers.push(ParamLayer { name: l.name.clone(), shape, bias });
    }
    layers
}

/// The output paths: given, or named after the model in the current folder.
fn outputs(args: &TrainArgs) -> Outputs {
    let stem = args.model.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    Outputs {
        weights: args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{stem}.safetensors"))),
        record: args.record.clone().unwrap_or_else(|| PathBuf::from(format!("{stem}.run.json"))),
        plot: args.plot.clone(),
    }
}

/// An empty run record of this run.
fn new_record(args: &TrainArgs, graph: &LayerGraph, chip: &ChipDesc, data: &TrainData, t: &Trainer) -> RunRecord {
    let chip_id = ChipId { name: chip.name.clone(), hash: format!("{:016x}", chip.hash()) };
    let (train, test) = (t.split().train.len(), t.split().test.len());
    let dataset = DatasetInfo { name: data.name(), train_samples: train, test_samples: test };
    let mut record = RunRecord::new(graph.name.clone(), chip_id, dataset, args.seed, args.epochs);
    record.batch = graph.batch as usize;
    record.timesteps = graph.timesteps as usize;
    record.resumed_from = args.resume.as_ref().map(|p| p.display().to_string());
    record
}

/// Loads the weights of `path` into the chip's DRAM.
fn resume(trainer: &mut Trainer, path: &Path) -> Result<(), Failure> {
    let weights = Weights::load(path).map_err(|e| match e {
        sim::record::RecordError::Io { .. } => Failure::Io(e.to_string()),
        _ => Failure::Input(format!("error: {e}\n")),
    })?;
    trainer.load_weights(&weights).map_err(|e| Failure::Input(format!("error: {}: {e}\n", path.display())))
}

/// The weights, the finished record and the plot.
fn write_outputs(trainer: &Trainer, record: &RunRecord, outputs: &Outputs) -> Result<(), Failure> {
    let io = |e: sim::record::RecordError| Failure::Io(e.to_string());
    let weights = trainer.weights().map_err(|e| Failure::Io(e.to_string()))?;
    weights.save(&outputs.weights).map_err(io)?;
    record.save(&outputs.record).map_err(io)?;
    if let Some(path) = &outputs.plot {
        sim::record::save_plot(path, &record.history, &record.model).map_err(io)?;
    }
    Ok(())
}

/// A training error as the command reports it: bad data or weights are the user's input.
fn train_failure(args: &TrainArgs, e: &TrainError) -> Failure {
    match e {
        TrainError::Data(sim::data::DataError::Io { .. }) => Failure::Io(e.to_string()),
        TrainError::Data(_) | TrainError::Weights(_) | TrainError::Program(_) => {
            Failure::Input(format!("error: {}: {e}\n", args.model.display()))
        }
        TrainError::Sim(_) => Failure::Io(e.to_string()),
    }
}
