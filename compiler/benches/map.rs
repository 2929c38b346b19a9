//! Benchmark of the mapping pass and the figures of the closing note: for the benchmark
//! networks on the default chip, DRAM traffic against the compulsory bound and the GPU
//! baseline, TFLOPS/W, and how long mapping takes (median of several runs).
//!
//! Run with `cargo bench -p snnc --bench map`. Every model is mapped on the built-in chip
//! (its 4 GiB of DRAM hold VGG-16's training state), by latency and then by DRAM traffic.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use isa::ChipDesc;
use snnc::map::{MapOptions, Objective, map_graph};
use snnc::report::Report;
use std::path::Path;
use std::time::{Duration, Instant};

const MODELS: [&str; 5] = ["resnet18_imagenet", "vgg16_imagenet", "vgg11_cifar10", "resnet50_imagenet", "conv16"];

fn main() {
    let chip = ChipDesc::default();
    for objective in [Objective::Latency, Objective::Dram] {
        println!("objective {objective:?}");
        run(&chip, objective);
    }
}

fn run(chip: &ChipDesc, objective: Objective) {
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "model", "DRAM MB", "bound MB", "GPU MB", "x bound", "vs GPU", "TFLOPS/W", "no DRAM", "samples/s", "map ms"
    );
    for name in MODELS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/{name}.snn"));
        let source = std::fs::read_to_string(&path).unwrap();
        let graph = snnc::compile_graph(&source).unwrap();
        let options = MapOptions { objective, ..MapOptions::default() };
        let mut times: Vec<Duration> = Vec::new();
        let mut mapping = None;
        for _ in 0..5 {
            let start = Instant::now();
            mapping = Some(map_graph(&graph, chip, &options).unwrap());
            times.push(start.elapsed());
        }
        times.sort();
        let m = mapping.unwrap();
        let r = Report::new(&m, &graph, chip);
        println!(
            "{:<20} {:>10.1} {:>10.1} {:>10.1} {:>8.2}x {:>8.1}% {:>9.3} {:>9.3} {:>10.1} {:>10.1}",
            name,
            m.total.dram.total() as f64 / 1e6,
            r.yardsticks.compulsory.total() as f64 / 1e6,
            r.yardsticks.gpu.total() as f64 / 1e6,
            r.yardsticks.over_compulsory,
            r.yardsticks.reduction_vs_gpu_pct,
            m.total.tflops_per_w,
            m.total.tflops_per_w_on_chip,
            m.total.samples_per_s,
            times[times.len() / 2].as_secs_f64() * 1e3
        );
    }
}
