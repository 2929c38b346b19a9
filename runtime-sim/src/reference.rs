//! Reference training step: the kernels chained by a golden case's spec.
//!
//! This is a test harness, not the simulator. The simulator executes programs, and its
//! numbers (values, executed and skipped operations) come from the instructions it runs.
//! This module runs the same kernels directly, layer by layer, in the order of the golden
//! oracle (README §3): forward over all T·B rows, loss and output gradient, backward in
//! reverse layer order (LIF layers in reverse time), weight gradients summed over T·B,
//! one plain SGD step. Its [`Trace`] carries every tensor a golden file records, under the
//! same names, so tests (and later the `snnc golden` command) can compare them.

use std::collections::BTreeMap;

use half::f16;

use crate::fp::{Accum, Precision, Storage, store};
use crate::golden::{GoldenCase, GoldenError, LayerSpec};
use crate::kernels::accumulate::{Conv2dShape, conv2d_forward, linear_forward};
use crate::kernels::grad::{
    bias_grad, conv2d_backward_input, conv2d_weight_grad, lif_backward_step, linear_backward_input, linear_weight_grad,
    readout_backward_step,
};
use crate::kernels::loss::{LossKind, loss_value, output_grad, time_mean};
use crate::kernels::pool::{PoolShape, avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward};
use crate::kernels::soma::{LifParams, lif_forward_step, readout_forward_step};
use crate::kernels::update::sgd;
use crate::kernels::{Input, OpCount};
use crate::spikes::SpikeBits;

/// Everything one reference training step produced, as f32 values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Per spec layer, tensors named as in the golden file (`out`, `H`, `S`, `V`, `grad_S`,
    /// `grad_H`, `U`, `grad_U`), flat `[T,B,…]`.
    pub layers: Vec<BTreeMap<String, Vec<f32>>>,
    /// Network output `z` `[B,C]`, rounded to storage.
    pub z: Vec<f32>,
    /// Loss value.
    pub loss: f64,
    /// Parameter gradients by name.
    pub grads: BTreeMap<String, Vec<f32>>,
    /// Parameters after the SGD step, by name.
    pub params_updated: BTreeMap<String, Vec<f32>>,
    /// Executed and skipped operations per engine and layer kind (`fp.fc`, `bp.conv`, …).
    pub ops: BTreeMap<&'static str, OpCount>,
    /// Total number of spikes per LIF layer index.
    pub spikes: BTreeMap<usize, usize>,
}

/// Runs one training step of `case` in `precision`.
pub fn train_step(case: &GoldenCase, precision: Precision) -> Result<Trace, GoldenError> {
    let net = Net::from_case(case)?;
    match precision {
        Precision::Fp32 => Step::<f32>::run(&net, case, Accum::F32),
        Precision::Fp16Acc32 => Step::<f16>::run(&net, case, Accum::F32),
        Precision::Fp16Acc16 => Step::<f16>::run(&net, case, Accum::Storage),
    }
}

/// A layer with its per-row geometry resolved.
#[derive(Clone, Copy, Debug)]
enum Layer {
    Fc { bias: bool },
    Conv { shape: Conv2dShape, bias: bool },
    AvgPool(PoolShape),
    MaxPool(PoolShape),
    Flatten,
    Lif,
    Readout,
}

struct Net {
    layers: Vec<(Layer, usize)>,
    input_len: usize,
    lif: LifParams,
    loss: LossKind,
    lr: f32,
    steps: usize,
    batch: usize,
}

