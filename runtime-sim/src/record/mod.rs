//! What `snnc train` leaves behind, and how it stops: trained weights, the run record, a
//! plot, and Ctrl-C handling.
//!
//! - [`weights`]: the model's parameters in the safetensors format (F16/F32 tensors by name),
//!   written at the end of a run and read back by `--resume`.
//! - [`run`]: the JSON run record (`snnc-run/1`): what was trained on what, and per epoch the
//!   loss, accuracies and the simulated cycles, energy and DRAM traffic.
//! - [`plot`]: an SVG plot of loss and accuracy per epoch.
//! - [`interrupt`]: a Ctrl-C flag the training loop polls, to stop cleanly between batches.
//! - [`file`](mod@file): atomic whole-file writes, so a failed or interrupted run never leaves a partial
//!   output file.

mod error;
pub mod file;
pub mod interrupt;
pub mod plot;
pub mod run;
pub mod weights;

pub use error::RecordError;
pub use interrupt::Interrupt;
pub use plot::{plot_svg, save_plot};
pub use run::{ChipId, DatasetInfo, EpochRecord, RUN_FORMAT, RunRecord, Summary};
pub use weights::{Tensor, TensorData, WEIGHTS_FORMAT, Weights};
