//! Conv and linear arithmetic on other host threads while the scheduler goes on: timing is
//! decoupled from arithmetic.
//!
//! A conv instruction's handler checks its operands, counts its operations from its inputs
//! alone (`kernels::conv_counts`) and charges cycles, SRAM accesses and energy at issue, on
//! the scheduler thread, in the order the scheduler issues instructions: every figure of a
//! run is the same whatever thread computes the sums. It then hands the arithmetic to a
//! job, with copies of its inputs and of its output range, which the job updates; the
//! range is *pending* until the job is joined and the range copied back. The large
//! multi-row linear tiles do the same (`row_jobs.rs`), but copy nothing: their jobs take
//! the buffers they read and write out of the table, each pending as a whole until the
//! join ([`Hold::Buffers`]).
//!
//! The scheduler runs other instructions, mostly other cores', until one names a buffer
//! with a pending range; before executing it, [`join_operands`] joins the jobs it could
//! see. A conv instruction's operands are exactly the element ranges it reads and writes,
//! so it joins only the jobs whose ranges overlap them (the convs of all cores accumulate
//! weight gradients into disjoint ranges of the one shared `opt` store); any other
//! instruction (multi-row ones reach past their first row) joins every job of the buffers
//! it names. Every access to a buffer goes through an instruction's operands, and a run
//! joins every job before it returns (even when it fails), so outside [`super::sched`]
//! nothing is pending.
//!
//! A job computes exactly what the handler computed when it ran the kernel in place: the
//! same kernel on the same values, so no result depends on the thread count. With one host
//! thread there are no jobs: the handler runs the kernel at once on the buffer in place,
//! and charges the operations the kernel counts, as before jobs. With more it goes to the
//! queue of the run's worker threads (`workers.rs`); whoever gets to it first runs it. The
//! scheduler, waiting for a job a worker is running, runs jobs no worker has started yet
//! (the oldest first), so both threads keep working, and only ever waits for a job that
//! is running: no wait can deadlock. A job cannot fail: its handler checked everything the
//! kernel asserts before launching it. (Were one to panic all the same, the panic is
//! raised again on the scheduler's thread when the job is joined, so that no thread waits
//! for it forever.)

use super::buffers::{BufData, Span};
use super::rows::RowState;
use super::state::{NBUF, State};
use super::workers::{Queue, Task};
use crate::fp::Storage;
use crate::kernels::{ConvScratch, Input, OpCount};
use crate::spikes::SpikeBits;
use isa::{Buf, Instr, Opcode};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The working memory a job brings along, reused from job to job.
#[derive(Debug)]
pub(crate) struct Scratch<S> {
    /// The fast conv kernels' working memory.
    pub(crate) conv: ConvScratch,
    /// Copies of inputs, returned to the state's pool of vectors after the job.
    pub(crate) vecs: Vec<Vec<S>>,
    /// The linear row kernels' working memory (see `row_jobs.rs`).
    pub(crate) rows: RowState,
    /// Whether the work must count its operations: on one thread, where they are the ones
    /// charged, and in debug builds, to check them against those charged at issue. A job
    /// in a release build skips the count, which the scheduler has made already.
    pub(crate) count: bool,
}

impl<S> Default for Scratch<S> {
    fn default() -> Self {
        Scratch { conv: ConvScratch::default(), rows: RowState::default(), vecs: Vec::new(), count: true }
    }
}

/// The arithmetic of one instruction: updates the range of the buffer given (the table's
/// buffer on one thread, a copy of the range or the buffer itself on more), reading the
/// input buffers the job took along (see [`Hold::Buffers`]) in the order it named them;
/// returns the operations the kernel counted when [`Scratch::count`] asks for them (with
/// more threads checked against those charged at issue, in debug builds).
pub(crate) type Work<S> =
    Box<dyn FnOnce(&mut BufData<S>, Range<usize>, &[BufData<S>], &mut Scratch<S>) -> OpCount + Send>;

/// A job's output buffer, the input buffers it took along, its scratch, and the operations
/// it counted.
struct Done<S> {
    out: BufData<S>,
    inputs: Vec<BufData<S>>,
    scratch: Scratch<S>,
    ops: OpCount,
}

