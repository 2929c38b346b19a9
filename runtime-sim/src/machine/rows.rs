//! Multi-row operands of `fp.linear`, `bp.linear` and `wg.linear`: the row count and the
//! row spans, checked once per instruction.
//!
//! An instruction with `rows = R` means exactly `R` single-row instructions in order, row `r`
//! finding each row-carrying operand `r * stride` elements past row 0. The handlers resolve
//! and check every row before changing anything, so a bad row fails the whole instruction
//! rather than leaving it half done.

use super::SimError;
use super::buffers::{BufData, Span};
use super::engine::{Opnd, RowCost};
use super::exec::Exec;
use crate::fp::Storage;
use crate::kernels::tile_rows::Lanes;
use crate::kernels::{Input, OpCount};
use crate::spikes::{SpikeBits, SpikeSlice};
use isa::Access;

/// The row count of a multi-row instruction and the element strides of its two
/// row-carrying operands, in the order the instruction names them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows {
    /// Number of rows.
    pub(crate) count: u16,
    /// Stride of the first row-carrying operand (`spk` of `fp.linear` and `wg.linear`,
    /// `err` and `nz` of `bp.linear`).
    pub(crate) first: u16,
    /// Stride of the second (`out` of `fp.linear` and `bp.linear`, `err` and `nz` of
    /// `wg.linear`).
    pub(crate) second: u16,
}

/// `x.div_ceil(d)` for `d` ≥ 1, as a shift when `d` is a power of two (PE arrays, their
/// columns and buffer port widths usually are). Charging is done per row of a multi-row
/// instruction, and its divisions by run-time values were most of the charging time.
#[inline]
pub(crate) fn div_ceil(x: u64, d: u64) -> u64 {
    Divisor::new(d).ceil(x)
}

/// A divisor (at least 1) that stays the same for every row of an instruction, with its
/// shift worked out once when it is a power of two.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Divisor {
    d: u64,
    shift: Option<u32>,
}

impl Divisor {
    /// The divisor `d`, which must be at least 1.
    #[inline]
    pub(crate) fn new(d: u64) -> Divisor {
        Divisor { d, shift: d.is_power_of_two().then(|| d.trailing_zeros()) }
    }

    /// `x.div_ceil(d)`.
    #[inline]
    pub(crate) fn ceil(self, x: u64) -> u64 {
        match self.shift {
            Some(s) => (x >> s) + u64::from(x & (self.d - 1) != 0),
            None => x.div_ceil(self.d),
        }
    }

    /// `x / d`.
    #[inline]
    pub(crate) fn floor(self, x: u64) -> u64 {
        match self.shift {
            Some(s) => x >> s,
            None => x / self.d,
        }
    }
}

impl Rows {
    /// Elements between row 0 and row `r` of an operand with this stride.
    pub(crate) fn skip(r: usize, stride: u16) -> usize {
        r * usize::from(stride)
    }
}

impl<S: Storage> Exec<'_, S> {
    /// The row count as a size, rejecting an instruction with no rows.
    pub(crate) fn row_count(&self, rows: u16) -> Result<usize, SimError> {
        if rows == 0 {
            return Err(self.bad("operand `rows` is 0: a multi-row instruction needs at least 1"));
        }
        Ok(usize::from(rows))
    }

    /// The row `skip` elements past input `x0`, which was read for row 0 with the output
    /// buffer `taken` out of the table. An input in another buffer is the same borrow,
    /// shifted: nothing is resolved again. One in the output's buffer (`x0` is then a copy)
    /// is read afresh, since an earlier row may have written it.
    pub(crate) fn next_row<'b>(
        &'b self,
        x0: &'b Opnd<'b, S>,
        a: &Access,
        skip: usize,
        taken: (usize, &BufData<S>),
    ) -> Result<Opnd<'b, S>, SimError> {
        if x0.is_copy() { self.read_row(x0.name(), a, skip, Some(taken)) } else { Ok(x0.shifted(skip)) }
    }

    /// Row 0 of an operand, after checking that its last row is inside the buffer too
    /// (rows only move forwards, so the rows between are inside as well).
    pub(crate) fn rows_span(&self, name: &str, a: &Access, count: usize, stride: u16) -> Result<Span, SimError> {
        self.span_row(name, a, Rows::skip(count.saturating_sub(1), stride))?;
        self.span(name, a)
    }
}

/// The rows of an input operand resolved once for a whole multi-row instruction: row `r`
/// lies `r * stride` elements past row 0, in a buffer that no row writes (the operand is
/// not in the output's buffer), so no row needs resolving or checking again. The handler
/// checks the bounds of the last row ([`Exec::rows_span`]) and row 0's element width
/// before making one.
pub(crate) struct RowView<'b, S> {
    data: RowData<'b, S>,
    start: usize,
    len: usize,
    stride: usize,
}

