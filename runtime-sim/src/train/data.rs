//! What the trainer feeds the chip: samples of a data set, encoded into the exact bytes of a
//! program's `input` and `target` tensors.
//!
//! The program's layout (the code generator's DRAM symbol table) differs from the encoders'
//! `[B, T, F]` byte form in one way: every `(b, t)` row of spikes starts on a whole byte, so
//! a row of `F` spikes takes `ceil(F / 8)` bytes. [`pack_rows`] makes that form; for `F` a
//! multiple of 8 it is the encoders' own byte form.

use crate::data::encode::{SpikeTensor, f16_bytes, one_hot};
use crate::data::{Batch, DataError, Dataset, EncodedInput, Encoding, SyntheticEvents};

/// A data set and how its samples become chip input.
#[derive(Clone, Debug)]
pub enum TrainData {
    /// Static feature vectors in `[0, 1]`, encoded per batch (rate or direct coding); with
    /// [`Encoding::Spikes`] each row already holds `T x F` frame values.
    Static {
        /// The samples.
        set: Dataset,
        /// The model's input encoding.
        encoding: Encoding,
    },
    /// DVS-style event streams, passed through as spikes.
    Events(SyntheticEvents),
}

impl TrainData {
    /// The data set's name, for the run record.
    pub fn name(&self) -> String {
        match self {
            TrainData::Static { set, .. } => set.name().to_string(),
            TrainData::Events(_) => "synthetic-events".to_string(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            TrainData::Static { set, .. } => set.len(),
            TrainData::Events(e) => e.len(),
        }
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            TrainData::Static { set, .. } => set.classes(),
            TrainData::Events(e) => e.classes(),
        }
    }

    /// Input features per timestep (the model's input size).
    pub fn features(&self, timesteps: usize) -> usize {
        match self {
            TrainData::Static { set, encoding: Encoding::Spikes } if set.features() % timesteps.max(1) == 0 => {
                set.features() / timesteps.max(1)
            }
            TrainData::Static { set, .. } => set.features(),
            TrainData::Events(e) => e.features(),
        }
    }

    /// The labels of a batch's slots, `None` for padding.
    pub fn labels(&self, batch: &Batch) -> Vec<Option<u32>> {
        match self {
            TrainData::Static { set, .. } => set.batch_labels(batch),
            TrainData::Events(e) => e.batch_labels(batch),
        }
    }

    /// The `input` bytes of one batch in the program's layout; `stream` picks the rate
    /// coder's generator stream.
    pub fn input_bytes(&self, batch: &Batch, timesteps: usize, stream: u64) -> Result<Vec<u8>, DataError> {
        let encoded = match self {
            TrainData::Static { set, encoding } => {
                encoding.encode(&set.batch_values(batch), batch.size(), timesteps, stream)?
            }
            TrainData::Events(e) => EncodedInput::Spikes(e.batch(batch)),
        };
        Ok(match encoded {
            EncodedInput::Spikes(s) => pack_rows(&s),
            EncodedInput::Current(v) => f16_bytes(&v),
        })
    }

    /// The `target` bytes of one batch: FP16 one-hot rows, all zero for padding.
    pub fn target_bytes(&self, batch: &Batch) -> Result<Vec<u8>, DataError> {
        Ok(f16_bytes(&one_hot(&self.labels(batch), self.classes())?))
    }
}

/// The spikes `[B, T, F]` with every `(b, t)` row padded to whole bytes.
pub fn pack_rows(s: &SpikeTensor) -> Vec<u8> {
    let [b, t, f] = s.shape();
    if f % 8 == 0 {
        return s.to_bytes();
    }
    let row = f.div_ceil(8);
    let mut out = vec![0u8; b * t * row];
    for bi in 0..b {
        for ti in 0..t {
            let base = (bi * t + ti) * row;
            for fi in (0..f).filter(|&fi| s.get(bi, ti, fi)) {
                out[base + fi / 8] |= 1 << (fi % 8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_odd_width_start_on_whole_bytes() {
        let mut s = SpikeTensor::zeros(1, 2, 3);
        s.set(0, 0, 0, true);
        s.set(0, 1, 2, true);
        assert_eq!(pack_rows(&s), vec![0b001, 0b100]);
    }

    #[test]
    fn rows_of_whole_bytes_are_the_encoder_form() {
        let mut s = SpikeTensor::zeros(2, 1, 8);
        s.set(1, 0, 7, true);
        assert_eq!(pack_rows(&s), s.to_bytes());
    }
}
