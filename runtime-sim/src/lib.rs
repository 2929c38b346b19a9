//! The snnc simulator's numeric core.
//!
//! The chip trains spiking networks with three engines per core: FP (spike-driven accumulate
//! plus the LIF soma), BP (error propagation through transposed weights plus the gradient
//! soma in reverse time) and WG (weight gradients and the update). This crate models their
//! datapaths bit-faithfully:
//!
//! - [`fp`]: numeric modes. Tensors are stored as [`fp::Storage`] values (`half::f16` on the
//!   chip, `f32` for parity runs); every element-wise op rounds once to storage; the
//!   accumulators are f32 or storage-width ([`fp::Accum`]), chosen by [`fp::Precision`].
//! - [`spikes`]: 1-bit spike and mask tensors, bit-packed in `u64` words, with an iterator
//!   over set bits so accumulate kernels skip zero spikes without visiting them.
//! - [`kernels`]: one function per engine operation, over slices and tiles, independent of
//!   the instruction encoding; each counts executed and skipped operations.
//! - [`golden`]: loader for the `snn-train-golden/1` reference files (vendored in `golden/`
//!   at the repository root).
//! - [`reference`](mod@reference): a test harness that chains the kernels into one training
//!   step following a golden file's spec, to check them against the golden values. It is not
//!   how the simulator runs: the simulator executes programs.
//! - [`parity`]: tensor-by-tensor comparison of such a step with a golden file.
//! - [`machine`]: the instruction-level simulator: [`Machine`] loads an `isa` program onto
//!   a chip description, runs it (function, timing, traffic, energy) and reports
//!   [`RunStats`]. Programs hold fc tiles in the ISA's `k x n` layout
//!   ([`kernels::tile`]).
//! - [`data`] and [`record`]: the host side of training — data sets and encoders; weights,
//!   run records and plots — and [`train`]: the training loop of `snnc train`, which keeps
//!   the weights in the simulated DRAM and runs training and inference programs on them.
//!
//! Layout everywhere: time-major `[T,B,…]`, images NCHW, fc weights `[out,in]`, conv weights
//! `[cout,cin,kh,kw]`.

pub mod data;
pub mod fp;
pub mod golden;
pub mod kernels;
pub mod machine;
pub mod parity;
pub mod record;
pub mod reference;
pub mod spikes;
pub mod train;

pub use machine::{Machine, RunStats, SimError, SimOptions};

/// The number of host threads the simulator uses: for the conv instructions a run computes
/// side by side (its scheduler's thread and one fewer workers; see
/// [`SimOptions::threads`]), the pieces of a large instruction, and the evaluation runs of
/// [`train`]. Every core by default, or `RAYON_NUM_THREADS`.
pub fn host_threads() -> usize {
    rayon::current_num_threads()
}

/// Sets the number of host threads (see [`host_threads`]); only before the first
/// simulation of the process, because the thread pool is built once. Results do not depend
/// on it: threads compute disjoint outputs, each in a fixed order.
pub fn set_host_threads(n: usize) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| format!("cannot start {n} host threads: {e}"))
}
