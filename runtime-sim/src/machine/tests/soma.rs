//! The soma instructions in place against the copying path (`soma.rs`): operand layouts
//! that run in place (outputs sharing a buffer apart, bit outputs sharing one, outputs not
//! stored) and ones that must not (overlapping outputs, an input in an output's buffer, a
//! bias, the readout), in both storage types, with the same buffers and counters after.

use super::*;
use crate::data::rng::Rng;
use crate::fp::Precision;
use isa::{Buf, DataKind};

/// Random FP16 values with a sprinkling of zeros, −0, infinities and NaNs.
fn values(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f32> {
    let specials = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0];
    (0..n)
        .map(|_| if rng.bernoulli(0.05) { specials[rng.below(6) as usize] } else { rng.range_f64(lo, hi) as f32 })
        .collect()
}

/// Runs `body` (one stream's instructions after its buffers are loaded from DRAM) both
/// ways, and checks that every buffer it may touch and every counter agree.
fn check_both_ways(stream: &str, neuron: &str, body: &str, precision: Precision) {
    let mut rng = Rng::new(5);
    let mut p = program(&super::soma_rows::listing(stream, neuron, &format!("{body}\n")));
    for (i, (lo, hi)) in [(-1.0, 1.5), (0.0, 2.0), (-1.0, 1.0), (-0.5, 0.5)].into_iter().enumerate() {
        data(&mut p, &format!("v{i}"), DataKind::Fp16, 0x400 * i as u32, f16_bytes(&values(&mut rng, 512, lo, hi)));
    }
    // A layer over the whole stream, so that its spike and error counts are compared too.
    let on = if stream == "fp" { isa::Stream::Fp } else { isa::Stream::Bp };
    p.symbols.push(Symbol { name: "soma".into(), kind: SymbolKind::Layer { core: 0, stream: on }, addr: 0, len: 64 });
    let bits: Vec<bool> = (0..1024).map(|_| rng.bernoulli(0.4)).collect();
    data(&mut p, "bits", DataKind::Spikes, 0x1000, pack(&bits));
    let options = SimOptions { precision: Some(precision), ..SimOptions::default() };
    let mut copied = machine(&p, options.clone());
    copied.set_soma_in_place(false);
    let mut in_place = machine(&p, options);
    let (a, b) = (copied.run(), in_place.run());
    let show = |r: &Result<RunStats, SimError>| r.as_ref().map(RunStats::to_json).map_err(ToString::to_string);
    assert_eq!(show(&a), show(&b), "{body}");
    for buf in [Buf::FpPsum, Buf::FpMem, Buf::FpSpk, Buf::FpMask, Buf::BpErr, Buf::BpVgrad, Buf::BpDelta] {
        let get = |m: &Machine| m.buffer(0, buf, 0, 1024).map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert_eq!(get(&copied), get(&in_place), "{buf} after\n{body}");
    }
}

const HARD_ATAN: &str = "cfg.neuron slot=0 beta=0.75 theta=1 reset=hard detach=true sg=atan alpha=2";
const SOFT_RECT: &str = "cfg.neuron slot=0 beta=0.875 theta=0.5 reset=soft detach=false sg=rect alpha=1";
const HARD_RECT: &str = "cfg.neuron slot=0 beta=0.5 theta=1 reset=hard detach=true sg=rect alpha=1";

