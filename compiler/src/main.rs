//! The `snnc` command line: one subcommand per job, errors rendered with the source.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
