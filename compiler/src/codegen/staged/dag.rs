//! The staged generator's view of a layer graph: *stages* in forward order, each a unit (a
//! weight layer, its neuron layer and the pooling after it) or a *join* (an `add` of unit
//! outputs or other joins, and the average pooling that may read it), and the *values*
//! between them. A value is named by the layer whose output is read (`flatten` is only a
//! view, so it names the value it flattens); a value may have several readers (branches).
//!
//! # Errors of branches and joins
//!
//! Backward, `dL/dv` of a value is the sum of what its readers send back, and a join passes
//! its own error unchanged to each of its inputs. The staged program keeps one DRAM region
//! per *error group*: a join and its inputs share one (transitively), so a residual stream
//! carries its error through a whole stage of blocks in place. Readers add into the region
//! in backward order: the first writes it, every later one seeds its accumulator with what
//! is there and stores the sum (FP16 adds in that order, so the result is deterministic).
//! This is exact only if, when a producer's gradient soma reads `dL/dv`, the region holds
//! the contributions of `v` and of the joins above it and of nothing else;
//! [`errors`] checks that for every read and names the join when it fails (a branch read
//! after its join, say). Regions of groups whose lifetimes (first write to last read, in
//! backward order) do not overlap share DRAM.

use crate::codegen::CodegenError;
use crate::graph::{Layer, LayerGraph, LayerId};
use crate::model::Op;
use std::collections::{BTreeMap, BTreeSet};

/// One stage of the forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// A weight layer and its neuron layer (and the pooling that reads its spikes).
    Unit { weight: LayerId, neuron: LayerId, pool: Option<LayerId>, src: LayerId },
    /// An `add` of `inputs`, and the average pooling (window `k`) that reads it, if any.
    Join { add: LayerId, inputs: Vec<LayerId>, pool: Option<(LayerId, u32)> },
}

impl Stage {
    /// The value the stage sends on.
    pub(super) fn out(&self) -> LayerId {
        match self {
            Stage::Unit { neuron, pool, .. } => pool.unwrap_or(*neuron),
            Stage::Join { add, pool, .. } => pool.map_or(*add, |(p, _)| p),
        }
    }
}

fn unsupported(layer: &Layer, what: &str) -> CodegenError {
    CodegenError::Unsupported { layer: layer.name.clone(), what: what.into() }
}

/// The stages of `graph` in forward (topological) order, or the first layer that a staged
/// program cannot run.
pub(super) fn stages(graph: &LayerGraph) -> Result<Vec<Stage>, CodegenError> {
    let mut out: Vec<Stage> = Vec::new();
    // The value each layer's output is (a flatten's is its input's).
    let mut value: BTreeMap<LayerId, LayerId> = BTreeMap::new();
    let input = graph.input().id;
    value.insert(input, input);
    for &id in graph.topo_order() {
        let layer = graph.layer(id);
        let src = |i: usize| layer.inputs.get(i).and_then(|l| value.get(l)).copied();
        match &layer.op {
            Op::Input { .. } => {}
            Op::Linear { .. } | Op::Conv2d { .. } => {
                let readers: Vec<&Layer> = graph.consumers(id).collect();
                if readers.len() != 1 || !matches!(readers[0].op, Op::Lif(_) | Op::Readout { .. }) {
                    return Err(unsupported(layer, "a weight layer not read by exactly one neuron layer"));
                }
            }
            Op::Lif(_) | Op::Readout { .. } => {
                let w = layer.inputs.first().map(|&w| graph.layer(w));
                let (Some(w), Some(_)) = (w, w.and_then(|w| w.inputs.first())) else {
                    return Err(unsupported(layer, "a neuron layer that does not follow a weight layer"));
                };
                let src = w.inputs.first().and_then(|l| value.get(l)).copied();
                let Some(src) = src.filter(|_| w.op.has_weights()) else {
                    return Err(unsupported(layer, "a neuron layer that does not follow a weight layer"));
                };
                if matches!(layer.op, Op::Readout { .. }) && graph.output().id != id {
                    return Err(unsupported(layer, "a readout layer that is not the output"));
                }
                out.push(Stage::Unit { weight: w.id, neuron: id, pool: None, src });
                value.insert(id, id);
            }
            Op::AvgPool(_) | Op::MaxPool(_) => {
                if !pool(graph, layer, &mut out)? {
                    return Err(unsupported(layer, "pooling that does not read a conv layer's spikes or an `add`"));
                }
                value.insert(id, id);
            }
            Op::Flatten => {
                let v = src(0).ok_or_else(|| unsupported(layer, "a flatten of an unknown value"))?;
                value.insert(id, v);
            }
            Op::Add => {
                let inputs: Option<Vec<LayerId>> = (0..layer.inputs.len()).map(src).collect();
                let inputs = inputs.filter(|v| v.iter().all(|&v| v != input) && v.len() >= 2);
                let inputs = inputs.ok_or_else(|| unsupported(layer, "an `add` that reads the network input"))?;
                out.push(Stage::Join { add: id, inputs, pool: None });
                value.insert(id, id);
            }
        }
    }
    let last = out.last().map(Stage::out);
    if last != Some(graph.output().id) || !matches!(out.last(), Some(Stage::Unit { .. })) {
        return Err(unsupported(graph.output(), "an output that is not the last neuron layer"));
    }
    Ok(out)
}

