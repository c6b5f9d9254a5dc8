//! Refs: where an input (or a branch condition) reads its value, with the transforms
//! applied to it and the stream policy a consumer uses.

use serde_json::{Map, Value};

use crate::wire::{RefSpec, StreamPolicySpec};

/// A reference to a variable of the enclosing graph ([`parent`]) or of a sibling op
/// ([`out`]), plus the transforms applied to it, in order.
///
/// ```
/// use operonx_graph::builder::{out, parent};
///
/// let in_range = out("score", "value").get("points").ge(70).and(parent("strict").not());
/// let each = out("gen", "item").parallel(4);
/// # let _ = (in_range, each);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a ref does nothing until an op input or a branch case uses it"]
pub struct Ref {
    pub(super) source: RefSource,
    pub(super) var: String,
    pub(super) transforms: Vec<Step>,
    pub(super) policy: Option<StreamPolicySpec>,
}

/// What a ref reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefSource {
    /// The enclosing graph's own variables (its inputs, or loop state).
    Parent,
    /// A sibling op, by short name.
    Op(String),
}

/// One `[name, [args]]` transform.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) name: &'static str,
    pub(super) args: Vec<Operand>,
}

/// An argument of a ref transform: a constant, or another ref evaluated in the same
/// context (written `{"__ref__": {...}}`).
#[derive(Debug, Clone)]
pub enum Operand {
    /// A JSON constant.
    Value(Value),
    /// A nested ref.
    Ref(Box<Ref>),
}

impl From<Ref> for Operand {
    fn from(r: Ref) -> Self {
        Operand::Ref(Box::new(r))
    }
}

impl<T: Into<Value>> From<T> for Operand {
    fn from(v: T) -> Self {
        Operand::Value(v.into())
    }
}

/// A ref to variable `var` of the enclosing graph: a graph input, or a loop variable.
pub fn parent(var: impl Into<String>) -> Ref {
    Ref { source: RefSource::Parent, var: var.into(), transforms: Vec::new(), policy: None }
}

/// A ref to output `var` of sibling op `op` (its short name). Reading another op adds
/// an edge from it, so the reader runs after it.
pub fn out(op: impl Into<String>, var: impl Into<String>) -> Ref {
    Ref { source: RefSource::Op(op.into()), var: var.into(), transforms: Vec::new(), policy: None }
}

impl Ref {
    fn step(mut self, name: &'static str, args: Vec<Operand>) -> Self {
        self.transforms.push(Step { name, args });
        self
    }

    fn binary(self, name: &'static str, arg: impl Into<Operand>) -> Self {
        self.step(name, vec![arg.into()])
    }

    /// `v[key]`: an object key, or a list index (negative counts from the end).
    pub fn get(self, key: impl Into<Value>) -> Self {
        self.step("getitem", vec![Operand::Value(key.into())])
    }

    /// `v.name`: on an object, the key `name`.
    pub fn attr(self, name: impl Into<String>) -> Self {
        self.step("getattr", vec![Operand::Value(Value::String(name.into()))])
    }

    /// `v + arg` (numbers add; strings and lists concatenate).
    #[allow(clippy::should_implement_trait, reason = "builds a transform, like the wire name")]
    pub fn add(self, arg: impl Into<Operand>) -> Self {
        self.binary("add", arg)
    }

    /// `v - arg`.
    #[allow(clippy::should_implement_trait, reason = "builds a transform, like the wire name")]
    pub fn sub(self, arg: impl Into<Operand>) -> Self {
        self.binary("sub", arg)
    }

    /// `v * arg`.
    #[allow(clippy::should_implement_trait, reason = "builds a transform, like the wire name")]
    pub fn mul(self, arg: impl Into<Operand>) -> Self {
        self.binary("mul", arg)
    }

    /// `v / arg` (always a float).
    pub fn truediv(self, arg: impl Into<Operand>) -> Self {
        self.binary("truediv", arg)
    }

    /// `v // arg` (Python floor division).
    pub fn floordiv(self, arg: impl Into<Operand>) -> Self {
        self.binary("floordiv", arg)
    }

    /// `v % arg` (Python modulo; wire name `mod`).
    pub fn modulo(self, arg: impl Into<Operand>) -> Self {
        self.binary("mod", arg)
    }

    /// `v ** arg`.
    pub fn pow(self, arg: impl Into<Operand>) -> Self {
        self.binary("pow", arg)
    }

    /// `-v`.
    #[allow(clippy::should_implement_trait, reason = "builds a transform, like the wire name")]
    pub fn neg(self) -> Self {
        self.step("neg", Vec::new())
    }

