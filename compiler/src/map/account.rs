//! Filling a unit's cost record from its plans and placement: compute, buffers, the DRAM
//! traffic of spilled state and refetched operands, NoC transfers and energy.
//!
//! Work is divided evenly over the unit's cores, so the busiest core (the one with the
//! most channels and samples) sets the cycles; traffic and energy are summed over cores.

use super::cost::{EngineCost, Placement, Plans, UnitCost, cap, pj_per_bit, state_bits, weights_fit};
use super::nest::NestCost;
use super::units::UnitShape;
use super::{Engine, EnginePlan, MapOptions};
use crate::graph::{LayerGraph, LayerId};
use crate::model::Optimizer;
use isa::ChipDesc;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Everything a unit's accounting needs to read, and a cache of engine plans (the search
/// asks for the same unit, share and batching many times).
pub struct Ctx<'a> {
    /// The graph.
    pub graph: &'a LayerGraph,
    /// The chip.
    pub chip: &'a ChipDesc,
    /// The options.
    pub options: &'a MapOptions,
    plans: RefCell<BTreeMap<PlanKey, Option<Plans>>>,
}

/// Unit, channels and samples per core, (timesteps, samples) per pass, DRAM share bits.
type PlanKey = (LayerId, u32, u32, (u32, u32), u64);

