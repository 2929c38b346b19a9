//! Loader for golden training-step files, format `snn-train-golden/1`.
//!
//! A golden file (see `golden/README.md` §4 at the repository root) holds one training step
//! of one network in one precision: the spec, inputs, initial parameters, per-layer forward
//! and backward values, output, loss, gradients and updated parameters. Tensors are
//! `{dtype, shape, data}` with data flat and row-major; floats are decimals that parse
//! exactly into f32 through f64, and values of `f16` tensors convert exactly with
//! `half::f16::from_f32`. The loader checks all of that and returns a [`GoldenError`] rather
//! than panicking on a malformed file. Files ending in `.gz` are decompressed on the fly.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::kernels::loss::LossKind;
use crate::kernels::soma::{LifParams, Reset, Surrogate};

/// The only format this loader reads.
pub const FORMAT: &str = "snn-train-golden/1";

/// Why a golden file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// The file could not be read or decompressed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON or does not have the expected structure.
    #[error("invalid golden JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The `format` key names another format.
    #[error("unsupported format {0:?} (expected {FORMAT})")]
    Format(String),
    /// A tensor is inconsistent (size, dtype or values).
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// Where the tensor sits in the file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec is inconsistent or uses something the kernels do not implement.
    #[error("spec: {0}")]
    Spec(String),
}

/// Element type of a golden tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16 (stored as the exactly equal f32).
    F16,
    /// 0/1 spikes.
    Spike,
    /// Non-negative integers (labels).
    I64,
}

/// A tensor: element type, shape and flat row-major values widened to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type in the file.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl RawTensor {
    fn check(self, name: &str) -> Result<Tensor, GoldenError> {
        let err = |reason: String| GoldenError::Tensor { name: name.to_string(), reason };
        let dtype = match self.dtype.as_str() {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "spike" => DType::Spike,
            "i64" => DType::I64,
            other => return Err(err(format!("unknown dtype {other:?}"))),
        };
        let numel: usize = self.shape.iter().product();
        if numel != self.data.len() {
            return Err(err(format!("shape {:?} needs {numel} values, has {}", self.shape, self.data.len())));
        }
        let data: Vec<f32> = self.data.iter().map(|&v| v as f32).collect();
        if let Some(i) = data.iter().position(|&v| !value_fits(dtype, v)) {
            return Err(err(format!("value {} at {i} is not a valid {:?}", data[i], dtype)));
        }
        Ok(Tensor { dtype, shape: self.shape, data })
    }
}

fn value_fits(dtype: DType, v: f32) -> bool {
    match dtype {
        DType::F32 => v.is_finite(),
        DType::F16 => v.is_finite() && half::f16::from_f32(v).to_f32() == v,
        DType::Spike => v == 0.0 || v == 1.0,
        DType::I64 => v.is_finite() && v.fract() == 0.0 && v >= 0.0,
    }
}

/// Shape of the network input per timestep and its encoding.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InputSpec {
    /// Per-step shape (`[n]` or `[c,h,w]`).
    pub shape: Vec<usize>,
    /// `"bernoulli"` (spikes) or `"current"` (direct current).
    pub encoding: String,
}

/// One layer of the spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LayerSpec {
    /// Fully connected, weight `[out,in]`.
    Fc {
        /// Input features.
        #[serde(rename = "in")]
        n_in: usize,
        /// Output features.
        out: usize,
        /// Whether there is a bias.
        #[serde(default)]
        bias: bool,
    },
    /// 2-D convolution with a square kernel.
    Conv2d {
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Kernel size.
        k: usize,
        /// Stride.
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding.
        #[serde(default)]
        pad: usize,
        /// Whether there is a bias.
        #[serde(default)]
        bias: bool,
    },
    /// Average pooling, window k, stride k.
    Avgpool {
        /// Window size.
        k: usize,
    },
    /// Max pooling, window k, stride k.
    Maxpool {
        /// Window size.
        k: usize,
    },
    /// Flatten to a vector (no-op on row-major data).
    Flatten,
    /// LIF neurons with the spec's `lif` options.
    Lif,
    /// Non-spiking leaky readout.
    Readout,
}

fn one() -> usize {
    1
}

