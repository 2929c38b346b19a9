//! The typed model: what a model file means once its syntax has been checked.

use crate::diagnostics::Span;
use serde::Serialize;
use std::fmt;

/// A model's settings and layer declarations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    /// The model's name.
    pub name: String,
    /// Timesteps per sample (T).
    pub timesteps: u32,
    /// Samples per training step (B).
    pub batch: u32,
    /// Model-wide neuron defaults.
    pub neuron: NeuronParams,
    /// How initial weights are drawn.
    pub init: Init,
    /// The loss and the layer it reads.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Layers in source order.
    pub layers: Vec<LayerDecl>,
    /// The model's closing brace, where "missing" errors point.
    #[serde(skip)]
    pub close: Span,
}

/// Parameters of a LIF neuron (DESIGN.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NeuronParams {
    /// Membrane decay, 0 < beta < 1.
    pub beta: f64,
    /// Firing threshold, > 0.
    pub threshold: f64,
    /// What a spike does to the membrane.
    pub reset: Reset,
    /// Whether the gradient bypasses the reset term.
    pub detach_reset: bool,
    /// The surrogate derivative used in backward.
    pub surrogate: Surrogate,
}

impl Default for NeuronParams {
    fn default() -> NeuronParams {
        NeuronParams {
            beta: 0.75,
            threshold: 1.0,
            reset: Reset::Hard,
            detach_reset: true,
            surrogate: Surrogate::Atan(2.0),
        }
    }
}

/// Reset after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// V = 0.
    Hard,
    /// V = H - threshold.
    Soft,
}

/// Surrogate derivative of the spike function, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surrogate {
    /// `1/w` inside `|x| < w/2`: the chip's native 1-bit mask.
    Rect(f64),
    /// `alpha/2 / (1 + (pi/2 alpha x)^2)`.
    Atan(f64),
    /// `alpha sigma(alpha x) (1 - sigma(alpha x))`.
    Sigmoid(f64),
    /// `max(0, alpha - alpha^2 |x|)`.
    Triangle(f64),
    /// `1 / (1 + k|x|)^2`.
    FastSigmoid(f64),
}

impl fmt::Display for Surrogate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Surrogate::Rect(w) => write!(f, "rect({w:?})"),
            Surrogate::Atan(a) => write!(f, "atan({a:?})"),
            Surrogate::Sigmoid(a) => write!(f, "sigmoid({a:?})"),
            Surrogate::Triangle(a) => write!(f, "triangle({a:?})"),
            Surrogate::FastSigmoid(k) => write!(f, "fast_sigmoid({k:?})"),
        }
    }
}

/// Initial weights: U(+-gain/sqrt(fan_in)) from a seeded generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Init {
    /// Scale of the uniform range.
    pub gain: f64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for Init {
    fn default() -> Init {
        Init { gain: 1.0, seed: 0 }
    }
}

/// The loss function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// MSE between spike rate and one-hot target.
    MseRate,
    /// Cross-entropy on spike rate.
    CeRate,
    /// Cross-entropy on the mean membrane of a readout layer.
    CeMem,
}

impl LossKind {
    /// The name used in model files.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::MseRate => "mse_rate",
            LossKind::CeRate => "ce_rate",
            LossKind::CeMem => "ce_mem",
        }
    }
}

/// The loss and the layer whose output it reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loss {
    /// Which loss.
    pub kind: LossKind,
    /// The output layer's name.
    pub layer: String,
    /// Where the output layer is named.
    #[serde(skip)]
    pub layer_span: Span,
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Optimizer {
    /// Stochastic gradient descent with optional momentum.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum, 0 for plain SGD.
        momentum: f64,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moments.
        betas: [f64; 2],
        /// Denominator guard.
        eps: f64,
    },
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Optimizer::Sgd { lr, momentum } => write!(f, "sgd(lr = {lr:?}, momentum = {momentum:?})"),
            Optimizer::Adam { lr, betas, eps } => {
                write!(f, "adam(lr = {lr:?}, betas = [{:?}, {:?}], eps = {eps:?})", betas[0], betas[1])
            }
        }
    }
}

/// How the input layer turns data into what the first layer receives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Encoding {
    /// The data are spike frames already (event cameras).
    Spikes,
    /// Each value in [0, 1] times `max_rate` is a firing probability per timestep.
    Bernoulli {
        /// Probability of a spike for a value of 1.
        max_rate: f64,
        /// Seed of the generator.
        seed: u64,
    },
    /// The value times `scale` is fed as a current every timestep.
    Current {
        /// Multiplier of the data.
        scale: f64,
    },
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Spikes => f.write_str("spikes"),
            Encoding::Bernoulli { max_rate, seed } => write!(f, "bernoulli(max_rate = {max_rate:?}, seed = {seed})"),
            Encoding::Current { scale } => write!(f, "current(scale = {scale:?})"),
        }
    }
}

/// A layer as declared: its op and the names of its inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerDecl {
    /// The layer's name.
    pub name: String,
    /// Where the name is written.
    #[serde(skip)]
    pub name_span: Span,
    /// What the layer computes.
    pub op: Op,
    /// The input layers' names with their places.
    #[serde(skip)]
    pub inputs: Vec<(String, Span)>,
    /// The whole item.
    #[serde(skip)]
    pub span: Span,
}

/// What a layer computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    /// The network's input.
    Input {
        /// `[N]` or `[C, H, W]`.
        shape: Vec<u32>,
        /// How data become input.
        encoding: Encoding,
    },
    /// 2-D convolution (cross-correlation, zero padding).
    Conv2d {
        /// Output channels.
        out: u32,
        /// Square kernel size.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Zero padding on each side.
        padding: u32,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Fully connected layer.
    Linear {
        /// Output features.
        out: u32,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Average pooling.
    AvgPool(Pool),
    /// Max pooling.
    MaxPool(Pool),
    /// `[C, H, W]` to `[C*H*W]`.
    Flatten,
    /// Element-wise sum of two or more inputs (residual join).
    Add,
    /// Leaky integrate-and-fire neurons.
    Lif(NeuronParams),
    /// Non-spiking leaky integrator, read by `ce_mem`.
    Readout {
        /// Membrane decay.
        beta: f64,
    },
}

/// Window of a pooling layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pool {
    /// Square window size.
    pub kernel: u32,
    /// Stride.
    pub stride: u32,
    /// Padding on each side.
    pub padding: u32,
}

impl Op {
    /// The op's name as written in model files.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv2d { .. } => "conv2d",
            Op::Linear { .. } => "linear",
            Op::AvgPool(_) => "avgpool",
            Op::MaxPool(_) => "maxpool",
            Op::Flatten => "flatten",
            Op::Add => "add",
            Op::Lif(_) => "lif",
            Op::Readout { .. } => "readout",
        }
    }

    /// Whether the layer has trainable weights.
    pub fn has_weights(&self) -> bool {
        matches!(self, Op::Conv2d { .. } | Op::Linear { .. })
    }
}
