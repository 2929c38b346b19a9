//! Off-chip DRAM: a sparse byte store, and the rule that names what each access carries.
//!
//! DRAM is byte-addressed with the chip's capacity (up to 4 GiB), so it is stored in 64 KiB
//! pages allocated on first write; unwritten bytes read as zero. That keeps a 1 GiB DRAM
//! cheap while every address stays valid.
//!
//! # Traffic kinds
//!
//! [`DramKind`] says what an access carries. The rule: the tensor symbol containing the
//! address (else the data segment containing it) names it; the name is split into words at
//! every non-alphanumeric character, and the first rule below that a word starts with wins,
//! in this order: `master`, `opt`, `adam`, `moment`, `state` → optimizer state; `grad` →
//! gradients; `err`, `delta` → errors; `mask` → masks; `mem`, `membrane`, `v` → membranes;
//! `input`, `target`, `label`, `x` → inputs; `spike`, `spk`, `s` → spikes; `w`, `weight`,
//! `b`, `bias` → weights. A named range matching nothing is [`DramKind::Other`], and so is
//! an address outside every named range. (`fc1.w_master` is optimizer state, `input_errors`
//! errors, `input_spikes` inputs.)

use crate::spikes::SpikeBits;
use isa::{Program, SymbolKind};
use serde::Serialize;
use std::collections::BTreeMap;

const PAGE_BITS: u32 = 16;
const PAGE: usize = 1 << PAGE_BITS;
/// The block [`Dram::read_strided_short`] copies per row: one fixed-size move, where a
/// row-sized copy is a loop or a call.
const WIDE_COPY: usize = 16;

/// The DRAM contents.
///
/// With FP32 storage (`numerics.fp32_storage`) the 16-bit buffers hold FP32 values, but the
/// program's DRAM layout stays FP16. So that a value survives a store and a reload, and so
/// that parity tools can read it, a store of FP32-held 16-bit values also records each
/// value at its 2-byte address in `wide`; a load into a 16-bit buffer takes the recorded
/// value, and any other write over the address forgets it.
#[derive(Debug, Clone)]
pub(crate) struct Dram {
    pages: Vec<Option<Box<[u8]>>>,
    capacity: u64,
    wide: BTreeMap<u64, f32>,
}

impl Dram {
    /// An all-zero DRAM of `capacity` bytes (capped at 4 GiB, the 32-bit address space).
    pub(crate) fn new(capacity: u64) -> Dram {
        let capacity = capacity.min(1 << 32);
        Dram { pages: vec![None; capacity.div_ceil(PAGE as u64) as usize], capacity, wide: BTreeMap::new() }
    }

    /// Whether `len` bytes at `addr` lie inside DRAM.
    pub(crate) fn contains(&self, addr: i64, len: u64) -> bool {
        addr >= 0 && (addr as u64).saturating_add(len) <= self.capacity
    }

