//! Benchmark of one training step on the instruction-level simulator: host wall time of a
//! run of the training program of `digits`, `fc784_512`, `vgg_cifar_small` and
//! `resnet_digits` (one batch, forward, backward and update), median of several runs.
//!
//! Run with `cargo bench -p snnc --bench train_step`; append `-- NAME` for the benchmark
//! labelled NAME, or those whose label contains NAME. The input spikes are random with a
//! density of 20% and the targets one-hot, the same bytes every run. On the default chip
//! `fc784_512`, `vgg_cifar_small` and `resnet_digits` are staged programs (their layers do
//! not fit one core, or the graph has residual joins); `fc784_512 (resident)` runs the
//! one-layer-per-core program on a chip whose `optimizer_store` holds the first layer's
//! masters, Adam state and gradients (`bits = 58720256`), for comparison. Runs use every
//! host thread (`RAYON_NUM_THREADS=1` for one), with the worker threads on in every run.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use isa::ChipDesc;
use sim::{Machine, SimOptions};
use snnc::codegen::{self, CodegenOptions};
use std::path::Path;
use std::time::Instant;

fn main() {
    let chip = ChipDesc::default();
    let mut big = ChipDesc::default();
    big.optimizer_store.bits = 7 << 23;
    // `cargo bench --bench train_step -- NAME` runs only the benchmarks whose label is NAME,
    // or, when no label is, whose label contains NAME.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cases = [
        ("digits", &chip, 7, false),
        ("fc784_512", &chip, 7, false),
        ("fc784_512", &big, 7, true),
        ("vgg_cifar_small", &chip, 3, false),
        ("resnet_digits", &chip, 5, false),
    ];
    let labels: Vec<String> = cases.iter().map(|c| label(c.0, c.3)).collect();
    let wanted =
        |l: &str| filter.is_empty() || filter.iter().any(|f| l == f || (!labels.contains(f) && l.contains(f.as_str())));
    for (name, chip, runs, resident) in cases {
        if wanted(&label(name, resident)) {
            bench(name, chip, runs, resident);
        }
    }
}

/// A small deterministic generator (64-bit LCG, high bits out).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

/// Random spike bytes, each bit set with probability 1/5.
fn spikes(len: usize, rng: &mut Lcg) -> Vec<u8> {
    (0..len).map(|_| (0..8).fold(0u8, |byte, bit| byte | (u8::from(rng.next() % 5 == 0) << bit))).collect()
}

fn symbol_len(p: &isa::Program, name: &str) -> usize {
    p.symbols.iter().find(|s| s.name == name).unwrap().len as usize
}

/// The benchmark's name in the output (and the filter).
fn label(name: &str, resident: bool) -> String {
    if resident { format!("{name} (resident)") } else { name.to_string() }
}

/// Times `runs` steps of `name` after one warm-up step; `resident` asks for the
/// one-layer-per-core program.
fn bench(name: &str, chip: &ChipDesc, runs: usize, resident: bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/{name}.snn"));
    let graph = snnc::compile_graph(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let t = Instant::now();
    let options = CodegenOptions { steps: 1, train: true, ..CodegenOptions::default() };
    let program = if resident {
        let placement = codegen::Placement::default_for(&graph, chip).unwrap();
        codegen::compile_placed(&graph, chip, &placement, &options).unwrap()
    } else {
        codegen::compile(&graph, chip, &options).unwrap()
    };
    let compile = t.elapsed();
    let t = Instant::now();
    // The thread count is given, so that every run takes the worker threads: left to the
    // default, a machine would time runs without them too (see `sim`'s `governor.rs`).
    let options = SimOptions { threads: Some(sim::host_threads()), ..SimOptions::default() };
    let mut m = Machine::new(&program, chip, options).unwrap();
    let load = t.elapsed();
    let mut rng = Lcg(1);
    let input = spikes(symbol_len(&program, "input"), &mut rng);
    let classes = graph.classes() as usize;
    let target: Vec<f32> = (0..symbol_len(&program, "target") / 2)
        .map(|i| if i % classes == (i / classes) % classes { 1.0 } else { 0.0 })
        .collect();
    let mut times = Vec::new();
    let mut stats = None;
    for _ in 0..=runs {
        m.write_symbol("input", &input).unwrap();
        m.write_f16("target", &target).unwrap();
        let t = Instant::now();
        stats = Some(m.run().unwrap());
        times.push(t.elapsed().as_secs_f64());
    }
    // The first run warms caches and allocations; it is not counted.
    let mut times = times.split_off(1);
    times.sort_by(f64::total_cmp);
    let (run, s) = (times[times.len() / 2], stats.unwrap());
    let loss: f32 = m.read_f32("loss").unwrap().iter().sum();
    assert!(loss.is_finite(), "{name}: the loss is {loss}");
    println!(
        "{:<26} compile {:>7.1} ms  load {:>7.1} ms  step {:>8.2} ms (median of {runs}, min {:.2})  {:>9} instrs  {:>10} cycles  loss {loss:e}",
        label(name, resident),
        compile.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        run * 1e3,
        times[0] * 1e3,
        s.instructions(),
        s.cycles,
    );
}
