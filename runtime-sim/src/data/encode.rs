//! Host-side input encoders and targets, producing the exact bytes the simulator's DRAM gets.
//!
//! # Layouts
//!
//! Inputs are `[B, T, F]` row-major (batch slot, timestep, feature): element `(b, t, f)` is
//! number `(b * T + t) * F + f`. Features are the model input flattened row-major (`[C, H,
//! W]` for images and event frames).
//!
//! - **Spike tensors** ([`SpikeTensor`]) hold one bit per element. Their byte form
//!   ([`SpikeTensor::to_bytes`]) is `ceil(B * T * F / 8)` bytes, element `i` in bit `i % 8`
//!   (least significant first) of byte `i / 8`, with no padding between rows; the last byte's
//!   unused high bits are zero. That is the little-endian byte order of the `u64` words of
//!   [`SpikeBits`] (bit `i % 64` of word `i / 64`), cut to whole bytes, and the layout
//!   `Machine::write_spikes` expects.
//! - **FP16 tensors** (direct-current inputs, one-hot targets) are IEEE binary16 values
//!   rounded to nearest-even from `f32`, two bytes each, little-endian ([`f16_bytes`]).
//! - **Targets** ([`one_hot`]) are `[B, classes]`; a padding slot's row is all zero.
//!
//! # Encoders
//!
//! - [`Bernoulli`] rate coding: value `v` fires at each timestep with probability
//!   `p = max_rate * v` (clamped to `[0, 1]`). One generator,
//!   [`Rng::for_stream(seed, stream)`](Rng::for_stream), draws one number per element in
//!   index order `(b, t, f)`, whatever the value, and the element fires if the draw
//!   ([`Rng::next_f64`]) is `< p`. The caller picks `stream` (for example the global batch
//!   number) so that every batch of a run gets fresh spikes, reproducibly.
//! - [`encode_direct`]: the value times `scale`, the same at every timestep, as FP16.
//! - [`spikes_from_frames`]: event data, already binned into `[B, T, F]` frames, passed
//!   through as bits (non-zero is a spike).

use half::f16;

use super::DataError;
use super::rng::Rng;
use crate::spikes::SpikeBits;

/// A bit-packed `[B, T, F]` spike tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpikeTensor {
    batch: usize,
    timesteps: usize,
    features: usize,
    bits: SpikeBits,
}

impl SpikeTensor {
    /// An all-zero tensor.
    pub fn zeros(batch: usize, timesteps: usize, features: usize) -> SpikeTensor {
        SpikeTensor { batch, timesteps, features, bits: SpikeBits::zeros(batch * timesteps * features) }
    }

    /// The shape `[B, T, F]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.batch, self.timesteps, self.features]
    }

    /// The flat index of element `(b, t, f)`: `(b * T + t) * F + f`.
    pub fn index(&self, b: usize, t: usize, f: usize) -> usize {
        (b * self.timesteps + t) * self.features + f
    }

    /// Element `(b, t, f)`. Panics if out of range, like slice indexing.
    pub fn get(&self, b: usize, t: usize, f: usize) -> bool {
        self.bits.get(self.index(b, t, f))
    }

    /// Sets element `(b, t, f)`. Panics if out of range, like slice indexing.
    pub fn set(&mut self, b: usize, t: usize, f: usize, spike: bool) {
        let i = self.index(b, t, f);
        self.bits.set(i, spike);
    }

    /// The packed bits, `[B, T, F]` row-major.
    pub fn bits(&self) -> &SpikeBits {
        &self.bits
    }

    /// Number of spikes.
    pub fn count_ones(&self) -> usize {
        self.bits.count_ones()
    }

    /// The byte form: `ceil(B*T*F / 8)` bytes, element `i` in bit `i % 8` of byte `i / 8`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.bits.words().iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.truncate(self.bits.len().div_ceil(8));
        bytes
    }

    /// The same spikes time-major, `[T, B, F]`, as the reference harness and kernels index
    /// them.
    pub fn to_time_major(&self) -> SpikeBits {
        let (bs, ts, fs) = (self.batch, self.timesteps, self.features);
        let mut out = SpikeBits::zeros(self.bits.len());
        for i in self.bits.slice(0, self.bits.len()).ones() {
            let (b, t, f) = (i / (ts * fs), (i / fs) % ts, i % fs);
            out.set((t * bs + b) * fs + f, true);
        }
        out
    }
}

/// The feature count of `len` values over `rows` rows, checking the shape.
fn row_width(len: usize, batch: usize, timesteps: usize, rows: usize) -> Result<usize, DataError> {
    if batch == 0 || timesteps == 0 {
        return Err(DataError::invalid("shape", format!("batch {batch} and timesteps {timesteps} must be positive")));
    }
    if len == 0 || len % rows != 0 {
        return Err(DataError::invalid("input", format!("{len} values do not split into {rows} equal rows")));
    }
    Ok(len / rows)
}

