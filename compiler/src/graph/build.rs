//! Building a [`LayerGraph`]: resolve names, find cycles, infer shapes, check the loss.

use super::shape::infer_shape;
use super::{Layer, LayerGraph, LayerId};
use crate::diagnostics::{Diagnostic, Span};
use crate::model::{LayerDecl, LossKind, ModelSpec, Op};
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};
use std::collections::HashMap;

impl LayerGraph {
    /// Builds and checks the graph of `spec`, reporting every error found.
    pub fn build(spec: &ModelSpec) -> Result<LayerGraph, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let ids = name_table(&spec.layers, &mut errors);
        let inputs: Vec<Vec<LayerId>> =
            spec.layers.iter().map(|decl| resolve_inputs(decl, &ids, &mut errors)).collect();
        let input = single_input(spec, &mut errors);
        let output = resolve(&spec.loss.layer, spec.loss.layer_span, &ids, "loss", &mut errors);
        let graph = petgraph_of(&inputs);
        let order = match cycles(spec, &graph, &mut errors) {
            true => Vec::new(),
            false => toposort(&graph, None)
                .map(|o| o.into_iter().map(|n| LayerId(n.index() as u32)).collect())
                .unwrap_or_default(),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(input), Some(output)) = (input, output) else { return Err(errors) };
        let shapes = infer_all(spec, &inputs, &order, &mut errors);
        check_reaches_loss(spec, &graph, output, &mut errors);
        check_loss(spec, output, &shapes, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let layers = spec
            .layers
            .iter()
            .zip(inputs)
            .zip(shapes)
            .enumerate()
            .map(|(i, ((decl, inputs), shape))| Layer {
                id: LayerId(i as u32),
                name: decl.name.clone(),
                op: decl.op.clone(),
                inputs,
                shape: shape.unwrap_or_default(),
                span: decl.span,
            })
            .collect();
        Ok(LayerGraph {
            name: spec.name.clone(),
            timesteps: spec.timesteps,
            batch: spec.batch,
            neuron: spec.neuron,
            init: spec.init,
            loss: spec.loss.kind,
            optimizer: spec.optimizer,
            layers,
            order,
            input,
            output,
        })
    }
}

fn name_table(layers: &[LayerDecl], errors: &mut Vec<Diagnostic>) -> HashMap<String, LayerId> {
    let mut ids: HashMap<String, LayerId> = HashMap::new();
    for (i, decl) in layers.iter().enumerate() {
        if let Some(first) = ids.get(&decl.name) {
            errors.push(
                Diagnostic::error(
                    decl.name_span,
                    format!("layer `{}` is defined twice", decl.name),
                    "second definition",
                )
                .with_note(layers[first.index()].name_span, "first defined here")
                .with_help("give each layer its own name"),
            );
        } else {
            ids.insert(decl.name.clone(), LayerId(i as u32));
        }
    }
    ids
}

fn resolve(
    name: &str,
    span: Span,
    ids: &HashMap<String, LayerId>,
    user: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<LayerId> {
    if let Some(id) = ids.get(name) {
        return Some(*id);
    }
    let mut names: Vec<&String> = ids.keys().collect();
    names.sort();
    let closest = names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 1.max(n.len() / 3) && *d < name.len())
        .min();
    let help = match closest {
        Some((_, n)) => format!("did you mean `{n}`?"),
        None => "define the layer, or use the name of an existing one".to_string(),
    };
    errors.push(
        Diagnostic::error(span, format!("{user} reads `{name}`, which is not defined"), "undefined layer")
            .with_help(help),
    );
    None
}

fn resolve_inputs(decl: &LayerDecl, ids: &HashMap<String, LayerId>, errors: &mut Vec<Diagnostic>) -> Vec<LayerId> {
    let user = format!("`{}`", decl.name);
    decl.inputs.iter().filter_map(|(name, span)| resolve(name, *span, ids, &user, errors)).collect()
}

fn single_input(spec: &ModelSpec, errors: &mut Vec<Diagnostic>) -> Option<LayerId> {
    let inputs: Vec<usize> =
        (0..spec.layers.len()).filter(|&i| matches!(spec.layers[i].op, Op::Input { .. })).collect();
    match inputs.as_slice() {
        [one] => return Some(LayerId(*one as u32)),
        [] => errors.push(
            Diagnostic::error(spec.close, "the model has no input layer", "no `input` defined")
                .with_help("add `x = input(shape = [N], encoding = bernoulli(max_rate = 1.0, seed = 0))`"),
        ),
        [first, rest @ ..] => {
            for &extra in rest {
                errors.push(
                    Diagnostic::error(
                        spec.layers[extra].name_span,
                        "the model has more than one input layer",
                        "second input",
                    )
                    .with_note(spec.layers[*first].name_span, "first input")
                    .with_help("a model reads one input tensor; remove this one"),
                );
            }
        }
    }
    None
}

