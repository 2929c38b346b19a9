//! The language reference's examples are real: every model in a ```snn block of
//! `docs/language.md` is in canonical form, and checks when it is complete (has a loss);
//! every fragment at least parses as the items of a model.

use snnc_e2e::repo_root;

fn snn_blocks() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("docs/language.md")).unwrap_or_default();
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```snn\n") {
        let body = &rest[start + 7..];
        let Some(end) = body.find("```") else { break };
        blocks.push(body[..end].to_string());
        rest = &body[end..];
    }
    blocks
}

fn is_whole_model(block: &str) -> bool {
    block.lines().any(|line| line.starts_with("model "))
}

#[test]
fn model_examples_are_canonical_and_complete_ones_check() {
    let models: Vec<String> = snn_blocks().into_iter().filter(|b| is_whole_model(b)).collect();
    assert!(models.len() >= 3, "the reference should show whole models, found {}", models.len());
    for model in &models {
        let complete = model.contains("loss = ");
        if let (true, Err(errors)) = (complete, snnc::compile_graph(model)) {
            panic!("{}", snnc::diagnostics::render("docs/language.md", model, &errors));
        }
        assert_eq!(snnc::format_source(model).ok().as_deref(), Some(model.as_str()), "not canonical:\n{model}");
    }
}

#[test]
fn fragments_parse_inside_a_model() {
    let fragments: Vec<String> = snn_blocks().into_iter().filter(|b| !is_whole_model(b)).collect();
    assert!(!fragments.is_empty());
    for fragment in &fragments {
        let wrapped = format!("model doc {{\n{fragment}\n}}\n");
        assert!(snnc::syntax::parse(&wrapped).is_ok(), "fragment does not parse:\n{fragment}");
    }
}

#[test]
fn run_record_doc_matches_the_module_that_writes_it() {
    let source = std::fs::read_to_string(repo_root().join("runtime-sim/src/record/run.rs")).unwrap_or_default();
    let doc = std::fs::read_to_string(repo_root().join("docs/run-record.md")).unwrap_or_default();
    let rows: Vec<&str> =
        source.lines().filter_map(|l| l.strip_prefix("//! ")).filter(|l| l.starts_with("| `")).collect();
    assert!(rows.len() > 10, "the field table of sim::record::run is missing");
    for row in rows {
        assert!(doc.contains(row), "docs/run-record.md lacks the row: {row}");
    }
}
