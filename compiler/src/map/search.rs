//! Searching the space of mappings.
//!
//! A point of the space is a `Candidate`: the units cut into consecutive segments (each
//! a pipeline over distinct cores, so a segment has at most as many units as the chip has
//! cores) and a core count per unit. Everything else — channel / sample split, timestep
//! batching, dataflow and tile per engine — is chosen per unit by the builder (`build.rs`) for the
//! objective, so both searches share it.
//!
//! * [`default_search`] tries a few segment lengths (all units in one segment if they fit,
//!   then halves), cutting the units into balanced segments, and hands out each segment's
//!   cores greedily: every core goes to the unit that is then slowest; then it
//!   hill-climbs on the core counts (add, remove, move, double or halve) with full costs,
//!   stalls included, within a budget of builds.
//! * [`exhaustive_search`] tries every cut and every core count for models of at most
//!   [`EXHAUSTIVE_MAX_UNITS`] units.

use super::account::Ctx;
use super::build::{Candidate, build, mapping_score, segment_score, splits};
use super::cost::state_bits;
use super::units::Units;
use super::{MapError, MapOptions, Mapping, Objective};
use crate::graph::LayerGraph;
use isa::ChipDesc;
use std::collections::BTreeMap;

/// The largest model (in weight layers) the exhaustive search accepts.
pub const EXHAUSTIVE_MAX_UNITS: usize = 4;

/// Checks what does not depend on the mapping: a usable chip, something to train, and
/// room in DRAM for the training state.
fn prepare(graph: &LayerGraph, chip: &ChipDesc, options: &MapOptions) -> Result<Units, MapError> {
    let problems = chip.validate();
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(MapError::Chip(text.join("; ")));
    }
    let units = Units::of(graph, options);
    if units.list.is_empty() {
        return Err(MapError::NoWeights(graph.name.clone()));
    }
    check_dram(graph, chip, &units)?;
    Ok(units)
}

/// Weights (FP16), master weights (FP32), gradients (FP32) and optimizer state must fit in
/// DRAM together with one batch of input.
fn check_dram(graph: &LayerGraph, chip: &ChipDesc, units: &Units) -> Result<(), MapError> {
    let params: u64 = units.list.iter().map(|u| u.params).sum();
    let state = state_bits(&graph.optimizer) / 8;
    let per_param = 2 + 4 + 4 + state;
    let input = super::build::input_bytes(graph);
    let need = params * per_param + input;
    let have = chip.dram.capacity_bytes;
    if need <= have {
        return Ok(());
    }
    let fits = have.saturating_sub(input) / per_param;
    Err(MapError::DramCapacity {
        model: graph.name.clone(),
        need,
        have,
        detail: format!(
            "{params} parameters x {per_param} B (FP16 weight, FP32 master weight, FP32 gradient, {state} B optimizer state) + {input} B of input"
        ),
        hint: format!(
            "it would fit with dram.capacity_bytes >= {need} in the chip description, or with at most {fits} parameters (fewer channels); a smaller batch does not help"
        ),
    })
}

fn total_order(a: f64, b: f64) -> std::cmp::Ordering {
    a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
}

/// The objectives a unit's own choices are made with. A unit's fastest choice can load
/// the DRAM its segment shares, so for latency and energy the choices that save DRAM are
/// tried as well and the mapping is judged by the user's objective.
fn local_objectives(goal: Objective) -> Vec<Objective> {
    match goal {
        Objective::Dram => vec![Objective::Dram],
        other => vec![other, Objective::Dram],
    }
}

/// The best of `runs` by `goal`, carrying the user's options.
fn pick(runs: Vec<Option<Mapping>>, options: &MapOptions) -> Result<Mapping, MapError> {
    let mut best: Option<(f64, Mapping)> = None;
    for m in runs.into_iter().flatten() {
        let s = mapping_score(options.objective, &m.total);
        if best.as_ref().is_none_or(|(b, _)| total_order(s, *b).is_lt()) {
            best = Some((s, m));
        }
    }
    let (_, mut m) =
        best.ok_or_else(|| MapError::Chip("no unit has a tile that fits the engine buffers".to_string()))?;
    m.options = options.clone();
    Ok(m)
}

/// The default search: a handful of segmentations, greedy core allocation, refinement.
pub fn default_search(graph: &LayerGraph, chip: &ChipDesc, options: &MapOptions) -> Result<Mapping, MapError> {
    let units = prepare(graph, chip, options)?;
    let runs = local_objectives(options.objective)
        .into_iter()
        .map(|local| {
            let local_options = MapOptions { objective: local, ..options.clone() };
            default_with(&Ctx::new(graph, chip, &local_options), &units, options.objective)
        })
        .collect();
    pick(runs, options)
}

