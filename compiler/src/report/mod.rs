//! The mapping report: what `snnc map` prints.
//!
//! [`Report::new`] gathers a [`Mapping`], the graph and the chip with the two yardsticks of
//! [`crate::map::baseline`]; [`text`] renders the terminal table, [`Report`] itself is the
//! JSON document (`snnc-map/1`, documented in `docs/mapping.md`), and [`dot`] draws the
//! mapped graph with one cluster per core. Every form lists units in `LayerId` order and
//! prints numbers with fixed precision, so the same input gives the same bytes.

pub mod dot;
pub mod text;

use crate::graph::LayerGraph;
use crate::map::baseline::{compulsory_dram, gpu_baseline};
use crate::map::cost::{DramBytes, TotalCost};
use crate::map::{MapOptions, Mapping, Schedule, UnitMap};
use isa::ChipDesc;
use serde::Serialize;

/// Version of the JSON layout.
pub const MAP_JSON_FORMAT: &str = "snnc-map/1";

/// The chip a report is for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChipSummary {
    /// The description's name.
    pub name: String,
    /// Its fingerprint, 16 hex digits.
    pub hash: String,
    /// Cores.
    pub cores: usize,
    /// Clock, MHz.
    pub clock_mhz: u32,
}

/// The yardsticks beside the mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Yardsticks {
    /// Compulsory DRAM traffic per step (a lower bound).
    pub compulsory: DramBytes,
    /// DRAM traffic of the GPU framework baseline per step.
    pub gpu: DramBytes,
    /// Mapped DRAM traffic divided by the compulsory traffic (>= 1).
    pub over_compulsory: f64,
    /// DRAM traffic saved against the GPU baseline, percent.
    pub reduction_vs_gpu_pct: f64,
}

/// A mapping report, serialisable as `snnc-map/1` JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`MAP_JSON_FORMAT`].
    pub format: &'static str,
    /// The model's name.
    pub model: String,
    /// Timesteps per sample.
    pub timesteps: u32,
    /// Samples per step.
    pub batch: u32,
    /// The chip.
    pub chip: ChipSummary,
    /// The options the mapping was made with.
    pub options: MapOptions,
    /// Units in `LayerId` order.
    pub units: Vec<UnitMap>,
    /// Layer names by id (index = id).
    pub layer_names: Vec<String>,
    /// The schedule.
    pub schedule: Schedule,
    /// Totals per step.
    pub total: TotalCost,
    /// Lower bound and GPU baseline.
    pub yardsticks: Yardsticks,
}

impl Report {
    /// Gathers a report.
    pub fn new(mapping: &Mapping, graph: &LayerGraph, chip: &ChipDesc) -> Report {
        let compulsory = compulsory_dram(graph);
        let gpu = gpu_baseline(graph);
        let mapped = mapping.total.dram.total() as f64;
        let over_compulsory = mapped / (compulsory.total().max(1) as f64);
        let reduction_vs_gpu_pct = 100.0 * (1.0 - mapped / (gpu.total().max(1) as f64));
        Report {
            format: MAP_JSON_FORMAT,
            model: graph.name.clone(),
            timesteps: graph.timesteps,
            batch: graph.batch,
            chip: ChipSummary {
                name: chip.name.clone(),
                hash: format!("{:016x}", chip.hash()),
                cores: chip.core_count(),
                clock_mhz: chip.clock_mhz,
            },
            options: mapping.options.clone(),
            units: mapping.units.values().cloned().collect(),
            layer_names: graph.layers().iter().map(|l| l.name.clone()).collect(),
            schedule: mapping.schedule.clone(),
            total: mapping.total.clone(),
            yardsticks: Yardsticks { compulsory, gpu, over_compulsory, reduction_vs_gpu_pct },
        }
    }

    /// The JSON document, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// The name of layer `id`.
    pub fn name(&self, id: crate::graph::LayerId) -> &str {
        self.layer_names.get(id.index()).map(String::as_str).unwrap_or("?")
    }
}
