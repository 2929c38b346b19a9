//! Writing instructions: a small builder for one stream, the address helpers the stream
//! emitters share, and the assembly of the per-core streams into a [`Program`].

use super::plan::Plan;
use super::{bp, fp, wg};
use isa::{Access, Buf, ChipDesc, DramAddr, Instr, Program, Reg, Stream, Symbol, SymbolKind};

/// Loop counters: timesteps, samples, tiles, training steps.
pub(super) const T: Reg = Reg::R0;
pub(super) const B: Reg = Reg::R1;
pub(super) const TILE: Reg = Reg::R2;
pub(super) const STEP: Reg = Reg::R3;

/// Tokens (per stream): the sample handshake of `linear_layer.s`, and the end of a step.
pub(super) const TOK_SAMPLE: u8 = 0;
pub(super) const TOK_WG_DONE: u8 = 1;
/// FP and BP wait on it at the end of a step: WG has stored the updated weights.
pub(super) const TOK_UPDATED: u8 = 2;

/// NoC channels: spikes forward, errors backward.
pub(super) const CHAN_SPIKES: u8 = 0;
pub(super) const CHAN_ERRORS: u8 = 1;

/// The instructions of one stream, built in order.
#[derive(Default)]
pub(super) struct Code(pub(super) Vec<Instr>);

impl Code {
    pub(super) fn push(&mut self, i: Instr) {
        self.0.push(i);
    }

    /// `loop r n`; the caller closes it with [`Code::close`].
    pub(super) fn open(&mut self, r: Reg, n: u32) {
        self.push(Instr::Loop { r, n });
    }

    pub(super) fn close(&mut self, r: Reg) {
        self.push(Instr::EndLoop { r });
    }

    pub(super) fn signal(&mut self, core: u16, stream: Stream, tok: u8) {
        self.push(Instr::Signal { core, stream, tok });
    }

    pub(super) fn wait(&mut self, tok: u8) {
        self.push(Instr::Wait { tok, n: 1 });
    }

    pub(super) fn fill(&mut self, dst: Access, value: f32) {
        self.push(Instr::Fill { dst, value });
    }

    /// One contiguous DRAM → buffer transfer of `bytes`.
    pub(super) fn load(&mut self, dst: Access, src: DramAddr, bytes: u64) {
        let row = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.load_rows(dst, src, (1, row, row));
    }

    /// One contiguous buffer → DRAM transfer of `bytes`.
    pub(super) fn store(&mut self, dst: DramAddr, src: Access, bytes: u64) {
        let row = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.store_rows(dst, src, (1, row, row));
    }

    /// `rows` rows of `row` bytes, `stride` apart in DRAM, into consecutive bytes of `dst`.
    pub(super) fn load_rows(&mut self, dst: Access, src: DramAddr, (rows, row, stride): (u16, u32, u32)) {
        self.push(Instr::DmaLoad { dst, src, rows, row, stride });
    }

    /// Consecutive bytes of `src` into `rows` rows of `row` bytes, `stride` apart in DRAM.
    pub(super) fn store_rows(&mut self, dst: DramAddr, src: Access, (rows, row, stride): (u16, u32, u32)) {
        self.push(Instr::DmaStore { dst, src, rows, row, stride });
    }
}

/// `buf[off:len]`.
pub(super) fn at(buf: Buf, off: u32, len: u32) -> Access {
    Access::new(buf, off, len)
}

/// A count as a `u16` operand (code generation keeps such counts within the field; the
/// verifier would report one that is not).
pub(super) fn h16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// A signed stride from an element or byte count (counts here are far below `i32::MAX`;
/// the verifier would report one that is not).
pub(super) fn stride(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The per-timestep slice `buf[base + t*step : len]` walked forwards by `r0`.
pub(super) fn fwd(buf: Buf, base: u32, step: u32, len: u32) -> Access {
    at(buf, base, len).with(T, stride(u64::from(step)))
}

/// The same slice walked backwards: `t = steps-1-r0`.
pub(super) fn rev(buf: Buf, base: u32, step: u32, len: u32, steps: u32) -> Access {
    let last = base + (steps - 1) * step;
    at(buf, last, len).with(T, -stride(u64::from(step)))
}

/// The multi-row form of per-timestep operands: each access without its `r0` term (row 0)
/// and that term's stride as the row stride, with `t` as the row count. `None` when a count
/// or stride does not fit the instruction's `u16` fields (or walks backwards): the caller
/// then loops over the timesteps instead.
pub(super) fn rows_of<const N: usize>(t: u32, ops: [&Access; N]) -> Option<(u16, [(Access, u16); N])> {
    let rows = u16::try_from(t).ok().filter(|r| *r > 0)?;
    let mut out = ops.map(|a| (a.clone(), 0u16));
    for (row, a) in out.iter_mut().zip(ops) {
        let step: i64 = a.terms.iter().filter(|x| x.reg == T).map(|x| i64::from(x.stride)).sum();
        row.0.terms.retain(|x| x.reg != T);
        row.1 = u16::try_from(step).ok()?;
    }
    Some((rows, out))
}

/// A tile loop: `full` tiles of `size`, then one of `rem` (if any); `body(code, tile_term,
/// first, size)` emits one tile, where `tile_term` is `Some(size)` inside the loop over `r2`.
pub(super) fn tiles(c: &mut Code, total: u32, size: u32, mut body: impl FnMut(&mut Code, Option<u32>, u32, u32)) {
    let (full, rem) = (total / size, total % size);
    if full == 1 {
        body(c, None, 0, size);
    } else {
        c.open(TILE, full);
        body(c, Some(size), 0, size);
        c.close(TILE);
    }
    if rem > 0 {
        body(c, None, full * size, rem);
    }
}

/// Adds `r2 * step` to an access when inside a tile loop.
pub(super) fn tiled(a: Access, term: Option<u32>, per_elem: u32) -> Access {
    match term {
        Some(size) => a.with(TILE, stride(u64::from(size) * u64::from(per_elem))),
        None => a,
    }
}

/// Adds `r2 * step` bytes to a DRAM address when inside a tile loop.
pub(super) fn tiled_dram(a: DramAddr, term: Option<u32>, bytes_per_elem: u64) -> DramAddr {
    match term {
        Some(size) => a.with(TILE, stride(u64::from(size) * bytes_per_elem)),
        None => a,
    }
}

/// Every core's streams, the layer symbols that name them, and the DRAM image.
pub(super) fn program(plan: &Plan, chip: &ChipDesc) -> Program {
    let mut p = Program::new(chip);
    let mut symbols = Vec::new();
    for u in &plan.units {
        // An inference program leaves BP and WG idle.
        let idle = || Code(vec![Instr::Halt {}]);
        let streams = [
            (Stream::Fp, fp::stream(plan, u, chip)),
            (Stream::Bp, if plan.train { bp::stream(plan, u) } else { idle() }),
            (Stream::Wg, if plan.train { wg::stream(plan, u, chip) } else { idle() }),
        ];
        for (s, code) in streams {
            let len = u32::try_from(code.0.len()).unwrap_or(u32::MAX);
            symbols.push(Symbol {
                name: u.name.clone(),
                kind: SymbolKind::Layer { core: u.core, stream: s },
                addr: 0,
                len,
            });
            if let Some(core) = p.cores.get_mut(usize::from(u.core)) {
                *core.stream_mut(s) = code.0;
            }
        }
    }
    symbols.extend(plan.dram.symbols.iter().cloned());
    p.symbols = symbols;
    p.data = plan.dram.data.clone();
    p
}
