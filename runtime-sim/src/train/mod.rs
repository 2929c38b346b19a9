//! Training on the simulated chip: the loop behind `snnc train`.
//!
//! The weights live in the simulated DRAM and only the chip's programs change them; the host
//! does what a host does — it places batches in DRAM, starts programs, and reads back the
//! loss and the output sums. One [`Machine`] holds the whole run:
//!
//! - **Training** runs a training program of `S` steps ([`TrainConfig::steps_per_run`], cut
//!   down to a divisor of the epoch's batch count so every run has the same DRAM layout):
//!   the host writes `S` batches into `input` and `target`, runs, and reads `loss` and
//!   `output`. Each run's program is asked for with the number of steps taken so far
//!   ([`ProgramRequest::first_step`]), so Adam's bias correction continues across runs
//!   although `cfg.opt` resets its counter.
//! - **Evaluation**, after every epoch, swaps in an inference program (forward only, no
//!   update) with [`Machine::load_code`] and runs it over the held-out split, `S` batches
//!   at a time, the last batch and run padded with empty slots that are not counted. The
//!   prediction is the class with the largest output sum (spike count, or summed membrane
//!   of a readout), the first such on ties.
//!
//! Programs come from the caller ([`ProgramSource`]): the simulator knows nothing of the
//! compiler, so `snnc train` passes a closure that runs code generation. The data order is
//! deterministic: the seeded 80/20 split, one shuffle per epoch, and the rate coder's
//! generator stream numbered by batch ([`TrainData::input_bytes`]). Between runs the loop
//! polls an [`Interrupt`]; a stop leaves the weights of every completed run in DRAM.

mod data;
mod params;

pub use data::{TrainData, pack_rows};
pub use params::ParamLayer;

use crate::data::split::{Remainder, batches, epoch_order};
use crate::data::{Batch, DataError, Split};
use crate::record::{EpochRecord, Interrupt, Weights};
use crate::{Machine, RunStats, SimError, SimOptions};
use isa::{ChipDesc, Program};
use std::time::Instant;
use thiserror::Error;

/// What went wrong while training.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The program source failed (code generation).
    #[error("{0}")]
    Program(String),
    /// The simulator stopped with an error.
    #[error("the simulated program failed: {0}")]
    Sim(#[from] SimError),
    /// The data do not fit the model, or could not be encoded.
    #[error("{0}")]
    Data(#[from] DataError),
    /// Weights to resume from do not fit the model.
    #[error("{0}")]
    Weights(String),
}

/// Which program the trainer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramRequest {
    /// Steps (batches) per run.
    pub steps: u32,
    /// Training steps taken before this run.
    pub first_step: u32,
    /// A training program, or an inference program (forward and output sums only).
    pub train: bool,
}

/// Makes programs on request; both kinds must store the `output` sums, and all programs
/// of one step count must share their DRAM layout.
pub type ProgramSource<'a> = dyn FnMut(ProgramRequest) -> Result<Program, String> + 'a;

/// What to train and how.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The model's name.
    pub model: String,
    /// Batch size `B` and timesteps `T` of the model.
    pub batch: usize,
    /// Timesteps `T`.
    pub timesteps: usize,
    /// Classes `C` (the output layer's size).
    pub classes: usize,
    /// The model's input features per timestep.
    pub features: usize,
    /// The seed of the split and the shuffles.
    pub seed: u64,
    /// At most this many training steps per program run.
    pub steps_per_run: usize,
    /// The model's weight layers.
    pub layers: Vec<ParamLayer>,
    /// How the simulator runs.
    pub sim: SimOptions,
    /// Host threads for the evaluation runs; 0 takes [`crate::host_threads`]. The results
    /// are the same for every count.
    pub eval_threads: usize,
}

/// The simulated cost of some runs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Program runs.
    pub runs: u64,
    /// Steps (batches) run.
    pub steps: u64,
    /// Chip cycles.
    pub cycles: u64,
    /// Chip time, microseconds.
    pub time_us: f64,
    /// Energy, picojoules.
    pub energy_pj: f64,
    /// DRAM bytes read and written.
    pub dram_bytes: u64,
}

impl Cost {
    /// Adds one run of `steps` steps.
    fn add(&mut self, stats: &RunStats, steps: usize) {
        self.runs += 1;
        self.steps += steps as u64;
        self.cycles += stats.cycles;
        self.time_us += stats.time_us;
        self.energy_pj += stats.energy.total_pj();
        self.dram_bytes += stats.dram.total_bytes();
    }

