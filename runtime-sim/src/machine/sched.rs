//! The discrete-event scheduler: runs every stream to `halt` in a deterministic order.
//!
//! Each stream is an in-order unit with its own clock. The scheduler repeatedly takes the
//! runnable stream with the smallest clock (ties by core, then stream) and executes its next
//! instruction, which keeps the functional results causal: whatever a stream reads was
//! written by instructions that completed no later than it issues, provided the program
//! synchronises its producers and consumers. A stream keeps running while it stays the
//! earliest, so a heap operation is paid only when the order changes.
//!
//! A `wait`, `noc.recv` or `barrier` that cannot complete blocks its stream, which leaves
//! the heap until a partner's `signal`, `noc.send` or barrier arrival wakes it; it then
//! retries and completes at the later of its own clock and the partner's time. When the
//! heap is empty and some stream has not halted, the program is deadlocked.

use super::error::{Blocked, Location, SimError};
use super::exec::{Exec, Flow};
use super::state::{NSTREAM, State};
use super::stats::TraceEvent;
use crate::fp::Storage;
use crate::kernels::OpCount;
use isa::{CoreCode, OPS, Opcode, Stream};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Whether a stream can go on after an instruction.
enum Outcome {
    Ran,
    Stopped,
}

/// Runs all streams to `halt`, or fails.
pub(crate) fn run<S: Storage>(code: &[CoreCode], st: &mut State<S>, max_cycles: u64) -> Result<(), SimError> {
    let mut heap: BinaryHeap<Reverse<u128>> =
        (0..st.streams.len()).filter(|&i| !st.streams[i].halted).map(|i| Reverse(key(0, i))).collect();
    let mut next = heap.pop();
    while let Some(Reverse(k)) = next {
        let mut idx = stream_of(k);
        loop {
            if st.streams[idx].clock > max_cycles {
                return Err(SimError::CycleLimit { limit: max_cycles });
            }
            let outcome = step(code, st, idx)?;
            // Most instructions wake nobody: the check spares them setting up a drain.
            if !st.wake.is_empty() {
                for w in st.wake.drain(..) {
                    heap.push(Reverse(key(st.streams[w].clock, w)));
                }
            }
            if let Outcome::Stopped = outcome {
                next = heap.pop();
                break;
            }
            let key = key(st.streams[idx].clock, idx);
            // When another stream is now earlier, it swaps places with this one in the heap:
            // one sift instead of a push and a pop. Keys are unique (the stream index breaks
            // ties), so the order of the streams is the same either way.
            if let Some(mut top) = heap.peek_mut().filter(|top| top.0 < key) {
                idx = stream_of(std::mem::replace(&mut *top, Reverse(key)).0);
            }
        }
    }
    deadlock(st)
}

/// The heap key of stream `idx` at `clock`: ordered by clock, then by stream, as the
/// pair `(clock, idx)` is, but compared as one integer.
fn key(clock: u64, idx: usize) -> u128 {
    u128::from(clock) << 64 | idx as u128
}

/// The stream of a heap key.
fn stream_of(key: u128) -> usize {
    key as u64 as usize
}

/// Executes the next instruction of stream `idx` and accounts for it.
fn step<S: Storage>(code: &[CoreCode], st: &mut State<S>, idx: usize) -> Result<Outcome, SimError> {
    let (core, stream) = (idx / NSTREAM, Stream::ALL[idx % NSTREAM]);
    let pc = st.streams[idx].pc;
    let Some(instr) = code.get(core).and_then(|c| c.streams[idx % NSTREAM].get(pc)) else {
        return Err(SimError::NoHalt { core, stream });
    };
    let now = st.streams[idx].clock;
    super::jobs::join_operands(st, (core, idx), instr);
    let mut ex = Exec { st, core, stream, pc, now, busy: 1, stall: 0, ops: OpCount::default() };
    let flow = instr.visit(&mut ex)?;
    let (busy, stall, ops) = (ex.busy.max(1), ex.stall, ex.ops);
    let s = &mut st.streams[idx];
    let outcome = match flow {
        Flow::Block(w) => {
            s.blocked = Some(w);
            return Ok(Outcome::Stopped);
        }
        Flow::Next => {
            s.pc += 1;
            Outcome::Ran
        }
        Flow::Jump(to) => {
            s.pc = to;
            Outcome::Ran
        }
        Flow::Halt => {
            s.halted = true;
            Outcome::Stopped
        }
    };
    s.clock = now + stall + busy;
    let end = s.clock;
    account(st, (core, stream, instr.opcode()), now, (busy, stall), ops);
    if let Some(layer) = st.layer_of[idx].get(pc).copied().flatten() {
        st.stats.layers[layer].busy[stream.index()] += busy;
    }
    st.stats.cycles = st.stats.cycles.max(end);
    Ok(outcome)
}

/// Adds one executed instruction to the stream, kind and trace counters.
fn account<S>(
    st: &mut State<S>,
    (core, stream, op): (usize, Stream, Opcode),
    now: u64,
    (busy, stall): (u64, u64),
    ops: OpCount,
) {
    let s = &mut st.stats.streams[core][stream.index()];
    s.instructions += 1;
    s.add_ops(ops);
    s.busy += busy;
    s.stall += stall;
    let k = &mut st.kinds[op as usize];
    k.count += 1;
    k.cycles += busy + stall;
    k.stall += stall;
    k.ops_executed += ops.executed;
    k.ops_skipped += ops.skipped;
    if let Some(t) = st.trace.as_mut().filter(|_| op != Opcode::Loop && op != Opcode::EndLoop) {
        let name = OPS[op as usize].mnemonic;
        t.push(TraceEvent { name, core: core as u32, stream: stream.index() as u32, start: now, cycles: busy + stall });
    }
}

/// Ok if every stream halted; otherwise the deadlock report.
fn deadlock<S>(st: &State<S>) -> Result<(), SimError> {
    let blocked: Vec<Blocked> = st
        .streams
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.halted)
        .filter_map(|(i, s)| {
            let at = Location { core: i / NSTREAM, stream: Stream::ALL[i % NSTREAM], pc: s.pc };
            s.blocked.clone().map(|waits_for| Blocked { at, waits_for })
        })
        .collect();
    if blocked.is_empty() { Ok(()) } else { Err(SimError::Deadlock { blocked }) }
}

#[cfg(test)]
mod tests {
    use super::{key, stream_of};

    /// Keys order as the `(clock, stream)` pairs they stand for, at small, equal and extreme
    /// clocks and streams, and give their stream back.
    #[test]
    fn keys_order_as_clock_stream_pairs() {
        let values = [0u64, 1, 2, 59, 60, 1 << 32, (1 << 40) + 3, u64::MAX - 1, u64::MAX];
        let pairs: Vec<(u64, usize)> =
            values.iter().flat_map(|&c| values.iter().map(move |&i| (c, i as usize))).collect();
        for &a in &pairs {
            assert_eq!(stream_of(key(a.0, a.1)), a.1);
            for &b in &pairs {
                assert_eq!(key(a.0, a.1).cmp(&key(b.0, b.1)), a.cmp(&b), "{a:?} against {b:?}");
            }
        }
    }
}
