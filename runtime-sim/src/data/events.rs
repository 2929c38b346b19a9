//! A synthetic generator of DVS-style event streams: shapes moving across the sensor.
//!
//! It stands in for DVS128 Gesture (`models/dvs_gesture.snn`: 2x128x128 spikes, 11 classes)
//! so conv models can be trained without downloads. A sample is a shape moving in a straight
//! line at constant speed. Its brightness is rendered at `T + 1` instants `k = 0..=T`, and an
//! event camera's two polarity channels are derived from consecutive renderings: at timestep
//! `t` (`0..T`), channel 0 (ON) fires where a pixel became bright between instants `t` and
//! `t + 1`, channel 1 (OFF) where it became dark. Optional background noise adds spurious
//! events with probability [`EventConfig::noise`] per pixel, channel and timestep.
//!
//! # Classes
//!
//! Class `c` is shape `SHAPES[c / 8]` moving in direction `DIRECTIONS[c % 8]`, so up to
//! [`MAX_CLASSES`] = 24 classes: 1–8 classes are bars in different directions, 11 classes
//! (the gesture count) are 8 bar directions and 3 square directions. Sample `i` has class
//! `i % classes`, so every class has exactly [`EventConfig::samples_per_class`] samples.
//!
//! # Shapes and motion
//!
//! With `m = min(H, W)`, a sample draws (from [`Rng::for_stream(seed, i)`](Rng::for_stream),
//! in this order) the half-length `m * U(0.12, 0.2)`, the speed
//! `max(1, m * U(0.35, 0.5) / T)` pixels per timestep and the centre offset `m * U(-0.08,
//! 0.08)` in x, then in y; at instant `k` the shape's centre is the image centre plus the
//! offset plus `(k - T/2) * speed * direction`. A pixel is bright when its centre lies inside
//! the shape: a *bar* is a band `2 * max(0.75, half_length / 4)` wide across the direction of
//! motion and `2 * half_length` long; a *square* is axis-aligned with half-side
//! `0.6 * half_length`; a *cross* is the bar plus the same band along the motion. Noise
//! draws follow, one per element in `[T, 2, H, W]` order, if `noise > 0`.
//!
//! Frames are `[T, 2, H, W]` bits per sample, so the features of one timestep are `[2, H, W]`
//! row-major, as the model's input shape reads them.

use super::DataError;
use super::encode::SpikeTensor;
use super::rng::Rng;
use super::split::Batch;
use crate::spikes::SpikeBits;

/// The shapes, in class order.
pub const SHAPES: [&str; 3] = ["bar", "square", "cross"];

/// The directions of motion (name, x, y; y grows downwards), in class order.
pub const DIRECTIONS: [(&str, f64, f64); 8] = [
    ("right", 1.0, 0.0),
    ("left", -1.0, 0.0),
    ("down", 0.0, 1.0),
    ("up", 0.0, -1.0),
    ("down-right", 1.0, 1.0),
    ("up-left", -1.0, -1.0),
    ("down-left", -1.0, 1.0),
    ("up-right", 1.0, -1.0),
];

/// The most classes the generator distinguishes (shapes x directions).
pub const MAX_CLASSES: usize = SHAPES.len() * DIRECTIONS.len();

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventConfig {
    /// Sensor height in pixels.
    pub height: usize,
    /// Sensor width in pixels.
    pub width: usize,
    /// Timesteps (frames) per sample.
    pub timesteps: usize,
    /// Number of classes, `1..=24`.
    pub classes: usize,
    /// Samples of each class.
    pub samples_per_class: usize,
    /// Probability of a noise event per pixel, channel and timestep.
    pub noise: f64,
    /// The seed every sample's generator stream derives from.
    pub seed: u64,
}

impl EventConfig {
    /// The shape of `models/dvs_gesture.snn`: 128x128 pixels, 16 timesteps, 11 classes, with
    /// a little background noise.
    pub fn dvs_gesture(samples_per_class: usize, seed: u64) -> EventConfig {
        EventConfig { height: 128, width: 128, timesteps: 16, classes: 11, samples_per_class, noise: 0.001, seed }
    }
}

/// The synthetic event data set: samples are generated on demand from their index.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticEvents {
    config: EventConfig,
}

impl SyntheticEvents {
    /// A generator; sizes must be positive, `classes` at most [`MAX_CLASSES`] and `noise` a
    /// probability.
    pub fn new(config: EventConfig) -> Result<SyntheticEvents, DataError> {
        let c = &config;
        if c.height < 4 || c.width < 4 || c.timesteps == 0 || c.samples_per_class == 0 {
            let (h, w, t, n) = (c.height, c.width, c.timesteps, c.samples_per_class);
            let why = format!("{h}x{w} pixels, {t} timesteps, {n} samples per class: need 4x4 pixels and one of each");
            return Err(DataError::invalid("event data size", why));
        }
        if c.classes == 0 || c.classes > MAX_CLASSES {
            return Err(DataError::invalid(
                "classes",
                format!("{}: the generator makes 1 to {MAX_CLASSES} classes", c.classes),
            ));
        }
        if !(0.0..=1.0).contains(&c.noise) {
            return Err(DataError::invalid("noise", format!("{}: a probability in [0, 1]", c.noise)));
        }
        Ok(SyntheticEvents { config })
    }