/// One default search with the context's objective for unit choices, judged by `goal`.
fn default_with(ctx: &Ctx<'_>, units: &Units, goal: Objective) -> Option<Mapping> {
    let cores = ctx.chip.core_count();
    let n = units.list.len();
    let mut lengths: Vec<usize> = std::iter::successors(Some(cores.min(n)), |l| (*l > 1).then_some(l / 2)).collect();
    lengths.dedup();
    let mut estimate = Estimator::new(ctx, units);
    let mut best: Option<(f64, Candidate, Mapping)> = None;
    for len in lengths {
        let segments = balanced(n, len);
        let counts = segments.iter().flat_map(|s| estimate.allocate(s, cores)).collect::<Vec<_>>();
        let cand = Candidate { segments, cores: counts };
        if let Some(m) = build(ctx, units, &cand) {
            let s = mapping_score(goal, &m.total);
            if best.as_ref().is_none_or(|(b, _, _)| total_order(s, *b).is_lt()) {
                best = Some((s, cand, m));
            }
        }
    }
    let (score, cand, mapping) = best?;
    Some(refine(ctx, units, goal, cand, score, mapping))
}

/// Most full builds the default search spends refining core counts: generous for small
/// models, whose builds are cheap, and bounded for large ones.
fn refine_budget(units: usize) -> usize {
    if units <= 8 { 400 } else { 24 }
}

/// Hill-climbs from `cand`: moves one core between units of a segment, or takes one away
/// or adds a free one, keeping any change that lowers the score, until nothing helps or
/// the budget is spent. The greedy allocation only sees compute; this sees stalls too.
fn refine(
    ctx: &Ctx<'_>,
    units: &Units,
    goal: Objective,
    mut cand: Candidate,
    mut score: f64,
    mut best: Mapping,
) -> Mapping {
    let cores = ctx.chip.core_count() as u32;
    let mut budget = refine_budget(units.list.len());
    let mut improved = true;
    while improved && budget > 0 {
        improved = false;
        for trial in moves(&cand, cores) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            if let Some(m) = build(ctx, units, &trial) {
                let s = mapping_score(goal, &m.total);
                if total_order(s, score).is_lt() {
                    (cand, score, best, improved) = (trial, s, m, true);
                    break;
                }
            }
        }
    }
    best
}

/// Neighbouring candidates: one core fewer, one more, or one moved, within a segment.
fn moves(cand: &Candidate, cores: u32) -> Vec<Candidate> {
    let mut out = Vec::new();
    for seg in &cand.segments {
        let used: u32 = seg.iter().map(|&u| cand.cores[u]).sum();
        for &i in seg {
            let mut with = |f: &dyn Fn(&mut Vec<u32>)| {
                let mut c = cand.clone();
                f(&mut c.cores);
                out.push(c);
            };
            // Splits need core counts that divide well, so steps of two and doubling help
            // the climb past counts with no good split.
            for step in [1, 2, cand.cores[i]] {
                if used + step <= cores {
                    with(&|c| c[i] += step);
                }
            }
            if cand.cores[i] > 1 {
                for &j in seg.iter().filter(|&&j| j != i) {
                    with(&|c| {
                        c[i] -= 1;
                        c[j] += 1;
                    });
                }
                with(&|c| c[i] -= 1);
                with(&|c| c[i] -= c[i] / 2);
            }
        }
    }
    out
}

/// `n` units cut into consecutive segments of at most `len`, as even as possible.
fn balanced(n: usize, len: usize) -> Vec<Vec<usize>> {
    let count = n.div_ceil(len.max(1)).max(1);
    let (base, extra) = (n / count, n % count);
    let mut start = 0;
    (0..count)
        .map(|i| {
            let size = base + usize::from(i < extra);
            let seg: Vec<usize> = (start..start + size).collect();
            start += size;
            seg
        })
        .collect()
}

/// Quick per-unit time estimates (the busiest engine's compute cycles) for core counts.
struct Estimator<'a> {
    ctx: &'a Ctx<'a>,
    units: &'a Units,
    memo: BTreeMap<(usize, u32), f64>,
}

