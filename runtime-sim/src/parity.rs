//! Comparing a reference [`Trace`] with a golden file, tensor by tensor.
//!
//! Each comparison yields a [`TensorCheck`]: the worst error in the unit of its
//! [`Tolerance`], where it occurred, and how many elements are out of tolerance. The golden
//! parity tests use it, and so can the `snnc golden` command, which prints the same lines.

use std::collections::BTreeMap;
use std::fmt;

use crate::golden::{GoldenCase, Tensor};
use crate::reference::Trace;

/// How closely a tensor must match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Equal values.
    Exact,
    /// Absolute error at most this.
    Abs(f64),
    /// Absolute error at most this fraction of the tensor's largest |expected value|.
    RelMax(f64),
    /// [`RelMax`](Tolerance::RelMax) of this fraction where the stored (SpikingJelly)
    /// parameter gradient is itself within it of the exact f64 oracle, as the file records;
    /// where the stored gradient is farther than that from exact arithmetic, this fraction
    /// plus that distance (the triangle inequality: the fraction bounds the simulator's
    /// distance from exact, the record the stored value's). A simulator that sums in another
    /// order than PyTorch cannot be held closer to the stored values than exact arithmetic
    /// is. [`compare`] resolves it per tensor; a file without the record gives `RelMax`.
    RelMaxOrExact(f64),
    /// [`Abs`](Tolerance::Abs) of this much, for updated parameters, widened in the same way
    /// as [`RelMaxOrExact`](Tolerance::RelMaxOrExact) by the file's record of how far the
    /// stored (SpikingJelly) updated parameter is from the exact f64 oracle.
    AbsOrExact(f64),
    /// At most this many f16 ulps at the expected value.
    Ulp16(f64),
    /// At most this many f16 ulps at the tensor's largest |expected value|.
    Ulp16Max(f64),
}

impl Tolerance {
    /// The limit in the tolerance's unit.
    pub fn limit(self) -> f64 {
        match self {
            Tolerance::Exact => 0.0,
            Tolerance::Abs(l)
            | Tolerance::AbsOrExact(l)
            | Tolerance::RelMax(l)
            | Tolerance::RelMaxOrExact(l)
            | Tolerance::Ulp16(l)
            | Tolerance::Ulp16Max(l) => l,
        }
    }

    /// The error of `got` against `want` in this tolerance's unit; `max_abs` is the tensor's
    /// largest |expected value|.
    fn error(self, got: f32, want: f32, max_abs: f64) -> f64 {
        let d = (f64::from(got) - f64::from(want)).abs();
        match self {
            Tolerance::Exact | Tolerance::Abs(_) | Tolerance::AbsOrExact(_) => d,
            Tolerance::RelMax(_) | Tolerance::RelMaxOrExact(_) if max_abs > 0.0 => d / max_abs,
            Tolerance::RelMax(_) | Tolerance::RelMaxOrExact(_) => d,
            Tolerance::Ulp16(_) => d / ulp16(want),
            Tolerance::Ulp16Max(_) => d / ulp16(max_abs as f32),
        }
    }
}

/// The spacing of f16 values at `v` (the subnormal spacing 2⁻²⁴ below the normal range).
pub fn ulp16(v: f32) -> f64 {
    let a = f64::from(v).abs();
    if a < 2f64.powi(-14) { 2f64.powi(-24) } else { 2f64.powi(a.log2().floor() as i32 - 10) }
}

/// The result of comparing one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// What was compared (`L1 lif H`, `grad L0.weight`, …).
    pub name: String,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Worst error, in the tolerance's unit (infinite if the sizes differ).
    pub worst: f64,
    /// Flat index of the worst error.
    pub worst_index: usize,
    /// Computed and expected value at the worst index.
    pub got_want: (f32, f32),
    /// Elements out of tolerance (all of them if the sizes differ).
    pub over: usize,
}

impl TensorCheck {
    /// Whether every element is within tolerance.
    pub fn passed(&self) -> bool {
        self.over == 0
    }
}

impl fmt::Display for TensorCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.passed() { "ok" } else { "FAIL" };
        write!(f, "{status:4} {:28} {:?}: worst {:.3e}, {} over", self.name, self.tolerance, self.worst, self.over)?;
        if self.worst > 0.0 && self.worst.is_finite() {
            let (g, w) = self.got_want;
            write!(f, " at [{}]: got {g} want {w}", self.worst_index)?;
        }
        Ok(())
    }
}

