//! Linear tiles in the ISA's weight layout.
//!
//! The ISA holds an fc tile's weights row-major `k x n` (input-major: the weights of input
//! `i` are `w[i*n .. i*n+n]`), which lets the spike-driven FP engine add one contiguous row
//! per set spike. The [`accumulate`](super::accumulate) and [`grad`](super::grad) kernels
//! use the golden `[out,in]` layout instead. These kernels compute exactly the same sums in
//! the same order (inputs in increasing index, one rounding at the end), so they agree bit
//! for bit with those kernels on the transposed weights; the tests check that.
//!
//! Unlike the golden-layout kernels, they take the engine's skip decisions as inputs: `dense`
//! says whether zero spikes are visited anyway (`skip=false`), and an optional nonzero bitmap
//! names the errors the engine processes (`nz`), so executed and skipped counts are the
//! hardware's, not the data's.

use super::lanes::mac;
use super::{Input, OpCount};
use crate::fp::{Accum, Storage, acc_add, acc_mac, axpy};
use crate::spikes::SpikeSlice;

/// Tiles at most this many outputs wide take the weight-gradient path that keeps a row's
/// processed errors in a fixed-size block (the staged programs cut fc layers into tiles of
/// sixteen outputs).
pub(super) const BLOCK: usize = 16;

/// `out[j] = (out[j] if acc) + sum_i x[i] * w[i*n + j]`, one rounding per output.
///
/// The products are summed first and the prior `out[j]` is added last, in the same
/// accumulator: that is the golden order of a biased fc layer (`x·Wᵀ`, then `+ b`, rounded
/// once), so a program that preloads the bias into `out` matches it bit for bit.
///
/// Only non-zero inputs are accumulated; with `dense` the zero ones still count as executed
/// work (the engine visited them), otherwise as skipped. `scratch` holds f32 working rows.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_forward<S: Storage>(
    mode: Accum,
    w: &[S],
    input: Input<'_, S>,
    out: &mut [S],
    acc: bool,
    dense: bool,
    scratch: &mut Vec<f32>,
    ops: &mut OpCount,
) {
    let (k, n) = (input.len(), out.len());
    let (sums, row) = zeroed_rows(scratch, n, n);
    let nonzero = if n == 1 {
        // A one-column tile (a weight column of a layer wider than `fp.w`) is a dot product:
        // the same multiply-adds in the same order, without a row per input.
        let mut a = 0.0;
        let nonzero = input.for_each_nonzero(|i, x| a = acc_mac::<S>(a, w[i].to_f32(), x, mode));
        sums[0] = a;
        nonzero
    } else {
        input.for_each_nonzero(|i, x| {
            S::to_f32_slice(&w[i * n..(i + 1) * n], row);
            axpy::<S>(sums, row, x, mode);
        })
    } as u64;
    finish_forward(mode, sums, out, acc);
    count(ops, nonzero * n as u64, (k * n) as u64, dense);
}

/// [`linear_kn_forward`] on weights already widened to f32 (by [`widen`]): the same sums in
/// the same order, for an instruction that applies one tile to many rows and so widens it
/// once rather than once per row and non-zero input.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_forward_wide<S: Storage>(
    mode: Accum,
    w: &[f32],
    input: Input<'_, S>,
    out: &mut [S],
    acc: bool,
    dense: bool,
    scratch: &mut Vec<f32>,
    ops: &mut OpCount,
) {
    let (k, n) = (input.len(), out.len());
    let nonzero = match mode {
        // The sums go straight from registers into `out`: no scratch row to clear and copy.
        Accum::F32 => sum_rows_in_registers(w, n, &input, out, acc),
        Accum::Storage => {
            let (sums, _) = zeroed_rows(scratch, n, 0);
            // `axpy` on one element is `acc_mac`, so a one-column tile needs no special case.
            let nonzero = input.for_each_nonzero(|i, x| axpy::<S>(sums, &w[i * n..(i + 1) * n], x, mode));
            finish_forward(mode, sums, out, acc);
            nonzero
        }
    } as u64;
    count(ops, nonzero * n as u64, (k * n) as u64, dense);
}

