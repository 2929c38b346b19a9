//! The program: per-core instruction streams, initial DRAM data and a symbol table, and its
//! versioned binary file format.
//!
//! # Binary layout (all integers little-endian)
//!
//! ```text
//! magic    b"SNNC"
//! version  u16        FORMAT_VERSION
//! reserved u16        0
//! body_len u32        bytes after this 16-byte prelude
//! crc32    u32        CRC-32 (IEEE) of the body
//! body:
//!   header   chip_cores u16, chip_hash u64
//!   cores    count u32; per core, per stream (fp, bp, wg, dma):
//!              instr_count u32, byte_len u32, encoded instructions
//!   data     count u32; per segment: name str, kind u8, addr u32, len u32, bytes
//!   symbols  count u32; per symbol: name str, kind u8, [core u16, stream u8], addr u32, len u32
//! str = u16 byte length + UTF-8
//! ```
//!
//! Decoding checks the prelude, then the checksum, then parses the body; every count is
//! checked against the bytes left before anything is allocated, so a corrupt length cannot
//! make the decoder allocate more than the file's size.

use crate::error::{DecodeError, DecodeErrorKind, Reader};
use crate::instr::{Instr, decode_one};
use crate::operand::{Operand, Stream};

/// The program file magic.
pub const MAGIC: [u8; 4] = *b"SNNC";
/// The binary format version this build reads and writes. Version 2 added the row count and
/// row strides of `fp.linear`, `bp.linear` and `wg.linear`; version 3 the stride and padding
/// of `fp.pool` and `bp.pool`; version 4 the row count of `fp.lif` and `bp.soma` (one soma
/// instruction over all timesteps of a sample); version 5 the per-channel bias of `fp.conv`.
pub const FORMAT_VERSION: u16 = 5;
const PRELUDE: usize = 16;

/// A whole program for one chip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Program {
    /// Format version and the chip it was built for.
    pub header: Header,
    /// Per-core code; core `i` is entry `i`.
    pub cores: Vec<CoreCode>,
    /// Initial DRAM contents.
    pub data: Vec<DataSegment>,
    /// Names of layers and tensors.
    pub symbols: Vec<Symbol>,
}

/// What a program was built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version (always [`FORMAT_VERSION`] for programs this build reads).
    pub version: u16,
    /// Core count of the target chip.
    pub chip_cores: u16,
    /// [`ChipDesc::hash`](crate::ChipDesc::hash) of the target chip.
    pub chip_hash: u64,
}

impl Default for Header {
    fn default() -> Header {
        Header { version: FORMAT_VERSION, chip_cores: 0, chip_hash: 0 }
    }
}

/// The four instruction streams of one core, indexed by [`Stream`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CoreCode {
    /// Streams in [`Stream::ALL`] order: fp, bp, wg, dma.
    pub streams: [Vec<Instr>; 4],
}

impl CoreCode {
    /// The instructions of one stream.
    pub fn stream(&self, s: Stream) -> &[Instr] {
        &self.streams[s.index()]
    }

    /// The instructions of one stream, for building.
    pub fn stream_mut(&mut self, s: Stream) -> &mut Vec<Instr> {
        &mut self.streams[s.index()]
    }
}

/// What a data segment holds (informative: the simulator loads bytes as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// FP16 values (weights for compute, inputs).
    Fp16,
    /// FP32 values (master weights).
    Fp32,
    /// Bit-packed spikes.
    Spikes,
    /// Anything else (constants, labels).
    Raw,
}

/// Initial bytes at a DRAM address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSegment {
    /// Name, e.g. the tensor it initialises.
    pub name: String,
    /// Element kind.
    pub kind: DataKind,
    /// First DRAM byte.
    pub addr: u32,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// What a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// A tensor in DRAM: `addr`/`len` are bytes.
    Tensor,
    /// A layer's code: instructions `addr .. addr+len` of one stream of one core.
    Layer {
        /// The core.
        core: u16,
        /// The stream.
        stream: Stream,
    },
}

