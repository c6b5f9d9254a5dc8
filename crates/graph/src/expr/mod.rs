//! The expression language and Python-style value semantics.
//!
//! Expressions are small Python-like boolean/arithmetic formulas used for
//! loop and branch conditions, e.g. `count >= 5`,
//! `not done and (n % 3 == 0 or total >= 10.5)`, `len(items) == 0`,
//! `score.value > 3`, `xs[-1] < 10`, `"a" in tags` or `1 < x <= 10`.
//!
//! Values are [`serde_json::Value`]s interpreted as Python 3 values; the
//! value operations ([`binary`], [`compare`], [`unary`], [`contains`],
//! [`truthy`], [`repr`], [`type_name`]) are public so that other parts of the
//! engine share exactly the same semantics.
//!
//! Usage is two-phase: [`Expr::parse`] builds a syntax tree whose free
//! variables are plain names; [`Expr::bind`] resolves every name to a slot
//! index once, producing a [`BoundExpr`] that evaluates against any
//! [`Scope`] without looking anything up by name.
//!
//! ```
//! use operonx_graph::expr::Expr;
//! use serde_json::json;
//!
//! let expr = Expr::parse("n % 3 == 0 and total >= 10.5").unwrap();
//! assert_eq!(expr.names(), vec!["n", "total"]);
//! let bound = expr
//!     .bind(&mut |name| match name {
//!         "n" => Some(0),
//!         "total" => Some(1),
//!         _ => None,
//!     })
//!     .unwrap();
//! let scope = vec![Some(json!(9)), Some(json!(12.0))];
//! assert!(bound.eval_bool(&scope).unwrap());
//! ```

mod ast;
mod builtins;
mod error;
mod eval;
mod lexer;
mod parser;
mod repr;
mod value;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use std::fmt;

use serde_json::Value;
use thiserror::Error;

pub use builtins::call_builtin;
pub use error::EvalError;
pub use repr::{float_repr, repr, repr_str, to_py_str};
pub use value::{BinOp, CmpOp, UnaryOp, binary, compare, contains, truthy, type_name, unary};

use builtins::Builtin;
use eval::{BNode, Slot};
use parser::PNode;

/// A syntax error, with the byte offset in the source where it was detected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} at offset {offset}")]
pub struct ParseError {
    /// What went wrong.
    pub message: String,
    /// Byte offset into the source text.
    pub offset: usize,
}

/// An error resolving a parsed expression's names and functions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BindError {
    /// A free variable that the resolver does not know.
    #[error("unknown name '{0}'")]
    UnknownName(String),
    /// A called function that is not a builtin.
    #[error("unknown function '{0}'")]
    UnknownFunction(String),
}

/// Variable storage an expression is evaluated against, indexed by the
/// slots assigned at [`Expr::bind`] time.
pub trait Scope {
    /// The value in `slot`, or `None` if the variable has no value yet.
    fn get(&self, slot: u32) -> Option<&Value>;
}

impl Scope for [Option<Value>] {
    fn get(&self, slot: u32) -> Option<&Value> {
        let index = usize::try_from(slot).ok()?;
        <[Option<Value>]>::get(self, index)?.as_ref()
    }
}

impl Scope for Vec<Option<Value>> {
    fn get(&self, slot: u32) -> Option<&Value> {
        Scope::get(self.as_slice(), slot)
    }
}

impl<S: Scope + ?Sized> Scope for &S {
    fn get(&self, slot: u32) -> Option<&Value> {
        S::get(*self, slot)
    }
}

/// A parsed expression; free variables are still names.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    root: PNode,
    names: Vec<String>,
}

impl Expr {
    /// Parses `src`. Any syntax outside the language (assignment, lambdas,
    /// trailing tokens, unbalanced brackets, `&&`, ...) is a [`ParseError`].
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        let parsed = parser::parse(src)?;
        Ok(Expr { source: src.to_owned(), root: parsed.root, names: parsed.names })
    }

    /// The source text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The distinct free variable names, in order of first appearance
    /// (called function names are not included).
    pub fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// Resolves every free name to a slot index (calling `resolve` once per
    /// distinct name, in order of appearance) and every called function to
    /// a builtin. The first unknown name or function, from the left, is the
    /// error.
    pub fn bind(&self, resolve: &mut dyn FnMut(&str) -> Option<u32>) -> Result<BoundExpr, BindError> {
        let mut slots: Vec<Option<u32>> = vec![None; self.names.len()];
        let root = self.root.try_map(
            &mut |&idx: &usize| {
                let name = self.names.get(idx).map_or("", String::as_str);
                let slot = match slots.get(idx).copied().flatten() {
                    Some(slot) => slot,
                    None => {
                        let slot = resolve(name).ok_or_else(|| BindError::UnknownName(name.to_owned()))?;
                        if let Some(cached) = slots.get_mut(idx) {
                            *cached = Some(slot);
                        }
                        slot
                    }
                };
                Ok(Slot { slot, name: name.to_owned() })
            },
            &mut |name: &String| Builtin::from_name(name).ok_or_else(|| BindError::UnknownFunction(name.clone())),
        )?;
        Ok(BoundExpr { source: self.source.clone(), root })
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Expr, ParseError> {
        Expr::parse(s)
    }
}

/// An expression whose variables are resolved to slots, ready to evaluate.
#[derive(Debug, Clone)]
pub struct BoundExpr {
    source: String,
    root: BNode,
}

impl BoundExpr {
    /// Evaluates the expression. A variable whose slot has no value is
    /// [`EvalError::Unbound`].
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        eval::eval(&self.root, scope).map(std::borrow::Cow::into_owned)
    }

    /// Evaluates the expression and returns its Python truthiness.
    pub fn eval_bool(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        eval::eval(&self.root, scope).map(|v| truthy(&v))
    }

    /// The source text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for BoundExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
