//! Addresses: buffer accesses and DRAM addresses, affine in the loop counters.
//!
//! Both are `base + sum(reg * stride)` with at most [`NUM_LOOP_REGS`] terms. Their text
//! forms are `buf[off+r0*s0-r1*s1:len]` and `@0x1000+r0*512`; strides may be negative (BP
//! walks time backwards). Evaluation is in 64-bit arithmetic, so no operand values can
//! overflow it.

use crate::error::{DecodeError, DecodeErrorKind, Reader};
use crate::operand::{Buf, NUM_LOOP_REGS, Operand, Reg, parse_u64};
use std::fmt::Write as _;

/// One index term of an address: `reg * stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Term {
    /// The loop register whose value scales the stride.
    pub reg: Reg,
    /// Elements (buffers) or bytes (DRAM) added per loop iteration; may be negative.
    pub stride: i32,
}

fn encode_terms(terms: &[Term], out: &mut Vec<u8>) {
    // Terms beyond the register count cannot be built by the assembler or decoder; the
    // verifier reports them, and the encoder writes what it is given.
    out.push(u8::try_from(terms.len()).unwrap_or(u8::MAX));
    for t in terms {
        t.reg.encode(out);
        out.extend_from_slice(&t.stride.to_le_bytes());
    }
}

fn decode_terms(r: &mut Reader<'_>) -> Result<Vec<Term>, DecodeError> {
    let at = r.offset();
    let n = r.u8("an index term count")?;
    if usize::from(n) > NUM_LOOP_REGS {
        return Err(DecodeError::new(
            at,
            DecodeErrorKind::BadOperand { expected: "at most 4 index terms", found: u64::from(n) },
        ));
    }
    let mut terms = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let reg = Reg::decode(r)?;
        let stride = r.i32("an index stride")?;
        terms.push(Term { reg, stride });
    }
    Ok(terms)
}

fn print_terms(terms: &[Term], out: &mut String) {
    for t in terms {
        let sign = if t.stride < 0 { '-' } else { '+' };
        let _ = write!(out, "{sign}{}*{}", t.reg, t.stride.unsigned_abs());
    }
}

/// Parses `<number>{(+|-)rN*<number>}`, returning the base and the terms.
fn parse_affine(s: &str) -> Result<(u64, Vec<Term>), String> {
    let split = s.find(['+', '-']).unwrap_or(s.len());
    let (base, mut rest) = s.split_at(split);
    let base = parse_u64(base).ok_or_else(|| format!("expected a base number, found `{base}`"))?;
    let mut terms = Vec::new();
    while let Some(sign) = rest.chars().next() {
        let body = &rest[1..];
        let end = body.find(['+', '-']).unwrap_or(body.len());
        let (term, tail) = body.split_at(end);
        rest = tail;
        let (reg, stride) =
            term.split_once('*').ok_or_else(|| format!("expected an index term `rN*stride`, found `{term}`"))?;
        let reg = Reg::parse(reg)?;
        let mag = parse_u64(stride).ok_or_else(|| format!("expected a stride, found `{stride}`"))?;
        let signed = if sign == '-' { -i128::from(mag) } else { i128::from(mag) };
        let stride = i32::try_from(signed).map_err(|_| format!("stride {signed} is out of range (expected an i32)"))?;
        if terms.len() == NUM_LOOP_REGS {
            return Err("expected at most 4 index terms".to_string());
        }
        terms.push(Term { reg, stride });
    }
    Ok((base, terms))
}

/// A buffer access: `len` elements of `buf` starting at `off + sum(reg * stride)`.
///
/// Text form: `fp.mem[128+r0*256:256]` (first element, then the length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// The buffer.
    pub buf: Buf,
    /// First element, before loop offsets.
    pub off: u32,
    /// Number of elements.
    pub len: u32,
    /// Loop-index terms added to `off` (at most [`NUM_LOOP_REGS`]).
    pub terms: Vec<Term>,
}

impl Access {
    /// A fixed access (no loop terms).
    pub fn new(buf: Buf, off: u32, len: u32) -> Access {
        Access { buf, off, len, terms: Vec::new() }
    }

