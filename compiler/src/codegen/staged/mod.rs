//! Staged programs: the code generator for networks whose layers do not fit one core each.
//!
//! The resident generator (the parent module) keeps a whole sample of a layer on one core
//! and passes spikes and errors over the NoC. Real layers are far larger than a core's
//! buffers (the first conv of a CIFAR VGG has 65,536 neurons per timestep against 4,096
//! partial sums), so a staged program instead cuts every layer into *tiles* that fit the
//! buffers, spreads the tiles of every layer over its cores ([`Cores`]: the mapping's cores
//! of the layer, or all cores, see `codegen/cores.rs`), and keeps everything between
//! layers in DRAM. Tile sizes are chosen for all the chip's cores whatever the layer's
//! cores, so where a tile runs never changes a sum; barriers stay chip-wide (every core
//! arrives at every one, and a core with no work in a layer just arrives):
//!
//! - **FP phase**, layer by layer: every core computes its tiles of the layer for every
//!   sample and timestep (conv tiles: a block of output channels and rows, the input
//!   streamed in channel chunks and zero-bordered with `pad`, the weights in `fp.w` or,
//!   when it cannot hold them all, in `fp.mem` for the whole tile, and for maps too large
//!   for whole ones only the window of input rows a block of rows reads, `rows.rs`; linear
//!   tiles: a block of outputs, the weights streamed in row chunks, every instruction
//!   covering all `B x T` rows, or a group of samples' rows at a time when the partial sums
//!   of the whole batch do not fit), runs the soma and stores spikes, masks and the pooled map.
//!   A chip-wide barrier ends each layer. A core's linear tiles are one loop over `r4`
//!   ([`Owned`]), so program size does not follow their count; conv tiles are unrolled.
//! - **BP phase**, layer by layer from the loss: the gradient soma of every tile in reverse
//!   time (dL/dH and its nonzero bitmap to DRAM), a barrier, then the errors of the layer
//!   below, computed per input chunk (and, for large maps, block of input rows) from the
//!   dL/dH of all tiles, and another barrier.
//! - **WG**, per layer, once BP has stored its dL/dH and computed the errors of the layer
//!   below with the old weights: every core accumulates the weight gradient of the weight
//!   blocks of its own tiles over the batch and updates each block (FP32 masters and state
//!   streamed through `opt`); BP waits for it before the next layer, because both use the
//!   FP buffers. A last barrier ends the step. (Overlapping WG with the next layer's BP is
//!   left for later: it needs disjoint buffers.)
//!
//! - **Joins** (`add`, residual joins, `join.rs`) are stages of their own between units: FP
//!   sums their inputs chunk by chunk, all timesteps of a chunk at once where they fit,
//!   into `<add>.sum` (or averages the sum into `<pool>.pooled` for a pooled head); BP passes a join's error to its inputs by letting
//!   them share one error region, into which every reader of a value adds its errors in
//!   backward order (`dag.rs`), so branches cost no extra pass.
//!
//! Partial sums of a conv tile are summed per input chunk in FP16 (a linear tile: per
//! weight row chunk), as the chip's 16-bit partial-sum buffer does; the resident generator
//! rounds each output once, which the golden parity cases need.
//!
//! DRAM tensors between layers are sample-major (`[B][T][features]`; the FP16 dL/dH of
//! layers two apart share a region, see `plan.rs`, and the dL/dS of values whose lifetimes
//! do not overlap share the regions `bp.err<i>`, named per value `<value>.err`); the symbols `input`,
//! `target`, `loss`, `output` and the weights, masters and optimizer state keep the names and
//! layouts of the resident generator, so `snnc train` drives both kinds of program alike.

mod bp;
mod dag;
mod fp;
mod join;
mod plan;
mod pool;
mod rows;
mod tiles;
mod wg;

use super::emit::{self, Code};
use super::{CodegenError, CodegenOptions, CoreMap};
use crate::graph::LayerGraph;
use isa::{ChipDesc, Instr, Program, Stream, Symbol, SymbolKind};
use plan::Plan;