fn petgraph_of(inputs: &[Vec<LayerId>]) -> DiGraph<(), ()> {
    let mut graph = DiGraph::with_capacity(inputs.len(), inputs.len());
    let nodes: Vec<NodeIndex> = inputs.iter().map(|_| graph.add_node(())).collect();
    for (consumer, sources) in inputs.iter().enumerate() {
        for source in sources {
            graph.add_edge(nodes[source.index()], nodes[consumer], ());
        }
    }
    graph
}

/// Reports every cycle (strongly connected component with an edge inside); true if any.
fn cycles(spec: &ModelSpec, graph: &DiGraph<(), ()>, errors: &mut Vec<Diagnostic>) -> bool {
    let mut found = false;
    let mut components = tarjan_scc(graph);
    components.iter_mut().for_each(|c| c.sort());
    components.sort();
    for component in components {
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        found = true;
        let names: Vec<&str> = component.iter().map(|n| spec.layers[n.index()].name.as_str()).collect();
        let first = &spec.layers[component[0].index()];
        let path = format!("{} -> {}", names.join(" -> "), names[0]);
        errors.push(
            Diagnostic::error(first.name_span, format!("layers form a cycle: {path}"), "part of a cycle")
                .with_help("a network is a DAG: make one of these layers read an earlier layer instead"),
        );
    }
    found
}

fn infer_all(
    spec: &ModelSpec,
    inputs: &[Vec<LayerId>],
    order: &[LayerId],
    errors: &mut Vec<Diagnostic>,
) -> Vec<Option<Vec<u32>>> {
    let mut shapes: Vec<Option<Vec<u32>>> = vec![None; spec.layers.len()];
    for id in order {
        let decl = &spec.layers[id.index()];
        let sources: Option<Vec<(&LayerDecl, &Vec<u32>)>> = inputs[id.index()]
            .iter()
            .map(|s| shapes[s.index()].as_ref().map(|shape| (&spec.layers[s.index()], shape)))
            .collect();
        // A layer whose input already failed is skipped, so one mistake gives one error.
        if let Some(sources) = sources {
            match infer_shape(decl, &sources) {
                Ok(shape) => shapes[id.index()] = Some(shape),
                Err(e) => errors.push(e),
            }
        }
    }
    shapes
}

fn check_reaches_loss(spec: &ModelSpec, graph: &DiGraph<(), ()>, output: LayerId, errors: &mut Vec<Diagnostic>) {
    let reversed = Reversed(graph);
    let mut reaching = vec![false; spec.layers.len()];
    let mut dfs = Dfs::new(&reversed, NodeIndex::new(output.index()));
    while let Some(node) = dfs.next(&reversed) {
        reaching[node.index()] = true;
    }
    for (decl, reaches) in spec.layers.iter().zip(reaching) {
        if !reaches {
            errors.push(
                Diagnostic::error(
                    decl.name_span,
                    format!("layer `{}` does not contribute to the loss", decl.name),
                    "unused layer",
                )
                .with_help(format!("remove it, or feed it into the layers that lead to `{}`", spec.loss.layer)),
            );
        }
    }
}

fn check_loss(spec: &ModelSpec, output: LayerId, shapes: &[Option<Vec<u32>>], errors: &mut Vec<Diagnostic>) {
    let decl = &spec.layers[output.index()];
    let span = spec.loss.layer_span;
    let kind = spec.loss.kind.name();
    match (&decl.op, spec.loss.kind) {
        (Op::Lif(_), LossKind::MseRate | LossKind::CeRate) | (Op::Readout { .. }, LossKind::CeMem) => {}
        (_, LossKind::CeMem) => errors.push(
            Diagnostic::error(
                span,
                format!("`ce_mem` reads a membrane, but `{}` is a {} layer", decl.name, decl.op.name()),
                "not a readout",
            )
            .with_help(format!("add `out = readout({})` and write `loss = ce_mem(out)`, or use `ce_rate`", decl.name)),
        ),
        (op, _) => errors.push(
            Diagnostic::error(
                span,
                format!("`{kind}` reads spike rates, but `{}` is a {} layer", decl.name, op.name()),
                "not a spiking layer",
            )
            .with_help(if matches!(op, Op::Readout { .. }) {
                "use `ce_mem` for a readout layer".to_string()
            } else {
                format!("add `out = lif({})` and read that", decl.name)
            }),
        ),
    }
    if let Some(shape) = &shapes[output.index()] {
        if shape.len() != 1 || shape[0] < 2 {
            errors.push(
                Diagnostic::error(span, format!("the loss needs one value per class, but `{}` has shape {shape:?}", decl.name), "not a class vector")
                    .with_help("end the network with `linear(..., out = CLASSES)` and a `lif` or `readout`; there must be at least 2 classes"),
            );
        }
    }
}
