//! Schema fields: `"a.b.c: type"` declarations and path lookup.

use serde_json::Value;

use super::ParserConfigError;
use super::coerce::TypeHint;
use super::json_type_name;

/// One field extracted from the parsed document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// The full dotted path as written in the schema (`user.name`).
    pub(crate) path: String,
    /// The path split into its segments.
    pub(crate) segments: Vec<String>,
    /// The output name: the last path segment.
    pub(crate) name: String,
    /// The type hint applied to the extracted value.
    pub(crate) hint: TypeHint,
}

/// Compile the `schema` input: null/absent → no fields, else a list of
/// `"path[: type]"` strings.
pub(crate) fn parse_schema(schema: Option<&Value>) -> Result<Vec<Field>, ParserConfigError> {
    let entries = match schema {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(ParserConfigError::new(format!(
                "schema must be a list of \"path: type\" strings, got {}",
                json_type_name(other)
            )));
        }
    };

    let mut fields: Vec<Field> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Value::String(text) = entry else {
            return Err(ParserConfigError::new(format!(
                "schema entry {index} must be a string, got {}",
                json_type_name(entry)
            )));
        };
        let field = parse_field(text)
            .map_err(|reason| ParserConfigError::new(format!("schema entry {index} ({text:?}): {reason}")))?;
        if field.name == "error" {
            return Err(ParserConfigError::new(format!(
                "schema field {:?} would produce the output \"error\", which is reserved",
                field.path
            )));
        }
        if let Some(previous) = fields.iter().find(|f| f.name == field.name) {
            return Err(ParserConfigError::new(format!(
                "schema fields {:?} and {:?} both produce the output {:?}",
                previous.path, field.path, field.name
            )));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Parse one `"path[: type]"` declaration.
fn parse_field(text: &str) -> Result<Field, String> {
    let (path, hint) = match text.split_once(':') {
        Some((path, hint)) => (path.trim(), TypeHint::parse(hint)),
        None => (text.trim(), TypeHint::Any),
    };
    if path.is_empty() {
        return Err("the field path is empty".to_owned());
    }
    let segments: Vec<String> = path.split('.').map(|s| s.trim().to_owned()).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!("the field path {path:?} has an empty segment"));
    }
    let name = segments.last().cloned().unwrap_or_default();
    Ok(Field { path: path.to_owned(), segments, name, hint })
}

/// Walk `segments` from `root` by object key. Any miss, or a step into anything but an
/// object (a list included), is `None`: the reference walks dictionaries only.
pub(crate) fn lookup<'a>(root: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(root, |current, segment| current.as_object()?.get(segment))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segs(path: &str) -> Vec<String> {
        path.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn parses_fields_with_and_without_hints() {
        let fields = parse_schema(Some(&json!(["user.name: str", " a . b ", "x:  INT "]))).unwrap();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[0].name, "name");
        assert_eq!(fields[0].hint, TypeHint::Str);
        assert_eq!(fields[1].segments, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(fields[1].hint, TypeHint::Any);
        assert_eq!(fields[2].hint, TypeHint::Int);
    }

    #[test]
    fn rejects_bad_schemas() {
        assert!(parse_schema(Some(&json!("a: str"))).is_err());
        assert!(parse_schema(Some(&json!([1]))).is_err());
        assert!(parse_schema(Some(&json!([": str"]))).is_err());
        assert!(parse_schema(Some(&json!(["a..b"]))).is_err());
        assert!(parse_schema(Some(&json!(["a.name", "b.name"]))).is_err());
        assert!(parse_schema(Some(&json!(["x.error"]))).is_err());
        assert_eq!(parse_schema(Some(&Value::Null)).map(|f| f.len()).ok(), Some(0));
        assert_eq!(parse_schema(None).map(|f| f.len()).ok(), Some(0));
    }

    #[test]
    fn looks_up_paths_through_objects_only() {
        let doc = json!({"items": [{"name": "a"}, {"name": "b"}], "m": {"0": "zero", "k": {"v": 1}}});
        assert_eq!(lookup(&doc, &segs("m.k.v")), Some(&json!(1)));
        assert_eq!(lookup(&doc, &segs("m.0")), Some(&json!("zero")));
        assert_eq!(lookup(&doc, &segs("items")), Some(&json!([{"name": "a"}, {"name": "b"}])));
        assert_eq!(lookup(&doc, &segs("items.0.name")), None, "lists are not walked into");
        assert_eq!(lookup(&doc, &segs("items.x")), None);
        assert_eq!(lookup(&doc, &segs("m.k.v.deeper")), None);
    }
}
