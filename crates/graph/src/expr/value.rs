//! Python 3 value semantics over [`serde_json::Value`].
//!
//! JSON values stand for Python values: `null` is `None`, booleans are
//! `bool`, integral numbers are `int` (signed 64-bit), other numbers are
//! `float`, strings are `str`, arrays are `list` and objects are `dict`.
//!
//! Integers are limited to `i64`: integer results outside that range are
//! [`EvalError::Overflow`]. JSON integers above `i64::MAX` (stored by
//! `serde_json` as `u64`) report `type_name` `int` and print exactly, but take
//! part in arithmetic and comparisons as floats. Float results must be finite
//! because JSON cannot hold `inf`/`nan`; otherwise [`EvalError::NonFinite`].

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::error::{EvalError, type_err};

/// Maximum length (characters, bytes or items) of a repeated sequence.
pub(crate) const MAX_SEQUENCE_LEN: usize = 1 << 26;

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`: numeric addition, `str`/`list` concatenation.
    Add,
    /// `-`: numeric subtraction.
    Sub,
    /// `*`: numeric multiplication, `str`/`list` repetition.
    Mul,
    /// `/`: true division, always a float.
    TrueDiv,
    /// `//`: floor division.
    FloorDiv,
    /// `%`: modulo with the sign of the divisor.
    Mod,
    /// `**`: exponentiation.
    Pow,
}

impl BinOp {
    /// The operator as written in source (`+`, `//`, `**`, ...).
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::TrueDiv => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in source (`==`, `<=`, ...).
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `abs(x)`
    Abs,
    /// `not x`
    Not,
}

/// A Python number: `bool` is folded into `Int`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Reads a value as a number (`bool` counts as `int` 0/1).
pub(crate) fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::Int(i64::from(*b))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Num::Int(i)),
            None => n.as_f64().map(Num::Float),
        },
        _ => None,
    }
}

/// An `int` JSON value.
pub(crate) fn int_value(i: i64) -> Value {
    Value::Number(Number::from(i))
}

/// A `float` JSON value; non-finite floats are [`EvalError::NonFinite`].
pub(crate) fn float_value(f: f64) -> Result<Value, EvalError> {
    Number::from_f64(f).map(Value::Number).ok_or(EvalError::NonFinite)
}

/// Python `type(v).__name__`: `NoneType`, `bool`, `int`, `float`, `str`,
/// `list` or `dict`.
///
/// A second naming scheme on purpose: errors that use it must read like the reference
/// engine's (Python's); JSON's words are in [`crate::type_names`].
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python truthiness: `None`, `False`, `0`, `0.0`, `''`, `[]` and `{}` are
/// falsy, everything else is truthy.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => match n.as_i64() {
            Some(i) => i != 0,
            None => n.as_f64().is_some_and(|f| f != 0.0),
        },
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Applies a unary operator with Python semantics.
///
/// `Neg`, `Pos` and `Abs` accept numbers only (`bool` becomes `int`); `Not`
/// accepts anything and returns the negated truthiness as a `bool`.
pub fn unary(op: UnaryOp, v: &Value) -> Result<Value, EvalError> {
    if op == UnaryOp::Not {
        return Ok(Value::Bool(!truthy(v)));
    }
    let Some(n) = num(v) else {
        let name = type_name(v);
        return Err(type_err(match op {
            UnaryOp::Abs => format!("bad operand type for abs(): '{name}'"),
            UnaryOp::Neg => format!("bad operand type for unary -: '{name}'"),
            _ => format!("bad operand type for unary +: '{name}'"),
        }));
    };
    match (op, n) {
        (UnaryOp::Neg, Num::Int(i)) => i.checked_neg().map(int_value).ok_or(EvalError::Overflow),
        (UnaryOp::Abs, Num::Int(i)) => i.checked_abs().map(int_value).ok_or(EvalError::Overflow),
        (_, Num::Int(i)) => Ok(int_value(i)),
        (UnaryOp::Neg, Num::Float(f)) => float_value(-f),
        (UnaryOp::Abs, Num::Float(f)) => float_value(f.abs()),
        (_, Num::Float(f)) => float_value(f),
    }
}

