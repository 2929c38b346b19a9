//! The loop-nest model of one engine working on one core's share of a unit.
//!
//! All three engines compute over three operands: a weight-shaped one `W` (K x C x taps),
//! an output-neuron one `O` (K x P) and an input-neuron one `I` (C x P), where K are the
//! core's output channels, C the input channels and P the output positions of one pass
//! (height x width x batched timesteps). The dataflow says which operand stays in the PE
//! array; the tile (tk, tc, tp) is what the engine's small buffers hold at once. The
//! stationary operand is read from its backing store once per pass; a streamed operand is
//! read once per tile of the dimension it does not span:
//!
//! | dataflow | W reads | I reads | O reads + writes | rows x cols of the array |
//! |---|---|---|---|---|
//! | weight-stationary | K·C·taps | C·P·⌈K/tk⌉ | K·P·⌈C/tc⌉ | (tc·taps) x tk |
//! | output-stationary | K·C·taps·⌈P/tp⌉ | C·P·⌈K/tk⌉ | K·P | tp x tk |
//! | input-stationary | K·C·taps·⌈P/tp⌉ | C·P | K·P·⌈C/tc⌉ | (tc·taps) x tp |
//!
//! Zero spikes and zero errors are skipped: a sparse operand that streams past the array
//! saves cycles and energy; one that is held in the array saves energy only (its PEs idle).

use super::{Dataflow, Tile};

/// Sizes and constraints of one nest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nest {
    /// Output channels on this core.
    pub k: u32,
    /// Input channels.
    pub c: u32,
    /// Kernel taps per input channel.
    pub taps: u32,
    /// Output positions per pass.
    pub p: u32,
    /// Dense accumulates per pass (synapses, padding excluded).
    pub dense_ops: f64,
    /// Bits per element of W, I, O.
    pub bits: [u32; 3],
    /// Capacity in bits of the small buffers holding the W, I and O tiles.
    pub caps: [u64; 3],
    /// Density of I and O values (1.0 for dense operands).
    pub density: [f64; 2],
    /// PE array rows and columns.
    pub array: (u32, u32),
}

/// What one dataflow and tile cost per pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NestCost {
    /// The dataflow.
    pub dataflow: Dataflow,
    /// The tile.
    pub tile: Tile,
    /// Compute cycles per pass.
    pub cycles: f64,
    /// Fraction of PEs doing useful work.
    pub utilisation: f64,
    /// Bits moved between the backing stores and the small buffers per pass: W, I, O.
    pub traffic: [f64; 3],
    /// Accumulates actually performed (sparsity skipped) per pass.
    pub ops: f64,
    /// Bits the tile occupies in the W, I and O buffers.
    pub occupancy: [u64; 3],
}

fn ceil_div(a: u32, b: u32) -> u32 {
    a.div_ceil(b.max(1))
}

/// Fraction of `n` lanes used when `x` items are spread over passes of `n`.
fn fill(x: u32, n: u32) -> f64 {
    let lanes = f64::from(ceil_div(x, n).max(1)) * f64::from(n.max(1));
    f64::from(x) / lanes
}

impl Nest {
    /// The cost of `dataflow` with `tile`, or `None` if the tile does not fit the buffers.
    pub fn cost(&self, dataflow: Dataflow, tile: Tile) -> Option<NestCost> {
        let (tk, tc, tp) = (tile.out_ch, tile.in_ch, tile.spatial);
        let occupancy = [
            u64::from(tk) * u64::from(tc) * u64::from(self.taps) * u64::from(self.bits[0]),
            u64::from(tc) * u64::from(tp) * u64::from(self.bits[1]),
            u64::from(tk) * u64::from(tp) * u64::from(self.bits[2]),
        ];
        if occupancy.iter().zip(self.caps).any(|(o, c)| *o > c) {
            return None;
        }
        let (k, c, p) = (f64::from(self.k), f64::from(self.c), f64::from(self.p));
        let (nk, nc, np) =
            (f64::from(ceil_div(self.k, tk)), f64::from(ceil_div(self.c, tc)), f64::from(ceil_div(self.p, tp)));
        let w = k * c * f64::from(self.taps);
        let (rows, cols) = self.array;
        let red = tc * self.taps;
        let (reads, util, held) = match dataflow {
            Dataflow::WeightStationary => ([w, c * p * nk, k * p * nc], fill(red, rows) * fill(tk, cols), None),
            Dataflow::OutputStationary => ([w * np, c * p * nk, k * p], fill(tp, rows) * fill(tk, cols), Some(1)),
            Dataflow::InputStationary => ([w * np, c * p, k * p * nc], fill(red, rows) * fill(tp, cols), Some(0)),
        };
        let [di, dout] = self.density;
        // Cycles skip the zeros of streamed sparse operands only; energy skips all of them.
        let streamed = match held {
            Some(0) => dout,
            Some(_) => di,
            None => di * dout,
        };
        let pes = f64::from(rows) * f64::from(cols);
        let cycles = self.dense_ops * streamed / (pes * util.max(1e-9));
        let traffic = [
            reads[0] * f64::from(self.bits[0]),
            reads[1] * f64::from(self.bits[1]),
            reads[2] * f64::from(self.bits[2]),
        ];
        Some(NestCost {
            dataflow,
            tile,
            cycles,
            utilisation: util,
            traffic,
            ops: self.dense_ops * di * dout,
            occupancy,
        })
    }

    /// Candidate tiles: powers of two (and the full size) per dimension, with the
    /// positions dimension as large as the buffers allow.
    pub fn tiles(&self) -> Vec<Tile> {
        let mut out = Vec::new();
        for tk in steps(self.k, 256) {
            for tc in steps(self.c, 1024) {
                if let Some(tp) = self.largest_positions(tk, tc) {
                    out.push(Tile { out_ch: tk, in_ch: tc, spatial: tp });
                }
            }
        }
        out
    }

    fn largest_positions(&self, tk: u32, tc: u32) -> Option<u32> {
        let w = u64::from(tk) * u64::from(tc) * u64::from(self.taps) * u64::from(self.bits[0]);
        if w > self.caps[0] {
            return None;
        }
        let by_i = self.caps[1] / (u64::from(tc) * u64::from(self.bits[1])).max(1);
        let by_o = self.caps[2] / (u64::from(tk) * u64::from(self.bits[2])).max(1);
        let tp = by_i.min(by_o).min(u64::from(self.p));
        (tp >= 1).then(|| u32::try_from(tp).unwrap_or(u32::MAX))
    }

    /// The best dataflow and tile by `score` (lower is better), over all candidates.
    pub fn best(&self, score: impl Fn(&NestCost) -> f64) -> Option<NestCost> {
        let mut best: Option<(f64, NestCost)> = None;
        for tile in self.tiles() {
            for df in Dataflow::ALL {
                if let Some(c) = self.cost(df, tile) {
                    let s = score(&c);
                    if best.as_ref().is_none_or(|(b, _)| s < *b) {
                        best = Some((s, c));
                    }
                }
            }
        }
        best.map(|(_, c)| c)
    }
}

/// 1, 2, 4, ... below `n` (capped at `cap`), then `n` itself if it is within the cap.
fn steps(n: u32, cap: u32) -> Vec<u32> {
    let top = n.min(cap).max(1);
    let mut v: Vec<u32> = std::iter::successors(Some(1u32), |x| x.checked_mul(2)).take_while(|x| *x < top).collect();
    v.push(top);
    // Largest first, so that among equally good tiles the search keeps the biggest.
    v.reverse();
    v
}
