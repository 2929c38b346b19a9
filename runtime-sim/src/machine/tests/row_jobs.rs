//! Multi-row `fp.linear`, `wg.linear` and `bp.linear` as jobs on other host threads
//! (`row_jobs.rs`): programs whose tiles are large enough to go to jobs, on several cores at
//! once, leave every buffer, count and energy figure as on one thread, bit for bit, with
//! two and three threads, whatever kernel the tile takes (16 outputs and at most 64 inputs
//! per row, or not), with and without `nz`, and with a later instruction of the same core
//! reading and overwriting what a job holds.

use super::*;
use isa::Buf;

/// Rows of every tile: with `K_WIDE` or `K_FAST` inputs per row, enough inputs for a job.
const ROWS: usize = 160;
/// Inputs per row of the tiles that take the one-row kernels (more than 64).
const K_WIDE: usize = 70;
/// Inputs per row of the tiles that take the fast row kernels.
const K_FAST: usize = 56;

/// Bits with about a quarter set.
fn bits(len: usize, salt: usize) -> Vec<bool> {
    (0..len).map(|i| (i * 7 + salt) % 13 < 3).collect()
}

/// Where the data segments are: spikes, weights, prior sums, errors and `nz` bits.
const SPK: u32 = 0x0;
const W: u32 = 0x1000;
const SUMS: u32 = 0x2000;
const ERR: u32 = 0x4000;
const NZ: u32 = 0x6000;

/// Core `c`'s forward tile of `k` inputs and `n` outputs, twice over the same sums (the
/// second joins the first's job), then its weights overwritten (which joins the second).
fn forward_core(c: usize, k: usize, n: usize) -> String {
    let (spk, w, sums) = (ROWS * k, k * n, ROWS * n);
    let mut s = format!(".core {c}\n.stream fp\n");
    s += &load("fp.in", spk, SPK, spk.div_ceil(8));
    s += &load("fp.w", w, W, 2 * w);
    s += &load("fp.psum", sums, SUMS, 2 * sums);
    let tile = format!(
        "    fp.linear spk=fp.in[0:{k}] w=fp.w[0:{w}] out=fp.psum[0:{n}] k={k} n={n} rows={ROWS} spk_stride={k} out_stride={n} acc=true skip=true\n"
    );
    s += &tile;
    s += &tile;
    s + &load("fp.w", w, W + 2, 2 * w) + &tile + "    halt\n"
}

/// Core `c`'s weight gradient of `k` inputs and `n` errors per row, with `nz` or not, twice
/// into the same `dw`.
fn grad_core(c: usize, k: usize, n: usize, nz: bool) -> String {
    let (spk, errs) = (ROWS * k, ROWS * n);
    let mut s = format!(".core {c}\n.stream wg\n");
    s += &load("fp.in", spk, SPK, spk.div_ceil(8));
    s += &load("wg.err", errs, ERR, 2 * errs);
    s += &load("fp.mask", errs, NZ, errs.div_ceil(8));
    let nz = if nz { format!("fp.mask[0:{n}]") } else { "-".into() };
    let tile = format!(
        "    wg.linear spk=fp.in[0:{k}] err=wg.err[0:{n}] dw=wg.grad[0:{}] db=- k={k} n={n} rows={ROWS} spk_stride={k} err_stride={n} skip=true nz={nz}\n",
        k * n
    );
    s + &tile + &tile + "    halt\n"
}

