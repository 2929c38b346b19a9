//! Reading a call's arguments with types, ranges, defaults and "did you mean" hints.
//!
//! Every getter records a diagnostic instead of failing, so one pass over a model reports
//! all of its argument errors; [`Args::finish`] then reports the keywords nobody asked for.

use crate::diagnostics::{Diagnostic, Span};
use crate::syntax::{Expr, ExprKind, Ident};
use std::ops::RangeInclusive;

/// The arguments of one call, being read.
pub(super) struct Args<'a> {
    callee: &'a str,
    span: Span,
    positional: Vec<&'a Expr>,
    keywords: Vec<(&'a Ident, &'a Expr, bool)>,
    pub errors: &'a mut Vec<Diagnostic>,
}

impl<'a> Args<'a> {
    /// Splits `args` of the call `callee` into positional and keyword arguments.
    pub fn new(
        callee: &'a Ident,
        args: &'a [crate::syntax::Arg],
        span: Span,
        errors: &'a mut Vec<Diagnostic>,
    ) -> Args<'a> {
        let mut positional = Vec::new();
        let mut keywords: Vec<(&Ident, &Expr, bool)> = Vec::new();
        for arg in args {
            match &arg.key {
                None if !keywords.is_empty() => {
                    errors.push(
                        Diagnostic::error(
                            arg.value.span,
                            "positional argument after a keyword argument",
                            "move this before the keywords",
                        )
                        .with_help(format!(
                            "write the inputs of `{}` first, then `key = value` arguments",
                            callee.name
                        )),
                    );
                    // Counted all the same, so that the arity check does not report it again.
                    positional.push(&arg.value);
                }
                None => positional.push(&arg.value),
                Some(key) => {
                    if let Some((first, _, _)) = keywords.iter().find(|(k, _, _)| k.name == key.name) {
                        errors.push(
                            Diagnostic::error(key.span, format!("`{}` is given twice", key.name), "second value")
                                .with_note(first.span, "first value")
                                .with_help("remove one of them"),
                        );
                    } else {
                        keywords.push((key, &arg.value, false));
                    }
                }
            }
        }
        Args { callee: &callee.name, span, positional, keywords, errors }
    }

    /// The positional arguments.
    pub fn positional(&self) -> &[&'a Expr] {
        &self.positional
    }

    /// Takes a keyword argument's expression, marking it used.
    pub fn take(&mut self, key: &str) -> Option<&'a Expr> {
        let entry = self.keywords.iter_mut().find(|(k, _, _)| k.name == key)?;
        entry.2 = true;
        Some(entry.1)
    }

    fn missing(&mut self, key: &str, example: &str) {
        let callee = self.callee;
        self.errors.push(
            Diagnostic::error(self.span, format!("`{callee}` needs `{key}`"), format!("`{key}` is missing"))
                .with_help(format!("add `{key} = {example}`")),
        );
    }

    fn wrong_type(&mut self, key: &str, expected: &str, found: &Expr) {
        self.errors.push(
            Diagnostic::error(
                found.span,
                format!("`{key}` expects {expected}, found {}", found.kind.describe()),
                format!("expected {expected}"),
            )
            .with_help(format!("write `{key} = ` followed by {expected}")),
        );
    }

    /// An integer in `range`; `default` when absent (an error when there is none).
    pub fn int(&mut self, key: &str, default: Option<i64>, range: RangeInclusive<i64>) -> Option<i64> {
        let Some(expr) = self.take(key) else {
            if default.is_none() {
                self.missing(key, &range.start().max(&1).to_string());
            }
            return default;
        };
        read_int(expr, key, range, self.errors)
    }

    /// A float satisfying `valid` (described by `rule`); `default` when absent.
    pub fn float(&mut self, key: &str, default: Option<f64>, valid: fn(f64) -> bool, rule: &str) -> Option<f64> {
        let Some(expr) = self.take(key) else {
            if default.is_none() {
                self.missing(key, "1.0");
            }
            return default;
        };
        read_float(expr, key, valid, rule, self.errors)
    }

    /// `true` or `false`; `default` when absent.
    pub fn boolean(&mut self, key: &str, default: bool) -> Option<bool> {
        let Some(expr) = self.take(key) else { return Some(default) };
        match expr.kind {
            ExprKind::Bool(value) => Some(value),
            _ => {
                self.wrong_type(key, "`true` or `false`", expr);
                None
            }
        }
    }

    /// One of the names in `choices`; `default` when absent.
    pub fn choice(&mut self, key: &str, default: &'static str, choices: &[&'static str]) -> Option<&'static str> {
        let Some(expr) = self.take(key) else { return Some(default) };
        let ExprKind::Name(name) = &expr.kind else {
            self.wrong_type(key, &one_of(choices), expr);
            return None;
        };
        let found = choices.iter().find(|c| **c == name.as_str()).copied();
        if found.is_none() {
            self.errors.push(unknown(expr.span, &format!("`{key}` value"), name, choices));
        }
        found
    }

    /// Reports positional arguments when none are allowed.
    pub fn no_positional(&mut self) {
        if let Some(first) = self.positional.first() {
            let callee = self.callee;
            self.errors.push(
                Diagnostic::error(first.span, format!("`{callee}` takes no positional arguments"), "unexpected")
                    .with_help("name the argument: `key = value`"),
            );
        }
    }

    /// The whole call, for errors about the call as a whole.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Reports every keyword that was given but not read, with the ones that would be.
    pub fn finish(&mut self, allowed: &[&'static str]) {
        for (key, _, used) in &mut self.keywords {
            if !std::mem::replace(used, true) {
                let mut diagnostic = unknown(key.span, "argument", &key.name, allowed);
                diagnostic.message = format!("`{}` has no argument `{}`", self.callee, key.name);
                self.errors.push(diagnostic);
            }
        }
    }
}

