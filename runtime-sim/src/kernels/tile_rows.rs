//! Linear tiles applied to many rows by one instruction (`rows = R`), for the common shape
//! of the staged fc programs: rows of at most 64 spikes and tiles of at most sixteen
//! outputs.
//!
//! A multi-row instruction means `R` single-row instructions in order, and the kernels in
//! [`tile`](super::tile) compute one row per call. At that size (a dozen spikes per row)
//! the set-up of each call costs as much as its arithmetic, so these kernels walk all rows
//! in one loop: the same operations on every accumulator in the same order, and the same
//! counts per row, with the per-row work cut to a few vector instructions. The tests check
//! them against the one-row kernels bit for bit.

use super::lanes::mac;
use super::tile::{
    BLOCK, Processed, blend, count, linear_kn_backward_cols, linear_kn_forward_wide, linear_kn_weight_grad,
};
use super::{Input, OpCount};
use crate::fp::{Accum, Storage};
use crate::spikes::{SpikeBits, SpikeSlice};

/// A block of error lanes: one row's errors of a tile sixteen wide, widened.
pub type Lanes = [f32; BLOCK];

/// One row of a multi-row `wg.linear`: its spikes, its errors and its `nz` bitmap.
pub type GradRow<'b, S> = (SpikeSlice<'b>, &'b [S], Option<SpikeSlice<'b>>);

/// Rows of bits at a fixed stride: row `r` is the `len` bits from `start + r * stride` of
/// `bits`.
#[derive(Clone, Copy)]
pub struct BitRowsAt<'b> {
    /// The tensor holding the rows.
    pub bits: &'b SpikeBits,
    /// Where row 0 starts.
    pub start: usize,
    /// Bits per row.
    pub len: usize,
    /// Bits from one row to the next.
    pub stride: usize,
}

impl<'b> BitRowsAt<'b> {
    /// Row `r` (panics if it is out of range).
    #[inline]
    pub fn row(&self, r: usize) -> SpikeSlice<'b> {
        self.bits.slice(self.start + r * self.stride, self.len)
    }
}

/// Rows of values at a fixed stride: row `r` is the `len` values from `start + r * stride`
/// of `data`.
#[derive(Clone, Copy)]
pub struct ValRowsAt<'b, S> {
    /// The values holding the rows.
    pub data: &'b [S],
    /// Where row 0 starts.
    pub start: usize,
    /// Values per row.
    pub len: usize,
    /// Values from one row to the next.
    pub stride: usize,
}

impl<'b, S> ValRowsAt<'b, S> {
    /// Row `r` (panics if it is out of range).
    #[inline]
    pub fn row(&self, r: usize) -> &'b [S] {
        let at = self.start + r * self.stride;
        &self.data[at..at + self.len]
    }
}

/// The row-carrying operands of a multi-row `wg.linear`, as views the kernel walks itself:
/// a closure per row would build three checked slices per row, more host work than the
/// arithmetic of a row of a dozen spikes.
#[derive(Clone, Copy)]
pub struct GradRows<'b, S> {
    /// The input spikes, `k` per row.
    pub spk: BitRowsAt<'b>,
    /// The errors, `n` per row.
    pub err: ValRowsAt<'b, S>,
    /// The `nz` bitmap of the errors, `n` bits per row, if there is one.
    pub nz: Option<BitRowsAt<'b>>,
}

impl<'b, S> GradRows<'b, S> {
    /// Row `r`'s spikes, errors and `nz` bits (panics if it is out of range).
    #[inline]
    pub fn row(&self, r: usize) -> GradRow<'b, S> {
        (self.spk.row(r), self.err.row(r), self.nz.map(|z| z.row(r)))
    }

    /// Whether rows `0 .. rows` all lie inside their tensors (the last row starts furthest
    /// in, strides not being negative).
    fn inside(&self, rows: usize) -> bool {
        let Some(last) = rows.checked_sub(1) else { return true };
        let bits_fit = |b: &BitRowsAt<'_>| b.start + last * b.stride + b.len <= b.bits.len();
        let e = &self.err;
        bits_fit(&self.spk)
            && e.start + last * e.stride + e.len <= e.data.len()
            && self.nz.as_ref().is_none_or(bits_fit)
    }
}

/// [`linear_kn_weight_grad`] on `rows` rows of `v` in order, all into the same `dw`,
/// pushing each row's count onto `ops`.
///
/// Tiles of at most `BLOCK` outputs whose rows hold at most 64 spikes take a loop that
/// turns each row's errors into lanes with a few vector instructions and walks its spikes
/// as one word; any other tile calls the one-row kernel row by row.
pub fn linear_kn_weight_grad_rows<S: Storage>(
    mode: Accum,
    rows: usize,
    v: GradRows<'_, S>,
    dw: &mut [f32],
    dense: bool,
    (ops, lanes): (&mut Vec<OpCount>, &mut Vec<Lanes>),
) {
    let (k, n) = (v.spk.len, v.err.len);
    let fits = v.nz.is_none_or(|z| z.len == n) && v.inside(rows);
    if k > 64 || n > BLOCK || dw.len() < k * n || !fits {
        for r in 0..rows {
            let (spk, err, nz) = v.row(r);
            let mut c = OpCount::default();
            let work = (&mut Vec::new(), &mut Vec::new());
            linear_kn_weight_grad(mode, Input::Spikes(spk), err, nz, dw, dense, work, &mut c);
            ops.push(c);
        }
        return;
    }
    // Adding −0 leaves every f32 as it is, bit for bit, except a signalling NaN (which
    // comes out quiet). With f32 accumulators and none of those in `dw` (adds only ever
    // make quiet NaNs, so none appears later), an unprocessed lane can add −0 instead of
    // being blended back to its old bits, and then each input's row of `dw` can take all
    // its terms at once.
    let plain = mode == Accum::F32 && n == BLOCK && !has_signalling_nan(dw);
    match mode {
        Accum::F32 if plain => grad_by_input(rows, v, k, dw, dense, (ops, lanes)),
        Accum::F32 => grad_rows::<S, false>(rows, |r| v.row(r), (k, n), dw, dense, ops),
        Accum::Storage => grad_rows::<S, true>(rows, |r| v.row(r), (k, n), dw, dense, ops),
    }
}

