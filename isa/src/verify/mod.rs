//! The program verifier: checks a [`Program`] against a [`ChipDesc`] and reports every
//! violation with its location.
//!
//! # Invariants checked
//!
//! Program level:
//! - `header`: the format version is [`FORMAT_VERSION`]; `chip_cores` and `chip_hash` equal
//!   the chip's core count and [`ChipDesc::hash`] ([`ViolationKind::Header`]).
//! - the program has no more cores than the chip ([`ViolationKind::CoreIndex`]).
//! - data segments lie inside DRAM and do not overlap; tensor symbols lie inside DRAM and
//!   layer symbols inside an existing stream ([`ViolationKind::DramBounds`],
//!   [`ViolationKind::Symbol`]).
//!
//! Per instruction (location: core, stream, index):
//! - engine instructions only in their engine's stream ([`ViolationKind::WrongStream`]).
//! - operand ranges: loop trip counts, wait counts and barrier sizes at least 1; tokens
//!   below [`NUM_TOKENS`](crate::NUM_TOKENS); configuration slots below [`NUM_CFG_SLOTS`](crate::NUM_CFG_SLOTS); channels below
//!   [`NUM_CHANNELS`](crate::NUM_CHANNELS); kernel sizes, strides and pool windows at least 1,
//!   pool padding at most half the window and every window inside the padded input
//!   ([`ViolationKind::OperandRange`]).
//! - every core named by `signal`, `noc.send` and `noc.recv` exists
//!   ([`ViolationKind::CoreIndex`]).
//! - every buffer access lies inside its buffer for all values of its loop registers
//!   (each from 0 to its loop's trip count - 1), and every register it uses is the counter
//!   of an enclosing loop ([`ViolationKind::BufferBounds`], [`ViolationKind::UnboundRegister`]).
//! - every DRAM transfer lies inside DRAM for all loop values ([`ViolationKind::DramBounds`]).
//! - multi-row instructions (`fp.linear`, `bp.linear`, `wg.linear`, `fp.lif`, `bp.soma`)
//!   have `rows` at least 1 ([`ViolationKind::OperandRange`]), and the last row of each
//!   row-carrying linear operand (row 0 plus `(rows-1) * stride`) lies inside its buffer
//!   ([`ViolationKind::BufferBounds`]); a soma's row-carrying operands span all `rows*n`
//!   elements, so the access check above bounds them.
//! - operand lengths agree with the shape fields (e.g. `fp.linear`: `spk` has `k`
//!   elements, `w` has `k*n`, `out` has `n`), transfers move equal numbers of bits on
//!   both sides, and spike/mask/bitmap operands name 1-bit buffers
//!   ([`ViolationKind::Shape`]).
//!
//! Control flow, per stream:
//! - loops are properly nested: `endloop` closes the innermost open loop and names its
//!   register; a register is not reused by a nested loop; loops nest at most
//!   [`NUM_LOOP_REGS`](crate::NUM_LOOP_REGS) deep; no loop is open at the end
//!   ([`ViolationKind::Loop`]).
//! - a non-empty stream ends with `halt`, which appears nowhere else
//!   ([`ViolationKind::Halt`]).
//!
//! Synchronisation, whole program (counts multiply by enclosing loop trip counts):
//! - every `wait` on a token has some `signal` to that token, and the signals to each
//!   token add up to the counts its waits consume; a token that is signalled is waited
//!   on somewhere ([`ViolationKind::Sync`]).
//! - the bits sent on each (from, to, channel) equal the bits received
//!   ([`ViolationKind::Sync`]).
//! - every stream that reaches barrier `id` declares the same participant count, which
//!   equals the number of such streams ([`ViolationKind::Sync`]).

mod flow;
mod rows;
mod shape;

use crate::chip::ChipDesc;
use crate::operand::Stream;
use crate::program::{FORMAT_VERSION, Program, SymbolKind};
use std::fmt;

/// What invariant a [`Violation`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// Header does not match the chip or format.
    Header,
    /// A core index that the chip or program does not have.
    CoreIndex,
    /// An instruction in a stream whose engine cannot run it.
    WrongStream,
    /// An operand outside its allowed range.
    OperandRange,
    /// A buffer access outside its buffer.
    BufferBounds,
    /// An address term using a register no enclosing loop counts.
    UnboundRegister,
    /// A DRAM range outside DRAM, or overlapping data segments.
    DramBounds,
    /// Operand lengths or element sizes that disagree with the shape fields.
    Shape,
    /// Badly nested or unclosed loops.
    Loop,
    /// A stream that does not end with exactly one `halt`.
    Halt,
    /// Unmatched or unbalanced signal/wait, send/receive or barrier.
    Sync,
    /// A symbol pointing outside what it names.
    Symbol,
}

