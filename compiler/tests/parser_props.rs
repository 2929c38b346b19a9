//! The front end never panics, whatever the bytes: random token soups and mutations of
//! real model files go through parse, lower, graph building and formatting, and every
//! outcome is either a graph or diagnostics with spans inside the source.

use proptest::prelude::*;
use std::path::Path;

const TOKENS: &[&str] = &[
    "model",
    "m",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "=",
    ",",
    " ",
    "\n",
    "// c\n",
    "x",
    "input",
    "linear",
    "conv2d",
    "lif",
    "readout",
    "add",
    "flatten",
    "avgpool",
    "maxpool",
    "shape",
    "out",
    "kernel",
    "stride",
    "padding",
    "loss",
    "mse_rate",
    "ce_mem",
    "optimizer",
    "sgd",
    "adam",
    "lr",
    "timesteps",
    "batch",
    "neuron",
    "beta",
    "tau",
    "surrogate",
    "atan",
    "rect",
    "0",
    "1",
    "-1",
    "3",
    "1.5",
    "1e-3",
    "99999999999999999999",
    "1e999",
    "true",
    "false",
    "é",
];

fn check_never_panics(source: &str) {
    match snnc::compile_graph(source) {
        Ok(graph) => assert!(!graph.layers().is_empty()),
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in &errors {
                assert!(error.primary.span.start <= error.primary.span.end);
                assert!(error.primary.span.end <= source.len(), "span past the end: {error:?}");
            }
            let rendered = snnc::diagnostics::render("p.snn", source, &errors);
            assert!(rendered.contains("error:"));
        }
    }
    if let Ok(formatted) = snnc::format_source(source) {
        assert_eq!(snnc::format_source(&formatted).ok(), Some(formatted.clone()), "fmt not idempotent on {source:?}");
    }
}

fn seeds() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "snn"));
    files.sort();
    files.iter().filter_map(|p| std::fs::read_to_string(p).ok()).filter(|s| s.len() < 4000).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
        check_never_panics(&tokens.join(" "));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_never_panics(&text);
    }

    #[test]
    fn mutated_models_never_panic(
        seed in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..6, proptest::sample::select(TOKENS)), 1..6),
    ) {
        let seeds = seeds();
        prop_assume!(!seeds.is_empty());
        let mut source = seeds[seed.index(seeds.len())].clone();
        for (at, delete, insert) in edits {
            let mut start = at.index(source.len() + 1);
            while !source.is_char_boundary(start) { start -= 1; }
            let mut end = (start + delete).min(source.len());
            while !source.is_char_boundary(end) { end += 1; }
            source.replace_range(start..end, insert);
        }
        check_never_panics(&source);
    }
}

#[test]
fn pathological_inputs_are_refused_cleanly() {
    for source in [
        "",
        "model",
        "model m {",
        "}}}}",
        &"[".repeat(10_000),
        &format!("model m {{ x = {} }}", "(".repeat(5000)),
        "\u{0}",
    ] {
        check_never_panics(source);
    }
}