/// The loop of [`linear_kn_weight_grad_rows`] for a `k x n` tile (`k` at most 64, `n` at
/// most [`BLOCK`]) in one accumulator mode, row by row, where unprocessed lanes must be
/// blended back (rounded accumulators, a narrower tile, or a signalling NaN in `dw`).
fn grad_rows<'b, S: Storage, const NARROW: bool>(
    rows: usize,
    row: impl Fn(usize) -> GradRow<'b, S>,
    (k, n): (usize, usize),
    dw: &mut [f32],
    dense: bool,
    ops: &mut Vec<OpCount>,
) {
    for r in 0..rows {
        let (spk, err, nz) = row(r);
        let p = Processed::of(err, nz);
        // With no error processed nothing changes, and the count of inputs does not matter.
        let bits = if p.count == 0 { 0 } else { spk.as_word() };
        let nonzero = bits.count_ones() as usize;
        if bits != 0 {
            add_spikes::<S, NARROW>(dw, n, &p, bits, p.count == BLOCK);
        }
        let used = if dense { k } else { nonzero };
        let mut c = OpCount::default();
        count(&mut c, (used * p.count) as u64, (k * n) as u64, false);
        ops.push(c);
    }
}

/// Rows per chunk of [`grad_by_input`]: four words of row bits per input.
const CHUNK: usize = 256;

/// The plain f32 case of [`linear_kn_weight_grad_rows`] on a tile sixteen wide, input by
/// input: for a chunk of rows, first each row's errors (−0 where not processed) are set
/// aside and its spikes noted as a word, the words are transposed into a bitmap of rows per
/// input, then each input's row of `dw` is loaded once, takes the errors of the rows where
/// that input spiked, in row order, and is stored once. Every accumulator sees the same
/// adds in the same order as row by row, but the sums stay in registers instead of going
/// through memory at every spike. The caller has checked that every row lies inside.
fn grad_by_input<S: Storage>(
    rows: usize,
    v: GradRows<'_, S>,
    k: usize,
    dw: &mut [f32],
    dense: bool,
    (ops, lanes): (&mut Vec<OpCount>, &mut Vec<Lanes>),
) {
    lanes.resize(CHUNK, [0.0; BLOCK]);
    if let Ok(gs) = <&mut [Lanes; CHUNK]>::try_from(&mut lanes[..CHUNK]) {
        grad_chunks(rows, v, k, dw, dense, ops, gs);
    }
}

/// [`grad_by_input`] with its error lanes in `gs`, a reference of its own, which lets the
/// compiler see that they and `dw` never overlap: the adds then stay in vector registers.
fn grad_chunks<S: Storage>(
    rows: usize,
    v: GradRows<'_, S>,
    k: usize,
    dw: &mut [f32],
    dense: bool,
    ops: &mut Vec<OpCount>,
    gs: &mut [Lanes; CHUNK],
) {
    for c0 in (0..rows).step_by(CHUNK) {
        let chunk = (rows - c0).min(CHUNK);
        let mut words = [0u64; CHUNK];
        let mut processed = [0u8; CHUNK];
        match v.nz {
            Some(z) => chunk_rows(
                (c0, chunk),
                v,
                |r, _| z.bits.window(z.start + r * z.stride, BLOCK),
                &mut words,
                &mut processed,
                gs,
            ),
            None => chunk_rows((c0, chunk), v, |_, e| nonzero_lanes(e), &mut words, &mut processed, gs),
        }
        let total = (k * BLOCK) as u64;
        ops.extend(words.iter().zip(&processed).take(chunk).map(|(w, &p)| {
            let used = if dense { k } else { w.count_ones() as usize };
            let mut c = OpCount::default();
            count(&mut c, (used * usize::from(p)) as u64, total, false);
            c
        }));
        let by_input = rows_by_input(&words, chunk.div_ceil(64));
        let mut i = 0;
        while i + 4 <= k {
            let four = <&mut [f32; 4 * BLOCK]>::try_from(&mut dw[i * BLOCK..(i + 4) * BLOCK]);
            if let Ok(four) = four {
                add_kept_rows_four(four, gs, [&by_input[i], &by_input[i + 1], &by_input[i + 2], &by_input[i + 3]]);
            }
            i += 4;
        }
        for i in i..k {
            add_kept_rows(&mut dw[i * BLOCK..(i + 1) * BLOCK], gs, &by_input[i]);
        }
    }
}

/// Rows `c0 .. c0 + chunk` (`chunk` at most [`CHUNK`]), which lie inside their tensors:
/// each row's spikes as a word into `words` (0 when no error is processed, since then
/// nothing changes and the count of inputs does not matter), its number of processed errors
/// into `processed`, and its errors, −0 where not processed, into `gs`. `on(r, e)` gives
/// the processed lanes of row `r` with widened errors `e`.
#[inline(always)]
fn chunk_rows<S: Storage>(
    (c0, chunk): (usize, usize),
    v: GradRows<'_, S>,
    on: impl Fn(usize, &[f32; BLOCK]) -> u64,
    words: &mut [u64; CHUNK],
    processed: &mut [u8; CHUNK],
    gs: &mut [Lanes; CHUNK],
) {
    let (spk, err) = (v.spk, v.err);
    let all = words.iter_mut().zip(processed.iter_mut()).zip(gs.iter_mut());
    for (j, ((word, p), g)) in all.take(chunk).enumerate() {
        let r = c0 + j;
        let at = err.start + r * err.stride;
        let Some(Ok(e16)) = err.data.get(at..at + BLOCK).map(<&[S; BLOCK]>::try_from) else { break };
        let mut e = [0.0f32; BLOCK];
        S::to_f32_16(e16, &mut e);
        let lanes = on(r, &e);
        let count = lanes.count_ones();
        *p = count as u8;
        *word = if count == 0 { 0 } else { spk.bits.window(spk.start + r * spk.stride, spk.len) };
        *g = minus_zero_unprocessed(&e, lanes);
    }
}

