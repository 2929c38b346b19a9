//! `snnc compile --weights FILE`: initial weights from a safetensors file instead of the
//! model's `init`.
//!
//! The file is what `snnc train` writes (or any safetensors file of F16/F32 tensors in
//! PyTorch layouts): `<layer>.weight`, and `<layer>.bias` for layers with a bias. A weight
//! layer the file does not name is drawn from `init`; a tensor that belongs to no weight
//! layer is an error, so a misspelt name is not silently ignored. The program's FP16
//! weights are the values rounded to FP16, and its FP32 masters those FP16 values widened,
//! as for drawn weights (`snnc train --resume` instead keeps the file's FP32 values as the
//! masters).

use super::Failure;
use sim::record::{RecordError, Weights};
use snnc::codegen::{LayerWeights, WeightSource};
use snnc::graph::LayerGraph;
use std::collections::BTreeMap;
use std::path::Path;

/// The weights of `path` for `graph`, as a [`WeightSource`].
pub fn load(path: &Path, graph: &LayerGraph) -> Result<WeightSource, Failure> {
    let weights = Weights::load(path).map_err(|e| match e {
        RecordError::Io { .. } => Failure::Io(e.to_string()),
        _ => Failure::Input(format!("error: {e}\n")),
    })?;
    let bad = |why: String| Failure::Input(format!("error: {}: {why}\n", path.display()));
    if let Some(other) = weights.model().filter(|m| *m != graph.name) {
        return Err(bad(format!("the weights are of model `{other}`, not `{}`", graph.name)));
    }
    let mut map: BTreeMap<String, LayerWeights> = BTreeMap::new();
    for t in weights.tensors() {
        let (layer, param) = t.name.rsplit_once('.').unwrap_or((t.name.as_str(), ""));
        if !is_weight_layer(graph, layer) || !matches!(param, "weight" | "bias") {
            return Err(bad(format!("tensor `{}` belongs to no layer of model `{}`", t.name, graph.name)));
        }
        let entry = map.entry(layer.to_string()).or_default();
        match param {
            "weight" => entry.weight = t.data.to_f32(),
            _ => entry.bias = Some(t.data.to_f32()),
        }
    }
    if let Some((layer, _)) = map.iter().find(|(_, w)| w.weight.is_empty()) {
        return Err(bad(format!("`{layer}.bias` is given without `{layer}.weight`")));
    }
    Ok(WeightSource::Given(map))
}

/// Whether `name` is a `linear` or `conv2d` layer of `graph`.
fn is_weight_layer(graph: &LayerGraph, name: &str) -> bool {
    graph.layers().iter().any(|l| l.name == name && l.op.has_weights())
}
