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

    /// Square single-channel images (`side x side` features) resized by nearest neighbour to
    /// `[channels, height, width]`, the same picture in every channel: the bundled 8x8
    /// digits become inputs of an image model such as a CIFAR-sized `[3, 32, 32]` VGG.
    pub fn resized(&self, channels: usize, height: usize, width: usize) -> Result<Dataset, DataError> {
        let side = (1..=self.features()).find(|s| s * s >= self.features()).unwrap_or(1);
        if side * side != self.features() || channels * height * width == 0 {
            let why =
                format!("{} features are not a square image to resize to {channels}x{height}x{width}", self.features());
            return Err(DataError::invalid("data set", why));
        }
        let plane: Vec<usize> =
            (0..height * width).map(|p| (p / width) * side / height * side + (p % width) * side / width).collect();
        let mut values = Vec::with_capacity(self.len() * channels * plane.len());
        for i in 0..self.len() {
            let img = self.sample(i);
            for _ in 0..channels {
                values.extend(plane.iter().map(|&q| img[q]));
            }
        }
        let names = (0..channels * height * width).map(|f| format!("p{f}")).collect();
        Dataset::new(
            format!("{} ({channels}x{height}x{width})", self.name),
            names,
            self.classes,
            self.labels.clone(),
            values,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_resize_by_nearest_neighbour_into_every_channel() {
        let names = (0..4).map(|f| format!("f{f}")).collect();
        let set = Dataset::new("t", names, 2, vec![1], vec![0.1, 0.2, 0.3, 0.4]).unwrap_or_else(|e| panic!("{e}"));
        let big = set.resized(2, 4, 4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(big.features(), 32);
        let (row0, row3) = ([0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4]);
        for c in 0..2 {
            assert_eq!(&big.sample(0)[c * 16..c * 16 + 4], &row0);
            assert_eq!(&big.sample(0)[c * 16 + 12..c * 16 + 16], &row3);
        }
        assert_eq!(big.labels(), &[1]);
    }

    #[test]
    fn only_square_images_resize() {
        let names = (0..3).map(|f| format!("f{f}")).collect();
        let set = Dataset::new("t", names, 2, vec![0], vec![0.0; 3]).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.resized(1, 4, 4).is_err());
    }
}
