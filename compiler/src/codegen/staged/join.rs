//! Joins of a staged program: `add` layers (SEW-ResNet's residual joins), and the average
//! pooling that may read one.
//!
//! Forward, a join is cut into chunks of `chunk` elements of a sample-step, spread round
//! robin over the cores (one loop over `r4`, see [`Owned`]). For every sample and timestep a
//! core zeroes an FP16 sum in `fp.mem`, loads the chunk of each input (spikes into `fp.in`,
//! FP16 values into `fp.mem`) and adds it with `fp.sum`, in argument order: `(0 + a) + b`,
//! exact for the small integers that sums of spikes are. The sum goes to DRAM
//! (`<add>.sum`, `[B][T][n]` FP16) for the layers that read it. A pooled join instead
//! averages each window of `k x k` consecutive elements (a window spans whole rows) with
//! one multi-row `fp.linear` whose weights are `fl(1/k^2)`, into `<pool>.pooled`.
//!
//! Backward, a join passes its error to each input unchanged, which costs nothing: the
//! inputs share the join's error region (see `dag.rs`). Only a pooled join has work: it
//! spreads the error of the means over their windows (`bp.pool`, `dy / k^2` each) into the
//! region, which no reader has written before it.

use super::Owned;
use super::plan::{Join, JoinPool, Plan, Src};
use super::tiles::{Caps, divisor};
use crate::codegen::CodegenError;
use crate::codegen::alloc::Dram;
use crate::codegen::emit::{B, Code, T, at, h16, stride};
use crate::graph::{LayerGraph, LayerId};
use isa::{Buf, DramAddr, Instr, PoolKind};

/// Plans the join of `add` (and its pooling `pool`, window `k`) over the values `inputs`,
/// for `bt` sample-steps: its chunk and DRAM tensors (the error regions come later).
pub(super) fn plan(
    graph: &LayerGraph,
    (add, pool): (LayerId, Option<(LayerId, u32)>),
    inputs: Vec<Src>,
    (bt, caps): (u32, &Caps),
    dram: &mut Dram,
) -> Result<Join, CodegenError> {
    let layer = graph.layer(add);
    let n = u32::try_from(layer.numel()).unwrap_or(u32::MAX);
    let kk = pool.map_or(1, |(_, k)| k * k);
    let chunk = chunk(n, kk, &inputs, caps).ok_or_else(|| CodegenError::Unsupported {
        layer: layer.name.clone(),
        what: "this `add` in a staged program: no chunk of its elements fits `fp.mem`, `fp.in` and `fp.psum`".into(),
    })?;
    let bt = u64::from(bt);
    let sum = match pool {
        None => Some(dram.tensor(&format!("{}.sum", layer.name), bt * u64::from(n) * 2)?),
        Some(_) => None,
    };
    let pool = match pool {
        Some((p, k)) => {
            let out = dram.tensor(&format!("{}.pooled", graph.layer(p).name), bt * u64::from(n / kk) * 2)?;
            Some(JoinPool { k, out, ds: 0 })
        }
        None => None,
    };
    Ok(Join { name: layer.name.clone(), inputs, n, chunk, sum, pool, ds: 0, cores: super::Cores::default() })
}

/// The chunk of a join of `n` elements (windows of `kk`): the largest that fits the buffers
/// and still gives every core one, else the smallest (the most chunks) that fits.
fn chunk(n: u32, kk: u32, inputs: &[Src], caps: &Caps) -> Option<u32> {
    let dense = inputs.iter().filter(|s| s.dense).count() as u64;
    let spikes = inputs.len() as u64 - dense;
    let fits = |e: u32| {
        let e64 = u64::from(e);
        // Spikes move in whole bytes; a chunk holds whole windows.
        let ok = e % 8 == 0 && e % kk == 0;
        let bp = kk == 1 || (e64 <= caps.delta && e64 / u64::from(kk) <= caps.delta);
        ok && e64 * (1 + dense) <= caps.mem && e64 * spikes <= caps.fpin && e64 / u64::from(kk) <= caps.psum && bp
    };
    divisor(n, u64::from(n) / caps.cores.max(1), fits).or_else(|| (1..=n).find(|&e| n % e == 0 && fits(e)))
}

