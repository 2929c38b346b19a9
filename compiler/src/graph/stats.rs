//! Size statistics of a layer graph: what `snnc check` prints.

use super::{Layer, LayerGraph};
use crate::model::Op;
use serde::Serialize;

/// Sizes of one layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerStats {
    /// Spiking or integrating neurons (LIF and readout outputs).
    pub neurons: u64,
    /// Connections between neurons: each is one accumulate per input spike.
    pub synapses: u64,
    /// Trainable values: weights and biases.
    pub parameters: u64,
}

/// Totals over the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GraphStats {
    /// Layers, the input included.
    pub layers: u64,
    /// Neurons.
    pub neurons: u64,
    /// Synapses.
    pub synapses: u64,
    /// Parameters.
    pub parameters: u64,
    /// Synaptic operations per timestep for the whole batch if every input spiked: the dense
    /// upper bound that sparsity then reduces.
    pub synops_per_timestep: u64,
}

/// The sizes of `layer`, whose inputs are in `graph`.
pub fn layer_stats(graph: &LayerGraph, layer: &Layer) -> LayerStats {
    let in_shape = layer.inputs.first().map(|id| graph.layer(*id).shape.as_slice()).unwrap_or(&[]);
    let in_numel: u64 = in_shape.iter().map(|&d| u64::from(d)).product();
    match &layer.op {
        Op::Linear { out, bias } => {
            let synapses = in_numel.saturating_mul(u64::from(*out));
            LayerStats {
                neurons: 0,
                synapses,
                parameters: synapses.saturating_add(if *bias { u64::from(*out) } else { 0 }),
            }
        }
        Op::Conv2d { out, kernel, stride, padding, bias } => {
            let cin = u64::from(in_shape.first().copied().unwrap_or(0));
            let (k, s, p) = (*kernel, *stride, *padding);
            let rows = valid_taps(in_shape.get(1).copied().unwrap_or(0), layer.shape[1], k, s, p);
            let cols = valid_taps(in_shape.get(2).copied().unwrap_or(0), layer.shape[2], k, s, p);
            let cout = u64::from(*out);
            let synapses = cout.saturating_mul(cin).saturating_mul(rows).saturating_mul(cols);
            let weights = cout.saturating_mul(cin).saturating_mul(u64::from(k) * u64::from(k));
            LayerStats { neurons: 0, synapses, parameters: weights.saturating_add(if *bias { cout } else { 0 }) }
        }
        Op::Lif(_) | Op::Readout { .. } => LayerStats { neurons: layer.numel(), ..LayerStats::default() },
        _ => LayerStats::default(),
    }
}

/// Sum over output positions of the kernel taps that land inside the unpadded input, so a
/// convolution's synapse count leaves out connections to padding.
fn valid_taps(input: u32, output: u32, kernel: u32, stride: u32, padding: u32) -> u64 {
    (0..u64::from(output))
        .map(|o| {
            let start = (o * u64::from(stride)) as i64 - i64::from(padding);
            (0..i64::from(kernel)).filter(|t| (0..i64::from(input)).contains(&(start + t))).count() as u64
        })
        .sum()
}

/// The totals of `graph`.
pub fn graph_stats(graph: &LayerGraph) -> GraphStats {
    let mut totals = GraphStats { layers: graph.layers().len() as u64, ..GraphStats::default() };
    for layer in graph.layers() {
        let stats = layer_stats(graph, layer);
        totals.neurons = totals.neurons.saturating_add(stats.neurons);
        totals.synapses = totals.synapses.saturating_add(stats.synapses);
        totals.parameters = totals.parameters.saturating_add(stats.parameters);
    }
    totals.synops_per_timestep = totals.synapses.saturating_mul(u64::from(graph.batch));
    totals
}

#[cfg(test)]
mod tests {
    use super::valid_taps;

    #[test]
    fn taps_leave_out_padding() {
        // 3 outputs of a 3-tap kernel over 3 inputs with padding 1: 2 + 3 + 2 valid taps.
        assert_eq!(valid_taps(3, 3, 3, 1, 1), 7);
        // No padding: every tap is valid.
        assert_eq!(valid_taps(4, 2, 3, 1, 0), 6);
        // Stride 2, kernel 2 over 4 inputs: 2 outputs of 2 taps.
        assert_eq!(valid_taps(4, 2, 2, 2, 0), 4);
    }
}
