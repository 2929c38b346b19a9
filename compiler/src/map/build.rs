//! Turning a candidate (segments of units and a core count per unit) into a costed
//! [`Mapping`]: cores are placed, each unit's split, timestep batching, dataflows and tiles
//! are chosen for the objective, transfers between units are costed and the segment and
//! total cycles are summed.

use super::account::{Ctx, unit_cost};
use super::cost::{Placement, TotalCost, UnitCost, state_bits};
use super::units::{UnitShape, Units};
use super::{CoreSlice, Engine, EnginePlan, Mapping, Objective, Schedule, Segment, SegmentMode, Source, UnitMap};
use crate::graph::{LayerGraph, LayerId};
use crate::model::{Encoding, Op};
use isa::ChipDesc;
use std::collections::BTreeMap;

/// A point of the search space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Unit indices per segment, in order; together they are 0..units.
    pub segments: Vec<Vec<usize>>,
    /// Cores per unit (indexed like `Units::list`).
    pub cores: Vec<u32>,
}

/// Cores in snake order over the mesh, so that consecutive cores are neighbours.
pub fn core_order(chip: &ChipDesc) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..chip.core_count()).collect();
    ids.sort_by_key(|&i| {
        let [x, y] = chip.cores[i];
        let x = if y % 2 == 0 { i32::from(x) } else { -i32::from(x) };
        (y, x, i)
    });
    ids
}

/// The ways to spread `n` cores: (channel groups, sample groups) with each group non-empty.
pub fn splits(n: u32, out_ch: u32, batch: u32) -> Vec<(u32, u32)> {
    (1..=n).filter(|s| n % s == 0 && *s <= batch && n / s <= out_ch).map(|s| (n / s, s)).collect()
}

