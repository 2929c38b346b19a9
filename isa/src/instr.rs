//! Everything derived from the instruction table: [`Instr`], [`Opcode`], [`Visitor`], the
//! encoder and decoder, the printer and the operand parser, and the [`OPS`] reference table.
//!
//! Nothing here is written per instruction: `define_isa!` expands the table of
//! [`for_each_op!`](crate::for_each_op) once, so adding an instruction to the table adds it
//! everywhere (and to `ISA.md`, whose freshness a test checks).

use crate::error::{DecodeError, DecodeErrorKind, Reader};
use crate::operand::{Access, DramAddr, LossKind, Operand, OptKind, PoolKind, Reg, ResetMode, Stream, Surrogate};

/// The hardware unit that executes an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// The feed-forward engine; only in `fp` streams.
    Fp,
    /// The back-propagation engine; only in `bp` streams.
    Bp,
    /// The weight-gradient engine; only in `wg` streams.
    Wg,
    /// The core's data mover (DMA and NoC port); issued from any stream.
    Mov,
    /// Sequencing and configuration; in any stream.
    Ctl,
}

impl Unit {
    /// Whether an instruction of this unit may appear in `stream`.
    pub fn allowed_in(self, stream: Stream) -> bool {
        match self {
            Unit::Fp => stream == Stream::Fp,
            Unit::Bp => stream == Stream::Bp,
            Unit::Wg => stream == Stream::Wg,
            Unit::Mov | Unit::Ctl => true,
        }
    }

    /// The lowercase name used in the reference.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Fp => "fp",
            Unit::Bp => "bp",
            Unit::Wg => "wg",
            Unit::Mov => "mov",
            Unit::Ctl => "ctl",
        }
    }
}

/// Reference information on one instruction, taken from the table.
#[derive(Debug)]
pub struct OpInfo {
    /// The opcode.
    pub opcode: Opcode,
    /// Assembly mnemonic.
    pub mnemonic: &'static str,
    /// Executing unit.
    pub unit: Unit,
    /// Doc lines.
    pub doc: &'static [&'static str],
    /// Operand fields in encoding order.
    pub fields: &'static [FieldInfo],
}

/// Reference information on one operand field.
#[derive(Debug)]
pub struct FieldInfo {
    /// Field name, as written in assembly (`name=value`).
    pub name: &'static str,
    /// The operand type's name.
    pub kind: &'static str,
    /// Whether the operand may be absent (`-`).
    pub optional: bool,
    /// Doc lines.
    pub doc: &'static [&'static str],
}

/// Where the assembler gets an operand's text from, by field name.
pub(crate) trait OperandSource {
    /// The text of field `name`, or an error message if missing.
    fn text(&mut self, name: &'static str) -> Result<(&str, usize), (usize, String)>;
}

/// Parses one operand through an [`OperandSource`], mapping the message to the column.
fn field<T: Operand, S: OperandSource>(src: &mut S, name: &'static str) -> Result<T, (usize, String)> {
    let (text, col) = src.text(name)?;
    T::parse(text).map_err(|msg| (col, format!("operand `{name}`: {msg}")))
}

macro_rules! define_isa {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident $method:ident = $mn:literal @ $unit:ident {
            $( $(#[doc = $fdoc:literal])* $field:ident : $ty:ty ),* $(,)?
        };
    )*) => {
        /// One instruction, with its operands. Variants and fields are the table's.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Instr {
            $( $(#[doc = $doc])* $name { $( $(#[doc = $fdoc])* $field: $ty ),* } ),*
        }

        /// Instruction opcodes; the discriminant is the encoded opcode byte (table order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $( $(#[doc = $doc])* $name ),*
        }

        /// The reference table: one entry per opcode, in opcode order.
        pub static OPS: &[OpInfo] = &[$(
            OpInfo {
                opcode: Opcode::$name,
                mnemonic: $mn,
                unit: Unit::$unit,
                doc: &[$($doc),*],
                fields: &[$(FieldInfo {
                    name: stringify!($field),
                    kind: <$ty as Operand>::KIND,
                    optional: <$ty as Operand>::OPTIONAL,
                    doc: &[$($fdoc),*],
                }),*],
            }
        ),*];

        /// One method per instruction, called with borrowed operands, in table order.
        ///
        /// The simulator's engines and the disassembler implement this; [`Instr::visit`]
        /// and [`decode_visit`](crate::decode_visit) drive it.
        pub trait Visitor {
            /// What each method returns.
            type Output;
            $(
                $(#[doc = $doc])*
                #[allow(clippy::too_many_arguments)]
                fn $method(&mut self, $($field: &$ty),*) -> Self::Output;
            )*
        }

        impl Instr {
            /// This instruction's opcode.
            pub fn opcode(&self) -> Opcode {
                match self { $( Instr::$name { .. } => Opcode::$name ),* }
            }

            /// Calls the visitor method of this instruction with its operands.
            pub fn visit<V: Visitor + ?Sized>(&self, v: &mut V) -> V::Output {
                match self {
                    $( Instr::$name { $($field),* } => v.$method($($field),*) ),*
                }
            }

            /// Appends the binary encoding: the opcode byte, then each operand in table order.
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.opcode() as u8);
                match self {
                    $( Instr::$name { $($field),* } => { $( Operand::encode($field, out); )* } ),*
                }
            }

            /// Calls `f` on every buffer access among the operands.
            pub fn accesses<'a>(&'a self, f: &mut dyn FnMut(&'a Access)) {
                match self {
                    $( Instr::$name { $($field),* } => { $( Operand::accesses($field, f); )* } ),*
                }
            }

            /// Decodes one instruction.
            pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Instr, DecodeError> {
                let op = read_opcode(r)?;
                match op {
                    $( Opcode::$name => Ok(Instr::$name {
                        $( $field: <$ty as Operand>::decode(r)?, )*
                    }), )*
                }
            }

            /// Decodes one instruction straight into a visitor, without building an `Instr`.
            pub(crate) fn decode_into<V: Visitor + ?Sized>(
                r: &mut Reader<'_>,
                v: &mut V,
            ) -> Result<V::Output, DecodeError> {
                let op = read_opcode(r)?;
                match op {
                    $( Opcode::$name => {
                        $( let $field = <$ty as Operand>::decode(r)?; )*
                        Ok(v.$method($(&$field),*))
                    } )*
                }
            }

            /// Builds an instruction of opcode `op` from named operand texts.
            pub(crate) fn parse_operands<S: OperandSource>(
                op: Opcode,
                src: &mut S,
            ) -> Result<Instr, (usize, String)> {
                match op {
                    $( Opcode::$name => Ok(Instr::$name {
                        $( $field: field::<$ty, S>(src, stringify!($field))?, )*
                    }), )*
                }
            }
        }

        /// The disassembler: a visitor that prints `mnemonic field=value ...`.
        impl Visitor for crate::disasm::Printer<'_> {
            type Output = ();
            $(
                fn $method(&mut self, $($field: &$ty),*) {
                    self.out.push_str($mn);
                    $(
                        self.out.push(' ');
                        self.out.push_str(stringify!($field));
                        self.out.push('=');
                        Operand::print($field, self.out);
                    )*
                }
            )*
        }

