//! Code generation: a [`LayerGraph`] and a [`Placement`] become an [`isa::Program`] that runs
//! one training step (one batch) on the chip.
//!
//! # What a program does
//!
//! The graph is cut into *units*: a weight layer (`linear` or `conv2d`) fused with the neuron
//! layer (`lif` or `readout`) that reads it, and the pooling and `flatten` layers after it
//! (conv units are described in `conv.rs`). Each unit runs on the core its [`Placement`]
//! names: the mapping pass's core when it gives every unit one core of its own
//! ([`CoreMap`], `cores.rs`), else core `i` for unit `i`. One run of the program is
//! [`CodegenOptions::steps`] training steps (1 by default), each over `batch` samples:
//!
//! - **FP** stream, per sample `b`: load (unit 0, from DRAM) or receive (from the previous
//!   core over the NoC) the input spikes of all `T` timesteps; one multi-row `fp.linear`
//!   over all timesteps (a row each) into partial sums (per output tile when the weights exceed `fp.w`, each output summed whole
//!   so it is rounded to FP16 once); then one multi-row `fp.lif` over all timesteps (a
//!   loop per timestep only where a readout's membrane or parity stores need each step),
//!   keeping `H` (smooth surrogates, soft or non-detached reset), spikes and the rect mask;
//!   `fp.sum` of spikes or membranes on the output unit; send the spikes of all `T` steps to the next core.
//! - **BP** stream, per sample: `bp.loss` on the output unit (or receive dL/dS of all steps
//!   from the next core), one multi-row `bp.soma` over all timesteps in reverse time, then one multi-row `bp.linear` over
//!   all timesteps (per row tile of the weights) to the previous core's dL/dS, sent back over the NoC.
//! - **WG** stream, per sample: one multi-row `wg.linear` over all timesteps into FP32
//!   accumulators; after the
//!   batch `wg.step`, the chunked `wg.update` (FP32 masters and state in `opt`, the FP16
//!   copy staged in `fp.w`), and stores of the updated weights, masters and state to DRAM.
//!
//! Synchronisation per core is the one of `isa/testdata/linear_layer.s`: FP(b) → BP(b) →
//! WG(b) → FP(b+1) (FP waits until BP and WG have consumed sample b); at the end of a step
//! FP and BP wait for WG's update (token 2) because the next step reloads the weights. Cores overlap at sample
//! granularity: core i+1 computes sample b while core i waits for its errors. Loops over
//! samples (`r1`), timesteps (`r0`), tiles (`r2`) and steps (`r3`) keep the program size
//! independent of `T`, `B` and the step count. The loss gradient `bp.loss` already carries 1/B (and 1/T, 1/C as the loss
//! defines), so `wg.update` runs with `scale=1`.
//!
//! # DRAM symbols (the contract with the simulator and trainer)
//!
//! Every tensor is a `kind=tensor` symbol; byte layouts are little-endian, 1-bit tensors are
//! packed as the ISA packs 1-bit buffers (element `i` is bit `i % 8` of byte `i / 8`).
//!
//! | symbol | type and shape | written by |
//! | --- | --- | --- |
//! | `input` | spikes (`bernoulli`, `spikes`): `[S][B][T][ceil(k/8) bytes]`, each timestep's row padded to whole bytes; `current`: FP16 `[S][B][T][k]` (already scaled) | trainer |
//! | `target` | FP16 one-hot `[S][B][C]` | trainer |
//! | `loss` | FP32 `[S]`: the loss of each step's batch, as `bp.loss` accumulates it | program |
//! | `output` | FP32 `[S][B][C]`: per sample, the output layer's spike counts (readout: summed membranes) (`outputs`) | program |
//! | `<linear>.weight` | FP16 `[k][n]` row-major, i.e. the transpose of PyTorch's `[out,in]`, because `fp.linear` reads `k x n` | initial data; program |
//! | `<conv>.weight` | FP16 `[cout][cin][kh][kw]`, PyTorch's layout (which `fp.conv` reads); `.weight_master`, `.opt_state` and `.grad` likewise | initial data; program |
//! | `<linear>.bias` | FP16 `[n]`, directly after `.weight` (layers with a bias) | initial data; program |
//! | `<linear>.weight_master` | FP32 `[k][n]`, then `<linear>.bias_master` FP32 `[n]` directly after | initial data; program |
//! | `<linear>.opt_state` | FP32, opaque (momentum, or Adam m and v chunk by chunk); zero at first | program |
//! | `<linear>.grad` | FP32 `[k][n]` then `[n]` for the bias: dW summed over the batch, before the update (`keep_activations`) | program |
//! | `<neuron>.S` | spikes, per sample `T*n` bits padded to whole bytes: `[B][ceil(T*n/8)]` (`keep_activations`; padding bits unspecified) | program |
//! | `<neuron>.V` | FP16 `[B][T][n]`, post-reset membrane (readout: U) (`keep_activations`) | program |
//! | `<neuron>.H` | FP16 `[B][T][n]`, pre-reset membrane, when the layer keeps it (`keep_activations`) | program |
//! | `<linear>.out` | FP16 `[B][T][n]`, the layer's output `x·W (+ b)` (`keep_activations`) | program |
//! | `<neuron>.dS` | FP16 `[B][T][n]`, dL/dS; on the output unit `[B][n]`, the loss gradient that holds for every t (`keep_activations`) | program |
//! | `<neuron>.dH` | FP16 `[B][T][n]`, dL/dH (readout: dL/dU) (`keep_activations`) | program |
//! | `<neuron>.sum` | FP32 `[B][n]`, output unit only: the spike count or membrane sum over T that `bp.loss` reads (`keep_activations`) | program |
//!
//! `S` is the step count. Note the sample-major `[B][T]` order (the golden files are
//! time-major `[T][B]`). The parity stores hold the last step of a run. A bias is copied
//! into the partial sums before `fp.linear` (`acc=true`), which adds it after the products
//! in the same accumulator, so `x·W + b` is rounded once; the output sum lives in the 32-bit
//! `wg.grad` so that `bp.loss` sees the FP32 time sum.
//!
//! # Limits of this version
//!
//! This resident generator handles chains of `linear`/`conv2d` → `lif`/`readout`
//! [→ `avgpool`/`maxpool`] [→ `flatten`] whose every unit fits one core: conv weights whole
//! in `fp.w` and `bp.w`, one timestep of a conv unit's output in `fp.psum`, and every
//! per-sample working set (`T*k` input bits, `T*n` partial sums, membranes, errors) in its
//! buffer. When a unit does not fit, or there are more units than cores, [`compile`] and
//! [`compile_placed`] generate a *staged* program instead (module `staged`): every layer
//! cut into tiles over its cores (the mapping's, or all cores, see [`PlacementChoice`]),
//! DRAM between layers; graphs with `add` (residual joins, and the branches they bring)
//! are always staged. Pooling may have any window, stride and
//! padding PyTorch allows (padding at most half the window).
//! `cfg.opt` resets Adam's step counter at the start of every run, so a trainer should run
//! many steps per run (`steps`), or say how many steps earlier runs took (`first_step`).
//!
//! # Inference programs
//!
//! With `train: false` only the FP streams run: per step and sample the forward pass and
//! the output sums, which `outputs` stores to `output`. The tensors are the same as a
//! training program's, at the same addresses, so a trainer can swap between the two
//! programs on one machine and evaluate the weights where they live in DRAM.

