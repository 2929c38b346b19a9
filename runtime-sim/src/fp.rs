//! Numeric modes of the engine datapaths.
//!
//! The chip stores tensors in IEEE binary16 and rounds to nearest-even after every
//! element-wise operation; the width of the synaptic accumulators is a property of the chip
//! description. This module gives the kernels one vocabulary for all of that:
//!
//! - [`Storage`] is the element type of a stored tensor (`half::f16` or `f32`). Element-wise
//!   helpers ([`add`], [`sub`], [`mul`]) compute in f32 and round once to the storage type.
//!   For two binary16 operands the f32 result of `+ − ×` is exact or correctly rounded with
//!   enough guard bits, so "f32 op, then round" is exactly one IEEE binary16 operation (this
//!   is also how `half`, numpy and PyTorch CPU implement f16 arithmetic). There is no FMA:
//!   `β·V + X` is two roundings.
//! - [`Accum`] is the accumulator width of the accumulate engines: a wide f32 accumulator
//!   rounded once at the end, or an accumulator of the storage type rounded after every add.
//! - [`Precision`] names the three modes the simulator runs in.

use half::f16;

/// Element type of a stored tensor: the value the memories of the chip hold.
pub trait Storage: Copy + Default + PartialEq + core::fmt::Debug + Send + Sync + 'static {
    /// Short name of the type, for diagnostics ("f16" or "f32").
    const NAME: &'static str;
    /// Whether the product of two values of this type is exact in f32: true for binary16,
    /// whose 11-bit significands multiply into at most 22 bits and whose exponents stay far
    /// inside f32's range. Where it holds, [`mac_exact`] may fuse the multiply and the add.
    const EXACT_PRODUCTS: bool = false;
    /// Rounds an f32 to this type (IEEE round-to-nearest-even).
    fn from_f32(x: f32) -> Self;
    /// Widens to f32 (always exact).
    fn to_f32(self) -> f32;
    /// Converts a binary16 value (exact for both types; a copy for f16, which DMA loads of
    /// FP16 tensors rely on to stay cheap).
    #[inline]
    fn from_f16(h: f16) -> Self {
        Self::from_f32(h.to_f32())
    }
    /// Rounds an f32 to this type and widens it back: the value the type would store.
    #[inline]
    fn round(x: f32) -> f32 {
        Self::from_f32(x).to_f32()
    }
    /// Widens every element of `src` into `out`, which has the same length (exact, as
    /// [`Storage::to_f32`]; vectorised for f16 where the CPU converts in hardware).
    #[inline]
    fn to_f32_slice(src: &[Self], out: &mut [f32]) {
        for (o, x) in out.iter_mut().zip(src) {
            *o = x.to_f32();
        }
    }
    /// Widens a block of sixteen values into `out` (exact, as [`Storage::to_f32`]); for f16
    /// two vector conversions where the CPU converts in hardware, which the per-element loop
    /// of [`Storage::to_f32_slice`] is not compiled to.
    #[inline]
    fn to_f32_16(src: &[Self; 16], out: &mut [f32; 16]) {
        Self::to_f32_slice(src, out);
    }
    /// Rounds every element of `src` into `out`, which has the same length (as
    /// [`Storage::from_f32`] does one by one).
    #[inline]
    fn from_f32_slice(src: &[f32], out: &mut [Self]) {
        for (o, &x) in out.iter_mut().zip(src) {
            *o = Self::from_f32(x);
        }
    }
    /// Every element of `v` whose bit in `keep` (bit `j` for element `j`, at most 64
    /// elements) is clear set to +0, the others left as they are: a mask of the bit
    /// patterns, with no branch on the bits.
    fn keep_bits(v: &mut [Self], keep: u64);
    /// Whether `src` (at most 64 elements) with [`Storage::keep_bits`] applied is bit for
    /// bit `masked`: one pass with no branch per element and no copy.
    fn kept_equal(src: &[Self], keep: u64, masked: &[Self]) -> bool;
    /// Rounds every element of `x` in place to a value of this type, as [`Storage::round`]
    /// does one by one.
    #[inline]
    fn round_slice(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = Self::round(*v);
        }
    }
}

