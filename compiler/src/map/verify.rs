//! The mapping verifier.
//!
//! Invariants checked, all reported (not just the first):
//! 1. every layer except the input is computed by exactly one unit, and that unit lists it;
//! 2. every core a unit names exists on the chip;
//! 3. within a segment no core runs two units (their buffers would collide);
//! 4. every unit's core slices cover its output channels x samples x timesteps exactly once
//!    (no gap, no overlap, nothing out of range);
//! 5. no buffer holds more bits than the chip gives it, and every buffer named exists;
//!    a segment's optimizer-store use fits the optimizer store;
//! 6. the schedule lists every unit exactly once, in the segment the unit names.

use super::{Engine, Mapping, UnitMap};
use crate::graph::{LayerGraph, LayerId};
use crate::model::Op;
use isa::ChipDesc;
use std::collections::BTreeMap;
use std::fmt;

/// One broken invariant, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapViolation {
    /// The unit concerned, if any.
    pub unit: Option<LayerId>,
    /// The core concerned, if any.
    pub core: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MapViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = self.unit {
            write!(f, "unit {u}: ")?;
        }
        if let Some(c) = self.core {
            write!(f, "core {c}: ")?;
        }
        f.write_str(&self.message)
    }
}

fn violation(unit: Option<LayerId>, core: Option<usize>, message: String) -> MapViolation {
    MapViolation { unit, core, message }
}

/// Every violation of the invariants above; empty when the mapping is valid.
pub fn verify(mapping: &Mapping, graph: &LayerGraph, chip: &ChipDesc) -> Vec<MapViolation> {
    let mut out = Vec::new();
    check_hosts(mapping, graph, &mut out);
    check_cores(mapping, chip, &mut out);
    for unit in mapping.units.values() {
        check_cover(unit, graph, &mut out);
        check_buffers(unit, chip, &mut out);
    }
    check_schedule(mapping, chip, &mut out);
    out
}

fn check_hosts(m: &Mapping, graph: &LayerGraph, out: &mut Vec<MapViolation>) {
    for layer in graph.layers() {
        if matches!(layer.op, Op::Input { .. }) {
            continue;
        }
        let listed: Vec<LayerId> =
            m.units.values().filter(|u| u.layers.contains(&layer.id)).map(|u| u.weight).collect();
        match (m.host.get(&layer.id), listed.as_slice()) {
            (Some(h), [one]) if h == one => {}
            (host, _) => out.push(violation(
                None,
                None,
                format!("layer {} ({}) has host {host:?} but is listed by units {listed:?}", layer.id, layer.name),
            )),
        }
    }
}

fn check_cores(m: &Mapping, chip: &ChipDesc, out: &mut Vec<MapViolation>) {
    let mut owner: BTreeMap<(usize, usize), LayerId> = BTreeMap::new();
    for u in m.units.values() {
        for core in u.cores() {
            if core >= chip.core_count() {
                out.push(violation(Some(u.weight), Some(core), format!("the chip has {} cores", chip.core_count())));
            }
            if let Some(other) = owner.insert((u.segment, core), u.weight) {
                if other != u.weight {
                    out.push(violation(
                        Some(u.weight),
                        Some(core),
                        format!("also runs unit {other} in segment {}", u.segment),
                    ));
                }
            }
        }
    }
}

/// Checks exact cover of channels x samples x timesteps by the slices (boxes).
fn check_cover(u: &UnitMap, graph: &LayerGraph, out: &mut Vec<MapViolation>) {
    let channels = match graph.layer(u.weight).op {
        Op::Conv2d { out, .. } | Op::Linear { out, .. } => out,
        _ => 0,
    };
    let full = [0..channels, 0..graph.batch, 0..graph.timesteps];
    let mut volume = 0u64;
    for (i, s) in u.slices.iter().enumerate() {
        let dims = [&s.channels, &s.samples, &s.timesteps];
        if dims.iter().zip(&full).any(|(d, f)| d.is_empty() || d.start < f.start || d.end > f.end) {
            out.push(violation(Some(u.weight), Some(s.core), format!("slice {s:?} is empty or outside {full:?}")));
            continue;
        }
        volume += dims.iter().map(|d| u64::from(d.end - d.start)).product::<u64>();
        for t in &u.slices[i + 1..] {
            let overlap = [(&s.channels, &t.channels), (&s.samples, &t.samples), (&s.timesteps, &t.timesteps)]
                .iter()
                .all(|(a, b)| a.start < b.end && b.start < a.end);
            if overlap {
                out.push(violation(Some(u.weight), Some(s.core), format!("overlaps core {}'s slice", t.core)));
            }
        }
    }
    let want: u64 = full.iter().map(|d| u64::from(d.end - d.start)).product();
    if volume != want {
        out.push(violation(
            Some(u.weight),
            None,
            format!("slices cover {volume} of {want} channel x sample x timestep cells"),
        ));
    }
}

fn check_buffers(u: &UnitMap, chip: &ChipDesc, out: &mut Vec<MapViolation>) {
    for (engine, plan) in &u.engines {
        let desc = match engine {
            Engine::Fp => &chip.engines.fp,
            Engine::Bp => &chip.engines.bp,
            Engine::Wg => &chip.engines.wg,
        };
        for (name, bits) in &plan.buffers {
            match desc.buffers.get(name) {
                None => out.push(violation(Some(u.weight), None, format!("{}.{name} does not exist", engine.name()))),
                Some(b) if *bits > b.bits => out.push(violation(
                    Some(u.weight),
                    None,
                    format!("{}.{name} holds {bits} bits but has {}", engine.name(), b.bits),
                )),
                Some(_) => {}
            }
        }
    }
}

fn check_schedule(m: &Mapping, chip: &ChipDesc, out: &mut Vec<MapViolation>) {
    let mut seen: BTreeMap<LayerId, usize> = BTreeMap::new();
    for (s, seg) in m.schedule.segments.iter().enumerate() {
        let mut opt = 0u64;
        for w in &seg.units {
            *seen.entry(*w).or_default() += 1;
            match m.units.get(w) {
                Some(u) if u.segment == s => opt += u.cost.opt_store_bits,
                _ => out.push(violation(Some(*w), None, format!("listed in segment {s} but not mapped there"))),
            }
        }
        if opt > chip.optimizer_store.bits {
            out.push(violation(
                None,
                None,
                format!("segment {s} uses {opt} bits of the optimizer store, which has {}", chip.optimizer_store.bits),
            ));
        }
    }
    for w in m.units.keys() {
        if seen.get(w).copied().unwrap_or(0) != 1 {
            out.push(violation(Some(*w), None, "is not scheduled exactly once".to_string()));
        }
    }
}
