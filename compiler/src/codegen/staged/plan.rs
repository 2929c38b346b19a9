//! The plan of a staged program: per layer its tiling, which core owns which tile, and every
//! DRAM tensor; per core the `opt` region each core streams masters and state through.
//! Units and joins (`add`, see `dag.rs` and `join.rs`) run in the forward order of
//! [`Plan::order`]; each reads its inputs from the DRAM tensors of the values it reads.

use super::Cores;
use super::dag::{self, Stage};
use super::tiles::{self, Caps, ConvGeom, ConvTiling, LinearTiling};
use crate::codegen::alloc::Dram;
use crate::codegen::placement::{buffer_elems, linear_dims};
use crate::codegen::plan::{NeuronCfg, OptCfg, check_u16, neuron_cfg, opt_cfg};
use crate::codegen::pooling::Pooling;
use crate::codegen::weights::{self, Shape};
use crate::codegen::{CodegenError, CodegenOptions, CoreMap};
use crate::graph::{Layer, LayerGraph, LayerId};
use crate::model::{Encoding, LossKind, Op};
use isa::{Buf, ChipDesc, DataKind, PoolKind};
use std::collections::BTreeMap;

/// A whole staged program's decisions.
pub(in crate::codegen) struct Plan {
    pub(super) t: u32,
    pub(super) b: u32,
    pub(super) steps: u32,
    pub(super) first_step: u32,
    pub(super) train: bool,
    /// Cores of the chip: every one takes part in every barrier, whether or not a layer
    /// gives it work.
    pub(super) cores: u16,
    pub(super) units: Vec<Unit>,
    pub(super) joins: Vec<Join>,
    /// Units and joins in forward order.
    pub(super) order: Vec<Item>,
    pub(super) dram: Dram,
    pub(super) target: u32,
    pub(super) loss_addr: u32,
    pub(super) output: Option<u32>,
    pub(super) loss: isa::LossKind,
    pub(super) opt: OptCfg,
    /// `opt` elements each core owns (core `c` starts at `c * opt_region`).
    pub(super) opt_region: u32,
    /// Elements of `fp.mem`, where a conv tile whose weights `fp.w` cannot hold keeps them
    /// when the rest of its regions leave room (see `fp.rs`); 0 unless
    /// [`CodegenOptions::park_weights`](crate::codegen::CodegenOptions::park_weights).
    pub(super) fp_mem: u32,
}

/// Where a layer's input lives in DRAM: `[S][B][T][row_bytes]` (`step_bytes` is 0 except
/// for the `input` tensor, which holds every step of a run).
#[derive(Clone, Copy)]
pub(super) struct Src {
    pub(super) addr: u32,
    pub(super) step_bytes: u32,
    pub(super) row_bytes: u32,
    /// FP16 values (currents or a pooled map) rather than 1-bit spikes.
    pub(super) dense: bool,
}

impl Src {
    /// Bytes of `elems` input elements.
    pub(super) fn bytes(&self, elems: u32) -> u32 {
        if self.dense { elems * 2 } else { elems / 8 }
    }
}

/// A unit or a join, by index into [`Plan::units`] or [`Plan::joins`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Item {
    Unit(usize),
    Join(usize),
}

/// An `add` of two or more values (`dst = a + b + ...` elementwise in FP16, in argument
/// order), cut into chunks of `chunk` elements spread over the cores.
pub(super) struct Join {
    pub(super) name: String,
    pub(super) inputs: Vec<Src>,
    /// Elements per sample-step, and per chunk.
    pub(super) n: u32,
    pub(super) chunk: u32,
    /// Timesteps of a chunk moved and summed together (`T` when they fit the buffers, else
    /// 1): one strided transfer and one `fp.sum` for all of them.
    pub(super) steps: u32,
    /// `[B][T][n]` FP16 sums, when a layer other than the pooling reads them.
    pub(super) sum: Option<u32>,
    pub(super) pool: Option<JoinPool>,
    /// The error region of the sum, which its inputs share.
    pub(super) ds: u32,
    /// The cores its chunks are spread over.
    pub(super) cores: Cores,
}

