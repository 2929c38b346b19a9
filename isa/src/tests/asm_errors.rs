//! Assembler errors: each names line and column and says what was expected.

use crate::asm::assemble;

/// Assembles `text` (after a standard prelude of 4 lines) and returns "line:col: message"s.
fn errors(text: &str) -> Vec<String> {
    let src = format!(".version 5\n.chip cores=1 hash=0x0\n.core 0\n.stream fp\n{text}");
    match assemble(&src) {
        Ok(p) => panic!("assembled: {p:?}"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn unknown_mnemonic() {
    assert_eq!(
        errors("    fp.frobnicate x=1\n"),
        ["5:5: unknown mnemonic `fp.frobnicate`: see ISA.md for the instruction list"]
    );
}

#[test]
fn missing_operand() {
    assert_eq!(errors("  wait tok=1\n"), ["5:3: missing operand `n=...`"]);
}

#[test]
fn unknown_operand() {
    assert_eq!(errors("halt now=1\n"), ["5:6: unknown or repeated operand `now`; `halt` takes no operands"]);
}

#[test]
fn repeated_operand_lists_the_right_ones() {
    assert_eq!(errors("wait tok=1 n=1 n=2\n"), ["5:16: unknown or repeated operand `n`; `wait` takes tok= n="]);
}

#[test]
fn bad_access_names_the_column_of_its_value() {
    let e = errors("fill dst=fp.nope[0:4] value=0\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("5:10: operand `dst`: expected a buffer"), "{e:?}");
}

#[test]
fn every_bad_line_is_reported() {
    let e = errors("halt x=1\nnop\nwait tok=999 n=1\nloop r=r9 n=2\n");
    let lines: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap_or("")).collect();
    assert_eq!(lines, ["5", "6", "7", "8"], "{e:?}");
}

#[test]
fn instruction_outside_a_stream() {
    let e = assemble(".version 5\nhalt\n").expect_err("no stream");
    assert_eq!(e[0].to_string(), "2:1: instruction outside a stream: expected `.core N` and `.stream NAME` before it");
}

#[test]
fn cores_must_come_in_order() {
    let e = assemble(".core 1\n").expect_err("core 0 missing");
    assert_eq!(e[0].to_string(), "1:7: expected `.core 0` (cores are listed in order), found `1`");
}

#[test]
fn data_length_must_match_its_hex() {
    let e = assemble(".data \"w\" kind=raw addr=0 len=3\n    .hex 0102\n").expect_err("short data");
    assert_eq!(e[0].to_string(), "2:1: data segment has 2 bytes of `.hex`: expected len=3");
}

#[test]
fn unterminated_string() {
    let e = assemble(".symbol \"abc kind=tensor\n").expect_err("bad string");
    assert_eq!(e[0].to_string(), "1:9: unterminated string: expected a closing `\"`");
}
