//! The pooling kernels against a direct reference written from PyTorch's definition (signed
//! window coordinates, -inf padding for max, zeros for average, argmax by strict `>` scanning
//! the whole window), on hand-made cases and on many random shapes and spike maps.

use super::*;
use crate::spikes::SpikeBits;
use half::f16;

/// PyTorch's `max_pool2d` / `avg_pool2d` forward and backward, element by element.
struct Reference {
    s: PoolShape,
}

impl Reference {
    /// Input value at signed `(c, y, x)`, or `None` in the padding.
    fn at(&self, x: &[bool], c: usize, y: isize, xx: isize) -> Option<(usize, f32)> {
        let (h, w) = (self.s.h as isize, self.s.w as isize);
        if y < 0 || xx < 0 || y >= h || xx >= w {
            return None;
        }
        let i = (c * self.s.h + y as usize) * self.s.w + xx as usize;
        Some((i, if x[i] { 1.0 } else { 0.0 }))
    }

    /// Every window position of output `(c, oy, ox)` in row-major order, padding included.
    fn window(&self, x: &[bool], c: usize, oy: usize, ox: usize) -> Vec<Option<(usize, f32)>> {
        let (k, st, p) = (self.s.k as isize, self.s.stride as isize, self.s.pad as isize);
        let mut v = Vec::new();
        for dy in 0..k {
            for dx in 0..k {
                v.push(self.at(x, c, oy as isize * st - p + dy, ox as isize * st - p + dx));
            }
        }
        v
    }

    fn outputs(&self) -> Vec<(usize, usize, usize)> {
        let (oh, ow) = (self.s.oh(), self.s.ow());
        (0..self.s.c).flat_map(|c| (0..oh).flat_map(move |y| (0..ow).map(move |x| (c, y, x)))).collect()
    }

    /// Max forward and the index each output's gradient goes to.
    fn max(&self, x: &[bool]) -> (Vec<f32>, Vec<usize>) {
        let mut out = Vec::new();
        let mut arg = Vec::new();
        for (c, oy, ox) in self.outputs() {
            let (mut best, mut idx) = (f32::NEG_INFINITY, usize::MAX);
            for (i, v) in self.window(x, c, oy, ox).into_iter().flatten() {
                if v > best {
                    (best, idx) = (v, i);
                }
            }
            out.push(best);
            arg.push(idx);
        }
        (out, arg)
    }

    fn avg(&self, x: &[bool]) -> Vec<f32> {
        let area = (self.s.k * self.s.k) as f32;
        let win = |(c, oy, ox)| self.window(x, c, oy, ox).into_iter().map(|e| e.map_or(0.0, |(_, v)| v)).sum::<f32>();
        self.outputs().into_iter().map(|o| win(o) / area).collect()
    }

    /// Backward in f16, adding into the input gradient output by output.
    fn backward(&self, x: &[bool], g: &[f16], max: bool) -> Vec<f16> {
        let mut gin = vec![f16::ZERO; self.s.in_len()];
        let add = |a: &mut f16, b: f16| *a = f16::from_f32(a.to_f32() + b.to_f32());
        let (_, arg) = self.max(x);
        let area = (self.s.k * self.s.k) as f32;
        for (o, (c, oy, ox)) in self.outputs().into_iter().enumerate() {
            if max {
                add(&mut gin[arg[o]], g[o]);
                continue;
            }
            let share = f16::from_f32(g[o].to_f32() / area);
            for (i, _) in self.window(x, c, oy, ox).into_iter().flatten() {
                add(&mut gin[i], share);
            }
        }
        gin
    }
}

