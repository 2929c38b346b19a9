//! Multi-row `fp.linear`, `bp.linear` and `wg.linear`: one instruction with `rows = R` must
//! leave the same buffers, operation counts, buffer accesses and energy as `R` single-row
//! instructions in order, cost `R - 1` cycles less, and reject bad rows with an error.

use super::*;
use isa::Buf;

/// Rows, and the shape of the tiles (`n > 1` and `k` not a multiple of 8, so rows of
/// spikes start mid-byte).
const R: usize = 5;
const K: usize = 12;
const N: usize = 7;

/// Bits with about half set.
fn bits(len: usize, salt: usize) -> Vec<bool> {
    (0..len).map(|i| (i * 7 + salt) % 11 < 5).collect()
}

/// One stream running either `R` single-row instructions (`single`) or one multi-row one:
/// `line(first_row_offsets, rows, strides)` writes the instruction.
fn body(stream: &str, loads: &str, single: bool, line: impl Fn([usize; 2], usize) -> String) -> String {
    let mut s = format!(".core 0\n.stream {stream}\n{loads}");
    if single {
        (0..R).for_each(|r| s += &format!("    {}\n", line([r, r], 1)));
    } else {
        s += &format!("    {}\n", line([0, 0], R));
    }
    s + "    halt\n"
}

/// Runs a program with the given f16 and bit data segments (each at its address).
fn run_with(body: &str, halves: &[(u32, Vec<f32>)], bit_sets: &[(u32, Vec<bool>)]) -> (Machine, RunStats) {
    let mut p = program(body);
    for (i, (addr, v)) in halves.iter().enumerate() {
        data(&mut p, &format!("h{i}"), DataKind::Fp16, *addr, f16_bytes(v));
    }
    for (i, (addr, b)) in bit_sets.iter().enumerate() {
        data(&mut p, &format!("b{i}"), DataKind::Spikes, *addr, pack(b));
    }
    let (m, r) = run(&p);
    (m, r.unwrap_or_else(|e| panic!("{e}\n{body}")))
}

/// Everything but the cycles agrees, and the multi-row run is `R - 1` busy cycles shorter.
fn assert_same(single: &RunStats, multi: &RunStats, mnemonic: &str, stream: usize) {
    let (a, b) = (&single.profile[mnemonic], &multi.profile[mnemonic]);
    assert_eq!((a.count, b.count), (R as u64, 1));
    assert_eq!((a.ops_executed, a.ops_skipped), (b.ops_executed, b.ops_skipped));
    assert!(a.ops_executed > 0 && a.ops_skipped > 0, "the data exercises skipping: {a:?}");
    assert_eq!(single.sram_accesses, multi.sram_accesses);
    assert_eq!(single.energy.compute_pj, multi.energy.compute_pj);
    assert_eq!(single.energy.sram_pj, multi.energy.sram_pj);
    assert_eq!(single.streams[0][stream].busy - multi.streams[0][stream].busy, R as u64 - 1);
}

fn buf(m: &Machine, b: Buf, len: usize) -> Vec<f32> {
    m.buffer(0, b, 0, len).unwrap_or_default()
}

#[test]
fn fp_linear_rows_match_single_rows() {
    // Rows of spikes 15 apart, rows of sums 9 apart over a preloaded (bias-like) `out`.
    let (ss, os) = (15, 9);
    let (spk_len, out_len) = ((R - 1) * ss + K, (R - 1) * os + N);
    let loads = load("fp.in", 72, 0, 9) + &load("fp.w", K * N, 0x100, K * N * 2) + &load("fp.psum", 44, 0x400, 88);
    let line = |[r, _]: [usize; 2], rows: usize| {
        let (s, o) = if rows == 1 { (r * ss, r * os) } else { (0, 0) };
        format!(
            "fp.linear spk=fp.in[{s}:{K}] w=fp.w[0:{}] out=fp.psum[{o}:{N}] k={K} n={N} rows={rows} spk_stride={ss} out_stride={os} acc=true skip=true",
            K * N
        )
    };
    let halves = [(0x100, (0..K * N).map(value).collect()), (0x400, (0..44).map(|i| value(i + 3)).collect())];
    let spikes = [(0, bits(72, 0))];
    let (m1, s1) = run_with(&body("fp", &loads, true, line), &halves, &spikes);
    let (m2, s2) = run_with(&body("fp", &loads, false, line), &halves, &spikes);
    assert!(spk_len <= 72);
    assert_eq!(buf(&m1, Buf::FpPsum, out_len), buf(&m2, Buf::FpPsum, out_len));
    assert_ne!(buf(&m1, Buf::FpPsum, N), (0..N).map(|i| value(i + 3)).collect::<Vec<_>>(), "out was written");
    assert_same(&s1, &s2, "fp.linear", 0);
}

