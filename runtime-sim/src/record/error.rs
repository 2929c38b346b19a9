//! The one error type of the run outputs.

use std::path::PathBuf;

use thiserror::Error;

/// What went wrong while writing or reading weights, a run record or a plot.
#[derive(Debug, Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A weights file is not valid safetensors.
    #[error("{origin}: not a valid safetensors file: {source}")]
    Safetensors {
        /// The file (or `<memory>`).
        origin: String,
        /// The parser's error.
        source: safetensors::SafeTensorError,
    },
    /// A file is well-formed but its content is not what snnc writes or accepts.
    #[error("{origin}: {why}")]
    Content {
        /// The file (or `<memory>`), and the tensor or field if there is one.
        origin: String,
        /// What is wrong, and what is expected.
        why: String,
    },
    /// A run record is not valid JSON of the expected shape.
    #[error("{origin}: not a valid run record: {source}")]
    Json {
        /// The file (or `<memory>`).
        origin: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The plot could not be drawn.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    /// The Ctrl-C handler could not be installed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Interrupt(String),
}

impl RecordError {
    /// Shorthand for [`RecordError::Content`].
    pub(crate) fn content(origin: &str, why: impl Into<String>) -> RecordError {
        RecordError::Content { origin: origin.to_string(), why: why.into() }
    }
}
