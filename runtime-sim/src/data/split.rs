//! Train/test splits and mini-batches, by sample index.
//!
//! - [`Split::new`] shuffles `0..n` with [`Rng::new(seed)`](Rng::new) and takes the first
//!   `round(n * test_fraction)` indices of the shuffled order as the test set and the rest
//!   as the training set; both are then sorted, so a split is a pure function of
//!   `(n, test_fraction, seed)`. [`Split::train_test`] is the 80/20 split `snnc train` uses.
//! - [`epoch_order`] reshuffles the training indices for each epoch with
//!   [`Rng::for_stream(seed, epoch)`](Rng::for_stream).
//! - [`batches`] cuts an order into batches of `B` slots. The last partial batch is either
//!   dropped ([`Remainder::Drop`], for training: every step then sees a full batch and the
//!   loss keeps one scale) or padded ([`Remainder::Pad`], for evaluation: every test sample is
//!   counted once). Padding slots hold no sample: their inputs and targets are all zero and
//!   [`Batch::mask`] marks them so accuracy and loss can leave them out. They still cost
//!   simulated cycles, as they would on the chip.

use super::rng::Rng;

/// A disjoint partition of the sample indices `0..n` into training and test indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Training sample indices, ascending.
    pub train: Vec<usize>,
    /// Test sample indices, ascending.
    pub test: Vec<usize>,
}

impl Split {
    /// The shuffled split of `0..n` holding `round(n * test_fraction)` test samples
    /// (`test_fraction` is clamped to `[0, 1]`).
    pub fn new(n: usize, test_fraction: f64, seed: u64) -> Split {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed).shuffle(&mut order);
        let n_test = ((n as f64) * test_fraction.clamp(0.0, 1.0)).round() as usize;
        let mut test = order[..n_test].to_vec();
        let mut train = order[n_test..].to_vec();
        test.sort_unstable();
        train.sort_unstable();
        Split { train, test }
    }

    /// The 80/20 split: 20% of the samples (rounded) for testing.
    pub fn train_test(n: usize, seed: u64) -> Split {
        Split::new(n, 0.2, seed)
    }
}

/// The order of the training samples in epoch `epoch`: `train` shuffled with stream `epoch`
/// of `seed`.
pub fn epoch_order(train: &[usize], seed: u64, epoch: u64) -> Vec<usize> {
    let mut order = train.to_vec();
    Rng::for_stream(seed, epoch).shuffle(&mut order);
    order
}

/// What to do with a last batch that has fewer than `B` samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remainder {
    /// Leave those samples out (training).
    Drop,
    /// Fill the batch with padding slots (evaluation).
    Pad,
}

/// One mini-batch: up to `size` sample indices, then padding slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    samples: Vec<usize>,
    size: usize,
}

impl Batch {
    /// A batch of `size` slots holding `samples` first; the rest is padding. `samples` longer
    /// than `size` is cut to `size`.
    pub fn new(mut samples: Vec<usize>, size: usize) -> Batch {
        samples.truncate(size);
        Batch { samples, size }
    }

    /// The sample indices of the real (non-padding) slots.
    pub fn samples(&self) -> &[usize] {
        &self.samples
    }

    /// The batch size `B` the program is compiled for, padding included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of real samples.
    pub fn valid(&self) -> usize {
        self.samples.len()
    }

    /// The sample in slot `s`, `None` for padding.
    pub fn slot(&self, s: usize) -> Option<usize> {
        self.samples.get(s).copied()
    }

    /// One flag per slot: true for a real sample, false for padding.
    pub fn mask(&self) -> Vec<bool> {
        (0..self.size).map(|s| s < self.samples.len()).collect()
    }
}

/// Cuts `order` into batches of `size` slots. `size == 0` gives no batch.
pub fn batches(order: &[usize], size: usize, remainder: Remainder) -> Vec<Batch> {
    if size == 0 {
        return Vec::new();
    }
    order
        .chunks(size)
        .filter(|c| c.len() == size || remainder == Remainder::Pad)
        .map(|c| Batch::new(c.to_vec(), size))
        .collect()
}
