//! On-chip buffers: typed storage by element width, and conversions between them.
//!
//! Each buffer of the chip description is stored by its element width: 1-bit buffers
//! (spikes, masks, nonzero bitmaps) bit-packed as a [`SpikeBits`], 16-bit buffers as the
//! storage type `S` of the precision mode (`half::f16` on the chip, `f32` in the fp32
//! reference mode), 32-bit buffers as `f32`. Instructions address them through a [`Span`]
//! (a bounds-checked element range).
//!
//! Moving data between buffers, DRAM and the NoC goes through two neutral forms: values
//! (`f32`, exact for every storage type) when both sides have the same element width, and
//! packed little-endian bytes otherwise (bit `i` of a 1-bit range is bit `i % 8` of byte
//! `i / 8`; 16-bit elements are binary16, 32-bit elements binary32). DRAM always holds the
//! byte form, so in the fp32 reference mode a 16-bit value is rounded to binary16 when it
//! is stored to DRAM.

use crate::fp::Storage;
use crate::spikes::SpikeBits;
use half::f16;

/// The contents of one buffer.
#[derive(Debug, Clone)]
pub(crate) enum BufData<S> {
    /// 1-bit elements.
    Bits(SpikeBits),
    /// 16-bit elements, in the storage type.
    Half(Vec<S>),
    /// 32-bit elements.
    Word(Vec<f32>),
}

/// A bounds-checked element range of one buffer slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Index of the buffer in the machine's buffer table.
    pub(crate) slot: usize,
    /// First element.
    pub(crate) start: usize,
    /// Element count.
    pub(crate) len: usize,
}

impl Span {
    /// The element range.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// A range read out of a buffer, to be written into another one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Chunk {
    /// Element values of the given width.
    Vals(Vec<f32>, u32),
    /// Packed bytes holding this many bits.
    Bytes(Vec<u8>, usize),
}

impl Chunk {
    /// Number of bits the chunk carries.
    pub(crate) fn bits(&self) -> usize {
        match self {
            Chunk::Vals(v, w) => v.len() * *w as usize,
            Chunk::Bytes(_, bits) => *bits,
        }
    }

    /// Number of bytes the chunk occupies in DRAM or on a link.
    pub(crate) fn byte_len(&self) -> usize {
        self.bits().div_ceil(8)
    }

    /// The packed byte form.
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Chunk::Bytes(b, _) => b,
            Chunk::Vals(v, 16) => v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
            Chunk::Vals(v, _) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

impl<S: Storage> BufData<S> {
    /// An all-zero buffer of `elems` elements of `elem_bits` bits, if the width is modelled.
    pub(crate) fn zeros(elem_bits: u32, elems: usize) -> Option<BufData<S>> {
        match elem_bits {
            1 => Some(BufData::Bits(SpikeBits::zeros(elems))),
            16 => Some(BufData::Half(vec![S::default(); elems])),
            32 => Some(BufData::Word(vec![0.0; elems])),
            _ => None,
        }
    }

    /// Element count.
    pub(crate) fn len(&self) -> usize {
        match self {
            BufData::Bits(b) => b.len(),
            BufData::Half(v) => v.len(),
            BufData::Word(v) => v.len(),
        }
    }

    /// Element width in bits.
    pub(crate) fn elem_bits(&self) -> u32 {
        match self {
            BufData::Bits(_) => 1,
            BufData::Half(_) => 16,
            BufData::Word(_) => 32,
        }
    }

    /// Element values of a range (spikes read as 0.0 / 1.0).
    pub(crate) fn vals(&self, r: std::ops::Range<usize>) -> Vec<f32> {
        match self {
            BufData::Bits(b) => r.map(|i| if b.get(i) { 1.0 } else { 0.0 }).collect(),
            BufData::Half(v) => v[r].iter().map(|x| x.to_f32()).collect(),
            BufData::Word(v) => v[r].to_vec(),
        }
    }