/// The surrogate as written in the spec.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SurrogateSpec {
    /// ATan(α).
    Atan {
        /// α.
        alpha: f64,
    },
    /// Sigmoid(α).
    Sigmoid {
        /// α.
        alpha: f64,
    },
    /// Rectangular window of width w.
    Rect {
        /// w.
        width: f64,
    },
    /// Triangle(α).
    Triangle {
        /// α.
        alpha: f64,
    },
    /// Fast sigmoid(k).
    FastSigmoid {
        /// k.
        slope: f64,
    },
}

/// Neuron options shared by every LIF (and readout) layer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LifSpec {
    /// Decay β.
    pub beta: f64,
    /// Threshold θ.
    pub threshold: f64,
    /// `"hard"` or `"soft"`.
    pub reset: String,
    /// Whether the reset is detached from the gradient.
    pub detach_reset: bool,
    /// Surrogate derivative.
    pub surrogate: SurrogateSpec,
    /// Reset potential of the hard reset.
    #[serde(default)]
    pub v_reset: f64,
}

/// The loss as written in the spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LossSpec {
    /// `"mse_rate"`, `"ce_rate"` or `"ce_mem"`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The normalised network spec of a golden case.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Spec {
    /// Timesteps.
    #[serde(rename = "T")]
    pub t: usize,
    /// Batch size.
    #[serde(rename = "B")]
    pub b: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// Input shape and encoding.
    pub input: InputSpec,
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
    /// Neuron options.
    pub lif: LifSpec,
    /// Loss.
    pub loss: LossSpec,
    /// Number of classes (the size of the last layer).
    pub num_classes: usize,
}

impl Spec {
    /// The neuron options as kernel parameters.
    pub fn lif_params(&self) -> Result<LifParams, GoldenError> {
        let l = &self.lif;
        let reset = match l.reset.as_str() {
            "hard" => Reset::Hard { v_reset: l.v_reset as f32 },
            "soft" => Reset::Soft,
            other => return Err(GoldenError::Spec(format!("unknown reset {other:?}"))),
        };
        let surrogate = match l.surrogate {
            SurrogateSpec::Atan { alpha } => Surrogate::Atan { alpha: alpha as f32 },
            SurrogateSpec::Sigmoid { alpha } => Surrogate::Sigmoid { alpha: alpha as f32 },
            SurrogateSpec::Rect { width } => Surrogate::Rect { width: width as f32 },
            SurrogateSpec::Triangle { alpha } => Surrogate::Triangle { alpha: alpha as f32 },
            SurrogateSpec::FastSigmoid { slope } => Surrogate::FastSigmoid { slope: slope as f32 },
        };
        Ok(LifParams {
            beta: l.beta as f32,
            threshold: l.threshold as f32,
            reset,
            detach_reset: l.detach_reset,
            surrogate,
        })
    }

    /// The loss as a kernel parameter.
    pub fn loss_kind(&self) -> Result<LossKind, GoldenError> {
        match self.loss.kind.as_str() {
            "mse_rate" => Ok(LossKind::MseRate),
            "ce_rate" => Ok(LossKind::CeRate),
            "ce_mem" => Ok(LossKind::CeMem),
            other => Err(GoldenError::Spec(format!("unknown loss {other:?}"))),
        }
    }
}

/// The recorded values of one layer: `out` for fc/conv/pool/flatten; `H`, `S`, `V`, `grad_S`,
/// `grad_H` for LIF; `U`, `grad_U` for the readout (names as in the file).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardRecord {
    /// Index of the layer in the spec.
    pub index: usize,
    /// Layer type as written in the file.
    pub kind: String,
    /// Tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
}

/// One golden case: one training step in one precision.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldenCase {
    /// Case name (`fc16`, `conv16_maxpool_ce`, …).
    pub name: String,
    /// `"f32"` or `"f16"`.
    pub precision: String,
    /// The network spec.
    pub spec: Spec,
    /// Input `[T,B,…]`: spikes, or f32 direct current.
    pub x: Tensor,
    /// Class labels, one per sample.
    pub labels: Vec<usize>,
    /// Initial parameters by name (`L{i}.weight`, `L{i}.bias`).
    pub params: BTreeMap<String, Tensor>,
    /// Per-layer recorded values, in spec order.
    pub forward: Vec<ForwardRecord>,
    /// Network output `z` `[B,C]` (spike rate or mean membrane).
    pub z: Tensor,
    /// Loss value.
    pub loss: f64,
    /// Parameter gradients by name.
    pub grads: BTreeMap<String, Tensor>,
    /// Parameters after the SGD step, by name.
    pub params_updated: BTreeMap<String, Tensor>,
    /// How far the oracle (the executable form of README §3) is from the canonical values.
    pub oracle_agreement: OracleAgreement,
}