/// Applies a binary arithmetic operator with Python 3 semantics.
///
/// `int op int` stays `int` (except `/`, and `**` with a negative exponent);
/// any float operand makes a float. `str + str` and `list + list`
/// concatenate; `str * int` and `list * int` repeat. Division or modulo by
/// zero is [`EvalError::ZeroDivision`], integer overflow is
/// [`EvalError::Overflow`], and unsupported operand types are
/// [`EvalError::Type`] with Python's message.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::Int(x), Num::Int(y)) => int_arith(op, x, y),
            _ => float_arith(op, x.as_f64(), y.as_f64()),
        };
    }
    match (op, a, b) {
        (BinOp::Add, Value::String(x), Value::String(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Value::String(s))
        }
        (BinOp::Add, Value::Array(x), Value::Array(y)) => {
            let mut v = Vec::with_capacity(x.len() + y.len());
            v.extend(x.iter().cloned());
            v.extend(y.iter().cloned());
            Ok(Value::Array(v))
        }
        (BinOp::Add, Value::String(_), _) | (BinOp::Add, Value::Array(_), _) => Err(type_err(format!(
            "can only concatenate {} (not \"{}\") to {}",
            type_name(a),
            type_name(b),
            type_name(a)
        ))),
        (BinOp::Mul, Value::String(_) | Value::Array(_), _) => repeat(a, b),
        (BinOp::Mul, _, Value::String(_) | Value::Array(_)) => repeat(b, a),
        _ => Err(unsupported(op, a, b)),
    }
}

fn unsupported(op: BinOp, a: &Value, b: &Value) -> EvalError {
    let sym = if op == BinOp::Pow { "** or pow()" } else { op.symbol() };
    type_err(format!("unsupported operand type(s) for {sym}: '{}' and '{}'", type_name(a), type_name(b)))
}

/// `seq * count` for a `str` or `list` sequence.
fn repeat(seq: &Value, count: &Value) -> Result<Value, EvalError> {
    let n = match (count, num(count)) {
        (Value::Bool(_) | Value::Number(_), Some(Num::Int(n))) => n,
        _ => {
            return Err(type_err(format!("can't multiply sequence by non-int of type '{}'", type_name(count))));
        }
    };
    let n = usize::try_from(n).unwrap_or(0);
    let unit = match seq {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    let total = (unit as u128) * (n as u128);
    if total > MAX_SEQUENCE_LEN as u128 {
        return Err(EvalError::SequenceTooLong { len: total, limit: MAX_SEQUENCE_LEN });
    }
    Ok(match seq {
        Value::String(s) => Value::String(s.repeat(n)),
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len() * n);
            for _ in 0..n {
                out.extend(a.iter().cloned());
            }
            Value::Array(out)
        }
        other => other.clone(),
    })
}

fn int_arith(op: BinOp, x: i64, y: i64) -> Result<Value, EvalError> {
    let r = match op {
        BinOp::Add => x.checked_add(y),
        BinOp::Sub => x.checked_sub(y),
        BinOp::Mul => x.checked_mul(y),
        BinOp::TrueDiv => {
            if y == 0 {
                return Err(EvalError::ZeroDivision);
            }
            return float_value(x as f64 / y as f64);
        }
        BinOp::FloorDiv => return int_floordiv(x, y).map(int_value),
        BinOp::Mod => return int_mod(x, y).map(int_value),
        BinOp::Pow => return int_pow(x, y),
    };
    r.map(int_value).ok_or(EvalError::Overflow)
}

/// Python `x // y` on integers (rounds toward negative infinity).
pub(crate) fn int_floordiv(x: i64, y: i64) -> Result<i64, EvalError> {
    if y == 0 {
        return Err(EvalError::ZeroDivision);
    }
    let q = x.checked_div(y).ok_or(EvalError::Overflow)?;
    if x % y != 0 && ((x < 0) != (y < 0)) { Ok(q - 1) } else { Ok(q) }
}

/// Python `x % y` on integers (the result has the sign of `y`).
pub(crate) fn int_mod(x: i64, y: i64) -> Result<i64, EvalError> {
    if y == 0 {
        return Err(EvalError::ZeroDivision);
    }
    // `checked_rem` only fails for i64::MIN % -1, whose remainder is 0.
    let r = x.checked_rem(y).unwrap_or(0);
    if r != 0 && ((r < 0) != (y < 0)) { Ok(r + y) } else { Ok(r) }
}

