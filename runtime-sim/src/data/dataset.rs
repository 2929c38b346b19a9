//! A labelled data set of static feature vectors (images flattened row-major).
//!
//! Values are stored as `f32` in `[0, 1]` — the scaling rule that brought them there is the
//! loader's business ([`super::csv`]) — row-major `[samples, features]`, labels as class
//! indices below [`Dataset::classes`]. Subsets and batches refer to samples by index, so the
//! split and the batch order never copy the data.

use super::DataError;
use super::split::Batch;

/// A labelled data set of feature vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    name: String,
    feature_names: Vec<String>,
    classes: usize,
    labels: Vec<u32>,
    values: Vec<f32>,
}

impl Dataset {
    /// A data set from its parts: `values` is `[labels.len(), feature_names.len()]`
    /// row-major, every label is below `classes`.
    pub fn new(
        name: impl Into<String>,
        feature_names: Vec<String>,
        classes: usize,
        labels: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Dataset, DataError> {
        let name = name.into();
        if feature_names.is_empty() {
            return Err(DataError::invalid("data set", "it has no features"));
        }
        if values.len() != labels.len() * feature_names.len() {
            let why =
                format!("{} values for {} samples of {} features", values.len(), labels.len(), feature_names.len());
            return Err(DataError::invalid("data set", why));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            // In-memory data has no lines; name the row as a CSV file would hold it.
            let (line, label) = (i + 2, u64::from(labels[i]));
            return Err(DataError::LabelOutOfRange { file: name, line, label, classes });
        }
        Ok(Dataset { name, feature_names, classes, labels, values })
    }

    /// The data set's name (its file, for loaded ones).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample.
    pub fn features(&self) -> usize {
        self.feature_names.len()
    }

    /// The feature names (the CSV header after `label`).
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of classes; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All labels, in sample order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// All values, `[samples, features]` row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The features of sample `i`. Panics if `i` is out of range, like slice indexing.
    pub fn sample(&self, i: usize) -> &[f32] {
        let f = self.features();
        &self.values[i * f..(i + 1) * f]
    }

    /// How many samples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order, as a new data set.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut values = Vec::with_capacity(indices.len() * self.features());
        for &i in indices {
            values.extend_from_slice(self.sample(i));
        }
        Dataset {
            name: self.name.clone(),
            feature_names: self.feature_names.clone(),
            classes: self.classes,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            values,
        }
    }

    /// The batch's features, `[B, features]` row-major, padding slots all zero.
    pub fn batch_values(&self, batch: &Batch) -> Vec<f32> {
        let mut out = vec![0.0; batch.size() * self.features()];
        for (slot, &i) in batch.samples().iter().enumerate() {
            let f = self.features();
            out[slot * f..(slot + 1) * f].copy_from_slice(self.sample(i));
        }
        out
    }

    /// The batch's labels, one per slot, `None` for padding.
    pub fn batch_labels(&self, batch: &Batch) -> Vec<Option<u32>> {
        (0..batch.size()).map(|s| batch.slot(s).map(|i| self.labels[i])).collect()
    }
}
