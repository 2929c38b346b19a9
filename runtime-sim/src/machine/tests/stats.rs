//! The counters: they add up, they are deterministic, and the trace is valid JSON.

use super::pipeline::example;
use super::*;
use crate::machine::DramKind;

#[test]
fn counters_add_up_to_the_totals() {
    let (_, r) = run(&example());
    let s = r.unwrap_or_else(|e| panic!("{e}"));
    let streams: Vec<_> = s.streams.iter().flatten().collect();
    let kinds: Vec<_> = s.profile.values().collect();
    assert_eq!(kinds.iter().map(|k| k.count).sum::<u64>(), s.instructions());
    let stream_cycles: u64 = streams.iter().map(|x| x.busy + x.stall).sum();
    assert_eq!(kinds.iter().map(|k| k.cycles).sum::<u64>(), stream_cycles);
    assert_eq!(kinds.iter().map(|k| k.stall).sum::<u64>(), streams.iter().map(|x| x.stall).sum::<u64>());
    let ops = s.ops();
    assert_eq!(kinds.iter().map(|k| k.ops_executed).sum::<u64>(), ops.executed);
    assert_eq!(kinds.iter().map(|k| k.ops_skipped).sum::<u64>(), ops.skipped);
    // Every stream ends by the total; the busiest one ends exactly there.
    assert!(s.streams.iter().flatten().all(|x| x.busy + x.stall <= s.cycles));
    assert!(s.streams.iter().flatten().any(|x| x.busy + x.stall == s.cycles));
    let e = &s.energy;
    assert!((e.total_pj() - (e.compute_pj + e.sram_pj + e.dram_pj + e.noc_pj)).abs() < 1e-9);
    assert!(e.compute_pj > 0.0 && e.sram_pj > 0.0 && e.dram_pj > 0.0);
    assert_eq!(s.dram.total_bytes(), s.dram.read.values().sum::<u64>() + s.dram.written.values().sum::<u64>());
    // Loads: weights 2048 B (FP and BP), master 4096 B, 8 x 4 x 8 B spikes, 8 x 32 B targets.
    assert_eq!(s.dram.read.get(&DramKind::Weights), Some(&4096));
    assert_eq!(s.dram.read.get(&DramKind::OptimizerState), Some(&4096));
    assert_eq!(s.dram.read.get(&DramKind::Inputs), Some(&(256 + 256)));
    assert_eq!(s.dram.written.get(&DramKind::Errors), Some(&(8 * 4 * 128)));
    assert!(s.time_us > 0.0 && (s.time_us - s.cycles as f64 / 500.0).abs() < 1e-9);
}

#[test]
fn runs_are_deterministic_and_traces_are_chrome_json() {
    let opts = SimOptions { trace: true, ..SimOptions::default() };
    let p = example();
    let a = machine(&p, opts.clone()).run().unwrap_or_else(|e| panic!("{e}"));
    let b = machine(&p, opts).run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
    let (ja, jb) = (a.trace.as_ref().map(|t| t.to_chrome_json()), b.trace.as_ref().map(|t| t.to_chrome_json()));
    assert_eq!(ja, jb);
    let json: serde_json::Value = serde_json::from_str(&ja.unwrap_or_default()).unwrap_or_default();
    let events = json["traceEvents"].as_array().cloned().unwrap_or_default();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["ph"] == "X" && e["pid"].is_u64() && e["tid"].as_u64() < Some(4)));
    assert!(a.to_json().contains("\"profile\""));
    let summary = a.summary();
    assert!(summary.contains("layer fc1: firing rate") && summary.contains("optimizer_state 4096"), "{summary}");
    // The SRAM line: the total, then every buffer's count in name order.
    let line = summary.lines().find(|l| l.starts_with("sram accesses: ")).unwrap_or_default();
    let sum: u64 = a.sram_accesses.values().sum();
    let parts: Vec<String> = a.sram_accesses.iter().map(|(b, n)| format!("{b} {n}")).collect();
    assert!(sum > 0 && a.sram_accesses.len() > 3, "{:?}", a.sram_accesses);
    assert_eq!(line, format!("sram accesses: {sum} [{}]", parts.join(", ")), "{summary}");
}

#[test]
fn a_second_run_continues_from_the_trained_state() {
    let mut m = machine(&example(), SimOptions::default());
    let first = m.run().unwrap_or_else(|e| panic!("{e}"));
    let w1 = m.read_f16("fc1.w").unwrap_or_default();
    let second = m.run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.instructions(), second.instructions());
    assert_ne!(w1, m.read_f16("fc1.w").unwrap_or_default());
}
