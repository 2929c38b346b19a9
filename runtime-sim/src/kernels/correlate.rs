//! Multi-channel correlation over zero-padded planes, with blocks of outputs in registers.
//!
//! The stride-1 conv kernels of the forward pass and of error propagation both compute sums
//! `out[c, q] = Σ_t src[off_t + q] · wt[t, c]`: every channel `c` and flattened position
//! `q` (a plane whose rows are as long as the padded source rows) takes the same terms `t`
//! in the same fixed order, each a source value at a fixed offset from `q` times a weight
//! of that term and channel. A block of up to [`GROUP`] channels by [`MAX_NV`] vectors of
//! eight positions stays in vector registers while every term is added. Each term loads
//! its source vectors once for the whole group of channels, so a block does two
//! multiply-adds per load where a block of one channel did one.
//!
//! Every lane of a block sees exactly the operations of [`super::lanes::mac`], one term
//! after another, so each output is the sum the direct loop computes. The blocks write a
//! channel-interleaved layout, `[vector][channel][lane]`, in which a run of vectors is one
//! contiguous piece: a large instruction splits its vectors over rayon's pool (see
//! [`super::par`]), and an output's bits do not depend on which thread computed it.

use super::lanes::{LANES, mac};
use super::par::{self, map_pieces, piece_len, pieces};
use crate::fp::{Accum, Storage};

/// The most channels a block holds.
pub(crate) const GROUP: usize = 4;

/// The most vectors of positions a block holds: with [`GROUP`] channels that is twelve
/// accumulator vectors, which leaves the sixteen AVX2 registers room for the source
/// vectors and the broadcast weight.
pub(crate) const MAX_NV: usize = 3;

/// Multiply-adds below which a correlation stays on the calling thread even where
/// [`worth_splitting`] would split it. Measured on the 2-core test machine, a conv of up to
/// 1.4 million multiply-adds (about 60 µs) ran slower split than on one thread: the
/// simulator's thread is not one of the pool's, so a split wakes two threads and waits.
pub(crate) const MIN_SPLIT_WORK: usize = 1 << 21;

/// Whether a correlation of `work` multiply-adds should be split over the pool.
pub(crate) fn worth_splitting(work: usize) -> bool {
    work >= MIN_SPLIT_WORK && par::worth_splitting(work)
}

/// One correlation: the sources, the terms and the size of the output.
pub(crate) struct Correlation<'a> {
    /// Source values; `off_t + q` lies inside for every term and every `q < 8·vectors`.
    pub(crate) src: &'a [f32],
    /// The offset of each term's source from the output position, in summation order.
    pub(crate) offsets: &'a [usize],
    /// The weights `[term][channel]`.
    pub(crate) weights: &'a [f32],
    /// Output channels.
    pub(crate) channels: usize,
    /// Vectors of eight output positions per channel.
    pub(crate) vectors: usize,
    /// The length of a row of positions: pieces start at a row, so no row is cut.
    pub(crate) row: usize,
}

/// Where [`correlate`] put the outputs: pieces of `piece` consecutive positions (the last
/// may be shorter), each holding its positions of every channel, channel after channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    piece: usize,
    positions: usize,
    channels: usize,
}

impl Layout {
    /// Where the outputs of channel `c` from position `q` on lie, up to the end of the row
    /// that holds `q`. The kernels walk the rows instead ([`Layout::row_starts`]); the
    /// tests read single outputs.
    #[cfg(test)]
    pub(crate) fn at(&self, c: usize, q: usize) -> usize {
        let (p, local) = (q / self.piece, q % self.piece);
        let start = p * self.piece;
        let len = self.piece.min(self.positions - start);
        start * self.channels + c * len + local
    }

    /// Where the outputs of channel `c` lie from positions `0, row, 2·row, …` on, `rows`
    /// of them, each up to the end of its row: the pieces are walked along, with no
    /// division per row. `row` is the row length the pieces are aligned to
    /// ([`Correlation::row`]).
    pub(crate) fn row_starts(&self, c: usize, row: usize, rows: usize) -> impl Iterator<Item = usize> {
        let (piece, positions, channels) = (self.piece, self.positions, self.channels);
        let (mut start, mut len, mut q) = (0usize, piece.min(positions), 0usize);
        (0..rows).map(move |_| {
            while q >= start + len {
                start += piece;
                len = piece.min(positions - start);
            }
            let at = start * channels + c * len + (q - start);
            q += row;
            at
        })
    }
}

