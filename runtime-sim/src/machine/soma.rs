//! The soma instructions in place: `fp.lif` and `bp.soma` read their inputs where they are
//! and update their outputs inside their buffers, when no output can change what the
//! instruction reads.
//!
//! The handlers in `fp.rs` and `bp.rs` copy every input before they write anything; for a
//! soma of a few dozen neurons those copies, and the pooled vectors they need, cost more
//! than the arithmetic. The in-place paths here run the same kernels on the same values,
//! so they give the same bits, provided that
//!
//! - every range lies inside a buffer of its width (any doubt sends the instruction down
//!   the copying path, which reports the error as before),
//! - no input that the kernel reads shares a buffer with `v`/`h` (forward) or `dv`/`dh`
//!   (backward), and the two outputs of one buffer do not overlap,
//! - the bit outputs are written in the copying path's order after everything they could
//!   overwrite was read: spikes, then the mask (forward); the nonzero bitmap last
//!   (backward).
//!
//! The outputs leave the buffer table while the kernel writes them, as in `with_taken`,
//! and always go back.
//!
//! A multi-row soma (`rows` > 1) is checked once on its whole ranges (`rows*n` elements)
//! and then walks its rows inside one call, in the order separate instructions would run
//! them: inputs that are apart from the outputs over all rows are apart in every row, and
//! the bit outputs of each row are still written in the order above.

use super::bp::SomaOps;
use super::bp::{Saved, lif_backward};
use super::buffers::{BufData, Span};
use super::exec::Exec;
use super::fp::LifOps;
use crate::fp::Storage;
use crate::kernels::soma::{LifParams, lif_forward_step, surrogate_mask};
use crate::spikes::SpikeBits;
use isa::Access;

/// Where the operands of an in-place `fp.lif` are.
struct LifPlace {
    x: Span,
    v: Span,
    h: Option<Span>,
    spk: Option<Span>,
    mask: Option<Span>,
}

/// Where the operands of an in-place `bp.soma` are.
struct SomaPlace {
    ds: Span,
    h: Option<Span>,
    mask: Option<Span>,
    spk: Option<Span>,
    dv: Span,
    dh: Span,
    nz: Option<Span>,
}

/// Whether two spans share elements.
fn overlap(a: Span, b: Span) -> bool {
    a.slot == b.slot && a.start < b.start + b.len && b.start < a.start + a.len
}

/// Mutable views of two spans of one buffer that do not overlap, in the order given.
fn split_two<S>(d: &mut [S], a: Span, b: Span) -> Option<(&mut [S], &mut [S])> {
    if a.start + a.len <= b.start {
        let (lo, hi) = d.split_at_mut(b.start);
        Some((&mut lo[a.range()], &mut hi[..b.len]))
    } else if b.start + b.len <= a.start {
        let (lo, hi) = d.split_at_mut(a.start);
        Some((&mut hi[..a.len], &mut lo[b.range()]))
    } else {
        None
    }
}

/// The two 16-bit outputs of a soma: `a` in buffer `ab`, `b` in buffer `bb` when it was
/// taken out on its own, else in `ab` too (apart from `a`), else (`b` not stored) `tmp`.
fn two_outputs<'a, S: Storage>(
    ab: &'a mut BufData<S>,
    bb: Option<&'a mut BufData<S>>,
    (a, b): (Span, Option<Span>),
    tmp: &'a mut [S],
) -> Option<(&'a mut [S], &'a mut [S])> {
    let ad = ab.as_half_mut()?;
    match (b, bb) {
        (None, _) => Some((&mut ad[a.range()], tmp)),
        (Some(b), Some(bb)) => Some((&mut ad[a.range()], &mut bb.as_half_mut()?[b.range()])),
        (Some(b), None) => split_two(ad, a, b),
    }
}

/// Packs whether each of up to 64 values is non-zero (−0 is zero, a NaN is not), value
/// `j` in bit `j`. Widened to f32 the test is exactly that of `x != 0` in storage, and it
/// is a vector compare where the stored type's own `!=` is a branchy function.
#[inline(always)]
fn nonzero_word<S: Storage>(v: &[S]) -> u64 {
    let mut w = 0u64;
    for (j, x) in v.iter().enumerate() {
        w |= u64::from(x.to_f32() != 0.0) << j;
    }
    w
}

