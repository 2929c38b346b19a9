//! Multi-row `fp.lif` and `bp.soma`: one instruction with `rows = R` must leave the same
//! buffers, layer statistics, operation counts, buffer accesses and energy as `R`
//! single-row instructions (in increasing row order forward, decreasing backward), cost
//! `R - 1` cycles less, and reject bad rows with an error. Layouts are random, so some
//! overlap and take the copying path; both paths run, in both storage types.

use super::*;
use crate::data::rng::Rng;
use crate::fp::Precision;
use isa::Buf;

const NEURONS: [&str; 3] = [
    "cfg.neuron slot=0 beta=0.75 theta=1 reset=hard detach=true sg=atan alpha=2",
    "cfg.neuron slot=0 beta=0.875 theta=0.5 reset=soft detach=false sg=rect alpha=1",
    "cfg.neuron slot=0 beta=0.5 theta=1 reset=hard detach=false sg=triangle alpha=1",
];

/// The buffers a soma test loads and compares, each with its first 512 elements loaded.
const BUFS: [Buf; 7] = [Buf::FpPsum, Buf::FpMem, Buf::FpSpk, Buf::FpMask, Buf::BpErr, Buf::BpVgrad, Buf::BpDelta];

/// One stream: the neuron slot, the loads, then `body`.
pub(super) fn listing(stream: &str, neuron: &str, body: &str) -> String {
    let loads = "
    dma.ld dst=fp.psum[0:512] src=@0x0 rows=1 row=1024 stride=1024
    dma.ld dst=fp.mem[0:512] src=@0x400 rows=1 row=1024 stride=1024
    dma.ld dst=bp.err[0:512] src=@0x0 rows=1 row=1024 stride=1024
    dma.ld dst=bp.vgrad[0:512] src=@0x800 rows=1 row=1024 stride=1024
    dma.ld dst=bp.delta[0:512] src=@0xc00 rows=1 row=1024 stride=1024
    dma.ld dst=fp.spk[0:512] src=@0x1000 rows=1 row=64 stride=64
    dma.ld dst=fp.mask[0:512] src=@0x1040 rows=1 row=64 stride=64";
    format!(".core 0\n.stream {stream}\n    {neuron}{loads}\n{body}    halt\n")
}

/// Runs a listing on random data (the same for every listing) with a layer over the whole
/// stream; returns the machine and its statistics.
fn run_soma(stream: &str, text: &str, precision: Precision, in_place: bool) -> (Machine, RunStats) {
    let mut rng = Rng::new(17);
    let mut p = program(text);
    for (i, (lo, hi)) in [(-1.0, 1.5), (0.0, 2.0), (-1.0, 1.0), (-0.5, 0.5)].into_iter().enumerate() {
        let v: Vec<f32> = (0..512)
            .map(|_| {
                if rng.bernoulli(0.05) {
                    [0.0, -0.0, f32::INFINITY][rng.below(3) as usize]
                } else {
                    rng.range_f64(lo, hi) as f32
                }
            })
            .collect();
        data(&mut p, &format!("v{i}"), DataKind::Fp16, 0x400 * i as u32, f16_bytes(&v));
    }
    let bits: Vec<bool> = (0..1024).map(|_| rng.bernoulli(0.4)).collect();
    data(&mut p, "bits", DataKind::Spikes, 0x1000, pack(&bits));
    let on = if stream == "fp" { isa::Stream::Fp } else { isa::Stream::Bp };
    p.symbols.push(Symbol { name: "soma".into(), kind: SymbolKind::Layer { core: 0, stream: on }, addr: 0, len: 64 });
    let mut m = machine(&p, SimOptions { precision: Some(precision), ..SimOptions::default() });
    m.set_soma_in_place(in_place);
    let stats = m.run().unwrap_or_else(|e| panic!("{e}\n{text}"));
    (m, stats)
}

/// A random row-carrying operand: `rows*n` elements somewhere in the first 512 of one of
/// `bufs`, or none when `optional` and a coin says so.
fn operand(rng: &mut Rng, bufs: &[&str], len: usize, optional: bool) -> Option<(String, usize)> {
    if optional && rng.bernoulli(0.3) {
        return None;
    }
    let buf = bufs[rng.below(bufs.len() as u64) as usize].to_string();
    Some((buf, rng.below((512 - len) as u64) as usize))
}

/// Row `r` of an operand as text (`n` elements from `r*n` past its start), or all `len`
/// elements of it when `r` is `None`.
fn show(o: &Option<(String, usize)>, r: Option<usize>, n: usize, len: usize) -> String {
    match (o, r) {
        (None, _) => "-".into(),
        (Some((b, off)), Some(r)) => format!("{b}[{}:{n}]", off + r * n),
        (Some((b, off)), None) => format!("{b}[{off}:{len}]"),
    }
}