/// The lanes of non-zero errors: the processed ones without an `nz` bitmap.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn nonzero_lanes(e: &[f32; BLOCK]) -> u64 {
    let mut on = 0u64;
    for l in 0..BLOCK {
        on |= u64::from(e[l] != 0.0) << l;
    }
    on
}

/// The errors of the lanes in `on`, −0 in the others: adding −0 (times a spike's 1.0) to
/// an f32 accumulator leaves its bits as they are. The lanes of [`Processed::of`] with
/// every unprocessed +0 made −0.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn minus_zero_unprocessed(e: &[f32; BLOCK], on: u64) -> Lanes {
    // Bit `l` of `on` tested against a constant per lane: a broadcast, an `and` and a
    // compare per vector (a shift by the lane number compiled to a long shuffle sequence).
    const BIT: [u32; BLOCK] = {
        let mut b = [0u32; BLOCK];
        let mut l = 0;
        while l < BLOCK {
            b[l] = 1 << l;
            l += 1;
        }
        b
    };
    let on = on as u32;
    let mut g = [0.0f32; BLOCK];
    for l in 0..BLOCK {
        // All ones where bit `l` is clear, zero where it is set.
        let keep = u32::from(on & BIT[l] == 0).wrapping_neg();
        g[l] = f32::from_bits((e[l].to_bits() & !keep) | (keep & 0x8000_0000));
    }
    g
}

/// The rows of a chunk per input: bit `j % 64` of word `j / 64` of entry `i` is bit `i` of
/// `words[j]`, for the first `blocks` blocks of 64 rows (the others stay 0).
fn rows_by_input(words: &[u64; CHUNK], blocks: usize) -> [[u64; CHUNK / 64]; 64] {
    let mut by_input = [[0u64; CHUNK / 64]; 64];
    for b in 0..blocks.min(CHUNK / 64) {
        let mut m = [0u64; 64];
        m.copy_from_slice(&words[64 * b..64 * (b + 1)]);
        transpose_bits(&mut m);
        for (i, w) in m.iter().enumerate() {
            by_input[i][b] = *w;
        }
    }
    by_input
}

/// Transposes a 64 x 64 bit matrix in place (bit `c` of word `r` is element `(r, c)`), by
/// swapping ever smaller off-diagonal blocks: six rounds of word operations instead of a
/// step per set bit.
fn transpose_bits(m: &mut [u64; 64]) {
    let (mut j, mut mask) = (32usize, 0x0000_0000_ffff_ffffu64);
    while j != 0 {
        let mut r = 0;
        while r < 64 {
            for r in r..r + j {
                let t = ((m[r] >> j) ^ m[r + j]) & mask;
                m[r] ^= t << j;
                m[r + j] ^= t;
            }
            r += 2 * j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Calls `f(q, i)` for each set bit `i` of each `bits[q]`, each word's bits in increasing
/// order: four independent chains of work interleaved as long as all four last (the count
/// of the shortest is known up front), which keeps the adder busy where one chain waits on
/// each add's latency, then what is left of each.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn walk_four(bits: [u64; 4], mut f: impl FnMut(usize, usize)) {
    let mut x = bits;
    let common = x.iter().map(|b| b.count_ones()).min().unwrap_or(0);
    for _ in 0..common {
        for q in 0..4 {
            f(q, x[q].trailing_zeros() as usize);
            x[q] &= x[q].wrapping_sub(1);
        }
    }
    for (q, mut b) in x.into_iter().enumerate() {
        while b != 0 {
            f(q, b.trailing_zeros() as usize);
            b &= b - 1;
        }
    }
}

/// [`add_kept_rows`] for four inputs' rows of `dw` at once (`acc` holds the four rows),
/// their chains of adds interleaved by [`walk_four`].
#[inline(always)]
fn add_kept_rows_four(acc: &mut [f32; 4 * BLOCK], gs: &[[f32; BLOCK]; CHUNK], kept_rows: [&[u64; CHUNK / 64]; 4]) {
    let mut a = [[0.0f32; BLOCK]; 4];
    for (q, a) in a.iter_mut().enumerate() {
        a.copy_from_slice(&acc[q * BLOCK..(q + 1) * BLOCK]);
    }
    for w in 0..CHUNK / 64 {
        let x = [kept_rows[0][w], kept_rows[1][w], kept_rows[2][w], kept_rows[3][w]];
        walk_four(x, |q, m| add_kept(&mut a[q], &gs[(64 * w + m) % CHUNK]));
    }
    for (q, a) in a.iter().enumerate() {
        acc[q * BLOCK..(q + 1) * BLOCK].copy_from_slice(a);
    }
}

/// `a[l] = mac(a[l], g[l], 1.0)` with a kept row's errors `g`, for a spike (the product
/// with its 1.0 is exact).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add_kept(a: &mut [f32; BLOCK], g: &[f32; BLOCK]) {
    for l in 0..BLOCK {
        a[l] = mac::<f32, false>(a[l], g[l], 1.0);
    }
}

/// `acc[l] = mac(acc[l], g[l], 1.0)` for the rows whose bits are set in `kept_rows`, in
/// increasing order, the sums held in registers.
#[inline(always)]
fn add_kept_rows(acc: &mut [f32], gs: &[[f32; BLOCK]; CHUNK], kept_rows: &[u64; CHUNK / 64]) {
    let Ok(acc) = <&mut [f32; BLOCK]>::try_from(acc) else { return };
    let mut a = *acc;
    for (w, &word) in kept_rows.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            add_kept(&mut a, &gs[(64 * w + bits.trailing_zeros() as usize) % CHUNK]);
            bits &= bits - 1;
        }
    }
    *acc = a;
}

