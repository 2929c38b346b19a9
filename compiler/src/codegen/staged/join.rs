//! Joins of a staged program: `add` layers (SEW-ResNet's residual joins), and the average
//! pooling that may read one.
//!
//! Forward, a join is cut into chunks of `chunk` elements of a sample-step, spread round
//! robin over the cores (one loop over `r4`, see [`Owned`]). For every sample a core zeroes
//! an FP16 sum in `fp.mem`, loads the chunk of each input (spikes into `fp.in`, FP16 values
//! into `fp.mem`) and adds it with `fp.sum`, in argument order: `(0 + a) + b`, exact for
//! the small integers that sums of spikes are. It does so for all `T` timesteps at once
//! when they fit the buffers (`steps`): a strided transfer per input brings the chunk of
//! every timestep, one after the other, so a sample pays the DRAM latency once per input
//! rather than once per timestep. The sum goes to DRAM (`<add>.sum`, `[B][T][n]` FP16) for
//! the layers that read it. A pooled join instead averages each window of `k x k`
//! consecutive elements (a window spans whole rows) with one multi-row `fp.linear` whose
//! weights are `fl(1/k^2)`, into `<pool>.pooled`.
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
/// for `t` timesteps of `b` samples: its chunk, the timesteps it moves at once and its DRAM
/// tensors (the error regions come later).
pub(super) fn plan(
    graph: &LayerGraph,
    (add, pool): (LayerId, Option<(LayerId, u32)>),
    inputs: Vec<Src>,
    ((t, b), caps): ((u32, u32), &Caps),
    dram: &mut Dram,
) -> Result<Join, CodegenError> {
    let layer = graph.layer(add);
    let n = u32::try_from(layer.numel()).unwrap_or(u32::MAX);
    let kk = pool.map_or(1, |(_, k)| k * k);
    let batched = chunk(n, kk, &inputs, (caps, t)).map(|e| (e, t));
    let (chunk, steps) = batched.or_else(|| chunk(n, kk, &inputs, (caps, 1)).map(|e| (e, 1))).ok_or_else(|| {
        CodegenError::Unsupported {
            layer: layer.name.clone(),
            what: "this `add` in a staged program: no chunk of its elements fits `fp.mem`, `fp.in` and `fp.psum`"
                .into(),
        }
    })?;
    let bt = u64::from(t) * u64::from(b);
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
    Ok(Join { name: layer.name.clone(), inputs, n, chunk, steps, sum, pool, ds: 0, cores: super::Cores::default() })
}

/// The chunk of a join of `n` elements (windows of `kk`) when `steps` timesteps of it are
/// in the buffers at once: the largest that fits them and still gives every core one, else
/// the smallest (the most chunks) that fits.
fn chunk(n: u32, kk: u32, inputs: &[Src], (caps, steps): (&Caps, u32)) -> Option<u32> {
    let dense = inputs.iter().filter(|s| s.dense).count() as u64;
    let spikes = inputs.len() as u64 - dense;
    let fits = |e: u32| {
        let all = u64::from(e) * u64::from(steps);
        // Spikes move in whole bytes; a chunk holds whole windows.
        let ok = e % 8 == 0 && e % kk == 0;
        let means = all / u64::from(kk);
        let bp = kk == 1 || (all <= caps.delta && means <= caps.delta);
        ok && all * (1 + dense) <= caps.mem && all * spikes <= caps.fpin && means <= caps.psum && bp
    };
    divisor(n, u64::from(n) / caps.cores.max(1), fits).or_else(|| (1..=n).find(|&e| n % e == 0 && fits(e)))
}

/// `base + tile * per_tile` of sample `r1` (and timestep `r0` unless the join moves all
/// timesteps at once) in a `[B][T][row]` tensor.
fn chunk_addr(p: &Plan, j: &Join, o: &Owned, (base, per_tile): (u32, u32), row: u32) -> DramAddr {
    let a = o.addr(base, per_tile).with(B, stride(u64::from(p.t * row)));
    if j.steps == 1 { a.with(T, stride(u64::from(row))) } else { a }
}

