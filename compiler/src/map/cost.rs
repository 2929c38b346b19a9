//! The cost records of a mapping and the arithmetic that fills them.
//!
//! Costs are per training step (B samples x T timesteps, forward, backward and the
//! optimizer update). The accounting (`account.rs`) costs one unit given its cores, split
//! and segment; the equations are in `docs/mapping.md`. Cycles are bounds: an engine's compute cycles come
//! from the loop-nest model ([`super::nest`]); a unit takes the longest of its engines (or FP
//! then the longest of BP and WG when its segment cannot overlap them), its NoC transfer
//! time and its DRAM transfer time, so stalls on DRAM and NoC bandwidth are counted.

use super::nest::{Nest, NestCost};
use super::units::UnitShape;
use super::{Engine, MapOptions, Objective, SegmentMode};
use crate::model::Optimizer;
use isa::ChipDesc;
use isa::chip::BufferDesc;
use serde::Serialize;
use std::collections::BTreeMap;

/// DRAM bytes per training step, by what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DramBytes {
    /// FP16 weights and FP32 master weights.
    pub weights: u64,
    /// The model input.
    pub input_spikes: u64,
    /// Membrane potentials (and partial sums) kept for backward.
    pub membranes: u64,
    /// Spikes between segments or kept for backward.
    pub spikes: u64,
    /// Surrogate masks kept for backward.
    pub masks: u64,
    /// Back-propagated errors.
    pub errors: u64,
    /// Weight gradients that do not fit on chip.
    pub gradients: u64,
    /// Momentum or Adam moments.
    pub optimizer: u64,
}

impl DramBytes {
    /// All bytes.
    pub fn total(&self) -> u64 {
        self.weights
            + self.input_spikes
            + self.membranes
            + self.spikes
            + self.masks
            + self.errors
            + self.gradients
            + self.optimizer
    }

    /// Adds `other` field by field.
    pub fn add(&mut self, o: &DramBytes) {
        self.weights += o.weights;
        self.input_spikes += o.input_spikes;
        self.membranes += o.membranes;
        self.spikes += o.spikes;
        self.masks += o.masks;
        self.errors += o.errors;
        self.gradients += o.gradients;
        self.optimizer += o.optimizer;
    }
}

/// Energy per training step by component, pJ.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Energy {
    /// Arithmetic.
    pub compute_pj: f64,
    /// On-chip buffers.
    pub sram_pj: f64,
    /// Off-chip memory.
    pub dram_pj: f64,
    /// Network-on-chip.
    pub noc_pj: f64,
}

impl Energy {
    /// All components.
    pub fn total(&self) -> f64 {
        self.compute_pj + self.sram_pj + self.dram_pj + self.noc_pj
    }

    /// Adds `other` component by component.
    pub fn add(&mut self, o: &Energy) {
        self.compute_pj += o.compute_pj;
        self.sram_pj += o.sram_pj;
        self.dram_pj += o.dram_pj;
        self.noc_pj += o.noc_pj;
    }
}

/// One engine's work on a unit (busiest core).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct EngineCost {
    /// Compute cycles per step, stalls excluded.
    pub compute_cycles: u64,
    /// Fraction of the PE array doing useful work.
    pub utilisation: f64,
    /// FP16 operations per step on all the unit's cores (sparsity skipped).
    pub fp16_ops: u64,
}

/// What a unit costs per step.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct UnitCost {
    /// Per engine.
    pub engines: BTreeMap<Engine, EngineCost>,
    /// Cycles of the unit including stalls on DRAM and NoC.
    pub cycles: u64,
    /// Of which stalls (cycles beyond the engines' compute).
    pub stall_cycles: u64,
    /// DRAM traffic by kind.
    pub dram: DramBytes,
    /// Bytes received over the NoC.
    pub noc_bytes: u64,
    /// Bytes x hops.
    pub noc_byte_hops: u64,
    /// Energy by component.
    pub energy: Energy,
    /// FP16 operations (all engines).
    pub fp16_ops: u64,
    /// Bits of the shared optimizer store used by this unit (0 when its state is in DRAM).
    pub opt_store_bits: u64,
    /// DRAM bytes this unit keeps resident during the step (spilled state for backward).
    pub dram_resident: u64,
}

