//! The BP stream of a staged program: per step, from the loss down, every layer's gradient
//! soma over this core's tiles, a barrier, the errors of the layer below over this core's
//! input chunks, a barrier, and the hand-over to WG.

use super::fp::per_sample_staged;
use super::plan::{Item, Kind, Plan, Pool, Unit};
use super::tiles::{ConvGeom, ConvTiling};
use super::{
    BAR_BP, BtRows, Bump, Groups, Owned, Slab, Span, TOK_FP_DONE, TOK_IG, TOK_UPDATED, TOK_WG_DONE, bt_addr, bt_buf,
    bt_rev, cfg_neuron, conv_tiles, owned, whole_bytes,
};
use crate::codegen::emit::{B, Code, STEP, T, TILE, at, h16, stride, tiles};
use crate::codegen::soma_rows::emit_over_time;
use isa::{Access, Buf, DramAddr, Instr, Stream};

/// The BP instructions of `core`.
pub(super) fn stream(p: &Plan, core: u16, spans: &mut Vec<Span>) -> Code {
    let mut c = Code::default();
    c.open(STEP, p.steps);
    c.wait(TOK_FP_DONE);
    for &item in p.order.iter().rev() {
        let start = c.0.len();
        match item {
            Item::Unit(i) => {
                let Some(u) = p.units.get(i) else { continue };
                unit(p, u, core, &mut c);
            }
            Item::Join(i) => {
                // Only a pooled join has backward work (see `join.rs`).
                let Some(j) = p.joins.get(i).filter(|j| j.pool.is_some()) else { continue };
                super::join::bp(p, j, core, &mut c);
                c.push(Instr::Barrier { id: BAR_BP, count: p.cores });
            }
        }
        spans.push(Span { item, start, end: c.0.len() });
    }
    // Every core has updated its weights: the next step may load them.
    c.push(Instr::Barrier { id: BAR_BP, count: p.cores });
    c.signal(core, Stream::Fp, TOK_UPDATED);
    c.close(STEP);
    c.push(Instr::Halt {});
    c
}

/// One unit's backward pass on `core`: the gradient soma of its tiles, a barrier, the
/// errors of the value it reads (added to what other readers left there when `seed`), a
/// barrier, and the hand-over to WG.
fn unit(p: &Plan, u: &Unit, core: u16, c: &mut Code) {
    cfg_neuron(u, c);
    match &u.kind {
        Kind::Conv { g, t, pool } => {
            if let Some((pool, cp)) = Pool::pass(*pool) {
                // The pooling pass spreads dL/dS over whole maps first (into the layer's
                // dL/dH tensor, see `pool.rs`), then every core's tiles read it.
                super::pool::backward(p, u, g, (&pool, cp), core, c);
                c.push(Instr::Barrier { id: BAR_BP, count: p.cores });
            }
            for tile in conv_tiles(g, t, u.cores.seat(core)) {
                conv_soma(p, u, g, t, *pool, tile, c);
            }
        }
        Kind::Linear { t } => {
            // On the output layer tile 0 also keeps the loss, so it is not in the loop.
            let all = Owned::new(u.n / t.nb, u.cores.seat(core));
            if u.output && all.has_tile_zero() {
                let (zero, rest) = all.split_first();
                zero.emit(c, |c, o| linear_soma(p, u, o, true, c));
                rest.emit(c, |c, o| linear_soma(p, u, o, false, c));
            } else {
                all.emit(c, |c, o| linear_soma(p, u, o, false, c));
            }
        }
    }
    c.push(Instr::Barrier { id: BAR_BP, count: p.cores });
    if let Some(prev_ds) = u.prev_ds {
        match &u.kind {
            Kind::Conv { g, t, .. } if t.rows2 < g.h => {
                for item in owned((g.cin / t.cc2) * (g.h / t.rows2), u.cores.seat(core)) {
                    super::rows::conv_errors(p, u, g, t, (item, prev_ds), c);
                }
            }
            Kind::Conv { g, t, .. } => {
                for j in owned(g.cin / t.cc2, u.cores.seat(core)) {
                    conv_errors(p, u, g, t, (j, prev_ds), c);
                }
            }
            Kind::Linear { .. } => linear_errors(p, u, prev_ds, core, c),
        }
        c.push(Instr::Barrier { id: BAR_BP, count: p.cores });
    }
    c.signal(core, Stream::Wg, TOK_IG);
    c.wait(TOK_WG_DONE);
}

