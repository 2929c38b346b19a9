//! Core assignment: which cores code generation gives each layer, taken from the mapping
//! pass, so that the program `snnc compile` writes is the one `snnc map` reports.
//!
//! A [`CoreMap`] is a side table keyed by [`LayerId`]: for every layer of a mapped unit
//! (weight layer, neuron layer and the layers it hosts: pooling, flatten, `add` joins) the
//! unit's cores in the mapping's order ([`UnitMap::cores`]). The generators read it:
//!
//! - the resident generator ([`super::Placement::mapped`]) runs a unit on the mapping's core
//!   when the mapping gives every unit exactly one core of its own; otherwise (a unit split
//!   over several cores, or two units of different segments on one core, neither of which a
//!   resident program can run) it keeps unit `i` on core `i` and says why;
//! - the staged generator spreads each layer's tiles round robin over the cores of the
//!   layer's whole segment (see below), and over all cores for a layer the table does not
//!   name. Tile *sizes* are chosen for
//!   the whole chip whatever the assignment, so the assignment moves work between cores but
//!   never changes a sum: mapped and all-cores programs train bit for bit alike.
//!
//! The mapping is made with the default [`MapOptions`], so `snnc map MODEL` (without
//! options) shows the same cores. When the mapping fails, or names cores a layer cannot use
//! (not on the chip, repeated, none), those layers fall back to all cores and
//! [`CoreMap::notes`] says so; `snnc compile --emit mapping` prints the notes.
//!
//! # Staged programs follow the mapping's segments
//!
//! The mapping assumes the units of a segment run at once, pipelined over disjoint cores;
//! a staged program runs its layers one after another (each ends at a chip-wide barrier).
//! Giving each layer only its unit's share of the segment's cores would leave the rest of
//! the segment idle while it runs: `dvs_gesture`, one segment of six units, then took
//! 3.10 s of simulated time per step against 1.35 s over all cores. So a staged program
//! follows the mapping at the granularity it can honour, the segment: every layer gets the
//! cores of its whole segment ([`CoreMap::segment_cores_of`], the segment's units' cores in
//! the mapping's order). A mapping of one segment (`dvs_gesture`, `fc784_512`,
//! `resnet_digits`) then spreads every layer over its cores, as all-cores does; a mapping
//! of several segments gives each layer its segment's cores. That costs little because
//! staged programs are bound by the DRAM all cores share: `vgg_cifar_small` (four segments
//! of one unit each) takes 93.2 M cycles per step mapped against 90.0 M on all cores
//! (+3.5%, random input at a 20% spike rate). [`PlacementChoice::Mapped`] is the default,
//! so the program is the one the mapping report describes, segment by segment;
//! [`PlacementChoice::AllCores`] buys back those few percent. Running a segment's units at
//! once on their own cores is what would let staged programs take the unit-level split.

use crate::graph::{LayerGraph, LayerId};
use crate::map::{MapError, MapOptions, Mapping, UnitMap, map_graph};
use isa::ChipDesc;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Where code generation puts each layer's work (`snnc compile --placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlacementChoice {
    /// The mapping's cores.
    #[default]
    Mapped,
    /// No mapping: resident unit `i` on core `i`, staged tiles over all cores.
    AllCores,
}

impl PlacementChoice {
    /// The name used on the command line and in `--emit mapping`.
    pub fn name(self) -> &'static str {
        match self {
            PlacementChoice::Mapped => "mapped",
            PlacementChoice::AllCores => "all-cores",
        }
    }
}

/// The cores each layer's work goes to, and why any layer does not follow the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMap {
    choice: PlacementChoice,
    /// Whether a mapping was made (the choice asked for one and the pass succeeded).
    mapping: bool,
    /// Per layer of a usable mapped unit, the unit's cores in the mapping's order.
    layers: BTreeMap<LayerId, Vec<u16>>,
    /// Per layer of a usable mapped unit, the cores of the unit's whole segment.
    segments: BTreeMap<LayerId, Vec<u16>>,
    /// Why all or part of the mapping is not used, in sentences.
    notes: Vec<String>,
}

impl CoreMap {
    /// Maps `graph` onto `chip` with the default options when `choice` asks for it, and
    /// takes the cores from the mapping; a mapping that fails leaves every layer on all
    /// cores, with a note.
    pub fn choose(graph: &LayerGraph, chip: &ChipDesc, choice: PlacementChoice) -> CoreMap {
        if choice == PlacementChoice::AllCores {
            return CoreMap::all_cores(choice, Vec::new());
        }
        CoreMap::from_result(graph, chip, map_graph(graph, chip, &MapOptions::default()), choice)
    }

    /// [`CoreMap::from_mapping`] of a mapping pass's result; a failed mapping leaves every
    /// layer on all cores, with a note that quotes the error.
    pub fn from_result(
        graph: &LayerGraph,
        chip: &ChipDesc,
        mapping: Result<Mapping, MapError>,
        choice: PlacementChoice,
    ) -> CoreMap {
        match mapping {
            Ok(m) => CoreMap::from_mapping(graph, chip, &m, choice),
            Err(e) => {
                let note = format!("the mapping failed ({e}), so every layer's work goes to all cores");
                CoreMap::all_cores(choice, vec![note])
            }
        }
    }

