//! The `snnc` binary as a user runs it: exit codes, where output goes, and that a failed
//! command leaves no file behind.

mod common;

use common::{repo, snnc, text};

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("cli", name)
}

#[test]
fn check_prints_the_summary_of_a_valid_model() {
    let out = snnc(&["check", &repo("models/fc16.snn")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("fc16: ok\n"), "{stdout}");
    // 16*32 + 32*10 synapses, 32 + 10 neurons: computed by hand from the model.
    assert!(stdout.contains("42 neurons, 832 synapses, 832 parameters"), "{stdout}");
    assert!(out.stderr.is_empty());
}

#[test]
fn check_reports_errors_on_stderr_with_exit_code_1() {
    let out = snnc(&["check", &repo("models/invalid/unknown_layer_op.snn")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: unknown layer op `dense`"), "{stderr}");
    assert!(stderr.contains("unknown_layer_op.snn:10:8"), "{stderr}");
    assert!(stderr.contains("^^^^^"), "{stderr}");
}

#[test]
fn a_missing_file_is_exit_code_2_with_its_name() {
    let out = snnc(&["check", "no/such/model.snn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read no/such/model.snn"));
}

#[test]
fn a_binary_file_is_refused_cleanly() {
    let dir = scratch("binary");
    let path = dir.join("m.snn");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x12]).unwrap_or_else(|e| panic!("{e}"));
    let out = snnc(&["check", &path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not UTF-8"), "{}", text(&out.stderr));
}

#[test]
fn graph_prints_each_format() {
    let model = repo("models/conv16.snn");
    let dot = text(&snnc(&["graph", &model, "--format", "dot"]).stdout);
    assert!(dot.starts_with("digraph \"conv16\""), "{dot}");
    let json = text(&snnc(&["graph", &model, "--format", "json"]).stdout);
    assert!(json.contains("\"format\": \"snnc-graph/1\""), "{json}");
    let table = text(&snnc(&["graph", &model]).stdout);
    assert!(table.contains("L1  c1"), "{table}");
    let bad = snnc(&["graph", &model, "--format", "svg"]);
    assert_eq!(bad.status.code(), Some(2), "clap rejects unknown formats");
}

#[test]
fn fmt_write_rewrites_in_place_and_check_detects_drift() {
    let dir = scratch("fmt");
    let path = dir.join("m.snn");
    let messy = "model m {\ntimesteps=4 batch=2\n  x=input(shape=[4])\n  f=linear(x,out=2) s=lif(f)\n  loss=mse_rate(s) optimizer=sgd(lr=0.1)}\n";
    std::fs::write(&path, messy).unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().into_owned();
    assert_eq!(snnc(&["fmt", "--check", &p]).status.code(), Some(1));
    assert!(snnc(&["fmt", "--write", &p]).status.success());
    let formatted = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(formatted.contains("  f = linear(x, out = 2)\n"), "{formatted}");
    assert!(snnc(&["fmt", "--check", &p]).status.success());
    assert!(snnc(&["check", &p]).status.success());
}

#[test]
fn fmt_of_a_broken_file_leaves_it_untouched_and_no_temp_file() {
    let dir = scratch("fmt-broken");
    let path = dir.join("m.snn");
    let broken = "model m {\n  x = input(shape = [4]\n";
    std::fs::write(&path, broken).unwrap_or_else(|e| panic!("{e}"));
    let out = snnc(&["fmt", "--write", &path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), broken);
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn help_explains_every_command() {
    let help = text(&snnc(&["--help"]).stdout);
    for command in ["check", "graph", "fmt"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn asm_disasm_round_trip_gives_identical_bytes() {
    let dir = scratch("asm");
    let (bin, bin2, listing) = (dir.join("a.bin"), dir.join("b.bin"), dir.join("b.s"));
    let bin_s = bin.to_string_lossy().into_owned();
    let out = snnc(&["asm", &repo("isa/testdata/linear_layer.s"), "-o", &bin_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let disasm = snnc(&["disasm", &bin_s]);
    assert!(disasm.status.success());
    std::fs::write(&listing, &disasm.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(snnc(&["asm", &listing.to_string_lossy(), "-o", &bin2.to_string_lossy()]).status.success());
    assert_eq!(std::fs::read(&bin).ok(), std::fs::read(&bin2).ok());
    let verified = snnc(&["verify", &bin_s]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains(": ok ("));
}

#[test]
fn damaged_programs_name_the_byte_offset() {
    let dir = scratch("damaged");
    let bin = dir.join("a.bin");
    let bin_s = bin.to_string_lossy().into_owned();
    assert!(snnc(&["asm", &repo("isa/testdata/linear_layer.s"), "-o", &bin_s]).status.success());
    let bytes = std::fs::read(&bin).unwrap_or_default();
    std::fs::write(&bin, &bytes[..bytes.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let truncated = snnc(&["disasm", &bin_s]);
    assert_eq!(truncated.status.code(), Some(1));
    assert!(text(&truncated.stderr).contains("at byte "), "{}", text(&truncated.stderr));
    std::fs::write(&bin, b"not a program at all").unwrap_or_else(|e| panic!("{e}"));
    let garbage = snnc(&["verify", &bin_s]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(text(&garbage.stderr).contains("is not a valid program"), "{}", text(&garbage.stderr));
}

#[test]
fn asm_errors_point_at_line_and_column_and_write_nothing() {
    let dir = scratch("asm-bad");
    let (listing, bin) = (dir.join("bad.s"), dir.join("bad.bin"));
    let good = std::fs::read_to_string(repo("isa/testdata/linear_layer.s")).unwrap_or_default();
    let bad = good.replacen("fp.linear", "fp.linearr", 1);
    std::fs::write(&listing, bad).unwrap_or_else(|e| panic!("{e}"));
    let out = snnc(&["asm", &listing.to_string_lossy(), "-o", &bin.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("fp.linearr") && stderr.contains("bad.s:"), "{stderr}");
    assert!(!bin.exists(), "a failed asm must not leave an output file");
}

#[test]
fn verify_reports_violations_and_bad_chips() {
    let dir = scratch("verify");
    let (listing, bin, chip) = (dir.join("v.s"), dir.join("v.bin"), dir.join("zero.toml"));
    let good = std::fs::read_to_string(repo("isa/testdata/linear_layer.s")).unwrap_or_default();
    // Reading past the end of the FP weight buffer is a bounds violation.
    std::fs::write(&listing, good.replacen("fp.w[0:1024]", "fp.w[1000:1024]", 1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(snnc(&["asm", &listing.to_string_lossy(), "-o", &bin.to_string_lossy()]).status.success());
    let out = snnc(&["verify", &bin.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("core 0 fp #"), "{}", text(&out.stderr));
    std::fs::write(&chip, "cores = []\n").unwrap_or_else(|e| panic!("{e}"));
    let out = snnc(&["verify", &bin.to_string_lossy(), "--chip", &chip.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("impossible chip"), "{}", text(&out.stderr));
}
