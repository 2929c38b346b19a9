//! Multi-row `fp.linear` and `wg.linear` as jobs, on other host threads (see `jobs.rs`).
//!
//! A staged fc program runs hundreds of these per step, each a few microseconds of sums
//! over 256 rows, and the cores' instructions interleave: while one core's tile is summed on
//! another thread, the scheduler goes on with the other cores. As for the conv jobs, the
//! handler counts each row's operations at issue, from the inputs alone
//! ([`forward_row_ops`], [`weight_grad_row_ops`]), and charges them then; the job runs the
//! same row kernel on the same values, so its sums are the ones the kernel makes in place.
//!
//! Nothing is copied: the job takes its output's buffer and its inputs' buffers out of the
//! table ([`Hold::Buffers`]) until it is joined, which the next instruction to name any of
//! them does first. In a staged fc program that is the same core's next tile (which loads
//! new weights and spikes, or reads the sums), by when the other cores have launched theirs.
//!
//! Only the common shape goes to a job: spikes in a 1-bit buffer, rows of 16-bit errors,
//! inputs outside the output's buffer (so that no row reads what an earlier one wrote), no
//! bias gradient, and enough rows of inputs to be worth handing over ([`MIN_JOB_INPUTS`]).
//! Every other instruction, and every instruction on one host thread, runs in place.

use super::SimError;
use super::buffers::BufData;
use super::exec::Exec;
use super::jobs::{Hold, Scratch, Work, launch};
use super::rows::{RowCharger, RowTouch, Rows};
use crate::fp::Storage;
use crate::kernels::OpCount;
use crate::kernels::tile::{transpose_wide, widen};
use crate::kernels::tile_rows::{
    BitRowsAt, GradRows, OutRows, ValRowsAt, backward_row_ops, forward_row_ops, linear_kn_backward_rows,
    linear_kn_forward_rows, linear_kn_weight_grad_rows, nonzero_errors, weight_grad_row_ops,
};
use isa::{Access, Buf};

/// A multi-row forward tile as its job needs it.
#[derive(Clone, Copy)]
pub(crate) struct FwdRows {
    pub(crate) n: usize,
    pub(crate) rows: Rows,
    pub(crate) acc: bool,
    pub(crate) dense: bool,
}

/// A multi-row error propagation as its job needs it: `n` errors into `k` outputs per row.
#[derive(Clone, Copy)]
pub(crate) struct BwdRows {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) rows: Rows,
    pub(crate) acc: bool,
}

/// A multi-row weight gradient as its job needs it.
#[derive(Clone, Copy)]
pub(crate) struct GradShape {
    pub(crate) n: usize,
    pub(crate) rows: Rows,
    pub(crate) dense: bool,
}

/// The fewest inputs (rows times inputs per row) an instruction's rows must hold to go to
/// a job: a smaller one (the 8-row tiles of `digits`) costs more to hand over and join
/// than to sum in place. The staged fc tiles hold 14,336 or 16,384.
const MIN_JOB_INPUTS: usize = 8192;

/// The fewest products (rows times errors times outputs per row) a `bp.linear`'s rows must
/// hold to go to a job. The staged fc tiles hold 40,960.
const MIN_JOB_PRODUCTS: usize = 32768;

/// The input buffers a job takes along: each slot once, in the order first named.
#[derive(Default)]
struct Taken(Vec<usize>);

impl Taken {
    /// The index among the taken buffers of `slot`'s, taking it if it is new.
    fn add(&mut self, slot: usize) -> usize {
        self.0.iter().position(|&s| s == slot).unwrap_or_else(|| {
            self.0.push(slot);
            self.0.len() - 1
        })
    }
}

/// Where the rows of a 1-bit operand are in its buffer: `len` bits per row, `stride` apart
/// from `start`, in the taken buffer `index`.
#[derive(Clone, Copy)]
struct BitPlace {
    index: usize,
    start: usize,
    len: usize,
    stride: usize,
}

impl BitPlace {
    /// The rows in the taken buffers, if that buffer is 1-bit (the handler checked it was).
    fn rows<S: Storage>(self, inputs: &[BufData<S>]) -> Option<BitRowsAt<'_>> {
        let bits = inputs.get(self.index)?.as_bits()?;
        Some(BitRowsAt { bits, start: self.start, len: self.len, stride: self.stride })
    }

    /// The rows of an optional operand (an `nz` bitmap): `Some(None)` without one, `None`
    /// only were its buffer not 1-bit.
    fn optional_rows<S: Storage>(place: Option<Self>, inputs: &[BufData<S>]) -> Option<Option<BitRowsAt<'_>>> {
        match place {
            None => Some(None),
            Some(p) => p.rows(inputs).map(Some),
        }
    }
}

/// The sum of a job's row counts, which debug builds compare with the count at issue.
fn total(ops: &[OpCount]) -> OpCount {
    ops.iter().fold(OpCount::default(), |mut t, o| {
        t.merge(*o);
        t
    })
}

