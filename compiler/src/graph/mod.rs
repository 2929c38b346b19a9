//! The layer graph: layers with resolved inputs and inferred shapes, in a checked DAG.
//!
//! A [`LayerGraph`] is built from a [`ModelSpec`](crate::model::ModelSpec) by
//! [`LayerGraph::build`], which resolves names, rejects cycles, infers every tensor's shape and
//! checks the loss, reporting *all* errors. Layers live in an arena indexed by [`LayerId`]
//! (printed `L3`, in source order); petgraph is used for the algorithms (cycle search,
//! topological order, reachability) and stays private. Analyses such as statistics or the
//! mapping are side tables keyed by `LayerId`, never fields on the layers.
//!
//! Invariants of a built graph: exactly one `input` layer; every input of a layer exists;
//! no cycles; every layer lies on a path from the input to the loss layer; every shape is
//! known and non-empty; the loss reads a flat layer of the right kind.

mod build;
pub mod dump;
mod shape;
pub mod stats;

use crate::diagnostics::Span;
use crate::model::{Encoding, Init, LossKind, NeuronParams, Op, Optimizer};
use std::fmt;

/// A layer's index in its graph, in source order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LayerId(pub u32);

impl LayerId {
    /// The index into the graph's arena.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// One layer of a built graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// This layer's id.
    pub id: LayerId,
    /// Its name in the model file.
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The layers it reads, in argument order.
    pub inputs: Vec<LayerId>,
    /// The shape of its output per timestep and sample: `[N]` or `[C, H, W]`.
    pub shape: Vec<u32>,
    /// Where it is defined.
    pub span: Span,
}

impl Layer {
    /// Number of values in the output per timestep and sample.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| u64::from(d)).product()
    }
}

/// A checked layer graph and the model's training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGraph {
    /// The model's name.
    pub name: String,
    /// Timesteps per sample.
    pub timesteps: u32,
    /// Samples per step.
    pub batch: u32,
    /// Model-wide neuron defaults.
    pub neuron: NeuronParams,
    /// Weight initialisation.
    pub init: Init,
    /// The loss function.
    pub loss: LossKind,
    /// The optimizer.
    pub optimizer: Optimizer,
    layers: Vec<Layer>,
    order: Vec<LayerId>,
    input: LayerId,
    output: LayerId,
}

impl LayerGraph {
    /// All layers, in source order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layer with id `id`.
    pub fn layer(&self, id: LayerId) -> &Layer {
        &self.layers[id.index()]
    }

    /// Layers in a topological order (inputs before consumers), stable across runs.
    pub fn topo_order(&self) -> &[LayerId] {
        &self.order
    }

    /// The input layer.
    pub fn input(&self) -> &Layer {
        self.layer(self.input)
    }

    /// The layer the loss reads.
    pub fn output(&self) -> &Layer {
        self.layer(self.output)
    }

    /// Number of classes: the size of the output layer.
    pub fn classes(&self) -> u32 {
        self.output().shape.first().copied().unwrap_or(0)
    }

    /// The input encoding.
    pub fn encoding(&self) -> Encoding {
        match &self.input().op {
            Op::Input { encoding, .. } => *encoding,
            _ => Encoding::Spikes,
        }
    }

    /// The layers that read `id`, in source order.
    pub fn consumers(&self, id: LayerId) -> impl Iterator<Item = &Layer> {
        self.layers.iter().filter(move |layer| layer.inputs.contains(&id))
    }
}
