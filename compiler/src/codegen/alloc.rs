//! Bump allocators: regions of on-chip buffers (per core, and the shared `opt` store) and of
//! DRAM. Every region is decided before any instruction is emitted, so emission cannot fail
//! and a working set that does not fit is reported with the layer that needs it.

use super::CodegenError;
use super::placement::buffer_elems;
use isa::{Buf, ChipDesc, DataKind, DataSegment, Symbol, SymbolKind};
use std::collections::BTreeMap;

/// Next free element of each buffer of one core (or of `opt`, chip-wide).
#[derive(Debug, Default)]
pub(super) struct Buffers {
    next: BTreeMap<Buf, u64>,
}

impl Buffers {
    /// Reserves `len` elements of `buf` for `layer`, returning the first element.
    pub(super) fn take(&mut self, chip: &ChipDesc, buf: Buf, len: u64, layer: &str) -> Result<u32, CodegenError> {
        let start = self.next.get(&buf).copied().unwrap_or(0);
        let have = buffer_elems(chip, buf);
        let need = start + len;
        if need > have || need > u64::from(u32::MAX) {
            return Err(CodegenError::DoesNotFit { layer: layer.to_string(), buffer: buf.name().into(), need, have });
        }
        self.next.insert(buf, need);
        Ok(u32::try_from(start).unwrap_or(u32::MAX))
    }
}

/// DRAM: tensor symbols and their initial data, laid out in allocation order.
#[derive(Debug, Default)]
pub(super) struct Dram {
    next: u64,
    /// Tensor symbols, in allocation order.
    pub(super) symbols: Vec<Symbol>,
    /// Initial contents.
    pub(super) data: Vec<DataSegment>,
}

/// Every tensor starts on a 64-byte boundary unless it is placed right after another.
const ALIGN: u64 = 64;

impl Dram {
    /// Reserves `bytes` for the tensor `name` on a fresh 64-byte boundary.
    pub(super) fn tensor(&mut self, name: &str, bytes: u64) -> Result<u32, CodegenError> {
        self.next = self.next.div_ceil(ALIGN) * ALIGN;
        self.follow(name, bytes)
    }

    /// Reserves `bytes` for `name` directly after the previous tensor (no padding), for
    /// pairs such as weight and bias that one transfer moves together.
    pub(super) fn follow(&mut self, name: &str, bytes: u64) -> Result<u32, CodegenError> {
        let addr = u32::try_from(self.next).map_err(|_| CodegenError::DoesNotFit {
            layer: name.to_string(),
            buffer: "dram".into(),
            need: self.next + bytes,
            have: u64::from(u32::MAX),
        })?;
        self.next += bytes;
        let len = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.symbols.push(Symbol { name: name.to_string(), kind: SymbolKind::Tensor, addr, len });
        Ok(addr)
    }

    /// Names `bytes` at `addr`, a part of a tensor already reserved (a view of a region that
    /// tensors share in turn).
    pub(super) fn alias(&mut self, name: &str, addr: u32, bytes: u64) {
        let len = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.symbols.push(Symbol { name: name.to_string(), kind: SymbolKind::Tensor, addr, len });
    }

    /// Attaches initial contents to the tensor at `addr`.
    pub(super) fn init(&mut self, name: &str, kind: DataKind, addr: u32, bytes: Vec<u8>) {
        self.data.push(DataSegment { name: name.to_string(), kind, addr, bytes });
    }
}