/// [`add_lanes`] for each set bit `i` of `bits` on row `i` of `dw` (`n` wide). Not inlined:
/// inlined into the row loop, next to the code that makes `p`, its lanes were compiled to
/// scalar and half-vector code, at twice the instructions.
#[inline(never)]
fn add_spikes<S: Storage, const NARROW: bool>(dw: &mut [f32], n: usize, p: &Processed, mut bits: u64, all: bool) {
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        add_lanes::<S, NARROW>(&mut dw[i * n..(i + 1) * n], p, all);
        bits &= bits - 1;
    }
}

/// Whether any value of `v` is a signalling NaN (exponent all ones, quiet bit clear,
/// payload not zero), without a branch per value.
fn has_signalling_nan(v: &[f32]) -> bool {
    let mut any = false;
    for x in v {
        let b = x.to_bits() & 0x7fff_ffff;
        any |= b > 0x7f80_0000 && b < 0x7fc0_0000;
    }
    any
}

/// `row[l] = mac(row[l], g[l], 1.0)` for one spike, then, unless `all` errors are
/// processed, the old bits put back in the lanes of unprocessed errors: the lanes of
/// [`linear_kn_weight_grad`]'s block path. The lanes are index loops over a whole block,
/// which the compiler turns into vector code.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add_lanes<S: Storage, const NARROW: bool>(row: &mut [f32], p: &Processed, all: bool) {
    let (g, keep) = (&p.g, &p.keep);
    match <&mut [f32; BLOCK]>::try_from(&mut *row) {
        Ok(row) if all => {
            for l in 0..BLOCK {
                row[l] = mac::<S, NARROW>(row[l], g[l], 1.0);
            }
        }
        Ok(row) => {
            for l in 0..BLOCK {
                row[l] = blend(mac::<S, NARROW>(row[l], g[l], 1.0), row[l], keep[l]);
            }
        }
        Err(_) => {
            for (l, x) in row.iter_mut().enumerate() {
                *x = blend(mac::<S, NARROW>(*x, g[l], 1.0), *x, keep[l]);
            }
        }
    }
}

/// The count [`linear_kn_weight_grad_rows`] (and the one-row kernel) gives a row of `k`
/// spikes with `ones` set and `processed` of its `n` errors processed (the ones `nz` marks,
/// or else the [`nonzero_errors`]): each processed error times each set spike, or every
/// spike with `dense`, executed. It needs no arithmetic, so a job's count can be made when
/// the job is launched (see the simulator's `jobs.rs`).
pub fn weight_grad_row_ops((ones, k): (usize, usize), (processed, n): (usize, usize), dense: bool) -> OpCount {
    let used = if dense { k } else { ones };
    let mut c = OpCount::default();
    count(&mut c, (used * processed) as u64, (k * n) as u64, false);
    c
}

/// The number of non-zero errors of a row, which `wg.linear` processes when it has no `nz`.
pub fn nonzero_errors<S: Storage>(err: &[S]) -> usize {
    err.iter().filter(|e| e.to_f32() != 0.0).count()
}

/// The count [`linear_kn_forward_rows`] (and the one-row kernel) gives a row of `k` spikes
/// with `ones` set into `n` outputs: the weights of its set spikes, or all with `dense`,
/// executed.
pub fn forward_row_ops((ones, k): (usize, usize), n: usize, dense: bool) -> OpCount {
    let mut c = OpCount::default();
    count(&mut c, (ones * n) as u64, (k * n) as u64, dense);
    c
}

/// Where the output rows of a multi-row forward tile are: row `r` is `n` values starting
/// at `start + r * stride` of the buffer.
#[derive(Clone, Copy, Debug)]
pub struct OutRows {
    /// Outputs per row.
    pub n: usize,
    /// Where row 0 starts.
    pub start: usize,
    /// Elements from one row to the next.
    pub stride: usize,
}

/// [`linear_kn_forward_wide`] on `rows` rows of spikes (`spk(r)` gives row `r`, every row of
/// the same length), each into its row of `out` (see [`OutRows`]), rows in order, pushing
/// each row's count onto `ops`; `w` is the tile widened by [`widen`](super::tile::widen).
///
/// With f32 accumulators, a tile sixteen outputs wide and rows of at most 64 spikes (the
/// staged fc tiles), four rows' sums are kept in registers at once: each row's sums are
/// the same adds in the same order, but four independent chains of adds keep the adder
/// busy where one waits on each add's latency. The sums never read `out`, so computing
/// them early is safe even when output rows overlap; each row's prior output is read and
/// its result written in row order. Other tiles call the one-row kernel row by row.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_forward_rows<'b, S: Storage>(
    mode: Accum,
    w: &[f32],
    rows: usize,
    spk: impl Fn(usize) -> SpikeSlice<'b>,
    (out, at): (&mut [S], OutRows),
    (acc, dense): (bool, bool),
    (scratch, lanes): (&mut Vec<f32>, &mut Vec<Lanes>),
    ops: &mut Vec<OpCount>,
) {
    let k = if rows == 0 { 0 } else { spk(0).len() };
    if mode != Accum::F32 || at.n != BLOCK || k > 64 || w.len() < k * BLOCK {
        for r in 0..rows {
            let o = at.start + r * at.stride;
            let mut c = OpCount::default();
            linear_kn_forward_wide(mode, w, Input::Spikes(spk(r)), &mut out[o..o + at.n], acc, dense, scratch, &mut c);
            ops.push(c);
        }
        return;
    }
    // The tile in blocks of lanes, 64 of them, so that an input's index (below 64) needs no
    // check. The vector is the caller's and keeps its size, so nothing is zeroed per call;
    // blocks past `k` hold an earlier tile's weights, which no spike reaches.
    if lanes.len() < 64 {
        lanes.resize(64, [0.0; BLOCK]);
    }
    for (t, wr) in lanes.iter_mut().zip(w[..k * BLOCK].chunks_exact(BLOCK)) {
        t.copy_from_slice(wr);
    }
    if let Ok(tile) = <&[Lanes; 64]>::try_from(&lanes[..64]) {
        forward_tile(tile, (rows, k), spk, (out, at), (acc, dense), ops);
    }
}

