//! The plan: every decision about one program before any instruction is written — each
//! unit's neuron configuration, buffer regions on its core, `opt` regions, and DRAM tensors.

use super::alloc::{Buffers, Dram};
use super::conv::{self, ConvUnit};
use super::placement::{Placement, UnitPlacement, linear_dims};
use super::weights::{self, Shape};
use super::{CodegenError, CodegenOptions};
use crate::graph::{Layer, LayerGraph};
use crate::model::{Encoding, LossKind, NeuronParams, Op, Optimizer, Reset, Surrogate};
use isa::{Buf, ChipDesc, DataKind, OptKind, ResetMode};

/// A whole program's decisions.
pub(super) struct Plan {
    /// Timesteps T.
    pub(super) t: u32,
    /// Batch size B.
    pub(super) b: u32,
    /// Training steps per run.
    pub(super) steps: u32,
    /// Steps taken by earlier runs (Adam's step counter starts there).
    pub(super) first_step: u32,
    /// Whether this is a training program (else the FP streams only).
    pub(super) train: bool,
    /// DRAM address of `output`, when the output sums are stored.
    pub(super) output: Option<u32>,
    /// Units in forward order.
    pub(super) units: Vec<Unit>,
    /// DRAM tensors and initial data.
    pub(super) dram: Dram,
    /// DRAM address of `input`, `target` and `loss`.
    pub(super) input: u32,
    pub(super) target: u32,
    pub(super) loss_addr: u32,
    /// The loss function.
    pub(super) loss: isa::LossKind,
    /// The optimizer configuration.
    pub(super) opt: OptCfg,
}

/// Optimizer constants for `cfg.opt`, and how many state words each parameter has.
#[derive(Clone, Copy)]
pub(super) struct OptCfg {
    pub(super) kind: OptKind,
    pub(super) lr: f32,
    pub(super) m: f32,
    pub(super) beta2: f32,
    pub(super) eps: f32,
    pub(super) state_words: u32,
}

/// Neuron constants for `cfg.neuron` and what the soma keeps for backward.
#[derive(Clone, Copy)]
pub(super) struct NeuronCfg {
    pub(super) beta: f32,
    pub(super) theta: f32,
    pub(super) reset: ResetMode,
    pub(super) detach: bool,
    pub(super) sg: isa::Surrogate,
    pub(super) alpha: f32,
    /// `false` for a non-spiking readout.
    pub(super) fire: bool,
    /// Keep `H[t]`: smooth surrogates, soft reset, or a non-detached hard reset.
    pub(super) keep_h: bool,
    /// Keep the rect mask.
    pub(super) keep_mask: bool,
}

/// The buffer of the output unit's spike or membrane sum over time: a 32-bit one, so the
/// time mean the loss reads is summed in FP32 (the golden `z`), not rounded every step.
pub(super) const SUM_BUF: Buf = Buf::WgGrad;

/// Where the unit's input comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Bit-packed spikes from DRAM; each timestep's row is this many bytes.
    DramSpikes { row_bytes: u32 },
    /// Dense FP16 currents from DRAM.
    DramDense,
    /// Spikes from the previous core over the NoC.
    Noc { from: u16 },
}

