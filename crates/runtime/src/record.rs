//! The values an op receives ([`Inputs`]) and returns ([`Outputs`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::op::OpError;

/// A value as a run holds it: small scalars inline (copying one costs nothing more than
/// sharing it would), anything else behind an `Arc` (copying it is sharing it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Held {
    Inline(Value),
    Shared(Arc<Value>),
}

/// Longest string kept inline in a [`Held`].
const INLINE_STRING_BYTES: usize = 64;

impl Held {
    /// Hold `v`: inline when it is small, shared otherwise.
    pub(crate) fn new(v: Value) -> Self {
        let small = match &v {
            Value::Null | Value::Bool(_) | Value::Number(_) => true,
            Value::String(s) => s.len() <= INLINE_STRING_BYTES,
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
        };
        if small { Held::Inline(v) } else { Held::Shared(Arc::new(v)) }
    }

    /// The value, moved out when this is its only holder, else copied.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Held::Inline(v) => v,
            Held::Shared(a) => Arc::unwrap_or_clone(a),
        }
    }

    /// The value as an `Arc` (shared ones are not copied).
    pub(crate) fn into_arc(self) -> Arc<Value> {
        match self {
            Held::Inline(v) => Arc::new(v),
            Held::Shared(a) => a,
        }
    }

    /// The value, mutable (a shared one is copied first).
    pub(crate) fn make_mut(&mut self) -> &mut Value {
        match self {
            Held::Inline(v) => v,
            Held::Shared(a) => Arc::make_mut(a),
        }
    }
}

impl std::ops::Deref for Held {
    type Target = Value;

    fn deref(&self) -> &Value {
        match self {
            Held::Inline(v) => v,
            Held::Shared(a) => a,
        }
    }
}

impl From<Arc<Value>> for Held {
    fn from(a: Arc<Value>) -> Self {
        Held::Shared(a)
    }
}

/// An op's resolved inputs, by name. Names are shared with the compiled plan, so building
/// one costs a single allocation for the values. Values are shared with the run that
/// resolved them (a large graph input is not copied per op): read them with
/// [`Inputs::get`] or [`Inputs::parse`], which copy nothing; [`Inputs::take`] copies a
/// value only when the run still holds it.
#[derive(Debug, Clone)]
pub struct Inputs {
    names: Arc<[Arc<str>]>,
    values: Vec<Held>,
}

impl Inputs {
    /// Inputs from parallel lists of names and values.
    pub fn new(names: Arc<[Arc<str>]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values: values.into_iter().map(Held::new).collect() }
    }

    /// Inputs from parallel lists of names and shared values (nothing is copied).
    pub fn shared(names: Arc<[Arc<str>]>, values: Vec<Arc<Value>>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values: values.into_iter().map(Held::Shared).collect() }
    }

    /// Inputs from parallel lists of names and held values.
    pub(crate) fn held(names: Arc<[Arc<str>]>, values: Vec<Held>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values }
    }

    /// Inputs from a JSON object (handy in tests and when calling an op directly).
    pub fn from_map(map: Map<String, Value>) -> Self {
        let (names, values): (Vec<Arc<str>>, Vec<Held>) =
            map.into_iter().map(|(k, v)| (Arc::from(k.as_str()), Held::new(v))).unzip();
        Self { names: names.into(), values }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// The value of input `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.index(name).map(|i| &*self.values[i])
    }

    /// Take the value of input `name`, leaving `null` behind. The value is copied when the
    /// run still holds it (a graph input, an output other ops read too); an op that only
    /// reads a value should use [`Inputs::get`] or [`Inputs::parse`] instead.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.take_held(name).map(Held::into_value)
    }

    /// Take the shared value of input `name`, leaving `null` behind (nothing is copied).
    pub fn take_shared(&mut self, name: &str) -> Option<Arc<Value>> {
        self.take_held(name).map(Held::into_arc)
    }

    fn take_held(&mut self, name: &str) -> Option<Held> {
        let i = self.index(name)?;
        Some(std::mem::replace(&mut self.values[i], Held::Inline(Value::Null)))
    }

    /// Deserialize input `name` (read in place: the value is not copied first); a missing
    /// input is read as `null`.
    pub fn parse<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, OpError> {
        let parsed = match self.get(name) {
            Some(v) => T::deserialize(v),
            None => T::deserialize(&Value::Null),
        };
        parsed.map_err(|e| OpError::input(name, e.to_string()))
    }

    /// Take input `name`, failing when it is absent.
    pub fn require(&mut self, name: &str) -> Result<Value, OpError> {
        self.take(name).ok_or_else(|| OpError::input(name, "required input not provided"))
    }

    /// Iterate `(name, value)` pairs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.names.iter().map(|n| &**n).zip(self.values.iter().map(|v| &**v))
    }

    /// Iterate `(name, value)` pairs with the values mutable (a shared value is copied
    /// first).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.names.iter().map(|n| &**n).zip(self.values.iter_mut().map(Held::make_mut))
    }

    /// Iterate `(name, shared value)` pairs in declaration order.
    pub(crate) fn shared_entries(&self) -> impl Iterator<Item = (&Arc<str>, &Held)> {
        self.names.iter().zip(&self.values)
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No inputs at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Convert into a JSON object (shared values are copied).
    pub fn into_map(self) -> Map<String, Value> {
        self.names.iter().map(|n| n.to_string()).zip(self.values.into_iter().map(Held::into_value)).collect()
    }
}

