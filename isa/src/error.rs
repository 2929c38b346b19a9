//! Decode errors and the bounds-checked byte reader every decoder uses.
//!
//! The reader never indexes past its slice and never trusts a length field: every read
//! checks the remaining bytes first and fails with the absolute byte offset of the field
//! that could not be read. That is what lets the program decoder promise "never panic,
//! never allocate from an unchecked length" on arbitrary input.

use thiserror::Error;

/// A failure to decode a program file or an instruction, with the byte offset where it
/// happened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Offset from the start of the input of the field that failed.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// An error of `kind` at `offset`.
    pub fn new(offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }
}

/// The kinds of [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    /// The input ended inside a field.
    #[error("truncated input: expected {expected}")]
    Truncated {
        /// The field that was being read.
        expected: &'static str,
    },
    /// The file does not start with the program magic.
    #[error("bad magic: expected b\"SNNC\" at the start of a program file")]
    BadMagic,
    /// The file's format version is not the one this build reads.
    #[error("unsupported format version {found}: expected version {expected}")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        expected: u16,
    },
    /// The body's CRC32 does not match the header.
    #[error("bad checksum: expected CRC32 {expected:#010x} (from the header), body has {found:#010x}")]
    BadChecksum {
        /// Checksum stored in the header.
        expected: u32,
        /// Checksum of the body as read.
        found: u32,
    },
    /// A length field disagrees with the bytes present.
    #[error("bad length {found}: expected at most {expected} ({what})")]
    BadLength {
        /// What the length counts.
        what: &'static str,
        /// The length in the file.
        found: u64,
        /// The largest value the remaining bytes allow.
        expected: u64,
    },
    /// An opcode byte names no instruction.
    #[error("bad opcode {found:#04x}: expected an opcode below {count:#04x}")]
    BadOpcode {
        /// The byte read.
        found: u8,
        /// The number of opcodes.
        count: u8,
    },
    /// An operand's value is not one its type allows.
    #[error("bad operand {found}: expected {expected}")]
    BadOperand {
        /// What the operand must be.
        expected: &'static str,
        /// The value read.
        found: u64,
    },
    /// A name is not valid UTF-8.
    #[error("bad string: expected UTF-8 text")]
    BadUtf8,
    /// Bytes remain after the last section.
    #[error("{count} trailing bytes: expected the body to end after the symbol table")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
}

/// A cursor over a byte slice that reports absolute offsets.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, whose first byte is at offset `base` of the whole input.
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Reader<'a> {
        Reader { bytes, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads `n` bytes.
    pub(crate) fn take(&mut self, n: usize, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::new(self.offset(), DecodeErrorKind::Truncated { expected }));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, expected)?);
        Ok(out)
    }

    /// Reads a byte.
    pub(crate) fn u8(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(expected)?[0])
    }

    /// Reads a little-endian u16.
    pub(crate) fn u16(&mut self, expected: &'static str) -> Result<u16, DecodeError> {
        self.array(expected).map(u16::from_le_bytes)
    }

    /// Reads a little-endian u32.
    pub(crate) fn u32(&mut self, expected: &'static str) -> Result<u32, DecodeError> {
        self.array(expected).map(u32::from_le_bytes)
    }

    /// Reads a little-endian i32.
    pub(crate) fn i32(&mut self, expected: &'static str) -> Result<i32, DecodeError> {
        self.array(expected).map(i32::from_le_bytes)
    }

    /// Reads a little-endian u64.
    pub(crate) fn u64(&mut self, expected: &'static str) -> Result<u64, DecodeError> {
        self.array(expected).map(u64::from_le_bytes)
    }

    /// Reads a u32 count of items each at least `min_item` bytes long, rejecting counts the
    /// remaining bytes cannot hold (so no allocation is sized from an unchecked field).
    pub(crate) fn count(&mut self, what: &'static str, min_item: usize) -> Result<usize, DecodeError> {
        let at = self.offset();
        let n = self.u32(what)?;
        let max = self.remaining() / min_item.max(1);
        let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
        if n_usize > max {
            return Err(DecodeError::new(
                at,
                DecodeErrorKind::BadLength { what, found: u64::from(n), expected: max as u64 },
            ));
        }
        Ok(n_usize)
    }

    /// Reads a string: u16 byte length then UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(what)?);
        let at = self.offset();
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::new(at, DecodeErrorKind::BadUtf8))
    }
}
