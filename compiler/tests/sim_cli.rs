//! `snnc sim`: on a conv model with residual joins the report, to the last bit of every
//! counter and energy figure, is the same for every thread count (splitting a conv over
//! threads is compared with the unsplit kernel directly in `sim`'s unit tests; this
//! model's convs are below the size at which the simulator splits them); the cycle limit;
//! the note on a run without input; and the report's lines are those `docs/simulator.md`
//! explains.

mod common;

use common::{repo, snnc, text};

/// The input tensor of `resnet_digits` (B x T x 3x32x32 FP16 values, little-endian): each
/// 1.0 with probability 1/8 by a fixed generator, else 0.0, so the layers fire and errors
/// flow back.
fn input_bytes() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let one = 0x3c00u16.to_le_bytes();
    (0..8 * 4 * 3 * 32 * 32)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 8 == 0 { one } else { [0, 0] }
        })
        .collect()
}

#[test]
fn the_thread_count_changes_no_figure_of_a_run() {
    let dir = common::scratch("sim-threads", "resnet");
    let (program, input) = (dir.join("resnet_digits.bin"), dir.join("input.bin"));
    let program = program.to_string_lossy().into_owned();
    let model = repo("models/resnet_digits.snn");
    let compiled = snnc(&["compile", &model, "-o", &program]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    std::fs::write(&input, input_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let input = input.to_string_lossy().into_owned();
    let run = |threads: &str| {
        let out = snnc(&["--threads", threads, "sim", &program, "--input", &input, "--model", &model, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let (one, two, three) = (run("1"), run("2"), run("3"));
    assert!(one.contains("\"cycles\""), "{one}");
    assert_eq!(one, two, "one thread against two");
    assert_eq!(one, three, "one thread against three");
    layers_take_the_busy_cycles(&one);
}

/// The busy cycles of the layers (`layers[].busy`, per stream) add up to the streams'
/// busy cycles but for the little code between layers: the step loop, barriers and halts,
/// under one cycle in a hundred.
fn layers_take_the_busy_cycles(json: &str) {
    let stats: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let sum = |items: &serde_json::Value, of: &dyn Fn(&serde_json::Value) -> u64| {
        items.as_array().map_or(0, |a| a.iter().map(of).sum::<u64>())
    };
    for s in 0..3 {
        let total = sum(&stats["streams"], &|core| number(&core[s]["busy"]));
        let layers = sum(&stats["layers"], &|l| number(&l["busy"][s]));
        assert!(layers > 0 && layers <= total && 100 * (total - layers) < total, "stream {s}: {layers} of {total}");
    }
}

/// `--steps 0` would run nothing and report a run all the same: it is refused before any
/// file is read, naming the option.
#[test]
fn zero_steps_is_refused() {
    let out = snnc(&["sim", "no-such-program.bin", "--steps", "0"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--steps") && err.contains("0 is not in 1.."), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn zero_threads_is_refused() {
    let out = snnc(&["--threads", "0", "check", &repo("models/digits.snn")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--threads"), "{}", text(&out.stderr));
}

/// A run past `--max-cycles` stops with an error that names the limit and the option, and
/// a limit above the run's cycles changes nothing.
#[test]
fn a_run_past_the_cycle_limit_is_an_error_naming_the_option() {
    let dir = common::scratch("sim-limit", "digits");
    let program = dir.join("digits.bin").to_string_lossy().into_owned();
    let compiled = snnc(&["compile", &repo("models/digits.snn"), "-o", &program]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    let out = snnc(&["sim", &program, "--max-cycles", "1000"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("exceeded the limit of 1000 cycles") && err.contains("--max-cycles"), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let json = |args: &[&str]| {
        let out = snnc(&[&["sim", &program, "--json"][..], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(json(&["--max-cycles", "100000000"]), json(&[]));
}

/// Without `--input` the run is of all-zero input, and a note on standard error says so; with
/// it there is no note. The report on standard output is unchanged by the note.
#[test]
fn a_run_without_input_says_the_input_is_zero() {
    let dir = common::scratch("sim-no-input", "digits");
    let (program, input) = (dir.join("digits.bin"), dir.join("zeros.bin"));
    let program = program.to_string_lossy().into_owned();
    let compiled = snnc(&["compile", &repo("models/digits.snn"), "-o", &program]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    let bare = snnc(&["sim", &program]);
    assert!(bare.status.success(), "{}", text(&bare.stderr));
    assert!(
        text(&bare.stderr).contains("note: no --input: the program's input is all zeros"),
        "{}",
        text(&bare.stderr)
    );
    // digits' input: 32 samples x 8 timesteps x 64 spikes, 8 bytes per row.
    std::fs::write(&input, vec![0u8; 32 * 8 * 8]).expect("write the input");
    let given = snnc(&["sim", &program, "--input", &input.to_string_lossy()]);
    assert!(given.status.success(), "{}", text(&given.stderr));
    assert!(!text(&given.stderr).contains("note:"), "{}", text(&given.stderr));
    assert_eq!(text(&given.stdout), text(&bare.stdout));
}

/// The labels of the table "The report, line by line" of `doc` (`docs/simulator.md`), in
/// order: the code span that starts each row.
fn documented_labels(doc: &str) -> Vec<String> {
    let section = doc.split("## The report, line by line").nth(1).unwrap_or_default();
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Every line the table of `docs/simulator.md` explains is in the report of a run with
/// `--model` and `--profile`, and every line of that report is explained: it starts with a
/// documented label, or is a profile line (`--profile`, documented below the table), a row
/// of the per-core table, or a row of the comparison, named in its documented row.
#[test]
fn the_report_has_the_lines_the_simulator_doc_explains() {
    let doc = std::fs::read_to_string(repo("docs/simulator.md")).unwrap_or_else(|e| panic!("{e}"));
    let labels = documented_labels(&doc);
    assert!(labels.len() >= 10, "the doc's table of report lines is missing: {labels:?}");
    let dir = common::scratch("sim-doc", "digits");
    let program = dir.join("digits.bin").to_string_lossy().into_owned();
    let model = repo("models/digits.snn");
    let compiled = snnc(&["compile", &model, "-o", &program]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    let out = snnc(&["sim", &program, "--model", &model, "--profile"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for label in &labels {
        assert!(report.lines().any(|l| l.starts_with(label.as_str())), "no line starts with `{label}`:\n{report}");
    }
    let comparison_row = doc.lines().find(|l| l.starts_with("| `simulated vs mapping estimate`")).unwrap_or_default();
    let mut in_comparison = false;
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        in_comparison |= line.starts_with("simulated vs mapping estimate");
        let first = line.trim_start().chars().next().unwrap_or(' ');
        let explained = labels.iter().any(|l| line.starts_with(l.as_str()))
            || (line.starts_with("  ") && first.is_ascii_lowercase())
            || first.is_ascii_digit()
            || (in_comparison && (line.trim_start().starts_with("simulated") || named_in(line, comparison_row)));
        assert!(explained, "docs/simulator.md does not explain the line:\n{line}");
    }
}

/// Whether the row name of a comparison line (the text before its numbers) appears in
/// `row`, ignoring case and any unit in parentheses.
fn named_in(line: &str, row: &str) -> bool {
    let name: String =
        line.split("  ").next().unwrap_or_default().split(" (").next().unwrap_or_default().to_lowercase();
    !name.is_empty() && row.to_lowercase().contains(&name)
}
