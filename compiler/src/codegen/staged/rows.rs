//! Row windows of conv layers whose maps are too large for whole ones. A tile over output
//! rows `[r0, r1)` reads only padded input rows `[r0*s, (r1-1)*s + k)`, so FP and WG load
//! just that window of every input channel (with its halo) instead of the whole map. The
//! input-gradient pass works per block of input rows: it transposes the error rows that
//! reach the block into a window of the padded gradient and keeps only the block's rows,
//! so halos that overlap between blocks are each summed in full by both of them.
//!
//! A window region keeps `p` spare rows before its first and after its last window (see
//! [`ConvGeom::window_len`]): `pad` moves a map into or out of the interior of a bordered
//! one, and addressing that bordered map may reach past the window by its border, which
//! `pad` never reads or writes.

use super::fp::{ConvIn, input_addr};
use super::plan::{Plan, Unit};
use super::tiles::{ConvGeom, ConvTiling};
use super::{Bump, bt_addr};
use crate::codegen::emit::{B, Code, T, TILE, at, h16, stride, tiles};
use isa::{Access, Buf, DramAddr, Instr};

/// Loads the window of input chunk `j` that output row block `rb` reads, for sample `r1`
/// and timestep `r0`, and pads it; returns the window and its height.
pub(super) fn load_window(
    inp: &ConvIn,
    p: &Plan,
    u: &Unit,
    g: &ConvGeom,
    t: &ConvTiling,
    (j, rb): (u32, u32),
    c: &mut Code,
) -> (Access, u32) {
    let (a, wh) = g.in_window(t.rows, rb);
    let ((pbuf, base), wp, cc) = (inp.padded, g.wp(), t.cc);
    let window = at(pbuf, base, cc * wh * wp);
    // The window's dense rows `[d0, d1)`; the `top` rows above them are the zero border.
    let d0 = a.max(g.p) - g.p;
    let d1 = (a + wh).min(g.h + g.p).saturating_sub(g.p);
    let (hd, top) = (d1.saturating_sub(d0), (d0 + g.p).saturating_sub(a));
    if hd == 0 {
        c.fill(window.clone(), 0.0);
        return (window, wh);
    }
    let stage = at(inp.stage.0, inp.stage.1, cc * hd * g.w);
    let src = input_addr(p, &u.src, j * cc * g.h * g.w + d0 * g.w);
    let (row, stride) = (u.src.bytes(hd * g.w), u.src.bytes(g.h * g.w));
    c.push(Instr::DmaLoad { dst: stage.clone(), src, rows: h16(cc), row, stride });
    if g.p == 0 {
        return (window, wh);
    }
    let pad = u8::try_from(g.p).unwrap_or(u8::MAX);
    let w = h16(g.w);
    if hd == wh {
        // No border rows: the channels' windows are one tall map, padded left and right.
        let dst = at(pbuf, base - g.p * wp, (cc * wh + 2 * g.p) * wp);
        c.push(Instr::Pad { dst, src: stage, c: 1, h: h16(cc * hd), w, p: pad, extract: false });
        return (window, wh);
    }
    // Border rows: a window of another block may have left data in them.
    c.fill(window.clone(), 0.0);
    for ch in 0..cc {
        let dst = at(pbuf, base + (ch * wh + top) * wp - g.p * wp, (hd + 2 * g.p) * wp);
        let src = at(inp.stage.0, inp.stage.1 + ch * hd * g.w, hd * g.w);
        c.push(Instr::Pad { dst, src, c: 1, h: h16(hd), w, p: pad, extract: false });
    }
    (window, wh)
}

