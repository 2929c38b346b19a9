//! From syntax tree to [`ModelSpec`]: settings first (layers inherit the neuron defaults),
//! then every layer, collecting all errors.

use super::args::{Args, one_of, read_float, read_int, unknown};
use super::spec::*;
use crate::diagnostics::{Diagnostic, Span};
use crate::syntax::{Expr, ExprKind, Item, ModelAst};

/// The names that are settings rather than layers.
pub const SETTINGS: &[&str] = &["timesteps", "batch", "neuron", "init", "loss", "optimizer"];
/// The layer ops of the language.
pub const OPS: &[&str] = &["input", "conv2d", "linear", "avgpool", "maxpool", "flatten", "add", "lif", "readout"];
const SURROGATES: &[&str] = &["atan", "sigmoid", "rect", "triangle", "fast_sigmoid"];
const NEURON_KEYS: &[&str] = &["beta", "tau", "threshold", "reset", "detach_reset", "surrogate"];
const LOSSES: &[&str] = &["mse_rate", "ce_rate", "ce_mem"];
const OPTIMIZERS: &[&str] = &["sgd", "adam"];
const ENCODINGS: &[&str] = &["spikes", "bernoulli", "current"];
/// Largest size of one dimension, channel count or feature count.
const MAX_DIM: i64 = 1 << 20;

/// Checks every item of `ast` and returns the typed model, or every error found.
pub fn lower(ast: &ModelAst) -> Result<ModelSpec, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let settings = Settings::collect(ast, &mut errors);
    let neuron = settings
        .get("neuron")
        .map_or(Some(NeuronParams::default()), |e| neuron_call(e, NeuronParams::default(), "neuron", &mut errors));
    let base = neuron.unwrap_or_default();
    let mut layers = Vec::new();
    for item in ast.items.iter().filter(|item| !SETTINGS.contains(&item.name.name.as_str())) {
        if let Some(layer) = lower_layer(item, base, &mut errors) {
            layers.push(layer);
        }
    }
    let close = ast.close_brace;
    let timesteps = settings
        .required("timesteps", close, "timesteps = 8", &mut errors)
        .and_then(|e| read_int(e, "timesteps", 1..=100_000, &mut errors));
    let batch = settings
        .required("batch", close, "batch = 32", &mut errors)
        .and_then(|e| read_int(e, "batch", 1..=65_536, &mut errors));
    let init = settings.get("init").map_or(Some(Init::default()), |e| init_call(e, &mut errors));
    let loss =
        settings.required("loss", close, "loss = mse_rate(out)", &mut errors).and_then(|e| loss_call(e, &mut errors));
    let optimizer = settings
        .required("optimizer", close, "optimizer = sgd(lr = 0.1)", &mut errors)
        .and_then(|e| optimizer_call(e, &mut errors));
    match (timesteps, batch, neuron, init, loss, optimizer) {
        (Some(t), Some(b), Some(neuron), Some(init), Some(loss), Some(optimizer)) if errors.is_empty() => {
            Ok(ModelSpec {
                name: ast.name.name.clone(),
                timesteps: t as u32,
                batch: b as u32,
                neuron,
                init,
                loss,
                optimizer,
                layers,
                close,
            })
        }
        _ => Err(errors),
    }
}

/// The model's setting items by name, duplicates reported.
struct Settings<'a> {
    items: Vec<&'a Item>,
}

impl<'a> Settings<'a> {
    fn collect(ast: &'a ModelAst, errors: &mut Vec<Diagnostic>) -> Settings<'a> {
        let mut items: Vec<&Item> = Vec::new();
        for item in ast.items.iter().filter(|item| SETTINGS.contains(&item.name.name.as_str())) {
            if item.name.name != "neuron" && is_layer_call(&item.value) {
                errors.push(
                    Diagnostic::error(
                        item.name.span,
                        format!("`{}` is a setting and cannot name a layer", item.name.name),
                        "reserved name",
                    )
                    .with_help(format!("rename the layer; the settings are {}", SETTINGS.join(", "))),
                );
            } else if let Some(first) = items.iter().find(|i| i.name.name == item.name.name) {
                errors.push(
                    Diagnostic::error(item.name.span, format!("`{}` is set twice", item.name.name), "second setting")
                        .with_note(first.name.span, "first set here")
                        .with_help("keep one of them"),
                );
            } else {
                items.push(item);
            }
        }
        Settings { items }
    }

    fn get(&self, name: &str) -> Option<&'a Expr> {
        self.items.iter().find(|i| i.name.name == name).map(|i| &i.value)
    }

