//! Golden parity: one training step of every golden case, computed by chaining the kernels
//! (`sim::reference`), against the values SpikingJelly and the oracle recorded.
//!
//! Tolerances (golden README §4):
//! - fp32 against `*.f32.json`: spikes exact; out, H, V, U, z within 1e-6 absolute;
//!   gradients (grad_S, grad_H, grad_U, parameter gradients) within 1e-6 of the tensor's
//!   largest |value|; updated parameters within 1e-7 absolute; loss within 1e-6 relative.
//!   Where the file records that SpikingJelly's own f32 parameter gradient is farther than
//!   1e-6 from the exact (f64) oracle, that distance is added (`Tolerance::RelMaxOrExact`):
//!   only `conv16_current`'s first conv, whose dense inputs make its sums depend on their
//!   order (2.8e-6 allowed; 3.2e-7 measured here, 1.2e-6 through a compiled program).
//!   Likewise an updated parameter recorded farther than 1e-7 from exact gets 1e-7 plus that
//!   distance (`Tolerance::AbsOrExact`): only `conv16_readout`'s two convs, whose gradients
//!   near 1 times the learning rate 0.5 move weights near 0.5 (2.6e-7 and 2.2e-7 allowed,
//!   1.2e-7 and 1.0e-7 measured through a compiled program).
//! - fp16 storage with f32 accumulators against `*.f16.json`: forward (out, H, S, V, U, z)
//!   bit-exact; per-layer gradients (grad_S, grad_H, grad_U, computed by the oracle) bit-exact;
//!   parameter gradients and updated parameters (SpikingJelly's) within 2 f16 ulp of the
//!   tensor's largest |value| and no farther from the file than the oracle is (see
//!   `check_oracle_distance`); loss within 2 f16 ulp (the file holds PyTorch's f16 loss).
//!   "2 ulp at the value" cannot hold for the parameter gradients: SpikingJelly's own f16
//!   gradients differ from the §3 oracle by up to 2 ulp of the largest gradient, which is up
//!   to ~800 ulp of a small one (conv16_maxpool_ce L3.weight).
//! - fp16 storage with f16 accumulators against `*.f32.json`: see [`Acc16Limits`].
//!
//! Every comparison is printed (`cargo test -- --nocapture` shows them); a failure lists the
//! worst error of every tensor, so a mismatch can be traced to its layer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use sim::fp::Precision;
use sim::golden::GoldenCase;
use sim::parity::{Tolerance, Tolerances, check_tensor, compare, max_abs_diff, spike_flips};
use sim::reference::{Trace, train_step};