    /// Adds another cost.
    pub fn merge(&mut self, o: &Cost) {
        self.runs += o.runs;
        self.steps += o.steps;
        self.cycles += o.cycles;
        self.time_us += o.time_us;
        self.energy_pj += o.energy_pj;
        self.dram_bytes += o.dram_bytes;
    }
}

/// Where an epoch is, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The epoch, from 1.
    pub epoch: u32,
    /// Training batches done in this epoch, and their number.
    pub batch: usize,
    /// Training batches per epoch.
    pub batches: usize,
    /// Mean loss of the epoch's batches so far.
    pub loss: f64,
    /// Training accuracy of the epoch so far.
    pub accuracy: f64,
    /// Simulated training time of the epoch so far, microseconds.
    pub chip_us: f64,
}

/// A completed epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// The run record's entry.
    pub record: EpochRecord,
    /// Cost of the training runs.
    pub train: Cost,
    /// Cost of the evaluation runs.
    pub eval: Cost,
}

/// How an epoch ended.
#[derive(Clone, Debug, PartialEq)]
pub enum EpochOutcome {
    /// Trained and evaluated.
    Done(EpochReport),
    /// Stopped by the interrupt after this many training runs; there is no evaluation.
    Interrupted {
        /// The cost of the runs done.
        train: Cost,
    },
}

/// Correct predictions among samples counted.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    correct: usize,
    seen: usize,
}

impl Tally {
    fn accuracy(&self) -> f64 {
        if self.seen == 0 { f64::NAN } else { self.correct as f64 / self.seen as f64 }
    }
}

/// A training run on one simulated chip.
pub struct Trainer<'a> {
    config: TrainConfig,
    programs: Box<ProgramSource<'a>>,
    data: &'a TrainData,
    split: Split,
    machine: Machine,
    /// Steps per run `S`; training batches per epoch.
    steps: usize,
    batches: usize,
    /// The inference program, made once.
    eval: Program,
    /// Training steps taken so far.
    step: u32,
    /// Machines of the extra evaluation threads, kept between epochs.
    spares: Vec<Machine>,
}