mod alloc;
mod bp;
mod conv;
mod cores;
mod emit;
mod fp;
mod placement;
mod plan;
mod pooling;
mod soma_rows;
mod staged;
mod summary;
mod weights;
mod wg;

pub use cores::{CoreMap, PlacementChoice};
pub use placement::{Placement, UnitPlacement};
pub use summary::summary;
pub use weights::{LayerWeights, WeightSource};

use crate::graph::LayerGraph;
use isa::{ChipDesc, Program};
use std::fmt;

/// How to generate a program.
#[derive(Debug, Clone, PartialEq)]
pub struct CodegenOptions {
    /// Where the initial weights come from.
    pub weights: WeightSource,
    /// Overrides the model's `init` seed (`snnc compile --seed`).
    pub seed: Option<u64>,
    /// Store S, V and H of every neuron layer for every (b, t), and the weight gradients, to
    /// DRAM (symbols `<layer>.S`, `.V`, `.H`, `.grad`), for parity checks against golden data.
    pub keep_activations: bool,
    /// Training steps (batches) per run of the program, at least 1. The optimizer is
    /// configured once per run, so Adam's bias correction counts steps within a run.
    pub steps: u32,
    /// Training steps taken by earlier runs: the WG stream advances Adam's step counter by
    /// this much after `cfg.opt` resets it, so the bias correction continues across runs.
    pub first_step: u32,
    /// `false` generates an inference program: the FP streams only (forward passes and the
    /// output sums), no loss, errors, gradients or weight update (`snnc train` evaluates
    /// with it). The DRAM layout is the same as the training program's.
    pub train: bool,
    /// Store the output unit's per-sample sums (spike counts, or summed membranes of a
    /// readout) to the `output` symbol, FP32 `[S][B][C]`, for accuracy.
    pub outputs: bool,
    /// Which cores each layer's work goes to (see [`PlacementChoice`]). [`compile`],
    /// [`compile_staged`] and the staged fallback of [`compile_placed`] run the mapping pass
    /// for it; [`compile_with`] is given the decision as a [`CoreMap`] and ignores this.
    pub placement: PlacementChoice,
    /// In a staged program, keep a conv tile's weights in `fp.mem` for the whole tile when
    /// `fp.w` cannot hold them and `fp.mem` can, instead of loading each chunk's from DRAM
    /// for every sample and timestep. On by default; off gives the streamed program the
    /// DRAM traffic and timing of which it saves (the trained weights are the same).
    pub park_weights: bool,
}