    /// Makes this DRAM hold what `other` holds, reusing this one's pages: a page copy
    /// instead of a fresh allocation, which the host would have to zero first.
    pub(crate) fn copy_from(&mut self, other: &Dram) {
        self.pages.resize(other.pages.len(), None);
        for (mine, theirs) in self.pages.iter_mut().zip(&other.pages) {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => m.copy_from_slice(t),
                (_, t) => *mine = t.clone(),
            }
        }
        self.capacity = other.capacity;
        self.wide.clone_from(&other.wide);
    }

    /// Copies bytes out; the caller has checked the range.
    pub(crate) fn read(&self, addr: u64, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let a = addr as usize + done;
            let (page, off) = (a >> PAGE_BITS, a & (PAGE - 1));
            let n = (PAGE - off).min(out.len() - done);
            match self.pages.get(page).and_then(Option::as_ref) {
                Some(p) => out[done..done + n].copy_from_slice(&p[off..off + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Copies one row out, as [`Dram::read`] does, with an inlined byte loop for a short row
    /// inside one page (strided loads of narrow weight columns read millions of them).
    #[inline]
    pub(crate) fn read_row(&self, addr: u64, out: &mut [u8]) {
        let (page, off) = ((addr >> PAGE_BITS) as usize, addr as usize & (PAGE - 1));
        if out.len() > 16 || off + out.len() > PAGE {
            return self.read(addr, out);
        }
        match self.pages.get(page).and_then(Option::as_ref) {
            Some(p) => out.iter_mut().zip(&p[off..]).for_each(|(o, b)| *o = *b),
            None => out.iter_mut().for_each(|o| *o = 0),
        }
    }

    /// Copies rows of `row` bytes, `stride` bytes apart from `addr`, into consecutive
    /// `row`-byte pieces of `out`; the caller has checked the whole span. The page of the
    /// last row is kept, so a strided load of many short rows (a chunk of input spikes for
    /// every sample and timestep) looks a page up only when it changes.
    pub(crate) fn read_strided(&self, addr: u64, (row, stride): (usize, u64), out: &mut [u8]) {
        if row == 0 {
            return;
        }
        let mut page: (usize, Option<&[u8]>) = (usize::MAX, None);
        for (r, chunk) in out.chunks_exact_mut(row).enumerate() {
            let a = addr + r as u64 * stride;
            let (index, off) = ((a >> PAGE_BITS) as usize, a as usize & (PAGE - 1));
            if off + row > PAGE {
                self.read(a, chunk);
                continue;
            }
            if page.0 != index {
                page = (index, self.pages.get(index).and_then(Option::as_deref));
            }
            // Short rows are copied byte by byte inline: a call to `memcpy` per row would
            // cost more than the copy.
            match page.1 {
                Some(p) if row <= 16 => chunk.iter_mut().zip(&p[off..off + row]).for_each(|(o, b)| *o = *b),
                Some(p) => copy_row(chunk, &p[off..off + row]),
                None => chunk.fill(0),
            }
        }
    }

    /// [`read_strided`](Self::read_strided) for rows of at most [`WIDE_COPY`] bytes: each
    /// row is copied as a whole `WIDE_COPY`-byte block where the block lies inside its page
    /// and inside `out`, which spills into the following rows of `out`; they are copied
    /// after it, in order, and overwrite the spill. The last rows, and rows at the end of a
    /// page, are copied exactly.
    pub(crate) fn read_strided_short(&self, addr: u64, (row, stride): (usize, u64), out: &mut [u8]) {
        if row == 0 || row > WIDE_COPY {
            return self.read_strided(addr, (row, stride), out);
        }
        let rows = out.len() / row;
        let mut page: (usize, Option<&[u8]>) = (usize::MAX, None);
        for r in 0..rows {
            let a = addr + r as u64 * stride;
            let (index, off) = ((a >> PAGE_BITS) as usize, a as usize & (PAGE - 1));
            let at = r * row;
            if off + WIDE_COPY > PAGE || at + WIDE_COPY > out.len() {
                self.read(a, &mut out[at..at + row]);
                continue;
            }
            if page.0 != index {
                page = (index, self.pages.get(index).and_then(Option::as_deref));
            }
            let mut block = [0u8; WIDE_COPY];
            if let Some(p) = page.1 {
                block.copy_from_slice(&p[off..off + WIDE_COPY]);
            }
            out[at..at + WIDE_COPY].copy_from_slice(&block);
        }
    }

    /// Reads `rows` rows of at most 8 bytes, `stride` bytes apart from `addr`, straight into
    /// bits `at ..` of `dst`, row `r` at bit `at + 8·row·r`: the bits that reading the rows
    /// into bytes and writing those with [`SpikeBits::write_bytes`] leave. Each row is one
    /// 8-byte read where that stays inside its page, masked to the row. The caller has
    /// checked the DRAM span and that `dst` holds the bits.
    pub(crate) fn read_strided_bits(
        &self,
        addr: u64,
        (row, stride): (usize, u64),
        rows: usize,
        (dst, at): (&mut SpikeBits, usize),
    ) {
        let bits = 8 * row.min(8);
        if let Some(page) = self.one_page(addr, (rows as u64).saturating_sub(1) * stride + 8) {
            // The common case: every row's 8-byte read inside one page, looked up once, and
            // the rows packed into whole words as they come.
            let (off, stride) = (addr as usize & (PAGE - 1), stride as usize);
            // The page is matched once, not per row: an unwritten one reads as zeros.
            match page {
                Some(p) => dst.write_packed(at, bits, (0..rows).map(move |r| word_at(p, off + r * stride))),
                None => dst.write_packed(at, bits, (0..rows).map(|_| 0)),
            }
            return;
        }
        let mut page: (usize, Option<&[u8]>) = (usize::MAX, None);
        for r in 0..rows {
            let a = addr + r as u64 * stride;
            let (index, off) = ((a >> PAGE_BITS) as usize, a as usize & (PAGE - 1));
            let mut b = [0u8; 8];
            if off + 8 <= PAGE {
                if page.0 != index {
                    page = (index, self.pages.get(index).and_then(Option::as_deref));
                }
                if let Some(p) = page.1 {
                    b.copy_from_slice(&p[off..off + 8]);
                }
            } else {
                self.read(a, &mut b[..row.min(8)]);
            }
            dst.write_word(at + r * bits, bits, u64::from_le_bytes(b));
        }
    }

    /// The page holding all of `addr .. addr + len` (`None` inside it when the page was
    /// never written), if one page does; `None` when the range crosses a page end.
    fn one_page(&self, addr: u64, len: u64) -> Option<Option<&[u8]>> {
        let index = addr >> PAGE_BITS;
        let same = len > 0 && addr.checked_add(len - 1).is_some_and(|end| end >> PAGE_BITS == index);
        same.then(|| self.pages.get(index as usize).and_then(Option::as_deref))
    }

    /// Writes consecutive `row`-byte pieces of `data` to rows `stride` bytes apart from
    /// `addr`, in order, as a [`Dram::write`] of each row would; the caller has checked the
    /// whole span. Without recorded FP32 values to forget, a row inside one page is written
    /// in place: a strided store of many short rows (two bytes of spikes per sample) would
    /// otherwise pay the general write's set-up for every row.
    pub(crate) fn write_strided(&mut self, addr: u64, (row, stride): (usize, u64), data: &[u8]) {
        if row == 0 {
            return;
        }
        for (r, chunk) in data.chunks_exact(row).enumerate() {
            let a = addr + r as u64 * stride;
            let (index, off) = ((a >> PAGE_BITS) as usize, a as usize & (PAGE - 1));
            if off + row > PAGE || !self.wide.is_empty() {
                self.write(a, chunk);
                continue;
            }
            if let Some(slot) = self.pages.get_mut(index) {
                let p = slot.get_or_insert_with(|| vec![0u8; PAGE].into_boxed_slice());
                let dst = &mut p[off..off + row];
                // Short rows are copied byte by byte inline, as in `read_strided`.
                if row <= 16 {
                    dst.iter_mut().zip(chunk).for_each(|(o, b)| *o = *b);
                } else {
                    copy_row(dst, chunk);
                }
            }
        }
    }

    /// Writes the FP16 bytes of FP32-held values and records the values (see [`Dram`]).
    pub(crate) fn write_wide(&mut self, addr: u64, data: &[u8], values: &[f32]) {
        self.write(addr, data);
        for (i, &v) in values.iter().enumerate() {
            self.wide.insert(addr + 2 * i as u64, v);
        }
    }

    /// The FP32 values recorded for `count` 2-byte elements from `addr`, where there are any.
    pub(crate) fn wide(&self, addr: u64, count: usize) -> Vec<Option<f32>> {
        let mut out = vec![None; count];
        // One walk over the recorded values in the range, not a look-up per element.
        for (&a, &v) in self.wide.range(addr..addr + 2 * count as u64) {
            let off = a - addr;
            if off % 2 == 0 {
                out[(off / 2) as usize] = Some(v);
            }
        }
        out
    }

    /// Copies bytes in; the caller has checked the range.
    pub(crate) fn write(&mut self, addr: u64, data: &[u8]) {
        if !self.wide.is_empty() {
            // Bytes written over a recorded value replace it; an element starting one byte
            // before the range is overwritten too.
            let stale: Vec<u64> =
                self.wide.range(addr.saturating_sub(1)..addr + data.len() as u64).map(|(k, _)| *k).collect();
            stale.iter().for_each(|k| {
                self.wide.remove(k);
            });
        }
        let mut done = 0;
        while done < data.len() {
            let a = addr as usize + done;
            let (page, off) = (a >> PAGE_BITS, a & (PAGE - 1));
            let n = (PAGE - off).min(data.len() - done);
            if let Some(slot) = self.pages.get_mut(page) {
                let p = slot.get_or_insert_with(|| vec![0u8; PAGE].into_boxed_slice());
                p[off..off + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
    }
}

/// What a DRAM access carries (see the module doc for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DramKind {
    /// Compute weights and biases (FP16).
    Weights,
    /// Network inputs and targets.
    Inputs,
    /// Spikes of hidden layers.
    Spikes,
    /// Membrane potentials.
    Membranes,
    /// Surrogate masks.
    Masks,
    /// Errors (dL/dS, dL/dH).
    Errors,
    /// Weight gradients.
    Gradients,
    /// FP32 master weights and optimizer state.
    OptimizerState,
    /// Anything else, or an address no symbol names.
    Other,
}

impl DramKind {
    /// Every kind, in report order.
    pub const ALL: [DramKind; 9] = [
        DramKind::Weights,
        DramKind::Inputs,
        DramKind::Spikes,
        DramKind::Membranes,
        DramKind::Masks,
        DramKind::Errors,
        DramKind::Gradients,
        DramKind::OptimizerState,
        DramKind::Other,
    ];

    /// The kind a tensor name implies. The code generator names tensors `<layer>.<kind>`,
    /// so the part after the last dot decides first: a layer named `mask1` or `sum` does
    /// not make its weights masks or spikes. A name without a dot, or whose last part no
    /// rule knows, is taken whole.
    pub fn of_name(name: &str) -> DramKind {
        let last = name.rsplit_once('.').map(|(_, kind)| kind);
        last.and_then(Self::of_words).or_else(|| Self::of_words(name)).unwrap_or(DramKind::Other)
    }

    /// The kind the first rule that some word of `text` matches gives. The last rule takes
    /// the sums and poolings of spikes that pass between layers (a residual join's `.sum`,
    /// a pooling's `.pooled`) as spikes, as `snnc map` counts them.
    fn of_words(text: &str) -> Option<DramKind> {
        const RULES: [(&[&str], DramKind); 9] = [
            (&["master", "opt", "adam", "moment", "state"], DramKind::OptimizerState),
            (&["grad"], DramKind::Gradients),
            (&["err", "delta"], DramKind::Errors),
            (&["mask"], DramKind::Masks),
            (&["mem", "membrane", "v"], DramKind::Membranes),
            (&["input", "target", "label", "x"], DramKind::Inputs),
            (&["spike", "spk", "s"], DramKind::Spikes),
            (&["w", "weight", "b", "bias"], DramKind::Weights),
            (&["sum", "pooled"], DramKind::Spikes),
        ];
        let words: Vec<String> =
            text.split(|c: char| !c.is_ascii_alphanumeric()).map(str::to_ascii_lowercase).collect();
        let hit = |pre: &str| words.iter().any(|w| if pre.len() <= 1 { w == pre } else { w.starts_with(pre) });
        RULES.iter().find(|(pres, _)| pres.iter().any(|p| hit(p))).map(|r| r.1)
    }
}

/// Named DRAM ranges, sorted by start, for classifying accesses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Classifier {
    ranges: Vec<(u64, u64, DramKind)>,
}

impl Classifier {
    /// Tensor symbols first, then data segments (a symbol wins where both name an address).
    pub(crate) fn new(p: &Program) -> Classifier {
        let syms = p.symbols.iter().filter(|s| s.kind == SymbolKind::Tensor);
        let mut ranges: Vec<(u64, u64, DramKind)> = syms
            .map(|s| (u64::from(s.addr), u64::from(s.addr) + u64::from(s.len), DramKind::of_name(&s.name)))
            .collect();
        for d in &p.data {
            let (a, b) = (u64::from(d.addr), u64::from(d.addr) + d.bytes.len() as u64);
            if !ranges.iter().any(|r| r.0 < b && a < r.1) {
                ranges.push((a, b, DramKind::of_name(&d.name)));
            }
        }
        ranges.sort_by_key(|r| (r.0, r.1));
        Classifier { ranges }
    }

    /// The kind of the byte at `addr`.
    pub(crate) fn kind(&self, addr: u64) -> DramKind {
        self.kind_until(addr).0
    }

    /// The kind of the byte at `addr`, and the end of the address range from `addr` on
    /// where every byte has that kind. That range ends where the range naming `addr` ends
    /// or where the next range starts, whichever comes first: ranges that start before
    /// `addr` and do not contain it cannot contain a later address of the range either.
    pub(crate) fn kind_until(&self, addr: u64) -> (DramKind, u64) {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        let next = self.ranges.get(i).map_or(u64::MAX, |r| r.0);
        match self.ranges[..i].iter().rev().find(|r| addr < r.1) {
            Some(r) => (r.2, r.1.min(next)),
            None => (DramKind::Other, next),
        }
    }
}

/// The eight bytes of `page` at `o` as a little-endian word (0 past the page's end, which
/// the caller has ruled out).
#[inline(always)]
fn word_at(page: &[u8], o: usize) -> u64 {
    page.get(o..o + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_le_bytes)
}

/// Copies `src` over `dst` (the same length): a row of 17 to 64 bytes (a DMA row of 16 to
/// 32 FP16 values, the common load and store of the staged programs) as two fixed-size
/// blocks, its first and its last, which overlap unless the row is exactly twice a block;
/// each is a vector move inline, where a row-sized copy is a call to `memcpy` per row.
#[inline(always)]
fn copy_row(dst: &mut [u8], src: &[u8]) {
    #[inline(always)]
    fn ends<const B: usize>(dst: &mut [u8], src: &[u8]) {
        let n = dst.len().min(src.len());
        if n < B {
            return dst[..n].copy_from_slice(&src[..n]);
        }
        let mut block = [0u8; B];
        block.copy_from_slice(&src[..B]);
        dst[..B].copy_from_slice(&block);
        block.copy_from_slice(&src[n - B..n]);
        dst[n - B..n].copy_from_slice(&block);
    }
    match dst.len() {
        17..=32 => ends::<16>(dst, src),
        33..=64 => ends::<32>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Rows of a DMA transfer counted by traffic kind in runs of consecutive rows of one kind
/// (the same totals as a count per row, with a look-up only where a row leaves the address
/// range whose kind is known).
#[derive(Debug)]
pub(crate) struct KindRuns {
    /// The kind of the last row looked up, valid for addresses `from..until`.
    from: u64,
    until: u64,
    kind: DramKind,
    /// The run being counted: its kind and bytes so far.
    pub(crate) run: Option<(DramKind, u64)>,
}

impl KindRuns {
    /// No rows yet.
    pub(crate) fn new() -> KindRuns {
        KindRuns { from: 0, until: 0, kind: DramKind::Other, run: None }
    }

    /// Adds a row of `bytes` at `addr`; returns the run it ends, when its kind differs from
    /// the run's.
    pub(crate) fn add(&mut self, classify: &Classifier, addr: u64, bytes: u64) -> Option<(DramKind, u64)> {
        if !(self.from..self.until).contains(&addr) {
            (self.kind, self.until) = classify.kind_until(addr);
            self.from = addr;
        }
        match &mut self.run {
            Some((k, n)) if *k == self.kind => {
                *n += bytes;
                None
            }
            _ => self.run.replace((self.kind, bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strided read gives what reading each row on its own gives: short and long rows,
    /// rows across a page boundary, and rows in pages never written (zeros).
    #[test]
    fn strided_reads_match_row_by_row_reads() {
        let mut d = Dram::new(4 * PAGE as u64);
        let data: Vec<u8> = (0..PAGE + 500).map(|i| (i * 7 % 251) as u8 + 1).collect();
        d.write(PAGE as u64 - 300, &data);
        for (addr, row, stride, rows) in [
            (PAGE as u64 - 310, 7, 98, 12),
            (PAGE as u64 - 40, 32, 24, 5),
            (100, 3, 3, 9),
            (2 * PAGE as u64 + 10, 5, 9, 4),
            (PAGE as u64 - 200, 7, 9, 40),
            (PAGE as u64 - 180, 16, 16, 20),
            (2 * PAGE as u64 - 20, 2, 1, 30),
            (3 * PAGE as u64 - 5, 1, 4, 6),
        ] {
            let mut strided = vec![0xAA; row * rows];
            d.read_strided(addr, (row, stride), &mut strided);
            let mut short = vec![0xCC; row * rows];
            d.read_strided_short(addr, (row, stride), &mut short);
            assert_eq!(short, strided, "short rows of {row} bytes every {stride} from {addr}");
            let mut one_by_one = vec![0xBB; row * rows];
            for (r, chunk) in one_by_one.chunks_mut(row).enumerate() {
                d.read(addr + r as u64 * stride, chunk);
            }
            assert_eq!(strided, one_by_one, "rows of {row} bytes every {stride} from {addr}");
        }
    }

    /// Rows read straight into bits hold what reading them as bytes and writing the bytes
    /// leaves, at bit offsets that straddle words, across page ends and in unwritten pages,
    /// and the bits around them keep theirs.
    #[test]
    fn strided_bit_reads_match_byte_reads() {
        let mut d = Dram::new(4 * PAGE as u64);
        let data: Vec<u8> = (0..PAGE + 500).map(|i| (i * 7 % 251) as u8 + 1).collect();
        d.write(PAGE as u64 - 300, &data);
        for (addr, row, stride, rows, at) in [
            (PAGE as u64 - 310, 7, 98, 12, 5),
            (PAGE as u64 - 40, 8, 3, 15, 64),
            (2 * PAGE as u64 - 20, 2, 1, 30, 0),
            (2 * PAGE as u64 + 300, 3, 5, 7, 61),
            (100, 1, 0, 9, 1),
            // Inside one written page: rows packed word by word.
            (PAGE as u64 + 100, 7, 98, 256, 13),
            (PAGE as u64 + 7, 8, 8, 100, 0),
            (PAGE as u64 - 290, 2, 64, 4, 70),
            (PAGE as u64 + 1000, 5, 5, 1, 63),
            (PAGE as u64 + 1000, 3, 7, 0, 9),
            (2 * PAGE as u64 - 8, 8, 0, 3, 128),
        ] {
            let mut bytes = vec![0u8; row * rows];
            d.read_strided(addr, (row, stride), &mut bytes);
            let mut want = SpikeBits::from_fn(15_000, |i| i % 3 == 0);
            want.write_bytes(at, &bytes, bytes.len() * 8);
            let mut got = SpikeBits::from_fn(15_000, |i| i % 3 == 0);
            d.read_strided_bits(addr, (row, stride), rows, (&mut got, at));
            assert_eq!(got, want, "rows of {row} bytes every {stride} from {addr} to bit {at}");
        }
    }

    /// A strided write leaves what writing each row on its own leaves: short and long
    /// rows, rows across a page boundary, overlapping rows (the later wins), fresh pages,
    /// and recorded FP32 values that a row overwrites.
    #[test]
    fn strided_writes_match_row_by_row_writes() {
        for (addr, row, stride, rows) in [
            (PAGE as u64 - 310, 7, 98, 12),
            (PAGE as u64 - 40, 32, 24, 5),
            (100, 3, 2, 9),
            (2 * PAGE as u64 + 10, 2, 64, 40),
            (3 * PAGE as u64 - 1, 1, 0, 3),
        ] {
            let data: Vec<u8> = (0..row * rows).map(|i| (i * 13 % 251) as u8 + 1).collect();
            for wide in [false, true] {
                let mut strided = Dram::new(4 * PAGE as u64);
                strided.write(PAGE as u64 - 100, &[5; 300]);
                if wide {
                    strided.write_wide(104, &[1, 2, 3, 4], &[0.5, 0.25]);
                }
                let mut one_by_one = strided.clone();
                strided.write_strided(addr, (row, stride), &data);
                for (r, chunk) in data.chunks(row).enumerate() {
                    one_by_one.write(addr + r as u64 * stride, chunk);
                }
                let case = format!("rows of {row} bytes every {stride} from {addr}, wide {wide}");
                assert_eq!(strided.wide, one_by_one.wide, "{case}");
                let (mut a, mut b) = (vec![0u8; 4 * PAGE], vec![1u8; 4 * PAGE]);
                strided.read(0, &mut a);
                one_by_one.read(0, &mut b);
                assert!(a == b, "{case}");
                let written = |d: &Dram| d.pages.iter().map(Option::is_some).collect::<Vec<_>>();
                assert_eq!(written(&strided), written(&one_by_one), "{case}");
            }
        }
    }

    /// Strided reads and writes of random rows of every length up to 80 bytes (each side of
    /// the two-block copies of 17 to 64 bytes), random strides (overlapping rows too) and
    /// addresses near page ends, against a [`Dram::read`] or [`Dram::write`] of each row.
    #[test]
    fn random_strided_rows_match_row_by_row() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let mut d = Dram::new(4 * PAGE as u64);
        let data: Vec<u8> = (0..2 * PAGE).map(|i| (i * 7 % 251) as u8 + 1).collect();
        d.write(PAGE as u64 / 2, &data);
        for case in 0..400 {
            let row = 1 + next(80) as usize;
            let (stride, rows) = (next(3 * row as u64 + 8), 1 + next(40) as usize);
            let near = [PAGE as u64 / 2, PAGE as u64, 2 * PAGE as u64, 3 * PAGE as u64][case % 4];
            let addr = near - next(600).min(near);
            let mut strided = vec![0xAA; row * rows];
            d.read_strided(addr, (row, stride), &mut strided);
            let mut want = vec![0xBB; row * rows];
            for (r, chunk) in want.chunks_mut(row).enumerate() {
                d.read(addr + r as u64 * stride, chunk);
            }
            assert_eq!(strided, want, "rows of {row} bytes every {stride} from {addr}");
            let src: Vec<u8> = (0..row * rows).map(|_| next(256) as u8).collect();
            let (mut a, mut b) = (d.clone(), d.clone());
            a.write_strided(addr, (row, stride), &src);
            for (r, chunk) in src.chunks(row).enumerate() {
                b.write(addr + r as u64 * stride, chunk);
            }
            let (mut x, mut y) = (vec![0u8; 4 * PAGE], vec![1u8; 4 * PAGE]);
            a.read(0, &mut x);
            b.read(0, &mut y);
            assert!(x == y, "written rows of {row} bytes every {stride} to {addr}");
        }
    }

    /// FP32-held values survive a store as FP16 bytes; any other write over them wins.
    #[test]
    fn wide_values_are_recorded_until_overwritten() {
        let mut d = Dram::new(1 << 16);
        let third = 1.0f32 / 3.0;
        let bytes: Vec<u8> = [third, 2.0].iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        d.write_wide(16, &bytes, &[third, 2.0]);
        assert_eq!(d.wide(16, 2), [Some(third), Some(2.0)]);
        d.write(19, &[0]);
        assert_eq!(d.wide(16, 2), [Some(third), None]);
        let mut back = [0u8; 4];
        d.read(16, &mut back);
        assert_eq!(&back[..2], &bytes[..2]);
    }

    #[test]
    fn names_classify_by_rule_order() {
        let cases = [
            ("fc1.w", DramKind::Weights),
            ("fc1.w_master", DramKind::OptimizerState),
            ("input_errors", DramKind::Errors),
            ("input_spikes", DramKind::Inputs),
            ("targets", DramKind::Inputs),
            ("L2.spk", DramKind::Spikes),
            ("fc2.mem", DramKind::Membranes),
            ("wgrad", DramKind::Other),
            ("fc1.grad", DramKind::Gradients),
            ("b1_out.sum", DramKind::Spikes),
            ("pool2.pooled", DramKind::Spikes),
            ("sum1.weight", DramKind::Weights),
            ("mask1.weight", DramKind::Weights),
            ("errors2.spikes", DramKind::Spikes),
            ("grad_in.opt_state", DramKind::OptimizerState),
            ("input", DramKind::Inputs),
            ("conv.h", DramKind::Other),
        ];
        for (name, kind) in cases {
            assert_eq!(DramKind::of_name(name), kind, "{name}");
        }
    }

    #[test]
    fn sparse_pages_read_zero_until_written() {
        let mut d = Dram::new(1 << 30);
        let mut buf = [7u8; 4];
        d.read(PAGE as u64 - 2, &mut buf);
        assert_eq!(buf, [0; 4]);
        d.write(PAGE as u64 - 2, &[1, 2, 3, 4]);
        d.read(PAGE as u64 - 2, &mut buf);
        assert_eq!(buf, [1, 2, 3, 4]);
        assert!(d.contains(0, 1 << 30) && !d.contains(-1, 1) && !d.contains(1, 1 << 30));
    }

    /// Runs of rows by kind give the totals of a count per row, across ranges, a gap no
    /// symbol names, and a return to an earlier kind.
    #[test]
    fn kind_runs_add_up_to_a_count_per_row() {
        let classify = Classifier {
            ranges: vec![(0, 100, DramKind::Weights), (100, 200, DramKind::Spikes), (300, 400, DramKind::Weights)],
        };
        let rows = [0u64, 60, 90, 120, 180, 250, 310, 390];
        let mut runs = KindRuns::new();
        let mut ended = Vec::new();
        for &a in &rows {
            ended.extend(runs.add(&classify, a, 10));
        }
        ended.extend(runs.run);
        let want =
            vec![(DramKind::Weights, 30), (DramKind::Spikes, 20), (DramKind::Other, 10), (DramKind::Weights, 20)];
        assert_eq!(ended, want);
        let per_row: u64 = rows.iter().map(|_| 10).sum();
        assert_eq!(ended.iter().map(|r| r.1).sum::<u64>(), per_row);
        assert!(rows.iter().all(|&a| ended.iter().any(|r| r.0 == classify.kind(a))));
    }
}