fn int_pow(base: i64, exp: i64) -> Result<Value, EvalError> {
    if exp < 0 {
        if base == 0 {
            return Err(EvalError::ZeroDivision);
        }
        return float_value((base as f64).powf(exp as f64));
    }
    let r = match base {
        0 => Some(i64::from(exp == 0)),
        1 => Some(1),
        -1 => Some(if exp % 2 == 0 { 1 } else { -1 }),
        _ => u32::try_from(exp).ok().and_then(|e| base.checked_pow(e)),
    };
    r.map(int_value).ok_or(EvalError::Overflow)
}

fn float_arith(op: BinOp, x: f64, y: f64) -> Result<Value, EvalError> {
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::TrueDiv => {
            if y == 0.0 {
                return Err(EvalError::ZeroDivision);
            }
            x / y
        }
        BinOp::FloorDiv => float_divmod(x, y)?.0,
        BinOp::Mod => float_divmod(x, y)?.1,
        BinOp::Pow => {
            if x == 0.0 && y < 0.0 {
                return Err(EvalError::ZeroDivision);
            }
            if x < 0.0 && y.fract() != 0.0 {
                return Err(EvalError::Value("negative number cannot be raised to a fractional power".to_owned()));
            }
            x.powf(y)
        }
    };
    float_value(r)
}

/// Python `divmod(x, y)` on floats: `(floor(x / y), x mod y)` with the
/// remainder taking the sign of `y`, following CPython's algorithm.
fn float_divmod(x: f64, y: f64) -> Result<(f64, f64), EvalError> {
    if y == 0.0 {
        return Err(EvalError::ZeroDivision);
    }
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(y);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0_f64.copysign(x / y)
    };
    Ok((floordiv, m))
}

/// Exact ordering of an `i64` against an `f64` (`None` for NaN).
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    // |t| < 2^63 here, so the conversion is exact.
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        o => o,
    })
}

fn cmp_num(x: Num, y: Num) -> Option<Ordering> {
    match (x, y) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
        (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
    }
}

/// Python `a == b`: numbers compare numerically across `bool`/`int`/`float`,
/// containers compare structurally, different other types are unequal.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return cmp_num(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| py_eq(p, q)))
        }
        _ => false,
    }
}

/// Applies a comparison operator with Python 3 semantics.
///
/// `==`/`!=` never fail (different non-numeric types are simply unequal).
/// Ordering works between numbers, between strings (by code point) and
/// between lists (lexicographically); other pairs are [`EvalError::Type`],
/// e.g. `'<' not supported between instances of 'NoneType' and 'int'`.
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match op {
        CmpOp::Eq => return Ok(py_eq(a, b)),
        CmpOp::Ne => return Ok(!py_eq(a, b)),
        _ => {}
    }
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        // NaN cannot occur in JSON, but would compare false like Python.
        return Ok(cmp_num(x, y).is_some_and(|o| op.holds(o)));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(op.holds(x.as_str().cmp(y.as_str()))),
        (Value::Array(x), Value::Array(y)) => match x.iter().zip(y).find(|(p, q)| !py_eq(p, q)) {
            Some((p, q)) => compare(op, p, q),
            None => Ok(op.holds(x.len().cmp(&y.len()))),
        },
        _ => Err(type_err(format!(
            "'{}' not supported between instances of '{}' and '{}'",
            op.symbol(),
            type_name(a),
            type_name(b)
        ))),
    }
}

/// Python `item in container`.
///
/// A `str` in a `str` is a substring test; anything in a `list` tests
/// element equality (Python `==`, so `1 in [1.0]`); a `str` in a `dict` tests
/// the keys (other scalars are never keys of a JSON object, so they give
/// `false`; lists and dicts are unhashable and fail). Other containers are
/// [`EvalError::Type`].
pub fn contains(container: &Value, item: &Value) -> Result<bool, EvalError> {
    match (container, item) {
        (Value::String(s), Value::String(sub)) => Ok(s.contains(sub.as_str())),
        (Value::String(_), _) => {
            Err(type_err(format!("'in <string>' requires string as left operand, not {}", type_name(item))))
        }
        (Value::Array(items), _) => Ok(items.iter().any(|x| py_eq(x, item))),
        (Value::Object(map), Value::String(key)) => Ok(map.contains_key(key)),
        (Value::Object(_), Value::Array(_) | Value::Object(_)) => {
            Err(type_err(format!("unhashable type: '{}'", type_name(item))))
        }
        (Value::Object(_), _) => Ok(false),
        _ => Err(type_err(format!("argument of type '{}' is not iterable", type_name(container)))),
    }
}