/// One unit: a linear layer and its neuron layer on one core, with all its regions.
pub(super) struct Unit {
    /// Code symbol name (`linear+neuron`), and the two layer names.
    pub(super) name: String,
    pub(super) weight_name: String,
    pub(super) neuron_name: String,
    pub(super) core: u16,
    pub(super) next: Option<u16>,
    pub(super) input: Input,
    pub(super) k: u32,
    pub(super) n: u32,
    pub(super) bias: bool,
    pub(super) neuron: NeuronCfg,
    pub(super) fp_tile: u32,
    pub(super) bp_tile: u32,
    /// Whether this is the output unit (loss, target).
    pub(super) output: bool,
    /// Input of all T steps: buffer, first element, elements between timesteps.
    pub(super) fin: (Buf, u32, u32),
    /// `fp.psum`: synaptic input of all T steps; the spike or membrane sum (output unit).
    pub(super) x: u32,
    pub(super) sum: u32,
    /// `fp.mem`: V, H of all T steps, bias.
    pub(super) v: u32,
    pub(super) h: u32,
    pub(super) bias_mem: u32,
    /// `fp.spk` spikes and `fp.mask` masks / nonzero bitmaps of dL/dH, all T steps.
    pub(super) spk: u32,
    pub(super) mask: u32,
    pub(super) nz: u32,
    /// `bp.err`: dL/dS (all T steps received, or the one loss gradient) and the target.
    pub(super) ds: u32,
    pub(super) tgt: u32,
    /// `bp.psum`: dL/dS of the previous layer for all T steps; `bp.delta`: dL/dH; `bp.vgrad`.
    pub(super) gin: u32,
    pub(super) delta: u32,
    pub(super) vgrad: u32,
    /// Gradient accumulators (`wg.grad` when they fit, else `opt`) and the loss cell.
    pub(super) grad: (Buf, u32),
    pub(super) loss_cell: u32,
    /// `opt`: FP32 masters and optimizer state.
    pub(super) master: u32,
    pub(super) state: u32,
    /// DRAM: FP16 weight (bias follows), FP32 master (bias master follows), state, debug.
    pub(super) w_addr: u32,
    pub(super) master_addr: u32,
    pub(super) state_addr: u32,
    pub(super) debug: Option<Debug>,
    /// Whether the input is dense FP16 (currents, or a pooled map) rather than spikes.
    pub(super) dense_in: bool,
    /// Weights (`k*n`, or `cout*cin*k*k` for a conv layer).
    pub(super) wlen: u32,
    /// The conv geometry and regions of a conv unit.
    pub(super) conv: Option<ConvUnit>,
}

/// DRAM addresses of the parity stores.
pub(super) struct Debug {
    pub(super) grad: u32,
    /// The linear output `<linear>.out`, dL/dS `<neuron>.dS`, dL/dH `<neuron>.dH`.
    pub(super) out: u32,
    pub(super) ds: u32,
    pub(super) dh: u32,
    /// The output unit's FP32 sum over time, `<neuron>.sum`.
    pub(super) sum: Option<u32>,
    /// A conv unit's pooled spikes, `<neuron>.pooled`.
    pub(super) pooled: Option<u32>,
    pub(super) s: Option<u32>,
    pub(super) v: u32,
    pub(super) h: Option<u32>,
}

impl Unit {
    /// Parameters: weights, then the bias.
    pub(super) fn params(&self) -> u32 {
        self.wlen + self.biases()
    }

    /// Bias values: one per output feature of a linear layer, one per output channel of a
    /// conv layer, none without a bias.
    pub(super) fn biases(&self) -> u32 {
        match (&self.conv, self.bias) {
            (_, false) => 0,
            (Some(cu), true) => cu.g.cout(),
            (None, true) => self.n,
        }
    }
}

impl Plan {
    /// Decides everything, or says which layer does not fit or is unsupported.
    pub(super) fn new(
        graph: &LayerGraph,
        chip: &ChipDesc,
        placement: &Placement,
        options: &CodegenOptions,
    ) -> Result<Plan, CodegenError> {
        let (t, b, steps) = (graph.timesteps, graph.batch, options.steps.max(1));
        let first = &graph.input().name;
        check_u16(first, "timesteps", t)?;
        check_u16(first, "batch", b)?;
        let mut dram = Dram::default();
        let s = u64::from(steps);
        let input = dram.tensor("input", s * input_bytes(graph, placement))?;
        let target = dram.tensor("target", s * u64::from(b) * u64::from(graph.classes()) * 2)?;
        let loss_addr = dram.tensor("loss", s * 4)?;
        let classes = u64::from(b) * u64::from(graph.classes()) * 4;
        let output = if options.outputs { Some(dram.tensor("output", s * classes)?) } else { None };
        let opt = opt_cfg(graph.optimizer);
        let mut shared = Buffers::default();
        let mut units = Vec::new();
        for (i, up) in placement.units.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| placement.units[p].core);
            let next = placement.units.get(i + 1).map(|u| u.core);
            let ctx = UnitCtx { graph, chip, options, opt, prev, next };
            units.push(ctx.unit(up, &mut dram, &mut shared)?);
        }
        let loss = match graph.loss {
            LossKind::MseRate => isa::LossKind::MseRate,
            LossKind::CeRate => isa::LossKind::CeRate,
            LossKind::CeMem => isa::LossKind::CeMem,
        };
        let (first_step, train) = (options.first_step, options.train);
        Ok(Plan { t, b, steps, first_step, train, output, units, dram, input, target, loss_addr, loss, opt })
    }
}

