//! The placement: which core runs each unit (a weight layer fused with its neuron layer) and
//! how its weights are tiled. It is the only thing the resident generator needs from
//! mapping: [`Placement::mapped`] takes the cores from the mapping pass (see `cores.rs`),
//! [`Placement::default_for`] puts unit `i` on core `i`.

use super::CodegenError;
use super::cores::{CoreMap, ranges, unit_name};
use crate::graph::{Layer, LayerGraph, LayerId};
use crate::model::Op;
use isa::{Buf, ChipDesc};
use std::fmt::Write as _;

/// Where one unit runs and how its weight matrix is cut to fit the weight buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlacement {
    /// The weight layer (`linear`).
    pub weight: LayerId,
    /// The neuron layer (`lif` or `readout`) that reads it.
    pub neuron: LayerId,
    /// The core that runs the unit's FP, BP and WG streams.
    pub core: u16,
    /// Output features per FP tile (whole `k` rows per tile, so every output sums at once).
    pub fp_tile: u32,
    /// Input features per BP tile (whole `n` columns per tile).
    pub bp_tile: u32,
}

/// The placement of every unit, in forward order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Units from the input to the loss.
    pub units: Vec<UnitPlacement>,
}

impl Placement {
    /// Unit `i` on core `i`, with the largest tiles that fit `fp.w` and `bp.w`.
    pub fn default_for(graph: &LayerGraph, chip: &ChipDesc) -> Result<Placement, CodegenError> {
        let chain = units(graph)?;
        if chain.len() > chip.core_count() {
            return Err(CodegenError::TooManyUnits { units: chain.len(), cores: chip.core_count() });
        }
        let mut out = Vec::with_capacity(chain.len());
        for (i, (w, s)) in chain.into_iter().enumerate() {
            let layer = graph.layer(w);
            let (k, n) = linear_dims(graph, layer);
            let core = u16::try_from(i).unwrap_or(u16::MAX);
            if let Some(wlen) = conv_weights(graph, layer) {
                // Conv weights stay resident in `fp.w` and `bp.w` (no tiling yet).
                for buf in [Buf::FpW, Buf::BpW] {
                    let have = buffer_elems(chip, buf);
                    if wlen > have {
                        let (layer, buffer) = (layer.name.clone(), buf.name().to_string());
                        return Err(CodegenError::DoesNotFit { layer, buffer, need: wlen, have });
                    }
                }
                out.push(UnitPlacement { weight: w, neuron: s, core, fp_tile: n, bp_tile: k });
                continue;
            }
            let fp_cap = buffer_elems(chip, Buf::FpW);
            let bp_cap = buffer_elems(chip, Buf::BpW);
            let too_big = |buf: Buf, need: u64, have: u64| CodegenError::DoesNotFit {
                layer: layer.name.clone(),
                buffer: buf.name().to_string(),
                need,
                have,
            };
            // A tile keeps all k inputs of an output (FP) or all n errors of an input (BP).
            if u64::from(k) > fp_cap {
                return Err(too_big(Buf::FpW, u64::from(k), fp_cap));
            }
            if u64::from(n) > bp_cap {
                return Err(too_big(Buf::BpW, u64::from(n), bp_cap));
            }
            let fp_tile = tile(n, fp_cap / u64::from(k));
            let bp_tile = tile(k, bp_cap / u64::from(n));
            out.push(UnitPlacement { weight: w, neuron: s, core, fp_tile, bp_tile });
        }
        Ok(Placement { units: out })
    }

    /// [`Placement::default_for`]'s tiles on the cores of `cores`, when the mapping gives
    /// every unit one core of its own; otherwise unit `i` on core `i` and a note that says
    /// why (a resident unit runs on one core, and all units run at once).
    pub fn mapped(
        graph: &LayerGraph,
        chip: &ChipDesc,
        cores: &CoreMap,
    ) -> Result<(Placement, Option<String>), CodegenError> {
        let mut placement = Placement::default_for(graph, chip)?;
        if !cores.has_mapping() {
            return Ok((placement, None));
        }
        match one_core_each(graph, &placement, cores) {
            Ok(list) => {
                for (u, core) in placement.units.iter_mut().zip(list) {
                    u.core = core;
                }
                Ok((placement, None))
            }
            Err(why) => Ok((placement, Some(format!("{why}; the resident program runs unit i on core i")))),
        }
    }

    /// A stable text form (`snnc compile --emit mapping`).
    pub fn to_text(&self, graph: &LayerGraph) -> String {
        let mut s = format!("placement of {} ({} units)\n", graph.name, self.units.len());
        for u in &self.units {
            let (w, n) = (graph.layer(u.weight), graph.layer(u.neuron));
            let (k, out) = linear_dims(graph, w);
            let _ = writeln!(
                s,
                "core {:>2}: {} {} + {} {}  k={k} n={out}  fp tile n={}  bp tile k={}",
                u.core, w.id, w.name, n.id, n.name, u.fp_tile, u.bp_tile
            );
        }
        s
    }
}

