//! The instruction-level simulator: executes an [`isa::Program`] on a [`ChipDesc`].
//!
//! # Model
//!
//! A [`Machine`] holds the whole chip: a byte-addressed DRAM initialised from the
//! program's data segments, the named buffers of every engine of every core (1-bit buffers
//! bit-packed, 16-bit ones in the storage type of the precision mode, 32-bit ones as
//! `f32`), the shared optimizer store `opt`, the neuron and optimizer configuration slots
//! of each core, and per stream a program counter, eight loop registers, sixteen token
//! counters and a clock. [`Machine::run`] runs every stream to `halt` and returns
//! [`RunStats`]; memories and configuration persist between runs, so a trainer places a
//! batch with [`Machine::write_f16`] (or any `write_*`), runs, and reads the loss and
//! weights back by symbol.
//!
//! **Function.** Every instruction is executed by an implementation of [`isa::Visitor`]
//! (no opcode matching here) that calls the numeric kernels of [`crate::kernels`]: IEEE
//! binary16 storage with one rounding per operation, accumulators of the chip's width,
//! 1-bit spikes and masks, FP32 master weights and optimizer state. Work that the engines
//! skip (zero spikes with `skip=true`, errors the `nz` bitmap marks zero) is skipped for
//! real and counted.
//!
//! **Time.** Streams are in-order units with local clocks, scheduled by a deterministic
//! discrete-event loop (`sched.rs`). An engine instruction takes one issue cycle plus the
//! larger of its compute time (executed operations over the `rows x cols` PE array, or
//! elements over `cols` soma lanes) and its busiest buffer's accesses (`width_bits` per
//! access, one bank per PE column). A DMA waits for the shared DRAM port, streams at
//! `bytes_per_cycle` and pays the DRAM latency. A NoC message arrives after its
//! serialisation (`bytes / link_bytes_per_cycle`) plus `hops x hop_latency_cycles`. Waits,
//! receives and barriers complete at the later of the stream's clock and the partner's.
//!
//! **Energy.** Compute: executed operations times the chip's energy per operation (a
//! spike-gated add is an add plus a sixteenth of a mux; BP multiply-adds are a multiply
//! plus an add; WG accumulates in FP32). SRAM: accesses times each buffer's energy. DRAM:
//! accesses of `access_bits` times the energy per access. NoC: byte-hops times the energy
//! per byte-hop.

mod bp;
mod buffers;
mod dram;
mod engine;
mod error;
mod exec;
mod fp;
mod governor;
mod jobs;
mod row_jobs;
mod rows;
mod sched;
mod soma;
mod soma_rows;
mod state;
mod stats;
mod update;
mod visit;
mod wg;
mod workers;

#[cfg(test)]
mod tests;

pub use dram::DramKind;
pub use error::{Blocked, Location, SimError, WaitFor};
pub use stats::{DramStats, Energy, KindProfile, LayerStats, NocStats, RunStats, StreamStats, Trace, TraceEvent};

use crate::fp::{Precision, Storage};
use half::f16;
use isa::{AccWidth, Buf, ChipDesc, CoreCode, OPS, Program, SymbolKind};
use state::State;

/// How to run a program.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Numeric mode; `None` takes it from the chip's numerics (`fp32_storage` gives
    /// [`Precision::Fp32`], else the accumulator width picks fp16 with f32 or f16
    /// accumulators).
    pub precision: Option<Precision>,
    /// Record a timeline ([`RunStats::trace`]).
    pub trace: bool,
    /// Stop with [`SimError::CycleLimit`] once any stream's clock passes this.
    pub max_cycles: u64,
    /// Host threads a run computes its conv instructions and large fc tiles on, the
    /// scheduler's own among them (see `jobs.rs`); `None` takes [`crate::host_threads`], or
    /// one thread in a run that is itself one of several on the thread pool, and lets the
    /// machine run without its worker threads while that is faster (see `governor.rs`). No
    /// result depends on it.
    pub threads: Option<usize>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions { precision: None, trace: false, max_cycles: 1 << 40, threads: None }
    }
}

/// The machine state in one of the two storage types.
#[derive(Debug, Clone)]
enum Inner {
    Half(Box<State<f16>>),
    Single(Box<State<f32>>),
}

/// Calls `$body` with `$st` bound to the state, whatever its storage type.
macro_rules! with_state {
    ($inner:expr, $st:ident => $body:expr) => {
        match $inner {
            Inner::Half($st) => $body,
            Inner::Single($st) => $body,
        }
    };
}

/// A chip loaded with a program.
#[derive(Debug, Clone)]
pub struct Machine {
    code: Vec<CoreCode>,
    program: Program,
    options: SimOptions,
    precision: Precision,
    inner: Inner,
    /// Whether runs use worker threads, when the thread count is left to the default.
    governor: governor::Governor,
}

