//! The run record survives a JSON round trip (also with a diverged, NaN loss), its summary is
//! computed from the history, and the plot is a well-formed SVG with one line per series.

use sim::record::plot::SERIES_COLOURS;
use sim::record::{ChipId, DatasetInfo, EpochRecord, RUN_FORMAT, RunRecord, plot_svg, save_plot};

fn epoch(epoch: u32, loss: f64, train: f64, test: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss: loss,
        train_accuracy: train,
        test_accuracy: test,
        cycles: 1_000_000 * u64::from(epoch),
        energy_pj: 2.5e9,
        dram_bytes: 4096,
        wall_seconds: 1.5,
    }
}

fn record() -> RunRecord {
    let chip = ChipId { name: "default".into(), hash: "ab12".into() };
    let data = DatasetInfo { name: "digits.csv".into(), train_samples: 1438, test_samples: 359 };
    let mut r = RunRecord::new("digits", chip, data, 42, 3);
    r.batch = 32;
    r.timesteps = 8;
    r.push_epoch(epoch(1, 0.09, 0.55, 0.61));
    r.push_epoch(epoch(2, 0.05, 0.80, 0.83));
    r.push_epoch(epoch(3, 0.04, 0.86, 0.83));
    r
}

#[test]
fn run_record_round_trips_through_json() {
    let mut r = record();
    r.finish(false);
    let json = r.to_json();
    assert!(json.starts_with("{\n  \"format\": \"snnc-run/1\",\n  \"model\": \"digits\","), "{json}");
    assert_eq!(RunRecord::from_json(&json, "run.json").expect("parses"), r);
    let path = std::env::temp_dir().join(format!("snnc-run-{}.json", std::process::id()));
    r.save(&path).expect("save");
    let back = RunRecord::load(&path).expect("load");
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(back, r);
}

#[test]
fn summary_sums_the_history_and_picks_the_first_best_epoch() {
    let mut r = record();
    assert!(r.summary.is_none(), "no summary while running");
    r.finish(true);
    let s = r.summary.as_ref().expect("summary");
    assert_eq!((s.epochs_completed, s.interrupted, s.best_epoch), (3, true, 2));
    assert_eq!((s.best_test_accuracy, s.final_test_accuracy, s.final_train_loss), (0.83, 0.83, 0.04));
    assert_eq!((s.total_cycles, s.total_dram_bytes), (6_000_000, 12288));
    assert_eq!((s.total_energy_pj, s.total_wall_seconds), (7.5e9, 4.5));
    assert_eq!(r.format, RUN_FORMAT);
}

#[test]
fn a_diverged_loss_is_written_as_null_and_read_back_as_nan() {
    let mut r = record();
    r.push_epoch(epoch(4, f64::NAN, 0.1, 0.1));
    r.finish(false);
    let json = r.to_json();
    assert!(json.contains("\"train_loss\": null"), "{json}");
    let back = RunRecord::from_json(&json, "run.json").expect("parses");
    assert!(back.history[3].train_loss.is_nan() && back.summary.expect("summary").final_train_loss.is_nan());
}

#[test]
fn other_formats_and_bad_json_are_rejected() {
    let json = record().to_json().replace("snnc-run/1", "snnc-run/9");
    let err = RunRecord::from_json(&json, "run.json").expect_err("future format");
    assert_eq!(
        err.to_string(),
        "run.json: run record format `snnc-run/9` is not supported; this snnc reads `snnc-run/1`"
    );
    let err = RunRecord::from_json("{\"format\": 3}", "run.json").expect_err("not a record");
    assert!(err.to_string().starts_with("run.json: not a valid run record"), "{err}");
}

/// The number of `<polyline` elements stroked in `colour`.
fn lines_in(svg: &str, (r, g, b): (u8, u8, u8)) -> usize {
    let stroke = format!("stroke=\"#{r:02X}{g:02X}{b:02X}\"");
    svg.split("<polyline")
        .skip(1)
        .filter(|el| el.split('>').next().is_some_and(|attrs| attrs.contains(&stroke)))
        .count()
}

#[test]
fn plot_is_a_well_formed_svg_with_one_line_per_series() {
    let svg = plot_svg(&record().history, "digits").expect("draws");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for colour in SERIES_COLOURS {
        assert_eq!(lines_in(&svg, colour), 1, "series {colour:?}");
    }
    // Each series has one vertex per epoch.
    let (r, g, b) = SERIES_COLOURS[2];
    let test_line =
        svg.split("<polyline").find(|el| el.contains(&format!("#{r:02X}{g:02X}{b:02X}"))).expect("test line");
    let points = test_line.split("points=\"").nth(1).and_then(|p| p.split('"').next()).expect("points");
    assert_eq!(points.split_whitespace().count(), 3, "{points}");
    assert!(svg.contains("<text") && svg.contains("epoch") && svg.contains("digits: training loss"), "labels are text");
    assert_eq!(svg.matches("<svg").count(), 1);
}

#[test]
fn plot_handles_an_empty_or_diverged_history_and_writes_a_file() {
    let empty = plot_svg(&[], "nothing yet").expect("draws");
    assert!(empty.starts_with("<svg") && empty.contains("</svg>"));
    let mut history = record().history;
    history[1].train_loss = f64::INFINITY;
    let svg = plot_svg(&history, "diverged").expect("draws");
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite points are left out");
    let path = std::env::temp_dir().join(format!("snnc-plot-{}.svg", std::process::id()));
    save_plot(&path, &history, "digits").expect("writes");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::remove_file(&path).expect("remove");
    assert!(text.starts_with("<svg"));
}
