//! Per-instruction operand checks: ranges, core indices, and lengths against shape fields.
//!
//! This is one of the few places that matches on [`Instr`] variants: what a shape means is
//! specific to each instruction, and it lives inside the ISA crate beside the table.

use super::flow::Ctx;
use super::{Report, ViolationKind as K};
use crate::conv::{ConvGeometry, PoolGeometry};
use crate::instr::Instr;
use crate::operand::{Access, NUM_CFG_SLOTS, NUM_CHANNELS, NUM_TOKENS};

/// The checks for one instruction; `ctx` gives the chip and location.
pub(crate) fn check(instr: &Instr, ctx: &Ctx<'_>, r: &mut Report) {
    let mut c = Check { ctx, r };
    match instr {
        Instr::Loop { n, .. } => c.min("n", u64::from(*n), 1),
        Instr::Signal { core, tok, .. } => {
            c.core("core", *core);
            c.below("tok", u64::from(*tok), u64::from(NUM_TOKENS));
        }
        Instr::Wait { tok, n } => {
            c.below("tok", u64::from(*tok), u64::from(NUM_TOKENS));
            c.min("n", u64::from(*n), 1);
        }
        Instr::Barrier { count, .. } => c.min("count", u64::from(*count), 1),
        Instr::CfgNeuron { slot, .. } | Instr::CfgOpt { slot, .. } | Instr::WgStep { slot } => c.slot(*slot),
        Instr::DmaLoad { dst: a, rows, row, .. } | Instr::DmaStore { src: a, rows, row, .. } => {
            c.bits_eq("buffer side", a, u128::from(*rows) * u128::from(*row) * 8);
        }
        Instr::NocSend { to: core, chan, .. } | Instr::NocRecv { from: core, chan, .. } => {
            c.core("core", *core);
            c.below("chan", u64::from(*chan), u64::from(NUM_CHANNELS));
        }
        Instr::Copy { dst, src } => c.bits_eq("dst", dst, c.bits(src)),
        Instr::Pad { dst, src, c: ch, h, w, p, extract } => pad(&mut c, dst, src, (*ch, *h, *w, *p), *extract),
        Instr::FpSum { dst, src } => c.len("dst", dst, u64::from(src.len)),
        _ => engine_shapes(instr, &mut c),
    }
}

fn engine_shapes(instr: &Instr, c: &mut Check<'_, '_>) {
    match instr {
        Instr::FpLinear { spk, w, out, k, n, .. } => linear(c, spk, w, out, *k, *n),
        Instr::BpLinear { err, w, out, n, k, nz, .. } => {
            linear(c, err, w, out, *n, *k);
            c.opt_mask("nz", nz.as_ref(), u64::from(*n));
        }
        Instr::FpConv { spk, w, bias, out, cin, cout, ih, iw, kh, kw, stride, .. } => {
            let dims = ConvGeometry { cin: *cin, cout: *cout, ih: *ih, iw: *iw, kh: *kh, kw: *kw, stride: *stride };
            if let Some((inp, wt, outp)) = c.conv(&dims) {
                c.len("spk", spk, inp);
                c.len("w", w, wt);
                c.opt_len("bias", bias.as_ref(), u64::from(*cout));
                c.len("out", out, outp);
            }
        }
        Instr::BpConv { err, w, out, cin, cout, ih, iw, kh, kw, stride, nz, .. } => {
            let dims = ConvGeometry { cin: *cin, cout: *cout, ih: *ih, iw: *iw, kh: *kh, kw: *kw, stride: *stride };
            if let Some((inp, wt, outp)) = c.conv(&dims) {
                c.len("err", err, outp);
                c.len("w", w, wt);
                c.len("out", out, inp);
                c.opt_mask("nz", nz.as_ref(), outp);
            }
        }
        Instr::FpPool { src, dst, c: ch, ih, iw, k, stride, pad, .. } => {
            pool(c, src, dst, None, &PoolGeometry { c: *ch, ih: *ih, iw: *iw, k: *k, stride: *stride, pad: *pad });
        }
        Instr::BpPool { dy, dx, x, c: ch, ih, iw, k, stride, pad, .. } => {
            let geom = PoolGeometry { c: *ch, ih: *ih, iw: *iw, k: *k, stride: *stride, pad: *pad };
            pool(c, dx, dy, x.as_ref(), &geom);
        }
        Instr::FpLif { x, bias, v, h, spk, mask, n, rows, cfg, .. } => {
            let (n, all) = soma_lens(*n, *rows);
            c.slot(*cfg);
            c.len("x", x, all);
            c.len("v", v, n);
            c.opt_len("bias", bias.as_ref(), n);
            c.opt_len("h", h.as_ref(), all);
            c.opt_mask("spk", spk.as_ref(), all);
            c.opt_mask("mask", mask.as_ref(), all);
        }
        Instr::BpSoma { ds, h, mask, spk, dv, dh, nz, n, rows, cfg, .. } => {
            let (n, all) = soma_lens(*n, *rows);
            c.slot(*cfg);
            if u64::from(ds.len) != n && u64::from(ds.len) != all {
                c.push(format!(
                    "operand `ds` has {} elements: expected rows*n = {all} (one row each) or n = {n} (shared by every row)",
                    ds.len
                ));
            }
            c.len("dv", dv, n);
            c.len("dh", dh, all);
            c.opt_len("h", h.as_ref(), all);
            c.opt_mask("mask", mask.as_ref(), all);
            c.opt_mask("spk", spk.as_ref(), all);
            c.opt_mask("nz", nz.as_ref(), all);
        }
        Instr::BpLoss { x, target, out, loss, n, t, b, .. } => {
            let n = u64::from(*n);
            for (name, a) in [("x", x), ("target", target), ("out", out)] {
                c.len(name, a, n);
            }
            c.opt_len("loss", loss.as_ref(), 1);
            c.min("t", u64::from(*t), 1);
            c.min("b", u64::from(*b), 1);
        }
        _ => gradient_shapes(instr, c),
    }
}