/// Compiles `graph` for `chip` as a staged program.
pub(super) fn compile(
    graph: &LayerGraph,
    chip: &ChipDesc,
    cores: &CoreMap,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    let plan = Plan::new(graph, chip, cores, options)?;
    Ok(emit(&plan, chip))
}

/// Every core's three streams, a symbol per layer, core and stream naming the layer's
/// instructions (so the simulator counts firing rates and errors per layer), and the DRAM
/// image.
fn emit(plan: &Plan, chip: &ChipDesc) -> Program {
    let mut p = Program::new(chip);
    let mut symbols = Vec::new();
    for core in 0..plan.cores {
        let mut spans = [Vec::new(), Vec::new(), Vec::new()];
        let idle = || Code(vec![Instr::Halt {}]);
        let [fs, bs, ws] = &mut spans;
        let streams = [
            (Stream::Fp, fp::stream(plan, core, fs)),
            (Stream::Bp, if plan.train { bp::stream(plan, core, bs) } else { idle() }),
            (Stream::Wg, if plan.train { wg::stream(plan, core, ws) } else { idle() }),
        ];
        for ((s, code), spans) in streams.into_iter().zip(&spans) {
            for span in spans {
                let (addr, len) = (u32::try_from(span.start).unwrap_or(u32::MAX), span.end - span.start);
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                let name = plan.name(span.item);
                symbols.push(Symbol { name, kind: SymbolKind::Layer { core, stream: s }, addr, len });
            }
            if let Some(c) = p.cores.get_mut(usize::from(core)) {
                *c.stream_mut(s) = code.0;
            }
        }
    }
    symbols.extend(plan.dram.symbols.iter().cloned());
    p.symbols = symbols;
    p.data = plan.dram.data.clone();
    p
}

/// The instructions `start..end` of a stream belong to unit or join `item`.
struct Span {
    item: plan::Item,
    start: usize,
    end: usize,
}

/// Tokens. FP stream: the weights of the next step are in DRAM. BP stream: the forward
/// pass of every layer is done; this core's WG has updated the layer. WG stream: the
/// errors of the layer below have been computed with the old weights.
const TOK_UPDATED: u8 = 0;
const TOK_FP_DONE: u8 = 0;
const TOK_WG_DONE: u8 = 1;
const TOK_IG: u8 = 0;

/// Barriers between the layers of a phase (all cores' FP streams, or all BP streams).
const BAR_FP: u8 = 0;
const BAR_BP: u8 = 1;

/// A bump allocator of buffer regions for one phase of one layer on one core. The tile
/// sizes were chosen against the buffer sizes (`tiles.rs`), and the verifier checks every
/// access of the finished program, so a region that did not fit would be reported there.
#[derive(Default)]
struct Bump(std::collections::BTreeMap<isa::Buf, u32>);

impl Bump {
    fn take(&mut self, buf: isa::Buf, len: u32) -> u32 {
        let at = self.0.entry(buf).or_insert(0);
        let start = *at;
        // Regions start on whole bytes of 1-bit buffers.
        *at += len.div_ceil(8) * 8;
        start
    }
}

/// `base + b*T*row + t*row`: the `(b, t)` slab of a sample-major `[B][T][row]` tensor.
fn bt_addr(p: &Plan, base: u32, row: u32) -> isa::DramAddr {
    use super::emit::{B, T, stride};
    isa::DramAddr::new(base).with(B, stride(u64::from(p.t * row))).with(T, stride(u64::from(row)))
}

/// The same slab walked backwards in time (`t = T-1-r0`).
fn bt_rev(p: &Plan, base: u32, row: u32) -> isa::DramAddr {
    use super::emit::{B, T, stride};
    let last = base + (p.t - 1) * row;
    isa::DramAddr::new(last).with(B, stride(u64::from(p.t * row))).with(T, -stride(u64::from(row)))
}

/// `buf[base + (b*T + t)*len : len]`, forwards or backwards in time.
fn bt_buf(p: &Plan, buf: isa::Buf, base: u32, len: u32, reverse: bool) -> isa::Access {
    use super::emit::{B, T, at, stride};
    let step = stride(u64::from(len));
    if reverse {
        at(buf, base + (p.t - 1) * len, len).with(B, stride(u64::from(p.t * len))).with(T, -step)
    } else {
        at(buf, base, len).with(B, stride(u64::from(p.t * len))).with(T, step)
    }
}

