//! Host-side data for `snnc train`: data sets, splits and batches, and input encoders.
//!
//! The training loop feeds the simulated chip from the host, as a real host would over DMA:
//! it picks the samples of a batch, encodes them into the bytes of the program's input and
//! target tensors, and writes those into DRAM. This module does everything before the write,
//! deterministically — the same seed gives the same bytes on every machine:
//!
//! - [`Dataset`]: labelled feature vectors in `[0, 1]`, loaded from CSV ([`csv`]: format,
//!   scaling rules and errors) or the bundled [`digits`](digits::digits).
//! - [`SyntheticEvents`]: DVS-style event streams of moving shapes,
//!   generated from a seed, for the conv models ([`events`]).
//! - [`split`]: the seeded 80/20 train/test split, per-epoch shuffles and mini-batches
//!   (training drops the last partial batch, evaluation pads it and masks the padding out).
//! - [`encode`]: Bernoulli rate coding, direct current and spike pass-through into `[B, T, F]`
//!   tensors, one-hot targets, and their exact byte layouts.
//! - [`rng`]: the one documented generator (xoshiro256** seeded by splitmix64) behind every
//!   random choice above.

pub mod csv;
mod dataset;
pub mod digits;
pub mod encode;
mod error;
pub mod events;
pub mod rng;
pub mod split;

pub use csv::{CsvOptions, Scale};
pub use dataset::Dataset;
pub use digits::digits;
pub use encode::{Bernoulli, EncodedInput, Encoding, SpikeTensor};
pub use error::DataError;
pub use events::{EventConfig, SyntheticEvents};
pub use split::{Batch, Remainder, Split};