impl Net {
    /// Resolves shapes layer by layer; `layers[i].1` is the output size per row.
    fn from_case(case: &GoldenCase) -> Result<Net, GoldenError> {
        let spec = &case.spec;
        let mut shape = spec.input.shape.clone();
        let input_len = shape.iter().product();
        if spec.t == 0 || spec.b == 0 {
            return Err(GoldenError::Spec("T and B must be positive".into()));
        }
        let mut layers = Vec::new();
        for (i, l) in spec.layers.iter().enumerate() {
            let layer = resolve(l, &mut shape).map_err(|m| GoldenError::Spec(format!("layer {i}: {m}")))?;
            layers.push((layer, shape.iter().product()));
            check_params(case, i, l)?;
        }
        let expected = [spec.t, spec.b].into_iter().chain(spec.input.shape.iter().copied());
        if !case.x.shape.iter().copied().eq(expected) {
            return Err(GoldenError::Spec(format!("input shape {:?} does not match the spec", case.x.shape)));
        }
        if case.labels.len() != spec.b || case.labels.iter().any(|&l| l >= spec.num_classes) {
            return Err(GoldenError::Spec("labels do not match batch and classes".into()));
        }
        if layers.last().map(|l| l.1) != Some(spec.num_classes) {
            return Err(GoldenError::Spec("last layer size differs from num_classes".into()));
        }
        Ok(Net {
            layers,
            input_len,
            lif: spec.lif_params()?,
            loss: spec.loss_kind()?,
            lr: spec.lr as f32,
            steps: spec.t,
            batch: spec.b,
        })
    }
}

/// Checks that layer `i` has its parameters, with the shapes its spec implies, so that the
/// kernels never see a mis-sized tensor.
fn check_params(case: &GoldenCase, i: usize, l: &LayerSpec) -> Result<(), GoldenError> {
    let (weight, out, bias) = match *l {
        LayerSpec::Fc { n_in, out, bias } => (vec![out, n_in], out, bias),
        LayerSpec::Conv2d { cin, cout, k, bias, .. } => (vec![cout, cin, k, k], cout, bias),
        _ => return Ok(()),
    };
    let mut expected = vec![(format!("L{i}.weight"), weight)];
    if bias {
        expected.push((format!("L{i}.bias"), vec![out]));
    }
    for (name, shape) in expected {
        match case.params.get(&name) {
            Some(t) if t.shape == shape => {}
            Some(t) => {
                let reason = format!("shape {:?}, the spec needs {shape:?}", t.shape);
                return Err(GoldenError::Tensor { name: format!("params.{name}"), reason });
            }
            None => return Err(GoldenError::Tensor { name: format!("params.{name}"), reason: "missing".into() }),
        }
    }
    Ok(())
}

/// Resolves one layer against the current per-row shape and updates the shape.
fn resolve(l: &LayerSpec, shape: &mut Vec<usize>) -> Result<Layer, String> {
    let layer = match *l {
        LayerSpec::Fc { n_in, out, bias } => {
            if shape.as_slice() != [n_in] {
                return Err(format!("fc expects [{n_in}], gets {shape:?}"));
            }
            *shape = vec![out];
            Layer::Fc { bias }
        }
        LayerSpec::Conv2d { cin, cout, k, stride, pad, bias } => {
            let &[c, h, w] = shape.as_slice() else { return Err(format!("conv2d on {shape:?}")) };
            if c != cin || k == 0 || stride == 0 || h + 2 * pad < k || w + 2 * pad < k {
                return Err(format!("conv2d cin={cin} k={k} does not fit {shape:?}"));
            }
            let s = Conv2dShape { cin, cout, h, w, kh: k, kw: k, stride, pad };
            *shape = vec![cout, s.oh(), s.ow()];
            Layer::Conv { shape: s, bias }
        }
        LayerSpec::Avgpool { k } | LayerSpec::Maxpool { k } => {
            let &[c, h, w] = shape.as_slice() else { return Err(format!("pool on {shape:?}")) };
            if k == 0 || h % k != 0 || w % k != 0 {
                return Err(format!("pool k={k} does not divide {shape:?}"));
            }
            let s = PoolShape::tiled(c, h, w, k);
            *shape = vec![c, s.oh(), s.ow()];
            if matches!(l, LayerSpec::Avgpool { .. }) { Layer::AvgPool(s) } else { Layer::MaxPool(s) }
        }
        LayerSpec::Flatten => {
            *shape = vec![shape.iter().product()];
            Layer::Flatten
        }
        LayerSpec::Lif => Layer::Lif,
        LayerSpec::Readout => Layer::Readout,
    };
    Ok(layer)
}

