//! The values an op receives ([`Inputs`]) and returns ([`Outputs`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::op::OpError;

/// An op's resolved inputs, by name. Names are shared with the compiled plan, so building
/// one costs a single allocation for the values.
#[derive(Debug, Clone)]
pub struct Inputs {
    names: Arc<[Arc<str>]>,
    values: Vec<Value>,
}

impl Inputs {
    /// Inputs from parallel lists of names and values.
    pub fn new(names: Arc<[Arc<str>]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values }
    }

    /// Inputs from a JSON object (handy in tests and when calling an op directly).
    pub fn from_map(map: Map<String, Value>) -> Self {
        let (names, values): (Vec<Arc<str>>, Vec<Value>) =
            map.into_iter().map(|(k, v)| (Arc::from(k.as_str()), v)).unzip();
        Self { names: names.into(), values }
    }

    /// The value of input `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.names.iter().position(|n| &**n == name).map(|i| &self.values[i])
    }

    /// Take the value of input `name`, leaving `null` behind.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let i = self.names.iter().position(|n| &**n == name)?;
        Some(std::mem::take(&mut self.values[i]))
    }

    /// Take input `name` and deserialize it; a missing input is read as `null`.
    pub fn parse<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, OpError> {
        let v = self.take(name).unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| OpError::input(name, e.to_string()))
    }

    /// Take input `name`, failing when it is absent.
    pub fn require(&mut self, name: &str) -> Result<Value, OpError> {
        self.take(name).ok_or_else(|| OpError::input(name, "required input not provided"))
    }

    /// Iterate `(name, value)` pairs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.names.iter().map(|n| &**n).zip(&self.values)
    }

    /// Iterate `(name, value)` pairs with the values mutable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.names.iter().map(|n| &**n).zip(&mut self.values)
    }

    /// The only input, when there is exactly one.
    pub(crate) fn single(&self) -> Option<(&Arc<str>, &Value)> {
        match (&*self.names, self.values.as_slice()) {
            ([name], [value]) => Some((name, value)),
            _ => None,
        }
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No inputs at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Convert into a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        self.names.iter().map(|n| n.to_string()).zip(self.values).collect()
    }
}

/// One output frame of an op: named values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    entries: Vec<(Cow<'static, str>, Value)>,
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single output.
    pub fn one(name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        Self { entries: vec![(name.into(), value.into())] }
    }

    /// Add an output (builder style).
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Set an output, replacing a previous value of the same name.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
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
        Self { entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect() }
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
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Iterate `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(n, v)| (&**n, v))
    }

    /// Iterate `(name, value)` pairs with the values mutable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(n, v)| (&**n, v))
    }

    /// The only output, when there is exactly one.
    pub(crate) fn single(&self) -> Option<(&Cow<'static, str>, &Value)> {
        match self.entries.as_slice() {
            [(name, value)] => Some((name, value)),
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

    /// Convert into a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        self.entries.into_iter().map(|(k, v)| (k.into_owned(), v)).collect()
    }
}

impl From<Map<String, Value>> for Outputs {
    fn from(m: Map<String, Value>) -> Self {
        Self::from_map(m)
    }
}