impl<'a> Trainer<'a> {
    /// Splits the data, asks for the first programs and loads the chip.
    pub fn new(
        chip: &ChipDesc,
        config: TrainConfig,
        data: &'a TrainData,
        mut programs: Box<ProgramSource<'a>>,
    ) -> Result<Trainer<'a>, TrainError> {
        check_data(&config, data)?;
        let split = Split::train_test(data.len(), config.seed);
        let batches = split.train.len() / config.batch.max(1);
        if batches == 0 {
            let why = format!(
                "the training split has {} samples, fewer than one batch of {}",
                split.train.len(),
                config.batch
            );
            return Err(TrainError::Data(DataError::Invalid { what: "data set", why }));
        }
        let steps = largest_divisor(batches, config.steps_per_run.max(1));
        let request = |train| ProgramRequest { steps: steps as u32, first_step: 0, train };
        let first = programs(request(true)).map_err(TrainError::Program)?;
        let eval = programs(request(false)).map_err(TrainError::Program)?;
        let machine = Machine::new(&first, chip, config.sim.clone())?;
        Ok(Trainer { config, programs, data, split, machine, steps, batches, eval, step: 0, spares: Vec::new() })
    }

    /// The split in use.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Steps per program run.
    pub fn steps_per_run(&self) -> usize {
        self.steps
    }

    /// Training batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    /// The machine (for reading tensors).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The current weights (the FP32 masters), in the model's layout.
    pub fn weights(&self) -> Result<Weights, TrainError> {
        params::read(&self.machine, &self.config.model, &self.config.layers)
    }

    /// Replaces the weights in DRAM (to resume a run); the optimizer state stays as it is.
    pub fn load_weights(&mut self, weights: &Weights) -> Result<(), TrainError> {
        params::write(&mut self.machine, &self.config.model, &self.config.layers, weights)
    }

    /// Trains one epoch (1-based `epoch`) and evaluates, calling `progress` after every run
    /// and stopping early when `stop` is requested.
    pub fn epoch(
        &mut self,
        epoch: u32,
        stop: &Interrupt,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<EpochOutcome, TrainError> {
        let started = Instant::now();
        let order = epoch_order(&self.split.train, self.config.seed, u64::from(epoch));
        let all = batches(&order, self.config.batch, Remainder::Drop);
        let (mut cost, mut tally, mut loss_sum) = (Cost::default(), Tally::default(), 0.0);
        let groups: Vec<&[Batch]> = all.chunks(self.steps).collect();
        let (per_epoch, steps) = (self.batches as u64, self.steps);
        let stream = move |r: usize| u64::from(epoch - 1) * per_epoch + (r * steps) as u64;
        let (data, timesteps) = (self.data, self.config.timesteps);
        // The host encodes the next run's batches on a second thread while the chip runs.
        let mut next = groups.first().map(|g| encode_group(data, timesteps, g, stream(0)));
        for (r, group) in groups.iter().enumerate() {
            if stop.requested() {
                return Ok(EpochOutcome::Interrupted { train: cost });
            }
            let encoded = next.take().unwrap_or_else(|| encode_group(data, timesteps, group, stream(r)))?;
            let (stats, loss) = std::thread::scope(|sc| {
                let ahead =
                    groups.get(r + 1).map(|g| sc.spawn(move || encode_group(data, timesteps, g, stream(r + 1))));
                let ran = self.train_run(group, encoded, &mut tally);
                // Should the encoder thread die, the next run encodes on this thread instead.
                next = ahead.and_then(|h| h.join().ok());
                ran
            })?;
            cost.add(&stats, group.len());
            loss_sum += loss;
            let batch = (r + 1) * self.steps;
            let p = Progress {
                epoch,
                batch,
                batches: self.batches,
                loss: loss_sum / batch as f64,
                accuracy: tally.accuracy(),
                chip_us: cost.time_us,
            };
            progress(&p);
        }
        let (eval, test) = self.evaluate()?;
        let mut total = cost;
        total.merge(&eval);
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / self.batches as f64,
            train_accuracy: tally.accuracy(),
            test_accuracy: test.accuracy(),
            cycles: total.cycles,
            energy_pj: total.energy_pj,
            dram_bytes: total.dram_bytes,
            wall_seconds: started.elapsed().as_secs_f64(),
        };
        Ok(EpochOutcome::Done(EpochReport { record, train: cost, eval }))
    }

    /// One training run over `group` (exactly `S` batches, already encoded): the summed
    /// loss of its steps.
    fn train_run(
        &mut self,
        group: &[Batch],
        encoded: Encoded,
        tally: &mut Tally,
    ) -> Result<(RunStats, f64), TrainError> {
        let request = ProgramRequest { steps: self.steps as u32, first_step: self.step, train: true };
        let program = (self.programs)(request).map_err(TrainError::Program)?;
        self.machine.load_code(&program)?;
        encoded.write(&mut self.machine)?;
        let stats = self.machine.run()?;
        self.step += self.steps as u32;
        let loss: f64 = self.machine.read_f32("loss")?.iter().map(|&l| f64::from(l)).sum();
        count(self.data, self.config.classes, group, &self.machine.read_f32("output")?, tally);
        Ok((stats, loss))
    }

    /// Accuracy on the test split with the inference program, and its cost.
    ///
    /// Evaluation runs do not depend on each other (each starts from the trained weights
    /// and sets every state it reads), so they are spread over the host's threads: the
    /// first share on the training machine, the others on spare machines. Costs are added
    /// in run order, so the totals do not depend on the thread count.
    fn evaluate(&mut self) -> Result<(Cost, Tally), TrainError> {
        let (b, s) = (self.config.batch, self.steps);
        let mut all = batches(&self.split.test, b, Remainder::Pad);
        // Whole runs: the last one is filled with empty batches, which count no sample.
        all.resize(all.len().div_ceil(s) * s, Batch::new(Vec::new(), b));
        let eval = self.eval.clone();
        self.machine.load_code(&eval)?;
        let runs: Vec<(usize, &[Batch])> = all.chunks(s).enumerate().collect();
        let wanted = if self.config.eval_threads == 0 { crate::host_threads() } else { self.config.eval_threads };
        let threads = wanted.clamp(1, runs.len().max(1));
        self.prepare_spares(threads - 1, &eval)?;
        let (mut cost, mut tally) = (Cost::default(), Tally::default());
        for ((stats, output), (_, group)) in self.eval_shares(&runs, threads)?.into_iter().zip(&runs) {
            cost.add(&stats, s);
            count(self.data, self.config.classes, group, &output, &mut tally);
        }
        Ok((cost, tally))
    }

    /// `n` spare machines loaded with `eval` and the training machine's DRAM. They are kept
    /// between epochs and brought up to date page by page, which costs less than a clone.
    fn prepare_spares(&mut self, n: usize, eval: &Program) -> Result<(), TrainError> {
        while self.spares.len() < n {
            self.spares.push(self.machine.clone());
        }
        for spare in &mut self.spares[..n] {
            spare.load_code(eval)?;
            spare.copy_dram_from(&self.machine)?;
        }
        Ok(())
    }

    /// Runs `runs` in `threads` consecutive shares, the first on this thread with the
    /// training machine and each other on a thread of its own with a spare; the results in
    /// run order.
    fn eval_shares(&mut self, runs: &[(usize, &[Batch])], threads: usize) -> Result<Vec<EvalRun>, TrainError> {
        let (data, timesteps, s) = (self.data, self.config.timesteps, self.steps);
        let mut shares = runs.chunks(runs.len().div_ceil(threads).max(1));
        let first = shares.next().unwrap_or_default();
        let machine = &mut self.machine;
        let results: Vec<Result<Vec<EvalRun>, TrainError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = shares
                .zip(self.spares.iter_mut())
                .map(|(share, m)| {
                    sc.spawn(move || share.iter().map(|&(r, g)| eval_run(m, data, timesteps, g, r, s)).collect())
                })
                .collect();
            let mine = first.iter().map(|&(r, g)| eval_run(machine, data, timesteps, g, r, s)).collect();
            let others = handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(panicked())));
            std::iter::once(mine).chain(others).collect()
        });
        Ok(results.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect())
    }
}

