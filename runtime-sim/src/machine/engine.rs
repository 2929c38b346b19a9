//! What the engine instructions share: operand resolution, typed buffer access, and the
//! engine cost model. The instructions themselves are in `fp.rs`, `bp.rs` and `wg.rs`.
//!
//! Each handler checks operand lengths against its shape fields and element widths before
//! calling a kernel (the kernels assert, and a simulated program must never panic), runs
//! the kernel on the buffers, and charges its cost: one issue cycle plus the larger of the
//! compute cycles (executed operations over the PE array) and the busiest buffer's accesses
//! (spread over the array's columns, one bank each). A multi-row linear tile pays the issue
//! cycle once and the rest row by row (see `rows.rs`), and so does a multi-row soma
//! (`elementwise_rows`). Tile outputs are taken out of the buffer table while the kernel
//! writes them, so inputs are borrowed without copies; an input in the same buffer as the
//! output reads a copy taken first.

use super::SimError;
use super::buffers::{BufData, Span};
use super::exec::Exec;
use super::rows::div_ceil;
use crate::fp::Storage;
use crate::kernels::accumulate::Conv2dShape;
use crate::kernels::pool::PoolShape;
use crate::kernels::soma::LifParams;
use crate::kernels::{Input, OpCount};
use crate::spikes::{SpikeBits, SpikeSlice};
use isa::{Access, ConvGeometry};
use std::borrow::Cow;
use std::sync::Arc;

/// Convolution dimensions as the instruction gives them (input pre-padded); what fits is
/// decided by `isa::ConvGeometry`, the same rule the verifier applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvDims(ConvGeometry);

impl ConvDims {
    pub(crate) fn new(cin: u16, cout: u16, ih: u16, iw: u16, kh: u8, kw: u8, stride: u8) -> ConvDims {
        ConvDims(ConvGeometry { cin, cout, ih, iw, kh, kw, stride })
    }

    /// The kernel's shape, if the kernel fits the input.
    pub(crate) fn shape(&self) -> Result<Conv2dShape, String> {
        self.0.sizes()?;
        let g = &self.0;
        let (cin, cout, h, w) = (usize::from(g.cin), usize::from(g.cout), usize::from(g.ih), usize::from(g.iw));
        let (kh, kw, stride) = (usize::from(g.kh), usize::from(g.kw), usize::from(g.stride));
        Ok(Conv2dShape { cin, cout, h, w, kh, kw, stride, pad: 0 })
    }
}

/// The cost of an engine instruction summed over its rows (one row for most).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RowCost {
    /// Compute or port cycles, whichever bound each row, summed.
    pub(crate) cycles: u64,
    /// Operations of all rows.
    pub(crate) ops: OpCount,
}

impl RowCost {
    /// Adds one row's cycles (compute over the PE array `(PEs, columns)` against the busiest
    /// buffer port) and operations; the energy is the caller's.
    #[inline]
    pub(crate) fn add_row(&mut self, (pes, cols): (u64, u64), ops: OpCount, accesses: &[u64]) {
        let compute = div_ceil(ops.executed, pes);
        let port = div_ceil(accesses.iter().copied().max().unwrap_or(0), cols);
        self.cycles += compute.max(port);
        self.ops.merge(ops);
    }
}

/// A resolved input operand: its buffer (borrowed, or a copy when it is also the output)
/// and range.
pub(crate) struct Opnd<'b, S: Storage> {
    name: &'static str,
    data: Cow<'b, BufData<S>>,
    sp: Span,
}

