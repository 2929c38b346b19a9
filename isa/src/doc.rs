//! The ISA reference document (`isa/ISA.md`), generated from the instruction table.
//!
//! [`isa_reference`] renders the table as Markdown; a test compares it with the checked-in
//! file and tells how to regenerate it (`UPDATE_ISA_DOC=1 cargo test -p snnc-isa`), so the
//! document can never drift from the encoder.

use crate::chip::ChipDesc;
use crate::instr::{OPS, OpInfo};
use crate::operand::{Buf, NUM_CFG_SLOTS, NUM_CHANNELS, NUM_LOOP_REGS, NUM_TOKENS};
use crate::program::FORMAT_VERSION;
use std::fmt::Write as _;

/// The full reference in Markdown.
pub fn isa_reference() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# snnc ISA reference\n");
    let _ = writeln!(s, "<!-- Generated from the instruction table in isa/src/ops.rs; do not edit.");
    let _ = writeln!(s, "     Regenerate with: UPDATE_ISA_DOC=1 cargo test -p snnc-isa -->\n");
    let _ =
        writeln!(s, "Program format version {FORMAT_VERSION}; {} instructions. The design rationale is the", OPS.len());
    let _ = writeln!(s, "crate documentation of `isa` (`isa/src/lib.rs`).\n");
    machine(&mut s);
    syntax(&mut s);
    buffers(&mut s);
    summary(&mut s);
    for op in OPS {
        detail(op, &mut s);
    }
    s
}

fn machine(s: &mut String) {
    let _ = writeln!(s, "## Machine model\n");
    let _ = writeln!(
        s,
        "- Each core runs four instruction streams concurrently: `fp`, `bp`, `wg` (the engines) and `dma` (the data mover)."
    );
    let _ = writeln!(
        s,
        "- Engine instructions (unit `fp`, `bp`, `wg`) appear only in their own stream; `mov` (data movement) and `ctl` (control) instructions appear in any stream."
    );
    let _ = writeln!(
        s,
        "- Each stream has {NUM_LOOP_REGS} loop counters `r0`..`r{}`, {NUM_TOKENS} token counters for `signal`/`wait`, and each core has {NUM_CFG_SLOTS} neuron and {NUM_CFG_SLOTS} optimizer configuration slots.",
        NUM_LOOP_REGS - 1
    );
    let _ = writeln!(s, "- Cores are connected by the NoC on {NUM_CHANNELS} channels per core pair.");
    let _ = writeln!(
        s,
        "- Encoding: one opcode byte (the table position), then each operand in table order, little-endian.\n"
    );
}

fn syntax(s: &mut String) {
    let _ = writeln!(s, "## Operand syntax\n");
    let _ = writeln!(s, "| type | text | binary |");
    let _ = writeln!(s, "| --- | --- | --- |");
    let rows = [
        ("u8 / u16 / u32", "decimal or `0x` hex", "1 / 2 / 4 bytes"),
        ("f32", "decimal, `inf`, `-0` (NaN is rejected)", "4 bytes, IEEE binary32"),
        ("bool", "`true` / `false`", "1 byte (0 or 1)"),
        ("enums", "the value's name", "1 byte (index)"),
        (
            "access",
            "`buf[off+r0*s0-r1*s1:len]` (elements)",
            "buf u8, off u32, len u32, term count u8, (reg u8, stride i32) per term",
        ),
        ("dram address", "`@0x1000+r0*512` (bytes)", "base u32, term count u8, terms"),
        ("optional", "`-` when absent", "tag u8 (0/1), then the value"),
    ];
    for (t, text, bin) in rows {
        let _ = writeln!(s, "| {t} | {text} | {bin} |");
    }
    let _ = writeln!(
        s,
        "\nAn access's first element is `off + sum(reg * stride)` with each register the counter of an enclosing loop.\n"
    );
}

fn buffers(s: &mut String) {
    let chip = ChipDesc::default();
    let _ = writeln!(s, "## Buffers\n");
    let _ = writeln!(s, "Sizes are those of the built-in chip description; a chip file may change them.\n");
    let _ = writeln!(s, "| buffer | element bits | elements (default) |");
    let _ = writeln!(s, "| --- | --- | --- |");
    for b in Buf::ALL {
        let (bits, elems) = chip.buffer(*b).map_or((0, 0), |d| (d.elem_bits, d.elems()));
        let _ = writeln!(s, "| `{b}` | {bits} | {elems} |");
    }
    s.push('\n');
}

fn summary(s: &mut String) {
    let _ = writeln!(s, "## Instructions\n");
    let _ = writeln!(s, "| opcode | mnemonic | unit | summary |");
    let _ = writeln!(s, "| --- | --- | --- | --- |");
    for op in OPS {
        let first = op.doc.first().map_or(String::new(), |d| cell(d));
        let _ = writeln!(s, "| {:#04x} | `{}` | {} | {} |", op.opcode as u8, op.mnemonic, op.unit.name(), first);
    }
    s.push('\n');
}

fn detail(op: &OpInfo, s: &mut String) {
    let _ = writeln!(s, "### `{}`\n", op.mnemonic);
    let _ = writeln!(s, "Opcode {:#04x}, unit `{}`.\n", op.opcode as u8, op.unit.name());
    for line in op.doc {
        let _ = writeln!(s, "{}", line.trim());
    }
    s.push('\n');
    if op.fields.is_empty() {
        let _ = writeln!(s, "No operands.\n");
        return;
    }
    let _ = writeln!(s, "| operand | type | meaning |");
    let _ = writeln!(s, "| --- | --- | --- |");
    for f in op.fields {
        let opt = if f.optional { "optional " } else { "" };
        let doc: Vec<String> = f.doc.iter().map(|d| cell(d)).collect();
        let _ = writeln!(s, "| `{}` | {opt}{} | {} |", f.name, f.kind, doc.join(" "));
    }
    s.push('\n');
}

/// A doc line made safe for a Markdown table cell.
fn cell(line: &str) -> String {
    line.trim().replace('|', "\\|")
}
