//! The BP stream of a unit: per sample, the loss gradient (output unit) or the errors from
//! the next core, the gradient soma in reverse time, and the errors for the previous core
//! through the transposed weights (per row tile), sent back over the NoC.

use super::conv;
use super::emit::{
    B, CHAN_ERRORS, Code, STEP, T, TOK_SAMPLE, TOK_UPDATED, TOK_WG_DONE, at, fwd, rev, rows_of, stride, tiled,
    tiled_dram, tiles,
};
use super::fp::per_sample;
use super::plan::{Plan, SUM_BUF, Unit};
use super::soma_rows::emit_over_time;
use isa::{Access, Buf, DramAddr, Instr, Stream};

/// The BP instructions of unit `u`.
pub(super) fn stream(p: &Plan, u: &Unit) -> Code {
    let mut c = Code::default();
    c.open(STEP, p.steps);
    if u.output {
        c.fill(at(Buf::WgGrad, u.loss_cell, 1), 0.0);
    }
    let resident = u.bp_tile >= u.k;
    match &u.conv {
        Some(cu) if u.input_is_noc() => conv::load_weights(u, cu, Buf::BpW, &mut c),
        None if u.input_is_noc() && resident => {
            c.load(at(Buf::BpW, 0, u.k * u.n), DramAddr::new(u.w_addr), u64::from(u.k * u.n) * 2);
        }
        _ => {}
    }
    c.open(B, p.b);
    c.wait(TOK_SAMPLE);
    match &u.conv {
        Some(cu) => conv::bp_sample(p, u, cu, &mut c),
        None => sample(p, u, resident, &mut c),
    }
    // Errors of sample b are ready for WG; once WG is done, FP may start sample b+1.
    c.signal(u.core, Stream::Wg, TOK_SAMPLE);
    c.wait(TOK_WG_DONE);
    c.signal(u.core, Stream::Fp, TOK_SAMPLE);
    c.close(B);
    if u.output {
        c.store(DramAddr::new(p.loss_addr).with(STEP, 4), at(Buf::WgGrad, u.loss_cell, 1), 4);
    }
    // The next step reloads the weights, which WG rewrites at the end of this one.
    c.wait(TOK_UPDATED);
    c.close(STEP);
    c.push(Instr::Halt {});
    c
}

/// The BP work of one sample of a linear unit.
fn sample(p: &Plan, u: &Unit, resident: bool, c: &mut Code) {
    output_error(p, u, c);
    c.fill(at(Buf::BpVgrad, u.vgrad, u.n), 0.0);
    soma(p, u, c);
    keep_sample(p, u, c);
    if let Some(prev) = u.prev() {
        errors_back(p, u, resident, c);
        c.push(Instr::NocSend { to: prev, chan: CHAN_ERRORS, src: at(Buf::BpPsum, u.gin, p.t * u.k) });
    }
}

/// dL/dS of sample b: the loss gradient (the same for every t) or T steps from the next core.
fn output_error(p: &Plan, u: &Unit, c: &mut Code) {
    let n = u.n;
    if u.output {
        let row = u64::from(n) * 2;
        c.load(at(Buf::BpErr, u.tgt, n), per_sample(p, p.target, row), row);
        c.push(Instr::BpLoss {
            kind: p.loss,
            x: at(SUM_BUF, u.sum, n),
            target: at(Buf::BpErr, u.tgt, n),
            out: at(Buf::BpErr, u.ds, n),
            loss: Some(at(Buf::WgGrad, u.loss_cell, 1)),
            n: n as u16,
            t: p.t as u16,
            b: p.b as u16,
        });
    } else if let Some(next) = u.next {
        c.push(Instr::NocRecv { from: next, chan: CHAN_ERRORS, dst: at(Buf::BpErr, u.ds, p.t * n) });
    }
}

/// `bp.soma` for t = T-1 down to 0, writing dL/dH and its nonzero bitmap per timestep.
fn soma(p: &Plan, u: &Unit, c: &mut Code) {
    let (n, t, cfg) = (u.n, p.t, u.neuron);
    let back = |buf: Buf, base: u32| rev(buf, base, n, n, t);
    let ds: Access = if u.output { at(Buf::BpErr, u.ds, n) } else { back(Buf::BpErr, u.ds) };
    let soma = Instr::BpSoma {
        ds,
        h: cfg.keep_h.then(|| back(Buf::FpMem, u.h)),
        mask: cfg.keep_mask.then(|| back(Buf::FpMask, u.mask)),
        spk: cfg.fire.then(|| back(Buf::FpSpk, u.spk)),
        dv: at(Buf::BpVgrad, u.vgrad, n),
        dh: back(Buf::BpDelta, u.delta),
        nz: Some(back(Buf::FpMask, u.nz)),
        n,
        rows: 1,
        cfg: 0,
        fire: cfg.fire,
    };
    emit_over_time(c, (T, t), soma, false, |_| {});
}

/// Parity stores of a whole sample: dL/dS (the one loss gradient on the output unit) and
/// dL/dH of every timestep.
fn keep_sample(p: &Plan, u: &Unit, c: &mut Code) {
    let Some(d) = &u.debug else { return };
    let tn = p.t * u.n;
    let ds = if u.output { u.n } else { tn };
    let bytes = |len: u32| u64::from(len) * 2;
    c.store(DramAddr::new(d.ds).with(B, stride(bytes(ds))), at(Buf::BpErr, u.ds, ds), bytes(ds));
    c.store(DramAddr::new(d.dh).with(B, stride(bytes(tn))), at(Buf::BpDelta, u.delta, tn), bytes(tn));
}

/// dL/dS of the previous layer for every timestep into `bp.psum[gin + t*k ..]`, one row
/// tile of the weights at a time and one multi-row `bp.linear` per tile (a row per
/// timestep): each tile keeps all n columns, so every input's error is one accumulation.
fn errors_back(p: &Plan, u: &Unit, resident: bool, c: &mut Code) {
    let (k, n) = (u.k, u.n);
    tiles(c, k, if resident { k } else { u.bp_tile.max(1) }, |c, term, first, size| {
        if !resident {
            // Rows first..first+size of the k x n matrix are contiguous.
            let src = tiled_dram(DramAddr::new(u.w_addr + first * n * 2), term, u64::from(n) * 2);
            c.load(at(Buf::BpW, 0, size * n), src, u64::from(size * n) * 2);
        }
        let err = fwd(Buf::BpDelta, u.delta, n, n);
        let out = tiled(fwd(Buf::BpPsum, u.gin + first, k, size), term, 1);
        let nz = fwd(Buf::FpMask, u.nz, n, n);
        let linear = |err, out, nz, rows, err_stride, out_stride| Instr::BpLinear {
            err,
            w: at(Buf::BpW, 0, size * n),
            out,
            n: n as u16,
            k: size as u16,
            rows,
            err_stride,
            out_stride,
            acc: false,
            nz: Some(nz),
        };
        // One instruction for all timesteps; `nz` rows move with `err` rows.
        match rows_of(p.t, [&err, &out, &nz]) {
            Some((rows, [(err, es), (out, os), (nz, zs)])) if zs == es => {
                c.push(linear(err, out, nz, rows, es, os));
            }
            _ => {
                c.open(T, p.t);
                c.push(linear(err, out, nz, 1, 0, 0));
                c.close(T);
            }
        }
    });
}
