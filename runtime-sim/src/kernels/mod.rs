//! Engine datapath kernels.
//!
//! Each kernel is the semantics of one engine operation over slices or tiles, independent of
//! any instruction encoding; the simulator's instruction handlers call them. They are generic
//! over the storage type ([`crate::fp::Storage`]) and take the accumulator width
//! ([`crate::fp::Accum`]) as a parameter. Kernels that can skip work (zero spikes, zero errors)
//! count the operations they performed and skipped in an [`OpCount`], so the simulator can
//! report executed against skipped work from the real data.
//!
//! Layout conventions: tensors are row-major; a "row" is one (timestep, sample) pair of a
//! time-major `[T,B,…]` tensor; images are `[C,H,W]` per row (NCHW); fc weights are
//! `[out,in]`, conv weights `[cout,cin,kh,kw]`.
//!
//! - [`accumulate`]: fc and conv forward (spike-driven or dense input), bias add.
//! - [`pool`]: average and max pooling on spike maps, forward and backward.
//! - [`soma`]: LIF and readout forward, surrogate derivatives.
//! - [`loss`]: output rate / mean membrane, loss value and output gradient.
//! - `conv_counts`: the operation counts of the conv kernels, from their inputs alone.
//! - `conv_forward`: the stride-1 conv forward (padded planes, or row by row).
//! - `conv_input_grad`: the fast path of conv error propagation (register blocks).
//! - `conv_weight_grad`: the fast path of the conv weight gradient (register blocks).
//! - `correlate`: multi-channel correlation over padded planes, for the two above.
//! - `lanes`: blocks of eight-lane accumulators, shared by the fast conv kernels.
//! - [`grad`]: gradient soma (reverse time), error propagation, weight and bias gradients.
//! - `par`: splitting a large instruction's independent outputs over host threads.
//! - [`update`]: SGD, SGD with momentum, Adam (FP32 master weights).
//! - [`tile`]: fc forward, error propagation and weight gradient in the ISA's `k x n`
//!   weight layout, with the engine's skip decisions.
//! - [`tile_rows`]: the same three for every row of a multi-row instruction in one pass.
//!
//! The modules in plain code type above are private to the crate: operation counts and the
//! fast paths the public kernels dispatch to.

pub mod accumulate;
#[cfg(test)]
mod conv_cases;
pub(crate) mod conv_counts;
mod conv_forward;
mod conv_input_grad;
mod conv_weight_grad;
mod correlate;
#[cfg(test)]
mod general_tests;
pub mod grad;
mod lanes;
pub mod loss;
mod par;
pub mod pool;
pub mod soma;
pub mod tile;
pub mod tile_rows;
pub mod update;

pub(crate) use conv_weight_grad::ErrorCache;
pub(crate) use lanes::ConvScratch;

use crate::fp::Storage;
use crate::spikes::SpikeSlice;

/// Executed and skipped operations of a kernel call, accumulated across calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCount {
    /// Operations the datapath performed (adds, or multiply-adds).
    pub executed: u64,
    /// Operations skipped because an operand (spike, activation or error) was zero.
    pub skipped: u64,
}

impl OpCount {
    /// Adds another count to this one.
    pub fn merge(&mut self, other: OpCount) {
        self.executed += other.executed;
        self.skipped += other.skipped;
    }

    /// All operations the dense computation would have needed.
    pub fn total(&self) -> u64 {
        self.executed + self.skipped
    }

    /// The count of an instruction that skips nothing (`skip=false`): all executed.
    pub fn unskipped(&self) -> OpCount {
        OpCount { executed: self.total(), skipped: 0 }
    }
}

/// The input operand of an accumulate kernel: 1-bit spikes, or multi-bit values (direct
/// current into the first layer, average-pooled spike maps).
#[derive(Clone, Copy, Debug)]
pub enum Input<'a, S> {
    /// Spikes: a set bit selects the weight (mux + add), a zero bit is skipped.
    Spikes(SpikeSlice<'a>),
    /// Values: a non-zero value is multiplied with the weight, a zero value is skipped.
    Dense(&'a [S]),
}

impl<S: Storage> Input<'_, S> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Input::Spikes(s) => s.len(),
            Input::Dense(d) => d.len(),
        }
    }

    /// Whether the input has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` if it is non-zero (a spike reads as 1.0), `None` if the work it would
    /// cause can be skipped.
    #[inline]
    pub fn nonzero(&self, i: usize) -> Option<f32> {
        match self {
            Input::Spikes(s) => s.get(i).then_some(1.0),
            Input::Dense(d) => {
                let v = d[i].to_f32();
                (v != 0.0).then_some(v)
            }
        }
    }

    /// Calls `f(i, value)` for every non-zero element in increasing `i`, and returns how many
    /// there were. Spikes are visited through their set bits only.
    #[inline]
    pub fn for_each_nonzero(&self, mut f: impl FnMut(usize, f32)) -> usize {
        let mut n = 0;
        match self {
            Input::Spikes(s) => {
                for i in s.ones() {
                    f(i, 1.0);
                    n += 1;
                }
            }
            Input::Dense(d) => {
                for (i, v) in d.iter().enumerate() {
                    let v = v.to_f32();
                    if v != 0.0 {
                        f(i, v);
                        n += 1;
                    }
                }
            }
        }
        n
    }
}