/// Totals per training step.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TotalCost {
    /// Cycles per step.
    pub cycles: u64,
    /// Seconds per step at the chip's clock.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_s: f64,
    /// DRAM traffic by kind.
    pub dram: DramBytes,
    /// NoC bytes.
    pub noc_bytes: u64,
    /// NoC bytes x hops.
    pub noc_byte_hops: u64,
    /// Energy by component.
    pub energy: Energy,
    /// FP16 operations.
    pub fp16_ops: u64,
    /// FP16 operations per joule / 1e12.
    pub tflops_per_w: f64,
    /// The same without DRAM energy: what the chip itself achieves, comparable to
    /// published chip figures that leave the memory system out.
    pub tflops_per_w_on_chip: f64,
}

/// How one unit is placed: what the cost model needs besides the unit itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Channel groups (cores splitting output channels).
    pub channel_groups: u32,
    /// Sample groups (cores splitting the batch).
    pub sample_groups: u32,
    /// Timesteps per pass.
    pub timestep_batch: u32,
    /// Samples per pass.
    pub sample_batch: u32,
    /// Samples whose state must stay on chip at once.
    pub live_samples: u32,
    /// How the segment runs.
    pub mode: SegmentMode,
    /// Whether the segment's weights and optimizer state live in the optimizer store.
    pub weights_on_chip: bool,
    /// Cores in the segment (they share DRAM bandwidth).
    pub segment_cores: u32,
}

/// Per-pass plans of the three engines of a unit, and its size per core.
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    /// Chosen nest per engine (`None` for BP of the first unit, which has no error to pass).
    pub nests: [Option<NestCost>; 3],
    /// Output channels of the busiest core.
    pub k: u32,
    /// Samples of the busiest core.
    pub samples: u32,
    /// Passes per step on the busiest core.
    pub passes: u32,
}

/// Bits of optimizer state per parameter besides the FP32 master weight.
pub fn state_bits(opt: &Optimizer) -> u64 {
    match opt {
        Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => 0,
        Optimizer::Sgd { .. } => 32,
        Optimizer::Adam { .. } => 64,
    }
}

fn buf<'a>(chip: &'a ChipDesc, e: Engine, name: &str) -> Option<&'a BufferDesc> {
    let engines = &chip.engines;
    let desc = match e {
        Engine::Fp => &engines.fp,
        Engine::Bp => &engines.bp,
        Engine::Wg => &engines.wg,
    };
    desc.buffers.get(name)
}

/// Capacity in bits of a buffer, 0 if the chip lacks it.
pub fn cap(chip: &ChipDesc, e: Engine, name: &str) -> u64 {
    buf(chip, e, name).map(|b| b.bits).unwrap_or(0)
}

/// Energy per bit moved through a buffer, pJ.
pub fn pj_per_bit(chip: &ChipDesc, e: Engine, name: &str) -> f64 {
    buf(chip, e, name).map(|b| b.energy_pj / f64::from(b.width_bits.max(1))).unwrap_or(0.0)
}

