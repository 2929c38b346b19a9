//! The terminal form of a report: one row per unit, then totals and the yardsticks.
//!
//! Columns: the unit (its weight layer's id), its layers, segment, cores, per engine the
//! dataflow and tile (out-channels x in-channels x positions), the fullest buffer in
//! percent, cycles per step in millions with the share of stalls, DRAM and NoC megabytes
//! and energy in millijoules. Widths fit 100-140 columns for real models.

use super::Report;
use crate::map::cost::DramBytes;
use crate::map::{Engine, UnitMap};
use isa::ChipDesc;
use std::fmt::Write;

const HEADER: [&str; 13] =
    ["unit", "layers", "seg", "cores", "FP", "BP", "WG", "buf%", "Mcyc", "stall%", "DRAM MB", "NoC MB", "mJ"];

/// A quantity with precision that keeps small values readable: one decimal from 100 up,
/// two from 1, three below, four below 0.01.
fn num(x: f64) -> String {
    match x {
        x if x >= 100.0 || x == 0.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.2}"),
        x if x >= 0.01 => format!("{x:.3}"),
        x => format!("{x:.4}"),
    }
}

/// Megabytes (10^6 bytes).
fn mb(bytes: u64) -> String {
    num(bytes as f64 / 1e6)
}

/// Core ids as compressed sorted ranges: `0-3,7`.
pub fn core_ranges(mut ids: Vec<usize>) -> String {
    ids.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn engine_cell(u: &UnitMap, e: Engine) -> String {
    u.engine(e).map(|p| format!("{} {}", p.dataflow.short(), p.tile)).unwrap_or_else(|| "-".to_string())
}

/// The fullest buffer of a unit, percent of its capacity.
fn buffer_pct(u: &UnitMap, chip: &ChipDesc) -> f64 {
    let mut most: f64 = 0.0;
    for (engine, plan) in &u.engines {
        let desc = match engine {
            Engine::Fp => &chip.engines.fp,
            Engine::Bp => &chip.engines.bp,
            Engine::Wg => &chip.engines.wg,
        };
        for (name, bits) in &plan.buffers {
            if let Some(b) = desc.buffers.get(name).filter(|b| b.bits > 0) {
                most = most.max(*bits as f64 / b.bits as f64);
            }
        }
    }
    100.0 * most
}

fn row(report: &Report, u: &UnitMap, chip: &ChipDesc) -> Vec<String> {
    let mut layers = u.layers.iter().map(|l| report.name(*l)).collect::<Vec<_>>().join("+");
    if layers.chars().count() > 22 {
        layers = format!("{}~", layers.chars().take(21).collect::<String>());
    }
    let c = &u.cost;
    let stall = if c.cycles > 0 { 100.0 * c.stall_cycles as f64 / c.cycles as f64 } else { 0.0 };
    vec![
        u.weight.to_string(),
        layers,
        u.segment.to_string(),
        core_ranges(u.cores().collect()),
        engine_cell(u, Engine::Fp),
        engine_cell(u, Engine::Bp),
        engine_cell(u, Engine::Wg),
        format!("{:.0}", buffer_pct(u, chip)),
        num(c.cycles as f64 / 1e6),
        format!("{stall:.0}"),
        mb(c.dram.total()),
        mb(c.noc_bytes),
        num(c.energy.total() * 1e-9),
    ]
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([HEADER[i].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let header: Vec<String> = HEADER.iter().map(|h| (*h).to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(&widths).enumerate() {
            if i >= 7 {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn kinds(d: &DramBytes) -> String {
    format!(
        "weights {}, input {}, membranes {}, spikes {}, masks {}, errors {}, gradients {}, optimizer {}",
        mb(d.weights),
        mb(d.input_spikes),
        mb(d.membranes),
        mb(d.spikes),
        mb(d.masks),
        mb(d.errors),
        mb(d.gradients),
        mb(d.optimizer)
    )
}

/// The whole terminal report.
pub fn render(report: &Report, chip: &ChipDesc) -> String {
    let mut out = String::new();
    let o = &report.options;
    let _ = writeln!(
        out,
        "map {} onto {} ({} cores, {} MHz): T = {}, B = {}, objective {:?}, firing rate {}, error density {}",
        report.model,
        report.chip.name,
        report.chip.cores,
        report.chip.clock_mhz,
        report.timesteps,
        report.batch,
        o.objective,
        o.firing_rate,
        o.error_density
    );
    let rows: Vec<Vec<String>> = report.units.iter().map(|u| row(report, u, chip)).collect();
    out.push_str(&table(&rows));
    totals(report, &mut out);
    out
}

fn totals(report: &Report, out: &mut String) {
    let t = &report.total;
    let e = &t.energy;
    let _ = writeln!(
        out,
        "total: {:.3} Mcycles/step ({:.3} ms), {:.1} samples/s, {} segment(s)",
        t.cycles as f64 / 1e6,
        t.seconds * 1e3,
        t.samples_per_s,
        report.schedule.segments.len()
    );
    let _ = writeln!(
        out,
        "energy: {:.3} mJ/step (compute {:.3}, SRAM {:.3}, DRAM {:.3}, NoC {:.3}); {:.3} GFLOP FP16, {:.3} TFLOPS/W ({:.3} without DRAM)",
        e.total() * 1e-9,
        e.compute_pj * 1e-9,
        e.sram_pj * 1e-9,
        e.dram_pj * 1e-9,
        e.noc_pj * 1e-9,
        t.fp16_ops as f64 / 1e9,
        t.tflops_per_w,
        t.tflops_per_w_on_chip
    );
    let _ = writeln!(out, "DRAM {} MB/step: {}", mb(t.dram.total()), kinds(&t.dram));
    let _ = writeln!(out, "NoC {} MB/step, {} MB x hops", mb(t.noc_bytes), mb(t.noc_byte_hops));
    let y = &report.yardsticks;
    let _ = writeln!(
        out,
        "lower bound (compulsory): {} MB/step; mapped traffic is {:.2}x the bound",
        mb(y.compulsory.total()),
        y.over_compulsory
    );
    let _ = writeln!(
        out,
        "GPU baseline (framework, layer by layer): {} MB/step; mapped traffic is {:.1}% less",
        mb(y.gpu.total()),
        y.reduction_vs_gpu_pct
    );
}
