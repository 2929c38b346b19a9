//! One soma instruction for all timesteps of a sample.
//!
//! The generators write the soma of timestep `t` as the body of a loop over `t`, its row
//! operands (`x`, `h`, `spk`, `mask`; backward `ds`, `h`, `mask`, `spk`, `dh`, `nz`) moving
//! by `n` elements a step: forwards for `fp.lif`, backwards for `bp.soma`, which runs in
//! reverse time. Where every row operand moves by exactly that much, a sample's rows are
//! contiguous and the loop is one multi-row instruction (`rows = t`) whose row operands span
//! all `t*n` elements from timestep 0. The carried state (`v`, `dv`) and the bias must stay
//! put; so may `bp.soma`'s `ds`, which then is one error for every timestep (a rate loss's
//! gradient) and keeps its `n` elements.
//!
//! The rewrite is only right where the loop holds nothing else that the soma reads or
//! that reads the soma's state within a timestep (a conv writing the same partial sums each
//! step, pooling backward into a fixed `ds`, a store of `v` per timestep); callers apply it
//! to loops that hold the soma alone, or the soma and reads of its row outputs.

use super::emit::Code;
use isa::{Access, Instr, Reg};

/// Emits `soma` for each of `t` timesteps (a loop over `r`), each followed by what `rest`
/// emits, which may only read that timestep's row outputs of the soma (spike sums): one
/// multi-row soma and then a loop over the rest alone where [`over_time`] allows, else one
/// loop over both as before. `per_step` keeps the loop regardless, for bodies that need the
/// state of each timestep (a readout's membrane sum, parity stores of the membrane).
pub(super) fn emit_over_time(
    c: &mut Code,
    (r, t): (Reg, u32),
    soma: Instr,
    per_step: bool,
    rest: impl FnOnce(&mut Code),
) {
    let mut body = Code::default();
    rest(&mut body);
    match over_time(&soma, r, t).filter(|_| !per_step) {
        Some(all) => {
            c.push(all);
            if !body.0.is_empty() {
                c.open(r, t);
                body.0.into_iter().for_each(|i| c.push(i));
                c.close(r);
            }
        }
        None => {
            c.open(r, t);
            c.push(soma);
            body.0.into_iter().for_each(|i| c.push(i));
            c.close(r);
        }
    }
}

/// How a loop over `r` of `t` steps moves a soma's row operands of `n` elements.
struct Walk {
    r: Reg,
    t: u32,
    n: u32,
    /// +1 when iteration `i` is timestep `i`, -1 when it is timestep `t-1-i` (backward).
    dir: i64,
}

impl Walk {
    /// The stride of `r` in an access (the sum of its terms in `r`).
    fn step(&self, a: &Access) -> i64 {
        a.terms.iter().filter(|x| x.reg == self.r).map(|x| i64::from(x.stride)).sum()
    }

    /// A row operand as all `t` rows from timestep 0, if it moves by `n` a step.
    fn rows(&self, a: &Access) -> Option<Access> {
        if a.len != self.n || self.step(a) != self.dir * i64::from(self.n) {
            return None;
        }
        let back = if self.dir < 0 { (self.t - 1).checked_mul(self.n)? } else { 0 };
        let mut out = a.clone();
        out.terms.retain(|x| x.reg != self.r);
        out.off = a.off.checked_sub(back)?;
        out.len = self.t.checked_mul(self.n)?;
        Some(out)
    }

    /// An operand that is the same in every timestep, if it does not move.
    fn fixed(&self, a: &Access) -> Option<Access> {
        (a.terms.iter().all(|x| x.reg != self.r)).then(|| a.clone())
    }

    /// [`rows`](Self::rows) of an optional operand: `None` if present and not contiguous.
    fn rows_opt(&self, a: &Option<Access>) -> Option<Option<Access>> {
        a.as_ref().map(|a| self.rows(a)).map_or(Some(None), |a| a.map(Some))
    }
}