    /// The configuration.
    pub fn config(&self) -> &EventConfig {
        &self.config
    }

    /// Number of samples: classes x samples per class.
    pub fn len(&self) -> usize {
        self.config.classes * self.config.samples_per_class
    }

    /// Whether there is no sample (never, for a valid configuration).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.config.classes
    }

    /// The per-timestep input shape `[2, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        [2, self.config.height, self.config.width]
    }

    /// Features per timestep: `2 * H * W`.
    pub fn features(&self) -> usize {
        2 * self.config.height * self.config.width
    }

    /// The class of sample `i`: `i % classes`.
    pub fn label(&self, i: usize) -> u32 {
        (i % self.config.classes) as u32
    }

    /// A class's name, for example `bar up-left`.
    pub fn class_name(class: usize) -> String {
        let shape = SHAPES[(class / DIRECTIONS.len()) % SHAPES.len()];
        format!("{shape} {}", DIRECTIONS[class % DIRECTIONS.len()].0)
    }

    /// The frames of sample `i`: `[T, 2, H, W]` bits.
    pub fn sample(&self, i: usize) -> SpikeBits {
        let c = &self.config;
        let mut rng = Rng::for_stream(c.seed, i as u64);
        let motion = Motion::random(c, self.label(i) as usize, &mut rng);
        let (h, w) = (c.height, c.width);
        let mut out = SpikeBits::zeros(c.timesteps * 2 * h * w);
        let mut before = motion.render(0, h, w);
        for t in 0..c.timesteps {
            let after = motion.render(t + 1, h, w);
            let frame = t * 2 * h * w;
            for (p, (&b0, &b1)) in before.iter().zip(&after).enumerate() {
                out.set(frame + p, b1 && !b0);
                out.set(frame + h * w + p, b0 && !b1);
            }
            before = after;
        }
        if c.noise > 0.0 {
            (0..out.len()).filter(|_| rng.bernoulli(c.noise)).for_each(|e| out.set(e, true));
        }
        out
    }

    /// A batch's frames as a `[B, T, 2*H*W]` spike tensor; padding slots are all zero.
    pub fn batch(&self, batch: &Batch) -> SpikeTensor {
        let (t, f) = (self.config.timesteps, self.features());
        let mut out = SpikeTensor::zeros(batch.size(), t, f);
        for (slot, &i) in batch.samples().iter().enumerate() {
            let frames = self.sample(i);
            for e in frames.slice(0, frames.len()).ones() {
                out.set(slot, e / f, e % f, true);
            }
        }
        out
    }

    /// The batch's labels, one per slot, `None` for padding.
    pub fn batch_labels(&self, batch: &Batch) -> Vec<Option<u32>> {
        (0..batch.size()).map(|s| batch.slot(s).map(|i| self.label(i))).collect()
    }
}

/// One sample's moving shape.
struct Motion {
    shape: usize,
    dir: (f64, f64),
    centre: (f64, f64),
    speed: f64,
    half_len: f64,
    half_width: f64,
    timesteps: usize,
}

impl Motion {
    /// Draws the sample's parameters, in the order the module documentation gives.
    fn random(c: &EventConfig, class: usize, rng: &mut Rng) -> Motion {
        let m = c.height.min(c.width) as f64;
        let (_, dx, dy) = DIRECTIONS[class % DIRECTIONS.len()];
        let norm = (dx * dx + dy * dy).sqrt();
        let half_len = m * rng.range_f64(0.12, 0.2);
        let speed = (m * rng.range_f64(0.35, 0.5) / c.timesteps as f64).max(1.0);
        let cx = c.width as f64 / 2.0 + m * rng.range_f64(-0.08, 0.08);
        let cy = c.height as f64 / 2.0 + m * rng.range_f64(-0.08, 0.08);
        Motion {
            shape: class / DIRECTIONS.len(),
            dir: (dx / norm, dy / norm),
            centre: (cx, cy),
            speed,
            half_len,
            half_width: (half_len / 4.0).max(0.75),
            timesteps: c.timesteps,
        }
    }

    /// The brightness (inside the shape or not) of every pixel at instant `k`, `[H, W]`.
    fn render(&self, k: usize, h: usize, w: usize) -> Vec<bool> {
        let shift = (k as f64 - self.timesteps as f64 / 2.0) * self.speed;
        let (px, py) = (self.centre.0 + shift * self.dir.0, self.centre.1 + shift * self.dir.1);
        let mut out = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                out.push(self.covers(x as f64 + 0.5 - px, y as f64 + 0.5 - py));
            }
        }
        out
    }

    /// Whether the offset `(dx, dy)` from the shape's centre lies inside the shape.
    fn covers(&self, dx: f64, dy: f64) -> bool {
        let along = dx * self.dir.0 + dy * self.dir.1;
        let across = dy * self.dir.0 - dx * self.dir.1;
        let bar = along.abs() <= self.half_width && across.abs() <= self.half_len;
        match self.shape {
            0 => bar,
            1 => dx.abs() <= 0.6 * self.half_len && dy.abs() <= 0.6 * self.half_len,
            _ => bar || (across.abs() <= self.half_width && along.abs() <= self.half_len),
        }
    }
}