    fn required(&self, name: &str, close: Span, example: &str, errors: &mut Vec<Diagnostic>) -> Option<&'a Expr> {
        let found = self.get(name);
        if found.is_none() {
            errors.push(
                Diagnostic::error(close, format!("the model has no `{name}`"), format!("`{name}` is missing"))
                    .with_help(format!("add `{example}` to the model")),
            );
        }
        found
    }
}

fn is_layer_call(expr: &Expr) -> bool {
    matches!(&expr.kind, ExprKind::Call { callee, .. } if OPS.contains(&callee.name.as_str()))
}

/// Splits `expr` into a call's name and arguments, or reports what was expected.
fn expect_call<'a>(
    expr: &'a Expr,
    what: &str,
    choices: &[&str],
    errors: &mut Vec<Diagnostic>,
) -> Option<(&'a crate::syntax::Ident, &'a [crate::syntax::Arg])> {
    match &expr.kind {
        ExprKind::Call { callee, args } if choices.contains(&callee.name.as_str()) => Some((callee, args)),
        ExprKind::Call { callee, .. } => {
            errors.push(unknown(callee.span, what, &callee.name, choices));
            None
        }
        ExprKind::Name(name) if choices.contains(&name.as_str()) => {
            errors.push(
                Diagnostic::error(expr.span, format!("`{name}` needs arguments"), "not a call")
                    .with_help(format!("write `{name}(...)`")),
            );
            None
        }
        kind => {
            errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("expected {what}, found {}", kind.describe()),
                    format!("expected {what}"),
                )
                .with_help(format!(
                    "write {}",
                    one_of(choices).replace('`', "").replace(", ", "(...), ").replace(" or ", "(...) or ") + "(...)"
                )),
            );
            None
        }
    }
}

fn neuron_call(expr: &Expr, base: NeuronParams, what: &str, errors: &mut Vec<Diagnostic>) -> Option<NeuronParams> {
    let (callee, args) = expect_call(expr, what, &["lif"], errors)?;
    let mut args = Args::new(callee, args, expr.span, errors);
    args.no_positional();
    let params = neuron_args(&mut args, base);
    args.finish(NEURON_KEYS);
    params
}

/// Reads the neuron keywords of `args` over `base`.
fn neuron_args(args: &mut Args<'_>, base: NeuronParams) -> Option<NeuronParams> {
    // Every key is read before any failure returns, so that one bad value does not make
    // the keys after it look unknown.
    let beta = decay(args, base.beta);
    let threshold =
        args.float("threshold", Some(base.threshold), |v| v > 0.0 && v < 65504.0, "a positive number below 65504");
    let default_reset = if base.reset == Reset::Hard { "hard" } else { "soft" };
    let reset = args.choice("reset", default_reset, &["hard", "soft"]);
    let detach_reset = args.boolean("detach_reset", base.detach_reset);
    let surrogate = match args.take("surrogate") {
        Some(expr) => surrogate(expr, args.errors),
        None => Some(base.surrogate),
    };
    let reset = if reset? == "soft" { Reset::Soft } else { Reset::Hard };
    Some(NeuronParams { beta: beta?, threshold: threshold?, reset, detach_reset: detach_reset?, surrogate: surrogate? })
}

