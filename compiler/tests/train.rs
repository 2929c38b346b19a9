//! Training on the simulated chip through the library: the compiler's programs driven by
//! `sim::train` on a slice of the bundled digits. Deterministic (fixed seeds), so the
//! thresholds are checks of "it learns", not flaky statistics.

use isa::ChipDesc;
use sim::data::{Bernoulli, Encoding};
use sim::record::Interrupt;
use sim::train::{EpochOutcome, EpochReport, ParamLayer, ProgramRequest, TrainConfig, TrainData, Trainer};
use snnc::codegen::{self, CodegenOptions};
use snnc::graph::LayerGraph;
use std::path::Path;

fn digits_graph() -> LayerGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits.snn");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The first `n` digits, rate-coded as the model says.
fn digits(n: usize) -> TrainData {
    let set = sim::data::digits();
    let keep: Vec<usize> = (0..n).collect();
    let encoding = Encoding::Bernoulli(Bernoulli::new(1.0, 42).unwrap_or_else(|e| panic!("{e}")));
    TrainData::Static { set: set.subset(&keep), encoding }
}

fn config(graph: &LayerGraph) -> TrainConfig {
    let layer = |name: &str, out, inp| ParamLayer { name: name.into(), shape: vec![out, inp], bias: false };
    TrainConfig {
        model: graph.name.clone(),
        batch: graph.batch as usize,
        timesteps: graph.timesteps as usize,
        classes: 10,
        features: 64,
        seed: 1,
        steps_per_run: 4,
        layers: vec![layer("hidden", 128, 64), layer("classes", 10, 128)],
        sim: sim::SimOptions::default(),
        eval_threads: 0,
    }
}

fn trainer<'a>(graph: &'a LayerGraph, chip: &'a ChipDesc, data: &'a TrainData) -> Trainer<'a> {
    trainer_with(graph, chip, data, config(graph))
}

fn trainer_with<'a>(
    graph: &'a LayerGraph,
    chip: &'a ChipDesc,
    data: &'a TrainData,
    config: TrainConfig,
) -> Trainer<'a> {
    let programs = Box::new(move |r: ProgramRequest| {
        let options = CodegenOptions {
            steps: r.steps,
            first_step: r.first_step,
            train: r.train,
            outputs: true,
            ..Default::default()
        };
        codegen::compile(graph, chip, &options).map_err(|e| e.to_string())
    });
    Trainer::new(chip, config, data, programs).unwrap_or_else(|e| panic!("{e}"))
}

fn done(outcome: EpochOutcome) -> EpochReport {
    match outcome {
        EpochOutcome::Done(r) => r,
        EpochOutcome::Interrupted { .. } => panic!("the epoch was interrupted"),
    }
}

/// Evaluation runs on one thread or spread over three (more than this machine's cores,
/// with spare machines) give the same accuracy and the same simulated cost, epoch after
/// epoch (the spares are brought up to date between epochs).
#[test]
fn evaluation_does_not_depend_on_the_thread_count() {
    let (graph, chip, data) = (digits_graph(), ChipDesc::default(), digits(640));
    let stop = Interrupt::new();
    let reports = |threads: usize| -> Vec<(f64, sim::train::Cost)> {
        // One batch per run: four evaluation runs to share out.
        let config = TrainConfig { eval_threads: threads, steps_per_run: 1, ..config(&graph) };
        let mut t = trainer_with(&graph, &chip, &data, config);
        (1..=2)
            .map(|e| done(t.epoch(e, &stop, &mut |_| ()).unwrap_or_else(|err| panic!("{err}"))))
            .map(|r| (r.record.test_accuracy, r.eval))
            .collect()
    };
    let (one, three) = (reports(1), reports(3));
    assert_eq!(one, three);
    assert!(one.iter().all(|(_, cost)| cost.runs == 4), "{one:?}");
}

#[test]
fn a_slice_of_digits_is_learnt_well_above_chance() {
    let (graph, chip, data) = (digits_graph(), ChipDesc::default(), digits(640));
    let mut t = trainer(&graph, &chip, &data);
    assert_eq!((t.batches_per_epoch(), t.steps_per_run()), (16, 4));
    let stop = Interrupt::new();
    let mut calls = 0;
    let first = done(t.epoch(1, &stop, &mut |_| calls += 1).unwrap_or_else(|e| panic!("{e}")));
    let second = done(t.epoch(2, &stop, &mut |_| ()).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(calls, 4, "one progress call per run");
    assert!(second.record.train_loss < first.record.train_loss, "{first:?}\n{second:?}");
    // Chance is 10%; 128 test digits after 32 training steps.
    assert!(second.record.test_accuracy > 0.5, "{second:?}");
    assert_eq!(second.train.steps, 16);
    assert!(second.train.cycles > 0 && second.eval.cycles > 0 && second.train.dram_bytes > 0);
}

#[test]
fn training_is_deterministic_and_the_weights_read_back() {
    let (graph, chip, data) = (digits_graph(), ChipDesc::default(), digits(96));
    let run = || {
        let mut t = trainer(&graph, &chip, &data);
        let r = done(t.epoch(1, &Interrupt::new(), &mut |_| ()).unwrap_or_else(|e| panic!("{e}")));
        (r.record.train_loss, r.record.test_accuracy, t.weights().unwrap_or_else(|e| panic!("{e}")))
    };
    let (a, b) = (run(), run());
    assert_eq!((a.0.to_bits(), a.1.to_bits()), (b.0.to_bits(), b.1.to_bits()));
    assert_eq!(a.2, b.2);
    let w = a.2.get("hidden.weight").unwrap_or_else(|| panic!("no hidden.weight"));
    assert_eq!(w.shape, vec![128, 64]);
}

#[test]
fn loaded_weights_replace_the_chip_weights() {
    let (graph, chip, data) = (digits_graph(), ChipDesc::default(), digits(96));
    let mut trained = trainer(&graph, &chip, &data);
    done(trained.epoch(1, &Interrupt::new(), &mut |_| ()).unwrap_or_else(|e| panic!("{e}")));
    let weights = trained.weights().unwrap_or_else(|e| panic!("{e}"));
    let mut fresh = trainer(&graph, &chip, &data);
    assert_ne!(fresh.weights().ok(), Some(weights.clone()));
    fresh.load_weights(&weights).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh.weights().ok(), Some(weights));
}

#[test]
fn a_requested_stop_ends_the_epoch_before_the_next_run() {
    let (graph, chip, data) = (digits_graph(), ChipDesc::default(), digits(96));
    let mut t = trainer(&graph, &chip, &data);
    let stop = Interrupt::new();
    stop.request();
    let outcome = t.epoch(1, &stop, &mut |_| ()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome, EpochOutcome::Interrupted { train: Default::default() });
}

#[test]
fn data_of_another_shape_is_refused() {
    let (graph, chip) = (digits_graph(), ChipDesc::default());
    let mut cfg = config(&graph);
    cfg.features = 784;
    let data = digits(96);
    let programs = Box::new(|_: ProgramRequest| Err::<isa::Program, _>("unused".to_string()));
    let err = Trainer::new(&chip, cfg, &data, programs).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("invalid data set: digits.csv has 64 features per sample but the model's input has 784")
    );
}
