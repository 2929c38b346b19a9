//! The disassembler: instruction text, produced by a [`Visitor`](crate::Visitor).
//!
//! [`Printer`] is an ordinary visitor implementation (its methods are generated from the
//! instruction table in `instr.rs`), which shows that printing needs no opcode match: each
//! method writes the mnemonic and `field=value` for every operand in table order. The
//! program listing in [`asm`](crate::asm) uses it for every instruction line.

use crate::instr::Instr;

/// A visitor that appends one instruction's text to a string.
pub struct Printer<'a> {
    /// Where the text goes.
    pub out: &'a mut String,
}

/// The text of one stream, one instruction per line (no program context).
pub fn stream_text(instrs: &[Instr]) -> String {
    let mut s = String::new();
    for i in instrs {
        i.visit(&mut Printer { out: &mut s });
        s.push('\n');
    }
    s
}