    /// Adds a loop term `reg * stride` (builder style).
    pub fn with(mut self, reg: Reg, stride: i32) -> Access {
        self.terms.push(Term { reg, stride });
        self
    }

    /// The first element for the given loop register values.
    #[inline]
    pub fn start(&self, regs: &[u32; NUM_LOOP_REGS]) -> i64 {
        affine(self.off, &self.terms, regs)
    }
}

/// `base + sum(regs[t.reg] * t.stride)` in 64-bit arithmetic (never overflows).
#[inline]
fn affine(base: u32, terms: &[Term], regs: &[u32; NUM_LOOP_REGS]) -> i64 {
    terms.iter().fold(i64::from(base), |acc, t| acc + i64::from(regs[t.reg.index()]) * i64::from(t.stride))
}

impl Operand for Access {
    const KIND: &'static str = "access";
    fn encode(&self, out: &mut Vec<u8>) {
        self.buf.encode(out);
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        encode_terms(&self.terms, out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let buf = Buf::decode(r)?;
        let off = r.u32("an access offset")?;
        let len = r.u32("an access length")?;
        let terms = decode_terms(r)?;
        Ok(Access { buf, off, len, terms })
    }
    fn print(&self, out: &mut String) {
        let _ = write!(out, "{}[{}", self.buf, self.off);
        print_terms(&self.terms, out);
        let _ = write!(out, ":{}]", self.len);
    }
    fn parse(s: &str) -> Result<Self, String> {
        let expected = || format!("expected an access `buf[off(+rN*stride)*:len]`, found `{s}`");
        let (buf, rest) = s.split_once('[').ok_or_else(expected)?;
        let inner = rest.strip_suffix(']').ok_or_else(expected)?;
        let (addr, len) = inner.split_once(':').ok_or_else(expected)?;
        let buf = Buf::parse(buf)?;
        let (off, terms) = parse_affine(addr)?;
        let off = u32::try_from(off).map_err(|_| format!("offset {off} exceeds u32"))?;
        let len = u32::parse(len)?;
        Ok(Access { buf, off, len, terms })
    }
    fn accesses<'a>(&'a self, f: &mut dyn FnMut(&'a Access)) {
        f(self);
    }
}

/// A DRAM byte address `base + sum(reg * stride)`. Text form: `@0x1000+r0*512`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DramAddr {
    /// Byte address before loop offsets.
    pub base: u32,
    /// Loop-index terms in bytes (at most [`NUM_LOOP_REGS`]).
    pub terms: Vec<Term>,
}

impl DramAddr {
    /// A fixed address.
    pub fn new(base: u32) -> DramAddr {
        DramAddr { base, terms: Vec::new() }
    }

    /// Adds a loop term `reg * stride` (builder style).
    pub fn with(mut self, reg: Reg, stride: i32) -> DramAddr {
        self.terms.push(Term { reg, stride });
        self
    }

    /// The byte address for the given loop register values.
    #[inline]
    pub fn at(&self, regs: &[u32; NUM_LOOP_REGS]) -> i64 {
        affine(self.base, &self.terms, regs)
    }
}

impl Operand for DramAddr {
    const KIND: &'static str = "dram address";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.base.to_le_bytes());
        encode_terms(&self.terms, out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let base = r.u32("a DRAM address")?;
        let terms = decode_terms(r)?;
        Ok(DramAddr { base, terms })
    }
    fn print(&self, out: &mut String) {
        let _ = write!(out, "@{:#x}", self.base);
        print_terms(&self.terms, out);
    }
    fn parse(s: &str) -> Result<Self, String> {
        let body =
            s.strip_prefix('@').ok_or_else(|| format!("expected a DRAM address `@0x..(+rN*stride)*`, found `{s}`"))?;
        let (base, terms) = parse_affine(body)?;
        let base = u32::try_from(base).map_err(|_| format!("address {base} exceeds u32"))?;
        Ok(DramAddr { base, terms })
    }
}
