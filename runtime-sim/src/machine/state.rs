//! The machine state: DRAM, buffers, configuration slots, streams and their
//! synchronisation, and the counters of the run in progress.

use super::buffers::{BufData, Chunk, Span};
use super::dram::{Classifier, Dram};
use super::error::{SimError, WaitFor};
use super::stats::{KindProfile, LayerStats, RunStats, StreamStats, TraceEvent};
use crate::fp::{Accum, Storage};
use crate::kernels::soma::LifParams;
use isa::{
    Buf, ChipDesc, CoreCode, Instr, NUM_CFG_SLOTS, NUM_LOOP_REGS, NUM_TOKENS, OPS, Opcode, OptKind, Program, Reg,
};
use isa::{Stream, SymbolKind};
use std::collections::{BTreeMap, VecDeque};

/// Buffers per core (one slot per [`Buf`]; the shared `opt` store lives in core 0's slot).
pub(crate) const NBUF: usize = 15;
/// Streams per core.
pub(crate) const NSTREAM: usize = 4;

/// The chip description of one buffer, as the simulator uses it.
#[derive(Debug, Clone)]
pub(crate) struct BufInfo {
    pub(crate) elem_bits: u32,
    pub(crate) width_bits: u32,
    pub(crate) energy_pj: f64,
    pub(crate) elems: usize,
}

/// An optimizer configuration slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptSlot {
    pub(crate) kind: OptKind,
    pub(crate) lr: f32,
    pub(crate) m: f32,
    pub(crate) beta2: f32,
    pub(crate) eps: f32,
    pub(crate) wd: f32,
    pub(crate) step: u32,
}

/// An open loop: its counter, first body instruction and trip count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub(crate) reg: Reg,
    pub(crate) body: usize,
    pub(crate) n: u32,
}

/// One instruction stream's architectural state and clock.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamState {
    pub(crate) pc: usize,
    pub(crate) clock: u64,
    pub(crate) regs: [u32; NUM_LOOP_REGS],
    pub(crate) loops: Vec<Frame>,
    pub(crate) halted: bool,
    pub(crate) blocked: Option<WaitFor>,
    /// Per token, the times of the signals not yet consumed.
    pub(crate) tokens: Vec<VecDeque<u64>>,
    /// Set when a barrier this stream arrived at has released, to the release time.
    pub(crate) released: Option<u64>,
}

/// A NoC message in flight or waiting to be received.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) arrival: u64,
    pub(crate) chunk: Chunk,
}

/// The whole machine, generic over the storage type of 16-bit buffers.
#[derive(Debug, Clone)]
pub(crate) struct State<S> {
    pub(crate) chip: ChipDesc,
    pub(crate) mode: Accum,
    pub(crate) cores: usize,
    pub(crate) dram: Dram,
    pub(crate) classify: Classifier,
    pub(crate) info: Vec<BufInfo>,
    pub(crate) bufs: Vec<BufData<S>>,
    pub(crate) neuron: Vec<[Option<LifParams>; NUM_CFG_SLOTS as usize]>,
    pub(crate) opt: Vec<[Option<OptSlot>; NUM_CFG_SLOTS as usize]>,
    pub(crate) streams: Vec<StreamState>,
    pub(crate) chans: BTreeMap<(u16, u16, u8), VecDeque<Msg>>,
    pub(crate) barriers: BTreeMap<u8, Vec<(usize, u64)>>,
    pub(crate) dram_free: u64,
    /// Streams woken by the instruction just executed.
    pub(crate) wake: Vec<usize>,
    /// Per stream, per instruction: the matching `endloop` of a `loop`.
    pub(crate) loop_end: Vec<Vec<Option<usize>>>,
    /// Per stream, per instruction: the layer (index into `stats.layers`) it belongs to.
    pub(crate) layer_of: Vec<Vec<Option<usize>>>,
    pub(crate) stats: RunStats,
    pub(crate) sram: Vec<u64>,
    /// Operations charged at each energy per operation, turned into the compute energy at
    /// the end of a run (as the SRAM accesses are into SRAM energy).
    pub(crate) compute: ComputeTally,
    pub(crate) kinds: Vec<KindProfile>,
    pub(crate) trace: Option<Vec<TraceEvent>>,
    pub(crate) scratch: Vec<f32>,
    /// The weight tile of the current multi-row instruction, widened to f32 once.
    pub(crate) wide: Vec<f32>,
    /// The processed errors of a `wg.linear` row, reused.
    pub(crate) cols: Vec<(usize, f32)>,
    /// Blocks of sixteen lanes, reused: the errors of the rows of a `wg.linear` chunk, one
    /// block per row, or the weights of an `fp.linear` tile, one block per input.
    pub(crate) lanes: Vec<crate::kernels::tile_rows::Lanes>,
    /// Per-row operation counts of the current multi-row instruction.
    pub(crate) row_ops: Vec<crate::kernels::OpCount>,
    /// Vectors the soma and conv instructions copy their operands into (or use as
    /// temporaries), returned after each instruction so that a step allocates none.
    pub(crate) pool: Vec<Vec<S>>,
    /// Bit tensors the soma instructions build their spikes, masks and nonzero bitmaps
    /// in, returned after each instruction like `pool`.
    pub(crate) bit_pool: Vec<crate::spikes::SpikeBits>,
    /// Whether `fp.lif` and `bp.soma` may run in place (see `soma.rs`); false only in tests
    /// that hold the in-place paths against the copying ones.
    pub(crate) soma_in_place: bool,
    /// The bytes of the current DMA transfer, reused from instruction to instruction.
    pub(crate) bytes: Vec<u8>,
    /// The conv instructions whose arithmetic is still running (see `jobs.rs`), and their
    /// working memory, reused from instruction to instruction.
    pub(crate) jobs: super::jobs::Jobs<S>,
    /// Each core's last `wg.conv` errors, laid out: the cores take turns, and each runs
    /// many weight gradients against the same errors (see [`crate::kernels::ErrorCache`]).
    pub(crate) wg_errors: Vec<crate::kernels::ErrorCache>,
    /// Each core's last `wg.conv` errors, masked, for its next one (see
    /// `Exec::shared_masked_err`).
    pub(crate) wg_masked: Vec<Option<std::sync::Arc<Vec<S>>>>,
}

