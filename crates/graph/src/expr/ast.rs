//! Syntax tree shared by parsed ([`super::Expr`]) and bound
//! ([`super::BoundExpr`]) expressions.

use serde_json::Value;

use super::value::{BinOp, CmpOp, UnaryOp};

/// A comparison in a (possibly chained) comparison expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpKind {
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Op(CmpOp),
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `is`
    Is,
    /// `is not`
    IsNot,
}

/// An expression node. `N` is how a variable is referenced (name index when
/// parsed, slot when bound) and `F` how a called function is referenced
/// (name when parsed, builtin when bound).
#[derive(Debug, Clone)]
pub(crate) enum Node<N, F> {
    /// A literal.
    Const(Value),
    /// A free variable.
    Name(N),
    /// A list literal.
    List(Vec<Node<N, F>>),
    /// A unary operator (`-x`, `+x`, `not x`).
    Unary(UnaryOp, Box<Node<N, F>>),
    /// A binary arithmetic operator.
    Binary(BinOp, Box<Node<N, F>>, Box<Node<N, F>>),
    /// A comparison chain: `first op1 x1 op2 x2 ...`.
    Compare(Box<Node<N, F>>, Vec<(CmpKind, Node<N, F>)>),
    /// `a and b and ...` (at least two operands).
    And(Vec<Node<N, F>>),
    /// `a or b or ...` (at least two operands).
    Or(Vec<Node<N, F>>),
    /// Attribute access `obj.name` (dict key lookup).
    Attr(Box<Node<N, F>>, String),
    /// Subscript `obj[index]`.
    Index(Box<Node<N, F>>, Box<Node<N, F>>),
    /// Function call `f(args...)`.
    Call(F, Vec<Node<N, F>>),
}

/// Maps a slice of nodes with [`Node::try_map`].
fn map_all<N, F, N2, F2, E>(
    nodes: &[Node<N, F>],
    names: &mut dyn FnMut(&N) -> Result<N2, E>,
    funcs: &mut dyn FnMut(&F) -> Result<F2, E>,
) -> Result<Vec<Node<N2, F2>>, E> {
    nodes.iter().map(|n| n.try_map(names, funcs)).collect()
}

impl<N, F> Node<N, F> {
    /// Rebuilds the tree with variables and functions mapped, visiting nodes
    /// in source order (so the first error reported is the leftmost one).
    pub(crate) fn try_map<N2, F2, E>(
        &self,
        names: &mut dyn FnMut(&N) -> Result<N2, E>,
        funcs: &mut dyn FnMut(&F) -> Result<F2, E>,
    ) -> Result<Node<N2, F2>, E> {
        Ok(match self {
            Node::Const(v) => Node::Const(v.clone()),
            Node::Name(n) => Node::Name(names(n)?),
            Node::List(items) => Node::List(map_all(items, names, funcs)?),
            Node::Unary(op, x) => Node::Unary(*op, Box::new(x.try_map(names, funcs)?)),
            Node::Binary(op, a, b) => {
                let a = a.try_map(names, funcs)?;
                Node::Binary(*op, Box::new(a), Box::new(b.try_map(names, funcs)?))
            }
            Node::Compare(first, rest) => {
                let first = Box::new(first.try_map(names, funcs)?);
                let rest = rest.iter().map(|(k, n)| Ok((*k, n.try_map(names, funcs)?))).collect::<Result<_, E>>()?;
                Node::Compare(first, rest)
            }
            Node::And(items) => Node::And(map_all(items, names, funcs)?),
            Node::Or(items) => Node::Or(map_all(items, names, funcs)?),
            Node::Attr(obj, attr) => Node::Attr(Box::new(obj.try_map(names, funcs)?), attr.clone()),
            Node::Index(obj, idx) => {
                let obj = obj.try_map(names, funcs)?;
                Node::Index(Box::new(obj), Box::new(idx.try_map(names, funcs)?))
            }
            Node::Call(f, args) => {
                let f = funcs(f)?;
                Node::Call(f, map_all(args, names, funcs)?)
            }
        })
    }
}