/// The average pooling of a join over `k x k` windows that span whole rows (`k` is the map's
/// width), so a window is `k * k` consecutive elements.
pub(super) struct JoinPool {
    pub(super) k: u32,
    /// `[B][T][n / k^2]` FP16 means, and their error region.
    pub(super) out: u32,
    pub(super) ds: u32,
}

impl Join {
    /// Elements per sample-step the join sends on.
    pub(super) fn out_len(&self) -> u32 {
        self.pool.as_ref().map_or(self.n, |p| self.n / (p.k * p.k))
    }
}

/// What kind of weight layer a unit has, with its tiling.
pub(super) enum Kind {
    Conv { g: ConvGeom, t: ConvTiling, pool: Option<Pool> },
    Linear { t: LinearTiling },
}

/// The pooling a conv unit ends with, and where it runs: in the conv tiles when its windows
/// tile the map (`pass` is `None`), else in a pass of its own over groups of `pass` whole
/// channel maps (see `pool.rs`).
#[derive(Clone, Copy)]
pub(super) struct Pool {
    pub(super) p: Pooling,
    pub(super) pass: Option<u32>,
}

impl Pool {
    /// The pooling the conv tiles run themselves, if they do.
    pub(super) fn fused(pool: Option<Pool>) -> Option<Pooling> {
        pool.filter(|p| p.pass.is_none()).map(|p| p.p)
    }

    /// The channels per group of the pooling's own pass, if it has one.
    pub(super) fn pass(pool: Option<Pool>) -> Option<(Pooling, u32)> {
        pool.and_then(|p| p.pass.map(|cp| (p.p, cp)))
    }
}

/// One weight layer with its neuron layer (and pooling), cut into tiles over its cores.
pub(super) struct Unit {
    pub(super) weight_name: String,
    pub(super) neuron_name: String,
    pub(super) neuron: NeuronCfg,
    pub(super) output: bool,
    /// Input and output features per timestep.
    pub(super) k: u32,
    pub(super) n: u32,
    pub(super) src: Src,
    pub(super) kind: Kind,
    pub(super) w_addr: u32,
    pub(super) master_addr: u32,
    pub(super) state_addr: u32,
    /// `[B][T][n]` spikes, masks (linear units: per tile `[B][T][nb]`), H, dL/dH, and its
    /// nonzero bitmap (linear units: per tile).
    pub(super) spikes: u32,
    pub(super) mask: u32,
    pub(super) h: u32,
    pub(super) dh: u32,
    pub(super) nz: u32,
    /// `[B][T][len]` pooled map, when the unit pools: FP16 for average pooling, spikes for
    /// max pooling (the maximum of spikes is a spike).
    pub(super) pooled: Option<u32>,
    pub(super) pooled_bits: bool,
    /// `[B][T][out]` FP16 dL/dS of what the unit sends on (the pooled map's, if it pools),
    /// written by the next unit's input-gradient pass.
    pub(super) ds: u32,
    /// `[B][n]` FP32 spike counts (membrane sums) of the output unit, which the loss reads.
    pub(super) sum: u32,
    /// Where this unit's input-gradient pass writes: the error region of the value it
    /// reads; `seed`: other readers of that value wrote there first, so the pass adds to it.
    pub(super) prev_ds: Option<u32>,
    pub(super) seed: bool,
    /// Whether conv weight gradients accumulate in the core's `opt` region (too large for
    /// `wg.grad`).
    pub(super) grad_in_opt: bool,
    /// Weights, and biases (one per output feature or channel; 0 without a bias). In DRAM
    /// the biases follow the weights in `.weight` and `.weight_master`.
    pub(super) wlen: u32,
    pub(super) biases: u32,
    /// The cores its tiles, error chunks, weight blocks and pooling groups are spread over.
    pub(super) cores: Cores,
}

impl Unit {
    /// Elements per timestep the unit sends on.
    pub(super) fn out_len(&self) -> u32 {
        self.kind.out_len(self.n)
    }
}

