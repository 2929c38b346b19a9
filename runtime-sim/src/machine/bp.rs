//! BP engine instructions: error propagation through the transposed weights, pooling
//! backward, the gradient soma in reverse time and the loss gradient.
//!
//! `bp.loss` works on one sample: `z = x / t`, the gradient of [`output_grad_row`] against
//! the target row (one-hot for the golden losses) scaled for a batch of `b`, and, when asked,
//! `loss(z, argmax target) / b` added to an FP32 accumulator, so that the sum over the batch
//! is the batch-mean loss. An all-zero target row is a padding slot: zero gradient, no loss.

use super::SimError;
use super::buffers::Span;
use super::engine::{ConvDims, Opnd, width_msg};
use super::exec::{Exec, Flow, Step};
use super::jobs::{Hold, Work};
use super::row_jobs::BwdRows;
use super::rows::{BitRows, HalfRows, RowTouch, RowView, Rows};
use crate::fp::Storage;
use crate::kernels::OpCount;
use crate::kernels::conv_counts::input_grad_ops;
use crate::kernels::grad::{conv2d_backward_input_into, readout_backward_step};
use crate::kernels::loss::{LossKind as KLoss, loss_value, output_grad_row};
use crate::kernels::pool::{avgpool_backward, maxpool_backward};
use crate::kernels::soma::{LifParams, Reset, SOMA_BLOCK, Surrogate as Sg};
use crate::kernels::tile::{linear_kn_backward, linear_kn_backward_cols, transpose_wide};
use crate::kernels::tile_rows::{OutRows, linear_kn_backward_rows};
use crate::spikes::SpikeSlice;
use isa::{Access, LossKind, PoolKind};
use std::ops::Range;

/// Operands of `bp.soma`.
pub(crate) struct SomaOps<'a> {
    pub(crate) ds: &'a Access,
    pub(crate) h: &'a Option<Access>,
    pub(crate) mask: &'a Option<Access>,
    pub(crate) spk: &'a Option<Access>,
    pub(crate) dv: &'a Access,
    pub(crate) dh: &'a Access,
    pub(crate) nz: &'a Option<Access>,
}

/// The rows of `bp.linear`'s errors and bitmap resolved once, when the errors are 16-bit and
/// the bitmap (if any) 1-bit, neither in the output's buffer; `None` otherwise.
fn row_views<'b, S: Storage>(
    e0: &Opnd<'b, S>,
    z0: Option<&Opnd<'b, S>>,
    stride: u16,
) -> Option<(HalfRows<'b, S>, Option<BitRows<'b>>)> {
    let e = RowView::of(e0, stride)?.half_rows()?;
    let z = match z0 {
        Some(z0) => Some(RowView::of(z0, stride)?.bit_rows()?),
        None => None,
    };
    Some((e, z))
}