/// The file's record of the largest differences between the oracle (README §3 equations,
/// op order and roundings) and the canonical SpikingJelly values it stores. A simulator that
/// follows §3 exactly differs from the stored gradients by exactly these amounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OracleAgreement {
    /// Largest |oracle − canonical| per parameter gradient.
    pub grads_max_abs: BTreeMap<String, f64>,
    /// Largest |oracle − canonical| per updated parameter.
    pub updated_max_abs: BTreeMap<String, f64>,
    /// Largest |exact (f64) oracle − canonical| per parameter gradient, relative to the
    /// gradient's largest |value|: how far the stored gradient itself is from exact
    /// arithmetic (`agreement.oracle_f64_vs_spikingjelly`).
    pub exact_grads_rel: BTreeMap<String, f64>,
    /// Largest |exact (f64) oracle − canonical| per updated parameter.
    pub exact_updated_abs: BTreeMap<String, f64>,
}

impl OracleAgreement {
    /// Reads `agreement.spikingjelly_vs_oracle` and `agreement.oracle_f64_vs_spikingjelly`;
    /// absent entries stay absent.
    fn from_json(agreement: &serde_json::Value) -> Self {
        let (sv, exact) = (&agreement["spikingjelly_vs_oracle"], &agreement["oracle_f64_vs_spikingjelly"]);
        OracleAgreement {
            grads_max_abs: numbers(&sv["grads"], Some("max_abs")),
            updated_max_abs: numbers(&sv["updated"], None),
            exact_grads_rel: numbers(&exact["grads"], Some("rel_to_max")),
            exact_updated_abs: numbers(&exact["updated"], None),
        }
    }
}

/// The numbers of a JSON object's members, by name: each member itself, or its `field`;
/// members without a number (and a value that is no object) give none.
fn numbers(object: &serde_json::Value, field: Option<&str>) -> BTreeMap<String, f64> {
    let Some(members) = object.as_object() else { return BTreeMap::new() };
    let number = |v: &serde_json::Value| field.map_or(v, |f| &v[f]).as_f64();
    members.iter().filter_map(|(k, v)| number(v).map(|d| (k.clone(), d))).collect()
}

#[derive(Deserialize)]
struct RawCase {
    format: String,
    name: String,
    precision: String,
    spec: Spec,
    inputs: BTreeMap<String, RawTensor>,
    params: BTreeMap<String, RawTensor>,
    forward: Vec<RawRecord>,
    output: RawOutput,
    loss: f64,
    grads: BTreeMap<String, RawTensor>,
    params_updated: BTreeMap<String, RawTensor>,
    #[serde(default)]
    agreement: serde_json::Value,
}

#[derive(Deserialize)]
struct RawRecord {
    index: usize,
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawOutput {
    z: RawTensor,
}

impl GoldenCase {
    /// Loads a golden file; a `.gz` file is decompressed first.
    pub fn from_path(path: &Path) -> Result<Self, GoldenError> {
        let io = |source| GoldenError::Io { path: path.to_path_buf(), source };
        let raw = std::fs::read(path).map_err(io)?;
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(io)?;
            out
        } else {
            raw
        };
        Self::from_json(&bytes)
    }

    /// Parses the JSON text of a golden file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GoldenError> {
        let raw: RawCase = serde_json::from_slice(bytes)?;
        if raw.format != FORMAT {
            return Err(GoldenError::Format(raw.format));
        }
        let mut inputs = tensors(raw.inputs, "inputs")?;
        let x = take(&mut inputs, "x", "inputs")?;
        let labels = take(&mut inputs, "labels", "inputs")?.data.iter().map(|&v| v as usize).collect();
        let forward = raw.forward.into_iter().map(record).collect::<Result<_, _>>()?;
        Ok(GoldenCase {
            name: raw.name,
            precision: raw.precision,
            spec: raw.spec,
            x,
            labels,
            params: tensors(raw.params, "params")?,
            forward,
            z: raw.output.z.check("output.z")?,
            loss: raw.loss,
            grads: tensors(raw.grads, "grads")?,
            params_updated: tensors(raw.params_updated, "params_updated")?,
            oracle_agreement: OracleAgreement::from_json(&raw.agreement),
        })
    }
}