pub(super) fn check_u16(layer: &str, what: &str, v: u32) -> Result<(), CodegenError> {
    if v > u32::from(u16::MAX) {
        return Err(CodegenError::Unsupported { layer: layer.into(), what: format!("{what} above 65535 ({v})") });
    }
    Ok(())
}

fn input_bytes(graph: &LayerGraph, placement: &Placement) -> u64 {
    let k = placement.units.first().map_or(0, |u| linear_dims(graph, graph.layer(u.weight)).0);
    let tb = u64::from(graph.timesteps) * u64::from(graph.batch);
    match graph.encoding() {
        Encoding::Current { .. } => tb * u64::from(k) * 2,
        _ => tb * u64::from(k.div_ceil(8)),
    }
}

pub(super) fn opt_cfg(o: Optimizer) -> OptCfg {
    match o {
        Optimizer::Sgd { lr, momentum } => OptCfg {
            kind: OptKind::Sgd,
            lr: lr as f32,
            m: momentum as f32,
            beta2: 0.0,
            eps: 0.0,
            state_words: u32::from(momentum != 0.0),
        },
        Optimizer::Adam { lr, betas, eps } => OptCfg {
            kind: OptKind::Adam,
            lr: lr as f32,
            m: betas[0] as f32,
            beta2: betas[1] as f32,
            eps: eps as f32,
            state_words: 2,
        },
    }
}

pub(super) fn neuron_cfg(layer: &Layer, defaults: NeuronParams) -> NeuronCfg {
    let (p, fire) = match &layer.op {
        Op::Lif(p) => (*p, true),
        Op::Readout { beta } => (NeuronParams { beta: *beta, ..defaults }, false),
        _ => (defaults, true),
    };
    let (sg, alpha) = match p.surrogate {
        Surrogate::Rect(w) => (isa::Surrogate::Rect, w),
        Surrogate::Atan(a) => (isa::Surrogate::Atan, a),
        Surrogate::Sigmoid(a) => (isa::Surrogate::Sigmoid, a),
        Surrogate::Triangle(a) => (isa::Surrogate::Triangle, a),
        Surrogate::FastSigmoid(k) => (isa::Surrogate::FastSigmoid, k),
    };
    let reset = match p.reset {
        Reset::Hard => ResetMode::Hard,
        Reset::Soft => ResetMode::Soft,
    };
    let rect = sg == isa::Surrogate::Rect;
    let keep_h = fire && (!rect || reset == ResetMode::Soft || !p.detach_reset);
    NeuronCfg {
        beta: p.beta as f32,
        theta: p.threshold as f32,
        reset,
        detach: p.detach_reset,
        sg,
        alpha: alpha as f32,
        fire,
        keep_h,
        keep_mask: fire && rect,
    }
}

/// What planning one unit needs to know about its neighbours and the program.
struct UnitCtx<'a> {
    graph: &'a LayerGraph,
    chip: &'a ChipDesc,
    options: &'a CodegenOptions,
    opt: OptCfg,
    prev: Option<u16>,
    next: Option<u16>,
}

