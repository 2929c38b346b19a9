//! Conv and linear instructions computed on other host threads while the scheduler goes on
//! (the jobs of `sim`'s `machine/jobs.rs`) against the same program on one thread: two
//! training steps of a staged conv program with residual joins and of a staged fc program
//! give the same statistics to the last counter and energy figure, and the same loss,
//! weights and every other tensor in DRAM, bit for bit, with one, two and three threads. (The CLI test `sim_cli.rs` compares the
//! `--json` report across `--threads` too; `vgg_cifar_small` takes a minute here.)

mod common;

use isa::{ChipDesc, Program, SymbolKind};
use sim::{Machine, RunStats, SimOptions};

/// Spike bytes, each bit set with probability about 1/4, the same every run.
fn bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 8) & (x >> 24)) as u8
        })
        .collect()
}

/// Two steps of `program` on `threads` host threads: each step's statistics, then the
/// bytes of every tensor in DRAM.
fn train(program: &Program, chip: &ChipDesc, threads: usize) -> (Vec<RunStats>, Vec<Vec<u8>>) {
    train_steps(program, chip, Some(threads), 2)
}

/// `steps` steps of `program` on `threads` host threads (the default when `None`).
fn train_steps(
    program: &Program,
    chip: &ChipDesc,
    threads: Option<usize>,
    steps: usize,
) -> (Vec<RunStats>, Vec<Vec<u8>>) {
    let options = SimOptions { threads, ..SimOptions::default() };
    let mut m = Machine::new(program, chip, options).unwrap_or_else(|e| panic!("{e}"));
    let len = |n: &str| program.symbols.iter().find(|s| s.name == n).map_or(0, |s| s.len as usize);
    m.write_symbol("input", &bytes(len("input"))).unwrap_or_else(|e| panic!("{e}"));
    let targets = len("target") / 2;
    let onehot: Vec<f32> = (0..targets).map(|i| if i % 10 == (i / 10) % 10 { 1.0 } else { 0.0 }).collect();
    m.write_f16("target", &onehot).unwrap_or_else(|e| panic!("{e}"));
    let stats = (0..steps).map(|_| m.run().unwrap_or_else(|e| panic!("{e}"))).collect();
    let tensors = program.symbols.iter().filter(|s| s.kind == SymbolKind::Tensor);
    (stats, tensors.map(|s| m.read_symbol(&s.name).unwrap_or_else(|e| panic!("{e}"))).collect())
}

/// Two steps of `model` on two and three threads against one; `kind` is the instruction
/// whose jobs the model must have.
fn same_on_any_thread_count(model: &str, kind: &str) {
    let chip = ChipDesc::default();
    let p = common::training_program(model, &chip);
    let (stats, dram) = train(&p, &chip, 1);
    assert!(stats[1].profile.contains_key(kind), "{model} has no {kind} to overlap");
    for threads in [2, 3] {
        let (s, d) = train(&p, &chip, threads);
        assert_eq!(s, stats, "{model}: statistics on {threads} threads");
        assert!(d == dram, "{model}: DRAM after two steps on {threads} threads");
    }
}

#[test]
fn resnet_digits_trains_the_same_on_any_thread_count() {
    same_on_any_thread_count("resnet_digits", "wg.conv");
}

/// The staged fc program, whose multi-row `fp.linear` and `wg.linear` tiles are the jobs
/// (see `sim`'s `machine/row_jobs.rs`).
#[test]
fn fc784_512_trains_the_same_on_any_thread_count() {
    same_on_any_thread_count("fc784_512", "wg.linear");
}

/// With the thread count left to the default, a machine chooses run by run whether to use
/// its worker threads, by the wall time of its last runs each way (`sim`'s
/// `machine/governor.rs`): ten steps, which take both ways and switch between them, give
/// what ten steps on one thread give.
#[test]
fn fc784_512_trains_the_same_whichever_way_the_machine_chooses() {
    let chip = ChipDesc::default();
    let p = common::training_program("fc784_512", &chip);
    assert_eq!(train_steps(&p, &chip, None, 10), train_steps(&p, &chip, Some(1), 10));
}