impl Storage for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn keep_bits(v: &mut [f32], keep: u64) {
        for (j, x) in v.iter_mut().enumerate() {
            let mask = 0u32.wrapping_sub((keep >> j) as u32 & 1);
            *x = f32::from_bits(x.to_bits() & mask);
        }
    }
    #[inline]
    fn kept_equal(src: &[f32], keep: u64, masked: &[f32]) -> bool {
        let mut diff = 0u32;
        for (j, (x, m)) in src.iter().zip(masked).enumerate() {
            let mask = 0u32.wrapping_sub((keep >> j) as u32 & 1);
            diff |= (x.to_bits() & mask) ^ m.to_bits();
        }
        diff == 0 && src.len() == masked.len()
    }
}

impl Storage for f16 {
    const NAME: &'static str = "f16";
    const EXACT_PRODUCTS: bool = true;
    #[inline]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    /// One F16C instruction when the build targets it (see `.cargo/config.toml`);
    /// otherwise a table look-up (see `widen_table`), inlined where `half` would check the
    /// CPU on every call. Both are exact.
    #[inline]
    fn to_f32(self) -> f32 {
        if cfg!(target_feature = "f16c") { f16::to_f32(self) } else { widen_table()[usize::from(self.to_bits())] }
    }
    #[inline]
    fn keep_bits(v: &mut [f16], keep: u64) {
        for (j, x) in v.iter_mut().enumerate() {
            let mask = 0u16.wrapping_sub((keep >> j) as u16 & 1);
            *x = f16::from_bits(x.to_bits() & mask);
        }
    }
    #[inline]
    fn kept_equal(src: &[f16], keep: u64, masked: &[f16]) -> bool {
        let mut diff = 0u16;
        for (j, (x, m)) in src.iter().zip(masked).enumerate() {
            let mask = 0u16.wrapping_sub((keep >> j) as u16 & 1);
            diff |= (x.to_bits() & mask) ^ m.to_bits();
        }
        diff == 0 && src.len() == masked.len()
    }
    #[inline]
    fn from_f16(h: f16) -> Self {
        h
    }
    /// One run-time dispatch for the whole slice (F16C, eight at a time where the CPU has
    /// it) instead of one per element; the same round-to-nearest-even.
    #[inline]
    fn from_f32_slice(src: &[f32], out: &mut [Self]) {
        use half::slice::HalfFloatSliceExt;
        let n = src.len().min(out.len());
        out[..n].convert_from_f32_slice(&src[..n]);
    }
    /// One conversion per element ([`Storage::to_f32`], inlined); exact.
    #[inline]
    fn to_f32_slice(src: &[Self], out: &mut [f32]) {
        for (o, x) in out.iter_mut().zip(src) {
            *o = x.to_f32();
        }
    }
    #[inline]
    fn to_f32_16(src: &[Self; 16], out: &mut [f32; 16]) {
        use half::slice::HalfFloatSliceExt;
        src.convert_to_f32_slice(out);
    }
    /// Narrows and widens back through a stack buffer, both in hardware where the CPU can.
    #[inline]
    fn round_slice(x: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let mut tmp = [f16::ZERO; ROUND_CHUNK];
        for c in x.chunks_mut(ROUND_CHUNK) {
            let t = &mut tmp[..c.len()];
            t.convert_from_f32_slice(c);
            t.convert_to_f32_slice(c);
        }
    }
}

/// Elements rounded per pass of [`Storage::round_slice`]: a stack buffer of this many f16.
/// Most calls round one soma block (at most 64 values, often 16), so a larger buffer would
/// mostly cost the zeroing of bytes that are never used; the result does not depend on it.
const ROUND_CHUNK: usize = 64;

