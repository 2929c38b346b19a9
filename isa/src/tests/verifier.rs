//! The verifier: a valid program passes, and each kind of violation is found and located.

use crate::verify::{Location, Violation, ViolationKind as K, verify};
use crate::{ChipDesc, Stream, asm};

/// A small valid program: core 0 runs a linear layer forward (fp) and its weight gradient
/// and update (wg) in a loop over 4 timesteps; core 0 sends spikes to core 1 over the NoC.
const VALID: &str = "
.version 5
.chip cores=20 hash=HASH
.core 0
.stream fp
    cfg.neuron slot=0 beta=0.9 theta=1 reset=hard detach=true sg=rect alpha=1
    fill dst=fp.mem[0:16] value=0
    loop r=r0 n=4
    dma.ld dst=fp.in[0:64] src=@0x0+r0*8 rows=1 row=8 stride=8
    fp.linear spk=fp.in[0:64] w=fp.w[0:1024] out=fp.psum[0:16] k=64 n=16 rows=1 spk_stride=0 out_stride=0 acc=false skip=true
    fp.lif x=fp.psum[0:16] bias=- v=fp.mem[0:16] h=fp.mem[16+r0*16:16] spk=fp.spk[0+r0*16:16] mask=fp.mask[0+r0*16:16] n=16 rows=1 cfg=0 fire=true
    signal core=0 stream=wg tok=0
    endloop r=r0
    halt
.stream wg
    loop r=r0 n=4
    wait tok=0 n=1
    copy dst=wg.spk[0:64] src=fp.in[0:64]
    fill dst=wg.err[0:16] value=0.5
    wg.linear spk=wg.spk[0:64] err=wg.err[0:16] dw=wg.grad[0:1024] db=- k=64 n=16 rows=1 spk_stride=0 err_stride=0 skip=true nz=-
    endloop r=r0
    cfg.opt slot=0 kind=sgd lr=0.1 m=0 beta2=0 eps=0 wd=0
    wg.update grad=wg.grad[0:1024] master=opt[0:1024] state=- w16=fp.w[0:1024] n=1024 cfg=0 scale=0.25 zero=true
    halt
.stream dma
    noc.send to=1 chan=0 src=fp.spk[0:64]
    barrier id=0 count=2
    halt
.core 1
.stream dma
    noc.recv from=0 chan=0 dst=fp.in[0:64]
    barrier id=0 count=2
    halt
.data \"x\" kind=spikes addr=0x0 len=4
    .hex 01020304
.symbol \"fc1\" kind=layer core=0 stream=fp addr=2 len=6
.symbol \"x\" kind=tensor addr=0x0 len=32
";

fn listing(edit: impl Fn(&str) -> String) -> String {
    let hash = format!("{:#x}", ChipDesc::default().hash());
    edit(&VALID.replace("HASH", &hash))
}

fn run(text: &str) -> Vec<Violation> {
    let p = asm::assemble(text).unwrap_or_else(|e| panic!("does not assemble: {e:?}"));
    verify(&p, &ChipDesc::default())
}

/// Verifies the edited program and asserts a violation of `kind` at `at` mentioning `needle`.
fn expect(edit: impl Fn(&str) -> String, kind: K, at: (Option<usize>, Option<Stream>, Option<usize>), needle: &str) {
    let v = run(&listing(edit));
    let at = Location { core: at.0, stream: at.1, index: at.2 };
    assert!(
        v.iter().any(|x| x.kind == kind && x.at == at && x.message.contains(needle)),
        "expected {kind:?} at {at} containing {needle:?}, got:\n{}",
        v.iter().map(|x| format!("  {x:?}\n")).collect::<String>()
    );
}

fn fp(i: usize) -> (Option<usize>, Option<Stream>, Option<usize>) {
    (Some(0), Some(Stream::Fp), Some(i))
}

fn wg(i: usize) -> (Option<usize>, Option<Stream>, Option<usize>) {
    (Some(0), Some(Stream::Wg), Some(i))
}

