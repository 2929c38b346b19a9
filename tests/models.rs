//! Every model in `models/` through the front end: a snapshot of each valid model's graph
//! dump, a snapshot of each invalid model's rendered errors exactly as the user sees them,
//! and the `snnc fmt` round trip on all of them.

use snnc::diagnostics::render;
use snnc::graph::dump;
use snnc_e2e::{display_path, model_files};
use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn snapshot_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

#[test]
fn there_are_enough_models() {
    assert!(model_files("models").len() >= 15, "the valid models are missing");
    assert!(model_files("models/invalid").len() >= 20, "models/invalid needs at least 20 mistakes");
}

#[test]
fn valid_models_build_and_their_graphs_are_pinned() {
    for path in model_files("models") {
        let source = read(&path);
        let graph = snnc::compile_graph(&source).unwrap_or_else(|errors| {
            panic!("{}", render(&display_path(&path), &source, &errors));
        });
        insta::assert_snapshot!(format!("graph_{}", snapshot_name(&path)), dump::to_text(&graph));
    }
}

#[test]
fn invalid_models_fail_with_pinned_errors() {
    for path in model_files("models/invalid") {
        let source = read(&path);
        let errors = match snnc::compile_graph(&source) {
            Ok(_) => panic!("{} was accepted", display_path(&path)),
            Err(errors) => errors,
        };
        assert!(!errors.is_empty());
        let rendered = render(&display_path(&path), &source, &errors);
        insta::assert_snapshot!(format!("error_{}", snapshot_name(&path)), rendered);
    }
}

#[test]
fn every_invalid_model_says_what_its_mistake_is() {
    for path in model_files("models/invalid") {
        let first = read(&path).lines().next().unwrap_or_default().to_string();
        assert!(first.starts_with("// mistake:"), "{}: first line must describe the mistake", display_path(&path));
    }
}

#[test]
fn fmt_is_idempotent_and_keeps_the_graph() {
    let mut paths = model_files("models");
    paths.extend(model_files("models/invalid"));
    for path in paths {
        let source = read(&path);
        let Ok(once) = snnc::format_source(&source) else { continue };
        let twice = snnc::format_source(&once)
            .unwrap_or_else(|_| panic!("{}: formatted text does not parse", display_path(&path)));
        assert_eq!(once, twice, "{}: fmt is not idempotent", display_path(&path));
        let before = snnc::compile_graph(&source).map(|g| dump::to_json(&g));
        let after = snnc::compile_graph(&once).map(|g| dump::to_json(&g));
        match (before, after) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}: fmt changed the graph", display_path(&path)),
            (Err(a), Err(b)) => assert_eq!(
                a.iter().map(|d| &d.message).collect::<Vec<_>>(),
                b.iter().map(|d| &d.message).collect::<Vec<_>>(),
                "{}: fmt changed the errors",
                display_path(&path)
            ),
            _ => panic!("{}: fmt changed whether the model is valid", display_path(&path)),
        }
    }
}

#[test]
fn shipped_models_are_in_canonical_form() {
    for path in model_files("models") {
        let source = read(&path);
        let formatted = snnc::format_source(&source).unwrap_or_default();
        assert_eq!(
            formatted,
            source,
            "{} is not canonical: run `snnc fmt --write {}`",
            display_path(&path),
            display_path(&path)
        );
    }
}

#[test]
fn dot_and_json_dumps_are_well_formed() {
    for path in model_files("models") {
        let Ok(graph) = snnc::compile_graph(&read(&path)) else { continue };
        let dot = dump::to_dot(&graph);
        assert!(dot.starts_with("digraph") && dot.trim_end().ends_with('}'));
        assert_eq!(dot.matches(" -> ").count(), graph.layers().iter().map(|l| l.inputs.len()).sum::<usize>() + 1);
        let json = dump::to_json(&graph);
        assert!(json.contains("\"format\": \"snnc-graph/1\""));
        assert_eq!(json.matches("\"op\": ").count(), graph.layers().len());
    }
}
