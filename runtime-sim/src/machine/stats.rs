//! What a run measured: [`RunStats`], and the optional timeline [`Trace`].
//!
//! Every number is counted from instructions actually executed on the data actually
//! present: cycles per stream (busy and stalled), FP operations executed and skipped,
//! SRAM, DRAM and NoC traffic, energy by component, per-layer firing rates and error
//! densities, and a cycle profile per instruction kind. The sums are consistent: per-kind
//! cycles add up to the streams' busy plus stall cycles, per-engine operations to the
//! totals, DRAM bytes by kind to the DRAM total and the energy components to the total.

use super::dram::DramKind;
use crate::kernels::OpCount;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of one stream (an engine, or the data mover) of one core.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Instructions executed.
    pub instructions: u64,
    /// Cycles spent doing work.
    pub busy: u64,
    /// Cycles spent waiting (tokens, messages, barriers, DRAM contention).
    pub stall: u64,
    /// FP operations executed (adds, multiply-adds, soma and optimizer element ops).
    pub ops_executed: u64,
    /// FP operations skipped (zero spikes, zero errors).
    pub ops_skipped: u64,
}

impl StreamStats {
    pub(crate) fn add_ops(&mut self, ops: OpCount) {
        self.ops_executed += ops.executed;
        self.ops_skipped += ops.skipped;
    }
}

/// Energy by component, picojoules.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Energy {
    /// Arithmetic (adds, multiplies, compares, muxes).
    pub compute_pj: f64,
    /// On-chip buffer accesses.
    pub sram_pj: f64,
    /// DRAM accesses.
    pub dram_pj: f64,
    /// NoC transfers (byte-hops).
    pub noc_pj: f64,
}

impl Energy {
    /// The sum of the components.
    pub fn total_pj(&self) -> f64 {
        self.compute_pj + self.sram_pj + self.dram_pj + self.noc_pj
    }
}

/// DRAM traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DramStats {
    /// Bytes read, by kind (see [`DramKind`]).
    pub read: BTreeMap<DramKind, u64>,
    /// Bytes written, by kind.
    pub written: BTreeMap<DramKind, u64>,
    /// Accesses of the chip's access width.
    pub accesses: u64,
}

impl DramStats {
    /// All bytes moved.
    pub fn total_bytes(&self) -> u64 {
        self.read.values().chain(self.written.values()).sum()
    }
}

/// NoC traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NocStats {
    /// Messages sent.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Bytes times hops travelled.
    pub byte_hops: u64,
}

/// Cycle profile of one instruction kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindProfile {
    /// Instructions of this kind executed.
    pub count: u64,
    /// Cycles they occupied their streams (busy plus stall).
    pub cycles: u64,
    /// Of those, cycles stalled.
    pub stall: u64,
    /// FP operations executed.
    pub ops_executed: u64,
    /// FP operations skipped.
    pub ops_skipped: u64,
}

/// Measured activity of one layer named by the program's layer symbols.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerStats {
    /// Layer name.
    pub name: String,
    /// Neuron-timesteps run by `fp.lif` in the layer's code.
    pub neuron_steps: u64,
    /// Spikes they emitted.
    pub spikes: u64,
    /// Error elements produced by `bp.soma` in the layer's code.
    pub error_elems: u64,
    /// Of those, non-zero.
    pub error_nonzero: u64,
    /// Busy cycles of the layer's instructions per stream (fp, bp, wg, dma), summed over
    /// the cores: where the engines' time goes, layer by layer.
    pub busy: [u64; 4],
}

impl LayerStats {
    /// Spikes per neuron-timestep (0 when the layer fired no soma).
    pub fn firing_rate(&self) -> f64 {
        ratio(self.spikes, self.neuron_steps)
    }

    /// Fraction of non-zero errors (0 when the layer ran no gradient soma).
    pub fn error_density(&self) -> f64 {
        ratio(self.error_nonzero, self.error_elems)
    }
}

fn kind_name(k: DramKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Everything one [`Machine::run`](super::Machine::run) measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    /// Cycles until the last stream halted.
    pub cycles: u64,
    /// The same in microseconds at the chip's clock.
    pub time_us: f64,
    /// Per core, per stream (fp, bp, wg, dma).
    pub streams: Vec<[StreamStats; 4]>,
    /// DRAM traffic.
    pub dram: DramStats,
    /// NoC traffic.
    pub noc: NocStats,
    /// Buffer accesses by buffer name (`fp.mem`, `opt`, ...), summed over cores.
    pub sram_accesses: BTreeMap<String, u64>,
    /// Energy by component.
    pub energy: Energy,
    /// Per instruction mnemonic.
    pub profile: BTreeMap<String, KindProfile>,
    /// Per named layer, in symbol order.
    pub layers: Vec<LayerStats>,
    /// The timeline, when tracing was on.
    pub trace: Option<Trace>,
}