    /// `abs(v)`.
    pub fn abs(self) -> Self {
        self.step("abs", Vec::new())
    }

    /// `v == arg`.
    pub fn eq(self, arg: impl Into<Operand>) -> Self {
        self.binary("eq", arg)
    }

    /// `v != arg`.
    pub fn ne(self, arg: impl Into<Operand>) -> Self {
        self.binary("ne", arg)
    }

    /// `v < arg`.
    pub fn lt(self, arg: impl Into<Operand>) -> Self {
        self.binary("lt", arg)
    }

    /// `v <= arg`.
    pub fn le(self, arg: impl Into<Operand>) -> Self {
        self.binary("le", arg)
    }

    /// `v > arg`.
    pub fn gt(self, arg: impl Into<Operand>) -> Self {
        self.binary("gt", arg)
    }

    /// `v >= arg`.
    pub fn ge(self, arg: impl Into<Operand>) -> Self {
        self.binary("ge", arg)
    }

    /// `item in v`.
    pub fn contains(self, item: impl Into<Operand>) -> Self {
        self.binary("contains", item)
    }

    /// Python `v and other`: `other` when `v` is truthy, else `v`.
    pub fn and(self, other: impl Into<Operand>) -> Self {
        self.binary("and_", other)
    }

    /// Python `v or other`: `v` when it is truthy, else `other`.
    pub fn or(self, other: impl Into<Operand>) -> Self {
        self.binary("or_", other)
    }

    /// Python `not v`.
    #[allow(clippy::should_implement_trait, reason = "builds a transform, like the wire name")]
    pub fn not(self) -> Self {
        self.step("not_", Vec::new())
    }

    /// Read a generator's whole stream as one list: the consumer runs once, after the
    /// stream ends, instead of once per item.
    pub fn collect(mut self) -> Self {
        self.policy = Some(StreamPolicySpec { collect: true, parallel: false, parallel_max: 0 });
        self
    }

    /// Run the per-item consumers of a stream concurrently, at most `max` at a time
    /// (0: bounded only by the graph's `max_concurrency`).
    pub fn parallel(mut self, max: u32) -> Self {
        self.policy = Some(StreamPolicySpec { collect: false, parallel: true, parallel_max: i64::from(max) });
        self
    }

    /// `true` when the consumer reads the source's whole stream at once.
    pub(super) fn is_collect(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| p.collect)
    }

    /// Call `f` on this ref (`nested == false` at the top) and on every ref nested in
    /// its transform arguments, depth first.
    pub(super) fn visit<'a>(&'a self, nested: bool, f: &mut dyn FnMut(&'a Ref, bool)) {
        f(self, nested);
        for step in &self.transforms {
            for arg in &step.args {
                if let Operand::Ref(r) = arg {
                    r.visit(true, f);
                }
            }
        }
    }

    /// The wire form, with `source` the full name of the graph (`graph_full`) or of the
    /// sibling op (`graph_full.op`).
    pub(super) fn to_spec(&self, graph_full: &str) -> RefSpec {
        let source = match &self.source {
            RefSource::Parent => graph_full.to_string(),
            RefSource::Op(op) => format!("{graph_full}.{op}"),
        };
        let transforms = self
            .transforms
            .iter()
            .map(|step| {
                let args = step
                    .args
                    .iter()
                    .map(|a| match a {
                        Operand::Value(v) => v.clone(),
                        Operand::Ref(r) => {
                            let mut m = Map::new();
                            m.insert("__ref__".into(), ref_value(&r.to_spec(graph_full)));
                            Value::Object(m)
                        }
                    })
                    .collect();
                Value::Array(vec![Value::String(step.name.into()), Value::Array(args)])
            })
            .collect();
        RefSpec { source, var: self.var.clone(), transforms, is_output: false, stream_policy: self.policy.clone() }
    }
}

/// A [`RefSpec`] as JSON (the form nested refs take inside transform arguments).
fn ref_value(spec: &RefSpec) -> Value {
    let mut m = Map::new();
    m.insert("source".into(), Value::String(spec.source.clone()));
    m.insert("var".into(), Value::String(spec.var.clone()));
    m.insert("transforms".into(), Value::Array(spec.transforms.clone()));
    m.insert("is_output".into(), Value::Bool(spec.is_output));
    if let Some(p) = &spec.stream_policy {
        let mut pm = Map::new();
        pm.insert("collect".into(), Value::Bool(p.collect));
        pm.insert("parallel".into(), Value::Bool(p.parallel));
        pm.insert("parallel_max".into(), Value::from(p.parallel_max));
        m.insert("stream_policy".into(), Value::Object(pm));
    }
    Value::Object(m)
}
