//! Tests of the simulator: hand-written programs run end to end.
//!
//! Programs are assembly text for the default chip (the `.chip` line is added here), with
//! DRAM data and symbols attached in Rust so that tests state their inputs as numbers.

mod backward;
mod conv_cost;
mod pad;
mod pipeline;
mod row_jobs;
mod rows;
mod soma;
mod soma_rows;
mod stats;
mod sync;
mod update;

use super::{Machine, RunStats, SimError, SimOptions};
use isa::{ChipDesc, DataKind, DataSegment, Program, Symbol, SymbolKind, asm};

/// Assembles a listing (without its `.version`/`.chip` header) for the default chip.
fn program(body: &str) -> Program {
    let chip = ChipDesc::default();
    let text = format!(".version 5\n.chip cores=20 hash={:#018x}\n{body}", chip.hash());
    asm::assemble(&text).unwrap_or_else(|e| panic!("test program does not assemble: {e:?}\n{text}"))
}

/// Adds a data segment with a tensor symbol of the same name.
fn data(p: &mut Program, name: &str, kind: DataKind, addr: u32, bytes: Vec<u8>) {
    p.symbols.push(Symbol { name: name.into(), kind: SymbolKind::Tensor, addr, len: bytes.len() as u32 });
    p.data.push(DataSegment { name: name.into(), kind, addr, bytes });
}

/// Adds an uninitialised tensor symbol.
fn tensor(p: &mut Program, name: &str, addr: u32, len: u32) {
    p.symbols.push(Symbol { name: name.into(), kind: SymbolKind::Tensor, addr, len });
}

fn machine(p: &Program, options: SimOptions) -> Machine {
    Machine::new(p, &ChipDesc::default(), options).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads and runs a program with default options.
fn run(p: &Program) -> (Machine, Result<RunStats, SimError>) {
    let mut m = machine(p, SimOptions::default());
    let r = m.run();
    (m, r)
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}

fn pack(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    bits.iter().enumerate().filter(|(_, b)| **b).for_each(|(i, _)| out[i / 8] |= 1 << (i % 8));
    out
}

/// A deterministic value in -1..1 with some exact zeros, so that skipping shows.
fn value(i: usize) -> f32 {
    let v = ((i * 37 + 11) % 23) as f32 / 11.0 - 1.0;
    if i % 5 == 3 { 0.0 } else { v }
}

/// `dma.ld` of `bytes` from `addr` into `buf[0:elems]`.
fn load(buf: &str, elems: usize, addr: u32, bytes: usize) -> String {
    format!("    dma.ld dst={buf}[0:{elems}] src=@{addr:#x} rows=1 row={bytes} stride={bytes}\n")
}
