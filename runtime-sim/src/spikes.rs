//! Bit-packed spike and mask tensors.
//!
//! Spikes and surrogate masks are one bit each on the chip. A [`SpikeBits`] holds a whole
//! tensor (for example `[T,B,N]` in row-major order) as `u64` words, bit `i` of the tensor in
//! bit `i % 64` of word `i / 64`. Kernels read a window of it through a [`SpikeSlice`], whose
//! [`SpikeSlice::ones`] iterator visits only the set bits: that is how the accumulate engines
//! skip zero spikes without looking at them one by one.

/// A bit-packed tensor of spikes (or mask bits), row-major.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpikeBits {
    len: usize,
    words: Vec<u64>,
}

impl SpikeBits {
    /// An all-zero tensor of `len` bits.
    pub fn zeros(len: usize) -> Self {
        SpikeBits { len, words: vec![0; len.div_ceil(64)] }
    }

    /// Makes this an all-zero tensor of `len` bits, reusing its storage.
    pub fn clear_to(&mut self, len: usize) {
        self.words.clear();
        self.words.resize(len.div_ceil(64), 0);
        self.len = len;
    }

    /// Packs `len` bits, bit `i` being `bit(i)`, a word at a time.
    pub fn from_fn(len: usize, bit: impl FnMut(usize) -> bool) -> Self {
        let mut b = SpikeBits::default();
        b.refill(len, bit);
        b
    }

    /// Makes this a tensor of `len` bits, bit `i` being `bit(i)`, as
    /// [`from_fn`](Self::from_fn) packs them, reusing its storage.
    pub fn refill(&mut self, len: usize, mut bit: impl FnMut(usize) -> bool) {
        self.words.clear();
        let words = (0..len)
            .step_by(64)
            .map(|base| (base..len.min(base + 64)).fold(0u64, |w, i| w | (u64::from(bit(i)) << (i - base))));
        self.words.extend(words);
        self.len = len;
    }

    /// Packs a slice of booleans.
    pub fn from_bools(bits: &[bool]) -> Self {
        Self::from_fn(bits.len(), |i| bits[i])
    }

