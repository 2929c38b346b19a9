//! The syntax tree of a model file: exactly what was written, with a span on every node.

use crate::diagnostics::Span;

/// A name as written, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it is.
    pub span: Span,
}

/// A whole model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAst {
    /// The model's name.
    pub name: Ident,
    /// The items in source order.
    pub items: Vec<Item>,
    /// The closing brace, where "missing X" errors point.
    pub close_brace: Span,
}

/// `name = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The left-hand side.
    pub name: Ident,
    /// The right-hand side.
    pub value: Expr,
    /// The whole item.
    pub span: Span,
}

/// A value with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the value is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of value the language has.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// An integer literal.
    Int(i64),
    /// A float literal (has a fraction or an exponent).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A bare name: a layer reference or a symbolic option such as `hard`.
    Name(String),
    /// `[a, b, ...]`.
    List(Vec<Expr>),
    /// `f(args)`.
    Call {
        /// The called name.
        callee: Ident,
        /// Positional then keyword arguments, in source order.
        args: Vec<Arg>,
    },
}

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The keyword, if the argument has one.
    pub key: Option<Ident>,
    /// The value.
    pub value: Expr,
}

impl ExprKind {
    /// A short description of the kind of value, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ExprKind::Int(_) => "an integer",
            ExprKind::Float(_) => "a float",
            ExprKind::Bool(_) => "a boolean",
            ExprKind::Name(_) => "a name",
            ExprKind::List(_) => "a list",
            ExprKind::Call { .. } => "a call",
        }
    }
}