impl Kind {
    /// Elements per timestep a layer with `n` outputs sends on: its pooled map, if it pools.
    fn out_len(&self, n: u32) -> u32 {
        match self {
            Kind::Conv { g, pool: Some(pool), .. } => pool.p.len(g.cout),
            _ => n,
        }
    }
}

impl Plan {
    /// Decides everything, or says which layer cannot be staged.
    pub(in crate::codegen) fn new(
        graph: &LayerGraph,
        chip: &ChipDesc,
        assign: &CoreMap,
        options: &CodegenOptions,
    ) -> Result<Plan, CodegenError> {
        let (t, b, steps) = (graph.timesteps, graph.batch, options.steps.max(1));
        let first = &graph.input().name;
        check_u16(first, "timesteps", t)?;
        check_u16(first, "batch", b)?;
        check_u16(first, "timesteps x batch", t * b)?;
        if options.keep_activations {
            return Err(unsupported(first, "keeping activations (`--keep-activations`) in a staged program"));
        }
        let stages = dag::stages(graph)?;
        let cores = u16::try_from(chip.core_count()).unwrap_or(u16::MAX);
        let mut dram = Dram::default();
        let (s, c) = (u64::from(steps), u64::from(graph.classes()));
        let k0 = u32::try_from(graph.input().numel()).unwrap_or(u32::MAX);
        let current = matches!(graph.encoding(), Encoding::Current { .. });
        let row0 = if current { k0 * 2 } else { k0.div_ceil(8) };
        let input = dram.tensor("input", s * u64::from(t * b) * u64::from(row0))?;
        let target = dram.tensor("target", s * u64::from(b) * c * 2)?;
        let loss_addr = dram.tensor("loss", s * 4)?;
        let output = if options.outputs { Some(dram.tensor("output", s * u64::from(b) * c * 4)?) } else { None };
        let opt = opt_cfg(graph.optimizer);
        let caps = caps(chip, cores);
        let mut values = BTreeMap::new();
        values.insert(graph.input().id, Src { addr: input, step_bytes: t * b * row0, row_bytes: row0, dense: current });
        let (mut out, mut joins, mut order) = (Vec::new(), Vec::new(), Vec::new());
        for stage in &stages {
            let out_src = match stage {
                Stage::Unit { weight, neuron, src, .. } => {
                    let (last, first) = (*neuron == graph.output().id, *src == graph.input().id);
                    let ctx = Ctx { graph, options, t, b, caps, opt, last, first };
                    let src = value(&values, *src, graph)?;
                    let mut u = ctx.unit(graph.layer(*weight), graph.layer(*neuron), src, &mut dram)?;
                    u.cores = Cores::of(assign.segment_cores_of(*weight), cores);
                    let mut out_src =
                        Src { addr: u.pooled.unwrap_or(u.spikes), step_bytes: 0, row_bytes: 0, dense: false };
                    out_src.dense = u.pooled.is_some() && !u.pooled_bits;
                    out_src.row_bytes = out_src.bytes(u.out_len());
                    order.push(Item::Unit(out.len()));
                    out.push(u);
                    out_src
                }
                Stage::Join { add, inputs, pool } => {
                    let srcs = inputs.iter().map(|&v| value(&values, v, graph)).collect::<Result<Vec<_>, _>>()?;
                    let mut j = super::join::plan(graph, (*add, *pool), srcs, ((t, b), &caps), &mut dram)?;
                    j.cores = Cores::of(assign.segment_cores_of(*add), cores);
                    let addr = j.pool.as_ref().map_or(j.sum.unwrap_or(0), |p| p.out);
                    let row_bytes = j.out_len() * 2;
                    order.push(Item::Join(joins.len()));
                    joins.push(j);
                    Src { addr, step_bytes: 0, row_bytes, dense: true }
                }
            };
            values.insert(stage.out(), out_src);
        }
        gradients(graph, (&stages, &mut out, &mut joins), t * b, &mut dram)?;
        let opt_region = opt_region(&out, opt);
        let need = u64::from(opt_region) * u64::from(cores);
        let have = buffer_elems(chip, Buf::Opt);
        if need > have {
            return Err(CodegenError::DoesNotFit { layer: first.clone(), buffer: "opt".into(), need, have });
        }
        let loss = match graph.loss {
            LossKind::MseRate => isa::LossKind::MseRate,
            LossKind::CeRate => isa::LossKind::CeRate,
            LossKind::CeMem => isa::LossKind::CeMem,
        };
        let (first_step, train) = (options.first_step, options.train);
        Ok(Plan {
            t,
            b,
            steps,
            first_step,
            train,
            cores,
            units: out,
            joins,
            order,
            dram,
            target,
            loss_addr,
            output,
            loss,
            opt,
            opt_region,
            fp_mem: if options.park_weights { u32::try_from(caps.mem).unwrap_or(u32::MAX) } else { 0 },
        })
    }
}