fn load(file: &str) -> GoldenCase {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden").join(format!("{file}.json.gz"));
    GoldenCase::from_path(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The comparison lines of one run; `finish` prints them and fails if any line failed.
#[derive(Default)]
struct Report {
    text: String,
    failed: usize,
}

impl Report {
    fn line(&mut self, ok: bool, msg: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  {msg}");
        self.failed += usize::from(!ok);
    }

    fn checks(&mut self, case: &GoldenCase, trace: &Trace, tol: &Tolerances) {
        for c in compare(case, trace, tol) {
            self.line(c.passed(), &c);
        }
    }

    fn finish(self, title: &str) {
        eprintln!("{title}\n{}", self.text);
        assert_eq!(self.failed, 0, "{title}: {} checks failed\n{}", self.failed, self.text);
    }
}

fn ops_summary(trace: &Trace) -> String {
    let ops: Vec<String> = trace.ops.iter().map(|(k, o)| format!("{k} {}/{}", o.executed, o.total())).collect();
    format!("ops executed/total: {}", ops.join(", "))
}

/// fp32 against the f32 file.
fn check_fp32(name: &str) {
    let case = load(&format!("{name}.f32"));
    let trace = train_step(&case, Precision::Fp32).expect("reference step");
    let tol = Tolerances {
        forward: Tolerance::Abs(1e-6),
        spikes: Tolerance::Exact,
        layer_grads: Tolerance::RelMax(1e-6),
        param_grads: Tolerance::RelMaxOrExact(1e-6),
        updated: Tolerance::AbsOrExact(1e-7),
    };
    let mut report = Report::default();
    report.checks(&case, &trace, &tol);
    let rel = (trace.loss - case.loss).abs() / case.loss.abs().max(1.0);
    report.line(rel <= 1e-6, format!("loss {} vs {} (rel {rel:.2e}, limit 1e-6)", trace.loss, case.loss));
    report.line(true, ops_summary(&trace));
    report.finish(&format!("{name} fp32 vs f32 file"));
}

/// fp16 storage, f32 accumulators against the f16 file.
fn check_fp16(name: &str) {
    let case = load(&format!("{name}.f16"));
    let trace = train_step(&case, Precision::Fp16Acc32).expect("reference step");
    // Per-layer gradients (grad_S, grad_H, grad_U) come from the oracle and match it bit for
    // bit. Parameter gradients and updated weights come from SpikingJelly; see
    // `check_oracle_distance` for the second, tighter check on them.
    let tol = Tolerances {
        forward: Tolerance::Exact,
        spikes: Tolerance::Exact,
        layer_grads: Tolerance::Exact,
        param_grads: Tolerance::Ulp16Max(2.0),
        updated: Tolerance::Ulp16Max(2.0),
    };
    let mut report = Report::default();
    report.checks(&case, &trace, &tol);
    check_oracle_distance(
        &mut report,
        "grad",
        &max_abs_diff(&trace.grads, &case.grads),
        &case.oracle_agreement.grads_max_abs,
    );
    let upd = max_abs_diff(&trace.params_updated, &case.params_updated);
    check_oracle_distance(&mut report, "updated", &upd, &case.oracle_agreement.updated_max_abs);
    let loss16 = half::f16::from_f64(trace.loss).to_f32();
    let loss = check_tensor("loss", &[loss16], &[case.loss as f32], Tolerance::Ulp16(2.0));
    report.line(loss.passed(), &loss);
    report.line(true, ops_summary(&trace));
    report.finish(&format!("{name} fp16-acc32 vs f16 file"));
}

/// The stored parameter gradients and updated weights are SpikingJelly's, whose f16 autograd
/// rounds the loss gradient and the LIF backward in another order than the oracle of README
/// §3; the file records the oracle's largest distance from them. The kernels follow §3, so
/// they must be no farther from the stored values than the oracle is (in every case they are
/// exactly as far, as bit-identity with the oracle implies).
fn check_oracle_distance(
    report: &mut Report,
    kind: &str,
    ours: &BTreeMap<String, f64>,
    oracle: &BTreeMap<String, f64>,
) {
    for (name, &d) in ours {
        match oracle.get(name) {
            Some(&limit) => report.line(d <= limit, format!("{kind} {name}: max |Δ| {d:.3e}, oracle's {limit:.3e}")),
            None => report.line(false, format!("{kind} {name}: the file records no oracle distance")),
        }
    }
}

/// Tolerances of fp16 storage with f16 accumulators (every add rounded) against the f32
/// file. Measured on the seven cases (worst values in brackets) and held with margin:
///
/// - Four fc16 cases have no spike flip. There: out, H, V, U, z within 0.02 absolute
///   [6.2e-3, fc16_rect_cemem L1 H]; gradients within 1% of the tensor's largest |value|
///   [1.9e-3, fc16_rect_cemem grad L0.weight]; updated weights within 1e-3 absolute [3.0e-4];
///   loss within 1e-3 relative [1.3e-4].
/// - conv16 (1 flip of 4,064 spikes), fc784 (1 of 637) and conv16_maxpool_ce (23 of 4,859,
///   0.47%) flip spikes near the threshold. A flip moves a membrane by up to θ and changes
///   downstream currents, so there: at most 1% of the spikes flip; out, H, V, U, z within 2.0
///   absolute [1.0]; gradients within 50% of the largest |value| [34%, conv16_maxpool_ce
///   grad L7.weight]; updated weights within 0.1 absolute [0.061]; loss within 5% [1.6%].
struct Acc16Limits;

impl Acc16Limits {
    const MAX_FLIP_FRACTION: f64 = 0.01;
    const FORWARD: f64 = 0.02;
    const GRADS: f64 = 0.01;
    const UPDATED: f64 = 1e-3;
    const LOSS: f64 = 1e-3;
    const FORWARD_FLIPPED: f64 = 2.0;
    const GRADS_FLIPPED: f64 = 0.5;
    const UPDATED_FLIPPED: f64 = 0.1;
    const LOSS_FLIPPED: f64 = 0.05;
}

/// fp16 storage, f16 accumulators against the f32 file.
fn check_fp16_acc16(name: &str) {
    let case = load(&format!("{name}.f32"));
    let trace = train_step(&case, Precision::Fp16Acc16).expect("reference step");
    let (flips, total) = spike_flips(&case, &trace);
    let mut report = Report::default();
    let max_flips = Acc16Limits::MAX_FLIP_FRACTION * total as f64;
    report.line(flips as f64 <= max_flips, format!("spike flips: {flips} of {total} spikes (limit {max_flips:.1})"));
    let (tol, loss_limit) = if flips == 0 {
        let tol = Tolerances {
            forward: Tolerance::Abs(Acc16Limits::FORWARD),
            spikes: Tolerance::Exact,
            layer_grads: Tolerance::RelMax(Acc16Limits::GRADS),
            param_grads: Tolerance::RelMax(Acc16Limits::GRADS),
            updated: Tolerance::Abs(Acc16Limits::UPDATED),
        };
        (tol, Acc16Limits::LOSS)
    } else {
        let tol = Tolerances {
            forward: Tolerance::Abs(Acc16Limits::FORWARD_FLIPPED),
            // Flipped spikes are counted above; here they only need to be spikes.
            spikes: Tolerance::Abs(1.0),
            layer_grads: Tolerance::RelMax(Acc16Limits::GRADS_FLIPPED),
            param_grads: Tolerance::RelMax(Acc16Limits::GRADS_FLIPPED),
            updated: Tolerance::Abs(Acc16Limits::UPDATED_FLIPPED),
        };
        (tol, Acc16Limits::LOSS_FLIPPED)
    };
    report.checks(&case, &trace, &tol);
    let rel = (trace.loss - case.loss).abs() / case.loss.abs();
    report
        .line(rel <= loss_limit, format!("loss {} vs {} (rel {rel:.2e}, limit {loss_limit:e})", trace.loss, case.loss));
    report.finish(&format!("{name} fp16-acc16 vs f32 file"));
}

macro_rules! parity {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn fp32_matches_f32_file() {
                super::check_fp32(stringify!($case));
            }

            #[test]
            fn fp16_acc32_matches_f16_file() {
                super::check_fp16(stringify!($case));
            }

            #[test]
            fn fp16_acc16_stays_near_f32_file() {
                super::check_fp16_acc16(stringify!($case));
            }
        }
    )*};
}

