//! Stream sequencing: loop control and counter registers, for anything that executes code.
//!
//! A [`Sequencer`] walks one stream the way its engine's sequencer does: it runs `loop` /
//! `endloop` itself (they only move the program counter and the counter registers) and
//! presents every other instruction, with the register values it executes under. The
//! simulator asks for the [`current`](Sequencer::current) instruction, executes it through
//! a [`Visitor`](crate::Visitor) (or finds it blocked, e.g. on a `wait`, and asks again
//! later), then calls [`advance`](Sequencer::advance). The sequencer never panics on
//! malformed code: an unmatched `endloop` is skipped, and a stream ends at `halt` or at
//! its last instruction; the verifier reports such code.

use crate::instr::Instr;
use crate::operand::{NUM_LOOP_REGS, Reg};

/// An open loop: its counter register, trip count, current iteration and the index of
/// its `loop`. The iteration lives in the frame, not only in the register, so code that
/// reuses a register in a nested loop (which the verifier rejects) still terminates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    reg: Reg,
    n: u32,
    i: u32,
    start: usize,
}

/// The control state of one stream.
#[derive(Debug, Clone)]
pub struct Sequencer<'a> {
    code: &'a [Instr],
    pc: usize,
    frames: Vec<Frame>,
    regs: [u32; NUM_LOOP_REGS],
    control: u64,
}

impl<'a> Sequencer<'a> {
    /// A sequencer at the start of `code`.
    pub fn new(code: &'a [Instr]) -> Sequencer<'a> {
        let mut s = Sequencer { code, pc: 0, frames: Vec::new(), regs: [0; NUM_LOOP_REGS], control: 0 };
        s.settle();
        s
    }

    /// The next instruction to execute and its index, or `None` once the stream has
    /// halted (or run off its end). Never a `loop` or `endloop`.
    pub fn current(&self) -> Option<(usize, &'a Instr)> {
        match self.code.get(self.pc) {
            Some(Instr::Halt {}) | None => None,
            Some(i) => Some((self.pc, i)),
        }
    }

    /// Moves past the current instruction (and any loop control that follows it).
    pub fn advance(&mut self) {
        if self.current().is_some() {
            self.pc += 1;
            self.settle();
        }
    }

    /// Loop counter values for the current instruction.
    pub fn regs(&self) -> &[u32; NUM_LOOP_REGS] {
        &self.regs
    }

    /// How many `loop` and `endloop` instructions have executed (they cost a cycle each on
    /// a real sequencer; the simulator may count them).
    pub fn control_executed(&self) -> u64 {
        self.control
    }

    /// Executes loop control until the program counter rests on another instruction.
    fn settle(&mut self) {
        loop {
            match self.code.get(self.pc) {
                Some(Instr::Loop { r, n }) => self.enter(*r, *n),
                Some(Instr::EndLoop { r }) => self.close(*r),
                _ => return,
            }
            self.control += 1;
        }
    }

    fn enter(&mut self, reg: Reg, n: u32) {
        if n == 0 {
            self.pc = self.matching_end(self.pc) + 1;
            return;
        }
        self.frames.push(Frame { reg, n, i: 0, start: self.pc });
        self.regs[reg.index()] = 0;
        self.pc += 1;
    }

    fn close(&mut self, reg: Reg) {
        let Some(top) = self.frames.last_mut().filter(|f| f.reg == reg) else {
            // Unmatched `endloop`: the verifier reports it; executing it does nothing.
            self.pc += 1;
            return;
        };
        top.i += 1;
        if top.i < top.n {
            self.regs[reg.index()] = top.i;
            self.pc = top.start + 1;
        } else {
            self.frames.pop();
            // An enclosing loop over the same register gets its value back.
            if let Some(outer) = self.frames.iter().rev().find(|f| f.reg == reg) {
                self.regs[reg.index()] = outer.i;
            }
            self.pc += 1;
        }
    }

    /// Index of the `endloop` closing the `loop` at `at` (or the last index if none).
    fn matching_end(&self, at: usize) -> usize {
        let mut depth = 0usize;
        for (i, instr) in self.code.iter().enumerate().skip(at) {
            match instr {
                Instr::Loop { .. } => depth += 1,
                Instr::EndLoop { .. } if depth == 1 => return i,
                Instr::EndLoop { .. } => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        self.code.len()
    }
}
