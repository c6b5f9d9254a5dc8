//! Error types of the expression language.

use thiserror::Error;

/// A runtime error raised while evaluating an expression or applying a value
/// operation.
///
/// Messages mirror the Python exception that CPython would raise for the same
/// operation, prefixed with the Python exception name (for example
/// `TypeError: unsupported operand type(s) for +: 'int' and 'str'`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EvalError {
    /// An operation was applied to values of unsupported types; the payload is
    /// the Python-style message without the `TypeError: ` prefix.
    #[error("TypeError: {0}")]
    Type(String),
    /// A value had the right type but an unacceptable content (for example
    /// `int('abc')`); the payload is the message without the prefix.
    #[error("ValueError: {0}")]
    Value(String),
    /// Division, floor division or modulo by zero (also `0 ** -1`).
    #[error("ZeroDivisionError: division by zero")]
    ZeroDivision,
    /// An integer result does not fit in a signed 64-bit integer.
    #[error("OverflowError: integer result does not fit in 64 bits")]
    Overflow,
    /// A float result is infinite or NaN, which JSON cannot represent.
    #[error("OverflowError: float result is not finite (inf and nan cannot be represented in JSON)")]
    NonFinite,
    /// A sequence repetition (`'ab' * n`, `[0] * n`) would exceed the size limit.
    #[error("MemoryError: repeated sequence of {len} items exceeds the limit of {limit}")]
    SequenceTooLong {
        /// Length the result would have had.
        len: u128,
        /// The maximum allowed length.
        limit: usize,
    },
    /// A function name that is not a builtin was called.
    #[error("NameError: unknown function '{0}'")]
    UnknownFunction(String),
    /// A builtin was called with the wrong number of arguments.
    #[error("TypeError: {func}() takes {expected} argument(s) ({got} given)")]
    Arity {
        /// Name of the builtin.
        func: String,
        /// Accepted argument counts, e.g. `exactly 1`, `1 or 2`, `at least 1`.
        expected: String,
        /// Number of arguments actually passed.
        got: usize,
    },
    /// A list or string subscript was out of range; the payload is the message.
    #[error("IndexError: {0}")]
    Index(String),
    /// A dict key (subscript or `.name` attribute) was missing; the payload is
    /// the Python repr of the key (e.g. `'name'`).
    #[error("KeyError: {0}")]
    Key(String),
    /// An attribute was read on a value that is not a dict; the payload is the
    /// message.
    #[error("AttributeError: {0}")]
    Attribute(String),
    /// A variable is bound to a slot that has no value yet; the payload is the
    /// variable name.
    #[error("NameError: name '{0}' has no value yet")]
    Unbound(String),
}

/// Builds a [`EvalError::Type`] from anything string-like.
pub(crate) fn type_err(msg: impl Into<String>) -> EvalError {
    EvalError::Type(msg.into())
}
