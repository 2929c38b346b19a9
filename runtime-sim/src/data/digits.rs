//! The bundled digits data set: 1,797 handwritten digits of 8x8 pixels, labels 0..9.
//!
//! It is the test set of "Optical Recognition of Handwritten Digits" (Alpaydin and Kaynak,
//! 1998, UCI Machine Learning Repository, CC BY 4.0; see `data/NOTICE.md`), vendored as
//! `data/digits.csv` at the repository root and embedded in the binary with `include_str!`,
//! so an installed `snnc` trains without any file at hand. Pixels are grey levels 0..16,
//! row-major; [`digits`] scales them by dividing by 16 ([`digits_options`]).

use super::csv::{CsvOptions, Scale};
use super::{DataError, Dataset};

/// The text of `data/digits.csv`, as vendored.
pub const DIGITS_CSV: &str = include_str!("../../../data/digits.csv");

/// The sha256 of `data/digits.csv` (lower-case hex), as `data/NOTICE.md` records it.
pub const DIGITS_SHA256: &str = "d168c7e6f3c50d0eb1a859158aabd051dc9ac54cb9b20bf72ad3c2dfb765e010";

/// The largest grey level of the digits images.
pub const DIGITS_MAX_LEVEL: f32 = 16.0;

/// The loader options for the digits file: divide by 16, 10 classes.
pub fn digits_options() -> CsvOptions {
    CsvOptions { scale: Scale::Divide(DIGITS_MAX_LEVEL), classes: Some(10) }
}

/// The bundled digits data set (named `digits.csv`), parsed from the embedded text.
pub fn digits() -> Dataset {
    // The embedded file is checked by the test suite (checksum and a full load), so a
    // failure here means a broken build, not bad user input.
    try_digits().expect("the embedded data/digits.csv is a valid data set")
}

/// [`digits`], returning the parse error instead of panicking.
pub fn try_digits() -> Result<Dataset, DataError> {
    Dataset::from_csv_str("digits.csv", DIGITS_CSV, &digits_options())
}