impl Machine {
    /// Loads `program` onto `chip`; the program's header must name this chip.
    pub fn new(program: &Program, chip: &ChipDesc, options: SimOptions) -> Result<Machine, SimError> {
        let h = &program.header;
        if usize::from(h.chip_cores) != chip.core_count() || h.chip_hash != chip.hash() {
            return Err(SimError::ChipMismatch {
                program_cores: h.chip_cores,
                program_hash: h.chip_hash,
                chip_cores: chip.core_count(),
                chip_hash: chip.hash(),
            });
        }
        if program.cores.len() > chip.core_count() {
            return Err(SimError::Chip(format!("the program has code for {} cores", program.cores.len())));
        }
        let precision = options.precision.unwrap_or(match (chip.numerics.fp32_storage, chip.numerics.accumulator) {
            (true, _) => Precision::Fp32,
            (false, AccWidth::Fp32) => Precision::Fp16Acc32,
            (false, AccWidth::Fp16) => Precision::Fp16Acc16,
        });
        let mode = precision.accum();
        let inner = if precision.is_f16() {
            Inner::Half(Box::new(State::new(program, chip, mode)?))
        } else {
            Inner::Single(Box::new(State::new(program, chip, mode)?))
        };
        let stripped = Program { cores: Vec::new(), ..program.clone() };
        let governor = governor::Governor::default();
        Ok(Machine { code: program.cores.clone(), program: stripped, options, precision, inner, governor })
    }

    /// The numeric mode the machine runs in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Replaces the loaded code by `program`'s and keeps everything else — DRAM, buffers,
    /// configuration slots — as a host loads the next program of a job onto a chip whose
    /// memory holds the job's tensors (`snnc train` alternates training and inference
    /// programs this way). `program` must be built for the same chip and have the same
    /// tensor symbols at the same addresses; its data segments are not loaded.
    pub fn load_code(&mut self, program: &Program) -> Result<(), SimError> {
        let h = &program.header;
        let tensors = |p: &Program| -> Vec<(String, u32, u32)> {
            let list = p.symbols.iter().filter(|s| s.kind == SymbolKind::Tensor);
            list.map(|s| (s.name.clone(), s.addr, s.len)).collect()
        };
        if h.chip_hash != self.program.header.chip_hash || tensors(program) != tensors(&self.program) {
            return Err(SimError::Chip("the program's chip or DRAM tensors differ from the loaded program's".into()));
        }
        with_state!(&mut self.inner, st => {
            if program.cores.len() > st.cores {
                return Err(SimError::Chip(format!("the program has code for {} cores", program.cores.len())));
            }
            st.load_code(program)
        });
        self.code = program.cores.clone();
        self.program = Program { cores: Vec::new(), ..program.clone() };
        Ok(())
    }

    /// Makes this machine's DRAM a copy of `other`'s, keeping its own code and on-chip
    /// state: a second machine running the same programs on the same tensors (as the
    /// trainer's evaluation threads do) is brought up to date without a full clone.
    pub fn copy_dram_from(&mut self, other: &Machine) -> Result<(), SimError> {
        match (&mut self.inner, &other.inner) {
            (Inner::Half(a), Inner::Half(b)) => a.dram.copy_from(&b.dram),
            (Inner::Single(a), Inner::Single(b)) => a.dram.copy_from(&b.dram),
            _ => return Err(SimError::Chip("the machines store tensors in different precisions".into())),
        }
        Ok(())
    }

    /// Runs every stream from its first instruction to `halt`.
    pub fn run(&mut self) -> Result<RunStats, SimError> {
        let (code, opts) = (&self.code, &self.options);
        // With the thread count left to the default, the machine keeps to whichever of runs
        // with and without worker threads was faster lately (see `governor.rs`).
        let governed = opts.threads.is_none() && job_threads(opts) > 0;
        let workers = !governed || self.governor.use_workers();
        let start = std::time::Instant::now();
        let run = with_state!(&mut self.inner, st => run_state(code, st, opts, workers));
        if governed {
            self.governor.record(workers, start.elapsed());
        }
        run
    }

    /// The DRAM range of a tensor: its tensor symbol, else its data segment.
    fn tensor(&self, name: &str) -> Result<(u64, usize), SimError> {
        let p = &self.program;
        let sym = p.symbols.iter().find(|s| s.kind == SymbolKind::Tensor && s.name == name);
        let found = sym.map(|s| (u64::from(s.addr), s.len as usize));
        found
            .or_else(|| p.data.iter().find(|d| d.name == name).map(|d| (u64::from(d.addr), d.bytes.len())))
            .ok_or_else(|| SimError::UnknownSymbol(name.to_string()))
    }

    /// Writes a whole tensor's bytes into DRAM.
    pub fn write_symbol(&mut self, name: &str, bytes: &[u8]) -> Result<(), SimError> {
        let (addr, len) = self.tensor(name)?;
        if bytes.len() != len {
            return Err(SimError::SymbolSize { name: name.to_string(), expected: len, found: bytes.len() });
        }
        with_state!(&mut self.inner, st => {
            if !st.dram.contains(addr as i64, len as u64) {
                return Err(SimError::Chip(format!("tensor `{name}` lies outside DRAM")));
            }
            st.dram.write(addr, bytes)
        });
        Ok(())
    }

