//! Initial weights: drawn from the model's `init` with a seeded generator, or given by the
//! caller (golden parity runs), and turned into the FP16 and FP32 bytes of the DRAM image.
//!
//! The generator is splitmix64, seeded from `init.seed` and the layer's id, so every layer
//! gets its own deterministic stream: U(-a, a) with `a = gain / sqrt(fan_in)`, rounded to
//! FP16 (the master copy is that FP16 value widened to FP32, as in the golden files).

use super::CodegenError;
use half::f16;
use std::collections::BTreeMap;

/// Weights of one linear layer in PyTorch layout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerWeights {
    /// `[out][in]` row-major (the golden files' `W`); code generation transposes it.
    pub weight: Vec<f32>,
    /// `[out]`, for layers with a bias.
    pub bias: Option<Vec<f32>>,
}

/// Where initial weights come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum WeightSource {
    /// Drawn from the model's `init` (gain and seed).
    #[default]
    Init,
    /// Given per linear layer name; a layer missing from the map is drawn from `init`.
    Given(BTreeMap<String, LayerWeights>),
}

/// The FP16 values of one layer in the chip's layout: `weight` is `[k][n]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tensors {
    pub(super) weight: Vec<f16>,
    pub(super) bias: Option<Vec<f16>>,
}

/// What a layer's weights are drawn from or checked against.
pub(super) struct Shape<'a> {
    pub(super) name: &'a str,
    pub(super) k: u32,
    pub(super) n: u32,
    pub(super) bias: bool,
    pub(super) gain: f64,
    /// Whether `[out][in]` becomes `[in][out]` (linear layers; conv layers keep their layout).
    pub(super) transpose: bool,
    pub(super) seed: u64,
}

/// The layer's initial FP16 weights in `[k][n]` layout.
pub(super) fn initial(source: &WeightSource, shape: &Shape<'_>) -> Result<Tensors, CodegenError> {
    let given = match source {
        WeightSource::Given(map) => map.get(shape.name),
        WeightSource::Init => None,
    };
    let (k, n) = (shape.k as usize, shape.n as usize);
    let (out_in, bias) = match given {
        Some(w) => check_given(w, shape)?,
        None => draw(shape),
    };
    if !shape.transpose {
        let weight = out_in.iter().map(|&v| f16::from_f32(v)).collect();
        let bias = bias.map(|b| b.iter().map(|&v| f16::from_f32(v)).collect());
        return Ok(Tensors { weight, bias });
    }
    // PyTorch's [out][in] becomes [in][out]: fp.linear reads a k x n row-major matrix.
    let mut weight = vec![f16::ZERO; k * n];
    for (o, row) in out_in.chunks_exact(k.max(1)).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            weight[i * n + o] = f16::from_f32(v);
        }
    }
    let bias = bias.map(|b| b.iter().map(|&v| f16::from_f32(v)).collect());
    Ok(Tensors { weight, bias })
}

fn check_given(w: &LayerWeights, shape: &Shape<'_>) -> Result<(Vec<f32>, Option<Vec<f32>>), CodegenError> {
    let bad = |message: String| CodegenError::Weights { layer: shape.name.to_string(), message };
    let want = shape.k as usize * shape.n as usize;
    if w.weight.len() != want {
        return Err(bad(format!("{} weights given, expected {} x {} = {want}", w.weight.len(), shape.n, shape.k)));
    }
    match (&w.bias, shape.bias) {
        (Some(b), true) if b.len() != shape.n as usize => {
            Err(bad(format!("{} biases given, expected {}", b.len(), shape.n)))
        }
        (Some(_), false) => Err(bad("a bias is given but the layer has none".into())),
        (None, true) => Err(bad("the layer has a bias but none is given".into())),
        _ => Ok((w.weight.clone(), w.bias.clone())),
    }
}

/// U(-a, a) with a = gain / sqrt(k), `[out][in]` order, then the bias from the same stream.
fn draw(shape: &Shape<'_>) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut rng = SplitMix64(shape.seed);
    let a = shape.gain / f64::from(shape.k.max(1)).sqrt();
    let mut uniform = || ((rng.next_f64() * 2.0 - 1.0) * a) as f32;
    let weight = (0..shape.k as usize * shape.n as usize).map(|_| uniform()).collect();
    let bias = shape.bias.then(|| (0..shape.n).map(|_| uniform()).collect());
    (weight, bias)
}

/// The splitmix64 generator (Steele, Lea and Flood 2014): tiny, fast and well mixed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The per-layer seed: the model's seed mixed with the layer index.
pub(super) fn layer_seed(seed: u64, layer: u32) -> u64 {
    SplitMix64(seed ^ (u64::from(layer) << 32)).next_u64()
}

/// Little-endian FP16 bytes.
pub(super) fn f16_bytes(values: &[f16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()
}

/// Little-endian FP32 bytes of the FP16 values widened exactly.
pub(super) fn f32_bytes(values: &[f16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_f32().to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_weights_are_transposed_to_k_by_n() {
        // W = [[1, 2, 3], [4, 5, 6]] is [out=2][in=3]; the chip wants [in=3][out=2].
        let mut map = BTreeMap::new();
        map.insert("f".to_string(), LayerWeights { weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], bias: None });
        let shape = Shape { name: "f", k: 3, n: 2, bias: false, gain: 1.0, seed: 0, transpose: true };
        let t = initial(&WeightSource::Given(map), &shape).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<f32> = t.weight.iter().map(|v| v.to_f32()).collect();
        assert_eq!(got, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn drawn_weights_lie_in_the_init_range_and_repeat() {
        let shape = Shape { name: "f", k: 16, n: 8, bias: true, gain: 3.0, seed: 7, transpose: true };
        let a = initial(&WeightSource::Init, &shape).unwrap_or_else(|e| panic!("{e}"));
        let b = initial(&WeightSource::Init, &shape).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, b);
        assert!(a.weight.iter().all(|v| v.to_f32().abs() <= 0.75 + 1e-3));
        assert_eq!(a.bias.map(|b| b.len()), Some(8));
    }
}