/// Opens the loops over the samples and, unless the join moves all timesteps at once, the
/// timesteps.
fn open_steps(p: &Plan, j: &Join, c: &mut Code) {
    c.open(B, p.b);
    if j.steps == 1 {
        c.open(T, p.t);
    }
}

/// Closes what [`open_steps`] opened.
fn close_steps(j: &Join, c: &mut Code) {
    if j.steps == 1 {
        c.close(T);
    }
    c.close(B);
}

/// The forward chunks of join `j` that `core` owns.
pub(super) fn fp(p: &Plan, j: &Join, core: u16, c: &mut Code) {
    let mut r = super::Bump::default();
    let (e, steps) = (j.chunk, j.steps);
    let all = e * steps;
    let first = r.take(Buf::FpMem, all);
    let sum = at(Buf::FpMem, first, all);
    let staged: Vec<_> = j
        .inputs
        .iter()
        .map(|s| {
            let buf = if s.dense { Buf::FpMem } else { Buf::FpIn };
            at(buf, r.take(buf, all), all)
        })
        .collect();
    let kk = j.pool.as_ref().map_or(1, |q| q.k * q.k);
    let (w, means) = (r.take(Buf::FpW, kk), r.take(Buf::FpPsum, all / kk));
    if j.pool.is_some() {
        c.fill(at(Buf::FpW, w, kk), 1.0 / kk as f32);
    }
    Owned::new(j.n / e, j.cores.seat(core)).emit(c, |c, o| {
        open_steps(p, j, c);
        c.fill(sum.clone(), 0.0);
        for (src, dst) in j.inputs.iter().zip(&staged) {
            let from = chunk_addr(p, j, o, (src.addr, src.bytes(e)), src.row_bytes);
            c.load_rows(dst.clone(), from, (h16(steps), src.bytes(e), src.row_bytes));
            c.push(Instr::FpSum { dst: sum.clone(), src: dst.clone() });
        }
        if let Some(addr) = j.sum {
            c.store_rows(chunk_addr(p, j, o, (addr, e * 2), j.n * 2), sum.clone(), (h16(steps), e * 2, j.n * 2));
        }
        if let Some(q) = &j.pool {
            let out = at(Buf::FpPsum, means, all / kk);
            c.push(Instr::FpLinear {
                spk: at(Buf::FpMem, first, kk),
                w: at(Buf::FpW, w, kk),
                out: at(Buf::FpPsum, means, 1),
                k: h16(kk),
                n: 1,
                rows: h16(all / kk),
                spk_stride: h16(kk),
                out_stride: 1,
                acc: false,
                skip: false,
            });
            let row = j.n / kk * 2;
            c.store_rows(chunk_addr(p, j, o, (q.out, e / kk * 2), row), out, (h16(steps), e / kk * 2, row));
        }
        close_steps(j, c);
    });
}

/// The backward chunks of a pooled join that `core` owns: `bp.pool` spreads the error of
/// each mean over its window, into the error region of the sum.
pub(super) fn bp(p: &Plan, j: &Join, core: u16, c: &mut Code) {
    let Some(q) = &j.pool else { return };
    let (e, kk, steps) = (j.chunk, q.k * q.k, j.steps);
    let all = e * steps;
    let mut r = super::Bump::default();
    let dy = at(Buf::BpErr, r.take(Buf::BpErr, all / kk), all / kk);
    let dx = at(Buf::BpDelta, r.take(Buf::BpDelta, all), all);
    Owned::new(j.n / e, j.cores.seat(core)).emit(c, |c, o| {
        open_steps(p, j, c);
        let row = j.n / kk * 2;
        c.load_rows(dy.clone(), chunk_addr(p, j, o, (q.ds, e / kk * 2), row), (h16(steps), e / kk * 2, row));
        let (ch, k) = (h16(all / kk), h16(q.k));
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
        c.store_rows(chunk_addr(p, j, o, (j.ds, e * 2), j.n * 2), dx, (h16(steps), e * 2, j.n * 2));
        close_steps(j, c);
    });
}