/// The f32 value of every binary16 bit pattern, indexed by the pattern: widening a slice
/// by table look-ups is exact (the table is built with `f16::to_f32`) and avoids a call
/// per element into `half`'s run-time dispatch.
fn widen_table() -> &'static [f32; 1 << 16] {
    static TABLE: std::sync::OnceLock<Box<[f32; 1 << 16]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0.0f32; 1 << 16]);
        for (bits, v) in (0..=u16::MAX).zip(t.iter_mut()) {
            *v = f16::from_bits(bits).to_f32();
        }
        t
    })
}

/// Accumulator width of the accumulate engines (synaptic sums, error propagation, weight
/// gradients).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accum {
    /// An f32 accumulator, rounded once to the storage type when the sum is complete. This is
    /// the golden convention ("matmul and conv accumulate in f32 and round once").
    F32,
    /// An accumulator of the storage type: every product and every partial sum is rounded to
    /// storage precision. With f32 storage this is the same as [`Accum::F32`].
    Storage,
}

/// The numeric mode a program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 storage and arithmetic throughout (parity with the `*.f32.json` golden files).
    Fp32,
    /// f16 storage, element-wise ops rounded to f16, f32 accumulators (the golden f16
    /// convention, parity with the `*.f16.json` golden files).
    Fp16Acc32,
    /// f16 storage with f16 accumulators: every add is rounded (for studying the accumulator
    /// width; no golden file has this mode).
    Fp16Acc16,
}

impl Precision {
    /// All modes, in a fixed order.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16Acc32, Precision::Fp16Acc16];

    /// Accumulator width of this mode.
    pub fn accum(self) -> Accum {
        match self {
            Precision::Fp32 | Precision::Fp16Acc32 => Accum::F32,
            Precision::Fp16Acc16 => Accum::Storage,
        }
    }

    /// Whether tensors are stored as f16.
    pub fn is_f16(self) -> bool {
        !matches!(self, Precision::Fp32)
    }

    /// Short stable name ("fp32", "fp16-acc32", "fp16-acc16").
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16Acc32 => "fp16-acc32",
            Precision::Fp16Acc16 => "fp16-acc16",
        }
    }
}

/// `a + b`, one rounding to the storage type.
#[inline]
pub fn add<S: Storage>(a: S, b: S) -> S {
    S::from_f32(a.to_f32() + b.to_f32())
}

/// `a − b`, one rounding to the storage type.
#[inline]
pub fn sub<S: Storage>(a: S, b: S) -> S {
    S::from_f32(a.to_f32() - b.to_f32())
}

/// `a · b`, one rounding to the storage type.
#[inline]
pub fn mul<S: Storage>(a: S, b: S) -> S {
    S::from_f32(a.to_f32() * b.to_f32())
}

/// Adds `x` to an accumulator held in f32. With [`Accum::Storage`] the new partial sum is
/// rounded to the storage type, as an accumulator register of that width would hold it.
#[inline]
pub fn acc_add<S: Storage>(acc: f32, x: f32, mode: Accum) -> f32 {
    let s = acc + x;
    match mode {
        Accum::F32 => s,
        Accum::Storage => S::round(s),
    }
}

/// Multiply-accumulates `a · b` into an f32-held accumulator. The product of two f16 values
/// is exact in f32; with [`Accum::Storage`] the multiplier output is rounded to the storage
/// type before the (also rounded) add, as a datapath of that width would do.
#[inline]
pub fn acc_mac<S: Storage>(acc: f32, a: f32, b: f32, mode: Accum) -> f32 {
    let p = a * b;
    match mode {
        Accum::F32 => acc + p,
        Accum::Storage => S::round(acc + S::round(p)),
    }
}