/// Everything but the instruction count and busy cycles agrees, and the multi-row run is
/// `rows - 1` busy cycles shorter.
fn assert_same(single: &RunStats, multi: &RunStats, mnemonic: &str, stream: usize, rows: usize, what: &str) {
    let (a, b) = (&single.profile[mnemonic], &multi.profile[mnemonic]);
    assert_eq!((a.count, b.count), (rows as u64, 1), "{what}");
    assert_eq!((a.ops_executed, a.ops_skipped), (b.ops_executed, b.ops_skipped), "{what}");
    assert_eq!(single.sram_accesses, multi.sram_accesses, "{what}");
    assert_eq!(single.energy.compute_pj, multi.energy.compute_pj, "{what}");
    assert_eq!(single.energy.sram_pj, multi.energy.sram_pj, "{what}");
    let layer = |s: &RunStats| {
        s.layers.iter().map(|l| (l.neuron_steps, l.spikes, l.error_elems, l.error_nonzero)).collect::<Vec<_>>()
    };
    assert_eq!(layer(single), layer(multi), "{what}");
    assert_eq!(single.streams[0][stream].busy - multi.streams[0][stream].busy, rows as u64 - 1, "{what}");
}

/// Runs the single-row and the multi-row listing every way and compares them. Without a
/// saved `h` only the rect neuron (which reads the mask) can run backward.
fn check(stream: &str, single: &str, multi: &str, rows: usize, has_h: bool) {
    let (mnemonic, idx) = if stream == "fp" { ("fp.lif", 0) } else { ("bp.soma", 1) };
    let neurons = if has_h { &NEURONS[..] } else { &NEURONS[1..2] };
    for neuron in neurons {
        for precision in [Precision::Fp16Acc32, Precision::Fp32] {
            for in_place in [true, false] {
                let what = format!("{neuron} {precision:?} in place {in_place}\n{multi}");
                let (ms, s) = run_soma(stream, &listing(stream, neuron, single), precision, in_place);
                let (mm, m) = run_soma(stream, &listing(stream, neuron, multi), precision, in_place);
                assert_same(&s, &m, mnemonic, idx, rows, &what);
                for buf in BUFS {
                    let get = |m: &Machine| {
                        m.buffer(0, buf, 0, 1024).map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                    };
                    assert_eq!(get(&ms), get(&mm), "{buf} after\n{what}");
                }
            }
        }
    }
}

#[test]
fn lif_rows_match_single_rows() {
    let mut rng = Rng::new(3);
    for _ in 0..12 {
        let (n, rows) = (1 + rng.below(40) as usize, 1 + rng.below(5) as usize);
        let all = n * rows;
        let x = operand(&mut rng, &["fp.psum", "fp.mem"], all, false);
        let v = operand(&mut rng, &["fp.mem"], n, false);
        let bias = operand(&mut rng, &["fp.psum"], n, true).filter(|_| rng.bernoulli(0.3));
        let h = operand(&mut rng, &["fp.mem"], all, true);
        let (spk, mask) =
            (operand(&mut rng, &["fp.spk"], all, true), operand(&mut rng, &["fp.mask", "fp.spk"], all, true));
        let fire = rng.bernoulli(0.85);
        let line = |r: Option<usize>, count: usize| {
            format!(
                "    fp.lif x={} bias={} v={} h={} spk={} mask={} n={n} rows={count} cfg=0 fire={fire}\n",
                show(&x, r, n, all),
                show(&bias, Some(0), n, n),
                show(&v, Some(0), n, n),
                show(&h, r, n, all),
                show(&spk, r, n, all),
                show(&mask, r, n, all),
            )
        };
        let single: String = (0..rows).map(|r| line(Some(r), 1)).collect();
        check("fp", &single, &line(None, rows), rows, true);
    }
}

