//! Grouping layers into mapped units and measuring what each unit computes.
//!
//! A unit is a weight layer fused with the LIF or readout that is its only consumer.
//! Every other layer (pool, flatten, add, a LIF that follows one of those) is *hosted* by
//! the unit of its first input, or, when that is the model input, by the unit of its
//! first consumer. The sizes here depend on the graph and the options only, never on the
//! chip, so the search can cache them once.

use super::{MapOptions, Source};
use crate::graph::stats::layer_stats;
use crate::graph::{Layer, LayerGraph, LayerId};
use crate::model::{Encoding, Op, Surrogate};
use std::collections::BTreeMap;

/// Sizes of one unit, per sample and timestep unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitShape {
    /// The weight layer.
    pub weight: LayerId,
    /// All layers of the unit in topological order.
    pub layers: Vec<LayerId>,
    /// Output channels (K).
    pub out_ch: u32,
    /// Input channels.
    pub in_ch: u32,
    /// Kernel taps per input channel (k x k; 1 for linear).
    pub taps: u32,
    /// Output positions per channel (H x W; 1 for linear).
    pub positions: u32,
    /// Synapses: accumulates per sample and timestep if every input were non-zero.
    pub synapses: u64,
    /// Weights and biases.
    pub params: u64,
    /// Values of the input tensor.
    pub in_numel: u64,
    /// Bits per input value (1 for spikes, 16 for currents or pooled values).
    pub in_bits: u32,
    /// Fraction of input values that are non-zero.
    pub in_density: f64,
    /// Neurons of the fused LIF / readout (0 without one).
    pub neurons: u64,
    /// Whether the neuron emits spikes (LIF) rather than only integrating (readout).
    pub spiking: bool,
    /// Whether backward needs the membrane potential `H[t]` (smooth surrogate or a reset
    /// term that is not detached); with the rect surrogate and a detached reset the 1-bit
    /// mask and spike are enough.
    pub keeps_membrane: bool,
    /// Element-wise work of hosted layers per sample and timestep (pool taps, add inputs,
    /// soma updates of unfused LIFs).
    pub hosted_ops: u64,
    /// Whether this unit's input is the model input (no error is propagated further back).
    pub first: bool,
    /// Forward inputs: the layers read from outside the unit.
    pub reads: Vec<(LayerId, u64, u32)>,
}

/// The units of a graph and which unit computes each layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Units {
    /// Units in topological order of their weight layers.
    pub list: Vec<UnitShape>,
    /// For every non-input layer, the unit (weight layer) that computes it.
    pub host: BTreeMap<LayerId, LayerId>,
}

impl Units {
    /// Splits `graph` into units.
    pub fn of(graph: &LayerGraph, options: &MapOptions) -> Units {
        let host = assign_hosts(graph);
        let list = graph
            .topo_order()
            .iter()
            .filter(|id| graph.layer(**id).op.has_weights())
            .map(|id| shape_of(graph, *id, &host, options))
            .collect();
        Units { list, host }
    }

    /// Where the forward inputs of `unit` come from, given which segment each unit is in.
    pub fn sources(&self, unit: &UnitShape, segment_of: &BTreeMap<LayerId, usize>) -> Vec<Source> {
        let mine = segment_of.get(&unit.weight);
        unit.reads
            .iter()
            .map(|&(layer, _, _)| match self.host.get(&layer) {
                Some(&from) if segment_of.get(&from) == mine => Source::Noc { layer, unit: from },
                _ => Source::Dram { layer },
            })
            .collect()
    }
}

/// Weight layers host themselves and their fused neuron; other layers go to the unit of
/// their first input, or of their first consumer when the input is the model input.
fn assign_hosts(graph: &LayerGraph) -> BTreeMap<LayerId, LayerId> {
    let mut host = BTreeMap::new();
    for layer in graph.layers().iter().filter(|l| l.op.has_weights()) {
        host.insert(layer.id, layer.id);
        if let Some(n) = fused_neuron(graph, layer) {
            host.insert(n, layer.id);
        }
    }
    let order = graph.topo_order();
    for id in order {
        let layer = graph.layer(*id);
        if host.contains_key(id) || matches!(layer.op, Op::Input { .. }) {
            continue;
        }
        if let Some(&h) = layer.inputs.first().and_then(|i| host.get(i)) {
            host.insert(*id, h);
        }
    }
    for id in order.iter().rev() {
        if host.contains_key(id) || matches!(graph.layer(*id).op, Op::Input { .. }) {
            continue;
        }
        if let Some(h) = graph.consumers(*id).find_map(|c| host.get(&c.id).copied()) {
            host.insert(*id, h);
        }
    }
    host
}

/// The LIF or readout that is the only consumer of `layer`, if any.
fn fused_neuron(graph: &LayerGraph, layer: &Layer) -> Option<LayerId> {
    let mut consumers = graph.consumers(layer.id);
    let first = consumers.next()?;
    let only = consumers.next().is_none();
    (only && matches!(first.op, Op::Lif(_) | Op::Readout { .. })).then_some(first.id)
}