const PROGRAM: (Option<usize>, Option<Stream>, Option<usize>) = (None, None, None);

#[test]
fn valid_program_has_no_violations() {
    let v = run(&listing(str::to_string));
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn empty_program_for_a_chip_verifies() {
    let chip = ChipDesc::from_toml_str("cores = [[0, 0], [1, 0]]").expect("valid chip");
    let p = crate::Program::new(&chip);
    assert_eq!(p.cores.len(), 2);
    assert_eq!(verify(&p, &chip), []);
    assert_eq!(verify(&p, &ChipDesc::default()).len(), 2, "core count and hash differ");
}

#[test]
fn header_must_match_the_chip() {
    expect(|s| s.replace("cores=20", "cores=19"), K::Header, PROGRAM, "built for 19 cores but the chip has 20");
    let hash = format!("hash={:#x}", ChipDesc::default().hash());
    expect(|s| s.replace(&hash, "hash=0x1234"), K::Header, PROGRAM, "built for chip hash 0x0000000000001234");
}

#[test]
fn cores_must_exist() {
    expect(
        |s| s.replace("noc.send to=1", "noc.send to=77"),
        K::CoreIndex,
        (Some(0), Some(Stream::Dma), Some(0)),
        "names core 77 but the chip has 20 cores",
    );
}

#[test]
fn engine_instructions_stay_in_their_stream() {
    expect(
        |s| s.replace("    fill dst=wg.err", "    fp.sum dst=fp.psum[0:16] src=fp.spk[0:16]\n    fill dst=wg.err"),
        K::WrongStream,
        wg(3),
        "cannot appear in the wg stream",
    );
}

#[test]
fn operands_in_range() {
    expect(
        |s| s.replace("cfg.neuron slot=0", "cfg.neuron slot=8"),
        K::OperandRange,
        fp(0),
        "`slot` is 8: expected below 8",
    );
    expect(|s| s.replace("loop r=r0 n=4\n    dma", "loop r=r0 n=0\n    dma"), K::OperandRange, fp(2), "`n` is 0");
}

#[test]
fn accesses_stay_inside_buffers_over_all_loop_values() {
    expect(
        |s| s.replace("h=fp.mem[16+r0*16:16]", "h=fp.mem[65500+r0*16:16]"),
        K::BufferBounds,
        fp(5),
        "spans elements 65500..65564",
    );
    expect(
        |s| s.replace("h=fp.mem[16+r0*16:16]", "h=fp.mem[16-r0*16:16]"),
        K::BufferBounds,
        fp(5),
        "spans elements -32..32",
    );
}

#[test]
fn address_registers_must_be_loop_counters() {
    expect(|s| s.replace("fill dst=fp.mem[0:16]", "fill dst=fp.mem[0+r1*16:16]"), K::UnboundRegister, fp(1), "uses r1");
}

#[test]
fn dram_transfers_stay_inside_dram() {
    expect(
        |s| s.replace("src=@0x0+r0*8", "src=@0xfffffff8+r0*8"),
        K::DramBounds,
        fp(3),
        "outside the 4294967296-byte DRAM",
    );
    expect(
        |s| {
            s.replace(
                ".data \"x\" kind=spikes addr=0x0",
                ".data \"y\" kind=raw addr=0x0 len=1\n    .hex 00\n.data \"x\" kind=spikes addr=0x0",
            )
        },
        K::DramBounds,
        PROGRAM,
        "overlap",
    );
}

#[test]
fn shapes_must_agree() {
    expect(
        |s| s.replace("k=64 n=16 rows=1", "k=65 n=16 rows=1"),
        K::Shape,
        fp(4),
        "operand `input` has 64 elements: expected 65",
    );
    expect(
        |s| s.replace("mask=fp.mask[0+r0*16:16]", "mask=fp.mem[0+r0*16:16]"),
        K::Shape,
        fp(5),
        "must be a 1-bit buffer",
    );
    expect(|s| s.replace("rows=1 row=8", "rows=1 row=9"), K::Shape, fp(3), "holds 64 bits: expected 72");
}

/// The program with the `copy` of the wg stream (instruction 2) replaced by a `pad` that
/// places 1 x 6 x 6 input spikes into an 8 x 8 padded map.
fn with_pad(edit: impl Fn(&str) -> String) -> impl Fn(&str) -> String {
    move |s| {
        edit(&s.replace(
            "copy dst=wg.spk[0:64] src=fp.in[0:64]",
            "pad dst=wg.spk[0:64] src=fp.in[0:36] c=1 h=6 w=6 p=1 extract=false",
        ))
    }
}

#[test]
fn pad_between_dense_and_padded_maps_verifies() {
    let v = run(&listing(with_pad(str::to_string)));
    assert!(v.is_empty(), "{v:#?}");
    let extract = with_pad(|s| s.replace("dst=wg.spk[0:64] src=fp.in[0:36]", "dst=fp.in[0:36] src=wg.spk[0:64]"));
    let v = run(&listing(|s| extract(s).replace("extract=false", "extract=true")));
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn pad_dense_side_must_match_the_shape() {
    expect(
        with_pad(|s| s.replace("src=fp.in[0:36]", "src=fp.in[0:35]")),
        K::Shape,
        wg(2),
        "operand `src` has 35 elements: expected 36",
    );
}

#[test]
fn pad_padded_side_must_match_the_shape() {
    expect(
        with_pad(|s| s.replace("p=1 extract", "p=2 extract")),
        K::Shape,
        wg(2),
        "operand `dst` has 64 elements: expected 100",
    );
}

#[test]
fn pad_sides_share_one_element_width() {
    expect(
        with_pad(|s| s.replace("src=fp.in[0:36]", "src=fp.mem[0:36]")),
        K::Shape,
        wg(2),
        "holds 1-bit elements but `src` (`fp.mem`) holds 16-bit ones",
    );
}

#[test]
fn pad_dimensions_are_not_zero() {
    expect(
        with_pad(|s| s.replace("src=fp.in[0:36] c=1", "src=fp.in[0:0] c=0")),
        K::OperandRange,
        wg(2),
        "operand `c` is 0: expected at least 1",
    );
    expect(with_pad(|s| s.replace("h=6", "h=0")), K::OperandRange, wg(2), "operand `h` is 0");
    expect(with_pad(|s| s.replace("w=6", "w=0")), K::OperandRange, wg(2), "operand `w` is 0");
}

#[test]
fn loops_must_nest_and_close() {
    expect(
        |s| s.replacen("    endloop r=r0\n", "", 1),
        K::Loop,
        (Some(0), Some(Stream::Fp), None),
        "1 loop(s) still open",
    );
    expect(|s| s.replacen("    endloop r=r0\n", "    endloop r=r1\n", 1), K::Loop, fp(7), "closes the loop over r0");
    expect(
        |s| s.replacen("    wait tok=0", "    loop r=r0 n=2\n    endloop r=r0\n    wait tok=0", 1),
        K::Loop,
        wg(1),
        "reuses r0",
    );
}

#[test]
fn streams_end_with_halt() {
    expect(
        |s| s.replacen("    endloop r=r0\n    halt\n", "    endloop r=r0\n", 1),
        K::Halt,
        (Some(0), Some(Stream::Fp), None),
        "does not end with `halt`",
    );
    expect(|s| s.replacen("    halt\n", "    halt\n    halt\n", 1), K::Halt, fp(8), "followed by 1 unreachable");
}

#[test]
fn waits_need_matching_signals() {
    expect(
        |s| s.replace("    signal core=0 stream=wg tok=0\n", ""),
        K::Sync,
        wg(1),
        "has no `signal core=0 stream=wg tok=0`",
    );
    expect(|s| s.replace("wait tok=0 n=1", "wait tok=0 n=2"), K::Sync, wg(1), "signalled 4 times but waits consume 8");
}

#[test]
fn sends_need_matching_receives() {
    expect(
        |s| s.replace("dst=fp.in[0:64]\n    barrier", "dst=fp.in[0:32]\n    barrier"),
        K::Sync,
        (Some(0), Some(Stream::Dma), Some(0)),
        "sends 64 bits to core 1 on channel 0 but core 1 receives 32",
    );
}

#[test]
fn barrier_sizes_must_agree() {
    expect(
        |s| s.replacen("barrier id=0 count=2", "barrier id=0 count=3", 1),
        K::Sync,
        (Some(0), Some(Stream::Dma), Some(1)),
        "declares 3 participants but 2 stream(s) reach it",
    );
}

#[test]
fn symbols_point_at_what_exists() {
    expect(
        |s| s.replace("addr=2 len=6", "addr=2 len=60"),
        K::Symbol,
        PROGRAM,
        "instructions 2..62 of core 0 fp, which has 9",
    );
}

/// The `fp.linear` of the fp stream (instruction 4) with `rows`, `spk_stride` and `out_stride`.
fn fp_rows(rows: u32, spk: u32, out: u32) -> impl Fn(&str) -> String {
    move |s| {
        s.replace(
            "rows=1 spk_stride=0 out_stride=0 acc=false",
            &format!("rows={rows} spk_stride={spk} out_stride={out} acc=false"),
        )
    }
}

/// The `wg.linear` of the wg stream (instruction 4) with rows, strides and an `nz` bitmap.
fn wg_rows(rows: u32, spk: u32, err: u32) -> impl Fn(&str) -> String {
    move |s| {
        s.replace(
            "rows=1 spk_stride=0 err_stride=0 skip=true nz=-",
            &format!("rows={rows} spk_stride={spk} err_stride={err} skip=true nz=fp.mask[0:16]"),
        )
    }
}

#[test]
fn multi_row_instructions_inside_their_buffers_verify() {
    // fp.in holds 18,496 spikes and fp.psum 4096 sums: 4 rows of each fit easily.
    let v = run(&listing(fp_rows(4, 64, 16)));
    assert!(v.is_empty(), "{v:#?}");
    let v = run(&listing(wg_rows(4, 64, 16)));
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn zero_rows_are_an_operand_range_violation() {
    expect(fp_rows(0, 64, 16), K::OperandRange, fp(4), "operand `rows` is 0");
    expect(wg_rows(0, 64, 16), K::OperandRange, wg(4), "operand `rows` is 0");
}

#[test]
fn the_last_row_must_lie_inside_each_buffer() {
    // Row 289 of `spk` starts at 289 * 64 = 18,496: just past fp.in.
    expect(fp_rows(290, 64, 0), K::BufferBounds, fp(4), "operand `spk` in its last row (289)");
    assert!(run(&listing(fp_rows(289, 64, 0))).is_empty());
    // Row 256 of `out` ends at 256 * 16 + 16 = 4112 > 4096 sums.
    expect(
        fp_rows(257, 0, 16),
        K::BufferBounds,
        fp(4),
        "operand `out` in its last row (256) spans elements 4096..4112",
    );
    // `nz` rows move with `err` rows: wg.err holds 4096 errors, fp.mask 65,536 bits.
    expect(wg_rows(2, 0, 5000), K::BufferBounds, wg(4), "operand `err` in its last row (1)");
    expect(
        wg_rows(2, 0, 65530),
        K::BufferBounds,
        wg(4),
        "operand `nz` in its last row (1) spans elements 65530..65546",
    );
}

/// The violations of a one-core program whose fp stream is `line` then `halt`.
fn pool_violations(line: &str) -> Vec<Violation> {
    let hash = format!("{:#x}", ChipDesc::default().hash());
    run(&format!(".version 5\n.chip cores=20 hash={hash}\n.core 0\n.stream fp\n    {line}\n    halt\n"))
}

#[test]
fn pool_output_sizes_follow_stride_and_padding() {
    // 7x7, window 3, stride 2, padding 1: (7 + 2 - 3) / 2 + 1 = 4 rows and columns.
    let ok = "fp.pool kind=max src=fp.spk[0:98] dst=fp.spk[128:32] c=2 ih=7 iw=7 k=3 stride=2 pad=1";
    assert!(pool_violations(ok).is_empty(), "{:#?}", pool_violations(ok));
    // The window-sized output (7/3 = 2 per side) is what version 2 would have wanted.
    let v = pool_violations(&ok.replace("dst=fp.spk[128:32]", "dst=fp.spk[128:8]"));
    assert!(v.iter().any(|x| x.kind == K::Shape && x.message.contains("has 8 elements: expected 32")), "{v:#?}");
}

#[test]
fn pool_padding_beyond_half_the_window_is_out_of_range() {
    let line = "fp.pool kind=avg src=fp.spk[0:49] dst=fp.mem[0:25] c=1 ih=7 iw=7 k=3 stride=2 pad=2";
    let v = pool_violations(line);
    assert!(v.iter().any(|x| x.kind == K::OperandRange && x.message.contains("padding 2")), "{v:#?}");
    let v = pool_violations(&line.replace("stride=2 pad=2", "stride=0 pad=1"));
    assert!(v.iter().any(|x| x.kind == K::OperandRange && x.message.contains("stride 0")), "{v:#?}");
}

/// The program with its `fp.lif` (fp instruction 5) replaced by a 4-row one whose operands
/// are `x`, `h` and `spk`, edited by `edit` (applied to the new line only).
fn lif_rows(edit: impl Fn(&str) -> String) -> impl Fn(&str) -> String {
    move |s| {
        let old = s.lines().find(|l| l.contains("fp.lif")).expect("the program has an fp.lif").to_string();
        let new = "    fp.lif x=fp.psum[0:64] bias=- v=fp.mem[0:16] h=fp.mem[16:64] spk=fp.spk[0:64] mask=fp.mask[0:64] n=16 rows=4 cfg=0 fire=true";
        s.replace(&old, &edit(new))
    }
}

/// The program with a 4-row `bp.soma` added to a bp stream of core 0, edited by `edit`.
fn soma_rows(edit: impl Fn(&str) -> String) -> impl Fn(&str) -> String {
    move |s| {
        let soma = "    bp.soma ds=bp.err[0:64] h=- mask=fp.mask[0:64] spk=fp.spk[0:64] dv=bp.vgrad[0:16] dh=bp.delta[0:64] nz=fp.mask[64:64] n=16 rows=4 cfg=0 fire=true";
        let bp = format!(
            ".stream bp\n    cfg.neuron slot=0 beta=0.9 theta=1 reset=hard detach=true sg=rect alpha=1\n{}\n    halt\n.stream wg\n",
            edit(soma)
        );
        s.replacen(".stream wg\n", &bp, 1)
    }
}

fn bp(i: usize) -> (Option<usize>, Option<Stream>, Option<usize>) {
    (Some(0), Some(Stream::Bp), Some(i))
}

#[test]
fn multi_row_somas_inside_their_buffers_verify() {
    let v = run(&listing(lif_rows(str::to_string)));
    assert!(v.is_empty(), "{v:#?}");
    let v = run(&listing(soma_rows(str::to_string)));
    assert!(v.is_empty(), "{v:#?}");
    // An error shared by every row (a rate loss) has `n` elements.
    let v = run(&listing(soma_rows(|s| s.replace("ds=bp.err[0:64]", "ds=bp.err[0:16]"))));
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn somas_with_zero_rows_are_an_operand_range_violation() {
    expect(lif_rows(|s| s.replace("rows=4", "rows=0")), K::OperandRange, fp(5), "operand `rows` is 0");
    expect(soma_rows(|s| s.replace("rows=4", "rows=0")), K::OperandRange, bp(1), "operand `rows` is 0");
}

#[test]
fn soma_row_operands_hold_rows_times_n_elements() {
    let lif = |from: &'static str, to: &'static str| lif_rows(move |s| s.replace(from, to));
    expect(lif("x=fp.psum[0:64]", "x=fp.psum[0:16]"), K::Shape, fp(5), "operand `x` has 16 elements: expected 64");
    expect(lif("h=fp.mem[16:64]", "h=fp.mem[16:16]"), K::Shape, fp(5), "operand `h` has 16 elements: expected 64");
    expect(lif("spk=fp.spk[0:64]", "spk=fp.spk[0:60]"), K::Shape, fp(5), "operand `spk` has 60 elements");
    expect(lif("mask=fp.mask[0:64]", "mask=fp.mask[0:16]"), K::Shape, fp(5), "operand `mask` has 16 elements");
    // The carried state and the bias are one row.
    expect(lif("v=fp.mem[0:16]", "v=fp.mem[0:64]"), K::Shape, fp(5), "operand `v` has 64 elements: expected 16");
    expect(lif("bias=-", "bias=fp.psum[100:64]"), K::Shape, fp(5), "operand `bias` has 64 elements: expected 16");
    let soma = |from: &'static str, to: &'static str| soma_rows(move |s| s.replace(from, to));
    expect(soma("dh=bp.delta[0:64]", "dh=bp.delta[0:16]"), K::Shape, bp(1), "operand `dh` has 16 elements");
    expect(soma("nz=fp.mask[64:64]", "nz=fp.mask[64:32]"), K::Shape, bp(1), "operand `nz` has 32 elements");
    expect(soma("dv=bp.vgrad[0:16]", "dv=bp.vgrad[0:64]"), K::Shape, bp(1), "operand `dv` has 64 elements");
    expect(
        soma("ds=bp.err[0:64]", "ds=bp.err[0:32]"),
        K::Shape,
        bp(1),
        "operand `ds` has 32 elements: expected rows*n = 64 (one row each) or n = 16 (shared by every row)",
    );
}

#[test]
fn every_soma_row_must_lie_inside_its_buffer() {
    // fp.psum holds 4096 sums: rows 0..4 of 16 from 4050 end at 4114.
    expect(
        lif_rows(|s| s.replace("x=fp.psum[0:64]", "x=fp.psum[4050:64]")),
        K::BufferBounds,
        fp(5),
        "access to `fp.psum` spans elements 4050..4114",
    );
    // fp.mask holds 65,536 bits.
    expect(
        soma_rows(|s| s.replace("nz=fp.mask[64:64]", "nz=fp.mask[65500:64]")),
        K::BufferBounds,
        bp(1),
        "access to `fp.mask` spans elements 65500..65564",
    );
}

#[test]
fn conv_bias_has_one_value_per_output_channel() {
    // 2 input channels of 6x6 padded, 4 output channels of 4x4, 3x3 kernel.
    let line = "fp.conv spk=fp.in[0:72] w=fp.w[0:72] bias=fp.mem[0:4] out=fp.psum[0:64] cin=2 cout=4 ih=6 iw=6 kh=3 kw=3 stride=1 acc=false skip=true";
    assert!(pool_violations(line).is_empty(), "{:#?}", pool_violations(line));
    assert!(pool_violations(&line.replace("bias=fp.mem[0:4]", "bias=-")).is_empty());
    // One bias per output element (what `fp.lif` takes) is not a conv bias.
    let v = pool_violations(&line.replace("bias=fp.mem[0:4]", "bias=fp.mem[0:64]"));
    assert!(
        v.iter().any(|x| x.kind == K::Shape && x.message.contains("operand `bias` has 64 elements: expected 4")),
        "{v:#?}"
    );
}