    /// Packs values, a bit being set where the value is non-zero.
    pub fn from_nonzero(values: &[f32]) -> Self {
        Self::from_fn(values.len(), |i| values[i] != 0.0)
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words (the last one is zero-padded).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i`. Panics if `i` is out of range, like slice indexing.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "spike index {i} out of range {}", self.len);
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Sets bit `i` to `value`. Panics if `i` is out of range, like slice indexing.
    #[inline]
    pub fn set(&mut self, i: usize, value: bool) {
        assert!(i < self.len, "spike index {i} out of range {}", self.len);
        let mask = 1u64 << (i % 64);
        let w = &mut self.words[i / 64];
        *w = if value { *w | mask } else { *w & !mask };
    }

    /// Sets bits `from .. from + len` to `value`, 64 at a time. Panics if the range is out
    /// of range, like slice indexing.
    pub fn fill(&mut self, from: usize, len: usize, value: bool) {
        assert!(from + len <= self.len, "spike range {from}+{len} out of range {}", self.len);
        let word = if value { !0u64 } else { 0 };
        for k in (0..len).step_by(64) {
            self.write_word(from + k, (len - k).min(64), word);
        }
    }

    /// Writes the first `bits` bits of `bytes` (bit `k` of byte `j` is element
    /// `start + 8j + k`), clipped at the end, leaving every other bit alone.
    ///
    /// The bytes are packed into words eight at a time and written word by word, with no
    /// intermediate vector (DMA loads of spikes and masks write thousands of bits each).
    pub fn write_bytes(&mut self, start: usize, bytes: &[u8], bits: usize) {
        let n = bits.min(bytes.len() * 8).min(self.len.saturating_sub(start));
        let whole = bytes.chunks_exact(8);
        let rest = whole.remainder();
        for (i, c) in whole.enumerate() {
            let k = i * 64;
            if k >= n {
                return;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_word(start + k, (n - k).min(64), u64::from_le_bytes(w));
        }
        let k = bytes.len() / 8 * 64;
        if k < n {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_word(start + k, (n - k).min(64), u64::from_le_bytes(w));
        }
    }

    /// Writes bits `from .. from + len` over the first `len.div_ceil(8)` bytes of `dst` as
    /// packed little-endian bytes (bit `k` of the range in bit `k % 8` of byte `k / 8`, the
    /// last byte zero-padded), a word at a time. Panics if `dst` is shorter.
    pub fn copy_to_bytes(&self, from: usize, len: usize, dst: &mut [u8]) {
        assert!(from + len <= self.len, "spike range {from}+{len} out of range {}", self.len);
        let dst = &mut dst[..len.div_ceil(8)];
        for k in (0..len).step_by(64) {
            let w = self.read_word(from + k, (len - k).min(64)).to_le_bytes();
            let b = k / 8;
            let m = (dst.len() - b).min(8);
            dst[b..b + m].copy_from_slice(&w[..m]);
        }
    }

    /// The `len` (at most 64) bits from bit `at` as [`SpikeSlice::as_word`] gives them, for
    /// a window the caller has checked lies inside: two word loads and a funnel shift, with
    /// no branch on the alignment, for loops over many short rows.
    #[inline(always)]
    pub(crate) fn window(&self, at: usize, len: usize) -> u64 {
        let (w, sh) = (at / 64, at % 64);
        let lo = self.words.get(w).copied().unwrap_or(0);
        let hi = self.words.get(w + 1).copied().unwrap_or(0);
        let v = ((u128::from(hi) << 64 | u128::from(lo)) >> sh) as u64;
        if len >= 64 { v } else { v & ((1u64 << len) - 1) }
    }

    /// Up to 64 bits from bit `at`, in the low bits of the result.
    #[inline]
    fn read_word(&self, at: usize, n: usize) -> u64 {
        let (w, sh) = (at / 64, at % 64);
        let hi = if sh > 0 && w + 1 < self.words.len() { self.words[w + 1] << (64 - sh) } else { 0 };
        let v = (self.words[w] >> sh) | hi;
        if n >= 64 { v } else { v & ((1u64 << n) - 1) }
    }

    /// The number of set bits in each of `rows` rows of `len` bits that start `stride` bits
    /// apart from bit `at`: per-row counts at a word read or two per 64 bits of a row.
    /// Panics if a row is out of range, like slice indexing.
    pub fn row_ones(&self, at: usize, (len, stride): (usize, usize), rows: usize) -> RowOnes<'_> {
        let last_end = rows.checked_sub(1).map_or(0, |l| at + l * stride + len);
        assert!(last_end <= self.len, "spike rows out of range");
        RowOnes { bits: self, next: at, len, stride, left: rows }
    }

    /// The number of set bits in the `len` bits (more than 64) from bit `at`.
    fn long_row_ones(&self, at: usize, len: usize) -> u32 {
        (0..len.div_ceil(64)).map(|j| self.read_word(at + 64 * j, (len - 64 * j).min(64)).count_ones()).sum()
    }

    /// Writes the low `n` (at most 64) bits of `v` from bit `at`. Panics if the bits are
    /// out of range, like slice indexing.
    #[inline]
    pub(crate) fn write_word(&mut self, at: usize, n: usize, v: u64) {
        let mask = if n >= 64 { !0u64 } else { (1u64 << n) - 1 };
        let (w, sh) = (at / 64, at % 64);
        let v = v & mask;
        self.words[w] = (self.words[w] & !(mask << sh)) | (v << sh);
        if sh > 0 && sh + n > 64 {
            let m = mask >> (64 - sh);
            self.words[w + 1] = (self.words[w + 1] & !m) | (v >> (64 - sh));
        }
    }

    /// Writes `pieces` of `n` bits each (`n` at most 64; higher bits are ignored) one after
    /// another from bit `at`, as [`write_word`](Self::write_word) of each at `at + n * i`
    /// would, leaving the bits around them alone, but a whole word at a time: the pieces
    /// are gathered in a register and each word is stored once.
    pub(crate) fn write_packed(&mut self, at: usize, n: usize, pieces: impl IntoIterator<Item = u64>) {
        let mask = if n >= 64 { !0u64 } else { (1u64 << n) - 1 };
        let (mut w, sh) = (at / 64, at % 64);
        // The bits below `at` in its word go first, so that storing the word keeps them.
        let mut acc = if sh > 0 { u128::from(self.words[w] & ((1u64 << sh) - 1)) } else { 0 };
        let mut fill = sh;
        for v in pieces {
            // `fill` is below 64 here; saying so spares the shift a test for larger ones.
            acc |= u128::from(v & mask) << (fill % 64);
            fill += n.min(64);
            if fill >= 64 {
                self.words[w] = acc as u64;
                (w, acc, fill) = (w + 1, acc >> 64, fill - 64);
            }
        }
        if fill > 0 {
            // The last word keeps its bits above the pieces.
            self.words[w] = (self.words[w] & (!0u64 << fill)) | acc as u64;
        }
    }

    /// Bits `from .. from + len`, 64 at a time.
    pub fn read_bits(&self, from: usize, len: usize) -> Vec<u64> {
        assert!(from + len <= self.len, "spike range {from}+{len} out of range {}", self.len);
        (0..len).step_by(64).map(|k| self.read_word(from + k, (len - k).min(64))).collect()
    }

    /// Writes `len` bits (as [`read_bits`](Self::read_bits) returns them) from bit `to`,
    /// leaving every other bit alone.
    pub fn write_bits(&mut self, to: usize, bits: &[u64], len: usize) {
        assert!(to + len <= self.len, "spike range {to}+{len} out of range {}", self.len);
        for (i, &v) in bits.iter().enumerate() {
            let k = i * 64;
            if k < len {
                self.write_word(to + k, (len - k).min(64), v);
            }
        }
    }

    /// Copies bits `from .. from + len` of `src` to bits `to ..` of `self`, 64 at a time,
    /// without the intermediate vector of [`read_bits`](Self::read_bits).
    pub fn copy_bits_from(&mut self, to: usize, src: &SpikeBits, from: usize, len: usize) {
        assert!(from + len <= src.len && to + len <= self.len, "spike range out of range");
        for k in (0..len).step_by(64) {
            let n = (len - k).min(64);
            self.write_word(to + k, n, src.read_word(from + k, n));
        }
    }

    /// Copies `rows` rows of `w` bits, read one after another from bit `from` of `src`, into
    /// the interiors of rows of `w + 2·pad` bits (at most 64) that follow one another in
    /// `self` from bit `to`: row `r` goes to bit `to + r·(w + 2·pad) + pad`, and the `pad`
    /// bits either side of it keep their values. The same bits as [`copy_bits_from`] row
    /// by row, but each padded row is made up in a register, old borders included, and the
    /// rows are stored a whole word at a time ([`write_packed`]).
    ///
    /// [`copy_bits_from`]: Self::copy_bits_from
    /// [`write_packed`]: Self::write_packed
    pub(crate) fn pad_rows_from(
        &mut self,
        src: &SpikeBits,
        from: usize,
        (to, rows): (usize, usize),
        (w, pad): (usize, usize),
    ) {
        let pitch = w + 2 * pad;
        assert!(pitch <= 64, "padded rows of {pitch} bits do not fit a word");
        assert!(from + rows * w <= src.len && to + rows * pitch <= self.len, "spike rows out of range");
        let interior = if w >= 64 { !0u64 } else { ((1u64 << w) - 1) << pad };
        let mut pieces = [0u64; 64];
        for r0 in (0..rows).step_by(64) {
            let n = (rows - r0).min(64);
            for (i, piece) in pieces[..n].iter_mut().enumerate() {
                let r = r0 + i;
                let old = self.read_word(to + r * pitch, pitch);
                *piece = (old & !interior) | (src.read_word(from + r * w, w) << pad);
            }
            self.write_packed(to + r0 * pitch, pitch, pieces[..n].iter().copied());
        }
    }

    /// Copies bits `from .. from + len` to bits `to ..` within `self`, 64 at a time, as a
    /// copy through a temporary would: when the destination lies after an overlapping
    /// source the words go last to first, so none is read after it was overwritten.
    pub fn copy_bits_within(&mut self, from: usize, to: usize, len: usize) {
        assert!(from + len <= self.len && to + len <= self.len, "spike range out of range");
        let mut copy = |k: usize| {
            let n = (len - k).min(64);
            let v = self.read_word(from + k, n);
            self.write_word(to + k, n, v);
        };
        if to > from {
            (0..len).step_by(64).rev().for_each(&mut copy);
        } else {
            (0..len).step_by(64).for_each(&mut copy);
        }
    }

    /// Number of set bits in the whole tensor.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// A view of bits `offset .. offset + len`. Panics if the window is out of range.
    pub fn slice(&self, offset: usize, len: usize) -> SpikeSlice<'_> {
        assert!(offset + len <= self.len, "spike window out of range");
        SpikeSlice { bits: self, offset, len }
    }

    /// The bits as 0.0 / 1.0 values.
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.len).map(|i| if self.get(i) { 1.0 } else { 0.0 }).collect()
    }
}

/// The per-row counts of [`SpikeBits::row_ones`], row by row. A named iterator rather than
/// a closure, so that its step is inlined into the loops that charge rows as they count.
#[derive(Clone, Debug)]
pub struct RowOnes<'a> {
    bits: &'a SpikeBits,
    /// Where the next row starts.
    next: usize,
    len: usize,
    stride: usize,
    /// Rows not yet counted.
    left: usize,
}

impl Iterator for RowOnes<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        self.left = self.left.checked_sub(1)?;
        let row = self.next;
        self.next += self.stride;
        Some(match self.len {
            0 => 0,
            // The usual row, of at most a word: no loop over words.
            1..=64 => self.bits.read_word(row, self.len).count_ones(),
            _ => self.bits.long_row_ones(row, self.len),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RowOnes<'_> {}

/// A read-only window of a [`SpikeBits`], indexed from 0.
#[derive(Clone, Copy, Debug)]
pub struct SpikeSlice<'a> {
    bits: &'a SpikeBits,
    offset: usize,
    len: usize,
}

impl<'a> SpikeSlice<'a> {
    /// Number of bits in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i` of the window.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        debug_assert!(i < self.len);
        self.bits.get(self.offset + i)
    }

