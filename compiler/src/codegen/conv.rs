//! Convolutional units: a `conv2d` layer, its LIF layer and an optional pooling layer on one
//! core, planned and emitted here so the fully connected path stays as it is.
//!
//! `fp.conv`, `bp.conv` and `wg.conv` read a pre-padded `cin x hp x wp` input, so the unit
//! keeps its input of all `T` timesteps padded: the padding is zeroed once, and every sample
//! places each input row at its padded offset (DMA rows from DRAM, or copies from the NoC
//! staging area), in loops over planes (timestep x channel) and rows. Backward, `bp.conv`
//! writes the padded input gradient and the interior rows are copied out before they go back.
//! Pooling (any window, stride and padding) runs on the FP engine after the soma, on the
//! whole spike map of a timestep; its output is dense FP16, and its backward (`bp.pool`) runs
//! on the BP engine before the gradient soma. Weights stay
//! resident (no tiling yet), and every output is one whole accumulation, rounded once.

use super::CodegenError;
use super::alloc::Buffers;
use super::emit::{B, CHAN_ERRORS, CHAN_SPIKES, Code, T, TILE, at, fwd, h16, rev, stride};
use super::fp::per_sample;
use super::plan::{Input, Plan, Unit};
use super::pooling::Pooling;
use super::soma_rows::emit_over_time;
use crate::graph::{Layer, LayerGraph};
use crate::model::Op;
use isa::{Access, Buf, ChipDesc, DramAddr, Instr, Reg};

/// Counters of the row loops. They run outside the timestep loop, so they reuse the
/// counters of timesteps and tiles.
const PLANE: Reg = T;
const ROW: Reg = TILE;

/// Convolution geometry: unpadded input `cin x h x w`, output `cout x oh x ow`.
#[derive(Clone, Copy)]
pub(super) struct Geom {
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
}

impl Geom {
    fn hp(&self) -> u32 {
        self.h + 2 * self.pad
    }

    fn wp(&self) -> u32 {
        self.w + 2 * self.pad
    }

    /// Elements of one padded input of one timestep.
    fn padded(&self) -> u32 {
        self.cin * self.hp() * self.wp()
    }

    /// Weights, `cout x cin x k x k` (PyTorch's layout, which `fp.conv` reads).
    pub(super) fn weights(&self) -> u32 {
        self.cout * self.cin * self.k * self.k
    }

    /// Fan-in of one output, for the initial weights.
    pub(super) fn fan_in(&self) -> u32 {
        self.cin * self.k * self.k
    }

    pub(super) fn cout(&self) -> u32 {
        self.cout
    }
}

/// A conv unit's geometry and its regions beyond those every unit has.
pub(super) struct ConvUnit {
    pub(super) g: Geom,
    pool: Option<Pooling>,
    /// Padded input of all T steps (`fp.in` for spikes, `fp.mem` for dense input).
    fin: (Buf, u32),
    /// The unpadded input of all T steps as it arrives over the NoC.
    stage: (Buf, u32),
    /// `fp.psum`: the synaptic input of one timestep.
    x: u32,
    /// Pooled output of all T steps (FP16), what the next core receives.
    pooled: (Buf, u32),
    /// dL/dS of one timestep, spread back by `bp.pool`.
    ds_full: (Buf, u32),
    /// Padded input gradient of all T steps, and its interior sent back.
    gpad: (Buf, u32),
    gin: (Buf, u32),
}

impl ConvUnit {
    /// Pooled elements per timestep, when the unit pools.
    pub(super) fn pooled_len(&self) -> Option<u32> {
        self.pool.map(|p| p.len(self.g.cout))
    }

    /// Elements per timestep this unit sends forward.
    fn out_len(&self, n: u32) -> u32 {
        self.pooled_len().unwrap_or(n)
    }
}

/// The conv part of a unit whose weight layer is `wl`, or `None` for a linear layer.
pub(super) fn plan(graph: &LayerGraph, wl: &Layer, nl: &Layer, output: bool) -> Result<Option<ConvUnit>, CodegenError> {
    let Op::Conv2d { out, kernel, stride, padding, .. } = wl.op else { return Ok(None) };
    let no = |what: &str| Err(CodegenError::Unsupported { layer: wl.name.clone(), what: what.into() });
    let input = wl.inputs.first().map(|&i| graph.layer(i).shape.clone()).unwrap_or_default();
    let (&[cin, h, w], &[_, oh, ow]) = (input.as_slice(), wl.shape.as_slice()) else {
        return no("a conv2d layer whose input or output is not `[C, H, W]`");
    };
    if output || !matches!(nl.op, Op::Lif(_)) {
        return no("a conv2d layer whose neuron layer is the output or not LIF");
    }
    if kernel > 255 || stride > 255 || h + 2 * padding > 65535 || w + 2 * padding > 65535 || cin > 65535 || out > 65535
    {
        return no("a conv2d layer with a kernel, stride or padded size beyond the ISA's fields");
    }
    let g = Geom { cin, h, w, cout: out, oh, ow, k: kernel, stride, pad: padding };
    // Any window, stride and padding: `fp.pool` pools the whole map of a timestep at once.
    let pool = Pooling::of(graph, nl, (out, oh, ow))?;
    let none = (Buf::FpMem, 0);
    Ok(Some(ConvUnit { g, pool, fin: none, stage: none, x: 0, pooled: none, ds_full: none, gpad: none, gin: none }))
}