/// The fast path of [`linear_kn_forward_rows`] on a tile of `k` inputs sixteen wide.
fn forward_tile<'b, S: Storage>(
    tile: &[Lanes; 64],
    (rows, k): (usize, usize),
    spk: impl Fn(usize) -> SpikeSlice<'b>,
    (out, at): (&mut [S], OutRows),
    (acc, dense): (bool, bool),
    ops: &mut Vec<OpCount>,
) {
    let mut r = 0;
    while r + 4 <= rows {
        let bits = [spk(r).as_word(), spk(r + 1).as_word(), spk(r + 2).as_word(), spk(r + 3).as_word()];
        // Each row's sums start at +0 and add the weights of its set bits in increasing
        // order, as the one-row kernel's do.
        let mut sums = [[0.0f32; BLOCK]; 4];
        walk_four(bits, |q, i| add_weights(&mut sums[q], &tile[i % 64]));
        for q in 0..4 {
            finish_row((out, at), r + q, sums[q], acc);
            ops.push(forward_count(bits[q], k, dense));
        }
        r += 4;
    }
    for r in r..rows {
        let bits = spk(r).as_word();
        let mut sums = [0.0f32; BLOCK];
        let mut x = bits;
        while x != 0 {
            add_weights(&mut sums, &tile[x.trailing_zeros() as usize % 64]);
            x &= x - 1;
        }
        finish_row((out, at), r, sums, acc);
        ops.push(forward_count(bits, k, dense));
    }
}

/// `a[j] += w[j]` with input `i`'s weights `w`, whose product with the spike's 1.0 is exact.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add_weights(a: &mut [f32; BLOCK], w: &[f32; BLOCK]) {
    for j in 0..BLOCK {
        a[j] += w[j];
    }
}

/// Adds row `r`'s prior outputs last when accumulating and rounds its sums into the row,
/// as the one-row kernel finishes a block.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn finish_row<S: Storage>((out, at): (&mut [S], OutRows), r: usize, mut a: [f32; BLOCK], acc: bool) {
    let o = at.start + r * at.stride;
    let Ok(dst) = <&mut [S; BLOCK]>::try_from(&mut out[o..o + BLOCK]) else { return };
    if acc {
        let mut prior = [0.0f32; BLOCK];
        S::to_f32_16(dst, &mut prior);
        for j in 0..BLOCK {
            a[j] += prior[j];
        }
    }
    S::from_f32_slice(&a, dst);
}

/// The count of one forward row of `k` spikes into sixteen outputs.
#[inline(always)]
fn forward_count(bits: u64, k: usize, dense: bool) -> OpCount {
    let mut c = OpCount::default();
    count(&mut c, u64::from(bits.count_ones()) * BLOCK as u64, (k * BLOCK) as u64, dense);
    c
}

/// One row of a multi-row `bp.linear`: its errors and its `nz` bitmap.
pub type ErrRow<'b, S> = (&'b [S], Option<SpikeSlice<'b>>);

/// [`linear_kn_backward_cols`] on `rows` rows (`row(r)` gives row `r`'s errors and bitmap,
/// every row of the same length), each into its row of `out` (see [`OutRows`]), rows in
/// order, pushing each row's count onto `ops`; `cols` is the tile widened and transposed by
/// [`transpose_wide`](super::tile::transpose_wide).
///
/// With f32 accumulators, sixteen outputs, at most 64 errors per row and output rows that
/// do not overlap (the staged fc tiles), four rows' sums are kept in registers at once,
/// each the same chain of adds as the one-row kernel's: the prior output (or +0), then the
/// processed non-zero errors' products in increasing order. The prior outputs of four rows
/// are read before any of them is written, which is why overlapping rows take the one-row
/// kernel, as do all other tiles.
#[allow(clippy::too_many_arguments)]
pub fn linear_kn_backward_rows<'b, S: Storage>(
    mode: Accum,
    cols: &[f32],
    rows: usize,
    row: impl Fn(usize) -> ErrRow<'b, S>,
    (out, at): (&mut [S], OutRows),
    acc: bool,
    scratch: &mut Vec<f32>,
    ops: &mut Vec<OpCount>,
) {
    let n = if rows == 0 { 0 } else { row(0).0.len() };
    let words = rows > 0 && n <= 64 && row(0).1.is_none_or(|z| z.len() == n);
    if mode != Accum::F32 || at.n != BLOCK || !words || cols.len() < n * BLOCK || at.stride < BLOCK {
        for r in 0..rows {
            let (err, nz) = row(r);
            let o = at.start + r * at.stride;
            let mut c = OpCount::default();
            linear_kn_backward_cols(mode, cols, err, nz, &mut out[o..o + at.n], acc, scratch, &mut c);
            ops.push(c);
        }
        return;
    }
    let cols = &cols[..n * BLOCK];
    let mut r = 0;
    while r + 4 <= rows {
        let mut g = [[0.0f32; 64]; 4];
        let mut live = [0u64; 4];
        let mut sums = [[0.0f32; BLOCK]; 4];
        for q in 0..4 {
            let (err, nz) = row(r + q);
            let processed;
            (live[q], processed) = live_errors(err, nz, &mut g[q]);
            start_row((out, at), r + q, &mut sums[q], acc);
            ops.push(backward_count(n, processed));
        }
        while live[0] != 0 && live[1] != 0 && live[2] != 0 && live[3] != 0 {
            for q in 0..4 {
                add_products(&mut sums[q], cols, &g[q], live[q].trailing_zeros() as usize);
                live[q] &= live[q] - 1;
            }
        }
        for q in 0..4 {
            while live[q] != 0 {
                add_products(&mut sums[q], cols, &g[q], live[q].trailing_zeros() as usize);
                live[q] &= live[q] - 1;
            }
            end_row((out, at), r + q, &sums[q]);
        }
        r += 4;
    }
    for r in r..rows {
        let (err, nz) = row(r);
        let mut g = [0.0f32; 64];
        let (mut live, processed) = live_errors(err, nz, &mut g);
        let mut sums = [0.0f32; BLOCK];
        start_row((out, at), r, &mut sums, acc);
        while live != 0 {
            add_products(&mut sums, cols, &g, live.trailing_zeros() as usize);
            live &= live - 1;
        }
        end_row((out, at), r, &sums);
        ops.push(backward_count(n, processed));
    }
}

