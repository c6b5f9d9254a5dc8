//! Tree-walking evaluation of bound expressions.
//!
//! Variables are read by slot; nothing is looked up by name and nothing is
//! parsed at evaluation time. Values are borrowed from the scope and from
//! the tree's constants wherever possible.

use std::borrow::Cow;

use serde_json::Value;

use super::Scope;
use super::ast::{CmpKind, Node};
use super::builtins::Builtin;
use super::error::{EvalError, type_err};
use super::repr::{repr, repr_str};
use super::value::{BinOp, Num, UnaryOp, binary, compare, contains, num, truthy, type_name, unary};

/// A variable reference resolved to a slot (the name is kept for errors).
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) slot: u32,
    pub(crate) name: String,
}

/// A bound node: variables are slots, functions are builtins.
pub(crate) type BNode = Node<Slot, Builtin>;

/// Evaluates a bound node against a scope.
///
/// Each node kind is handled in its own (non-inlined) function so that the
/// recursive frame stays small and deep trees do not exhaust the stack.
pub(crate) fn eval<'a>(node: &'a BNode, scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    match node {
        Node::Const(v) => Ok(Cow::Borrowed(v)),
        Node::Name(s) => scope.get(s.slot).map(Cow::Borrowed).ok_or_else(|| EvalError::Unbound(s.name.clone())),
        Node::List(items) => eval_list(items, scope),
        Node::Unary(op, x) => eval_unary(*op, x, scope),
        Node::Binary(op, a, b) => eval_binary(*op, a, b, scope),
        Node::Compare(first, rest) => eval_compare(first, rest, scope),
        Node::And(items) => short_circuit(items, scope, false),
        Node::Or(items) => short_circuit(items, scope, true),
        Node::Attr(obj, key) => eval_attr(obj, key, scope),
        Node::Index(obj, idx) => eval_index(obj, idx, scope),
        Node::Call(f, args) => eval_call(*f, args, scope),
    }
}

#[inline(never)]
fn eval_list<'a>(items: &'a [BNode], scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let items = items.iter().map(|n| eval(n, scope).map(Cow::into_owned)).collect::<Result<_, _>>()?;
    Ok(Cow::Owned(Value::Array(items)))
}

#[inline(never)]
fn eval_unary<'a>(op: UnaryOp, x: &'a BNode, scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let x = eval(x, scope)?;
    unary(op, &x).map(Cow::Owned)
}

#[inline(never)]
fn eval_binary<'a>(op: BinOp, a: &'a BNode, b: &'a BNode, scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let a = eval(a, scope)?;
    let b = eval(b, scope)?;
    binary(op, &a, &b).map(Cow::Owned)
}

#[inline(never)]
fn eval_compare<'a>(
    first: &'a BNode,
    rest: &'a [(CmpKind, BNode)],
    scope: &'a dyn Scope,
) -> Result<Cow<'a, Value>, EvalError> {
    let mut left = eval(first, scope)?;
    for (kind, rhs) in rest {
        let right = eval(rhs, scope)?;
        if !compare_kind(*kind, &left, &right)? {
            return Ok(Cow::Owned(Value::Bool(false)));
        }
        left = right;
    }
    Ok(Cow::Owned(Value::Bool(true)))
}

#[inline(never)]
fn eval_attr<'a>(obj: &'a BNode, key: &str, scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let obj = eval(obj, scope)?;
    project(obj, |v| attribute(v, key))
}

#[inline(never)]
fn eval_index<'a>(obj: &'a BNode, idx: &'a BNode, scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let obj = eval(obj, scope)?;
    let idx = eval(idx, scope)?;
    match obj {
        Cow::Borrowed(v) => subscript(v, &idx),
        Cow::Owned(v) => subscript(&v, &idx).map(|r| Cow::Owned(r.into_owned())),
    }
}