impl<'a> Estimator<'a> {
    fn new(ctx: &'a Ctx<'a>, units: &'a Units) -> Estimator<'a> {
        Estimator { ctx, units, memo: BTreeMap::new() }
    }

    /// Compute cycles of unit `u` on `n` cores (infinite if it cannot use them).
    fn time(&mut self, u: usize, n: u32) -> f64 {
        if let Some(t) = self.memo.get(&(u, n)) {
            return *t;
        }
        let shape = &self.units.list[u];
        let (t, b) = (self.ctx.graph.timesteps, self.ctx.graph.batch);
        let _ = t;
        let share = f64::from(self.ctx.chip.dram.bytes_per_cycle);
        let mut best = f64::INFINITY;
        for (gc, gs) in splits(n, shape.out_ch, b) {
            let k = shape.out_ch.div_ceil(gc);
            let s = b.div_ceil(gs);
            if let Some(p) = self.ctx.plan(shape, k, s, (t, 1), share) {
                let worst = p.nests.iter().flatten().map(|c| c.cycles).fold(0.0, f64::max);
                best = best.min(worst * f64::from(p.passes));
            }
        }
        self.memo.insert((u, n), best);
        best
    }

    /// Core counts for the units of one segment: one each, then every spare core to the
    /// slowest unit that gets faster with it.
    fn allocate(&mut self, seg: &[usize], cores: usize) -> Vec<u32> {
        let mut counts = vec![1u32; seg.len()];
        for _ in seg.len()..cores {
            let mut pick: Option<(usize, f64)> = None;
            for (i, &u) in seg.iter().enumerate() {
                let now = self.time(u, counts[i]);
                let next = self.time(u, counts[i] + 1);
                if next < now && pick.is_none_or(|(_, t)| now > t) {
                    pick = Some((i, now));
                }
            }
            match pick {
                Some((i, _)) => counts[i] += 1,
                None => break,
            }
        }
        counts
    }
}

/// Every segmentation and every core allocation of a small model; the best by the
/// objective.
pub fn exhaustive_search(graph: &LayerGraph, chip: &ChipDesc, options: &MapOptions) -> Result<Mapping, MapError> {
    let units = prepare(graph, chip, options)?;
    let n = units.list.len();
    if n > EXHAUSTIVE_MAX_UNITS {
        return Err(MapError::TooLarge { model: graph.name.clone(), units: n, max: EXHAUSTIVE_MAX_UNITS });
    }
    let cores = chip.core_count();
    let mut runs = Vec::new();
    for local in local_objectives(options.objective) {
        let local_options = MapOptions { objective: local, ..options.clone() };
        let ctx = Ctx::new(graph, chip, &local_options);
        for mask in 0..(1u32 << (n - 1)) {
            let segments = cut(n, mask);
            if segments.iter().all(|s| s.len() <= cores) {
                runs.push(best_for_cut(&ctx, &units, options.objective, segments));
            }
        }
    }
    pick(runs, options)
}

/// The best core allocation for one segmentation. Segments are independent, so each is
/// optimised alone with the others held at one core per unit.
fn best_for_cut(ctx: &Ctx<'_>, units: &Units, goal: Objective, segments: Vec<Vec<usize>>) -> Option<Mapping> {
    let cores = ctx.chip.core_count() as u32;
    let mut counts = vec![1u32; units.list.len()];
    for (s, seg) in segments.iter().enumerate() {
        let mut best: Option<(f64, Vec<u32>)> = None;
        for choice in compositions(seg.len(), cores) {
            let mut trial = counts.clone();
            for (&u, &c) in seg.iter().zip(&choice) {
                trial[u] = c;
            }
            let cand = Candidate { segments: segments.clone(), cores: trial };
            if let Some(m) = build(ctx, units, &cand) {
                let score = segment_score(goal, &m, s);
                if best.as_ref().is_none_or(|(b, _)| total_order(score, *b).is_lt()) {
                    best = Some((score, choice));
                }
            }
        }
        let (_, choice) = best?;
        for (&u, &c) in seg.iter().zip(&choice) {
            counts[u] = c;
        }
    }
    build(ctx, units, &Candidate { segments, cores: counts })
}

/// The segmentation of `n` units whose cut points are the set bits of `mask`.
fn cut(n: usize, mask: u32) -> Vec<Vec<usize>> {
    let mut segments = vec![vec![0]];
    for u in 1..n {
        if mask & (1 << (u - 1)) != 0 {
            segments.push(Vec::new());
        }
        if let Some(last) = segments.last_mut() {
            last.push(u);
        }
    }
    segments
}

/// Every way to give `parts` units at least one core each and at most `cores` in all.
fn compositions(parts: usize, cores: u32) -> Vec<Vec<u32>> {
    if parts == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    let rest_min = (parts - 1) as u32;
    for first in 1..=cores.saturating_sub(rest_min) {
        for mut tail in compositions(parts - 1, cores - first) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}
