//! Builtin functions callable from expressions: `len`, `abs`, `min`, `max`,
//! `int`, `float`, `str`, `bool`, `round`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::num::IntErrorKind;

use serde_json::Value;

use super::error::{EvalError, type_err};
use super::repr::{repr_str, to_py_str};
use super::value::{CmpOp, Num, UnaryOp, compare, float_value, int_value, num, truthy, type_name, unary};

/// A builtin function, resolved from its name at bind time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Len,
    Abs,
    Min,
    Max,
    Int,
    Float,
    Str,
    Bool,
    Round,
}

impl Builtin {
    /// Looks a builtin up by name.
    pub(crate) fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "len" => Builtin::Len,
            "abs" => Builtin::Abs,
            "min" => Builtin::Min,
            "max" => Builtin::Max,
            "int" => Builtin::Int,
            "float" => Builtin::Float,
            "str" => Builtin::Str,
            "bool" => Builtin::Bool,
            "round" => Builtin::Round,
            _ => return None,
        })
    }

    /// The builtin's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Builtin::Len => "len",
            Builtin::Abs => "abs",
            Builtin::Min => "min",
            Builtin::Max => "max",
            Builtin::Int => "int",
            Builtin::Float => "float",
            Builtin::Str => "str",
            Builtin::Bool => "bool",
            Builtin::Round => "round",
        }
    }

    fn arity_error(self, expected: &str, got: usize) -> EvalError {
        EvalError::Arity { func: self.name().to_owned(), expected: expected.to_owned(), got }
    }

    /// Calls the builtin on already evaluated arguments.
    pub(crate) fn call<V: Borrow<Value>>(self, args: &[V]) -> Result<Value, EvalError> {
        match self {
            Builtin::Min | Builtin::Max => return self.min_max(args),
            Builtin::Round => {
                return match args {
                    [x] => round(x.borrow(), None),
                    [x, n] => round(x.borrow(), Some(n.borrow())),
                    _ => Err(self.arity_error("1 or 2", args.len())),
                };
            }
            _ => {}
        }
        let arg = match args {
            [x] => Some(x.borrow()),
            [] if !matches!(self, Builtin::Len | Builtin::Abs) => None,
            _ => {
                let expected = match self {
                    Builtin::Len | Builtin::Abs => "exactly 1",
                    _ => "at most 1",
                };
                return Err(self.arity_error(expected, args.len()));
            }
        };
        match (self, arg) {
            (Builtin::Len, Some(x)) => len(x),
            (Builtin::Abs, Some(x)) => unary(UnaryOp::Abs, x),
            (Builtin::Int, Some(x)) => to_int(x),
            (Builtin::Int, None) => Ok(int_value(0)),
            (Builtin::Float, Some(x)) => to_float(x),
            (Builtin::Float, None) => float_value(0.0),
            (Builtin::Str, Some(x)) => Ok(Value::String(to_py_str(x))),
            (Builtin::Str, None) => Ok(Value::String(String::new())),
            (Builtin::Bool, x) => Ok(Value::Bool(x.is_some_and(truthy))),
            _ => Err(self.arity_error("exactly 1", args.len())),
        }
    }

    /// `min(...)` / `max(...)`: one iterable argument or several values.
    /// Ties keep the first candidate, like Python.
    fn min_max<V: Borrow<Value>>(self, args: &[V]) -> Result<Value, EvalError> {
        let better = if self == Builtin::Min { CmpOp::Lt } else { CmpOp::Gt };
        let pick = |candidates: &mut dyn Iterator<Item = &Value>| -> Result<Value, EvalError> {
            let mut best: Option<&Value> = None;
            for item in candidates {
                best = match best {
                    Some(b) if !compare(better, item, b)? => Some(b),
                    _ => Some(item),
                };
            }
            best.cloned().ok_or_else(|| EvalError::Value(format!("{}() iterable argument is empty", self.name())))
        };
        match args {
            [] => Err(self.arity_error("at least 1", 0)),
            [single] => match single.borrow() {
                Value::Array(items) => pick(&mut items.iter()),
                Value::String(s) => {
                    let chars: Vec<Value> = s.chars().map(|c| Value::String(c.into())).collect();
                    pick(&mut chars.iter())
                }
                Value::Object(map) => {
                    let keys: Vec<Value> = map.keys().map(|k| Value::String(k.clone())).collect();
                    pick(&mut keys.iter())
                }
                other => Err(type_err(format!("'{}' object is not iterable", type_name(other)))),
            },
            many => pick(&mut many.iter().map(Borrow::borrow)),
        }
    }
}

