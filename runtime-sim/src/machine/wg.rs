//! WG engine instructions: weight and bias gradients, and the optimizer update on FP32
//! master weights.

use super::SimError;
use super::buffers::{BufData, Span};
use super::engine::{ConvDims, Opnd, width_msg};
use super::exec::{Exec, Flow, Step};
use super::jobs::{Hold, Owned, Work};
use super::row_jobs::GradShape;
use super::rows::{BitRows, RowTouch, RowView, Rows};
use super::state::OptSlot;
use crate::fp::{Accum, Storage};
use crate::kernels::conv_counts::{weight_grad_ops, weight_grad_unskipped};
use crate::kernels::grad::{bias_grad, conv2d_weight_grad_with};
use crate::kernels::tile::linear_kn_weight_grad;
use crate::kernels::tile_rows::{BitRowsAt, GradRows, Lanes, ValRowsAt, linear_kn_weight_grad_rows};
use crate::kernels::update::{Adam, Momentum, adam, scaled_grad, sgd_momentum};
use crate::kernels::{ErrorCache, OpCount};
use isa::{Access, OptKind};

/// Where a multi-row `wg.linear` accumulates its bias gradient.
enum BiasTarget {
    /// A range of the weight-gradient buffer.
    InDw(Span),
    /// A copy of the `db` range, written back after the rows.
    Copy(Vec<f32>),
}

/// The row-carrying inputs of a multi-row `wg.linear`.
struct GradViews<'b, S> {
    spk: RowView<'b, S>,
    err: RowView<'b, S>,
    nz: Option<RowView<'b, S>>,
}

/// The rows of a `wg.linear` without a bias gradient in one kernel call, when its spikes
/// and `nz` are 1-bit rows; returns false (having done nothing) otherwise. The kernel walks
/// the row views itself.
fn grad_rows_at_once<S: Storage>(
    v: &GradViews<'_, S>,
    mode: Accum,
    dw: &mut [f32],
    dense: bool,
    count: usize,
    work: (&mut Vec<OpCount>, &mut Vec<Lanes>),
) -> bool {
    let (Some(spk), Some(err)) = (v.spk.bit_rows(), v.err.half_rows()) else { return false };
    fn at(b: BitRows<'_>) -> BitRowsAt<'_> {
        BitRowsAt { bits: b.bits, start: b.start, len: b.len, stride: b.stride }
    }
    let nz = match v.nz.as_ref().map(|z| z.bit_rows()) {
        None => None,
        Some(Some(nz)) => Some(at(nz)),
        Some(None) => return false,
    };
    let err = ValRowsAt { data: err.data, start: err.start, len: err.len, stride: err.stride };
    linear_kn_weight_grad_rows(mode, count, GradRows { spk: at(spk), err, nz }, dw, dense, work);
    true
}

/// Operands of `wg.update`.
pub(crate) struct UpdateOps<'a> {
    pub(crate) grad: &'a Access,
    pub(crate) master: &'a Access,
    pub(crate) state: &'a Option<Access>,
    pub(crate) w16: &'a Access,
}