impl<'b, S: Storage> Opnd<'b, S> {
    /// As an accumulate input: spikes from a 1-bit buffer, values from a 16-bit one.
    pub(crate) fn input(&self) -> Result<Input<'_, S>, String> {
        match &*self.data {
            BufData::Bits(b) => Ok(Input::Spikes(b.slice(self.sp.start, self.sp.len))),
            BufData::Half(v) => Ok(Input::Dense(&v[self.sp.range()])),
            BufData::Word(_) => Err(format!("operand `{}` must be a 1-bit or 16-bit buffer", self.name)),
        }
    }

    pub(crate) fn half(&self) -> Result<&[S], String> {
        self.data.as_half().map(|v| &v[self.sp.range()]).ok_or_else(|| width_msg(self.name, 16))
    }

    pub(crate) fn bits(&self) -> Result<SpikeSlice<'_>, String> {
        self.data.as_bits().map(|b| b.slice(self.sp.start, self.sp.len)).ok_or_else(|| width_msg(self.name, 1))
    }

    pub(crate) fn is_bits(&self) -> bool {
        self.data.as_bits().is_some()
    }

    /// The operand's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this is a copy of the output buffer taken before the kernel wrote it.
    pub(crate) fn is_copy(&self) -> bool {
        matches!(self.data, Cow::Owned(_))
    }

    /// The buffer and row-0 span of an operand that borrows the buffer table, or `None` for
    /// a copy of the output buffer (which a multi-row handler must read afresh each row).
    pub(crate) fn borrowed(&self) -> Option<(&'b BufData<S>, Span)> {
        match self.data {
            Cow::Borrowed(d) => Some((d, self.sp)),
            Cow::Owned(_) => None,
        }
    }

    /// The same operand `skip` elements further on, borrowing the same data; the caller
    /// has checked the bounds of the range it moves to.
    pub(crate) fn shifted(&self, skip: usize) -> Opnd<'_, S> {
        let sp = Span { start: self.sp.start + skip, ..self.sp };
        Opnd { name: self.name, data: Cow::Borrowed(&*self.data), sp }
    }
}

pub(crate) fn width_msg(name: &str, bits: u32) -> String {
    format!("operand `{name}` must be in a {bits}-bit buffer")
}

/// Sets a buffer range from bits (the caller has checked the width and range).
pub(crate) fn put_bits<S: Storage>(data: &mut BufData<S>, sp: Span, bits: &SpikeBits) {
    if let Some(b) = data.as_bits_mut() {
        b.write_bits(sp.start, bits.words(), sp.len.min(bits.len()));
    }
}