/// The multi-row form of `soma`, a single-row `fp.lif` or `bp.soma` that is the body of a
/// loop over `r` of `t` timesteps, or `None` when its operands do not walk the timesteps
/// contiguously (the caller then keeps the loop).
pub(super) fn over_time(soma: &Instr, r: Reg, t: u32) -> Option<Instr> {
    let rows = u16::try_from(t).ok().filter(|&rows| rows > 1)?;
    match soma {
        Instr::FpLif { x, bias, v, h, spk, mask, n, rows: 1, cfg, fire } => {
            let w = Walk { r, t, n: *n, dir: 1 };
            let bias = match bias {
                Some(b) => Some(w.fixed(b)?),
                None => None,
            };
            Some(Instr::FpLif {
                x: w.rows(x)?,
                bias,
                v: w.fixed(v)?,
                h: w.rows_opt(h)?,
                spk: w.rows_opt(spk)?,
                mask: w.rows_opt(mask)?,
                n: *n,
                rows,
                cfg: *cfg,
                fire: *fire,
            })
        }
        Instr::BpSoma { ds, h, mask, spk, dv, dh, nz, n, rows: 1, cfg, fire } => {
            let w = Walk { r, t, n: *n, dir: -1 };
            Some(Instr::BpSoma {
                ds: w.rows(ds).or_else(|| w.fixed(ds))?,
                h: w.rows_opt(h)?,
                mask: w.rows_opt(mask)?,
                spk: w.rows_opt(spk)?,
                dv: w.fixed(dv)?,
                dh: w.rows(dh)?,
                nz: w.rows_opt(nz)?,
                n: *n,
                rows,
                cfg: *cfg,
                fire: *fire,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::over_time;
    use isa::{Access, Buf, Instr, Reg};

    fn lif(x: Access, v: Access) -> Instr {
        Instr::FpLif { x, bias: None, v, h: None, spk: None, mask: None, n: 16, rows: 1, cfg: 0, fire: true }
    }

    fn soma(ds: Access, dh: Access) -> Instr {
        let dv = Access::new(Buf::BpVgrad, 0, 16);
        Instr::BpSoma { ds, h: None, mask: None, spk: None, dv, dh, nz: None, n: 16, rows: 1, cfg: 0, fire: true }
    }

    #[test]
    fn contiguous_timesteps_become_rows() {
        let x = Access::new(Buf::FpPsum, 32, 16).with(Reg::R1, 128).with(Reg::R0, 16);
        let got = over_time(&lif(x, Access::new(Buf::FpMem, 0, 16)), Reg::R0, 8).expect("contiguous");
        assert_eq!(
            got.to_string(),
            "fp.lif x=fp.psum[32+r1*128:128] bias=- v=fp.mem[0:16] h=- spk=- mask=- n=16 rows=8 cfg=0 fire=true"
        );
        // Backward: timestep 7 first, so row 0 lies 7 rows below the first iteration's.
        let back = |base| Access::new(Buf::BpErr, base, 16).with(Reg::R0, -16);
        let got = over_time(&soma(back(112), back(112)), Reg::R0, 8).expect("contiguous");
        assert!(got.to_string().starts_with("bp.soma ds=bp.err[0:128] "), "{got}");
        // A fixed `ds` is one error for every timestep.
        let got = over_time(&soma(Access::new(Buf::BpErr, 0, 16), back(112)), Reg::R0, 8).expect("shared ds");
        assert!(got.to_string().starts_with("bp.soma ds=bp.err[0:16] "), "{got}");
    }

    #[test]
    fn other_layouts_keep_the_loop() {
        let v = || Access::new(Buf::FpMem, 0, 16);
        // Partial sums reused every timestep, a gap between rows, a moving state.
        assert!(over_time(&lif(Access::new(Buf::FpPsum, 0, 16), v()), Reg::R0, 8).is_none());
        assert!(over_time(&lif(Access::new(Buf::FpPsum, 0, 16).with(Reg::R0, 32), v()), Reg::R0, 8).is_none());
        let x = Access::new(Buf::FpPsum, 0, 16).with(Reg::R0, 16);
        assert!(over_time(&lif(x.clone(), v().with(Reg::R0, 16)), Reg::R0, 8).is_none());
        // Forward rows walked backwards, and one timestep (nothing to gain).
        let back = Access::new(Buf::FpPsum, 112, 16).with(Reg::R0, -16);
        assert!(over_time(&lif(back, v()), Reg::R0, 8).is_none());
        assert!(over_time(&lif(x, v()), Reg::R0, 1).is_none());
        // Backward rows with the row 0 before the buffer's start.
        let dh = Access::new(Buf::BpDelta, 0, 16).with(Reg::R0, -16);
        assert!(over_time(&soma(dh.clone(), dh), Reg::R0, 8).is_none());
    }
}