impl Default for CodegenOptions {
    fn default() -> CodegenOptions {
        CodegenOptions {
            weights: WeightSource::Init,
            seed: None,
            keep_activations: false,
            steps: 1,
            first_step: 0,
            train: true,
            outputs: false,
            placement: PlacementChoice::default(),
            park_weights: true,
        }
    }
}

/// Why a graph could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodegenError {
    /// The layer uses something this code generator cannot generate yet.
    Unsupported {
        /// The layer's name in the model file.
        layer: String,
        /// What is unsupported, in a sentence.
        what: String,
    },
    /// The network has more units (weight layers) than the chip has cores.
    TooManyUnits {
        /// Units needed.
        units: usize,
        /// Cores available.
        cores: usize,
    },
    /// A layer's working set does not fit a buffer of the chip.
    DoesNotFit {
        /// The layer's name.
        layer: String,
        /// The buffer (ISA name, e.g. `fp.psum`).
        buffer: String,
        /// Elements needed.
        need: u64,
        /// Elements the buffer has.
        have: u64,
    },
    /// Caller-provided weights do not match the layer.
    Weights {
        /// The layer's name.
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// The generated program failed verification: a bug in the code generator.
    Internal(Vec<String>),
    /// A resident program does not fit the chip, and the staged program tried instead
    /// failed too: both reasons, so that a user sees why the layer had to be staged.
    Fallback {
        /// Why the resident program does not fit (`DoesNotFit` or `TooManyUnits`).
        resident: Box<CodegenError>,
        /// Why the staged program failed.
        staged: Box<CodegenError>,
    },
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A detail after a colon follows the "yet", which belongs to the unsupported thing.
            CodegenError::Unsupported { layer, what } => match what.split_once(": ") {
                Some((thing, detail)) => {
                    write!(f, "layer `{layer}`: code generation does not support {thing} yet: {detail}")
                }
                None => write!(f, "layer `{layer}`: code generation does not support {what} yet"),
            },
            CodegenError::TooManyUnits { units, cores } => write!(
                f,
                "the network has {units} weight layers but the chip has {cores} cores (one core per layer for now)"
            ),
            CodegenError::DoesNotFit { layer, buffer, need, have } => write!(
                f,
                "layer `{layer}` needs {need} elements of `{buffer}` but the chip has {have}; {}",
                fit_hint(buffer)
            ),
            CodegenError::Weights { layer, message } => write!(f, "weights of layer `{layer}`: {message}"),
            CodegenError::Internal(list) => {
                let shown = list.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
                let more = if list.len() > 5 { format!("; and {} more", list.len() - 5) } else { String::new() };
                write!(f, "internal error: the generated program does not verify: {shown}{more}")
            }
            CodegenError::Fallback { resident, staged } => {
                write!(f, "{staged}\n(a staged program was needed because the resident one does not fit: {resident})")
            }
        }
    }
}

impl std::error::Error for CodegenError {}

/// What to change when a buffer is too small.
fn fit_hint(buffer: &str) -> &'static str {
    match buffer {
        "opt" => {
            "the shared optimizer store holds every layer's FP32 masters, optimizer state and large gradients: use a smaller layer, plain SGD, or a chip description with a larger `optimizer_store`"
        }
        "dram" => "the tensors exceed the 32-bit DRAM address space",
        "fp.w" | "bp.w" => {
            "linear weights are cut into tiles of whole rows or columns, and conv weights are kept whole (not tiled over output channels yet): use a smaller layer or a chip description with a larger buffer"
        }
        _ => "use fewer timesteps or features, or a chip description with a larger buffer",
    }
}

/// Compiles `graph` for `chip` on the cores `options.placement` asks for (by default the
/// mapping pass's, see [`CoreMap`]).
pub fn compile(graph: &LayerGraph, chip: &ChipDesc, options: &CodegenOptions) -> Result<Program, CodegenError> {
    compile_with(graph, chip, &CoreMap::choose(graph, chip, options.placement), options)
}