/// Compares `got` with `want` under `tolerance`.
pub fn check_tensor(name: &str, got: &[f32], want: &[f32], tolerance: Tolerance) -> TensorCheck {
    let mut check =
        TensorCheck { name: name.to_string(), tolerance, worst: 0.0, worst_index: 0, got_want: (0.0, 0.0), over: 0 };
    if got.len() != want.len() {
        check.name = format!("{name} ({} values, expected {})", got.len(), want.len());
        (check.worst, check.over) = (f64::INFINITY, want.len().max(1));
        return check;
    }
    let max_abs = want.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = tolerance.error(g, w, max_abs);
        check.over += usize::from(e > tolerance.limit());
        if e > check.worst {
            (check.worst, check.worst_index, check.got_want) = (e, i, (g, w));
        }
    }
    check
}

/// Tolerances per kind of tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// out, H, V, U and z.
    pub forward: Tolerance,
    /// S.
    pub spikes: Tolerance,
    /// grad_S, grad_H, grad_U.
    pub layer_grads: Tolerance,
    /// Parameter gradients.
    pub param_grads: Tolerance,
    /// Updated parameters.
    pub updated: Tolerance,
}

/// Compares every tensor the golden file records with the trace, in file order: per layer,
/// then z, then parameter gradients and updated parameters. A tensor the trace lacks is a
/// failed check.
pub fn compare(case: &GoldenCase, trace: &Trace, tol: &Tolerances) -> Vec<TensorCheck> {
    let mut checks = Vec::new();
    let empty = BTreeMap::new();
    for rec in &case.forward {
        let layer = trace.layers.get(rec.index).unwrap_or(&empty);
        for (name, want) in &rec.tensors {
            let t = match name.as_str() {
                "S" => tol.spikes,
                "out" | "H" | "V" | "U" => tol.forward,
                _ => tol.layer_grads,
            };
            let got = layer.get(name).map_or(&[][..], Vec::as_slice);
            checks.push(check_tensor(&format!("L{} {} {name}", rec.index, rec.kind), got, &want.data, t));
        }
    }
    checks.push(check_tensor("output z", &trace.z, &case.z.data, tol.forward));
    let agreement = &case.oracle_agreement;
    let grad_tol = |name: &str| or_exact(tol.param_grads, agreement.exact_grads_rel.get(name));
    params(&mut checks, "grad", &trace.grads, &case.grads, grad_tol);
    let updated_tol = |name: &str| or_exact(tol.updated, agreement.exact_updated_abs.get(name));
    params(&mut checks, "updated", &trace.params_updated, &case.params_updated, updated_tol);
    checks
}

/// Resolves an `…OrExact` tolerance of one tensor, given the file's record of how far the
/// stored tensor is from exact arithmetic: the limit alone where the record is within it
/// (or absent), the limit plus the record where it is not. Other tolerances pass through.
fn or_exact(tol: Tolerance, record: Option<&f64>) -> Tolerance {
    let widen = |l: f64| record.copied().filter(|&e| e > l).map_or(l, |e| l + e);
    match tol {
        Tolerance::RelMaxOrExact(l) => Tolerance::RelMax(widen(l)),
        Tolerance::AbsOrExact(l) => Tolerance::Abs(widen(l)),
        t => t,
    }
}

fn params(
    checks: &mut Vec<TensorCheck>,
    kind: &str,
    got: &BTreeMap<String, Vec<f32>>,
    want: &BTreeMap<String, Tensor>,
    tol: impl Fn(&str) -> Tolerance,
) {
    for (name, w) in want {
        let g = got.get(name).map_or(&[][..], Vec::as_slice);
        checks.push(check_tensor(&format!("{kind} {name}"), g, &w.data, tol(name)));
    }
}

/// Spikes of the trace that differ from the file, and the file's total number of spikes.
pub fn spike_flips(case: &GoldenCase, trace: &Trace) -> (usize, usize) {
    let (mut flips, mut total) = (0, 0);
    for rec in &case.forward {
        let Some(want) = rec.tensors.get("S") else { continue };
        total += want.data.iter().filter(|&&v| v != 0.0).count();
        match trace.layers.get(rec.index).and_then(|l| l.get("S")) {
            Some(got) => flips += got.iter().zip(&want.data).filter(|(g, w)| g != w).count(),
            None => flips += want.data.len(),
        }
    }
    (flips, total)
}

