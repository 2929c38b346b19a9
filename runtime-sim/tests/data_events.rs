//! The synthetic event generator: deterministic per seed, balanced classes, two polarity
//! channels derived from brightness changes, and classes that differ in the way they are
//! meant to (the direction the events travel).

use sim::data::events::{DIRECTIONS, MAX_CLASSES};
use sim::data::split::{Remainder, batches};
use sim::data::{EventConfig, SyntheticEvents};
use sim::spikes::SpikeBits;

fn config(classes: usize, noise: f64) -> EventConfig {
    EventConfig { height: 32, width: 32, timesteps: 8, classes, samples_per_class: 3, noise, seed: 11 }
}

fn generator(classes: usize, noise: f64) -> SyntheticEvents {
    SyntheticEvents::new(config(classes, noise)).expect("valid configuration")
}

/// The mean (x, y) of channel `c`'s events at timestep `t`, if there are any.
fn centroid(frames: &SpikeBits, t: usize, c: usize) -> Option<(f64, f64)> {
    let (h, w) = (32, 32);
    let start = (t * 2 + c) * h * w;
    let ones: Vec<usize> = frames.slice(start, h * w).ones().collect();
    let n = ones.len() as f64;
    (!ones.is_empty()).then(|| {
        let sx: f64 = ones.iter().map(|p| (p % w) as f64).sum();
        let sy: f64 = ones.iter().map(|p| (p / w) as f64).sum();
        (sx / n, sy / n)
    })
}

#[test]
fn generation_is_deterministic_per_seed() {
    let g = generator(11, 0.01);
    assert_eq!(g.sample(5), generator(11, 0.01).sample(5));
    assert_ne!(g.sample(5), g.sample(5 + 11), "two samples of one class differ");
    let other = SyntheticEvents::new(EventConfig { seed: 12, ..config(11, 0.01) }).expect("valid");
    assert_ne!(g.sample(5), other.sample(5), "another seed");
}

#[test]
fn classes_are_balanced() {
    let g = generator(11, 0.0);
    assert_eq!(g.len(), 33);
    let mut counts = vec![0; 11];
    (0..g.len()).for_each(|i| counts[g.label(i) as usize] += 1);
    assert_eq!(counts, vec![3; 11]);
    assert_eq!(SyntheticEvents::class_name(0), "bar right");
    assert_eq!(SyntheticEvents::class_name(10), "square down");
    assert_eq!(SyntheticEvents::class_name(MAX_CLASSES - 1), "cross up-right");
}

#[test]
fn frames_have_two_polarity_channels_from_brightness_changes() {
    let g = generator(11, 0.0);
    assert_eq!((g.shape(), g.features()), ([2, 32, 32], 2048));
    for i in 0..g.len() {
        let frames = g.sample(i);
        assert_eq!(frames.len(), 8 * 2 * 32 * 32, "[T, 2, H, W] bits");
        let on: usize = (0..8).map(|t| frames.slice(t * 2048, 1024).count_ones()).sum();
        let off: usize = (0..8).map(|t| frames.slice(t * 2048 + 1024, 1024).count_ones()).sum();
        assert!(on > 0 && off > 0, "sample {i}: a moving shape makes ON and OFF events ({on}, {off})");
        // Without noise a pixel cannot both brighten and darken in one step.
        for t in 0..8 {
            let both = (0..1024).filter(|&p| frames.get(t * 2048 + p) && frames.get(t * 2048 + 1024 + p)).count();
            assert_eq!(both, 0, "sample {i} step {t}");
        }
    }
}

#[test]
fn events_travel_in_the_class_direction() {
    let g = generator(8, 0.0);
    for (class, &(_, dx, dy)) in DIRECTIONS.iter().enumerate() {
        let frames = g.sample(class);
        let first = centroid(&frames, 0, 0).expect("ON events at the first step");
        let last = centroid(&frames, 7, 0).expect("ON events at the last step");
        let (mx, my) = (last.0 - first.0, last.1 - first.1);
        let along = mx * dx + my * dy;
        let across = (my * dx - mx * dy).abs();
        assert!(along > 3.0 && across < along / 2.0, "class {class}: moved ({mx:.1}, {my:.1})");
    }
}

#[test]
fn shapes_of_one_direction_differ() {
    let g = generator(24, 0.0);
    // Classes 0, 8 and 16 all move right: a bar, a square and a cross.
    let counts: Vec<usize> = [0, 8, 16].iter().map(|&c| g.sample(c).count_ones()).collect();
    assert!(counts[0] != counts[1] && counts[1] != counts[2], "event counts {counts:?}");
}

#[test]
fn noise_adds_events_at_about_its_rate() {
    let quiet = generator(1, 0.0).sample(0).count_ones();
    let noisy = generator(1, 0.05).sample(0).count_ones();
    let expected = 0.05 * (8 * 2 * 32 * 32) as f64;
    let added = (noisy - quiet) as f64;
    assert!((added - expected).abs() < 0.25 * expected, "{added} noise events, about {expected} expected");
}

#[test]
fn batches_stack_samples_as_b_t_f_with_zero_padding() {
    let g = generator(4, 0.0);
    let b = &batches(&[2, 7], 3, Remainder::Pad)[0];
    let tensor = g.batch(b);
    assert_eq!(tensor.shape(), [3, 8, 2048]);
    let sample7 = g.sample(7);
    for t in 0..8 {
        for f in (0..2048).step_by(7) {
            assert_eq!(tensor.get(1, t, f), sample7.get(t * 2048 + f));
        }
    }
    assert_eq!(tensor.count_ones(), g.sample(2).count_ones() + sample7.count_ones(), "the padding slot is empty");
    assert_eq!(g.batch_labels(b), [Some(2), Some(3), None]);
}

#[test]
fn the_gesture_shape_generates_and_bad_configs_are_rejected() {
    let g = SyntheticEvents::new(EventConfig::dvs_gesture(1, 3)).expect("valid");
    assert_eq!((g.shape(), g.classes(), g.len()), ([2, 128, 128], 11, 11));
    assert_eq!(g.sample(4).len(), 16 * 2 * 128 * 128);
    let err = SyntheticEvents::new(config(25, 0.0)).expect_err("too many classes");
    assert_eq!(err.to_string(), "invalid classes: 25: the generator makes 1 to 24 classes");
    assert!(SyntheticEvents::new(EventConfig { height: 2, ..config(2, 0.0) }).is_err());
    assert!(SyntheticEvents::new(config(2, 1.5)).is_err());
}