/// An activation tensor `[T·B rows, n]`: spikes or values.
#[derive(Clone, Debug)]
enum Act<S> {
    Spikes(SpikeBits),
    Dense(Vec<S>),
}

impl<S: Storage> Act<S> {
    fn row(&self, r: usize, n: usize) -> Input<'_, S> {
        match self {
            Act::Spikes(b) => Input::Spikes(b.slice(r * n, n)),
            Act::Dense(d) => Input::Dense(&d[r * n..(r + 1) * n]),
        }
    }

    fn to_f32(&self) -> Vec<f32> {
        match self {
            Act::Spikes(b) => b.to_f32(),
            Act::Dense(d) => d.iter().map(|v| v.to_f32()).collect(),
        }
    }

    fn dense(&self, what: &str) -> Result<&[S], GoldenError> {
        match self {
            Act::Dense(d) => Ok(d),
            Act::Spikes(_) => Err(GoldenError::Spec(format!("{what} needs a multi-bit input"))),
        }
    }

    fn spikes(&self, what: &str) -> Result<&SpikeBits, GoldenError> {
        match self {
            Act::Spikes(b) => Ok(b),
            Act::Dense(_) => Err(GoldenError::Spec(format!("{what} needs a spike input"))),
        }
    }
}

/// State of one run: parameters, saved activations and the trace.
struct Step<'a, S> {
    net: &'a Net,
    case: &'a GoldenCase,
    mode: Accum,
    params: BTreeMap<String, Vec<S>>,
    /// Input of each layer, kept for the backward pass.
    inputs: Vec<Act<S>>,
    /// H and S of each LIF layer, kept for the gradient soma.
    lif_state: BTreeMap<usize, (Vec<S>, SpikeBits)>,
    /// Parameter gradients, rounded to storage.
    grads: BTreeMap<String, Vec<S>>,
    trace: Trace,
}

impl<'a, S: Storage> Step<'a, S> {
    fn run(net: &'a Net, case: &'a GoldenCase, mode: Accum) -> Result<Trace, GoldenError> {
        let params =
            case.params.iter().map(|(k, t)| (k.clone(), t.data.iter().map(|&v| S::from_f32(v)).collect())).collect();
        let mut step = Step {
            net,
            case,
            mode,
            params,
            inputs: Vec::new(),
            lif_state: BTreeMap::new(),
            grads: BTreeMap::new(),
            trace: Trace { layers: vec![BTreeMap::new(); net.layers.len()], ..Trace::default() },
        };
        let x = match case.x.dtype {
            crate::golden::DType::Spike => Act::Spikes(SpikeBits::from_nonzero(&case.x.data)),
            _ => Act::Dense(case.x.data.iter().map(|&v| S::from_f32(v)).collect()),
        };
        let out = step.forward(x)?;
        let g = step.loss(&out);
        step.backward(g)?;
        step.update()?;
        Ok(step.trace)
    }

    fn rows(&self) -> usize {
        self.net.steps * self.net.batch
    }