/// `base + tile * per_tile` of sample `r1`, timestep `r0` in a `[B][T][row]` tensor.
fn chunk_addr(p: &Plan, o: &Owned, base: u32, per_tile: u32, row: u32) -> DramAddr {
    let a = o.addr(base, per_tile);
    a.with(B, stride(u64::from(p.t * row))).with(T, stride(u64::from(row)))
}

/// The forward chunks of join `j` that `core` owns.
pub(super) fn fp(p: &Plan, j: &Join, core: u16, c: &mut Code) {
    let mut r = super::Bump::default();
    let e = j.chunk;
    let first = r.take(Buf::FpMem, e);
    let sum = at(Buf::FpMem, first, e);
    let staged: Vec<_> = j
        .inputs
        .iter()
        .map(|s| {
            let buf = if s.dense { Buf::FpMem } else { Buf::FpIn };
            at(buf, r.take(buf, e), e)
        })
        .collect();
    let kk = j.pool.as_ref().map_or(1, |q| q.k * q.k);
    let (w, means) = (r.take(Buf::FpW, kk), r.take(Buf::FpPsum, e / kk));
    if j.pool.is_some() {
        c.fill(at(Buf::FpW, w, kk), 1.0 / kk as f32);
    }
    Owned::new(j.n / e, j.cores.seat(core)).emit(c, |c, o| {
        c.open(B, p.b);
        c.open(T, p.t);
        c.fill(sum.clone(), 0.0);
        for (src, dst) in j.inputs.iter().zip(&staged) {
            c.load(dst.clone(), chunk_addr(p, o, src.addr, src.bytes(e), src.row_bytes), u64::from(src.bytes(e)));
            c.push(Instr::FpSum { dst: sum.clone(), src: dst.clone() });
        }
        if let Some(addr) = j.sum {
            c.store(chunk_addr(p, o, addr, e * 2, j.n * 2), sum.clone(), u64::from(e) * 2);
        }
        if let Some(q) = &j.pool {
            let out = at(Buf::FpPsum, means, e / kk);
            c.push(Instr::FpLinear {
                spk: at(Buf::FpMem, first, kk),
                w: at(Buf::FpW, w, kk),
                out: at(Buf::FpPsum, means, 1),
                k: h16(kk),
                n: 1,
                rows: h16(e / kk),
                spk_stride: h16(kk),
                out_stride: 1,
                acc: false,
                skip: false,
            });
            let row = j.n / kk * 2;
            c.store(chunk_addr(p, o, q.out, e / kk * 2, row), out, u64::from(e / kk) * 2);
        }
        c.close(T);
        c.close(B);
    });
}

/// The backward chunks of a pooled join that `core` owns: `bp.pool` spreads the error of
/// each mean over its window, into the error region of the sum.
pub(super) fn bp(p: &Plan, j: &Join, core: u16, c: &mut Code) {
    let Some(q) = &j.pool else { return };
    let (e, kk) = (j.chunk, q.k * q.k);
    let mut r = super::Bump::default();
    let (dy, dx) = (at(Buf::BpErr, r.take(Buf::BpErr, e / kk), e / kk), at(Buf::BpDelta, r.take(Buf::BpDelta, e), e));
    Owned::new(j.n / e, j.cores.seat(core)).emit(c, |c, o| {
        c.open(B, p.b);
        c.open(T, p.t);
        c.load(dy.clone(), chunk_addr(p, o, q.ds, e / kk * 2, j.n / kk * 2), u64::from(e / kk) * 2);
        let (ch, k) = (h16(e / kk), h16(q.k));
        let (dy, dx) = (dy.clone(), dx.clone());
        c.push(Instr::BpPool {
            kind: PoolKind::Avg,
            dy,
            dx: dx.clone(),
            x: None,
            c: ch,
            ih: k,
            iw: k,
            k: q.k as u8,
            stride: q.k as u8,
            pad: 0,
        });
        c.store(chunk_addr(p, o, j.ds, e * 2, j.n * 2), dx, u64::from(e) * 2);
        c.close(T);
        c.close(B);
    });
}
