//! The FP stream of a staged program: per step, every layer's tiles owned by this core for
//! every sample and timestep, a barrier after each layer, then the hand-over to BP.

use super::plan::{Item, Kind, Plan, Pool, Src, Unit};
use super::tiles::{ConvGeom, ConvTiling};
use super::{
    BAR_FP, BtRows, Bump, Groups, Owned, Slab, Span, TOK_FP_DONE, TOK_UPDATED, bt_addr, bt_buf, cfg_neuron, conv_tiles,
    whole_bytes,
};
use crate::codegen::emit::{B, Code, STEP, T, TILE, at, h16, stride, tiles};
use crate::codegen::pooling::Pooling;
use crate::codegen::soma_rows::emit_over_time;
use isa::{Access, Buf, DramAddr, Instr, Stream};

/// The FP instructions of `core`.
pub(super) fn stream(p: &Plan, core: u16, spans: &mut Vec<Span>) -> Code {
    let mut c = Code::default();
    c.open(STEP, p.steps);
    for &item in &p.order {
        let start = c.0.len();
        match item {
            Item::Unit(i) => {
                let Some(u) = p.units.get(i) else { continue };
                cfg_neuron(u, &mut c);
                match &u.kind {
                    Kind::Conv { g, t, pool } => conv(p, u, g, t, *pool, core, &mut c),
                    Kind::Linear { .. } => linear(p, u, core, &mut c),
                }
            }
            Item::Join(i) => {
                let Some(j) = p.joins.get(i) else { continue };
                super::join::fp(p, j, core, &mut c);
            }
        }
        c.push(Instr::Barrier { id: BAR_FP, count: p.cores });
        spans.push(Span { item, start, end: c.0.len() });
    }
    if p.train {
        c.signal(core, Stream::Bp, TOK_FP_DONE);
        c.wait(TOK_UPDATED);
    }
    c.close(STEP);
    c.push(Instr::Halt {});
    c
}

/// The DRAM address of input elements `first..` of sample `r1`, timestep `r0` (and step
/// `r3` for the `input` tensor).
pub(super) fn input_addr(p: &Plan, src: &Src, first: u32) -> DramAddr {
    let a = bt_addr(p, src.addr + src.bytes(first), src.row_bytes);
    if src.step_bytes > 0 { a.with(STEP, stride(u64::from(src.step_bytes))) } else { a }
}

/// Where a conv layer's streamed input chunk lives: the padded chunk `fp.conv`/`wg.conv`
/// read, and the dense stage it is loaded into (the same region when there is no padding).
/// Row-block tiles hold only the window of padded rows their block reads; the region then
/// keeps `p` spare rows on either side (see [`ConvGeom::window_len`]), and `padded` is its
/// first window row.
pub(super) struct ConvIn {
    pub(super) padded: (Buf, u32),
    pub(super) stage: (Buf, u32),
}

impl ConvIn {
    /// Takes the regions: padded spikes in `spk_buf`, staged in `stage_buf`; dense input
    /// in `fp.mem`.
    pub(super) fn take(
        r: &mut Bump,
        g: &ConvGeom,
        t: &ConvTiling,
        dense: bool,
        spk_buf: Buf,
        stage_buf: Buf,
    ) -> ConvIn {
        let (pbuf, sbuf) = if dense { (Buf::FpMem, Buf::FpMem) } else { (spk_buf, stage_buf) };
        let (padded, rows) = if t.windowed(g) {
            let wh = g.in_window(t.rows, 0).1;
            let len = u32::try_from(g.window_len(t.cc, wh)).unwrap_or(u32::MAX);
            ((pbuf, r.take(pbuf, len) + g.p * g.wp()), wh.min(g.h))
        } else {
            ((pbuf, r.take(pbuf, t.cc * g.hp() * g.wp())), g.h)
        };
        let stage = if g.p > 0 { (sbuf, r.take(sbuf, t.cc * rows * g.w)) } else { padded };
        ConvIn { padded, stage }
    }