/// The gradient soma of one conv tile, in reverse time, for every sample: dL/dS (spread
/// back through the pooling: here when the tile pools, else by the pooling pass into the
/// dL/dH tensor), the saved mask, H and spikes from DRAM; dL/dH and its nonzero bitmap
/// back to DRAM.
fn conv_soma(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling, pool: Option<Pool>, (cb, rb): (u32, u32), c: &mut Code) {
    let tile = t.tile(g);
    let mut r = Bump::default();
    let (ds, full, dv, dh) =
        (r.take(Buf::BpErr, tile), r.take(Buf::BpPsum, tile), r.take(Buf::BpVgrad, tile), r.take(Buf::BpDelta, tile));
    let (mask, nz, h, spk) =
        (r.take(Buf::FpMask, tile), r.take(Buf::FpMask, tile), r.take(Buf::FpMem, tile), r.take(Buf::FpSpk, tile));
    let (n, cfg) = (u.n, u.neuron);
    let (bits1, bits16) = (Slab::new(g, t, (cb, rb), 1, 1), Slab::new(g, t, (cb, rb), 16, 1));
    let spikes = at(Buf::FpSpk, spk, tile);
    // The soma's reset path reads the spikes (hard reset zeroes dL/dV where one fired).
    let need_spikes = true;
    c.open(B, p.b);
    c.fill(at(Buf::BpVgrad, dv, tile), 0.0);
    c.open(T, p.t);
    if need_spikes {
        bits1.load(spikes.clone(), bt_rev(p, u.spikes + bits1.first, n / 8), c);
    }
    let ds_at = match (Pool::fused(pool), Pool::pass(pool)) {
        (Some(pool), _) => {
            let k = pool.k;
            let plen = tile / (k * k);
            let dy = at(Buf::BpErr, ds, plen);
            let pooled = Slab::new(g, t, (cb, rb), 16, k);
            pooled.load(dy.clone(), bt_rev(p, u.ds + pooled.first, u.out_len() * 2), c);
            let dx = at(Buf::BpPsum, full, tile);
            c.push(pool.backward(dy, dx.clone(), spikes.clone(), (t.co, t.rows, g.ow)));
            dx
        }
        (None, pass) => {
            // Without a pooling pass dL/dS is the next layer's error tensor as it is.
            let from = if pass.is_some() { u.dh } else { u.ds };
            let a = at(Buf::BpErr, ds, tile);
            bits16.load(a.clone(), bt_rev(p, from + bits16.first, n * 2), c);
            a
        }
    };
    if cfg.keep_mask {
        bits1.load(at(Buf::FpMask, mask, tile), bt_rev(p, u.mask + bits1.first, n / 8), c);
    }
    if cfg.keep_h {
        bits16.load(at(Buf::FpMem, h, tile), bt_rev(p, u.h + bits16.first, n * 2), c);
    }
    let (dh_at, nz_at) = (at(Buf::BpDelta, dh, tile), at(Buf::FpMask, nz, tile));
    c.push(Instr::BpSoma {
        ds: ds_at,
        h: cfg.keep_h.then(|| at(Buf::FpMem, h, tile)),
        mask: cfg.keep_mask.then(|| at(Buf::FpMask, mask, tile)),
        spk: Some(spikes),
        dv: at(Buf::BpVgrad, dv, tile),
        dh: dh_at.clone(),
        nz: Some(nz_at.clone()),
        n: tile,
        rows: 1,
        cfg: 0,
        fire: true,
    });
    bits16.store(bt_rev(p, u.dh + bits16.first, n * 2), dh_at, c);
    bits1.store(bt_rev(p, u.nz + bits1.first, n / 8), nz_at, c);
    c.close(T);
    c.close(B);
}