fn tensors(raw: BTreeMap<String, RawTensor>, group: &str) -> Result<BTreeMap<String, Tensor>, GoldenError> {
    raw.into_iter()
        .map(|(k, t)| {
            let checked = t.check(&format!("{group}.{k}"))?;
            Ok((k, checked))
        })
        .collect()
}

fn take(map: &mut BTreeMap<String, Tensor>, key: &str, group: &str) -> Result<Tensor, GoldenError> {
    map.remove(key).ok_or_else(|| GoldenError::Tensor { name: format!("{group}.{key}"), reason: "missing".to_string() })
}

fn record(raw: RawRecord) -> Result<ForwardRecord, GoldenError> {
    let mut tensors = BTreeMap::new();
    for (k, v) in raw.rest {
        // Tensors are the objects with a dtype; the rest (shape_per_step, firing_rate) is
        // metadata.
        if v.get("dtype").is_some() {
            let t: RawTensor = serde_json::from_value(v)?;
            let name = format!("forward[{}].{k}", raw.index);
            tensors.insert(k, t.check(&name)?);
        }
    }
    Ok(ForwardRecord { index: raw.index, kind: raw.kind, tensors })
}

/// The `spec` and `inputs` members of a one-neuron golden file (fc 2-1, a LIF, T = B = 1),
/// for tests that write golden files by hand: a string literal, so that `concat!` can
/// join it with the members that differ.
#[cfg(test)]
macro_rules! tiny_spec {
    () => {
        r#""spec":{"T":1,"B":1,"lr":0.5,"input":{"shape":[2],"encoding":"bernoulli"},
        "layers":[{"type":"fc","in":2,"out":1,"bias":false,"out_shape":[1]},{"type":"lif"}],
        "lif":{"beta":0.75,"threshold":1.0,"reset":"hard","detach_reset":true,
               "surrogate":{"type":"atan","alpha":2.0}},
        "loss":{"type":"mse_rate"},"num_classes":1},
      "inputs":{"x":{"dtype":"spike","shape":[1,1,2],"data":[1,0]},
                "labels":{"dtype":"i64","shape":[1],"data":[0]}}"#
    };
}
#[cfg(test)]
pub(crate) use tiny_spec;

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = concat!(
        r#"{"format":"snn-train-golden/1","name":"t","precision":"f16","#,
        tiny_spec!(),
        r#","params":{"L0.weight":{"dtype":"f16","shape":[1,2],"data":[0.5,WEIGHT]}},
      "forward":[{"index":0,"type":"fc","shape_per_step":[1],
                  "out":{"dtype":"f16","shape":[1,1,1],"data":[0.5]}}],
      "output":{"kind":"spike_rate","z":{"dtype":"f16","shape":[1,1],"data":[0.0]}},
      "loss":1.0,"grads":{},"params_updated":{}}"#
    );

    #[test]
    fn loads_a_minimal_case() {
        let case = GoldenCase::from_json(TINY.replace("WEIGHT", "0.25").as_bytes()).expect("valid");
        assert_eq!(case.spec.layers[0], LayerSpec::Fc { n_in: 2, out: 1, bias: false });
        assert_eq!(case.params["L0.weight"].data, [0.5, 0.25]);
        assert_eq!(case.forward[0].tensors["out"].shape, [1, 1, 1]);
        assert_eq!(case.labels, [0]);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = GoldenCase::from_path(Path::new("/nonexistent/golden.json.gz"));
        assert!(matches!(err, Err(GoldenError::Io { .. })), "{err:?}");
    }

    #[test]
    fn rejects_values_not_in_f16() {
        let err = GoldenCase::from_json(TINY.replace("WEIGHT", "0.1").as_bytes());
        assert!(matches!(err, Err(GoldenError::Tensor { .. })), "{err:?}");
    }

    #[test]
    fn rejects_bad_json_and_other_formats() {
        assert!(matches!(GoldenCase::from_json(b"{"), Err(GoldenError::Json(_))));
        let other = TINY.replace("WEIGHT", "0.25").replace("snn-train-golden/1", "x/2");
        assert!(matches!(GoldenCase::from_json(other.as_bytes()), Err(GoldenError::Format(_))));
    }
}
