//! The graph's stable text forms: a table for people, Graphviz DOT, and JSON for tools.
//!
//! All three list layers in source order (ids `L0`, `L1`, ...), so the same model always
//! prints the same bytes and a change to a model shows as a small diff.

use super::stats::{GraphStats, LayerStats, graph_stats, layer_stats};
use super::{Layer, LayerGraph, LayerId};
use crate::model::{Encoding, NeuronParams, Op, Optimizer, Reset};
use serde::Serialize;
use std::fmt::Write;

/// Version of the JSON layout.
pub const GRAPH_JSON_FORMAT: &str = "snnc-graph/1";

/// The human-readable dump: a header with the settings, then one row per layer.
pub fn to_text(graph: &LayerGraph) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {}: T = {}, B = {}, {} classes",
        graph.name,
        graph.timesteps,
        graph.batch,
        graph.classes()
    );
    let _ = writeln!(out, "neuron {}", neuron_text(&graph.neuron));
    let _ = writeln!(out, "loss {}({}), optimizer {}", graph.loss.name(), graph.output().name, graph.optimizer);
    let _ = writeln!(out, "init uniform(gain = {:?}, seed = {})", graph.init.gain, graph.init.seed);
    let header = ["id", "name", "op", "inputs", "shape", "params", "synapses", "detail"];
    let rows: Vec<[String; 8]> = graph.layers().iter().map(|layer| row(graph, layer)).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let _ = writeln!(out, "{}", pad_row(&header.map(str::to_string), &widths));
    for row in &rows {
        let _ = writeln!(out, "{}", pad_row(row, &widths));
    }
    let totals = graph_stats(graph);
    let _ = writeln!(out, "{}", totals_text(&totals));
    out
}

/// One line with the totals `snnc check` reports.
pub fn totals_text(totals: &GraphStats) -> String {
    format!(
        "{} layers, {} neurons, {} synapses, {} parameters, {} synaptic ops per timestep (dense, whole batch)",
        totals.layers, totals.neurons, totals.synapses, totals.parameters, totals.synops_per_timestep
    )
}

fn pad_row(cells: &[String; 8], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let right_aligned = matches!(i, 5 | 6);
        match (i + 1 == cells.len(), right_aligned) {
            (true, _) => line.push_str(cell),
            (false, true) => line.push_str(&format!("{cell:>width$}  ")),
            (false, false) => line.push_str(&format!("{cell:<width$}  ")),
        }
    }
    line.trim_end().to_string()
}

fn row(graph: &LayerGraph, layer: &Layer) -> [String; 8] {
    let stats = layer_stats(graph, layer);
    let inputs: Vec<String> = layer.inputs.iter().map(LayerId::to_string).collect();
    [
        layer.id.to_string(),
        layer.name.clone(),
        layer.op.name().to_string(),
        if inputs.is_empty() { "-".to_string() } else { inputs.join(",") },
        shape_text(&layer.shape),
        stats.parameters.to_string(),
        stats.synapses.to_string(),
        detail(graph, &layer.op),
    ]
}

fn shape_text(shape: &[u32]) -> String {
    let dims: Vec<String> = shape.iter().map(u32::to_string).collect();
    format!("[{}]", dims.join("x"))
}

fn neuron_text(n: &NeuronParams) -> String {
    let reset = if n.reset == Reset::Hard { "hard" } else { "soft" };
    format!(
        "lif(beta = {:?}, threshold = {:?}, reset = {reset}, detach_reset = {}, surrogate = {})",
        n.beta, n.threshold, n.detach_reset, n.surrogate
    )
}

/// The op's arguments; neuron parameters only where they differ from the model's.
fn detail(graph: &LayerGraph, op: &Op) -> String {
    match op {
        Op::Input { encoding, .. } => encoding.to_string(),
        Op::Conv2d { kernel, stride, padding, bias, .. } => {
            format!("k{kernel} s{stride} p{padding}{}", if *bias { " bias" } else { "" })
        }
        Op::Linear { bias, .. } => (if *bias { "bias" } else { "" }).to_string(),
        Op::AvgPool(p) | Op::MaxPool(p) => format!("k{} s{} p{}", p.kernel, p.stride, p.padding),
        Op::Lif(n) if *n != graph.neuron => neuron_text(n),
        Op::Readout { beta } => format!("beta = {beta:?}"),
        _ => String::new(),
    }
}

/// A Graphviz picture: one box per layer with its op and shape, edges along the data flow.
pub fn to_dot(graph: &LayerGraph) -> String {
    let mut out =
        format!("digraph \"{}\" {{\n  rankdir = TB;\n  node [shape = box, fontname = \"monospace\"];\n", graph.name);
    for layer in graph.layers() {
        let style = match layer.op {
            Op::Lif(_) | Op::Readout { .. } => ", style = filled, fillcolor = \"#fde9c9\"",
            Op::Conv2d { .. } | Op::Linear { .. } => ", style = filled, fillcolor = \"#d6e6f5\"",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {} [label = \"{}\\n{} {}\"{style}];",
            layer.id,
            layer.name,
            layer.op.name(),
            shape_text(&layer.shape)
        );
    }
    for layer in graph.layers() {
        for input in &layer.inputs {
            let _ = writeln!(out, "  {input} -> {};", layer.id);
        }
    }
    let _ =
        writeln!(out, "  loss [shape = ellipse, label = \"{}\"];\n  {} -> loss;", graph.loss.name(), graph.output().id);
    out.push_str("}\n");
    out
}

#[derive(Serialize)]
struct GraphJson<'a> {
    format: &'static str,
    name: &'a str,
    timesteps: u32,
    batch: u32,
    classes: u32,
    neuron: NeuronParams,
    init: crate::model::Init,
    encoding: Encoding,
    loss: LossJson<'a>,
    optimizer: Optimizer,
    layers: Vec<LayerJson<'a>>,
    totals: GraphStats,
}

#[derive(Serialize)]
struct LossJson<'a> {
    kind: &'static str,
    layer: LayerId,
    layer_name: &'a str,
}

#[derive(Serialize)]
struct LayerJson<'a> {
    id: LayerId,
    name: &'a str,
    #[serde(flatten)]
    op: &'a Op,
    inputs: &'a [LayerId],
    shape: &'a [u32],
    #[serde(flatten)]
    stats: LayerStats,
}

/// The graph as JSON (`snnc-graph/1`), pretty-printed with a trailing newline.
pub fn to_json(graph: &LayerGraph) -> String {
    let json = GraphJson {
        format: GRAPH_JSON_FORMAT,
        name: &graph.name,
        timesteps: graph.timesteps,
        batch: graph.batch,
        classes: graph.classes(),
        neuron: graph.neuron,
        init: graph.init,
        encoding: graph.encoding(),
        loss: LossJson { kind: graph.loss.name(), layer: graph.output().id, layer_name: &graph.output().name },
        optimizer: graph.optimizer,
        layers: graph
            .layers()
            .iter()
            .map(|layer| LayerJson {
                id: layer.id,
                name: &layer.name,
                op: &layer.op,
                inputs: &layer.inputs,
                shape: &layer.shape,
                stats: layer_stats(graph, layer),
            })
            .collect(),
        totals: graph_stats(graph),
    };
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(&json).map(|s| s + "\n").unwrap_or_default()
}
