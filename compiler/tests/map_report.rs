//! Snapshots of `snnc map`'s table for every model in `models/` on the default chip, and
//! the properties every report must have: a valid mapping, determinism, traffic no lower
//! than the compulsory bound.

use isa::ChipDesc;
use snnc::map::{MapOptions, map_graph, verify};
use snnc::report::{Report, dot, text};
use std::path::{Path, PathBuf};

fn models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snn"))
        .collect();
    files.sort();
    files
}

fn graph(path: &Path) -> snnc::graph::LayerGraph {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snnc::compile_graph(&source).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

/// The report's text, or the error a user would see.
fn report_text(path: &Path) -> String {
    let g = graph(path);
    let chip = ChipDesc::default();
    match map_graph(&g, &chip, &MapOptions::default()) {
        Ok(m) => {
            let violations = verify(&m, &g, &chip);
            assert!(violations.is_empty(), "{}: {violations:?}", path.display());
            text::render(&Report::new(&m, &g, &chip), &chip)
        }
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn report_of_every_model() {
    for path in models() {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        insta::assert_snapshot!(format!("map_{name}"), report_text(&path));
    }
}

#[test]
fn reports_are_byte_identical_across_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/conv16.snn");
    let g = graph(&path);
    let chip = ChipDesc::default();
    let render = || {
        let m = map_graph(&g, &chip, &MapOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let r = Report::new(&m, &g, &chip);
        (text::render(&r, &chip), r.to_json(), dot::render(&r))
    };
    assert_eq!(render(), render());
}

#[test]
fn mapped_traffic_is_never_below_the_compulsory_bound() {
    for path in models() {
        let g = graph(&path);
        let chip = ChipDesc::default();
        if let Ok(m) = map_graph(&g, &chip, &MapOptions::default()) {
            let r = Report::new(&m, &g, &chip);
            assert!(r.yardsticks.over_compulsory >= 1.0, "{}: {}", path.display(), r.yardsticks.over_compulsory);
        }
    }
}

#[test]
fn json_names_its_format_and_dot_has_a_cluster_per_core() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fc16.snn");
    let g = graph(&path);
    let chip = ChipDesc::default();
    let m = map_graph(&g, &chip, &MapOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let r = Report::new(&m, &g, &chip);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["format"], "snnc-map/1");
    let dot = dot::render(&r);
    let cores: std::collections::BTreeSet<usize> = m.units.values().flat_map(|u| u.cores()).collect();
    for c in cores {
        assert!(dot.contains(&format!("subgraph cluster_core{c} ")), "{dot}");
    }
}