/// Calls the builtin function `name` (`len`, `abs`, `min`, `max`, `int`,
/// `float`, `str`, `bool`, `round`) on already evaluated arguments.
///
/// An unknown name is [`EvalError::UnknownFunction`]; a wrong number of
/// arguments is [`EvalError::Arity`].
pub fn call_builtin(name: &str, args: &[Value]) -> Result<Value, EvalError> {
    Builtin::from_name(name).ok_or_else(|| EvalError::UnknownFunction(name.to_owned()))?.call(args)
}

fn len(x: &Value) -> Result<Value, EvalError> {
    let n = match x {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        other => {
            return Err(type_err(format!("object of type '{}' has no len()", type_name(other))));
        }
    };
    i64::try_from(n).map(int_value).map_err(|_| EvalError::Overflow)
}

/// Converts a finite float to an `i64`, truncating toward zero.
fn float_to_i64(f: f64) -> Result<i64, EvalError> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let t = f.trunc();
    if t.is_finite() && (-TWO_63..TWO_63).contains(&t) { Ok(t as i64) } else { Err(EvalError::Overflow) }
}

fn to_int(x: &Value) -> Result<Value, EvalError> {
    if let Some(n) = num(x) {
        return match n {
            Num::Int(i) => Ok(int_value(i)),
            Num::Float(f) => float_to_i64(f).map(int_value),
        };
    }
    match x {
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Ok(int_value(i)),
            Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => {
                Err(EvalError::Overflow)
            }
            Err(_) => Err(EvalError::Value(format!("invalid literal for int() with base 10: {}", repr_str(s)))),
        },
        other => Err(type_err(format!("int() argument must be a string or a real number, not '{}'", type_name(other)))),
    }
}

fn to_float(x: &Value) -> Result<Value, EvalError> {
    if let Some(n) = num(x) {
        return float_value(match n {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        });
    }
    match x {
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) => float_value(f),
            Err(_) => Err(EvalError::Value(format!("could not convert string to float: {}", repr_str(s)))),
        },
        other => {
            Err(type_err(format!("float() argument must be a string or a real number, not '{}'", type_name(other))))
        }
    }
}

/// Python `round(x)` / `round(x, ndigits)` with round-half-to-even.
fn round(x: &Value, ndigits: Option<&Value>) -> Result<Value, EvalError> {
    let Some(n) = num(x) else {
        return Err(type_err(format!("type {} doesn't define __round__ method", type_name(x))));
    };
    let digits = match ndigits {
        None | Some(Value::Null) => None,
        Some(d) => match (d, num(d)) {
            (Value::Bool(_) | Value::Number(_), Some(Num::Int(i))) => Some(i),
            _ => {
                return Err(type_err(format!("'{}' object cannot be interpreted as an integer", type_name(d))));
            }
        },
    };
    match (n, digits) {
        (Num::Int(i), None) => Ok(int_value(i)),
        (Num::Int(i), Some(d)) => round_int(i, d).map(int_value),
        (Num::Float(f), None) => float_to_i64(f.round_ties_even()).map(int_value),
        (Num::Float(f), Some(d)) => float_value(round_float(f, d)),
    }
}

/// Rounds an integer to `10^-ndigits` (only does something for negative
/// `ndigits`), ties to even.
fn round_int(i: i64, ndigits: i64) -> Result<i64, EvalError> {
    if ndigits >= 0 {
        return Ok(i);
    }
    if ndigits < -38 {
        return Ok(0);
    }
    let p = 10_i128.pow(ndigits.unsigned_abs() as u32);
    let x = i128::from(i);
    let r = x.rem_euclid(p);
    let mut q = x - r;
    match (2 * r).cmp(&p) {
        Ordering::Greater => q += p,
        Ordering::Equal if (q / p) % 2 != 0 => q += p,
        _ => {}
    }
    i64::try_from(q).map_err(|_| EvalError::Overflow)
}

/// Rounds a float to `ndigits` decimal places, ties to even.
///
/// Non-negative `ndigits` round the exact binary value through correctly
/// rounded decimal formatting, which matches CPython. Negative `ndigits`
/// scale by a power of ten first, which may differ from CPython in the last
/// place for values that are not exactly representable.
fn round_float(f: f64, ndigits: i64) -> f64 {
    if ndigits >= 0 {
        // Beyond ~17 significant digits past the smallest subnormal nothing
        // changes.
        if ndigits > 340 {
            return f;
        }
        let text = format!("{:.*}", ndigits as usize, f);
        return text.parse::<f64>().unwrap_or(f);
    }
    if ndigits < -308 {
        return 0.0_f64.copysign(f);
    }
    let p = 10_f64.powi(ndigits.unsigned_abs() as i32);
    let r = (f / p).round_ties_even() * p;
    if r == 0.0 { 0.0_f64.copysign(f) } else { r }
}
