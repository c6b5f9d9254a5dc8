//! `redact`: replace secrets anywhere in a payload, by key name, by value pattern and by
//! known value.

use operonx_graph::SecretSet;
use operonx_runtime::{EventKind, TraceEvent};
use regex::{Regex, RegexSet};
use serde_json::Value;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::{ENTRY_FIELDS, InPlace, Processor, is_structural_key};
use crate::error::ConfigError;
use crate::run_meta::RunEnd;

/// Keys whose values are secrets. A key matches when, lower-cased with `-` read as `_`, it
/// equals one of these or ends with `_` + one of these (`openai_api_key`, `X-Api-Key`,
/// `auth_token`; not `max_tokens`).
const DEFAULT_KEYS: &[&str] = &[
    "api_key",
    "apikey",
    "authorization",
    "password",
    "passwd",
    "secret",
    "secret_key",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "bearer",
    "cookie",
    "set_cookie",
    "private_key",
    "credentials",
];

/// Values that look like credentials, wherever they appear inside a string.
const DEFAULT_PATTERNS: &[&str] = &[
    // OpenAI, Anthropic (`sk-ant-`), Langfuse (`sk-lf-`) and similar secret keys.
    r"\bsk-[A-Za-z0-9_\-]{16,}",
    // HTTP bearer credentials.
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{12,}",
    // AWS access key ids.
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    // GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    // Google API keys.
    r"\bAIza[0-9A-Za-z_\-]{35}",
    // Slack tokens.
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    // Hugging Face tokens.
    r"\bhf_[A-Za-z0-9]{30,}",
];

/// Replaces secrets in every payload value, at any depth (objects inside lists inside
/// objects): the value of any key that names a secret, any part of a string that looks
/// like a credential, and any occurrence of a known secret value. An `annotation` whose
/// `key` names a secret has its `value` replaced. Structural fields (`span_id`, `status`,
/// ...) are left alone.
///
/// Known secret values are those given with [`Redact::secrets`] (the API keys of
/// `resources.yaml`, say) and, for each run, the string values its events hold under a
/// secret key (a `password` input): a value derived from one (the password formatted
/// into a prompt, passed on under another name) is redacted in the run's later events.
/// Values shorter than [`operonx_graph::secrets::MIN_SECRET_LEN`] bytes are not matched
/// by value (they are still replaced under a secret key).
#[derive(Debug, Clone)]
pub struct Redact {
    /// Secret key names, normalized (lower case, `_` for `-`).
    keys: Vec<String>,
    /// The shortest of `keys`: shorter keys cannot name a secret.
    min_key_len: usize,
    patterns: Vec<Regex>,
    /// All of `patterns` at once: one pass tells whether a string needs any replacing.
    any_pattern: Option<RegexSet>,
    marker: String,
    /// Secret values redacted in every run.
    secrets: SecretSet,
    /// Whether values under secret keys are remembered per run (see the type's docs).
    learn: bool,
    /// What each run still being traced has shown under secret keys.
    learned: Arc<Mutex<HashMap<String, SecretSet>>>,
}

impl Redact {
    /// The marker written in place of a secret unless [`Redact::marker`] says otherwise.
    pub const DEFAULT_MARKER: &'static str = "<redacted>";

    /// The built-in secret keys and credential patterns.
    pub fn with_defaults() -> Self {
        let patterns = DEFAULT_PATTERNS.iter().filter_map(|p| Regex::new(p).ok()).collect();
        let mut r = Self { patterns, learn: true, ..Self::empty() }.keys(DEFAULT_KEYS.iter().copied());
        r.any_pattern = pattern_set(&r.patterns);
        r
    }

    /// Nothing redacted until keys or patterns are added.
    pub fn empty() -> Self {
        Self {
            keys: Vec::new(),
            min_key_len: usize::MAX,
            patterns: Vec::new(),
            any_pattern: None,
            marker: Self::DEFAULT_MARKER.into(),
            secrets: SecretSet::new(),
            learn: false,
            learned: Arc::default(),
        }
    }

