//! From source text to a [`ModelAst`]: pest does the recognising, this module builds the
//! typed tree and turns pest's errors into [`Diagnostic`]s that say what was expected.

use super::ast::{Arg, Expr, ExprKind, Ident, Item, ModelAst};
use crate::diagnostics::{Diagnostic, Span};
use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

/// The pest-generated parser; its `Rule` enum is documented by `grammar.pest`.
#[allow(missing_docs)]
mod generated {
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/grammar.pest"]
    pub struct SnnParser;
}
use generated::{Rule, SnnParser};

/// Lists and calls may nest this deep; more is certainly a mistake, and refusing it keeps
/// the recursive parser's stack bounded whatever the input.
pub const MAX_NESTING: usize = 32;

/// Parses a model file. Errors are syntax errors; meaning is checked by lowering.
pub fn parse(source: &str) -> Result<ModelAst, Vec<Diagnostic>> {
    check_nesting(source)?;
    // Detailed attempts let syntax errors name the tokens expected at the farthest point
    // reached (`,` or `)`), not only the rules.
    pest::set_error_detail(true);
    let mut pairs = SnnParser::parse(Rule::file, source).map_err(|e| vec![syntax_error(&e, source)])?;
    let file = pairs.next().ok_or_else(|| vec![Diagnostic::error(Span::default(), "empty parse", "")])?;
    build_model(file)
}