impl<S: Storage> Exec<'_, S> {
    pub(crate) fn need(&self, name: &str, a: &Access, want: usize) -> Result<(), SimError> {
        if a.len as usize == want {
            Ok(())
        } else {
            Err(self.bad(format!("operand `{name}` has {} elements; the shape fields need {want}", a.len)))
        }
    }

    /// Resolves an input; `taken` is the output buffer currently out of the table.
    pub(crate) fn read<'b>(
        &'b self,
        name: &'static str,
        a: &Access,
        taken: Option<(usize, &BufData<S>)>,
    ) -> Result<Opnd<'b, S>, SimError> {
        self.read_row(name, a, 0, taken)
    }

    /// Resolves the input row `skip` elements past the access's first element.
    pub(crate) fn read_row<'b>(
        &'b self,
        name: &'static str,
        a: &Access,
        skip: usize,
        taken: Option<(usize, &BufData<S>)>,
    ) -> Result<Opnd<'b, S>, SimError> {
        let sp = self.span_row(name, a, skip)?;
        let data = match taken {
            Some((slot, d)) if slot == sp.slot => Cow::Owned(d.clone()),
            _ => Cow::Borrowed(&self.st.bufs[sp.slot]),
        };
        Ok(Opnd { name, data, sp })
    }

    /// Runs `f` with buffer `slot` taken out of the table, and always puts it back.
    pub(crate) fn with_taken<T>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&Self, &mut BufData<S>) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        let mut data = std::mem::replace(&mut self.st.bufs[slot], BufData::Word(Vec::new()));
        let r = f(self, &mut data);
        self.st.bufs[slot] = data;
        r
    }

    /// A copy of a 16-bit range.
    pub(crate) fn half_vec(&self, name: &'static str, a: &Access) -> Result<Vec<S>, SimError> {
        let o = self.read(name, a, None)?;
        o.half().map(<[S]>::to_vec).map_err(|m| self.bad(m))
    }

    /// A copy of a 16-bit range in a vector from the state's pool; give it back with
    /// [`recycle`](Self::recycle).
    pub(crate) fn pooled_half(&mut self, name: &'static str, a: &Access) -> Result<Vec<S>, SimError> {
        let mut v = self.pooled_zeros(0);
        let o = self.read(name, a, None)?;
        v.extend_from_slice(o.half().map_err(|m| self.bad(m))?);
        Ok(v)
    }

    /// `n` zeros in a vector from the state's pool.
    pub(crate) fn pooled_zeros(&mut self, n: usize) -> Vec<S> {
        let mut v = self.st.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(n, S::default());
        v
    }

    /// Returns vectors to the state's pool.
    pub(crate) fn recycle<const N: usize>(&mut self, vs: [Vec<S>; N]) {
        self.st.pool.extend(vs);
    }

    /// An all-zero tensor of `n` bits from the state's pool; give it back with
    /// [`recycle_bits`](Self::recycle_bits).
    pub(crate) fn pooled_bits(&mut self, n: usize) -> SpikeBits {
        let mut b = self.st.bit_pool.pop().unwrap_or_default();
        b.clear_to(n);
        b
    }

    /// Returns bit tensors to the state's pool.
    pub(crate) fn recycle_bits<const N: usize>(&mut self, bs: [SpikeBits; N]) {
        self.st.bit_pool.extend(bs);
    }

    /// A copy of a 1-bit range.
    pub(crate) fn bits_vec(&self, name: &'static str, a: &Access) -> Result<SpikeBits, SimError> {
        let o = self.read(name, a, None)?;
        let s = o.bits().map_err(|m| self.bad(m))?;
        Ok(s.to_bits())
    }

    /// A copy of a 32-bit range.
    pub(crate) fn word_vec(&self, name: &'static str, a: &Access) -> Result<Vec<f32>, SimError> {
        let sp = self.span(name, a)?;
        match &self.st.bufs[sp.slot] {
            BufData::Word(v) => Ok(v[sp.range()].to_vec()),
            _ => Err(self.bad(width_msg(name, 32))),
        }
    }

    /// Checks that `a` is in a buffer of `bits`-bit elements.
    pub(crate) fn width(&self, name: &str, a: &Access, bits: u32) -> Result<(), SimError> {
        if self.st.info[a.buf.index()].elem_bits == bits { Ok(()) } else { Err(self.bad(width_msg(name, bits))) }
    }

    pub(crate) fn set_half(&mut self, name: &'static str, a: &Access, v: &[S]) -> Result<(), SimError> {
        self.width(name, a, 16)?;
        let sp = self.span(name, a)?;
        if let Some(d) = self.st.bufs[sp.slot].as_half_mut() {
            d[sp.range()].copy_from_slice(v);
        }
        Ok(())
    }

    pub(crate) fn set_word(&mut self, name: &'static str, a: &Access, v: &[f32]) -> Result<(), SimError> {
        self.width(name, a, 32)?;
        let sp = self.span(name, a)?;
        if let Some(d) = self.st.bufs[sp.slot].as_word_mut() {
            d[sp.range()].copy_from_slice(v);
        }
        Ok(())
    }

    pub(crate) fn set_bits(&mut self, name: &'static str, a: &Access, bits: &SpikeBits) -> Result<(), SimError> {
        self.width(name, a, 1)?;
        let sp = self.span(name, a)?;
        put_bits(&mut self.st.bufs[sp.slot], sp, bits);
        Ok(())
    }

    pub(crate) fn neuron(&self, cfg: u8) -> Result<LifParams, SimError> {
        self.st
            .neuron
            .get(self.core)
            .and_then(|s| s.get(usize::from(cfg)).copied().flatten())
            .ok_or_else(|| self.bad(format!("neuron slot {cfg} was never configured by `cfg.neuron`")))
    }

    /// Charges an engine instruction: compute over the PE array against the busiest
    /// buffer port, and records its operations and compute energy.
    pub(crate) fn engine(&mut self, ops: OpCount, pj_per_op: f64, accesses: &[u64]) {
        let mut cost = RowCost::default();
        self.engine_row(&mut cost, ops, pj_per_op, accesses);
        self.engine_done(cost);
    }

    /// Charges one row of a multi-row engine instruction as [`engine`](Self::engine) charges
    /// a whole single-row one, less the issue cycle, which [`engine_done`](Self::engine_done)
    /// adds once. The energy is tallied as separate instructions would tally it.
    pub(crate) fn engine_row(&mut self, cost: &mut RowCost, ops: OpCount, pj_per_op: f64, accesses: &[u64]) {
        cost.add_row(self.pe_array(), ops, accesses);
        self.st.compute.add(pj_per_op, ops.executed);
    }

    /// The buffer accesses of a conv instruction's weight-shaped operand (the weights of
    /// `fp.conv` and `bp.conv`, the gradients of `wg.conv`) for `executed` products over
    /// `positions` output positions, `per_product` accesses each. The PE array lays output
    /// positions down its `rows` and broadcasts each weight it reads (or reduces each
    /// gradient it updates) along a column, so one access serves up to `min(rows,
    /// positions)` executed products, as the PEs serve `rows x cols` of them per cycle.
    pub(crate) fn broadcast_accesses(&self, executed: u64, positions: usize, per_product: u64) -> usize {
        let rows = self.st.chip.engine(self.stream).map_or(1, |e| u64::from(e.rows.max(1)));
        let shared = rows.min(positions.max(1) as u64);
        (executed * per_product).div_ceil(shared) as usize
    }

    /// The PE array of the current stream's engine as `(PEs, columns)`, each at least 1.
    pub(crate) fn pe_array(&self) -> (u64, u64) {
        let (rows, cols) = self.st.chip.engine(self.stream).map_or((1, 1), |e| (e.rows.max(1), e.cols.max(1)));
        (u64::from(rows) * u64::from(cols), u64::from(cols))
    }

    /// Finishes charging an engine instruction: one issue cycle plus its rows' cycles.
    pub(crate) fn engine_done(&mut self, cost: RowCost) {
        self.busy = 1 + cost.cycles;
        self.ops = cost.ops;
    }

    /// Charges an element-wise unit (soma, loss, optimizer) working on `cols` elements per
    /// cycle, `passes` cycles per element group.
    pub(crate) fn elementwise(&mut self, n: usize, passes: u64, ops: OpCount, pj_per_elem: f64, accesses: &[u64]) {
        self.elementwise_rows(n, (passes, 1), ops, pj_per_elem, accesses);
    }

    /// Charges `rows` rows of `n` elements on an element-wise unit (a multi-row soma), each
    /// with the buffer accesses `accesses` of one row: one issue cycle, then per row what
    /// [`elementwise`](Self::elementwise) charges a single row beyond it. The energy is tallied
    /// as separate instructions would tally it; `ops` are all rows' operations.
    pub(crate) fn elementwise_rows(
        &mut self,
        n: usize,
        (passes, rows): (u64, usize),
        ops: OpCount,
        pj_per_elem: f64,
        accesses: &[u64],
    ) {
        let cols = self.st.chip.engine(self.stream).map_or(1, |e| u64::from(e.cols.max(1)));
        let compute = (n as u64).div_ceil(cols) * passes;
        let row = compute.max(accesses.iter().copied().max().unwrap_or(0).div_ceil(cols));
        self.busy = 1 + row * rows as u64;
        self.st.compute.add(pj_per_elem, n as u64 * rows as u64);
        self.ops = ops;
    }

    pub(crate) fn spike_add_pj(&self) -> f64 {
        self.st.chip.energy.fp16_add_pj + self.st.chip.energy.mux_pj / 16.0
    }

    pub(crate) fn mac_pj(&self) -> f64 {
        self.st.chip.energy.fp16_add_pj + self.st.chip.energy.fp16_mul_pj
    }

    /// Updates the stats of the layer the current instruction belongs to, if any.
    pub(crate) fn layer(&mut self, f: impl FnOnce(&mut crate::machine::LayerStats)) {
        let idx = super::state::stream_index(self.core, self.stream);
        let id = self.st.layer_of.get(idx).and_then(|m| m.get(self.pc)).copied().flatten();
        if let Some(l) = id.and_then(|i| self.st.stats.layers.get_mut(i)) {
            f(l);
        }
    }

    /// The kernel geometry of `fp.pool` / `bp.pool`, or the instruction's error when the
    /// window does not fit (the verifier's rule, [`isa::PoolGeometry::sizes`]).
    pub(crate) fn pool_shape(&self, g: &isa::PoolGeometry) -> Result<PoolShape, SimError> {
        g.sizes().map_err(|m| self.bad(m))?;
        let (c, h, w) = (usize::from(g.c), usize::from(g.ih), usize::from(g.iw));
        let (k, stride, pad) = (usize::from(g.k), usize::from(g.stride), usize::from(g.pad));
        Ok(PoolShape { c, h, w, k, stride, pad })
    }

    /// The errors with the ones the `nz` bitmap marks zero forced to zero: the engine never
    /// reads those. The vector comes from the state's pool (give it back with
    /// [`recycle`](Self::recycle)) and the bitmap is read in place a word at a time, so a
    /// call copies the errors once and allocates nothing.
    pub(crate) fn masked_err(&mut self, err: &Access, nz: &Option<Access>) -> Result<Vec<S>, SimError> {
        let mut e = self.pooled_half("err", err)?;
        if let Some(a) = nz {
            let r = self.need("nz", a, e.len()).and_then(|()| self.read("nz", a, None));
            let bits = r.and_then(|o| o.bits().map(|b| mask_zeros(&mut e, b)).map_err(|m| self.bad(m)));
            if let Err(err) = bits {
                self.recycle([e]);
                return Err(err);
            }
        }
        Ok(e)
    }

    /// [`masked_err`](Self::masked_err) for `wg.conv`, shared. A core runs the weight
    /// gradients of many input tiles against the same errors one after another, so the
    /// masked copy of its last errors is kept (`State::wg_masked`) and handed out again, to
    /// the kernel and to any job, while the buffers still give the same values under the
    /// same mask: one comparing pass, which writes nothing, tells.
    pub(crate) fn shared_masked_err(&mut self, err: &Access, nz: &Option<Access>) -> Result<Arc<Vec<S>>, SimError> {
        let core = self.core;
        if self.st.wg_masked.len() <= core {
            self.st.wg_masked.resize_with(core + 1, || None);
        }
        if let Some(last) = self.st.wg_masked[core].clone() {
            if self.masks_to(err, nz, &last)? {
                return Ok(last);
            }
        }
        let e = Arc::new(self.masked_err(err, nz)?);
        // The vector of the errors before goes back to the pool unless a job still reads it.
        if let Some(Ok(old)) = self.st.wg_masked[core].replace(Arc::clone(&e)).map(Arc::try_unwrap) {
            self.recycle([old]);
        }
        Ok(e)
    }

    /// Whether the errors `err` masked by `nz` are bit for bit `masked`; the operands are
    /// checked as [`masked_err`](Self::masked_err) checks them, in the same order.
    fn masks_to(&self, err: &Access, nz: &Option<Access>, masked: &[S]) -> Result<bool, SimError> {
        let o = self.read("err", err, None)?;
        let src = o.half().map_err(|m| self.bad(m))?;
        let Some(a) = nz else {
            return Ok(src.len() == masked.len()
                && src.chunks(64).zip(masked.chunks(64)).all(|(s, m)| S::kept_equal(s, !0, m)));
        };
        self.need("nz", a, src.len())?;
        let r = self.read("nz", a, None)?;
        let keep = r.bits().map_err(|m| self.bad(m))?;
        let same = |(k, (s, m)): (usize, (&[S], &[S]))| S::kept_equal(s, keep.word(k), m);
        Ok(src.len() == masked.len() && src.chunks(64).zip(masked.chunks(64)).enumerate().all(same))
    }
}