    /// The cores of every unit of `mapping` whose cores the chip has, each once; the other
    /// units' layers keep all cores, with a note each.
    pub fn from_mapping(graph: &LayerGraph, chip: &ChipDesc, mapping: &Mapping, choice: PlacementChoice) -> CoreMap {
        let mut map = CoreMap::all_cores(choice, Vec::new());
        if choice == PlacementChoice::AllCores {
            return map;
        }
        map.mapping = true;
        let segments = segment_cores(mapping, chip);
        for unit in mapping.units.values() {
            match usable_cores(unit, chip) {
                Ok(cores) => {
                    let segment = segments.get(&unit.segment).cloned().unwrap_or_else(|| cores.clone());
                    for layer in hosted(mapping, unit) {
                        map.layers.insert(layer, cores.clone());
                        map.segments.insert(layer, segment.clone());
                    }
                }
                Err(why) => map.notes.push(format!(
                    "the mapping gives {} {why}, so its work goes to all cores",
                    unit_name(graph, unit.weight)
                )),
            }
        }
        map
    }

    /// No mapping: every layer on all cores.
    fn all_cores(choice: PlacementChoice, notes: Vec<String>) -> CoreMap {
        CoreMap { choice, mapping: false, layers: BTreeMap::new(), segments: BTreeMap::new(), notes }
    }

    /// What was asked for.
    pub fn choice(&self) -> PlacementChoice {
        self.choice
    }

    /// Whether the cores come from a mapping (`false` for all-cores, or when the mapping
    /// failed).
    pub fn has_mapping(&self) -> bool {
        self.mapping
    }

    /// The cores the mapping gives `layer`, in its order (`None` when it places none
    /// that the chip has, or there is no mapping).
    pub fn cores_of(&self, layer: LayerId) -> Option<&[u16]> {
        self.layers.get(&layer).map(Vec::as_slice)
    }

    /// The cores of the whole segment of `layer`'s unit, in the mapping's order: what a
    /// staged program gives the layer (see the module doc). `None` as for [`cores_of`](Self::cores_of).
    pub fn segment_cores_of(&self, layer: LayerId) -> Option<&[u16]> {
        self.segments.get(&layer).map(Vec::as_slice)
    }

    /// Why all or part of the mapping is not followed.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The opening lines of `--emit mapping`: the choice and the notes.
    pub fn header(&self, extra: Option<&str>) -> String {
        let what = match self.choice {
            PlacementChoice::Mapped => {
                "the cores of `snnc map` (default options); a staged layer takes those of its whole segment"
            }
            PlacementChoice::AllCores => "no mapping; resident unit i on core i, staged tiles over all cores",
        };
        let mut s = format!("placement {}: {what}\n", self.choice.name());
        for note in self.notes.iter().map(String::as_str).chain(extra) {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }
}

/// The unit's cores as `u16`, if the chip has each of them and none repeats.
fn usable_cores(unit: &UnitMap, chip: &ChipDesc) -> Result<Vec<u16>, String> {
    let cores: Vec<usize> = unit.cores().collect();
    let text = crate::report::text::core_ranges(cores.clone());
    if cores.is_empty() {
        return Err("no cores".into());
    }
    if let Some(&bad) = cores.iter().find(|&&c| c >= chip.core_count()) {
        let n = chip.core_count();
        return Err(format!("cores {text}, but core {bad} is not one of the chip's {n}"));
    }
    if cores.iter().collect::<BTreeSet<_>>().len() != cores.len() {
        return Err(format!("cores {text} with one of them more than once"));
    }
    cores.iter().map(|&c| u16::try_from(c).map_err(|_| format!("core {c}, beyond the ISA's core ids"))).collect()
}

/// Per segment, the usable cores of its units in the mapping's order, each once (units
/// whose cores are unusable add none; they fall back on their own, with a note).
fn segment_cores(mapping: &Mapping, chip: &ChipDesc) -> BTreeMap<usize, Vec<u16>> {
    let mut out: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
    for unit in mapping.units.values() {
        let Ok(cores) = usable_cores(unit, chip) else { continue };
        let list = out.entry(unit.segment).or_default();
        for c in cores {
            if !list.contains(&c) {
                list.push(c);
            }
        }
    }
    out
}

/// Every layer `unit` computes: its own list and every layer hosted on it.
fn hosted(mapping: &Mapping, unit: &UnitMap) -> BTreeSet<LayerId> {
    let on_it = mapping.host.iter().filter(|&(_, &h)| h == unit.weight).map(|(&l, _)| l);
    unit.layers.iter().copied().chain(on_it).collect()
}

/// `` `weight` (L3) `` for a note.
pub(super) fn unit_name(graph: &LayerGraph, weight: LayerId) -> String {
    let layer = graph.layers().iter().find(|l| l.id == weight);
    layer.map_or_else(|| format!("unit {weight}"), |l| format!("`{}` ({})", l.name, l.id))
}

/// Core ids as sorted ranges (`0-4,6-9`), as `snnc map` prints them.
pub(super) fn ranges(cores: &[u16]) -> String {
    crate::report::text::core_ranges(cores.iter().map(|&c| usize::from(c)).collect())
}