/// How a linear tile's instruction covers all `B x T` rows of its `[B][T][len]` operands:
/// as one multi-row instruction, or (when the row count or a stride does not fit the
/// instruction's `u16` fields) as a single-row instruction in loops over `r1` and `r0`.
struct BtRows {
    rows: u16,
    looped: bool,
    /// Samples the rows cover (the batch, or a group of it).
    samples: u32,
}

impl BtRows {
    /// The form for `samples x T` rows of operands whose rows are `lens` elements long.
    fn new(p: &Plan, samples: u32, lens: &[u32]) -> BtRows {
        let fits = |v: u32| u16::try_from(v).is_ok();
        let rows = p.t * samples;
        if fits(rows) && lens.iter().all(|&l| fits(l)) {
            BtRows { rows: rows as u16, looped: false, samples }
        } else {
            BtRows { rows: 1, looped: true, samples }
        }
    }

    /// Row 0 of a `[B][T][len]` operand and its row stride (0 inside the loops, which move
    /// the access themselves).
    fn op(&self, p: &Plan, buf: isa::Buf, base: u32, len: u32) -> (isa::Access, u16) {
        if self.looped { (bt_buf(p, buf, base, len, false), 0) } else { (super::emit::at(buf, base, len), len as u16) }
    }

    /// Emits `instr` for every row.
    fn emit(&self, p: &Plan, c: &mut super::emit::Code, instr: isa::Instr) {
        use super::emit::{B, T};
        if self.looped {
            c.open(B, self.samples);
            c.open(T, p.t);
        }
        c.push(instr);
        if self.looped {
            c.close(T);
            c.close(B);
        }
    }
}

/// The part of a `[B][T][C][oh][ow]` tensor (of `bits`-bit elements, or of its `k x k`
/// pooled map) that conv tile `(cb, rb)` covers, as one DMA moves it: `co` channels of
/// `rows` rows each, one contiguous run when the tile is whole maps or one channel.
struct Slab {
    /// First byte within a `(b, t)` slab of the tensor.
    first: u32,
    rows: u16,
    row: u32,
    stride: u32,
}

impl Slab {
    fn new(g: &tiles::ConvGeom, t: &tiles::ConvTiling, (cb, rb): (u32, u32), bits: u32, k: u32) -> Slab {
        let (plane, part) = ((g.oh / k) * (g.ow / k), (t.rows / k) * (g.ow / k));
        let first = (cb * t.co * plane + rb * part) * bits / 8;
        if t.rows == g.oh || t.co == 1 {
            let row = t.co * part * bits / 8;
            Slab { first, rows: 1, row, stride: row }
        } else {
            Slab { first, rows: emit::h16(t.co), row: part * bits / 8, stride: plane * bits / 8 }
        }
    }

    fn load(&self, dst: isa::Access, src: isa::DramAddr, c: &mut Code) {
        c.load_rows(dst, src, (self.rows, self.row, self.stride));
    }

    fn store(&self, dst: isa::DramAddr, src: isa::Access, c: &mut Code) {
        c.store_rows(dst, src, (self.rows, self.row, self.stride));
    }
}

/// `cfg.neuron` slot 0 for a layer (FP and BP phases of a core never overlap).
fn cfg_neuron(u: &plan::Unit, c: &mut Code) {
    let n = u.neuron;
    c.push(Instr::CfgNeuron {
        slot: 0,
        beta: n.beta,
        theta: n.theta,
        reset: n.reset,
        detach: n.detach,
        sg: n.sg,
        alpha: n.alpha,
    });
}

/// The loop counter over the sample groups of a linear tile (see [`Groups`]).
const GRP: isa::Reg = isa::Reg::R5;

