//! ParserOp logic: extract typed fields from JSON, YAML or XML text.
//!
//! A [`ParserSpec`] is compiled once from the op's literal configuration
//! (`mode`, `schema`, `validators`) and then run on each `text` input:
//!
//! 1. a Markdown code fence around the payload is removed;
//! 2. the text is parsed according to the mode;
//! 3. each schema field (`"user.name: str"`) is looked up by its dotted path
//!    and coerced by its type hint;
//! 4. validators restrict fields to allowed values (with an `@fallback`).
//!
//! [`ParserSpec::run`] never fails: problems are reported in the `"error"`
//! output.

mod coerce;
mod fence;
mod pyjson;
mod schema;
mod validate;
mod xml;
mod yaml;
mod yaml11;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::{Map, Value};

pub(crate) use operonx_graph::type_names::json_type_name;
use schema::Field;
use validate::Validator;

/// The name of the output carrying the error message (null on success).
pub const ERROR_OUTPUT: &str = "error";

/// The configuration of a ParserOp is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parser config: {0}")]
pub struct ParserConfigError(String);

impl ParserConfigError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The problem, without the `invalid parser config:` prefix.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The text format a [`ParserSpec`] parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// JSON (`serde_json`).
    Json,
    /// YAML, first document only.
    Yaml,
    /// XML; the default mode.
    Xml,
}

impl ParseMode {
    /// Parse the `mode` input: null/absent → XML; otherwise a
    /// case-insensitive `"json"`, `"yaml"`/`"yml"` or `"xml"`.
    pub fn from_value(mode: Option<&Value>) -> Result<Self, ParserConfigError> {
        match mode {
            None | Some(Value::Null) => Ok(Self::Xml),
            Some(Value::String(name)) => match name.trim().to_ascii_lowercase().as_str() {
                "json" => Ok(Self::Json),
                "yaml" | "yml" => Ok(Self::Yaml),
                "xml" => Ok(Self::Xml),
                _ => Err(ParserConfigError::new(format!(
                    "unsupported mode {name:?} (expected \"json\", \"yaml\" or \"xml\")"
                ))),
            },
            Some(other) => Err(ParserConfigError::new(format!("mode must be a string, got {}", json_type_name(other)))),
        }
    }

    /// The lower-case name used in error messages (`json`, `yaml`, `xml`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Xml => "xml",
        }
    }

    /// Parse `text` into a JSON value.
    fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Self::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
            Self::Yaml => yaml::parse(text),
            Self::Xml => xml::parse(text),
        }
    }
}

impl fmt::Display for ParseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled ParserOp configuration.
#[derive(Debug, Clone)]
pub struct ParserSpec {
    mode: ParseMode,
    fields: Vec<Field>,
    validators: Vec<Validator>,
}

impl ParserSpec {
    /// Compile the op's literal configuration.
    ///
    /// - `mode`: null/absent → XML; a case-insensitive `"json"`,
    ///   `"yaml"`/`"yml"` or `"xml"`; anything else is an error naming it.
    /// - `schema`: null/absent → no fields (the output then holds just
    ///   `"error"`); else a list of `"a.b.c: type"` strings (type optional).
    ///   Two fields producing the same output name, or a field named
    ///   `error`, are rejected.
    /// - `validators`: null/absent or an object `{field: [allowed...]}`
    ///   where `field` is a schema field's output name or full path.
    pub fn new(
        mode: Option<&Value>,
        schema: Option<&Value>,
        validators: Option<&Value>,
    ) -> Result<Self, ParserConfigError> {
        let mode = ParseMode::from_value(mode)?;
        let fields = schema::parse_schema(schema)?;
        let validators = validate::parse_validators(validators, &fields)?;
        Ok(Self { mode, fields, validators })
    }

    /// The parse mode.
    pub fn mode(&self) -> ParseMode {
        self.mode
    }

    /// The names of the outputs this spec produces: one per schema field
    /// (its last path segment), in schema order, then `"error"`.
    pub fn output_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).chain(std::iter::once(ERROR_OUTPUT.to_owned())).collect()
    }

    /// Parse `text` and extract the fields. Never fails.
    ///
    /// On success the map holds every field (in schema order) followed by
    /// `"error": null`. On failure it holds only `"error"` with a message:
    /// `Empty input text`, `Parse error (<mode>): ...` or
    /// `Validation failed: ...`.
    pub fn run(&self, text: &Value) -> Map<String, Value> {
        match self.try_run(text) {
            Ok(mut fields) => {
                fields.insert(ERROR_OUTPUT.to_owned(), Value::Null);
                fields
            }
            Err(message) => {
                let mut map = Map::new();
                map.insert(ERROR_OUTPUT.to_owned(), Value::String(message));
                map
            }
        }
    }

    fn try_run(&self, text: &Value) -> Result<Map<String, Value>, String> {
        let text = match text {
            Value::String(s) if !s.trim().is_empty() => s,
            _ => return Err("Empty input text".to_owned()),
        };
        let body = fence::strip_code_fence(text);
        let document = self.mode.parse(&body).map_err(|e| {
            // JSON errors read as the reference engine's (Python's `json`) when it
            // rejects the text too; otherwise as serde_json's.
            let e = match self.mode {
                ParseMode::Json => pyjson::error_message(&body).unwrap_or(e),
                _ => e,
            };
            format!("Parse error ({}): {e}", self.mode)
        })?;

        let mut result = Map::with_capacity(self.fields.len() + 1);
        for field in &self.fields {
            let value = schema::lookup(&document, &field.segments).cloned().unwrap_or(Value::Null);
            result.insert(field.name.clone(), field.hint.apply(value));
        }
        for validator in &self.validators {
            validator.apply(&mut result)?;
        }
        Ok(result)
    }
}