/// `out[j] = (out[j] if acc) + Σ_i x[i]·w[i*n + j]` over the non-zero inputs in increasing
/// `i`, with f32 accumulators ([`Accum::F32`]), sixteen outputs at a time in a local block
/// the compiler keeps in registers (instead of loading and storing every sum once per
/// input). The sums start at +0; the prior output is added last and the result rounded
/// once into `out`, as [`finish_forward`] does. Returns the number of non-zero inputs.
fn sum_rows_in_registers<S: Storage>(w: &[f32], n: usize, input: &Input<'_, S>, out: &mut [S], acc: bool) -> usize {
    const L: usize = 16;
    if n == 1 {
        // A one-column tile (a weight column of a layer wider than `fp.w`) is a dot product.
        let mut a = 0.0f32;
        let nonzero = input.for_each_nonzero(|i, x| a += w[i] * x);
        finish_block(&mut [a], &mut out[..1], acc);
        return nonzero;
    }
    let mut nonzero = 0;
    for j0 in (0..n).step_by(L) {
        let m = L.min(n - j0);
        let mut a = [0.0f32; L];
        // Spikes are walked here rather than through `Input::for_each_nonzero`, whose
        // closure the compiler kept as a call per input: 15% of a digits training run.
        nonzero = match input {
            // A row of at most 64 spikes is one word, walked by its set bits.
            Input::Spikes(s) if s.len() <= 64 => {
                let mut bits = s.as_word();
                let ones = bits.count_ones() as usize;
                while bits != 0 {
                    add_row(&mut a, &w[bits.trailing_zeros() as usize * n + j0..], m);
                    bits &= bits - 1;
                }
                ones
            }
            // A longer row a word at a time, each walked by its set bits: still increasing `i`.
            Input::Spikes(s) => {
                let mut count = 0;
                for k in 0..s.len().div_ceil(64) {
                    let mut bits = s.word(k);
                    count += bits.count_ones() as usize;
                    while bits != 0 {
                        add_row(&mut a, &w[(64 * k + bits.trailing_zeros() as usize) * n + j0..], m);
                        bits &= bits - 1;
                    }
                }
                count
            }
            Input::Dense(_) => input.for_each_nonzero(|i, x| {
                a.iter_mut().zip(&w[i * n + j0..][..m]).for_each(|(a, &wv)| *a += wv * x);
            }),
        };
        finish_block(&mut a[..m], &mut out[j0..j0 + m], acc);
    }
    nonzero
}

/// [`finish_forward`] in [`Accum::F32`] on one block of sums: adds the prior outputs last
/// when accumulating, then rounds the sums into `out` (the same length).
#[inline(always)]
fn finish_block<S: Storage>(a: &mut [f32], out: &mut [S], acc: bool) {
    if acc {
        for j in 0..a.len() {
            a[j] += out[j].to_f32();
        }
    }
    S::from_f32_slice(a, out);
}

/// `a[j] += row[j]` for the first `m` (at most 16) elements: a spike's weights (their
/// product with the spike's 1.0 is exact, so it is left out); a whole block unrolls into
/// two vector adds.
#[inline(always)]
fn add_row(a: &mut [f32; 16], row: &[f32], m: usize) {
    if m == 16 {
        let row = &row[..16];
        // An index loop: as `for_each` the compiler once kept it as a scalar call.
        for j in 0..16 {
            a[j] += row[j];
        }
    } else {
        a.iter_mut().zip(&row[..m]).for_each(|(a, &wv)| *a += wv);
    }
}

/// Adds the prior outputs last when accumulating (the golden order of a biased layer), then
/// rounds the sums into `out`.
fn finish_forward<S: Storage>(mode: Accum, sums: &mut [f32], out: &mut [S], acc: bool) {
    if acc {
        for (a, o) in sums.iter_mut().zip(out.iter()) {
            *a = acc_add::<S>(*a, o.to_f32(), mode);
        }
    }
    S::from_f32_slice(sums, out);
}

/// Widens a weight tile to f32 into `wide` (resized to fit), for the `_wide` kernels.
pub fn widen<S: Storage>(w: &[S], wide: &mut Vec<f32>) {
    wide.resize(w.len(), 0.0);
    S::to_f32_slice(w, wide);
}

/// Widens a `k x n` weight tile to f32 and transposes it into `cols` (resized to fit):
/// `cols[j*k + i] = w[i*n + j]`, so that column `j` is contiguous for [`linear_kn_backward_cols`].
pub fn transpose_wide<S: Storage>(w: &[S], k: usize, n: usize, cols: &mut Vec<f32>) {
    cols.resize(k * n, 0.0);
    for i in 0..k {
        for (j, v) in w[i * n..(i + 1) * n].iter().enumerate() {
            cols[j * k + i] = v.to_f32();
        }
    }
}

/// `out[i] = (out[i] if acc) + sum_j err[j] * w[i*n + j]` over the errors the engine
/// processes: those whose `nz` bit is set, or every one when there is no bitmap.
///
/// Each output's sum runs over `j` in increasing order, as a dot product would; the kernel
/// keeps that order but works a column at a time over all outputs (the weights widened and
/// transposed once into `scratch`), which vectorises.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_backward<S: Storage>(
    mode: Accum,
    w: &[S],
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    out: &mut [S],
    acc: bool,
    scratch: &mut Vec<f32>,
    ops: &mut OpCount,
) {
    let (k, n) = (out.len(), err.len());
    let (sums, rest) = zeroed_rows(scratch, k, n + k * n);
    let (row, cols) = rest.split_at_mut(n);
    for i in 0..k {
        S::to_f32_slice(&w[i * n..(i + 1) * n], row);
        row.iter().enumerate().for_each(|(j, &v)| cols[j * k + i] = v);
    }
    backward_sums(mode, cols, err, nz, sums, out, acc, ops);
}