/// Reads an integer literal in `range`.
pub(super) fn read_int(
    expr: &Expr,
    key: &str,
    range: RangeInclusive<i64>,
    errors: &mut Vec<Diagnostic>,
) -> Option<i64> {
    match expr.kind {
        ExprKind::Int(value) if range.contains(&value) => Some(value),
        ExprKind::Int(value) => {
            errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("`{key}` = {value} is out of range"),
                    format!("must be between {} and {}", range.start(), range.end()),
                )
                .with_help(format!("choose a value from {} to {}", range.start(), range.end())),
            );
            None
        }
        _ => {
            errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("`{key}` expects an integer, found {}", expr.kind.describe()),
                    "expected an integer",
                )
                .with_help(format!("write `{key} = ` followed by a whole number")),
            );
            None
        }
    }
}

/// Reads a number (an integer is accepted as a float) satisfying `valid`.
pub(super) fn read_float(
    expr: &Expr,
    key: &str,
    valid: fn(f64) -> bool,
    rule: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<f64> {
    let value = match expr.kind {
        ExprKind::Float(value) => value,
        // Integers in model files are small enough that the conversion is exact.
        ExprKind::Int(value) => value as f64,
        _ => {
            errors.push(
                Diagnostic::error(
                    expr.span,
                    format!("`{key}` expects a number, found {}", expr.kind.describe()),
                    "expected a number",
                )
                .with_help(format!("write `{key} = ` followed by a number")),
            );
            return None;
        }
    };
    if valid(value) {
        return Some(value);
    }
    errors.push(
        Diagnostic::error(expr.span, format!("`{key}` = {value:?} is out of range"), format!("must be {rule}"))
            .with_help(format!("`{key}` must be {rule}")),
    );
    None
}

/// "unknown X `name`", with the closest known name as a suggestion and the full list.
pub(super) fn unknown(span: Span, what: &str, name: &str, known: &[&str]) -> Diagnostic {
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(distance, k)| *distance <= 1.max(k.len() / 3) && *distance < name.len())
        .min();
    let help = match (closest, known.is_empty()) {
        (_, true) => "this takes no keyword arguments; remove it".to_string(),
        (Some((_, k)), false) => format!("did you mean `{k}`? expected {}", one_of(known)),
        (None, false) => format!("expected {}", one_of(known)),
    };
    Diagnostic::error(span, format!("unknown {what} `{name}`"), "not known here").with_help(help)
}

/// "`a`, `b` or `c`".
pub(super) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, init)) => format!("one of {} or {last}", init.join(", ")),
    }
}
