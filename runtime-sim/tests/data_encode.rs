//! Encoders: Bernoulli rates match `max_rate * v`, each seed gives one encoding, and the bit
//! and byte layouts are exactly the documented ones (checked on cases worked out by hand).

use half::f16;
use sim::data::encode::{encode_direct, f16_bytes, one_hot, spikes_from_frames};
use sim::data::rng::Rng;
use sim::data::{Bernoulli, EncodedInput, Encoding, SpikeTensor};

#[test]
fn bernoulli_rates_match_max_rate_times_value() {
    let values = [0.0f32, 0.1, 0.25, 0.5, 0.8, 1.0];
    let (batch, timesteps, max_rate) = (1, 20_000, 0.6);
    let spikes = Bernoulli::new(max_rate, 3).expect("rate").encode(&values, batch, timesteps, 0).expect("shape");
    for (f, &v) in values.iter().enumerate() {
        let fired = (0..timesteps).filter(|&t| spikes.get(0, t, f)).count();
        let (rate, p) = (fired as f64 / timesteps as f64, max_rate * f64::from(v));
        // Five standard deviations of a binomial proportion, plus a hair for p = 0.
        let tolerance = 5.0 * (p * (1.0 - p) / timesteps as f64).sqrt() + 1e-9;
        assert!((rate - p).abs() <= tolerance, "feature {f}: rate {rate} vs {p}");
    }
    let full = Bernoulli::new(1.0, 3).expect("rate").encode(&[1.0, 0.0], 1, 50, 0).expect("shape");
    assert_eq!(full.count_ones(), 50, "v = 1 at max_rate 1 fires every step, v = 0 never");
}

#[test]
fn bernoulli_is_deterministic_per_seed_and_stream() {
    let values: Vec<f32> = (0..64).map(|i| i as f32 / 64.0).collect();
    let enc = |seed, stream| Bernoulli { max_rate: 1.0, seed }.encode(&values, 2, 8, stream).expect("shape");
    assert_eq!(enc(1, 0), enc(1, 0));
    assert_ne!(enc(1, 0), enc(2, 0), "another seed");
    assert_ne!(enc(1, 0), enc(1, 1), "another batch stream");
}

#[test]
fn bernoulli_follows_the_documented_draw_order() {
    // One generator for stream 9 of seed 4; one draw per element in (b, t, f) order, fire if
    // the draw is below max_rate * v.
    let values = [0.3f32, 0.9, 0.5, 0.7];
    let spikes = Bernoulli { max_rate: 0.8, seed: 4 }.encode(&values, 2, 3, 9).expect("shape");
    let mut rng = Rng::for_stream(4, 9);
    for b in 0..2 {
        for t in 0..3 {
            for f in 0..2 {
                let p = 0.8 * f64::from(values[b * 2 + f]);
                assert_eq!(spikes.get(b, t, f), rng.next_f64() < p, "element ({b}, {t}, {f})");
            }
        }
    }
}

#[test]
fn spike_bytes_have_the_hand_computed_layout() {
    // [B=2, T=2, F=3]: 12 elements, index (b*T + t)*F + f, element i in bit i%8 of byte i/8.
    let mut s = SpikeTensor::zeros(2, 2, 3);
    s.set(0, 0, 0, true); // index 0 -> byte 0 bit 0
    s.set(0, 1, 2, true); // index 5 -> byte 0 bit 5
    s.set(1, 0, 1, true); // index 7 -> byte 0 bit 7
    s.set(1, 1, 0, true); // index 9 -> byte 1 bit 1
    s.set(1, 1, 2, true); // index 11 -> byte 1 bit 3
    assert_eq!(s.to_bytes(), [0b1010_0001, 0b0000_1010], "two bytes, unused high bits zero");
    // Time-major [T, B, F]: (t*B + b)*F + f -> indices 0, 8, 4, 9, 11.
    let tm: Vec<usize> = s.to_time_major().slice(0, 12).ones().collect();
    assert_eq!(tm, [0, 4, 8, 9, 11]);
    assert_eq!(EncodedInput::Spikes(s).to_bytes(), [0b1010_0001, 0b0000_1010]);
    assert_eq!(SpikeTensor::zeros(1, 3, 3).to_bytes().len(), 2, "9 bits take 2 bytes");
}

#[test]
fn direct_current_repeats_scaled_values_as_fp16() {
    let out = encode_direct(&[0.5, 1.0, 0.1, 0.0], 2, 2, 2.0).expect("shape");
    let want: Vec<f16> = [1.0f32, 2.0, 1.0, 2.0, 0.2, 0.0, 0.2, 0.0].iter().map(|&v| f16::from_f32(v)).collect();
    assert_eq!(out, want, "[B, T, F]: each row once per timestep");
    // 0.2 rounds to binary16 0x3266; 1.0 is 0x3C00; bytes are little-endian.
    assert_eq!(f16_bytes(&out[..1]), [0x00, 0x3C]);
    assert_eq!(f16_bytes(&out[4..5]), [0x66, 0x32]);
    let via_enum = Encoding::Direct { scale: 2.0 }.encode(&[0.5, 1.0, 0.1, 0.0], 2, 2, 0).expect("shape");
    assert_eq!(via_enum, EncodedInput::Current(want));
}

#[test]
fn spikes_pass_through_and_one_hot_targets() {
    let frames = [0.0f32, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let s = spikes_from_frames(&frames, 2, 2).expect("shape");
    assert_eq!(s.shape(), [2, 2, 2]);
    assert_eq!(s.to_bytes(), [0b1011_0010]);
    assert_eq!(Encoding::Spikes.encode(&frames, 2, 2, 0).expect("shape"), EncodedInput::Spikes(s));
    let t = one_hot(&[Some(2), None, Some(0)], 3).expect("labels");
    let want: Vec<f16> = [0.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0].iter().map(|&v| f16::from_f32(v)).collect();
    assert_eq!(t, want, "[B, classes], padding row all zero");
    assert_eq!(&f16_bytes(&t)[4..6], [0x00, 0x3C]);
}

#[test]
fn encoders_reject_bad_shapes_and_rates() {
    let msg = |r: Result<SpikeTensor, sim::data::DataError>| r.expect_err("rejected").to_string();
    assert_eq!(
        msg(Bernoulli::new(1.5, 0).map(|_| SpikeTensor::zeros(0, 0, 0))),
        "invalid max_rate: 1.5: a rate is a probability in [0, 1]"
    );
    let b = Bernoulli { max_rate: 1.0, seed: 0 };
    assert_eq!(msg(b.encode(&[0.0; 5], 2, 4, 0)), "invalid input: 5 values do not split into 2 equal rows");
    assert_eq!(msg(b.encode(&[0.0; 4], 0, 4, 0)), "invalid shape: batch 0 and timesteps 4 must be positive");
    assert!(one_hot(&[Some(3)], 3).is_err());
}
