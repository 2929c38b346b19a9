//! Loss and output gradient.
//!
//! ```text
//! z = (1/T)·Σ_t out[t]        (out = spikes, or U for ce_mem)
//! mse_rate:       L = mean_{b,c} (z − onehot)²     dL/dout[t] = 2(z − y)/(B·C) / T
//! ce_rate/ce_mem: L = mean_b −log softmax(z)[y]    dL/dout[t] = (softmax(z) − y)/B / T
//! ```
//!
//! As in the golden oracle, z and the output gradient are computed in f32 (with the oracle's
//! operation order) and the gradient is rounded once to storage; the loss value itself is a
//! report, computed in f64.

use crate::fp::Storage;

/// The training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Mean squared error between spike rate and one-hot target.
    MseRate,
    /// Cross-entropy on the spike rate.
    CeRate,
    /// Cross-entropy on the mean membrane of a non-spiking readout.
    CeMem,
}

/// Time mean of an output sequence `[T, n]` (n = B·C), summed in f32 in time order:
/// `z[i] = (Σ_t out[t][i]) / T`.
pub fn time_mean<S: Storage>(out: &[S], steps: usize, z: &mut [f32]) {
    assert_eq!(out.len(), steps * z.len(), "output sequence shape");
    z.fill(0.0);
    for row in out.chunks_exact(z.len()) {
        for (zi, &o) in z.iter_mut().zip(row) {
            *zi += o.to_f32();
        }
    }
    let t = steps as f32;
    for zi in z.iter_mut() {
        *zi /= t;
    }
}

/// Loss value of `z` `[B, C]` against integer labels, computed in f64.
pub fn loss_value(kind: LossKind, z: &[f32], labels: &[usize]) -> f64 {
    let c = z.len() / labels.len().max(1);
    let mut total = 0.0f64;
    for (b, &y) in labels.iter().enumerate() {
        let row = &z[b * c..(b + 1) * c];
        total += match kind {
            LossKind::MseRate => row
                .iter()
                .enumerate()
                .map(|(k, &v)| (f64::from(v) - if k == y { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>(),
            LossKind::CeRate | LossKind::CeMem => log_sum_exp(row) - f64::from(row[y]),
        };
    }
    match kind {
        LossKind::MseRate => total / (labels.len() * c) as f64,
        LossKind::CeRate | LossKind::CeMem => total / labels.len() as f64,
    }
}

/// The gradient `dL/dout[t]` `[B, C]` (the same for every timestep), rounded to storage.
/// `steps` is T; `z` is the f32 time mean from [`time_mean`].
pub fn output_grad<S: Storage>(kind: LossKind, z: &[f32], labels: &[usize], steps: usize, grad: &mut [S]) {
    assert_eq!(grad.len(), z.len(), "output gradient shape");
    let batch = labels.len();
    let c = z.len() / batch.max(1);
    for (b, &y) in labels.iter().enumerate() {
        let onehot: Vec<f32> = (0..c).map(|k| if k == y { 1.0 } else { 0.0 }).collect();
        let r = b * c..(b + 1) * c;
        output_grad_row(kind, &z[r.clone()], &onehot, batch, steps, &mut grad[r]);
    }
}

/// The gradient of one sample's row `z` (`C` classes) against a target row (one-hot for the
/// golden losses), for a batch of `batch` samples over `steps` timesteps. This is what the
/// chip's `bp.loss` computes per sample.
pub fn output_grad_row<S: Storage>(
    kind: LossKind,
    z: &[f32],
    target: &[f32],
    batch: usize,
    steps: usize,
    grad: &mut [S],
) {
    let c = z.len();
    let t = steps as f32;
    let p = softmax(z);
    for k in 0..c {
        let gz = match kind {
            LossKind::MseRate => 2.0 * (z[k] - target[k]) / (batch * c) as f32,
            LossKind::CeRate | LossKind::CeMem => (p[k] - target[k]) / batch as f32,
        };
        grad[k] = S::from_f32(gz / t);
    }
}

fn log_sum_exp(row: &[f32]) -> f64 {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    m + row.iter().map(|&v| (f64::from(v) - m).exp()).sum::<f64>().ln()
}

/// Softmax of one row, evaluated in f64 and rounded to f32 (within an f32 ulp of PyTorch's
/// f32 softmax).
fn softmax(row: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(row);
    row.iter().map(|&v| (f64::from(v) - lse).exp() as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mse_rate_gradient_and_loss() {
        // T = 2, B = 1, C = 2; out = [1,0] then [1,1] → z = [1, 0.5]; label 0.
        let out = [1.0f32, 0.0, 1.0, 1.0];
        let mut z = [0.0f32; 2];
        time_mean(&out, 2, &mut z);
        assert_eq!(z, [1.0, 0.5]);
        assert_eq!(loss_value(LossKind::MseRate, &z, &[0]), 0.125);
        let mut g = [0.0f32; 2];
        output_grad(LossKind::MseRate, &z, &[0], 2, &mut g);
        assert_eq!(g, [0.0, 0.25]);
    }

    #[test]
    fn cross_entropy_gradient_sums_to_zero() {
        let z = [0.25f32, 0.5, 0.0];
        let mut g = [0.0f32; 3];
        output_grad(LossKind::CeRate, &z, &[1], 4, &mut g);
        assert!(g.iter().sum::<f32>().abs() < 1e-7);
        assert!(g[1] < 0.0 && g[0] > 0.0);
        let l = loss_value(LossKind::CeRate, &z, &[1]);
        assert!((l - (-(0.5f64.exp() / (0.25f64.exp() + 0.5f64.exp() + 1.0)).ln())).abs() < 1e-12);
    }
}