impl<S: Storage> Exec<'_, S> {
    /// `bp.linear` over `rows.count` rows; see [`Rows`] for the strides (`nz` rows move
    /// with `err`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn linear_bwd(
        &mut self,
        err: &Access,
        w: &Access,
        out: &Access,
        (k, n): (u16, u16),
        acc: bool,
        nz: &Option<Access>,
        rows: Rows,
    ) -> Step {
        let (k, n) = (usize::from(k), usize::from(n));
        self.need("err", err, n)?;
        self.need("w", w, k * n)?;
        self.need("out", out, k)?;
        let count = self.row_count(rows.count)?;
        self.rows_span("err", err, count, rows.first)?;
        if let Some(a) = nz {
            self.need("nz", a, n)?;
            self.rows_span("nz", a, count, rows.first)?;
        }
        let o = self.rows_span("out", out, count, rows.second)?;
        let pj = self.mac_pj();
        // `err`, `out` and `nz` are touched alike by every row: counted for all at once.
        let a_err = self.touch_rows(err.buf, n, count);
        let a_out = self.touch_rows(out.buf, k, count);
        let a_nz = nz.as_ref().map_or(0, |z| self.touch_rows(z.buf, n, count));
        let fixed = a_err.max(a_out).max(a_nz);
        // A row reads the weights of each product it makes.
        let varying = |t: &mut RowTouch, ops: OpCount| t.touch(ops.executed);
        // With other threads the rows are a job (see `row_jobs.rs`) when their shape allows.
        let shape = BwdRows { k, n, rows, acc };
        let charger = self.row_charger(pj, (w.buf, fixed));
        if !self.bwd_rows_job((err, w, out, nz), shape, (charger, w.buf, varying))? {
            self.bwd_rows_here((err, w, nz), o, shape)?;
            self.charge_rows(pj, (w.buf, fixed), varying);
        }
        Ok(Flow::Next)
    }

    /// The rows of `bp.linear` in place, their counts put in the state's per-row counts
    /// (`o` is row 0 of `out`). The weights are widened and transposed once for all rows
    /// unless they share the output's buffer (then a row could change them, and each row
    /// reads them afresh).
    fn bwd_rows_here(
        &mut self,
        (err, w, nz): (&Access, &Access, &Option<Access>),
        o: Span,
        b: BwdRows,
    ) -> Result<(), SimError> {
        let (k, n, rows, acc, count) = (b.k, b.n, b.rows, b.acc, usize::from(b.rows.count));
        let wide = count > 1 && self.span("w", w)?.slot != o.slot;
        let mode = self.st.mode;
        let mut ws = self.take_row_state();
        let r = self.with_taken(o.slot, |ex, data| {
            if wide {
                let wv = ex.read("w", w, None)?;
                transpose_wide(wv.half().map_err(|m| ex.bad(m))?, k, n, &mut ws.wide);
            }
            let e0 = ex.read("err", err, Some((o.slot, data)))?;
            let z0 = nz.as_ref().map(|a| ex.read("nz", a, Some((o.slot, data)))).transpose()?;
            // Rows of 16-bit errors and 1-bit bitmaps outside the output's buffer, on
            // weights transposed once: nothing to resolve or check per row.
            if let Some((e_rows, z_rows)) = row_views(&e0, z0.as_ref(), rows.first).filter(|_| wide) {
                let dst = data.as_half_mut().ok_or_else(|| ex.bad(width_msg("out", 16)))?;
                let at = OutRows { n: k, start: o.start, stride: usize::from(rows.second) };
                let row = move |r| (e_rows.row(r), z_rows.map(|z| z.row(r)));
                linear_kn_backward_rows(mode, &ws.wide, count, row, (dst, at), acc, &mut ws.scratch, &mut ws.ops);
                return Ok(());
            }
            for r in 0..count {
                let skip = Rows::skip(r, rows.first);
                let e = ex.next_row(&e0, err, skip, (o.slot, data))?;
                let z = match (nz, &z0) {
                    (Some(a), Some(z0)) => Some(ex.next_row(z0, a, skip, (o.slot, data))?),
                    _ => None,
                };
                let wv = if wide { None } else { Some(ex.read("w", w, Some((o.slot, data)))?) };
                let eh = e.half().map_err(|m| ex.bad(m))?;
                let zb = z.as_ref().map(|z| z.bits()).transpose().map_err(|m| ex.bad(m))?;
                let dst = data.as_half_mut().ok_or_else(|| ex.bad(width_msg("out", 16)))?;
                let at = o.start + Rows::skip(r, rows.second);
                let dst = &mut dst[at..at + k];
                let mut ops = OpCount::default();
                match &wv {
                    None => linear_kn_backward_cols(mode, &ws.wide, eh, zb, dst, acc, &mut ws.scratch, &mut ops),
                    Some(wv) => {
                        let wh = wv.half().map_err(|m| ex.bad(m))?;
                        linear_kn_backward(mode, wh, eh, zb, dst, acc, &mut ws.scratch, &mut ops);
                    }
                }
                ws.ops.push(ops);
            }
            Ok(())
        });
        self.put_row_state(ws);
        r
    }

    pub(crate) fn conv_bwd(
        &mut self,
        err: &Access,
        w: &Access,
        out: &Access,
        g: ConvDims,
        acc: bool,
        nz: &Option<Access>,
    ) -> Step {
        let shape = g.shape().map_err(|m| self.bad(m))?;
        self.need("err", err, shape.out_len())?;
        self.need("w", w, shape.weight_len())?;
        self.need("out", out, shape.in_len())?;
        let o = self.span("out", out)?;
        let e = self.masked_err(err, nz)?;
        let mode = self.st.mode;
        let (scratch, mut weights) = (self.st.jobs.scratch(), self.pooled_zeros(0));
        let checked = self.read("w", w, None).and_then(|wv| {
            weights.extend_from_slice(wv.half().map_err(|m| self.bad(m))?);
            let out16 = self.st.bufs[o.slot].as_half().is_some();
            if out16 { Ok(()) } else { Err(self.bad(width_msg("out", 16))) }
        });
        if let Err(error) = checked {
            self.recycle([e, weights]);
            return Err(error);
        }
        // With other threads the sums are a job on copies, charged now from the errors (see
        // `jobs.rs`); on one the kernel runs in place and counts them itself.
        let counted = self.st.jobs.threaded().then(|| input_grad_ops(&shape, &e));
        let work: Work<S> = Box::new(move |data, range, _, scratch| {
            let mut ops = OpCount::default();
            // The kernel writes every input gradient, or adds to it when the conv accumulates.
            if let Some(dst) = data.as_half_mut() {
                let counting = scratch.count.then_some(&mut ops);
                let dst = (&mut dst[range], acc);
                conv2d_backward_input_into(mode, &shape, &weights, &e, dst, counting, &mut scratch.conv);
            }
            scratch.vecs.extend([e, weights]);
            ops
        });
        let ops = super::jobs::launch(self.st, o, (work, scratch), counted, (None, Hold::Range));
        let a = [
            self.touch(err.buf, shape.out_len()),
            self.touch(w.buf, self.broadcast_accesses(ops.executed, shape.oh() * shape.ow(), 1)),
            self.touch(out.buf, shape.in_len()),
        ];
        let pj = self.mac_pj();
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }

    /// `bp.pool`: one step per in-bounds window element. Windows that tile the map only
    /// route or spread (no arithmetic charged); overlapping windows add into `dx`, one FP16
    /// add per element.
    pub(crate) fn pool_bwd(
        &mut self,
        kind: PoolKind,
        dy: &Access,
        dx: &Access,
        x: &Option<Access>,
        geom: &isa::PoolGeometry,
    ) -> Step {
        let shape = self.pool_shape(geom)?;
        self.need("dy", dy, shape.out_len())?;
        self.need("dx", dx, shape.in_len())?;
        let g = self.half_vec("dy", dy)?;
        let mut gin = vec![S::default(); shape.in_len()];
        match (kind, x) {
            (PoolKind::Avg, _) => avgpool_backward(&shape, &g, &mut gin),
            (PoolKind::Max, Some(xa)) => {
                self.need("x", xa, shape.in_len())?;
                let bits = self.bits_vec("x", xa)?;
                maxpool_backward(&shape, bits.slice(0, bits.len()), &g, &mut gin);
            }
            (PoolKind::Max, None) => return Err(self.bad("max pooling backward needs the forward input `x`")),
        }
        self.set_half("dx", dx, &gin)?;
        let taps = shape.taps();
        let a = [self.touch(dy.buf, shape.out_len()), self.touch(dx.buf, taps)];
        let ops = OpCount { executed: taps as u64, skipped: 0 };
        let pj = if shape.tiles() { 0.0 } else { self.st.chip.energy.fp16_add_pj };
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
    }

    /// `bp.soma` over `rows` timesteps, last row first: row operands hold `rows*n` elements,
    /// `dv` `n`, and `ds` either (`n` means one error shared by every row).
    pub(crate) fn soma_bwd(&mut self, o: SomaOps<'_>, n: u32, rows: u16, cfg: u8, fire: bool) -> Step {
        let n = n as usize;
        let p = self.neuron(cfg)?;
        let rows = self.row_count(rows)?;
        let all = rows * n;
        if o.ds.len as usize != n {
            self.need("ds", o.ds, all)?;
        }
        for (name, a, len) in [("dv", Some(o.dv), n), ("dh", Some(o.dh), all), ("h", o.h.as_ref(), all)] {
            a.map(|a| self.need(name, a, len)).transpose()?;
        }
        for (name, a) in [("mask", o.mask.as_ref()), ("spk", o.spk.as_ref()), ("nz", o.nz.as_ref())] {
            a.map(|a| self.need(name, a, all).and_then(|_| self.width(name, a, 1))).transpose()?;
        }
        let nonzero = match if fire { self.soma_in_place(&p, &o, rows) } else { None } {
            Some(r) => r.map_err(|m| self.bad(m))?,
            None => self.soma_rows_copied(&p, &o, (n, rows), fire)?,
        };
        self.layer(|l| {
            l.error_elems += all as u64;
            l.error_nonzero += nonzero as u64;
        });
        let (ds, dv) = (self.touch_rows(o.ds.buf, n, rows), self.touch_rows(o.dv.buf, 2 * n, rows));
        let mut acc = [ds, dv, self.touch_rows(o.dh.buf, n, rows), 0, 0, 0, 0];
        for (slot, a) in acc[3..].iter_mut().zip([o.h, o.mask, o.spk, o.nz].into_iter().flatten()) {
            *slot = self.touch_rows(a.buf, n, rows);
        }
        let e = &self.st.chip.energy;
        let per = 3.0 * e.fp16_mul_pj + 2.0 * e.fp16_add_pj;
        self.elementwise_rows(n, (1, rows), OpCount { executed: 5 * all as u64, skipped: 0 }, per, &acc);
        Ok(Flow::Next)
    }

    /// One row of `bp.soma` on copies of its 16-bit inputs, written back in operand order;
    /// returns the number of non-zero errors. Every instruction that cannot run in place
    /// (see `soma.rs`) comes here, row by row (see `soma_rows.rs`).
    pub(crate) fn soma_copied(
        &mut self,
        p: &LifParams,
        o: &SomaOps<'_>,
        n: usize,
        fire: bool,
    ) -> Result<usize, SimError> {
        let ds = self.pooled_half("ds", o.ds)?;
        let mut dv = self.pooled_half("dv", o.dv)?;
        let mut dh = self.pooled_zeros(n);
        let h = match (fire, o.h.as_ref()) {
            (true, Some(a)) => self.pooled_half("h", a)?,
            _ => self.pooled_zeros(0),
        };
        if fire {
            // The saved bits are read in place: the kernel writes only `dv` and `dh`, which
            // are copies.
            let mask = o.mask.as_ref().map(|a| self.read("mask", a, None)).transpose()?;
            let spk = o.spk.as_ref().map(|a| self.read("spk", a, None)).transpose()?;
            let mask = mask.as_ref().map(Opnd::bits).transpose().map_err(|m| self.bad(m))?;
            let spk = spk.as_ref().map(Opnd::bits).transpose().map_err(|m| self.bad(m))?;
            let saved = Saved { h: o.h.as_ref().map(|_| &h[..]), mask, spk };
            lif_backward(p, &ds, &saved, &mut dv, &mut dh).map_err(|m| self.bad(m))?;
        } else {
            readout_backward_step(p.beta, &ds, &mut dv, &mut dh);
        }
        self.set_half("dv", o.dv, &dv)?;
        self.set_half("dh", o.dh, &dh)?;
        let mut nz = self.pooled_bits(0);
        nz.refill(n, |i| dh[i].to_f32() != 0.0);
        let nonzero = nz.count_ones();
        if let Some(a) = o.nz {
            self.set_bits("nz", a, &nz)?;
        }
        self.recycle([ds, dv, dh, h]);
        self.recycle_bits([nz]);
        Ok(nonzero)
    }

    pub(crate) fn loss(
        &mut self,
        kind: LossKind,
        x: &Access,
        target: &Access,
        out: &Access,
        loss: &Option<Access>,
        (n, t, b): (u16, u16, u16),
    ) -> Step {
        let n = usize::from(n);
        for (name, a) in [("x", x), ("target", target), ("out", out)] {
            self.need(name, a, n)?;
        }
        if t == 0 || b == 0 {
            return Err(self.bad(format!("`t` and `b` must be at least 1 (t={t}, b={b})")));
        }
        let (xs, ts) = (self.span("x", x)?, self.span("target", target)?);
        let z: Vec<f32> = self.st.vals(xs).iter().map(|v| v / f32::from(t)).collect();
        let y = self.st.vals(ts);
        let kind = match kind {
            LossKind::MseRate => KLoss::MseRate,
            LossKind::CeRate => KLoss::CeRate,
            LossKind::CeMem => KLoss::CeMem,
        };
        // An all-zero target is a padding slot of a short last batch: it gets no gradient
        // and adds no loss.
        let real = y.iter().any(|v| *v != 0.0);
        let mut g = vec![S::default(); n];
        if real {
            output_grad_row(kind, &z, &y, usize::from(b), usize::from(t), &mut g);
        }
        self.set_half("out", out, &g)?;
        if let Some(la) = loss.as_ref().filter(|_| real) {
            self.need("loss", la, 1)?;
            let label = y.iter().enumerate().fold(0, |best, (i, v)| if *v > y[best] { i } else { best });
            let value = loss_value(kind, &z, &[label]) / f64::from(b);
            let sp = self.span("loss", la)?;
            let old = self.st.vals(sp);
            self.st.bufs[sp.slot].set_vals(sp.start, &[old[0] + value as f32]);
        }
        let a = [self.touch(x.buf, n), self.touch(target.buf, n), self.touch(out.buf, n)];
        let e = &self.st.chip.energy;
        let per = 2.0 * e.fp16_mul_pj + 2.0 * e.fp16_add_pj;
        self.elementwise(n, 4, OpCount { executed: 4 * n as u64, skipped: 0 }, per, &a);
        Ok(Flow::Next)
    }
}