/// The three nests of `unit` with `k` output channels and `m` (timestep, sample) pairs per
/// pass.
fn nests(unit: &UnitShape, chip: &ChipDesc, options: &MapOptions, k: u32, m: u32) -> [Nest; 3] {
    let fp = &chip.engines.fp;
    let array = (u32::from(fp.rows), u32::from(fp.cols));
    let share = f64::from(k) / f64::from(unit.out_ch.max(1));
    let dense_ops = unit.synapses as f64 * share * f64::from(m);
    let p = unit.positions.saturating_mul(m);
    let ed = options.error_density.clamp(0.0, 1.0);
    let base = Nest {
        k,
        c: unit.in_ch,
        taps: unit.taps,
        p,
        dense_ops,
        bits: [16, 16, 16],
        caps: [0; 3],
        density: [1.0, 1.0],
        array,
    };
    let fp_nest = Nest {
        bits: [16, unit.in_bits, 16],
        caps: [cap(chip, Engine::Fp, "w"), cap(chip, Engine::Fp, "in"), cap(chip, Engine::Fp, "psum")],
        density: [unit.in_density, 1.0],
        ..base
    };
    let bp_nest = Nest {
        caps: [cap(chip, Engine::Bp, "w"), cap(chip, Engine::Bp, "psum"), cap(chip, Engine::Bp, "err")],
        density: [1.0, ed],
        array: (u32::from(chip.engines.bp.rows), u32::from(chip.engines.bp.cols)),
        ..base
    };
    let wg_nest = Nest {
        bits: [32, unit.in_bits, 16],
        caps: [cap(chip, Engine::Wg, "grad"), cap(chip, Engine::Wg, "spk"), cap(chip, Engine::Wg, "err")],
        density: [unit.in_density, ed],
        array: (u32::from(chip.engines.wg.rows), u32::from(chip.engines.wg.cols)),
        ..base
    };
    [fp_nest, bp_nest, wg_nest]
}

/// Chooses each engine's dataflow and tile for the objective; `None` if some engine has
/// no tile that fits its buffers. `batch` is (timesteps, samples) per pass. `dram_share` is the DRAM bandwidth (bytes per cycle)
/// this unit can count on while its segment runs.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    unit: &UnitShape,
    chip: &ChipDesc,
    options: &MapOptions,
    k: u32,
    samples: u32,
    timesteps: u32,
    batch: (u32, u32),
    dram_share: f64,
) -> Option<Plans> {
    let (tb, sb) = batch;
    let passes = samples.div_ceil(sb.max(1)).max(1) * (timesteps / tb.max(1)).max(1);
    let ns = nests(unit, chip, options, k, tb * sb);
    let mut out: [Option<NestCost>; 3] = [None; 3];
    for (i, nest) in ns.iter().enumerate() {
        if i == 1 && unit.first {
            continue;
        }
        let engine = Engine::ALL[i];
        out[i] = Some(nest.best(|c| score(nest, c, engine, chip, options.objective, dram_share))?);
    }
    Some(Plans { nests: out, k, samples, passes })
}

/// How good one engine's choice is for the objective (lower is better), per pass.
fn score(nest: &Nest, c: &NestCost, engine: Engine, chip: &ChipDesc, objective: Objective, dram_share: f64) -> f64 {
    let e = &chip.energy;
    let op_pj = if engine == Engine::Bp { e.fp16_mul_pj + e.fp16_add_pj } else { e.fp16_add_pj + e.mux_pj / 16.0 };
    let bits: f64 = c.traffic.iter().sum();
    // Re-read operands that do not stay on chip come from DRAM: count them as the cost
    // model will (weights pessimistically, as if the optimizer store did not hold them).
    let dram: f64 = super::account::refetch_dram(chip, engine, nest, c, 1.0, false).iter().sum();
    let dram_pj_per_bit = chip.dram.energy_pj_per_access / f64::from(chip.dram.access_bits.max(1));
    match objective {
        Objective::Latency => c.cycles.max(dram / 8.0 / dram_share.max(1e-9)) + bits * 1e-9,
        Objective::Energy => c.ops * op_pj + bits * 0.05 + dram * dram_pj_per_bit,
        Objective::Dram => dram + bits * 1e-3 + c.cycles * 1e-6,
    }
}

/// Whether the core's whole weight-shaped operand fits its buffer (then it is fetched once
/// per step instead of once per pass).
pub fn weights_fit(nest: &Nest) -> bool {
    u64::from(nest.k) * u64::from(nest.c) * u64::from(nest.taps) * u64::from(nest.bits[0]) <= nest.caps[0]
}

/// The nests of `unit` again (the search keeps only their costs).
pub fn unit_nests(unit: &UnitShape, chip: &ChipDesc, options: &MapOptions, k: u32, m: u32) -> [Nest; 3] {
    nests(unit, chip, options, k, m)
}
