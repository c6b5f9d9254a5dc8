//! Reading request bodies and query strings into checked values, with problems that
//! name the field at fault.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use serde_json::{Map, Value};

use crate::api::BODY_LIMIT;
use crate::problem::Problem;

/// The body as a JSON object (an empty body is `{}`): 413 beyond [`BODY_LIMIT`], 400
/// when it is not JSON, 422 when it is not an object.
pub(crate) async fn object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, Problem> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(Problem::too_large(BODY_LIMIT));
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| Problem::too_large(BODY_LIMIT))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::invalid("", "the body must be a JSON object")),
        Err(e) => Err(Problem::bad_request(format!("the body is not valid JSON: {e}"))),
    }
}

/// Refuse fields other than `known`.
pub(crate) fn only(body: &Map<String, Value>, known: &[&str]) -> Result<(), Problem> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => {
            Err(Problem::invalid(pointer(&[k]), format!("unknown field (expected one of: {})", known.join(", "))))
        }
        None => Ok(()),
    }
}

/// A JSON pointer to `path` (RFC 6901 escapes).
pub(crate) fn pointer(path: &[&str]) -> String {
    path.iter().map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect()
}

/// Field `name` as an object (absent: empty).
pub(crate) fn object_field(body: &mut Map<String, Value>, name: &str) -> Result<Map<String, Value>, Problem> {
    match body.remove(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(Problem::invalid(pointer(&[name]), format!("must be an object, not {}", type_name(&other)))),
    }
}

/// Field `name` as a string, if present.
pub(crate) fn string_field(body: &Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Problem::invalid(pointer(&[name]), format!("must be a string, not {}", type_name(other)))),
    }
}

/// The JSON type of `v`, as messages name it.
fn type_name(v: &Value) -> &'static str {
    operonx::graph::type_names::json_type_name(v)
}

/// The query string's parameters; a parameter given twice, or not among `known`, is a
/// 400 naming it.
pub(crate) fn query(raw: Option<&str>, known: &[&str]) -> Result<Map<String, Value>, Problem> {
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(Problem::bad_parameter(
                &k,
                format!("unknown parameter (expected one of: {})", known.join(", ")),
            ));
        }
        if out.insert(k.to_string(), Value::String(v.into_owned())).is_some() {
            return Err(Problem::bad_parameter(&k, "given more than once"));
        }
    }
    Ok(out)
}

/// Query parameter `name` as a whole number in `range`, if given.
pub(crate) fn number_param(
    q: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, Problem> {
    let Some(v) = q.get(name).and_then(Value::as_str) else { return Ok(None) };
    match v.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Problem::bad_parameter(
            name,
            format!("must be a whole number from {} to {}", range.start(), range.end()),
        )),
    }
}

/// Query parameter `name` as a boolean (`true`/`false`/`1`/`0`), if given.
pub(crate) fn bool_param(q: &Map<String, Value>, name: &str) -> Result<bool, Problem> {
    match q.get(name).and_then(Value::as_str) {
        None => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(Problem::bad_parameter(name, "must be true or false")),
    }
}
