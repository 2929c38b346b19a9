//! The model language's surface: grammar, syntax tree, parser and formatter.
//!
//! The grammar (`grammar.pest`) is deliberately generic — a model is a list of
//! `name = value` items, and values are numbers, booleans, names, lists and calls — so that
//! every *meaning* error (an unknown layer, a misspelt keyword) is reported by the lowering
//! pass with the exact span and a hint, rather than as a bare "expected ..." from the parser.

pub mod ast;
pub mod fmt;
pub mod parse;

pub use ast::{Arg, Expr, ExprKind, Ident, Item, ModelAst};
pub use parse::parse;
