//! The copying path of a multi-row soma: `fp.lif` and `bp.soma` with `rows` > 1 that cannot
//! run in place run as that many single-row instructions, each on its own row.
//!
//! Every row operand is resolved whole first (all `rows*n` elements inside its buffer), so
//! a bad range fails the instruction before any row is written, and each row then becomes
//! an access of its own with the registers already applied. The single-row handlers in
//! `fp.rs` and `bp.rs` run unchanged on those, which makes the result, row by row, that of
//! separate instructions however the operands overlap. The in-place path (`soma.rs`) is the
//! fast one; this one serves readouts, biased somas and overlapping layouts.

use super::SimError;
use super::bp::SomaOps;
use super::buffers::Span;
use super::exec::Exec;
use super::fp::LifOps;
use crate::fp::Storage;
use crate::kernels::soma::LifParams;
use isa::Access;

/// Row `r` of an operand resolved to `sp`, as an access of `n` elements from `sp.start +
/// r*n` without registers. A start beyond `u32` (which no buffer reaches) saturates, and
/// the row's own bounds check then reports it.
fn row_access(a: &Access, sp: Span, r: usize, n: usize) -> Access {
    let off = u32::try_from(sp.start + r * n).unwrap_or(u32::MAX);
    Access { buf: a.buf, off, len: u32::try_from(n).unwrap_or(u32::MAX), terms: Vec::new() }
}

/// An optional operand resolved whole, for [`row_access`].
type Resolved<'a> = Option<(&'a Access, Span)>;

impl<S: Storage> Exec<'_, S> {
    fn resolve<'a>(&self, name: &str, a: Option<&'a Access>) -> Result<Resolved<'a>, SimError> {
        a.map(|a| self.span(name, a).map(|sp| (a, sp))).transpose()
    }

    /// `fp.lif` on copies, row by row; returns the number of spikes of all rows.
    pub(crate) fn lif_rows_copied(
        &mut self,
        p: &LifParams,
        o: &LifOps<'_>,
        (n, rows): (usize, usize),
        fire: bool,
    ) -> Result<usize, SimError> {
        if rows == 1 {
            return self.lif_copied(p, o, n, fire);
        }
        let x = (o.x, self.span("x", o.x)?);
        let (h, spk, mask) = (
            self.resolve("h", o.h.as_ref())?,
            self.resolve("spk", o.spk.as_ref())?,
            self.resolve("mask", o.mask.as_ref())?,
        );
        let row = |a: Resolved<'_>, r| a.map(|(a, sp)| row_access(a, sp, r, n));
        let mut fired = 0;
        for r in 0..rows {
            let (xr, hr, sr, mr) = (row_access(x.0, x.1, r, n), row(h, r), row(spk, r), row(mask, r));
            let ops = LifOps { x: &xr, bias: o.bias, v: o.v, h: &hr, spk: &sr, mask: &mr };
            fired += self.lif_copied(p, &ops, n, fire)?;
        }
        Ok(fired)
    }

    /// `bp.soma` on copies, row by row from the last; returns the number of non-zero errors
    /// of all rows. A `ds` of `n` elements serves every row.
    pub(crate) fn soma_rows_copied(
        &mut self,
        p: &LifParams,
        o: &SomaOps<'_>,
        (n, rows): (usize, usize),
        fire: bool,
    ) -> Result<usize, SimError> {
        if rows == 1 {
            return self.soma_copied(p, o, n, fire);
        }
        let ds = (o.ds, self.span("ds", o.ds)?);
        let dh = (o.dh, self.span("dh", o.dh)?);
        let (h, mask) = (self.resolve("h", o.h.as_ref())?, self.resolve("mask", o.mask.as_ref())?);
        let (spk, nz) = (self.resolve("spk", o.spk.as_ref())?, self.resolve("nz", o.nz.as_ref())?);
        let shared = o.ds.len as usize == n;
        let row = |a: Resolved<'_>, r| a.map(|(a, sp)| row_access(a, sp, r, n));
        let mut nonzero = 0;
        for r in (0..rows).rev() {
            let dsr = if shared { o.ds.clone() } else { row_access(ds.0, ds.1, r, n) };
            let dhr = row_access(dh.0, dh.1, r, n);
            let (hr, mr, sr, zr) = (row(h, r), row(mask, r), row(spk, r), row(nz, r));
            let ops = SomaOps { ds: &dsr, h: &hr, mask: &mr, spk: &sr, dv: o.dv, dh: &dhr, nz: &zr };
            nonzero += self.soma_copied(p, &ops, n, fire)?;
        }
        Ok(nonzero)
    }
}