/// Compiles `graph` for `chip` on the cores of `cores`: as a resident program (one unit per
/// core, [`Placement::mapped`]) when every layer fits one core and the graph is a chain,
/// else (a layer too large, more units than cores, or `add` joins) as a staged program (see
/// `staged`).
pub fn compile_with(
    graph: &LayerGraph,
    chip: &ChipDesc,
    cores: &CoreMap,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    if has_joins(graph) {
        return staged_with(graph, chip, cores, options);
    }
    match Placement::mapped(graph, chip, cores) {
        Ok((placement, _)) => match resident(graph, chip, &placement, options) {
            Err(e @ CodegenError::DoesNotFit { .. }) => fallback(e, staged_with(graph, chip, cores, options)),
            other => other,
        },
        Err(e @ (CodegenError::DoesNotFit { .. } | CodegenError::TooManyUnits { .. })) => {
            fallback(e, staged_with(graph, chip, cores, options))
        }
        Err(e) => Err(e),
    }
}

/// The staged program tried because a resident one does not fit (`resident` says why), or
/// both reasons when it fails too.
fn fallback<T>(resident: CodegenError, staged: Result<T, CodegenError>) -> Result<T, CodegenError> {
    staged.map_err(|staged| CodegenError::Fallback { resident: Box::new(resident), staged: Box::new(staged) })
}

/// Compiles `graph` for `chip` with a given placement, or as a staged program (on the
/// cores `options.placement` asks for) when a layer's working set does not fit its core.
pub fn compile_placed(
    graph: &LayerGraph,
    chip: &ChipDesc,
    placement: &Placement,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    match resident(graph, chip, placement, options) {
        Err(e @ CodegenError::DoesNotFit { .. }) => fallback(e, compile_staged(graph, chip, options)),
        other => other,
    }
}

/// The resident program of `placement`.
fn resident(
    graph: &LayerGraph,
    chip: &ChipDesc,
    placement: &Placement,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    let plan = plan::Plan::new(graph, chip, placement, options)?;
    verified(emit::program(&plan, chip), chip)
}

/// Compiles `graph` as a staged program: every layer cut into tiles over its cores (those
/// `options.placement` asks for), with everything between layers in DRAM.
pub fn compile_staged(graph: &LayerGraph, chip: &ChipDesc, options: &CodegenOptions) -> Result<Program, CodegenError> {
    staged_with(graph, chip, &CoreMap::choose(graph, chip, options.placement), options)
}

/// Compiles `graph` as a staged program on the cores of `cores`.
pub fn compile_staged_with(
    graph: &LayerGraph,
    chip: &ChipDesc,
    cores: &CoreMap,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    staged_with(graph, chip, cores, options)
}

/// The staged program of `graph` on the cores of `cores`.
fn staged_with(
    graph: &LayerGraph,
    chip: &ChipDesc,
    cores: &CoreMap,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    verified(staged::compile(graph, chip, cores, options)?, chip)
}

/// A stable text form of how `graph` is placed with the default choice (see
/// [`placement_text_with`]).
pub fn placement_text(graph: &LayerGraph, chip: &ChipDesc) -> Result<String, CodegenError> {
    placement_text_with(graph, chip, &CoreMap::choose(graph, chip, PlacementChoice::default()))
}

/// A stable text form of how `graph` is placed on the cores of `cores` (`snnc compile
/// --emit mapping`): the choice and why any layer does not follow the mapping, then the
/// per-unit placement, or a staged program's tiling and cores per layer.
pub fn placement_text_with(graph: &LayerGraph, chip: &ChipDesc, cores: &CoreMap) -> Result<String, CodegenError> {
    if has_joins(graph) {
        return staged::describe(graph, chip, cores);
    }
    let resident = Placement::mapped(graph, chip, cores)
        .and_then(|(p, note)| plan::Plan::new(graph, chip, &p, &CodegenOptions::default()).map(|_| (p, note)));
    match resident {
        Err(e @ (CodegenError::DoesNotFit { .. } | CodegenError::TooManyUnits { .. })) => {
            fallback(e, staged::describe(graph, chip, cores))
        }
        Err(e) => Err(e),
        Ok((p, note)) => Ok(cores.header(note.as_deref()) + &p.to_text(graph)),
    }
}

/// Whether `graph` has `add` layers (residual joins), which only staged programs run: the
/// resident generator passes one chain of layers from core to core.
fn has_joins(graph: &LayerGraph) -> bool {
    graph.layers().iter().any(|l| matches!(l.op, crate::model::Op::Add))
}

/// The program, if it verifies: one that does not would mislead the simulator.
fn verified(program: Program, chip: &ChipDesc) -> Result<Program, CodegenError> {
    let violations = isa::verify::verify(&program, chip);
    if violations.is_empty() {
        Ok(program)
    } else {
        Err(CodegenError::Internal(violations.iter().map(ToString::to_string).collect()))
    }
}