/// A run's inputs, each value held once and shared with the run (see
/// [`crate::GraphRun::traced_shared`]): a large input is never copied to seed a run.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    entries: Vec<(String, Arc<Value>)>,
}

impl RunInputs {
    /// Take the values of a JSON object (moved, not copied).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { entries: map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect() }
    }

    /// The value of input `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Value>> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Iterate `(name, value)` pairs in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), &**v))
    }

    /// A copy as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
    }
}

/// One output frame of an op: named values. Values are shared once made (cloning outputs
/// to record them, store them for downstream ops or journal them copies no value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    entries: Vec<(Cow<'static, str>, Held)>,
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single output.
    pub fn one(name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        Self { entries: vec![(name.into(), Held::new(value.into()))] }
    }

    /// A single output holding a shared value (an input passed on, say): nothing is copied.
    pub fn one_shared(name: impl Into<Cow<'static, str>>, value: Arc<Value>) -> Self {
        Self { entries: vec![(name.into(), Held::Shared(value))] }
    }

    /// Add an output (builder style).
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Set an output, replacing a previous value of the same name.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.insert_held(name.into(), Held::new(value.into()));
    }

    /// Set an output to a shared value, replacing a previous value of the same name.
    pub fn insert_shared(&mut self, name: impl Into<Cow<'static, str>>, value: Arc<Value>) {
        self.insert_held(name.into(), Held::Shared(value));
    }

    fn insert_held(&mut self, name: Cow<'static, str>, value: Held) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// An op's return value: an object's keys are the outputs; any other value is the
    /// single output `result`.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(m) => Self::from_map(m),
            other => Self::one("result", other),
        }
    }

    /// Outputs from a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), Held::new(v))).collect() }
    }

    /// Serialize any value into outputs (see [`Outputs::from_value`]).
    pub fn serialize<T: serde::Serialize>(value: &T) -> Result<Self, OpError> {
        serde_json::to_value(value)
            .map(Self::from_value)
            .map_err(|e| OpError::new(format!("could not serialize the op's return value: {e}")))
    }

    /// Outputs from an op's return value, named `output` when given (the whole value
    /// becomes that one output), else split like [`Outputs::from_value`].
    pub fn from_return<T: serde::Serialize>(value: &T, output: Option<&'static str>) -> Result<Self, OpError> {
        match output {
            None => Self::serialize(value),
            Some(name) => serde_json::to_value(value)
                .map(|v| Self::one(name, v))
                .map_err(|e| OpError::new(format!("could not serialize the op's return value: {e}"))),
        }
    }

    /// The value of output `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.get_held(name).map(|v| &**v)
    }

    /// The held value of output `name`.
    pub(crate) fn get_held(&self, name: &str) -> Option<&Held> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Iterate `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Take the value of output `name`, leaving `null` behind (copied when shared).
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.entries
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::mem::replace(v, Held::Inline(Value::Null)).into_value())
    }

    /// Iterate `(name, value)` pairs with the values mutable (a shared value is copied
    /// first).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(n, v)| (&**n, v.make_mut()))
    }

    /// The only output, when there is exactly one.
    pub(crate) fn single(&self) -> Option<(&Cow<'static, str>, &Value)> {
        match self.entries.as_slice() {
            [(name, value)] => Some((name, &**value)),
            _ => None,
        }
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No outputs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Convert into a JSON object (shared values are copied).
    pub fn into_map(self) -> Map<String, Value> {
        self.entries.into_iter().map(|(k, v)| (k.into_owned(), v.into_value())).collect()
    }
}

impl serde::Serialize for Outputs {
    /// As a JSON object of the outputs (nothing is copied).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (&**k, &**v)))
    }
}

impl From<Map<String, Value>> for Outputs {
    fn from(m: Map<String, Value>) -> Self {
        Self::from_map(m)
    }
}
