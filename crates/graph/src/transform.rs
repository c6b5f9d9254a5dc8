//! Ref transforms: `[name, [args]]` pairs compiled once into typed steps.

use serde_json::Value;

use crate::expr::{self, BinOp, CmpOp, EvalError, UnaryOp};
use crate::plan::RefPlan;

/// An argument of a transform: a constant or a nested ref evaluated in the same context.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A literal JSON value.
    Const(Value),
    /// `{"__ref__": {...}}`.
    Ref(Box<RefPlan>),
}

/// One compiled transform step.
#[derive(Debug, Clone)]
pub enum Transform {
    /// `v[k]`: object key, or list index (negative counts from the end). A miss is an error.
    GetItem(Value),
    /// `v.name`: on an object, the key `name`.
    GetAttr(String),
    /// `v <op> arg` (or `arg <op> v` when `reflected`).
    Binary {
        /// The operator.
        op: BinOp,
        /// The other operand.
        arg: Arg,
        /// `radd` & co.: the argument is the left operand.
        reflected: bool,
    },
    /// `v <cmp> arg`.
    Compare(CmpOp, Arg),
    /// `arg in v`.
    Contains(Arg),
    /// Python `v and arg` (returns an operand).
    And(Arg),
    /// Python `v or arg` (returns an operand).
    Or(Arg),
    /// A unary operator (`neg`, `pos`, `abs`, `not_`).
    Unary(UnaryOp),
}

/// Why a transform step failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TransformError {
    /// The step's value operation failed.
    #[error("{step}: {source}")]
    Eval {
        /// The transform name.
        step: &'static str,
        /// The failure.
        #[source]
        source: EvalError,
    },
    /// A key or index is absent.
    #[error("{0}")]
    Missing(String),
    /// A nested ref could not be resolved.
    #[error("{0}")]
    Ref(String),
}

impl Transform {
    /// Compile one `[name, [args]]` pair. `compile_ref` turns a nested `{"__ref__": ..}` into a plan.
    pub fn compile(
        name: &str,
        args: &[Value],
        compile_ref: &mut dyn FnMut(&Value) -> Result<RefPlan, String>,
    ) -> Result<Transform, String> {
        let mut arg = |i: usize| -> Result<Arg, String> {
            match args.get(i) {
                None => Err(format!("transform '{name}' needs an argument")),
                Some(Value::Object(m)) if m.len() == 1 && m.contains_key("__ref__") => {
                    Ok(Arg::Ref(Box::new(compile_ref(&m["__ref__"])?)))
                }
                Some(v) => Ok(Arg::Const(v.clone())),
            }
        };
        let bin = |op, reflected, a: Arg| Transform::Binary { op, arg: a, reflected };
        Ok(match name {
            "getitem" => match args.first() {
                Some(k @ (Value::String(_) | Value::Number(_))) => Transform::GetItem(k.clone()),
                Some(other) => return Err(format!("getitem key must be a string or an integer, got {other}")),
                None => return Err("transform 'getitem' needs an argument".into()),
            },
            "getattr" => match args.first() {
                Some(Value::String(s)) => Transform::GetAttr(s.clone()),
                _ => return Err("getattr needs a string attribute name".into()),
            },
            "add" => bin(BinOp::Add, false, arg(0)?),
            "radd" => bin(BinOp::Add, true, arg(0)?),
            "sub" => bin(BinOp::Sub, false, arg(0)?),
            "rsub" => bin(BinOp::Sub, true, arg(0)?),
            "mul" => bin(BinOp::Mul, false, arg(0)?),
            "rmul" => bin(BinOp::Mul, true, arg(0)?),
            "truediv" => bin(BinOp::TrueDiv, false, arg(0)?),
            "rtruediv" => bin(BinOp::TrueDiv, true, arg(0)?),
            "floordiv" => bin(BinOp::FloorDiv, false, arg(0)?),
            "rfloordiv" => bin(BinOp::FloorDiv, true, arg(0)?),
            "mod" => bin(BinOp::Mod, false, arg(0)?),
            "rmod" => bin(BinOp::Mod, true, arg(0)?),
            "pow" => bin(BinOp::Pow, false, arg(0)?),
            "rpow" => bin(BinOp::Pow, true, arg(0)?),
            "eq" => Transform::Compare(CmpOp::Eq, arg(0)?),
            "ne" => Transform::Compare(CmpOp::Ne, arg(0)?),
            "lt" => Transform::Compare(CmpOp::Lt, arg(0)?),
            "le" => Transform::Compare(CmpOp::Le, arg(0)?),
            "gt" => Transform::Compare(CmpOp::Gt, arg(0)?),
            "ge" => Transform::Compare(CmpOp::Ge, arg(0)?),
            "contains" => Transform::Contains(arg(0)?),
            "and_" | "rand_" => Transform::And(arg(0)?),
            "or_" | "ror_" => Transform::Or(arg(0)?),
            "not_" => Transform::Unary(UnaryOp::Not),
            "neg" => Transform::Unary(UnaryOp::Neg),
            "pos" => Transform::Unary(UnaryOp::Pos),
            "abs" => Transform::Unary(UnaryOp::Abs),
            "apply" | "call" | "matmul" | "rmatmul" => {
                return Err(format!(
                    "transform '{name}' cannot be expressed in graph.json; move the computation into an op"
                ));
            }
            other => return Err(format!("unknown transform '{other}'")),
        })
    }