    /// Writes values from `start`, rounding to the element type (a spike is set where the
    /// value is non-zero).
    pub(crate) fn set_vals(&mut self, start: usize, vals: &[f32]) {
        match self {
            BufData::Bits(b) => vals.iter().enumerate().for_each(|(i, v)| b.set(start + i, *v != 0.0)),
            BufData::Half(d) => {
                d[start..start + vals.len()].iter_mut().zip(vals).for_each(|(o, v)| *o = S::from_f32(*v))
            }
            BufData::Word(d) => d[start..start + vals.len()].copy_from_slice(vals),
        }
    }

    /// Fills a range with one value.
    pub(crate) fn fill(&mut self, r: std::ops::Range<usize>, value: f32) {
        match self {
            BufData::Bits(b) => b.fill(r.start, r.len(), value != 0.0),
            BufData::Half(d) => d[r].fill(S::from_f32(value)),
            BufData::Word(d) => d[r].fill(value),
        }
    }

    /// Reads a range as a chunk: values for multi-bit buffers, bytes for 1-bit ones.
    pub(crate) fn chunk(&self, r: std::ops::Range<usize>) -> Chunk {
        match self {
            BufData::Bits(b) => {
                let words = b.read_bits(r.start, r.len());
                let out = words.iter().flat_map(|w| w.to_le_bytes()).take(r.len().div_ceil(8)).collect();
                Chunk::Bytes(out, r.len())
            }
            _ => Chunk::Vals(self.vals(r), self.elem_bits()),
        }
    }

    /// Copies the element rows `(from, to, len)` of `src` into `dst` (which may be the same
    /// slot of `bufs`, as long as no row overlaps itself), element for element: the fast
    /// path of `pad` and `copy` between buffers of one element width. The rows come from an
    /// iterator, in its order, so that `pad` (one row per image row, tens of thousands of
    /// instructions a step) allocates no list of them.
    pub(crate) fn copy_rows(
        bufs: &mut [BufData<S>],
        (src, dst): (usize, usize),
        rows: impl IntoIterator<Item = (usize, usize, usize)>,
    ) {
        if src == dst {
            let b = &mut bufs[src];
            for (from, to, len) in rows {
                match b {
                    BufData::Bits(bits) => bits.copy_bits_within(from, to, len),
                    BufData::Half(d) => d.copy_within(from..from + len, to),
                    BufData::Word(d) => d.copy_within(from..from + len, to),
                }
            }
            return;
        }
        let (lo, hi) = bufs.split_at_mut(src.max(dst));
        let (s, d) = if src < dst { (&lo[src], &mut hi[0]) } else { (&hi[0], &mut lo[dst]) };
        for (from, to, len) in rows {
            match (s, &mut *d) {
                (BufData::Bits(a), BufData::Bits(b)) => b.copy_bits_from(to, a, from, len),
                (BufData::Half(a), BufData::Half(b)) => b[to..to + len].copy_from_slice(&a[from..from + len]),
                (BufData::Word(a), BufData::Word(b)) => b[to..to + len].copy_from_slice(&a[from..from + len]),
                (a, b) => b.put_chunk(to, a.chunk(from..from + len)),
            }
        }
    }

    /// Writes a chunk from `start`, exactly as many elements as it carries (a 1-bit chunk
    /// whose length is not a multiple of 8 leaves the bits after it alone); the caller has
    /// checked that its bits fit the range.
    pub(crate) fn put_chunk(&mut self, start: usize, chunk: Chunk) {
        match (self, chunk) {
            (data, Chunk::Vals(v, w)) if w == data.elem_bits() => data.set_vals(start, &v),
            (BufData::Bits(b), other) => {
                let bits = other.bits();
                b.write_bytes(start, &other.into_bytes(), bits);
            }
            (data, other) => data.put_bytes(start, &other.into_bytes()),
        }
    }

