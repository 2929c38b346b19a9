//! Placing a golden case's batch into a program's DRAM, and reading the program's parity
//! stores back as a [`Trace`] in the golden file's names and time-major `[T,B,…]` order.
//!
//! The DRAM layouts are those of `snnc::codegen` (sample-major `[B][T][n]`, spikes packed per
//! sample); every conversion to the golden order lives here.

use sim::Machine;
use sim::fp::Precision;
use sim::golden::{DType, GoldenCase, LayerSpec};
use sim::reference::Trace;
use std::collections::BTreeMap;

/// Sizes of the batch: timesteps, samples, input features per timestep.
struct Dims {
    t: usize,
    b: usize,
    k: usize,
}

fn dims(case: &GoldenCase) -> Dims {
    Dims { t: case.spec.t, b: case.spec.b, k: case.spec.input.shape.iter().product() }
}

/// Writes the case's input (`[T,B,k]` → `[B][T][k]`) and one-hot targets.
pub fn place_batch(m: &mut Machine, case: &GoldenCase) -> Result<(), sim::SimError> {
    let Dims { t, b, k } = dims(case);
    let at = |tt: usize, bb: usize, i: usize| case.x.data[(tt * b + bb) * k + i];
    if case.x.dtype == DType::Spike {
        // Each timestep's row is padded to whole bytes.
        let row = k.div_ceil(8) * 8;
        let mut bits = vec![false; b * t * row];
        for (bb, tt, i) in triples(b, t, k) {
            bits[(bb * t + tt) * row + i] = at(tt, bb, i) != 0.0;
        }
        m.write_spikes("input", &bits)?;
    } else {
        let values: Vec<f32> = triples(b, t, k).map(|(bb, tt, i)| at(tt, bb, i)).collect();
        m.write_f16("input", &values)?;
    }
    let c = case.spec.num_classes;
    let mut target = vec![0.0; b * c];
    for (bb, &label) in case.labels.iter().enumerate() {
        target[bb * c + label] = 1.0;
    }
    m.write_f16("target", &target)
}

/// `(outer, middle, inner)` indices in row-major order.
fn triples(a: usize, b: usize, c: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).map(move |k| (i, j, k))))
}

/// Everything the program stored, as the golden file names it. A tensor the program does
/// not store is absent, which the comparison reports as a failure.
pub fn read_trace(m: &Machine, case: &GoldenCase, precision: Precision) -> Trace {
    let d = dims(case);
    let mut trace = Trace { layers: vec![BTreeMap::new(); case.spec.layers.len()], ..Trace::default() };
    for (i, layer) in case.spec.layers.iter().enumerate() {
        let name = format!("L{i}");
        let found = &mut trace.layers[i];
        let mut put = |key: &str, v: Option<Vec<f32>>| v.map(|v| found.insert(key.to_string(), v));
        match layer {
            LayerSpec::Lif => {
                let n = out_len(case, i);
                put("S", spikes(m, &format!("{name}.S"), &d, n));
                put("V", values(m, &format!("{name}.V"), &d, n));
                put("H", values(m, &format!("{name}.H"), &d, n));
                put("grad_S", grad_s(m, &name, &d, n));
                put("grad_H", values(m, &format!("{name}.dH"), &d, n));
            }
            LayerSpec::Readout => {
                let n = out_len(case, i);
                put("U", values(m, &format!("{name}.V"), &d, n));
                put("grad_U", values(m, &format!("{name}.dH"), &d, n));
            }
            _ => {
                let symbol = out_symbol(case, i);
                put("out", symbol.and_then(|sym| values(m, &sym, &d, out_len(case, i))));
            }
        }
    }
    read_output(m, case, precision, &mut trace);
    read_params(m, case, precision, &mut trace);
    trace
}

/// The symbol holding layer `i`'s `out`: a weight layer's own `.out`; a pooling layer's
/// output is the `.pooled` map of the LIF layer it pools; flattening is a no-op on row-major
/// data, so its output is its input's.
fn out_symbol(case: &GoldenCase, i: usize) -> Option<String> {
    match case.spec.layers.get(i)? {
        LayerSpec::Fc { .. } | LayerSpec::Conv2d { .. } => Some(format!("L{i}.out")),
        LayerSpec::Avgpool { .. } | LayerSpec::Maxpool { .. } => Some(format!("L{}.pooled", i.checked_sub(1)?)),
        LayerSpec::Flatten => out_symbol(case, i.checked_sub(1)?),
        LayerSpec::Lif | LayerSpec::Readout => None,
    }
}

/// Elements per sample and timestep of layer `i`'s output.
fn out_len(case: &GoldenCase, i: usize) -> usize {
    case.forward.iter().find(|r| r.index == i).and_then(|r| r.tensors.values().next()).map_or(0, |t| {
        let per_row: usize = t.shape.iter().skip(2).product();
        per_row
    })
}

/// A `[B][T][n]` tensor in `[T][B][n]` order, if the program has it with that size.
fn values(m: &Machine, symbol: &str, d: &Dims, n: usize) -> Option<Vec<f32>> {
    let v = m.read_values(symbol).ok()?;
    (v.len() == d.b * d.t * n).then(|| to_time_major(&v, d, n))
}