/// dL/dS of the layer below for work item `item` (input chunk and block of input rows) of a
/// conv layer, every sample and timestep: `bp.conv` of the error rows of every block of
/// output channels that reach the block, into a window of the padded gradient, whose rows
/// of the block go to DRAM.
pub(super) fn conv_errors(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling, (item, prev_ds): (u32, u32), c: &mut Code) {
    let blocks = g.h / t.rows2;
    let (j, ib) = (item / blocks, item % blocks);
    let e = g.err_window(t.rows2, ib);
    let (cc2, cob, kk, wp) = (t.cc2, t.cob, g.kk(), g.wp());
    let (er, dense) = (e.r1 - e.r0, cc2 * t.rows2 * g.w);
    let blk = cob * er * g.ow;
    let mut r = Bump::default();
    let len = u32::try_from(g.window_len(cc2, e.ih)).unwrap_or(u32::MAX);
    let gpad = r.take(Buf::BpDelta, len) + g.p * wp;
    let (dhb, gd) = (r.take(Buf::BpDelta, blk), r.take(Buf::BpDelta, dense));
    let (w, nzb) = (r.take(Buf::BpW, cob * cc2 * kk), r.take(Buf::FpSpk, blk));
    let out = at(Buf::BpDelta, gpad, cc2 * e.ih * wp);
    c.open(B, p.b);
    c.open(T, p.t);
    c.fill(out.clone(), 0.0);
    let dst = bt_addr(p, prev_ds + (j * cc2 * g.h * g.w + ib * t.rows2 * g.w) * 2, u.k * 2);
    let (rows, row, plane) = (h16(cc2), t.rows2 * g.w * 2, g.h * g.w * 2);
    if u.seed {
        // Readers of the value processed before this one left their errors of the block's
        // rows there: the sum starts from them.
        c.push(Instr::DmaLoad { dst: at(Buf::BpDelta, gd, dense), src: dst.clone(), rows, row, stride: plane });
        place(g, t, &e, (gpad, gd), c);
    }
    tiles(c, g.cout, cob, |c, term, _, _| {
        let on_tile = |a: DramAddr, bytes: u32| if term.is_some() { a.with(TILE, stride(u64::from(bytes))) } else { a };
        let (map, first) = (g.oh * g.ow, e.r0 * g.ow);
        let (err, nz) = (at(Buf::BpDelta, dhb, blk), at(Buf::FpSpk, nzb, blk));
        let src = on_tile(bt_addr(p, u.dh + first * 2, u.n * 2), cob * map * 2);
        c.push(Instr::DmaLoad { dst: err.clone(), src, rows: h16(cob), row: er * g.ow * 2, stride: map * 2 });
        let src = on_tile(bt_addr(p, u.nz + first / 8, u.n / 8), cob * map / 8);
        c.push(Instr::DmaLoad { dst: nz.clone(), src, rows: h16(cob), row: er * g.ow / 8, stride: map / 8 });
        super::bp::block_errors(u, g, t, (j, e.ih, w), (err, nz, &out), on_tile, c);
    });
    extract(g, t, &e, (gpad, gd), c);
    let src = at(Buf::BpDelta, gd, dense);
    c.push(Instr::DmaStore { dst, src, rows, row, stride: plane });
    c.close(T);
    c.close(B);
}

/// Moves the block's rows of every channel out of the padded gradient window at `gpad` into
/// the dense region at `gd` (channel after channel, `rows2` rows each).
fn extract(g: &ConvGeom, t: &ConvTiling, e: &super::tiles::ErrWindow, (gpad, gd): (u32, u32), c: &mut Code) {
    block_rows(g, t, e, (gpad, gd), true, c);
}

/// The reverse of [`extract`]: the dense rows at `gd` into the block's rows of the window.
fn place(g: &ConvGeom, t: &ConvTiling, e: &super::tiles::ErrWindow, (gpad, gd): (u32, u32), c: &mut Code) {
    block_rows(g, t, e, (gpad, gd), false, c);
}

/// `pad` of the block's rows of every channel between the window at `gpad` and the dense
/// region at `gd`, in the direction `extract` says.
fn block_rows(
    g: &ConvGeom,
    t: &ConvTiling,
    e: &super::tiles::ErrWindow,
    (gpad, gd): (u32, u32),
    extract: bool,
    c: &mut Code,
) {
    let (wp, rows) = (g.wp(), t.rows2);
    let pad = u8::try_from(g.p).unwrap_or(u8::MAX);
    for ch in 0..t.cc2 {
        // The block's first row sits `a - start` rows into its channel's window.
        let first = gpad + (ch * e.ih + e.a - e.start) * wp - g.p * wp;
        let window = at(Buf::BpDelta, first, (rows + 2 * g.p) * wp);
        let dense = at(Buf::BpDelta, gd + ch * rows * g.w, rows * g.w);
        let (dst, src) = if extract { (dense, window) } else { (window, dense) };
        c.push(Instr::Pad { dst, src, c: 1, h: h16(rows), w: h16(g.w), p: pad, extract });
    }
}