impl<S: Storage> Exec<'_, S> {
    /// Takes buffer `slot` out of the table (put it back with [`put_slot`](Self::put_slot)).
    fn take_slot(&mut self, slot: usize) -> BufData<S> {
        std::mem::replace(&mut self.st.bufs[slot], BufData::Word(Vec::new()))
    }

    fn put_slot(&mut self, slot: usize, data: BufData<S>) {
        self.st.bufs[slot] = data;
    }

    /// The span of `a` if it lies inside a buffer of `bits`-bit elements.
    fn span_of(&self, name: &str, a: &Access, bits: u32) -> Option<Span> {
        self.span(name, a).ok().filter(|sp| self.st.bufs[sp.slot].elem_bits() == bits)
    }

    /// The spans of an `fp.lif` that can run in place: no bias (which takes a copy of `x`),
    /// every range inside a buffer of its width, `x` outside the buffer of `v` and `h`, and
    /// `v` and `h` apart.
    fn lif_place(&self, o: &LifOps<'_>) -> Option<LifPlace> {
        if !self.st.soma_in_place || o.bias.is_some() {
            return None;
        }
        let (x, v) = (self.span_of("x", o.x, 16)?, self.span_of("v", o.v, 16)?);
        let opt = |name, a: &Option<Access>, bits| a.as_ref().map(|a| self.span_of(name, a, bits).ok_or(()));
        let h = opt("h", o.h, 16).transpose().ok()?;
        let spk = opt("spk", o.spk, 1).transpose().ok()?;
        let mask = opt("mask", o.mask, 1).transpose().ok()?;
        let apart = x.slot != v.slot && h.is_none_or(|h| h.slot != x.slot && !overlap(h, v));
        apart.then_some(LifPlace { x, v, h, spk, mask })
    }

    /// `rows` LIF timesteps in place, if the operands allow it (see the module doc); returns
    /// the number of spikes, or `None`, having changed nothing, for the copying path. The
    /// operands were resolved once for all rows; row `r` is `r*n` elements into each row
    /// operand, and `v` carries the membrane from row to row.
    pub(crate) fn lif_in_place(&mut self, p: &LifParams, o: &LifOps<'_>, rows: usize) -> Option<usize> {
        let at = self.lif_place(o)?;
        let n = at.v.len;
        let mut h_tmp = if at.h.is_none() { self.pooled_zeros(n) } else { Vec::new() };
        let mut s_tmp = if at.spk.is_none() { self.pooled_bits(n) } else { SpikeBits::default() };
        let mut vb = self.take_slot(at.v.slot);
        let mut hb = at.h.filter(|h| h.slot != at.v.slot).map(|h| self.take_slot(h.slot));
        let mut sb = at.spk.map(|s| self.take_slot(s.slot));
        let fired = (|| {
            let (v, hs) = two_outputs(&mut vb, hb.as_mut(), (at.v, at.h), &mut h_tmp)?;
            let mut fired = 0;
            for r in 0..rows {
                // Stored rows move on by `n`; the scratch row (nothing stored) stays put.
                let step = |stored: bool| if stored { r * n } else { 0 };
                let x = &self.st.bufs[at.x.slot].as_half()?[at.x.start + r * n..][..n];
                let h = &mut hs[step(at.h.is_some())..][..n];
                let (bits, off) = match (sb.as_mut(), at.spk) {
                    (Some(b), Some(s)) => (b.as_bits_mut()?, s.start + r * n),
                    _ => (&mut s_tmp, 0),
                };
                fired += lif_forward_step(p, x, v, h, bits, off);
                if let Some(m) = at.mask {
                    // The mask may share the spikes' buffer, which is out of the table. Its
                    // width was checked, so the kernel's writes are never left half done.
                    let target = match (at.spk, sb.as_mut()) {
                        (Some(s), Some(b)) if s.slot == m.slot => b,
                        _ => &mut self.st.bufs[m.slot],
                    };
                    if let Some(bits) = target.as_bits_mut() {
                        surrogate_mask(p, h, bits, m.start + r * n);
                    }
                }
            }
            Some(fired)
        })();
        self.put_slot(at.v.slot, vb);
        if let (Some(h), Some(d)) = (at.h, hb) {
            self.put_slot(h.slot, d);
        }
        if let (Some(s), Some(d)) = (at.spk, sb) {
            self.put_slot(s.slot, d);
        }
        if at.h.is_none() {
            self.recycle([h_tmp]);
        }
        if at.spk.is_none() {
            self.recycle_bits([s_tmp]);
        }
        fired
    }

    /// The spans of a firing `bp.soma` that can run in place: every range inside a buffer
    /// of its width, the 16-bit inputs `ds` and `h` outside the buffers of `dv` and `dh`,
    /// and `dv` and `dh` apart. The saved bits may share a buffer with `nz`, which is
    /// written after they were read.
    fn soma_place(&self, o: &SomaOps<'_>) -> Option<SomaPlace> {
        if !self.st.soma_in_place {
            return None;
        }
        let (ds, dv, dh) =
            (self.span_of("ds", o.ds, 16)?, self.span_of("dv", o.dv, 16)?, self.span_of("dh", o.dh, 16)?);
        let opt = |name, a: &Option<Access>, bits| a.as_ref().map(|a| self.span_of(name, a, bits).ok_or(()));
        let h = opt("h", o.h, 16).transpose().ok()?;
        let mask = opt("mask", o.mask, 1).transpose().ok()?;
        let spk = opt("spk", o.spk, 1).transpose().ok()?;
        let nz = opt("nz", o.nz, 1).transpose().ok()?;
        let mut reads = [Some(ds), h].into_iter().flatten();
        let apart = reads.all(|r| r.slot != dv.slot && r.slot != dh.slot) && !overlap(dv, dh);
        apart.then_some(SomaPlace { ds, h, mask, spk, dv, dh, nz })
    }

    /// `rows` firing gradient-soma timesteps in place, last row first, if the operands allow
    /// it (see the module doc): the number of non-zero errors, the kernel's complaint about
    /// the saved operands (made before it wrote anything), or `None`, having changed
    /// nothing, for the copying path. Row `r` is `r*n` elements into each row operand (`ds`
    /// of `n` elements serves every row), and `dv` carries the gradient from row to row.
    pub(crate) fn soma_in_place(
        &mut self,
        p: &LifParams,
        o: &SomaOps<'_>,
        rows: usize,
    ) -> Option<Result<usize, String>> {
        let at = self.soma_place(o)?;
        let n = at.dv.len;
        let mut vb = self.take_slot(at.dv.slot);
        let mut hb = (at.dh.slot != at.dv.slot).then(|| self.take_slot(at.dh.slot));
        let done = (|| {
            let (gv, ghs) = two_outputs(&mut vb, hb.as_mut(), (at.dv, Some(at.dh)), &mut [])?;
            let ds_step = if at.ds.len == n { 0 } else { n };
            let mut nonzero = 0;
            for r in (0..rows).rev() {
                let bufs = &self.st.bufs;
                let ds = &bufs[at.ds.slot].as_half()?[at.ds.start + r * ds_step..][..n];
                let h = match at.h {
                    Some(h) => Some(&bufs[h.slot].as_half()?[h.start + r * n..][..n]),
                    None => None,
                };
                let bits = |sp: Option<Span>| match sp {
                    Some(s) => bufs[s.slot].as_bits().map(|b| Some(b.slice(s.start + r * n, n))),
                    None => Some(None),
                };
                let saved = Saved { h, mask: bits(at.mask)?, spk: bits(at.spk)? };
                let gh = &mut ghs[r * n..][..n];
                if let Err(m) = lif_backward(p, ds, &saved, gv, gh) {
                    return Some(Err(m));
                }
                // The nonzero bitmap is written last, as the copying path writes it, after the
                // saved bits that may share its buffer were read.
                let nz = at.nz.and_then(|z| self.st.bufs[z.slot].as_bits_mut().map(|b| (b, z.start + r * n)));
                nonzero += mark_nonzero(gh, nz);
            }
            Some(Ok(nonzero))
        })();
        self.put_slot(at.dv.slot, vb);
        if let Some(d) = hb {
            self.put_slot(at.dh.slot, d);
        }
        done
    }
}