#[test]
fn bp_linear_rows_with_nz_match_single_rows() {
    // Error rows 8 apart (their `nz` rows too, in `fp.mask`), output rows 13 apart.
    let (es, os) = (8, 13);
    let (err_len, out_len) = ((R - 1) * es + N, (R - 1) * os + K);
    let loads = load("bp.delta", 40, 0, 80) + &load("bp.w", K * N, 0x100, K * N * 2) + &load("fp.mask", 40, 0x400, 5);
    let line = |[r, _]: [usize; 2], rows: usize| {
        let (e, o) = if rows == 1 { (r * es, r * os) } else { (0, 0) };
        format!(
            "bp.linear err=bp.delta[{e}:{N}] w=bp.w[0:{}] out=bp.psum[{o}:{K}] n={N} k={K} rows={rows} err_stride={es} out_stride={os} acc=false nz=fp.mask[{e}:{N}]",
            K * N
        )
    };
    let halves = [(0, (0..40).map(value).collect()), (0x100, (0..K * N).map(|i| value(i + 1)).collect())];
    let nz = [(0x400, bits(40, 3))];
    let (m1, s1) = run_with(&body("bp", &loads, true, line), &halves, &nz);
    let (m2, s2) = run_with(&body("bp", &loads, false, line), &halves, &nz);
    assert!(err_len <= 40);
    assert_eq!(buf(&m1, Buf::BpPsum, out_len), buf(&m2, Buf::BpPsum, out_len));
    assert!(buf(&m2, Buf::BpPsum, out_len).iter().any(|v| *v != 0.0));
    assert_same(&s1, &s2, "bp.linear", 1);
}

/// `wg.linear` rows with a bias gradient in `db_buf` (the `dw` buffer, or another one) and
/// a nonzero bitmap, dense (`skip=false`) or not.
fn wg_rows_match(db_buf: &str, skip: bool) {
    let (ss, es) = (16, 9);
    let loads = load("wg.spk", 80, 0, 10) + &load("wg.err", 48, 0x100, 96) + &load("fp.mask", 48, 0x400, 6);
    let db_at = if db_buf == "wg.grad" { K * N } else { 0 };
    let line = |[r, _]: [usize; 2], rows: usize| {
        let (s, e) = if rows == 1 { (r * ss, r * es) } else { (0, 0) };
        format!(
            "wg.linear spk=wg.spk[{s}:{K}] err=wg.err[{e}:{N}] dw=wg.grad[0:{}] db={db_buf}[{db_at}:{N}] k={K} n={N} rows={rows} spk_stride={ss} err_stride={es} skip={skip} nz=fp.mask[{e}:{N}]",
            K * N
        )
    };
    let halves = [(0x100, (0..48).map(value).collect())];
    let sets = [(0, bits(80, 1)), (0x400, bits(48, 4))];
    let (m1, s1) = run_with(&body("wg", &loads, true, line), &halves, &sets);
    let (m2, s2) = run_with(&body("wg", &loads, false, line), &halves, &sets);
    let db = |m: &Machine| {
        let b = if db_buf == "wg.grad" { Buf::WgGrad } else { Buf::Opt };
        m.buffer(0, b, db_at, N).unwrap_or_default()
    };
    assert_eq!(buf(&m1, Buf::WgGrad, K * N), buf(&m2, Buf::WgGrad, K * N));
    assert_eq!(db(&m1), db(&m2));
    assert!(db(&m2).iter().any(|v| *v != 0.0), "db accumulated");
    assert_same(&s1, &s2, "wg.linear", 2);
}

#[test]
fn wg_linear_rows_with_db_and_nz_match_single_rows() {
    wg_rows_match("wg.grad", true);
    wg_rows_match("opt", true);
    wg_rows_match("wg.grad", false);
}

#[test]
fn bad_rows_are_errors_not_panics() {
    let fp = |rows: usize, stride: usize| {
        format!(
            ".core 0\n.stream fp\n    fp.linear spk=fp.in[0:16] w=fp.w[0:128] out=fp.psum[0:8] k=16 n=8 rows={rows} spk_stride=16 out_stride={stride} acc=false skip=true\n    halt\n"
        )
    };
    let (_, r) = run(&program(&fp(0, 8)));
    assert!(matches!(&r, Err(SimError::BadOperand { detail, .. }) if detail.contains("`rows` is 0")), "{r:?}");
    // fp.psum holds 4096 sums: row 512 at 512 * 8 = 4096 is just outside.
    let (_, r) = run(&program(&fp(513, 8)));
    assert!(matches!(&r, Err(SimError::OutOfRange { detail, .. }) if detail.contains("`out`")), "{r:?}");
    let (_, r) = run(&program(&fp(512, 8)));
    assert!(r.is_ok(), "{r:?}");
}