/// Runs all four kernels on `x` and `g` and compares them with the reference.
fn check_against_reference(s: PoolShape, x: &[bool], g: &[f16]) {
    let r = Reference { s };
    let bits = SpikeBits::from_bools(x);
    let spikes = bits.slice(0, x.len());
    let mut ops = OpCount::default();
    let mut out = vec![f16::ZERO; s.out_len()];
    maxpool_forward(&s, spikes, &mut out, &mut ops);
    let want: Vec<f16> = r.max(x).0.into_iter().map(f16::from_f32).collect();
    assert_eq!(out, want, "max forward {s:?}");
    avgpool_forward(&s, spikes, &mut out, &mut ops);
    let want: Vec<f16> = r.avg(x).into_iter().map(f16::from_f32).collect();
    assert_eq!(out, want, "avg forward {s:?}");
    let mut gin = vec![f16::ONE; s.in_len()];
    maxpool_backward(&s, spikes, g, &mut gin);
    assert_eq!(bits_of(&gin), bits_of(&r.backward(x, g, true)), "max backward {s:?} x={x:?}");
    let mut gin = vec![f16::ONE; s.in_len()];
    avgpool_backward(&s, g, &mut gin);
    assert_eq!(bits_of(&gin), bits_of(&r.backward(x, g, false)), "avg backward {s:?}");
}

/// Bit patterns, so that signed zeros and NaNs compare exactly.
fn bits_of(v: &[f16]) -> Vec<u16> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A small deterministic generator (SplitMix64) for the random cases.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

#[test]
fn torchvision_stem_pool_on_a_small_map_by_hand() {
    // One channel 4x4, window 3, stride 2, padding 1: outputs 2x2, windows rows/cols
    // {-1,0,1} and {1,2,3}. A single spike at (1,1) lies in all four windows.
    let s = PoolShape { c: 1, h: 4, w: 4, k: 3, stride: 2, pad: 1 };
    let mut x = [false; 16];
    x[5] = true;
    let bits = SpikeBits::from_bools(&x);
    let mut out = [0.0f32; 4];
    let mut ops = OpCount::default();
    maxpool_forward(&s, bits.slice(0, 16), &mut out, &mut ops);
    assert_eq!(out, [1.0; 4]);
    // Windows hold 4, 6, 6 and 9 in-bounds bits; the spike is bit 4, 4, 2 and 1 of them.
    assert_eq!(ops, OpCount { executed: 4 + 4 + 2 + 1, skipped: 2 + 4 + 8 });
    assert_eq!(s.taps(), 4 + 6 + 6 + 9);
    // All four errors go to the one spike and add up there (0.5 + 0.25 + 1 + 2 = 3.75).
    let mut gin = [9.0f32; 16];
    maxpool_backward(&s, bits.slice(0, 16), &[0.5, 0.25, 1.0, 2.0], &mut gin);
    let mut want = [0.0f32; 16];
    want[5] = 3.75;
    assert_eq!(gin, want);
    // Average pooling divides by 9 even where padding shrinks the window.
    avgpool_forward(&s, bits.slice(0, 16), &mut out, &mut ops);
    assert_eq!(out, [1.0 / 9.0; 4]);
}

#[test]
fn all_zero_windows_route_to_their_first_in_bounds_element() {
    let s = PoolShape { c: 1, h: 4, w: 4, k: 3, stride: 2, pad: 1 };
    let mut gin = [0.0f32; 16];
    maxpool_backward(&s, SpikeBits::zeros(16).slice(0, 16), &[1.0, 2.0, 4.0, 8.0], &mut gin);
    // First in-bounds elements: (0,0), (0,1), (1,0), (1,1).
    let mut want = [0.0f32; 16];
    (want[0], want[1], want[4], want[5]) = (1.0, 2.0, 4.0, 8.0);
    assert_eq!(gin, want);
}