/// Sets the values whose bit in `keep` is clear to +0, by masking the bit patterns a word
/// of bits at a time ([`Storage::keep_bits`]) rather than branching on random bits, which
/// mispredicts about half the time.
fn mask_zeros<S: Storage>(v: &mut [S], keep: SpikeSlice<'_>) {
    for (k, chunk) in v.chunks_mut(64).enumerate() {
        S::keep_bits(chunk, keep.word(k));
    }
}

#[cfg(test)]
mod tests {
    use super::mask_zeros;
    use crate::data::rng::Rng;
    use crate::fp::Storage;
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The select against a plain per-bit test, on windows of random lengths and offsets
    /// (so words straddle), with values that include −0, infinities and NaNs: the same bits.
    #[test]
    fn mask_zeros_matches_a_per_bit_test() {
        let mut rng = Rng::new(29);
        for _ in 0..200 {
            let len = rng.below(300) as usize;
            let offset = rng.below(100) as usize;
            let density = [0.0, 0.1, 0.5, 0.9, 1.0][rng.below(5) as usize];
            let mut bits = SpikeBits::zeros(offset + len);
            for i in 0..offset + len {
                bits.set(i, rng.bernoulli(density));
            }
            let specials = [-0.0f32, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0];
            let values: Vec<f32> =
                (0..len)
                    .map(|_| {
                        if rng.bernoulli(0.2) {
                            specials[rng.below(5) as usize]
                        } else {
                            rng.range_f64(-1.0, 1.0) as f32
                        }
                    })
                    .collect();
            check::<f16>(&values, &bits, offset);
            check::<f32>(&values, &bits, offset);
        }
    }

