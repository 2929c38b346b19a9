//! The JSON run record of `snnc train` (format `snnc-run/1`).
//!
//! One file per run says what was trained on what, and what each epoch achieved and cost, so
//! that runs can be compared and plotted by tools. The loop rewrites it after every epoch
//! (with [`RunRecord::summary`] absent), so an interrupted or crashed run keeps its history;
//! [`RunRecord::finish`] adds the summary at the end. Field by field:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `format` | string | always `"snnc-run/1"`; readers reject other values |
//! | `model` | string | the model's name (`model NAME { ... }`) |
//! | `chip.name`, `chip.hash` | string | the chip description's name and content hash |
//! | `dataset.name` | string | the data set (`digits.csv`, a CSV path, `synthetic-events`) |
//! | `dataset.train_samples`, `dataset.test_samples` | integer | sizes of the split |
//! | `seed` | integer | the run's seed (split, shuffles, encoders) |
//! | `epochs` | integer | epochs requested |
//! | `batch`, `timesteps` | integer | the model's `B` and `T` |
//! | `resumed_from` | string or null | the weights file the run started from |
//! | `history[]` | array | one entry per completed epoch, in order: |
//! | `.epoch` | integer | 1-based epoch number |
//! | `.train_loss` | number | mean loss over the epoch's training batches |
//! | `.train_accuracy`, `.test_accuracy` | number | fraction of samples classified right, in `[0, 1]` |
//! | `.cycles` | integer | simulated chip cycles of the epoch (training and evaluation) |
//! | `.energy_pj` | number | simulated energy of the epoch, picojoules |
//! | `.dram_bytes` | integer | simulated DRAM bytes read and written in the epoch |
//! | `.wall_seconds` | number | host wall-clock time of the epoch |
//! | `summary` | object or null | absent until the run ends: |
//! | `.epochs_completed` | integer | length of `history` |
//! | `.interrupted` | bool | whether Ctrl-C stopped the run early |
//! | `.final_train_loss`, `.final_train_accuracy`, `.final_test_accuracy` | number | the last epoch's values |
//! | `.best_test_accuracy`, `.best_epoch` | number, integer | the best epoch (the first, on ties) |
//! | `.total_cycles`, `.total_energy_pj`, `.total_dram_bytes`, `.total_wall_seconds` | | sums over `history` |
//!
//! Numbers that are not finite (a diverged loss) are written as `null` and read back as NaN.
//! A summary of a run without a completed epoch has NaN finals and `best_epoch` 0.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::RecordError;
use super::file::{read, write_atomic};

/// The format tag of run records.
pub const RUN_FORMAT: &str = "snnc-run/1";

/// Reads a number that may be `null` (how serde_json writes NaN and infinities) as NaN.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The chip a run simulated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChipId {
    /// The chip description's name.
    pub name: String,
    /// A hash of the chip description's content.
    pub hash: String,
}

/// The data a run trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The data set's name.
    pub name: String,
    /// Training samples.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
}

/// What one epoch achieved and cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Mean training loss.
    #[serde(deserialize_with = "nullable")]
    pub train_loss: f64,
    /// Training accuracy in `[0, 1]`.
    #[serde(deserialize_with = "nullable")]
    pub train_accuracy: f64,
    /// Test accuracy in `[0, 1]`.
    #[serde(deserialize_with = "nullable")]
    pub test_accuracy: f64,
    /// Simulated cycles.
    pub cycles: u64,
    /// Simulated energy, picojoules.
    #[serde(deserialize_with = "nullable")]
    pub energy_pj: f64,
    /// Simulated DRAM bytes, read and written.
    pub dram_bytes: u64,
    /// Host wall-clock seconds.
    #[serde(deserialize_with = "nullable")]
    pub wall_seconds: f64,
}

