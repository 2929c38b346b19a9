//! The model's meaning: typed settings, neuron parameters and layer declarations.
//!
//! [`lower()`] reads a syntax tree and checks everything that can be checked one item at a
//! time — known settings and layer ops, argument names, types and ranges — collecting every
//! error. What needs the whole graph (names, cycles, shapes) is the layer graph's job.

mod args;
pub mod lower;
pub mod spec;

pub use lower::lower;
pub use spec::*;
