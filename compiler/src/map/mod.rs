//! The mapping pass: which cores, engines, dataflows and tiles train each layer, and what
//! that costs.
//!
//! # Data model
//!
//! The unit of mapping is a *mapped unit*: a weight layer (conv or linear) fused with the
//! LIF or readout layer that follows it. Pools, flatten and add layers have no weights; they
//! run on the FP engine of a neighbouring unit's cores (their *host*) and are costed there.
//! A unit is named by the [`LayerId`] of its weight layer.
//!
//! A [`Mapping`] is a set of side tables keyed by `LayerId` (the graph is never changed):
//!
//! * [`Mapping::units`]: per unit, the [`CoreSlice`]s it occupies (core, output-channel
//!   range, sample range, timestep range), per engine an [`EnginePlan`] (dataflow, tile,
//!   buffer occupancy), where its inputs come from ([`Source`]) and its [`cost::UnitCost`].
//! * [`Mapping::host`]: for every layer but the input, the unit it runs on.
//! * [`Mapping::schedule`]: the order in which units run ([`Schedule`]): units are grouped
//!   into *segments*, each a pipeline over distinct cores that passes spikes and errors over
//!   the NoC; consecutive segments exchange data through DRAM.
//!
//! # Passes
//!
//! [`map_graph`] runs the default search; [`search::exhaustive_search`] tries every
//! segmentation and core allocation of small models; [`verify()`] checks a mapping's
//! invariants; [`baseline`] gives the mapping-independent yardsticks.

mod account;
pub mod baseline;
mod build;
pub mod cost;
pub mod nest;
pub mod search;
pub mod units;
pub mod verify;

use crate::graph::{LayerGraph, LayerId};
use isa::ChipDesc;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

pub use verify::{MapViolation, verify};

/// What the search minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Cycles per training step (stalls on DRAM and NoC included).
    #[default]
    Latency,
    /// Energy per training step.
    Energy,
    /// DRAM bytes per training step.
    Dram,
}

/// Settings of the mapping pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapOptions {
    /// What to minimise.
    pub objective: Objective,
    /// Assumed fraction of neurons that spike in a timestep. 0.15 is the middle of the
    /// 10-20% rates reported for trained deep SNNs (SEW-ResNet, spiking VGG on CIFAR/ImageNet).
    pub firing_rate: f64,
    /// Assumed fraction of non-zero back-propagated errors. With the rect surrogate an error
    /// passes only where the membrane is within the window of the threshold; about 30% of
    /// neurons are there in the published training traces, and smooth surrogates are
    /// thresholded to the same mask on the chip.
    pub error_density: f64,
    /// Measured firing rates per spiking layer (e.g. fed back from a simulator run); they
    /// override `firing_rate` for those layers.
    pub measured_firing: BTreeMap<LayerId, f64>,
}

impl Default for MapOptions {
    fn default() -> MapOptions {
        MapOptions {
            objective: Objective::Latency,
            firing_rate: 0.15,
            error_density: 0.3,
            measured_firing: BTreeMap::new(),
        }
    }
}

/// One of the three engines of a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Feed-forward: spike-driven accumulate and the LIF soma.
    Fp,
    /// Back-propagation: errors through the transposed weights and the neuron backward.
    Bp,
    /// Weight gradient: spike x error accumulation and the optimizer update.
    Wg,
}

impl Engine {
    /// The three engines in a fixed order.
    pub const ALL: [Engine; 3] = [Engine::Fp, Engine::Bp, Engine::Wg];

    /// The name used in chip descriptions and the ISA (`fp`, `bp`, `wg`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fp => "fp",
            Engine::Bp => "bp",
            Engine::Wg => "wg",
        }
    }
}

/// Which operand stays in the PE array while the others stream past it. Every engine
/// computes over a weight-shaped operand (out-channels x in-channels x taps), an
/// output-neuron operand (out-channels x positions) and an input-neuron operand
/// (in-channels x positions); the names say which one is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataflow {
    /// Weights (or, in WG, weight gradients) stay; neurons stream.
    WeightStationary,
    /// Output-neuron values stay (FP partial sums, the errors BP and WG read).
    OutputStationary,
    /// Input-neuron values stay (input spikes, or the errors BP produces).
    InputStationary,
}

impl Dataflow {
    /// The three dataflows in a fixed order.
    pub const ALL: [Dataflow; 3] = [Dataflow::WeightStationary, Dataflow::OutputStationary, Dataflow::InputStationary];

    /// Two-letter abbreviation used in tables.
    pub fn short(self) -> &'static str {
        match self {
            Dataflow::WeightStationary => "WS",
            Dataflow::OutputStationary => "OS",
            Dataflow::InputStationary => "IS",
        }
    }
}

/// A tile: the block of work one engine holds in its small buffers at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Tile {
    /// Output channels.
    pub out_ch: u32,
    /// Input channels (every kernel tap of each is included).
    pub in_ch: u32,
    /// Output positions (height x width x batched timesteps).
    pub spatial: u32,
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.out_ch, self.in_ch, self.spatial)
    }
}

/// The part of a unit's work one core owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreSlice {
    /// The core (index into `ChipDesc::cores`).
    pub core: usize,
    /// Output channels (or features) of the unit this core computes.
    pub channels: Range<u32>,
    /// Samples of the batch this core processes.
    pub samples: Range<u32>,
    /// Timesteps this core processes.
    pub timesteps: Range<u32>,
}