        #[cfg(test)]
        impl Instr {
            /// A random instruction of opcode `op` (test generator).
            pub(crate) fn arbitrary_of(op: Opcode, g: &mut crate::testgen::Gen) -> Instr {
                use crate::testgen::Arb;
                match op {
                    $( Opcode::$name => Instr::$name { $( $field: <$ty as Arb>::arb(g), )* }, )*
                }
            }
        }
    };
}

crate::for_each_op!(define_isa);

/// Reads an opcode byte, rejecting bytes that name no instruction.
fn read_opcode(r: &mut Reader<'_>) -> Result<Opcode, DecodeError> {
    let at = r.offset();
    let b = r.u8("an opcode")?;
    Opcode::from_u8(b).ok_or_else(|| {
        let count = u8::try_from(OPS.len()).unwrap_or(u8::MAX);
        DecodeError::new(at, DecodeErrorKind::BadOpcode { found: b, count })
    })
}

impl Opcode {
    /// Every opcode, in numbering order.
    pub fn all() -> impl Iterator<Item = Opcode> {
        OPS.iter().map(|i| i.opcode)
    }

    /// The opcode encoded as byte `b`, if any.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        OPS.get(usize::from(b)).map(|i| i.opcode)
    }

    /// The opcode with assembly mnemonic `s`, if any.
    pub fn from_mnemonic(s: &str) -> Option<Opcode> {
        OPS.iter().find(|i| i.mnemonic == s).map(|i| i.opcode)
    }

    /// This opcode's reference entry.
    pub fn info(self) -> &'static OpInfo {
        &OPS[self as usize]
    }

    /// Assembly mnemonic.
    pub fn mnemonic(self) -> &'static str {
        self.info().mnemonic
    }

    /// Executing unit.
    pub fn unit(self) -> Unit {
        self.info().unit
    }
}

impl std::fmt::Display for Instr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.visit(&mut crate::disasm::Printer { out: &mut s });
        f.write_str(&s)
    }
}

impl Instr {
    /// The binary encoding as a fresh vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one instruction from `bytes` (all bytes must be used).
    pub fn from_bytes(bytes: &[u8]) -> Result<Instr, DecodeError> {
        let mut r = Reader::new(bytes, 0);
        let i = Instr::decode(&mut r)?;
        if r.remaining() != 0 {
            let kind = DecodeErrorKind::TrailingBytes { count: r.remaining() };
            return Err(DecodeError::new(r.offset(), kind));
        }
        Ok(i)
    }
}

/// Decodes a sequence of encoded instructions, calling the visitor for each in order.
///
/// This is the decoder-to-visitor entry point for tools that read raw streams; programs
/// decoded with [`Program::from_bytes`](crate::Program::from_bytes) hold [`Instr`]s that
/// are driven with [`Instr::visit`].
pub fn decode_visit<V: Visitor + ?Sized>(bytes: &[u8], v: &mut V) -> Result<Vec<V::Output>, DecodeError> {
    let mut r = Reader::new(bytes, 0);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        out.push(Instr::decode_into(&mut r, v)?);
    }
    Ok(out)
}

/// Decodes one instruction at the reader (used by the program decoder).
pub(crate) fn decode_one(r: &mut Reader<'_>) -> Result<Instr, DecodeError> {
    Instr::decode(r)
}
