//! The WG stream of a staged program: per step and layer (from the loss down), once BP has
//! computed the errors of the layer below, the weight gradient of every weight block of
//! this core's tiles over the whole batch, and the optimizer update of that block with its
//! FP32 masters and state streamed through this core's `opt` region.

use super::fp::ConvIn;
use super::plan::{Item, Kind, Plan, Unit};
use super::tiles::{ConvGeom, ConvTiling};
use super::{BtRows, Bump, Groups, NT, Owned, Slab, Span, TOK_IG, TOK_WG_DONE, bt_addr, owned, whole_bytes};
use crate::codegen::emit::{B, Code, STEP, T, TILE, at, h16, stride, tiles};
use isa::{Access, Buf, DramAddr, Instr, OptKind, Stream};

/// The WG instructions of `core`.
pub(super) fn stream(p: &Plan, core: u16, spans: &mut Vec<Span>) -> Code {
    let mut c = Code::default();
    let o = p.opt;
    c.push(Instr::CfgOpt { slot: 0, kind: o.kind, lr: o.lr, m: o.m, beta2: o.beta2, eps: o.eps, wd: 0.0 });
    if p.first_step > 0 && o.kind == OptKind::Adam {
        // `cfg.opt` reset the step counter; continue where earlier runs left it.
        c.open(STEP, p.first_step);
        c.push(Instr::WgStep { slot: 0 });
        c.close(STEP);
    }
    c.open(STEP, p.steps);
    c.push(Instr::WgStep { slot: 0 });
    for (i, u) in p.units.iter().enumerate().rev() {
        let start = c.0.len();
        c.wait(TOK_IG);
        match &u.kind {
            Kind::Conv { g, t, .. } => conv(p, u, g, t, core, &mut c),
            Kind::Linear { .. } => linear(p, u, core, &mut c),
        }
        c.signal(core, Stream::Bp, TOK_WG_DONE);
        spans.push(Span { item: Item::Unit(i), start, end: c.0.len() });
    }
    c.close(STEP);
    c.push(Instr::Halt {});
    c
}

/// This core's `opt` region: first element.
fn opt_base(p: &Plan, core: u16) -> u32 {
    u32::from(core) * p.opt_region
}

/// Where one block's master and state chunk live in `opt`, and the state words per weight.
struct Opt {
    master: u32,
    state: u32,
    words: u32,
}

/// A block of weights as DMA sees it: `n` weights in `rows` rows of `row`, `row_stride`
/// apart in the `[..][row_stride]` DRAM layout, starting at weight `first`; `tile`: weights
/// to advance per turn of the `r2` loop, when the block is one of a loop.
struct Block {
    n: u32,
    rows: u32,
    row: u32,
    row_stride: u32,
    first: u32,
    tile: Option<u32>,
    /// Elements from one owned tile's block to the next, inside a loop over tiles.
    owned: Option<u32>,
}

impl Block {
    /// The DRAM address of the block in a tensor of `bytes`-wide elements at `base`.
    fn addr(&self, base: u32, bytes: u32) -> DramAddr {
        let mut a = DramAddr::new(base + self.first * bytes);
        if let Some(step) = self.tile {
            a = a.with(TILE, stride(u64::from(step * bytes)));
        }
        if let Some(step) = self.owned {
            a = a.with(NT, stride(u64::from(step * bytes)));
        }
        a
    }

    fn dma(&self, bytes: u32) -> (u16, u32, u32) {
        (h16(self.rows), self.row * bytes, self.row_stride * bytes)
    }
}

impl Opt {
    /// Loads the block's masters and state, updates them with `grad`, writes the FP16 copy
    /// through `w16` and stores all three back (`state_at`: the state's DRAM address).
    fn update(&self, u: &Unit, grad: Access, w16: Access, b: &Block, state_at: DramAddr, c: &mut Code) {
        let master = at(Buf::Opt, self.master, b.n);
        let (rows, row, stride4) = b.dma(4);
        let msrc = b.addr(u.master_addr, 4);
        c.push(Instr::DmaLoad { dst: master.clone(), src: msrc.clone(), rows, row, stride: stride4 });
        let state = (self.words > 0).then(|| at(Buf::Opt, self.state, b.n * self.words));
        if let Some(s) = &state {
            c.load(s.clone(), state_at.clone(), u64::from(b.n * self.words) * 4);
        }
        let (n, st) = (b.n, state.clone());
        c.push(Instr::WgUpdate {
            grad,
            master: master.clone(),
            state: st,
            w16: w16.clone(),
            n,
            cfg: 0,
            scale: 1.0,
            zero: true,
        });
        let (rows2, row2, stride2) = b.dma(2);
        c.push(Instr::DmaStore { dst: b.addr(u.w_addr, 2), src: w16, rows: rows2, row: row2, stride: stride2 });
        c.push(Instr::DmaStore { dst: msrc, src: master, rows, row, stride: stride4 });
        if let Some(s) = state {
            c.store(state_at, s, u64::from(b.n * self.words) * 4);
        }
    }
}