    fn param(&self, name: &str) -> Result<&[S], GoldenError> {
        self.params
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| GoldenError::Tensor { name: format!("params.{name}"), reason: "missing".into() })
    }

    fn record(&mut self, layer: usize, name: &str, values: Vec<f32>) {
        self.trace.layers[layer].insert(name.to_string(), values);
    }

    fn count(&mut self, key: &'static str, ops: OpCount) {
        self.trace.ops.entry(key).or_default().merge(ops);
    }

    fn forward(&mut self, mut cur: Act<S>) -> Result<Act<S>, GoldenError> {
        let mut n_in = self.net.input_len;
        for i in 0..self.net.layers.len() {
            let (layer, n_out) = self.net.layers[i];
            let next = self.forward_layer(i, layer, &cur, n_in, n_out)?;
            self.inputs.push(cur);
            cur = next;
            n_in = n_out;
        }
        Ok(cur)
    }

    fn forward_layer(
        &mut self,
        i: usize,
        layer: Layer,
        cur: &Act<S>,
        n_in: usize,
        n_out: usize,
    ) -> Result<Act<S>, GoldenError> {
        let rows = self.rows();
        let mut out = vec![S::default(); rows * n_out];
        let mut ops = OpCount::default();
        match layer {
            Layer::Fc { bias, .. } => {
                let w = self.param(&format!("L{i}.weight"))?;
                let b = if bias { Some(self.param(&format!("L{i}.bias"))?) } else { None };
                for (r, o) in out.chunks_exact_mut(n_out).enumerate() {
                    linear_forward(self.mode, w, b, cur.row(r, n_in), o, &mut ops);
                }
                self.count("fp.fc", ops);
            }
            Layer::Conv { shape, bias } => {
                let w = self.param(&format!("L{i}.weight"))?;
                let b = if bias { Some(self.param(&format!("L{i}.bias"))?) } else { None };
                for (r, o) in out.chunks_exact_mut(n_out).enumerate() {
                    conv2d_forward(self.mode, &shape, w, b, cur.row(r, n_in), o, &mut ops);
                }
                self.count("fp.conv", ops);
            }
            Layer::AvgPool(shape) | Layer::MaxPool(shape) => {
                let s = cur.spikes("pooling")?;
                for (r, o) in out.chunks_exact_mut(n_out).enumerate() {
                    match layer {
                        Layer::AvgPool(_) => avgpool_forward(&shape, s.slice(r * n_in, n_in), o, &mut ops),
                        _ => maxpool_forward(&shape, s.slice(r * n_in, n_in), o, &mut ops),
                    }
                }
                self.count("fp.pool", ops);
            }
            Layer::Flatten => {
                self.record(i, "out", cur.to_f32());
                return Ok(cur.clone());
            }
            Layer::Lif => return self.lif_forward(i, cur.dense("lif")?, n_out),
            Layer::Readout => {
                self.readout_forward(cur.dense("readout")?, &mut out, n_out);
                self.record(i, "U", to_f32(&out));
                return Ok(Act::Dense(out));
            }
        }
        self.record(i, "out", to_f32(&out));
        Ok(Act::Dense(out))
    }

    fn lif_forward(&mut self, i: usize, x: &[S], n: usize) -> Result<Act<S>, GoldenError> {
        let bn = self.net.batch * n;
        let mut v = vec![S::default(); bn];
        let mut h = vec![S::default(); x.len()];
        let mut vs = vec![S::default(); x.len()];
        let mut s = SpikeBits::zeros(x.len());
        let mut fired = 0;
        for t in 0..self.net.steps {
            let r = t * bn..(t + 1) * bn;
            fired += lif_forward_step(&self.net.lif, &x[r.clone()], &mut v, &mut h[r.clone()], &mut s, t * bn);
            vs[r].copy_from_slice(&v);
        }
        self.trace.spikes.insert(i, fired);
        self.record(i, "H", to_f32(&h));
        self.record(i, "S", s.to_f32());
        self.record(i, "V", to_f32(&vs));
        self.lif_state.insert(i, (h, s.clone()));
        Ok(Act::Spikes(s))
    }

    fn readout_forward(&self, x: &[S], out: &mut [S], n: usize) {
        let bn = self.net.batch * n;
        let mut u = vec![S::default(); bn];
        for (xt, ot) in x.chunks_exact(bn).zip(out.chunks_exact_mut(bn)) {
            readout_forward_step(self.net.lif.beta, xt, &mut u);
            ot.copy_from_slice(&u);
        }
    }

    /// Output z, loss, and dL/dout for every timestep.
    fn loss(&mut self, out: &Act<S>) -> Vec<S> {
        let values: Vec<S> = match out {
            Act::Spikes(b) => b.to_f32().into_iter().map(S::from_f32).collect(),
            Act::Dense(d) => d.clone(),
        };
        let mut z = vec![0.0f32; values.len() / self.net.steps];
        time_mean(&values, self.net.steps, &mut z);
        let labels = &self.case.labels;
        self.trace.loss = loss_value(self.net.loss, &z, labels);
        self.trace.z = z.iter().map(|&v| S::round(v)).collect();
        let mut g = vec![S::default(); z.len()];
        output_grad(self.net.loss, &z, labels, self.net.steps, &mut g);
        g.repeat(self.net.steps)
    }

    fn backward(&mut self, mut g: Vec<S>) -> Result<(), GoldenError> {
        for i in (0..self.net.layers.len()).rev() {
            let (layer, n_out) = self.net.layers[i];
            let n_in = if i == 0 { self.net.input_len } else { self.net.layers[i - 1].1 };
            // The first layer with parameters needs no input gradient.
            let needs_gin =
                self.net.layers[..i].iter().any(|(l, _)| matches!(l, Layer::Fc { .. } | Layer::Conv { .. }));
            g = match layer {
                Layer::Lif => self.lif_backward(i, g, n_out)?,
                Layer::Readout => self.readout_backward(i, g, n_out),
                Layer::Fc { bias, .. } => self.fc_backward(i, &g, n_in, n_out, bias, needs_gin)?,
                Layer::Conv { shape, bias } => self.conv_backward(i, &g, &shape, bias, needs_gin)?,
                Layer::AvgPool(shape) | Layer::MaxPool(shape) => self.pool_backward(i, layer, &shape, &g)?,
                Layer::Flatten => g,
            };
        }
        Ok(())
    }

    fn lif_backward(&mut self, i: usize, gs: Vec<S>, n: usize) -> Result<Vec<S>, GoldenError> {
        let bn = self.net.batch * n;
        let (h, s) = self.lif_state.get(&i).ok_or_else(|| GoldenError::Spec("lif state missing".into()))?;
        let mut gv = vec![S::default(); bn];
        let mut gh = vec![S::default(); gs.len()];
        for t in (0..self.net.steps).rev() {
            let r = t * bn..(t + 1) * bn;
            lif_backward_step(&self.net.lif, &gs[r.clone()], &h[r.clone()], s.slice(t * bn, bn), &mut gv, &mut gh[r]);
        }
        self.record(i, "grad_S", to_f32(&gs));
        self.record(i, "grad_H", to_f32(&gh));
        Ok(gh)
    }

    fn readout_backward(&mut self, i: usize, g: Vec<S>, n: usize) -> Vec<S> {
        let bn = self.net.batch * n;
        let mut carry = vec![S::default(); bn];
        let mut gu = vec![S::default(); g.len()];
        for t in (0..self.net.steps).rev() {
            let r = t * bn..(t + 1) * bn;
            readout_backward_step(self.net.lif.beta, &g[r.clone()], &mut carry, &mut gu[r]);
        }
        self.record(i, "grad_U", to_f32(&gu));
        gu
    }

    fn fc_backward(
        &mut self,
        i: usize,
        g: &[S],
        n_in: usize,
        n_out: usize,
        bias: bool,
        needs_gin: bool,
    ) -> Result<Vec<S>, GoldenError> {
        let (mode, rows) = (self.mode, self.rows());
        let (mut wg, mut bp) = (OpCount::default(), OpCount::default());
        let mut acc = vec![0.0f32; n_out * n_in];
        let mut bacc = vec![0.0f32; n_out];
        for r in 0..rows {
            let gr = &g[r * n_out..(r + 1) * n_out];
            linear_weight_grad(mode, gr, self.inputs[i].row(r, n_in), &mut acc, &mut wg);
            bias_grad(mode, gr, 1, &mut bacc);
        }
        self.store_grads(i, &acc, bias.then_some(&bacc[..]));
        let mut gin = vec![S::default(); if needs_gin { rows * n_in } else { 0 }];
        if needs_gin {
            let w = self.param(&format!("L{i}.weight"))?;
            let mut psum = vec![0.0f32; n_in];
            for (r, gi) in gin.chunks_exact_mut(n_in).enumerate() {
                linear_backward_input(mode, w, &g[r * n_out..(r + 1) * n_out], gi, &mut psum, &mut bp);
            }
        }
        self.count("wg.fc", wg);
        self.count("bp.fc", bp);
        Ok(gin)
    }

    fn conv_backward(
        &mut self,
        i: usize,
        g: &[S],
        shape: &Conv2dShape,
        bias: bool,
        needs_gin: bool,
    ) -> Result<Vec<S>, GoldenError> {
        let (mode, rows) = (self.mode, self.rows());
        let (n_in, n_out, plane) = (shape.in_len(), shape.out_len(), shape.oh() * shape.ow());
        let (mut wg, mut bp) = (OpCount::default(), OpCount::default());
        let mut acc = vec![0.0f32; shape.weight_len()];
        let mut bacc = vec![0.0f32; shape.cout];
        for r in 0..rows {
            let gr = &g[r * n_out..(r + 1) * n_out];
            conv2d_weight_grad(mode, shape, gr, self.inputs[i].row(r, n_in), &mut acc, &mut wg);
            bias_grad(mode, gr, plane, &mut bacc);
        }
        self.store_grads(i, &acc, bias.then_some(&bacc[..]));
        let mut gin = vec![S::default(); if needs_gin { rows * n_in } else { 0 }];
        if needs_gin {
            let w = self.param(&format!("L{i}.weight"))?;
            let mut psum = vec![0.0f32; n_in];
            for (r, gi) in gin.chunks_exact_mut(n_in).enumerate() {
                conv2d_backward_input(mode, shape, w, &g[r * n_out..(r + 1) * n_out], gi, &mut psum, &mut bp);
            }
        }
        self.count("wg.conv", wg);
        self.count("bp.conv", bp);
        Ok(gin)
    }

    fn pool_backward(&mut self, i: usize, layer: Layer, shape: &PoolShape, g: &[S]) -> Result<Vec<S>, GoldenError> {
        let (n_in, n_out) = (shape.in_len(), shape.out_len());
        let mut gin = vec![S::default(); self.rows() * n_in];
        let s = self.inputs[i].spikes("pooling")?;
        for (r, gi) in gin.chunks_exact_mut(n_in).enumerate() {
            let go = &g[r * n_out..(r + 1) * n_out];
            match layer {
                Layer::AvgPool(_) => avgpool_backward(shape, go, gi),
                _ => maxpool_backward(shape, s.slice(r * n_in, n_in), go, gi),
            }
        }
        Ok(gin)
    }

    /// Rounds the f32 gradient accumulators of layer `i` to storage.
    fn store_grads(&mut self, i: usize, weight: &[f32], bias: Option<&[f32]>) {
        let mut put = |name: String, acc: &[f32]| {
            let mut v = vec![S::default(); acc.len()];
            store(acc, &mut v);
            self.grads.insert(name, v);
        };
        put(format!("L{i}.weight"), weight);
        if let Some(b) = bias {
            put(format!("L{i}.bias"), b);
        }
    }

    /// One plain SGD step on every parameter.
    fn update(&mut self) -> Result<(), GoldenError> {
        for (name, w) in &mut self.params {
            let g = self.grads.get(name).ok_or_else(|| GoldenError::Spec(format!("no gradient for {name}")))?;
            sgd(self.net.lr, g, w);
            self.trace.grads.insert(name.clone(), to_f32(g));
            self.trace.params_updated.insert(name.clone(), to_f32(w));
        }
        Ok(())
    }
}

fn to_f32<S: Storage>(v: &[S]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}
