//! Benchmark of the instruction-level simulator: how long a run takes, per run and per
//! executed instruction.
//!
//! Run with `cargo bench -p snnc-sim --bench machine`. Two programs: the ISA crate's example
//! (one training step of a 64-16 LIF layer, T = 4, B = 8, on one core) and a synthetic
//! 20-core load where every core's FP, BP and WG engines each run 20,000 64x16 linear tiles
//! on 19% dense spikes and 25% dense errors.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use isa::{ChipDesc, DataKind, DataSegment, Program, asm};
use sim::{Machine, SimOptions};
use std::time::Instant;

const TILES: &str = "
.stream fp
    loop r=r0 n=20000
    fp.linear spk=fp.in[0:64] w=fp.w[0:1024] out=fp.psum[0:16] k=64 n=16 rows=1 spk_stride=0 out_stride=0 acc=true skip=true
    endloop r=r0
    halt
.stream bp
    loop r=r0 n=20000
    bp.linear err=bp.err[0:16] w=bp.w[0:1024] out=bp.psum[0:64] n=16 k=64 rows=1 err_stride=0 out_stride=0 acc=false nz=fp.mask[0:16]
    endloop r=r0
    halt
.stream wg
    loop r=r0 n=20000
    wg.linear spk=fp.in[0:64] err=bp.err[0:16] dw=wg.grad[0:1024] db=- k=64 n=16 rows=1 spk_stride=0 err_stride=0 skip=true nz=fp.mask[0:16]
    endloop r=r0
    halt
.stream dma
    dma.ld dst=fp.in[0:64] src=@0x0 rows=1 row=8 stride=8
    dma.ld dst=fp.mask[0:16] src=@0x8 rows=1 row=2 stride=2
    fill dst=bp.err[0:16] value=0.25
    halt
";

fn with_chip_line(text: &str, chip: &ChipDesc) -> String {
    let line = format!(".chip cores=20 hash={:#018x}", chip.hash());
    text.lines()
        .map(|l| if l.starts_with(".chip ") { line.clone() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn example(chip: &ChipDesc) -> Program {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../isa/testdata/linear_layer.s");
    asm::assemble(&with_chip_line(&std::fs::read_to_string(path).unwrap(), chip)).unwrap()
}

fn tiles(chip: &ChipDesc) -> Program {
    let mut text = format!(".version 5\n.chip cores=20 hash={:#018x}\n", chip.hash());
    for c in 0..20 {
        text += &format!(".core {c}\n{TILES}");
    }
    let mut p = asm::assemble(&text).unwrap();
    let bytes = vec![0x11, 0x80, 0x04, 0x21, 0x00, 0x90, 0x01, 0x42, 0x05, 0x30];
    p.data.push(DataSegment { name: "x".into(), kind: DataKind::Spikes, addr: 0, bytes });
    p
}

/// Runs `p` repeatedly for about a second and prints the median time per run.
fn bench(name: &str, p: &Program, chip: &ChipDesc) {
    let t = Instant::now();
    let mut m = Machine::new(p, chip, SimOptions::default()).unwrap();
    let load = t.elapsed();
    let mut times = Vec::new();
    let mut stats = None;
    while times.len() < 3 || (times.iter().sum::<f64>() < 1.0 && times.len() < 1000) {
        let t = Instant::now();
        stats = Some(m.run().unwrap());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let (run, s) = (times[times.len() / 2], stats.unwrap());
    let n = s.instructions();
    println!(
        "{name:<10} load {:>7.2} ms  run {:>9.3} ms  {n:>9} instrs  {:>5.0} ns/instr  {:>9} cycles  {:>6.1}% ops skipped",
        load.as_secs_f64() * 1e3,
        run * 1e3,
        run * 1e9 / n as f64,
        s.cycles,
        100.0 * s.ops().skipped as f64 / s.ops().total().max(1) as f64
    );
}

fn main() {
    let chip = ChipDesc::default();
    bench("example", &example(&chip), &chip);
    bench("tiles", &tiles(&chip), &chip);
}
