//! Benchmark of the front end: how long `snnc check` spends parsing, lowering and building
//! the layer graph of each shipped model (the process start-up is not counted).
//!
//! Run with `cargo bench -p snnc --bench frontend`. It prints the median of repeated runs per
//! model; compare models as ratios measured in the same run, since the machines are shared.

use std::path::Path;
use std::time::{Duration, Instant};

fn median_time(source: &str, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let graph = snnc::compile_graph(source);
            let elapsed = start.elapsed();
            std::hint::black_box(graph.map(|g| g.layers().len()).unwrap_or(0));
            elapsed
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[allow(clippy::print_stdout)]
fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut paths: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    paths.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "snn"));
    paths.sort();
    println!("{:<24} {:>8} {:>12}", "model", "bytes", "check (us)");
    for path in paths {
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let time = median_time(&source, 200);
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name:<24} {:>8} {:>12.1}", source.len(), time.as_secs_f64() * 1e6);
    }
}