impl<S: Storage> Exec<'_, S> {
    /// Launches `fp.linear`'s rows as a job if the shape allows it (see the module doc),
    /// and charges them, each row's count made from its spikes as it is charged (the last
    /// argument gives the charger, the varying buffer and its accesses, as `charge_rows`
    /// takes them); returns whether it did. The handler has checked the operands' lengths
    /// and row bounds.
    pub(crate) fn fwd_rows_job(
        &mut self,
        (spk, w, out): (&Access, &Access, &Access),
        t: FwdRows,
        (charger, var, varying): (RowCharger, Buf, impl FnMut(&mut RowTouch, OpCount) -> u64),
    ) -> Result<bool, SimError> {
        let count = usize::from(t.rows.count);
        let (x, o, wt) = (self.span("spk", spk)?, self.span("out", out)?, self.span("w", w)?);
        let bufs = &self.st.bufs;
        let (Some(bits), Some(_), Some(_)) = (bufs[x.slot].as_bits(), bufs[wt.slot].as_half(), bufs[o.slot].as_half())
        else {
            return Ok(false);
        };
        if !self.st.jobs.threaded() || count * x.len < MIN_JOB_INPUTS || x.slot == o.slot || wt.slot == o.slot {
            return Ok(false);
        }
        let stride = usize::from(t.rows.first);
        let ones = bits.row_ones(x.start, (x.len, stride), count);
        let counts = ones.map(|c| forward_row_ops((c as usize, x.len), t.n, t.dense));
        let charges = charger.charge(counts, varying);
        self.apply_row_charges(var, charges);
        let mut taken = Taken::default();
        let x_at = BitPlace { index: taken.add(x.slot), start: x.start, len: x.len, stride };
        let (w_index, w_range) = (taken.add(wt.slot), wt.range());
        let mode = self.st.mode;
        let at = OutRows { n: t.n, start: 0, stride: usize::from(t.rows.second) };
        let work: Work<S> = Box::new(move |data, range, inputs, scratch: &mut Scratch<S>| {
            let rs = &mut scratch.rows;
            rs.ops.clear();
            let w = inputs.get(w_index).and_then(BufData::as_half).and_then(|w| w.get(w_range));
            if let (Some(dst), Some(x), Some(w)) = (data.as_half_mut(), x_at.rows(inputs), w) {
                widen(w, &mut rs.wide);
                let work = (&mut rs.scratch, &mut rs.lanes);
                let dst = (&mut dst[range], at);
                linear_kn_forward_rows(mode, &rs.wide, count, |r| x.row(r), dst, (t.acc, t.dense), work, &mut rs.ops);
            }
            total(&rs.ops)
        });
        let sp = super::buffers::Span { len: Rows::skip(count - 1, t.rows.second) + t.n, ..o };
        let scratch = self.st.jobs.scratch();
        launch(self.st, sp, (work, scratch), Some(charges.total), (None, Hold::Buffers(taken.0)));
        Ok(true)
    }

    /// Launches `wg.linear`'s rows (without a bias gradient) as a job if the shape allows it
    /// (see the module doc), and charges them as [`fwd_rows_job`](Self::fwd_rows_job) does;
    /// returns whether it did. The handler has checked the operands' lengths and row bounds.
    pub(crate) fn grad_rows_job(
        &mut self,
        (spk, err, dw, nz): (&Access, &Access, &Access, &Option<Access>),
        g: GradShape,
        (charger, var, varying): (RowCharger, Buf, impl FnMut(&mut RowTouch, OpCount) -> u64),
    ) -> Result<bool, SimError> {
        let count = usize::from(g.rows.count);
        let (x, e, o) = (self.span("spk", spk)?, self.span("err", err)?, self.span("dw", dw)?);
        let z = nz.as_ref().map(|a| self.span("nz", a)).transpose()?;
        let bufs = &self.st.bufs;
        let (Some(bits), Some(errs), BufData::Word(_)) =
            (bufs[x.slot].as_bits(), bufs[e.slot].as_half(), &bufs[o.slot])
        else {
            return Ok(false);
        };
        let nz_bits = match z {
            None => None,
            Some(z) => match bufs[z.slot].as_bits() {
                Some(b) => Some((b, z)),
                None => return Ok(false),
            },
        };
        if !self.st.jobs.threaded() || count * x.len < MIN_JOB_INPUTS {
            return Ok(false);
        }
        let (first, second) = (usize::from(g.rows.first), usize::from(g.rows.second));
        let err_rows = ValRowsAt { data: errs, start: e.start, len: g.n, stride: second };
        let ones = bits.row_ones(x.start, (x.len, first), count).map(|c| (c as usize, x.len));
        let charges = match nz_bits {
            Some((b, z)) => {
                let processed = b.row_ones(z.start, (g.n, second), count);
                let counts = ones.zip(processed).map(|(s, p)| weight_grad_row_ops(s, (p as usize, g.n), g.dense));
                charger.charge(counts, varying)
            }
            None => {
                let processed = (0..count).map(|r| nonzero_errors(err_rows.row(r)));
                let counts = ones.zip(processed).map(|(s, p)| weight_grad_row_ops(s, (p, g.n), g.dense));
                charger.charge(counts, varying)
            }
        };
        self.apply_row_charges(var, charges);
        let mut taken = Taken::default();
        let x_at = BitPlace { index: taken.add(x.slot), start: x.start, len: x.len, stride: first };
        let e_index = taken.add(e.slot);
        let z_at = z.map(|z| BitPlace { index: taken.add(z.slot), start: z.start, len: g.n, stride: second });
        let (mode, e_start) = (self.st.mode, e.start);
        let work: Work<S> = Box::new(move |data, range, inputs, scratch: &mut Scratch<S>| {
            let rs = &mut scratch.rows;
            rs.ops.clear();
            let errs = inputs.get(e_index).and_then(BufData::as_half);
            let nz = BitPlace::optional_rows(z_at, inputs);
            if let (Some(words), Some(spk), Some(data), Some(nz)) = (data.as_word_mut(), x_at.rows(inputs), errs, nz) {
                let err = ValRowsAt { data, start: e_start, len: g.n, stride: second };
                let v = GradRows { spk, err, nz };
                linear_kn_weight_grad_rows(mode, count, v, &mut words[range], g.dense, (&mut rs.ops, &mut rs.lanes));
            }
            total(&rs.ops)
        });
        let scratch = self.st.jobs.scratch();
        launch(self.st, o, (work, scratch), Some(charges.total), (None, Hold::Buffers(taken.0)));
        Ok(true)
    }

    /// Launches `bp.linear`'s rows as a job if the shape allows it (see the module doc),
    /// and charges them as [`fwd_rows_job`](Self::fwd_rows_job) does, each row's count made
    /// from its `nz` bits (without them every error is processed); returns whether it did.
    /// The handler has checked the operands' lengths and row bounds.
    pub(crate) fn bwd_rows_job(
        &mut self,
        (err, w, out, nz): (&Access, &Access, &Access, &Option<Access>),
        b: BwdRows,
        (charger, var, varying): (RowCharger, Buf, impl FnMut(&mut RowTouch, OpCount) -> u64),
    ) -> Result<bool, SimError> {
        let count = usize::from(b.rows.count);
        let (e, wt, o) = (self.span("err", err)?, self.span("w", w)?, self.span("out", out)?);
        let z = nz.as_ref().map(|a| self.span("nz", a)).transpose()?;
        let bufs = &self.st.bufs;
        let halves = bufs[e.slot].as_half().is_some() && bufs[wt.slot].as_half().is_some();
        let nz_bits = match z {
            None => None,
            Some(z) if z.slot != o.slot => match bufs[z.slot].as_bits() {
                Some(bits) => Some((bits, z)),
                None => return Ok(false),
            },
            Some(_) => return Ok(false),
        };
        let apart = e.slot != o.slot && wt.slot != o.slot && bufs[o.slot].as_half().is_some();
        if !self.st.jobs.threaded() || !halves || !apart || count * b.n * b.k < MIN_JOB_PRODUCTS {
            return Ok(false);
        }
        let first = usize::from(b.rows.first);
        let charges = match nz_bits {
            Some((bits, z)) => {
                let processed = bits.row_ones(z.start, (b.n, first), count);
                charger.charge(processed.map(|p| backward_row_ops(p as usize, (b.n, b.k))), varying)
            }
            None => charger.charge((0..count).map(|_| backward_row_ops(b.n, (b.n, b.k))), varying),
        };
        self.apply_row_charges(var, charges);
        let mut taken = Taken::default();
        let (e_index, e_start) = (taken.add(e.slot), e.start);
        let z_at = z.map(|z| BitPlace { index: taken.add(z.slot), start: z.start, len: b.n, stride: first });
        let (w_index, w_range) = (taken.add(wt.slot), wt.range());
        let mode = self.st.mode;
        let at = OutRows { n: b.k, start: 0, stride: usize::from(b.rows.second) };
        let work: Work<S> = Box::new(move |data, range, inputs, scratch: &mut Scratch<S>| {
            let rs = &mut scratch.rows;
            rs.ops.clear();
            let errs = inputs.get(e_index).and_then(BufData::as_half);
            let w = inputs.get(w_index).and_then(BufData::as_half).and_then(|w| w.get(w_range));
            let nz = BitPlace::optional_rows(z_at, inputs);
            if let (Some(dst), Some(errs), Some(w), Some(nz)) = (data.as_half_mut(), errs, w, nz) {
                transpose_wide(w, b.k, b.n, &mut rs.wide);
                let e = ValRowsAt { data: errs, start: e_start, len: b.n, stride: first };
                let row = move |r| (e.row(r), nz.map(|z| z.row(r)));
                let dst = (&mut dst[range], at);
                linear_kn_backward_rows(mode, &rs.wide, count, row, dst, b.acc, &mut rs.scratch, &mut rs.ops);
            }
            total(&rs.ops)
        });
        let sp = super::buffers::Span { len: Rows::skip(count - 1, b.rows.second) + b.k, ..o };
        let scratch = self.st.jobs.scratch();
        launch(self.st, sp, (work, scratch), Some(charges.total), (None, Hold::Buffers(taken.0)));
        Ok(true)
    }
}
