//! Multi-row instructions (`fp.linear`, `bp.linear`, `wg.linear`, `fp.lif`, `bp.soma`): at
//! least one row, and every row inside its buffers.
//!
//! The generic access walk in `flow.rs` checks each operand as written. For the linear tiles
//! that is row 0; rows only move forwards (strides are unsigned), so row 0 and the last row
//! bound every row in between, and this module checks the last one. The somas' row-carrying
//! operands are written whole (`rows*n` elements, which `shape.rs` checks), so the access
//! walk bounds all their rows and only the row count is left to check here.

use super::flow::Ctx;
use super::{Report, ViolationKind as K};
use crate::instr::Instr;
use crate::operand::Access;

/// A row-carrying operand: its name, row 0, and the element stride between rows.
type RowOperand<'a> = (&'static str, &'a Access, u16);

/// The row count of a multi-row instruction and its row-carrying operands.
fn row_operands(instr: &Instr) -> Option<(u16, Vec<RowOperand<'_>>)> {
    match instr {
        Instr::FpLinear { spk, out, rows, spk_stride, out_stride, .. } => {
            Some((*rows, vec![("spk", spk, *spk_stride), ("out", out, *out_stride)]))
        }
        Instr::BpLinear { err, out, nz, rows, err_stride, out_stride, .. } => {
            let mut ops = vec![("err", err, *err_stride), ("out", out, *out_stride)];
            ops.extend(nz.as_ref().map(|a| ("nz", a, *err_stride)));
            Some((*rows, ops))
        }
        Instr::WgLinear { spk, err, nz, rows, spk_stride, err_stride, .. } => {
            let mut ops = vec![("spk", spk, *spk_stride), ("err", err, *err_stride)];
            ops.extend(nz.as_ref().map(|a| ("nz", a, *err_stride)));
            Some((*rows, ops))
        }
        Instr::FpLif { rows, .. } | Instr::BpSoma { rows, .. } => Some((*rows, Vec::new())),
        _ => None,
    }
}

/// Reports a zero row count, and any operand whose last row leaves its buffer.
pub(crate) fn check(instr: &Instr, ctx: &Ctx<'_>, r: &mut Report) {
    let Some((rows, operands)) = row_operands(instr) else { return };
    if rows == 0 {
        r.push(K::OperandRange, ctx.at, "operand `rows` is 0: expected at least 1");
        return;
    }
    let last = i128::from(rows - 1);
    for (name, a, stride) in operands {
        let Some(desc) = ctx.chip.buffer(a.buf) else { continue };
        // An unbound register was reported for row 0 already.
        let Ok((lo, hi)) = ctx.range(a.off, &a.terms) else { continue };
        let shift = last * i128::from(stride);
        let end = hi + shift + i128::from(a.len);
        let cap = i128::from(desc.elems());
        if end > cap {
            r.push(
                K::BufferBounds,
                ctx.at,
                format!(
                    "operand `{name}` in its last row ({}) spans elements {}..{end} of `{}` over its loops, outside the buffer's 0..{cap}",
                    rows - 1,
                    lo + shift,
                    a.buf
                ),
            );
        }
    }
}