    /// Writes packed bytes from element `start`, as many whole elements as the bytes hold
    /// (for 1-bit buffers: every bit of the bytes, up to the buffer's end).
    fn put_bytes(&mut self, start: usize, bytes: &[u8]) {
        match self {
            BufData::Bits(b) => b.write_bytes(start, bytes, bytes.len() * 8),
            BufData::Half(d) => {
                for (o, c) in d[start..].iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = S::from_f16(f16::from_le_bytes([c[0], c[1]]));
                }
            }
            BufData::Word(d) => {
                for (o, c) in d[start..].iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
        }
    }

    /// Writes bytes loaded from DRAM into a range of exactly their size.
    pub(crate) fn load_bytes(&mut self, start: usize, bytes: &[u8]) {
        self.put_bytes(start, bytes);
    }

    /// The packed bytes of a range, in a new vector.
    #[cfg(test)]
    pub(crate) fn bytes(&self, r: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.bytes_into(r, &mut out);
        out.truncate(n);
        out
    }

    /// Writes the packed bytes of a range, the bytes that [`Chunk::into_bytes`] makes of
    /// [`chunk`](Self::chunk), over the start of `out` (grown if it is shorter) and returns
    /// how many there are, without intermediate vectors: a DMA store reuses one byte vector
    /// for all its instructions.
    pub(crate) fn bytes_into(&self, r: std::ops::Range<usize>, out: &mut Vec<u8>) -> usize {
        match self {
            BufData::Bits(b) => {
                let n = r.len().div_ceil(8);
                b.copy_to_bytes(r.start, r.len(), prefix(out, n));
                n
            }
            BufData::Half(v) => {
                let n = 2 * r.len();
                half_bytes(&v[r], prefix(out, n))
            }
            BufData::Word(v) => {
                let dst = prefix(out, 4 * r.len());
                for (o, x) in dst.chunks_exact_mut(4).zip(&v[r]) {
                    o.copy_from_slice(&x.to_le_bytes());
                }
                dst.len()
            }
        }
    }

    /// The 1-bit contents, if this is a 1-bit buffer.
    pub(crate) fn as_bits(&self) -> Option<&SpikeBits> {
        if let BufData::Bits(b) = self { Some(b) } else { None }
    }

    /// The 1-bit contents, mutably.
    pub(crate) fn as_bits_mut(&mut self) -> Option<&mut SpikeBits> {
        if let BufData::Bits(b) = self { Some(b) } else { None }
    }

    /// The 16-bit contents, if this is a 16-bit buffer.
    pub(crate) fn as_half(&self) -> Option<&[S]> {
        if let BufData::Half(v) = self { Some(v) } else { None }
    }

    /// The 16-bit contents, mutably.
    pub(crate) fn as_half_mut(&mut self) -> Option<&mut Vec<S>> {
        if let BufData::Half(v) = self { Some(v) } else { None }
    }

    /// The 32-bit contents.
    pub(crate) fn as_word(&self) -> Option<&[f32]> {
        if let BufData::Word(v) = self { Some(v) } else { None }
    }

