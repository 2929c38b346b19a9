//! The one error type of the data pipeline.
//!
//! Errors about a file name the place as `file:line` and, for a field, the column both by
//! number (1-based, `label` is column 1) and by its header name, so the user can go straight
//! to the offending text.

use thiserror::Error;

/// What went wrong while loading, splitting, generating or encoding data.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("{file}: the file is empty; expected a header row `label,<feature names>` and one row per sample")]
    Empty {
        /// The file.
        file: String,
    },
    /// The first row is not a header starting with `label`.
    #[error("{file}:{line}: missing header: the first row must be `label,<feature names>`, found `{found}`")]
    MissingHeader {
        /// The file.
        file: String,
        /// The line of the first non-blank row.
        line: usize,
        /// That row (shortened).
        found: String,
    },
    /// The header names no feature column.
    #[error("{file}:{line}: the header names no feature column after `label`")]
    NoFeatures {
        /// The file.
        file: String,
        /// The header's line.
        line: usize,
    },
    /// The header is there but no sample follows.
    #[error("{file}: the file has a header but no data rows")]
    NoSamples {
        /// The file.
        file: String,
    },
    /// A row has more or fewer fields than the header.
    #[error("{file}:{line}: expected {expected} columns as in the header, found {found}")]
    ColumnCount {
        /// The file.
        file: String,
        /// The row's line.
        line: usize,
        /// Columns in the header.
        expected: usize,
        /// Columns in the row.
        found: usize,
    },
    /// A feature value is not a finite number.
    #[error("{file}:{line}: column {column} (`{name}`): `{text}` is not a finite number")]
    NotNumber {
        /// The file.
        file: String,
        /// The row's line.
        line: usize,
        /// The column, 1-based (`label` is 1).
        column: usize,
        /// The column's header name.
        name: String,
        /// The offending field.
        text: String,
    },
    /// A label is not a non-negative integer.
    #[error("{file}:{line}: column 1 (`label`): `{text}` is not a class label; labels are integers 0, 1, 2, ...")]
    BadLabel {
        /// The file.
        file: String,
        /// The row's line.
        line: usize,
        /// The offending field.
        text: String,
    },
    /// A label is not below the number of classes.
    #[error("{file}:{line}: column 1 (`label`): label {label} is out of range 0..{classes} ({classes} classes)")]
    LabelOutOfRange {
        /// The file (or data set name).
        file: String,
        /// The row's line (the sample index plus 2 for in-memory data).
        line: usize,
        /// The label.
        label: u64,
        /// The number of classes.
        classes: usize,
    },
    /// A value lies outside the range the scaling rule accepts.
    #[error("{file}:{line}: column {column} (`{name}`): value {value} is outside {allowed}")]
    ValueOutOfRange {
        /// The file.
        file: String,
        /// The row's line.
        line: usize,
        /// The column, 1-based.
        column: usize,
        /// The column's header name.
        name: String,
        /// The value as read.
        value: f32,
        /// The accepted range and the rule behind it.
        allowed: String,
    },
    /// An option or argument is invalid (a zero size, a rate above 1, mismatched lengths).
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The option or argument.
        what: &'static str,
        /// Why it is rejected, and what would be accepted.
        why: String,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Invalid`].
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> DataError {
        DataError::Invalid { what, why: why.into() }
    }
}