fn check_nesting(source: &str) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    let mut in_comment = false;
    for (offset, byte) in source.bytes().enumerate() {
        match byte {
            b'\n' => in_comment = false,
            b'/' if source.as_bytes().get(offset + 1) == Some(&b'/') => in_comment = true,
            b'(' | b'[' if !in_comment => {
                depth += 1;
                if depth > MAX_NESTING {
                    let span = Span::new(offset, offset + 1);
                    return Err(vec![
                        Diagnostic::error(span, "values nest too deeply", "nesting starts to exceed the limit here")
                            .with_help(format!("lists and calls may nest at most {MAX_NESTING} deep")),
                    ]);
                }
            }
            b')' | b']' if !in_comment => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn syntax_error(error: &pest::error::Error<Rule>, source: &str) -> Diagnostic {
    let (offset, expected) = match error.parse_attempts() {
        // pest does not export the attempts' types, so they are used through inference:
        // the literal tokens tried at the farthest point, then the rules it was inside.
        Some(attempts) => {
            let tokens: Vec<String> = attempts.expected_tokens().into_iter().map(|token| token.to_string()).collect();
            let rules =
                attempts.call_stacks().into_iter().filter_map(|stack| stack.deepest.get_rule().map(|r| rule_name(*r)));
            let mut expected: Vec<String> = tokens.iter().filter_map(|t| describe_expected_token(t)).collect();
            let has_paren = tokens.iter().any(|t| t == "(");
            expected.extend(rules.filter(|r| !(r.is_empty() || (has_paren && *r == "a call"))).map(str::to_string));
            (attempts.max_position, expected)
        }
        None => {
            let offset = match error.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
            let expected = match &error.variant {
                ErrorVariant::ParsingError { positives, .. } => {
                    positives.iter().map(|r| rule_name(*r).to_string()).collect()
                }
                ErrorVariant::CustomError { message } => vec![message.clone()],
            };
            (offset, expected)
        }
    };
    let expected = join_alternatives(expected);
    let (found, len) = describe_token_at(source, offset);
    let end = (offset + len).min(source.len());
    Diagnostic::error(
        Span::new(offset, end),
        format!("syntax error: expected {expected}, found {found}"),
        format!("expected {expected}"),
    )
    .with_help("a model is `model NAME { name = value ... }`; see docs/language.md")
}

/// A literal token pest tried, as the user would name it; trivia is left out, and the
/// character ranges of a name become "a name".
fn describe_expected_token(token: &str) -> Option<String> {
    match token {
        "" | "//" => None,
        t if t.trim().is_empty() => None,
        "_" | "A..Z" | "a..z" | "0..9" => Some("a name".to_string()),
        t => Some(format!("`{t}`")),
    }
}

fn join_alternatives(mut names: Vec<String>) -> String {
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [] => "something else".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Names the token at `offset` and gives its length in bytes.
fn describe_token_at(source: &str, offset: usize) -> (String, usize) {
    let rest = source.get(offset..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("the end of the file".to_string(), 0);
    };
    if first.is_alphanumeric() || first == '_' {
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        return (format!("`{}`", &rest[..len]), len);
    }
    (format!("`{}`", first.escape_default()), first.len_utf8())
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the file",
        Rule::file | Rule::kw_model => "`model`",
        Rule::close => "`}`",
        Rule::item => "an item `name = value`",
        Rule::call => "a call",
        Rule::arg => "an argument",
        Rule::key => "a keyword",
        Rule::list => "a list `[...]`",
        Rule::boolean => "`true` or `false`",
        Rule::number => "a number",
        Rule::ident => "a name",
        Rule::WHITESPACE | Rule::COMMENT => "",
        _ => "a value",
    }
}

fn build_model(file: Pair<'_, Rule>) -> Result<ModelAst, Vec<Diagnostic>> {
    let file_span = Span::from(file.as_span());
    let mut name = None;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut close_brace = Span::new(file_span.end, file_span.end);
    for pair in file.into_inner() {
        match pair.as_rule() {
            Rule::ident => name = Some(ident(&pair)),
            Rule::close => close_brace = Span::from(pair.as_span()),
            Rule::item => match build_item(pair) {
                Ok(item) => items.push(item),
                Err(mut e) => errors.append(&mut e),
            },
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = name.ok_or_else(|| vec![Diagnostic::error(file_span, "the model has no name", "")])?;
    Ok(ModelAst { name, items, close_brace })
}

fn build_item(pair: Pair<'_, Rule>) -> Result<Item, Vec<Diagnostic>> {
    let span = Span::from(pair.as_span());
    let mut inner = pair.into_inner();
    let (Some(name), Some(value)) = (inner.next(), inner.next()) else {
        return Err(vec![Diagnostic::error(span, "malformed item", "")]);
    };
    Ok(Item { name: ident(&name), value: build_expr(value)?, span })
}

fn ident(pair: &Pair<'_, Rule>) -> Ident {
    Ident { name: pair.as_str().to_string(), span: pair.as_span().into() }
}

fn build_expr(pair: Pair<'_, Rule>) -> Result<Expr, Vec<Diagnostic>> {
    let span = Span::from(pair.as_span());
    let kind = match pair.as_rule() {
        Rule::number => number(pair.as_str(), span)?,
        Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
        Rule::ident => ExprKind::Name(pair.as_str().to_string()),
        Rule::list => ExprKind::List(build_all(pair.into_inner().map(build_expr))?),
        Rule::call => build_call(pair)?,
        _ => return Err(vec![Diagnostic::error(span, "unexpected syntax", "")]),
    };
    Ok(Expr { kind, span })
}

fn build_call(pair: Pair<'_, Rule>) -> Result<ExprKind, Vec<Diagnostic>> {
    let span = Span::from(pair.as_span());
    let mut inner = pair.into_inner();
    let callee =
        inner.next().map(|p| ident(&p)).ok_or_else(|| vec![Diagnostic::error(span, "call without a name", "")])?;
    let args = build_all(inner.map(build_arg))?;
    Ok(ExprKind::Call { callee, args })
}

fn build_arg(pair: Pair<'_, Rule>) -> Result<Arg, Vec<Diagnostic>> {
    let span = Span::from(pair.as_span());
    let mut key = None;
    for part in pair.into_inner() {
        if part.as_rule() == Rule::key {
            key = Some(ident(&part));
        } else {
            return Ok(Arg { key, value: build_expr(part)? });
        }
    }
    Err(vec![Diagnostic::error(span, "argument without a value", "")])
}

/// Collects every element's errors rather than stopping at the first.
fn build_all<T>(results: impl Iterator<Item = Result<T, Vec<Diagnostic>>>) -> Result<Vec<T>, Vec<Diagnostic>> {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

fn number(text: &str, span: Span) -> Result<ExprKind, Vec<Diagnostic>> {
    let is_float = text.contains(['.', 'e', 'E']);
    if !is_float {
        return text.parse::<i64>().map(ExprKind::Int).map_err(|_| {
            vec![
                Diagnostic::error(span, format!("integer `{text}` is too large"), "does not fit in 64 bits").with_help(
                    "sizes and counts must be below 2^63; write a float with `.0` if you meant a real number",
                ),
            ]
        });
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(ExprKind::Float(value)),
        _ => Err(vec![
            Diagnostic::error(span, format!("float `{text}` is out of range"), "not a finite number")
                .with_help("use a value between -1e308 and 1e308"),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items_calls_lists_and_keywords() {
        let ast = parse("model m { x = input(shape = [1, 2], encoding = spikes) // c\n t = 4 f = 1.5e-3 b = true }")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ast.name.name, "m");
        assert_eq!(ast.items.len(), 4);
        let ExprKind::Call { callee, args } = &ast.items[0].value.kind else { panic!("not a call") };
        assert_eq!(callee.name, "input");
        assert_eq!(args[0].key.as_ref().map(|k| k.name.as_str()), Some("shape"));
        assert!(matches!(&args[0].value.kind, ExprKind::List(v) if v.len() == 2));
        assert_eq!(ast.items[1].value.kind, ExprKind::Int(4));
        assert_eq!(ast.items[2].value.kind, ExprKind::Float(1.5e-3));
        assert_eq!(ast.items[3].value.kind, ExprKind::Bool(true));
    }

    #[test]
    fn reports_what_was_expected_where() {
        let errors = parse("model m {\n  t = \n}").err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("found `}`"), "{}", errors[0].message);
        assert_eq!(errors[0].primary.span.start, 17);
    }

    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let source = format!("model m {{ x = {} }}", "[".repeat(100_000));
        let errors = parse(&source).err().unwrap_or_default();
        assert!(errors[0].message.contains("nest too deeply"));
    }

    #[test]
    fn refuses_huge_integers() {
        let errors = parse("model m { t = 99999999999999999999 }").err().unwrap_or_default();
        assert!(errors[0].message.contains("too large"));
    }
}
