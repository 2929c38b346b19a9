//! Per-stream walk: loop nesting, halt placement, stream placement, loop-aware bounds of
//! every access, and the bookkeeping for the program-wide synchronisation checks.

use super::{Location, Report, ViolationKind as K};
use crate::chip::ChipDesc;
use crate::instr::Instr;
use crate::operand::{Access, DramAddr, NUM_LOOP_REGS, NUM_TOKENS, Reg, Stream, Term};
use std::collections::BTreeMap;

/// An open loop: its register and trip count.
#[derive(Clone, Copy)]
pub(crate) struct OpenLoop {
    pub(crate) reg: Reg,
    pub(crate) n: u32,
}

/// What the walk knows at one instruction.
pub(crate) struct Ctx<'a> {
    pub(crate) chip: &'a ChipDesc,
    pub(crate) at: Location,
    pub(crate) loops: &'a [OpenLoop],
}

impl Ctx<'_> {
    /// The inclusive range of `base + sum(reg * stride)` over all loop values, or the first
    /// register that no open loop counts.
    pub(crate) fn range(&self, base: u32, terms: &[Term]) -> Result<(i128, i128), Reg> {
        let (mut lo, mut hi) = (i128::from(base), i128::from(base));
        for t in terms {
            let l = self.loops.iter().rev().find(|l| l.reg == t.reg).ok_or(t.reg)?;
            let span = i128::from(t.stride) * i128::from(l.n.saturating_sub(1));
            if span < 0 { lo += span } else { hi += span }
        }
        Ok((lo, hi))
    }
}

/// Counts for the program-wide checks, keyed deterministically.
#[derive(Default)]
pub(crate) struct Sync {
    signals: BTreeMap<(usize, Stream, u8), u128>,
    waits: BTreeMap<(usize, Stream, u8), (u128, Location)>,
    sent: BTreeMap<(usize, usize, u8), (u128, Location)>,
    received: BTreeMap<(usize, usize, u8), (u128, Location)>,
    barriers: BTreeMap<u8, Vec<(u16, Location)>>,
}

/// Walks one stream.
pub(crate) fn check_stream(
    chip: &ChipDesc,
    core: usize,
    stream: Stream,
    code: &[Instr],
    sync: &mut Sync,
    r: &mut Report,
) {
    let mut loops: Vec<OpenLoop> = Vec::new();
    let mut barriers_seen: BTreeMap<u8, ()> = BTreeMap::new();
    for (i, instr) in code.iter().enumerate() {
        let at = Location { core: Some(core), stream: Some(stream), index: Some(i) };
        let unit = instr.opcode().unit();
        if !unit.allowed_in(stream) {
            r.push(
                K::WrongStream,
                at,
                format!(
                    "`{}` runs on the {} engine and cannot appear in the {stream} stream",
                    instr.opcode().mnemonic(),
                    unit.name()
                ),
            );
        }
        if matches!(instr, Instr::Halt {}) && i + 1 != code.len() {
            r.push(
                K::Halt,
                at,
                format!("`halt` is followed by {} unreachable instructions; it must be last", code.len() - i - 1),
            );
        }
        let mult = loops.iter().fold(1u128, |m, l| m.saturating_mul(u128::from(l.n)));
        let ctx = Ctx { chip, at, loops: &loops };
        check_accesses(instr, &ctx, r);
        super::rows::check(instr, &ctx, r);
        super::shape::check(instr, &ctx, r);
        record_sync(instr, chip, (core, stream), mult, at, sync, &mut barriers_seen);
        step_loops(instr, at, &mut loops, r);
    }
    let at = Location { core: Some(core), stream: Some(stream), index: None };
    if let Some(l) = loops.last() {
        r.push(
            K::Loop,
            at,
            format!(
                "{} loop(s) still open at the end of the stream (innermost counts {}); close each with `endloop`",
                loops.len(),
                l.reg
            ),
        );
    }
    if !code.is_empty() && !matches!(code.last(), Some(Instr::Halt {})) {
        r.push(K::Halt, at, "the stream does not end with `halt`");
    }
}

fn step_loops(instr: &Instr, at: Location, loops: &mut Vec<OpenLoop>, r: &mut Report) {
    match instr {
        Instr::Loop { r: reg, n } => {
            if loops.iter().any(|l| l.reg == *reg) {
                r.push(
                    K::Loop,
                    at,
                    format!("`loop` reuses {reg}, the counter of an enclosing loop; use a free register"),
                );
            }
            if loops.len() == NUM_LOOP_REGS {
                r.push(K::Loop, at, format!("loops nest deeper than {NUM_LOOP_REGS}"));
            }
            loops.push(OpenLoop { reg: *reg, n: *n });
        }
        Instr::EndLoop { r: reg } => match loops.pop() {
            Some(l) if l.reg == *reg => {}
            Some(l) => {
                r.push(K::Loop, at, format!("`endloop r={reg}` closes the loop over {}; loops must nest", l.reg))
            }
            None => r.push(K::Loop, at, "`endloop` without an open loop"),
        },
        _ => {}
    }
}

fn check_accesses(instr: &Instr, ctx: &Ctx<'_>, r: &mut Report) {
    instr.accesses(&mut |a: &Access| check_access(a, ctx, r));
    match instr {
        Instr::DmaLoad { src: d, rows, row, stride, .. } | Instr::DmaStore { dst: d, rows, row, stride, .. } => {
            check_dram(d, *rows, *row, *stride, ctx, r);
        }
        _ => {}
    }
}

