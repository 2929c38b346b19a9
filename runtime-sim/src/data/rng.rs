//! The one pseudo-random generator of the host data pipeline: xoshiro256** seeded with
//! splitmix64.
//!
//! Every random choice the host makes — the train/test split, the order of each epoch,
//! Bernoulli spikes, synthetic event streams — draws from [`Rng`], so a run is reproducible
//! from its seed alone on any platform, and another tool can reproduce the same bits. Both
//! algorithms are the published reference ones (Blackman and Vigna, "Scrambled linear
//! pseudorandom number generators", 2021), written out here rather than taken from a crate,
//! so that no dependency upgrade can silently change a data set or an encoding.
//!
//! The exact rules:
//!
//! - [`Rng::new(seed)`](Rng::new): the four state words are four successive splitmix64
//!   outputs starting from the state `seed` (add `0x9E3779B97F4A7C15`, then [`mix64`]).
//! - [`Rng::for_stream(seed, stream)`](Rng::for_stream) is `Rng::new(seed ^ mix64(stream))`:
//!   independent streams (one per sample, per epoch, per batch) from one user seed. Since
//!   `mix64(0) == 0`, stream 0 is `Rng::new(seed)`.
//! - [`Rng::next_u64`] is xoshiro256** (`rotl(s1 * 5, 7) * 9`).
//! - [`Rng::next_f64`] is `(next_u64() >> 11) * 2^-53`, uniform in `[0, 1)`.
//! - [`Rng::bernoulli(p)`](Rng::bernoulli) is `next_f64() < p`: exactly one draw per call,
//!   whatever `p` is, so the stream position never depends on the data.
//! - [`Rng::below(n)`](Rng::below) is Lemire's multiply-and-reject method (unbiased).
//! - [`Rng::shuffle`] is Fisher–Yates from the last element down, `j = below(i + 1)`.

/// The splitmix64 increment (the golden ratio in 64-bit fixed point).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function: a bijective 64-bit mixer (`mix64(0) == 0`).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A xoshiro256** generator. See the module documentation for the exact algorithms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed` through splitmix64.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            sm = sm.wrapping_add(GOLDEN);
            *word = mix64(sm);
        }
        Rng { s }
    }

    /// Generator number `stream` derived from `seed`: `Rng::new(seed ^ mix64(stream))`.
    pub fn for_stream(seed: u64, stream: u64) -> Rng {
        Rng::new(seed ^ mix64(stream))
    }

    /// The next 64 random bits (xoshiro256**).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform value in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform value in `[lo, hi)`.
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// True with probability `p` (clamped to `[0, 1]` by the comparison itself). Always
    /// consumes exactly one draw.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniform integer in `0..n`; `n == 0` gives 0 without drawing.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire: the high word of x * n is uniform once the low word clears the bias zone.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // The first outputs of the reference splitmix64 from state 0.
        let mut sm = 0u64;
        let mut next = || {
            sm = sm.wrapping_add(GOLDEN);
            mix64(sm)
        };
        assert_eq!(next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn xoshiro_matches_the_reference_step() {
        // Reference xoshiro256** from state {1, 2, 3, 4}: outputs 11520, 0, 1509978240.
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!([r.next_u64(), r.next_u64(), r.next_u64()], [11520, 0, 1_509_978_240]);
    }

    #[test]
    fn below_stays_in_range_and_stream_zero_is_the_seed() {
        let mut r = Rng::new(7);
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert_eq!(Rng::for_stream(7, 0), Rng::new(7));
        assert_ne!(Rng::for_stream(7, 1), Rng::new(7));
    }
}
