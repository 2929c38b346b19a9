//! Diagnostics: the errors every stage of the compiler reports, and their one renderer.
//!
//! Library code returns [`Diagnostic`] values that carry byte spans into the model source;
//! only [`render`] turns them into text. The command line and the error snapshots both use
//! it, so the tests see exactly what the user sees: `file:line:column`, the source line, a
//! caret under the offending text, and a `help:` line with the fix.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config, termcolor::NoColor};
use std::fmt;
use std::ops::Range;

/// A half-open byte range into a model's source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The byte range, for slicing the source.
    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Span {
        Span::new(span.start(), span.end())
    }
}

/// A note pointing at a place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is wrong there (may be empty).
    pub message: String,
}

/// One error, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// One line that says what is wrong.
    pub message: String,
    /// The offending text.
    pub primary: Label,
    /// Related places (the other definition of a duplicate name, the producer of a shape).
    pub secondary: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span` with a one-line `message` and a label under the offending text.
    pub fn error(span: Span, message: impl Into<String>, label: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            primary: Label { span, message: label.into() },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Adds the fix.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a related place.
    pub fn with_note(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { span, message: message.into() });
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Renders diagnostics as plain text, in the order given, for a file named `file_name`.
pub fn render(file_name: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = Config::default();
    let mut out = NoColor::new(Vec::new());
    for diagnostic in diagnostics {
        let cs = to_codespan(diagnostic, source.len());
        // Rendering into memory can only fail on a span outside the file, which
        // `to_codespan` has already clamped; fall back to the bare message regardless.
        if term::emit(&mut out, &config, &file, &cs).is_err() {
            out.get_mut().extend_from_slice(format!("error: {}\n", diagnostic.message).as_bytes());
        }
    }
    String::from_utf8_lossy(&out.into_inner()).into_owned()
}

fn to_codespan(diagnostic: &Diagnostic, len: usize) -> CsDiagnostic<()> {
    let clamp = |span: Span| {
        let start = span.start.min(len);
        start..span.end.clamp(start, len)
    };
    let mut labels =
        vec![CsLabel::primary((), clamp(diagnostic.primary.span)).with_message(&diagnostic.primary.message)];
    labels.extend(
        diagnostic.secondary.iter().map(|label| CsLabel::secondary((), clamp(label.span)).with_message(&label.message)),
    );
    let notes = diagnostic.help.iter().map(|help| format!("help: {help}")).collect();
    CsDiagnostic::error().with_message(&diagnostic.message).with_labels(labels).with_notes(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_caret_and_help() {
        let source = "model m {\n  batch = zero\n}\n";
        let start = source.find("zero").unwrap_or(0);
        let diagnostic =
            Diagnostic::error(Span::new(start, start + 4), "bad batch", "not a number").with_help("write an integer");
        let text = render("m.snn", source, &[diagnostic]);
        assert!(text.contains("error: bad batch"), "{text}");
        assert!(text.contains("m.snn:2:11"), "{text}");
        assert!(text.contains("^^^^ not a number"), "{text}");
        assert!(text.contains("= help: write an integer"), "{text}");
    }

    #[test]
    fn clamps_spans_past_the_end() {
        let diagnostic = Diagnostic::error(Span::new(50, 60), "eof", "here");
        let text = render("m.snn", "model", &[diagnostic]);
        assert!(text.contains("error: eof"), "{text}");
    }
}