#[test]
fn lif_in_place_matches_the_copying_path() {
    let cases = [
        // In place: `h` in `v`'s buffer apart from it, spikes and mask at unaligned bits.
        "fp.lif x=fp.psum[3:70] bias=- v=fp.mem[0:70] h=fp.mem[100:70] spk=fp.spk[5:70] mask=fp.mask[9:70] n=70 rows=1 cfg=0 fire=true",
        // In place, `h` before `v`; spikes and mask overlapping in one buffer (mask last).
        "fp.lif x=fp.psum[0:130] bias=- v=fp.mem[200:130] h=fp.mem[0:130] spk=fp.spk[0:130] mask=fp.spk[64:130] n=130 rows=1 cfg=0 fire=true",
        // In place with nothing but `v` stored.
        "fp.lif x=fp.psum[1:16] bias=- v=fp.mem[7:16] h=- spk=- mask=- n=16 rows=1 cfg=0 fire=true",
        // Copying: `h` overlaps `v`; `x` in `v`'s buffer; a bias; the readout.
        "fp.lif x=fp.psum[0:70] bias=- v=fp.mem[0:70] h=fp.mem[30:70] spk=fp.spk[0:70] mask=- n=70 rows=1 cfg=0 fire=true",
        "fp.lif x=fp.mem[300:70] bias=- v=fp.mem[0:70] h=fp.mem[100:70] spk=fp.spk[0:70] mask=- n=70 rows=1 cfg=0 fire=true",
        "fp.lif x=fp.psum[0:70] bias=fp.psum[80:70] v=fp.mem[0:70] h=fp.mem[100:70] spk=fp.spk[0:70] mask=- n=70 rows=1 cfg=0 fire=true",
        "fp.lif x=fp.psum[0:10] bias=- v=fp.mem[0:10] h=fp.mem[20:10] spk=- mask=- n=10 rows=1 cfg=0 fire=false",
        // Errors: `h` outside its buffer (after `v` was written), `h` in a 1-bit buffer.
        "fp.lif x=fp.psum[0:70] bias=- v=fp.mem[0:70] h=fp.mem[65500:70] spk=fp.spk[0:70] mask=- n=70 rows=1 cfg=0 fire=true",
        "fp.lif x=fp.psum[0:70] bias=- v=fp.mem[0:70] h=fp.spk[0:70] spk=fp.spk[100:70] mask=- n=70 rows=1 cfg=0 fire=true",
    ];
    for neuron in [HARD_ATAN, SOFT_RECT] {
        for precision in [Precision::Fp16Acc32, Precision::Fp32] {
            for body in cases {
                // Twice, so the second step starts from what the first left.
                check_both_ways("fp", neuron, &format!("    {body}\n    {body}"), precision);
            }
        }
    }
}

#[test]
fn soma_in_place_matches_the_copying_path() {
    let cases = [
        // In place: unaligned bits, `nz` in the buffer of no saved bits.
        "bp.soma ds=bp.err[1:70] h=fp.mem[0:70] mask=- spk=fp.spk[3:70] dv=bp.vgrad[0:70] dh=bp.delta[2:70] nz=fp.mask[7:70] n=70 rows=1 cfg=0 fire=true",
        // In place from the rect mask alone, `nz` overlapping the mask it is computed from.
        "bp.soma ds=bp.err[0:130] h=- mask=fp.mask[0:130] spk=fp.spk[0:130] dv=bp.vgrad[0:130] dh=bp.delta[0:130] nz=fp.mask[30:130] n=130 rows=1 cfg=0 fire=true",
        // In place: `dv` and `dh` in one buffer, apart; no `nz`.
        "bp.soma ds=bp.err[0:70] h=fp.mem[0:70] mask=- spk=fp.spk[0:70] dv=bp.delta[100:70] dh=bp.delta[0:70] nz=- n=70 rows=1 cfg=0 fire=true",
        // Copying: `dv` overlaps `dh`; `ds` in `dh`'s buffer; the readout.
        "bp.soma ds=bp.err[0:70] h=fp.mem[0:70] mask=- spk=fp.spk[0:70] dv=bp.delta[0:70] dh=bp.delta[35:70] nz=fp.mask[0:70] n=70 rows=1 cfg=0 fire=true",
        "bp.soma ds=bp.delta[200:70] h=fp.mem[0:70] mask=- spk=fp.spk[0:70] dv=bp.vgrad[0:70] dh=bp.delta[0:70] nz=fp.mask[0:70] n=70 rows=1 cfg=0 fire=true",
        "bp.soma ds=bp.err[0:10] h=- mask=- spk=- dv=bp.vgrad[0:10] dh=bp.delta[0:10] nz=fp.mask[0:10] n=10 rows=1 cfg=0 fire=false",
        // Errors: no saved `h` or mask; `nz` outside its buffer (after `dv` and `dh`).
        "bp.soma ds=bp.err[0:70] h=- mask=- spk=fp.spk[0:70] dv=bp.vgrad[0:70] dh=bp.delta[0:70] nz=- n=70 rows=1 cfg=0 fire=true",
        "bp.soma ds=bp.err[0:70] h=fp.mem[0:70] mask=- spk=fp.spk[0:70] dv=bp.vgrad[0:70] dh=bp.delta[0:70] nz=fp.mask[65500:70] n=70 rows=1 cfg=0 fire=true",
    ];
    for neuron in [HARD_ATAN, SOFT_RECT, HARD_RECT] {
        for precision in [Precision::Fp16Acc32, Precision::Fp32] {
            for body in cases {
                check_both_ways("bp", neuron, &format!("    {body}\n    {body}"), precision);
            }
        }
    }
}