/// Where a violation is: as precise as the invariant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Core index.
    pub core: Option<usize>,
    /// Stream.
    pub stream: Option<Stream>,
    /// Instruction index within the stream.
    pub index: Option<usize>,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub kind: ViolationKind,
    /// Where.
    pub at: Location,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.core, self.stream, self.index) {
            (Some(c), Some(s), Some(i)) => write!(f, "core {c} {s} #{i}"),
            (Some(c), Some(s), None) => write!(f, "core {c} {s}"),
            (Some(c), None, _) => write!(f, "core {c}"),
            _ => f.write_str("program"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Collects violations.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) list: Vec<Violation>,
}

impl Report {
    pub(crate) fn push(&mut self, kind: ViolationKind, at: Location, message: impl Into<String>) {
        self.list.push(Violation { kind, at, message: message.into() });
    }
}

/// Checks every invariant listed in the module docs; an empty result means the program
/// is well formed for `chip`.
pub fn verify(p: &Program, chip: &ChipDesc) -> Vec<Violation> {
    let mut r = Report::default();
    check_header(p, chip, &mut r);
    let mut sync = flow::Sync::default();
    for (ci, core) in p.cores.iter().enumerate() {
        for s in Stream::ALL {
            flow::check_stream(chip, ci, *s, core.stream(*s), &mut sync, &mut r);
        }
    }
    sync.check(&mut r);
    check_data(p, chip, &mut r);
    r.list
}

fn check_header(p: &Program, chip: &ChipDesc, r: &mut Report) {
    let at = Location::default();
    let h = &p.header;
    if h.version != FORMAT_VERSION {
        r.push(ViolationKind::Header, at, format!("format version {} is not {FORMAT_VERSION}", h.version));
    }
    if usize::from(h.chip_cores) != chip.core_count() {
        r.push(
            ViolationKind::Header,
            at,
            format!(
                "program was built for {} cores but the chip has {}; recompile for this chip",
                h.chip_cores,
                chip.core_count()
            ),
        );
    }
    if h.chip_hash != chip.hash() {
        r.push(ViolationKind::Header, at, format!("program was built for chip hash {:#018x} but this chip's is {:#018x}; recompile or pass the chip description it was built for", h.chip_hash, chip.hash()));
    }
    if p.cores.len() > chip.core_count() {
        r.push(
            ViolationKind::CoreIndex,
            at,
            format!("program has code for {} cores but the chip has {}", p.cores.len(), chip.core_count()),
        );
    }
}

fn check_data(p: &Program, chip: &ChipDesc, r: &mut Report) {
    let at = Location::default();
    let cap = chip.dram.capacity_bytes;
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
    for d in &p.data {
        let (lo, hi) = (u64::from(d.addr), u64::from(d.addr) + d.bytes.len() as u64);
        if hi > cap {
            r.push(
                ViolationKind::DramBounds,
                at,
                format!("data segment \"{}\" ends at byte {hi}, beyond the {cap}-byte DRAM", d.name),
            );
        }
        ranges.push((lo, hi, &d.name));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            r.push(ViolationKind::DramBounds, at, format!("data segments \"{}\" and \"{}\" overlap", w[0].2, w[1].2));
        }
    }
    for s in &p.symbols {
        let end = u64::from(s.addr) + u64::from(s.len);
        match s.kind {
            SymbolKind::Tensor if end > cap => {
                r.push(
                    ViolationKind::Symbol,
                    at,
                    format!("tensor \"{}\" ends at byte {end}, beyond the {cap}-byte DRAM", s.name),
                );
            }
            SymbolKind::Tensor => {}
            SymbolKind::Layer { core, stream } => {
                let len = p.cores.get(usize::from(core)).map(|c| c.stream(stream).len());
                if len.is_none_or(|l| end > l as u64) {
                    r.push(
                        ViolationKind::Symbol,
                        at,
                        format!(
                            "layer \"{}\" names instructions {}..{end} of core {core} {stream}, which has {}",
                            s.name,
                            s.addr,
                            len.unwrap_or(0)
                        ),
                    );
                }
            }
        }
    }
}