/// `beta`, or `tau` as beta = 1 - 1/tau; not both.
fn decay(args: &mut Args<'_>, default: f64) -> Option<f64> {
    let beta_expr = args.take("beta");
    let tau_expr = args.take("tau");
    match (beta_expr, tau_expr) {
        (Some(b), Some(t)) => {
            args.errors.push(
                Diagnostic::error(t.span, "both `beta` and `tau` are given", "second decay")
                    .with_note(b.span, "`beta` given here")
                    .with_help("give one: beta = 1 - 1/tau"),
            );
            None
        }
        (Some(b), None) => read_float(b, "beta", |v| v > 0.0 && v < 1.0, "strictly between 0 and 1", args.errors),
        (None, Some(t)) => {
            read_float(t, "tau", |v| v > 1.0 && v < 1e6, "greater than 1", args.errors).map(|tau| 1.0 - 1.0 / tau)
        }
        (None, None) => Some(default),
    }
}

fn surrogate(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Surrogate> {
    let (callee, call_args) = expect_call(expr, "surrogate", SURROGATES, errors)?;
    let key = match callee.name.as_str() {
        "rect" => "width",
        "fast_sigmoid" => "slope",
        _ => "alpha",
    };
    let mut args = Args::new(callee, call_args, expr.span, errors);
    let keyword = args.take(key);
    let value = match (args.positional().to_vec().as_slice(), keyword) {
        ([one], None) => read_float(one, key, |v| v > 0.0 && v < 1e4, "a positive number", args.errors),
        ([], Some(e)) => read_float(e, key, |v| v > 0.0 && v < 1e4, "a positive number", args.errors),
        _ => {
            args.errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("`{}` takes exactly one parameter", callee.name),
                    "one parameter expected",
                )
                .with_help(format!("write `{}(1.0)` or `{}({key} = 1.0)`", callee.name, callee.name)),
            );
            None
        }
    };
    args.finish(&[key]);
    let value = value?;
    Some(match callee.name.as_str() {
        "rect" => Surrogate::Rect(value),
        "sigmoid" => Surrogate::Sigmoid(value),
        "triangle" => Surrogate::Triangle(value),
        "fast_sigmoid" => Surrogate::FastSigmoid(value),
        _ => Surrogate::Atan(value),
    })
}

fn init_call(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Init> {
    let (callee, args) = expect_call(expr, "initialiser", &["uniform"], errors)?;
    let mut args = Args::new(callee, args, expr.span, errors);
    args.no_positional();
    let gain = args.float("gain", Some(1.0), |v| v > 0.0 && v < 1e6, "a positive number");
    let seed = args.int("seed", Some(0), 0..=i64::MAX);
    args.finish(&["gain", "seed"]);
    Some(Init { gain: gain?, seed: seed? as u64 })
}

fn loss_call(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Loss> {
    let (callee, args) = expect_call(expr, "loss", LOSSES, errors)?;
    let mut args = Args::new(callee, args, expr.span, errors);
    let layer = match args.positional() {
        [Expr { kind: ExprKind::Name(name), span }] => Some((name.clone(), *span)),
        _ => {
            args.errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("`{}` takes the output layer", callee.name),
                    "one layer name expected",
                )
                .with_help(format!("write `{}(out)` where `out` is the last layer", callee.name)),
            );
            None
        }
    };
    args.finish(&[]);
    let kind = match callee.name.as_str() {
        "ce_rate" => LossKind::CeRate,
        "ce_mem" => LossKind::CeMem,
        _ => LossKind::MseRate,
    };
    let (layer, layer_span) = layer?;
    Some(Loss { kind, layer, layer_span })
}