parity!(
    fc16,
    fc16_soft_sigmoid_ce,
    fc16_rect_cemem,
    fc16_soft_detach_tri,
    fc24_deep_bias,
    fc784,
    conv16,
    conv16_maxpool_ce,
    conv16_s2_fastsig,
    conv16_bias,
    conv12_narrow,
    conv16_current,
    conv16_readout
);

/// The executed/skipped counts come from the data: in fc16 (16-32-10, no bias), the forward
/// fc adds are the input spikes times 32 plus the hidden spikes times 10, and nothing else.
#[test]
fn op_counts_follow_the_spikes() {
    let case = load("fc16.f32");
    let trace = train_step(&case, Precision::Fp32).expect("reference step");
    let input_spikes = case.x.data.iter().filter(|&&v| v != 0.0).count() as u64;
    let hidden_spikes = trace.spikes[&1] as u64;
    let fp = trace.ops["fp.fc"];
    assert_eq!(fp.executed, input_spikes * 32 + hidden_spikes * 10);
    // Every (row, input, output) triple is either executed or skipped.
    let rows = (case.spec.t * case.spec.b) as u64;
    assert_eq!(fp.total(), rows * (16 * 32 + 32 * 10));
    // Error propagation only runs into the hidden layer: one pass over W2ᵀ per row.
    assert_eq!(trace.ops["bp.fc"].total(), rows * 32 * 10);
}

/// A malformed case is an error from `train_step`, never a panic in a kernel.
#[test]
fn malformed_cases_are_errors() {
    let good = load("fc16.f32");
    let mut bad_shape = good.clone();
    if let Some(w) = bad_shape.params.get_mut("L2.weight") {
        w.shape = vec![32, 10];
    }
    let err = train_step(&bad_shape, Precision::Fp32).expect_err("transposed weight");
    assert!(err.to_string().contains("L2.weight"), "{err}");

    let mut missing = good.clone();
    missing.params.remove("L0.weight");
    assert!(train_step(&missing, Precision::Fp16Acc32).is_err());

    let mut bad_label = good.clone();
    bad_label.labels[0] = 10;
    assert!(train_step(&bad_label, Precision::Fp16Acc16).is_err());

    let mut bad_input = good;
    bad_input.x.shape = vec![4, 2, 15];
    assert!(train_step(&bad_input, Precision::Fp32).is_err());
}