/// Attaches pooling layer `layer` to the stage whose value it reads; `false` if it reads
/// none that it can be fused with.
fn pool(graph: &LayerGraph, layer: &Layer, out: &mut [Stage]) -> Result<bool, CodegenError> {
    let (Op::AvgPool(p) | Op::MaxPool(p)) = &layer.op else { return Ok(false) };
    let Some(&read) = layer.inputs.first() else { return Ok(false) };
    let before = graph.layer(read);
    if graph.consumers(read).count() != 1 {
        return Err(unsupported(layer, "pooling that is not the only reader of the previous layer"));
    }
    // A unit's pooling may have any window, stride and padding (the plan checks them, see
    // `codegen/pooling.rs`); a join's is limited to what its `fp.linear` average does.
    let k = p.kernel;
    let tiled = p.stride == k && p.padding == 0 && k != 0 && k <= 255;
    let divides = before.shape.len() == 3 && k != 0 && before.shape[1] % k == 0 && before.shape[2] % k == 0;
    let stage = out.iter_mut().rev().find(|s| match s {
        Stage::Unit { neuron, .. } => *neuron == read,
        Stage::Join { add, .. } => *add == read,
    });
    match stage {
        Some(Stage::Unit { weight, pool, .. }) => {
            if !matches!(graph.layer(*weight).op, Op::Conv2d { .. }) || !matches!(before.op, Op::Lif(_)) {
                return Err(unsupported(layer, "pooling that does not read the spikes of a conv layer's LIF layer"));
            }
            *pool = Some(layer.id);
            Ok(true)
        }
        Some(Stage::Join { pool, .. }) => {
            // A join's sum is FP16: its window is averaged by `fp.linear` over whole rows.
            if !matches!(layer.op, Op::AvgPool(_)) || !tiled || !divides || before.shape[2] != k {
                return Err(unsupported(layer, "pooling of an `add` other than an average over whole rows"));
            }
            *pool = Some((layer.id, k));
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A write into an error region in backward order: the stage and the value it adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Write {
    event: usize,
    value: LayerId,
}

/// Where the errors of every value live, as decided by [`errors`].
#[derive(Debug, Default)]
pub(super) struct Errors {
    /// The region (index into `regions`) of every value that has an error.
    pub(super) region: BTreeMap<LayerId, usize>,
    /// Each region's size: the most elements per sample-step of the values it holds.
    pub(super) regions: Vec<u32>,
    /// Stages (by forward index) whose error write adds to what is in the region already.
    pub(super) seeded: BTreeSet<usize>,
}

/// The backward events of `stages`: reads (a gradient soma, or a pooled join's spreading of
/// its pooled error) and writes (errors of the value below), with the stage of each.
fn events(stages: &[Stage], (input, output): (LayerId, LayerId)) -> Vec<(usize, Option<LayerId>, Option<LayerId>)> {
    let mut ev = Vec::new();
    for (i, s) in stages.iter().enumerate().rev() {
        match s {
            // The output layer's soma reads the loss gradient, not a region.
            Stage::Unit { src, .. } => {
                ev.push((i, Some(s.out()).filter(|&o| o != output), (*src != input).then_some(*src)));
            }
            Stage::Join { add, pool: Some(_), .. } => ev.push((i, Some(s.out()), Some(*add))),
            Stage::Join { .. } => {}
        }
    }
    ev
}

/// Groups, checks and places the errors of `stages` (`elems`: elements per sample-step of
/// a value).
pub(super) fn errors(
    graph: &LayerGraph,
    stages: &[Stage],
    elems: impl Fn(LayerId) -> u32,
) -> Result<Errors, CodegenError> {
    let input = graph.input().id;
    let mut group: BTreeMap<LayerId, LayerId> = BTreeMap::new();
    let root = |g: &BTreeMap<LayerId, LayerId>, mut v: LayerId| {
        while let Some(&p) = g.get(&v).filter(|&&p| p != v) {
            v = p;
        }
        v
    };
    // Every input of a join shares the join's group; `above` lists the joins a value feeds.
    let mut above: BTreeMap<LayerId, Vec<LayerId>> = BTreeMap::new();
    for s in stages {
        if let Stage::Join { add, inputs, .. } = s {
            for &v in inputs {
                let (a, b) = (root(&group, v), root(&group, *add));
                if a != b {
                    group.insert(a, b);
                }
                above.entry(v).or_default().push(*add);
            }
        }
    }
    let events = events(stages, (input, graph.output().id));
    let writes: Vec<(Write, usize)> = events
        .iter()
        .enumerate()
        .filter_map(|(e, &(stage, _, w))| w.map(|value| (Write { event: e, value }, stage)))
        .collect();
    let mut out = Errors::default();
    // Lifetimes of the groups in events: (first write, last read).
    let mut life: BTreeMap<LayerId, (usize, usize)> = BTreeMap::new();
    for (e, &(stage, read, _)) in events.iter().enumerate() {
        let Some(v) = read else { continue };
        let g = root(&group, v);
        let chain = ancestors(v, &above);
        // The writes into this group before the read.
        let before: Vec<&Write> =
            writes.iter().map(|(w, _)| w).filter(|w| w.event < e && root(&group, w.value) == g).collect();
        let stray = before.iter().any(|w| !chain.contains(&w.value));
        let late = writes.iter().any(|(w, _)| w.event > e && chain.contains(&w.value));
        if stray || late || before.is_empty() {
            let name = &graph.layer(stages[stage].out()).name;
            let what = format!(
                "branches whose errors cannot be summed in place when `{name}` reads them (a value read after an `add` of it, or not read by any layer with errors)"
            );
            return Err(CodegenError::Unsupported { layer: name.clone(), what });
        }
        let first = before.iter().map(|w| w.event).min().unwrap_or(e);
        let l = life.entry(g).or_insert((first, e));
        l.1 = l.1.max(e);
    }
    for (i, (w, stage)) in writes.iter().enumerate() {
        let g = root(&group, w.value);
        if writes[..i].iter().any(|(x, _)| root(&group, x.value) == g) {
            if matches!(stages[*stage], Stage::Join { .. }) {
                let layer = graph.layer(stages[*stage].out());
                return Err(unsupported(layer, "average pooling of an `add` whose inputs have other readers after it"));
            }
            out.seeded.insert(*stage);
        }
    }
    let mut members: BTreeMap<LayerId, BTreeSet<LayerId>> = BTreeMap::new();
    let values = events.iter().flat_map(|&(_, r, w)| [r, w]).flatten().chain(group.keys().copied());
    for v in values.collect::<Vec<_>>() {
        members.entry(root(&group, v)).or_default().insert(v);
    }
    let size = |g: LayerId| members.get(&g).map_or(0, |m| m.iter().map(|&v| elems(v)).max().unwrap_or(0));
    let slot = place(&life, size, &mut out.regions);
    for (g, m) in &members {
        if let Some(&r) = slot.get(g) {
            out.region.extend(m.iter().map(|&v| (v, r)));
        }
    }
    Ok(out)
}

/// The joins above `v`, transitively, and `v`: the values whose errors `dL/dv` sums.
fn ancestors(v: LayerId, above: &BTreeMap<LayerId, Vec<LayerId>>) -> BTreeSet<LayerId> {
    let mut seen = BTreeSet::from([v]);
    let mut todo = vec![v];
    while let Some(x) = todo.pop() {
        for &a in above.get(&x).into_iter().flatten() {
            if seen.insert(a) {
                todo.push(a);
            }
        }
    }
    seen
}

/// Places groups with lifetimes `life` (first write, last read) in regions, reusing a
/// region once its last group has been read (a barrier follows every read); the fitting
/// region that is smallest, else the largest free one, which grows. Returns each group's
/// region and fills `sizes`.
fn place(
    life: &BTreeMap<LayerId, (usize, usize)>,
    size: impl Fn(LayerId) -> u32,
    sizes: &mut Vec<u32>,
) -> BTreeMap<LayerId, usize> {
    let mut order: Vec<(usize, usize, LayerId)> = life.iter().map(|(&g, &(f, l))| (f, l, g)).collect();
    order.sort();
    let mut free_after: Vec<usize> = Vec::new();
    let mut out = BTreeMap::new();
    for (first, last, g) in order {
        let need = size(g);
        let key = |&(i, s): &(usize, &u32)| if *s >= need { (0, *s, i) } else { (1, u32::MAX - *s, i) };
        let free = sizes.iter().enumerate().filter(|&(i, _)| free_after[i] < first).min_by_key(key).map(|(i, _)| i);
        let r = free.unwrap_or_else(|| {
            sizes.push(0);
            free_after.push(0);
            sizes.len() - 1
        });
        sizes[r] = sizes[r].max(need);
        free_after[r] = last;
        out.insert(g, r);
    }
    out
}
