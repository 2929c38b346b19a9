//! # snnc: a compiler from spiking-network models to a neuromorphic training chip
//!
//! The pipeline is a sequence of plain stages, each a function from one form to the next,
//! so a caller (or `snnc --emit`) can stop anywhere and print what it has:
//!
//! ```text
//! source ──parse──▶ ModelAst ──lower──▶ ModelSpec ──build──▶ LayerGraph ──▶ ...
//! (syntax)          (what was written)   (what it means)      (checked DAG, shapes)
//! ```
//!
//! * [`syntax`] recognises the text and keeps every span; [`syntax::fmt`] prints a tree back
//!   in canonical form.
//! * [`model`] gives the tree its meaning one item at a time — settings, layer ops,
//!   arguments, ranges — and collects every error.
//! * [`graph`] resolves names into a DAG of layers with typed [`graph::LayerId`]s, infers all
//!   shapes, and offers statistics and dumps; later stages key their side tables by id.
//! * [`diagnostics`] is the one error type of all stages and its one renderer.
//!
//! No stage panics on user input: every problem becomes a [`diagnostics::Diagnostic`] with
//! a span, and stages report all the problems they can find, not just the first.

pub mod codegen;
pub mod diagnostics;
pub mod graph;
pub mod map;
pub mod model;
pub mod report;
pub mod syntax;

use diagnostics::Diagnostic;
use graph::LayerGraph;

/// Parses, lowers and builds the layer graph of a model's source text.
pub fn compile_graph(source: &str) -> Result<LayerGraph, Vec<Diagnostic>> {
    let ast = syntax::parse(source)?;
    let spec = model::lower(&ast)?;
    LayerGraph::build(&spec)
}

/// Formats a model's source in canonical form (syntax only: meaning is not checked).
pub fn format_source(source: &str) -> Result<String, Vec<Diagnostic>> {
    let ast = syntax::parse(source)?;
    Ok(syntax::fmt::format_model(&ast, source))
}
