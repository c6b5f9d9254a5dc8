//! Reading a graph.json document: the envelope, then the root op.

use serde_json::Value;

use crate::error::GraphError;
pub use crate::type_names::kind_of;
use crate::wire::{OpConfig, SCHEMA_VERSION};

/// A parsed graph.json: the root graph op and the schema version it declared.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphDocument {
    /// Always [`SCHEMA_VERSION`] once loaded.
    pub schema_version: String,
    /// The root graph.
    pub root: OpConfig,
}

impl GraphDocument {
    /// Parse a graph.json text.
    pub fn from_json_str(text: &str) -> Result<Self, GraphError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| GraphError::Json { path: "$".into(), source })?;
        Self::from_value(value)
    }

    /// Parse an already-decoded graph.json value.
    pub fn from_value(value: Value) -> Result<Self, GraphError> {
        let Value::Object(mut map) = value else {
            return Err(GraphError::Schema(format!("a graph document must be a JSON object, got {}", kind_of(&value))));
        };
        let version = match map.shift_remove("schema_version") {
            None => return Err(GraphError::Schema("missing (expected \"1.0\")".into())),
            Some(Value::String(s)) if s == SCHEMA_VERSION => s,
            Some(Value::String(s)) => {
                return Err(GraphError::Schema(format!(
                    "unsupported schema_version \"{s}\"; this engine reads \"{SCHEMA_VERSION}\""
                )));
            }
            Some(other) => {
                return Err(GraphError::Schema(format!("must be the string \"1.0\", got {}", kind_of(&other))));
            }
        };
        map.entry("type").or_insert_with(|| Value::String("graph".into()));
        let root = parse_op(Value::Object(map), "$")?;
        Ok(Self { schema_version: version, root })
    }

    /// Serialize back to a graph.json value (with `schema_version`).
    pub fn to_value(&self) -> Value {
        let mut v = serde_json::to_value(&self.root).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("schema_version".into(), Value::String(self.schema_version.clone()));
        }
        v
    }
}

/// Deserialize one op config, reporting the JSON path of a shape error.
pub(crate) fn parse_op(value: Value, path: &str) -> Result<OpConfig, GraphError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." { path.to_string() } else { format!("{path}.{inner}") };
        GraphError::Json { path, source: e.into_inner() }
    })
}