impl UnitCtx<'_> {
    fn unit(&self, up: &UnitPlacement, dram: &mut Dram, shared: &mut Buffers) -> Result<Unit, CodegenError> {
        let (wl, nl) = (self.graph.layer(up.weight), self.graph.layer(up.neuron));
        let (k, n) = linear_dims(self.graph, wl);
        check_u16(&wl.name, "input features", k)?;
        check_u16(&wl.name, "output features", n)?;
        let bias = matches!(wl.op, Op::Linear { bias: true, .. } | Op::Conv2d { bias: true, .. });
        let dense_in = conv::pooled_input(self.graph, wl)
            || self.prev.is_none() && matches!(self.graph.encoding(), Encoding::Current { .. });
        let conv = conv::plan(self.graph, wl, nl, self.next.is_none())?;
        let wlen = conv.as_ref().map_or(k * n, |cu| cu.g.weights());
        let input = match (self.prev, self.graph.encoding()) {
            (Some(from), _) => Input::Noc { from },
            (None, Encoding::Current { .. }) => Input::DramDense,
            (None, _) => Input::DramSpikes { row_bytes: k.div_ceil(8) },
        };
        let mut u = Unit {
            name: format!("{}+{}", wl.name, nl.name),
            weight_name: wl.name.clone(),
            neuron_name: nl.name.clone(),
            core: up.core,
            next: self.next,
            input,
            k,
            n,
            bias,
            neuron: neuron_cfg(nl, self.graph.neuron),
            fp_tile: up.fp_tile,
            bp_tile: up.bp_tile,
            output: self.next.is_none(),
            fin: (Buf::FpIn, 0, k),
            x: 0,
            sum: 0,
            v: 0,
            h: 0,
            bias_mem: 0,
            spk: 0,
            mask: 0,
            nz: 0,
            ds: 0,
            tgt: 0,
            gin: 0,
            delta: 0,
            vgrad: 0,
            grad: (Buf::WgGrad, 0),
            loss_cell: 0,
            master: 0,
            state: 0,
            w_addr: 0,
            master_addr: 0,
            state_addr: 0,
            debug: None,
            dense_in,
            wlen,
            conv,
        };
        if u.conv.is_some() {
            conv::buffers(self.chip, self.graph.timesteps, &mut u)?;
        } else {
            self.buffers(&mut u)?;
        }
        self.params(&mut u, wl.id.0, dram, shared)?;
        Ok(u)
    }

    /// Regions of the unit's own core.
    fn buffers(&self, u: &mut Unit) -> Result<(), CodegenError> {
        let mut a = Buffers::default();
        let (chip, name) = (self.chip, u.weight_name.clone());
        let (t, k, n) = (u64::from(self.graph.timesteps), u64::from(u.k), u64::from(u.n));
        let mut take = |buf: Buf, len: u64| a.take(chip, buf, len, &name);
        u.fin = match u.input {
            Input::DramSpikes { row_bytes } => {
                let stride = row_bytes * 8;
                (Buf::FpIn, take(Buf::FpIn, t * u64::from(stride))?, stride)
            }
            Input::DramDense => (Buf::FpMem, take(Buf::FpMem, t * k)?, u.k),
            // A pooled map arrives as dense FP16, which `fp.linear` reads from a 16-bit buffer.
            Input::Noc { .. } if u.dense_in => (Buf::FpMem, take(Buf::FpMem, t * k)?, u.k),
            Input::Noc { .. } => (Buf::FpIn, take(Buf::FpIn, t * k)?, u.k),
        };
        u.x = take(Buf::FpPsum, t * n)?;
        u.sum = if u.output { take(SUM_BUF, n)? } else { 0 };
        u.v = take(Buf::FpMem, n)?;
        u.h = if u.neuron.keep_h { take(Buf::FpMem, t * n)? } else { 0 };
        u.bias_mem = if u.bias { take(Buf::FpMem, n)? } else { 0 };
        // The spike store is also what a keep_activations store reads, in whole bytes.
        u.spk = take(Buf::FpSpk, (t * n).div_ceil(8) * 8)?;
        u.mask = if u.neuron.keep_mask { take(Buf::FpMask, t * n)? } else { 0 };
        u.nz = take(Buf::FpMask, t * n)?;
        u.ds = take(Buf::BpErr, if u.output { n } else { t * n })?;
        u.tgt = if u.output { take(Buf::BpErr, n)? } else { 0 };
        u.gin = if u.input_is_noc() { take(Buf::BpPsum, t * k)? } else { 0 };
        u.delta = take(Buf::BpDelta, t * n)?;
        u.vgrad = take(Buf::BpVgrad, n)?;
        u.loss_cell = if u.output { take(Buf::WgGrad, 1)? } else { 0 };
        let p = u64::from(u.params());
        let fits = a.take(chip, Buf::WgGrad, p, &name);
        u.grad = match fits {
            Ok(off) => (Buf::WgGrad, off),
            // Too large for wg.grad: accumulate in the shared store instead (see `wg.rs`).
            Err(_) => (Buf::Opt, u32::MAX),
        };
        Ok(())
    }

    /// `opt` regions (shared by all cores) and DRAM tensors with their initial data.
    fn params(&self, u: &mut Unit, id: u32, dram: &mut Dram, shared: &mut Buffers) -> Result<(), CodegenError> {
        let p = u64::from(u.params());
        let name = u.weight_name.clone();
        u.master = shared.take(self.chip, Buf::Opt, p, &name)?;
        u.state = shared.take(self.chip, Buf::Opt, p * u64::from(self.opt.state_words), &name)?;
        if u.grad.0 == Buf::Opt {
            u.grad.1 = shared.take(self.chip, Buf::Opt, p, &name)?;
        }
        let seed = weights::layer_seed(self.options.seed.unwrap_or(self.graph.init.seed), id);
        // Conv weights keep PyTorch's [cout][cin][kh][kw] layout, which `fp.conv` reads.
        let (k, n, transpose) = match &u.conv {
            Some(cu) => (cu.g.fan_in(), cu.g.cout(), false),
            None => (u.k, u.n, true),
        };
        let gain = self.graph.init.gain;
        let shape = Shape { name: &name, k, n, bias: u.bias, gain, seed, transpose };
        let tensors = weights::initial(&self.options.weights, &shape)?;
        let (kn, nb) = (u64::from(u.wlen), u64::from(u.biases()));
        u.w_addr = dram.tensor(&format!("{name}.weight"), kn * 2)?;
        dram.init(&format!("{name}.weight"), DataKind::Fp16, u.w_addr, weights::f16_bytes(&tensors.weight));
        if let Some(b) = &tensors.bias {
            let at = dram.follow(&format!("{name}.bias"), nb * 2)?;
            dram.init(&format!("{name}.bias"), DataKind::Fp16, at, weights::f16_bytes(b));
        }
        u.master_addr = dram.tensor(&format!("{name}.weight_master"), kn * 4)?;
        dram.init(&format!("{name}.weight_master"), DataKind::Fp32, u.master_addr, weights::f32_bytes(&tensors.weight));
        if let Some(b) = &tensors.bias {
            let at = dram.follow(&format!("{name}.bias_master"), nb * 4)?;
            dram.init(&format!("{name}.bias_master"), DataKind::Fp32, at, weights::f32_bytes(b));
        }
        if self.opt.state_words > 0 {
            u.state_addr = dram.tensor(&format!("{name}.opt_state"), p * 4 * u64::from(self.opt.state_words))?;
        }
        if self.options.keep_activations {
            u.debug = Some(self.debug(u, dram)?);
        }
        Ok(())
    }

    fn debug(&self, u: &Unit, dram: &mut Dram) -> Result<Debug, CodegenError> {
        let (t, b, n) = (u64::from(self.graph.timesteps), u64::from(self.graph.batch), u64::from(u.n));
        let grad = dram.tensor(&format!("{}.grad", u.weight_name), u64::from(u.params()) * 4)?;
        let nl = &u.neuron_name;
        let s = if u.neuron.fire { Some(dram.tensor(&format!("{nl}.S"), b * (t * n).div_ceil(8))?) } else { None };
        let v = dram.tensor(&format!("{nl}.V"), b * t * n * 2)?;
        let h = if u.neuron.keep_h { Some(dram.tensor(&format!("{nl}.H"), b * t * n * 2)?) } else { None };
        let out = dram.tensor(&format!("{}.out", u.weight_name), b * t * n * 2)?;
        let ds = dram.tensor(&format!("{nl}.dS"), b * if u.output { n } else { t * n } * 2)?;
        let dh = dram.tensor(&format!("{nl}.dH"), b * t * n * 2)?;
        let sum = if u.output { Some(dram.tensor(&format!("{nl}.sum"), b * n * 4)?) } else { None };
        let pooled = match u.conv.as_ref().and_then(ConvUnit::pooled_len) {
            Some(len) => Some(dram.tensor(&format!("{nl}.pooled"), b * t * u64::from(len) * 2)?),
            None => None,
        };
        Ok(Debug { grad, out, ds, dh, sum, pooled, s, v, h })
    }
}

impl Unit {
    /// Whether the input comes from another core (so errors go back to it).
    pub(super) fn input_is_noc(&self) -> bool {
        matches!(self.input, Input::Noc { .. })
    }

    /// The previous core, if any.
    pub(super) fn prev(&self) -> Option<u16> {
        match self.input {
            Input::Noc { from } => Some(from),
            _ => None,
        }
    }
}
