//! What can stop a simulation: [`SimError`], with the location of the instruction at fault.
//!
//! The simulator never panics on a program that decodes: every out-of-range access,
//! mismatched shape, unset configuration slot or broken loop is an error naming the core,
//! stream and instruction index, and a program that stops making progress is a
//! [`SimError::Deadlock`] listing every blocked stream and what it waits for.

use isa::Stream;
use std::fmt;

/// Where an instruction sits: core, stream and index in that stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Core index.
    pub core: usize,
    /// Stream (engine or data mover).
    pub stream: Stream,
    /// Instruction index in the stream.
    pub pc: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core{}.{}[{}]", self.core, self.stream, self.pc)
    }
}

/// What a blocked stream waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// `wait tok n`: the token counter holds `have` of the `need` signals.
    Token {
        /// Token counter.
        tok: u8,
        /// Signals the wait consumes.
        need: u16,
        /// Signals received so far.
        have: usize,
    },
    /// `noc.recv`: no message has arrived from core `from` on channel `chan`.
    Message {
        /// Sending core.
        from: u16,
        /// Channel.
        chan: u8,
    },
    /// `barrier id count`: `arrived` of `count` streams have reached it.
    Barrier {
        /// Barrier identifier.
        id: u8,
        /// Streams that have arrived.
        arrived: usize,
        /// Streams the barrier waits for.
        count: u16,
    },
}

impl fmt::Display for WaitFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitFor::Token { tok, need, have } => write!(f, "token {tok}: has {have} of {need} signals"),
            WaitFor::Message { from, chan } => write!(f, "a message from core {from} on channel {chan}"),
            WaitFor::Barrier { id, arrived, count } => write!(f, "barrier {id}: {arrived} of {count} streams"),
        }
    }
}

/// A stream that cannot make progress, in a deadlock report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The blocked instruction.
    pub at: Location,
    /// What it waits for.
    pub waits_for: WaitFor,
}

/// Why a simulation could not start or finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The program was built for another chip.
    #[error(
        "the program is for a chip with {program_cores} cores and hash {program_hash:#018x}, but the chip has {chip_cores} cores and hash {chip_hash:#018x}; rebuild the program for this chip"
    )]
    ChipMismatch {
        /// Core count in the program header.
        program_cores: u16,
        /// Chip hash in the program header.
        program_hash: u64,
        /// The chip's core count.
        chip_cores: usize,
        /// The chip's hash.
        chip_hash: u64,
    },
    /// The chip description is one the simulator cannot model.
    #[error("unsupported chip description: {0}")]
    Chip(String),
    /// An instruction's operand is out of range for the machine state.
    #[error("{at}: {detail}")]
    OutOfRange {
        /// The instruction.
        at: Location,
        /// What was out of range.
        detail: String,
    },
    /// An instruction's operands do not fit together (shapes, element widths, loops, slots).
    #[error("{at}: {detail}")]
    BadOperand {
        /// The instruction.
        at: Location,
        /// What is wrong.
        detail: String,
    },
    /// A stream ran past its last instruction without `halt`.
    #[error("core{core}.{stream}: the stream ends without `halt`")]
    NoHalt {
        /// Core index.
        core: usize,
        /// Stream.
        stream: Stream,
    },
    /// No stream can run and some have not halted.
    #[error("deadlock: no stream can run; blocked:{}", list(.blocked))]
    Deadlock {
        /// Every blocked stream, in core and stream order.
        blocked: Vec<Blocked>,
    },
    /// The run exceeded the `max_cycles` guard.
    #[error(
        "the run exceeded the limit of {limit} cycles (a loop without end?); if the program is meant \
         to run that long, raise the limit (`snnc sim --max-cycles`, `SimOptions::max_cycles`)"
    )]
    CycleLimit {
        /// The limit.
        limit: u64,
    },
    /// Host access named a tensor the program does not have.
    #[error("the program has no tensor symbol or data segment named `{0}`")]
    UnknownSymbol(String),
    /// Host access with the wrong number of bytes or elements.
    #[error("tensor `{name}` holds {expected} bytes, got {found}")]
    SymbolSize {
        /// Tensor name.
        name: String,
        /// Its size in bytes.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

fn list(blocked: &[Blocked]) -> String {
    blocked.iter().map(|b| format!("\n  {} waits for {}", b.at, b.waits_for)).collect()
}