    /// Zeroes the padded chunk's border (the chunks only ever write its interior), and the
    /// spare rows of a window region.
    pub(super) fn zero_border(&self, g: &ConvGeom, t: &ConvTiling, c: &mut Code) {
        if g.p == 0 {
            return;
        }
        if t.windowed(g) {
            let len = u32::try_from(g.window_len(t.cc, g.in_window(t.rows, 0).1)).unwrap_or(u32::MAX);
            c.fill(at(self.padded.0, self.padded.1 - g.p * g.wp(), len), 0.0);
        } else {
            c.fill(at(self.padded.0, self.padded.1, t.cc * g.hp() * g.wp()), 0.0);
        }
    }

    /// Loads input chunk `j` of sample `r1`, timestep `r0` and pads it; returns the part
    /// of the padded chunk that output row block `rb` reads, and its height.
    pub(super) fn load(
        &self,
        p: &Plan,
        u: &Unit,
        g: &ConvGeom,
        t: &ConvTiling,
        (j, rb): (u32, u32),
        c: &mut Code,
    ) -> (Access, u32) {
        if t.windowed(g) {
            return super::rows::load_window(self, p, u, g, t, (j, rb), c);
        }
        let chunk = t.cc * g.h * g.w;
        c.load(at(self.stage.0, self.stage.1, chunk), input_addr(p, &u.src, j * chunk), u64::from(u.src.bytes(chunk)));
        if g.p > 0 {
            c.push(Instr::Pad {
                dst: at(self.padded.0, self.padded.1, t.cc * g.hp() * g.wp()),
                src: at(self.stage.0, self.stage.1, chunk),
                c: h16(t.cc),
                h: h16(g.h),
                w: h16(g.w),
                p: u8::try_from(g.p).unwrap_or(u8::MAX),
                extract: false,
            });
        }
        (at(self.padded.0, self.padded.1, t.cc * g.hp() * g.wp()), g.hp())
    }
}

/// Loads the weights of output block `cb`, input chunk `j` (`co x cc x k x k`) into `buf`.
pub(super) fn conv_weights(u: &Unit, g: &ConvGeom, t: &ConvTiling, (cb, j): (u32, u32), dst: Access, c: &mut Code) {
    let (kk, cin) = (g.kk(), g.cin);
    let src = DramAddr::new(u.w_addr + (cb * t.co * cin * kk + j * t.cc * kk) * 2);
    c.push(Instr::DmaLoad { dst, src, rows: h16(t.co), row: t.cc * kk * 2, stride: cin * kk * 2 });
}

/// The FP tiles of a conv layer owned by `core`, then (after a barrier, as it reads the
/// spikes of every core's tiles) its share of a pooling pass, if the pooling has one.
fn conv(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling, pool: Option<Pool>, core: u16, c: &mut Code) {
    let regs = conv_regions(p, u, g, t);
    regs.input.zero_border(g, t, c);
    for tile in conv_tiles(g, t, u.cores.seat(core)) {
        conv_tile(p, u, g, t, Pool::fused(pool), &regs, tile, c);
    }
    if let Some((pool, cp)) = Pool::pass(pool) {
        c.push(Instr::Barrier { id: BAR_FP, count: p.cores });
        super::pool::forward(p, u, g, (&pool, cp), core, c);
    }
}

/// Whether the FP phase of a conv unit keeps its tiles' weights in `fp.mem` (see
/// [`Regs::parked`]), for the program summary.
pub(super) fn parks_weights(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling) -> bool {
    conv_regions(p, u, g, t).parked.is_some()
}

/// The buffer regions of a conv layer's FP phase.
fn conv_regions(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling) -> Regs {
    let mut r = Bump::default();
    let tile = t.tile(g);
    let regs = Regs {
        spk: r.take(Buf::FpSpk, tile),
        x: r.take(Buf::FpPsum, tile),
        input: ConvIn::take(&mut r, g, t, u.src.dense, Buf::FpIn, Buf::FpSpk),
        v: r.take(Buf::FpMem, tile),
        h: r.take(Buf::FpMem, tile),
        mask: r.take(Buf::FpMask, tile),
        pooled: r.take(if u.pooled_bits { Buf::FpSpk } else { Buf::FpMem }, tile),
        bias: r.take(Buf::FpMem, t.co),
        parked: None,
    };
    // Weights that `fp.w` cannot hold all at once wait in the rest of `fp.mem`, chunk by
    // chunk, when they fit there: loaded once per tile instead of once per sample-step.
    let all = t.co * g.cin * g.kk();
    let used = r.take(Buf::FpMem, 0);
    Regs { parked: (!t.resident && used.saturating_add(all) <= p.fp_mem).then(|| r.take(Buf::FpMem, all)), ..regs }
}

