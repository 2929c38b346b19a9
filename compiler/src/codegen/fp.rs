//! The FP stream of a unit: per sample, bring in the input of all timesteps, run the linear
//! layer per timestep (per output tile), then the soma per timestep, and pass spikes on.

use super::conv;
use super::emit::{
    B, CHAN_SPIKES, Code, STEP, T, TOK_SAMPLE, TOK_UPDATED, at, fwd, rows_of, stride, tiled, tiled_dram, tiles,
};
use super::placement::buffer_elems;
use super::plan::{Input, Plan, SUM_BUF, Unit};
use super::soma_rows::emit_over_time;
use isa::{Access, Buf, ChipDesc, DramAddr, Instr, Stream};

/// The FP instructions of unit `u`.
pub(super) fn stream(p: &Plan, u: &Unit, chip: &ChipDesc) -> Code {
    let mut c = Code::default();
    let cfg = u.neuron;
    if let Some(cu) = &u.conv {
        conv::zero_padding(p, cu, &mut c);
    }
    c.push(Instr::CfgNeuron {
        slot: 0,
        beta: cfg.beta,
        theta: cfg.theta,
        reset: cfg.reset,
        detach: cfg.detach,
        sg: cfg.sg,
        alpha: cfg.alpha,
    });
    // Weights are (re)loaded every step: WG's update rewrites them in DRAM.
    c.open(STEP, p.steps);
    if u.bias {
        // The bias follows the weights in DRAM.
        let (src, nb) = (DramAddr::new(u.w_addr + u.wlen * 2), u.biases());
        c.load(at(Buf::FpMem, u.bias_mem, nb), src, u64::from(nb) * 2);
    }
    let resident = u.fp_tile >= u.n && u64::from(u.k * u.n) <= buffer_elems(chip, Buf::FpW);
    if let Some(cu) = &u.conv {
        conv::load_weights(u, cu, Buf::FpW, &mut c);
    } else if resident {
        c.load(at(Buf::FpW, 0, u.k * u.n), DramAddr::new(u.w_addr), u64::from(u.k * u.n) * 2);
    }
    c.open(B, p.b);
    match &u.conv {
        Some(cu) => conv::fp_sample(p, u, cu, &mut c),
        None => sample(p, u, resident, &mut c),
    }
    if p.train {
        // Sample b is ready for BP; wait until BP and WG are done with it before overwriting.
        c.signal(u.core, Stream::Bp, TOK_SAMPLE);
        c.wait(TOK_SAMPLE);
    }
    c.close(B);
    if p.train {
        c.wait(TOK_UPDATED);
    }
    c.close(STEP);
    c.push(Instr::Halt {});
    c
}

/// The FP work of one sample of a linear unit.
fn sample(p: &Plan, u: &Unit, resident: bool, c: &mut Code) {
    load_input(p, u, c);
    c.fill(at(Buf::FpMem, u.v, u.n), 0.0);
    if u.output {
        c.fill(at(SUM_BUF, u.sum, u.n), 0.0);
    }
    if u.bias {
        // The bias seeds every timestep's sums; `fp.linear` adds it after the products in
        // its accumulator, so `x·W + b` is rounded once, as the golden fc layer is.
        c.open(T, p.t);
        c.push(Instr::Copy { dst: fwd(Buf::FpPsum, u.x, u.n, u.n), src: at(Buf::FpMem, u.bias_mem, u.n) });
        c.close(T);
    }
    linear(p, u, resident, c);
    soma(p, u, c);
    keep_sample(p, u, c);
    if let (Some(out), true) = (p.output, u.output) {
        let bytes = u64::from(u.n) * 4;
        c.store(per_sample(p, out, bytes), at(SUM_BUF, u.sum, u.n), bytes);
    }
    if let Some(next) = u.next {
        c.push(Instr::NocSend { to: next, chan: CHAN_SPIKES, src: at(Buf::FpSpk, u.spk, p.t * u.n) });
    }
}

/// The input of all T timesteps of sample `b`, at the start of `u.fin`.
fn load_input(p: &Plan, u: &Unit, c: &mut Code) {
    let (buf, off, step) = u.fin;
    let dst = at(buf, off, p.t * step);
    match u.input {
        Input::DramSpikes { row_bytes } => {
            let bytes = u64::from(p.t) * u64::from(row_bytes);
            c.load(dst, per_sample(p, p.input, bytes), bytes);
        }
        Input::DramDense => {
            let bytes = u64::from(p.t) * u64::from(u.k) * 2;
            c.load(dst, per_sample(p, p.input, bytes), bytes);
        }
        Input::Noc { from } => c.push(Instr::NocRecv { from, chan: CHAN_SPIKES, dst }),
    }
}

/// The DRAM address of sample `r1` of step `r3` in a `[steps][B][bytes]` tensor.
pub(super) fn per_sample(p: &Plan, base: u32, bytes: u64) -> DramAddr {
    DramAddr::new(base).with(STEP, stride(u64::from(p.b) * bytes)).with(B, stride(bytes))
}

