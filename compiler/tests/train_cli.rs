//! `snnc train` as a user runs it, on a few hundred bundled digits: the outputs it writes,
//! `--resume`, and the errors for bad data.

use sim::record::{RunRecord, Weights};
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{snnc, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch("train", name)
}

fn digits_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits.snn").to_string_lossy().into_owned()
}

/// `snnc train` on the first 160 digits (4 training batches), writing into `dir`.
fn train(dir: &Path, extra: &[&str]) -> Output {
    let (w, r, p) = (dir.join("w.safetensors"), dir.join("run.json"), dir.join("plot.svg"));
    let (w, r, p) = (w.to_string_lossy(), r.to_string_lossy(), p.to_string_lossy());
    let model = digits_model();
    let mut args = vec!["train", &model, "--samples", "160", "--epochs", "1", "-q", "-o", &w, "--record", &r];
    args.extend(["--plot", &p]);
    args.extend(extra);
    snnc(&args)
}

fn record(dir: &Path) -> RunRecord {
    RunRecord::load(dir.join("run.json")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn training_writes_weights_record_plot_and_a_summary() {
    let dir = scratch("outputs");
    let out = train(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in ["test accuracy", "chip time", "chip energy", "for a GPU framework", "host wall time"] {
        assert!(stdout.contains(want), "missing `{want}` in\n{stdout}");
    }
    let weights = Weights::load(dir.join("w.safetensors")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(weights.model(), Some("digits"));
    let shapes: Vec<(&str, &[usize])> = weights.tensors().iter().map(|t| (t.name.as_str(), &t.shape[..])).collect();
    assert_eq!(shapes, vec![("classes.weight", &[10, 128][..]), ("hidden.weight", &[128, 64][..])]);
    let r = record(&dir);
    assert_eq!((r.model.as_str(), r.dataset.train_samples, r.dataset.test_samples), ("digits", 128, 32));
    assert_eq!(r.history.len(), 1);
    assert!(r.history[0].cycles > 0 && r.history[0].train_loss.is_finite());
    assert_eq!(r.summary.map(|s| (s.epochs_completed, s.interrupted)), Some((1, false)));
    let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap_or_else(|e| panic!("{e}"));
    assert!(svg.contains("<svg"), "{svg}");
}

#[test]
fn resume_starts_from_the_saved_weights() {
    let dir = scratch("resume");
    let first = train(&dir, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let fresh_loss = record(&dir).history[0].train_loss;
    let saved = dir.join("saved.safetensors");
    std::fs::rename(dir.join("w.safetensors"), &saved).unwrap_or_else(|e| panic!("{e}"));
    let again = train(&dir, &["--resume", &saved.to_string_lossy()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let r = record(&dir);
    assert_eq!(r.resumed_from.as_deref(), Some(&*saved.to_string_lossy()));
    // The same batches from trained weights: a lower loss than from the initial ones.
    assert!(r.history[0].train_loss < fresh_loss, "{} vs {fresh_loss}", r.history[0].train_loss);
}

#[test]
fn weights_of_another_model_are_refused() {
    let dir = scratch("resume-bad");
    let bad = dir.join("bad.safetensors");
    let tensor = sim::record::Tensor {
        name: "hidden.weight".into(),
        shape: vec![64, 128],
        data: sim::record::TensorData::F32(vec![0.0; 64 * 128]),
    };
    let w = Weights::new(None, vec![tensor]).unwrap_or_else(|e| panic!("{e}"));
    w.save(&bad).unwrap_or_else(|e| panic!("{e}"));
    let out = train(&dir, &["--resume", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tensor `hidden.weight` has shape [64, 128], the model needs [128, 64]"), "{stderr}");
    assert!(!dir.join("w.safetensors").exists(), "no output after a failure");
}

#[test]
fn a_missing_data_file_is_exit_code_2() {
    let dir = scratch("missing-data");
    let out = train(&dir, &["--data", "no/such/data.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/data.csv: cannot read the file"), "{}", text(&out.stderr));
}

#[test]
fn bad_data_content_is_exit_code_1_with_the_place() {
    let dir = scratch("bad-data");
    let csv = dir.join("d.csv");
    std::fs::write(&csv, "label,a,b\n1,0.5,x\n").unwrap_or_else(|e| panic!("{e}"));
    let out = train(&dir, &["--data", &csv.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("d.csv:2: column 3 (`b`): `x` is not a finite number"), "{stderr}");
}

#[test]
fn data_with_the_wrong_feature_count_is_exit_code_1() {
    let dir = scratch("wrong-shape");
    let csv = dir.join("d.csv");
    let rows: String = (0..200).map(|i| format!("{},1,0,1\n", i % 10)).collect();
    std::fs::write(&csv, format!("label,a,b,c\n{rows}")).unwrap_or_else(|e| panic!("{e}"));
    let out = train(&dir, &["--data", &csv.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("has 3 features per sample but the model's input has 64"), "{stderr}");
}

/// A small DVS-style conv net: 2x16x16 event frames, one conv block, 4 classes.
const EVENT_MODEL: &str = "model tiny_events {
  timesteps = 4
  batch = 4
  neuron = lif(beta = 0.75, threshold = 1.0, reset = hard, detach_reset = true, surrogate = atan(2.0))
  init = uniform(gain = 3.0, seed = 1)
  events = input(shape = [2, 16, 16], encoding = spikes)
  conv = conv2d(events, out = 8, kernel = 3, padding = 1, bias = false)
  spk = lif(conv)
  pool = maxpool(spk, kernel = 2)
  flat = flatten(pool)
  fc = linear(flat, out = 4, bias = false)
  fc_spk = lif(fc)
  loss = mse_rate(fc_spk)
  optimizer = adam(lr = 0.01, betas = [0.9, 0.999], eps = 1e-8)
}
";

#[test]
fn a_staged_conv_model_trains_on_synthetic_events() {
    // On a one-core chip the two layers do not get a core each, so this is a staged
    // program: tiles, DRAM between layers, barriers, all driven by `snnc train`.
    let dir = scratch("events");
    let (model, chip) = (dir.join("tiny_events.snn"), dir.join("one_core.toml"));
    std::fs::write(&model, EVENT_MODEL).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&chip, "cores = [[0, 0]]\n[noc]\nwidth = 1\nheight = 1\n").unwrap_or_else(|e| panic!("{e}"));
    let r = dir.join("run.json");
    let (model, chip, r) = (model.to_string_lossy(), chip.to_string_lossy(), r.to_string_lossy());
    let w = dir.join("w.safetensors");
    let w = w.to_string_lossy();
    let args = ["train", &model, "--chip", &chip, "--data", "events", "--samples", "40", "--epochs", "3", "-q"];
    let out = snnc(&[&args[..], &["-o", &w, "--record", &r]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = record(&dir);
    // 40 samples of 4 classes, 80/20.
    assert_eq!((r.dataset.train_samples, r.dataset.test_samples), (32, 8));
    let losses: Vec<f64> = r.history.iter().map(|e| e.train_loss).collect();
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < losses[0], "the loss does not fall: {losses:?}");
}
