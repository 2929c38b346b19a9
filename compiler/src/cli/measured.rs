//! Feeding a simulator run back into the mapping: `snnc map --measured STATS.json` reads the
//! per-layer counters that `snnc sim --json` writes and turns them into measured firing
//! rates (per neuron layer) and a measured error density (over all layers), which replace
//! the assumed ones in the cost model.

use super::Failure;
use snnc::graph::{LayerGraph, LayerId};
use std::collections::BTreeMap;
use std::path::Path;

/// What a simulator run measured, keyed by the graph's layers.
#[derive(Debug, Default)]
pub struct Measured {
    /// Spikes per neuron and timestep, per LIF layer.
    pub firing: BTreeMap<LayerId, f64>,
    /// Non-zero back-propagated errors over all errors, when any were counted.
    pub error_density: Option<f64>,
}

#[derive(serde::Deserialize)]
struct SimStats {
    layers: Vec<SimLayer>,
}

#[derive(serde::Deserialize)]
struct SimLayer {
    name: String,
    neuron_steps: u64,
    spikes: u64,
    error_elems: u64,
    error_nonzero: u64,
}

/// Reads `snnc sim --json` output for `graph`. A unit is named `weight+neuron` in programs;
/// its neuron layer (the last name) is the one whose rate is measured.
pub fn load_measured(path: &Path, graph: &LayerGraph) -> Result<Measured, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
    measured_from_json(&text, graph, path)
}

/// The same from the JSON text itself; `path` names its source in errors.
pub fn measured_from_json(text: &str, graph: &LayerGraph, path: &Path) -> Result<Measured, Failure> {
    let stats: SimStats = serde_json::from_str(text).map_err(|e| {
        Failure::Input(format!("error: {} is not the JSON of `snnc sim --json`: {e}\n", path.display()))
    })?;
    let mut measured = Measured::default();
    let (mut errors, mut nonzero) = (0u64, 0u64);
    for layer in &stats.layers {
        let neuron = layer.name.rsplit('+').next().unwrap_or(&layer.name);
        let Some(found) = graph.layers().iter().find(|l| l.name == neuron) else {
            return Err(Failure::Input(format!(
                "error: {} measures layer `{neuron}`, which model `{}` does not have; run `snnc sim` on this model's program\n",
                path.display(),
                graph.name
            )));
        };
        if layer.neuron_steps > 0 {
            measured.firing.insert(found.id, layer.spikes as f64 / layer.neuron_steps as f64);
        }
        errors += layer.error_elems;
        nonzero += layer.error_nonzero;
    }
    measured.error_density = (errors > 0).then(|| nonzero as f64 / errors as f64);
    Ok(measured)
}
