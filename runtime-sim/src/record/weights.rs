//! Trained weights in the safetensors format, written after training and read back by
//! `snnc train --resume`.
//!
//! A file holds one tensor per parameter, by name (the layer's name and the parameter, for
//! example `fc1.weight`), each F16 or F32 with its shape, little-endian, in the layouts of the
//! rest of the simulator (fc weights `[out, in]`, conv weights `[cout, cin, kh, kw]`). The
//! header's `__metadata__` holds exactly one entry, `"snnc"`, whose value is the compact JSON
//! `{"format":"snnc-weights/1","model":"NAME"}`: one entry because the safetensors crate
//! writes metadata from a hash map, and a single key keeps the bytes deterministic. Tensors
//! are ordered as the crate orders them (by dtype, then name), so the same weights always give
//! the same bytes.
//!
//! Reading accepts any safetensors file whose tensors are all F16 or F32, so weights exported
//! by another tool can be loaded too; [`Weights::model`] is then `None`.

use std::path::Path;

use half::f16;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::RecordError;
use super::file::{read, write_atomic};

/// The format tag in the metadata of the files snnc writes.
pub const WEIGHTS_FORMAT: &str = "snnc-weights/1";

/// A tensor's values, at its storage precision.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// IEEE binary16 (safetensors `F16`).
    F16(Vec<f16>),
    /// IEEE binary32 (safetensors `F32`).
    F32(Vec<f32>),
}

impl TensorData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F16(v) => v.len(),
            TensorData::F32(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to `f32` (exact for both precisions).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::F32(v) => v.clone(),
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F16(_) => Dtype::F16,
            TensorData::F32(_) => Dtype::F32,
        }
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// One named tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The parameter's name, for example `fc1.weight`.
    pub name: String,
    /// The shape; its product is the number of values.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: TensorData,
}

/// A set of named tensors: a model's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    model: Option<String>,
    tensors: Vec<Tensor>,
}

/// The value of the `snnc` metadata entry.
#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    model: String,
}

impl Weights {
    /// Weights of model `model`; names must be unique and non-empty, shapes must match the
    /// data. Tensors are kept sorted by name.
    pub fn new(model: Option<String>, mut tensors: Vec<Tensor>) -> Result<Weights, RecordError> {
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, t) in tensors.iter().enumerate() {
            let elems: usize = t.shape.iter().product();
            if t.name.is_empty() || t.name == "__metadata__" {
                return Err(RecordError::content("weights", format!("`{}` is not a usable tensor name", t.name)));
            }
            if elems != t.data.len() {
                let why = format!("tensor `{}` has shape {:?} but {} values", t.name, t.shape, t.data.len());
                return Err(RecordError::content("weights", why));
            }
            if i > 0 && tensors[i - 1].name == t.name {
                return Err(RecordError::content("weights", format!("tensor `{}` appears twice", t.name)));
            }
        }
        Ok(Weights { model, tensors })
    }

    /// The model the weights belong to, if the file says.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The tensors, sorted by name.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.binary_search_by(|t| t.name.as_str().cmp(name)).ok().map(|i| &self.tensors[i])
    }

    /// The safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RecordError> {
        let data: Vec<(String, Vec<u8>)> =
            self.tensors.iter().map(|t| (t.name.clone(), t.data.to_le_bytes())).collect();
        let mut views = Vec::with_capacity(data.len());
        for (t, (name, bytes)) in self.tensors.iter().zip(&data) {
            let view = TensorView::new(t.data.dtype(), t.shape.clone(), bytes)
                .map_err(|source| RecordError::Safetensors { origin: "<memory>".into(), source })?;
            views.push((name.as_str(), view));
        }
        let metadata = self.model.as_ref().map(|model| {
            let meta = Meta { format: WEIGHTS_FORMAT.to_string(), model: model.clone() };
            // Serialising two strings cannot fail; fall back to the tag alone if it ever did.
            let json = serde_json::to_string(&meta).unwrap_or_else(|_| WEIGHTS_FORMAT.to_string());
            std::iter::once(("snnc".to_string(), json)).collect()
        });
        safetensors::serialize(views, metadata)
            .map_err(|source| RecordError::Safetensors { origin: "<memory>".into(), source })
    }

    /// Parses safetensors bytes; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Weights, RecordError> {
        // A safetensors file starts with an 8-byte header length; a JSON file (the run record
        // `snnc train` writes beside the weights, say) would only get "header too large".
        if bytes.trim_ascii_start().starts_with(b"{") {
            let why = "is JSON, not safetensors weights (the run record? `snnc train` writes the weights \
                       beside it as NAME.safetensors)";
            return Err(RecordError::content(origin, why));
        }
        let bad = |source| RecordError::Safetensors { origin: origin.to_string(), source };
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(bad)?;
        let model = match metadata.metadata().as_ref().and_then(|m| m.get("snnc")) {
            None => None,
            Some(json) => Some(parse_meta(json, origin)?),
        };
        let file = SafeTensors::deserialize(bytes).map_err(bad)?;
        let tensors = file.iter().map(|(name, view)| read_tensor(name, &view, origin)).collect::<Result<_, _>>()?;
        Weights::new(model, tensors)
    }

    /// Writes the weights to `path` (atomically: a failed write leaves no partial file).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), RecordError> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads weights written by [`Weights::save`] (or any F16/F32 safetensors file).
    pub fn load(path: impl AsRef<Path>) -> Result<Weights, RecordError> {
        let path = path.as_ref();
        Weights::from_bytes(&read(path)?, &path.display().to_string())
    }
}

/// The model name of an `snnc` metadata entry, checking its format tag.
fn parse_meta(json: &str, origin: &str) -> Result<String, RecordError> {
    let meta: Meta = serde_json::from_str(json)
        .map_err(|e| RecordError::content(origin, format!("metadata `snnc` is not {{format, model}}: {e}")))?;
    if meta.format != WEIGHTS_FORMAT {
        let why = format!("weights format `{}` is not supported; this snnc reads `{WEIGHTS_FORMAT}`", meta.format);
        return Err(RecordError::content(origin, why));
    }
    Ok(meta.model)
}

/// One tensor of a parsed file, which must be F16 or F32.
fn read_tensor(name: &str, view: &TensorView<'_>, origin: &str) -> Result<Tensor, RecordError> {
    let bytes = view.data();
    let data = match view.dtype() {
        Dtype::F16 => TensorData::F16(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]])).collect()),
        Dtype::F32 => {
            TensorData::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        other => {
            let why = format!("tensor `{name}` has dtype {other}; snnc reads F16 and F32 weights");
            return Err(RecordError::content(origin, why));
        }
    };
    Ok(Tensor { name: name.to_string(), shape: view.shape().to_vec(), data })
}
