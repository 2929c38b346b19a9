//! Synchronisation: tokens between engines, NoC messages between cores, barriers,
//! deadlocks, and errors that name the instruction at fault.

use super::*;
use crate::machine::{Location, WaitFor};
use isa::{Buf, Stream};

#[test]
fn two_core_noc_send_recv() {
    let p = program(
        "
.core 0
.stream dma
    fill dst=fp.psum[0:4] value=1.5
    noc.send to=1 chan=3 src=fp.psum[0:4]
    halt
.core 1
.stream dma
    noc.recv from=0 chan=3 dst=bp.err[4:4]
    halt
",
    );
    let (m, r) = run(&p);
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.buffer(1, Buf::BpErr, 4, 4), Some(vec![1.5; 4]));
    let hops = u64::from(ChipDesc::default().hops(0, 1).unwrap_or(0));
    assert_eq!((stats.noc.messages, stats.noc.bytes, stats.noc.byte_hops), (1, 8, 8 * hops));
    // The receive issued at cycle 0 and waited for the message: fill (1 + 4 accesses), then
    // one issue cycle, one link cycle for 8 bytes and 2 cycles per hop.
    let arrival = 5 + 1 + 1 + 2 * hops;
    assert_eq!(stats.streams[1][3].stall, arrival);
    assert!(stats.cycles > arrival);
}

#[test]
fn signal_wait_handshake_between_fp_and_wg() {
    let p = program(
        "
.core 0
.stream fp
    fill dst=fp.mem[0:4096] value=0
    fill dst=fp.spk[0:8] value=1
    signal core=0 stream=wg tok=2
    wait tok=5 n=1
    halt
.stream wg
    wait tok=2 n=1
    copy dst=wg.spk[0:8] src=fp.spk[0:8]
    signal core=0 stream=fp tok=5
    halt
",
    );
    let (m, r) = run(&p);
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.buffer(0, Buf::WgSpk, 0, 8), Some(vec![1.0; 8]));
    // FP's signal issues after two fills (256 and 1 accesses of the 256-bit-wide buffers,
    // spread over the array's 16 banks, after an issue cycle each) and lands a cycle later.
    let signalled = (1 + 256 / 16) + (1 + 1) + 1;
    assert_eq!(stats.streams[0][2].stall, signalled);
    assert!(stats.streams[0][0].stall > 0, "FP waited for WG's answer");
}

#[test]
fn barrier_releases_all_at_the_last_arrival() {
    let p = program(
        "
.core 0
.stream fp
    fill dst=fp.mem[0:2560] value=0
    barrier id=1 count=3
    halt
.stream bp
    barrier id=1 count=3
    halt
.core 1
.core 2
.stream wg
    barrier id=1 count=3
    halt
",
    );
    let (_, r) = run(&p);
    let stats = r.unwrap_or_else(|e| panic!("{e}"));
    // FP arrives last, after its fill: an issue cycle, then 160 accesses over 16 banks.
    assert_eq!(stats.streams[0][1].stall, 1 + 160 / 16);
    assert_eq!(stats.streams[2][2].stall, 1 + 160 / 16);
    assert_eq!(stats.streams[0][0].stall, 0);
}

#[test]
fn deadlock_lists_every_blocked_stream() {
    let p = program(
        "
.core 0
.stream fp
    wait tok=0 n=1
    halt
.stream bp
    signal core=0 stream=bp tok=1
    wait tok=1 n=2
    halt
.core 1
.stream dma
    noc.recv from=0 chan=7 dst=bp.err[0:4]
    halt
.stream wg
    halt
",
    );
    let (_, r) = run(&p);
    let Err(SimError::Deadlock { blocked }) = r else { panic!("expected a deadlock, got {r:?}") };
    let at = |core, stream, pc| Location { core, stream, pc };
    let got: Vec<(Location, WaitFor)> = blocked.into_iter().map(|b| (b.at, b.waits_for)).collect();
    assert_eq!(
        got,
        vec![
            (at(0, Stream::Fp, 0), WaitFor::Token { tok: 0, need: 1, have: 0 }),
            (at(0, Stream::Bp, 1), WaitFor::Token { tok: 1, need: 2, have: 1 }),
            (at(1, Stream::Dma, 0), WaitFor::Message { from: 0, chan: 7 }),
        ]
    );
}

#[test]
fn out_of_range_access_names_the_instruction() {
    let p = program(
        "
.core 0
.core 1
.core 2
.core 3
.stream bp
    loop r=r2 n=5
    fill dst=bp.psum[0+r2*1000:100] value=1
    endloop r=r2
    halt
",
    );
    let (_, r) = run(&p);
    let Err(SimError::OutOfRange { at, detail }) = r else { panic!("expected an out-of-range error, got {r:?}") };
    assert_eq!(at, Location { core: 3, stream: Stream::Bp, pc: 1 });
    assert!(detail.contains("4000..4100") && detail.contains("4096"), "{detail}");
}