/// The mapping's core of every unit, if each has exactly one and no two share one.
fn one_core_each(graph: &LayerGraph, placement: &Placement, cores: &CoreMap) -> Result<Vec<u16>, String> {
    let mut taken = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(placement.units.len());
    for u in &placement.units {
        let name = unit_name(graph, u.weight);
        let core = match cores.cores_of(u.weight) {
            None => return Err(format!("the mapping gives {name} no core this chip has")),
            Some(&[one]) => one,
            Some(many) => {
                let (n, list) = (many.len(), ranges(many));
                return Err(format!(
                    "the mapping spreads {name} over {n} cores ({list}) but a resident unit runs on one"
                ));
            }
        };
        if let Some(other) = taken.insert(core, name.clone()) {
            return Err(format!(
                "the mapping puts {other} and {name} on core {core} (in different segments) but a resident program runs every unit at once on a core of its own"
            ));
        }
        out.push(core);
    }
    Ok(out)
}

/// Elements of a buffer of the chip (0 if the chip lacks it, which validation forbids).
pub(super) fn buffer_elems(chip: &ChipDesc, buf: Buf) -> u64 {
    chip.buffer(buf).map_or(0, isa::BufferDesc::elems)
}

/// The tile size: `cap` clamped to `1..=dim`, balanced so tiles are as equal as possible.
fn tile(dim: u32, cap: u64) -> u32 {
    let cap = u32::try_from(cap.clamp(1, u64::from(dim.max(1)))).unwrap_or(dim);
    let count = dim.div_ceil(cap);
    dim.div_ceil(count.max(1))
}

/// Input and output features of a linear layer.
pub(super) fn linear_dims(graph: &LayerGraph, layer: &Layer) -> (u32, u32) {
    let k = layer.inputs.first().map_or(0, |&i| u32::try_from(graph.layer(i).numel()).unwrap_or(u32::MAX));
    let n = u32::try_from(layer.numel()).unwrap_or(u32::MAX);
    (k, n)
}

/// The weight count `cout*cin*k*k` of a conv layer, or `None` for other layers.
pub(super) fn conv_weights(graph: &LayerGraph, layer: &Layer) -> Option<u64> {
    let Op::Conv2d { out, kernel, .. } = layer.op else { return None };
    let cin = layer.inputs.first().and_then(|&i| graph.layer(i).shape.first().copied()).unwrap_or(1);
    Some(u64::from(out) * u64::from(cin) * u64::from(kernel) * u64::from(kernel))
}

/// The chain of (weight layer, neuron layer) pairs from the input to the loss, or the first
/// layer that breaks the `linear`/`conv2d` → `lif`/`readout` [→ pool] [→ `flatten`] pattern.
/// Pooling and flatten belong to the unit whose neuron layer they read.
pub(super) fn units(graph: &LayerGraph) -> Result<Vec<(LayerId, LayerId)>, CodegenError> {
    let unsupported = |layer: &Layer, what: String| CodegenError::Unsupported { layer: layer.name.clone(), what };
    let mut chain = Vec::new();
    let mut prev = graph.input().id;
    for &id in graph.topo_order() {
        let layer = graph.layer(id);
        match &layer.op {
            Op::Input { .. } => {}
            Op::Linear { .. } | Op::Conv2d { .. } => {
                if layer.inputs != [prev] {
                    return Err(unsupported(
                        layer,
                        format!("a `{}` layer that does not read the previous layer", layer.op.name()),
                    ));
                }
                prev = id;
            }
            Op::AvgPool(_) | Op::MaxPool(_) | Op::Flatten => {
                post_op(graph, layer, prev)?;
                prev = id;
            }
            Op::Lif(_) | Op::Readout { .. } => {
                let w = graph.layer(prev);
                if !w.op.has_weights() || layer.inputs != [prev] {
                    return Err(unsupported(layer, "a neuron layer that does not follow a linear layer".into()));
                }
                if graph.consumers(prev).count() != 1 {
                    return Err(unsupported(w, "a linear layer read by more than one layer".into()));
                }
                if matches!(layer.op, Op::Readout { .. }) && graph.output().id != id {
                    return Err(unsupported(layer, "a readout layer that is not the output".into()));
                }
                chain.push((prev, id));
                prev = id;
            }
            other => return Err(unsupported(layer, format!("`{}` layers", other.name()))),
        }
    }
    if prev != graph.output().id {
        return Err(unsupported(graph.output(), "an output that is not a neuron layer after a linear layer".into()));
    }
    Ok(chain)
}

/// Checks a pooling or flatten layer that follows the layer `prev` of the chain: pooling
/// must read the spikes of a conv unit's LIF layer directly. Its window, stride and padding
/// are checked against the ISA's fields when the unit is planned (see `pooling.rs`).
fn post_op(graph: &LayerGraph, layer: &Layer, prev: LayerId) -> Result<(), CodegenError> {
    let unsupported = |what: &str| Err(CodegenError::Unsupported { layer: layer.name.clone(), what: what.into() });
    let before = graph.layer(prev);
    if layer.inputs != [prev] || graph.consumers(prev).count() != 1 {
        return unsupported("a pooling or flatten layer that is not the only reader of the previous layer");
    }
    match &layer.op {
        Op::AvgPool(_) | Op::MaxPool(_) => {
            let conv = before.inputs.first().is_some_and(|&w| matches!(graph.layer(w).op, Op::Conv2d { .. }));
            if !matches!(before.op, Op::Lif(_)) || !conv || before.shape.len() != 3 {
                return unsupported("pooling that does not read the spikes of a conv layer's LIF layer");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
