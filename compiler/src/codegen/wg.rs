//! The WG stream of a unit: FP32 masters and optimizer state into `opt`, per sample the
//! weight gradient accumulated over timesteps, and after the batch the optimizer update in
//! chunks (the FP16 copy staged in `fp.w`, which FP no longer needs) and the stores back.
//!
//! Gradients accumulate in `wg.grad` when the layer's parameters fit it; larger layers
//! accumulate in their own region of the shared `opt` store (spilling `wg.grad` tiles
//! through DRAM is left for later).

use super::conv;
use super::emit::{B, Code, STEP, T, TOK_SAMPLE, TOK_UPDATED, TOK_WG_DONE, at, fwd, rows_of, tiled, tiled_dram, tiles};
use super::fp::{input_at, spiking_input};
use super::placement::buffer_elems;
use super::plan::{Plan, Unit};
use isa::{Buf, ChipDesc, DramAddr, Instr, OptKind, Stream};

/// The WG instructions of unit `u`.
pub(super) fn stream(p: &Plan, u: &Unit, chip: &ChipDesc) -> Code {
    let mut c = Code::default();
    let params = u.params();
    let words = p.opt.state_words;
    c.push(Instr::CfgOpt {
        slot: 0,
        kind: p.opt.kind,
        lr: p.opt.lr,
        m: p.opt.m,
        beta2: p.opt.beta2,
        eps: p.opt.eps,
        wd: 0.0,
    });
    c.load(at(Buf::Opt, u.master, params), DramAddr::new(u.master_addr), u64::from(params) * 4);
    if words > 0 {
        c.load(at(Buf::Opt, u.state, params * words), DramAddr::new(u.state_addr), u64::from(params * words) * 4);
    }
    if p.first_step > 0 && p.opt.kind == OptKind::Adam {
        // `cfg.opt` reset the step counter; continue Adam's bias correction where the
        // earlier runs left it.
        c.open(STEP, p.first_step);
        c.push(Instr::WgStep { slot: 0 });
        c.close(STEP);
    }
    let (gbuf, g) = u.grad;
    c.open(STEP, p.steps);
    c.fill(at(gbuf, g, params), 0.0);
    c.open(B, p.b);
    c.wait(TOK_SAMPLE);
    if let Some(cu) = &u.conv {
        let db = u.bias.then(|| at(gbuf, g + u.wlen, u.biases()));
        conv::wg_sample(p, u, cu, (at(gbuf, g, u.wlen), db), &mut c);
    } else {
        linear(p, u, &mut c);
    }
    c.signal(u.core, Stream::Bp, TOK_WG_DONE);
    c.close(B);
    if let Some(d) = &u.debug {
        c.store(DramAddr::new(d.grad), at(gbuf, g, params), u64::from(params) * 4);
    }
    c.push(Instr::WgStep { slot: 0 });
    update(p, u, chip, &mut c);
    c.signal(u.core, Stream::Fp, TOK_UPDATED);
    c.signal(u.core, Stream::Bp, TOK_UPDATED);
    c.close(STEP);
    c.store(DramAddr::new(u.master_addr), at(Buf::Opt, u.master, params), u64::from(params) * 4);
    if words > 0 {
        c.store(DramAddr::new(u.state_addr), at(Buf::Opt, u.state, params * words), u64::from(params * words) * 4);
    }
    c.push(Instr::Halt {});
    c
}

/// The weight gradient of one sample of a linear unit, accumulated over timesteps (one
/// multi-row `wg.linear`, a row per timestep).
fn linear(p: &Plan, u: &Unit, c: &mut Code) {
    let (k, n) = (u.k, u.n);
    let (gbuf, g) = u.grad;
    let (spk, err, nz) = (input_at(u), fwd(Buf::BpDelta, u.delta, n, n), fwd(Buf::FpMask, u.nz, n, n));
    let linear = |spk, err, nz, rows, spk_stride, err_stride| Instr::WgLinear {
        spk,
        err,
        dw: at(gbuf, g, k * n),
        db: u.bias.then(|| at(gbuf, g + k * n, n)),
        k: k as u16,
        n: n as u16,
        rows,
        spk_stride,
        err_stride,
        skip: spiking_input(u),
        nz: Some(nz),
    };
    // One instruction for all timesteps, accumulating in time order; `nz` rows move with
    // `err` rows.
    match rows_of(p.t, [&spk, &err, &nz]) {
        Some((rows, [(spk, ss), (err, es), (nz, zs)])) if zs == es => c.push(linear(spk, err, nz, rows, ss, es)),
        _ => {
            c.open(T, p.t);
            c.push(linear(spk, err, nz, 1, 0, 0));
            c.close(T);
        }
    }
}

/// `wg.update` over all parameters in chunks that fit `fp.w`, each chunk's FP16 copy stored
/// to `<layer>.weight` (and `.bias`, which follows it in DRAM).
fn update(p: &Plan, u: &Unit, chip: &ChipDesc, c: &mut Code) {
    let params = u.params();
    let words = p.opt.state_words;
    let chunk = u32::try_from(buffer_elems(chip, Buf::FpW).min(u64::from(params))).unwrap_or(params).max(1);
    let (gbuf, g) = u.grad;
    tiles(c, params, chunk, |c, term, first, size| {
        c.push(Instr::WgUpdate {
            grad: tiled(at(gbuf, g + first, size), term, 1),
            master: tiled(at(Buf::Opt, u.master + first, size), term, 1),
            state: (words > 0).then(|| tiled(at(Buf::Opt, u.state + first * words, size * words), term, words)),
            w16: at(Buf::FpW, 0, size),
            n: size,
            cfg: 0,
            scale: 1.0,
            zero: true,
        });
        let dst = tiled_dram(DramAddr::new(u.w_addr + first * 2), term, 2);
        c.store(dst, at(Buf::FpW, 0, size), u64::from(size) * 2);
    });
}