#[test]
fn soma_rows_match_single_rows_last_row_first() {
    let mut rng = Rng::new(4);
    for _ in 0..12 {
        let (n, rows) = (1 + rng.below(40) as usize, 1 + rng.below(5) as usize);
        let all = n * rows;
        // Half the cases share one error among all rows, as a rate loss does.
        let shared = rng.bernoulli(0.5);
        let ds = operand(&mut rng, &["bp.err", "bp.delta"], if shared { n } else { all }, false);
        let h = operand(&mut rng, &["fp.mem"], all, true);
        let (mask, spk) = (operand(&mut rng, &["fp.mask"], all, true), operand(&mut rng, &["fp.spk"], all, false));
        let dv = operand(&mut rng, &["bp.vgrad", "bp.delta"], n, false);
        let dh = operand(&mut rng, &["bp.delta"], all, false);
        let nz = operand(&mut rng, &["fp.mask", "fp.spk"], all, true);
        // The rect neuron needs `h` or `mask`, the others `h`.
        let h = if mask.is_none() && h.is_none() { Some(("fp.mem".to_string(), 0)) } else { h };
        let fire = rng.bernoulli(0.85);
        let line = |r: Option<usize>, count: usize| {
            let ds_row = if shared { Some(0) } else { r };
            format!(
                "    bp.soma ds={} h={} mask={} spk={} dv={} dh={} nz={} n={n} rows={count} cfg=0 fire={fire}\n",
                show(&ds, ds_row, n, all),
                show(&h, r, n, all),
                show(&mask, r, n, all),
                show(&spk, r, n, all),
                show(&dv, Some(0), n, n),
                show(&dh, r, n, all),
                show(&nz, r, n, all),
            )
        };
        let single: String = (0..rows).rev().map(|r| line(Some(r), 1)).collect();
        check("bp", &single, &line(None, rows), rows, h.is_some());
    }
}

/// Runs one instruction after the loads, in place and copying, and returns its error,
/// which must be the same both ways.
fn error_of(stream: &str, line: &str) -> String {
    let p = program(&listing(stream, NEURONS[0], &format!("    {line}\n")));
    let errors = [true, false].map(|in_place| {
        let mut m = machine(&p, SimOptions::default());
        m.set_soma_in_place(in_place);
        m.run().map(|_| ()).map_err(|e| e.to_string())
    });
    assert_eq!(errors[0], errors[1], "{line}");
    errors[0].clone().expect_err(line)
}

#[test]
fn bad_soma_rows_are_errors() {
    let cases = [
        (
            "fp",
            "fp.lif x=fp.psum[0:16] bias=- v=fp.mem[0:16] h=- spk=- mask=- n=16 rows=0 cfg=0 fire=true",
            "operand `rows` is 0",
        ),
        (
            "fp",
            "fp.lif x=fp.psum[0:16] bias=- v=fp.mem[0:16] h=- spk=- mask=- n=16 rows=2 cfg=0 fire=true",
            "operand `x` has 16 elements; the shape fields need 32",
        ),
        (
            "fp",
            "fp.lif x=fp.psum[0:32] bias=- v=fp.mem[0:32] h=- spk=- mask=- n=16 rows=2 cfg=0 fire=true",
            "operand `v` has 32 elements; the shape fields need 16",
        ),
        (
            "fp",
            "fp.lif x=fp.psum[4090:32] bias=- v=fp.mem[0:16] h=- spk=- mask=- n=16 rows=2 cfg=0 fire=true",
            "operand `x` reaches elements 4090..4122",
        ),
        (
            "bp",
            "bp.soma ds=bp.err[0:16] h=fp.mem[0:32] mask=- spk=fp.spk[0:32] dv=bp.vgrad[0:16] dh=bp.delta[0:32] nz=- n=16 rows=0 cfg=0 fire=true",
            "operand `rows` is 0",
        ),
        (
            "bp",
            "bp.soma ds=bp.err[0:24] h=fp.mem[0:32] mask=- spk=fp.spk[0:32] dv=bp.vgrad[0:16] dh=bp.delta[0:32] nz=- n=16 rows=2 cfg=0 fire=true",
            "operand `ds` has 24 elements; the shape fields need 32",
        ),
        (
            "bp",
            "bp.soma ds=bp.err[0:32] h=fp.mem[0:32] mask=- spk=fp.spk[0:32] dv=bp.vgrad[0:16] dh=bp.delta[0:16] nz=- n=16 rows=2 cfg=0 fire=true",
            "operand `dh` has 16 elements; the shape fields need 32",
        ),
        (
            "bp",
            "bp.soma ds=bp.err[0:32] h=fp.mem[0:32] mask=- spk=fp.spk[0:32] dv=bp.vgrad[0:16] dh=bp.delta[0:32] nz=fp.mask[65530:32] n=16 rows=2 cfg=0 fire=true",
            "operand `nz` reaches elements 65530..65562",
        ),
    ];
    // The atan neuron reads `h`: without it the first row (the last timestep) fails before
    // any row is written.
    let no_h = "bp.soma ds=bp.err[0:32] h=- mask=fp.mask[0:32] spk=fp.spk[0:32] dv=bp.vgrad[0:16] dh=bp.delta[0:32] nz=- n=16 rows=2 cfg=0 fire=true";
    let cases = cases.into_iter().chain([("bp", no_h, "`bp.soma` needs `h`, or `mask` with the rect surrogate")]);
    for (stream, line, needle) in cases {
        let e = error_of(stream, line);
        assert!(e.contains(needle), "{line}\n{e}");
    }
}