fn shape_of(graph: &LayerGraph, id: LayerId, host: &BTreeMap<LayerId, LayerId>, options: &MapOptions) -> UnitShape {
    let layer = graph.layer(id);
    let input = layer.inputs.first().map(|i| graph.layer(*i));
    let in_shape = input.map(|l| l.shape.clone()).unwrap_or_default();
    let stats = layer_stats(graph, layer);
    let (out_ch, taps, positions) = match layer.op {
        Op::Conv2d { out, kernel, .. } => (out, kernel * kernel, layer.shape[1] * layer.shape[2]),
        Op::Linear { out, .. } => (out, 1, 1),
        _ => (1, 1, 1),
    };
    let in_ch = match layer.op {
        Op::Conv2d { .. } => in_shape.first().copied().unwrap_or(1),
        _ => in_shape.iter().product::<u32>().max(1),
    };
    let layers: Vec<LayerId> = graph.topo_order().iter().copied().filter(|l| host.get(l) == Some(&id)).collect();
    let neuron = layers.iter().map(|l| graph.layer(*l)).find(|l| matches!(l.op, Op::Lif(_) | Op::Readout { .. }));
    let keeps_membrane = match neuron.map(|n| &n.op) {
        Some(Op::Lif(p)) => !(matches!(p.surrogate, Surrogate::Rect(_)) && p.detach_reset),
        Some(_) => true,
        None => false,
    };
    let reads = external_reads(graph, &layers, host, id);
    let in_density = input.map(|l| density(graph, l, options)).unwrap_or(1.0);
    UnitShape {
        weight: id,
        out_ch,
        in_ch,
        taps,
        positions,
        synapses: stats.synapses,
        params: stats.parameters,
        in_numel: input.map(Layer::numel).unwrap_or(0),
        in_bits: input.map(|l| tensor_bits(graph, l)).unwrap_or(16),
        in_density,
        neurons: neuron.map(|n| n.numel()).unwrap_or(0),
        spiking: neuron.is_some_and(|n| matches!(n.op, Op::Lif(_))),
        keeps_membrane,
        hosted_ops: hosted_ops(graph, &layers, neuron.map(|n| n.id)),
        first: input.is_some_and(|l| matches!(l.op, Op::Input { .. })),
        reads,
        layers,
    }
}

/// Layers read by members of the unit but computed elsewhere: (layer, values, bits).
fn external_reads(
    graph: &LayerGraph,
    members: &[LayerId],
    host: &BTreeMap<LayerId, LayerId>,
    unit: LayerId,
) -> Vec<(LayerId, u64, u32)> {
    let mut reads: Vec<(LayerId, u64, u32)> = Vec::new();
    for m in members {
        for i in &graph.layer(*m).inputs {
            if host.get(i) != Some(&unit) && !reads.iter().any(|r| r.0 == *i) {
                let l = graph.layer(*i);
                reads.push((*i, l.numel(), tensor_bits(graph, l)));
            }
        }
    }
    reads
}

/// Element-wise operations of the hosted layers per sample and timestep.
fn hosted_ops(graph: &LayerGraph, members: &[LayerId], neuron: Option<LayerId>) -> u64 {
    members
        .iter()
        .map(|m| graph.layer(*m))
        .filter(|l| Some(l.id) != neuron)
        .map(|l| match &l.op {
            Op::AvgPool(p) | Op::MaxPool(p) => l.numel() * u64::from(p.kernel * p.kernel),
            Op::Add => l.numel() * l.inputs.len() as u64,
            Op::Lif(_) | Op::Readout { .. } => l.numel() * 3,
            _ => 0,
        })
        .sum()
}

/// Bits per value of a layer's output as the chip stores it.
pub fn tensor_bits(graph: &LayerGraph, layer: &Layer) -> u32 {
    match &layer.op {
        Op::Lif(_) => 1,
        Op::MaxPool(_) | Op::Flatten => layer.inputs.first().map(|i| tensor_bits(graph, graph.layer(*i))).unwrap_or(16),
        Op::Input { encoding: Encoding::Current { .. }, .. } => 16,
        Op::Input { .. } => 1,
        _ => 16,
    }
}

/// Fraction of a layer's output values that are non-zero.
fn density(graph: &LayerGraph, layer: &Layer, options: &MapOptions) -> f64 {
    let d = match &layer.op {
        Op::Lif(_) => options.measured_firing.get(&layer.id).copied().unwrap_or(options.firing_rate),
        // Bernoulli spikes: a pixel of mean brightness 0.5 fires at half the maximum rate.
        Op::Input { encoding: Encoding::Bernoulli { max_rate, .. }, .. } => max_rate * 0.5,
        Op::Input { encoding: Encoding::Spikes, .. } => options.firing_rate,
        Op::Input { .. } | Op::Readout { .. } | Op::Conv2d { .. } | Op::Linear { .. } => 1.0,
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let below = layer.inputs.first().map(|i| density(graph, graph.layer(*i), options)).unwrap_or(1.0);
            1.0 - (1.0 - below).powi(i32::try_from(p.kernel * p.kernel).unwrap_or(1))
        }
        Op::Flatten => layer.inputs.first().map(|i| density(graph, graph.layer(*i), options)).unwrap_or(1.0),
        Op::Add => layer.inputs.iter().map(|i| density(graph, graph.layer(*i), options)).sum(),
    };
    d.clamp(0.0, 1.0)
}
