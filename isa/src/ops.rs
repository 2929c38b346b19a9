//! The instruction table: every instruction of the ISA, declared exactly once.
//!
//! [`for_each_op!`](crate::for_each_op) calls a macro with the whole table. The crate feeds
//! it to `define_isa!` (in `instr.rs`), which derives the [`Instr`](crate::Instr) enum, the
//! [`Opcode`](crate::Opcode) numbering (table order), the encoder, the decoder, the
//! [`Visitor`](crate::Visitor) trait, the printer, the operand parser and the reference
//! table behind `ISA.md`. Other crates may call `for_each_op!` with a macro of their own to
//! derive more (a cost table, say) without ever matching on opcodes by hand.
//!
//! # Grammar of an entry
//!
//! ```text
//! /// One-line doc (becomes the Instr variant's doc and the ISA.md summary).
//! Name method = "mnemonic" @ Unit { /// field doc
//!                                   field: Type, ... };
//! ```
//!
//! Mnemonics are `unit.verb` for engine work (`fp.conv`, `bp.soma`, `wg.update`), `dma.ld` /
//! `dma.st` / `noc.send` / `noc.recv` for data movement, and bare verbs for control. `Unit`
//! is the hardware that executes it (see [`Unit`](crate::Unit)); engine units only appear in
//! their own stream, `Mov` and `Ctl` in any. **Appending** an entry keeps old opcodes;
//! inserting or reordering renumbers them and needs a format version bump.