/// The sample groups a linear layer's tiles take one after another: `count` groups of `g`
/// samples (one group of the whole batch unless its partial sums do not fit `fp.psum`).
/// Rows keep their order (sample-major), so every sum is the same as without groups; the
/// weights are streamed once per group instead of once.
#[derive(Clone, Copy, Debug)]
struct Groups {
    g: u32,
    count: u32,
}

impl Groups {
    fn new(p: &Plan, g: u32) -> Groups {
        let g = g.clamp(1, p.b.max(1));
        Groups { g, count: p.b / g }
    }

    /// Sample-steps per group.
    fn rows(&self, p: &Plan) -> u32 {
        self.g * p.t
    }

    /// `a` moved on by `per_group` bytes for the current group.
    fn addr(&self, a: isa::DramAddr, per_group: u32) -> isa::DramAddr {
        if self.count > 1 { a.with(GRP, emit::stride(u64::from(per_group))) } else { a }
    }

    /// The current tile's and group's block of a tile-major tensor at `base` of `nb`
    /// elements of `bits` bits per sample-step: where it lies in DRAM, its elements (a
    /// buffer access's length) and its bytes. Each tile holds its groups' blocks one after
    /// another, each of [`block_bytes`], so every block starts on a byte.
    fn block(&self, p: &Plan, o: &Owned, base: u32, (nb, bits): (u32, u32)) -> (isa::DramAddr, u32, u64) {
        let bytes = block_bytes(self.rows(p), nb, bits);
        (self.addr(o.addr(base, self.count * bytes), bytes), bytes * 8 / bits, u64::from(bytes))
    }

    /// Emits `body` once, inside a loop over the groups when there are several.
    fn emit(&self, c: &mut Code, body: impl FnOnce(&mut Code)) {
        if self.count > 1 {
            c.open(GRP, self.count);
            body(c);
            c.close(GRP);
        } else {
            body(c);
        }
    }
}

/// The bytes of a block of `rows x nb` elements of `bits` bits, a block of 1-bit elements
/// padded to whole bytes (its last bits unused): the output layer's spikes, say, where
/// `B x T x nb` need not be a multiple of 8.
pub(super) fn block_bytes(rows: u32, nb: u32, bits: u32) -> u32 {
    (rows * nb * bits).div_ceil(8)
}

/// `elems` 1-bit elements rounded up to whole bytes: the length of a buffer region a
/// padded block of bits is moved from or into.
pub(super) fn whole_bytes(elems: u32) -> u32 {
    elems.div_ceil(8) * 8
}

/// The loop counter over the tiles of a layer a core owns (see [`Owned`]).
const NT: isa::Reg = isa::Reg::R4;

/// The tiles `first, first + step, ...` (`count` of them) of a layer one core owns, emitted
/// as one loop over `r4` rather than once per tile, so that a program's size does not grow
/// with the number of tiles (for linear layers, with `B x T`). Whatever differs between the
/// tiles is an address affine in the tile index: [`Owned::addr`] and [`Owned::access`].
#[derive(Clone, Copy, Debug)]
struct Owned {
    first: u32,
    step: u32,
    count: u32,
}

impl Owned {
    /// The tiles in `0..tiles` a core in `seat` owns (round robin over the layer's cores).
    fn new(tiles: u32, seat: Seat) -> Owned {
        let Some(rank) = seat.rank else { return Owned { first: 0, step: 1, count: 0 } };
        let (first, step) = (u32::from(rank), u32::from(seat.of.max(1)));
        let count = if first < tiles { (tiles - first - 1) / step + 1 } else { 0 };
        Owned { first, step, count }
    }

    /// The first tile alone and the others (for a tile that does something the others do
    /// not, such as keeping the loss).
    fn split_first(self) -> (Owned, Owned) {
        let one = Owned { count: self.count.min(1), ..self };
        (one, Owned { first: self.first + self.step, count: self.count.saturating_sub(1), ..self })
    }

    /// Whether the tiles are a loop (more than one).
    fn looped(&self) -> bool {
        self.count > 1
    }

    /// Whether tile 0 is among them.
    fn has_tile_zero(&self) -> bool {
        self.first == 0 && self.count > 0
    }