fn optimizer_call(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Optimizer> {
    let (callee, args) = expect_call(expr, "optimizer", OPTIMIZERS, errors)?;
    let mut args = Args::new(callee, args, expr.span, errors);
    args.no_positional();
    let positive = |v: f64| v > 0.0 && v < 1e4;

    if callee.name == "adam" {
        let lr = args.float("lr", Some(1e-3), positive, "a positive number");
        let betas = args.take("betas").map_or(Some([0.9, 0.999]), |e| betas(e, args.errors));
        let eps = args.float("eps", Some(1e-8), positive, "a positive number");
        args.finish(&["lr", "betas", "eps"]);
        Some(Optimizer::Adam { lr: lr?, betas: betas?, eps: eps? })
    } else {
        let lr = args.float("lr", None, positive, "a positive number");
        let momentum = args.float("momentum", Some(0.0), |v| (0.0..1.0).contains(&v), "in [0, 1)");
        args.finish(&["lr", "momentum"]);
        Some(Optimizer::Sgd { lr: lr?, momentum: momentum? })
    }
}

fn betas(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<[f64; 2]> {
    let in_unit = |v: f64| (0.0..1.0).contains(&v);
    match &expr.kind {
        ExprKind::List(values) if values.len() == 2 => {
            let b1 = read_float(&values[0], "betas", in_unit, "in [0, 1)", errors);
            let b2 = read_float(&values[1], "betas", in_unit, "in [0, 1)", errors);
            Some([b1?, b2?])
        }
        _ => {
            errors.push(
                Diagnostic::error(expr.span, "`betas` expects a list of two numbers", "expected `[b1, b2]`")
                    .with_help("write `betas = [0.9, 0.999]`"),
            );
            None
        }
    }
}

fn lower_layer(item: &Item, base: NeuronParams, errors: &mut Vec<Diagnostic>) -> Option<LayerDecl> {
    let ExprKind::Call { callee, args } = &item.value.kind else {
        errors.push(unknown(item.name.span, "setting", &item.name.name, SETTINGS).with_help(format!(
            "a layer is `{} = op(inputs, ...)`; the settings are {}",
            item.name.name,
            SETTINGS.join(", ")
        )));
        return None;
    };
    if !OPS.contains(&callee.name.as_str()) {
        errors.push(unknown(callee.span, "layer op", &callee.name, OPS));
        return None;
    }
    let mut args = Args::new(callee, args, item.value.span, errors);
    let inputs = layer_inputs(&mut args, &callee.name);
    let op = layer_op(&callee.name, &mut args, base);
    let inputs = inputs?;
    Some(LayerDecl { name: item.name.name.clone(), name_span: item.name.span, op: op?, inputs, span: item.span })
}

/// Checks that the positional arguments are layer names, as many as the op takes.
fn layer_inputs(args: &mut Args<'_>, op: &str) -> Option<Vec<(String, Span)>> {
    let mut names = Vec::new();
    let positional: Vec<&Expr> = args.positional().to_vec();
    for expr in &positional {
        match &expr.kind {
            ExprKind::Name(name) => names.push((name.clone(), expr.span)),
            kind => args.errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("an input of `{op}` must be a layer name, found {}", kind.describe()),
                    "not a layer name",
                )
                .with_help("inputs are the names of other layers; keyword arguments are written `key = value`"),
            ),
        }
    }
    let (ok, expected) = match op {
        "input" => (positional.is_empty(), "no inputs"),
        "add" => (positional.len() >= 2, "two or more inputs"),
        _ => (positional.len() == 1, "exactly one input"),
    };
    if !ok {
        let span = positional.first().map_or(args.span(), |e| e.span);
        args.errors.push(
            Diagnostic::error(
                span,
                format!("`{op}` takes {expected}, found {}", positional.len()),
                format!("expected {expected}"),
            )
            .with_help(if op == "input" {
                "`input` takes only `shape` and `encoding`".to_string()
            } else {
                format!("write `{op}(previous_layer, ...)`")
            }),
        );
        return None;
    }
    (names.len() == positional.len()).then_some(names)
}