    /// Bits `64k .. 64k + 64` of the window in the low bits, zero past its end.
    #[inline]
    pub fn word(&self, k: usize) -> u64 {
        let at = 64 * k;
        if at >= self.len { 0 } else { self.bits.read_word(self.offset + at, (self.len - at).min(64)) }
    }

    /// Number of set bits in the window, a word at a time.
    #[inline]
    pub fn count_ones(&self) -> usize {
        if self.len <= 64 {
            return self.as_word().count_ones() as usize;
        }
        (0..self.len.div_ceil(64)).map(|k| self.word(k).count_ones() as usize).sum()
    }

    /// Bits `at .. at + n` of the window (`n` at most 64, inside the window) in the low bits
    /// of a word: a short run read with at most two word loads, whatever its alignment.
    #[inline]
    pub fn bits_at(&self, at: usize, n: usize) -> u64 {
        assert!(n <= 64 && at + n <= self.len, "spike run {at}+{n} outside a window of {} bits", self.len);
        self.bits.read_word(self.offset + at, n)
    }

    /// The window's bits as one word, bit `i` of the window in bit `i` (a window of at most
    /// 64 bits, checked): a short row of spikes tested or walked without an iterator, at
    /// most two word reads whatever its alignment.
    #[inline]
    pub fn as_word(&self) -> u64 {
        assert!(self.len <= 64, "a spike window of {} bits does not fit a word", self.len);
        if self.len == 0 {
            return 0;
        }
        let (w, shift) = (self.offset / 64, self.offset % 64);
        let mut v = self.bits.words[w] >> shift;
        if shift + self.len > 64 {
            v |= self.bits.words[w + 1] << (64 - shift);
        }
        if self.len < 64 { v & ((1u64 << self.len) - 1) } else { v }
    }

