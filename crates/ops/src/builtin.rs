//! The built-in op types wired into a [`Registry`]: `parser` and `prompt`.

use std::sync::Arc;

use operonx_graph::wire::{OpConfig, ParamSpec};
use operonx_runtime::{Inputs, Invocation, Op, OpContext, OpError, Outputs, Registry};
use serde_json::Value;

use crate::parser::ParserSpec;
use crate::prompt::PromptTemplate;

/// Register the `parser` and `prompt` op types.
pub fn register_builtin_types(registry: &mut Registry) {
    registry.register_type("parser", Arc::new(|cfg: &OpConfig| Ok(Arc::new(ParserOp::new(cfg)?) as Arc<dyn Op>)));
    registry.register_type("prompt", Arc::new(|cfg: &OpConfig| Ok(Arc::new(PromptOp::new(cfg)?) as Arc<dyn Op>)));
}

/// The literal value of input `name`, when the graph gives it as a constant.
fn literal(cfg: &OpConfig, name: &str) -> Result<Option<Value>, String> {
    let Some(spec) = cfg.inputs.get(name) else { return Ok(None) };
    let p: ParamSpec = serde_json::from_value(spec.clone()).map_err(|e| format!("inputs.{name}: {e}"))?;
    if p.reference.is_some() || p.scratch.is_some() {
        return Ok(None);
    }
    Ok(p.literal.filter(|v| !v.is_null()).or(p.default.filter(|v| !v.is_null())))
}

fn is_dynamic(cfg: &OpConfig, name: &str) -> bool {
    cfg.inputs
        .get(name)
        .and_then(|s| s.as_object())
        .is_some_and(|m| m.get("ref").is_some_and(|r| !r.is_null()) || m.get("scratch").is_some_and(|r| !r.is_null()))
}

/// Extracts typed fields from JSON, YAML or XML text.
struct ParserOp {
    /// Compiled once when mode, schema and validators are constants.
    fixed: Option<ParserSpec>,
}

impl ParserOp {
    fn new(cfg: &OpConfig) -> Result<Self, String> {
        let dynamic = ["mode", "schema", "validators"].iter().any(|n| is_dynamic(cfg, n));
        let fixed = if dynamic {
            None
        } else {
            let (m, s, v) = (literal(cfg, "mode")?, literal(cfg, "schema")?, literal(cfg, "validators")?);
            Some(ParserSpec::new(m.as_ref(), s.as_ref(), v.as_ref()).map_err(|e| format!("parser config: {e}"))?)
        };
        Ok(Self { fixed })
    }
}

impl Op for ParserOp {
    fn accepts_objects(&self) -> bool {
        false
    }

    fn call(&self, inputs: Inputs, _ctx: &OpContext) -> Invocation {
        let text = inputs.get("text").cloned().unwrap_or(Value::Null);
        let out = match &self.fixed {
            Some(spec) => spec.run(&text),
            None => match ParserSpec::new(inputs.get("mode"), inputs.get("schema"), inputs.get("validators")) {
                Ok(spec) => spec.run(&text),
                Err(e) => return Invocation::Ready(Err(OpError::new(format!("parser config: {e}")))),
            },
        };
        Invocation::Ready(Ok(Outputs::from_map(out)))
    }
}

const RESERVED: [&str; 3] = ["template", "conversation_history", "tool_results"];

/// Renders a chat message list from a template.
struct PromptOp {
    fixed: Option<PromptTemplate>,
}

impl PromptOp {
    fn new(cfg: &OpConfig) -> Result<Self, String> {
        if is_dynamic(cfg, "template") {
            return Ok(Self { fixed: None });
        }
        let t = literal(cfg, "template")?.unwrap_or(Value::Null);
        let template = PromptTemplate::new(&t).map_err(|e| format!("prompt template: {e}"))?;
        Ok(Self { fixed: Some(template) })
    }
}

impl Op for PromptOp {
    fn accepts_objects(&self) -> bool {
        false
    }

    fn call(&self, inputs: Inputs, _ctx: &OpContext) -> Invocation {
        let dynamic;
        let template = match &self.fixed {
            Some(t) => t,
            None => match PromptTemplate::new(inputs.get("template").unwrap_or(&Value::Null)) {
                Ok(t) => {
                    dynamic = t;
                    &dynamic
                }
                Err(e) => return Invocation::Ready(Err(OpError::new(format!("prompt template: {e}")))),
            },
        };
        let list = |name: &str| -> Result<Vec<Value>, OpError> {
            match inputs.get(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(other) => Err(OpError::input(name, format!("must be a list of messages, got {other}"))),
            }
        };
        let result = (|| {
            let history = list("conversation_history")?;
            let tools = list("tool_results")?;
            let vars = |name: &str| -> Option<Value> {
                if RESERVED.contains(&name) { None } else { inputs.get(name).cloned() }
            };
            let messages = template.render(&vars, &history, &tools).map_err(|e| OpError::new(e.to_string()))?;
            Ok(Outputs::one("messages", Value::Array(messages)))
        })();
        Invocation::Ready(result)
    }
}