/// Regions of a conv layer's FP phase.
struct Regs {
    spk: u32,
    x: u32,
    input: ConvIn,
    v: u32,
    h: u32,
    mask: u32,
    pooled: u32,
    /// The biases of the tile's output channels.
    bias: u32,
    /// Where in `fp.mem` the weights of every chunk of a tile wait, chunk after chunk, when
    /// `fp.w` cannot hold them all and `fp.mem` can.
    parked: Option<u32>,
}

/// One conv tile (output block `cb`, row block `rb`) for every sample and timestep.
#[allow(clippy::too_many_arguments)]
fn conv_tile(
    p: &Plan,
    u: &Unit,
    g: &ConvGeom,
    t: &ConvTiling,
    pool: Option<Pooling>,
    r: &Regs,
    (cb, rb): (u32, u32),
    c: &mut Code,
) {
    let (tile, wc, chunks) = (t.tile(g), t.co * t.cc * g.kk(), g.cin / t.cc);
    // The weights of chunk `j`: in `fp.w` when they all fit it, else in `fp.mem` when they
    // wait there, else streamed into `fp.w` for every sample-step.
    let home = |j: u32| match (t.resident, r.parked) {
        (true, _) => Some(at(Buf::FpW, j * wc, wc)),
        (false, Some(parked)) => Some(at(Buf::FpMem, parked + j * wc, wc)),
        (false, None) => None,
    };
    for j in 0..chunks {
        if let Some(dst) = home(j) {
            conv_weights(u, g, t, (cb, j), dst, c);
        }
    }
    let bias = (u.biases > 0).then(|| at(Buf::FpMem, r.bias, t.co));
    if let Some(b) = &bias {
        // The biases of the block's channels follow the weights in DRAM.
        c.load(b.clone(), DramAddr::new(u.w_addr + (u.wlen + cb * t.co) * 2), u64::from(t.co) * 2);
    }
    c.open(B, p.b);
    c.fill(at(Buf::FpMem, r.v, tile), 0.0);
    c.open(T, p.t);
    let x = at(Buf::FpPsum, r.x, tile);
    for j in 0..chunks {
        let (spk, ih) = r.input.load(p, u, g, t, (j, rb), c);
        let w = home(j).unwrap_or_else(|| {
            let streamed = at(Buf::FpW, 0, wc);
            conv_weights(u, g, t, (cb, j), streamed.clone(), c);
            streamed
        });
        let (cin, cout, ih, iw, kh, kw, stride) = g.operands(t.cc, t.co, ih);
        // The first chunk adds the biases in its accumulator, as `x*W + b` is rounded once.
        c.push(Instr::FpConv {
            spk,
            w,
            bias: bias.clone().filter(|_| j == 0),
            out: x.clone(),
            cin,
            cout,
            ih,
            iw,
            kh,
            kw,
            stride,
            acc: j > 0,
            skip: !u.src.dense,
        });
    }
    let cfg = u.neuron;
    let spk = at(Buf::FpSpk, r.spk, tile);
    c.push(Instr::FpLif {
        x,
        bias: None,
        v: at(Buf::FpMem, r.v, tile),
        h: cfg.keep_h.then(|| at(Buf::FpMem, r.h, tile)),
        spk: Some(spk.clone()),
        mask: cfg.keep_mask.then(|| at(Buf::FpMask, r.mask, tile)),
        n: tile,
        rows: 1,
        cfg: 0,
        fire: true,
    });
    let slab = |bits: u32, k: u32| Slab::new(g, t, (cb, rb), bits, k);
    let (bits1, bits16) = (slab(1, 1), slab(16, 1));
    bits1.store(bt_addr(p, u.spikes + bits1.first, u.n / 8), spk.clone(), c);
    if cfg.keep_mask {
        bits1.store(bt_addr(p, u.mask + bits1.first, u.n / 8), at(Buf::FpMask, r.mask, tile), c);
    }
    if cfg.keep_h {
        bits16.store(bt_addr(p, u.h + bits16.first, u.n * 2), at(Buf::FpMem, r.h, tile), c);
    }
    if let (Some(pool), Some(addr)) = (pool, u.pooled) {
        // Windows that tile the map (stride = window, no padding): a block of rows pools
        // on its own.
        let k = pool.k;
        let plen = tile / (k * k);
        let (buf, bits) = if u.pooled_bits { (Buf::FpSpk, 1) } else { (Buf::FpMem, 16) };
        let dst = at(buf, r.pooled, plen);
        c.push(pool.forward(spk, dst.clone(), (t.co, t.rows, g.ow)));
        let pooled = slab(bits, k);
        pooled.store(bt_addr(p, addr + pooled.first, u.out_len() * bits / 8), dst, c);
    }
    c.close(T);
    c.close(B);
}