/// The run's outcome, filled in by [`RunRecord::finish`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Completed epochs.
    pub epochs_completed: u32,
    /// Whether Ctrl-C stopped the run.
    pub interrupted: bool,
    /// The last epoch's training loss.
    #[serde(deserialize_with = "nullable")]
    pub final_train_loss: f64,
    /// The last epoch's training accuracy.
    #[serde(deserialize_with = "nullable")]
    pub final_train_accuracy: f64,
    /// The last epoch's test accuracy.
    #[serde(deserialize_with = "nullable")]
    pub final_test_accuracy: f64,
    /// The best test accuracy.
    #[serde(deserialize_with = "nullable")]
    pub best_test_accuracy: f64,
    /// The epoch that reached it (the first such), 0 if none.
    pub best_epoch: u32,
    /// Total simulated cycles.
    pub total_cycles: u64,
    /// Total simulated energy, picojoules.
    #[serde(deserialize_with = "nullable")]
    pub total_energy_pj: f64,
    /// Total simulated DRAM bytes.
    pub total_dram_bytes: u64,
    /// Total host wall-clock seconds.
    #[serde(deserialize_with = "nullable")]
    pub total_wall_seconds: f64,
}

/// A run record (see the [module documentation](self) for every field).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Always [`RUN_FORMAT`].
    pub format: String,
    /// The model's name.
    pub model: String,
    /// The simulated chip.
    pub chip: ChipId,
    /// The data.
    pub dataset: DatasetInfo,
    /// The run's seed.
    pub seed: u64,
    /// Epochs requested.
    pub epochs: u32,
    /// Batch size `B`.
    pub batch: usize,
    /// Timesteps `T`.
    pub timesteps: usize,
    /// The weights file the run resumed from.
    pub resumed_from: Option<String>,
    /// Completed epochs, in order.
    pub history: Vec<EpochRecord>,
    /// The outcome, once the run has ended.
    pub summary: Option<Summary>,
}

impl RunRecord {
    /// An empty record of a run about to start.
    pub fn new(model: impl Into<String>, chip: ChipId, dataset: DatasetInfo, seed: u64, epochs: u32) -> RunRecord {
        RunRecord {
            format: RUN_FORMAT.to_string(),
            model: model.into(),
            chip,
            dataset,
            seed,
            epochs,
            batch: 0,
            timesteps: 0,
            resumed_from: None,
            history: Vec::new(),
            summary: None,
        }
    }

    /// Appends a completed epoch.
    pub fn push_epoch(&mut self, epoch: EpochRecord) {
        self.history.push(epoch);
    }

    /// Computes the summary from the history; `interrupted` says whether Ctrl-C ended it.
    pub fn finish(&mut self, interrupted: bool) {
        let h = &self.history;
        let last = h.last();
        let pick = |f: fn(&EpochRecord) -> f64| last.map_or(f64::NAN, f);
        // The first epoch with the highest accuracy; a NaN accuracy never compares greater.
        let mut best: Option<&EpochRecord> = None;
        for e in h {
            if e.test_accuracy > best.map_or(f64::NEG_INFINITY, |b| b.test_accuracy) {
                best = Some(e);
            }
        }
        self.summary = Some(Summary {
            epochs_completed: h.len() as u32,
            interrupted,
            final_train_loss: pick(|e| e.train_loss),
            final_train_accuracy: pick(|e| e.train_accuracy),
            final_test_accuracy: pick(|e| e.test_accuracy),
            best_test_accuracy: best.map_or(f64::NAN, |e| e.test_accuracy),
            best_epoch: best.map_or(0, |e| e.epoch),
            total_cycles: h.iter().map(|e| e.cycles).sum(),
            total_energy_pj: h.iter().map(|e| e.energy_pj).sum(),
            total_dram_bytes: h.iter().map(|e| e.dram_bytes).sum(),
            total_wall_seconds: h.iter().map(|e| e.wall_seconds).sum(),
        });
    }

    /// The record as pretty-printed JSON (fields in declaration order), newline-terminated.
    pub fn to_json(&self) -> String {
        // Plain structs of strings and numbers always serialise.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a record, checking its format tag; `origin` names the text in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<RunRecord, RecordError> {
        let record: RunRecord =
            serde_json::from_str(text).map_err(|source| RecordError::Json { origin: origin.to_string(), source })?;
        if record.format != RUN_FORMAT {
            let why = format!("run record format `{}` is not supported; this snnc reads `{RUN_FORMAT}`", record.format);
            return Err(RecordError::content(origin, why));
        }
        Ok(record)
    }

    /// Writes the record to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), RecordError> {
        write_atomic(path.as_ref(), self.to_json().as_bytes())
    }

    /// Reads a record written by [`RunRecord::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<RunRecord, RecordError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = read(path)?;
        let text = String::from_utf8(bytes).map_err(|_| RecordError::content(&origin, "the file is not UTF-8 text"))?;
        RunRecord::from_json(&text, &origin)
    }
}