/// A job's work with the output (and the range of it to update), the input buffers and the
/// scratch it runs on.
type Unstarted<S> = (Work<S>, BufData<S>, Range<usize>, Vec<BufData<S>>, Scratch<S>);

/// How a job holds its buffers until it is joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A copy of its output range, copied back at the join: jobs on other ranges of the
    /// buffer (the convs' weight gradients in the one `opt` store) run side by side. Its
    /// inputs are the work's own copies.
    Range,
    /// The output's whole buffer and the input buffers of the slots listed (other than the
    /// output's, each once), taken out of the table until the join, so that nothing is
    /// copied; each is pending as a whole, so any instruction that names one joins the job
    /// first. For instructions whose buffers the next instruction to name them reads or
    /// overwrites anyway (the linear tiles).
    Buffers(Vec<usize>),
}

/// What a pending entry of a slot stands for.
enum Role {
    /// The job's output, which joins it: how the job holds it, and the core whose
    /// `wg.conv` error layout travels in the job's scratch.
    Output { hold: Hold, wg_core: Option<usize> },
    /// An input buffer the job took along, from the job whose output is in slot `out`.
    Input { out: usize },
}

/// A launched job, shared between the scheduler and the worker that may run it.
struct Ticket<S> {
    /// The work with its output and scratch, until someone takes it to run it.
    work: Mutex<Option<Unstarted<S>>>,
    /// The finished job, or the panic it raised (which no checked job raises), to be
    /// raised again on the scheduler's thread rather than leave it waiting forever.
    done: Mutex<Option<std::thread::Result<Done<S>>>>,
    finished: AtomicBool,
    ready: Condvar,
}

/// A job the scheduler has not joined yet, as one slot sees it.
struct Pending<S> {
    ticket: Arc<Ticket<S>>,
    /// The buffer elements the job updates (or, for a buffer it took along, all of them).
    range: Range<usize>,
    /// The operations charged at issue.
    ops: OpCount,
    role: Role,
}

/// The jobs of a run, by buffer slot, and the scratch of finished ones.
pub(crate) struct Jobs<S> {
    pending: Vec<Vec<Pending<S>>>,
    /// The number of pending entries in each core's slots, and last in the shared `opt`
    /// slot: an instruction of a core with none, while `opt` has none, joins nothing.
    by_core: Vec<u32>,
    count: usize,
    /// The workers' queue, when jobs go to other threads.
    queue: Option<Arc<Queue>>,
    spare: Vec<Scratch<S>>,
}

impl<S> Default for Jobs<S> {
    fn default() -> Self {
        Jobs { pending: Vec::new(), by_core: Vec::new(), count: 0, queue: None, spare: Vec::new() }
    }
}

/// A machine is cloned only between runs, when no job is pending; the clone starts with
/// no scratch, which is only working memory.
impl<S> Clone for Jobs<S> {
    fn clone(&self) -> Self {
        Jobs::default()
    }
}

impl<S> std::fmt::Debug for Jobs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jobs {{ pending: {}, threaded: {} }}", self.count, self.queue.is_some())
    }
}

impl<S> Jobs<S> {
    /// Readies the table for a run over `slots` buffers, whose jobs go to `queue` (or run
    /// where they are launched).
    pub(crate) fn start(&mut self, slots: usize, queue: Option<Arc<Queue>>) {
        debug_assert_eq!(self.count, 0, "a run starts with no job pending");
        self.pending.resize_with(slots, Vec::new);
        self.by_core.resize(slots.div_ceil(NBUF) + 1, 0);
        debug_assert!(self.by_core.iter().all(|&n| n == 0), "a run starts with no entry pending");
        self.queue = queue;
    }

    /// Forgets the queue at the end of a run, whose workers stop.
    pub(crate) fn stop(&mut self) {
        self.queue = None;
    }

    /// Whether jobs go to other threads, so that their operations must be counted at issue.
    pub(crate) fn threaded(&self) -> bool {
        self.queue.is_some()
    }

    /// Where slot `slot`'s entries are counted in [`Jobs::by_core`].
    fn owner(&self, slot: usize) -> usize {
        if slot == Buf::Opt.index() { self.by_core.len() - 1 } else { slot / NBUF }
    }

    /// Adds a pending entry to `slot`'s list.
    fn push(&mut self, slot: usize, p: Pending<S>) {
        let owner = self.owner(slot);
        self.by_core[owner] += 1;
        self.pending[slot].push(p);
    }