/// A named range of DRAM or of code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Name (layer or tensor).
    pub name: String,
    /// What it names.
    pub kind: SymbolKind,
    /// Start: DRAM byte or instruction index.
    pub addr: u32,
    /// Length: bytes or instructions.
    pub len: u32,
}

/// One `u8` code per [`DataKind`], in this order.
const DATA_KINDS: [DataKind; 4] = [DataKind::Fp16, DataKind::Fp32, DataKind::Spikes, DataKind::Raw];

impl DataKind {
    /// The name used in listings.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Fp16 => "fp16",
            DataKind::Fp32 => "fp32",
            DataKind::Spikes => "spikes",
            DataKind::Raw => "raw",
        }
    }

    /// The kind with listing name `s`.
    pub fn from_name(s: &str) -> Option<DataKind> {
        DATA_KINDS.into_iter().find(|k| k.name() == s)
    }

    fn code(self) -> u8 {
        DATA_KINDS.iter().position(|k| *k == self).map_or(0, |i| i as u8)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names longer than 65535 bytes are cut at a character boundary; the assembler and
    // compiler never produce such names.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
}

impl Program {
    /// An empty program for `chip`: header filled in, one empty [`CoreCode`] per core.
    pub fn new(chip: &crate::ChipDesc) -> Program {
        let header = Header {
            version: FORMAT_VERSION,
            chip_cores: u16::try_from(chip.core_count()).unwrap_or(u16::MAX),
            chip_hash: chip.hash(),
        };
        Program { header, cores: vec![CoreCode::default(); chip.core_count()], ..Program::default() }
    }

    /// The binary file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let mut out = Vec::with_capacity(PRELUDE + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.header.version.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        put_u32(&mut out, body.len());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.header.chip_cores.to_le_bytes());
        out.extend_from_slice(&self.header.chip_hash.to_le_bytes());
        put_u32(&mut out, self.cores.len());
        for core in &self.cores {
            for stream in &core.streams {
                let mut code = Vec::new();
                for i in stream {
                    i.encode(&mut code);
                }
                put_u32(&mut out, stream.len());
                put_u32(&mut out, code.len());
                out.extend_from_slice(&code);
            }
        }
        put_u32(&mut out, self.data.len());
        for d in &self.data {
            put_str(&mut out, &d.name);
            out.push(d.kind.code());
            out.extend_from_slice(&d.addr.to_le_bytes());
            put_u32(&mut out, d.bytes.len());
            out.extend_from_slice(&d.bytes);
        }
        put_u32(&mut out, self.symbols.len());
        for s in &self.symbols {
            put_str(&mut out, &s.name);
            match s.kind {
                SymbolKind::Tensor => out.push(0),
                SymbolKind::Layer { core, stream } => {
                    out.push(1);
                    out.extend_from_slice(&core.to_le_bytes());
                    stream.encode(&mut out);
                }
            }
            out.extend_from_slice(&s.addr.to_le_bytes());
            out.extend_from_slice(&s.len.to_le_bytes());
        }
        out
    }

    /// Decodes a binary file, checking magic, version, length and checksum first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, DecodeError> {
        let mut r = Reader::new(bytes, 0);
        if r.take(4, "the magic b\"SNNC\"")? != MAGIC {
            return Err(DecodeError::new(0, DecodeErrorKind::BadMagic));
        }
        let version = r.u16("a format version")?;
        if version != FORMAT_VERSION {
            let kind = DecodeErrorKind::UnsupportedVersion { found: version, expected: FORMAT_VERSION };
            return Err(DecodeError::new(4, kind));
        }
        r.u16("a reserved u16")?;
        let len_at = r.offset();
        let body_len = r.u32("the body length")?;
        let crc = r.u32("the body CRC32")?;
        let rest = r.remaining();
        if u64::from(body_len) != rest as u64 {
            let kind = DecodeErrorKind::BadLength {
                what: "body length (bytes after the 16-byte prelude)",
                found: u64::from(body_len),
                expected: rest as u64,
            };
            return Err(DecodeError::new(len_at, kind));
        }
        let body = r.take(rest, "the body")?;
        let found = crc32fast::hash(body);
        if found != crc {
            return Err(DecodeError::new(12, DecodeErrorKind::BadChecksum { expected: crc, found }));
        }
        Program::from_body(body, version)
    }

    /// Parses a body whose checksum has been checked (tests call it on mutated bodies).
    pub(crate) fn from_body(body: &[u8], version: u16) -> Result<Program, DecodeError> {
        let mut r = Reader::new(body, PRELUDE);
        let chip_cores = r.u16("the chip core count")?;
        let chip_hash = r.u64("the chip hash")?;
        let header = Header { version, chip_cores, chip_hash };
        let cores = read_cores(&mut r)?;
        let data = read_data(&mut r)?;
        let symbols = read_symbols(&mut r)?;
        if r.remaining() != 0 {
            let kind = DecodeErrorKind::TrailingBytes { count: r.remaining() };
            return Err(DecodeError::new(r.offset(), kind));
        }
        Ok(Program { header, cores, data, symbols })
    }
}

