//! A golden case's spec as model source text, and its initial parameters as the weights the
//! code generator is given.
//!
//! Layer `i` of the spec is named `L{i}` in the model, so the golden file's parameter
//! `L{i}.weight` is the DRAM symbol `L{i}.weight` of the program and the neuron layer `L{j}`
//! stores `L{j}.S`, `L{j}.V`, …. The `init` and input encoding settings only matter for
//! runs without given data; the golden run replaces both.

use sim::golden::{GoldenCase, LayerSpec, Spec, SurrogateSpec};
use snnc::codegen::{LayerWeights, WeightSource};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The model source of `case`'s network, or why the spec has no model-language equivalent.
pub fn model_source(case: &GoldenCase) -> Result<String, String> {
    let spec = &case.spec;
    let mut text = String::new();
    let _ =
        writeln!(text, "// Golden case {} ({}), generated from its spec by `snnc golden`.", case.name, case.precision);
    let _ = writeln!(text, "model {} {{", ident(&case.name));
    let _ = writeln!(text, "  timesteps = {}\n  batch = {}", spec.t, spec.b);
    let _ = writeln!(text, "  neuron = {}", neuron(spec)?);
    let _ = writeln!(text, "  init = uniform(gain = 1.0, seed = 1)");
    let shape: Vec<String> = spec.input.shape.iter().map(ToString::to_string).collect();
    let encoding = match spec.input.encoding.as_str() {
        "bernoulli" => "bernoulli(max_rate = 1.0, seed = 1)",
        "current" => "current(scale = 1.0)",
        other => return Err(format!("input encoding `{other}` has no model-language equivalent")),
    };
    let _ = writeln!(text, "  x = input(shape = [{}], encoding = {encoding})", shape.join(", "));
    let mut prev = "x".to_string();
    for (i, layer) in spec.layers.iter().enumerate() {
        let _ = writeln!(text, "  L{i} = {}", layer_call(layer, &prev, spec.lif.beta));
        prev = format!("L{i}");
    }
    let _ = writeln!(text, "  loss = {}({prev})", spec.loss.kind);
    let _ = writeln!(text, "  optimizer = sgd(lr = {:?})\n}}", spec.lr);
    Ok(text)
}

/// A model name from the case name (letters, digits and `_` only).
fn ident(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_alphabetic()) { s } else { format!("case_{s}") }
}

/// The model-wide `neuron = lif(...)` setting.
fn neuron(spec: &Spec) -> Result<String, String> {
    let l = &spec.lif;
    if l.reset == "hard" && l.v_reset != 0.0 {
        return Err(format!("hard reset to {} (the model language resets to 0)", l.v_reset));
    }
    let surrogate = match l.surrogate {
        SurrogateSpec::Atan { alpha } => format!("atan({alpha:?})"),
        SurrogateSpec::Sigmoid { alpha } => format!("sigmoid({alpha:?})"),
        SurrogateSpec::Rect { width } => format!("rect({width:?})"),
        SurrogateSpec::Triangle { alpha } => format!("triangle({alpha:?})"),
        SurrogateSpec::FastSigmoid { slope } => format!("fast_sigmoid({slope:?})"),
    };
    Ok(format!(
        "lif(beta = {:?}, threshold = {:?}, reset = {}, detach_reset = {}, surrogate = {surrogate})",
        l.beta, l.threshold, l.reset, l.detach_reset
    ))
}

/// One layer as a call on the previous layer.
fn layer_call(layer: &LayerSpec, prev: &str, beta: f64) -> String {
    match *layer {
        LayerSpec::Fc { out, bias, .. } => format!("linear({prev}, out = {out}, bias = {bias})"),
        LayerSpec::Conv2d { cout, k, stride, pad, bias, .. } => {
            format!("conv2d({prev}, out = {cout}, kernel = {k}, stride = {stride}, padding = {pad}, bias = {bias})")
        }
        LayerSpec::Avgpool { k } => format!("avgpool({prev}, kernel = {k}, stride = {k})"),
        LayerSpec::Maxpool { k } => format!("maxpool({prev}, kernel = {k}, stride = {k})"),
        LayerSpec::Flatten => format!("flatten({prev})"),
        LayerSpec::Lif => format!("lif({prev})"),
        LayerSpec::Readout => format!("readout({prev}, beta = {beta:?})"),
    }
}

/// The golden initial parameters per weight layer `L{i}`, in PyTorch layout.
pub fn weights(case: &GoldenCase) -> WeightSource {
    let mut map = BTreeMap::new();
    for (i, layer) in case.spec.layers.iter().enumerate() {
        if !matches!(layer, LayerSpec::Fc { .. } | LayerSpec::Conv2d { .. }) {
            continue;
        }
        let name = format!("L{i}");
        // A missing tensor is left empty, so code generation names the layer in its error.
        let weight = case.params.get(&format!("{name}.weight")).map(|t| t.data.clone()).unwrap_or_default();
        let bias = case.params.get(&format!("{name}.bias")).map(|t| t.data.clone());
        map.insert(name, LayerWeights { weight, bias });
    }
    WeightSource::Given(map)
}