/// Core `c`'s error propagation of `n` errors into `k` outputs per row, with `nz` or not,
/// twice onto the same sums (the second joins the first's job), then its errors
/// overwritten (which joins the second).
fn backward_core(c: usize, n: usize, k: usize, nz: bool) -> String {
    let (errs, w, sums) = (ROWS * n, k * n, ROWS * k);
    let mut s = format!(".core {c}\n.stream bp\n");
    s += &load("bp.delta", errs, ERR, 2 * errs);
    s += &load("bp.w", w, W, 2 * w);
    s += &load("bp.psum", sums, SUMS, 2 * sums);
    s += &load("fp.mask", errs, NZ, errs.div_ceil(8));
    let nz = if nz { format!("fp.mask[0:{n}]") } else { "-".into() };
    let tile = format!(
        "    bp.linear err=bp.delta[0:{n}] w=bp.w[0:{w}] out=bp.psum[0:{k}] n={n} k={k} rows={ROWS} err_stride={n} out_stride={k} acc=true nz={nz}\n"
    );
    s += &tile;
    s += &tile;
    s + &load("bp.delta", errs, ERR + 2, 2 * errs) + &tile + "    halt\n"
}

/// The program: forward tiles on cores 0 to 2, weight gradients on cores 3 to 6, error
/// propagations on cores 7 to 9.
fn program_text() -> String {
    let mut s = forward_core(0, K_FAST, 16) + &forward_core(1, K_WIDE, 16) + &forward_core(2, K_FAST, 10);
    s += &grad_core(3, K_FAST, 16, true);
    s += &grad_core(4, K_FAST, 16, false);
    s += &grad_core(5, K_WIDE, 10, true);
    s += &grad_core(6, K_FAST, 16, false);
    s += &backward_core(7, 16, 16, true);
    s += &backward_core(8, 16, 16, false);
    s + &backward_core(9, K_WIDE, 10, true)
}

/// Runs the program on `threads` host threads: its statistics, then the bits of every
/// core's sums and weight gradients.
fn run_on(threads: usize) -> (RunStats, Vec<Vec<u32>>) {
    let mut p = program(&program_text());
    let spikes = bits(ROWS * K_WIDE + 64, 1);
    data(&mut p, "spk", DataKind::Spikes, SPK, pack(&spikes));
    data(&mut p, "w", DataKind::Fp16, W, f16_bytes(&(0..K_WIDE * 16 + 1).map(value).collect::<Vec<_>>()));
    data(&mut p, "sums", DataKind::Fp16, SUMS, f16_bytes(&(0..ROWS * 16).map(|i| value(i + 5)).collect::<Vec<_>>()));
    let errs: Vec<f32> = (0..ROWS * K_WIDE + 1).map(|i| value(i + 2)).collect();
    data(&mut p, "err", DataKind::Fp16, ERR, f16_bytes(&errs));
    data(&mut p, "nz", DataKind::Spikes, NZ, pack(&bits(ROWS * K_WIDE, 4)));
    let mut m = machine(&p, SimOptions { threads: Some(threads), ..SimOptions::default() });
    let stats = m.run().unwrap_or_else(|e| panic!("{e}"));
    let sums = (0..3).map(|c| m.buffer(c, Buf::FpPsum, 0, ROWS * 16).unwrap_or_default());
    let grads = (3..7).map(|c| m.buffer(c, Buf::WgGrad, 0, K_WIDE * 16).unwrap_or_default());
    let propagated = (7..10).map(|c| m.buffer(c, Buf::BpPsum, 0, ROWS * 16).unwrap_or_default());
    let all = sums.chain(grads).chain(propagated);
    (stats, all.map(|v| v.iter().map(|x| x.to_bits()).collect()).collect())
}

#[test]
fn linear_jobs_leave_what_one_thread_leaves() {
    let (stats, buffers) = run_on(1);
    for name in ["fp.linear", "wg.linear", "bp.linear"] {
        let k = &stats.profile[name];
        assert!(k.ops_executed > 0 && k.ops_skipped > 0, "{name} exercises skipping: {k:?}");
    }
    assert!(buffers.iter().all(|b| b.iter().any(|v| *v != 0)), "every core wrote its output");
    for threads in [2, 3] {
        let (s, b) = run_on(threads);
        assert_eq!(s, stats, "statistics on {threads} threads");
        assert_eq!(b, buffers, "buffers on {threads} threads");
    }
}
