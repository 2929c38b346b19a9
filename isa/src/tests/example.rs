//! The example program `isa/testdata/linear_layer.s`: a full training step of one spiking
//! linear layer. It must assemble, verify on the default chip, print back to itself, and
//! stay small (its code size does not depend on T or B).

use crate::{ChipDesc, Program, Stream, asm, verify::verify};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/linear_layer.s");

/// The listing, read once (tests run in parallel, and one of them may rewrite it).
fn listing() -> String {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(read_listing).clone()
}

/// The listing, with its `.chip` line brought up to date when `UPDATE_ISA_DOC` is set.
fn read_listing() -> String {
    let text = std::fs::read_to_string(PATH).unwrap_or_default();
    let want = format!(".chip cores=20 hash={:#018x}", ChipDesc::default().hash());
    if std::env::var_os("UPDATE_ISA_DOC").is_some() {
        let fixed: Vec<&str> = text.lines().map(|l| if l.starts_with(".chip ") { want.as_str() } else { l }).collect();
        let fixed = fixed.join("\n") + "\n";
        std::fs::write(PATH, &fixed).expect("write the example listing");
        return fixed;
    }
    assert!(
        text.contains(&want),
        "{PATH} is not for the default chip; its .chip line should read `{want}`.\n\
         Update it with: UPDATE_ISA_DOC=1 cargo test -p snnc-isa"
    );
    text
}

fn assemble(text: &str) -> Program {
    asm::assemble(text).unwrap_or_else(|e| panic!("{PATH} does not assemble: {e:#?}"))
}

/// Encoded bytes of each stream of core 0.
fn code_sizes(p: &Program) -> Vec<(Stream, usize)> {
    Stream::ALL.iter().map(|s| (*s, p.cores[0].stream(*s).iter().map(|i| i.to_bytes().len()).sum())).collect()
}

#[test]
fn example_verifies_and_round_trips() {
    let p = assemble(&listing());
    let v = verify(&p, &ChipDesc::default());
    assert!(v.is_empty(), "{v:#?}");
    assert_eq!(asm::assemble(&asm::print(&p)), Ok(p.clone()));
    assert_eq!(Program::from_bytes(&p.to_bytes()), Ok(p));
}

#[test]
fn example_code_is_small_and_independent_of_t_and_b() {
    let text = listing();
    let sizes = code_sizes(&assemble(&text));
    let total: usize = sizes.iter().map(|s| s.1).sum();
    // FP 15, BP 16 and WG 17 instructions: about 1 KiB of code for a whole training step.
    assert!((600..1200).contains(&total), "code size changed to {total} bytes: {sizes:?}");
    let long = text.replace("loop r=r0 n=4", "loop r=r0 n=400").replace("loop r=r1 n=8", "loop r=r1 n=8000");
    assert_eq!(code_sizes(&assemble(&long)), sizes);
}

#[test]
fn example_runs_its_loops_t_times_b() {
    let p = assemble(&listing());
    let mut seq = crate::exec::Sequencer::new(p.cores[0].stream(Stream::Fp));
    let (mut linear, mut r0_seen) = (0, 0);
    while let Some((_, instr)) = seq.current() {
        if matches!(instr, crate::Instr::FpLinear { .. }) {
            linear += 1;
            r0_seen = r0_seen.max(seq.regs()[0]);
        }
        seq.advance();
    }
    assert_eq!((linear, r0_seen), (4 * 8, 3));
}
