//! PromptOp logic: turn a template plus variables into a chat message list.
//!
//! A [`PromptTemplate`] is compiled once from the op's literal `template`
//! input. Accepted forms:
//!
//! - null → no messages;
//! - a string → one `{"role": "user", "content": <formatted>}` message;
//! - an object with a `system` and/or `user` key → a system message then a
//!   user message (other keys ignored);
//! - any other object → one raw message whose string values are formatted
//!   recursively;
//! - an array → each element formatted recursively (pre-built message
//!   lists, multimodal content parts, ...).
//!
//! Strings follow Python's `str.format_map` (see [`template`]): a string
//! containing `{` is formatted, so `{{`/`}}` become literal braces,
//! `{name!r:>8}` applies a conversion and a format spec, and braces that do
//! not form a variable's field (JSON text, `{0}`, a lone `{`) are an error;
//! a string without `{` is used verbatim. Values render with Python `str()`.

mod spec;
mod template;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use serde_json::{Map, Value};

use template::{FormatString, RenderError};

/// An error compiling or rendering a prompt template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// Variables referenced by the template were not supplied (in order of
    /// first appearance).
    #[error("missing template variable(s): {}", .0.join(", "))]
    MissingVariables(Vec<String>),
    /// A string of the template is not a valid format string for the
    /// given values (bad braces, a positional field, a format spec that
    /// does not apply, ...).
    #[error("template format error: {0}")]
    Format(String),
    /// The template value has an unsupported shape.
    #[error("invalid prompt template: {0}")]
    InvalidTemplate(String),
    /// A history element is not an object with a `"role"` key.
    #[error("invalid history: the message at index {0} must be an object with a \"role\" key")]
    InvalidHistory(usize),
}

/// A template value compiled recursively: strings become format strings,
/// containers keep their shape, other scalars are kept as-is.
#[derive(Debug, Clone)]
enum Node {
    Text(FormatString),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
    Literal(Value),
}

impl Node {
    fn compile(value: &Value) -> Self {
        match value {
            Value::String(s) => Self::Text(FormatString::compile(s)),
            Value::Array(items) => Self::Array(items.iter().map(Self::compile).collect()),
            Value::Object(map) => Self::Object(map.iter().map(|(k, v)| (k.clone(), Self::compile(v))).collect()),
            other => Self::Literal(other.clone()),
        }
    }

    /// Visit the format strings in document order.
    fn for_each_text<'a>(&'a self, visit: &mut dyn FnMut(&'a FormatString)) {
        match self {
            Self::Text(text) => visit(text),
            Self::Array(items) => items.iter().for_each(|n| n.for_each_text(visit)),
            Self::Object(entries) => entries.iter().for_each(|(_, n)| n.for_each_text(visit)),
            Self::Literal(_) => {}
        }
    }

    /// Render every string with `lookup`.
    fn render(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Value, PromptError> {
        Ok(match self {
            Self::Text(text) => Value::String(text.render(lookup).map_err(|e| match e {
                RenderError::Missing(name) => PromptError::MissingVariables(vec![name]),
                RenderError::Format(message) => PromptError::Format(message),
            })?),
            Self::Array(items) => Value::Array(items.iter().map(|n| n.render(lookup)).collect::<Result<_, _>>()?),
            Self::Object(entries) => Value::Object(
                entries.iter().map(|(k, n)| Ok((k.clone(), n.render(lookup)?))).collect::<Result<_, PromptError>>()?,
            ),
            Self::Literal(value) => value.clone(),
        })
    }
}

/// The overall shape of a template.
#[derive(Debug, Clone)]
enum Shape {
    /// `null`: no messages.
    Empty,
    /// A string: one user message.
    User(Node),
    /// `{"system": ..., "user": ...}`: a system then a user message.
    Chat { system: Option<Node>, user: Option<Node> },
    /// Any other object: one raw message.
    Message(Node),
    /// An array: the list itself.
    List(Vec<Node>),
}

/// A compiled prompt template.
#[derive(Debug, Clone)]
pub struct PromptTemplate {
    shape: Shape,
    variables: Vec<String>,
}

impl PromptTemplate {
    /// Compile the literal `template` input (placeholders are parsed here,
    /// once). Booleans and numbers, and `system`/`user` entries that are
    /// not a string, a list of content parts or null, are rejected.
    pub fn new(template: &Value) -> Result<Self, PromptError> {
        let shape = match template {
            Value::Null => Shape::Empty,
            Value::String(_) => Shape::User(Node::compile(template)),
            Value::Object(map) if map.contains_key("system") || map.contains_key("user") => {
                Shape::Chat { system: chat_entry(map, "system")?, user: chat_entry(map, "user")? }
            }
            Value::Object(_) => Shape::Message(Node::compile(template)),
            Value::Array(items) => Shape::List(items.iter().map(Node::compile).collect()),
            Value::Bool(_) | Value::Number(_) => {
                return Err(PromptError::InvalidTemplate(format!(
                    "expected a string, an object, a list or null, got {}",
                    crate::parser::json_type_name(template)
                )));
            }
        };

        let mut variables: Vec<String> = Vec::new();
        let mut collect = |text: &FormatString| {
            for name in text.variables() {
                if !variables.iter().any(|v| v == name) {
                    variables.push(name.to_owned());
                }
            }
        };
        match &shape {
            Shape::Empty => {}
            Shape::User(node) | Shape::Message(node) => node.for_each_text(&mut collect),
            Shape::Chat { system, user } => {
                for node in [system, user].into_iter().flatten() {
                    node.for_each_text(&mut collect);
                }
            }
            Shape::List(nodes) => nodes.iter().for_each(|n| n.for_each_text(&mut collect)),
        }
        Ok(Self { shape, variables })
    }