/// `src`, a matrix of `rows` rows one after another, widened and transposed into `dst`
/// (resized to fit): element (r, c) at `c·rows + r`, which turns weights stored
/// channel-major into the `[term][channel]` order of [`Correlation::weights`]. The values
/// are widened in their own order first, many at a time (into `wide`), so that the
/// transposition moves f32 values and writes `dst` in order: a scatter of one converted
/// value at a time cost several times as much.
pub(crate) fn transpose_widened<'a, S: Storage>(
    src: &[S],
    rows: usize,
    wide: &mut Vec<f32>,
    dst: &'a mut Vec<f32>,
) -> &'a [f32] {
    let (n, cols) = (src.len(), src.len() / rows.max(1));
    wide.resize(n, 0.0);
    S::to_f32_slice(src, &mut wide[..n]);
    dst.resize(n, 0.0);
    for (c, column) in dst[..rows * cols].chunks_exact_mut(rows.max(1)).enumerate() {
        for (r, d) in column.iter_mut().enumerate() {
            *d = wide[r * cols + c];
        }
    }
    &dst[..n]
}

/// Computes every output of `k` into `out` (resized to fit), the vectors split over the
/// pool in whole rows when `parallel`; returns where the outputs lie.
pub(crate) fn correlate<S: Storage>(mode: Accum, k: &Correlation, out: &mut Vec<f32>, parallel: bool) -> Layout {
    let positions = k.vectors * LANES;
    let len = positions * k.channels;
    if out.len() < len {
        out.resize(len, 0.0);
    }
    // Pieces are whole vectors and whole rows; on one thread, one piece.
    let align = lcm(k.row.max(1), LANES);
    let piece = if parallel { piece_len(positions, pieces(), align).min(positions) } else { positions };
    let layout = Layout { piece: piece.max(1), positions, channels: k.channels };
    map_pieces(&mut out[..len], layout.piece * k.channels, parallel, |start, piece| match mode {
        Accum::F32 => run::<S, false>(k, start / k.channels.max(1) / LANES, piece),
        Accum::Storage => run::<S, true>(k, start / k.channels.max(1) / LANES, piece),
    });
    layout
}

/// The least common multiple of `a` and `b`.
fn lcm(a: usize, b: usize) -> usize {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x.max(1) * b
}

/// The outputs of the vectors from `v0` on that the piece `out` holds, block by block:
/// vectors in the outer loop, so the source rows they read stay in the cache for every
/// group of channels.
fn run<S: Storage, const NARROW: bool>(k: &Correlation, v0: usize, out: &mut [f32]) {
    let n = out.len() / (k.channels * LANES).max(1);
    let mut v = 0;
    while v < n {
        let nv = (n - v).min(MAX_NV);
        let mut c = 0;
        while c < k.channels {
            let g = (k.channels - c).min(GROUP);
            block_of::<S, NARROW>((g, nv), k, (v0 + v, c), &mut out[c * n * LANES + v * LANES..], n * LANES);
            c += g;
        }
        v += nv;
    }
}

/// Calls [`block`] with `g` channels and `nv` vectors as const parameters.
fn block_of<S: Storage, const NARROW: bool>(
    (g, nv): (usize, usize),
    k: &Correlation,
    (v, c): (usize, usize),
    out: &mut [f32],
    stride: usize,
) {
    match (g, nv) {
        (1, 1) => block::<S, NARROW, 1, 1>(k, v, c, out, stride),
        (1, 2) => block::<S, NARROW, 1, 2>(k, v, c, out, stride),
        (1, _) => block::<S, NARROW, 1, 3>(k, v, c, out, stride),
        (2, 1) => block::<S, NARROW, 2, 1>(k, v, c, out, stride),
        (2, 2) => block::<S, NARROW, 2, 2>(k, v, c, out, stride),
        (2, _) => block::<S, NARROW, 2, 3>(k, v, c, out, stride),
        (3, 1) => block::<S, NARROW, 3, 1>(k, v, c, out, stride),
        (3, 2) => block::<S, NARROW, 3, 2>(k, v, c, out, stride),
        (3, _) => block::<S, NARROW, 3, 3>(k, v, c, out, stride),
        (_, 1) => block::<S, NARROW, 4, 1>(k, v, c, out, stride),
        (_, 2) => block::<S, NARROW, 4, 2>(k, v, c, out, stride),
        (_, _) => block::<S, NARROW, 4, 3>(k, v, c, out, stride),
    }
}