/// Widens a row's errors (at most 64) into `g` and returns the bits of those the one-row
/// kernel adds, processed (`nz` bit set, or every one without a bitmap) and not ±0, with
/// the number processed.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn live_errors<S: Storage>(err: &[S], nz: Option<SpikeSlice<'_>>, g: &mut [f32; 64]) -> (u64, u64) {
    let n = err.len().min(64);
    S::to_f32_slice(&err[..n], &mut g[..n]);
    let mut bits = 0u64;
    for j in 0..n {
        bits |= u64::from(g[j] != 0.0) << j;
    }
    match nz {
        Some(z) => {
            let word = z.as_word();
            (bits & word, u64::from(word.count_ones()))
        }
        None => (bits, n as u64),
    }
}

/// `a[i] += cols[16j + i] * g[j]`: error `j`'s products, rounded to f32 and added, as the
/// one-row kernel's `axpy` does.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add_products(a: &mut [f32; BLOCK], cols: &[f32], g: &[f32; 64], j: usize) {
    let c = &cols[j * BLOCK..(j + 1) * BLOCK];
    let x = g[j];
    for i in 0..BLOCK {
        a[i] += c[i] * x;
    }
}

/// Starts row `r`'s sums at its prior outputs when accumulating (they stay +0 otherwise).
#[inline(always)]
fn start_row<S: Storage>((out, at): (&[S], OutRows), r: usize, a: &mut [f32; BLOCK], acc: bool) {
    let o = at.start + r * at.stride;
    if let (true, Ok(prior)) = (acc, <&[S; BLOCK]>::try_from(&out[o..o + BLOCK])) {
        S::to_f32_16(prior, a);
    }
}

/// Rounds row `r`'s sums into its outputs.
#[inline(always)]
fn end_row<S: Storage>((out, at): (&mut [S], OutRows), r: usize, a: &[f32; BLOCK]) {
    let o = at.start + r * at.stride;
    S::from_f32_slice(a, &mut out[o..o + BLOCK]);
}

/// The count of one backward row of `n` errors into sixteen outputs: the `processed`
/// errors' products executed, the rest skipped.
#[inline(always)]
fn backward_count(n: usize, processed: u64) -> OpCount {
    backward_row_ops(processed as usize, (n, BLOCK))
}