/// What the forward pass kept for the gradient soma.
pub(crate) struct Saved<'a, S> {
    pub(crate) h: Option<&'a [S]>,
    pub(crate) mask: Option<SpikeSlice<'a>>,
    pub(crate) spk: Option<SpikeSlice<'a>>,
}

// The blocks of the gradient soma read the saved bits a word per block.
const _: () = assert!(SOMA_BLOCK == 64);

/// One gradient-soma timestep, the arithmetic of
/// [`lif_backward_step`](crate::kernels::grad::lif_backward_step), with the surrogate taken
/// from the saved H when present and otherwise from the 1-bit rect mask (which is what the
/// chip keeps for the rect surrogate).
pub(crate) fn lif_backward<S: Storage>(
    p: &LifParams,
    ds: &[S],
    saved: &Saved<'_, S>,
    gv: &mut [S],
    gh: &mut [S],
) -> Result<(), String> {
    const B: usize = SOMA_BLOCK;
    let rect = match (p.surrogate, saved.h, saved.mask) {
        (_, Some(_), _) => None,
        (Sg::Rect { width }, None, Some(_)) => Some(S::round(1.0 / width)),
        _ => return Err("`bp.soma` needs `h`, or `mask` with the rect surrogate".into()),
    };
    let needs_spk = matches!(p.reset, Reset::Hard { .. });
    if needs_spk && saved.spk.is_none() {
        return Err("`bp.soma` with hard reset needs the saved spikes `spk`".into());
    }
    if !p.detach_reset && needs_spk && saved.h.is_none() {
        return Err("`bp.soma` with hard reset through the reset path needs `h`".into());
    }
    let (mut sg, mut dvdh, mut a, mut b) = ([0.0f32; B], [0.0f32; B], [0.0f32; B], [0.0f32; B]);
    for start in (0..ds.len()).step_by(B) {
        let m = B.min(ds.len() - start);
        let r = start..start + m;
        let (ds, gv, gh) = (&ds[r.clone()], &mut gv[r.clone()], &mut gh[r.clone()]);
        // Most instructions cover 16 neurons: a copy of the block with that length known
        // lets the compiler drop the loop set-up and tails, which dominate so short a block.
        if m == 16 {
            let scratch = (&mut sg[..16], &mut dvdh[..16], &mut a[..16], &mut b[..16]);
            backward_block(p, (saved, rect), r, (ds, gv, gh), scratch);
        } else {
            let scratch = (&mut sg[..m], &mut dvdh[..m], &mut a[..m], &mut b[..m]);
            backward_block(p, (saved, rect), r, (ds, gv, gh), scratch);
        }
    }
    Ok(())
}