#[test]
fn ties_go_to_the_first_spike_in_row_major_order() {
    // Window 3, stride 1, no padding over a 3x4 map: outputs (0,0) and (0,1).
    let s = PoolShape { c: 1, h: 3, w: 4, k: 3, stride: 1, pad: 0 };
    let mut x = [false; 12];
    (x[2], x[4], x[9]) = (true, true, true);
    let bits = SpikeBits::from_bools(&x);
    let mut gin = [0.0f32; 12];
    maxpool_backward(&s, bits.slice(0, 12), &[1.0, 2.0], &mut gin);
    // Window (0,0) holds three spikes, (0,2), (1,0) and (2,1): the first in row-major order,
    // index 2, wins. Window (0,1) (columns 1..4) holds (0,2) and (2,1): index 2 again, so
    // both errors add up there.
    let mut want = [0.0f32; 12];
    want[2] = 3.0;
    assert_eq!(gin, want);
}

#[test]
fn kernels_match_the_reference_on_random_shapes() {
    let mut m = Mix(7);
    for case in 0..400 {
        let k = 1 + m.below(4);
        let stride = 1 + m.below(3);
        let pad = m.below(k as u64 / 2 + 1);
        let (h, w) = (k.saturating_sub(2 * pad).max(1) + m.below(6), k.saturating_sub(2 * pad).max(1) + m.below(6));
        let c = 1 + m.below(3);
        let s = PoolShape { c, h, w, k, stride, pad };
        // Dense, sparse and empty maps; errors of every sign and size, some subnormal in f16.
        let density = [0, 1, 3, 8][case % 4];
        let x: Vec<bool> = (0..s.in_len()).map(|_| m.below(8) < density).collect();
        let g: Vec<f16> = (0..s.out_len()).map(|_| f16::from_f32((m.below(2001) as f32 - 1000.0) / 333.0)).collect();
        check_against_reference(s, &x, &g);
    }
}

#[test]
fn tiled_windows_keep_the_fast_path() {
    let s = PoolShape::tiled(2, 4, 6, 2);
    assert!(s.tiles() && s.taps() == s.in_len());
    assert!(!PoolShape { pad: 1, ..s }.tiles() && !PoolShape { stride: 1, ..s }.tiles());
    assert!(!PoolShape::tiled(1, 5, 4, 2).tiles(), "k must divide both sides");
}

/// Tiled pooling, which has its own kernels (average pooling's forward and backward, max
/// pooling's backward), on maps whose rows hold several words of windows: against the
/// reference, also at an odd bit offset, and average pooling's operation counts against the
/// kernel for any geometry.
#[test]
fn tiled_pooling_matches_the_reference_on_wide_maps() {
    let mut m = Mix(11);
    for case in 0..200 {
        let k = 1 + m.below(9);
        let (oh, ow) = (1 + m.below(4), 1 + m.below(90 / k as u64));
        let s = PoolShape::tiled(1 + m.below(3), oh * k, ow * k, k);
        let density = [0, 1, 3, 8][case % 4];
        let x: Vec<bool> = (0..s.in_len()).map(|_| m.below(8) < density).collect();
        let g: Vec<f16> = (0..s.out_len()).map(|_| f16::from_f32((m.below(2001) as f32 - 1000.0) / 333.0)).collect();
        check_against_reference(s, &x, &g);
        // The bits sit at an odd offset of a longer map, as they do in a buffer.
        let mut padded = vec![true; 5];
        padded.extend_from_slice(&x);
        let bits = SpikeBits::from_bools(&padded);
        let spikes = bits.slice(5, x.len());
        let (mut fast, mut general) = (OpCount::default(), OpCount::default());
        let (mut a, mut b) = (vec![f16::ZERO; s.out_len()], vec![f16::ZERO; s.out_len()]);
        avgpool_forward(&s, spikes, &mut a, &mut fast);
        avgpool_forward_general(&s, spikes, &mut b, &mut general);
        assert_eq!((bits_of(&a), fast), (bits_of(&b), general), "case {case} {s:?}");
        // Tiled max pooling's backward reads its windows' rows as words: at that offset too.
        let mut gin = vec![f16::ONE; s.in_len()];
        maxpool_backward(&s, spikes, &g, &mut gin);
        assert_eq!(bits_of(&gin), bits_of(&Reference { s }.backward(&x, &g, true)), "case {case} {s:?}");
    }
}
