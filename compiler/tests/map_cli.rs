//! `snnc map` and `snnc chip` as a user runs them: output on stdout, errors on stderr with
//! exit code 1.

mod common;

use common::{repo, snnc, text};

fn scratch_file(name: &str, contents: &str) -> String {
    let path = std::env::temp_dir().join(format!("snnc-map-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

#[test]
fn map_prints_a_table_with_totals_and_yardsticks() {
    let out = snnc(&["map", &repo("models/conv16.snn")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for needle in ["unit", "FP", "total:", "TFLOPS/W", "lower bound", "GPU baseline"] {
        assert!(stdout.contains(needle), "{needle} missing in\n{stdout}");
    }
}

#[test]
fn map_json_and_dot_are_for_tools() {
    let json = snnc(&["map", &repo("models/fc16.snn"), "--json", "--objective", "energy"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    assert!(text(&json.stdout).contains("\"format\": \"snnc-map/1\""));
    let dot = snnc(&["map", &repo("models/fc16.snn"), "--dot"]);
    assert!(text(&dot.stdout).starts_with("digraph"));
}

#[test]
fn chip_prints_the_effective_description_and_partial_files_override_it() {
    let out = snnc(&["chip"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("clock_mhz = 500"));
    let file = scratch_file("fast.toml", "clock_mhz = 800\n");
    let out = snnc(&["chip", "--chip", &file]);
    assert!(text(&out.stdout).contains("clock_mhz = 800"), "{}", text(&out.stderr));
}

#[test]
fn an_invalid_chip_is_a_clear_error_with_exit_code_1() {
    let file = scratch_file("zero.toml", "cores = []\n");
    let out = snnc(&["map", &repo("models/fc16.snn"), "--chip", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cores"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_model_too_big_for_dram_says_what_would_fit() {
    let file = scratch_file("small_dram.toml", "[dram]\ncapacity_bytes = 1048576\n");
    let out = snnc(&["map", &repo("models/fc784_512.snn"), "--chip", &file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not fit") && stderr.contains("dram.capacity_bytes >="), "{stderr}");
}

#[test]
fn measured_rates_from_a_simulator_run_change_the_estimate_and_are_compared() {
    let dir = common::scratch("map-measured", "fc16");
    let program = dir.join("fc16.bin").to_string_lossy().into_owned();
    let stats = dir.join("stats.json");
    assert!(snnc(&["compile", &repo("models/fc16.snn"), "-o", &program]).status.success());
    // With no input written, nothing spikes: a measured firing rate of 0 for every layer.
    let sim = snnc(&["sim", &program, "--json"]);
    assert!(sim.status.success(), "{}", text(&sim.stderr));
    std::fs::write(&stats, &sim.stdout).unwrap_or_else(|e| panic!("{e}"));
    let assumed = snnc(&["map", &repo("models/fc16.snn"), "--json"]);
    let measured = snnc(&["map", &repo("models/fc16.snn"), "--json", "--measured", &stats.to_string_lossy()]);
    assert!(measured.status.success(), "{}", text(&measured.stderr));
    assert_ne!(assumed.stdout, measured.stdout, "measured rates must change the cost estimate");
    let compared = snnc(&["sim", &program, "--model", &repo("models/fc16.snn")]);
    assert!(compared.status.success(), "{}", text(&compared.stderr));
    let report = text(&compared.stdout);
    assert!(report.contains("simulated vs mapping estimate"), "{report}");
    for row in ["cycles", "DRAM bytes", "NoC bytes", "energy (uJ)"] {
        assert!(report.lines().any(|l| l.starts_with(row)), "{row} missing in\n{report}");
    }
    dram_kinds_add_up(&report);
    let wrong_model = snnc(&["map", &repo("models/digits.snn"), "--measured", &stats.to_string_lossy()]);
    assert_eq!(wrong_model.status.code(), Some(1));
    assert!(text(&wrong_model.stderr).contains("does not have"), "{}", text(&wrong_model.stderr));
}

/// The comparison's DRAM rows by kind (indented under `DRAM bytes`) sum, in both the
/// simulated and the estimated column, to the `DRAM bytes` row: every kind of either side
/// has its row.
fn dram_kinds_add_up(report: &str) {
    let columns = |line: &str| -> Option<(f64, f64)> {
        let mut numbers = line.split_whitespace().rev().skip(1).map(str::parse::<f64>);
        let estimated = numbers.next()?.ok()?;
        Some((numbers.next()?.ok()?, estimated))
    };
    let lines: Vec<&str> = report.lines().skip_while(|l| !l.starts_with("DRAM bytes")).collect();
    let total = lines.first().and_then(|l| columns(l)).unwrap_or_else(|| panic!("no DRAM row in\n{report}"));
    let kinds: Vec<(f64, f64)> =
        lines[1..].iter().take_while(|l| l.starts_with("  ")).filter_map(|l| columns(l)).collect();
    assert!(kinds.len() >= 6, "the DRAM kinds are missing in\n{report}");
    let sum = kinds.iter().fold((0.0, 0.0), |(s, e), (a, b)| (s + a, e + b));
    assert_eq!(sum, total, "the DRAM kinds do not add up in\n{report}");
    assert!(total.0 > 0.0 && total.1 > 0.0, "{report}");
}

#[test]
fn sim_with_the_model_gives_targets_so_errors_flow_back() {
    let dir = common::scratch("map-measured", "targets");
    let (program, input) = (dir.join("digits.bin"), dir.join("input.bin"));
    let program = program.to_string_lossy().into_owned();
    assert!(snnc(&["compile", &repo("models/digits.snn"), "-o", &program]).status.success());
    // Every input spike set: the layers fire, and with one-hot targets errors flow back.
    let bytes = 32 * 8 * 8; // B x T x 64 features / 8 bits
    std::fs::write(&input, vec![0xffu8; bytes]).unwrap_or_else(|e| panic!("{e}"));
    let input = input.to_string_lossy().into_owned();
    let density = |args: &[&str]| -> Vec<f64> {
        let out = snnc(&[&["sim", &program, "--input", &input][..], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("layer ").and_then(|l| l.split("error density ").nth(1)))
            .filter_map(|v| v.split(',').next())
            .map(|v| v.trim().parse().unwrap_or_else(|e| panic!("{v}: {e}")))
            .collect()
    };
    let with_targets = density(&["--model", &repo("models/digits.snn")]);
    assert_eq!(with_targets.len(), 2);
    assert!(with_targets.iter().all(|&d| d > 0.0), "{with_targets:?}");
}
