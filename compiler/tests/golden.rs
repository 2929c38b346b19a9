//! Golden parity through compiled programs: `snnc golden` on every vendored golden file.
//!
//! Each case is built from its spec, compiled with the golden weights, run for one training
//! step on the simulator and compared tensor by tensor (see `src/cli/golden_cmds/mod.rs` for
//! the tolerances): the f32 files on the fp32 chip and, with FP16 accumulation, on the
//! fp16-acc16 chip; the f16 files on the default fp16 chip (FP32 accumulation).
//!
//! A case whose network the code generator does not support yet must say exactly that
//! (`CodegenError::Unsupported`, checked against the library on the case's model file), so
//! the case is checked in full as soon as code generation supports it.

use std::path::{Path, PathBuf};
use std::process::Command;

use snnc::codegen::{self, CodegenError, CodegenOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every vendored golden file, sorted.
fn golden_files() -> Vec<PathBuf> {
    let dir = root().join("golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    files
}

/// The case name and precision of `golden/NAME.PRECISION.json.gz`.
fn case_of(path: &Path) -> (String, String) {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = file.trim_end_matches(".json.gz");
    let (name, precision) = stem.rsplit_once('.').unwrap_or((stem, ""));
    (name.to_string(), precision.to_string())
}

/// What the library says about compiling the case's model (`models/NAME.snn`, the same
/// network as the golden spec).
fn codegen_result(name: &str) -> Result<(), CodegenError> {
    let path = root().join("models").join(format!("{name}.snn"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let graph = snnc::compile_graph(&source).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    codegen::compile(&graph, &isa::ChipDesc::default(), &CodegenOptions::default()).map(|_| ())
}

/// Runs `snnc golden FILE ARGS` and checks its verdict; returns its report.
fn run_golden(path: &Path, args: &[&str], supported: bool) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_snnc"))
        .arg("golden")
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run snnc: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let what = format!("snnc golden {} {}", path.display(), args.join(" "));
    if supported {
        assert!(out.status.success(), "{what} failed:\n{stdout}{stderr}");
        assert!(stdout.trim_end().ends_with("PASS"), "{what}:\n{stdout}");
        assert!(!stdout.contains("FAIL"), "{what}:\n{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{what}:\n{stdout}{stderr}");
        assert!(stderr.contains("code generation does not support"), "{what}: expected Unsupported:\n{stderr}");
    }
    stdout.into_owned()
}

#[test]
fn every_golden_file_passes_through_compiled_programs() {
    let files = golden_files();
    assert!(files.len() >= 26, "expected the 26 vendored golden files, found {}", files.len());
    for path in &files {
        let (name, precision) = case_of(path);
        let supported = match codegen_result(&name) {
            Ok(()) => true,
            Err(CodegenError::Unsupported { .. }) => false,
            Err(CodegenError::Fallback { staged, .. }) if matches!(*staged, CodegenError::Unsupported { .. }) => false,
            Err(e) => panic!("{name}: code generation failed with something other than Unsupported: {e}"),
        };
        let report = run_golden(path, &[], supported);
        eprintln!("{report}");
        if precision == "f32" {
            eprintln!("{}", run_golden(path, &["--precision", "fp16-acc16"], supported));
        }
    }
}

/// The tolerances are not vacuous: a golden file whose first membrane value is moved by
/// one f16 ulp fails on that tensor alone, and the command exits with status 1.
#[test]
fn a_perturbed_golden_file_fails() {
    let src = root().join("golden/fc16.f16.json.gz");
    let text = {
        use std::io::Read as _;
        let bytes = std::fs::read(&src).unwrap_or_else(|e| panic!("{e}"));
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_string(&mut s).unwrap_or_else(|e| panic!("{e}"));
        s
    };
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let first = &mut json["forward"][1]["V"]["data"][0];
    let v = half::f16::from_f64(first.as_f64().unwrap_or_else(|| panic!("V is not a number")));
    // The next f16 away from zero: still an exact f16, so the loader accepts it.
    *first = serde_json::json!(half::f16::from_bits(v.to_bits() + 1).to_f64());
    let dir = std::env::temp_dir().join(format!("snnc-golden-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("fc16.f16.json");
    std::fs::write(&file, json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_snnc"))
        .args(["golden"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run snnc: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL L1 lif V"), "{stdout}");
    assert!(stdout.trim_end().ends_with("FAIL (1 checks)"), "{stdout}");
}