/// The FP tiles of a linear layer owned by `core`: all `B x T` partial sums of a tile in
/// `fp.psum` (or those of one group of samples after another), the weights streamed in
/// row chunks, then the soma.
fn linear(p: &Plan, u: &Unit, core: u16, c: &mut Code) {
    let Kind::Linear { t } = &u.kind else { return };
    let grp = Groups::new(p, t.g);
    let (rt, nb, kc) = (grp.rows(p), t.nb, t.kc);
    let mut r = Bump::default();
    let fbuf = if u.src.dense { Buf::FpMem } else { Buf::FpIn };
    let (x, fin, w) = (r.take(Buf::FpPsum, rt * nb), r.take(fbuf, rt * kc), r.take(Buf::FpW, kc * nb));
    let (v, h) = (r.take(Buf::FpMem, nb), r.take(Buf::FpMem, rt * nb));
    // Whole bytes: the output layer's blocks of bits are stored padded (see `Groups::block`).
    let (spk, mask) = (r.take(Buf::FpSpk, whole_bytes(rt * nb)), r.take(Buf::FpMask, whole_bytes(rt * nb)));
    let bias = r.take(Buf::FpMem, nb);
    Owned::new(u.n / nb, u.cores.seat(core)).emit(c, |c, o| {
        grp.emit(c, |c| {
            if u.biases > 0 {
                // The bias seeds every sample-step's sums; `fp.linear` (acc) adds the
                // products to it in its accumulator, so a one-chunk sum is rounded once.
                let b = at(Buf::FpMem, bias, nb);
                c.load(b.clone(), o.addr(u.w_addr + u.wlen * 2, nb * 2), u64::from(nb) * 2);
                c.open(B, grp.g);
                c.open(T, p.t);
                c.push(Instr::Copy { dst: bt_buf(p, Buf::FpPsum, x, nb, false), src: b });
                c.close(T);
                c.close(B);
            } else {
                c.fill(at(Buf::FpPsum, x, rt * nb), 0.0);
            }
            tiles(c, u.k, kc, |c, term, first, size| {
                let on_tile = |a: DramAddr, bytes: u32| match term {
                    Some(_) => a.with(TILE, stride(u64::from(bytes))),
                    None => a,
                };
                let wsrc = on_tile(o.addr(u.w_addr + first * u.n * 2, nb * 2), size * u.n * 2);
                let (dst, rows, row) = (at(Buf::FpW, w, size * nb), h16(size), nb * 2);
                c.push(Instr::DmaLoad { dst, src: wsrc, rows, row, stride: u.n * 2 });
                let mut isrc = DramAddr::new(u.src.addr + u.src.bytes(first));
                if u.src.step_bytes > 0 {
                    isrc = isrc.with(STEP, stride(u64::from(u.src.step_bytes)));
                }
                let isrc = grp.addr(on_tile(isrc, u.src.bytes(size)), rt * u.src.row_bytes);
                let (rows, row) = (h16(rt), u.src.bytes(size));
                let dst = at(fbuf, fin, rt * size);
                c.push(Instr::DmaLoad { dst, src: isrc, rows, row, stride: u.src.row_bytes });
                let rows = BtRows::new(p, grp.g, &[size, nb]);
                let ((spk, spk_stride), (out, out_stride)) =
                    (rows.op(p, fbuf, fin, size), rows.op(p, Buf::FpPsum, x, nb));
                let (k, n, w, r) = (h16(size), h16(nb), at(Buf::FpW, w, size * nb), rows.rows);
                let skip = !u.src.dense;
                let instr = Instr::FpLinear { spk, w, out, k, n, rows: r, spk_stride, out_stride, acc: true, skip };
                rows.emit(p, c, instr);
            });
            linear_soma(p, u, (o, &grp), (x, v, h, spk, mask), c);
            let cfg = u.neuron;
            // Tile-major tensors hold a tile's `B x T` rows together, group after group.
            let store = |c: &mut Code, (buf, at_elem): (Buf, u32), base: u32, bits: u32| {
                let (dst, len, bytes) = grp.block(p, o, base, (nb, bits));
                c.store(dst, at(buf, at_elem, len), bytes);
            };
            if cfg.fire && !u.output {
                let (src, dst) = (at(Buf::FpSpk, spk, rt * nb), grp.addr(o.addr(u.spikes, nb / 8), rt * u.n / 8));
                c.push(Instr::DmaStore { dst, src, rows: h16(rt), row: nb / 8, stride: u.n / 8 });
            } else if cfg.fire {
                store(c, (Buf::FpSpk, spk), u.spikes, 1);
            }
            if cfg.keep_mask {
                store(c, (Buf::FpMask, mask), u.mask, 1);
            }
            if cfg.keep_h {
                store(c, (Buf::FpMem, h), u.h, 16);
            }
        });
    });
}

