//! The cost of the conv instructions: the PE array lays output positions down its rows and
//! broadcasts each weight it reads (or reduces each gradient it updates) along a column, so
//! a weight-buffer access serves up to `min(rows, positions)` executed products. Each test
//! runs one dense instruction and derives its operations, its weight-shaped accesses and its
//! busy cycles from the shape and the default chip (16x16 PEs, 16 banks, 16-bit `w`,
//! 32-bit `wg.grad`).

use super::*;

/// `cin = 2`, `cout = 4`, 3x3 taps: 72 weights.
const CIN: usize = 2;
const COUT: usize = 4;
const TAPS: usize = 9;

/// The default chip's PE array: rows (positions sharing a weight read) and columns (banks).
const ROWS: usize = 16;
const COLS: usize = 16;

/// Dense products of a conv whose output map is `side x side`.
fn dense_ops(side: usize) -> usize {
    COUT * CIN * TAPS * side * side
}

/// Runs `body` on core 0 and returns the run's statistics.
fn stats_of(body: &str) -> RunStats {
    let p = program(body);
    let (_, r) = run(&p);
    r.unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// The busy cycles of an engine instruction of `ops` products whose buffers take
/// `accesses`: an issue cycle, then the compute over the 256 PEs or the busiest buffer's
/// accesses over the 16 banks, whichever is longer.
fn engine_busy(ops: usize, accesses: &[usize]) -> u64 {
    let port = accesses.iter().copied().max().unwrap_or(0);
    (1 + ops.div_ceil(ROWS * COLS).max(port.div_ceil(COLS))) as u64
}

/// The input side and output side of the backward tests: the 8x8 output of a 10x10 input,
/// and its errors.
const IH: usize = 10;
const SIDE: usize = 8;
const ERRS: usize = COUT * SIDE * SIDE;

/// Runs `body` and checks that its one `kind` instruction executed every product of the
/// backward tests' shape; returns the run's statistics and that count.
fn run_backward(kind: &str, body: &str) -> (RunStats, usize) {
    let s = stats_of(body);
    let ops = dense_ops(SIDE);
    assert_eq!(s.profile[kind].ops_executed, ops as u64, "{kind}");
    (s, ops)
}

/// The busy cycles of the one conv instruction of `stream`: the stream's busy cycles less
/// the `fills` cycles of the `fill` before it and the one of `halt`.
fn conv_busy(s: &RunStats, stream: usize, fills: u64) -> u64 {
    s.streams[0][stream].busy - fills - 1
}

/// `fp.conv` on an `ih x ih` input (no padding, so a `(ih-2)^2` output): every product is
/// executed (`skip=false`), and `fp.w` is read once per `min(16, positions)` of them.
fn fp_conv(ih: usize) -> (RunStats, usize) {
    let side = ih - 2;
    let body = format!(
        ".core 0\n.stream fp\n    fp.conv spk=fp.in[0:{}] w=fp.w[0:{}] bias=- out=fp.psum[0:{}] cin={CIN} cout={COUT} ih={ih} iw={ih} kh=3 kw=3 stride=1 acc=false skip=false\n    halt\n",
        CIN * ih * ih,
        COUT * CIN * TAPS,
        COUT * side * side
    );
    (stats_of(&body), side * side)
}

#[test]
fn fp_conv_reads_each_weight_once_per_row_of_positions() {
    for ih in [10, 4, 3] {
        let (s, positions) = fp_conv(ih);
        let ops = dense_ops(ih - 2);
        assert_eq!(s.profile["fp.conv"].ops_executed, ops as u64, "ih={ih}");
        let reads = ops.div_ceil(ROWS.min(positions));
        assert_eq!(s.sram_accesses["fp.w"], reads as u64, "ih={ih}");
        // The busiest of the 1-bit `in` (one access per spike), the 16-bit `w` and `psum`.
        let want = engine_busy(ops, &[CIN * ih * ih, reads, COUT * positions]);
        assert_eq!(conv_busy(&s, 0, 0), want, "ih={ih}");
    }
}

#[test]
fn bp_conv_reads_each_weight_once_per_row_of_positions() {
    // Errors, all non-zero, so every product executes.
    let body = format!(
        ".core 0\n.stream bp\n    fill dst=bp.delta[0:{ERRS}] value=0.5\n    bp.conv err=bp.delta[0:{ERRS}] w=bp.w[0:{}] out=bp.psum[0:{}] cin={CIN} cout={COUT} ih={IH} iw={IH} kh=3 kw=3 stride=1 acc=false nz=-\n    halt\n",
        COUT * CIN * TAPS,
        CIN * IH * IH
    );
    let (s, ops) = run_backward("bp.conv", &body);
    let reads = ops.div_ceil(ROWS);
    assert_eq!(s.sram_accesses["bp.w"], reads as u64);
    // The `fill` before: an issue cycle, then its accesses over the 16 banks; `bp.delta` is
    // 256 bits wide, sixteen errors per access.
    let fill = 1 + ERRS.div_ceil(16).div_ceil(COLS) as u64;
    assert_eq!(conv_busy(&s, 1, fill), engine_busy(ops, &[ERRS.div_ceil(16), reads, CIN * IH * IH]));
}

#[test]
fn wg_conv_updates_each_gradient_once_per_row_of_positions() {
    let body = format!(
        ".core 0\n.stream wg\n    wg.conv spk=wg.spk[0:{}] err=wg.err[0:{ERRS}] dw=wg.grad[0:{}] db=- cin={CIN} cout={COUT} ih={IH} iw={IH} kh=3 kw=3 stride=1 skip=false nz=-\n    halt\n",
        CIN * IH * IH,
        COUT * CIN * TAPS
    );
    let (s, ops) = run_backward("wg.conv", &body);
    // A read and a write of a 32-bit gradient per sixteen products.
    let updates = (2 * ops).div_ceil(ROWS);
    assert_eq!(s.sram_accesses["wg.grad"], updates as u64);
    assert_eq!(conv_busy(&s, 2, 0), engine_busy(ops, &[CIN * IH * IH, ERRS, updates]));
}