    /// Every variable name the template references, in order of first
    /// appearance, deduplicated.
    pub fn variables(&self) -> Vec<&str> {
        self.variables.iter().map(String::as_str).collect()
    }

    /// Render the message list.
    ///
    /// `vars` looks up a variable by name; every referenced variable it
    /// does not supply is reported in one [`PromptError::MissingVariables`].
    /// Strings without a `{` are passed through unchanged. `history` messages (objects with a
    /// `"role"`) are inserted before the last user message, or appended
    /// when there is none; `tool_results` are appended at the end (see
    /// [`tool_message`]).
    pub fn render(
        &self,
        vars: &dyn Fn(&str) -> Option<Value>,
        history: &[Value],
        tool_results: &[Value],
    ) -> Result<Vec<Value>, PromptError> {
        let mut values = HashMap::with_capacity(self.variables.len());
        let mut missing = Vec::new();
        for name in &self.variables {
            match vars(name) {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(PromptError::MissingVariables(missing));
        }
        if let Some(index) = history.iter().position(|m| !is_message(m)) {
            return Err(PromptError::InvalidHistory(index));
        }

        let lookup = |name: &str| values.get(name).cloned();
        let mut messages = self.render_messages(&lookup)?;

        let insert_at = messages
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .unwrap_or(messages.len());
        messages.splice(insert_at..insert_at, history.iter().cloned());
        messages.extend(tool_results.iter().map(tool_message));
        Ok(messages)
    }

    fn render_messages(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<Vec<Value>, PromptError> {
        match &self.shape {
            Shape::Empty => Ok(Vec::new()),
            Shape::User(node) => Ok(vec![message("user", node.render(lookup)?)]),
            Shape::Chat { system, user } => [("system", system), ("user", user)]
                .into_iter()
                .filter_map(|(role, node)| node.as_ref().map(|n| Ok(message(role, n.render(lookup)?))))
                .collect(),
            Shape::Message(node) => Ok(vec![node.render(lookup)?]),
            Shape::List(nodes) => nodes.iter().map(|n| n.render(lookup)).collect(),
        }
    }
}

/// Compile the `system` or `user` entry of a chat-shaped template.
fn chat_entry(map: &Map<String, Value>, key: &str) -> Result<Option<Node>, PromptError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ (Value::String(_) | Value::Array(_))) => Ok(Some(Node::compile(value))),
        Some(other) => Err(PromptError::InvalidTemplate(format!(
            "the {key:?} entry must be a string, a list of content parts or null, got {}",
            crate::parser::json_type_name(other)
        ))),
    }
}

/// `{"role": role, "content": content}`.
fn message(role: &str, content: Value) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert("role".to_owned(), Value::String(role.to_owned()));
    map.insert("content".to_owned(), content);
    Value::Object(map)
}

/// An object with a `"role"` key.
fn is_message(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key("role"))
}

/// Turn a tool result into a message: an object with a `"role"` is kept
/// as-is; an object with `"tool_call_id"` and `"content"` becomes
/// `{"role": "tool", "tool_call_id": .., "content": ..}`; anything else
/// becomes `{"role": "tool", "content": ..}`. Content is a string, or the
/// compact JSON of a non-string value.
pub fn tool_message(result: &Value) -> Value {
    if is_message(result) {
        return result.clone();
    }
    let as_text = |value: &Value| match value {
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    };
    if let Value::Object(map) = result
        && let (Some(id), Some(content)) = (map.get("tool_call_id"), map.get("content"))
    {
        let mut out = Map::with_capacity(3);
        out.insert("role".to_owned(), Value::String("tool".to_owned()));
        out.insert("tool_call_id".to_owned(), id.clone());
        out.insert("content".to_owned(), as_text(content));
        return Value::Object(out);
    }
    message("tool", as_text(result))
}
