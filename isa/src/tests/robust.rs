//! The decoder on hostile input: arbitrary bytes, mutations, truncations. It must return
//! an error naming an offset inside the input, and never panic.

use crate::testgen::{self, Gen};
use crate::{DecodeErrorKind, Program};
use proptest::prelude::*;

/// Rewrites the prelude's length and checksum so a mutated body reaches the body parser.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() < 16 {
        return;
    }
    let body_len = (bytes.len() - 16) as u32;
    bytes[8..12].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Applies one of a few byte-level mutations chosen by `g`.
fn mutate(bytes: &mut Vec<u8>, g: &mut Gen) {
    if bytes.is_empty() {
        return;
    }
    let at = g.below(bytes.len() as u64) as usize;
    match g.below(4) {
        0 => bytes[at] ^= 1 << g.below(8),
        1 => bytes[at] = g.next() as u8,
        2 => bytes.insert(at, g.next() as u8),
        _ => {
            bytes.remove(at);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = Program::from_bytes(&bytes) {
            prop_assert!(e.offset <= bytes.len());
        }
        let mut sealed = b"SNNC\x01\x00\x00\x00".to_vec();
        sealed.extend_from_slice(&[0; 8]);
        sealed.extend_from_slice(&bytes);
        reseal(&mut sealed);
        if let Err(e) = Program::from_bytes(&sealed) {
            prop_assert!(e.offset <= sealed.len(), "{e}");
        }
    }

    #[test]
    fn mutated_programs_never_panic(seed in any::<u64>(), n in 1usize..6, fix in any::<bool>()) {
        let mut g = Gen::new(seed);
        let mut bytes = testgen::program(&mut g).to_bytes();
        for _ in 0..n {
            mutate(&mut bytes, &mut g);
        }
        if fix {
            reseal(&mut bytes);
        }
        match Program::from_bytes(&bytes) {
            // A mutation may produce another valid program; it must then be stable.
            Ok(p) => prop_assert_eq!(Program::from_bytes(&p.to_bytes()), Ok(p)),
            Err(e) => prop_assert!(e.offset <= bytes.len(), "{e}"),
        }
    }

    #[test]
    fn every_truncation_is_an_error_at_an_offset(seed in any::<u64>()) {
        let bytes = testgen::program(&mut Gen::new(seed)).to_bytes();
        for cut in 0..bytes.len() {
            let e = Program::from_bytes(&bytes[..cut]);
            prop_assert!(e.is_err(), "cut at {cut} decoded");
            if let Err(e) = e {
                prop_assert!(e.offset <= cut, "cut {cut}: {e}");
            }
        }
    }

    #[test]
    fn truncated_bodies_resealed_are_errors_naming_offsets(seed in any::<u64>()) {
        let bytes = testgen::program(&mut Gen::new(seed)).to_bytes();
        for cut in 16..bytes.len() {
            let mut b = bytes[..cut].to_vec();
            reseal(&mut b);
            match Program::from_bytes(&b) {
                Ok(_) => prop_assert!(false, "resealed cut at {cut} decoded"),
                Err(e) => prop_assert!(e.offset <= cut, "cut {cut}: {e}"),
            }
        }
    }
}

fn valid() -> Vec<u8> {
    testgen::program(&mut Gen::new(3)).to_bytes()
}

#[test]
fn bad_magic_is_reported_at_offset_zero() {
    let mut b = valid();
    b[0] = b'X';
    let e = Program::from_bytes(&b).expect_err("decoding must fail");
    assert_eq!((e.offset, &e.kind), (0, &DecodeErrorKind::BadMagic));
    assert!(e.to_string().contains("expected b\"SNNC\""), "{e}");
}

#[test]
fn unsupported_version_names_both_versions() {
    let mut b = valid();
    b[4] = 9;
    let e = Program::from_bytes(&b).expect_err("decoding must fail");
    assert_eq!(e.offset, 4);
    assert_eq!(e.to_string(), "at byte 4: unsupported format version 9: expected version 5");
}

#[test]
fn corrupted_body_fails_the_checksum() {
    let mut b = valid();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    let e = Program::from_bytes(&b).expect_err("decoding must fail");
    assert!(matches!(e.kind, DecodeErrorKind::BadChecksum { .. }), "{e}");
    assert!(e.to_string().contains("expected CRC32"), "{e}");
}

#[test]
fn bad_opcode_is_reported_where_it_is() {
    let mut p = Program::default();
    p.cores.push(Default::default());
    p.cores[0].streams[0].push(crate::Instr::Halt {});
    let mut b = p.to_bytes();
    // Body: 2 + 8 (header) + 4 (core count) + 8 (counts of the fp stream) = 22.
    let at = 16 + 22;
    assert_eq!(b[at], 0, "the halt opcode");
    b[at] = 0xee;
    reseal(&mut b);
    let e = Program::from_bytes(&b).expect_err("decoding must fail");
    assert_eq!(e.offset, at);
    assert!(matches!(e.kind, DecodeErrorKind::BadOpcode { found: 0xee, .. }), "{e}");
    assert!(e.to_string().contains("expected an opcode below"), "{e}");
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let mut b = Program::default().to_bytes();
    // Core count at body offset 10.
    b[16 + 10..16 + 14].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut b);
    let e = Program::from_bytes(&b).expect_err("decoding must fail");
    assert_eq!(e.offset, 26);
    assert!(matches!(e.kind, DecodeErrorKind::BadLength { .. }), "{e}");
}

proptest! {
    #[test]
    fn assembler_never_panics_on_mutated_listings(seed in any::<u64>(), n in 1usize..8) {
        let mut g = Gen::new(seed);
        let mut chars: Vec<char> = crate::asm::print(&testgen::program(&mut g)).chars().collect();
        const NOISE: &[char] = &['"', '\\', ';', '[', ']', ':', '+', '-', '*', '=', '@', '.', ' ', '\n', 'r', '9', 'é'];
        for _ in 0..n {
            let at = g.below(chars.len() as u64 + 1) as usize;
            let c = NOISE[g.below(NOISE.len() as u64) as usize];
            match g.below(3) {
                0 if at < chars.len() => chars[at] = c,
                1 if at < chars.len() => { chars.remove(at); }
                _ => chars.insert(at, c),
            }
        }
        let text: String = chars.into_iter().collect();
        if let Err(errors) = crate::asm::assemble(&text) {
            let lines = text.lines().count().max(1);
            for e in errors {
                prop_assert!(e.line >= 1 && e.line <= lines && e.col >= 1, "{e}");
            }
        }
    }

    #[test]
    fn assembler_never_panics_on_arbitrary_text(text in "[.a-z0-9_=\\[\\]:+*@\" ;\\\\\\n-]{0,200}") {
        let _ = crate::asm::assemble(&text);
    }
}
