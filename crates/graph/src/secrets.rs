//! [`SecretSet`]: known secret values (API keys, tokens, passwords), replaced by a marker
//! wherever they appear in text or JSON. The one place by-value redaction happens: the
//! CLI's printed result and diagnostics, its logs and saved run state, and the trace
//! pipeline's `redact` processor all use it.
//!
//! Values shorter than [`MIN_SECRET_LEN`] bytes are not held: replacing every `1234` or
//! `true` in a result would mangle it, and a secret that short is no secret anyway.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// What a secret is replaced with in printed output.
pub const REDACTED: &str = "[REDACTED]";

/// The shortest value held as a secret, in bytes (shorter ones are ignored).
pub const MIN_SECRET_LEN: usize = 8;

/// A set of secret values to redact by value. Cheap to query when empty.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretSet {
    /// Longest first, so a secret that contains another is replaced whole.
    values: Vec<String>,
}

impl fmt::Debug for SecretSet {
    /// The count only, never the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretSet({} values)", self.values.len())
    }
}

impl SecretSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hold `value` as a secret (trimmed of surrounding whitespace). Returns whether it was
    /// added: values shorter than [`MIN_SECRET_LEN`] and values already held are not.
    pub fn insert(&mut self, value: &str) -> bool {
        let value = value.trim();
        if value.len() < MIN_SECRET_LEN || self.values.iter().any(|v| v == value) {
            return false;
        }
        let at = self.values.partition_point(|v| v.len() >= value.len());
        self.values.insert(at, value.to_string());
        true
    }

    /// Every value of `other` as well.
    pub fn merge(&mut self, other: &SecretSet) {
        for v in &other.values {
            self.insert(v);
        }
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether `text` contains a held secret.
    pub fn contains_secret(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }

    /// `text` with every held secret replaced by `marker` (borrowed when there is none).
    pub fn redact_with<'a>(&self, text: &'a str, marker: &str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), marker));
            }
        }
        out
    }

    /// `text` with every held secret replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_with(text, REDACTED)
    }

    /// Replace held secrets inside `s` by `marker`.
    pub fn redact_string_with(&self, s: &mut String, marker: &str) {
        if let Cow::Owned(new) = self.redact_with(s, marker) {
            *s = new;
        }
    }

    /// Replace held secrets by `marker` in every string of `value`, at any depth, object
    /// keys included.
    pub fn redact_value_with(&self, value: &mut Value, marker: &str) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_string_with(s, marker),
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_value_with(i, marker)),
            Value::Object(map) => {
                if map.keys().any(|k| self.contains_secret(k)) {
                    let old = std::mem::take(map);
                    *map = old.into_iter().map(|(k, v)| (self.redact_with(&k, marker).into_owned(), v)).collect();
                }
                map.values_mut().for_each(|v| self.redact_value_with(v, marker));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// [`SecretSet::redact_value_with`] with [`REDACTED`].
    pub fn redact_value(&self, value: &mut Value) {
        self.redact_value_with(value, REDACTED);
    }

    /// [`SecretSet::redact_value`] over the entries of an object.
    pub fn redact_map(&self, map: &mut Map<String, Value>) {
        if self.is_empty() {
            return;
        }
        let mut v = Value::Object(std::mem::take(map));
        self.redact_value(&mut v);
        if let Value::Object(m) = v {
            *map = m;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn short_and_repeated_values_are_not_held() {
        let mut s = SecretSet::new();
        assert!(!s.insert("1234567"), "7 bytes");
        assert!(!s.insert("   "));
        assert!(s.insert("12345678"));
        assert!(!s.insert(" 12345678\n"), "already held once trimmed");
        assert_eq!(s.len(), 1);
        assert_eq!(format!("{s:?}"), "SecretSet(1 values)");
    }

    #[test]
    fn secrets_are_replaced_in_text_longest_first() {
        let mut s = SecretSet::new();
        s.insert("sk-abcdefgh");
        s.insert("sk-abcdefgh-and-more");
        assert_eq!(
            s.redact("Incorrect API key provided: sk-abcdefgh-and-more (or sk-abcdefgh)"),
            "Incorrect API key provided: [REDACTED] (or [REDACTED])"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(SecretSet::new().redact("sk-abcdefgh"), "sk-abcdefgh");
    }

    #[test]
    fn secrets_are_replaced_at_any_depth_in_json_keys_included() {
        let mut s = SecretSet::new();
        s.insert("hunter2hunter2");
        let mut v = json!({"$errors": {"main.llm": "bad key hunter2hunter2"},
                           "list": [1, "x hunter2hunter2 y", {"hunter2hunter2": true}], "n": 5});
        s.redact_value(&mut v);
        assert_eq!(
            v,
            json!({"$errors": {"main.llm": "bad key [REDACTED]"},
                   "list": [1, "x [REDACTED] y", {"[REDACTED]": true}], "n": 5})
        );
        let mut m = json!({"a": "hunter2hunter2"}).as_object().cloned().unwrap();
        s.redact_map(&mut m);
        assert_eq!(m["a"], "[REDACTED]");
    }
}