impl Plan {
    /// The symbol name of a unit (`weight+neuron`) or a join (the `add` layer's name).
    pub(super) fn name(&self, item: Item) -> String {
        match item {
            Item::Unit(i) => self.units.get(i).map(|u| format!("{}+{}", u.weight_name, u.neuron_name)),
            Item::Join(i) => self.joins.get(i).map(|j| j.name.clone()),
        }
        .unwrap_or_default()
    }
}

fn unsupported(layer: &str, what: &str) -> CodegenError {
    CodegenError::Unsupported { layer: layer.into(), what: what.into() }
}

fn caps(chip: &ChipDesc, cores: u16) -> Caps {
    let e = |b: Buf| buffer_elems(chip, b);
    Caps {
        psum: e(Buf::FpPsum),
        fpw: e(Buf::FpW),
        fpin: e(Buf::FpIn),
        spk: e(Buf::FpSpk),
        mem: e(Buf::FpMem),
        bpw: e(Buf::BpW),
        bpsum: e(Buf::BpPsum),
        delta: e(Buf::BpDelta),
        wgerr: e(Buf::WgErr).min(e(Buf::WgGrad)),
        opt: e(Buf::Opt) / u64::from(cores.max(1)),
        cores: u64::from(cores.max(1)),
        bp_macs: bp_macs_per_cycle(chip),
        dram_bytes_per_cycle: u64::from(chip.dram.bytes_per_cycle),
        dram_latency: u64::from(chip.dram.latency_cycles),
    }
}

/// The products a `bp.conv` makes per cycle at most: one per PE of the BP array. Its weight
/// port is never the tighter bound, as each weight read serves a column of `rows` products
/// and every bank delivers at least one weight a cycle (the simulator charges an engine
/// instruction the larger of the two; see `docs/simulator.md`, "Weight reuse in convs").
fn bp_macs_per_cycle(chip: &ChipDesc) -> u64 {
    chip.engine(isa::Stream::Bp).map_or(1, |e| (u64::from(e.rows) * u64::from(e.cols)).max(1))
}

/// The DRAM tensor of value `v`.
fn value(values: &BTreeMap<LayerId, Src>, v: LayerId, graph: &LayerGraph) -> Result<Src, CodegenError> {
    values.get(&v).copied().ok_or_else(|| unsupported(&graph.layer(v).name, "a value read before it is computed"))
}