fn gradient_shapes(instr: &Instr, c: &mut Check<'_, '_>) {
    match instr {
        Instr::WgLinear { spk, err, dw, db, k, n, nz, .. } => {
            let (k, n) = (u64::from(*k), u64::from(*n));
            c.len("spk", spk, k);
            c.len("err", err, n);
            c.len("dw", dw, k * n);
            c.opt_len("db", db.as_ref(), n);
            c.opt_mask("nz", nz.as_ref(), n);
        }
        Instr::WgConv { spk, err, dw, db, cin, cout, ih, iw, kh, kw, stride, nz, .. } => {
            let dims = ConvGeometry { cin: *cin, cout: *cout, ih: *ih, iw: *iw, kh: *kh, kw: *kw, stride: *stride };
            if let Some((inp, wt, outp)) = c.conv(&dims) {
                c.len("spk", spk, inp);
                c.len("err", err, outp);
                c.len("dw", dw, wt);
                c.opt_len("db", db.as_ref(), u64::from(*cout));
                c.opt_mask("nz", nz.as_ref(), outp);
            }
        }
        Instr::WgUpdate { grad, master, state, w16, n, cfg, .. } => {
            let n = u64::from(*n);
            c.slot(*cfg);
            for (name, a) in [("grad", grad), ("master", master), ("w16", w16)] {
                c.len(name, a, n);
            }
            if let Some(s) = state.as_ref().filter(|s| u64::from(s.len) != n && u64::from(s.len) != 2 * n) {
                c.push(format!(
                    "operand `state` has {} elements: expected n = {n} (momentum) or 2n = {} (Adam)",
                    s.len,
                    2 * n
                ));
            }
        }
        _ => {}
    }
}

/// The neuron count of a soma and the element count of its row-carrying operands, `rows*n`.
/// A zero row count is reported by `rows.rs`; the lengths are then checked as for one row,
/// so that one mistake gives one violation.
fn soma_lens(n: u32, rows: u16) -> (u64, u64) {
    let n = u64::from(n);
    (n, n * u64::from(rows.max(1)))
}

fn linear(c: &mut Check<'_, '_>, input: &Access, w: &Access, out: &Access, k: u16, n: u16) {
    let (k, n) = (u64::from(k), u64::from(n));
    c.len("input", input, k);
    c.len("w", w, k * n);
    c.len("out", out, n);
}

fn pool(c: &mut Check<'_, '_>, big: &Access, small: &Access, x: Option<&Access>, g: &PoolGeometry) {
    match g.sizes() {
        Ok(sizes) => {
            c.len("input", big, sizes.input);
            c.len("output", small, sizes.output);
            c.opt_len("x", x, sizes.input);
        }
        Err(message) => c.range(message),
    }
}

