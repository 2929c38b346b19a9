//! A short, stable summary of a program: instructions per core and stream, and sizes.
//! `snnc compile` prints it, and snapshot tests of large models pin it instead of the
//! whole listing.

use isa::{Program, Stream, SymbolKind};
use std::fmt::Write as _;

/// One line per core that has code (instruction counts of fp, bp, wg, dma and the layers
/// its streams belong to: one name, or a count when a staged program runs several), then
/// the totals and the binary size.
pub fn summary(p: &Program) -> String {
    let mut s = String::from("core      fp     bp     wg    dma  layer\n");
    let mut total = 0usize;
    for (ci, core) in p.cores.iter().enumerate() {
        let counts: Vec<usize> = Stream::ALL.iter().map(|st| core.stream(*st).len()).collect();
        if counts.iter().all(|&c| c == 0) {
            continue;
        }
        total += counts.iter().sum::<usize>();
        let mut names: Vec<&str> = p
            .symbols
            .iter()
            .filter(|sym| matches!(sym.kind, SymbolKind::Layer { core, .. } if usize::from(core) == ci))
            .map(|sym| sym.name.as_str())
            .collect();
        names.dedup();
        names.sort_unstable();
        names.dedup();
        let layer = match names.as_slice() {
            [one] => (*one).to_string(),
            [] => String::new(),
            many => format!("{} layers", many.len()),
        };
        let _ = writeln!(s, "{ci:>4} {:>7}{:>7}{:>7}{:>7}  {layer}", counts[0], counts[1], counts[2], counts[3]);
    }
    let data: usize = p.data.iter().map(|d| d.bytes.len()).sum();
    let bytes = p.to_bytes().len();
    let _ = writeln!(s, "{total} instructions; {data} bytes of initial data; program file {bytes} bytes");
    s
}