/// How one engine runs one unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnginePlan {
    /// Which operand stays in the PE array.
    pub dataflow: Dataflow,
    /// The tile held in the engine's buffers.
    pub tile: Tile,
    /// Bits used per buffer of this engine (the chip description's names: `in`, `w`, ...),
    /// on the busiest core.
    pub buffers: BTreeMap<String, u64>,
}

/// Where a unit's input comes from in the forward pass (errors flow back the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Source {
    /// Read from DRAM (the model input, or the output of an earlier segment).
    Dram {
        /// The layer whose values are read.
        layer: LayerId,
    },
    /// Received over the NoC from the cores of another unit in the same segment.
    Noc {
        /// The layer whose values are sent.
        layer: LayerId,
        /// The unit that computes it.
        unit: LayerId,
    },
}

/// The mapping of one unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitMap {
    /// The weight layer that names the unit.
    pub weight: LayerId,
    /// Every layer the unit computes (weight layer, fused neuron, hosted layers), in
    /// topological order.
    pub layers: Vec<LayerId>,
    /// The cores it occupies and what each owns, in core order.
    pub slices: Vec<CoreSlice>,
    /// Timesteps batched into one pass of the PE array (1 or T): batching keeps weights on
    /// chip across timesteps.
    pub timestep_batch: u32,
    /// Samples batched into one pass (1 or all the core's samples): weight tiles are then
    /// fetched once per step.
    pub sample_batch: u32,
    /// The FP, BP and WG plans.
    pub engines: BTreeMap<Engine, EnginePlan>,
    /// Where the forward inputs come from.
    pub sources: Vec<Source>,
    /// Index of the segment (schedule stage) the unit belongs to.
    pub segment: usize,
    /// What it costs.
    pub cost: cost::UnitCost,
}

impl UnitMap {
    /// The cores this unit runs on.
    pub fn cores(&self) -> impl Iterator<Item = usize> + '_ {
        self.slices.iter().map(|s| s.core)
    }

    /// The plan of one engine.
    pub fn engine(&self, engine: Engine) -> Option<&EnginePlan> {
        self.engines.get(&engine)
    }
}

/// How segments run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentMode {
    /// The whole model is one segment: FP of sample b+1 overlaps BP/WG of sample b on every
    /// core, and units pipeline over cores.
    Overlapped,
    /// One of several segments: FP runs for the whole batch (units pipelined over cores,
    /// BP/WG of nothing yet), then after the later segments BP/WG run in reverse.
    ForwardThenBackward,
}

/// A group of units that run together as a pipeline over distinct cores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Units in pipeline order.
    pub units: Vec<LayerId>,
    /// How FP and BP/WG interleave.
    pub mode: SegmentMode,
    /// Cycles the segment takes per training step.
    pub cycles: u64,
}

/// The order of execution: segments in forward order (backward runs them in reverse).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Schedule {
    /// The segments.
    pub segments: Vec<Segment>,
}

/// A mapped model: side tables keyed by `LayerId`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapping {
    /// Options the mapping was made with.
    pub options: MapOptions,
    /// Units by weight layer.
    pub units: BTreeMap<LayerId, UnitMap>,
    /// For every layer except the input: the unit that computes it.
    pub host: BTreeMap<LayerId, LayerId>,
    /// The execution order.
    pub schedule: Schedule,
    /// Totals over the model.
    pub total: cost::TotalCost,
}

impl Mapping {
    /// The unit that computes `layer` (`None` for the input layer).
    pub fn unit_of(&self, layer: LayerId) -> Option<&UnitMap> {
        self.units.get(self.host.get(&layer)?)
    }

    /// The cores that run `layer`.
    pub fn cores_of(&self, layer: LayerId) -> Vec<usize> {
        self.unit_of(layer).map(|u| u.cores().collect()).unwrap_or_default()
    }

    /// What core `core` owns of `layer`, if it runs it.
    pub fn slice(&self, layer: LayerId, core: usize) -> Option<&CoreSlice> {
        self.unit_of(layer)?.slices.iter().find(|s| s.core == core)
    }
}

/// Why a model could not be mapped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// The chip description is unusable.
    #[error("the chip description is invalid: {0}")]
    Chip(String),
    /// The training state does not fit in DRAM.
    #[error(
        "{model} does not fit: its training state needs {need} bytes of DRAM ({detail}) but the chip has {have}; \
         {hint}"
    )]
    DramCapacity {
        /// The model's name.
        model: String,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
        /// What the bytes are.
        detail: String,
        /// What would fit.
        hint: String,
    },
    /// The exhaustive search was asked to map a model too large for it.
    #[error("exhaustive search handles models of at most {max} weight layers; {model} has {units}")]
    TooLarge {
        /// The model's name.
        model: String,
        /// Its weight layers.
        units: usize,
        /// The limit.
        max: usize,
    },
    /// The model has no weight layer, so nothing trains.
    #[error("{0} has no conv2d or linear layer; there is nothing to train")]
    NoWeights(String),
}

/// Maps `graph` onto `chip` with the default search.
pub fn map_graph(graph: &LayerGraph, chip: &ChipDesc, options: &MapOptions) -> Result<Mapping, MapError> {
    search::default_search(graph, chip, options)
}