/// The soma of a linear tile for every sample and timestep (of the current group); on the
/// output layer also the sums over time the loss reads (stored per sample) and the
/// `output` store.
fn linear_soma(
    p: &Plan,
    u: &Unit,
    (o, grp): (&Owned, &Groups),
    (x, v, h, spk, mask): (u32, u32, u32, u32, u32),
    c: &mut Code,
) {
    let Kind::Linear { t } = &u.kind else { return };
    let (nb, cfg) = (t.nb, u.neuron);
    c.open(B, grp.g);
    c.fill(at(Buf::FpMem, v, nb), 0.0);
    if u.output {
        c.fill(at(Buf::WgGrad, 0, nb), 0.0);
    }
    let lif = Instr::FpLif {
        x: bt_buf(p, Buf::FpPsum, x, nb, false),
        bias: None,
        v: at(Buf::FpMem, v, nb),
        h: cfg.keep_h.then(|| bt_buf(p, Buf::FpMem, h, nb, false)),
        spk: cfg.fire.then(|| bt_buf(p, Buf::FpSpk, spk, nb, false)),
        mask: cfg.keep_mask.then(|| bt_buf(p, Buf::FpMask, mask, nb, false)),
        n: nb,
        rows: 1,
        cfg: 0,
        fire: cfg.fire,
    };
    // A readout's sum reads the membrane of every timestep.
    emit_over_time(c, (T, p.t), lif, u.output && !cfg.fire, |c| {
        if u.output {
            let src = if cfg.fire { bt_buf(p, Buf::FpSpk, spk, nb, false) } else { at(Buf::FpMem, v, nb) };
            c.push(Instr::FpSum { dst: at(Buf::WgGrad, 0, nb), src });
        }
    });
    if u.output {
        // The tile's outputs of sample `r1` of the group in the `[B][n]` sums (and outputs).
        let bytes = u64::from(u.n) * 4;
        let per_group = grp.g * u.n * 4;
        let sums = at(Buf::WgGrad, 0, nb);
        let sum_at = grp.addr(o.addr(u.sum, nb * 4).with(B, stride(bytes)), per_group);
        c.store(sum_at, sums.clone(), u64::from(nb) * 4);
        if let Some(out) = p.output {
            let out_at = o.addr(out, nb * 4).with(STEP, stride(u64::from(p.b) * bytes)).with(B, stride(bytes));
            c.store(grp.addr(out_at, per_group), sums, u64::from(nb) * 4);
        }
    }
    c.close(B);
}

/// Sample `r1` of step `r3` in a `[steps][B][bytes]` tensor.
pub(super) fn per_sample_staged(p: &Plan, base: u32, bytes: u64) -> DramAddr {
    DramAddr::new(base).with(STEP, stride(u64::from(p.b) * bytes)).with(B, stride(bytes))
}