/// Places every unit's FP16 dL/dH (`.delta`) and every value's dL/dS (`.err`) in DRAM.
/// BP needs a unit's dL/dH only while it works on the unit and the one above it, so units
/// of even and odd index take turns in two regions (the largest gradients of ImageNet-sized
/// nets would not fit the address space otherwise). A region is reused only after every
/// core has finished with it: a core moves on past a unit once its WG stream has updated
/// it, and two units later only after the barriers of the unit between. The errors of
/// values are grouped and placed by `dag::errors`; BP alone reads them, behind barriers.
fn gradients(
    graph: &LayerGraph,
    (stages, units, joins): (&[Stage], &mut [Unit], &mut [Join]),
    bt: u32,
    dram: &mut Dram,
) -> Result<(), CodegenError> {
    let bt = u64::from(bt);
    let delta = |u: &Unit| bt * u64::from(u.n) * 2;
    let bytes = |parity: usize| units.iter().skip(parity).step_by(2).map(delta).max().unwrap_or(0);
    let regions = [dram.tensor("bp.delta0", bytes(0))?, dram.tensor("bp.delta1", bytes(1))?];
    for (i, u) in units.iter_mut().enumerate() {
        u.dh = regions[i % 2];
        dram.alias(&format!("{}.delta", u.neuron_name), u.dh, delta(u));
    }
    let elems = |v: LayerId| u32::try_from(graph.layer(v).numel()).unwrap_or(u32::MAX);
    let errs = dag::errors(graph, stages, elems)?;
    let mut at = Vec::new();
    for (i, &e) in errs.regions.iter().enumerate() {
        at.push(dram.tensor(&format!("bp.err{i}"), bt * u64::from(e) * 2)?);
    }
    let region = |v: LayerId| errs.region.get(&v).and_then(|&r| at.get(r)).copied();
    let need = |v: LayerId| {
        region(v).ok_or_else(|| unsupported(&graph.layer(v).name, "a value whose error no layer computes"))
    };
    let (mut ui, mut ji) = (0, 0);
    for (si, stage) in stages.iter().enumerate() {
        match stage {
            Stage::Unit { src, .. } => {
                let Some(u) = units.get_mut(ui) else { break };
                ui += 1;
                u.ds = if u.output { 0 } else { need(stage.out())? };
                u.prev_ds = if *src == graph.input().id { None } else { Some(need(*src)?) };
                u.seed = errs.seeded.contains(&si);
            }
            Stage::Join { add, .. } => {
                let Some(j) = joins.get_mut(ji) else { break };
                ji += 1;
                j.ds = need(*add)?;
                if let Some(p) = &mut j.pool {
                    p.ds = need(stage.out())?;
                }
            }
        }
    }
    for (&v, _) in errs.region.iter() {
        if let Some(a) = region(v) {
            dram.alias(&format!("{}.err", graph.layer(v).name), a, bt * u64::from(elems(v)) * 2);
        }
    }
    Ok(())
}

/// The `opt` elements one core needs: the largest per-layer set of a master chunk, its
/// state and (conv layers too large for `wg.grad`) the gradient block.
fn opt_region(units: &[Unit], opt: OptCfg) -> u32 {
    let words = 1 + opt.state_words;
    let per_unit = |u: &Unit| match &u.kind {
        Kind::Conv { g, t, .. } => {
            let grad = if u.grad_in_opt { t.co * g.cin * g.kk() + t.co } else { 0 };
            grad + t.co * t.cc * g.kk() * words
        }
        Kind::Linear { t } => t.kb * t.nb * words,
    };
    units.iter().map(per_unit).max().unwrap_or(0)
}

/// What planning one unit needs.
struct Ctx<'a> {
    graph: &'a LayerGraph,
    options: &'a CodegenOptions,
    t: u32,
    b: u32,
    caps: Caps,
    opt: OptCfg,
    last: bool,
    /// The first layer computes no errors for a layer below it.
    first: bool,
}

