//! The sequencer runs loops with the right counter values and never hangs on bad code.

use crate::exec::Sequencer;
use crate::testgen::Gen;
use crate::{Instr, Reg};
use proptest::prelude::*;

fn fill(v: u32) -> Instr {
    Instr::Fill { dst: crate::Access::new(crate::Buf::FpPsum, 0, 1), value: v as f32 }
}

/// (instruction index, r0, r1) of every executed non-control instruction.
fn trace(code: &[Instr]) -> Vec<(usize, u32, u32)> {
    let mut s = Sequencer::new(code);
    let mut out = Vec::new();
    while let Some((pc, _)) = s.current() {
        out.push((pc, s.regs()[0], s.regs()[1]));
        s.advance();
    }
    out
}

#[test]
fn nested_loops_count_their_registers() {
    let code = [
        Instr::Loop { r: Reg::R1, n: 2 },
        fill(0),
        Instr::Loop { r: Reg::R0, n: 3 },
        fill(1),
        Instr::EndLoop { r: Reg::R0 },
        Instr::EndLoop { r: Reg::R1 },
        Instr::Halt {},
        fill(9),
    ];
    let want = [(1, 0, 0), (3, 0, 0), (3, 1, 0), (3, 2, 0), (1, 2, 1), (3, 0, 1), (3, 1, 1), (3, 2, 1)];
    assert_eq!(trace(&code), want);
}

#[test]
fn zero_trip_loops_are_skipped() {
    let code = [Instr::Loop { r: Reg::R0, n: 0 }, fill(1), Instr::EndLoop { r: Reg::R0 }, fill(2), Instr::Halt {}];
    assert_eq!(trace(&code), [(3, 0, 0)]);
}

proptest! {
    #[test]
    fn sequencing_random_loop_code_terminates(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let code: Vec<Instr> = (0..g.below(12))
            .map(|_| match g.below(4) {
                0 => Instr::Loop { r: Reg::ALL[g.below(4) as usize], n: g.below(4) as u32 },
                1 => Instr::EndLoop { r: Reg::ALL[g.below(4) as usize] },
                _ => fill(1),
            })
            .collect();
        let mut s = Sequencer::new(&code);
        let mut steps = 0;
        while s.current().is_some() && steps < 100_000 {
            s.advance();
            steps += 1;
        }
        prop_assert!(steps < 100_000, "did not terminate");
    }
}
