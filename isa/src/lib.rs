//! # `isa`: the snnc instruction set, chip description and program format
//!
//! This crate is where the compiler and the simulator meet. It knows nothing of either: it
//! defines what a chip is ([`ChipDesc`]), what a program for it is ([`Program`]), and the
//! instructions programs are made of ([`Instr`]), with their binary and text forms.
//!
//! ## Entry points
//!
//! | task | call |
//! | --- | --- |
//! | chip description | [`ChipDesc::default`], [`ChipDesc::from_toml_str`], [`ChipDesc::to_toml_string`], [`ChipDesc::hash`], [`ChipDesc::validate`] |
//! | binary program | [`Program::to_bytes`], [`Program::from_bytes`] (errors: [`DecodeError`] with byte offset) |
//! | text program | [`asm::print`], [`asm::assemble`] (errors: [`AsmError`] with line:column) |
//! | checking | [`verify::verify`] → [`Violation`]s with core / stream / instruction index |
//! | executing or analysing | [`exec::Sequencer`] runs a stream's loops; implement [`Visitor`] and call [`Instr::visit`] on what it yields (or [`decode_visit`] on raw code); [`Access::start`] resolves addresses |
//! | reference | [`doc::isa_reference`] (the text of `isa/ISA.md`), [`OPS`] |
//!
//! The CLI maps onto these directly: `snnc asm` is `assemble` + `to_bytes`, `snnc disasm` is
//! `from_bytes` + `print`, `snnc verify` is `from_bytes` + `verify`, `snnc chip` is
//! `to_toml_string`.
//!
//! ## The data model
//!
//! A chip has cores on a mesh NoC. Each core has three engines — FP (feed-forward), BP
//! (back-propagation), WG (weight gradient) — and a data mover (DMA to DRAM, NoC port). A
//! [`Program`] gives each core **four instruction streams**, one per engine plus one for
//! the data mover ([`Stream`]). The streams of a core run concurrently: this is the
//! engine-level parallelism of the chip, where FP works on timestep t+1 or the next sample
//! while BP and WG work on earlier ones. Streams of different cores run concurrently too
//! (core-level parallelism: layers, channel groups or timesteps spread over cores).
//!
//! Concurrency is explicit. Nothing in the hardware orders two streams except:
//! - **tokens**: `signal core stream tok` raises a counter of any stream on any core,
//!   `wait tok n` blocks until its own counter reaches n and consumes it. Tokens are the
//!   producer/consumer handshake between engines (FP's spikes ready → WG may read them;
//!   BP's errors consumed → FP may overwrite the buffer) and between cores.
//! - **NoC messages**: `noc.send to chan src` and `noc.recv from chan dst` move spikes
//!   and errors core to core without DRAM; a receive blocks until the data is there.
//! - **barriers**: `barrier id count` for the rare whole-chip phase change (end of batch
//!   before the weight update).
//!
//! The verifier checks these match (every wait has signals, and the counts balance over
//! all loop iterations; bits sent equal bits received; barrier sizes agree), so a program
//! that verifies cannot deadlock on a missing partner.
//!
//! ## Why these instructions
//!
//! The instructions are coarse: one instruction is one tile of work for a 16x16 PE array
//! (a linear or conv tile, one timestep of a soma, one optimizer update of a tensor). That
//! keeps programs small, matches how the engines are built (a sequencer expands a tile
//! into PE-array passes) and lets the simulator account cost per instruction from the
//! operands alone. Each engine's instructions mirror its hardware:
//!
//! - **FP** has no multipliers: `fp.linear` and `fp.conv` are spike-driven accumulates (a
//!   1-bit spike gates an FP16 add), `fp.pool` pools, and `fp.lif` is the soma — charge,
//!   fire, reset — which also keeps what backward needs: `H[t]` (for smooth surrogates and
//!   soft reset), the spike bit and the 1-bit rect surrogate mask. `fp.sum` accumulates
//!   spike counts or membrane sums for rate and readout losses.
//! - **BP** is the only engine with FP16 multipliers: `bp.linear` and `bp.conv` propagate
//!   errors through the transposed weights, `bp.soma` runs the neuron backward over the
//!   timesteps in reverse time with a carried dL/dV, `bp.pool` routes
//!   gradients through pooling and `bp.loss` starts it all from the loss.
//! - **WG** multiplies nothing either: `wg.linear` / `wg.conv` accumulate spike x error
//!   into FP32 gradient accumulators, and `wg.update` applies SGD (with momentum) or Adam
//!   to FP32 master weights in the shared optimizer store and writes the FP16 copy used
//!   for compute; `wg.step` advances Adam's step counter.
//! - The **data mover** moves data without computing: `dma.ld` / `dma.st` to and from
//!   DRAM, `noc.send` / `noc.recv` between cores, and `copy` / `fill` / `pad` within a
//!   core. Convolution layers too large for one core stream their inputs through DRAM in
//!   dense layout, and `pad` places them into the zero border that `fp.conv` / `bp.conv` /
//!   `wg.conv` read, in one instruction instead of one `copy` per row.
//!
//! The linear tiles (`fp.linear`, `bp.linear`, `wg.linear`) also take a row count and row
//! strides: one instruction applies one weight tile to `rows` rows of input (the timesteps
//! of a sample, say), row `r` finding each row-carrying operand `r * stride` elements past
//! the one written. It means exactly `rows` single-row instructions in order, but the
//! sequencer loads the tile once and issues once, as a hardware sequencer streaming rows
//! past a stationary weight tile would. The somas (`fp.lif`, `bp.soma`) take a row count
//! too: one instruction runs the neuron over `rows` consecutive timesteps (rows `n` elements
//! apart, `bp.soma` from the last row to the first) with the membrane or its gradient
//! carried from row to row, so a sample's whole time loop is one issue.
//!
//! Neuron and optimizer constants are not operands of every soma or update: they are set
//! once into a configuration slot by `cfg.neuron` / `cfg.opt` (carrying f32 constants and
//! the reset / surrogate / optimizer kind), and instructions name the slot. This mirrors
//! configuration registers and keeps the per-timestep instructions short.
//!
//! **Sparsity** is explicit in the operands so the simulator can count skipped work: spike
//! operands are bit-packed 1-bit buffers, and `skip=true` tells the FP / WG engine to scan
//! the bitmap and skip zeros; error operands are FP16, so BP and WG instructions take an
//! optional `nz` operand, a 1-bit nonzero bitmap of the errors whose zeros are skipped.
//! `bp.soma` writes that bitmap as it produces dL/dH (with the rect surrogate most of it
//! is zero), so the hardware never has to compare FP16 errors against zero twice.
//!
//! ## Loops and addresses
//!
//! Training runs T timesteps for B samples; program size must not grow with T x B. A stream
//! has eight loop counter registers: `loop r n` … `endloop r` runs its body n times with
//! r = 0..n-1. Every buffer access ([`Access`]) and DRAM address ([`DramAddr`]) is affine
//! in the counters: `off + r0*s0 + r1*s1 ...` (strides may be negative, e.g. to walk time
//! backwards in BP). So "the membrane of timestep t" is `fp.mem[0+r0*256:256]` inside a
//! loop over r0. The verifier bounds every access over the full loop ranges.
//!
//! ## Buffers
//!
//! Buffers are named by [`Buf`] (`fp.mem`, `bp.delta`, `opt`, …): the chip description's
//! `engines.<engine>.buffers.<name>` tables must describe exactly these (validation
//! checks it), and sizes, widths and energies come from there. An access is (buffer,
//! first element, length) in elements of that buffer; element sizes (1, 16 or 32 bits)
//! are the chip description's. Engines of a core may read each other's buffers (BP reads
//! FP's membrane and mask stores; WG reads BP's errors), which is what lets the three
//! engines cooperate without DRAM round trips.
//!
//! ## One table
//!
//! Every instruction is declared once in [`for_each_op!`] (see `ops.rs`). The [`Instr`]
//! enum, [`Opcode`] numbering, encoder, decoder, [`Visitor`] trait, disassembler,
//! assembler operand parsing and `ISA.md` are derived from it, so they cannot disagree.
//! Outside this crate nobody matches on opcodes: engines and printers implement
//! [`Visitor`].

mod address;
pub mod asm;
pub mod chip;
mod chip_check;
mod conv;
pub mod disasm;
pub mod doc;
mod error;
pub mod exec;
mod instr;
mod operand;
mod ops;
pub mod program;
pub mod verify;

#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;

pub use asm::AsmError;
pub use chip::{AccWidth, BufferDesc, ChipDesc, ChipError, ChipProblem};
pub use conv::{ConvGeometry, ConvSizes, PoolGeometry, PoolSizes};
pub use error::{DecodeError, DecodeErrorKind};
pub use instr::{FieldInfo, Instr, OPS, OpInfo, Opcode, Unit, Visitor, decode_visit};
pub use operand::{
    Access, Buf, DramAddr, LossKind, NUM_CFG_SLOTS, NUM_CHANNELS, NUM_LOOP_REGS, NUM_TOKENS, OptKind, PoolKind, Reg,
    ResetMode, Stream, Surrogate, Term,
};
pub use program::{CoreCode, DataKind, DataSegment, FORMAT_VERSION, Header, MAGIC, Program, Symbol, SymbolKind};
pub use verify::{Violation, ViolationKind};