    /// Also redact these secret values wherever they appear (in every run).
    #[must_use]
    pub fn secrets(mut self, secrets: &SecretSet) -> Self {
        self.secrets.merge(secrets);
        self
    }

    /// Whether to remember, per run, the values held under secret keys and redact them
    /// wherever they appear later in the run (on in [`Redact::with_defaults`]).
    #[must_use]
    pub fn learn_secret_values(mut self, learn: bool) -> Self {
        self.learn = learn;
        self
    }

    /// Also redact the values of these keys (matched like the defaults).
    #[must_use]
    pub fn keys<'a>(mut self, keys: impl IntoIterator<Item = &'a str>) -> Self {
        self.keys.extend(keys.into_iter().map(normalize_key));
        self.min_key_len = self.keys.iter().map(String::len).min().unwrap_or(usize::MAX);
        self
    }

    /// Also redact every match of this regular expression inside strings.
    pub fn pattern(mut self, pattern: &str) -> Result<Self, ConfigError> {
        let re = Regex::new(pattern)
            .map_err(|e| ConfigError::Pattern { pattern: pattern.to_string(), source: Box::new(e) })?;
        self.patterns.push(re);
        self.any_pattern = pattern_set(&self.patterns);
        Ok(self)
    }

    /// Write `marker` in place of secrets.
    #[must_use]
    pub fn marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = marker.into();
        self
    }

    /// Whether `key`, normalized, equals a secret key or ends with `_` + one. Compares
    /// byte by byte, normalizing on the fly (no allocation: this runs for every key).
    fn is_secret_key(&self, key: &str) -> bool {
        let k = key.as_bytes();
        if k.len() < self.min_key_len {
            return false;
        }
        self.keys.iter().any(|s| {
            let s = s.as_bytes();
            let Some(start) = k.len().checked_sub(s.len()) else { return false };
            k[start..].iter().zip(s).all(|(a, b)| normalize_byte(*a) == *b)
                && (start == 0 || normalize_byte(k[start - 1]) == b'_')
        })
    }

    fn redact_value(&self, v: &mut Value, known: &SecretSet) {
        match v {
            Value::String(s) => self.redact_str(s, known),
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_value(i, known)),
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if self.is_secret_key(k) && !item.is_null() {
                        *item = Value::String(self.marker.clone());
                    } else {
                        self.redact_value(item, known);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn redact_str(&self, s: &mut String, known: &SecretSet) {
        known.redact_string_with(s, &self.marker);
        if self.any_pattern.as_ref().is_some_and(|set| !set.is_match(s)) {
            return;
        }
        for re in &self.patterns {
            if re.is_match(s) {
                *s = re.replace_all(s, self.marker.as_str()).into_owned();
            }
        }
    }

    /// Remember the string values under secret keys in `v` (at any depth; everything
    /// below a secret key when `secret` is set).
    fn learn_from(&self, v: &Value, secret: bool, into: &mut SecretSet) {
        match v {
            Value::String(s) if secret => {
                into.insert(s);
            }
            Value::Array(items) => items.iter().for_each(|i| self.learn_from(i, secret, into)),
            Value::Object(map) => {
                map.iter().for_each(|(k, i)| self.learn_from(i, secret || self.is_secret_key(k), into))
            }
            _ => {}
        }
    }

    /// The secret values to redact in run `request_id`: the configured ones, those the
    /// run showed before, and those `learn` adds (`None`: learn nothing). Takes the lock
    /// only when learning is on.
    fn known(&self, request_id: Option<&str>, learn: impl FnOnce(&mut SecretSet)) -> std::borrow::Cow<'_, SecretSet> {
        let Some(run) = request_id.filter(|_| self.learn) else { return std::borrow::Cow::Borrowed(&self.secrets) };
        let mut fresh = SecretSet::new();
        learn(&mut fresh);
        let mut learned = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = if fresh.is_empty() {
            learned.get(run)
        } else {
            let mine = learned.entry(run.to_string()).or_default();
            mine.merge(&fresh);
            Some(&*mine)
        };
        match mine {
            Some(mine) if !mine.is_empty() => {
                let mut all = self.secrets.clone();
                all.merge(mine);
                std::borrow::Cow::Owned(all)
            }
            _ => std::borrow::Cow::Borrowed(&self.secrets),
        }
    }

    fn redact_payload(&self, request_id: Option<&str>, kind: EventKind, payload: &mut BTreeMap<String, Value>) {
        let secret_annotation = kind == EventKind::Annotation
            && payload.get("key").and_then(Value::as_str).is_some_and(|k| self.is_secret_key(k));
        let known = self.known(request_id, |into| {
            for (k, v) in payload.iter() {
                if !is_structural_key(k) {
                    self.learn_from(v, (secret_annotation && k == "value") || self.is_secret_key(k), into);
                }
            }
        });
        for (k, v) in payload.iter_mut() {
            if is_structural_key(k) {
                continue;
            }
            if (secret_annotation && k == "value") || self.is_secret_key(k) {
                *v = Value::String(self.marker.clone());
            } else {
                self.redact_value(v, &known);
            }
        }
    }

    /// What [`Redact::redact_payload`] does to `payload[field]` (an object, for entries).
    fn redact_field(&self, request_id: Option<&str>, field: &str, entry: Option<&str>, value: &mut Value) {
        let key = entry.unwrap_or(field);
        let secret = self.is_secret_key(key);
        let known = self.known(request_id, |into| self.learn_from(value, secret, into));
        if secret && (entry.is_none() || !value.is_null()) {
            *value = Value::String(self.marker.clone());
        } else {
            self.redact_value(value, &known);
        }
    }

    /// Forget what run `request_id` showed under secret keys.
    fn forget(&self, request_id: &str) {
        if self.learn {
            self.learned.lock().unwrap_or_else(PoisonError::into_inner).remove(request_id);
        }
    }
}