/// Bernoulli rate coding (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bernoulli {
    /// The firing probability of a value of 1 per timestep, in `[0, 1]`.
    pub max_rate: f64,
    /// The user's seed.
    pub seed: u64,
}

impl Bernoulli {
    /// A rate coder; `max_rate` must lie in `[0, 1]`.
    pub fn new(max_rate: f64, seed: u64) -> Result<Bernoulli, DataError> {
        if !(0.0..=1.0).contains(&max_rate) {
            return Err(DataError::invalid("max_rate", format!("{max_rate}: a rate is a probability in [0, 1]")));
        }
        Ok(Bernoulli { max_rate, seed })
    }

    /// Encodes `values` (`[B, F]` row-major, in `[0, 1]`) over `timesteps` steps with
    /// generator stream `stream`.
    pub fn encode(
        &self,
        values: &[f32],
        batch: usize,
        timesteps: usize,
        stream: u64,
    ) -> Result<SpikeTensor, DataError> {
        let features = row_width(values.len(), batch, timesteps, batch)?;
        let mut rng = Rng::for_stream(self.seed, stream);
        let mut out = SpikeTensor::zeros(batch, timesteps, features);
        for (b, row) in values.chunks(features).enumerate() {
            for t in 0..timesteps {
                for (f, &v) in row.iter().enumerate() {
                    if rng.bernoulli(self.max_rate * f64::from(v)) {
                        out.set(b, t, f, true);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Direct-current coding: `[B, F]` values become `[B, T, F]` FP16 values `v * scale`
/// (product in `f32`, then rounded to nearest-even binary16), the same at every timestep.
pub fn encode_direct(values: &[f32], batch: usize, timesteps: usize, scale: f32) -> Result<Vec<f16>, DataError> {
    let features = row_width(values.len(), batch, timesteps, batch)?;
    let mut out = Vec::with_capacity(values.len() * timesteps);
    for row in values.chunks(features) {
        for _ in 0..timesteps {
            out.extend(row.iter().map(|&v| f16::from_f32(v * scale)));
        }
    }
    Ok(out)
}

/// Event frames `[B, T, F]` (non-zero is a spike) as a spike tensor.
pub fn spikes_from_frames(frames: &[f32], batch: usize, timesteps: usize) -> Result<SpikeTensor, DataError> {
    let features = row_width(frames.len(), batch, timesteps, batch * timesteps)?;
    let mut out = SpikeTensor::zeros(batch, timesteps, features);
    for (i, &v) in frames.iter().enumerate() {
        if v != 0.0 {
            out.bits.set(i, true);
        }
    }
    Ok(out)
}

/// One-hot targets `[B, classes]` in FP16; `None` (a padding slot) gives an all-zero row.
pub fn one_hot(labels: &[Option<u32>], classes: usize) -> Result<Vec<f16>, DataError> {
    let mut out = vec![f16::ZERO; labels.len() * classes];
    for (b, label) in labels.iter().enumerate() {
        let Some(c) = label.map(|c| c as usize) else { continue };
        if c >= classes {
            return Err(DataError::invalid("label", format!("{c} in batch slot {b}: there are {classes} classes")));
        }
        out[b * classes + c] = f16::ONE;
    }
    Ok(out)
}

/// FP16 values as bytes: two per value, little-endian.
pub fn f16_bytes(values: &[f16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An input encoding, as a model's `input(encoding = ...)` names it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// Bernoulli rate coding.
    Bernoulli(Bernoulli),
    /// Direct current: the value times `scale` at every timestep.
    Direct {
        /// The factor applied to every value.
        scale: f32,
    },
    /// Spikes given as they are: `values` already holds `[B, T, F]` frames.
    Spikes,
}

/// An encoded input batch.
#[derive(Clone, Debug, PartialEq)]
pub enum EncodedInput {
    /// One bit per element, `[B, T, F]`.
    Spikes(SpikeTensor),
    /// FP16 currents, `[B, T, F]`.
    Current(Vec<f16>),
}

impl EncodedInput {
    /// The bytes to write into the program's input tensor (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            EncodedInput::Spikes(s) => s.to_bytes(),
            EncodedInput::Current(v) => f16_bytes(v),
        }
    }
}

impl Encoding {
    /// Encodes a batch: `values` is `[B, F]` for rate and direct coding, `[B, T, F]` for
    /// spikes; `stream` selects the Bernoulli generator stream (ignored otherwise).
    pub fn encode(
        &self,
        values: &[f32],
        batch: usize,
        timesteps: usize,
        stream: u64,
    ) -> Result<EncodedInput, DataError> {
        Ok(match self {
            Encoding::Bernoulli(b) => EncodedInput::Spikes(b.encode(values, batch, timesteps, stream)?),
            Encoding::Direct { scale } => EncodedInput::Current(encode_direct(values, batch, timesteps, *scale)?),
            Encoding::Spikes => EncodedInput::Spikes(spikes_from_frames(values, batch, timesteps)?),
        })
    }
}