/// Largest |computed − stored| of a set of named tensors, per name (infinite where the
/// computed tensor is missing or mis-sized).
pub fn max_abs_diff(got: &BTreeMap<String, Vec<f32>>, want: &BTreeMap<String, Tensor>) -> BTreeMap<String, f64> {
    want.iter()
        .map(|(name, w)| {
            let d = match got.get(name) {
                Some(g) if g.len() == w.data.len() => {
                    g.iter().zip(&w.data).fold(0.0f64, |m, (&a, &b)| m.max((f64::from(a) - f64::from(b)).abs()))
                }
                _ => f64::INFINITY,
            };
            (name.clone(), d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp16_spacing() {
        assert_eq!(ulp16(1.0), 2f64.powi(-10));
        assert_eq!(ulp16(-0.75), 2f64.powi(-11));
        assert_eq!(ulp16(1e-6), 2f64.powi(-24));
    }

    #[test]
    fn check_reports_worst_and_count() {
        let c = check_tensor("t", &[1.0, 2.5, 3.0], &[1.0, 2.0, 3.25], Tolerance::Abs(0.3));
        assert_eq!((c.worst, c.worst_index, c.over), (0.5, 1, 1));
        assert!(!c.passed());
        assert!(c.to_string().starts_with("FAIL t"));
        let sized = check_tensor("t", &[1.0], &[1.0, 2.0], Tolerance::Exact);
        assert!(!sized.passed() && sized.worst.is_infinite());
        let rel = check_tensor("t", &[0.0, 10.0], &[1e-6, 10.0], Tolerance::RelMax(1e-6));
        assert!(rel.passed());
    }

    /// `RelMaxOrExact` and `AbsOrExact` keep their limit where the file's stored value is
    /// that close to exact arithmetic, add the recorded distance where it is farther, and
    /// keep the limit where the file has no record.
    #[test]
    fn gradients_may_be_as_far_as_the_file_is_from_exact() {
        let json = concat!(
            r#"{"format":"snn-train-golden/1","name":"t","precision":"f32","#,
            crate::golden::tiny_spec!(),
            r#","params":{"L0.weight":{"dtype":"f32","shape":[1,2],"data":[0.5,0.25]}},
          "forward":[],
          "output":{"kind":"spike_rate","z":{"dtype":"f32","shape":[1,1],"data":[0.0]}},
          "loss":1.0,
          "grads":{"A":{"dtype":"f32","shape":[2],"data":[1.0,0.5]},
                   "B":{"dtype":"f32","shape":[2],"data":[1.0,0.5]},
                   "C":{"dtype":"f32","shape":[2],"data":[1.0,0.5]}},
          "params_updated":{"A":{"dtype":"f32","shape":[1],"data":[0.5]},
                            "B":{"dtype":"f32","shape":[1],"data":[0.5]}},
          "agreement":{"oracle_f64_vs_spikingjelly":{"grads":{
            "A":{"rel_to_max":3e-6},"B":{"rel_to_max":5e-7}},"updated":{"A":3e-7,"B":5e-8}}}}"#
        );
        let case = GoldenCase::from_json(json.as_bytes()).expect("case");
        // Every gradient 2e-6 of its largest value away from the file: A's file is 3e-6 from
        // exact, B's within 1e-6 of it, and C has no record.
        let grads = ["A", "B", "C"].map(|n| (n.to_string(), vec![1.000_002, 0.5]));
        // Every updated parameter 2e-7 away: A's file is 3e-7 from exact, B's within 1e-7.
        let updated = ["A", "B"].map(|n| (n.to_string(), vec![0.500_000_2]));
        let trace = Trace {
            grads: grads.into_iter().collect(),
            params_updated: updated.into_iter().collect(),
            ..Trace::default()
        };
        let tol = Tolerances {
            forward: Tolerance::Exact,
            spikes: Tolerance::Exact,
            layer_grads: Tolerance::Exact,
            param_grads: Tolerance::RelMaxOrExact(1e-6),
            updated: Tolerance::AbsOrExact(1e-7),
        };
        let param_checks: Vec<(String, Tolerance, bool)> = compare(&case, &trace, &tol)
            .into_iter()
            .filter(|c| c.name.starts_with("grad ") || c.name.starts_with("updated "))
            .map(|c| (c.name.clone(), c.tolerance, c.passed()))
            .collect();
        assert_eq!(
            param_checks,
            [
                ("grad A".to_string(), Tolerance::RelMax(1e-6 + 3e-6), true),
                ("grad B".to_string(), Tolerance::RelMax(1e-6), false),
                ("grad C".to_string(), Tolerance::RelMax(1e-6), false),
                ("updated A".to_string(), Tolerance::Abs(1e-7 + 3e-7), true),
                ("updated B".to_string(), Tolerance::Abs(1e-7), false),
            ]
        );
    }
}