/// The scratch of one block of [`lif_backward`]: surrogate, dV/dH and two temporaries.
type Scratch<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// One block of [`lif_backward`]: elements `r` of the layer, whose `ds`, `gv` and `gh` are
/// given already cut to the block, as is the scratch.
#[inline(always)]
fn backward_block<S: Storage>(
    p: &LifParams,
    (saved, rect): (&Saved<'_, S>, Option<f32>),
    r: Range<usize>,
    (ds, gv, gh): (&[S], &mut [S], &mut [S]),
    (sg, dvdh, a, b): Scratch<'_>,
) {
    let beta = S::round(p.beta);
    surrogate_block(p, saved, rect, r.clone(), sg);
    reset_block(p, saved, r, sg, dvdh);
    // g = fl(fl(dS·sg) + fl(dV·dV/dH)), then dV for the step before = fl(β·g).
    S::to_f32_slice(ds, a);
    a.iter_mut().zip(sg.iter()).for_each(|(x, s)| *x *= s);
    S::round_slice(a);
    S::to_f32_slice(gv, b);
    b.iter_mut().zip(dvdh.iter()).for_each(|(x, d)| *x *= d);
    S::round_slice(b);
    a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x += y);
    S::round_slice(a);
    S::from_f32_slice(a, gh);
    a.iter_mut().for_each(|x| *x *= beta);
    S::round_slice(a);
    S::from_f32_slice(a, gv);
}

