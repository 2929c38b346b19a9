//! FP engine instructions: the spike-driven linear and conv tiles, pooling, the LIF soma
//! and the rate / membrane sum.

use super::SimError;
use super::buffers::BufData;
use super::engine::{ConvDims, Opnd, width_msg};
use super::exec::{Exec, Flow, Step};
use super::jobs::{Hold, Owned, Work};
use super::row_jobs::FwdRows;
use super::rows::{RowState, RowTouch, RowView, Rows};
use crate::fp::{Accum, Storage, add};
use crate::kernels::OpCount;
use crate::kernels::accumulate::conv2d_forward_with;
use crate::kernels::conv_counts::{forward_ops, forward_unskipped};
use crate::kernels::pool::{avgpool_forward, maxpool_forward};
use crate::kernels::soma::{LifParams, lif_forward_step, readout_forward_step, surrogate_mask};
use crate::kernels::tile::{linear_kn_forward, linear_kn_forward_wide, widen};
use crate::kernels::tile_rows::{OutRows, linear_kn_forward_rows};
use isa::{Access, PoolKind};

/// Operands of `fp.lif`.
pub(crate) struct LifOps<'a> {
    pub(crate) x: &'a Access,
    pub(crate) bias: &'a Option<Access>,
    pub(crate) v: &'a Access,
    pub(crate) h: &'a Option<Access>,
    pub(crate) spk: &'a Option<Access>,
    pub(crate) mask: &'a Option<Access>,
}

/// Operands of `fp.conv`.
pub(crate) struct ConvOps<'a> {
    pub(crate) spk: &'a Access,
    pub(crate) w: &'a Access,
    pub(crate) bias: &'a Option<Access>,
    pub(crate) out: &'a Access,
}

/// The shape of a multi-row `fp.linear` as its row loops need it.
#[derive(Clone, Copy)]
struct FwdTile {
    /// Outputs per row.
    n: usize,
    rows: Rows,
    /// The output buffer's slot, and where row 0 of the output starts in it.
    slot: usize,
    out: usize,
    acc: bool,
    /// Whether zero inputs count as executed work (`skip=false`).
    dense: bool,
    /// Whether the weights were widened once for all rows.
    wide: bool,
}

/// The rows of `fp.linear` on widened weights, from an input outside the output's buffer.
fn fwd_rows_wide<S: Storage>(mode: Accum, x: &RowView<'_, S>, dst: &mut [S], t: FwdTile, ws: &mut RowState) {
    let count = usize::from(t.rows.count);
    if let Some(spk) = x.bit_rows() {
        let at = OutRows { n: t.n, start: t.out, stride: usize::from(t.rows.second) };
        let (flags, work) = ((t.acc, t.dense), (&mut ws.scratch, &mut ws.lanes));
        linear_kn_forward_rows(mode, &ws.wide, count, move |r| spk.row(r), (dst, at), flags, work, &mut ws.ops);
        return;
    }
    for r in 0..count {
        let at = t.out + Rows::skip(r, t.rows.second);
        let mut ops = OpCount::default();
        let out = &mut dst[at..at + t.n];
        linear_kn_forward_wide(mode, &ws.wide, x.input(r), out, t.acc, t.dense, &mut ws.scratch, &mut ops);
        ws.ops.push(ops);
    }
}