/// Even ranges of `0..total` in `groups` parts.
pub fn ranges(total: u32, groups: u32) -> Vec<std::ops::Range<u32>> {
    let groups = groups.max(1);
    let (base, extra) = (total / groups, total % groups);
    let mut start = 0;
    (0..groups)
        .map(|g| {
            let len = base + u32::from(g < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// The (timesteps, samples) per pass worth trying: one, all timesteps of a sample, and all
/// timesteps of all the core's samples (which reads each weight tile once per step).
fn batchings(t: u32, samples: u32) -> Vec<(u32, u32)> {
    let mut v = vec![(1, 1), (t, 1), (t, samples)];
    v.dedup();
    v
}

/// Builds and costs the mapping of `cand`; `None` if some unit has no plan that fits.
pub fn build(ctx: &Ctx<'_>, units: &Units, cand: &Candidate) -> Option<Mapping> {
    let order = core_order(ctx.chip);
    let mut segment_of = BTreeMap::new();
    for (s, seg) in cand.segments.iter().enumerate() {
        for &u in seg {
            segment_of.insert(units.list[u].weight, s);
        }
    }
    let mode = if cand.segments.len() == 1 { SegmentMode::Overlapped } else { SegmentMode::ForwardThenBackward };
    let mut maps: BTreeMap<LayerId, UnitMap> = BTreeMap::new();
    let mut schedule = Schedule::default();
    for (s, seg) in cand.segments.iter().enumerate() {
        let seg_cores: u32 = seg.iter().map(|&u| cand.cores[u]).sum();
        let state: u64 = seg.iter().map(|&u| units.list[u].params * (48 + state_bits(&ctx.graph.optimizer))).sum();
        let on_chip = state <= ctx.chip.optimizer_store.bits;
        let mut next = 0;
        for (pos, &u) in seg.iter().enumerate() {
            let n = cand.cores[u];
            let cores: Vec<usize> = order[next..next + n as usize].to_vec();
            next += n as usize;
            let shape = &units.list[u];
            let sources = units.sources(shape, &segment_of);
            let later = (seg.len() - pos - 1) as u32;
            let live = if mode == SegmentMode::Overlapped { 1 + 2 * later } else { ctx.graph.batch };
            let fixed = Fixed { cores, seg_cores, on_chip, live, mode, segment: s, sources };
            let map = best_unit(ctx, shape, &fixed, &maps)?;
            maps.insert(shape.weight, map);
        }
        schedule.segments.push(segment_cycles(ctx, seg.iter().map(|&u| &maps[&units.list[u].weight]), mode));
    }
    let total = totals(ctx, &maps, &schedule);
    Some(Mapping { options: ctx.options.clone(), units: maps, host: units.host.clone(), schedule, total })
}

/// What is fixed about a unit before its own choices are made.
struct Fixed {
    cores: Vec<usize>,
    seg_cores: u32,
    on_chip: bool,
    live: u32,
    mode: SegmentMode,
    segment: usize,
    sources: Vec<Source>,
}

/// The best split, timestep batch and plans of one unit for the objective.
fn best_unit(ctx: &Ctx<'_>, shape: &UnitShape, f: &Fixed, placed: &BTreeMap<LayerId, UnitMap>) -> Option<UnitMap> {
    let (t, b) = (ctx.graph.timesteps, ctx.graph.batch);
    let n = f.cores.len() as u32;
    let dram_share = f64::from(ctx.chip.dram.bytes_per_cycle) * f64::from(n) / f64::from(f.seg_cores.max(1));
    let mut best: Option<(f64, UnitMap)> = None;
    for (gc, gs) in splits(n, shape.out_ch, b) {
        let k = shape.out_ch.div_ceil(gc);
        let samples = b.div_ceil(gs);
        for (tb, sb) in batchings(t, samples) {
            let Some(plans) = ctx.plan(shape, k, samples, (tb, sb), dram_share) else { continue };
            let at = Placement {
                channel_groups: gc,
                sample_groups: gs,
                timestep_batch: tb,
                sample_batch: sb,
                live_samples: f.live,
                mode: f.mode,
                weights_on_chip: f.on_chip,
                segment_cores: f.seg_cores,
            };
            let (mut cost, engines) = unit_cost(ctx, shape, &plans, &at);
            add_transfers(ctx, shape, &f.sources, &f.cores, &at, placed, &mut cost);
            finish_unit(ctx, &mut cost, &at);
            let score = unit_score(ctx.options.objective, &cost);
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                let slices = slices_of(&f.cores, shape.out_ch, gc, b, gs, t);
                let map = unit_map(shape, slices, (tb, sb), engines, f, cost);
                best = Some((score, map));
            }
        }
    }
    best.map(|(_, m)| m)
}

fn unit_map(
    shape: &UnitShape,
    slices: Vec<CoreSlice>,
    (tb, sb): (u32, u32),
    engines: BTreeMap<Engine, EnginePlan>,
    f: &Fixed,
    cost: UnitCost,
) -> UnitMap {
    UnitMap {
        weight: shape.weight,
        layers: shape.layers.clone(),
        slices,
        timestep_batch: tb,
        sample_batch: sb,
        engines,
        sources: f.sources.clone(),
        segment: f.segment,
        cost,
    }
}

/// The score of a unit or a whole mapping: lower is better.
fn unit_score(objective: Objective, cost: &UnitCost) -> f64 {
    match objective {
        Objective::Latency => cost.cycles as f64 + cost.energy.total() * 1e-12,
        Objective::Energy => cost.energy.total() + cost.cycles as f64 * 1e-6,
        Objective::Dram => cost.dram.total() as f64 + cost.cycles as f64 * 1e-6,
    }
}

/// The score of a whole mapping for `objective`: lower is better.
pub fn mapping_score(objective: Objective, total: &TotalCost) -> f64 {
    match objective {
        Objective::Latency => total.cycles as f64,
        Objective::Energy => total.energy.total(),
        Objective::Dram => total.dram.total() as f64 + total.cycles as f64 * 1e-6,
    }
}

/// Core slices: channel groups outer, sample groups inner, over `cores` in order.
fn slices_of(cores: &[usize], out_ch: u32, gc: u32, batch: u32, gs: u32, t: u32) -> Vec<CoreSlice> {
    let mut out = Vec::new();
    let mut it = cores.iter();
    for ch in ranges(out_ch, gc) {
        for sm in ranges(batch, gs) {
            if let Some(&core) = it.next() {
                out.push(CoreSlice { core, channels: ch.clone(), samples: sm, timesteps: 0..t });
            }
        }
    }
    out.sort_by_key(|s| s.core);
    out
}

/// Bytes of the model input read from DRAM per step: the data once per sample (currents
/// and Bernoulli rates are re-used or drawn on chip every timestep), or every frame of
/// recorded spikes.
pub fn input_bytes(graph: &LayerGraph) -> u64 {
    let input = graph.input();
    let (t, b) = (u64::from(graph.timesteps), u64::from(graph.batch));
    match &input.op {
        Op::Input { encoding: Encoding::Spikes, .. } => (input.numel() * t * b).div_ceil(8),
        _ => input.numel() * 2 * b,
    }
}

/// Adds the unit's inbound transfers: the model input, spikes and errors over the NoC from
/// units of the same segment or through DRAM from other segments, and the gradient
/// all-reduce between sample groups.
fn add_transfers(
    ctx: &Ctx<'_>,
    shape: &UnitShape,
    sources: &[Source],
    cores: &[usize],
    at: &Placement,
    placed: &BTreeMap<LayerId, UnitMap>,
    cost: &mut UnitCost,
) {
    let g = ctx.graph;
    let tb = f64::from(g.timesteps) * f64::from(g.batch);
    let ed = ctx.options.error_density.clamp(0.0, 1.0);
    for (src, &(layer, numel, bits)) in sources.iter().zip(&shape.reads) {
        let fwd = numel as f64 * f64::from(bits) * tb / 8.0;
        match src {
            Source::Dram { .. } if matches!(g.layer(layer).op, Op::Input { .. }) => {
                cost.dram.input_spikes += input_bytes(g);
            }
            Source::Dram { .. } => {
                // Errors are stored like on the NoC: non-zero values plus a bitmap.
                let sparse_back = if shape.first { 0.0 } else { numel as f64 * (16.0 * ed + 1.0) * tb / 8.0 };
                cost.dram.spikes += (2.0 * fwd) as u64;
                cost.dram.errors += (2.0 * sparse_back) as u64;
            }
            Source::Noc { unit, .. } => {
                // Errors travel as non-zero values plus a bitmap; every channel group sends
                // its partial sums back and receives the whole input.
                let sparse_back = numel as f64 * (16.0 * ed + 1.0) * tb / 8.0;
                let bytes = (fwd + sparse_back) * f64::from(at.channel_groups);
                let hops = placed.get(unit).map(|m| mean_hops(ctx.chip, m, cores)).unwrap_or(1.0);
                cost.noc_bytes += bytes as u64;
                cost.noc_byte_hops += (bytes * hops) as u64;
            }
        }
    }
    if at.sample_groups > 1 {
        let bytes = shape.params as f64 * 4.0 * 2.0 * f64::from(at.sample_groups - 1) / f64::from(at.sample_groups);
        cost.noc_bytes += bytes as u64;
        cost.noc_byte_hops += bytes as u64;
    }
}

/// Mean mesh distance from the cores of `from` to `cores`.
fn mean_hops(chip: &ChipDesc, from: &UnitMap, cores: &[usize]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0.0;
    for a in from.cores() {
        for &b in cores {
            sum += f64::from(chip.hops(a, b).unwrap_or(0));
            count += 1.0;
        }
    }
    if count > 0.0 { sum / count } else { 0.0 }
}

/// Cycles with stalls, and the DRAM and NoC energies, of a unit.
fn finish_unit(ctx: &Ctx<'_>, cost: &mut UnitCost, at: &Placement) {
    let chip = ctx.chip;
    let e = |x: Engine| cost.engines.get(&x).map(|c| c.compute_cycles).unwrap_or(0);
    let (fp, bp, wg) = (e(Engine::Fp), e(Engine::Bp), e(Engine::Wg));
    let compute = match at.mode {
        SegmentMode::Overlapped => fp.max(bp).max(wg),
        SegmentMode::ForwardThenBackward => fp + bp.max(wg),
    };
    let cores = u64::from(at.channel_groups * at.sample_groups).max(1);
    let noc = cost.noc_bytes / cores / u64::from(chip.noc.link_bytes_per_cycle.max(1));
    let dram_bytes = cost.dram.total();
    let dram = dram_bytes / u64::from(chip.dram.bytes_per_cycle.max(1));
    let latency = if dram_bytes > 0 { u64::from(chip.dram.latency_cycles) } else { 0 };
    cost.cycles = compute.max(noc).max(dram + latency);
    cost.stall_cycles = cost.cycles - compute;
    let access_bytes = f64::from((chip.dram.access_bits / 8).max(1));
    cost.energy.dram_pj = dram_bytes as f64 / access_bytes * chip.dram.energy_pj_per_access;
    cost.energy.noc_pj = cost.noc_byte_hops as f64 * chip.noc.energy_pj_per_byte_hop;
}

/// A segment's cycles: its slowest unit, or its DRAM traffic at the whole chip's bandwidth
/// if that takes longer, plus the time to fill the pipeline (one pass of every unit).
fn segment_cycles<'a>(ctx: &Ctx<'_>, maps: impl Iterator<Item = &'a UnitMap>, mode: SegmentMode) -> Segment {
    let maps: Vec<&UnitMap> = maps.collect();
    let slowest = maps.iter().map(|m| m.cost.cycles).max().unwrap_or(0);
    let dram: u64 = maps.iter().map(|m| m.cost.dram.total()).sum();
    let dram_cycles = dram / u64::from(ctx.chip.dram.bytes_per_cycle.max(1));
    let fill: u64 = maps
        .iter()
        .map(|m| {
            let per_pass = u64::from(m.timestep_batch.max(1)) * u64::from(m.sample_batch.max(1));
            let samples = m.slices.iter().map(|s| u64::from(s.samples.end - s.samples.start)).max().unwrap_or(1);
            let passes = samples * u64::from(ctx.graph.timesteps) / per_pass;
            (m.cost.cycles - m.cost.stall_cycles) / passes.max(1)
        })
        .sum();
    Segment { units: maps.iter().map(|m| m.weight).collect(), mode, cycles: slowest.max(dram_cycles) + fill }
}

fn totals(ctx: &Ctx<'_>, maps: &BTreeMap<LayerId, UnitMap>, schedule: &Schedule) -> TotalCost {
    let mut t = TotalCost { cycles: schedule.segments.iter().map(|s| s.cycles).sum(), ..TotalCost::default() };
    for m in maps.values() {
        t.dram.add(&m.cost.dram);
        t.energy.add(&m.cost.energy);
        t.noc_bytes += m.cost.noc_bytes;
        t.noc_byte_hops += m.cost.noc_byte_hops;
        t.fp16_ops += m.cost.fp16_ops;
    }
    t.seconds = t.cycles as f64 / (f64::from(ctx.chip.clock_mhz.max(1)) * 1e6);
    t.samples_per_s = if t.seconds > 0.0 { f64::from(ctx.graph.batch) / t.seconds } else { 0.0 };
    let joules = t.energy.total() * 1e-12;
    t.tflops_per_w = if joules > 0.0 { t.fp16_ops as f64 / joules / 1e12 } else { 0.0 };
    let on_chip = (t.energy.total() - t.energy.dram_pj) * 1e-12;
    t.tflops_per_w_on_chip = if on_chip > 0.0 { t.fp16_ops as f64 / on_chip / 1e12 } else { 0.0 };
    t
}

/// The score of segment `s` of a mapping alone (segments of a multi-segment mapping
/// are independent: they meet only through DRAM).
pub fn segment_score(objective: Objective, m: &Mapping, s: usize) -> f64 {
    let units = m.units.values().filter(|u| u.segment == s);
    match objective {
        Objective::Latency => m.schedule.segments.get(s).map(|g| g.cycles as f64).unwrap_or(0.0),
        Objective::Energy => units.map(|u| u.cost.energy.total()).sum(),
        Objective::Dram => units.map(|u| u.cost.dram.total() as f64 + u.cost.cycles as f64 * 1e-6).sum(),
    }
}
