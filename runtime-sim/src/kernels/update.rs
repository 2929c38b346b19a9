//! Weight update: plain SGD on the stored weights, and SGD with momentum and Adam on FP32
//! master weights (the stored copy, f16 on the chip, is the rounded master).
//!
//! Plain SGD follows the golden oracle: `W' = fl(W − lr·dW)` with `lr·dW` and the
//! subtraction computed in f32, then one rounding to storage.

use crate::fp::Storage;

/// Plain SGD in place: `w = fl(w − lr·g)`.
pub fn sgd<S: Storage>(lr: f32, grad: &[S], weight: &mut [S]) {
    assert_eq!(grad.len(), weight.len(), "sgd shapes");
    for (w, g) in weight.iter_mut().zip(grad) {
        *w = S::from_f32(w.to_f32() - lr * g.to_f32());
    }
}

/// Hyper-parameters of SGD with momentum (PyTorch semantics, no dampening, no Nesterov).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Momentum {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor μ.
    pub momentum: f32,
    /// L2 weight decay λ (added to the gradient).
    pub weight_decay: f32,
}

/// SGD with momentum on f32 master weights: `g' = g + λ·w; v = μ·v + g'; w −= lr·v`, then
/// the stored copy is `fl(w)`. `velocity` starts at zero.
pub fn sgd_momentum<S: Storage>(p: &Momentum, grad: &[S], master: &mut [f32], velocity: &mut [f32], weight: &mut [S]) {
    let n = grad.len();
    assert!(master.len() == n && velocity.len() == n && weight.len() == n, "momentum shapes");
    for i in 0..n {
        let g = grad[i].to_f32() + p.weight_decay * master[i];
        velocity[i] = p.momentum * velocity[i] + g;
        master[i] -= p.lr * velocity[i];
        weight[i] = S::from_f32(master[i]);
    }
}

/// Hyper-parameters of Adam (PyTorch semantics, no AMSGrad).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
}

/// One Adam step (`step` counts from 1) on f32 master weights; `m` and `v` start at zero.
/// The stored copy is `fl(w)`.
pub fn adam<S: Storage>(
    p: &Adam,
    step: u32,
    grad: &[S],
    master: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    weight: &mut [S],
) {
    let n = grad.len();
    assert!(master.len() == n && m.len() == n && v.len() == n && weight.len() == n, "adam shapes");
    let t = step.max(1) as i32;
    let bc1 = 1.0 - p.beta1.powi(t);
    let bc2_sqrt = (1.0 - p.beta2.powi(t)).sqrt();
    let step_size = p.lr / bc1;
    for i in 0..n {
        let g = grad[i].to_f32();
        m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        let denom = v[i].sqrt() / bc2_sqrt + p.eps;
        master[i] -= step_size * m[i] / denom;
        weight[i] = S::from_f32(master[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn sgd_rounds_once_in_f16() {
        let mut w = [f16::from_f32(1.0)];
        // 1 − 0.5·2^-12 = 1 − 2^-13 lies between f16 neighbours 1 − 2^-11 and 1: rounds to 1.
        sgd(0.5, &[f16::from_f32(2f32.powi(-12))], &mut w);
        assert_eq!(w[0].to_f32(), 1.0);
    }

    #[test]
    fn master_weights_keep_small_updates() {
        let p = Momentum { lr: 2f32.powi(-13), momentum: 0.0, weight_decay: 0.0 };
        let mut master = [1.0f32];
        let mut vel = [0.0f32];
        let mut w = [f16::from_f32(1.0)];
        for _ in 0..4 {
            sgd_momentum(&p, &[f16::from_f32(1.0)], &mut master, &mut vel, &mut w);
        }
        // Each update is below half an f16 ulp; the master accumulates them.
        assert_eq!(master[0], 1.0 - 4.0 * 2f32.powi(-13));
        assert_eq!(w[0].to_f32(), 1.0 - 2f32.powi(-11));
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let p = Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let (mut master, mut m, mut v, mut w) = ([0.5f32], [0.0f32], [0.0f32], [0.5f32]);
        adam(&p, 1, &[3.0f32], &mut master, &mut m, &mut v, &mut w);
        assert!((master[0] - 0.49).abs() < 1e-6);
        assert_eq!(w[0], master[0]);
    }
}