/// The gradient soma of one linear tile for every sample (the loss gradient first on the
/// output layer), with the tile's saved state loaded once for all `B x T` (or once per
/// group of samples).
fn linear_soma(p: &Plan, u: &Unit, o: &Owned, keep_loss: bool, c: &mut Code) {
    let Kind::Linear { t } = &u.kind else { return };
    let grp = Groups::new(p, t.g);
    let (rt, nb, cfg, n) = (grp.rows(p), t.nb, u.neuron, u.n);
    let mut r = Bump::default();
    // The output layer's loss gradient covers all `n` outputs of a sample.
    let ds_len = if u.output { n } else { rt * nb };
    let (ds, tgt, dv, dh) =
        (r.take(Buf::BpErr, ds_len), r.take(Buf::BpErr, n), r.take(Buf::BpVgrad, nb), r.take(Buf::BpDelta, rt * nb));
    // Whole bytes: the blocks of bits move padded (see `Groups::block`).
    let (mask, nz, h, spk) = (
        r.take(Buf::FpMask, whole_bytes(rt * nb)),
        r.take(Buf::FpMask, whole_bytes(rt * nb)),
        r.take(Buf::FpMem, rt * nb),
        r.take(Buf::FpSpk, whole_bytes(rt * nb)),
    );
    // Tile-major tensors hold a tile's `B x T` rows together, group after group.
    let load = |c: &mut Code, (buf, at_elem): (Buf, u32), base: u32, bits: u32| {
        let (src, len, bytes) = grp.block(p, o, base, (nb, bits));
        c.load(at(buf, at_elem, len), src, bytes);
    };
    let rows_of = |base: u32, bytes: u32| grp.addr(o.addr(base, nb * bytes), rt * n * bytes);
    // Every tile computes the loss gradient of its samples; the first also the loss.
    if keep_loss {
        c.fill(at(Buf::WgGrad, n, 1), 0.0);
    }
    grp.emit(c, |c| {
        if !u.output {
            let (dst, src) = (at(Buf::BpErr, ds, rt * nb), rows_of(u.ds, 2));
            c.push(Instr::DmaLoad { dst, src, rows: h16(rt), row: nb * 2, stride: n * 2 });
        }
        if cfg.keep_mask {
            load(c, (Buf::FpMask, mask), u.mask, 1);
        }
        if cfg.keep_h {
            load(c, (Buf::FpMem, h), u.h, 16);
        }
        if cfg.fire && u.output {
            load(c, (Buf::FpSpk, spk), u.spikes, 1);
        } else if cfg.fire {
            let (dst, src) = (at(Buf::FpSpk, spk, rt * nb), grp.addr(o.addr(u.spikes, nb / 8), rt * n / 8));
            c.push(Instr::DmaLoad { dst, src, rows: h16(rt), row: nb / 8, stride: n / 8 });
        }
        c.open(B, grp.g);
        if u.output {
            loss(p, u, (ds, tgt), (keep_loss, &grp), c);
        }
        c.fill(at(Buf::BpVgrad, dv, nb), 0.0);
        let back = |buf: Buf, base: u32| bt_buf(p, buf, base, nb, true);
        let soma = Instr::BpSoma {
            ds: if u.output { o.access(Buf::BpErr, ds, nb, nb) } else { back(Buf::BpErr, ds) },
            h: cfg.keep_h.then(|| back(Buf::FpMem, h)),
            mask: cfg.keep_mask.then(|| back(Buf::FpMask, mask)),
            spk: cfg.fire.then(|| back(Buf::FpSpk, spk)),
            dv: at(Buf::BpVgrad, dv, nb),
            dh: back(Buf::BpDelta, dh),
            nz: Some(back(Buf::FpMask, nz)),
            n: nb,
            rows: 1,
            cfg: 0,
            fire: cfg.fire,
        };
        emit_over_time(c, (T, p.t), soma, false, |_| {});
        c.close(B);
        let src = at(Buf::BpDelta, dh, rt * nb);
        c.push(Instr::DmaStore { dst: rows_of(u.dh, 2), src, rows: h16(rt), row: nb * 2, stride: n * 2 });
        let (dst, len, bytes) = grp.block(p, o, u.nz, (nb, 1));
        c.store(dst, at(Buf::FpMask, nz, len), bytes);
    });
    if keep_loss {
        // The loss cell is stored now: WG reuses `wg.grad` for this layer's gradients.
        c.store(DramAddr::new(p.loss_addr).with(STEP, 4), at(Buf::WgGrad, n, 1), 4);
    }
}