fn check_access(a: &Access, ctx: &Ctx<'_>, r: &mut Report) {
    let Some(desc) = ctx.chip.buffer(a.buf) else {
        r.push(K::BufferBounds, ctx.at, format!("the chip has no buffer `{}`", a.buf));
        return;
    };
    let (lo, hi) = match ctx.range(a.off, &a.terms) {
        Ok(range) => range,
        Err(reg) => {
            r.push(
                K::UnboundRegister,
                ctx.at,
                format!("access `{}` uses {reg}, which no enclosing loop counts", a.buf),
            );
            return;
        }
    };
    let end = hi + i128::from(a.len);
    let cap = i128::from(desc.elems());
    if lo < 0 || end > cap {
        r.push(
            K::BufferBounds,
            ctx.at,
            format!("access to `{}` spans elements {lo}..{end} over its loops, outside the buffer's 0..{cap}", a.buf),
        );
    }
}

fn check_dram(d: &DramAddr, rows: u16, row: u32, stride: u32, ctx: &Ctx<'_>, r: &mut Report) {
    let Ok((lo, hi)) = ctx.range(d.base, &d.terms) else {
        r.push(K::UnboundRegister, ctx.at, "DRAM address uses a register which no enclosing loop counts");
        return;
    };
    let extent = i128::from(rows.saturating_sub(1)) * i128::from(stride) + i128::from(row);
    let end = hi + if rows == 0 { 0 } else { extent };
    let cap = i128::from(ctx.chip.dram.capacity_bytes);
    if lo < 0 || end > cap {
        r.push(
            K::DramBounds,
            ctx.at,
            format!("DRAM transfer spans bytes {lo}..{end} over its loops, outside the {cap}-byte DRAM"),
        );
    }
}

fn record_sync(
    instr: &Instr,
    chip: &ChipDesc,
    (core, stream): (usize, Stream),
    mult: u128,
    at: Location,
    s: &mut Sync,
    seen: &mut BTreeMap<u8, ()>,
) {
    let bits = |a: &Access| u128::from(a.len) * u128::from(chip.buffer(a.buf).map_or(16, |b| b.elem_bits));
    match instr {
        Instr::Signal { core: c, stream: st, tok } => {
            let e = s.signals.entry((usize::from(*c), *st, *tok)).or_default();
            *e = e.saturating_add(mult);
        }
        Instr::Wait { tok, n } => {
            let e = s.waits.entry((core, stream, *tok)).or_insert((0, at));
            e.0 = e.0.saturating_add(mult.saturating_mul(u128::from(*n)));
        }
        Instr::NocSend { to, chan, src } => {
            let e = s.sent.entry((core, usize::from(*to), *chan)).or_insert((0, at));
            e.0 = e.0.saturating_add(mult.saturating_mul(bits(src)));
        }
        Instr::NocRecv { from, chan, dst } => {
            let e = s.received.entry((usize::from(*from), core, *chan)).or_insert((0, at));
            e.0 = e.0.saturating_add(mult.saturating_mul(bits(dst)));
        }
        Instr::Barrier { id, count } if seen.insert(*id, ()).is_none() => {
            s.barriers.entry(*id).or_default().push((*count, at));
        }
        _ => {}
    }
}

impl Sync {
    /// Reports every unmatched or unbalanced synchronisation.
    pub(crate) fn check(&self, r: &mut Report) {
        for (&(c, st, tok), &(need, at)) in &self.waits {
            match self.signals.get(&(c, st, tok)).copied().unwrap_or(0) {
                0 => r.push(K::Sync, at, format!("`wait tok={tok}` has no `signal core={c} stream={st} tok={tok}` anywhere: it would block forever")),
                got if got != need => r.push(K::Sync, at, format!("token {tok} of core {c} {st} is signalled {got} times but waits consume {need}")),
                _ => {}
            }
        }
        for (&(c, st, tok), &got) in &self.signals {
            if !self.waits.contains_key(&(c, st, tok)) && tok < NUM_TOKENS {
                let at = Location { core: Some(c), stream: Some(st), index: None };
                r.push(K::Sync, at, format!("token {tok} is signalled {got} times but this stream never waits on it"));
            }
        }
        self.check_channels(r);
        self.check_barriers(r);
    }

    fn check_channels(&self, r: &mut Report) {
        for (&(from, to, chan), &(bits, at)) in &self.sent {
            let got = self.received.get(&(from, to, chan)).map_or(0, |x| x.0);
            if got != bits {
                r.push(
                    K::Sync,
                    at,
                    format!(
                        "core {from} sends {bits} bits to core {to} on channel {chan} but core {to} receives {got}"
                    ),
                );
            }
        }
        for (&(from, to, chan), &(bits, at)) in &self.received {
            if !self.sent.contains_key(&(from, to, chan)) {
                r.push(K::Sync, at, format!("core {to} receives {bits} bits from core {from} on channel {chan} but nothing is sent: it would block forever"));
            }
        }
    }

    fn check_barriers(&self, r: &mut Report) {
        for (id, users) in &self.barriers {
            let n = users.len();
            for &(count, at) in users {
                if usize::from(count) != n {
                    r.push(
                        K::Sync,
                        at,
                        format!("barrier {id} declares {count} participants but {n} stream(s) reach it"),
                    );
                }
            }
        }
    }
}
