//! The checked-in `isa/ISA.md` must be what the instruction table generates.

use crate::doc::isa_reference;

#[test]
fn isa_md_is_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ISA.md");
    let want = isa_reference();
    if std::env::var_os("UPDATE_ISA_DOC").is_some() {
        std::fs::write(&path, &want).expect("write isa/ISA.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "isa/ISA.md is out of date with the instruction table (isa/src/ops.rs).\n\
         Regenerate it with: UPDATE_ISA_DOC=1 cargo test -p snnc-isa isa_md_is_fresh"
    );
}

#[test]
fn reference_documents_every_instruction_and_operand() {
    let doc = isa_reference();
    for op in crate::OPS {
        assert!(doc.contains(&format!("### `{}`", op.mnemonic)), "{}", op.mnemonic);
        assert!(!op.doc.is_empty(), "{} has no doc line", op.mnemonic);
        for f in op.fields {
            assert!(!f.doc.is_empty(), "{}.{} has no doc line", op.mnemonic, f.name);
        }
    }
}