/// The weight blocks of a conv layer this core owns (output channel blocks): gradients
/// over every sample, timestep and row block, then the update chunk by chunk.
fn conv(p: &Plan, u: &Unit, g: &ConvGeom, t: &ConvTiling, core: u16, c: &mut Code) {
    let (tile, kk, chunks) = (t.tile(g), g.kk(), g.cin / t.cc);
    let wc = t.co * t.cc * kk;
    let mut r = Bump::default();
    let input = ConvIn::take(&mut r, g, t, u.src.dense, Buf::FpIn, Buf::WgSpk);
    let (err, nz, w16) = (r.take(Buf::WgErr, tile), r.take(Buf::FpMask, tile), r.take(Buf::FpW, wc));
    let base = opt_base(p, core);
    let (gbuf, goff) = if u.grad_in_opt { (Buf::Opt, base) } else { (Buf::WgGrad, 0) };
    let gsize = if u.grad_in_opt { t.co * g.cin * kk } else { 0 };
    let words = p.opt.state_words;
    let opt = Opt { master: base + gsize, state: base + gsize + wc, words };
    input.zero_border(g, t, c);
    let db = goff + t.co * g.cin * kk;
    let biases = t.co * u32::from(u.biases > 0);
    for cb in owned(g.cout / t.co, u.cores.seat(core)) {
        c.fill(at(gbuf, goff, t.co * g.cin * kk + biases), 0.0);
        c.open(B, p.b);
        c.open(T, p.t);
        for rb in 0..g.oh / t.rows {
            let (bits1, bits16) = (Slab::new(g, t, (cb, rb), 1, 1), Slab::new(g, t, (cb, rb), 16, 1));
            let (e, m) = (at(Buf::WgErr, err, tile), at(Buf::FpMask, nz, tile));
            bits16.load(e.clone(), bt_addr(p, u.dh + bits16.first, u.n * 2), c);
            bits1.load(m.clone(), bt_addr(p, u.nz + bits1.first, u.n / 8), c);
            for j in 0..chunks {
                let (spk, ih) = input.load(p, u, g, t, (j, rb), c);
                let (cin, cout, ih, iw, kh, kw, stride) = g.operands(t.cc, t.co, ih);
                c.push(Instr::WgConv {
                    spk,
                    err: e.clone(),
                    dw: at(gbuf, goff + j * wc, wc),
                    db: (j == 0 && biases > 0).then(|| at(gbuf, db, t.co)),
                    cin,
                    cout,
                    ih,
                    iw,
                    kh,
                    kw,
                    stride,
                    skip: !u.src.dense,
                    nz: Some(m.clone()),
                });
            }
        }
        c.close(T);
        c.close(B);
        for j in 0..chunks {
            let first = cb * t.co * g.cin * kk + j * t.cc * kk;
            let (rows, row, row_stride) = (t.co, t.cc * kk, g.cin * kk);
            let block = Block { n: wc, rows, row, row_stride, first, tile: None, owned: None };
            let state_at = DramAddr::new(u.state_addr + (cb * t.co * g.cin * kk + j * wc) * words * 4);
            opt.update(u, at(gbuf, goff + j * wc, wc), at(Buf::FpW, w16, wc), &block, state_at, c);
        }
        if biases > 0 {
            let first = u.wlen + cb * t.co;
            let block = Block { n: t.co, rows: 1, row: t.co, row_stride: t.co, first, tile: None, owned: None };
            let state_at = DramAddr::new(u.state_addr + first * words * 4);
            opt.update(u, at(gbuf, db, t.co), at(Buf::FpW, w16, t.co), &block, state_at, c);
        }
    }
}