/// The input of timestep `r0`: `k` spikes (1-bit) or currents (FP16).
pub(super) fn input_at(u: &Unit) -> Access {
    let (buf, off, step) = u.fin;
    fwd(buf, off, step, u.k)
}

/// Whether the input is spikes (so zero spikes can be skipped).
pub(super) fn spiking_input(u: &Unit) -> bool {
    !u.dense_in
}

/// Synaptic input of every timestep into `fp.psum[x + t*n ..]`, one output tile at a time
/// and one multi-row `fp.linear` per tile (a row per timestep): each tile keeps all k rows,
/// so every output is one accumulation rounded once.
fn linear(p: &Plan, u: &Unit, resident: bool, c: &mut Code) {
    let (k, n) = (u.k, u.n);
    tiles(c, n, if resident { n } else { u.fp_tile.max(1) }, |c, term, first, size| {
        if !resident {
            // Columns first..first+size of the k x n matrix: k rows of `size` values.
            let src = tiled_dram(DramAddr::new(u.w_addr + first * 2), term, 2);
            let row = size * 2;
            c.push(Instr::DmaLoad { dst: at(Buf::FpW, 0, k * size), src, rows: k as u16, row, stride: n * 2 });
        }
        let (spk, out) = (input_at(u), tiled(fwd(Buf::FpPsum, u.x + first, n, size), term, 1));
        let linear = |spk, out, rows, spk_stride, out_stride| Instr::FpLinear {
            spk,
            w: at(Buf::FpW, 0, k * size),
            out,
            k: k as u16,
            n: size as u16,
            rows,
            spk_stride,
            out_stride,
            acc: u.bias,
            skip: spiking_input(u),
        };
        // One instruction for all timesteps: the engine keeps the weight tile for every row.
        match rows_of(p.t, [&spk, &out]) {
            Some((rows, [(spk, ss), (out, os)])) => c.push(linear(spk, out, rows, ss, os)),
            None => {
                c.open(T, p.t);
                c.push(linear(spk, out, 1, 0, 0));
                c.close(T);
            }
        }
    });
}

/// The soma of every timestep, the output sums and the membrane stores.
fn soma(p: &Plan, u: &Unit, c: &mut Code) {
    let (n, cfg) = (u.n, u.neuron);
    let lif = Instr::FpLif {
        x: fwd(Buf::FpPsum, u.x, n, n),
        bias: None,
        v: at(Buf::FpMem, u.v, n),
        h: cfg.keep_h.then(|| fwd(Buf::FpMem, u.h, n, n)),
        spk: cfg.fire.then(|| fwd(Buf::FpSpk, u.spk, n, n)),
        mask: cfg.keep_mask.then(|| fwd(Buf::FpMask, u.mask, n, n)),
        n,
        rows: 1,
        cfg: 0,
        fire: cfg.fire,
    };
    // A readout's sum and the parity stores read the membrane of every timestep.
    let per_step = (u.output && !cfg.fire) || u.debug.is_some();
    emit_over_time(c, (T, p.t), lif, per_step, |c| {
        if u.output {
            let src = if cfg.fire { fwd(Buf::FpSpk, u.spk, n, n) } else { at(Buf::FpMem, u.v, n) };
            c.push(Instr::FpSum { dst: at(SUM_BUF, u.sum, n), src });
        }
        if let Some(d) = &u.debug {
            let row = u64::from(n) * 2;
            let dst = DramAddr::new(d.v).with(B, stride(u64::from(p.t) * row)).with(T, stride(row));
            c.store(dst, at(Buf::FpMem, u.v, n), row);
        }
    });
}

/// Parity stores of a whole sample: the linear output, spikes (padded to bytes), H and the
/// output sum.
fn keep_sample(p: &Plan, u: &Unit, c: &mut Code) {
    let Some(d) = &u.debug else { return };
    let tn = u64::from(p.t) * u64::from(u.n);
    let src = at(Buf::FpPsum, u.x, u32::try_from(tn).unwrap_or(u32::MAX));
    c.store(DramAddr::new(d.out).with(B, stride(tn * 2)), src, tn * 2);
    if let Some(sum) = d.sum {
        let bytes = u64::from(u.n) * 4;
        c.store(DramAddr::new(sum).with(B, stride(bytes)), at(SUM_BUF, u.sum, u.n), bytes);
    }
    if let Some(s) = d.s {
        let bytes = tn.div_ceil(8);
        let src = at(Buf::FpSpk, u.spk, u32::try_from(bytes * 8).unwrap_or(u32::MAX));
        c.store(DramAddr::new(s).with(B, stride(bytes)), src, bytes);
    }
    if let Some(h) = d.h {
        let src = at(Buf::FpMem, u.h, u32::try_from(tn).unwrap_or(u32::MAX));
        c.store(DramAddr::new(h).with(B, stride(tn * 2)), src, tn * 2);
    }
}