impl<S: Storage> Exec<'_, S> {
    /// `wg.linear` over `rows.count` rows into the same `dw` and `db`, rows in order; see
    /// [`Rows`] for the strides (`nz` rows move with `err`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_grad(
        &mut self,
        spk: &Access,
        err: &Access,
        dw: &Access,
        db: &Option<Access>,
        (k, n): (u16, u16),
        skip: bool,
        nz: &Option<Access>,
        rows: Rows,
    ) -> Step {
        let (k, n) = (usize::from(k), usize::from(n));
        self.need("spk", spk, k)?;
        self.need("err", err, n)?;
        self.need("dw", dw, k * n)?;
        let count = self.row_count(rows.count)?;
        self.rows_span("spk", spk, count, rows.first)?;
        self.rows_span("err", err, count, rows.second)?;
        if let Some(a) = nz {
            self.need("nz", a, n)?;
            self.rows_span("nz", a, count, rows.second)?;
        }
        let pj = self.st.chip.energy.fp32_add_pj + self.st.chip.energy.mux_pj / 16.0;
        let fixed = self.grad_row_accesses((spk, err, db), (k, n), count);
        // A row reads and writes the gradient of each operation it executes.
        let varying = |t: &mut RowTouch, ops: OpCount| t.touch(2 * ops.executed);
        // With other threads the rows are a job (see `row_jobs.rs`) when their shape allows.
        let shape = GradShape { n, rows, dense: !skip };
        let charger = self.row_charger(pj, (dw.buf, fixed));
        if db.is_some() || !self.grad_rows_job((spk, err, dw, nz), shape, (charger, dw.buf, varying))? {
            self.grad_rows_here((spk, err, dw, db, nz), shape)?;
            self.charge_rows(pj, (dw.buf, fixed), varying);
        }
        Ok(Flow::Next)
    }

    /// Counts the accesses of `db`, `spk` and `err`, alike in every row (counted for all
    /// rows at once), and returns the most of them per row.
    fn grad_row_accesses(
        &mut self,
        (spk, err, db): (&Access, &Access, &Option<Access>),
        (k, n): (usize, usize),
        count: usize,
    ) -> u64 {
        if let Some(a) = db {
            self.touch_rows(a.buf, 2 * n, count);
        }
        self.touch_rows(spk.buf, k, count).max(self.touch_rows(err.buf, n, count))
    }

    /// The rows of `wg.linear` in place, their counts put in the state's per-row counts.
    fn grad_rows_here(
        &mut self,
        (spk, err, dw, db, nz): (&Access, &Access, &Access, &Option<Access>, &Option<Access>),
        g: GradShape,
    ) -> Result<(), SimError> {
        let (o, (count, n, rows)) = (self.span("dw", dw)?, (usize::from(g.rows.count), g.n, g.rows));
        let mut bias = self.bias_target(db, n, o.slot)?;
        let mode = self.st.mode;
        let mut ws = self.take_row_state();
        let r = self.with_taken(o.slot, |ex, data| {
            let v = ex.grad_views(spk, err, nz, rows, (o.slot, data))?;
            let words = data.as_word_mut().ok_or_else(|| ex.bad(width_msg("dw", 32)))?;
            let work = (&mut ws.ops, &mut ws.lanes);
            if bias.is_none() && grad_rows_at_once(&v, mode, &mut words[o.range()], g.dense, count, work) {
                return Ok(());
            }
            let not_half = || ex.bad(width_msg("err", 16));
            for r in 0..count {
                let eh = v.err.half(r).ok_or_else(not_half)?;
                let zb = v.nz.as_ref().and_then(|z| z.bits(r));
                let mut ops = OpCount::default();
                let work = (&mut ws.cols, &mut ws.scratch);
                linear_kn_weight_grad(mode, v.spk.input(r), eh, zb, &mut words[o.range()], g.dense, work, &mut ops);
                // The bias gradient of row r follows its weight gradient, as it would in
                // separate instructions; it matters only if `db` overlaps `dw`.
                match &mut bias {
                    Some(BiasTarget::InDw(sp)) => bias_grad(mode, eh, 1, &mut words[sp.range()]),
                    Some(BiasTarget::Copy(v)) => bias_grad(mode, eh, 1, v),
                    None => {}
                }
                ws.ops.push(ops);
            }
            Ok(())
        });
        self.put_row_state(ws);
        r?;
        if let (Some(a), Some(BiasTarget::Copy(v))) = (db, &bias) {
            self.set_word("db", a, v)?;
        }
        Ok(())
    }

    /// The rows of `wg.linear`'s inputs, resolved once after checking the element widths of
    /// row 0 (every row is in the same buffers). None of them can share the buffer of `dw`,
    /// which is 32-bit, so none needs reading afresh per row.
    fn grad_views<'b>(
        &'b self,
        spk: &Access,
        err: &Access,
        nz: &Option<Access>,
        rows: Rows,
        taken: (usize, &BufData<S>),
    ) -> Result<GradViews<'b, S>, SimError> {
        let (x0, e0) = (self.read("spk", spk, Some(taken))?, self.read("err", err, Some(taken))?);
        let z0 = nz.as_ref().map(|a| self.read("nz", a, Some(taken))).transpose()?;
        x0.input().map_err(|m| self.bad(m))?;
        e0.half().map_err(|m| self.bad(m))?;
        z0.as_ref().map(|z| z.bits()).transpose().map_err(|m| self.bad(m))?;
        if !matches!(taken.1, BufData::Word(_)) {
            return Err(self.bad(width_msg("dw", 32)));
        }
        let view = |o: &Opnd<'b, S>, stride| RowView::of(o, stride).ok_or_else(|| self.bad(width_msg("dw", 32)));
        let nz = z0.as_ref().map(|z| view(z, rows.second)).transpose()?;
        Ok(GradViews { spk: view(&x0, rows.first)?, err: view(&e0, rows.second)?, nz })
    }

    /// Where `wg.linear` sums its bias gradient: in the `dw` buffer itself while that is
    /// taken out of the table, or else in a copy written back after the rows.
    fn bias_target(&self, db: &Option<Access>, n: usize, dw_slot: usize) -> Result<Option<BiasTarget>, SimError> {
        let Some(a) = db else { return Ok(None) };
        self.need("db", a, n)?;
        self.width("db", a, 32)?;
        let sp = self.span("db", a)?;
        Ok(Some(if sp.slot == dw_slot { BiasTarget::InDw(sp) } else { BiasTarget::Copy(self.word_vec("db", a)?) }))
    }

    /// `db += sum over each plane of err`, when the layer has a bias.
    pub(crate) fn bias_grad(&mut self, err: &Access, db: &Option<Access>, plane: usize) -> Result<(), super::SimError> {
        let Some(db) = db else { return Ok(()) };
        let e = self.half_vec("err", err)?;
        self.need("db", db, e.len() / plane.max(1))?;
        let mut acc = self.word_vec("db", db)?;
        bias_grad(self.st.mode, &e, plane, &mut acc);
        self.set_word("db", db, &acc)?;
        self.touch(db.buf, 2 * acc.len());
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_grad(
        &mut self,
        spk: &Access,
        err: &Access,
        dw: &Access,
        db: &Option<Access>,
        g: ConvDims,
        skip: bool,
        nz: &Option<Access>,
    ) -> Step {
        let shape = g.shape().map_err(|m| self.bad(m))?;
        self.need("spk", spk, shape.in_len())?;
        self.need("err", err, shape.out_len())?;
        self.need("dw", dw, shape.weight_len())?;
        let o = self.span("dw", dw)?;
        let e = self.shared_masked_err(err, nz)?;
        let mode = self.st.mode;
        let (mut scratch, copy) = (self.st.jobs.scratch(), self.pooled_zeros(0));
        // The kernel finds this core's cached error layout in the scratch while it runs;
        // counting at issue uses it first (and takes new errors into it).
        let core = self.core;
        if self.st.wg_errors.len() <= core {
            self.st.wg_errors.resize_with(core + 1, Default::default);
        }
        let threaded = self.st.jobs.threaded();
        let mut cache = std::mem::take(&mut self.st.wg_errors[core]);
        let cache = &mut cache;
        let checked = self.read("spk", spk, None).and_then(|x| {
            let input = x.input().map_err(|m| self.bad(m))?;
            let out32 = self.st.bufs[o.slot].as_word().is_some();
            // An instruction that skips nothing executes every operation: it needs no count
            // (but its errors are taken into the core's cache all the same).
            let counted = threaded.then(|| {
                if skip { weight_grad_ops(&shape, &e, &input, cache) } else { weight_grad_unskipped(&shape, &e, cache) }
            });
            if out32 { Ok((Owned::of(&input, copy), counted)) } else { Err(self.bad(width_msg("dw", 32))) }
        });
        let (input, counted) = checked?;
        // A job shares the layout with the core (see `ErrorCache`), as the core's next
        // instruction may come before the job is joined, and lets go of it when done, so
        // that the core can lay new errors out in place. Without jobs the kernel runs at
        // once, and the layout comes back with the scratch (`launch`'s `wg_core`).
        let wg_core = if threaded {
            self.st.wg_errors[core] = cache.clone();
            None
        } else {
            Some(core)
        };
        scratch.conv.wg_errors = std::mem::take(cache);
        let work: Work<S> = Box::new(move |data, range, _, scratch| {
            let mut ops = OpCount::default();
            if let Some(dst) = data.as_word_mut() {
                let counting = scratch.count.then_some(&mut ops);
                conv2d_weight_grad_with(mode, &shape, &e, input.input(), &mut dst[range], counting, &mut scratch.conv);
            }
            input.recycle(scratch);
            // The core keeps the errors for its next `wg.conv` (see `shared_masked_err`).
            drop(e);
            if threaded {
                scratch.conv.wg_errors = ErrorCache::default();
            }
            if skip { ops } else { ops.unskipped() }
        });
        let ops = super::jobs::launch(self.st, o, (work, scratch), counted, (wg_core, Hold::Range));
        // A bias gradient in the weight gradient's buffer waits for the job: it comes after.
        if db.as_ref().is_some_and(|db| self.st.slot(core, db.buf) == o.slot) {
            super::jobs::join(self.st, o.slot, |_| true);
        }
        self.bias_grad(err, db, shape.oh() * shape.ow())?;
        let a = [
            self.touch(spk.buf, shape.in_len()),
            self.touch(err.buf, shape.out_len()),
            self.touch(dw.buf, self.broadcast_accesses(ops.executed, shape.oh() * shape.ow(), 2)),
        ];
        let pj = self.st.chip.energy.fp32_add_pj + self.st.chip.energy.mux_pj / 16.0;
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }

    pub(crate) fn update(&mut self, o: UpdateOps<'_>, n: u32, cfg: u8, scale: f32, zero: bool) -> Step {
        let n = n as usize;
        let slot = self.st.opt.get(self.core).and_then(|s| s.get(usize::from(cfg)).copied().flatten());
        let slot = slot.ok_or_else(|| self.bad(format!("optimizer slot {cfg} was never configured by `cfg.opt`")))?;
        for (name, a) in [("grad", o.grad), ("master", o.master), ("w16", o.w16)] {
            self.need(name, a, n)?;
        }
        let passes = match self.update_in_place(&o, n, slot, scale) {
            Some(passes) => passes,
            None => self.update_copied(&o, n, slot, scale)?,
        };
        if zero {
            self.width("grad", o.grad, 32)?;
            let sp = self.span("grad", o.grad)?;
            if let Some(d) = self.st.bufs[sp.slot].as_word_mut() {
                d[sp.range()].fill(0.0);
            }
        }
        let mut acc = vec![
            self.touch(o.grad.buf, n * (1 + usize::from(zero))),
            self.touch(o.master.buf, 2 * n),
            self.touch(o.w16.buf, n),
        ];
        if let Some(a) = o.state {
            acc.push(self.touch(a.buf, 2 * a.len as usize));
        }
        let e = &self.st.chip.energy;
        let per = passes as f64 * (e.fp32_mul_pj + e.fp32_add_pj);
        self.elementwise(n, passes, OpCount { executed: 2 * passes * n as u64, skipped: 0 }, per, &acc);
        Ok(Flow::Next)
    }

    /// `wg.update` on copies of its operands, written back in a fixed order (masters, FP16
    /// weights, state), which settles what overlapping operands mean; returns the
    /// optimizer's passes per element.
    fn update_copied(&mut self, o: &UpdateOps<'_>, n: usize, slot: OptSlot, scale: f32) -> Result<u64, SimError> {
        let grad = self.word_vec("grad", o.grad)?;
        let mut master = self.word_vec("master", o.master)?;
        let mut w16 = self.half_vec("w16", o.w16)?;
        let mut state = o.state.as_ref().map(|a| self.word_vec("state", a)).transpose()?.unwrap_or_default();
        let wd = if slot.kind == OptKind::Adam { slot.wd } else { 0.0 };
        // The gradient is scaled and rounded to storage first, as the golden step stores
        // gradients before the update; Adam's weight decay is L2 added to it.
        let mut g = self.pooled_zeros(n);
        scaled_grad(&grad, &master, (scale, wd), &mut g);
        let passes = match slot.kind {
            OptKind::Sgd => {
                let p = Momentum { lr: slot.lr, momentum: slot.m, weight_decay: slot.wd };
                if state.len() != n && (slot.m != 0.0 || !state.is_empty()) {
                    return Err(self.bad(format!("SGD with momentum needs `state` of n = {n} elements")));
                }
                let mut zero_v = vec![0.0f32; if state.is_empty() { n } else { 0 }];
                let v = if state.is_empty() { &mut zero_v } else { &mut state };
                sgd_momentum(&p, &g, &mut master, v, &mut w16);
                2
            }
            OptKind::Adam => {
                if state.len() != 2 * n {
                    return Err(self.bad(format!("Adam needs `state` of 2n = {} elements (m then v)", 2 * n)));
                }
                let p = Adam { lr: slot.lr, beta1: slot.m, beta2: slot.beta2, eps: slot.eps };
                let (m, v) = state.split_at_mut(n);
                adam(&p, slot.step, &g, &mut master, m, v, &mut w16);
                4
            }
        };
        self.recycle([g]);
        self.set_word("master", o.master, &master)?;
        self.set_half("w16", o.w16, &w16)?;
        if let Some(a) = o.state {
            self.set_word("state", a, &state)?;
        }
        Ok(passes)
    }
}
