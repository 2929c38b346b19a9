//! The [`Visitor`] implementation: one method per instruction, each forwarding its
//! operands to the handler in `exec.rs` (control, data movement) or in `fp.rs`, `bp.rs`,
//! `wg.rs` (engines). This is the only dispatch on instruction kind in the simulator, and
//! it is generated from the ISA's table: the simulator never matches on opcodes.

use super::SimError;
use super::error::Location;
use super::exec::{Exec, Flow, PadDims, Step};
use super::rows::Rows;
use crate::fp::Storage;
use isa::{Access, DramAddr, LossKind, OptKind, PoolGeometry, PoolKind, Reg, ResetMode, Stream, Surrogate, Visitor};

impl<S: Storage> Visitor for Exec<'_, S> {
    type Output = Step;

    fn halt(&mut self) -> Step {
        Ok(Flow::Halt)
    }
    fn loop_start(&mut self, r: &Reg, n: &u32) -> Step {
        Exec::loop_start(self, *r, *n)
    }
    fn loop_end(&mut self, r: &Reg) -> Step {
        Exec::loop_end(self, *r)
    }
    fn signal(&mut self, core: &u16, stream: &Stream, tok: &u8) -> Step {
        Exec::signal(self, *core, *stream, *tok)
    }
    fn wait(&mut self, tok: &u8, n: &u16) -> Step {
        Exec::wait(self, *tok, *n)
    }
    fn barrier(&mut self, id: &u8, count: &u16) -> Step {
        Exec::barrier(self, *id, *count)
    }
    fn cfg_neuron(
        &mut self,
        slot: &u8,
        beta: &f32,
        theta: &f32,
        reset: &ResetMode,
        detach: &bool,
        sg: &Surrogate,
        alpha: &f32,
    ) -> Step {
        Exec::cfg_neuron(self, *slot, *beta, *theta, *reset, *detach, *sg, *alpha)
    }
    fn cfg_opt(&mut self, slot: &u8, kind: &OptKind, lr: &f32, m: &f32, beta2: &f32, eps: &f32, wd: &f32) -> Step {
        Exec::cfg_opt(self, *slot, *kind, *lr, *m, *beta2, *eps, *wd)
    }
    fn dma_load(&mut self, dst: &Access, src: &DramAddr, rows: &u16, row: &u32, stride: &u32) -> Step {
        Exec::dma_load(self, dst, src, *rows, *row, *stride)
    }
    fn dma_store(&mut self, dst: &DramAddr, src: &Access, rows: &u16, row: &u32, stride: &u32) -> Step {
        Exec::dma_store(self, dst, src, *rows, *row, *stride)
    }
    fn noc_send(&mut self, to: &u16, chan: &u8, src: &Access) -> Step {
        Exec::noc_send(self, *to, *chan, src)
    }
    fn noc_recv(&mut self, from: &u16, chan: &u8, dst: &Access) -> Step {
        Exec::noc_recv(self, *from, *chan, dst)
    }
    fn copy(&mut self, dst: &Access, src: &Access) -> Step {
        Exec::copy(self, dst, src)
    }
    fn fill(&mut self, dst: &Access, value: &f32) -> Step {
        Exec::fill(self, dst, *value)
    }
    fn pad(&mut self, dst: &Access, src: &Access, c: &u16, h: &u16, w: &u16, p: &u8, extract: &bool) -> Step {
        Exec::pad(self, dst, src, PadDims { c: *c, h: *h, w: *w, p: *p }, *extract)
    }
    fn fp_linear(
        &mut self,
        spk: &Access,
        w: &Access,
        out: &Access,
        k: &u16,
        n: &u16,
        rows: &u16,
        spk_stride: &u16,
        out_stride: &u16,
        acc: &bool,
        skip: &bool,
    ) -> Step {
        let rows = Rows { count: *rows, first: *spk_stride, second: *out_stride };
        self.linear_fwd(spk, w, out, (*k, *n), (*acc, *skip), rows)
    }
    fn fp_conv(
        &mut self,
        spk: &Access,
        w: &Access,
        bias: &Option<Access>,
        out: &Access,
        cin: &u16,
        cout: &u16,
        ih: &u16,
        iw: &u16,
        kh: &u8,
        kw: &u8,
        stride: &u8,
        acc: &bool,
        skip: &bool,
    ) -> Step {
        let g = super::engine::ConvDims::new(*cin, *cout, *ih, *iw, *kh, *kw, *stride);
        self.conv_fwd(super::fp::ConvOps { spk, w, bias, out }, g, *acc, *skip)
    }
    fn fp_pool(
        &mut self,
        kind: &PoolKind,
        src: &Access,
        dst: &Access,
        c: &u16,
        ih: &u16,
        iw: &u16,
        k: &u8,
        stride: &u8,
        pad: &u8,
    ) -> Step {
        self.pool_fwd(*kind, src, dst, &PoolGeometry { c: *c, ih: *ih, iw: *iw, k: *k, stride: *stride, pad: *pad })
    }
    fn fp_lif(
        &mut self,
        x: &Access,
        bias: &Option<Access>,
        v: &Access,
        h: &Option<Access>,
        spk: &Option<Access>,
        mask: &Option<Access>,
        n: &u32,
        rows: &u16,
        cfg: &u8,
        fire: &bool,
    ) -> Step {
        self.lif_fwd(super::fp::LifOps { x, bias, v, h, spk, mask }, *n, *rows, *cfg, *fire)
    }
    fn fp_sum(&mut self, dst: &Access, src: &Access) -> Step {
        self.sum(dst, src)
    }
    fn bp_linear(
        &mut self,
        err: &Access,
        w: &Access,
        out: &Access,
        n: &u16,
        k: &u16,
        rows: &u16,
        err_stride: &u16,
        out_stride: &u16,
        acc: &bool,
        nz: &Option<Access>,
    ) -> Step {
        let rows = Rows { count: *rows, first: *err_stride, second: *out_stride };
        self.linear_bwd(err, w, out, (*k, *n), *acc, nz, rows)
    }
    fn bp_conv(
        &mut self,
        err: &Access,
        w: &Access,
        out: &Access,
        cin: &u16,
        cout: &u16,
        ih: &u16,
        iw: &u16,
        kh: &u8,
        kw: &u8,
        stride: &u8,
        acc: &bool,
        nz: &Option<Access>,
    ) -> Step {
        let g = super::engine::ConvDims::new(*cin, *cout, *ih, *iw, *kh, *kw, *stride);
        self.conv_bwd(err, w, out, g, *acc, nz)
    }
    fn bp_pool(
        &mut self,
        kind: &PoolKind,
        dy: &Access,
        dx: &Access,
        x: &Option<Access>,
        c: &u16,
        ih: &u16,
        iw: &u16,
        k: &u8,
        stride: &u8,
        pad: &u8,
    ) -> Step {
        self.pool_bwd(*kind, dy, dx, x, &PoolGeometry { c: *c, ih: *ih, iw: *iw, k: *k, stride: *stride, pad: *pad })
    }
    fn bp_soma(
        &mut self,
        ds: &Access,
        h: &Option<Access>,
        mask: &Option<Access>,
        spk: &Option<Access>,
        dv: &Access,
        dh: &Access,
        nz: &Option<Access>,
        n: &u32,
        rows: &u16,
        cfg: &u8,
        fire: &bool,
    ) -> Step {
        self.soma_bwd(super::bp::SomaOps { ds, h, mask, spk, dv, dh, nz }, *n, *rows, *cfg, *fire)
    }
    fn bp_loss(
        &mut self,
        kind: &LossKind,
        x: &Access,
        target: &Access,
        out: &Access,
        loss: &Option<Access>,
        n: &u16,
        t: &u16,
        b: &u16,
    ) -> Step {
        self.loss(*kind, x, target, out, loss, (*n, *t, *b))
    }
    fn wg_linear(
        &mut self,
        spk: &Access,
        err: &Access,
        dw: &Access,
        db: &Option<Access>,
        k: &u16,
        n: &u16,
        rows: &u16,
        spk_stride: &u16,
        err_stride: &u16,
        skip: &bool,
        nz: &Option<Access>,
    ) -> Step {
        let rows = Rows { count: *rows, first: *spk_stride, second: *err_stride };
        self.linear_grad(spk, err, dw, db, (*k, *n), *skip, nz, rows)
    }
    fn wg_conv(
        &mut self,
        spk: &Access,
        err: &Access,
        dw: &Access,
        db: &Option<Access>,
        cin: &u16,
        cout: &u16,
        ih: &u16,
        iw: &u16,
        kh: &u8,
        kw: &u8,
        stride: &u8,
        skip: &bool,
        nz: &Option<Access>,
    ) -> Step {
        let g = super::engine::ConvDims::new(*cin, *cout, *ih, *iw, *kh, *kw, *stride);
        self.conv_grad(spk, err, dw, db, g, *skip, nz)
    }
    fn wg_step(&mut self, slot: &u8) -> Step {
        let s = self.slot_index(*slot)?;
        let o = self.st.opt[self.core][s].as_mut().ok_or_else(|| SimError::BadOperand {
            at: Location { core: self.core, stream: self.stream, pc: self.pc },
            detail: format!("optimizer slot {s} was never configured by `cfg.opt`"),
        })?;
        o.step = o.step.saturating_add(1);
        Ok(Flow::Next)
    }
    fn wg_update(
        &mut self,
        grad: &Access,
        master: &Access,
        state: &Option<Access>,
        w16: &Access,
        n: &u32,
        cfg: &u8,
        scale: &f32,
        zero: &bool,
    ) -> Step {
        self.update(super::wg::UpdateOps { grad, master, state, w16 }, *n, *cfg, *scale, *zero)
    }
}