/// An evaluation run's cost and output sums.
type EvalRun = (RunStats, Vec<f32>);

/// A run's batches as the bytes of the `input` and `target` tensors.
struct Encoded {
    input: Vec<u8>,
    target: Vec<u8>,
}

impl Encoded {
    fn write(&self, machine: &mut Machine) -> Result<(), TrainError> {
        machine.write_symbol("input", &self.input)?;
        machine.write_symbol("target", &self.target)?;
        Ok(())
    }
}

/// Encodes the inputs and targets of `group` (batch `i` uses generator stream
/// `stream + i`).
fn encode_group(data: &TrainData, timesteps: usize, group: &[Batch], stream: u64) -> Result<Encoded, TrainError> {
    let (mut input, mut target) = (Vec::new(), Vec::new());
    for (i, batch) in group.iter().enumerate() {
        input.extend(data.input_bytes(batch, timesteps, stream + i as u64)?);
        target.extend(data.target_bytes(batch)?);
    }
    Ok(Encoded { input, target })
}

/// Evaluation run `r` of `steps` batches on `machine`: its cost and output sums. Each run
/// has a generator stream range of its own, the same every epoch, so epochs are compared
/// on the same test spikes.
fn eval_run(
    machine: &mut Machine,
    data: &TrainData,
    timesteps: usize,
    group: &[Batch],
    r: usize,
    steps: usize,
) -> Result<EvalRun, TrainError> {
    encode_group(data, timesteps, group, (1 << 48) + (r * steps) as u64)?.write(machine)?;
    let stats = machine.run()?;
    Ok((stats, machine.read_f32("output")?))
}

/// A worker thread died: a bug in the simulator, reported rather than propagated as a panic.
fn panicked() -> TrainError {
    TrainError::Program("an evaluation thread panicked".into())
}

/// Counts the right predictions of `group` from its `output` sums.
fn count(data: &TrainData, classes: usize, group: &[Batch], output: &[f32], tally: &mut Tally) {
    let slots = group.iter().flat_map(|b| data.labels(b));
    for (sums, label) in output.chunks_exact(classes.max(1)).zip(slots) {
        let Some(label) = label else { continue };
        tally.seen += 1;
        tally.correct += usize::from(argmax(sums) == label as usize);
    }
}

/// The index of the largest value, the first on ties.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The largest divisor of `n` that is at most `cap`.
fn largest_divisor(n: usize, cap: usize) -> usize {
    (1..=cap.min(n)).rev().find(|d| n % d == 0).unwrap_or(1)
}

/// The data must have the model's features and classes.
fn check_data(config: &TrainConfig, data: &TrainData) -> Result<(), TrainError> {
    let features = data.features(config.timesteps);
    let bad = |why: String| Err(TrainError::Data(DataError::Invalid { what: "data set", why }));
    if features != config.features {
        let name = data.name();
        return bad(format!("{name} has {features} features per sample but the model's input has {}", config.features));
    }
    if data.classes() != config.classes {
        let (name, c) = (data.name(), data.classes());
        return bad(format!("{name} has {c} classes but the model's output layer has {}", config.classes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_the_epoch_in_equal_steps() {
        assert_eq!(largest_divisor(44, 4), 4);
        assert_eq!(largest_divisor(43, 8), 1);
        assert_eq!(largest_divisor(12, 100), 12);
    }

    #[test]
    fn ties_go_to_the_first_class() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[0.0, 0.0]), 0);
    }
}