fn read_cores(r: &mut Reader<'_>) -> Result<Vec<CoreCode>, DecodeError> {
    // A core takes at least 4 streams x 8 bytes of counts.
    let n = r.count("core count", 32)?;
    let mut cores = Vec::with_capacity(n);
    for _ in 0..n {
        let mut core = CoreCode::default();
        for stream in &mut core.streams {
            *stream = read_stream(r)?;
        }
        cores.push(core);
    }
    Ok(cores)
}

fn read_stream(r: &mut Reader<'_>) -> Result<Vec<Instr>, DecodeError> {
    let count_at = r.offset();
    let count = r.count("instruction count", 1)?;
    let len = r.count("stream byte length", 1)?;
    let start = r.offset();
    let code = r.take(len, "stream code")?;
    let mut cr = Reader::new(code, start);
    let mut out = Vec::with_capacity(count.min(len));
    while cr.remaining() > 0 {
        out.push(decode_one(&mut cr)?);
    }
    if out.len() != count {
        let kind = DecodeErrorKind::BadLength {
            what: "instruction count of the stream",
            found: count as u64,
            expected: out.len() as u64,
        };
        return Err(DecodeError::new(count_at, kind));
    }
    Ok(out)
}

fn read_data(r: &mut Reader<'_>) -> Result<Vec<DataSegment>, DecodeError> {
    let n = r.count("data segment count", 11)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("a segment name")?;
        let at = r.offset();
        let code = r.u8("a data kind")?;
        let kind = *DATA_KINDS.get(usize::from(code)).ok_or_else(|| {
            DecodeError::new(
                at,
                DecodeErrorKind::BadOperand {
                    expected: "a data kind (0 fp16, 1 fp32, 2 spikes, 3 raw)",
                    found: u64::from(code),
                },
            )
        })?;
        let addr = r.u32("a segment address")?;
        let len = r.count("segment byte length", 1)?;
        let bytes = r.take(len, "segment bytes")?.to_vec();
        out.push(DataSegment { name, kind, addr, bytes });
    }
    Ok(out)
}

fn read_symbols(r: &mut Reader<'_>) -> Result<Vec<Symbol>, DecodeError> {
    let n = r.count("symbol count", 11)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("a symbol name")?;
        let at = r.offset();
        let kind = match r.u8("a symbol kind")? {
            0 => SymbolKind::Tensor,
            1 => {
                let core = r.u16("a symbol core")?;
                let stream = Stream::decode(r)?;
                SymbolKind::Layer { core, stream }
            }
            k => {
                let kind =
                    DecodeErrorKind::BadOperand { expected: "a symbol kind (0 tensor, 1 layer)", found: u64::from(k) };
                return Err(DecodeError::new(at, kind));
            }
        };
        let addr = r.u32("a symbol address")?;
        let len = r.u32("a symbol length")?;
        out.push(Symbol { name, kind, addr, len });
    }
    Ok(out)
}