/// A valid conv with a bias: two channels in and out, 3x3 over a 3x3 map.
const CONV_WITH_BIAS: &str = "fp.conv spk=fp.in[0:18] w=fp.w[0:36] bias=fp.mem[0:2] out=fp.psum[0:2] cin=2 cout=2 ih=3 iw=3 kh=3 kw=3 stride=1 acc=false skip=true";

#[test]
fn bad_programs_fail_without_panicking() {
    let cases = [
        // Shape fields disagreeing with operand lengths.
        "fp.linear spk=fp.in[0:16] w=fp.w[0:100] out=fp.psum[0:8] k=16 n=8 rows=1 spk_stride=0 out_stride=0 acc=false skip=true",
        // A soma whose configuration slot was never set.
        "fp.lif x=fp.psum[0:8] bias=- v=fp.mem[0:8] h=- spk=- mask=- n=8 rows=1 cfg=3 fire=true",
        // A spike operand in a 16-bit buffer.
        "fp.pool kind=max src=fp.psum[0:16] dst=fp.psum[16:4] c=1 ih=4 iw=4 k=2 stride=2 pad=0",
        // DMA outside DRAM.
        "dma.ld dst=fp.w[0:8] src=@0xfffffff8 rows=1 row=16 stride=16",
        // An endloop without a loop.
        "endloop r=r1",
        // A DMA whose two sides disagree.
        "dma.st dst=@0x0 src=fp.w[0:8] rows=1 row=8 stride=8",
        // A conv kernel larger than its input.
        "fp.conv spk=fp.in[0:4] w=fp.w[0:9] bias=- out=fp.psum[0:1] cin=1 cout=1 ih=2 iw=2 kh=3 kw=3 stride=1 acc=false skip=true",
        // A conv bias shorter than the output channels, and one in a 1-bit buffer.
        &CONV_WITH_BIAS.replace("bias=fp.mem[0:2]", "bias=fp.mem[0:1]"),
        &CONV_WITH_BIAS.replace("bias=fp.mem[0:2]", "bias=fp.spk[0:2]"),
    ];
    let (_, r) = run(&program(&format!(".core 0\n.stream fp\n    {CONV_WITH_BIAS}\n    halt\n")));
    assert!(r.is_ok(), "{r:?}");
    for body in cases {
        let (_, r) = run(&program(&format!(".core 0\n.stream fp\n    {body}\n    halt\n")));
        assert!(matches!(r, Err(SimError::OutOfRange { .. } | SimError::BadOperand { .. })), "{body}: {r:?}");
    }
    let (_, r) = run(&program(".core 0\n.stream fp\n    fill dst=fp.mem[0:1] value=1\n"));
    assert_eq!(r.err(), Some(SimError::NoHalt { core: 0, stream: Stream::Fp }));
}

#[test]
fn cycle_guard_stops_long_runs() {
    let p = program(".core 0\n.stream fp\n    loop r=r0 n=1000000\n    endloop r=r0\n    halt\n");
    let mut m = machine(&p, SimOptions { max_cycles: 10_000, ..SimOptions::default() });
    assert_eq!(m.run().err(), Some(SimError::CycleLimit { limit: 10_000 }));
}

#[test]
fn program_for_another_chip_is_rejected() {
    let p = program(".core 0\n.stream fp\n    halt\n");
    let chip = ChipDesc { clock_mhz: 1000, ..ChipDesc::default() };
    assert!(matches!(Machine::new(&p, &chip, SimOptions::default()), Err(SimError::ChipMismatch { .. })));
}

/// Mutates one byte of one instruction of the example program at a time (keeping only
/// mutations that still decode) and runs the result: every run must end in `Ok` or a
/// `SimError`, never a panic or a hang.
#[test]
fn mutated_programs_never_panic() {
    let base = super::pipeline::example();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut decoded = 0;
    for _ in 0..400 {
        let mut p = base.clone();
        let s = (next() % 4) as usize;
        let code = &mut p.cores[0].streams[s];
        if code.is_empty() {
            continue;
        }
        let i = (next() % code.len() as u64) as usize;
        let mut bytes = code[i].to_bytes();
        let at = (next() % bytes.len() as u64) as usize;
        bytes[at] ^= 1 << (next() % 8);
        let Ok(instr) = isa::Instr::from_bytes(&bytes) else { continue };
        code[i] = instr;
        decoded += 1;
        let mut m = machine(&p, SimOptions { max_cycles: 200_000, ..SimOptions::default() });
        let _ = m.run();
    }
    assert!(decoded > 100, "only {decoded} mutations decoded");
}