/// The loss gradient of sample `r1`, the same for every timestep; with `keep`, the loss
/// value too, accumulated over the batch in `wg.grad[n]`.
fn loss(p: &Plan, u: &Unit, (ds, tgt): (u32, u32), (keep, grp): (bool, &Groups), c: &mut Code) {
    let n = u.n;
    let cell = at(Buf::WgGrad, n, 1);
    let bytes = u64::from(n) * 4;
    let sums = grp.addr(DramAddr::new(u.sum).with(B, stride(bytes)), grp.g * n * 4);
    c.load(at(Buf::WgGrad, 0, n), sums, bytes);
    let row = u64::from(n) * 2;
    c.load(at(Buf::BpErr, tgt, n), grp.addr(per_sample_staged(p, p.target, row), grp.g * n * 2), row);
    c.push(Instr::BpLoss {
        kind: p.loss,
        x: at(Buf::WgGrad, 0, n),
        target: at(Buf::BpErr, tgt, n),
        out: at(Buf::BpErr, ds, n),
        loss: keep.then_some(cell),
        n: h16(n),
        t: h16(p.t),
        b: h16(p.b),
    });
}

/// dL/dS of the layer below for input chunk `j` of a conv layer, every sample and
/// timestep: `bp.conv` of every block of output channels' dL/dH into the padded gradient,
/// whose interior goes to DRAM.
fn conv_errors(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling, (j, prev_ds): (u32, u32), c: &mut Code) {
    let (cc2, cob, kk) = (t.cc2, t.cob, g.kk());
    let (padded, dense) = (cc2 * g.hp() * g.wp(), cc2 * g.h * g.w);
    let blk = cob * g.oh * g.ow;
    let mut r = Bump::default();
    let (gpad, dhb, gd) = (r.take(Buf::BpDelta, padded), r.take(Buf::BpDelta, blk), r.take(Buf::BpDelta, dense));
    let (w, nzb) = (r.take(Buf::BpW, cob * cc2 * kk), r.take(Buf::FpSpk, blk));
    let out: Access = if g.p > 0 { at(Buf::BpDelta, gpad, padded) } else { at(Buf::BpDelta, gd, dense) };
    let (result, dst) = (at(Buf::BpDelta, gd, dense), bt_addr(p, prev_ds + j * dense * 2, u.k * 2));
    c.open(B, p.b);
    c.open(T, p.t);
    c.fill(out.clone(), 0.0);
    if u.seed {
        // Readers of the value processed before this one left their errors there: the
        // sum starts from them.
        c.load(result.clone(), dst.clone(), u64::from(dense) * 2);
        if g.p > 0 {
            let pad = u8::try_from(g.p).unwrap_or(u8::MAX);
            let (ch, h, wd) = (h16(cc2), h16(g.h), h16(g.w));
            c.push(Instr::Pad { dst: out.clone(), src: result.clone(), c: ch, h, w: wd, p: pad, extract: false });
        }
    }
    tiles(c, g.cout, cob, |c, term, _, _| {
        let on_tile = |a: DramAddr, bytes: u32| if term.is_some() { a.with(TILE, stride(u64::from(bytes))) } else { a };
        let (err, nz) = (at(Buf::BpDelta, dhb, blk), at(Buf::FpSpk, nzb, blk));
        c.load(err.clone(), on_tile(bt_addr(p, u.dh, u.n * 2), blk * 2), u64::from(blk) * 2);
        c.load(nz.clone(), on_tile(bt_addr(p, u.nz, u.n / 8), blk / 8), u64::from(blk / 8));
        block_errors(u, g, t, (j, g.hp(), w), (err, nz, &out), on_tile, c);
    });
    if g.p > 0 {
        let pad = u8::try_from(g.p).unwrap_or(u8::MAX);
        let (ch, h, wd) = (h16(cc2), h16(g.h), h16(g.w));
        c.push(Instr::Pad { dst: result.clone(), src: out, c: ch, h, w: wd, p: pad, extract: true });
    }
    c.store(dst, result, u64::from(dense) * 2);
    c.close(T);
    c.close(B);
}