/// The weight blocks of a linear layer this core owns: per output tile, blocks of `kb`
/// input rows, each accumulated over all `B x T` and updated at once.
fn linear(p: &Plan, u: &Unit, core: u16, c: &mut Code) {
    let Kind::Linear { t } = &u.kind else { return };
    let grp = Groups::new(p, t.g);
    let (rt, nb, kb, n, k) = (grp.rows(p), t.nb, t.kb, u.n, u.k);
    let words = p.opt.state_words;
    let mut r = Bump::default();
    let fbuf = if u.src.dense { Buf::FpMem } else { Buf::FpIn };
    let (fin, err, nz) =
        (r.take(fbuf, rt * kb), r.take(Buf::WgErr, rt * nb), r.take(Buf::FpMask, whole_bytes(rt * nb)));
    let (grad, w16) = (r.take(Buf::WgGrad, kb * nb), r.take(Buf::FpMem, kb * nb));
    let ones = r.take(Buf::FpIn, 1);
    let base = opt_base(p, core);
    let opt = Opt { master: base, state: base + kb * nb, words };
    Owned::new(n / nb, u.cores.seat(core)).emit(c, |c, o| {
        // The tile's dL/dH and nonzero bitmap of the current group's rows: loaded once for
        // the whole tile when there is one group, else for every group of every block.
        let load_errors = |c: &mut Code| {
            let e = at(Buf::WgErr, err, rt * nb);
            let src = grp.addr(o.addr(u.dh, nb * 2), rt * n * 2);
            c.push(Instr::DmaLoad { dst: e, src, rows: h16(rt), row: nb * 2, stride: n * 2 });
            let (bits, len, bytes) = grp.block(p, o, u.nz, (nb, 1));
            c.load(at(Buf::FpMask, nz, len), bits, bytes);
        };
        let once = grp.count == 1;
        if once {
            load_errors(c);
        }
        tiles(c, k, kb, |c, term, _, _| {
            let on_tile =
                |a: DramAddr, bytes: u32| if term.is_some() { a.with(TILE, stride(u64::from(bytes))) } else { a };
            c.fill(at(Buf::WgGrad, grad, kb * nb), 0.0);
            grp.emit(c, |c| {
                if !once {
                    load_errors(c);
                }
                let mut src = DramAddr::new(u.src.addr);
                if u.src.step_bytes > 0 {
                    src = src.with(STEP, stride(u64::from(u.src.step_bytes)));
                }
                let src = grp.addr(on_tile(src, u.src.bytes(kb)), rt * u.src.row_bytes);
                let dst = at(fbuf, fin, rt * kb);
                c.push(Instr::DmaLoad { dst, src, rows: h16(rt), row: u.src.bytes(kb), stride: u.src.row_bytes });
                let rows = BtRows::new(p, grp.g, &[kb, nb]);
                let ((spk, spk_stride), (e, err_stride)) = (rows.op(p, fbuf, fin, kb), rows.op(p, Buf::WgErr, err, nb));
                let nz = Some(rows.op(p, Buf::FpMask, nz, nb).0);
                let (dw, skip, r) = (at(Buf::WgGrad, grad, kb * nb), !u.src.dense, rows.rows);
                let (k16, n16) = (h16(kb), h16(nb));
                let instr = Instr::WgLinear {
                    spk,
                    err: e,
                    dw,
                    db: None,
                    k: k16,
                    n: n16,
                    rows: r,
                    spk_stride,
                    err_stride,
                    skip,
                    nz,
                };
                rows.emit(p, c, instr);
            });
            // Optimizer state is opaque: block after block, `(nt, row block)` major.
            let state = o.addr(u.state_addr, (k / kb) * kb * nb * words * 4);
            let state_at = on_tile(state, kb * nb * words * 4);
            let tile = term.map(|_| kb * n);
            let owned = o.looped().then_some(o.step * nb);
            let block = Block { n: kb * nb, rows: kb, row: nb, row_stride: n, first: o.first * nb, tile, owned };
            opt.update(u, at(Buf::WgGrad, grad, kb * nb), at(Buf::FpMem, w16, kb * nb), &block, state_at, c);
        });
        if u.biases > 0 {
            let reload: &dyn Fn(&mut Code) = if once { &|_| {} } else { &load_errors };
            bias(p, u, &opt, (o, &grp, reload), [grad, w16, ones, err, nz], c);
        }
    });
}

/// Emits the loads that bring a group's errors into the WG buffers.
type Reload<'a> = &'a dyn Fn(&mut Code);

/// The bias block of the current linear output tile: its gradient is the errors summed
/// over every sample and timestep, which `wg.linear` computes as the gradient of a weight
/// whose input is a constant spike. `reload` brings each group's errors in (a no-op when
/// they are already there).
fn bias(
    p: &Plan,
    u: &Unit,
    opt: &Opt,
    (o, grp, reload): (&Owned, &Groups, Reload<'_>),
    [grad, w16, ones, err, nz]: [u32; 5],
    c: &mut Code,
) {
    let Kind::Linear { t } = &u.kind else { return };
    let nb = t.nb;
    c.fill(at(Buf::WgGrad, grad, nb), 0.0);
    c.fill(at(Buf::FpIn, ones, 1), 1.0);
    grp.emit(c, |c| {
        reload(c);
        // The constant spike is the same element for every row: stride 0.
        let rows = BtRows::new(p, grp.g, &[nb]);
        let ((e, err_stride), nz) = (rows.op(p, Buf::WgErr, err, nb), Some(rows.op(p, Buf::FpMask, nz, nb).0));
        let (spk, dw, r) = (at(Buf::FpIn, ones, 1), at(Buf::WgGrad, grad, nb), rows.rows);
        let instr = Instr::WgLinear {
            spk,
            err: e,
            dw,
            db: None,
            k: 1,
            n: h16(nb),
            rows: r,
            spk_stride: 0,
            err_stride,
            skip: true,
            nz,
        };
        rows.emit(p, c, instr);
    });
    let (first, owned) = (u.wlen + o.first * nb, o.looped().then_some(o.step * nb));
    let block = Block { n: nb, rows: 1, row: nb, row_stride: u.n, first, tile: None, owned };
    let state_at = o.addr(u.state_addr + u.wlen * p.opt.state_words * 4, nb * p.opt.state_words * 4);
    opt.update(u, at(Buf::WgGrad, grad, nb), at(Buf::FpMem, w16, nb), &block, state_at, c);
}
