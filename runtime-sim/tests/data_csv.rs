//! The CSV loader: a good file in every accepted spelling, one test per kind of bad input
//! (each error must name `file:line` and the column), and the bundled digits data set.

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use sim::data::digits::{DIGITS_CSV, DIGITS_SHA256, digits_options};
use sim::data::{CsvOptions, Dataset, Scale, digits};

fn opts(scale: Scale, classes: Option<usize>) -> CsvOptions {
    CsvOptions { scale, classes }
}

/// Loads `text` as `t.csv` and expects the error message `expected`.
fn check_err(text: &str, options: CsvOptions, expected: &str) {
    match Dataset::from_csv_str("t.csv", text, &options) {
        Ok(d) => panic!("expected an error, loaded {} samples", d.len()),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

#[test]
fn good_file_loads_scaled_by_column_max() {
    // A byte-order mark, CRLF line ends, spaces around fields and a blank line are accepted.
    let text = "\u{feff}label, a ,b\r\n2, 4, 0\r\n\r\n0,2,0.5\r\n1,1,1\r\n";
    let d = Dataset::from_csv_str("t.csv", text, &CsvOptions::default()).expect("loads");
    assert_eq!((d.len(), d.features(), d.classes()), (3, 2, 3));
    assert_eq!(d.feature_names(), ["a", "b"]);
    assert_eq!(d.labels(), [2, 0, 1]);
    assert_eq!(d.values(), [1.0, 0.0, 0.5, 0.5, 0.25, 1.0]);
    assert_eq!(d.class_counts(), [1, 1, 1]);
}

#[test]
fn divide_and_unit_scaling_and_all_zero_columns() {
    let text = "label,a,b\n0,8,0\n1,16,0\n";
    let d = Dataset::from_csv_str("t.csv", text, &opts(Scale::Divide(16.0), Some(4))).expect("loads");
    assert_eq!(d.values(), [0.5, 0.0, 1.0, 0.0]);
    assert_eq!(d.classes(), 4, "the option's class count wins over the labels seen");
    let d = Dataset::from_csv_str("t.csv", text, &CsvOptions::default()).expect("loads");
    assert_eq!(d.values(), [0.5, 0.0, 1.0, 0.0], "an all-zero column stays zero");
    let d = Dataset::from_csv_str("t.csv", "label,a\n0,0.25\n", &opts(Scale::Unit, None)).expect("loads");
    assert_eq!(d.values(), [0.25]);
}

#[test]
fn wrong_column_count_names_the_line() {
    check_err(
        "label,a,b\n1,0.5,0.5\n1,0.5\n",
        CsvOptions::default(),
        "t.csv:3: expected 3 columns as in the header, found 2",
    );
    check_err("label,a\n1,0.5,7\n", CsvOptions::default(), "t.csv:2: expected 2 columns as in the header, found 3");
}

#[test]
fn non_numeric_value_names_line_and_column() {
    check_err("label,a,b\n\n1,0.5,x7\n", CsvOptions::default(), "t.csv:3: column 3 (`b`): `x7` is not a finite number");
    check_err("label,a,b\n1,NaN,0\n", CsvOptions::default(), "t.csv:2: column 2 (`a`): `NaN` is not a finite number");
    check_err("label,a,b\n1,,0\n", CsvOptions::default(), "t.csv:2: column 2 (`a`): `` is not a finite number");
}

#[test]
fn bad_labels_name_line_and_column() {
    let hint = "is not a class label; labels are integers 0, 1, 2, ...";
    check_err("label,a\n-1,0.5\n", CsvOptions::default(), &format!("t.csv:2: column 1 (`label`): `-1` {hint}"));
    check_err("label,a\n1.5,0.5\n", CsvOptions::default(), &format!("t.csv:2: column 1 (`label`): `1.5` {hint}"));
    check_err(
        "label,a\n0,1\n5,1\n",
        opts(Scale::Unit, Some(2)),
        "t.csv:3: column 1 (`label`): label 5 is out of range 0..2 (2 classes)",
    );
}

#[test]
fn values_outside_the_scaling_range_name_line_and_column() {
    check_err(
        "label,a\n1,17\n",
        opts(Scale::Divide(16.0), None),
        "t.csv:2: column 2 (`a`): value 17 is outside [0, 16], the range `divide by 16` scales to [0, 1]",
    );
    check_err(
        "label,a\n1,-2\n",
        CsvOptions::default(),
        "t.csv:2: column 2 (`a`): value -2 is outside [0, inf): values must not be negative",
    );
}

#[test]
fn empty_file_missing_header_and_no_rows() {
    let empty = "t.csv: the file is empty; expected a header row `label,<feature names>` and one row per sample";
    check_err("", CsvOptions::default(), empty);
    check_err("\n  \n", CsvOptions::default(), empty);
    check_err(
        "\n0,1,2\n1,2,3\n",
        CsvOptions::default(),
        "t.csv:2: missing header: the first row must be `label,<feature names>`, found `0,1,2`",
    );
    check_err("label\n0\n", CsvOptions::default(), "t.csv:1: the header names no feature column after `label`");
    check_err("label,a,b\n", CsvOptions::default(), "t.csv: the file has a header but no data rows");
}

#[test]
fn bad_options_are_rejected() {
    check_err(
        "label,a\n0,1\n",
        opts(Scale::Divide(0.0), None),
        "invalid scale: divide by 0: the maximum must be a positive number",
    );
    check_err("label,a\n0,1\n", opts(Scale::Unit, Some(0)), "invalid classes: 0: a data set needs at least one class");
}

#[test]
fn files_load_by_path_and_unreadable_ones_are_named() {
    let path = std::env::temp_dir().join(format!("snnc-data-csv-{}.csv", std::process::id()));
    std::fs::write(&path, "label,a\n1,3\n0,6\n").expect("write");
    let d = Dataset::from_csv_path(&path, &CsvOptions::default()).expect("loads");
    std::fs::remove_file(&path).expect("remove");
    assert_eq!((d.name(), d.values()), (path.display().to_string().as_str(), [0.5f32, 1.0].as_slice()));
    let err = Dataset::from_csv_path(&path, &CsvOptions::default()).expect_err("gone");
    assert!(err.to_string().starts_with(&format!("{}: cannot read the file", path.display())), "{err}");
}

fn vendored_digits() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv")
}

#[test]
fn vendored_digits_match_the_checksum_and_the_embedded_copy() {
    let bytes = std::fs::read(vendored_digits()).expect("data/digits.csv");
    let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, "d168c7e6f3c50d0eb1a859158aabd051dc9ac54cb9b20bf72ad3c2dfb765e010");
    assert_eq!(hash, DIGITS_SHA256);
    assert_eq!(bytes, DIGITS_CSV.as_bytes(), "the binary embeds the vendored file");
    let notice = std::fs::read_to_string(vendored_digits().with_file_name("NOTICE.md")).expect("data/NOTICE.md");
    assert!(notice.contains("CC BY 4.0") && notice.contains("Alpaydin"), "the credit ships with the data");
}

#[test]
fn digits_load_1797_samples_of_64_features_in_10_classes() {
    let d = digits();
    assert_eq!((d.len(), d.features(), d.classes()), (1797, 64, 10));
    let counts = d.class_counts();
    assert!(counts.iter().all(|&c| (170..=190).contains(&c)), "every digit is there: {counts:?}");
    assert!(d.values().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(d.values().iter().copied().fold(0.0, f32::max), 1.0, "grey level 16 scales to 1");
    // The first image's third pixel is grey level 5 in the file.
    assert_eq!((d.labels()[0], d.sample(0)[2]), (0, 5.0 / 16.0));
    let from_file = Dataset::from_csv_path(vendored_digits(), &digits_options()).expect("loads");
    assert_eq!((from_file.labels(), from_file.values()), (d.labels(), d.values()));
}