/// `acc + a·b` in f32 with two roundings (the product, then the sum), computed as one fused
/// multiply-add where that gives the same bits: when `a` and `b` are values of `S` and `S`
/// has [`Storage::EXACT_PRODUCTS`], the product is exact, so rounding it first changes
/// nothing, and a fused multiply-add (one instruction on the x86-64-v3 build, with
/// `target_feature = "fma"`) rounds once, at the sum. Otherwise the plain multiply and add.
///
/// The caller promises that `a` and `b` are values of `S` (weights, errors, inputs read from
/// `S` buffers, a spike's 1.0); a scale such as `1/k²` is not.
#[inline(always)]
pub fn mac_exact<S: Storage>(acc: f32, a: f32, b: f32) -> f32 {
    if S::EXACT_PRODUCTS && cfg!(target_feature = "fma") { a.mul_add(b, acc) } else { acc + a * b }
}

/// `acc[i] = acc_mac(acc[i], w[i], x)` for every `i`: the inner loop of the conv kernels,
/// with the accumulator mode decided once so the f32 case vectorises. Each element sees
/// exactly the operations (and roundings) of [`acc_mac`].
#[inline(always)]
pub fn axpy<S: Storage>(acc: &mut [f32], w: &[f32], x: f32, mode: Accum) {
    match mode {
        Accum::F32 => {
            // Eight lanes at a time, then the rest: rows here are often 16 to 40 long, where
            // a loop unrolled to 32 lanes would leave most of the work to its remainder.
            let n = acc.len().min(w.len()) / 8 * 8;
            let (head, tail) = acc.split_at_mut(n);
            for (a, w) in head.chunks_exact_mut(8).zip(w.chunks_exact(8)) {
                // Loaded into arrays of eight, computed and stored back: one vector multiply
                // and add (the same two roundings per lane). In place, the compiler could
                // not tell the stores to `a` from the loads of `w` once inlined, and left
                // every lane scalar.
                if let (Ok(a), Ok(w)) = (<&mut [f32; 8]>::try_from(a), <&[f32; 8]>::try_from(w)) {
                    let (mut sums, w) = (*a, *w);
                    for i in 0..8 {
                        sums[i] += w[i] * x;
                    }
                    *a = sums;
                }
            }
            tail.iter_mut().zip(&w[n..]).for_each(|(a, &w)| *a += w * x);
        }
        Accum::Storage => acc.iter_mut().zip(w).for_each(|(a, &w)| *a = acc_mac::<S>(*a, w, x, mode)),
    }
}

/// `dst[i] = add(dst[i], src[i])` for every `i`, a block at a time: the same one rounding
/// per element, with the conversions done a slice at a time.
pub fn add_assign_slice<S: Storage>(dst: &mut [S], src: &[S]) {
    const BLOCK: usize = 256;
    let (mut a, mut b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    for (d, s) in dst.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
        let n = d.len().min(s.len());
        let (a, b) = (&mut a[..n], &mut b[..n]);
        S::to_f32_slice(&d[..n], a);
        S::to_f32_slice(&s[..n], b);
        a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x += y);
        S::from_f32_slice(a, &mut d[..n]);
    }
}

