//! `snnc --threads N sim` on a conv model with residual joins: the report, to the last bit
//! of every counter and energy figure, is the same for every thread count. (Splitting a
//! conv over threads is compared with the unsplit kernel directly in `sim`'s unit tests;
//! this model's convs are below the size at which the simulator splits them.)

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
