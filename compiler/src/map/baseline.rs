//! The two yardsticks every report shows beside the mapping, computed from the graph alone
//! (so they do not depend on the mapping and cross-check it).
//!
//! * [`compulsory_dram`]: the traffic no schedule can avoid — every FP32 master weight and
//!   optimizer state value read and written once per step, the input read once.
//! * [`gpu_baseline`]: what a framework (SpikingJelly / snnTorch, multi-step mode, mixed
//!   precision) moves on a GPU: layer by layer, every op reads its inputs from DRAM and
//!   writes its outputs back, activations in FP16 (spikes too), membrane potentials kept
//!   for backward, gradients and master weights in FP32.

use super::build::input_bytes;
use super::cost::{DramBytes, state_bits};
use crate::graph::stats::layer_stats;
use crate::graph::{Layer, LayerGraph};
use crate::model::Op;

/// The compulsory DRAM traffic of one training step: a lower bound.
pub fn compulsory_dram(graph: &LayerGraph) -> DramBytes {
    let params: u64 = graph.layers().iter().map(|l| layer_stats(graph, l).parameters).sum();
    DramBytes {
        weights: params * 4 * 2,
        optimizer: params * state_bits(&graph.optimizer) / 8 * 2,
        input_spikes: input_bytes(graph),
        ..DramBytes::default()
    }
}

/// The DRAM traffic of the same training step run by a framework on a GPU.
pub fn gpu_baseline(graph: &LayerGraph) -> DramBytes {
    let steps = u64::from(graph.timesteps) * u64::from(graph.batch);
    let mut d = DramBytes {
        // The encoder repeats the input over T timesteps as one FP16 tensor.
        input_spikes: input_bytes(graph) + graph.input().numel() * 2 * steps,
        ..DramBytes::default()
    };
    for layer in graph.layers() {
        gpu_layer(graph, layer, steps, &mut d);
    }
    d
}

/// Adds one layer's forward, backward and (for weight layers) update traffic.
fn gpu_layer(graph: &LayerGraph, layer: &Layer, steps: u64, d: &mut DramBytes) {
    let out = layer.numel() * steps * 2;
    let ins: Vec<u64> = layer.inputs.iter().map(|i| graph.layer(*i).numel() * steps * 2).collect();
    let input: u64 = ins.iter().sum();
    let first = layer.inputs.iter().any(|i| matches!(graph.layer(*i).op, Op::Input { .. }));
    match &layer.op {
        Op::Conv2d { .. } | Op::Linear { .. } => {
            let p = layer_stats(graph, layer).parameters;
            // Forward reads input and FP16 weights and writes the current; backward reads
            // the error and weights and writes the input error; the weight gradient reads
            // input and error again and writes FP32 gradients.
            d.spikes += input + input;
            d.membranes += out;
            d.weights += p * 2 * 2;
            d.errors += out + out + if first { 0 } else { input };
            d.gradients += p * 4;
            // Optimizer: read master, gradient and state; write master, state, FP16 copy.
            let sb = state_bits(&graph.optimizer) / 8;
            d.weights += p * (4 + 4 + 2);
            d.gradients += p * 4;
            d.optimizer += p * sb * 2;
        }
        Op::Lif(_) => {
            // Read the current, write spikes and keep H; backward reads the spike error,
            // H and the spikes and writes the current's error.
            d.membranes += input + out + out;
            d.spikes += out + out;
            d.errors += out + input;
        }
        Op::Readout { .. } => {
            d.membranes += input + out + out;
            d.errors += out + input;
        }
        Op::MaxPool(_) => {
            // PyTorch keeps int64 argmax indices for backward.
            d.spikes += input + out;
            d.masks += layer.numel() * steps * 8 * 2;
            d.errors += out + input;
        }
        Op::AvgPool(_) | Op::Add => {
            d.spikes += input + out;
            d.errors += out + input;
        }
        Op::Flatten | Op::Input { .. } => {}
    }
}