    /// A copy of the window as a tensor of its own, a word at a time.
    pub fn to_bits(&self) -> SpikeBits {
        SpikeBits { len: self.len, words: self.bits.read_bits(self.offset, self.len) }
    }

    /// The indices (relative to the window) of the set bits, in increasing order.
    pub fn ones(&self) -> Ones<'a> {
        let start = self.offset;
        let end = self.offset + self.len;
        let word = start / 64;
        let first = if start < end { self.bits.words[word] & (!0u64 << (start % 64)) } else { 0 };
        Ones { words: &self.bits.words, word, current: first, start, end }
    }
}

/// Iterator over the set bits of a [`SpikeSlice`]; it costs one step per set bit and one per
/// word, never one per zero bit.
#[derive(Clone, Debug)]
pub struct Ones<'a> {
    words: &'a [u64],
    word: usize,
    current: u64,
    start: usize,
    end: usize,
}

impl Iterator for Ones<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.current != 0 {
                let i = self.word * 64 + self.current.trailing_zeros() as usize;
                self.current &= self.current - 1;
                // Bits past the window's end are never yielded; stop at the first.
                return if i < self.end { Some(i - self.start) } else { None };
            }
            self.word += 1;
            if self.word * 64 >= self.end {
                return None;
            }
            self.current = self.words[self.word];
        }
    }
}