impl<S: Storage> State<S> {
    /// A fresh machine for `program` on `chip`; DRAM holds the program's data segments.
    pub(crate) fn new(program: &Program, chip: &ChipDesc, mode: Accum) -> Result<State<S>, SimError> {
        let cores = chip.core_count();
        let info = buffer_info(chip)?;
        let mut bufs = Vec::with_capacity(cores * NBUF);
        for core in 0..cores {
            for (b, i) in Buf::ALL.iter().zip(&info) {
                let elems = if *b == Buf::Opt && core > 0 { 0 } else { i.elems };
                bufs.push(BufData::zeros(i.elem_bits, elems).ok_or_else(|| unsupported(*b, i.elem_bits))?);
            }
        }
        let mut dram = Dram::new(chip.dram.capacity_bytes);
        for d in &program.data {
            if !dram.contains(i64::from(d.addr), d.bytes.len() as u64) {
                return Err(SimError::Chip(format!("data segment `{}` lies outside DRAM", d.name)));
            }
            dram.write(u64::from(d.addr), &d.bytes);
        }
        let n = cores * NSTREAM;
        let mut st = State {
            chip: chip.clone(),
            mode,
            cores,
            dram,
            classify: Classifier::new(program),
            info,
            bufs,
            neuron: vec![[None; NUM_CFG_SLOTS as usize]; cores],
            opt: vec![[None; NUM_CFG_SLOTS as usize]; cores],
            streams: vec![StreamState::default(); n],
            chans: BTreeMap::new(),
            barriers: BTreeMap::new(),
            dram_free: 0,
            wake: Vec::new(),
            loop_end: vec![Vec::new(); n],
            layer_of: vec![Vec::new(); n],
            stats: RunStats::default(),
            sram: vec![0; NBUF],
            compute: ComputeTally::default(),
            kinds: vec![KindProfile::default(); OPS.len()],
            trace: None,
            scratch: Vec::new(),
            wide: Vec::new(),
            cols: Vec::new(),
            lanes: Vec::new(),
            row_ops: Vec::new(),
            pool: Vec::new(),
            bit_pool: Vec::new(),
            soma_in_place: true,
            bytes: Vec::new(),
            jobs: super::jobs::Jobs::default(),
            wg_errors: Vec::new(),
            wg_masked: Vec::new(),
        };
        st.index_code(program);
        Ok(st)
    }

    /// Switches to `program`'s code, keeping memories and configuration.
    pub(crate) fn load_code(&mut self, program: &Program) {
        // Cores the new program leaves empty must not keep the old program's tables.
        self.loop_end.iter_mut().for_each(Vec::clear);
        self.layer_of.iter_mut().for_each(Vec::clear);
        self.index_code(program);
    }

    /// Precomputes loop matches and layer membership of every instruction.
    fn index_code(&mut self, program: &Program) {
        let mut names: Vec<String> = Vec::new();
        for (c, core) in program.cores.iter().enumerate().take(self.cores) {
            for s in 0..NSTREAM {
                let code = &core.streams[s];
                let idx = c * NSTREAM + s;
                self.loop_end[idx] = match_loops(code);
                self.layer_of[idx] = vec![None; code.len()];
            }
        }
        for sym in &program.symbols {
            let SymbolKind::Layer { core, stream } = sym.kind else { continue };
            let Some(map) = self.layer_of.get_mut(usize::from(core) * NSTREAM + stream.index()) else { continue };
            let id = names.iter().position(|n| *n == sym.name).unwrap_or_else(|| {
                names.push(sym.name.clone());
                names.len() - 1
            });
            let (a, len) = (sym.addr as usize, sym.len as usize);
            map.iter_mut().skip(a).take(len).for_each(|l| *l = Some(id));
        }
        self.stats.layers = names.into_iter().map(|name| LayerStats { name, ..LayerStats::default() }).collect();
    }