/// The `G` channels from `c0` of the `NV` vectors from vector `v`, into `out`: the
/// vectors of channel `c0` from `v` on, those of each next channel `stride` further.
#[allow(clippy::needless_range_loop)]
fn block<S: Storage, const NARROW: bool, const G: usize, const NV: usize>(
    k: &Correlation,
    v: usize,
    c0: usize,
    out: &mut [f32],
    stride: usize,
) {
    let mut acc = [[[0.0f32; LANES]; NV]; G];
    let q0 = v * LANES;
    for (t, &off) in k.offsets.iter().enumerate() {
        let src = &k.src[off + q0..][..NV * LANES];
        let w = &k.weights[t * k.channels + c0..][..G];
        for g in 0..G {
            for n in 0..NV {
                for l in 0..LANES {
                    acc[g][n][l] = mac::<S, NARROW>(acc[g][n][l], src[n * LANES + l], w[g]);
                }
            }
        }
    }
    for g in 0..G {
        for n in 0..NV {
            out[g * stride + n * LANES..][..LANES].copy_from_slice(&acc[g][n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;
    use crate::kernels::conv_cases::{bits, values};
    use crate::kernels::lanes::mac;
    use half::f16;

    /// [`transpose_widened`] of random matrices, into buffers left longer by earlier calls:
    /// every element widened to its transposed place.
    #[test]
    fn transposition_widens_and_transposes() {
        let mut rng = Rng::new(4);
        let (mut wide, mut dst) = (Vec::new(), Vec::new());
        for case in 0..100 {
            let (rows, cols) = (1 + rng.below(20) as usize, rng.below(30) as usize);
            let src: Vec<f16> = values(&mut rng, rows * cols, 0.2, true);
            let got = transpose_widened(&src, rows, &mut wide, &mut dst).to_vec();
            let want: Vec<f32> = (0..rows * cols).map(|i| src[(i % rows) * cols + i / rows].to_f32()).collect();
            assert_eq!(bits(&got), bits(&want), "case {case} {rows}x{cols}");
        }
    }

    /// Random correlations against a direct loop over the terms, on one thread and split
    /// over the pool, in both accumulator modes: the same bits in every output.
    #[test]
    fn blocks_match_the_direct_sums_on_one_thread_and_split() {
        let mut rng = Rng::new(21);
        for case in 0..200 {
            let channels = 1 + rng.below(11) as usize;
            let vectors = 1 + rng.below(20) as usize;
            let terms = 1 + rng.below(30) as usize;
            let spread = rng.below(40) as usize;
            let offsets: Vec<usize> = (0..terms).map(|_| rng.below(spread as u64 + 1) as usize).collect();
            let src: Vec<f32> =
                values::<f16>(&mut rng, vectors * LANES + spread, 0.3, true).iter().map(|v| v.to_f32()).collect();
            let weights: Vec<f32> =
                values::<f16>(&mut rng, terms * channels, 0.1, false).iter().map(|v| v.to_f32()).collect();
            let row = 1 + rng.below(30) as usize;
            let k = Correlation { src: &src, offsets: &offsets, weights: &weights, channels, vectors, row };
            for mode in [Accum::F32, Accum::Storage] {
                let mut want = vec![0.0f32; vectors * LANES * channels];
                let plain = |c: usize, q: usize| c * vectors * LANES + q;
                for c in 0..channels {
                    for q in 0..vectors * LANES {
                        let mut a = 0.0f32;
                        for (t, &off) in offsets.iter().enumerate() {
                            a = match mode {
                                Accum::F32 => a + src[off + q] * weights[t * channels + c],
                                Accum::Storage => mac::<f16, true>(a, src[off + q], weights[t * channels + c]),
                            };
                        }
                        want[plain(c, q)] = a;
                    }
                }
                for parallel in [false, true] {
                    // Leftovers of a longer earlier result must not matter.
                    let mut out = vec![f32::NAN; want.len() + 5];
                    let layout = correlate::<f16>(mode, &k, &mut out, parallel);
                    let mut got = vec![0.0f32; want.len()];
                    for c in 0..channels {
                        for q in 0..vectors * LANES {
                            got[plain(c, q)] = out[layout.at(c, q)];
                        }
                    }
                    assert_eq!(bits(&got), bits(&want), "case {case} {mode:?} parallel {parallel}");
                    // Walking the rows finds the places `at` computes.
                    let rows = (vectors * LANES).div_ceil(row);
                    for c in 0..channels {
                        let walked: Vec<usize> = layout.row_starts(c, row, rows).collect();
                        let direct: Vec<usize> = (0..rows).map(|r| layout.at(c, r * row)).collect();
                        assert_eq!(walked, direct, "case {case} channel {c} parallel {parallel}");
                    }
                }
            }
        }
    }
}