/// [`linear_kn_backward`] on a tile already widened and transposed by [`transpose_wide`]:
/// the same sums in the same order, for an instruction that applies one tile to many rows.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_backward_cols<S: Storage>(
    mode: Accum,
    cols: &[f32],
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    out: &mut [S],
    acc: bool,
    scratch: &mut Vec<f32>,
    ops: &mut OpCount,
) {
    let (sums, _) = zeroed_rows(scratch, out.len(), 0);
    backward_sums(mode, cols, err, nz, sums, out, acc, ops);
}

/// The column-at-a-time sums of the backward kernels over the transposed tile `cols`, from
/// zeroed `sums`; rounds them into `out` and counts the work.
#[allow(clippy::too_many_arguments)]
fn backward_sums<S: Storage>(
    mode: Accum,
    cols: &[f32],
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    sums: &mut [f32],
    out: &mut [S],
    acc: bool,
    ops: &mut OpCount,
) {
    let (k, n) = (out.len(), err.len());
    if acc {
        S::to_f32_slice(out, sums);
    }
    let mut mac = |j: usize| {
        let g = err[j].to_f32();
        if g != 0.0 {
            axpy::<S>(sums, &cols[j * k..(j + 1) * k], g, mode);
        }
    };
    match nz {
        Some(bits) => bits.ones().for_each(&mut mac),
        None => (0..n).for_each(&mut mac),
    }
    S::from_f32_slice(sums, out);
    let processed = nz.map_or(n, |b| b.count_ones()) as u64;
    count(ops, processed * k as u64, (n * k) as u64, false);
}

/// `dw[i*n + j] += x[i] * err[j]` for non-zero inputs and processed errors (`nz` bits set,
/// or non-zero errors when there is no bitmap: the engine tests the error it muxes).
///
/// `cols` and `scratch` are working memory (the processed errors), reused across calls by
/// tiles wider than `BLOCK`; narrower ones keep their errors in a fixed-size block.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_weight_grad<S: Storage>(
    mode: Accum,
    input: Input<'_, S>,
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    dw: &mut [f32],
    dense: bool,
    work: (&mut Vec<(usize, f32)>, &mut Vec<f32>),
    ops: &mut OpCount,
) {
    if err.len() <= BLOCK {
        weight_grad_block(mode, input, err, nz, dw, dense, ops);
    } else {
        weight_grad_cols(mode, input, err, nz, dw, dense, work, ops);
    }
}

/// The errors of a tile of at most [`BLOCK`] outputs as the engine processes them.
pub(super) struct Processed {
    /// Each processed error widened to f32, zero in the other lanes.
    pub(super) g: [f32; BLOCK],
    /// All ones in the lanes of unprocessed errors, whose accumulators must keep their bits.
    pub(super) keep: [u32; BLOCK],
    /// The number of processed errors.
    pub(super) count: usize,
}

impl Processed {
    /// The errors of `err` (at most [`BLOCK`]) that `nz` marks, or the non-zero ones. Every
    /// step runs over a whole block with no branch on the data, so the compiler makes a few
    /// vector instructions of it (a per-lane loop with a filter was a tenth of a training
    /// step): lanes past the tile hold +0 and no bit, so they are never processed.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    pub(super) fn of<S: Storage>(err: &[S], nz: Option<SpikeSlice<'_>>) -> Processed {
        let mut e = [0.0f32; BLOCK];
        match <&[S; BLOCK]>::try_from(err) {
            Ok(err) => S::to_f32_16(err, &mut e),
            Err(_) => {
                for (l, x) in err.iter().take(BLOCK).enumerate() {
                    e[l] = x.to_f32();
                }
            }
        }
        let on = match nz {
            Some(bits) => bits.as_word(),
            None => {
                let mut on = 0u64;
                for l in 0..BLOCK {
                    on |= u64::from(e[l] != 0.0) << l;
                }
                on
            }
        };
        let mut p = Processed { g: [0.0; BLOCK], keep: [0; BLOCK], count: on.count_ones() as usize };
        for l in 0..BLOCK {
            // All ones where bit `l` is clear, zero where it is set.
            p.keep[l] = ((on >> l) as u32 & 1).wrapping_sub(1);
            p.g[l] = f32::from_bits(e[l].to_bits() & !p.keep[l]);
        }
        p
    }
}

