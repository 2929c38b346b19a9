//! WG engine instructions: weight and bias gradients, and the optimizer update on FP32
//! master weights.

use super::engine::{ConvDims, width_msg};
use super::exec::{Exec, Flow, Step};
use crate::fp::Storage;
use crate::kernels::OpCount;
use crate::kernels::grad::{bias_grad, conv2d_weight_grad};
use crate::kernels::tile::linear_kn_weight_grad;
use crate::kernels::update::{Adam, Momentum, adam, sgd_momentum};
use isa::{Access, OptKind};

/// Operands of `wg.update`.
pub(crate) struct UpdateOps<'a> {
    pub(crate) grad: &'a Access,
    pub(crate) master: &'a Access,
    pub(crate) state: &'a Option<Access>,
    pub(crate) w16: &'a Access,
}

impl<S: Storage> Exec<'_, S> {
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
    ) -> Step {
        let (k, n) = (usize::from(k), usize::from(n));
        self.need("spk", spk, k)?;
        self.need("err", err, n)?;
        self.need("dw", dw, k * n)?;
        if let Some(a) = nz {
            self.need("nz", a, n)?;
        }
        let o = self.span("dw", dw)?;
        let mode = self.st.mode;
        let ops = self.with_taken(o.slot, |ex, data| {
            let x = ex.read("spk", spk, Some((o.slot, data)))?;
            let e = ex.read("err", err, Some((o.slot, data)))?;
            let z = ex.read_opt("nz", nz, Some((o.slot, data)))?;
            let (input, eh) = (x.input().map_err(|m| ex.bad(m))?, e.half().map_err(|m| ex.bad(m))?);
            let zb = z.as_ref().map(|z| z.bits()).transpose().map_err(|m| ex.bad(m))?;
            let dst = data.as_word_mut().ok_or_else(|| ex.bad(width_msg("dw", 32)))?;
            let mut ops = OpCount::default();
            linear_kn_weight_grad(mode, input, eh, zb, &mut dst[o.range()], !skip, &mut ops);
            Ok(ops)
        })?;
        self.bias_grad(err, db, 1)?;
        let a = [self.touch(spk.buf, k), self.touch(err.buf, n), self.touch(dw.buf, 2 * ops.executed as usize)];
        let pj = self.st.chip.energy.fp32_add_pj + self.st.chip.energy.mux_pj / 16.0;
        self.engine(ops, pj, &a);
        Ok(Flow::Next)
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
        let e = self.masked_err(err, nz)?;
        let o = self.span("dw", dw)?;
        let mode = self.st.mode;
        let mut ops = self.with_taken(o.slot, |ex, data| {
            let x = ex.read("spk", spk, Some((o.slot, data)))?;
            let input = x.input().map_err(|m| ex.bad(m))?;
            let dst = data.as_word_mut().ok_or_else(|| ex.bad(width_msg("dw", 32)))?;
            let mut ops = OpCount::default();
            conv2d_weight_grad(mode, &shape, &e, input, &mut dst[o.range()], &mut ops);
            Ok(ops)
        })?;
        if !skip {
            ops = OpCount { executed: ops.total(), skipped: 0 };
        }
        self.bias_grad(err, db, shape.oh() * shape.ow())?;
        let a = [
            self.touch(spk.buf, shape.in_len()),
            self.touch(err.buf, shape.out_len()),
            self.touch(dw.buf, 2 * ops.executed as usize),
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
        let grad = self.word_vec("grad", o.grad)?;
        let mut master = self.word_vec("master", o.master)?;
        let mut w16 = self.half_vec("w16", o.w16)?;
        let mut state = o.state.as_ref().map(|a| self.word_vec("state", a)).transpose()?.unwrap_or_default();
        let wd = if slot.kind == OptKind::Adam { slot.wd } else { 0.0 };
        // The gradient is scaled and rounded to storage first, as the golden step stores
        // gradients before the update; Adam's weight decay is L2 added to it.
        let g: Vec<S> = grad.iter().zip(&master).map(|(g, m)| S::from_f32(g * scale + wd * m)).collect();
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
        self.set_word("master", o.master, &master)?;
        self.set_half("w16", o.w16, &w16)?;
        if let Some(a) = o.state {
            self.set_word("state", a, &state)?;
        }
        if zero {
            self.set_word("grad", o.grad, &vec![0.0; n])?;
        }
        let mut acc = vec![
            self.touch(o.grad.buf, n * (1 + usize::from(zero))),
            self.touch(o.master.buf, 2 * n),
            self.touch(o.w16.buf, n),
        ];
        if let Some(a) = o.state {
            acc.push(self.touch(a.buf, 2 * state.len()));
        }
        let e = &self.st.chip.energy;
        let per = passes as f64 * (e.fp32_mul_pj + e.fp32_add_pj);
        self.elementwise(n, passes, OpCount { executed: 2 * passes * n as u64, skipped: 0 }, per, &acc);
        Ok(Flow::Next)
    }
}