/// The buffer of a [`RowView`].
enum RowData<'b, S> {
    Bits(&'b SpikeBits),
    Half(&'b [S]),
}

impl<'b, S: Storage> RowView<'b, S> {
    /// The rows of `x0` (row 0, as read), or `None` if it is a copy of the output buffer or
    /// in a 32-bit buffer.
    pub(crate) fn of(x0: &Opnd<'b, S>, stride: u16) -> Option<Self> {
        let (data, sp) = x0.borrowed()?;
        let data = match data {
            BufData::Bits(b) => RowData::Bits(b),
            BufData::Half(v) => RowData::Half(v),
            BufData::Word(_) => return None,
        };
        Some(RowView { data, start: sp.start, len: sp.len, stride: usize::from(stride) })
    }

    /// Where row `r` starts.
    #[inline]
    fn at(&self, r: usize) -> usize {
        self.start + r * self.stride
    }

    /// Row `r` as an accumulate input.
    #[inline]
    pub(crate) fn input(&self, r: usize) -> Input<'b, S> {
        match self.data {
            RowData::Bits(b) => Input::Spikes(b.slice(self.at(r), self.len)),
            RowData::Half(v) => Input::Dense(&v[self.at(r)..self.at(r) + self.len]),
        }
    }

    /// Row `r` of a 16-bit operand (`None` for a 1-bit one).
    #[inline]
    pub(crate) fn half(&self, r: usize) -> Option<&'b [S]> {
        match self.data {
            RowData::Half(v) => Some(&v[self.at(r)..self.at(r) + self.len]),
            RowData::Bits(_) => None,
        }
    }

    /// Row `r` of a 1-bit operand (`None` for a 16-bit one).
    #[inline]
    pub(crate) fn bits(&self, r: usize) -> Option<SpikeSlice<'b>> {
        match self.data {
            RowData::Bits(b) => Some(b.slice(self.at(r), self.len)),
            RowData::Half(_) => None,
        }
    }
}

/// The rows of a 1-bit [`RowView`], which cannot fail to give a row.
#[derive(Clone, Copy)]
pub(crate) struct BitRows<'b> {
    pub(crate) bits: &'b SpikeBits,
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) stride: usize,
}

impl<'b> BitRows<'b> {
    /// Row `r`.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> SpikeSlice<'b> {
        self.bits.slice(self.start + r * self.stride, self.len)
    }
}

/// The rows of a 16-bit [`RowView`], which cannot fail to give a row.
#[derive(Clone, Copy)]
pub(crate) struct HalfRows<'b, S> {
    pub(crate) data: &'b [S],
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) stride: usize,
}

impl<'b, S> HalfRows<'b, S> {
    /// Row `r`.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> &'b [S] {
        let at = self.start + r * self.stride;
        &self.data[at..at + self.len]
    }
}

impl<'b, S: Storage> RowView<'b, S> {
    /// The rows as 1-bit rows, if the operand is in a 1-bit buffer.
    pub(crate) fn bit_rows(&self) -> Option<BitRows<'b>> {
        match self.data {
            RowData::Bits(bits) => Some(BitRows { bits, start: self.start, len: self.len, stride: self.stride }),
            RowData::Half(_) => None,
        }
    }

    /// The rows as 16-bit rows, if the operand is in a 16-bit buffer.
    pub(crate) fn half_rows(&self) -> Option<HalfRows<'b, S>> {
        match self.data {
            RowData::Half(data) => Some(HalfRows { data, start: self.start, len: self.len, stride: self.stride }),
            RowData::Bits(_) => None,
        }
    }
}

/// The reusable working memory of a multi-row instruction, out of the machine state while
/// the rows run: the kernels' scratch rows, the widened weights, the blocks of lanes of
/// the linear row kernels and the per-row counts.
#[derive(Debug, Default)]
pub(crate) struct RowState {
    pub(crate) scratch: Vec<f32>,
    pub(crate) wide: Vec<f32>,
    pub(crate) cols: Vec<(usize, f32)>,
    pub(crate) lanes: Vec<Lanes>,
    pub(crate) ops: Vec<OpCount>,
}

