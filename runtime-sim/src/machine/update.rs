//! `wg.update` on the buffers themselves, for the common layout of its operands: FP32
//! masters and optimizer state side by side in one buffer, the gradient and the FP16
//! weights each in a buffer of its own, no two ranges overlapping.
//!
//! The general handler copies every operand out, updates the copies and writes them back in
//! a fixed order, which also settles what overlapping operands mean. When nothing overlaps
//! the order of the writes cannot matter, so updating in place gives the same bits without
//! the copies.

use super::buffers::{BufData, Span};
use super::exec::Exec;
use super::state::OptSlot;
use super::wg::UpdateOps;
use crate::fp::Storage;
use crate::kernels::update::{Adam, Momentum, adam, scaled_grad, sgd_momentum};
use isa::OptKind;

/// The resolved ranges of an in-place update.
struct InPlace {
    grad: Span,
    master: Span,
    state: Span,
    w16: Span,
}

impl<S: Storage> Exec<'_, S> {
    /// Updates in place and returns the optimizer's passes per element, or returns `None`
    /// without changing anything when the operands are not laid out as the module says (or
    /// are malformed: the general handler then reports it). The operand lengths were checked.
    pub(crate) fn update_in_place(&mut self, o: &UpdateOps<'_>, n: usize, slot: OptSlot, scale: f32) -> Option<u64> {
        let p = self.in_place_spans(o, n, slot.kind)?;
        let mut g = self.pooled_zeros(n);
        let mut opt = std::mem::replace(&mut self.st.bufs[p.master.slot], BufData::Word(Vec::new()));
        let mut weights = std::mem::replace(&mut self.st.bufs[p.w16.slot], BufData::Word(Vec::new()));
        let passes = match (self.st.bufs[p.grad.slot].as_word(), opt.as_word_mut(), weights.as_half_mut()) {
            (Some(grad), Some(opt), Some(w16)) => {
                let (master, state) = split_two(opt, p.master, p.state);
                Some(update_slices(
                    slot,
                    scale,
                    &grad[p.grad.range()],
                    (master, state),
                    &mut g,
                    &mut w16[p.w16.range()],
                ))
            }
            _ => None,
        };
        self.st.bufs[p.master.slot] = opt;
        self.st.bufs[p.w16.slot] = weights;
        self.recycle([g]);
        passes
    }

    /// The four ranges, if they are in the layout this path handles: `master` and `state` in
    /// one 32-bit buffer and apart, `grad` in another 32-bit buffer, `w16` in a 16-bit one,
    /// and `state` as long as the optimizer needs.
    fn in_place_spans(&self, o: &UpdateOps<'_>, n: usize, kind: OptKind) -> Option<InPlace> {
        let a = o.state.as_ref()?;
        let want = match kind {
            OptKind::Sgd => n,
            OptKind::Adam => 2 * n,
        };
        let (grad, master) = (self.span("grad", o.grad).ok()?, self.span("master", o.master).ok()?);
        let (state, w16) = (self.span("state", a).ok()?, self.span("w16", o.w16).ok()?);
        let words = [grad.slot, master.slot].iter().all(|&s| matches!(self.st.bufs[s], BufData::Word(_)));
        let half = self.st.bufs[w16.slot].as_half().is_some();
        let apart = master.start + master.len <= state.start || state.start + state.len <= master.start;
        let ok = words && half && state.len == want && state.slot == master.slot && grad.slot != master.slot && apart;
        ok.then_some(InPlace { grad, master, state, w16 })
    }
}

/// The disjoint ranges `a` and `b` of one buffer, both mutable.
fn split_two(v: &mut [f32], a: Span, b: Span) -> (&mut [f32], &mut [f32]) {
    if a.start < b.start {
        let (lo, hi) = v.split_at_mut(b.start);
        (&mut lo[a.range()], &mut hi[..b.len])
    } else {
        let (lo, hi) = v.split_at_mut(a.start);
        (&mut hi[..a.len], &mut lo[b.range()])
    }
}

/// The optimizer step on slices, as the general handler runs it on its copies: the scaled
/// gradient (with Adam's weight decay) rounded to storage into `g`, then the update of the
/// masters, the state and the FP16 weights. Returns the passes per element.
fn update_slices<S: Storage>(
    slot: OptSlot,
    scale: f32,
    grad: &[f32],
    (master, state): (&mut [f32], &mut [f32]),
    g: &mut [S],
    w16: &mut [S],
) -> u64 {
    let wd = if slot.kind == OptKind::Adam { slot.wd } else { 0.0 };
    scaled_grad(grad, master, (scale, wd), g);
    match slot.kind {
        OptKind::Sgd => {
            let p = Momentum { lr: slot.lr, momentum: slot.m, weight_decay: slot.wd };
            sgd_momentum(&p, g, master, state, w16);
            2
        }
        OptKind::Adam => {
            let p = Adam { lr: slot.lr, beta1: slot.m, beta2: slot.beta2, eps: slot.eps };
            let (m, v) = state.split_at_mut(g.len());
            adam(&p, slot.step, g, master, m, v, w16);
            4
        }
    }
}