    /// For `getitem`/`getattr`: the selected part of `v`, borrowed (no copy of the rest).
    /// `None` for steps that compute a new value.
    pub fn navigate<'a>(&self, v: &'a Value) -> Option<Result<&'a Value, TransformError>> {
        match self {
            Transform::GetAttr(name) => Some(match v {
                Value::Object(m) => {
                    m.get(name).ok_or_else(|| TransformError::Missing(format!("getattr: object has no key '{name}'")))
                }
                other => Err(TransformError::Missing(format!(
                    "getattr: '{}' object has no attribute '{name}'",
                    expr::type_name(other)
                ))),
            }),
            Transform::GetItem(k @ Value::String(key)) => Some(match v {
                Value::Object(m) => {
                    m.get(key).ok_or_else(|| TransformError::Missing(format!("getitem: key '{key}' not found")))
                }
                other => {
                    Err(TransformError::Missing(format!("getitem: cannot index '{}' with {k}", expr::type_name(other))))
                }
            }),
            Transform::GetItem(Value::Number(n)) => match v {
                Value::Array(a) => {
                    let len = a.len() as i64;
                    let i = n.as_i64()?;
                    let idx = if i < 0 { len + i } else { i };
                    Some(if idx < 0 || idx >= len {
                        Err(TransformError::Missing(format!("getitem: index {i} out of range for a list of {len}")))
                    } else {
                        Ok(&a[idx as usize])
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Apply this step to `v`. `resolve` evaluates nested refs.
    pub fn apply(
        &self,
        v: Value,
        resolve: &mut dyn FnMut(&RefPlan) -> Result<Value, String>,
    ) -> Result<Value, TransformError> {
        let mut arg = |a: &Arg| -> Result<Value, TransformError> {
            match a {
                Arg::Const(c) => Ok(c.clone()),
                Arg::Ref(r) => resolve(r).map_err(TransformError::Ref),
            }
        };
        let eval = |step: &'static str| move |source| TransformError::Eval { step, source };
        match self {
            Transform::GetItem(k) => get_item(v, k),
            Transform::GetAttr(name) => match v {
                Value::Object(mut m) => m
                    .shift_remove(name)
                    .ok_or_else(|| TransformError::Missing(format!("getattr: object has no key '{name}'"))),
                other => Err(TransformError::Missing(format!(
                    "getattr: '{}' object has no attribute '{name}'",
                    expr::type_name(&other)
                ))),
            },
            Transform::Binary { op, arg: a, reflected } => {
                let other = arg(a)?;
                let r = if *reflected { expr::binary(*op, &other, &v) } else { expr::binary(*op, &v, &other) };
                r.map_err(eval("arithmetic"))
            }
            Transform::Compare(op, a) => {
                let other = arg(a)?;
                expr::compare(*op, &v, &other).map(Value::Bool).map_err(eval("comparison"))
            }
            Transform::Contains(a) => {
                let item = arg(a)?;
                expr::contains(&v, &item).map(Value::Bool).map_err(eval("contains"))
            }
            Transform::And(a) => {
                if expr::truthy(&v) {
                    arg(a)
                } else {
                    Ok(v)
                }
            }
            Transform::Or(a) => {
                if expr::truthy(&v) {
                    Ok(v)
                } else {
                    arg(a)
                }
            }
            Transform::Unary(op) => expr::unary(*op, &v).map_err(eval("unary")),
        }
    }
}

fn get_item(v: Value, key: &Value) -> Result<Value, TransformError> {
    match (v, key) {
        (Value::Object(mut m), Value::String(k)) => {
            m.shift_remove(k).ok_or_else(|| TransformError::Missing(format!("getitem: key '{k}' not found")))
        }
        (Value::Array(mut a), Value::Number(n)) => {
            let len = a.len() as i64;
            let i = n.as_i64().ok_or_else(|| TransformError::Missing(format!("getitem: bad index {n}")))?;
            let idx = if i < 0 { len + i } else { i };
            if idx < 0 || idx >= len {
                return Err(TransformError::Missing(format!("getitem: index {i} out of range for a list of {len}")));
            }
            Ok(a.swap_remove(idx as usize))
        }
        (Value::String(s), Value::Number(n)) => {
            let chars: Vec<char> = s.chars().collect();
            let len = chars.len() as i64;
            let i = n.as_i64().unwrap_or(i64::MAX);
            let idx = if i < 0 { len + i } else { i };
            if idx < 0 || idx >= len {
                return Err(TransformError::Missing(format!("getitem: string index {i} out of range")));
            }
            Ok(Value::String(chars[idx as usize].to_string()))
        }
        (other, k) => {
            Err(TransformError::Missing(format!("getitem: cannot index '{}' with {}", expr::type_name(&other), k)))
        }
    }
}

/// A condition as text, the way the reference engine describes a matched branch case:
/// `score >= 90`, `code == 'x'`, `not done`, `items[0]`, `user.name`. Steps without a
/// symbol are left out.
pub fn describe(var: &str, transforms: &[Value]) -> String {
    let mut text = var.to_string();
    for step in transforms {
        let (name, args) = match step.as_array().map(Vec::as_slice) {
            Some([Value::String(name), Value::Array(args), ..]) => (name.as_str(), args.as_slice()),
            Some([Value::String(name)]) => (name.as_str(), &[][..]),
            _ => continue,
        };
        let arg = args.first();
        match (symbol(name), arg) {
            (Some(sym), Some(a)) => text = format!("{text} {sym} {}", describe_arg(a)),
            (Some(sym), None) => text = format!("{sym} {text}"),
            (None, Some(a)) if name == "getitem" => text = format!("{text}[{}]", describe_arg(a)),
            (None, Some(a)) if name == "getattr" => text = format!("{text}.{}", crate::expr::to_py_str(a)),
            _ => {}
        }
    }
    text
}

/// The operator a transform stands for in a description.
fn symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "eq" => "==",
        "ne" => "!=",
        "lt" => "<",
        "le" => "<=",
        "gt" => ">",
        "ge" => ">=",
        "contains" => "in",
        "add" => "+",
        "sub" => "-",
        "mul" => "*",
        "truediv" => "/",
        "floordiv" => "//",
        "mod" => "%",
        "and_" => "and",
        "or_" => "or",
        "not_" => "not",
        _ => return None,
    })
}

/// An argument in a description: Python `repr`, or `Ref('source', 'var')` for a nested ref.
fn describe_arg(arg: &Value) -> String {
    match arg.as_object().and_then(|m| m.get("__ref__")) {
        Some(r) => {
            let field = |k: &str| crate::expr::repr(r.get(k).unwrap_or(&Value::Null));
            match r.get("transforms").and_then(Value::as_array).map_or(0, Vec::len) {
                0 => format!("Ref({}, {})", field("source"), field("var")),
                n => format!("Ref({}, {}, transforms={n})", field("source"), field("var")),
            }
        }
        None => crate::expr::repr(arg),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::describe;

    #[test]
    fn conditions_are_described_like_the_reference_engine() {
        let d = |var: &str, t: serde_json::Value| describe(var, t.as_array().unwrap());
        assert_eq!(d("score", json!([["ge", [90]]])), "score >= 90");
        assert_eq!(d("code", json!([["eq", ["it's"]]])), "code == \"it's\"");
        assert_eq!(d("done", json!([["not_", []]])), "not done");
        assert_eq!(d("user", json!([["getattr", ["name"]], ["getitem", [0]], ["ne", [null]]])), "user.name[0] != None");
        assert_eq!(
            d("flag", json!([["truth", []], ["eq", [true]]])),
            "flag == True",
            "steps without a symbol are left out"
        );
        assert_eq!(
            d(
                "a",
                json!([["gt", [1]], ["and_", [{"__ref__": {"source": "main.b", "var": "y", "transforms": [["lt", [3]]]}}]]])
            ),
            "a > 1 and Ref('main.b', 'y', transforms=1)"
        );
    }
}