/// [`linear_kn_weight_grad`] for a tile of at most [`BLOCK`] outputs: every non-zero input
/// adds its whole row of products, and the lanes of unprocessed errors are blended back to
/// their old bits (so a −0 or, in storage mode, an unrounded accumulator stays as the
/// column-by-column loop of [`weight_grad_cols`] leaves it).
fn weight_grad_block<S: Storage>(
    mode: Accum,
    input: Input<'_, S>,
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    dw: &mut [f32],
    dense: bool,
    ops: &mut OpCount,
) {
    let (k, n) = (input.len(), err.len());
    let p = Processed::of(err, nz);
    // With no error processed nothing changes, and the count of inputs does not matter.
    let nonzero = match (p.count, mode) {
        (0, _) => 0,
        (_, Accum::F32) => block_rows::<S, false>(&input, &p, dw, n),
        (_, Accum::Storage) => block_rows::<S, true>(&input, &p, dw, n),
    };
    let rows = if dense { k } else { nonzero };
    count(ops, (rows * p.count) as u64, (k * n) as u64, false);
}

/// Adds the processed errors times each non-zero input to that input's row of `dw`;
/// returns the number of non-zero inputs. Spikes are walked here, a word at a time, rather
/// than through a closure the compiler may keep as a call per input.
fn block_rows<S: Storage, const NARROW: bool>(input: &Input<'_, S>, p: &Processed, dw: &mut [f32], n: usize) -> usize {
    let all = p.count == n;
    match input {
        Input::Spikes(s) if s.len() <= 64 => {
            let mut bits = s.as_word();
            let ones = bits.count_ones() as usize;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                mac_lanes::<S, NARROW>(&mut dw[i * n..(i + 1) * n], p, 1.0, all);
                bits &= bits - 1;
            }
            ones
        }
        _ => input.for_each_nonzero(|i, x| mac_lanes::<S, NARROW>(&mut dw[i * n..(i + 1) * n], p, x, all)),
    }
}

/// `row[l] = mac(row[l], g[l], x)` in every lane, then (unless every error is processed)
/// the old bits put back in the lanes `keep` marks. A whole block has a length the
/// compiler knows, so its lanes become vector code. The lanes are index loops because the
/// iterator form was compiled to a scalar call per row.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn mac_lanes<S: Storage, const NARROW: bool>(row: &mut [f32], p: &Processed, x: f32, all: bool) {
    match <&mut [f32; BLOCK]>::try_from(&mut *row) {
        Ok(row) if all => {
            for l in 0..BLOCK {
                row[l] = mac::<S, NARROW>(row[l], p.g[l], x);
            }
        }
        Ok(row) => {
            for l in 0..BLOCK {
                row[l] = blend(mac::<S, NARROW>(row[l], p.g[l], x), row[l], p.keep[l]);
            }
        }
        Err(_) => {
            for (l, r) in row.iter_mut().enumerate() {
                *r = blend(mac::<S, NARROW>(*r, p.g[l], x), *r, p.keep[l]);
            }
        }
    }
}

/// `new`, or `old` bit for bit where `keep` is all ones.
#[inline(always)]
pub(super) fn blend(new: f32, old: f32, keep: u32) -> f32 {
    f32::from_bits((new.to_bits() & !keep) | (old.to_bits() & keep))
}

/// [`linear_kn_weight_grad`] for any tile width: the processed errors are listed in `cols`
/// and, when nearly all are processed, spread over a row in `scratch`.
#[allow(clippy::too_many_arguments)]
fn weight_grad_cols<S: Storage>(
    mode: Accum,
    input: Input<'_, S>,
    err: &[S],
    nz: Option<SpikeSlice<'_>>,
    dw: &mut [f32],
    dense: bool,
    (cols, scratch): (&mut Vec<(usize, f32)>, &mut Vec<f32>),
    ops: &mut OpCount,
) {
    let n = err.len();
    cols.clear();
    match nz {
        Some(bits) => cols.extend(bits.ones().map(|j| (j, err[j].to_f32()))),
        None => cols.extend(err.iter().enumerate().map(|(j, g)| (j, g.to_f32())).filter(|&(_, g)| g != 0.0)),
    }
    let processed = cols.len();
    let nonzero = if 8 * (n - processed) <= n {
        // (Nearly) every error is processed: a whole row at a time, which vectorises. The
        // few unprocessed columns get a zero error and their accumulators are put back as
        // they were, so the row ends exactly as the column-by-column loop leaves it.
        scratch.clear();
        scratch.resize(n, 0.0);
        let mut next = 0;
        for (j, g) in scratch.iter_mut().enumerate() {
            if next < processed && cols[next].0 == j {
                *g = cols[next].1;
                next += 1;
            } else {
                cols.push((j, 0.0));
            }
        }
        let (g, held) = (&scratch[..], &mut cols[processed..]);
        input.for_each_nonzero(|i, x| {
            let row = &mut dw[i * n..(i + 1) * n];
            held.iter_mut().for_each(|(j, v)| *v = row[*j]);
            mac_row::<S>(row, g, x, mode);
            held.iter().for_each(|&(j, v)| row[j] = v);
        })
    } else {
        input.for_each_nonzero(|i, x| {
            let row = &mut dw[i * n..(i + 1) * n];
            for &(j, g) in cols.iter() {
                row[j] = acc_mac::<S>(row[j], g, x, mode);
            }
        })
    } as u64;
    let rows = if dense { input.len() as u64 } else { nonzero };
    count(ops, rows * processed as u64, (input.len() * n) as u64, false);
}

