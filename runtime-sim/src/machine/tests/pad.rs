//! `pad`: a 2 x 3 x 5 map moved into the interior of a 2 x 5 x 7 zero-bordered map and
//! back out, in a 1-bit buffer at unaligned bit offsets and in a 16-bit buffer, and from one
//! 1-bit buffer into another (the path that writes whole padded rows).

use super::*;
use half::f16;
use isa::Buf;

const C: usize = 2;
const H: usize = 3;
const W: usize = 5;
const P: usize = 1;
const HP: usize = H + 2 * P;
const WP: usize = W + 2 * P;

/// Loads the dense map, pads it into a bordered range and extracts it into a third range;
/// spikes live in `fp.spk` at bit offsets that are not byte-aligned, FP16 values in `fp.mem`
/// with a border of -3.5 that `pad` must leave alone. The set bits `fp.spk[235:5]` just
/// after the extracted map must survive too, and so must the border of ones around the map
/// padded into `fp.in`.
const PAD: &str = "
.core 0
.stream fp
    dma.ld dst=fp.spk[3:32] src=@0x0 rows=1 row=4 stride=4
    fill dst=fp.spk[101:70] value=0
    fill dst=fp.spk[235:5] value=1
    pad dst=fp.spk[101:70] src=fp.spk[3:30] c=2 h=3 w=5 p=1 extract=false
    pad dst=fp.spk[205:30] src=fp.spk[101:70] c=2 h=3 w=5 p=1 extract=true
    fill dst=fp.in[0:90] value=1
    pad dst=fp.in[7:70] src=fp.spk[3:30] c=2 h=3 w=5 p=1 extract=false
    dma.ld dst=fp.mem[0:30] src=@0x100 rows=1 row=60 stride=60
    fill dst=fp.mem[40:70] value=-3.5
    pad dst=fp.mem[40:70] src=fp.mem[0:30] c=2 h=3 w=5 p=1 extract=false
    pad dst=fp.mem[120:30] src=fp.mem[40:70] c=2 h=3 w=5 p=1 extract=true
    halt
";

fn spikes() -> Vec<bool> {
    (0..32).map(|i| i < C * H * W && (i % 3 == 0 || i % 7 == 2)).collect()
}

fn values() -> Vec<f32> {
    (0..C * H * W).map(|i| f16::from_f32((i as f32 - 11.3) / 7.0).to_f32()).collect()
}

/// The expected padded map: `border` everywhere, the dense map in the interior.
fn padded(dense: &[f32], border: f32) -> Vec<f32> {
    let mut out = vec![border; C * HP * WP];
    for ch in 0..C {
        for y in 0..H {
            for x in 0..W {
                out[ch * HP * WP + (y + P) * WP + x + P] = dense[ch * H * W + y * W + x];
            }
        }
    }
    out
}

fn read(m: &Machine, buf: Buf, start: usize, len: usize) -> Vec<f32> {
    m.buffer(0, buf, start, len).unwrap_or_else(|| panic!("{buf} [{start}:{len}] is out of range"))
}

#[test]
fn pad_places_and_extracts_interiors() {
    let mut p = program(PAD);
    data(&mut p, "x.spikes", DataKind::Spikes, 0, pack(&spikes()));
    data(&mut p, "x.fp16", DataKind::Fp16, 0x100, f16_bytes(&values()));
    let (m, r) = run(&p);
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    let bits: Vec<f32> = spikes()[..C * H * W].iter().map(|s| f32::from(u8::from(*s))).collect();
    assert_eq!(read(&m, Buf::FpSpk, 101, C * HP * WP), padded(&bits, 0.0));
    assert_eq!(read(&m, Buf::FpSpk, 205, C * H * W), bits);
    assert_eq!(read(&m, Buf::FpSpk, 235, 5), [1.0; 5], "bits after the extracted map");
    assert_eq!(read(&m, Buf::FpIn, 7, C * HP * WP), padded(&bits, 1.0), "padded into another buffer");
    assert_eq!(read(&m, Buf::FpIn, 0, 7), [1.0; 7], "bits before the padded map");
    assert_eq!(read(&m, Buf::FpIn, 77, 13), [1.0; 13], "bits after the padded map");
    assert_eq!(read(&m, Buf::FpMem, 40, C * HP * WP), padded(&values(), -3.5));
    assert_eq!(read(&m, Buf::FpMem, 120, C * H * W), values());
    assert_eq!(stats.profile["pad"].count, 5);
}

#[test]
fn pad_rejects_mismatched_element_widths() {
    let text = PAD.replace("src=fp.mem[0:30] c=2", "src=fp.spk[3:30] c=2");
    let (_, r) = run(&program(&text));
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("holds 16-bit elements but `src` (`fp.spk`) holds 1-bit ones"), "{e}");
}