    fn check<S: Storage>(values: &[f32], bits: &SpikeBits, offset: usize) {
        let keep = bits.slice(offset, values.len());
        let mut got: Vec<S> = values.iter().map(|&x| S::from_f32(x)).collect();
        let want: Vec<S> =
            got.iter().enumerate().map(|(i, &x)| if bits.get(offset + i) { x } else { S::default() }).collect();
        let src = got.clone();
        mask_zeros(&mut got, keep);
        let b = |v: &[S]| v.iter().map(|x| x.to_f32().to_bits()).collect::<Vec<_>>();
        assert_eq!(b(&got), b(&want), "{} len {} offset {offset}", S::NAME, values.len());
        // The comparing pass agrees: the source masks to the masked copy, and to no copy
        // with one element changed (a value, or a zero's sign).
        let equal = |masked: &[S]| {
            src.chunks(64).zip(masked.chunks(64)).enumerate().all(|(k, (s, m))| S::kept_equal(s, keep.word(k), m))
        };
        assert!(equal(&got), "{} len {} offset {offset}", S::NAME, values.len());
        for i in 0..got.len() {
            let mut other = got.clone();
            other[i] = if got[i].to_f32().to_bits() == 0 { S::from_f32(-0.0) } else { S::from_f32(0.5) };
            let changed = other[i].to_f32().to_bits() != got[i].to_f32().to_bits();
            assert_eq!(equal(&other), !changed, "{} element {i} of {}", S::NAME, values.len());
        }
    }
}