    /// The 32-bit contents, mutably.
    pub(crate) fn as_word_mut(&mut self) -> Option<&mut Vec<f32>> {
        if let BufData::Word(v) = self { Some(v) } else { None }
    }
}

/// The first `n` bytes of `out`, for a caller that overwrites them all. The vector only
/// ever grows, zeroing just the new bytes: a reused transfer vector cleared and refilled
/// for every transfer costs a memset of every byte moved.
pub(crate) fn prefix(out: &mut Vec<u8>, n: usize) -> &mut [u8] {
    if out.len() < n {
        out.resize(n, 0);
    }
    &mut out[..n]
}

/// Writes the binary16 bytes of `v` over `out` (twice as long) and returns their count:
/// each value widened to f32 and rounded to
/// binary16, as `Chunk::into_bytes` converts the values of a chunk, but a block at a time
/// through stack buffers (both conversions in hardware where the CPU can; the same
/// roundings, and the same quieted NaNs, as the element-wise conversions).
fn half_bytes<S: Storage>(v: &[S], out: &mut [u8]) -> usize {
    const BLOCK: usize = 256;
    let (mut wide, mut narrow) = ([0.0f32; BLOCK], [f16::ZERO; BLOCK]);
    for (c, o) in v.chunks(BLOCK).zip(out.chunks_mut(2 * BLOCK)) {
        let (w, h) = (&mut wide[..c.len()], &mut narrow[..c.len()]);
        S::to_f32_slice(c, w);
        <f16 as Storage>::from_f32_slice(w, h);
        for (pair, x) in o.chunks_exact_mut(2).zip(h.iter()) {
            pair.copy_from_slice(&x.to_le_bytes());
        }
    }
    out.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reused-vector byte form against the chunk conversion it replaces, for every
    /// width and storage type, on values that include NaNs (signalling ones among them,
    /// which both quiet), infinities, subnormals and values that round.
    #[test]
    fn bytes_into_matches_the_chunk_conversion() {
        let specials = [0.0f32, -0.0, 1.0 / 3.0, 65519.0, 1e-7, -6e-8, f32::INFINITY, f32::NAN, -f32::NAN];
        let mut vals: Vec<f32> = (0..700).map(|i| (i as f32 * 0.37).sin() * 100.0).collect();
        vals.extend(specials);
        vals.push(f32::from_bits(0x7F80_0001));
        let h16: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).chain([f16::from_bits(0x7C01)]).collect();
        let mut out = vec![1, 2, 3];
        for (from, len) in [(0usize, 710usize), (3, 300), (256, 256), (5, 0), (700, 10)] {
            let half: BufData<f16> = BufData::Half(h16.clone());
            let single: BufData<f32> = BufData::Half(vals.clone());
            let word: BufData<f16> = BufData::Word(vals.clone());
            let bits: BufData<f16> = BufData::Bits(crate::spikes::SpikeBits::from_nonzero(&vals));
            let r = from..from + len;
            let n = half.bytes_into(r.clone(), &mut out);
            assert_eq!(out[..n], half.chunk(r.clone()).into_bytes(), "f16 {from}+{len}");
            let n = single.bytes_into(r.clone(), &mut out);
            assert_eq!(out[..n], single.chunk(r.clone()).into_bytes(), "f32 {from}+{len}");
            let n = word.bytes_into(r.clone(), &mut out);
            assert_eq!(out[..n], word.chunk(r.clone()).into_bytes(), "word {from}+{len}");
            let n = bits.bytes_into(r.clone(), &mut out);
            assert_eq!(out[..n], bits.chunk(r).into_bytes(), "bits {from}+{len}");
        }
    }

    #[test]
    fn bits_round_trip_through_unaligned_bytes() {
        let mut b: BufData<f16> = BufData::zeros(1, 40).unwrap_or(BufData::Word(Vec::new()));
        b.load_bytes(3, &[0b1010_0001, 0b0000_0010]);
        assert_eq!(b.bytes(3..19), vec![0b1010_0001, 0b0000_0010]);
        assert_eq!(b.vals(2..5), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn half_bytes_are_binary16() {
        let mut h: BufData<f16> = BufData::zeros(16, 4).unwrap_or(BufData::Word(Vec::new()));
        h.set_vals(1, &[1.5, -2.0]);
        assert_eq!(h.bytes(1..3), [f16::from_f32(1.5).to_le_bytes(), f16::from_f32(-2.0).to_le_bytes()].concat());
        let c = h.chunk(1..3);
        let mut w: BufData<f16> = BufData::zeros(32, 1).unwrap_or(BufData::Word(Vec::new()));
        w.put_chunk(0, c);
        assert_eq!(w.bytes(0..1), h.bytes(1..3));
    }
}
