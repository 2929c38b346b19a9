//! Subcommands of `snnc` and how they report: results on stdout, diagnostics on stderr,
//! exit code 1 for a problem in the user's input and 2 for a problem running the command.

mod chip_file;
mod compile_cmds;
mod given_weights;
mod golden_cmds;
mod map_cmds;
mod measured;
mod model_cmds;
mod output;
mod program_cmds;
mod sim_cmds;
mod train_cmds;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// snnc — compile spiking neural networks for a neuromorphic training chip.
#[derive(Parser)]
#[command(name = "snnc", version, about, long_about = None)]
#[command(after_help = "Start with `snnc check models/digits.snn`. Model language: docs/language.md.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Host threads for the simulator: the evaluation runs of `snnc train`, the conv
    /// instructions and large fc tiles of different simulated cores computed side by side,
    /// and the pieces of large conv instructions. Results do not depend on it. Default:
    /// every core, or RAYON_NUM_THREADS when set.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a model and print its size: layers, neurons, synapses, parameters, synaptic ops.
    Check(model_cmds::CheckArgs),
    /// Print a model's layer graph as a table, Graphviz DOT or JSON.
    Graph(model_cmds::GraphArgs),
    /// Print a model in canonical form, or rewrite it in place with --write.
    Fmt(model_cmds::FmtArgs),
    /// Assemble a program listing into a binary program.
    Asm(program_cmds::AsmArgs),
    /// Print a binary program as an assembly listing (which `snnc asm` reads back).
    Disasm(program_cmds::DisasmArgs),
    /// Check a binary program against a chip: ranges, buffer bounds, synchronisation.
    Verify(program_cmds::VerifyArgs),
    /// Run a program on the instruction-level simulator: cycles, DRAM, NoC, energy, sparsity.
    Sim(sim_cmds::SimArgs),
    /// Map a model onto the chip and report cores, dataflows, cycles, DRAM, NoC and energy.
    Map(map_cmds::MapArgs),
    /// Compile a model into a program for the chip, or print any stage with --emit.
    Compile(compile_cmds::CompileArgs),
    /// Print the effective chip description (the built-in one, or --chip FILE over it).
    Chip(map_cmds::ChipArgs),
    /// Train a model on the instruction-level simulator and report accuracy and chip cost.
    Train(train_cmds::TrainArgs),
    /// Run one golden training step through compiler and simulator and compare every tensor.
    Golden(golden_cmds::GoldenArgs),
}

/// Why a command failed, with what to print.
pub enum Failure {
    /// The user's input is wrong; the text is the rendered diagnostics.
    Input(String),
    /// The command could not run (a file could not be read or written).
    Io(String),
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = sim::set_host_threads(usize::from(n)) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Command::Check(args) => model_cmds::check(&args),
        Command::Graph(args) => model_cmds::graph(&args),
        Command::Fmt(args) => model_cmds::fmt(&args),
        Command::Asm(args) => program_cmds::asm(&args),
        Command::Disasm(args) => program_cmds::disasm(&args),
        Command::Verify(args) => program_cmds::verify(&args),
        Command::Sim(args) => sim_cmds::sim(&args),
        Command::Map(args) => map_cmds::map(&args),
        Command::Chip(args) => map_cmds::chip(&args),
        Command::Compile(args) => compile_cmds::compile(&args),
        Command::Train(args) => train_cmds::train(&args),
        Command::Golden(args) => golden_cmds::golden(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(text)) => {
            eprint!("{text}");
            ExitCode::from(1)
        }
        Err(Failure::Io(text)) => {
            eprintln!("error: {text}");
            ExitCode::from(2)
        }
    }
}