impl RunStats {
    /// Instructions executed by all streams.
    pub fn instructions(&self) -> u64 {
        self.all_streams().map(|s| s.instructions).sum()
    }

    /// FP operations executed and skipped, all engines.
    pub fn ops(&self) -> OpCount {
        let mut c = OpCount::default();
        self.all_streams().for_each(|s| c.merge(OpCount { executed: s.ops_executed, skipped: s.ops_skipped }));
        c
    }

    /// All buffer accesses.
    pub fn total_sram_accesses(&self) -> u64 {
        self.sram_accesses.values().sum()
    }

    fn all_streams(&self) -> impl Iterator<Item = &StreamStats> {
        self.streams.iter().flatten()
    }

    /// A human summary: totals, traffic, energy, layers and the instruction profile
    /// (deterministic; maps print in key order).
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let ops = self.ops();
        let skipped = 100.0 * ops.skipped as f64 / ops.total().max(1) as f64;
        let _ = writeln!(s, "cycles {} ({:.3} us), {} instructions", self.cycles, self.time_us, self.instructions());
        let _ = writeln!(s, "fp ops {} executed, {} skipped ({skipped:.1}%)", ops.executed, ops.skipped);
        for (dir, map) in [("read", &self.dram.read), ("written", &self.dram.written)] {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{} {v}", kind_name(*k))).collect();
            let _ = writeln!(s, "dram {dir}: {} B [{}]", map.values().sum::<u64>(), parts.join(", "));
        }
        let n = &self.noc;
        let _ = writeln!(s, "noc: {} messages, {} B, {} byte-hops", n.messages, n.bytes, n.byte_hops);
        let parts: Vec<String> = self.sram_accesses.iter().map(|(b, n)| format!("{b} {n}")).collect();
        let _ = writeln!(s, "sram accesses: {} [{}]", self.total_sram_accesses(), parts.join(", "));
        let e = &self.energy;
        let _ = writeln!(
            s,
            "energy {:.3} uJ: compute {:.3}, sram {:.3}, dram {:.3}, noc {:.3}",
            e.total_pj() * 1e-6,
            e.compute_pj * 1e-6,
            e.sram_pj * 1e-6,
            e.dram_pj * 1e-6,
            e.noc_pj * 1e-6
        );
        for l in &self.layers {
            let (rate, density) = (l.firing_rate(), l.error_density());
            let [fp, bp, wg, dma] = l.busy;
            let _ = writeln!(
                s,
                "layer {}: firing rate {rate:.4}, error density {density:.4}, busy cycles fp {fp} bp {bp} wg {wg} dma {dma}",
                l.name
            );
        }
        for (name, k) in &self.profile {
            let _ = writeln!(s, "  {name:<11} {:>9} x {:>12} cycles ({} stalled)", k.count, k.cycles, k.stall);
        }
        s
    }

    /// The stats as pretty JSON (stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// One timeline slice: an instruction on a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEvent {
    /// Instruction mnemonic.
    pub name: &'static str,
    /// Core index.
    pub core: u32,
    /// Stream index (0 fp, 1 bp, 2 wg, 3 dma).
    pub stream: u32,
    /// Issue cycle.
    pub start: u64,
    /// Cycles until completion (stall included).
    pub cycles: u64,
}

/// The timeline of a run, in execution order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// Clock in MHz, to turn cycles into microseconds.
    pub clock_mhz: u32,
    /// Events in execution order.
    pub events: Vec<TraceEvent>,
}

#[derive(Serialize)]
struct ChromeEvent<'a> {
    name: &'a str,
    ph: &'static str,
    ts: f64,
    dur: f64,
    pid: u32,
    tid: u32,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct ChromeTrace<'a> {
    traceEvents: Vec<ChromeEvent<'a>>,
    displayTimeUnit: &'static str,
}

impl Trace {
    /// Chrome / Perfetto JSON: one complete (`"X"`) event per instruction, `pid` the core
    /// and `tid` the stream, times in microseconds. Deterministic for a deterministic run.
    pub fn to_chrome_json(&self) -> String {
        let us = 1.0 / f64::from(self.clock_mhz.max(1));
        let events = self
            .events
            .iter()
            .map(|e| ChromeEvent {
                name: e.name,
                ph: "X",
                ts: e.start as f64 * us,
                dur: e.cycles as f64 * us,
                pid: e.core,
                tid: e.stream,
            })
            .collect();
        serde_json::to_string(&ChromeTrace { traceEvents: events, displayTimeUnit: "ns" }).unwrap_or_default()
    }
}