/// Splits `scratch` into a zeroed accumulator row of `zeroed` elements and a working area
/// of `rest` elements whose contents are left as they are (every user overwrites them).
fn zeroed_rows(scratch: &mut Vec<f32>, zeroed: usize, rest: usize) -> (&mut [f32], &mut [f32]) {
    if scratch.len() < zeroed + rest {
        scratch.resize(zeroed + rest, 0.0);
    }
    let (sums, more) = scratch.split_at_mut(zeroed);
    sums.fill(0.0);
    (sums, &mut more[..rest])
}

/// `row[j] = acc_mac(row[j], g[j], x)` for every `j`, the mode decided once.
#[inline]
fn mac_row<S: Storage>(row: &mut [f32], g: &[f32], x: f32, mode: Accum) {
    match mode {
        Accum::F32 => row.iter_mut().zip(g).for_each(|(r, &g)| *r += g * x),
        Accum::Storage => row.iter_mut().zip(g).for_each(|(r, &g)| *r = acc_mac::<S>(*r, g, x, mode)),
    }
}

/// Records `executed` of `total` operations; with `dense` everything counts as executed.
pub(super) fn count(ops: &mut OpCount, executed: u64, total: u64, dense: bool) {
    let executed = if dense { total } else { executed.min(total) };
    ops.executed += executed;
    ops.skipped += total - executed;
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kernels::accumulate::linear_forward;
    use crate::kernels::grad::{linear_backward_input, linear_weight_grad};
    use crate::spikes::SpikeBits;
    use half::f16;

    const K: usize = 37;
    const N: usize = 11;

    fn data() -> (Vec<f16>, Vec<f16>, SpikeBits, Vec<f16>) {
        let w: Vec<f16> = (0..K * N).map(|i| f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 61.0)).collect();
        let wt: Vec<f16> = (0..K * N).map(|t| w[(t % K) * N + t / K]).collect();
        let s = SpikeBits::from_bools(&(0..K).map(|i| i % 3 == 0 || i % 7 == 1).collect::<Vec<_>>());
        let e: Vec<f16> = (0..N).map(|j| f16::from_f32(if j % 4 == 1 { 0.0 } else { j as f32 / 7.0 - 0.6 })).collect();
        (w, wt, s, e)
    }

    #[test]
    fn forward_matches_golden_layout_kernel() {
        let (w, wt, s, _) = data();
        for mode in [Accum::F32, Accum::Storage] {
            let (mut want, mut got) = (vec![f16::ZERO; N], vec![f16::ZERO; N]);
            let (mut a, mut b) = (OpCount::default(), OpCount::default());
            linear_forward(mode, &wt, None, Input::Spikes(s.slice(0, K)), &mut want, &mut a);
            linear_kn_forward(mode, &w, Input::Spikes(s.slice(0, K)), &mut got, false, false, &mut Vec::new(), &mut b);
            assert_eq!(got, want);
            assert_eq!(a, b);
        }
    }

    /// Sparse inputs take the row-at-a-time path and dense ones the whole-tile path; every
    /// error processed takes the whole-row weight-gradient path. All match the golden kernels.
    #[test]
    fn sparse_and_dense_paths_match_golden_layout_kernels() {
        let (w, wt, _, e) = data();
        let full: Vec<f16> = e.iter().map(|v| if v.to_f32() == 0.0 { f16::ONE } else { *v }).collect();
        for pattern in [vec![3usize, 30], (0..K).collect()] {
            let s = SpikeBits::from_fn(K, |i| pattern.contains(&i));
            for mode in [Accum::F32, Accum::Storage] {
                let (mut want, mut got) = (vec![f16::ZERO; N], vec![f16::ZERO; N]);
                let (mut a, mut b) = (OpCount::default(), OpCount::default());
                linear_forward(mode, &wt, None, Input::Spikes(s.slice(0, K)), &mut want, &mut a);
                linear_kn_forward(
                    mode,
                    &w,
                    Input::Spikes(s.slice(0, K)),
                    &mut got,
                    false,
                    false,
                    &mut Vec::new(),
                    &mut b,
                );
                assert_eq!((got, a), (want, b));
                let (mut want, mut got) = (vec![0.0f32; K * N], vec![0.0f32; K * N]);
                let (mut a, mut b) = (OpCount::default(), OpCount::default());
                linear_weight_grad(mode, &full, Input::Spikes(s.slice(0, K)), &mut want, &mut a);
                let work = (&mut Vec::new(), &mut Vec::new());
                linear_kn_weight_grad(mode, Input::Spikes(s.slice(0, K)), &full, None, &mut got, false, work, &mut b);
                let want_t: Vec<f32> = (0..K * N).map(|t| want[(t % N) * K + t / N]).collect();
                assert_eq!((got, b), (want_t, a));
            }
        }
    }

    /// With one error of eleven unprocessed the weight gradient adds whole rows and puts
    /// the unprocessed accumulators back: they keep their exact bits (here −0 and values no
    /// FP16 holds), as the column-by-column loop leaves them.
    #[test]
    fn nearly_dense_errors_leave_unprocessed_accumulators_alone() {
        let (_, _, s, _) = data();
        let e: Vec<f16> = (0..N).map(|j| f16::from_f32(if j == 4 { 0.0 } else { j as f32 / 7.0 - 0.6 })).collect();
        let start: Vec<f32> = (0..K * N).map(|t| if t % 5 == 0 { -0.0 } else { t as f32 / 9.0 }).collect();
        for mode in [Accum::F32, Accum::Storage] {
            let (mut want, mut got) = (start.clone(), start.clone());
            let (mut a, mut b) = (OpCount::default(), OpCount::default());
            let input = Input::Spikes(s.slice(0, K));
            input.for_each_nonzero(|i, x| {
                for j in (0..N).filter(|&j| e[j].to_f32() != 0.0) {
                    want[i * N + j] = acc_mac::<f16>(want[i * N + j], e[j].to_f32(), x, mode);
                    a.executed += 1;
                }
            });
            a.skipped = (K * N) as u64 - a.executed;
            linear_kn_weight_grad(mode, input, &e, None, &mut got, false, (&mut Vec::new(), &mut Vec::new()), &mut b);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(b, a);
        }
    }

    /// A small deterministic generator for the randomised tests (64-bit LCG, high bits out).
    /// A small deterministic generator (64-bit LCG, high bits out) of the values the linear
    /// kernels' tests feed them (the `tile_rows` tests use it too).
    pub(in crate::kernels) struct Lcg(pub(in crate::kernels) u64);

    impl Lcg {
        pub(in crate::kernels) fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        /// An FP16 value, zero (of either sign) one time in `zeros`.
        fn half(&mut self, zeros: u32) -> f16 {
            match self.next() % zeros {
                0 if self.next() % 2 == 0 => f16::NEG_ZERO,
                0 => f16::ZERO,
                _ => f16::from_f32((self.next() % 2001) as f32 / 700.0 - 1.4),
            }
        }

        /// An accumulator: −0, +0, an FP16 value, or a value FP16 does not hold.
        fn acc(&mut self) -> f32 {
            match self.next() % 4 {
                0 => -0.0,
                1 => 0.0,
                2 => self.half(9).to_f32(),
                _ => (self.next() % 100_001) as f32 / 3331.0 - 15.0,
            }
        }

        /// An FP16 value: zero (of either sign) one time in `zeros`, now and then ±inf or
        /// NaN, else an ordinary value.
        pub(in crate::kernels) fn half_or_special(&mut self, zeros: u32) -> f16 {
            if self.next() % zeros == 0 {
                return if self.next() % 2 == 0 { f16::NEG_ZERO } else { f16::ZERO };
            }
            match self.next() % 40 {
                0 => f16::INFINITY,
                1 => f16::NEG_INFINITY,
                2 => f16::NAN,
                _ => f16::from_f32((self.next() % 2001) as f32 / 700.0 - 1.4),
            }
        }

        /// An accumulator: ±0, an FP16 value (maybe special), or a value FP16 does not hold.
        pub(in crate::kernels) fn acc_or_special(&mut self) -> f32 {
            match self.next() % 4 {
                0 => -0.0,
                1 => 0.0,
                2 => self.half_or_special(9).to_f32(),
                _ => (self.next() % 100_001) as f32 / 3331.0 - 15.0,
            }
        }
    }

    /// The block weight-gradient path against the column-list path on random tiles up to
    /// sixteen wide: spikes in unaligned windows (up to 100 inputs) and dense FP16 inputs,
    /// with and without an `nz` bitmap, −0 and unrounded accumulators, both accumulator
    /// modes and both skip settings; every accumulator's bits and the counts agree.
    #[test]
    fn block_weight_grad_matches_column_path_on_random_tiles() {
        let mut rng = Lcg(7);
        for case in 0..600 {
            let n = [1, 5, 11, 16, 16][case % 5];
            let k = [1, 37, 56, 64, 100][(case / 5) % 5];
            let (off, zoff) = (rng.next() as usize % 70, rng.next() as usize % 70);
            let density = 1 + rng.next() % 6;
            let spikes = SpikeBits::from_fn(off + k, |_| rng.next() % density == 0);
            let dense_x: Vec<f16> = (0..k).map(|_| rng.half(3)).collect();
            let zeros = 1 + rng.next() % 4;
            let err: Vec<f16> = (0..n).map(|_| rng.half(zeros)).collect();
            let nz_bits = SpikeBits::from_fn(zoff + n, |_| rng.next() % density != 0);
            let nz = (case % 3 != 0).then(|| nz_bits.slice(zoff, n));
            let start: Vec<f32> = (0..k * n).map(|_| rng.acc()).collect();
            let input = if case % 4 == 1 { Input::Dense(&dense_x) } else { Input::Spikes(spikes.slice(off, k)) };
            let mode = if case % 2 == 0 { Accum::F32 } else { Accum::Storage };
            let dense = case % 7 == 3;
            let (mut want, mut got) = (start.clone(), start);
            let (mut a, mut b) = (OpCount::default(), OpCount::default());
            let work = (&mut Vec::new(), &mut Vec::new());
            weight_grad_cols(mode, input, &err, nz, &mut want, dense, work, &mut a);
            weight_grad_block(mode, input, &err, nz, &mut got, dense, &mut b);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}: n = {n}, k = {k}, {mode:?}");
            assert_eq!(b, a, "case {case}");
        }
    }

    /// The forward kernels walk a row of at most 64 spikes as one word: random unaligned
    /// windows on both sides of that length give the sums and counts of the golden layout.
    #[test]
    fn forward_matches_golden_layout_kernel_on_random_windows() {
        let mut rng = Lcg(11);
        for case in 0..200 {
            let (n, k) = ([1, 7, 16][case % 3], [1, 56, 64, 65, 100][(case / 3) % 5]);
            let w: Vec<f16> = (0..k * n).map(|_| rng.half(50)).collect();
            let wt: Vec<f16> = (0..k * n).map(|t| w[(t % k) * n + t / k]).collect();
            let off = rng.next() as usize % 70;
            let s = SpikeBits::from_fn(off + k, |_| rng.next() % 4 == 0);
            let mut wide = Vec::new();
            widen(&w, &mut wide);
            for mode in [Accum::F32, Accum::Storage] {
                let input = Input::Spikes(s.slice(off, k));
                wide_matches_golden_layout(mode, (&wide, &wt), input, &format!("case {case}: n = {n}, k = {k}"));
            }
        }
    }

    /// The widened-tile kernel writes each block of sums straight into `out`: on random
    /// tiles (one column, part blocks, whole blocks and more), spike windows and dense
    /// inputs, random prior outputs with and without `acc`, both accumulator modes and both
    /// skip settings, it gives the outputs and counts of [`linear_kn_forward`] bit for bit.
    #[test]
    fn widened_forward_matches_unwidened_kernel_on_random_tiles() {
        let mut rng = Lcg(23);
        for case in 0..800 {
            let n = [1, 5, 16, 16, 37][case % 5];
            let k = [1, 37, 64, 65, 100][(case / 5) % 5];
            let w: Vec<f16> = (0..k * n).map(|_| rng.half(7)).collect();
            let off = rng.next() as usize % 70;
            let density = 1 + rng.next() % 6;
            let s = SpikeBits::from_fn(off + k, |_| rng.next() % density == 0);
            let dense_x: Vec<f16> = (0..k).map(|_| rng.half(3)).collect();
            let prior: Vec<f16> = (0..n).map(|_| rng.half(4)).collect();
            let input = if case % 4 == 1 { Input::Dense(&dense_x) } else { Input::Spikes(s.slice(off, k)) };
            let mode = if case % 2 == 0 { Accum::F32 } else { Accum::Storage };
            let (acc, dense) = (case % 3 != 0, case % 7 == 3);
            let mut wide = Vec::new();
            widen(&w, &mut wide);
            let (mut want, mut got) = (prior.clone(), prior);
            let (mut a, mut b) = (OpCount::default(), OpCount::default());
            linear_kn_forward(mode, &w, input, &mut want, acc, dense, &mut Vec::new(), &mut a);
            // A scratch left dirty by an earlier, larger call must not leak into the sums.
            let mut scratch = vec![f32::NAN; 64];
            linear_kn_forward_wide(mode, &wide, input, &mut got, acc, dense, &mut scratch, &mut b);
            let bits = |v: &[f16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "case {case}: n = {n}, k = {k}, {mode:?}, acc = {acc}");
            assert_eq!(b, a, "case {case}");
        }
    }

    /// Checks that the widened-tile forward kernel on `wide` (`k x n`) gives the outputs and
    /// counts of the golden-layout kernel on `wt` (its transpose), without a prior output.
    fn wide_matches_golden_layout(mode: Accum, (wide, wt): (&[f32], &[f16]), input: Input<'_, f16>, what: &str) {
        let n = wt.len() / input.len().max(1);
        let (mut want, mut got) = (vec![f16::ZERO; n], vec![f16::ZERO; n]);
        let (mut a, mut b) = (OpCount::default(), OpCount::default());
        linear_forward(mode, wt, None, input, &mut want, &mut a);
        linear_kn_forward_wide(mode, wide, input, &mut got, false, false, &mut Vec::new(), &mut b);
        assert_eq!((got, b), (want, a), "{what}, {mode:?}");
    }

    /// The kernel for widened tiles keeps sixteen sums in registers at a time: tiles of
    /// 37 outputs (two whole blocks and a part), of 11, 16 and one (a dot product) still
    /// match the golden layout.
    #[test]
    fn widened_tiles_match_golden_layout_kernel_across_blocks() {
        for n in [37usize, 11, 16, 1] {
            let w: Vec<f16> = (0..K * n).map(|i| f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 61.0)).collect();
            let wt: Vec<f16> = (0..K * n).map(|t| w[(t % K) * n + t / K]).collect();
            let s = SpikeBits::from_fn(K, |i| i % 3 == 0 || i % 7 == 1);
            let dense: Vec<f16> =
                (0..K).map(|i| f16::from_f32(if i % 4 == 0 { 0.0 } else { 0.7 - i as f32 / 19.0 })).collect();
            let mut wide = Vec::new();
            widen(&w, &mut wide);
            for mode in [Accum::F32, Accum::Storage] {
                for input in [Input::Spikes(s.slice(0, K)), Input::Dense(&dense)] {
                    wide_matches_golden_layout(mode, (&wide, &wt), input, &format!("n = {n}"));
                }
            }
        }
    }

    /// A bias preloaded into `out` with `acc` is added after the products, in the same
    /// accumulator: the golden fc layer's `x·Wᵀ + b`, bit for bit.
    #[test]
    fn preloaded_bias_matches_golden_biased_layer() {
        let (w, wt, s, _) = data();
        let bias: Vec<f16> = (0..N).map(|j| f16::from_f32(j as f32 / 3.0 - 1.7)).collect();
        for mode in [Accum::F32, Accum::Storage] {
            let (mut want, mut got) = (vec![f16::ZERO; N], bias.clone());
            let (mut a, mut b) = (OpCount::default(), OpCount::default());
            linear_forward(mode, &wt, Some(&bias), Input::Spikes(s.slice(0, K)), &mut want, &mut a);
            linear_kn_forward(mode, &w, Input::Spikes(s.slice(0, K)), &mut got, true, false, &mut Vec::new(), &mut b);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn backward_and_weight_grad_match_golden_layout_kernels() {
        let (w, wt, s, e) = data();
        let (mut want, mut got) = (vec![f16::ZERO; K], vec![f16::ZERO; K]);
        let (mut a, mut b) = (OpCount::default(), OpCount::default());
        linear_backward_input(Accum::F32, &wt, &e, &mut want, &mut [0.0; K], &mut a);
        let nz = SpikeBits::from_nonzero(&e.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
        linear_kn_backward(Accum::F32, &w, &e, Some(nz.slice(0, N)), &mut got, false, &mut Vec::new(), &mut b);
        assert_eq!((got, a), (want, b));
        let (mut want, mut got) = (vec![0.0f32; K * N], vec![0.0f32; K * N]);
        let (mut a, mut b) = (OpCount::default(), OpCount::default());
        linear_weight_grad(Accum::F32, &e, Input::Spikes(s.slice(0, K)), &mut want, &mut a);
        let work = (&mut Vec::new(), &mut Vec::new());
        linear_kn_weight_grad(Accum::F32, Input::Spikes(s.slice(0, K)), &e, None, &mut got, false, work, &mut b);
        let want_t: Vec<f32> = (0..K * N).map(|t| want[(t % N) * K + t / N]).collect();
        assert_eq!((got, b), (want_t, a));
    }
}