    /// `base + tile * per_tile` for the current tile.
    fn addr(&self, base: u32, per_tile: u32) -> isa::DramAddr {
        let a = isa::DramAddr::new(base + self.first * per_tile);
        if self.looped() { a.with(NT, emit::stride(u64::from(self.step * per_tile))) } else { a }
    }

    /// A buffer access starting at element `base + tile * per_tile` for the current tile.
    fn access(&self, buf: isa::Buf, base: u32, per_tile: u32, len: u32) -> isa::Access {
        let a = emit::at(buf, base + self.first * per_tile, len);
        if self.count > 1 { a.with(NT, emit::stride(u64::from(self.step * per_tile))) } else { a }
    }

    /// Emits `body` once, inside a loop over the tiles when there are several.
    fn emit(&self, c: &mut Code, body: impl FnOnce(&mut Code, &Owned)) {
        match self.count {
            0 => {}
            1 => body(c, self),
            n => {
                c.open(NT, n);
                body(c, self);
                c.close(NT);
            }
        }
    }
}

/// The cores one layer's work is spread over, in the order its tiles are dealt to them:
/// the mapping's cores of the layer, or all of the chip's (see `codegen/cores.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Cores {
    list: Vec<u16>,
    /// Whether the list is the mapping's rather than every core.
    mapped: bool,
}

impl Cores {
    /// The mapping's `list`, or all `count` cores without one.
    fn of(list: Option<&[u16]>, count: u16) -> Cores {
        match list {
            Some(list) => Cores { list: list.to_vec(), mapped: true },
            None => Cores { list: (0..count).collect(), mapped: false },
        }
    }

    /// Where `core` sits among the cores (nowhere if it is not one of them).
    fn seat(&self, core: u16) -> Seat {
        let rank = self.list.iter().position(|&c| c == core).and_then(|r| u16::try_from(r).ok());
        Seat { rank, of: u16::try_from(self.list.len()).unwrap_or(u16::MAX) }
    }

    /// The cores that get at least one of `tiles` tiles.
    fn busy(&self, tiles: u32) -> &[u16] {
        let n = usize::try_from(tiles).unwrap_or(usize::MAX).min(self.list.len());
        self.list.get(..n).unwrap_or_default()
    }
}

/// One core's place among a layer's cores: `rank` of `of`, or `None` when the layer gives
/// it no work (it still arrives at every barrier).
#[derive(Clone, Copy, Debug)]
struct Seat {
    rank: Option<u16>,
    of: u16,
}

/// The indices in `0..count` the core in `seat` owns (round robin).
fn owned(count: u32, seat: Seat) -> impl Iterator<Item = u32> {
    let start = seat.rank.map_or(count, u32::from);
    (start..count).step_by(usize::from(seat.of.max(1)))
}

/// The tiles `(cb, rb)` of a conv layer the core in `seat` owns in FP and BP: round robin
/// over all tiles (row blocks of a channel block one after another), so that layers of a
/// few large channel blocks still spread over every core. (WG owns whole channel blocks: a
/// block's weight gradient sums over all its rows.)
fn conv_tiles(g: &tiles::ConvGeom, t: &tiles::ConvTiling, seat: Seat) -> impl Iterator<Item = (u32, u32)> + use<> {
    let rbs = (g.oh / t.rows).max(1);
    owned((g.cout / t.co) * rbs, seat).map(move |i| (i / rbs, i % rbs))
}

