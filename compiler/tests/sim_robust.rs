//! The simulator on hostile programs: compiled training programs with instructions
//! mutated at random (a byte of an instruction's encoding changed, the result decoded
//! again). A program file is user data: the simulator must report what is wrong with it
//! as an error (or run it, if it still makes sense), on one host thread and on several,
//! and never panic or hang.

mod common;

use isa::{ChipDesc, Instr, Program, Stream};
use sim::{Machine, SimOptions};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Where an instruction is: core, stream, index.
type At = (usize, Stream, usize);

/// Changes one byte of one random instruction's operands so that it still decodes; returns
/// where and what it became, or `None` when no try within a few decoded.
fn mutate(p: &mut Program, rng: &mut Rng) -> Option<(At, Instr)> {
    for _ in 0..20 {
        let core = rng.below(p.cores.len());
        let stream = Stream::ALL[rng.below(Stream::ALL.len())];
        let code = p.cores[core].stream_mut(stream);
        if code.is_empty() {
            continue;
        }
        let i = rng.below(code.len());
        let mut bytes = code[i].to_bytes();
        if bytes.len() < 2 {
            continue;
        }
        // The opcode stays (byte 0): the operands are what a compiler bug or a corrupted
        // file would get wrong while the program still decodes.
        let at = 1 + rng.below(bytes.len() - 1);
        match rng.below(3) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            _ => bytes[at] = bytes[at].wrapping_add(1),
        }
        if let Ok(instr) = Instr::from_bytes(&bytes) {
            code[i] = instr.clone();
            return Some(((core, stream, i), instr));
        }
    }
    None
}

/// What became of a model's mutants.
#[derive(Debug, Default)]
struct Outcome {
    /// Runs that completed (the mutant still made sense).
    completed: usize,
    /// Runs that stopped with an error.
    failed: usize,
    /// Runs that panicked, each described.
    panics: Vec<String>,
}

/// Runs `cases` mutants of `model`'s training program, each on one and on two host threads,
/// with a cycle limit a few times the program's own.
fn run_mutants(model: &str, cases: usize, seed: u64) -> Outcome {
    let chip = ChipDesc::default();
    let base = common::training_program(model, &chip);
    let cycles = Machine::new(&base, &chip, SimOptions::default())
        .and_then(|mut m| m.run())
        .unwrap_or_else(|e| panic!("{model}: {e}"))
        .cycles;
    let mut rng = Rng(seed);
    let mut outcome = Outcome::default();
    for case in 0..cases {
        let mut p = base.clone();
        let Some((at, instr)) = mutate(&mut p, &mut rng) else { continue };
        for threads in [1, 2] {
            let options = SimOptions { threads: Some(threads), max_cycles: 4 * cycles + 1000, ..SimOptions::default() };
            match catch_unwind(AssertUnwindSafe(|| Machine::new(&p, &chip, options).and_then(|mut m| m.run()))) {
                Ok(Ok(_)) => outcome.completed += 1,
                Ok(Err(_)) => outcome.failed += 1,
                Err(e) => {
                    let what =
                        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                    outcome.panics.push(format!("case {case}, {threads} thread(s), {at:?} {instr:?}: {what:?}"));
                }
            }
        }
    }
    outcome
}

/// Runs the mutants and checks that none panicked, and that the mutations did reach the
/// simulator: most cases made a mutant, and some of those failed.
fn check(model: &str, cases: usize, seed: u64) {
    let o = run_mutants(model, cases, seed);
    assert!(o.panics.is_empty(), "{model}: {} panics:\n{}", o.panics.len(), o.panics.join("\n"));
    assert!(o.completed + o.failed >= cases, "{model}: only {} runs of {cases} mutants", o.completed + o.failed);
    assert!(o.failed > 0, "{model}: no mutant failed ({o:?})");
}

#[test]
fn mutated_fc_programs_never_panic() {
    check("digits", 300, 1);
}

#[test]
fn mutated_conv_programs_never_panic() {
    check("conv16", 200, 2);
}

/// A staged program with residual joins, barriers and NoC transfers between twenty cores.
#[test]
fn mutated_staged_programs_never_panic() {
    check("resnet_digits", 40, 3);
}