/// The count [`linear_kn_backward_rows`] (and the one-row kernel) gives a row of `n` errors
/// of which `processed` are processed (the ones `nz` marks, or all without a bitmap), into
/// `k` outputs: each processed error's `k` products, executed. Like the other row counts it
/// needs no arithmetic.
pub fn backward_row_ops(processed: usize, (n, k): (usize, usize)) -> OpCount {
    let mut c = OpCount::default();
    count(&mut c, (processed * k) as u64, (n * k) as u64, false);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tile::tests::Lcg;
    use crate::spikes::SpikeBits;
    use half::f16;

    /// Bits of every value, with every quiet NaN as one pattern (as [`half_bits`] does) and
    /// signalling NaNs as they are.
    fn quiet_nans_alike(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| if x.is_nan() && x.to_bits() & 0x0040_0000 != 0 { u32::MAX } else { x.to_bits() }).collect()
    }

    /// Bits of every value, so that −0 compares as it is stored, with every NaN as one
    /// pattern: which of two NaN operands an add returns depends on the operand order the
    /// compiler picks for a commutative add (Rust does not specify NaN bits), so two builds
    /// of the same sums may differ there, and only there.
    fn half_bits(v: &[f16]) -> Vec<u16> {
        v.iter().map(|x| if x.is_nan() { u16::MAX } else { x.to_bits() }).collect()
    }

    /// The multi-row weight gradient against the one-row kernel called row by row, on random
    /// tiles (widths up to and past a block, rows up to and past 64 spikes), unaligned row
    /// strides, up to a few hundred rows, with and without `nz`, in both accumulator modes
    /// and both skip settings, with ±0, ±inf and NaN errors and accumulators (and a
    /// signalling NaN in some tiles): every accumulator's bits and every row's count agree.
    #[test]
    fn weight_grad_rows_match_one_row_kernel() {
        let mut rng = Lcg(5);
        for case in 0..500 {
            let n = [1, 5, 10, 16, 16, 17][case % 6];
            let k = [1, 37, 56, 64, 64, 65][(case / 6) % 6];
            // Some instructions run past one chunk of rows of the input-by-input path.
            let rows = if case % 10 == 4 { 250 + rng.next() as usize % 300 } else { 1 + rng.next() as usize % 12 };
            let (s_stride, e_stride) = (k + rng.next() as usize % 9, n + rng.next() as usize % 5);
            let (s0, z0) = (rng.next() as usize % 70, rng.next() as usize % 70);
            let density = 1 + rng.next() % 6;
            let spikes = SpikeBits::from_fn(s0 + rows * s_stride, |_| rng.next() % density == 0);
            let zeros = 1 + rng.next() % 4;
            let err: Vec<f16> = (0..rows * e_stride).map(|_| rng.half_or_special(zeros)).collect();
            let all_on = case % 5 == 2;
            let nz_bits = SpikeBits::from_fn(z0 + rows * e_stride, |_| all_on || rng.next() % density != 0);
            let with_nz = case % 3 != 0;
            let mut start: Vec<f32> = (0..k * n).map(|_| rng.acc_or_special()).collect();
            if case % 4 == 2 {
                // A signalling NaN somewhere in the tile: the kernel must blend, not add −0.
                start[rng.next() as usize % (k * n)] = f32::from_bits(0x7fa0_0001 | (rng.next() & 0x8000_0000));
            }
            let mode = if [0, 1, 2, 4].contains(&(case % 6)) { Accum::F32 } else { Accum::Storage };
            let dense = case % 7 == 3;
            let v = GradRows {
                spk: BitRowsAt { bits: &spikes, start: s0, len: k, stride: s_stride },
                err: ValRowsAt { data: &err, start: 0, len: n, stride: e_stride },
                nz: with_nz.then_some(BitRowsAt { bits: &nz_bits, start: z0, len: n, stride: e_stride }),
            };
            let row = |r: usize| v.row(r);
            let (mut want, mut got) = (start.clone(), start);
            let mut want_ops = Vec::new();
            for r in 0..rows {
                let (spk, e, nz) = row(r);
                let mut c = OpCount::default();
                let work = (&mut Vec::new(), &mut Vec::new());
                linear_kn_weight_grad(mode, Input::Spikes(spk), e, nz, &mut want, dense, work, &mut c);
                let processed = nz.map_or_else(|| nonzero_errors(e), |z| z.count_ones());
                let ahead = weight_grad_row_ops((spk.count_ones(), k), (processed, n), dense);
                assert_eq!(ahead, c, "case {case}, row {r}: count ahead");
                want_ops.push(c);
            }
            let mut got_ops = Vec::new();
            linear_kn_weight_grad_rows(mode, rows, v, &mut got, dense, (&mut got_ops, &mut vec![[f32::NAN; BLOCK]; 3]));
            // Exact bits but for quiet NaNs, all one pattern (see [`half_bits`]); a
            // signalling NaN must stay as it is where the error is not processed.
            assert_eq!(quiet_nans_alike(&got), quiet_nans_alike(&want), "case {case}: k = {k}, n = {n}, {mode:?}");
            assert_eq!(got_ops, want_ops, "case {case}");
        }
    }

    /// The multi-row forward kernel against the one-row kernel called row by row, on random
    /// tiles (sixteen wide and not, rows up to and past 64 spikes), with weights and prior
    /// outputs that include ±0, ±inf and NaN, output rows apart, touching and overlapping
    /// (stride 0 too, where each row accumulates onto the last), with and without `acc`, in
    /// both accumulator modes and both skip settings: outputs and counts agree bit for bit.
    #[test]
    fn forward_rows_match_one_row_kernel() {
        let mut rng = Lcg(9);
        for case in 0..600 {
            let n = [16, 16, 16, 5, 17][case % 5];
            let k = [1, 37, 56, 64, 64, 65][(case / 5) % 6];
            let rows = 1 + rng.next() as usize % 11;
            let s_stride = k + rng.next() as usize % 9;
            let o_stride = [n, 0, n / 2, n + 3][rng.next() as usize % 4];
            let s0 = rng.next() as usize % 70;
            let density = 1 + rng.next() % 6;
            let spikes = SpikeBits::from_fn(s0 + rows * s_stride, |_| rng.next() % density == 0);
            let w: Vec<f16> = (0..k * n).map(|_| rng.half_or_special(7)).collect();
            let mut wide = Vec::new();
            crate::kernels::tile::widen(&w, &mut wide);
            let o0 = rng.next() as usize % 5;
            let start: Vec<f16> = (0..o0 + rows * o_stride + n).map(|_| rng.half_or_special(4)).collect();
            let mode = if case % 2 == 0 { Accum::F32 } else { Accum::Storage };
            let (acc, dense) = (case % 3 != 0, case % 7 == 3);
            let spk = |r: usize| spikes.slice(s0 + r * s_stride, k);
            let (mut want, mut got) = (start.clone(), start);
            let mut want_ops = Vec::new();
            for r in 0..rows {
                let (o, mut c) = (o0 + r * o_stride, OpCount::default());
                let out = &mut want[o..o + n];
                linear_kn_forward_wide(mode, &wide, Input::Spikes(spk(r)), out, acc, dense, &mut Vec::new(), &mut c);
                assert_eq!(forward_row_ops((spk(r).count_ones(), k), n, dense), c, "case {case}, row {r}: count ahead");
                want_ops.push(c);
            }
            let at = OutRows { n, start: o0, stride: o_stride };
            let mut got_ops = Vec::new();
            // Scratch left over from a wider tile: only the blocks of this one may be read.
            let mut scratch = (vec![f32::NAN; 8], vec![[f32::NAN; BLOCK]; 70]);
            let work = (&mut scratch.0, &mut scratch.1);
            linear_kn_forward_rows(mode, &wide, rows, spk, (&mut got, at), (acc, dense), work, &mut got_ops);
            assert_eq!(half_bits(&got), half_bits(&want), "case {case}: k = {k}, n = {n}, {mode:?}, acc = {acc}");
            assert_eq!(got_ops, want_ops, "case {case}");
        }
    }

    /// The multi-row backward kernel against the one-row kernel called row by row, on random
    /// tiles (sixteen outputs and not, rows up to and past 64 errors), with weights, errors
    /// and prior outputs that include ±0, ±inf and NaN, output rows apart, touching and
    /// overlapping (stride 0 too), with and without `nz` and `acc`, in both accumulator
    /// modes: outputs and counts agree bit for bit.
    #[test]
    fn backward_rows_match_one_row_kernel() {
        let mut rng = Lcg(13);
        for case in 0..600 {
            let k = [16, 16, 16, 5, 17][case % 5];
            let n = [1, 10, 16, 63, 64, 65][(case / 5) % 6];
            let rows = 1 + rng.next() as usize % 11;
            let e_stride = n + rng.next() as usize % 5;
            let o_stride = [k, 0, k / 2, k + 3, k, k][rng.next() as usize % 6];
            let (e0, z0, o0) = (rng.next() as usize % 7, rng.next() as usize % 70, rng.next() as usize % 5);
            let zeros = 1 + rng.next() % 4;
            let err: Vec<f16> = (0..e0 + rows * e_stride).map(|_| rng.half_or_special(zeros)).collect();
            let density = 1 + rng.next() % 4;
            let nz_bits = SpikeBits::from_fn(z0 + rows * e_stride, |_| rng.next() % density != 0);
            let w: Vec<f16> = (0..k * n).map(|_| rng.half_or_special(7)).collect();
            let mut cols = Vec::new();
            crate::kernels::tile::transpose_wide(&w, k, n, &mut cols);
            let start: Vec<f16> = (0..o0 + rows * o_stride + k).map(|_| rng.half_or_special(4)).collect();
            let mode = if case % 4 == 3 { Accum::Storage } else { Accum::F32 };
            let (acc, with_nz) = (case % 3 != 0, case % 7 >= 2);
            let row = |r: usize| {
                let at = e0 + r * e_stride;
                (&err[at..at + n], with_nz.then(|| nz_bits.slice(z0 + r * e_stride, n)))
            };
            let (mut want, mut got) = (start.clone(), start);
            let mut want_ops = Vec::new();
            for r in 0..rows {
                let (o, mut c) = (o0 + r * o_stride, OpCount::default());
                let (e, nz) = row(r);
                linear_kn_backward_cols(mode, &cols, e, nz, &mut want[o..o + k], acc, &mut Vec::new(), &mut c);
                let processed = nz.map_or(n, |z| z.count_ones());
                assert_eq!(backward_row_ops(processed, (n, k)), c, "case {case}, row {r}: count ahead");
                want_ops.push(c);
            }
            let at = OutRows { n: k, start: o0, stride: o_stride };
            let mut got_ops = Vec::new();
            let mut scratch = vec![f32::NAN; 8];
            linear_kn_backward_rows(mode, &cols, rows, row, (&mut got, at), acc, &mut scratch, &mut got_ops);
            assert_eq!(half_bits(&got), half_bits(&want), "case {case}: k = {k}, n = {n}, {mode:?}, acc = {acc}");
            assert_eq!(got_ops, want_ops, "case {case}");
        }
    }

    /// The bit transpose against a bit-by-bit one, on random matrices of every density and
    /// on the identity, all ones and single bits: element `(r, c)` moves to `(c, r)`.
    #[test]
    fn transpose_bits_matches_a_bit_by_bit_transpose() {
        let mut rng = Lcg(21);
        let mut cases: Vec<[u64; 64]> = vec![[0; 64], [u64::MAX; 64], std::array::from_fn(|r| 1 << r)];
        cases.push(std::array::from_fn(|r| if r == 5 { 1 << 63 } else { 0 }));
        for density in 1..8 {
            let word = |rng: &mut Lcg| (0..64).fold(0u64, |w, b| w | (u64::from(rng.next() % 8 < density) << b));
            cases.push(std::array::from_fn(|_| word(&mut rng)));
        }
        for m in cases {
            let mut got = m;
            transpose_bits(&mut got);
            let want: [u64; 64] = std::array::from_fn(|c| (0..64).fold(0, |w, r| w | (((m[r] >> c) & 1) << r)));
            assert_eq!(got, want);
        }
    }

    /// A signalling NaN accumulator in the lane of an unprocessed error keeps its bits (an
    /// add of −0 would make it quiet), and the other lanes still add their errors.
    #[test]
    fn signalling_nan_in_an_unprocessed_lane_stays_signalling() {
        let snan = f32::from_bits(0x7fa0_0001);
        let spikes = SpikeBits::from_fn(3, |i| i != 1);
        let err: Vec<f16> = (0..16).map(|j| f16::from_f32(j as f32 / 8.0 + 0.5)).collect();
        let nz = SpikeBits::from_fn(16, |j| j != 0);
        let mut dw = vec![0.0f32; 3 * 16];
        dw[2 * 16] = snan;
        let mut ops = Vec::new();
        let v = GradRows {
            spk: BitRowsAt { bits: &spikes, start: 0, len: 3, stride: 3 },
            err: ValRowsAt { data: &err, start: 0, len: 16, stride: 16 },
            nz: Some(BitRowsAt { bits: &nz, start: 0, len: 16, stride: 16 }),
        };
        linear_kn_weight_grad_rows(Accum::F32, 1, v, &mut dw, false, (&mut ops, &mut Vec::new()));
        assert_eq!(dw[2 * 16].to_bits(), snan.to_bits());
        assert_eq!(dw[0], 0.0);
        assert_eq!((dw[1], dw[2 * 16 + 1]), (err[1].to_f32(), err[1].to_f32()));
        assert_eq!(ops, vec![OpCount { executed: 2 * 15, skipped: 3 * 16 - 2 * 15 }]);
    }
}
