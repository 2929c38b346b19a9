//! The model's parameters between the chip's DRAM and a [`Weights`] file.
//!
//! On the chip a layer's weights are `<layer>.weight` (FP16 copy) and
//! `<layer>.weight_master` (FP32). A linear layer's are `[k][n]`: `n` outputs, `k` inputs,
//! the transpose of PyTorch's `[out, in]`; a conv layer's are PyTorch's `[cout, cin, kh,
//! kw]`, as `fp.conv` reads them. A bias is `<layer>.bias` and `<layer>.bias_master`, `[n]`. A
//! file holds `<layer>.weight` in the model's own layout ([`ParamLayer::shape`], `[out,
//! in]` for linear layers) and `<layer>.bias`, both F32 from the masters, which are the
//! exact values training produced (the FP16 copy is their rounding).

use super::TrainError;
use crate::Machine;
use crate::record::{Tensor, TensorData, Weights};
use half::f16;

/// One weight layer of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayer {
    /// The layer's name in the model file.
    pub name: String,
    /// The weight's shape in the model's layout: `[out, in]` (linear, stored transposed on
    /// the chip) or `[cout, cin, kh, kw]` (conv, stored as it is).
    pub shape: Vec<usize>,
    /// Whether the layer has a bias of `shape[0]` values.
    pub bias: bool,
}

impl ParamLayer {
    /// Outputs `n` and inputs `k`.
    fn dims(&self) -> (usize, usize) {
        let n = self.shape.first().copied().unwrap_or(0);
        (n, self.shape.iter().skip(1).product())
    }

    /// The chip's layout from the model's.
    fn chip_layout(&self, values: &[f32]) -> Vec<f32> {
        let (n, k) = self.dims();
        if self.shape.len() == 2 { transpose(values, n, k) } else { values.to_vec() }
    }

    /// The model's layout from the chip's.
    fn model_layout(&self, values: &[f32]) -> Vec<f32> {
        let (n, k) = self.dims();
        if self.shape.len() == 2 { transpose(values, k, n) } else { values.to_vec() }
    }
}

/// `[n][k]` values as `[k][n]`, and back with the arguments swapped.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols.max(1)).enumerate().take(rows) {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// The masters of every layer, in the model's layout.
pub fn read(machine: &Machine, model: &str, layers: &[ParamLayer]) -> Result<Weights, TrainError> {
    let mut tensors = Vec::new();
    for l in layers {
        let n = l.dims().0;
        let master = machine.read_f32(&format!("{}.weight_master", l.name))?;
        let data = TensorData::F32(l.model_layout(&master));
        tensors.push(Tensor { name: format!("{}.weight", l.name), shape: l.shape.clone(), data });
        if l.bias {
            let bias = machine.read_f32(&format!("{}.bias_master", l.name))?;
            tensors.push(Tensor { name: format!("{}.bias", l.name), shape: vec![n], data: TensorData::F32(bias) });
        }
    }
    Weights::new(Some(model.to_string()), tensors).map_err(|e| TrainError::Weights(e.to_string()))
}

/// Writes `weights` into the masters and FP16 copies of every layer. Every layer's tensors
/// must be there with the model's shapes, and no other tensor.
pub fn write(machine: &mut Machine, model: &str, layers: &[ParamLayer], weights: &Weights) -> Result<(), TrainError> {
    if let Some(other) = weights.model().filter(|m| *m != model) {
        return Err(TrainError::Weights(format!("the weights are of model `{other}`, not `{model}`")));
    }
    let mut expected = Vec::new();
    for l in layers {
        let n = l.dims().0;
        let w = tensor(weights, &format!("{}.weight", l.name), &l.shape)?;
        write_param(machine, &l.name, "weight", &l.chip_layout(&w))?;
        expected.push(format!("{}.weight", l.name));
        if l.bias {
            let b = tensor(weights, &format!("{}.bias", l.name), &[n])?;
            write_param(machine, &l.name, "bias", &b)?;
            expected.push(format!("{}.bias", l.name));
        }
    }
    if let Some(extra) = weights.tensors().iter().find(|t| !expected.contains(&t.name)) {
        return Err(TrainError::Weights(format!("tensor `{}` belongs to no layer of model `{model}`", extra.name)));
    }
    Ok(())
}

/// The values of tensor `name`, which must have `shape`.
fn tensor(weights: &Weights, name: &str, shape: &[usize]) -> Result<Vec<f32>, TrainError> {
    let t = weights.get(name).ok_or_else(|| TrainError::Weights(format!("tensor `{name}` is missing")))?;
    if t.shape != shape {
        return Err(TrainError::Weights(format!("tensor `{name}` has shape {:?}, the model needs {shape:?}", t.shape)));
    }
    Ok(t.data.to_f32())
}

/// The FP32 master and its FP16 rounding, the chip's two copies of a parameter.
fn write_param(machine: &mut Machine, layer: &str, param: &str, values: &[f32]) -> Result<(), TrainError> {
    let rounded: Vec<f32> = values.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    machine.write_f32(&format!("{layer}.{param}_master"), values)?;
    machine.write_f16(&format!("{layer}.{param}"), &rounded)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_twice_gives_the_values_back() {
        let w: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let t = transpose(&w, 2, 3);
        assert_eq!(t, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(transpose(&t, 3, 2), w);
    }
}