/// How a staged program cuts each layer and spreads it over the cores: the placement's
/// header and notes, then per join and unit its tiling and the cores its work goes to.
pub(super) fn describe(graph: &LayerGraph, chip: &ChipDesc, assign: &CoreMap) -> Result<String, CodegenError> {
    use std::fmt::Write as _;
    let plan = Plan::new(graph, chip, assign, &CodegenOptions::default())?;
    let (units, cores) = (plan.units.len(), plan.cores);
    let joins = if plan.joins.is_empty() { String::new() } else { format!(" and {} joins", plan.joins.len()) };
    let mut s = assign.header(None);
    let _ = writeln!(s, "staged program of {} ({units} layers{joins} over {cores} cores)", graph.name);
    // Layers and joins in the order the forward pass runs them, as the program does.
    for item in &plan.order {
        match *item {
            plan::Item::Unit(i) => {
                let Some(u) = plan.units.get(i) else { continue };
                let _ = writeln!(s, "{}", unit_line(&plan, u));
                let _ = writeln!(s, "{}", cores_line(&u.cores, "forward tiles", fp_tiles(u)));
            }
            plan::Item::Join(i) => {
                let Some(j) = plan.joins.get(i) else { continue };
                let pool =
                    j.pool.as_ref().map_or(String::new(), |q| format!(", averaged over windows of {0}x{0}", q.k));
                let (n, inputs, chunk) = (j.n, j.inputs.len(), j.chunk);
                let _ = writeln!(s, "{}: add of {inputs} inputs, {n} elements in chunks of {chunk}{pool}", j.name);
                let _ = writeln!(s, "{}", cores_line(&j.cores, "chunks", j.n / j.chunk.max(1)));
            }
        }
    }
    Ok(s)
}

/// `  cores 0-4,6-9 (mapped); forward tiles on 0-4`: a layer's cores, and those its
/// `count` pieces of `what` reach (fewer when it has fewer pieces than cores).
fn cores_line(c: &Cores, what: &str, count: u32) -> String {
    let how = if c.mapped { "mapped" } else { "all" };
    let busy = super::cores::ranges(c.busy(count));
    format!("  cores {} ({how}); {count} {what} on {busy}", super::cores::ranges(&c.list))
}

/// The forward tiles of a unit.
fn fp_tiles(u: &plan::Unit) -> u32 {
    match &u.kind {
        plan::Kind::Conv { g, t, .. } => (g.cout / t.co) * (g.oh / t.rows).max(1),
        plan::Kind::Linear { t } => u.n / t.nb.max(1),
    }
}

/// One unit's tiling.
fn unit_line(plan: &Plan, u: &plan::Unit) -> String {
    let b = plan.b;
    match &u.kind {
        plan::Kind::Conv { g, t, pool } => format!(
            "{} + {}: conv {}x{}x{} -> {}x{}x{}; {} tiles of {} ch x {} rows, input chunks of {} ch{}{}{}; {}",
            u.weight_name,
            u.neuron_name,
            g.cin,
            g.h,
            g.w,
            g.cout,
            g.oh,
            g.ow,
            (g.cout / t.co) * (g.oh / t.rows),
            t.co,
            t.rows,
            t.cc,
            if t.windowed(g) { format!(" x {} rows", g.in_window(t.rows, 0).1) } else { String::new() },
            match (t.resident, fp::parks_weights(plan, u, g, t)) {
                (true, _) => ", weights resident",
                (false, true) => ", weights held in fp.mem",
                (false, false) => ", weights streamed",
            },
            match plan::Pool::pass(*pool) {
                Some((_, cp)) => format!(", pooled in a pass of groups of {cp} whole maps"),
                None => String::new(),
            },
            conv_errors_text(g, t)
        ),
        plan::Kind::Linear { t } => format!(
            "{} + {}: linear {} -> {}; {} tiles of {} outputs, weight chunks of {} rows; errors: blocks of {} inputs x {} outputs; gradient blocks of {} rows{}",
            u.weight_name,
            u.neuron_name,
            u.k,
            u.n,
            u.n / t.nb,
            t.nb,
            t.kc,
            t.kb2,
            t.nc2,
            t.kb,
            if t.g < b { format!("; in groups of {} samples", t.g) } else { String::new() }
        ),
    }
}

/// How a conv layer's input-gradient pass is cut.
fn conv_errors_text(g: &tiles::ConvGeom, t: &tiles::ConvTiling) -> String {
    if t.cc2 == 0 {
        "no errors below".to_string()
    } else if t.rows2 < g.h {
        format!("errors: chunks of {} ch x {} rows x blocks of {} ch", t.cc2, t.rows2, t.cob)
    } else {
        format!("errors: chunks of {} ch x blocks of {} ch", t.cc2, t.cob)
    }
}
