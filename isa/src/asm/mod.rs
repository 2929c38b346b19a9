//! The program's text form: [`print()`] a listing, [`assemble`] it back.
//!
//! A listing is line-oriented; `;` starts a comment (outside quotes). Directives:
//!
//! ```text
//! .version 5                                  format version
//! .chip cores=20 hash=0x0123456789abcdef      target chip (ChipDesc::hash)
//! .core 0                                     cores appear in order 0, 1, ...
//! .stream fp                                  fp | bp | wg | dma; instructions follow
//!     fp.lif x=fp.psum[0:256] bias=- v=fp.mem[0:256] ...
//! .data "w1" kind=fp16 addr=0x1000 len=64     a DRAM segment, then its bytes:
//!     .hex 00112233...                        up to 32 bytes per line
//! .symbol "fc1" kind=layer core=0 stream=fp addr=0 len=12
//! .symbol "w1" kind=tensor addr=0x1000 len=64
//! ```
//!
//! An instruction is its mnemonic and one `field=value` per operand (any order; the
//! printer uses table order). Value syntax: numbers in decimal or `0x` hex; `true`/`false`;
//! enum names; `-` for an absent optional operand; buffer accesses `buf[off+rN*stride:len]`
//! and DRAM addresses `@0x1000+r0*512`. The printer adds `; layer "name"` comments from the
//! symbol table; comments are ignored by the assembler, so `assemble(print(p)) == p`.

mod lex;
mod parse;

pub use parse::{AsmError, assemble};

use crate::disasm::Printer;
use crate::operand::Stream;
use crate::program::{Program, SymbolKind};
use std::fmt::Write as _;

/// Bytes per `.hex` line.
const HEX_LINE: usize = 32;

/// The assembly listing of a program (deterministic; reassembles to the same program).
pub fn print(p: &Program) -> String {
    let mut s = String::new();
    let h = &p.header;
    let _ = writeln!(s, "; snnc program listing");
    let _ = writeln!(s, ".version {}", h.version);
    let _ = writeln!(s, ".chip cores={} hash={:#018x}", h.chip_cores, h.chip_hash);
    for (ci, core) in p.cores.iter().enumerate() {
        let _ = writeln!(s, "\n.core {ci}");
        for stream in Stream::ALL {
            print_stream(p, ci, *stream, core.stream(*stream), &mut s);
        }
    }
    if !p.data.is_empty() {
        s.push('\n');
    }
    for d in &p.data {
        let _ = writeln!(s, ".data {} kind={} addr={:#x} len={}", quote(&d.name), d.kind.name(), d.addr, d.bytes.len());
        for chunk in d.bytes.chunks(HEX_LINE) {
            let _ = write!(s, "    .hex ");
            for b in chunk {
                let _ = write!(s, "{b:02x}");
            }
            s.push('\n');
        }
    }
    if !p.symbols.is_empty() {
        s.push('\n');
    }
    for sym in &p.symbols {
        let _ = write!(s, ".symbol {} ", quote(&sym.name));
        match sym.kind {
            SymbolKind::Tensor => {
                let _ = writeln!(s, "kind=tensor addr={:#x} len={}", sym.addr, sym.len);
            }
            SymbolKind::Layer { core, stream } => {
                let _ = writeln!(s, "kind=layer core={core} stream={stream} addr={} len={}", sym.addr, sym.len);
            }
        }
    }
    s
}

fn print_stream(p: &Program, core: usize, stream: Stream, code: &[crate::Instr], s: &mut String) {
    if code.is_empty() {
        return;
    }
    let _ = writeln!(s, ".stream {stream}");
    for (idx, instr) in code.iter().enumerate() {
        for name in layers_starting(p, core, stream, idx) {
            let _ = writeln!(s, "    ; layer {}", quote(name));
        }
        s.push_str("    ");
        instr.visit(&mut Printer { out: s });
        s.push('\n');
    }
}

/// Names of layer symbols whose code starts at `idx` of this stream.
fn layers_starting(p: &Program, core: usize, stream: Stream, idx: usize) -> impl Iterator<Item = &str> {
    p.symbols.iter().filter_map(move |sym| match sym.kind {
        SymbolKind::Layer { core: c, stream: st }
            if usize::from(c) == core && st == stream && sym.addr as usize == idx =>
        {
            Some(sym.name.as_str())
        }
        _ => None,
    })
}

/// A name in double quotes; `"`, `\` and anything but printable ASCII are escaped.
pub(crate) fn quote(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            ' '..='~' => s.push(c),
            _ => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    s.push('"');
    s
}
