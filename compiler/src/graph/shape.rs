//! Shape inference: the output shape of each layer op from its inputs' shapes.

use crate::diagnostics::Diagnostic;
use crate::model::{LayerDecl, Op, Pool};

/// The output shape of `decl` given `(producer, shape)` for each input.
pub(super) fn infer_shape(decl: &LayerDecl, inputs: &[(&LayerDecl, &Vec<u32>)]) -> Result<Vec<u32>, Diagnostic> {
    match (&decl.op, inputs) {
        (Op::Input { shape, .. }, _) => Ok(shape.clone()),
        (Op::Conv2d { out, kernel, stride, padding, .. }, [(src, shape)]) => {
            let [_, h, w] = image(decl, src, shape)?;
            let pool = Pool { kernel: *kernel, stride: *stride, padding: *padding };
            Ok(vec![*out, window(decl, &pool, h)?, window(decl, &pool, w)?])
        }
        (Op::AvgPool(pool) | Op::MaxPool(pool), [(src, shape)]) => {
            let [c, h, w] = image(decl, src, shape)?;
            Ok(vec![c, window(decl, pool, h)?, window(decl, pool, w)?])
        }
        (Op::Linear { out, .. }, [(src, shape)]) => {
            if shape.len() != 1 {
                return Err(mismatch(decl, src, shape, "a flat input [N]")
                    .with_help(format!("insert `{}_flat = flatten({})` and read that", src.name, src.name)));
            }
            Ok(vec![*out])
        }
        (Op::Flatten, [(_, shape)]) => {
            let numel: u64 = shape.iter().map(|&d| u64::from(d)).product();
            u32::try_from(numel).ok().filter(|&n| n <= 1 << 30).map(|n| vec![n]).ok_or_else(|| {
                Diagnostic::error(
                    decl.span,
                    format!("flatten `{}` would give {numel} features", decl.name),
                    "too large",
                )
                .with_help("at most 2^30 features fit one layer; pool or stride before flattening")
            })
        }
        (Op::Add, [(first, first_shape), rest @ ..]) => {
            for (src, shape) in rest {
                if shape != first_shape {
                    return Err(Diagnostic::error(
                        decl.span,
                        format!("add `{}` joins `{}` of shape {first_shape:?} with `{}` of shape {shape:?}", decl.name, first.name, src.name),
                        "shapes differ",
                    )
                    .with_help("the inputs of `add` must have equal shapes; project one with a 1x1 `conv2d` (for channels) or a strided one (for size)"));
                }
            }
            Ok(first_shape.to_vec())
        }
        (Op::Lif(_) | Op::Readout { .. }, [(_, shape)]) => Ok(shape.to_vec()),
        _ => Err(Diagnostic::error(decl.span, format!("`{}` has the wrong number of inputs", decl.name), "")),
    }
}

fn image(decl: &LayerDecl, src: &LayerDecl, shape: &[u32]) -> Result<[u32; 3], Diagnostic> {
    match shape {
        [c, h, w] => Ok([*c, *h, *w]),
        _ => Err(mismatch(decl, src, shape, "an image [C, H, W]")
            .with_help("2-D layers must come before `flatten` and `linear`")),
    }
}

fn mismatch(decl: &LayerDecl, src: &LayerDecl, shape: &[u32], expected: &str) -> Diagnostic {
    Diagnostic::error(
        decl.span,
        format!("{} `{}` expects {expected}, but `{}` gives {shape:?}", decl.op.name(), decl.name, src.name),
        format!("expects {expected}"),
    )
    .with_note(src.span, format!("`{}` is defined here", src.name))
}

/// Output size along one dimension: floor((n + 2p - k) / s) + 1, as PyTorch computes it.
fn window(decl: &LayerDecl, pool: &Pool, n: u32) -> Result<u32, Diagnostic> {
    let Pool { kernel, stride, padding } = *pool;
    let padded = u64::from(n) + 2 * u64::from(padding);
    if u64::from(kernel) > padded {
        return Err(Diagnostic::error(
            decl.span,
            format!(
                "{} `{}` has kernel {kernel}, larger than its padded input {padded} ({n} + 2x{padding})",
                decl.op.name(),
                decl.name
            ),
            "kernel does not fit",
        )
        .with_help(format!("use a kernel of at most {padded}, or more padding")));
    }
    if padding >= kernel {
        return Err(Diagnostic::error(
            decl.span,
            format!("{} `{}` has padding {padding}, not smaller than its kernel {kernel}", decl.op.name(), decl.name),
            "padding too large",
        )
        .with_help("padding must be smaller than the kernel, or whole windows would see only zeros"));
    }
    Ok(((padded - u64::from(kernel)) / u64::from(stride) + 1) as u32)
}