fn to_time_major(v: &[f32], d: &Dims, n: usize) -> Vec<f32> {
    triples(d.t, d.b, n).map(|(t, b, i)| v[(b * d.t + t) * n + i]).collect()
}

/// Spikes packed per sample (`ceil(T·n/8)` bytes each) in `[T][B][n]` order.
fn spikes(m: &Machine, symbol: &str, d: &Dims, n: usize) -> Option<Vec<f32>> {
    let bytes = m.read_symbol(symbol).ok()?;
    let per = (d.t * n).div_ceil(8);
    if bytes.len() != d.b * per {
        return None;
    }
    let bit = |b: usize, j: usize| (bytes[b * per + j / 8] >> (j % 8)) & 1;
    Some(triples(d.t, d.b, n).map(|(t, b, i)| f32::from(bit(b, t * n + i))).collect())
}

/// dL/dS: stored per timestep, or once per sample on the output unit (the loss gradient is
/// the same for every timestep).
fn grad_s(m: &Machine, name: &str, d: &Dims, n: usize) -> Option<Vec<f32>> {
    let v = m.read_values(&format!("{name}.dS")).ok()?;
    if v.len() == d.b * n {
        return Some(triples(d.t, d.b, n).map(|(_, b, i)| v[b * n + i]).collect());
    }
    (v.len() == d.b * d.t * n).then(|| to_time_major(&v, d, n))
}

/// The output z (the chip's FP32 sum over time divided by T, rounded to storage) and loss.
fn read_output(m: &Machine, case: &GoldenCase, precision: Precision, trace: &mut Trace) {
    let last = case.spec.layers.len().saturating_sub(1);
    if let Ok(sum) = m.read_f32(&format!("L{last}.sum")) {
        let t = case.spec.t as f32;
        trace.z = sum.iter().map(|s| round(precision, s / t)).collect();
    }
    trace.loss = m.read_f32("loss").ok().and_then(|l| l.first().copied()).map_or(f64::NAN, f64::from);
}

/// Rounds to the storage type of `precision`.
fn round(precision: Precision, v: f32) -> f32 {
    if precision.is_f16() { half::f16::from_f32(v).to_f32() } else { v }
}

/// Parameter gradients (FP32 `[k][n]` then `[n]`, rounded to storage as the update uses them)
/// and the updated parameters (the FP32 masters with FP32 storage, else the FP16 weights).
fn read_params(m: &Machine, case: &GoldenCase, precision: Precision, trace: &mut Trace) {
    for (pname, want) in &case.params {
        let Some((layer, kind)) = pname.split_once('.') else { continue };
        let Some(p) = param_layout(case, layer) else { continue };
        let (offset, len, out) = match kind {
            "weight" => (0, p.weights, if p.transposed { p.out } else { 1 }),
            "bias" => (p.weights, p.out, 1),
            _ => continue,
        };
        let reorder = |flat: &[f32]| -> Option<Vec<f32>> {
            let part = flat.get(offset..offset + len)?;
            // fc weights are `[k][n]` in the chip and `[n][k]` (`[out][in]`) in the file; conv
            // weights and biases have the file's layout.
            let k = len / out;
            Some((0..len).map(|j| part[(j % k) * out + j / k]).collect())
        };
        if let Some(g) = m.read_f32(&format!("{layer}.grad")).ok().and_then(|g| reorder(&g)) {
            trace.grads.insert(pname.clone(), g.iter().map(|&v| round(precision, v)).collect());
        }
        let updated = if precision.is_f16() {
            let mut w = m.read_f16(&format!("{layer}.weight")).ok();
            if let (Some(w), Ok(b)) = (&mut w, m.read_f16(&format!("{layer}.bias"))) {
                w.extend(b);
            }
            w
        } else {
            let mut w = m.read_f32(&format!("{layer}.weight_master")).ok();
            if let (Some(w), Ok(b)) = (&mut w, m.read_f32(&format!("{layer}.bias_master"))) {
                w.extend(b);
            }
            w
        };
        if let Some(u) = updated.and_then(|u| reorder(&u)).filter(|u| u.len() == want.data.len()) {
            trace.params_updated.insert(pname.clone(), u);
        }
    }
}

/// Where a weight layer's parameters lie in the chip's flat `[weights][bias]` tensors.
struct ParamLayout {
    /// Weight count.
    weights: usize,
    /// Output features (fc) or channels (conv): the bias length.
    out: usize,
    /// Whether the chip holds the weights transposed (fc: `[in][out]`).
    transposed: bool,
}

/// The parameter layout of weight layer `L{i}` from the spec.
fn param_layout(case: &GoldenCase, layer: &str) -> Option<ParamLayout> {
    let i: usize = layer.strip_prefix('L')?.parse().ok()?;
    match *case.spec.layers.get(i)? {
        LayerSpec::Fc { n_in, out, .. } => Some(ParamLayout { weights: n_in * out, out, transposed: true }),
        LayerSpec::Conv2d { cin, cout, k, .. } => {
            Some(ParamLayout { weights: cout * cin * k * k, out: cout, transposed: false })
        }
        _ => None,
    }
}