impl Default for Redact {
    fn default() -> Self {
        Self::with_defaults()
    }
}

fn normalize_key(key: &str) -> String {
    key.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_lowercase() }).collect()
}

/// [`normalize_key`] for one byte (non-ASCII bytes are left alone, as `normalize_key`
/// leaves non-ASCII characters).
fn normalize_byte(b: u8) -> u8 {
    if b == b'-' { b'_' } else { b.to_ascii_lowercase() }
}

/// The patterns as one set, for a single "anything to replace?" pass (`None` if the set
/// cannot be built; each pattern is then tried on its own).
fn pattern_set(patterns: &[Regex]) -> Option<RegexSet> {
    if patterns.is_empty() {
        return None;
    }
    RegexSet::new(patterns.iter().map(Regex::as_str)).ok()
}

impl Processor for Redact {
    fn name(&self) -> &str {
        "redact"
    }

    fn process(&self, mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
        events.iter_mut().for_each(|e| self.redact_payload(Some(&e.request_id), e.kind, &mut e.payload));
        events
    }

    /// Unless a configured key names a whole field a raw event hands out entry by entry
    /// (`outputs`, say): that field could not be replaced whole in place.
    fn in_place(&self) -> Option<&dyn InPlace> {
        (!ENTRY_FIELDS.iter().any(|f| self.is_secret_key(f))).then_some(self as &dyn InPlace)
    }

    fn end_run(&self, request_id: &str, _end: RunEnd) -> Vec<TraceEvent> {
        self.forget(request_id);
        Vec::new()
    }
}

impl InPlace for Redact {
    fn rewrite_payload(&self, kind: EventKind, payload: &mut BTreeMap<String, Value>) {
        self.redact_payload(None, kind, payload);
    }

    fn rewrite_field(&self, field: &str, entry: Option<&str>, value: &mut Value) {
        self.redact_field(None, field, entry, value);
    }