    /// Reads a whole tensor's bytes from DRAM.
    pub fn read_symbol(&self, name: &str) -> Result<Vec<u8>, SimError> {
        let (addr, len) = self.tensor(name)?;
        let mut out = vec![0u8; len];
        with_state!(&self.inner, st => {
            if !st.dram.contains(addr as i64, len as u64) {
                return Err(SimError::Chip(format!("tensor `{name}` lies outside DRAM")));
            }
            st.dram.read(addr, &mut out)
        });
        Ok(out)
    }

    /// Writes a tensor of binary16 values (each rounded from `values`).
    pub fn write_f16(&mut self, name: &str, values: &[f32]) -> Result<(), SimError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
        self.write_symbol(name, &bytes)
    }

    /// Reads a tensor of binary16 values.
    pub fn read_f16(&self, name: &str) -> Result<Vec<f32>, SimError> {
        let b = self.read_symbol(name)?;
        Ok(b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
    }

    /// Reads a tensor of 16-bit values at the precision the machine stored them: binary16,
    /// except that with FP32 storage the values the program stored keep their FP32 value
    /// (the DRAM layout stays binary16; see the `fp32_storage` note of the DRAM model).
    pub fn read_values(&self, name: &str) -> Result<Vec<f32>, SimError> {
        let (addr, len) = self.tensor(name)?;
        let mut values = self.read_f16(name)?;
        with_state!(&self.inner, st => {
            for (v, w) in values.iter_mut().zip(st.dram.wide(addr, len / 2)) {
                if let Some(w) = w {
                    *v = w;
                }
            }
        });
        Ok(values)
    }

    /// Writes a tensor of binary32 values.
    pub fn write_f32(&mut self, name: &str, values: &[f32]) -> Result<(), SimError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write_symbol(name, &bytes)
    }

    /// Reads a tensor of binary32 values.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, SimError> {
        let b = self.read_symbol(name)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Writes a bit-packed spike tensor (bit `i` in bit `i % 8` of byte `i / 8`); the
    /// tensor must hold `ceil(len / 8)` bytes.
    pub fn write_spikes(&mut self, name: &str, spikes: &[bool]) -> Result<(), SimError> {
        let mut bytes = vec![0u8; spikes.len().div_ceil(8)];
        spikes.iter().enumerate().filter(|(_, s)| **s).for_each(|(i, _)| bytes[i / 8] |= 1 << (i % 8));
        self.write_symbol(name, &bytes)
    }

    /// Lets `fp.lif` and `bp.soma` run in place or not (tests hold the two paths against
    /// each other).
    #[cfg(test)]
    pub(crate) fn set_soma_in_place(&mut self, on: bool) {
        with_state!(&mut self.inner, st => st.soma_in_place = on);
    }

    /// The values of a buffer range of one core, as f32 (for tests and debugging tools).
    pub fn buffer(&self, core: usize, buf: Buf, start: usize, len: usize) -> Option<Vec<f32>> {
        with_state!(&self.inner, st => {
            let slot = (core < st.cores).then(|| st.slot(core, buf))?;
            let d = &st.bufs[slot];
            (start.checked_add(len)? <= d.len()).then(|| d.vals(start..start + len))
        })
    }
}

/// The worker threads a run starts for its conv jobs: one fewer than its host threads, the
/// scheduler's thread being the other. A run that is itself one of several on the thread
/// pool (the evaluation runs of `train`) takes one thread unless told otherwise: the
/// pool's threads are busy already.
fn job_threads(opts: &SimOptions) -> usize {
    let pooled = rayon::current_thread_index().is_some();
    opts.threads.unwrap_or(if pooled { 1 } else { crate::host_threads() }).saturating_sub(1)
}

/// One run on a state of either storage type, and the final tallies; `workers` says
/// whether it starts its worker threads (see [`job_threads`]).
fn run_state<S: Storage>(
    code: &[CoreCode],
    st: &mut State<S>,
    opts: &SimOptions,
    workers: bool,
) -> Result<RunStats, SimError> {
    st.reset_run(code, opts.trace);
    workers::with_workers(if workers { job_threads(opts) } else { 0 }, |queue| {
        st.jobs.start(st.bufs.len(), queue);
        let run = sched::run(code, st, opts.max_cycles);
        // Every job's output is back in its buffer when a run returns, failed or not.
        jobs::join_all(st);
        st.jobs.stop();
        run
    })?;
    let mut stats = std::mem::take(&mut st.stats);
    stats.time_us = stats.cycles as f64 / f64::from(st.chip.clock_mhz.max(1));
    stats.energy.compute_pj = st.compute.pj();
    for (b, (n, info)) in Buf::ALL.iter().zip(st.sram.iter().zip(&st.info)) {
        if *n > 0 {
            stats.sram_accesses.insert(b.name().to_string(), *n);
            stats.energy.sram_pj += *n as f64 * info.energy_pj;
        }
    }
    for (op, k) in OPS.iter().zip(&st.kinds).filter(|(_, k)| k.count > 0) {
        stats.profile.insert(op.mnemonic.to_string(), k.clone());
    }
    stats.trace = st.trace.take().map(|events| Trace { clock_mhz: st.chip.clock_mhz, events });
    st.stats.layers = stats.layers.clone();
    Ok(stats)
}