#[cfg(test)]
mod tests {
    /// Padded rows written whole against one `copy_bits_from` per row, for row widths and
    /// paddings up to a word, at offsets that straddle words, over destinations whose bits
    /// (borders included) start random: the same bits everywhere.
    #[test]
    fn padded_rows_match_a_copy_per_row() {
        let mut seed = 3u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let (w, pad) = (1 + next(64) as usize, next(4) as usize);
            let pad = pad.min((64 - w) / 2);
            let (rows, from, to) = (next(150) as usize, next(130) as usize, next(130) as usize);
            let pitch = w + 2 * pad;
            let src = super::SpikeBits::from_bools(&(0..from + rows * w + 5).map(|_| next(3) == 0).collect::<Vec<_>>());
            let dst =
                super::SpikeBits::from_bools(&(0..to + rows * pitch + 70).map(|_| next(2) == 0).collect::<Vec<_>>());
            let (mut want, mut got) = (dst.clone(), dst);
            for r in 0..rows {
                want.copy_bits_from(to + r * pitch + pad, &src, from + r * w, w);
            }
            got.pad_rows_from(&src, from, (to, rows), (w, pad));
            assert_eq!(got, want, "w {w} pad {pad} rows {rows} from {from} to {to}");
        }
    }

    /// Packed pieces against one `write_word` per piece, for every piece width up to 64, at
    /// start bits that straddle words, ending mid-word and on a word end, with pieces whose
    /// high bits are set (and must be dropped): the same bits, inside and around the range.
    #[test]
    fn packed_pieces_match_a_word_write_each() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            seed ^ (seed >> 29)
        };
        for n in 0..=64 {
            for _ in 0..20 {
                let count = (next() % 12) as usize;
                let at = (next() % 130) as usize;
                let pieces: Vec<u64> = (0..count).map(|_| next()).collect();
                let len = at + n * count + (next() % 70) as usize;
                let start = super::SpikeBits::from_fn(len, |i| (i * 7 + n) % 5 < 2);
                let (mut want, mut got) = (start.clone(), start);
                for (i, &v) in pieces.iter().enumerate() {
                    want.write_word(at + n * i, n, v);
                }
                got.write_packed(at, n, pieces.iter().copied());
                assert_eq!(got, want, "{count} pieces of {n} bits at {at}");
            }
        }
    }

    /// `window` against `as_word` of the same window, for every length up to 64 at random
    /// offsets (straddling words, and ending at the tensor's last bit).
    #[test]
    fn windows_match_slice_words() {
        let mut seed = 3u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let bits = super::SpikeBits::from_fn(700, |i| (i * 13 + i / 7) % 3 == 0);
        for len in 0..=64 {
            for _ in 0..30 {
                let at = next() % (700 - len + 1);
                assert_eq!(bits.window(at, len), bits.slice(at, len).as_word(), "{len} bits at {at}");
            }
            assert_eq!(bits.window(700 - len, len), bits.slice(700 - len, len).as_word());
        }
    }

    /// The in-place and cross-tensor copies against a copy through `read_bits`, with ranges
    /// that overlap either way and ones that do not, at offsets that straddle words.
    #[test]
    fn word_copies_match_a_copy_through_a_temporary() {
        let mut src = super::SpikeBits::zeros(400);
        for i in (0..400).filter(|i| i % 5 == 0 || i % 11 == 3) {
            src.set(i, true);
        }
        for (from, to, len) in [(0usize, 3usize, 300usize), (3, 0, 300), (10, 200, 130), (200, 7, 190), (64, 65, 1)] {
            let tmp = src.read_bits(from, len);
            let (mut want, mut got) = (src.clone(), src.clone());
            want.write_bits(to, &tmp, len);
            got.copy_bits_within(from, to, len);
            assert_eq!(got, want, "within {from} {to} {len}");
            let mut got = super::SpikeBits::zeros(400);
            let mut want = got.clone();
            want.write_bits(to, &tmp, len);
            got.copy_bits_from(to, &src, from, len);
            assert_eq!(got, want, "from {from} {to} {len}");
        }
        let s = src.slice(5, 130);
        let words: Vec<u64> = (0..4).map(|k| s.word(k)).collect();
        assert_eq!(&words[..3], &src.read_bits(5, 130)[..]);
        assert_eq!(words[3], 0);
    }

    #[test]
    fn bit_ranges_copy_at_any_offset() {
        let mut src = super::SpikeBits::zeros(300);
        for i in (0..300).filter(|i| i % 3 == 0 || i % 7 == 1) {
            src.set(i, true);
        }
        for (from, to, len) in [(0usize, 0usize, 300usize), (5, 70, 130), (63, 1, 65), (100, 200, 64), (7, 9, 3)] {
            let mut dst = super::SpikeBits::zeros(300);
            dst.set(to.saturating_sub(1), true);
            let after = (to + len).min(299);
            dst.set(after, true);
            let keep = (dst.get(to.saturating_sub(1)), dst.get(after));
            dst.write_bits(to, &src.read_bits(from, len), len);
            for k in 0..len {
                assert_eq!(dst.get(to + k), src.get(from + k), "{from} {to} {len} at {k}");
            }
            if to > 0 {
                assert_eq!(dst.get(to - 1), keep.0);
            }
            if to + len < 300 {
                assert_eq!(dst.get(to + len), keep.1);
            }
        }
    }

    #[test]
    fn bytes_write_the_same_bits_aligned_or_not() {
        let long: Vec<u8> = (0..21u8).map(|i| i.wrapping_mul(73) ^ 0x5a).collect();
        for (bytes, bits) in [(&[0b1010_0110u8, 0xff, 0x01][..], 24usize), (&long[..], 168), (&long[..], 100)] {
            for start in [0usize, 3, 8, 61, 64, 150] {
                let mut fast = super::SpikeBits::zeros(190);
                fast.set(start.saturating_sub(1), true);
                fast.set(189, true);
                fast.write_bytes(start, bytes, bits);
                let mut slow = super::SpikeBits::zeros(190);
                slow.set(start.saturating_sub(1), true);
                slow.set(189, true);
                for k in 0..bits.min(190 - start) {
                    slow.set(start + k, (bytes[k / 8] >> (k % 8)) & 1 == 1);
                }
                assert_eq!(fast, slow, "start {start}, {bits} bits");
            }
        }
    }

    use super::*;

    /// Copying a range to bytes gives the bytes of its bits packed one by one, at offsets
    /// and lengths that straddle words and end inside a byte, leaving later bytes alone.
    #[test]
    fn copied_bytes_pack_the_bits_of_any_range() {
        let pattern: Vec<bool> = (0..300).map(|i| i % 3 == 0 || i % 7 == 1).collect();
        let bits = SpikeBits::from_bools(&pattern);
        for (from, len) in [(0usize, 300usize), (5, 130), (63, 2), (64, 64), (100, 7), (7, 0), (1, 299)] {
            let mut want = vec![0u8; len.div_ceil(8)];
            (0..len).filter(|&k| pattern[from + k]).for_each(|k| want[k / 8] |= 1 << (k % 8));
            let mut got = vec![0xEEu8; want.len() + 1];
            bits.copy_to_bytes(from, len, &mut got);
            assert_eq!(got[want.len()], 0xEE);
            assert_eq!(&got[..want.len()], &want[..], "{from}+{len}");
        }
    }

    /// Per-row counts of rows shorter than, as long as and longer than a word, at unaligned
    /// starts and strides (overlapping rows too), against counting bit by bit.
    #[test]
    fn row_ones_counts_each_row() {
        let pattern: Vec<bool> = (0..700).map(|i| i % 7 == 0 || i % 11 == 3 || i % 13 > 9).collect();
        let bits = SpikeBits::from_bools(&pattern);
        for (at, len, stride, rows) in
            [(0, 56, 56, 12), (3, 64, 64, 10), (61, 70, 75, 8), (5, 130, 20, 9), (9, 0, 4, 3)]
        {
            let got: Vec<u32> = bits.row_ones(at, (len, stride), rows).collect();
            let want: Vec<u32> = (0..rows)
                .map(|r| pattern[at + r * stride..at + r * stride + len].iter().filter(|&&b| b).count() as u32)
                .collect();
            assert_eq!(got, want, "rows of {len} from {at}, {stride} apart");
        }
        assert_eq!(bits.row_ones(600, (100, 1), 1).count(), 1, "a last row that ends at the end");
    }

    #[test]
    fn ones_visits_set_bits_of_unaligned_windows() {
        let pattern: Vec<bool> = (0..200).map(|i| i % 7 == 0 || i % 11 == 3).collect();
        let bits = SpikeBits::from_bools(&pattern);
        for (off, len) in [(0, 200), (5, 60), (63, 2), (64, 64), (100, 99), (10, 0)] {
            let got: Vec<usize> = bits.slice(off, len).ones().collect();
            let want: Vec<usize> = (0..len).filter(|&i| pattern[off + i]).collect();
            assert_eq!(got, want, "window {off}+{len}");
            assert_eq!(bits.slice(off, len).count_ones(), want.len());
        }
        assert_eq!(bits.count_ones(), pattern.iter().filter(|&&b| b).count());
    }

    /// A window read as one word holds its bits whatever its alignment and length,
    /// including windows that end exactly at a word boundary or at the tensor's end.
    #[test]
    fn word_holds_the_bits_of_any_window_up_to_64() {
        let pattern: Vec<bool> = (0..200).map(|i| i % 5 == 0 || i % 13 == 4 || i > 180).collect();
        let bits = SpikeBits::from_bools(&pattern);
        for (off, len) in [(0, 64), (5, 56), (8, 56), (63, 2), (64, 64), (100, 64), (136, 64), (199, 1), (7, 0)] {
            let want = (0..len).filter(|&i| pattern[off + i]).fold(0u64, |w, i| w | 1 << i);
            assert_eq!(bits.slice(off, len).as_word(), want, "window {off}+{len}");
        }
    }

    /// Packing a word at a time and copying a window out give the bits one by one would.
    #[test]
    fn packed_construction_and_window_copies_hold_every_bit() {
        let pattern: Vec<bool> = (0..200).map(|i| i % 5 == 0 || i % 13 == 4).collect();
        let bits = SpikeBits::from_bools(&pattern);
        assert_eq!(bits.len(), 200);
        assert!((0..200).all(|i| bits.get(i) == pattern[i]));
        assert_eq!(bits.words().len(), 4);
        for (off, len) in [(0, 200), (5, 60), (63, 2), (64, 64), (100, 100), (10, 0), (7, 130)] {
            let copy = bits.slice(off, len).to_bits();
            assert_eq!(copy, SpikeBits::from_bools(&pattern[off..off + len]), "window {off}+{len}");
        }
        assert_eq!(SpikeBits::from_nonzero(&[0.0, -0.0, 2.0, f32::NAN]).to_f32(), [0.0, 0.0, 1.0, 1.0]);
    }

    /// A range filled a word at a time holds what setting each bit gives, and the bits
    /// around it keep theirs.
    #[test]
    fn fill_sets_the_range_and_nothing_else() {
        let pattern: Vec<bool> = (0..300).map(|i| i % 3 == 0 || i % 7 == 1).collect();
        for (from, len) in [(0usize, 300usize), (5, 130), (63, 2), (64, 64), (100, 7), (7, 0), (1, 299)] {
            for value in [false, true] {
                let mut fast = SpikeBits::from_bools(&pattern);
                fast.fill(from, len, value);
                let mut slow = SpikeBits::from_bools(&pattern);
                (from..from + len).for_each(|i| slow.set(i, value));
                assert_eq!(fast, slow, "{from}+{len} {value}");
            }
        }
    }

    #[test]
    fn set_clears_and_sets() {
        let mut b = SpikeBits::zeros(70);
        b.set(69, true);
        b.set(3, true);
        b.set(3, false);
        assert_eq!(b.to_f32().iter().sum::<f32>(), 1.0);
        assert!(b.get(69));
    }
}
