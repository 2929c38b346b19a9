//! Round trips: instruction encoding, program bytes and program text.

use crate::testgen::{self, Gen};
use crate::{Instr, OPS, Opcode, Program, Visitor, asm, decode_visit, disasm::Printer};
use proptest::prelude::*;

proptest! {
    #[test]
    fn instr_decode_encode_is_identity(seed in any::<u64>()) {
        let i = testgen::instr(&mut Gen::new(seed));
        prop_assert_eq!(Instr::from_bytes(&i.to_bytes()), Ok(i));
    }

    #[test]
    fn program_bytes_round_trip(seed in any::<u64>()) {
        let p = testgen::program(&mut Gen::new(seed));
        prop_assert_eq!(Program::from_bytes(&p.to_bytes()), Ok(p));
    }

    #[test]
    fn program_text_round_trip(seed in any::<u64>()) {
        let p = testgen::program(&mut Gen::new(seed));
        let text = asm::print(&p);
        let back = asm::assemble(&text);
        prop_assert_eq!(back.as_ref().map(Program::to_bytes), Ok(p.to_bytes()), "listing:\n{}", text);
        prop_assert_eq!(back, Ok(p));
    }

    #[test]
    fn decoding_into_a_visitor_sees_the_same_instructions(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let instrs: Vec<Instr> = (0..g.below(6)).map(|_| testgen::instr(&mut g)).collect();
        let code: Vec<u8> = instrs.iter().flat_map(Instr::to_bytes).collect();
        let texts = decode_visit(&code, &mut Collect);
        let want: Vec<String> = instrs.iter().map(Instr::to_string).collect();
        prop_assert_eq!(texts, Ok(want));
    }
}

/// A visitor built on the disassembler's printer that returns each instruction's text.
struct Collect;

macro_rules! collect_impl {
    ($($(#[doc = $doc:literal])* $name:ident $method:ident = $mn:literal @ $unit:ident {
        $( $(#[doc = $fdoc:literal])* $field:ident : $ty:ty ),* $(,)? };)*) => {
        impl Visitor for Collect {
            type Output = String;
            $(fn $method(&mut self, $($field: &$ty),*) -> String {
                let mut s = String::new();
                Printer { out: &mut s }.$method($($field),*);
                s
            })*
        }
    };
}

use crate::operand::{Access, DramAddr, LossKind, OptKind, PoolKind, Reg, ResetMode, Stream, Surrogate};
crate::for_each_op!(collect_impl);

#[test]
fn every_opcode_round_trips_in_binary_and_text() {
    let mut g = Gen::new(7);
    for op in Opcode::all() {
        for _ in 0..64 {
            let i = testgen::instr_of(op, &mut g);
            assert_eq!(Instr::from_bytes(&i.to_bytes()).as_ref(), Ok(&i), "{op:?}");
            let mut p = Program::default();
            p.cores.push(Default::default());
            p.cores[0].streams[0].push(i.clone());
            assert_eq!(asm::assemble(&asm::print(&p)), Ok(p), "{i}");
        }
    }
}

#[test]
fn opcodes_are_numbered_in_table_order_with_unique_mnemonics() {
    for (n, info) in OPS.iter().enumerate() {
        assert_eq!(info.opcode as usize, n);
        assert_eq!(Opcode::from_u8(n as u8), Some(info.opcode));
        assert_eq!(Opcode::from_mnemonic(info.mnemonic), Some(info.opcode));
    }
    assert_eq!(Opcode::from_u8(OPS.len() as u8), None);
}

#[test]
fn printing_is_deterministic_and_names_layers() {
    let text = "
.version 5
.chip cores=1 hash=0x0
.core 0
.stream fp
    fill dst=fp.psum[0:16] value=0
    halt
.symbol \"fc1\" kind=layer core=0 stream=fp addr=0 len=2
";
    let p = asm::assemble(text).expect("listing assembles");
    let printed = asm::print(&p);
    assert!(printed.contains("    ; layer \"fc1\"\n    fill dst=fp.psum[0:16] value=0\n"), "{printed}");
    assert_eq!(printed, asm::print(&asm::assemble(&printed).expect("reassembles")));
}

#[test]
fn multi_row_operands_round_trip_in_text_and_binary() {
    let lines = [
        "fp.linear spk=fp.in[0:64] w=fp.w[0:1024] out=fp.psum[0+r2*16:16] k=64 n=16 rows=8 spk_stride=64 out_stride=128 acc=true skip=true",
        "bp.linear err=bp.delta[0:10] w=bp.w[0:640] out=bp.psum[0:64] n=10 k=64 rows=8 err_stride=10 out_stride=128 acc=false nz=fp.mask[0:10]",
        "wg.linear spk=fp.in[0:64] err=bp.delta[0:128] dw=opt[0:8192] db=- k=64 n=128 rows=8 spk_stride=64 err_stride=128 skip=true nz=fp.mask[0:128]",
        "fp.lif x=fp.psum[0+r1*128:128] bias=- v=fp.mem[0:16] h=fp.mem[16:128] spk=fp.spk[0:128] mask=- n=16 rows=8 cfg=0 fire=true",
        "bp.soma ds=bp.err[0:10] h=- mask=fp.mask[0:80] spk=fp.spk[0:80] dv=bp.vgrad[0:10] dh=bp.delta[0:80] nz=fp.mask[80:80] n=10 rows=8 cfg=1 fire=true",
    ];
    for line in lines {
        let stream = &line[..2];
        let text = format!(".version 5\n.chip cores=1 hash=0x0\n.core 0\n.stream {stream}\n    {line}\n");
        let p = asm::assemble(&text).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        let instr = p.cores[0].streams.iter().flatten().next().cloned().expect("one instruction");
        assert_eq!(instr.to_string(), line);
        assert_eq!(Instr::from_bytes(&instr.to_bytes()), Ok(instr));
    }
}

#[test]
fn pool_stride_and_padding_round_trip_in_text_and_binary() {
    let lines = [
        "fp.pool kind=max src=fp.spk[0:12544] dst=fp.spk[12544:3136] c=1 ih=112 iw=112 k=3 stride=2 pad=1",
        "bp.pool kind=avg dy=bp.err[0:9] dx=bp.delta[0+r0*36:36] x=- c=1 ih=6 iw=6 k=3 stride=2 pad=1",
    ];
    for line in lines {
        let stream = &line[..2];
        let text = format!(".version 5\n.chip cores=1 hash=0x0\n.core 0\n.stream {stream}\n    {line}\n");
        let p = asm::assemble(&text).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        let instr = p.cores[0].streams.iter().flatten().next().cloned().expect("one instruction");
        assert_eq!(instr.to_string(), line);
        assert_eq!(Instr::from_bytes(&instr.to_bytes()), Ok(instr));
    }
}
