//! The CSV loader for labelled vectors and images.
//!
//! # Format
//!
//! ```text
//! label,p0,p1,p2,...      <- header: `label`, then one name per feature
//! 3,0,12,16,...           <- one sample per row: its class, then its feature values
//! ```
//!
//! - The first non-blank line is the header; its first field must be `label`. Blank lines
//!   are skipped, `\r\n` line ends and a UTF-8 byte-order mark are accepted, fields are
//!   split at every comma (no quoting) and trimmed of white space.
//! - Every row has as many fields as the header. The label is an integer `0 <= label <
//!   classes`; `classes` is [`CsvOptions::classes`] if given, else the largest label + 1.
//! - Feature values are finite numbers, scaled into `[0, 1]` by [`CsvOptions::scale`]:
//!   [`Scale::Divide(max)`](Scale::Divide) divides by `max` and requires `0 <= v <= max`;
//!   [`Scale::ColumnMax`] divides each column by its largest value in the file (an all-zero
//!   column stays zero) and requires `v >= 0`; [`Scale::Unit`] keeps values as they are and
//!   requires `0 <= v <= 1`.
//! - Images are flattened row-major (`[C, H, W]` for several channels), as the model's
//!   input shape reads them.
//!
//! Every error names `file:line`, and for a field its column (1-based, `label` is column 1)
//! and header name; the first error stops the load.

use std::path::Path;

use super::{DataError, Dataset};

/// How feature values are brought into `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Divide every value by this maximum; values must lie in `[0, max]`.
    Divide(f32),
    /// Divide each column by its largest value in the file; values must not be negative.
    ColumnMax,
    /// Keep values as they are; they must already lie in `[0, 1]`.
    Unit,
}

/// Options of [`Dataset::from_csv_str`] and [`Dataset::from_csv_path`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CsvOptions {
    /// The scaling rule.
    pub scale: Scale,
    /// The number of classes, if known; otherwise the largest label + 1.
    pub classes: Option<usize>,
}

impl Default for CsvOptions {
    /// Column-wise max scaling, classes from the labels.
    fn default() -> CsvOptions {
        CsvOptions { scale: Scale::ColumnMax, classes: None }
    }
}

impl Dataset {
    /// Loads a CSV file (see the [module documentation](self) for the format).
    pub fn from_csv_path(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset, DataError> {
        let file = path.as_ref().display().to_string();
        let text =
            std::fs::read_to_string(path.as_ref()).map_err(|source| DataError::Io { file: file.clone(), source })?;
        Dataset::from_csv_str(&file, &text, options)
    }

    /// Parses CSV text; `file` names it in errors and becomes the data set's name.
    pub fn from_csv_str(file: &str, text: &str, options: &CsvOptions) -> Result<Dataset, DataError> {
        check_options(options)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rows = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty());
        let (header_line, header) = rows.next().ok_or_else(|| DataError::Empty { file: file.to_string() })?;
        let names = parse_header(file, header_line, header)?;
        let mut table =
            Table { file, names: &names, scale: options.scale, labels: vec![], values: vec![], lines: vec![] };
        for (line, row) in rows {
            table.push_row(line, row)?;
        }
        if table.labels.is_empty() {
            return Err(DataError::NoSamples { file: file.to_string() });
        }
        table.finish(options.classes)
    }
}

fn check_options(options: &CsvOptions) -> Result<(), DataError> {
    if let Scale::Divide(max) = options.scale
        && !(max.is_finite() && max > 0.0)
    {
        return Err(DataError::invalid("scale", format!("divide by {max}: the maximum must be a positive number")));
    }
    if options.classes == Some(0) {
        return Err(DataError::invalid("classes", "0: a data set needs at least one class"));
    }
    Ok(())
}

/// The feature names of a header row, which must start with `label`.
fn parse_header(file: &str, line: usize, header: &str) -> Result<Vec<String>, DataError> {
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    if fields[0] != "label" {
        let found: String = header.chars().take(40).collect();
        return Err(DataError::MissingHeader { file: file.to_string(), line, found });
    }
    if fields.len() < 2 {
        return Err(DataError::NoFeatures { file: file.to_string(), line });
    }
    Ok(fields[1..].iter().map(|s| s.to_string()).collect())
}

/// The rows read so far, unscaled.
struct Table<'a> {
    file: &'a str,
    names: &'a [String],
    scale: Scale,
    labels: Vec<u32>,
    values: Vec<f32>,
    /// The line of each row, for errors found after reading (labels above `classes`).
    lines: Vec<usize>,
}

impl Table<'_> {
    /// Reads one data row: its label and its values, each checked against the scale's range.
    fn push_row(&mut self, line: usize, row: &str) -> Result<(), DataError> {
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        let file = self.file.to_string();
        if fields.len() != self.names.len() + 1 {
            return Err(DataError::ColumnCount { file, line, expected: self.names.len() + 1, found: fields.len() });
        }
        let label = fields[0].parse::<u32>().map_err(|_| DataError::BadLabel {
            file: file.clone(),
            line,
            text: fields[0].to_string(),
        })?;
        for (k, text) in fields[1..].iter().enumerate() {
            let value = self.parse_value(line, k, text)?;
            self.values.push(value);
        }
        self.labels.push(label);
        self.lines.push(line);
        Ok(())
    }

    /// Parses feature `k`'s field and checks it lies in the range the scaling rule accepts.
    fn parse_value(&self, line: usize, k: usize, text: &str) -> Result<f32, DataError> {
        let (file, column, name) = (self.file.to_string(), k + 2, self.names[k].clone());
        let value = match text.parse::<f32>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err(DataError::NotNumber { file, line, column, name, text: text.to_string() }),
        };
        let (max, allowed) = match self.scale {
            Scale::Divide(m) => (m, format!("[0, {m}], the range `divide by {m}` scales to [0, 1]")),
            Scale::ColumnMax => (f32::INFINITY, "[0, inf): values must not be negative".to_string()),
            Scale::Unit => (1.0, "[0, 1]: values must be scaled already".to_string()),
        };
        if !(0.0..=max).contains(&value) {
            return Err(DataError::ValueOutOfRange { file, line, column, name, value, allowed });
        }
        Ok(value)
    }

    /// Checks the labels against the class count and scales the values.
    fn finish(mut self, classes: Option<usize>) -> Result<Dataset, DataError> {
        let max_label = self.labels.iter().copied().max().unwrap_or(0) as usize;
        let classes = classes.unwrap_or(max_label + 1);
        if let Some(i) = self.labels.iter().position(|&l| l as usize >= classes) {
            let (file, line, label) = (self.file.to_string(), self.lines[i], u64::from(self.labels[i]));
            return Err(DataError::LabelOutOfRange { file, line, label, classes });
        }
        self.scale_values();
        Dataset::new(self.file, self.names.to_vec(), classes, self.labels, self.values)
    }

    fn scale_values(&mut self) {
        let f = self.names.len();
        let divisors: Vec<f32> = match self.scale {
            Scale::Divide(m) => vec![m; f],
            Scale::Unit => vec![1.0; f],
            Scale::ColumnMax => (0..f)
                .map(|k| self.values.iter().skip(k).step_by(f).copied().fold(0.0f32, f32::max))
                .map(|m| if m > 0.0 { m } else { 1.0 })
                .collect(),
        };
        for row in self.values.chunks_mut(f) {
            row.iter_mut().zip(&divisors).for_each(|(v, d)| *v /= d);
        }
    }
}
