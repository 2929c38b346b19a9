//! Fuzz target: compiled training programs with instructions edited, on the simulator.
//!
//! A program file is user data. `compiler/tests/sim_robust.rs` runs a few hundred random
//! one-byte edits; this target lets libFuzzer steer the edits by coverage, up to eight at a
//! time. The input's first byte picks the model (its low bit) and the host threads (its
//! high bit: one, or two, where conv instructions become jobs on a worker thread). The rest
//! is read as edits of six bytes each: the instruction (core, stream and two bytes of
//! index, each taken modulo what exists), a byte offset within its encoding, and the new
//! byte. Byte 0 of an encoding is the opcode, so an edit may turn one instruction into
//! another. Edits whose encoding no longer decodes are dropped, as a decoder would refuse
//! them.
//!
//! What must hold: building the machine and running one step (with a cycle limit four
//! times the program's own) returns, with statistics or with an error, and never panics.

#![no_main]

use isa::{ChipDesc, Instr, Program, Stream};
use libfuzzer_sys::fuzz_target;
use sim::{Machine, SimOptions};
use std::sync::OnceLock;

/// The models whose programs are edited: an fc net and a conv net, each small enough that
/// a run takes milliseconds.
const MODELS: [&str; 2] = [include_str!("../../models/fc16.snn"), include_str!("../../models/conv16.snn")];

/// Each model's training program and the cycles one step of it takes.
fn bases() -> &'static [(Program, u64)] {
    static BASES: OnceLock<Vec<(Program, u64)>> = OnceLock::new();
    BASES.get_or_init(|| {
        let chip = ChipDesc::default();
        let options = snnc::codegen::CodegenOptions { steps: 1, train: true, ..Default::default() };
        MODELS
            .iter()
            .map(|text| {
                let graph = snnc::compile_graph(text).expect("a bundled model compiles");
                let program = snnc::codegen::compile(&graph, &chip, &options).expect("a bundled model has a program");
                let cycles = Machine::new(&program, &chip, SimOptions::default())
                    .and_then(|mut m| m.run())
                    .expect("a bundled program runs")
                    .cycles;
                (program, cycles)
            })
            .collect()
    })
}

/// Applies one edit to `p`: `[core, stream, index (2 bytes, little-endian), offset, value]`,
/// each position taken modulo what exists.
fn edit(p: &mut Program, e: &[u8]) {
    let core = e[0] as usize % p.cores.len();
    let stream = Stream::ALL[e[1] as usize % Stream::ALL.len()];
    let code = p.cores[core].stream_mut(stream);
    if code.is_empty() {
        return;
    }
    let i = usize::from(u16::from_le_bytes([e[2], e[3]])) % code.len();
    let mut bytes = code[i].to_bytes();
    let at = e[4] as usize % bytes.len();
    bytes[at] = e[5];
    if let Ok(instr) = Instr::from_bytes(&bytes) {
        code[i] = instr;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, edits)) = data.split_first() else { return };
    let (base, cycles) = &bases()[usize::from(first & 1)];
    let threads = if first & 0x80 == 0 { 1 } else { 2 };
    let mut p = base.clone();
    for e in edits.chunks_exact(6).take(8) {
        edit(&mut p, e);
    }
    let options = SimOptions { threads: Some(threads), max_cycles: 4 * cycles + 1000, ..SimOptions::default() };
    let _ = Machine::new(&p, &ChipDesc::default(), options).and_then(|mut m| m.run());
});
