//! Random instructions and programs for property tests, from a seed.
//!
//! Generators are written against the operand types, and the per-instruction generator is
//! derived from the instruction table (`Instr::arbitrary_of`), so every opcode and every
//! operand type is covered without a hand-written strategy per instruction.

use crate::instr::{Instr, OPS, Opcode};
use crate::operand::{Access, Buf, DramAddr, LossKind, OptKind, PoolKind, Reg, ResetMode, Stream, Surrogate, Term};
use crate::program::{CoreCode, DataKind, DataSegment, FORMAT_VERSION, Header, Program, Symbol, SymbolKind};

/// A splitmix64 generator.
pub(crate) struct Gen(u64);

impl Gen {
    pub(crate) fn new(seed: u64) -> Gen {
        Gen(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Mostly small numbers, sometimes anything: both ends of the encodings get exercised.
    fn num(&mut self, max: u64) -> u64 {
        if self.below(4) == 0 { self.next() & max } else { self.below(300).min(max) }
    }
}

/// Types the generator can produce.
pub(crate) trait Arb {
    fn arb(g: &mut Gen) -> Self;
}

impl Arb for u8 {
    fn arb(g: &mut Gen) -> u8 {
        g.num(u64::from(u8::MAX)) as u8
    }
}

impl Arb for u16 {
    fn arb(g: &mut Gen) -> u16 {
        g.num(u64::from(u16::MAX)) as u16
    }
}

impl Arb for u32 {
    fn arb(g: &mut Gen) -> u32 {
        g.num(u64::from(u32::MAX)) as u32
    }
}

impl Arb for bool {
    fn arb(g: &mut Gen) -> bool {
        g.below(2) == 1
    }
}

impl Arb for f32 {
    fn arb(g: &mut Gen) -> f32 {
        let v = match g.below(3) {
            0 => f32::from_bits(g.next() as u32),
            1 => g.below(2000) as f32 / 1000.0,
            _ => [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, 1e-45][g.below(6) as usize],
        };
        if v.is_nan() { 0.5 } else { v }
    }
}

macro_rules! arb_enum {
    ($($t:ty),*) => {$(
        impl Arb for $t {
            fn arb(g: &mut Gen) -> $t {
                <$t>::ALL[g.below(<$t>::ALL.len() as u64) as usize]
            }
        }
    )*};
}

arb_enum!(Reg, Stream, Buf, ResetMode, Surrogate, PoolKind, LossKind, OptKind);

impl<T: Arb> Arb for Option<T> {
    fn arb(g: &mut Gen) -> Option<T> {
        if g.below(2) == 0 { None } else { Some(T::arb(g)) }
    }
}

fn terms(g: &mut Gen) -> Vec<Term> {
    let n = g.below(5);
    (0..n).map(|_| Term { reg: Reg::arb(g), stride: g.next() as i32 >> g.below(32) }).collect()
}

impl Arb for Access {
    fn arb(g: &mut Gen) -> Access {
        Access { buf: Buf::arb(g), off: u32::arb(g), len: u32::arb(g), terms: terms(g) }
    }
}

impl Arb for DramAddr {
    fn arb(g: &mut Gen) -> DramAddr {
        DramAddr { base: u32::arb(g), terms: terms(g) }
    }
}

/// Any instruction.
pub(crate) fn instr(g: &mut Gen) -> Instr {
    let op = OPS[g.below(OPS.len() as u64) as usize].opcode;
    Instr::arbitrary_of(op, g)
}

/// An instruction of the given opcode.
pub(crate) fn instr_of(op: Opcode, g: &mut Gen) -> Instr {
    Instr::arbitrary_of(op, g)
}

/// A name with awkward characters (quotes, backslashes, non-ASCII, blanks, `;`).
fn name(g: &mut Gen) -> String {
    const CHARS: &[char] = &['a', 'Z', '0', '_', '.', ' ', '"', '\\', ';', 'é', '\u{1f600}', '\n', '=', '\u{7f}'];
    (0..g.below(8)).map(|_| CHARS[g.below(CHARS.len() as u64) as usize]).collect()
}

/// A random program: up to 3 cores, short streams, a few data segments and symbols.
pub(crate) fn program(g: &mut Gen) -> Program {
    let header = Header { version: FORMAT_VERSION, chip_cores: u16::arb(g), chip_hash: g.next() };
    let cores = (0..g.below(4))
        .map(|_| {
            let mut c = CoreCode::default();
            for s in &mut c.streams {
                *s = (0..g.below(5)).map(|_| instr(g)).collect();
            }
            c
        })
        .collect();
    let kinds = [DataKind::Fp16, DataKind::Fp32, DataKind::Spikes, DataKind::Raw];
    let data = (0..g.below(3))
        .map(|_| DataSegment {
            name: name(g),
            kind: kinds[g.below(4) as usize],
            addr: u32::arb(g),
            bytes: (0..g.below(70)).map(|_| g.next() as u8).collect(),
        })
        .collect();
    let symbols = (0..g.below(4))
        .map(|_| {
            let kind = if g.below(2) == 0 {
                SymbolKind::Tensor
            } else {
                SymbolKind::Layer { core: g.below(4) as u16, stream: Stream::arb(g) }
            };
            Symbol { name: name(g), kind, addr: u32::arb(g) % 6, len: u32::arb(g) }
        })
        .collect();
    Program { header, cores, data, symbols }
}