fn layer_op(op: &str, args: &mut Args<'_>, base: NeuronParams) -> Option<Op> {
    let dim = 1..=MAX_DIM;

    match op {
        "input" => {
            let shape = match args.take("shape") {
                Some(e) => shape(e, args.errors),
                None => missing_shape(args),
            };
            let encoding = args.take("encoding").map_or(Some(Encoding::Spikes), |e| encoding(e, args.errors));
            args.finish(&["shape", "encoding"]);
            Some(Op::Input { shape: shape?, encoding: encoding? })
        }
        "conv2d" => {
            let out = args.int("out", None, dim.clone());
            let kernel = args.int("kernel", None, 1..=1024);
            let stride = args.int("stride", Some(1), 1..=1024);
            let padding = args.int("padding", Some(0), 0..=1024);
            let bias = args.boolean("bias", false);
            args.finish(&["out", "kernel", "stride", "padding", "bias"]);
            Some(Op::Conv2d {
                out: out? as u32,
                kernel: kernel? as u32,
                stride: stride? as u32,
                padding: padding? as u32,
                bias: bias?,
            })
        }
        "linear" => {
            let out = args.int("out", None, dim);
            let bias = args.boolean("bias", false);
            args.finish(&["out", "bias"]);
            Some(Op::Linear { out: out? as u32, bias: bias? })
        }
        "avgpool" | "maxpool" => {
            let kernel = args.int("kernel", None, 1..=1024);
            let stride = args.int("stride", kernel, 1..=1024);
            let padding = args.int("padding", Some(0), 0..=1024);
            args.finish(&["kernel", "stride", "padding"]);
            let pool = Pool { kernel: kernel? as u32, stride: stride? as u32, padding: padding? as u32 };
            Some(if op == "avgpool" { Op::AvgPool(pool) } else { Op::MaxPool(pool) })
        }
        "lif" => {
            let params = neuron_args(args, base);
            args.finish(NEURON_KEYS);
            Some(Op::Lif(params?))
        }
        "readout" => {
            let beta = decay(args, base.beta);
            args.finish(&["beta", "tau"]);
            Some(Op::Readout { beta: beta? })
        }
        _ => {
            args.finish(&[]);
            Some(if op == "add" { Op::Add } else { Op::Flatten })
        }
    }
}

fn missing_shape(args: &mut Args<'_>) -> Option<Vec<u32>> {
    let span = args.span();
    args.errors.push(
        Diagnostic::error(span, "`input` needs `shape`", "`shape` is missing")
            .with_help("add `shape = [C, H, W]` or `shape = [N]`"),
    );
    None
}

fn shape(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Vec<u32>> {
    let ExprKind::List(values) = &expr.kind else {
        errors.push(
            Diagnostic::error(
                expr.span,
                format!("`shape` expects a list, found {}", expr.kind.describe()),
                "expected a list",
            )
            .with_help("write `shape = [C, H, W]` or `shape = [N]`"),
        );
        return None;
    };
    if values.len() != 1 && values.len() != 3 {
        errors.push(
            Diagnostic::error(
                expr.span,
                format!("an input shape has 1 or 3 dimensions, found {}", values.len()),
                "expected [N] or [C, H, W]",
            )
            .with_help("vectors are `[N]`, images `[C, H, W]`"),
        );
        return None;
    }
    let dims: Vec<Option<i64>> = values.iter().map(|v| read_int(v, "shape", 1..=65_536, errors)).collect();
    dims.into_iter().map(|d| d.map(|d| d as u32)).collect()
}

fn encoding(expr: &Expr, errors: &mut Vec<Diagnostic>) -> Option<Encoding> {
    if matches!(&expr.kind, ExprKind::Name(name) if name == "spikes") {
        return Some(Encoding::Spikes);
    }
    match &expr.kind {
        ExprKind::Name(name) => {
            errors.push(unknown(expr.span, "encoding", name, ENCODINGS));
            return None;
        }
        ExprKind::Call { callee, .. } if !ENCODINGS[1..].contains(&callee.name.as_str()) => {
            errors.push(unknown(callee.span, "encoding", &callee.name, ENCODINGS));
            return None;
        }
        _ => {}
    }
    let (callee, args) = expect_call(expr, "encoding", &["bernoulli", "current"], errors)?;
    let mut args = Args::new(callee, args, expr.span, errors);
    args.no_positional();
    if callee.name == "current" {
        let scale = args.float("scale", Some(1.0), |v| v > 0.0 && v < 65504.0, "a positive number");
        args.finish(&["scale"]);
        return Some(Encoding::Current { scale: scale? });
    }
    let max_rate = args.float("max_rate", Some(1.0), |v| v > 0.0 && v <= 1.0, "in (0, 1]");
    let seed = args.int("seed", Some(0), 0..=i64::MAX);
    args.finish(&["max_rate", "seed"]);
    Some(Encoding::Bernoulli { max_rate: max_rate?, seed: seed? as u64 })
}