impl<S: Storage> Exec<'_, S> {
    /// `fp.linear` over `rows.count` rows; see [`Rows`] for the strides.
    pub(crate) fn linear_fwd(
        &mut self,
        spk: &Access,
        w: &Access,
        out: &Access,
        kn: (u16, u16),
        (acc, skip): (bool, bool),
        rows: Rows,
    ) -> Step {
        let (k, n) = (usize::from(kn.0), usize::from(kn.1));
        self.need("spk", spk, k)?;
        self.need("w", w, k * n)?;
        self.need("out", out, n)?;
        let count = self.row_count(rows.count)?;
        self.rows_span("spk", spk, count, rows.first)?;
        self.rows_span("out", out, count, rows.second)?;
        let spikes = self.st.bufs[self.span("spk", spk)?.slot].as_bits().is_some();
        let pj = if spikes { self.spike_add_pj() } else { self.mac_pj() };
        // Every row reads the same amount of `spk` and `out` (and of `w` without skipping):
        // counted for all rows at once, the same integer totals.
        let a_spk = self.touch_rows(spk.buf, k, count);
        let a_out = self.touch_rows(out.buf, n * (1 + usize::from(acc)), count);
        let a_w = if skip { None } else { Some(self.touch_rows(w.buf, k * n, count)) };
        // With skipping, a row reads the weights of the inputs it adds: `n` per input.
        let per_input = super::rows::Divisor::new(n.max(1) as u64);
        let varying = move |t: &mut RowTouch, ops: OpCount| {
            a_w.unwrap_or_else(|| t.touch(per_input.floor(ops.executed) * n as u64))
        };
        // With other threads the rows are a job (see `row_jobs.rs`) when their shape allows.
        let shape = FwdRows { n, rows, acc, dense: !skip };
        let charger = self.row_charger(pj, (w.buf, a_spk.max(a_out)));
        if !self.fwd_rows_job((spk, w, out), shape, (charger, w.buf, varying))? {
            self.fwd_rows_here((spk, w, out), shape)?;
            self.charge_rows(pj, (w.buf, a_spk.max(a_out)), varying);
        }
        Ok(Flow::Next)
    }

    /// The rows of `fp.linear` in place, their counts put in the state's per-row counts.
    /// The weights are widened to f32 once for all rows unless they share the output's
    /// buffer (then a row could change them, and each row reads them afresh).
    fn fwd_rows_here(&mut self, (spk, w, out): (&Access, &Access, &Access), f: FwdRows) -> Result<(), SimError> {
        let (count, o) = (usize::from(f.rows.count), self.span("out", out)?);
        let wide = count > 1 && self.span("w", w)?.slot != o.slot;
        let (rows, mode) = (f.rows, self.st.mode);
        let t = FwdTile { n: f.n, rows, slot: o.slot, out: o.start, acc: f.acc, dense: f.dense, wide };
        let mut ws = self.take_row_state();
        let r = self.with_taken(o.slot, |ex, data| {
            if wide {
                widen(ex.read("w", w, None)?.half().map_err(|m| ex.bad(m))?, &mut ws.wide);
            }
            let x0 = ex.read("spk", spk, Some((o.slot, data)))?;
            match RowView::of(&x0, rows.first).filter(|_| wide) {
                // Rows of an input outside the output's buffer, on widened weights: nothing
                // to resolve per row.
                Some(x) => {
                    x0.input().map_err(|m| ex.bad(m))?;
                    let dst = data.as_half_mut().ok_or_else(|| ex.bad(width_msg("out", 16)))?;
                    fwd_rows_wide(mode, &x, dst, t, &mut ws);
                    Ok(())
                }
                None => ex.fwd_rows_each((spk, &x0, w), data, t, &mut ws),
            }
        });
        self.put_row_state(ws);
        r
    }

    /// The rows of `fp.linear` one by one: an input row is read afresh when it is a copy of
    /// the output buffer (an earlier row may have written it), and the weights each row
    /// unless they were widened once.
    fn fwd_rows_each(
        &self,
        (spk, x0, w): (&Access, &Opnd<'_, S>, &Access),
        data: &mut BufData<S>,
        t: FwdTile,
        ws: &mut RowState,
    ) -> Result<(), SimError> {
        let mode = self.st.mode;
        for r in 0..usize::from(t.rows.count) {
            let x = self.next_row(x0, spk, Rows::skip(r, t.rows.first), (t.slot, data))?;
            let input = x.input().map_err(|m| self.bad(m))?;
            let wv = if t.wide { None } else { Some(self.read("w", w, Some((t.slot, data)))?) };
            let dst = data.as_half_mut().ok_or_else(|| self.bad(width_msg("out", 16)))?;
            let at = t.out + Rows::skip(r, t.rows.second);
            let dst = &mut dst[at..at + t.n];
            let mut ops = OpCount::default();
            match &wv {
                None => linear_kn_forward_wide(mode, &ws.wide, input, dst, t.acc, t.dense, &mut ws.scratch, &mut ops),
                Some(wv) => {
                    let wh = wv.half().map_err(|m| self.bad(m))?;
                    linear_kn_forward(mode, wh, input, dst, t.acc, t.dense, &mut ws.scratch, &mut ops);
                }
            }
            ws.ops.push(ops);
        }
        Ok(())
    }

    pub(crate) fn conv_fwd(&mut self, o: ConvOps<'_>, g: ConvDims, acc: bool, skip: bool) -> Step {
        let ConvOps { spk, w, bias, out } = o;
        let shape = g.shape().map_err(|m| self.bad(m))?;
        self.need("spk", spk, shape.in_len())?;
        self.need("w", w, shape.weight_len())?;
        if let Some(b) = bias {
            self.need("bias", b, shape.cout)?;
        }
        self.need("out", out, shape.out_len())?;
        let o = self.span("out", out)?;
        let mode = self.st.mode;
        let (scratch, mut weights, copy) = (self.st.jobs.scratch(), self.pooled_zeros(0), self.pooled_zeros(0));
        let (x, wv) = (self.read("spk", spk, None)?, self.read("w", w, None)?);
        let (input, wh) = (x.input().map_err(|m| self.bad(m))?, wv.half().map_err(|m| self.bad(m))?);
        if self.st.bufs[o.slot].as_half().is_none() {
            return Err(self.bad(width_msg("out", 16)));
        }
        // The biases travel with the weights, after them: one copy for the job.
        weights.extend_from_slice(wh);
        if let Some(b) = bias {
            let bv = self.read("bias", b, None)?;
            weights.extend_from_slice(bv.half().map_err(|m| self.bad(m))?);
        }
        // With other threads the sums are a job on copies, charged now from the inputs (see
        // `jobs.rs`); on one the kernel runs in place and counts them itself.
        // An instruction that skips nothing executes every operation: it needs no count.
        let counted =
            self.st.jobs.threaded().then(|| if skip { forward_ops(&shape, &input) } else { forward_unskipped(&shape) });
        let spikes = x.is_bits();
        let input = Owned::of(&input, copy);
        let wlen = shape.weight_len();
        // The kernel writes every output, or adds to it when the conv accumulates.
        let work: Work<S> = Box::new(move |data, range, _, scratch| {
            let mut ops = OpCount::default();
            if let Some(dst) = data.as_half_mut() {
                let (x, conv) = (input.input(), &mut scratch.conv);
                let (wt, b) = weights.split_at(wlen);
                let b = (!b.is_empty()).then_some(b);
                conv2d_forward_with(mode, &shape, (wt, b), x, (&mut dst[range], acc), &mut ops, conv);
            }
            input.recycle(scratch);
            scratch.vecs.push(weights);
            if skip { ops } else { ops.unskipped() }
        });
        let mut ops = super::jobs::launch(self.st, o, (work, scratch), counted, (None, Hold::Range));
        let mut a = [
            self.touch(spk.buf, shape.in_len()),
            self.touch(w.buf, self.broadcast_accesses(ops.executed, shape.oh() * shape.ow(), 1)),
            self.touch(out.buf, shape.out_len()),
            0,
        ];
        if let Some(b) = bias {
            // One read of each channel's bias, and one add per output.
            a[3] = self.touch(b.buf, shape.cout);
            ops.executed += shape.out_len() as u64;
        }
        let pj = if spikes { self.spike_add_pj() } else { self.mac_pj() };
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }

    /// `fp.pool`: one FP16 add (a compare for max) per in-bounds window element it visits;
    /// `src` is read and `dst` written once per element of the window or output.
    pub(crate) fn pool_fwd(&mut self, kind: PoolKind, src: &Access, dst: &Access, g: &isa::PoolGeometry) -> Step {
        let shape = self.pool_shape(g)?;
        self.need("src", src, shape.in_len())?;
        self.need("dst", dst, shape.out_len())?;
        let mut out = vec![S::default(); shape.out_len()];
        let mut ops = OpCount::default();
        {
            let x = self.read("src", src, None)?;
            let bits = x.bits().map_err(|m| self.bad(m))?;
            match kind {
                PoolKind::Avg => avgpool_forward(&shape, bits, &mut out, &mut ops),
                PoolKind::Max => maxpool_forward(&shape, bits, &mut out, &mut ops),
            }
        }
        let sp = self.span("dst", dst)?;
        // A 16-bit destination (the usual one) takes the values as they are; any other
        // converts them.
        match self.st.bufs[sp.slot].as_half_mut() {
            Some(d) => d[sp.range()].copy_from_slice(&out),
            None => self.st.bufs[sp.slot].set_vals(sp.start, &out.iter().map(|v| v.to_f32()).collect::<Vec<_>>()),
        }
        let a = [self.touch(src.buf, shape.taps()), self.touch(dst.buf, shape.out_len())];
        let pj = self.st.chip.energy.fp16_add_pj;
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }

    /// `fp.lif` over `rows` timesteps: row operands hold `rows*n` elements, `v` and `bias` `n`.
    pub(crate) fn lif_fwd(&mut self, o: LifOps<'_>, n: u32, rows: u16, cfg: u8, fire: bool) -> Step {
        let n = n as usize;
        let p = self.neuron(cfg)?;
        let rows = self.row_count(rows)?;
        let all = rows * n;
        let lens = [("x", Some(o.x), all), ("v", Some(o.v), n), ("bias", o.bias.as_ref(), n), ("h", o.h.as_ref(), all)];
        for (name, a, len) in lens {
            a.map(|a| self.need(name, a, len)).transpose()?;
        }
        for (name, a) in [("spk", o.spk.as_ref()), ("mask", o.mask.as_ref())] {
            a.map(|a| self.need(name, a, all).and_then(|_| self.width(name, a, 1))).transpose()?;
        }
        let fired = match if fire { self.lif_in_place(&p, &o, rows) } else { None } {
            Some(fired) => fired,
            None => self.lif_rows_copied(&p, &o, (n, rows), fire)?,
        };
        self.layer(|l| {
            l.neuron_steps += all as u64;
            l.spikes += fired as u64;
        });
        let mut acc = [self.touch_rows(o.x.buf, n, rows), self.touch_rows(o.v.buf, 2 * n, rows), 0, 0, 0, 0];
        for (slot, a) in acc[2..].iter_mut().zip([o.bias, o.h, o.spk, o.mask].into_iter().flatten()) {
            *slot = self.touch_rows(a.buf, n, rows);
        }
        let e = &self.st.chip.energy;
        let per = e.fp16_mul_pj + 2.0 * e.fp16_add_pj + e.compare_pj;
        let ops = OpCount { executed: 3 * all as u64, skipped: 0 };
        self.elementwise_rows(n, (1, rows), ops, per, &acc);
        Ok(Flow::Next)
    }

    /// One row of `fp.lif` on copies of its inputs, written back in operand order; returns
    /// the number of spikes. Every instruction that cannot run in place (see `soma.rs`) comes
    /// here, row by row (see `soma_rows.rs`).
    pub(crate) fn lif_copied(
        &mut self,
        p: &LifParams,
        o: &LifOps<'_>,
        n: usize,
        fire: bool,
    ) -> Result<usize, SimError> {
        let mut x = self.pooled_half("x", o.x)?;
        if let Some(b) = o.bias {
            // The bias is read in place: `x` is a copy, so nothing the bias sees changes.
            let bo = self.read("bias", b, None)?;
            let bh = bo.half().map_err(|m| self.bad(m))?;
            for i in 0..n {
                x[i] = add(x[i], bh[i]);
            }
        }
        let mut v = self.pooled_half("v", o.v)?;
        let mut h = self.pooled_zeros(n);
        // The bits come from the state's pool; a mask is only made when it is stored.
        let mut spikes = self.pooled_bits(n);
        let mut mask = self.pooled_bits(if o.mask.is_some() { n } else { 0 });
        let fired = if fire {
            let fired = lif_forward_step(p, &x, &mut v, &mut h, &mut spikes, 0);
            if o.mask.is_some() {
                surrogate_mask(p, &h, &mut mask, 0);
            }
            fired
        } else {
            readout_forward_step(p.beta, &x, &mut v);
            h.copy_from_slice(&v);
            0
        };
        self.set_half("v", o.v, &v)?;
        if let Some(a) = o.h {
            self.set_half("h", a, &h)?;
        }
        if let Some(a) = o.spk {
            self.set_bits("spk", a, &spikes)?;
        }
        if let Some(a) = o.mask {
            self.set_bits("mask", a, &mask)?;
        }
        self.recycle([x, v, h]);
        self.recycle_bits([spikes, mask]);
        Ok(fired)
    }

    pub(crate) fn sum(&mut self, dst: &Access, src: &Access) -> Step {
        self.need("dst", dst, src.len as usize)?;
        let (d, s) = (self.span("dst", dst)?, self.span("src", src)?);
        let spikes = self.st.bufs[s.slot].as_bits().is_some();
        let (mut acc, x) = (self.st.vals(d), self.st.vals(s));
        let mut ops = OpCount::default();
        for (a, v) in acc.iter_mut().zip(&x) {
            if spikes && *v == 0.0 {
                ops.skipped += 1;
            } else {
                // An f32 add rounded once by `set_vals` to the buffer's type is exactly one
                // binary16 add for a 16-bit accumulator, and an f32 add for a 32-bit one.
                *a += *v;
                ops.executed += 1;
            }
        }
        self.st.bufs[d.slot].set_vals(d.start, &acc);
        let a = [self.touch(src.buf, s.len), self.touch(dst.buf, 2 * d.len)];
        let pj = self.st.chip.energy.fp16_add_pj;
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }
}
