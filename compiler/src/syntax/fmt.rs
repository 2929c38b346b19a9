//! `snnc fmt`: prints a model in canonical form.
//!
//! Canonical form: `model NAME {`, one item per line indented by two spaces, `name = value`
//! with single spaces, `key = value` arguments separated by `, `, floats in Rust's shortest
//! round-trip notation, at most one blank line between items (kept where the source had
//! one), and a call too long for one line broken into one argument per line. Comments are
//! kept: the parser drops them, so they are recovered from the source text and re-attached
//! to the item they precede (or follow on the same line). The printer depends only on the
//! syntax tree and those comments, which makes formatting idempotent.

use super::ast::{Expr, ExprKind, Item, ModelAst};

/// Items longer than this are printed with one argument per line.
const MAX_WIDTH: usize = 120;
const INDENT: &str = "  ";

/// A `//` comment found in the source.
#[derive(Debug, Clone)]
struct Comment {
    offset: usize,
    text: String,
}

/// Formats `ast`, which was parsed from `source`, in canonical form.
pub fn format_model(ast: &ModelAst, source: &str) -> String {
    let comments = find_comments(source);
    let mut out = String::new();
    let mut next = 0;
    let header_end = ast.name.span.start;
    while next < comments.len() && comments[next].offset < header_end {
        out.push_str(&comments[next].text);
        out.push('\n');
        next += 1;
    }
    out.push_str(&format!("model {} {{\n", ast.name.name));
    let mut previous_end = None;
    for item in &ast.items {
        let leading_start = next;
        while next < comments.len() && comments[next].offset < item.span.start {
            next += 1;
        }
        let gap_from = previous_end.unwrap_or(item.span.start);
        let first_start =
            comments.get(leading_start).filter(|_| leading_start < next).map_or(item.span.start, |c| c.offset);
        if previous_end.is_some() && has_blank_line(source, gap_from, first_start) {
            out.push('\n');
        }
        for comment in &comments[leading_start..next] {
            out.push_str(&format!("{INDENT}{}\n", comment.text));
        }
        out.push_str(&format_item(item));
        // Comments inside the item, or after it on the same line, follow it on that line.
        let line_end = line_end_after(source, item.span.end);
        let mut trailing = Vec::new();
        while next < comments.len() && comments[next].offset < line_end {
            trailing.push(comments[next].text.as_str());
            next += 1;
        }
        if !trailing.is_empty() {
            out.push(' ');
            out.push_str(&trailing.join(" "));
        }
        out.push('\n');
        previous_end = Some(item.span.end);
    }
    while next < comments.len() && comments[next].offset < ast.close_brace.start {
        out.push_str(&format!("{INDENT}{}\n", comments[next].text));
        next += 1;
    }
    out.push_str("}\n");
    for comment in &comments[next..] {
        out.push_str(&comment.text);
        out.push('\n');
    }
    out
}

fn find_comments(source: &str) -> Vec<Comment> {
    let mut comments = Vec::new();
    let mut line_start = 0;
    for line in source.split_inclusive('\n') {
        if let Some(at) = line.find("//") {
            let text = line[at..].trim_end().to_string();
            comments.push(Comment { offset: line_start + at, text });
        }
        line_start += line.len();
    }
    comments
}

fn has_blank_line(source: &str, from: usize, to: usize) -> bool {
    let gap = source.get(from..to).unwrap_or("");
    gap.split('\n')
        .skip(1)
        .collect::<Vec<_>>()
        .split_last()
        .is_some_and(|(_, middle)| middle.iter().any(|l| l.trim().is_empty()))
}

fn line_end_after(source: &str, offset: usize) -> usize {
    source.get(offset..).and_then(|rest| rest.find('\n')).map_or(source.len(), |n| offset + n)
}

fn format_item(item: &Item) -> String {
    let one_line = format!("{INDENT}{} = {}", item.name.name, format_expr(&item.value));
    if one_line.len() <= MAX_WIDTH {
        return one_line;
    }
    let ExprKind::Call { callee, args } = &item.value.kind else {
        return one_line;
    };
    let mut out = format!("{INDENT}{} = {}(\n", item.name.name, callee.name);
    for arg in args {
        out.push_str(&format!("{INDENT}{INDENT}{},\n", format_arg(arg)));
    }
    out.push_str(&format!("{INDENT})"));
    out
}

fn format_arg(arg: &super::ast::Arg) -> String {
    match &arg.key {
        Some(key) => format!("{} = {}", key.name, format_expr(&arg.value)),
        None => format_expr(&arg.value),
    }
}

/// Prints a value in canonical form.
pub fn format_expr(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Int(value) => value.to_string(),
        ExprKind::Float(value) => format!("{value:?}"),
        ExprKind::Bool(value) => value.to_string(),
        ExprKind::Name(name) => name.clone(),
        ExprKind::List(values) => {
            let parts: Vec<String> = values.iter().map(format_expr).collect();
            format!("[{}]", parts.join(", "))
        }
        ExprKind::Call { callee, args } => {
            let parts: Vec<String> = args.iter().map(format_arg).collect();
            format!("{}({})", callee.name, parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::syntax::parse;

    fn fmt(source: &str) -> String {
        let ast = parse(source).unwrap_or_else(|e| panic!("{e:?}"));
        super::format_model(&ast, source)
    }

    #[test]
    fn canonicalises_spacing_and_keeps_comments() {
        let source = "// head\nmodel   m{\n// lead\n  t=4 // trail\n\n\n\n  f   = g( x,k=1.50 ,)\n// end\n}\n";
        let expected = "// head\nmodel m {\n  // lead\n  t = 4 // trail\n\n  f = g(x, k = 1.5)\n  // end\n}\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn breaks_long_calls_one_argument_per_line() {
        let long = format!(
            "model m {{ n = lif({}) }}",
            (0..16).map(|i| format!("key{i} = {i}")).collect::<Vec<_>>().join(", ")
        );
        let out = fmt(&long);
        assert!(out.contains("  n = lif(\n    key0 = 0,\n"), "{out}");
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn floats_round_trip() {
        let out = fmt("model m { a = 1e-8 b = 0.1 c = 2.0 }");
        assert!(out.contains("a = 1e-8\n") && out.contains("b = 0.1\n") && out.contains("c = 2.0\n"), "{out}");
    }
}