    /// Takes entry `i` out of `slot`'s list, the last entry taking its place.
    fn remove(&mut self, slot: usize, i: usize) -> Pending<S> {
        let owner = self.owner(slot);
        self.by_core[owner] -= 1;
        self.pending[slot].swap_remove(i)
    }

    /// Whether an instruction of `core` could name a buffer with a pending entry.
    fn any_for(&self, core: usize) -> bool {
        let shared = self.by_core.last().is_some_and(|&n| n > 0);
        shared || self.by_core.get(core).is_some_and(|&n| n > 0)
    }

    /// Scratch for a new job.
    pub(crate) fn scratch(&mut self) -> Scratch<S> {
        self.spare.pop().unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A job never panics (its handler checked its operands), so no lock is ever poisoned;
    // were one, its data would still be whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Storage> Task for Ticket<S> {
    fn try_run(&self) -> bool {
        let Some((work, mut out, range, inputs, mut scratch)) = lock(&self.work).take() else { return false };
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut out, range, &inputs, &mut scratch)));
        *lock(&self.done) = Some(ran.map(|ops| Done { out, inputs, scratch, ops }));
        self.finished.store(true, Ordering::Release);
        self.ready.notify_all();
        true
    }
}

impl<S: Storage> Ticket<S> {
    /// The finished job: run here if no worker has started it, else waited for while the
    /// jobs in `queue` that no worker has started run here.
    fn wait(&self, queue: Option<&Queue>) -> Done<S> {
        self.try_run();
        while !self.finished.load(Ordering::Acquire) {
            let Some(next) = queue.and_then(Queue::pop) else { break };
            next.try_run();
        }
        // A job lasts tens of microseconds: polling a little catches most of them
        // without the cost of sleeping and being woken.
        for _ in 0..SPINS {
            if self.finished.load(Ordering::Acquire) {
                break;
            }
            // Yielding, so that a worker that shares this core can finish the job.
            std::thread::yield_now();
        }
        let mut done = lock(&self.done);
        loop {
            if let Some(d) = done.take() {
                return d.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
            done = self.ready.wait(done).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Polls before a wait sleeps.
const SPINS: usize = 1 << 10;

/// A copy of a buffer range, for a job to update.
fn copy_range<S: Storage>(data: &BufData<S>, r: Range<usize>) -> BufData<S> {
    match data {
        BufData::Bits(b) => BufData::Bits(b.slice(r.start, r.len()).to_bits()),
        BufData::Half(v) => BufData::Half(v[r].to_vec()),
        BufData::Word(v) => BufData::Word(v[r].to_vec()),
    }
}

/// Runs `work` on the output range `sp` and returns its operations: with other threads,
/// those counted at issue (`counted`, which the handler gives when [`Jobs::threaded`]),
/// and the work goes to a job; on one thread the work runs here and now on the buffer in
/// place, as the handler ran its kernel before there were jobs. `wg_core` names the core
/// whose error layout is in `scratch`; `hold` says how the job holds its buffers.
pub(crate) fn launch<S: Storage>(
    st: &mut State<S>,
    sp: Span,
    (work, mut scratch): (Work<S>, Scratch<S>),
    counted: Option<OpCount>,
    (wg_core, hold): (Option<usize>, Hold),
) -> OpCount {
    debug_assert!(
        !matches!(&hold, Hold::Buffers(slots) if slots.contains(&sp.slot)),
        "a job's input buffers are other than its output's"
    );
    let inputs = match &hold {
        Hold::Range => Vec::new(),
        Hold::Buffers(slots) => slots.iter().map(|&s| std::mem::replace(&mut st.bufs[s], empty())).collect(),
    };
    let (Some(ops), Some(queue)) = (counted, st.jobs.queue.clone()) else {
        scratch.count = true;
        let ops = work(&mut st.bufs[sp.slot], sp.range(), &inputs, &mut scratch);
        put_inputs(st, &hold, inputs);
        reclaim(st, scratch, wg_core);
        return ops;
    };
    let (out, range, whole) = match hold {
        Hold::Range => (copy_range(&st.bufs[sp.slot], sp.range()), 0..sp.len, sp.range()),
        Hold::Buffers(_) => {
            let out = std::mem::replace(&mut st.bufs[sp.slot], empty());
            let len = out.len();
            (out, sp.range(), 0..len)
        }
    };
    scratch.count = cfg!(debug_assertions);
    let lens: Vec<usize> = inputs.iter().map(BufData::len).collect();
    let ticket = Arc::new(Ticket {
        work: Mutex::new(Some((work, out, range, inputs, scratch))),
        done: Mutex::new(None),
        finished: AtomicBool::new(false),
        ready: Condvar::new(),
    });
    if let Hold::Buffers(slots) = &hold {
        for (&slot, &len) in slots.iter().zip(&lens) {
            let role = Role::Input { out: sp.slot };
            st.jobs.push(slot, Pending { ticket: Arc::clone(&ticket), range: 0..len, ops, role });
        }
    }
    let role = Role::Output { hold, wg_core };
    st.jobs.push(sp.slot, Pending { ticket: Arc::clone(&ticket), range: whole, ops, role });
    st.jobs.count += 1;
    queue.push(ticket);
    ops
}

/// What stands in the table for a buffer a job holds.
fn empty<S>() -> BufData<S> {
    BufData::Word(Vec::new())
}

/// Puts the input buffers a job took along back into their slots.
fn put_inputs<S>(st: &mut State<S>, hold: &Hold, inputs: Vec<BufData<S>>) {
    if let Hold::Buffers(slots) = hold {
        for (&slot, data) in slots.iter().zip(inputs) {
            st.bufs[slot] = data;
        }
    }
}

/// Puts a finished job's scratch back: the error layout to its core, the input copies to
/// the state's pool.
fn reclaim<S: Storage>(st: &mut State<S>, mut scratch: Scratch<S>, wg_core: Option<usize>) {
    if let Some(core) = wg_core {
        std::mem::swap(&mut scratch.conv.wg_errors, &mut st.wg_errors[core]);
    }
    st.pool.append(&mut scratch.vecs);
    st.jobs.spare.push(scratch);
}

/// Joins the jobs of `slot` whose ranges `hit` selects, and puts their buffers back.
pub(crate) fn join<S: Storage>(st: &mut State<S>, slot: usize, hit: impl Fn(&Range<usize>) -> bool) {
    // The pending ranges of one buffer never overlap (an instruction joins the jobs its
    // operands overlap before it launches its own), so the order of the joins does not
    // matter: each is taken out where it is found, the last job taking its place, with no
    // new list.
    let mut i = 0;
    while let Some(p) = st.jobs.pending.get(slot).and_then(|l| l.get(i)) {
        if !hit(&p.range) {
            i += 1;
            continue;
        }
        match p.role {
            // Joined through its output, which also takes this entry out.
            Role::Input { out } => {
                let ticket = Arc::clone(&p.ticket);
                match take_entry(st, out, &ticket) {
                    Some(p) => finish(st, out, p),
                    // Every input entry has its output entry; were one alone, it goes.
                    None => drop(st.jobs.remove(slot, i)),
                }
            }
            Role::Output { .. } => {
                let p = st.jobs.remove(slot, i);
                finish(st, slot, p);
            }
        }
    }
}

/// The entry of `ticket` in `slot`'s list, taken out.
fn take_entry<S>(st: &mut State<S>, slot: usize, ticket: &Arc<Ticket<S>>) -> Option<Pending<S>> {
    let i = st.jobs.pending.get(slot)?.iter().position(|p| Arc::ptr_eq(&p.ticket, ticket))?;
    Some(st.jobs.remove(slot, i))
}

/// Waits for the job of output entry `p` (taken out of `slot`'s list) and puts its output
/// and the buffers it took along back.
fn finish<S: Storage>(st: &mut State<S>, slot: usize, p: Pending<S>) {
    let Role::Output { hold, wg_core } = p.role else { return };
    st.jobs.count -= 1;
    let done = p.ticket.wait(st.jobs.queue.as_deref());
    // Only debug builds count in the job (see `Scratch::count`).
    debug_assert_eq!(done.ops, p.ops, "a job's operations differ from those charged at issue");
    match &hold {
        Hold::Range => put_range(&mut st.bufs[slot], p.range.start, &done.out),
        Hold::Buffers(slots) => {
            st.bufs[slot] = done.out;
            for &s in slots {
                take_entry(st, s, &p.ticket);
            }
        }
    }
    put_inputs(st, &hold, done.inputs);
    reclaim(st, done.scratch, wg_core);
}

/// Copies a job's output back into its range, which starts at `start`.
fn put_range<S: Storage>(data: &mut BufData<S>, start: usize, out: &BufData<S>) {
    match (data, out) {
        (BufData::Bits(d), BufData::Bits(o)) => d.copy_bits_from(start, o, 0, o.len()),
        (BufData::Half(d), BufData::Half(o)) => d[start..start + o.len()].copy_from_slice(o),
        (BufData::Word(d), BufData::Word(o)) => d[start..start + o.len()].copy_from_slice(o),
        // A job's output is a copy of its range, of the buffer's own width.
        _ => {}
    }
}

/// Joins, before `instr` of stream `idx` (of `core`) executes, the jobs whose outputs it
/// could see or overwrite: for a conv instruction those overlapping its operands' ranges,
/// for any other every job of the buffers it names.
pub(crate) fn join_operands<S: Storage>(st: &mut State<S>, (core, idx): (usize, usize), instr: &Instr) {
    if st.jobs.count == 0 || !st.jobs.any_for(core) {
        return;
    }
    if !matches!(instr.opcode(), Opcode::FpConv | Opcode::BpConv | Opcode::WgConv) {
        return join_buffers(st, core, instr);
    }
    let (mut ops, mut n) = ([(0usize, 0i64, 0i64); 16], 0);
    let regs = st.streams[idx].regs;
    instr.accesses(&mut |a| {
        if n < ops.len() {
            let start = a.start(&regs);
            ops[n] = (st.slot(core, a.buf), start, start + i64::from(a.len));
            n += 1;
        }
    });
    // The ISA has no instruction with more operands than the array holds; were there one,
    // joining everything would still be right.
    if n == ops.len() {
        return join_all(st);
    }
    for &(slot, start, end) in &ops[..n] {
        join(st, slot, |r| (r.start as i64) < end && start < r.end as i64);
    }
}

/// Joins, before `instr` (of `core`) executes, every job of the buffers it names: all an
/// instruction other than a conv needs, and nearly every instruction's check, so it looks
/// only at the buffers, not at the ranges.
fn join_buffers<S: Storage>(st: &mut State<S>, core: usize, instr: &Instr) {
    let (mut slots, mut n) = ([0usize; 16], 0);
    instr.accesses(&mut |a| {
        if n < slots.len() {
            slots[n] = st.slot(core, a.buf);
            n += 1;
        }
    });
    // As in `join_operands`: were there an instruction with more operands, joining
    // everything would still be right.
    if n == slots.len() {
        return join_all(st);
    }
    for &slot in &slots[..n] {
        if st.jobs.pending.get(slot).is_some_and(|l| !l.is_empty()) {
            join(st, slot, |_| true);
        }
    }
}

/// Joins every pending job.
pub(crate) fn join_all<S: Storage>(st: &mut State<S>) {
    for slot in 0..st.jobs.pending.len() {
        if st.jobs.count == 0 {
            return;
        }
        join(st, slot, |_| true);
    }
}

/// A copy of an accumulate input, for a job.
pub(crate) enum Owned<S> {
    Spikes(SpikeBits),
    Dense(Vec<S>),
}

impl<S: Storage> Owned<S> {
    /// Copies `input`; a dense one into `v`, a vector from the state's pool.
    pub(crate) fn of(input: &Input<'_, S>, mut v: Vec<S>) -> Owned<S> {
        match input {
            Input::Spikes(s) => Owned::Spikes(s.to_bits()),
            Input::Dense(d) => {
                v.clear();
                v.extend_from_slice(d);
                Owned::Dense(v)
            }
        }
    }

    pub(crate) fn input(&self) -> Input<'_, S> {
        match self {
            Owned::Spikes(b) => Input::Spikes(b.slice(0, b.len())),
            Owned::Dense(v) => Input::Dense(v),
        }
    }

    /// Gives a dense copy's vector back to the pool through `scratch`.
    pub(crate) fn recycle(self, scratch: &mut Scratch<S>) {
        if let Owned::Dense(v) = self {
            scratch.vecs.push(v);
        }
    }
}