/// Calls `$m! { ...table... }` with every instruction of the ISA.
///
/// Each entry is `/// doc` then `Name method = "mnemonic" @ Unit { /// doc field: Type, ... };`
/// where `Unit` is a [`Unit`](crate::Unit) variant and `Type` an operand type named without a
/// path (`u8`, `u16`, `u32`, `f32`, `bool`, `Reg`, `Stream`, `Access`, `DramAddr`,
/// `Option<Access>`, `ResetMode`, `Surrogate`, `PoolKind`, `LossKind`, `OptKind`): a caller
/// outside this crate imports those names from `isa` before invoking it.
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            /// End of stream: the engine stops. Every non-empty stream ends with exactly one.
            Halt halt = "halt" @ Ctl {};
            /// Start a counted loop: run the body up to the matching `endloop` `n` times with `r` = 0..n-1.
            Loop loop_start = "loop" @ Ctl {
                /// Counter register (must not already be live in an enclosing loop).
                r: Reg,
                /// Trip count (at least 1).
                n: u32,
            };
            /// Close the innermost loop, which must count in `r`: increment and jump back, or fall through.
            EndLoop loop_end = "endloop" @ Ctl {
                /// Counter register of the loop being closed.
                r: Reg,
            };
            /// Raise token `tok` of stream `stream` on core `core` by one (cross-engine and cross-core sync).
            Signal signal = "signal" @ Ctl {
                /// Target core.
                core: u16,
                /// Target stream on that core.
                stream: Stream,
                /// Token counter (0..16).
                tok: u8,
            };
            /// Block until this stream's token `tok` reaches `n`, then subtract `n`.
            Wait wait = "wait" @ Ctl {
                /// Token counter (0..16).
                tok: u8,
                /// How many signals to consume (at least 1).
                n: u16,
            };
            /// Block until `count` streams (chip-wide) have reached barrier `id`.
            Barrier barrier = "barrier" @ Ctl {
                /// Barrier identifier.
                id: u8,
                /// Number of participating streams.
                count: u16,
            };
            /// Set neuron configuration slot `slot`: LIF decay, threshold, reset and surrogate.
            CfgNeuron cfg_neuron = "cfg.neuron" @ Ctl {
                /// Configuration slot (0..8).
                slot: u8,
                /// Membrane decay beta.
                beta: f32,
                /// Firing threshold theta.
                theta: f32,
                /// Hard or soft reset.
                reset: ResetMode,
                /// Whether the reset term is detached from the gradient.
                detach: bool,
                /// Surrogate derivative.
                sg: Surrogate,
                /// Surrogate parameter (rect width, alpha or slope).
                alpha: f32,
            };
            /// Set optimizer configuration slot `slot` and reset its step counter to 0.
            CfgOpt cfg_opt = "cfg.opt" @ Ctl {
                /// Configuration slot (0..8).
                slot: u8,
                /// SGD or Adam.
                kind: OptKind,
                /// Learning rate.
                lr: f32,
                /// SGD momentum, or Adam beta1.
                m: f32,
                /// Adam beta2 (ignored by SGD).
                beta2: f32,
                /// Adam epsilon (ignored by SGD).
                eps: f32,
                /// Weight decay (0 for none).
                wd: f32,
            };
            /// Load a strided DRAM tile into a buffer: `rows` rows of `row` bytes, `stride` bytes apart.
            DmaLoad dma_load = "dma.ld" @ Mov {
                /// Destination buffer range (rows*row bytes of elements).
                dst: Access,
                /// Source DRAM address of the first row.
                src: DramAddr,
                /// Number of rows.
                rows: u16,
                /// Bytes per row.
                row: u32,
                /// Bytes between row starts.
                stride: u32,
            };
            /// Store a buffer range to a strided DRAM tile: `rows` rows of `row` bytes, `stride` bytes apart.
            DmaStore dma_store = "dma.st" @ Mov {
                /// Destination DRAM address of the first row.
                dst: DramAddr,
                /// Source buffer range.
                src: Access,
                /// Number of rows.
                rows: u16,
                /// Bytes per row.
                row: u32,
                /// Bytes between row starts.
                stride: u32,
            };
            /// Send a buffer range (spikes or errors) to core `to` on NoC channel `chan`.
            NocSend noc_send = "noc.send" @ Mov {
                /// Destination core.
                to: u16,
                /// Channel (0..16); pairs a send with the receiver's `noc.recv`.
                chan: u8,
                /// Local source range.
                src: Access,
            };
            /// Receive from core `from` on channel `chan` into a buffer range, blocking until it arrives.
            NocRecv noc_recv = "noc.recv" @ Mov {
                /// Source core.
                from: u16,
                /// Channel (0..16).
                chan: u8,
                /// Local destination range.
                dst: Access,
            };
            /// Copy between two buffers of the same core (e.g. FP spikes to WG); bit lengths must match.
            Copy copy = "copy" @ Mov {
                /// Destination range.
                dst: Access,
                /// Source range.
                src: Access,
            };
            /// Fill a buffer range with a constant (zero psums, `V[0]`, gradient accumulators).
            Fill fill = "fill" @ Mov {
                /// Destination range.
                dst: Access,
                /// Value (converted to the buffer's element type).
                value: f32,
            };
            /// Linear tile, spike-driven: `out[j] (+)= sum_i spk[i] * w[i*n+j]`; a mux and an FP16 add per PE.
            /// With `rows` > 1 the same weights serve `rows` input rows (timesteps, say): row `r` reads
            /// `spk` at `r*spk_stride` and writes `out` at `r*out_stride` elements past row 0, exactly as
            /// `rows` single-row instructions in order would.
            FpLinear fp_linear = "fp.linear" @ Fp {
                /// Input spikes of row 0, `k` elements (1-bit; a 16-bit buffer means dense FP16 input).
                spk: Access,
                /// Weights, `k*n` elements, row-major k x n.
                w: Access,
                /// Partial sums of row 0, `n` elements.
                out: Access,
                /// Input features.
                k: u16,
                /// Output features.
                n: u16,
                /// Number of rows (at least 1).
                rows: u16,
                /// Elements between the `spk` of consecutive rows.
                spk_stride: u16,
                /// Elements between the `out` of consecutive rows.
                out_stride: u16,
                /// Accumulate onto `out` instead of overwriting it.
                acc: bool,
                /// Scan the spike bitmap and skip zero spikes (counted as skipped work).
                skip: bool,
            };
            /// Convolution tile, spike-driven, stride `stride`, over a pre-padded `cin x ih x iw` input.
            FpConv fp_conv = "fp.conv" @ Fp {
                /// Input spikes, `cin*ih*iw` elements, padded.
                spk: Access,
                /// Weights, `cout*cin*kh*kw` elements.
                w: Access,
                /// Bias of each output channel, `cout` elements, if any: added to every sum of its
                /// channel in the accumulator, after the products and before the one rounding (as
                /// `x*W + b` is rounded once); with `acc` the rounded sum is then added to `out`.
                bias: Option<Access>,
                /// Partial sums, `cout*oh*ow` elements.
                out: Access,
                /// Input channels.
                cin: u16,
                /// Output channels.
                cout: u16,
                /// Padded input height.
                ih: u16,
                /// Padded input width.
                iw: u16,
                /// Kernel height.
                kh: u8,
                /// Kernel width.
                kw: u8,
                /// Stride.
                stride: u8,
                /// Accumulate onto `out`.
                acc: bool,
                /// Skip zero spikes.
                skip: bool,
            };
            /// Pool `c x ih x iw` with a `k x k` window, stride `stride` and `pad` of padding per side (max on spikes is OR).
            /// As PyTorch in floor mode, the output is `c x oh x ow` with `oh = (ih + 2*pad - k)/stride + 1`
            /// (likewise `ow`). Max pools the in-bounds elements (padding is -inf), average divides the
            /// window's sum by `k*k` (padding counts as zeros, PyTorch's `count_include_pad`).
            FpPool fp_pool = "fp.pool" @ Fp {
                /// Average or max.
                kind: PoolKind,
                /// Source, `c*ih*iw` elements.
                src: Access,
                /// Destination, `c*oh*ow` elements.
                dst: Access,
                /// Channels.
                c: u16,
                /// Input height.
                ih: u16,
                /// Input width.
                iw: u16,
                /// Window height and width.
                k: u8,
                /// Stride (`k` for non-overlapping windows).
                stride: u8,
                /// Padding on every side (at most `k/2`).
                pad: u8,
            };
            /// LIF soma over `rows` timesteps of `n` neurons: charge, fire, reset; keep H, spike and mask for backward.
            /// Row `r` (timestep `r`, in increasing order) reads `x` and writes `h`, `spk` and `mask` at
            /// `r*n` elements past their start; `v` carries the membrane from row to row and `bias` is the
            /// same for every row. `rows` = R means exactly R single-row instructions in order (values,
            /// statistics, buffer accesses, operations and energy); it costs one issue cycle, plus per row
            /// the cycles a single-row instruction charges beyond its issue cycle.
            FpLif fp_lif = "fp.lif" @ Fp {
                /// Synaptic input `x[t]` (partial sums), `rows*n` elements.
                x: Access,
                /// Bias added to x, if any, `n` elements (the same for every row).
                bias: Option<Access>,
                /// Membrane V, `n` elements: read as `V[t-1]`, written as `V[t]`, row after row.
                v: Access,
                /// Where to keep `H[t]` for backward (needed by non-rect surrogates), `rows*n` elements.
                h: Option<Access>,
                /// Output spikes `S[t]` (1-bit), `rows*n` elements.
                spk: Option<Access>,
                /// Surrogate mask |H-theta| < width/2 (1-bit; rect surrogate), `rows*n` elements.
                mask: Option<Access>,
                /// Neuron count.
                n: u32,
                /// Number of rows (timesteps, at least 1).
                rows: u16,
                /// Neuron configuration slot.
                cfg: u8,
                /// Fire and reset; `false` makes a non-spiking integrator (readout).
                fire: bool,
            };
            /// Accumulate `dst += src` elementwise (spike counts for rates, membrane sums for readouts).
            FpSum fp_sum = "fp.sum" @ Fp {
                /// FP16 accumulator range.
                dst: Access,
                /// Spikes (1-bit) or FP16 values, same length.
                src: Access,
            };
            /// Propagate errors through transposed weights: `out[i] (+)= sum_j err[j] * w[i*n+j]` (FP16 MAC).
            /// With `rows` > 1, row `r` reads `err` (and `nz`) at `r*err_stride` and writes `out` at
            /// `r*out_stride` elements past row 0, exactly as `rows` single-row instructions in order would.
            BpLinear bp_linear = "bp.linear" @ Bp {
                /// Errors dL/dH of the layer above for row 0, `n` elements.
                err: Access,
                /// Weights as `fp.linear` holds them (`k*n`, row-major k x n); the engine reads them transposed.
                w: Access,
                /// Errors dL/dS of this layer for row 0, `k` elements.
                out: Access,
                /// Output features of the forward layer.
                n: u16,
                /// Input features of the forward layer.
                k: u16,
                /// Number of rows (at least 1).
                rows: u16,
                /// Elements between the `err` (and the `nz`) of consecutive rows.
                err_stride: u16,
                /// Elements between the `out` of consecutive rows.
                out_stride: u16,
                /// Accumulate onto `out`.
                acc: bool,
                /// Nonzero bitmap of `err` (1-bit, `n` elements): zero errors are skipped.
                nz: Option<Access>,
            };
            /// Transposed convolution of errors back to a padded `cin x ih x iw` input (FP16 MAC).
            BpConv bp_conv = "bp.conv" @ Bp {
                /// Errors, `cout*oh*ow` elements.
                err: Access,
                /// Weights, `cout*cin*kh*kw` elements.
                w: Access,
                /// Input errors, `cin*ih*iw` elements.
                out: Access,
                /// Input channels.
                cin: u16,
                /// Output channels.
                cout: u16,
                /// Padded input height.
                ih: u16,
                /// Padded input width.
                iw: u16,
                /// Kernel height.
                kh: u8,
                /// Kernel width.
                kw: u8,
                /// Stride.
                stride: u8,
                /// Accumulate onto `out`.
                acc: bool,
                /// Nonzero bitmap of `err`: zero errors are skipped.
                nz: Option<Access>,
            };
            /// Pooling backward: route (max) or spread (avg) `dy` back over the `k x k` windows of `dx`, summing where they overlap.
            /// The geometry is `fp.pool`'s. Max routes each output's error to the first in-bounds maximum of
            /// its window in row-major order (PyTorch's tie rule); where windows overlap, the errors add up
            /// in FP16 with the windows taken in row-major order.
            BpPool bp_pool = "bp.pool" @ Bp {
                /// Average or max.
                kind: PoolKind,
                /// Gradient of the pooled output, `c*oh*ow` elements.
                dy: Access,
                /// Gradient of the input, `c*ih*iw` elements.
                dx: Access,
                /// Forward input (max pooling routes to the elements that won).
                x: Option<Access>,
                /// Channels.
                c: u16,
                /// Input height.
                ih: u16,
                /// Input width.
                iw: u16,
                /// Window height and width.
                k: u8,
                /// Stride (`k` for non-overlapping windows).
                stride: u8,
                /// Padding on every side (at most `k/2`).
                pad: u8,
            };
            /// Gradient soma over `rows` timesteps in reverse time: `dH[t]` from `dS[t]`, the surrogate and `dV[t]`; dV := `dV[t-1]`.
            /// Rows run from last to first: row `r` reads `h`, `mask`, `spk` and writes `dh`, `nz` at `r*n`
            /// elements past their start; `dv` carries the gradient from row to row. `ds` holds either
            /// `rows*n` elements (row `r` at `r*n`) or `n` (the same error for every row, e.g. a rate loss).
            /// `rows` = R means exactly R single-row instructions for rows R-1, ..., 0 (values, statistics,
            /// buffer accesses, operations and energy); it costs one issue cycle, plus per row the cycles a
            /// single-row instruction charges beyond its issue cycle.
            BpSoma bp_soma = "bp.soma" @ Bp {
                /// `dL/dS[t]`: `rows*n` elements, or `n` shared by every row.
                ds: Access,
                /// Saved `H[t]` (non-rect surrogates, soft reset), `rows*n` elements.
                h: Option<Access>,
                /// Saved surrogate mask (rect), `rows*n` elements.
                mask: Option<Access>,
                /// Saved spikes `S[t]` (reset path when not detached), `rows*n` elements.
                spk: Option<Access>,
                /// Carried dL/dV, `n` elements: read as `dL/dV[t]`, written as `dL/dV[t-1]`, row after row.
                dv: Access,
                /// Output `dL/dH[t]` (feeds WG and the layer below), `rows*n` elements.
                dh: Access,
                /// Output nonzero bitmap of `dh` (1-bit), so BP and WG can skip zero errors, `rows*n` elements.
                nz: Option<Access>,
                /// Neuron count.
                n: u32,
                /// Number of rows (timesteps, at least 1).
                rows: u16,
                /// Neuron configuration slot.
                cfg: u8,
                /// `false` for a non-spiking readout (no surrogate, no reset).
                fire: bool,
            };
            /// Loss gradient on `n` classes from accumulated spike counts or membrane sums over `t` steps.
            BpLoss bp_loss = "bp.loss" @ Bp {
                /// Loss function.
                kind: LossKind,
                /// Spike counts or membrane sums over T, `n` elements.
                x: Access,
                /// One-hot target, `n` elements (FP16).
                target: Access,
                /// Gradient w.r.t. `S[t]` or `V[t]` (the same for every t), `n` elements.
                out: Access,
                /// Where to add the loss value (FP32), if wanted.
                loss: Option<Access>,
                /// Classes.
                n: u16,
                /// Timesteps T.
                t: u16,
                /// Batch size B (the gradient is scaled by 1/B).
                b: u16,
            };
            /// Accumulate the linear weight gradient `dw[i*n+j] += spk[i] * err[j]` (mux + add), and `db += err`.
            /// With `rows` > 1, row `r` reads `spk` at `r*spk_stride` and `err` (and `nz`) at `r*err_stride`
            /// elements past row 0 and accumulates into the same `dw` and `db`, rows in increasing order.
            WgLinear wg_linear = "wg.linear" @ Wg {
                /// Input spikes of the forward layer for row 0, `k` elements.
                spk: Access,
                /// Errors dL/dH for row 0, `n` elements.
                err: Access,
                /// Weight gradient accumulators, `k*n` elements.
                dw: Access,
                /// Bias gradient accumulators, `n` elements, if the layer has a bias.
                db: Option<Access>,
                /// Input features.
                k: u16,
                /// Output features.
                n: u16,
                /// Number of rows (at least 1).
                rows: u16,
                /// Elements between the `spk` of consecutive rows.
                spk_stride: u16,
                /// Elements between the `err` (and the `nz`) of consecutive rows.
                err_stride: u16,
                /// Skip zero spikes.
                skip: bool,
                /// Nonzero bitmap of `err`: zero errors are skipped.
                nz: Option<Access>,
            };
            /// Accumulate the conv weight gradient over one padded input and error map (mux + add).
            WgConv wg_conv = "wg.conv" @ Wg {
                /// Input spikes, `cin*ih*iw` elements, padded.
                spk: Access,
                /// Errors, `cout*oh*ow` elements.
                err: Access,
                /// Weight gradient accumulators, `cout*cin*kh*kw` elements.
                dw: Access,
                /// Bias gradient accumulators, `cout` elements, if any.
                db: Option<Access>,
                /// Input channels.
                cin: u16,
                /// Output channels.
                cout: u16,
                /// Padded input height.
                ih: u16,
                /// Padded input width.
                iw: u16,
                /// Kernel height.
                kh: u8,
                /// Kernel width.
                kw: u8,
                /// Stride.
                stride: u8,
                /// Skip zero spikes.
                skip: bool,
                /// Nonzero bitmap of `err`: zero errors are skipped.
                nz: Option<Access>,
            };
            /// Advance the step counter of optimizer slot `slot` (Adam bias correction); once per batch.
            WgStep wg_step = "wg.step" @ Wg {
                /// Optimizer configuration slot.
                slot: u8,
            };
            /// Optimizer update of `n` parameters: FP32 master weights and state, then the FP16 copy.
            WgUpdate wg_update = "wg.update" @ Wg {
                /// Gradient accumulators (FP32).
                grad: Access,
                /// FP32 master weights (in `opt`).
                master: Access,
                /// Optimizer state: momentum (`n`) or Adam m and v (`2n`); none for plain SGD.
                state: Option<Access>,
                /// Destination of the FP16 weight copy.
                w16: Access,
                /// Parameter count.
                n: u32,
                /// Optimizer configuration slot.
                cfg: u8,
                /// Gradient scale applied first (e.g. 1/B).
                scale: f32,
                /// Zero the gradient accumulators afterwards.
                zero: bool,
            };
            /// Move a `c x h x w` map between a dense layout and the interior of a zero-bordered `c x (h+2p) x (w+2p)` one (conv input padding, and taking the interior of a padded input gradient back out); the border is not touched.
            Pad pad = "pad" @ Mov {
                /// Destination range: padded (`extract = false`) or dense (`extract = true`).
                dst: Access,
                /// Source range: dense (`extract = false`) or padded (`extract = true`).
                src: Access,
                /// Channels.
                c: u16,
                /// Height of the dense map.
                h: u16,
                /// Width of the dense map.
                w: u16,
                /// Border width.
                p: u8,
                /// `false`: dense `src` into the interior of padded `dst`; `true`: the interior of padded `src` into dense `dst`.
                extract: bool,
            };
        }
    };
}