#[inline(never)]
fn eval_call<'a>(f: Builtin, args: &'a [BNode], scope: &'a dyn Scope) -> Result<Cow<'a, Value>, EvalError> {
    let args = args.iter().map(|n| eval(n, scope)).collect::<Result<Vec<_>, _>>()?;
    f.call(&args).map(Cow::Owned)
}

/// `and` (`stop_when` false) / `or` (`stop_when` true): returns the first
/// operand whose truthiness is `stop_when`, or the last operand.
#[inline(never)]
fn short_circuit<'a>(items: &'a [BNode], scope: &'a dyn Scope, stop_when: bool) -> Result<Cow<'a, Value>, EvalError> {
    let mut last = Cow::Owned(Value::Null);
    for item in items {
        last = eval(item, scope)?;
        if truthy(&last) == stop_when {
            break;
        }
    }
    Ok(last)
}

fn compare_kind(kind: CmpKind, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match kind {
        CmpKind::Op(op) => compare(op, a, b),
        CmpKind::In => contains(b, a),
        CmpKind::NotIn => contains(b, a).map(|r| !r),
        // Identity is approximated by type-strict JSON equality.
        CmpKind::Is => Ok(a == b),
        CmpKind::IsNot => Ok(a != b),
    }
}

/// Applies a borrowing projection to a possibly owned value.
fn project<'a>(
    base: Cow<'a, Value>,
    f: impl FnOnce(&Value) -> Result<&Value, EvalError>,
) -> Result<Cow<'a, Value>, EvalError> {
    match base {
        Cow::Borrowed(v) => f(v).map(Cow::Borrowed),
        Cow::Owned(v) => f(&v).map(|x| Cow::Owned(x.clone())),
    }
}

/// `obj.key`: reads a dict key.
fn attribute<'v>(obj: &'v Value, key: &str) -> Result<&'v Value, EvalError> {
    match obj {
        Value::Object(map) => map.get(key).ok_or_else(|| EvalError::Key(repr_str(key))),
        other => Err(EvalError::Attribute(format!("'{}' object has no attribute '{key}'", type_name(other)))),
    }
}

/// Resolves a Python index (negative counts from the end) against `len`.
fn resolve_index(index: &Value, len: usize, what: &str) -> Result<usize, EvalError> {
    let i = match (index, num(index)) {
        (Value::Bool(_) | Value::Number(_), Some(Num::Int(i))) => i,
        _ if what == "list" => {
            return Err(type_err(format!("list indices must be integers or slices, not {}", type_name(index))));
        }
        _ => {
            return Err(type_err(format!("{what} indices must be integers, not '{}'", type_name(index))));
        }
    };
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if i < 0 { i + len_i } else { i };
    if (0..len_i).contains(&resolved) {
        usize::try_from(resolved).map_err(|_| EvalError::Overflow)
    } else {
        Err(EvalError::Index(format!("{what} index out of range")))
    }
}

/// `obj[index]` on a dict (by key), list (by int) or str (one character).
fn subscript<'v>(obj: &'v Value, index: &Value) -> Result<Cow<'v, Value>, EvalError> {
    match obj {
        Value::Array(items) => {
            let i = resolve_index(index, items.len(), "list")?;
            items.get(i).map(Cow::Borrowed).ok_or_else(|| EvalError::Index("list index out of range".to_owned()))
        }
        Value::String(s) => {
            let count = s.chars().count();
            let i = resolve_index(index, count, "string")?;
            s.chars()
                .nth(i)
                .map(|c| Cow::Owned(Value::String(c.into())))
                .ok_or_else(|| EvalError::Index("string index out of range".to_owned()))
        }
        Value::Object(map) => match index {
            Value::String(key) => map.get(key).map(Cow::Borrowed).ok_or_else(|| EvalError::Key(repr_str(key))),
            Value::Array(_) | Value::Object(_) => Err(type_err(format!("unhashable type: '{}'", type_name(index)))),
            other => Err(EvalError::Key(repr(other))),
        },
        other => Err(type_err(format!("'{}' object is not subscriptable", type_name(other)))),
    }
}