    fn rewrite_run_payload(&self, request_id: &str, kind: EventKind, payload: &mut BTreeMap<String, Value>) {
        self.redact_payload(Some(request_id), kind, payload);
    }

    fn rewrite_run_field(&self, request_id: &str, field: &str, entry: Option<&str>, value: &mut Value) {
        self.redact_field(Some(request_id), field, entry, value);
    }

    fn forget_run(&self, request_id: &str) {
        self.forget(request_id);
    }
}

#[cfg(test)]
mod tests {
    use operonx_runtime::EventKind::*;
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::event;

    fn one(p: &Redact, kind: EventKind, payload: Value) -> Value {
        let e = event(0, kind, Some("main.x"), &["main"], payload);
        let out = p.process(vec![e]).remove(0);
        serde_json::to_value(out.payload).unwrap()
    }

    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let p = Redact::with_defaults();
        let out = one(
            &p,
            OpStart,
            json!({"inputs": {
                "query": "hi",
                "openai_api_key": "abc",
                "headers": [{"Authorization": "Basic xyz", "X-Api-Key": "k"}],
                "config": {"password": "hunter2", "max_tokens": 10, "token": null}
            }, "span_id": "r1-s1"}),
        );
        assert_eq!(
            out,
            json!({"inputs": {
                "query": "hi",
                "openai_api_key": "<redacted>",
                "headers": [{"Authorization": "<redacted>", "X-Api-Key": "<redacted>"}],
                "config": {"password": "<redacted>", "max_tokens": 10, "token": null}
            }, "span_id": "r1-s1"})
        );
    }

    #[test]
    fn credential_looking_values_are_redacted_inside_strings() {
        let p = Redact::with_defaults();
        let out = one(
            &p,
            OpEnd,
            json!({"outputs": {
                "log": "calling with sk-proj-ABCDEFGHIJKLMNOPQRSTUV and more",
                "hdr": "Authorization: Bearer abcdefghijklmnop.qrstu",
                "aws": ["AKIAABCDEFGHIJKLMNOP"],
                "plain": "sk-short"
            }, "error": "bad key ghp_abcdefghijklmnopqrstuvwxyz0123456789", "status": "error"}),
        );
        assert_eq!(out["outputs"]["log"], "calling with <redacted> and more");
        assert_eq!(out["outputs"]["hdr"], "Authorization: <redacted>");
        assert_eq!(out["outputs"]["aws"], json!(["<redacted>"]));
        assert_eq!(out["outputs"]["plain"], "sk-short");
        assert_eq!(out["error"], "bad key <redacted>");
        assert_eq!(out["status"], "error");
    }

    #[test]
    fn custom_keys_patterns_and_marker() {
        let p = Redact::empty().keys(["SSN"]).pattern(r"\d{3}-\d{2}-\d{4}").unwrap().marker("***");
        let out = one(&p, OpStart, json!({"inputs": {"ssn": "1", "note": "id 123-45-6789", "api_key": "kept"}}));
        assert_eq!(out["inputs"], json!({"ssn": "***", "note": "id ***", "api_key": "kept"}));
    }

    #[test]
    fn key_matching_normalizes_case_and_dashes_without_allocating() {
        let p = Redact::with_defaults();
        let secret = ["token", "MY-SECRET", "X_API-KEY", "Ключ_token", "client-secret", "Set-Cookie"];
        let plain = ["tokens", "max_tokens", "mytoken", "x", "", "Ключ", "secretive", "api_keys"];
        assert!(secret.iter().all(|k| p.is_secret_key(k)), "{secret:?}");
        assert!(!plain.iter().any(|k| p.is_secret_key(k)), "{plain:?}");
        assert!(!Redact::empty().is_secret_key("password"));
    }

    /// The byte-wise matcher agrees with the rule as written (normalize the whole key, then compare
    /// it and its `_`-suffixes with the names) on every key built from these fragments.
    #[test]
    fn key_matching_agrees_with_the_rule_on_every_combination() {
        let p = Redact::with_defaults().keys(["x", "Ключ"]);
        let names: Vec<String> = DEFAULT_KEYS.iter().chain(&["x", "Ключ"]).map(|k| normalize_key(k)).collect();
        let rule = |key: &str| {
            let k = normalize_key(key);
            names.iter().any(|n| k == *n || k.ends_with(&format!("_{n}")))
        };
        let parts =
            ["", "_", "-", "x", "X", "my", "api", "Key", "KEY", "token", "s", "Ключ", "secret", "set-", "cookie"];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    for d in ["", "_", "s", "token", "-Key"] {
                        let key = format!("{a}{b}{c}{d}");
                        assert_eq!(p.is_secret_key(&key), rule(&key), "{key:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 15 * 15 * 15 * 5);
        assert!(!Redact::empty().is_secret_key(""));
        assert!(Redact::empty().keys([""]).is_secret_key("a_"), "an empty name matches what ends with `_`");
    }

    #[test]
    fn annotations_naming_a_secret_lose_their_value() {
        let p = Redact::with_defaults();
        let out = one(&p, Annotation, json!({"key": "langfuse_secret_key", "value": {"v": "x"}}));
        assert_eq!(out, json!({"key": "langfuse_secret_key", "value": "<redacted>"}));
        let out = one(&p, Annotation, json!({"key": "note", "value": "fine"}));
        assert_eq!(out["value"], "fine");
    }

    #[test]
    fn configured_secret_values_are_redacted_wherever_they_appear() {
        let mut secrets = SecretSet::new();
        secrets.insert("k-1234567890");
        secrets.insert("short");
        let p = Redact::with_defaults().secrets(&secrets);
        let out =
            one(&p, OpEnd, json!({"error": "401: Incorrect API key provided: k-1234567890.", "outputs": {"n": 1}}));
        assert_eq!(out["error"], "401: Incorrect API key provided: <redacted>.");
        let out = one(&p, OpEnd, json!({"outputs": {"x": "short"}}));
        assert_eq!(out["outputs"]["x"], "short", "values under 8 bytes are not held");
    }

    /// A `password` input is remembered for its run: formatted into a prompt and passed on
    /// under another name, it is still redacted, in the in-place path and the general one;
    /// other runs are not affected, and the run is forgotten at its end.
    #[test]
    fn values_under_secret_keys_are_redacted_later_in_the_same_run() {
        let p = Redact::with_defaults();
        let mut start =
            event(0, OpStart, Some("main.prompt"), &["main"], json!({"inputs": {"password": "correct horse"}}));
        let mut end = event(
            1,
            OpEnd,
            Some("main.prompt"),
            &["main"],
            json!({"outputs": {"text": "login with correct horse now"}}),
        );
        let mut other = end.clone();
        other.request_id = "r2".into();
        let out = p.process(vec![start.clone(), end.clone(), other.clone()]);
        assert_eq!(out[0].payload["inputs"]["password"], "<redacted>");
        assert_eq!(out[1].payload["outputs"]["text"], "login with <redacted> now");
        assert_eq!(out[2].payload["outputs"]["text"], "login with correct horse now", "another run");

        // In place, field by field, as the fast path does.
        let q = Redact::with_defaults();
        let field = |e: &mut TraceEvent| {
            for (k, v) in e.payload.iter_mut() {
                let Value::Object(m) = v else { continue };
                for (entry, value) in m.iter_mut() {
                    q.rewrite_run_field("r1", k, Some(entry), value);
                }
            }
        };
        field(&mut start);
        field(&mut end);
        assert_eq!(start.payload["inputs"]["password"], "<redacted>");
        assert_eq!(end.payload["outputs"]["text"], "login with <redacted> now");
        q.forget_run("r1");
        field(&mut other);
        assert_eq!(other.payload["outputs"]["text"], "login with correct horse now", "forgotten");
        assert!(q.learned.lock().unwrap().is_empty());
    }
}