/// Counts the non-zero values of `dh` and, when asked, writes whether each is non-zero to
/// the bits from `at` of `nz`, a word at a time.
fn mark_nonzero<S: Storage>(dh: &[S], mut nz: Option<(&mut SpikeBits, usize)>) -> usize {
    let mut count = 0;
    for (k, c) in dh.chunks(64).enumerate() {
        // A block of 16 (the usual soma) is compiled with its length known.
        let w = if c.len() == 16 { nonzero_word(&c[..16]) } else { nonzero_word(c) };
        count += w.count_ones() as usize;
        if let Some((bits, at)) = nz.as_mut() {
            bits.write_bits(*at + 64 * k, &[w], c.len());
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::mark_nonzero;
    use crate::spikes::SpikeBits;
    use half::f16;

    /// The bitmap of `bp.soma` marks exactly the values that differ from zero in storage
    /// (−0 is zero; NaN, infinities and subnormals are not), for a block of 16 and others.
    #[test]
    fn nonzero_bitmap_follows_storage_inequality() {
        let specials = [0.0, -0.0, f32::NAN, f32::INFINITY, -1.0, 6e-8, -6e-8, 1e-9, 0.5];
        for n in [16usize, 20, 70] {
            let dh: Vec<f16> = (0..n).map(|i| f16::from_f32(specials[(i * 7) % specials.len()])).collect();
            let mut nz = SpikeBits::zeros(n + 3);
            let count = mark_nonzero(&dh, Some((&mut nz, 3)));
            let want: Vec<bool> = dh.iter().map(|x| *x != f16::ZERO).collect();
            assert_eq!(count, want.iter().filter(|&&b| b).count());
            assert_eq!((0..n).map(|i| nz.get(3 + i)).collect::<Vec<_>>(), want);
        }
    }
}