impl Ctx<'_> {
    fn unit(&self, wl: &Layer, nl: &Layer, src: Src, dram: &mut Dram) -> Result<Unit, CodegenError> {
        let (k, n) = linear_dims(self.graph, wl);
        let (kind, wlen, fan_in, rows) = self.kind(wl, nl, k, n, src.dense)?;
        let bias = matches!(wl.op, Op::Linear { bias: true, .. } | Op::Conv2d { bias: true, .. });
        let biases = if bias { rows } else { 0 };
        let neuron = neuron_cfg(nl, self.graph.neuron);
        let (bt, name) = (u64::from(self.t * self.b), wl.name.clone());
        let nn = &nl.name;
        let seed = weights::layer_seed(self.options.seed.unwrap_or(self.graph.init.seed), wl.id.0);
        let transpose = matches!(kind, Kind::Linear { .. });
        let gain = self.graph.init.gain;
        let shape = Shape { name: &name, k: fan_in, n: rows, bias, gain, seed, transpose };
        let tensors = weights::initial(&self.options.weights, &shape)?;
        let w_addr = dram.tensor(&format!("{name}.weight"), u64::from(wlen) * 2)?;
        dram.init(&format!("{name}.weight"), DataKind::Fp16, w_addr, weights::f16_bytes(&tensors.weight));
        if let Some(b) = &tensors.bias {
            let at = dram.follow(&format!("{name}.bias"), u64::from(biases) * 2)?;
            dram.init(&format!("{name}.bias"), DataKind::Fp16, at, weights::f16_bytes(b));
        }
        let master_addr = dram.tensor(&format!("{name}.weight_master"), u64::from(wlen) * 4)?;
        dram.init(&format!("{name}.weight_master"), DataKind::Fp32, master_addr, weights::f32_bytes(&tensors.weight));
        if let Some(b) = &tensors.bias {
            let at = dram.follow(&format!("{name}.bias_master"), u64::from(biases) * 4)?;
            dram.init(&format!("{name}.bias_master"), DataKind::Fp32, at, weights::f32_bytes(b));
        }
        let words = u64::from(self.opt.state_words);
        let params = u64::from(wlen + biases);
        let state_addr = if words > 0 { dram.tensor(&format!("{name}.opt_state"), params * 4 * words)? } else { 0 };
        let bits = bt * u64::from(n);
        // A linear layer's tile-major bits are blocks of whole bytes per tile and group (see
        // `Groups::block`); the padding only shows where `B x T x nb` is not whole bytes.
        let bit_bytes = match &kind {
            Kind::Linear { t } => {
                let blocks = u64::from(n / t.nb.max(1)) * u64::from(self.b / t.g.max(1));
                blocks * u64::from(super::block_bytes(t.g * self.t, t.nb, 1))
            }
            _ => bits.div_ceil(8),
        };
        let spikes = dram.tensor(&format!("{nn}.spikes"), bit_bytes)?;
        let mask = dram.tensor(&format!("{nn}.mask"), bit_bytes)?;
        let h = if neuron.keep_h { dram.tensor(&format!("{nn}.membrane"), bits * 2)? } else { 0 };
        let nz = dram.tensor(&format!("{nn}.delta_mask"), bit_bytes)?;
        let pooled_bits =
            matches!(kind, Kind::Conv { pool: Some(Pool { p: Pooling { kind: PoolKind::Max, .. }, .. }), .. });
        let out_len = kind.out_len(n);
        let pooled = match &kind {
            Kind::Conv { pool: Some(_), .. } => {
                let bits = bt * u64::from(out_len) * if pooled_bits { 1 } else { 16 };
                Some(dram.tensor(&format!("{nn}.pooled_spikes"), bits.div_ceil(8))?)
            }
            _ => None,
        };
        let sum = if self.last { dram.tensor(&format!("{nn}.spike_sum"), u64::from(self.b * n) * 4)? } else { 0 };
        let grad_in_opt = match &kind {
            Kind::Conv { g, t, .. } => u64::from(t.co * g.cin * g.kk() + t.co) > self.caps.wgerr,
            Kind::Linear { .. } => false,
        };
        Ok(Unit {
            weight_name: name,
            neuron_name: nn.clone(),
            neuron,
            output: self.last,
            k,
            n,
            src,
            kind,
            w_addr,
            master_addr,
            state_addr,
            spikes,
            mask,
            h,
            dh: 0,
            nz,
            pooled,
            pooled_bits,
            ds: 0,
            sum,
            prev_ds: None,
            seed: false,
            grad_in_opt,
            wlen,
            biases,
            cores: Cores::default(),
        })
    }

    /// The unit's kind and tiling, its weight count, fan-in and output rows of the weights.
    fn kind(&self, wl: &Layer, nl: &Layer, k: u32, n: u32, dense: bool) -> Result<(Kind, u32, u32, u32), CodegenError> {
        let fail = |what: String| CodegenError::Unsupported { layer: wl.name.clone(), what };
        match wl.op {
            Op::Linear { .. } => {
                if !self.last && n % 8 != 0 {
                    return Err(fail(format!("{n} outputs in a staged program: a multiple of 8 is needed")));
                }
                let t = tiles::linear(k, n, (self.b, self.t), dense, self.last, &self.caps)
                    .map_err(|e| fail(format!("this layer in a staged program: {e}")))?;
                Ok((Kind::Linear { t }, k * n, k, n))
            }
            Op::Conv2d { out, kernel, stride, padding, .. } => {
                let input = wl.inputs.first().map(|&i| self.graph.layer(i).shape.clone()).unwrap_or_default();
                let (&[cin, h, w], &[_, oh, ow]) = (input.as_slice(), wl.shape.as_slice()) else {
                    return Err(fail("a conv2d layer whose input or output is not `[C, H, W]`".into()));
                };
                if self.last || !matches!(nl.op, Op::Lif(_)) {
                    return Err(fail("a conv2d layer whose neuron layer is the output or not LIF".into()));
                }
                let g = ConvGeom { cin, h, w, cout: out, oh, ow, k: kernel, s: stride, p: padding };
                if g.hp() > 65535 || g.wp() > 65535 || kernel > 255 || stride > 255 || padding > 255 {
                    return Err(fail("a conv2d layer beyond the ISA's fields".into()));
                }
                if let Some(maps) = odd_maps(&g, dense) {
                    return Err(fail(format!(
                        "spike maps that are not whole bytes in a staged program: {maps} per sample-step; \
                         channels x height x width must be a multiple of 8"
                    )));
                }
                let pool = self.pool(nl, &g)?;
                let fused = Pool::fused(pool).map(|p| (p.k, p.kind == PoolKind::Max));
                let t = tiles::conv(&g, dense, fused, !self.first, &self.caps)
                    .map_err(|e| fail(format!("this layer in a staged program: {e}")))?;
                Ok((Kind::Conv { g, t, pool }, out * cin * g.kk(), cin * g.kk(), out))
            }
            _ => Err(fail("a layer without weights at the head of a unit".into())),
        }
    }

    /// The pooling after the conv layer `g` whose neuron layer is `nl`, and where it runs:
    /// windows that tile the map pool inside the conv tiles (as before overlapping windows
    /// existed); any other pooling in its own pass over groups of whole channel maps.
    fn pool(&self, nl: &Layer, g: &ConvGeom) -> Result<Option<Pool>, CodegenError> {
        let Some(p) = Pooling::of(self.graph, nl, (g.cout, g.oh, g.ow))? else { return Ok(None) };
        if p.tiles(g.oh, g.ow) {
            return Ok(Some(Pool { p, pass: None }));
        }
        let name = || self.graph.consumers(nl.id).next().map_or_else(|| nl.name.clone(), |l| l.name.clone());
        let cp = tiles::pool_group(g, &p, &self.caps).map_err(|e| CodegenError::Unsupported {
            layer: name(),
            what: format!("this pooling in a staged program: {e}"),
        })?;
        Ok(Some(Pool { p, pass: Some(cp) }))
    }
}

/// The spike maps of a conv layer that are not whole bytes per sample-step, described (an
/// FP16 input map is any length), or `None` when every one is.
fn odd_maps(g: &ConvGeom, dense: bool) -> Option<String> {
    let describe = |what: &str, (c, h, w): (u32, u32, u32)| format!("{} {what} spikes ({c}x{h}x{w})", c * h * w);
    let input = (!dense && g.inputs() % 8 != 0).then(|| describe("input", (g.cin, g.h, g.w)));
    let output = (g.outputs() % 8 != 0).then(|| describe("output", (g.cout, g.oh, g.ow)));
    match (input, output) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => Some(one),
        (Some(i), Some(o)) => Some(format!("{i} and {o}")),
    }
}