    /// Readies every stream for a run from its first instruction, keeping memories and
    /// configuration, and clears the counters.
    pub(crate) fn reset_run(&mut self, code: &[CoreCode], trace: bool) {
        for (i, s) in self.streams.iter_mut().enumerate() {
            let len = code.get(i / NSTREAM).map_or(0, |c| c.streams[i % NSTREAM].len());
            s.halted = len == 0;
            s.tokens.resize_with(NUM_TOKENS as usize, VecDeque::new);
            s.tokens.iter_mut().for_each(VecDeque::clear);
            s.pc = 0;
            s.clock = 0;
            s.regs = [0; NUM_LOOP_REGS];
            s.loops.clear();
            s.blocked = None;
            s.released = None;
        }
        self.chans.clear();
        self.barriers.clear();
        self.dram_free = 0;
        let layers = self.stats.layers.iter().map(|l| LayerStats { name: l.name.clone(), ..LayerStats::default() });
        self.stats = RunStats {
            streams: vec![std::array::from_fn(|_| StreamStats::default()); self.cores],
            layers: layers.collect(),
            ..RunStats::default()
        };
        self.sram.iter_mut().for_each(|c| *c = 0);
        self.compute = ComputeTally::default();
        self.kinds.iter_mut().for_each(|k| *k = KindProfile::default());
        self.trace = trace.then(Vec::new);
    }

    /// The table slot of buffer `buf` of `core` (the shared `opt` store is core 0's).
    pub(crate) fn slot(&self, core: usize, buf: Buf) -> usize {
        if buf == Buf::Opt { buf.index() } else { core * NBUF + buf.index() }
    }

    /// Element `i` of a span as f32.
    pub(crate) fn vals(&self, sp: Span) -> Vec<f32> {
        self.bufs[sp.slot].vals(sp.range())
    }
}

fn unsupported(b: Buf, bits: u32) -> SimError {
    SimError::Chip(format!("buffer `{b}` has {bits}-bit elements; the simulator models 1, 16 and 32"))
}

/// The description of every ISA buffer, in [`Buf`] order.
fn buffer_info(chip: &ChipDesc) -> Result<Vec<BufInfo>, SimError> {
    Buf::ALL
        .iter()
        .map(|b| {
            let d = chip.buffer(*b).ok_or_else(|| SimError::Chip(format!("the chip has no buffer `{b}`")))?;
            let elems = usize::try_from(d.elems()).map_err(|_| SimError::Chip(format!("buffer `{b}` is too large")))?;
            Ok(BufInfo { elem_bits: d.elem_bits, width_bits: d.width_bits.max(1), energy_pj: d.energy_pj, elems })
        })
        .collect()
}

/// For each `loop`, the index of its matching `endloop` (by nesting; `None` if unmatched).
fn match_loops(code: &[Instr]) -> Vec<Option<usize>> {
    let mut out = vec![None; code.len()];
    let mut open = Vec::new();
    for (pc, i) in code.iter().enumerate() {
        // Opcode comparisons, not a match: execution semantics stay in the visitor.
        if i.opcode() == Opcode::Loop {
            open.push(pc);
        } else if i.opcode() == Opcode::EndLoop {
            if let Some(start) = open.pop() {
                out[start] = Some(pc);
            }
        }
    }
    out
}

/// The stream index of `(core, stream)`.
pub(crate) fn stream_index(core: usize, s: Stream) -> usize {
    core * NSTREAM + s.index()
}

/// Integer counts of the operations charged at each energy per operation (a handful of
/// distinct values: a spike-gated add, a multiply-add, a compare, ...). The compute energy
/// is `Σ count · pJ` taken once at the end of a run, so it does not depend on how the
/// operations were grouped into instructions or rows, and charging a row is an integer add.
#[derive(Clone, Debug, Default)]
pub(crate) struct ComputeTally {
    /// `(pJ per operation, operations)`, in the order the energies were first charged.
    counts: Vec<(f64, u64)>,
}

impl ComputeTally {
    /// Charges `ops` operations of `pj` picojoules each.
    #[inline]
    pub(crate) fn add(&mut self, pj: f64, ops: u64) {
        match self.counts.iter_mut().find(|(p, _)| p.to_bits() == pj.to_bits()) {
            Some((_, n)) => *n += ops,
            None => self.counts.push((pj, ops)),
        }
    }

    /// The compute energy in picojoules: the counts at each energy, in increasing energy.
    pub(crate) fn pj(&self) -> f64 {
        let mut counts = self.counts.clone();
        counts.sort_by(|a, b| a.0.total_cmp(&b.0));
        counts.iter().map(|&(pj, n)| n as f64 * pj).sum()
    }
}
