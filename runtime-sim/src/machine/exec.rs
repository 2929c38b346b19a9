//! Executing one instruction: the execution context, and the control and data-movement
//! instructions.
//!
//! An [`Exec`] is one instruction's view of the machine: which stream issues it, at which
//! cycle, and what it costs. Each handler checks its operands against the machine
//! (bounds, element widths, shapes), performs the instruction, and records its busy and
//! stall cycles; the scheduler then advances the stream's clock. `visit.rs` dispatches to
//! the handlers; engine instructions live in `fp.rs`, `bp.rs` and `wg.rs`.

use super::buffers::Span;
use super::dram::{DramKind, KindRuns};
use super::error::{Location, SimError, WaitFor};
use super::state::{Frame, Msg, NSTREAM, OptSlot, State, stream_index};
use crate::fp::Storage;
use crate::kernels::soma::{LifParams, Reset, Surrogate as Sg};
use isa::{Access, DramAddr, NUM_CFG_SLOTS, NUM_CHANNELS, NUM_TOKENS, OptKind, Reg, ResetMode, Stream, Surrogate};

/// Unconsumed signals per token counter, and unreceived messages per channel, beyond
/// which the sender's instruction fails: hardware counters and queues are finite, and the
/// simulator must not grow without bound on a program that never waits.
const MAX_PENDING: usize = 1 << 16;

/// What the stream does after an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on with the next instruction.
    Next,
    /// Continue at this instruction index.
    Jump(usize),
    /// The instruction cannot complete yet; retry it when woken.
    Block(WaitFor),
    /// The stream has finished.
    Halt,
}

/// The result of a visitor method.
pub(crate) type Step = Result<Flow, SimError>;

/// The shape operands of `pad`: a `c x h x w` dense map and its border width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PadDims {
    pub(crate) c: u16,
    pub(crate) h: u16,
    pub(crate) w: u16,
    pub(crate) p: u8,
}

impl PadDims {
    /// Element count of the dense map.
    fn dense_len(self) -> u64 {
        u64::from(self.c) * u64::from(self.h) * u64::from(self.w)
    }

    /// Element count of the padded map.
    fn padded_len(self) -> u64 {
        let p = 2 * u64::from(self.p);
        u64::from(self.c) * (u64::from(self.h) + p) * (u64::from(self.w) + p)
    }

    /// Offset in the padded map of the first interior element of dense row `row`
    /// (counting rows over all channels).
    fn padded_row(self, row: usize) -> usize {
        let (h, w, p) = (usize::from(self.h), usize::from(self.w), usize::from(self.p));
        let (ch, y) = (row / h, row % h);
        (ch * (h + 2 * p) + y + p) * (w + 2 * p) + p
    }
}

/// One instruction's execution context.
pub(crate) struct Exec<'a, S> {
    pub(crate) st: &'a mut State<S>,
    pub(crate) core: usize,
    pub(crate) stream: Stream,
    pub(crate) pc: usize,
    /// The issuing stream's clock.
    pub(crate) now: u64,
    /// Cycles of work.
    pub(crate) busy: u64,
    /// Cycles spent waiting before the work could start.
    pub(crate) stall: u64,
    /// FP operations executed and skipped.
    pub(crate) ops: crate::kernels::OpCount,
}