/// Rounds every f32 accumulator into the storage-typed output.
#[inline]
pub fn store<S: Storage>(acc: &[f32], out: &mut [S]) {
    S::from_f32_slice(acc, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_ops_round_once_per_op() {
        // 2049 is not representable in f16 (11-bit significand): 2048 + 1 rounds to even.
        let a = f16::from_f32(2048.0);
        let b = f16::from_f32(1.0);
        assert_eq!(add(a, b).to_f32(), 2048.0);
        assert_eq!(add(1.0f32, 2048.0f32), 2049.0);
        // 0.1·3 rounds in f16 differently from f32.
        let x = f16::from_f32(0.1);
        assert_eq!(mul(x, f16::from_f32(3.0)), f16::from_f32(x.to_f32() * 3.0));
    }

    #[test]
    fn slice_widening_is_bit_identical_for_every_pattern() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut wide = vec![0.0f32; all.len()];
        <f16 as Storage>::to_f32_slice(&all, &mut wide);
        for (h, w) in all.iter().zip(&wide) {
            // `f16::to_f32` is `half`'s own conversion (the inherent method).
            let exact = f16::to_f32(*h).to_bits();
            assert_eq!(exact, w.to_bits(), "pattern {:#06x}", h.to_bits());
            assert_eq!(exact, <f16 as Storage>::to_f32(*h).to_bits(), "pattern {:#06x}", h.to_bits());
        }
    }

    /// Every binary16 value, the midpoints between neighbours (ties), and the f32 values
    /// one ulp either side of them: `round_slice` rounds each as `from_f32` does.
    #[test]
    fn slice_rounding_matches_scalar_rounding_at_every_tie() {
        let mut xs = Vec::new();
        for bits in 0..=u16::MAX {
            let (a, b) = (f16::from_bits(bits).to_f32(), f16::from_bits(bits.wrapping_add(1)).to_f32());
            let mid = a + (b - a) / 2.0;
            xs.extend([a, mid, f32::from_bits(mid.to_bits() + 1), f32::from_bits(mid.to_bits().saturating_sub(1))]);
        }
        xs.extend([65504.0, 65519.0, 65520.0, 1e9, -65520.0, 1e-9, -6e-8, 3e-8, 0.0, -0.0]);
        let mut rounded = xs.clone();
        <f16 as Storage>::round_slice(&mut rounded);
        for (x, r) in xs.iter().zip(&rounded) {
            let want = <f16 as Storage>::round(*x);
            assert!(want.to_bits() == r.to_bits() || (want.is_nan() && r.is_nan()), "{x:e}: {r:e} vs {want:e}");
        }
        let mut short = [0.1f32, 1e-7, 70000.0];
        <f16 as Storage>::round_slice(&mut short);
        assert_eq!(short.map(f32::to_bits), [0.1f32, 1e-7, 70000.0].map(|x| <f16 as Storage>::round(x).to_bits()));
    }

    #[test]
    fn slice_add_rounds_like_element_adds() {
        let a: Vec<f16> = (0..600).map(|i| f16::from_f32(i as f32 * 1.37 - 300.0)).collect();
        let b: Vec<f16> = (0..600).map(|i| f16::from_f32(0.001 * i as f32 + 2047.0)).collect();
        let mut got = a.clone();
        add_assign_slice(&mut got, &b);
        let want: Vec<f16> = a.iter().zip(&b).map(|(x, y)| add(*x, *y)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn storage_accumulator_rounds_every_add() {
        let mut wide = 0.0f32;
        let mut narrow = 0.0f32;
        for _ in 0..3000 {
            wide = acc_add::<f16>(wide, 1.0, Accum::F32);
            narrow = acc_add::<f16>(narrow, 1.0, Accum::Storage);
        }
        assert_eq!(wide, 3000.0);
        // Above 2048 the f16 spacing is 2, so adding 1 ties to even and stalls.
        assert_eq!(narrow, 2048.0);
    }

    #[test]
    fn fused_multiply_add_of_f16_values_matches_the_multiply_then_add() {
        // Random bit patterns cover subnormals, ±0, ±inf and NaN as well as normal values;
        // the products of the largest and smallest f16 magnitudes are exact in f32.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let extremes = [f16::MAX, f16::MIN, f16::from_bits(1), f16::MIN_POSITIVE, f16::NEG_INFINITY, f16::NAN];
        for i in 0..200_000 {
            let r = next();
            let a = f16::from_bits(r as u16).to_f32();
            let b = if i % 7 == 0 { extremes[i % 6].to_f32() } else { f16::from_bits((r >> 16) as u16).to_f32() };
            let acc = f32::from_bits((r >> 32) as u32);
            let (fused, plain) = (mac_exact::<f16>(acc, a, b), acc + a * b);
            assert!(fused.to_bits() == plain.to_bits() || (fused.is_nan() && plain.is_nan()), "{acc:e} + {a:e}·{b:e}");
        }
    }
}