/// `pad`: non-zero dimensions, a dense side of `c*h*w` and a padded side of
/// `c*(h+2p)*(w+2p)` elements, and one element width on both sides.
fn pad(c: &mut Check<'_, '_>, dst: &Access, src: &Access, (ch, h, w, p): (u16, u16, u16, u8), extract: bool) {
    for (name, v) in [("c", ch), ("h", h), ("w", w)] {
        c.min(name, u64::from(v), 1);
    }
    let (ch, h, w, p) = (u64::from(ch), u64::from(h), u64::from(w), u64::from(p));
    let ((dense_name, dense), (padded_name, padded)) =
        if extract { (("dst", dst), ("src", src)) } else { (("src", src), ("dst", dst)) };
    c.len(dense_name, dense, ch * h * w);
    c.len(padded_name, padded, ch * (h + 2 * p) * (w + 2 * p));
    c.same_width(dst, src);
}

struct Check<'c, 'r> {
    ctx: &'c Ctx<'c>,
    r: &'r mut Report,
}

impl Check<'_, '_> {
    fn push(&mut self, msg: String) {
        self.r.push(K::Shape, self.ctx.at, msg);
    }

    fn range(&mut self, msg: String) {
        self.r.push(K::OperandRange, self.ctx.at, msg);
    }

    fn min(&mut self, name: &str, v: u64, min: u64) {
        if v < min {
            self.range(format!("operand `{name}` is {v}: expected at least {min}"));
        }
    }

    fn below(&mut self, name: &str, v: u64, limit: u64) {
        if v >= limit {
            self.range(format!("operand `{name}` is {v}: expected below {limit}"));
        }
    }

    fn slot(&mut self, slot: u8) {
        self.below("slot", u64::from(slot), u64::from(NUM_CFG_SLOTS));
    }

    fn core(&mut self, name: &str, core: u16) {
        let n = self.ctx.chip.core_count();
        if usize::from(core) >= n {
            self.r.push(
                K::CoreIndex,
                self.ctx.at,
                format!("operand `{name}` names core {core} but the chip has {n} cores"),
            );
        }
    }

    fn bits(&self, a: &Access) -> u128 {
        let elem = self.ctx.chip.buffer(a.buf).map_or(16, |b| b.elem_bits);
        u128::from(a.len) * u128::from(elem)
    }

    fn bits_eq(&mut self, name: &str, a: &Access, want: u128) {
        let got = self.bits(a);
        if got != want {
            self.push(format!(
                "operand `{name}` (`{}`) holds {got} bits: expected {want} to match the other side",
                a.buf
            ));
        }
    }

    /// Both operands of an element-by-element move hold elements of one width.
    fn same_width(&mut self, dst: &Access, src: &Access) {
        let width = |a: &Access| self.ctx.chip.buffer(a.buf).map_or(16, |b| b.elem_bits);
        let (d, s) = (width(dst), width(src));
        if d != s {
            self.push(format!(
                "operand `dst` (`{}`) holds {d}-bit elements but `src` (`{}`) holds {s}-bit ones",
                dst.buf, src.buf
            ));
        }
    }

    fn len(&mut self, name: &str, a: &Access, want: u64) {
        if u64::from(a.len) != want {
            self.push(format!("operand `{name}` has {} elements: expected {want} from the shape fields", a.len));
        }
    }

    fn opt_len(&mut self, name: &str, a: Option<&Access>, want: u64) {
        if let Some(a) = a {
            self.len(name, a, want);
        }
    }

    /// A 1-bit operand (spikes, mask, nonzero bitmap) of `want` elements.
    fn opt_mask(&mut self, name: &str, a: Option<&Access>, want: u64) {
        let Some(a) = a else { return };
        self.len(name, a, want);
        let elem = self.ctx.chip.buffer(a.buf).map_or(1, |b| b.elem_bits);
        if elem != 1 {
            self.push(format!("operand `{name}` must be a 1-bit buffer, but `{}` holds {elem}-bit elements", a.buf));
        }
    }

    /// Input, weight and output element counts, or `None` after reporting bad dimensions.
    fn conv(&mut self, d: &ConvGeometry) -> Option<(u64, u64, u64)> {
        match d.sizes() {
            Ok(sizes) => Some((sizes.input, sizes.weights, sizes.output)),
            Err(message) => {
                self.range(message);
                None
            }
        }
    }
}