impl<'a> Ctx<'a> {
    /// A context with an empty cache.
    pub fn new(graph: &'a LayerGraph, chip: &'a ChipDesc, options: &'a MapOptions) -> Ctx<'a> {
        Ctx { graph, chip, options, plans: RefCell::new(BTreeMap::new()) }
    }

    /// The engine plans of `unit` with `k` channels and `samples` samples per core and
    /// `batch` (timesteps, samples) per pass, given `dram_share` bytes per cycle of DRAM bandwidth.
    pub fn plan(&self, unit: &UnitShape, k: u32, samples: u32, batch: (u32, u32), dram_share: f64) -> Option<Plans> {
        let key = (unit.weight, k, samples, batch, dram_share.to_bits());
        if let Some(p) = self.plans.borrow().get(&key) {
            return p.clone();
        }
        let p = super::cost::plan(unit, self.chip, self.options, k, samples, self.graph.timesteps, batch, dram_share);
        self.plans.borrow_mut().insert(key, p.clone());
        p
    }
}

/// Bytes of `bits` bits, rounded up.
fn bytes(bits: f64) -> u64 {
    (bits / 8.0).ceil().max(0.0) as u64
}

/// State kept for backward per sample on the busiest core, in bits: membranes, masks, spikes.
fn kept_state(unit: &UnitShape, k: u32, t: u32) -> [f64; 3] {
    let share = f64::from(k) / f64::from(unit.out_ch.max(1));
    let neurons = unit.neurons as f64 * share * f64::from(t);
    let membranes = if unit.keeps_membrane { neurons * 16.0 } else { 0.0 };
    let masks = if unit.spiking { neurons } else { 0.0 };
    // Output spikes, and the copy of the input that WG reads.
    let spikes = if unit.spiking { neurons } else { 0.0 } + unit.in_numel as f64 * f64::from(unit.in_bits * t);
    [membranes, masks, spikes]
}

/// The cost of one unit (without NoC and segment-boundary traffic, which depend on its
/// neighbours and are added by the builder) and its per-engine plans.
pub fn unit_cost(
    ctx: &Ctx<'_>,
    unit: &UnitShape,
    plans: &Plans,
    at: &Placement,
) -> (UnitCost, BTreeMap<Engine, EnginePlan>) {
    let chip = ctx.chip;
    let cores = f64::from(at.channel_groups * at.sample_groups);
    let mut cost = UnitCost::default();
    let mut engines = BTreeMap::new();
    let passes = f64::from(plans.passes);
    let nests = super::cost::unit_nests(unit, chip, ctx.options, plans.k, at.timestep_batch * at.sample_batch);
    for (i, engine) in Engine::ALL.iter().enumerate() {
        let Some(n) = plans.nests[i] else { continue };
        let e = &chip.energy;
        // BP multiplies and adds (two FP16 operations); FP and WG do spike-gated adds.
        let (per_op, op_count) = match engine {
            Engine::Bp => (e.fp16_mul_pj + e.fp16_add_pj, 2.0),
            _ => (e.fp16_add_pj + e.mux_pj / 16.0, 1.0),
        };
        let (extra_cycles, extra_ops, extra_pj) = extras(ctx, unit, plans, at, *engine);
        let cycles = n.cycles * passes + extra_cycles;
        let ops = n.ops * passes * op_count + extra_ops;
        cost.energy.compute_pj += (n.ops * passes * per_op + extra_pj) * cores;
        cost.energy.sram_pj += sram_energy(chip, *engine, &n, passes) * cores;
        let refetch = refetch_dram(chip, *engine, &nests[i], &n, passes, at.weights_on_chip);
        add_refetch(&mut cost, *engine, refetch, cores);
        cost.engines.insert(
            *engine,
            EngineCost {
                compute_cycles: cycles.ceil() as u64,
                utilisation: n.utilisation,
                fp16_ops: (ops * cores) as u64,
            },
        );
        engines.insert(*engine, engine_plan(chip, *engine, &n));
    }
    state_traffic(ctx, unit, plans, at, &mut cost, &mut engines);
    optimizer_traffic(ctx, unit, at, &mut cost);
    cost.fp16_ops = cost.engines.values().map(|e| e.fp16_ops).sum();
    (cost, engines)
}

/// Work besides the synaptic nest on the busiest core: (cycles, FP16 ops, pJ). FP runs the
/// soma (charge, fire, reset: 3 operations per neuron and timestep on a `cols`-wide vector
/// unit) and the hosted layers; BP the soma backward (4); WG the optimizer update.
fn extras(ctx: &Ctx<'_>, unit: &UnitShape, plans: &Plans, at: &Placement, engine: Engine) -> (f64, f64, f64) {
    let chip = ctx.chip;
    let e = &chip.energy;
    let share = f64::from(plans.k) / f64::from(unit.out_ch.max(1));
    let steps = share * f64::from(ctx.graph.timesteps) * f64::from(plans.samples);
    let neuron_steps = unit.neurons as f64 * steps;
    let hosted = unit.hosted_ops as f64 * steps;
    let lanes = f64::from(chip.engines.fp.cols.max(1));
    match engine {
        Engine::Fp => {
            let ops = neuron_steps * 3.0 + hosted;
            let pj = neuron_steps * (e.fp16_add_pj + e.fp16_mul_pj + e.compare_pj) + hosted * e.fp16_add_pj;
            (ops / lanes, ops, pj)
        }
        Engine::Bp => {
            let ops = neuron_steps * 4.0;
            (ops / lanes, ops, neuron_steps * 2.0 * (e.fp16_add_pj + e.fp16_mul_pj))
        }
        Engine::Wg => {
            let params = unit.params as f64 * share / f64::from(at.sample_groups);
            let (ops_per, pj) = optimizer_ops(&ctx.graph.optimizer, chip);
            let pes = f64::from(u32::from(chip.engines.wg.rows) * u32::from(chip.engines.wg.cols)).max(1.0);
            // Optimizer arithmetic is FP32: it costs time and energy but is not counted
            // among the FP16 operations.
            (params * ops_per / pes, 0.0, params * pj)
        }
    }
}

/// Adds one engine's re-read traffic (per core) to the unit's DRAM kinds.
fn add_refetch(cost: &mut UnitCost, engine: Engine, refetch: [f64; 4], cores: f64) {
    let d = &mut cost.dram;
    d.weights += bytes(refetch[0] * cores);
    d.spikes += bytes(refetch[1] * cores);
    if engine == Engine::Fp {
        d.membranes += bytes(refetch[2] * cores);
    } else {
        d.errors += bytes(refetch[2] * cores);
    }
    d.gradients += bytes(refetch[3] * cores);
}

/// FP32 operations per parameter of one update and their energy.
fn optimizer_ops(opt: &Optimizer, chip: &ChipDesc) -> (f64, f64) {
    let e = &chip.energy;
    match opt {
        Optimizer::Sgd { .. } => (4.0, 2.0 * (e.fp32_add_pj + e.fp32_mul_pj)),
        Optimizer::Adam { .. } => (12.0, 6.0 * (e.fp32_add_pj + e.fp32_mul_pj)),
    }
}

/// Energy of moving a pass's operands into and out of the engine's small buffers.
fn sram_energy(chip: &ChipDesc, engine: Engine, n: &NestCost, passes: f64) -> f64 {
    let names = match engine {
        Engine::Fp => ["w", "in", "psum"],
        Engine::Bp => ["w", "psum", "err"],
        Engine::Wg => ["grad", "spk", "err"],
    };
    // Each bit is written into the buffer and read out into the array once.
    names.iter().zip(n.traffic).map(|(b, bits)| 2.0 * bits * pj_per_bit(chip, engine, b)).sum::<f64>() * passes
}

/// DRAM bits per step on one core from refetches: [weights, spikes, membranes or errors,
/// gradients]. Weights come from DRAM unless they fit the buffer or live in the optimizer
/// store; a streamed operand's repeated reads come from the engine's large store if a
/// pass's worth fits in half of it, else from DRAM.
pub fn refetch_dram(
    chip: &ChipDesc,
    engine: Engine,
    nest: &super::nest::Nest,
    n: &NestCost,
    passes: f64,
    on_chip: bool,
) -> [f64; 4] {
    let once = [
        f64::from(nest.k) * f64::from(nest.c) * f64::from(nest.taps) * f64::from(nest.bits[0]),
        f64::from(nest.c) * f64::from(nest.p) * f64::from(nest.bits[1]),
        f64::from(nest.k) * f64::from(nest.p) * f64::from(nest.bits[2]),
    ];
    let mut out = [0.0; 4];
    let w_traffic = if weights_fit(nest) { once[0] } else { n.traffic[0] * passes };
    match engine {
        // WG's weight-shaped operand is the gradient: partial sums spill if it does not fit.
        Engine::Wg if !weights_fit(nest) => out[3] = 2.0 * (n.traffic[0] - once[0]).max(0.0) * passes,
        Engine::Wg => {}
        _ if on_chip => {}
        _ => out[0] = w_traffic,
    }
    let stores = match engine {
        Engine::Fp => [cap(chip, Engine::Fp, "spk"), cap(chip, Engine::Fp, "mem")],
        Engine::Bp => [cap(chip, Engine::Bp, "delta"); 2],
        Engine::Wg => [cap(chip, Engine::Fp, "spk"), cap(chip, Engine::Bp, "delta")],
    };
    // The re-read set: with weights held, the whole pass streams between re-reads; with
    // outputs or inputs held, the loop over positions is outermost, so only one column
    // of tiles (tp positions) must stay on chip between re-reads.
    let tp = f64::from(n.tile.spatial);
    let column = [f64::from(nest.c) * tp * f64::from(nest.bits[1]), f64::from(nest.k) * tp * f64::from(nest.bits[2])];
    for j in 0..2 {
        let extra = (n.traffic[j + 1] - once[j + 1]).max(0.0);
        let set = if n.dataflow == super::Dataflow::WeightStationary { once[j + 1] } else { column[j] };
        if set > stores[j] as f64 / 2.0 {
            out[j + 1] = extra * passes;
        }
    }
    out
}

fn engine_plan(chip: &ChipDesc, engine: Engine, n: &NestCost) -> EnginePlan {
    let names = match engine {
        Engine::Fp => ["w", "in", "psum"],
        Engine::Bp => ["w", "psum", "err"],
        Engine::Wg => ["grad", "spk", "err"],
    };
    let mut buffers = BTreeMap::new();
    for (name, bits) in names.iter().zip(n.occupancy) {
        if cap(chip, engine, name) > 0 {
            buffers.insert((*name).to_string(), bits);
        }
    }
    EnginePlan { dataflow: n.dataflow, tile: n.tile, buffers }
}

/// State kept for backward: in the FP stores if the live samples' state fits, else spilled
/// to DRAM (written in FP, read in BP). Also BP's carried dL/dV.
fn state_traffic(
    ctx: &Ctx<'_>,
    unit: &UnitShape,
    plans: &Plans,
    at: &Placement,
    cost: &mut UnitCost,
    engines: &mut BTreeMap<Engine, EnginePlan>,
) {
    let (chip, t) = (ctx.chip, ctx.graph.timesteps);
    let cores = f64::from(at.channel_groups * at.sample_groups);
    let live = f64::from(at.live_samples.max(at.sample_batch).min(plans.samples).max(1));
    let per_sample = kept_state(unit, plans.k, t);
    let samples = f64::from(plans.samples);
    let names = ["mem", "mask", "spk"];
    let mut spilled = [0.0; 3];
    for (j, name) in names.iter().enumerate() {
        let need = per_sample[j] * live;
        let capacity = cap(chip, Engine::Fp, name) as f64;
        let used = if need <= capacity {
            need
        } else {
            spilled[j] = per_sample[j] * samples;
            // A spilled store still stages one timestep of one sample on its way to DRAM.
            (per_sample[j] / f64::from(t.max(1))).min(capacity)
        };
        cost.energy.sram_pj += 2.0 * per_sample[j] * samples * pj_per_bit(chip, Engine::Fp, name) * cores;
        if let Some(p) = engines.get_mut(&Engine::Fp) {
            p.buffers.insert((*name).to_string(), used.ceil() as u64);
        }
    }
    let d = &mut cost.dram;
    d.membranes += bytes(2.0 * spilled[0] * cores);
    d.masks += bytes(2.0 * spilled[1] * cores);
    d.spikes += bytes(2.0 * spilled[2] * cores);
    cost.dram_resident += bytes(spilled.iter().sum::<f64>() * cores);
    // BP carries dL/dV of every neuron of the sample in flight across timesteps; when all
    // timesteps are batched, it walks time backwards inside each tile, so a tile's carry
    // is all that must stay.
    let share = f64::from(plans.k) / f64::from(unit.out_ch.max(1));
    let carry = unit.neurons as f64 * share * 16.0;
    let delta_cap = cap(chip, Engine::Bp, "delta") as f64;
    let used = if at.timestep_batch == t && t > 1 {
        carry.min(delta_cap / 2.0)
    } else if carry <= delta_cap {
        carry
    } else {
        cost.dram.errors += bytes(2.0 * carry * f64::from(t) * samples * cores);
        delta_cap.min(carry / 16.0)
    };
    if let Some(p) = engines.get_mut(&Engine::Bp) {
        p.buffers.insert("delta".to_string(), used.ceil() as u64);
        let vgrad = (cap(chip, Engine::Bp, "vgrad") as f64).min(carry);
        p.buffers.insert("vgrad".to_string(), vgrad.ceil() as u64);
    }
}

/// Master weights and optimizer state: read and written once per step from DRAM; the
/// FP16 copies live in the optimizer store when the segment's state fits there.
fn optimizer_traffic(ctx: &Ctx<'_>, unit: &UnitShape, at: &Placement, cost: &mut UnitCost) {
    let sb = state_bits(&ctx.graph.optimizer);
    let params = unit.params;
    cost.dram.weights += params * 4 * 2;
    cost.dram.optimizer += params * sb / 8 * 2;
    if at.weights_on_chip {
        cost.opt_store_bits = params * (16 + 32 + sb);
        let opt = &ctx.chip.optimizer_store;
        let per_bit = opt.energy_pj / f64::from(opt.width_bits.max(1));
        cost.energy.sram_pj += cost.opt_store_bits as f64 * 2.0 * per_bit;
    } else {
        // The FP16 copy is written back for the next step.
        cost.dram.weights += params * 2;
    }
}