impl<S: Storage> Exec<'_, S> {
    /// Takes the working memory out of the state (per-row counts emptied), so the kernels
    /// can use it while the output buffer is taken too; nothing is allocated once it has
    /// grown to the largest tile.
    pub(crate) fn take_row_state(&mut self) -> RowState {
        let mut ops = std::mem::take(&mut self.st.row_ops);
        ops.clear();
        let st = &mut *self.st;
        let (scratch, wide, cols) =
            (std::mem::take(&mut st.scratch), std::mem::take(&mut st.wide), std::mem::take(&mut st.cols));
        RowState { scratch, wide, cols, lanes: std::mem::take(&mut st.lanes), ops }
    }

    /// Puts the working memory back.
    pub(crate) fn put_row_state(&mut self, w: RowState) {
        (self.st.scratch, self.st.wide, self.st.cols, self.st.row_ops) = (w.scratch, w.wide, w.cols, w.ops);
        self.st.lanes = w.lanes;
    }

    /// Charges the rows recorded in the state's per-row counts: each row's buffer accesses,
    /// cycles and energy, then one issue cycle. `fixed` is the most accesses any buffer
    /// whose accesses are the same every row makes per row; `varying` gives a row's accesses
    /// of the one buffer `var` whose accesses vary row by row, counting them through the
    /// [`RowTouch`] it is given.
    pub(crate) fn charge_rows(
        &mut self,
        pj_per_op: f64,
        (var, fixed): (isa::Buf, u64),
        varying: impl FnMut(&mut RowTouch, OpCount) -> u64,
    ) {
        let rows = std::mem::take(&mut self.st.row_ops);
        let charger = self.row_charger(pj_per_op, (var, fixed));
        let charges = charger.charge(rows.iter().copied(), varying);
        self.st.row_ops = rows;
        self.apply_row_charges(var, charges);
    }

    /// What [`RowCharger::charge`] needs of the PE array and of buffer `var`, for rows
    /// charged at `pj_per_op` with `fixed` accesses of the other buffers per row.
    pub(crate) fn row_charger(&self, pj_per_op: f64, (var, fixed): (isa::Buf, u64)) -> RowCharger {
        let (pes, cols) = self.pe_array();
        let info = &self.st.info[var.index()];
        let width = Divisor::new(u64::from(info.width_bits));
        let touch = RowTouch { elem_bits: u64::from(info.elem_bits), width, total: 0 };
        RowCharger { pes: Divisor::new(pes), cols: Divisor::new(cols), touch, pj_per_op, fixed }
    }

    /// Adds the charges of an instruction's rows (of varying buffer `var`) to the machine,
    /// and one issue cycle.
    pub(crate) fn apply_row_charges(&mut self, var: isa::Buf, c: RowCharges) {
        self.st.compute.add(c.pj_per_op, c.total.executed);
        self.st.sram[var.index()] += c.touched;
        self.engine_done(RowCost { cycles: c.cycles, ops: c.total });
    }
}

/// The PE array, buffer geometry and energy of an instruction's rows, looked up once.
///
/// Charging rows is [`engine_row`](Exec::engine_row) per row with these looked up once and
/// the sums kept in locals: integer cycles, operations (which the compute energy is tallied
/// from) and access counts, added to the machine at once.
#[derive(Clone, Copy)]
pub(crate) struct RowCharger {
    pes: Divisor,
    cols: Divisor,
    touch: RowTouch,
    pj_per_op: f64,
    fixed: u64,
}

/// The sums of an instruction's row charges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowCharges {
    cycles: u64,
    /// The operations of all rows.
    pub(crate) total: OpCount,
    /// The energy of one executed operation.
    pj_per_op: f64,
    /// Accesses of the varying buffer.
    touched: u64,
}

impl RowCharger {
    /// Charges `rows` (each row's count, in row order); see [`Exec::charge_rows`] for
    /// `varying`. The counts may be made as they are charged.
    #[inline]
    pub(crate) fn charge(
        mut self,
        rows: impl Iterator<Item = OpCount>,
        mut varying: impl FnMut(&mut RowTouch, OpCount) -> u64,
    ) -> RowCharges {
        let (mut cycles, mut total) = (0, OpCount::default());
        for ops in rows {
            let port = self.cols.ceil(varying(&mut self.touch, ops).max(self.fixed));
            cycles += self.pes.ceil(ops.executed).max(port);
            total.merge(ops);
        }
        RowCharges { cycles, total, pj_per_op: self.pj_per_op, touched: self.touch.total }
    }
}

/// Counts the accesses of one buffer row by row, as [`Exec::touch`] would, in a local that
/// [`Exec::charge_rows`] adds to the machine's count once.
#[derive(Clone, Copy)]
pub(crate) struct RowTouch {
    elem_bits: u64,
    width: Divisor,
    total: u64,
}

impl RowTouch {
    /// Counts one touch of `elems` elements and returns its accesses.
    #[inline]
    pub(crate) fn touch(&mut self, elems: u64) -> u64 {
        let n = self.width.ceil(elems * self.elem_bits);
        self.total += n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::{Divisor, div_ceil};

    /// The shift for powers of two gives `u64::div_ceil`'s and `/`'s quotients, near zero,
    /// near multiples and at the top of the range, and other divisors still divide.
    #[test]
    fn divisor_matches_the_division() {
        let xs = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 255, 256, 257, 1 << 40, (1 << 40) + 1, u64::MAX - 1, u64::MAX];
        for d in [1u64, 2, 3, 4, 5, 8, 16, 12, 64, 128, 256, 1000, 1 << 33, 1 << 63] {
            for &x in &xs {
                assert_eq!(div_ceil(x, d), x.div_ceil(d), "{x} / {d}");
                assert_eq!(Divisor::new(d).floor(x), x / d, "{x} / {d}");
            }
        }
    }
}