/// The errors of one block of `t.cob` output channels (the tile loop's current one) through
/// the weights of input chunk `j`, into `out`, a padded gradient of `ih` rows whose first
/// weights are at `w` in `bp.w`: the weight load and the `bp.conv` both error passes share.
pub(super) fn block_errors(
    u: &Unit,
    g: &ConvGeom,
    t: &ConvTiling,
    (j, ih, w): (u32, u32, u32),
    (err, nz, out): (Access, Access, &Access),
    on_tile: impl Fn(DramAddr, u32) -> DramAddr,
    c: &mut Code,
) {
    let (cc2, cob, kk) = (t.cc2, t.cob, g.kk());
    let src = on_tile(DramAddr::new(u.w_addr + j * cc2 * kk * 2), cob * g.cin * kk * 2);
    let wa = at(Buf::BpW, w, cob * cc2 * kk);
    c.push(Instr::DmaLoad { dst: wa.clone(), src, rows: h16(cob), row: cc2 * kk * 2, stride: g.cin * kk * 2 });
    let (cin, cout, ih, iw, kh, kw, stride) = g.operands(cc2, cob, ih);
    let out = out.clone();
    c.push(Instr::BpConv { err, w: wa, out, cin, cout, ih, iw, kh, kw, stride, acc: true, nz: Some(nz) });
}

/// dL/dS of the layer below for this core's input blocks of a linear layer: all `B x T`
/// errors of a block accumulate in `bp.psum` over chunks of the outputs.
fn linear_errors(p: &Plan, u: &Unit, prev_ds: u32, core: u16, c: &mut Code) {
    let Kind::Linear { t } = &u.kind else { return };
    let grp = Groups::new(p, t.g);
    let (rt, kb2, nc2, n, k) = (grp.rows(p), t.kb2, t.nc2, u.n, u.k);
    let mut r = Bump::default();
    let (g, w, dh) = (r.take(Buf::BpPsum, rt * kb2), r.take(Buf::BpW, kb2 * nc2), r.take(Buf::BpDelta, rt * nc2));
    Owned::new(k / kb2, u.cores.seat(core)).emit(c, |c, o| {
        grp.emit(c, |c| {
            let block = grp.addr(o.addr(prev_ds, kb2 * 2), rt * k * 2);
            if u.seed {
                // The errors other readers of the value left there start the sum.
                let dst = at(Buf::BpPsum, g, rt * kb2);
                c.push(Instr::DmaLoad { dst, src: block.clone(), rows: h16(rt), row: kb2 * 2, stride: k * 2 });
            } else {
                c.fill(at(Buf::BpPsum, g, rt * kb2), 0.0);
            }
            tiles(c, n, nc2, |c, term, _, _| {
                let on_tile = |a: DramAddr| if term.is_some() { a.with(TILE, stride(u64::from(nc2 * 2))) } else { a };
                let wsrc = on_tile(o.addr(u.w_addr, kb2 * n * 2));
                let wa = at(Buf::BpW, w, kb2 * nc2);
                c.push(Instr::DmaLoad { dst: wa.clone(), src: wsrc, rows: h16(kb2), row: nc2 * 2, stride: n * 2 });
                let (dst, src) = (at(Buf::BpDelta, dh, rt * nc2), grp.addr(on_tile(DramAddr::new(u.dh)), rt * n * 2));
                c.push(Instr::DmaLoad { dst, src, rows: h16(rt), row: nc2 * 2, stride: n * 2 });
                let rows = BtRows::new(p, grp.g, &[nc2, kb2]);
                let ((err, err_stride), (out, out_stride)) =
                    (rows.op(p, Buf::BpDelta, dh, nc2), rows.op(p, Buf::BpPsum, g, kb2));
                let (n, k, r) = (h16(nc2), h16(kb2), rows.rows);
                let instr =
                    Instr::BpLinear { err, w: wa, out, n, k, rows: r, err_stride, out_stride, acc: true, nz: None };
                rows.emit(p, c, instr);
            });
            let src = at(Buf::BpPsum, g, rt * kb2);
            c.push(Instr::DmaStore { dst: block, src, rows: h16(rt), row: kb2 * 2, stride: k * 2 });
        });
    });
}
