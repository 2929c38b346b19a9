//! The mapped graph as Graphviz DOT: one cluster per core holding the unit slices it runs,
//! and an edge per unit input labelled with where the data travel (NoC or DRAM).

use super::Report;
use crate::map::Source;
use std::collections::BTreeMap;
use std::fmt::Write;

fn node(unit: crate::graph::LayerId, core: usize) -> String {
    format!("u{}_c{core}", unit.0)
}

/// The DOT text.
pub fn render(report: &Report) -> String {
    let mut by_core: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for u in &report.units {
        for s in &u.slices {
            let label = format!(
                "{} {}\\nseg {} ch {}..{} smp {}..{}",
                u.weight,
                report.name(u.weight),
                u.segment,
                s.channels.start,
                s.channels.end,
                s.samples.start,
                s.samples.end
            );
            by_core.entry(s.core).or_default().push(format!("    {} [label=\"{label}\"];", node(u.weight, s.core)));
        }
    }
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n", report.model);
    out.push_str("  dram [label=\"DRAM\", shape=cylinder];\n");
    for (core, nodes) in &by_core {
        let _ = writeln!(out, "  subgraph cluster_core{core} {{\n    label=\"core {core}\";");
        for n in nodes {
            let _ = writeln!(out, "{n}");
        }
        out.push_str("  }\n");
    }
    for u in &report.units {
        let Some(first) = u.slices.first() else { continue };
        let to = node(u.weight, first.core);
        for src in &u.sources {
            match src {
                Source::Dram { layer } => {
                    let _ = writeln!(out, "  dram -> {to} [label=\"{}\", style=dashed];", report.name(*layer));
                }
                Source::Noc { layer, unit } => {
                    let from = report.units.iter().find(|m| m.weight == *unit).and_then(|m| m.slices.first());
                    if let Some(f) = from {
                        let _ = writeln!(
                            out,
                            "  {} -> {to} [label=\"{} (NoC)\"];",
                            node(*unit, f.core),
                            report.name(*layer)
                        );
                    }
                }
            }
        }
    }
    out.push_str("}\n");
    out
}