impl<S: Storage> Exec<'_, S> {
    pub(crate) fn at(&self) -> Location {
        Location { core: self.core, stream: self.stream, pc: self.pc }
    }

    pub(crate) fn bad(&self, detail: impl Into<String>) -> SimError {
        SimError::BadOperand { at: self.at(), detail: detail.into() }
    }

    pub(crate) fn range(&self, detail: impl Into<String>) -> SimError {
        SimError::OutOfRange { at: self.at(), detail: detail.into() }
    }

    fn idx(&self) -> usize {
        stream_index(self.core, self.stream)
    }

    pub(crate) fn regs(&self) -> [u32; isa::NUM_LOOP_REGS] {
        self.st.streams[self.idx()].regs
    }

    /// Resolves a buffer access for the current loop registers, checking its bounds.
    pub(crate) fn span(&self, name: &str, a: &Access) -> Result<Span, SimError> {
        self.span_row(name, a, 0)
    }

    /// Resolves row `a` of a multi-row operand, `skip` elements past the access's first
    /// element (0 for row 0), checking its bounds.
    pub(crate) fn span_row(&self, name: &str, a: &Access, skip: usize) -> Result<Span, SimError> {
        let start = a.start(&self.st.streams[self.idx()].regs) + skip as i64;
        let slot = self.st.slot(self.core, a.buf);
        let cap = self.st.bufs[slot].len();
        let end = start + i64::from(a.len);
        if start < 0 || end > cap as i64 {
            return Err(self.outside(name, a.buf, (start, end), cap));
        }
        Ok(Span { slot, start: start as usize, len: a.len as usize })
    }

    /// The error of an operand reaching elements `start..end` of a buffer of `cap`; kept
    /// out of line, so that resolving an operand, which every instruction does several
    /// times, stays a few instructions.
    #[cold]
    #[inline(never)]
    fn outside(&self, name: &str, buf: isa::Buf, (start, end): (i64, i64), cap: usize) -> SimError {
        self.range(format!("operand `{name}` reaches elements {start}..{end} of `{buf}`, which holds {cap}"))
    }

    /// Counts the buffer accesses of touching `elems` elements of `buf`; returns them.
    pub(crate) fn touch(&mut self, buf: isa::Buf, elems: usize) -> u64 {
        self.touch_rows(buf, elems, 1)
    }

    /// Counts the buffer accesses of `rows` touches of `elems` elements of `buf` (the
    /// integer total of `rows` calls of [`touch`](Self::touch)); returns one touch's. A
    /// multi-row instruction counts its operands that every row touches alike this way.
    pub(crate) fn touch_rows(&mut self, buf: isa::Buf, elems: usize, rows: usize) -> u64 {
        let i = &self.st.info[buf.index()];
        let n = super::rows::div_ceil(elems as u64 * u64::from(i.elem_bits), u64::from(i.width_bits));
        self.st.sram[buf.index()] += n * rows as u64;
        n
    }

    /// Sets the busy time of a data-mover or control instruction: one issue cycle plus the
    /// busiest buffer's accesses, spread over the banks of the stream's engine (one per
    /// column of its array, as for engine instructions; the DMA stream has one).
    fn mover(&mut self, accesses: &[u64]) {
        let banks = self.pe_array().1;
        self.busy = 1 + accesses.iter().copied().max().unwrap_or(0).div_ceil(banks);
    }

    /// Checks that `a` holds `bits` bits in total.
    fn check_bits(&self, name: &str, a: &Access, bits: u64) -> Result<(), SimError> {
        let have = u64::from(a.len) * u64::from(self.st.info[a.buf.index()].elem_bits);
        if have == bits {
            Ok(())
        } else {
            Err(self.bad(format!("operand `{name}` (`{}`) holds {have} bits but the other side moves {bits}", a.buf)))
        }
    }

    pub(crate) fn slot_index(&self, slot: u8) -> Result<usize, SimError> {
        if slot < NUM_CFG_SLOTS {
            Ok(usize::from(slot))
        } else {
            Err(self.range(format!("configuration slot {slot} (the core has {NUM_CFG_SLOTS})")))
        }
    }

    fn core_index(&self, name: &str, core: u16) -> Result<usize, SimError> {
        let c = usize::from(core);
        if c < self.st.cores {
            Ok(c)
        } else {
            Err(self.range(format!("operand `{name}` names core {core}; the chip has {}", self.st.cores)))
        }
    }

    fn channel(&self, chan: u8) -> Result<(), SimError> {
        if chan < NUM_CHANNELS { Ok(()) } else { Err(self.range(format!("channel {chan} (there are {NUM_CHANNELS})"))) }
    }

    fn token(&self, tok: u8) -> Result<usize, SimError> {
        if tok < NUM_TOKENS {
            Ok(usize::from(tok))
        } else {
            Err(self.range(format!("token {tok} (there are {NUM_TOKENS})")))
        }
    }

    /// Wakes a blocked stream so the scheduler retries it.
    fn wake(&mut self, idx: usize) {
        if self.st.streams[idx].blocked.take().is_some() {
            self.st.wake.push(idx);
        }
    }

    pub(crate) fn loop_start(&mut self, r: Reg, n: u32) -> Step {
        let idx = self.idx();
        if self.st.streams[idx].loops.iter().any(|f| f.reg == r) {
            return Err(self.bad(format!("loop register {r} is already counting an enclosing loop")));
        }
        if n == 0 {
            let end = self.st.loop_end[idx][self.pc].ok_or_else(|| self.bad("`loop` has no matching `endloop`"))?;
            return Ok(Flow::Jump(end + 1));
        }
        let s = &mut self.st.streams[idx];
        s.regs[r.index()] = 0;
        s.loops.push(Frame { reg: r, body: self.pc + 1, n });
        Ok(Flow::Next)
    }

    pub(crate) fn loop_end(&mut self, r: Reg) -> Step {
        let idx = self.idx();
        let Some(&top) = self.st.streams[idx].loops.last() else {
            return Err(self.bad("`endloop` without an open loop"));
        };
        if top.reg != r {
            return Err(self.bad(format!("`endloop r={r}` closes the loop counting in {}", top.reg)));
        }
        let s = &mut self.st.streams[idx];
        s.regs[r.index()] += 1;
        if s.regs[r.index()] < top.n {
            Ok(Flow::Jump(top.body))
        } else {
            s.loops.pop();
            Ok(Flow::Next)
        }
    }

    pub(crate) fn signal(&mut self, core: u16, stream: Stream, tok: u8) -> Step {
        let target = stream_index(self.core_index("core", core)?, stream);
        let tok = self.token(tok)?;
        let q = &mut self.st.streams[target].tokens[tok];
        if q.len() >= MAX_PENDING {
            return Err(
                self.range(format!("token {tok} of core{core}.{stream} overflows ({MAX_PENDING} unconsumed signals)"))
            );
        }
        q.push_back(self.now + 1);
        self.wake(target);
        Ok(Flow::Next)
    }

    pub(crate) fn wait(&mut self, tok: u8, n: u16) -> Step {
        let t = self.token(tok)?;
        let idx = self.idx();
        let q = &mut self.st.streams[idx].tokens[t];
        if q.len() < usize::from(n) {
            return Ok(Flow::Block(WaitFor::Token { tok, need: n, have: q.len() }));
        }
        let ready = q.drain(..usize::from(n)).max().unwrap_or(0);
        self.stall = ready.saturating_sub(self.now);
        Ok(Flow::Next)
    }

    pub(crate) fn barrier(&mut self, id: u8, count: u16) -> Step {
        let idx = self.idx();
        if let Some(t) = self.st.streams[idx].released.take() {
            self.stall = t.saturating_sub(self.now);
            return Ok(Flow::Next);
        }
        let arrived = self.st.barriers.entry(id).or_default();
        if !arrived.iter().any(|a| a.0 == idx) {
            arrived.push((idx, self.now));
        }
        if arrived.len() < usize::from(count) {
            return Ok(Flow::Block(WaitFor::Barrier { id, arrived: arrived.len(), count }));
        }
        let all = std::mem::take(arrived);
        let t = all.iter().map(|a| a.1).max().unwrap_or(self.now);
        for (s, _) in all.into_iter().filter(|a| a.0 != idx) {
            self.st.streams[s].released = Some(t);
            self.wake(s);
        }
        self.stall = t.saturating_sub(self.now);
        Ok(Flow::Next)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cfg_neuron(
        &mut self,
        slot: u8,
        beta: f32,
        theta: f32,
        reset: ResetMode,
        detach: bool,
        sg: Surrogate,
        alpha: f32,
    ) -> Step {
        let slot = self.slot_index(slot)?;
        let surrogate = match sg {
            Surrogate::Rect => Sg::Rect { width: alpha },
            Surrogate::Atan => Sg::Atan { alpha },
            Surrogate::Sigmoid => Sg::Sigmoid { alpha },
            Surrogate::Triangle => Sg::Triangle { alpha },
            Surrogate::FastSigmoid => Sg::FastSigmoid { slope: alpha },
        };
        let reset = match reset {
            ResetMode::Hard => Reset::Hard { v_reset: 0.0 },
            ResetMode::Soft => Reset::Soft,
        };
        self.st.neuron[self.core][slot] =
            Some(LifParams { beta, threshold: theta, reset, detach_reset: detach, surrogate });
        Ok(Flow::Next)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cfg_opt(&mut self, slot: u8, kind: OptKind, lr: f32, m: f32, beta2: f32, eps: f32, wd: f32) -> Step {
        let slot = self.slot_index(slot)?;
        self.st.opt[self.core][slot] = Some(OptSlot { kind, lr, m, beta2, eps, wd, step: 0 });
        Ok(Flow::Next)
    }

    /// The DRAM byte address of row `r` of a transfer, checked against DRAM.
    fn dram_row(&self, a: &DramAddr, r: u16, row: u32, stride: u32) -> Result<u64, SimError> {
        let addr = a.at(&self.regs()) + i64::from(r) * i64::from(stride);
        if self.st.dram.contains(addr, u64::from(row)) {
            Ok(addr as u64)
        } else {
            Err(self.range(format!("DRAM row {r} at {addr:#x} (+{row} bytes) lies outside DRAM")))
        }
    }

    /// Charges a DRAM transfer of `rows` rows of `row` bytes: the data mover waits for the
    /// shared DRAM port, streams the bytes at the DRAM bandwidth and pays its latency.
    fn dram_time(&mut self, rows: u16, row: u32) {
        let d = &self.st.chip.dram;
        let bytes = u64::from(rows) * u64::from(row);
        let transfer = bytes.div_ceil(u64::from(d.bytes_per_cycle.max(1)));
        let accesses = u64::from(rows) * (u64::from(row) * 8).div_ceil(u64::from(d.access_bits.max(1)));
        let (latency, energy) = (u64::from(d.latency_cycles), d.energy_pj_per_access);
        let start = self.now.max(self.st.dram_free);
        self.st.dram_free = start + transfer;
        self.stall = start - self.now;
        self.busy = transfer + latency;
        self.st.stats.dram.accesses += accesses;
        self.st.stats.energy.dram_pj += accesses as f64 * energy;
    }

    pub(crate) fn dma_load(&mut self, dst: &Access, src: &DramAddr, rows: u16, row: u32, stride: u32) -> Step {
        self.check_bits("dst", dst, u64::from(rows) * u64::from(row) * 8)?;
        let sp = self.span("dst", dst)?;
        if self.load_short_bits(sp, src, (rows, row, stride)) {
            self.touch(dst.buf, sp.len);
            self.dram_time(rows, row);
            return Ok(Flow::Next);
        }
        // The bytes go through the state's transfer vector, so a load allocates nothing;
        // `read_rows` writes every byte or fails, so the vector is not zeroed first.
        let mut bytes = std::mem::take(&mut self.st.bytes);
        let n = rows as usize * row as usize;
        let r = self.read_rows(src, (rows, row, stride), super::buffers::prefix(&mut bytes, n));
        if r.is_ok() {
            self.st.bufs[sp.slot].load_bytes(sp.start, &bytes[..n]);
        }
        self.st.bytes = bytes;
        r?;
        if S::NAME == "f32" && self.st.bufs[sp.slot].elem_bits() == 16 {
            self.load_wide(sp, src, (rows, row, stride))?;
        }
        self.touch(dst.buf, sp.len);
        self.dram_time(rows, row);
        Ok(Flow::Next)
    }

    /// The start of a transfer of `rows` rows of `row` bytes, `stride` bytes apart, and the
    /// kind of its traffic, when the whole span lies inside DRAM and inside one named range
    /// (or one gap between them), so that it is read in one walk and counted at once.
    fn one_kind_span(&self, at: &DramAddr, (rows, row, stride): (u16, u32, u32)) -> Option<(u64, DramKind)> {
        let base = at.at(&self.regs());
        let span = i64::from(rows.saturating_sub(1)) * i64::from(stride) + i64::from(row);
        if rows == 0 || !self.st.dram.contains(base, span.max(0) as u64) {
            return None;
        }
        let (kind, until) = self.st.classify.kind_until(base as u64);
        (base as u64 + span as u64 <= until).then_some((base as u64, kind))
    }

    /// A load of rows of at most 8 bytes into a 1-bit buffer (a chunk of input spikes per
    /// sample and timestep), straight from DRAM into the bits without the byte vector, when
    /// [`one_kind_span`](Self::one_kind_span) allows one walk; returns whether it did it.
    /// The bits are those `read_rows` and `load_bytes` would leave, and so is the count.
    fn load_short_bits(&mut self, sp: Span, src: &DramAddr, (rows, row, stride): (u16, u32, u32)) -> bool {
        if row == 0 || row > 8 || self.st.bufs[sp.slot].as_bits().is_none() {
            return false;
        }
        let Some((base, kind)) = self.one_kind_span(src, (rows, row, stride)) else {
            return false;
        };
        if let Some(bits) = self.st.bufs[sp.slot].as_bits_mut() {
            let walk = (row as usize, u64::from(stride));
            self.st.dram.read_strided_bits(base, walk, usize::from(rows), (bits, sp.start));
        }
        self.count_read(Some((kind, u64::from(rows) * u64::from(row))));
        true
    }

    /// Reads `rows` rows of `row` bytes, `stride` bytes apart, into `bytes` and counts them
    /// by traffic kind. When every row lies inside DRAM the range is checked once and
    /// consecutive rows of one kind are counted together; otherwise the rows are checked one
    /// by one, so the error names the first row outside DRAM.
    fn read_rows(
        &mut self,
        src: &DramAddr,
        (rows, row, stride): (u16, u32, u32),
        bytes: &mut [u8],
    ) -> Result<(), SimError> {
        // The common case: one walk, counted at once.
        if let Some((base, kind)) = self.one_kind_span(src, (rows, row, stride)) {
            self.st.dram.read_strided_short(base, (row as usize, u64::from(stride)), bytes);
            self.count_read(Some((kind, u64::from(rows) * u64::from(row))));
            return Ok(());
        }
        let base = src.at(&self.regs());
        let span = i64::from(rows.saturating_sub(1)) * i64::from(stride) + i64::from(row);
        let all_inside = rows == 0 || self.st.dram.contains(base, span.max(0) as u64);
        let mut runs = KindRuns::new();
        for (r, chunk) in bytes.chunks_mut(row.max(1) as usize).enumerate() {
            let addr = if all_inside {
                (base + r as i64 * i64::from(stride)) as u64
            } else {
                match self.dram_row(src, r as u16, row, stride) {
                    Ok(addr) => addr,
                    Err(e) => {
                        // The rows before the bad one were read, and count as traffic.
                        self.count_read(runs.run);
                        return Err(e);
                    }
                }
            };
            self.st.dram.read_row(addr, chunk);
            let ended = runs.add(&self.st.classify, addr, u64::from(row));
            self.count_read(ended);
        }
        self.count_read(runs.run);
        Ok(())
    }

    /// Adds a run of DRAM bytes read to the traffic of its kind.
    fn count_read(&mut self, run: Option<(DramKind, u64)>) {
        if let Some((kind, n)) = run {
            *self.st.stats.dram.read.entry(kind).or_default() += n;
        }
    }

    /// Replaces loaded FP16 values by the FP32 values DRAM recorded for them.
    fn load_wide(&mut self, sp: Span, src: &DramAddr, (rows, row, stride): (u16, u32, u32)) -> Result<(), SimError> {
        let per = row as usize / 2;
        let mut vals = self.st.bufs[sp.slot].vals(sp.range());
        for r in 0..usize::from(rows) {
            let addr = self.dram_row(src, r as u16, row, stride)?;
            for (j, w) in self.st.dram.wide(addr, per).into_iter().enumerate() {
                if let (Some(w), Some(v)) = (w, vals.get_mut(r * per + j)) {
                    *v = w;
                }
            }
        }
        self.st.bufs[sp.slot].set_vals(sp.start, &vals);
        Ok(())
    }

    pub(crate) fn dma_store(&mut self, dst: &DramAddr, src: &Access, rows: u16, row: u32, stride: u32) -> Step {
        self.check_bits("src", src, u64::from(rows) * u64::from(row) * 8)?;
        let sp = self.span("src", src)?;
        // The bytes go through the state's transfer vector, so a store allocates nothing.
        let mut bytes = std::mem::take(&mut self.st.bytes);
        let n = self.st.bufs[sp.slot].bytes_into(sp.range(), &mut bytes);
        let r = self.write_rows(dst, sp, (rows, row, stride), &bytes[..n]);
        self.st.bytes = bytes;
        r?;
        self.touch(src.buf, sp.len);
        self.dram_time(rows, row);
        Ok(Flow::Next)
    }

    /// Writes the `rows` rows of `row` bytes of `bytes` (the packed form of `sp`), `stride`
    /// bytes apart, and counts them by traffic kind. When every row lies inside DRAM the
    /// range is checked once, the rows are written in one strided walk and consecutive rows
    /// of one kind are counted together; otherwise, and for FP32-held values, the rows go
    /// one by one, so the error names the first row outside DRAM after the rows before it
    /// were written and counted.
    fn write_rows(
        &mut self,
        dst: &DramAddr,
        sp: Span,
        (rows, row, stride): (u16, u32, u32),
        bytes: &[u8],
    ) -> Result<(), SimError> {
        // FP32-held 16-bit values keep their precision through DRAM (see `Dram`).
        let buf = &self.st.bufs[sp.slot];
        let wide = (S::NAME == "f32" && buf.elem_bits() == 16).then(|| buf.vals(sp.range()));
        let base = dst.at(&self.regs());
        let span = i64::from(rows.saturating_sub(1)) * i64::from(stride) + i64::from(row);
        if wide.is_none() && rows > 0 && row > 0 && self.st.dram.contains(base, span as u64) {
            self.st.dram.write_strided(base as u64, (row as usize, u64::from(stride)), bytes);
            self.count_written(base as u64, (rows, row, stride));
            return Ok(());
        }
        let per = (row as usize / 2).max(1);
        for (r, chunk) in bytes.chunks(row.max(1) as usize).enumerate().take(usize::from(rows)) {
            let addr = self.dram_row(dst, r as u16, row, stride)?;
            match &wide {
                Some(v) => self.st.dram.write_wide(addr, chunk, v.get(r * per..(r + 1) * per).unwrap_or(&[])),
                None => self.st.dram.write(addr, chunk),
            }
            let kind = self.st.classify.kind(addr);
            *self.st.stats.dram.written.entry(kind).or_default() += u64::from(row);
        }
        Ok(())
    }

    /// Counts `rows` rows of `row` bytes written `stride` bytes apart from `base` (all
    /// inside DRAM, `rows` and `row` non-zero) by traffic kind: at once when one named
    /// range holds them all, else in runs of consecutive rows of one kind (the same totals
    /// as a count per row).
    fn count_written(&mut self, base: u64, (rows, row, stride): (u16, u32, u32)) {
        let span = u64::from(rows - 1) * u64::from(stride) + u64::from(row);
        let (kind, until) = self.st.classify.kind_until(base);
        let written = &mut self.st.stats.dram.written;
        if base + span <= until {
            *written.entry(kind).or_default() += u64::from(rows) * u64::from(row);
            return;
        }
        let mut runs = KindRuns::new();
        for r in 0..u64::from(rows) {
            let addr = base + r * u64::from(stride);
            if let Some((k, n)) = runs.add(&self.st.classify, addr, u64::from(row)) {
                *written.entry(k).or_default() += n;
            }
        }
        if let Some((k, n)) = runs.run {
            *written.entry(k).or_default() += n;
        }
    }

    pub(crate) fn noc_send(&mut self, to: u16, chan: u8, src: &Access) -> Step {
        let dest = self.core_index("to", to)?;
        self.channel(chan)?;
        let sp = self.span("src", src)?;
        let chunk = self.st.bufs[sp.slot].chunk(sp.range());
        let bytes = chunk.byte_len() as u64;
        let noc = &self.st.chip.noc;
        let hops = u64::from(self.st.chip.hops(self.core, dest).unwrap_or(0));
        let serial = bytes.div_ceil(u64::from(noc.link_bytes_per_cycle.max(1)));
        let arrival = self.now + 1 + serial + hops * u64::from(noc.hop_latency_cycles);
        let energy = (bytes * hops) as f64 * noc.energy_pj_per_byte_hop;
        let key = (self.core as u16, to, chan);
        let q = self.st.chans.entry(key).or_default();
        if q.len() >= MAX_PENDING {
            return Err(self.range(format!("channel {chan} to core {to} holds {MAX_PENDING} unreceived messages")));
        }
        q.push_back(Msg { arrival, chunk });
        let n = &mut self.st.stats.noc;
        (n.messages, n.bytes, n.byte_hops) = (n.messages + 1, n.bytes + bytes, n.byte_hops + bytes * hops);
        self.st.stats.energy.noc_pj += energy;
        let a = self.touch(src.buf, sp.len).div_ceil(self.pe_array().1);
        self.busy = 1 + serial.max(a);
        (0..NSTREAM).for_each(|s| self.wake(dest * NSTREAM + s));
        Ok(Flow::Next)
    }

    pub(crate) fn noc_recv(&mut self, from: u16, chan: u8, dst: &Access) -> Step {
        self.core_index("from", from)?;
        self.channel(chan)?;
        let sp = self.span("dst", dst)?;
        let key = (from, self.core as u16, chan);
        let Some(msg) = self.st.chans.get_mut(&key).and_then(|q| q.pop_front()) else {
            return Ok(Flow::Block(WaitFor::Message { from, chan }));
        };
        let want = sp.len as u64 * u64::from(self.st.info[dst.buf.index()].elem_bits);
        if msg.chunk.bits() as u64 != want {
            let got = msg.chunk.bits();
            return Err(self.bad(format!("received {got} bits from core {from} on channel {chan}, `dst` holds {want}")));
        }
        self.st.bufs[sp.slot].put_chunk(sp.start, msg.chunk);
        self.stall = msg.arrival.saturating_sub(self.now);
        let a = self.touch(dst.buf, sp.len);
        self.mover(&[a]);
        Ok(Flow::Next)
    }

    pub(crate) fn copy(&mut self, dst: &Access, src: &Access) -> Step {
        let bits = u64::from(src.len) * u64::from(self.st.info[src.buf.index()].elem_bits);
        self.check_bits("dst", dst, bits)?;
        let (d, s) = (self.span("dst", dst)?, self.span("src", src)?);
        if self.st.bufs[s.slot].elem_bits() == self.st.bufs[d.slot].elem_bits() && (s.slot != d.slot || s.len == d.len)
        {
            super::buffers::BufData::copy_rows(&mut self.st.bufs, (s.slot, d.slot), [(s.start, d.start, s.len)]);
        } else {
            let chunk = self.st.bufs[s.slot].chunk(s.range());
            self.st.bufs[d.slot].put_chunk(d.start, chunk);
        }
        let acc = [self.touch(src.buf, s.len), self.touch(dst.buf, d.len)];
        self.mover(&acc);
        Ok(Flow::Next)
    }

    /// Moves a `c x h x w` map between a dense range and the interior of a padded one, one
    /// row of `w` elements at a time; the border of the padded range is not touched.
    pub(crate) fn pad(&mut self, dst: &Access, src: &Access, g: PadDims, extract: bool) -> Step {
        self.check_pad(dst, src, g, extract)?;
        let (d, s) = (self.span("dst", dst)?, self.span("src", src)?);
        let w = usize::from(g.w);
        if extract || !self.pad_spike_rows(g, (s.slot, s.start), (d.slot, d.start)) {
            let rows = (0..usize::from(g.c) * usize::from(g.h)).map(|row| {
                let (dense_at, padded_at) = (row * w, g.padded_row(row));
                let (from, to) = if extract { (padded_at, dense_at) } else { (dense_at, padded_at) };
                (s.start + from, d.start + to, w)
            });
            super::buffers::BufData::copy_rows(&mut self.st.bufs, (s.slot, d.slot), rows);
        }
        let elems = g.dense_len() as usize;
        let acc = [self.touch(src.buf, elems), self.touch(dst.buf, elems)];
        self.mover(&acc);
        Ok(Flow::Next)
    }

    /// Pads a spike map into another 1-bit buffer whose padded rows fit a word, channel by
    /// channel, with [`SpikeBits::pad_rows_from`]; returns whether it applied (otherwise
    /// `pad` copies row by row). Checked operands only.
    ///
    /// [`SpikeBits::pad_rows_from`]: crate::spikes::SpikeBits::pad_rows_from
    fn pad_spike_rows(&mut self, g: PadDims, (ss, s0): (usize, usize), (ds, d0): (usize, usize)) -> bool {
        let (c, h, w, p) = (usize::from(g.c), usize::from(g.h), usize::from(g.w), usize::from(g.p));
        let pitch = w + 2 * p;
        if ss == ds || pitch > 64 {
            return false;
        }
        let (lo, hi) = self.st.bufs.split_at_mut(ss.max(ds));
        let (src, dst) = if ss < ds { (&lo[ss], &mut hi[0]) } else { (&hi[0], &mut lo[ds]) };
        let (Some(src), Some(dst)) = (src.as_bits(), dst.as_bits_mut()) else { return false };
        for ch in 0..c {
            // The first interior row of channel `ch` starts at padded row `ch·(h+2p) + p`.
            let to = d0 + (ch * (h + 2 * p) + p) * pitch;
            dst.pad_rows_from(src, s0 + ch * h * w, (to, h), (w, p));
        }
        true
    }

    /// Checks the operands of `pad`: non-zero dimensions, one element width on both sides,
    /// and lengths matching the dense and padded shapes.
    fn check_pad(&self, dst: &Access, src: &Access, g: PadDims, extract: bool) -> Result<(), SimError> {
        if g.c == 0 || g.h == 0 || g.w == 0 {
            return Err(self.range(format!("`pad` dimensions c={} h={} w={} must be at least 1", g.c, g.h, g.w)));
        }
        let (db, sb) = (self.st.info[dst.buf.index()].elem_bits, self.st.info[src.buf.index()].elem_bits);
        if db != sb {
            return Err(self.bad(format!(
                "operand `dst` (`{}`) holds {db}-bit elements but `src` (`{}`) holds {sb}-bit ones",
                dst.buf, src.buf
            )));
        }
        let (dst_len, src_len) =
            if extract { (g.dense_len(), g.padded_len()) } else { (g.padded_len(), g.dense_len()) };
        for (name, a, want) in [("dst", dst, dst_len), ("src", src, src_len)] {
            if u64::from(a.len) != want {
                return Err(self.bad(format!("operand `{name}` has {} elements; the shape needs {want}", a.len)));
            }
        }
        Ok(())
    }

    pub(crate) fn fill(&mut self, dst: &Access, value: f32) -> Step {
        let d = self.span("dst", dst)?;
        self.st.bufs[d.slot].fill(d.range(), value);
        let a = self.touch(dst.buf, d.len);
        self.mover(&[a]);
        Ok(Flow::Next)
    }
}
