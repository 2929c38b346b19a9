//! The pooling pass of a staged program: pooling whose windows do not tile the map
//! (a stride other than the window, padding, or a window that does not divide the map, such
//! as torchvision's `maxpool(kernel = 3, stride = 2, padding = 1)` stem).
//!
//! A conv tile covers a block of output rows, and windows that tile the map pool inside the
//! tile (`fp.rs`, `bp.rs`). Overlapping or padded windows cannot: a pooled row near a
//! block's edge needs conv rows of the neighbouring block (a halo), and a block in the
//! middle of the map must not be padded at all, which `fp.pool`'s one padding for all four
//! sides cannot say. Rather than recompute halo rows of conv and soma in both tiles, the
//! pooling runs as a pass of its own over *whole channel maps*, which the conv tiles have
//! already stored to DRAM:
//!
//! - **Forward**, after the conv layer's tiles and a barrier: each core takes its groups of
//!   `cp` channels (round robin) and, for every sample and timestep, loads their spike maps,
//!   pools them with one `fp.pool` and stores the pooled map to the unit's `pooled` tensor.
//! - **Backward**, before the gradient soma and followed by a barrier: each core loads the
//!   pooled map's gradient (and, for max pooling, the spikes) of its groups, spreads it with
//!   one `bp.pool`, and stores dL/dS of the whole maps into the unit's dL/dH tensor. The
//!   soma tiles then read dL/dS from there and overwrite each slab with dL/dH once read (a
//!   tile reads and writes only its own slabs), so no DRAM is needed beyond what the unit
//!   already has.
//!
//! Since `bp.pool` sees whole maps, every input gradient is summed over all its windows in
//! the same order as the resident generator's, so both programs agree bit for bit. Groups
//! are chosen in `tiles::pool_group`; a map too large for the buffers is a `CodegenError`.

use super::plan::{Plan, Unit};
use super::tiles::ConvGeom;
use super::{Bump, bt_addr, owned};
use crate::codegen::emit::{B, Code, T, at};
use crate::codegen::pooling::Pooling;
use isa::Buf;

/// Element counts of one group: its spike maps and its pooled maps.
fn sizes(g: &ConvGeom, pool: &Pooling, cp: u32) -> (u32, u32) {
    (cp * g.oh * g.ow, pool.len(cp))
}

/// The forward pass of the groups `core` owns, for every sample and timestep.
pub(super) fn forward(p: &Plan, u: &Unit, g: &ConvGeom, (pool, cp): (&Pooling, u32), core: u16, c: &mut Code) {
    let Some(pooled) = u.pooled else { return };
    let (maps, out) = sizes(g, pool, cp);
    let mut r = Bump::default();
    let spk = at(Buf::FpSpk, r.take(Buf::FpSpk, maps), maps);
    let (obuf, bits) = if u.pooled_bits { (Buf::FpSpk, 1) } else { (Buf::FpMem, 16) };
    let dst = at(obuf, r.take(obuf, out), out);
    for grp in owned(g.cout / cp, u.cores.seat(core)) {
        c.open(B, p.b);
        c.open(T, p.t);
        c.load(spk.clone(), bt_addr(p, u.spikes + grp * maps / 8, u.n / 8), u64::from(maps / 8));
        c.push(pool.forward(spk.clone(), dst.clone(), (cp, g.oh, g.ow)));
        let row = u.out_len() * bits / 8;
        c.store(bt_addr(p, pooled + grp * out * bits / 8, row), dst.clone(), u64::from(out * bits / 8));
        c.close(T);
        c.close(B);
    }
}

/// The backward pass of the groups `core` owns: dL/dS of whole maps into the dL/dH tensor.
pub(super) fn backward(p: &Plan, u: &Unit, g: &ConvGeom, (pool, cp): (&Pooling, u32), core: u16, c: &mut Code) {
    let (maps, out) = sizes(g, pool, cp);
    let mut r = Bump::default();
    let dy = at(Buf::BpDelta, r.take(Buf::BpDelta, out), out);
    let dx = at(Buf::BpDelta, r.take(Buf::BpDelta, maps), maps);
    let spk = at(Buf::FpSpk, r.take(Buf::FpSpk, maps), maps);
    let max = pool.kind == isa::PoolKind::Max;
    for grp in owned(g.cout / cp, u.cores.seat(core)) {
        c.open(B, p.b);
        c.open(T, p.t);
        c.load(dy.clone(), bt_addr(p, u.ds + grp * out * 2, u.out_len() * 2), u64::from(out) * 2);
        if max {
            c.load(spk.clone(), bt_addr(p, u.spikes + grp * maps / 8, u.n / 8), u64::from(maps / 8));
        }
        c.push(pool.backward(dy.clone(), dx.clone(), spk.clone(), (cp, g.oh, g.ow)));
        c.store(bt_addr(p, u.dh + grp * maps * 2, u.n * 2), dx.clone(), u64::from(maps) * 2);
        c.close(T);
        c.close(B);
    }
}