/// The surrogate derivative of elements `r`, rounded to storage: `fl(sg(fl(H − θ)))` from
/// the saved H, or the rect height where the saved 1-bit mask is set.
#[inline(always)]
fn surrogate_block<S: Storage>(
    p: &LifParams,
    saved: &Saved<'_, S>,
    rect: Option<f32>,
    r: Range<usize>,
    sg: &mut [f32],
) {
    match (saved.h, rect, saved.mask) {
        (Some(h), _, _) => {
            let thr = S::round(p.threshold);
            S::to_f32_slice(&h[r], sg);
            sg.iter_mut().for_each(|x| *x -= thr);
            S::round_slice(sg);
            p.surrogate.grad_slice(sg);
            S::round_slice(sg);
        }
        (None, Some(height), Some(mask)) => {
            let w = mask.word(r.start / SOMA_BLOCK);
            for (j, x) in sg.iter_mut().enumerate() {
                *x = if w >> j & 1 == 1 { height } else { 0.0 };
            }
        }
        _ => sg.fill(0.0),
    }
}

/// dV/dH of elements `r` given their surrogate `sg`: 1 with a detached soft reset,
/// `1 − θ·sg` through a soft reset, and with a hard reset 0 where the neuron fired (plus
/// `(v_reset − H)·sg` through the reset path when it is not detached). Each operation is
/// rounded to storage.
#[inline(always)]
fn reset_block<S: Storage>(p: &LifParams, saved: &Saved<'_, S>, r: Range<usize>, sg: &[f32], dvdh: &mut [f32]) {
    match p.reset {
        Reset::Hard { v_reset } => {
            let fired = saved.spk.map_or(0, |s| s.word(r.start / SOMA_BLOCK));
            for (j, d) in dvdh.iter_mut().enumerate() {
                *d = if fired >> j & 1 == 1 { 0.0 } else { 1.0 };
            }
            if let Some(h) = saved.h.filter(|_| !p.detach_reset) {
                let mut t = [0.0f32; SOMA_BLOCK];
                let t = &mut t[..dvdh.len()];
                S::to_f32_slice(&h[r], t);
                let v_reset = S::round(v_reset);
                t.iter_mut().for_each(|x| *x = v_reset - *x);
                S::round_slice(t);
                t.iter_mut().zip(sg).for_each(|(x, s)| *x *= s);
                S::round_slice(t);
                dvdh.iter_mut().zip(t.iter()).for_each(|(d, x)| *d += x);
                S::round_slice(dvdh);
            }
        }
        Reset::Soft if p.detach_reset => dvdh.fill(1.0),
        Reset::Soft => {
            let thr = S::round(p.threshold);
            dvdh.iter_mut().zip(sg).for_each(|(d, s)| *d = thr * s);
            S::round_slice(dvdh);
            dvdh.iter_mut().for_each(|d| *d = 1.0 - *d);
            S::round_slice(dvdh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Saved, lif_backward};
    use crate::data::rng::Rng;
    use crate::kernels::grad::lif_backward_step;
    use crate::kernels::soma::{LifParams, Reset, Surrogate, surrogate_mask};
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The block kernel of `bp.soma`, reading the saved spikes and the rect mask a word
    /// per block from windows at unaligned offsets, against the element-wise reference
    /// over several blocks: every reset, detached or not, with the surrogate from H and,
    /// for the rect surrogate, from the 1-bit mask alone.
    #[test]
    fn block_soma_matches_the_elementwise_reference() {
        let mut rng = Rng::new(41);
        let resets = [(Reset::Hard { v_reset: 0.0 }, true), (Reset::Hard { v_reset: 0.0 }, false)];
        let resets = resets.into_iter().chain([(Reset::Soft, true), (Reset::Soft, false)]);
        for (reset, detach_reset) in resets {
            for surrogate in [Surrogate::Rect { width: 1.0 }, Surrogate::Atan { alpha: 2.0 }] {
                let p = LifParams { beta: 0.75, threshold: 1.0, reset, detach_reset, surrogate };
                for (n, offset) in [(150usize, 37usize), (64, 0), (7, 63), (16, 0), (16, 45)] {
                    check(&p, n, offset, &mut rng);
                }
            }
        }
    }

    fn check(p: &LifParams, n: usize, offset: usize, rng: &mut Rng) {
        let vals = |rng: &mut Rng, lo, hi| (0..n).map(|_| f16::from_f32(rng.range_f64(lo, hi) as f32)).collect();
        let (ds, h, gv0): (Vec<f16>, Vec<f16>, Vec<f16>) =
            (vals(rng, -1.0, 1.0), vals(rng, 0.0, 2.0), vals(rng, -1.0, 1.0));
        let (mut spk, mut mask) = (SpikeBits::zeros(offset + n + 5), SpikeBits::zeros(offset + n + 5));
        for (i, hi) in h.iter().enumerate() {
            spk.set(offset + i, hi.to_f32() >= p.threshold);
        }
        surrogate_mask(p, &h, &mut mask, offset);
        let (mut gv_want, mut gh_want) = (gv0.clone(), vec![f16::ZERO; n]);
        lif_backward_step(p, &ds, &h, spk.slice(offset, n), &mut gv_want, &mut gh_want);
        let from_mask = matches!(p.surrogate, Surrogate::Rect { .. }) && (p.detach_reset || p.reset == Reset::Soft);
        for use_h in [true, false].into_iter().filter(|&u| u || from_mask) {
            let saved = Saved {
                h: use_h.then_some(&h[..]),
                mask: Some(mask.slice(offset, n)),
                spk: Some(spk.slice(offset, n)),
            };
            let (mut gv, mut gh) = (gv0.clone(), vec![f16::ZERO; n]);
            assert!(lif_backward(p, &ds, &saved, &mut gv, &mut gh).is_ok());
            let bits = |v: &[f16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let case = format!("{p:?} n {n} offset {offset} h {use_h}");
            assert_eq!(bits(&gh), bits(&gh_want), "{case}");
            assert_eq!(bits(&gv), bits(&gv_want), "{case}");
        }
    }
}
