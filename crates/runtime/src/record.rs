//! The values an op receives ([`Inputs`]) and returns ([`Outputs`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::op::OpError;

/// An op's resolved inputs, by name. Names are shared with the compiled plan, so building
/// one costs a single allocation for the values. Values are shared with the run that
/// resolved them (a large graph input is not copied per op): read them with
/// [`Inputs::get`] or [`Inputs::parse`], which copy nothing; [`Inputs::take`] copies a
/// value only when the run still holds it.
#[derive(Debug, Clone)]
pub struct Inputs {
    names: Arc<[Arc<str>]>,
    values: Vec<Arc<Value>>,
}

/// The `null` left behind by [`Inputs::take`] (shared: taking allocates nothing).
static NULL: std::sync::LazyLock<Arc<Value>> = std::sync::LazyLock::new(|| Arc::new(Value::Null));

impl Inputs {
    /// Inputs from parallel lists of names and values.
    pub fn new(names: Arc<[Arc<str>]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values: values.into_iter().map(Arc::new).collect() }
    }

    /// Inputs from parallel lists of names and shared values (nothing is copied).
    pub fn shared(names: Arc<[Arc<str>]>, values: Vec<Arc<Value>>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values }
    }

    /// Inputs from a JSON object (handy in tests and when calling an op directly).
    pub fn from_map(map: Map<String, Value>) -> Self {
        let (names, values): (Vec<Arc<str>>, Vec<Arc<Value>>) =
            map.into_iter().map(|(k, v)| (Arc::from(k.as_str()), Arc::new(v))).unzip();
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
        self.take_shared(name).map(Arc::unwrap_or_clone)
    }

    /// Take the shared value of input `name`, leaving `null` behind (nothing is copied).
    pub fn take_shared(&mut self, name: &str) -> Option<Arc<Value>> {
        let i = self.index(name)?;
        Some(std::mem::replace(&mut self.values[i], NULL.clone()))
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
        self.names.iter().map(|n| &**n).zip(self.values.iter_mut().map(Arc::make_mut))
    }

    /// Iterate `(name, shared value)` pairs in declaration order.
    pub(crate) fn shared_entries(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Value>)> {
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
        self.names.iter().map(|n| n.to_string()).zip(self.values.into_iter().map(Arc::unwrap_or_clone)).collect()
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
    entries: Vec<(Cow<'static, str>, Arc<Value>)>,
}

impl Outputs {
    /// No outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single output.
    pub fn one(name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        Self { entries: vec![(name.into(), Arc::new(value.into()))] }
    }

    /// A single output holding a shared value (an input passed on, say): nothing is copied.
    pub fn one_shared(name: impl Into<Cow<'static, str>>, value: Arc<Value>) -> Self {
        Self { entries: vec![(name.into(), value)] }
    }

    /// Add an output (builder style).
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Set an output, replacing a previous value of the same name.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.insert_shared(name, Arc::new(value.into()));
    }

    /// Set an output to a shared value, replacing a previous value of the same name.
    pub fn insert_shared(&mut self, name: impl Into<Cow<'static, str>>, value: Arc<Value>) {
        let name = name.into();
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
        Self { entries: map.into_iter().map(|(k, v)| (Cow::Owned(k), Arc::new(v))).collect() }
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
        self.get_shared(name).map(|v| &**v)
    }

    /// The shared value of output `name`.
    pub fn get_shared(&self, name: &str) -> Option<&Arc<Value>> {
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
            .map(|(_, v)| Arc::unwrap_or_clone(std::mem::replace(v, NULL.clone())))
    }

    /// Iterate `(name, value)` pairs with the values mutable (a shared value is copied
    /// first).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(n, v)| (&**n, Arc::make_mut(v)))
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

    /// Convert into a JSON object (shared values are copied).
    pub fn into_map(self) -> Map<String, Value> {
        self.entries.into_iter().map(|(k, v)| (k.into_owned(), Arc::unwrap_or_clone(v))).collect()
    }
}

impl From<Map<String, Value>> for Outputs {
    fn from(m: Map<String, Value>) -> Self {
        Self::from_map(m)
    }
}