/// Whether the layer's input is dense FP16: a pooled map, possibly flattened.
pub(super) fn pooled_input(graph: &LayerGraph, wl: &Layer) -> bool {
    let mut at = wl.inputs.first().map(|&i| graph.layer(i));
    while let Some(l) = at {
        match l.op {
            Op::Flatten => at = l.inputs.first().map(|&i| graph.layer(i)),
            Op::AvgPool(_) | Op::MaxPool(_) => return true,
            _ => return false,
        }
    }
    false
}

/// Takes `len` elements from the first of `bufs` that still has room.
fn take_any(a: &mut Buffers, chip: &ChipDesc, bufs: &[Buf], len: u64, layer: &str) -> Result<(Buf, u32), CodegenError> {
    let mut last = None;
    for &buf in bufs {
        match a.take(chip, buf, len, layer) {
            Ok(off) => return Ok((buf, off)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(CodegenError::Internal(vec!["no buffer to take from".into()])))
}

/// Every region of a conv unit on its core.
pub(super) fn buffers(chip: &ChipDesc, t: u32, u: &mut Unit) -> Result<(), CodegenError> {
    let Some(mut cu) = u.conv.take() else { return Ok(()) };
    let mut a = Buffers::default();
    let name = u.weight_name.clone();
    let (t, k, n, g) = (u64::from(t), u64::from(u.k), u64::from(u.n), cu.g);
    let mut take = |bufs: &[Buf], len: u64| take_any(&mut a, chip, bufs, len, &name);
    let in_buf = if u.dense_in { Buf::FpMem } else { Buf::FpIn };
    cu.fin = take(&[in_buf], t * u64::from(g.padded()))?;
    u.fin = (cu.fin.0, cu.fin.1, g.padded());
    if u.input_is_noc() {
        cu.stage = take(&[in_buf], t * k)?;
    } else if let Some(row_bits) = unaligned_rows(u, &g) {
        cu.stage = take(&[in_buf], t * u64::from(row_bits))?;
    }
    cu.x = take(&[Buf::FpPsum], n)?.1;
    if let Some(len) = cu.pooled_len() {
        cu.pooled = take(&[Buf::FpPsum, Buf::FpMem], t * u64::from(len))?;
    }
    u.v = take(&[Buf::FpMem], n)?.1;
    u.h = if u.neuron.keep_h { take(&[Buf::FpMem], t * n)?.1 } else { 0 };
    u.bias_mem = if u.bias { take(&[Buf::FpMem], u64::from(g.cout))?.1 } else { 0 };
    u.spk = take(&[Buf::FpSpk], (t * n).div_ceil(8) * 8)?.1;
    u.mask = if u.neuron.keep_mask { take(&[Buf::FpMask], t * n)?.1 } else { 0 };
    u.nz = take(&[Buf::FpMask], t * n)?.1;
    u.ds = take(&[Buf::BpErr], t * u64::from(cu.out_len(u.n)))?.1;
    if cu.pool.is_some() {
        cu.ds_full = take(&[Buf::BpErr, Buf::BpVgrad, Buf::BpDelta], n)?;
    }
    u.delta = take(&[Buf::BpDelta], t * n)?.1;
    u.vgrad = take(&[Buf::BpVgrad], n)?.1;
    if u.input_is_noc() {
        let bufs = [Buf::BpPsum, Buf::BpErr, Buf::BpDelta];
        cu.gpad = take(&bufs, t * u64::from(g.padded()))?;
        cu.gin = take(&bufs, t * k)?;
    }
    u.grad = match take(&[Buf::WgGrad], u64::from(u.params())) {
        Ok(r) => r,
        // Too large for wg.grad: accumulate in the shared store instead (see `wg.rs`).
        Err(_) => (Buf::Opt, u32::MAX),
    };
    u.conv = Some(cu);
    Ok(())
}

/// `len` elements of row `ROW` of plane `PLANE` in a padded (`padded`) or plain layout.
fn row(g: &Geom, (buf, base): (Buf, u32), padded: bool) -> Access {
    if padded {
        let first = base + g.pad * g.wp() + g.pad;
        at(buf, first, g.w).with(PLANE, stride(u64::from(g.hp() * g.wp()))).with(ROW, stride(u64::from(g.wp())))
    } else {
        at(buf, base, g.w).with(PLANE, stride(u64::from(g.h * g.w))).with(ROW, stride(u64::from(g.w)))
    }
}

/// Loops over the `T x cin` planes and the `h` rows of the input around `body`.
fn rows(p: &Plan, g: &Geom, c: &mut Code, body: impl FnOnce(&mut Code)) {
    c.open(PLANE, p.t * g.cin);
    c.open(ROW, g.h);
    body(c);
    c.close(ROW);
    c.close(PLANE);
}

/// Zeroes the padded input once: the row placement only ever writes its interior.
pub(super) fn zero_padding(p: &Plan, cu: &ConvUnit, c: &mut Code) {
    if cu.g.pad > 0 {
        c.fill(at(cu.fin.0, cu.fin.1, p.t * cu.g.padded()), 0.0);
    }
}

/// Loads the resident weights into `buf` (`fp.w` or `bp.w`).
pub(super) fn load_weights(u: &Unit, cu: &ConvUnit, buf: Buf, c: &mut Code) {
    let len = cu.g.weights();
    c.load(at(buf, 0, len), DramAddr::new(u.w_addr), u64::from(len) * 2);
}

/// The bits between the timesteps of a spike input from DRAM whose rows are not whole
/// bytes, which DMA cannot place row by row: such an input is loaded whole into a stage and
/// padded from there (see [`load_input`]).
fn unaligned_rows(u: &Unit, g: &Geom) -> Option<u32> {
    match u.input {
        Input::DramSpikes { row_bytes } if g.w % 8 != 0 => Some(row_bytes * 8),
        _ => None,
    }
}

/// Places the input of all T steps of sample `b` at its padded offsets.
fn load_input(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let g = &cu.g;
    let dst = row(g, cu.fin, true);
    match (u.input, unaligned_rows(u, g)) {
        (Input::Noc { from }, _) => {
            c.push(Instr::NocRecv { from, chan: CHAN_SPIKES, dst: at(cu.stage.0, cu.stage.1, p.t * u.k) });
            rows(p, g, c, |c| c.push(Instr::Copy { dst, src: row(g, cu.stage, false) }));
        }
        (_, Some(row_bits)) => {
            // Spike rows that are not whole bytes: the sample's timesteps, each a whole
            // number of bytes in DRAM, into the stage in one transfer, then each timestep's
            // maps into the interior of its padded ones.
            let sample = u64::from(p.t * row_bits / 8);
            c.load(at(cu.stage.0, cu.stage.1, p.t * row_bits), per_sample(p, p.input, sample), sample);
            let (dst, src) = (input_at(cu), fwd(cu.stage.0, cu.stage.1, row_bits, u.k));
            let pad = u8::try_from(g.pad).unwrap_or(u8::MAX);
            c.open(T, p.t);
            c.push(Instr::Pad { dst, src, c: h16(g.cin), h: h16(g.h), w: h16(g.w), p: pad, extract: false });
            c.close(T);
        }
        (Input::DramSpikes { .. } | Input::DramDense, None) => {
            // Bits per element; spike rows are whole bytes here (narrower ones take the arm
            // above).
            let bits = if u.dense_in { 16 } else { 1 };
            let bytes = |elems: u32| u64::from(elems) * bits / 8;
            let sample = u64::from(p.t) * bytes(u.k);
            let src =
                per_sample(p, p.input, sample).with(PLANE, stride(bytes(g.h * g.w))).with(ROW, stride(bytes(g.w)));
            rows(p, g, c, |c| c.load(dst, src, bytes(g.w)));
        }
    }
}

/// The conv input of timestep `r0`.
fn input_at(cu: &ConvUnit) -> Access {
    fwd(cu.fin.0, cu.fin.1, cu.g.padded(), cu.g.padded())
}

/// Conv dimensions as the instructions take them (checked against the fields when planning).
fn dims(g: &Geom) -> (u16, u16, u16, u16, u8, u8) {
    let b = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    (h16(g.cin), h16(g.cout), h16(g.hp()), h16(g.wp()), b(g.k), b(g.stride))
}

/// `fp.conv` of timestep `r0` into the synaptic input of one timestep, which it returns.
/// The whole reduction over `cin x k x k` is one accumulation per output, rounded once.
fn conv_step(u: &Unit, cu: &ConvUnit, c: &mut Code) -> Access {
    let (cin, cout, ih, iw, k, stride) = dims(&cu.g);
    let x = at(Buf::FpPsum, cu.x, u.n);
    let (spk, w) = (input_at(cu), at(Buf::FpW, 0, cu.g.weights()));
    let skip = !u.dense_in;
    let out = x.clone();
    // Each channel's bias is added in the accumulator, so `x*W + b` is rounded once.
    let bias = u.bias.then(|| at(Buf::FpMem, u.bias_mem, u.biases()));
    c.push(Instr::FpConv { spk, w, bias, out, cin, cout, ih, iw, kh: k, kw: k, stride, acc: false, skip });
    x
}

/// The FP work of one sample: input placement, then per timestep conv, soma and pooling,
/// the parity stores, and the output sent to the next core.
pub(super) fn fp_sample(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let (n, cfg) = (u.n, u.neuron);
    load_input(p, u, cu, c);
    c.fill(at(Buf::FpMem, u.v, n), 0.0);
    c.open(T, p.t);
    let x = conv_step(u, cu, c);
    c.push(Instr::FpLif {
        x,
        bias: None,
        v: at(Buf::FpMem, u.v, n),
        h: cfg.keep_h.then(|| fwd(Buf::FpMem, u.h, n, n)),
        spk: Some(fwd(Buf::FpSpk, u.spk, n, n)),
        mask: cfg.keep_mask.then(|| fwd(Buf::FpMask, u.mask, n, n)),
        n,
        rows: 1,
        cfg: 0,
        fire: true,
    });
    if let Some(d) = &u.debug {
        let row = u64::from(n) * 2;
        let per_t = |base: u32| DramAddr::new(base).with(B, stride(u64::from(p.t) * row)).with(T, stride(row));
        c.store(per_t(d.out), at(Buf::FpPsum, cu.x, n), row);
        c.store(per_t(d.v), at(Buf::FpMem, u.v, n), row);
    }
    if let (Some(pool), Some(len)) = (cu.pool, cu.pooled_len()) {
        let (src, dst) = (fwd(Buf::FpSpk, u.spk, n, n), fwd(cu.pooled.0, cu.pooled.1, len, len));
        c.push(pool.forward(src, dst, (cu.g.cout, cu.g.oh, cu.g.ow)));
    }
    c.close(T);
    keep_fp(p, u, cu, c);
    if let Some(next) = u.next {
        let src = match cu.pooled_len() {
            Some(len) => at(cu.pooled.0, cu.pooled.1, p.t * len),
            None => at(Buf::FpSpk, u.spk, p.t * n),
        };
        c.push(Instr::NocSend { to: next, chan: CHAN_SPIKES, src });
    }
}

/// Parity stores of a whole sample: spikes (padded to bytes), H and the pooled map.
fn keep_fp(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let Some(d) = &u.debug else { return };
    let tn = p.t * u.n;
    if let (Some(dst), Some(len)) = (d.pooled, cu.pooled_len()) {
        let bytes = u64::from(p.t * len) * 2;
        c.store(DramAddr::new(dst).with(B, stride(bytes)), at(cu.pooled.0, cu.pooled.1, p.t * len), bytes);
    }
    if let Some(s) = d.s {
        let bytes = tn.div_ceil(8);
        c.store(DramAddr::new(s).with(B, stride(u64::from(bytes))), at(Buf::FpSpk, u.spk, bytes * 8), u64::from(bytes));
    }
    if let Some(h) = d.h {
        let bytes = u64::from(tn) * 2;
        c.store(DramAddr::new(h).with(B, stride(bytes)), at(Buf::FpMem, u.h, tn), bytes);
    }
}

/// The BP work of one sample: the errors from the next core, pooling backward and the
/// gradient soma in reverse time, then the input errors sent back.
pub(super) fn bp_sample(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let (n, t, cfg) = (u.n, p.t, u.neuron);
    let len = cu.out_len(n);
    if let Some(next) = u.next {
        c.push(Instr::NocRecv { from: next, chan: CHAN_ERRORS, dst: at(Buf::BpErr, u.ds, t * len) });
    }
    c.fill(at(Buf::BpVgrad, u.vgrad, n), 0.0);
    let back = |buf: Buf, base: u32| rev(buf, base, n, n, t);
    let soma = |ds| Instr::BpSoma {
        ds,
        h: cfg.keep_h.then(|| back(Buf::FpMem, u.h)),
        mask: cfg.keep_mask.then(|| back(Buf::FpMask, u.mask)),
        spk: Some(back(Buf::FpSpk, u.spk)),
        dv: at(Buf::BpVgrad, u.vgrad, n),
        dh: back(Buf::BpDelta, u.delta),
        nz: Some(back(Buf::FpMask, u.nz)),
        n,
        rows: 1,
        cfg: 0,
        fire: true,
    };
    match cu.pool {
        // Pooling backward writes the soma's `ds` anew every timestep.
        Some(pool) => {
            c.open(T, t);
            let ds = pool_back(p, u, cu, pool, c);
            c.push(soma(ds));
            c.close(T);
        }
        None => emit_over_time(c, (T, t), soma(back(Buf::BpErr, u.ds)), false, |_| {}),
    }
    keep_bp(p, u, cu, c);
    if let Some(prev) = u.prev() {
        errors_back(p, u, cu, c);
        c.push(Instr::NocSend { to: prev, chan: CHAN_ERRORS, src: at(cu.gin.0, cu.gin.1, t * u.k) });
    }
}

/// `bp.pool` of timestep `t = T-1-r0`: the pooled map's gradient spread back over the
/// spikes' windows (max pooling routes it by the stored spikes); returns where it lands.
fn pool_back(p: &Plan, u: &Unit, cu: &ConvUnit, pool: Pooling, c: &mut Code) -> Access {
    let (n, t, len) = (u.n, p.t, pool.len(cu.g.cout));
    let dx = at(cu.ds_full.0, cu.ds_full.1, n);
    let x = rev(Buf::FpSpk, u.spk, n, n, t);
    let dy = rev(Buf::BpErr, u.ds, len, len, t);
    c.push(pool.backward(dy, dx.clone(), x, (cu.g.cout, cu.g.oh, cu.g.ow)));
    if let Some(d) = &u.debug {
        // The spread dL/dS lives one timestep at a time: store it as it is made.
        let row = u64::from(n) * 2;
        let last = d.ds + (t - 1) * n * 2;
        let dst = DramAddr::new(last).with(B, stride(u64::from(t) * row)).with(T, -stride(row));
        c.store(dst, dx.clone(), row);
    }
    dx
}

/// Parity stores of a whole sample: dL/dS (unless pooling stored it per timestep) and dL/dH.
fn keep_bp(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let Some(d) = &u.debug else { return };
    let tn = p.t * u.n;
    let bytes = u64::from(tn) * 2;
    if cu.pool.is_none() {
        c.store(DramAddr::new(d.ds).with(B, stride(bytes)), at(Buf::BpErr, u.ds, tn), bytes);
    }
    c.store(DramAddr::new(d.dh).with(B, stride(bytes)), at(Buf::BpDelta, u.delta, tn), bytes);
}

/// dL/dS of the previous layer: `bp.conv` per timestep into the padded gradient, whose
/// interior rows are then gathered into the unpadded layout the previous core expects.
fn errors_back(p: &Plan, u: &Unit, cu: &ConvUnit, c: &mut Code) {
    let (cin, cout, ih, iw, k, st) = dims(&cu.g);
    let (n, g) = (u.n, &cu.g);
    c.open(T, p.t);
    c.push(Instr::BpConv {
        err: fwd(Buf::BpDelta, u.delta, n, n),
        w: at(Buf::BpW, 0, g.weights()),
        out: fwd(cu.gpad.0, cu.gpad.1, g.padded(), g.padded()),
        cin,
        cout,
        ih,
        iw,
        kh: k,
        kw: k,
        stride: st,
        acc: false,
        nz: Some(fwd(Buf::FpMask, u.nz, n, n)),
    });
    c.close(T);
    rows(p, g, c, |c| c.push(Instr::Copy { dst: row(g, cu.gin, false), src: row(g, cu.gpad, true) }));
}

/// The weight gradient of one sample, accumulated over timesteps into `dw`.
/// `db`, when the layer has a bias, accumulates each channel's bias gradient.
pub(super) fn wg_sample(p: &Plan, u: &Unit, cu: &ConvUnit, (dw, db): (Access, Option<Access>), c: &mut Code) {
    let (cin, cout, ih, iw, k, st) = dims(&cu.g);
    let n = u.n;
    c.open(T, p.t);
    c.push(Instr::WgConv {
        spk: input_at(cu),
        err: fwd(Buf::BpDelta, u.delta, n, n),
        dw,
        db: db.clone(),
        cin,
        cout,
        ih,
        iw,
        kh: k,
        kw: k,
        stride: st,
        skip: !u.dense_in,
        nz: Some(fwd(Buf::FpMask, u.nz, n, n)),
    });
    c.close(T);
}
