//! `truncate`: cap long strings and long lists anywhere in a payload.

use std::collections::BTreeMap;

use operonx_runtime::trace::cut_items_marker;
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::Value;

use super::{InPlace, Processor, is_structural_key};
use crate::error::ConfigError;

/// Caps every string longer than `max_string_bytes` (cut back to a UTF-8 character
/// boundary, then `...[truncated N bytes]` appended, N = bytes removed) and every list
/// longer than `max_list_items` (the first items kept, then a
/// `"...[truncated N items]"` string), at any depth of the payload. In a pipeline, runs
/// record lists already cut this way ([`Processor::max_list_items`]); a list cut before
/// (its first `max_list_items` items and that marker) is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncate {
    max_string_bytes: usize,
    max_list_items: usize,
}

impl Truncate {
    /// Default longest string, in bytes.
    pub const DEFAULT_MAX_STRING_BYTES: usize = 4096;
    /// Default longest list, in items.
    pub const DEFAULT_MAX_LIST_ITEMS: usize = 100;

    /// Cap strings at `max_string_bytes` and lists at `max_list_items` (both > 0).
    pub fn new(max_string_bytes: usize, max_list_items: usize) -> Result<Self, ConfigError> {
        if max_string_bytes == 0 {
            return Err(ConfigError::Zero("truncate.max_string_bytes"));
        }
        if max_list_items == 0 {
            return Err(ConfigError::Zero("truncate.max_list_items"));
        }
        Ok(Self { max_string_bytes, max_list_items })
    }

    fn value(&self, v: &mut Value) {
        match v {
            Value::String(s) => truncate_str(s, self.max_string_bytes),
            // Cut as recorded (see `Processor::max_list_items`): the marker stays as is.
            Value::Array(items) if items.len() == self.max_list_items + 1 && is_cut_marker(items.last()) => {
                items.iter_mut().take(self.max_list_items).for_each(|i| self.value(i));
            }
            Value::Array(items) => {
                let cut = items.len().saturating_sub(self.max_list_items);
                items.truncate(self.max_list_items);
                items.iter_mut().for_each(|i| self.value(i));
                if cut > 0 {
                    items.push(Value::String(cut_items_marker(cut)));
                }
            }
            Value::Object(map) => map.values_mut().for_each(|i| self.value(i)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl Default for Truncate {
    fn default() -> Self {
        Self { max_string_bytes: Self::DEFAULT_MAX_STRING_BYTES, max_list_items: Self::DEFAULT_MAX_LIST_ITEMS }
    }
}

/// Whether `v` is the marker that ends a cut list (`...[truncated N items]`).
fn is_cut_marker(v: Option<&Value>) -> bool {
    let Some(Value::String(s)) = v else { return false };
    s.strip_prefix("...[truncated ")
        .and_then(|rest| rest.strip_suffix(" items]"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Cut `s` to at most `max` bytes on a character boundary and say how much went.
fn truncate_str(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.len() - end;
    s.truncate(end);
    s.push_str(&format!("...[truncated {cut} bytes]"));
}

impl Processor for Truncate {
    fn name(&self) -> &str {
        "truncate"
    }

    fn process(&self, mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
        events.iter_mut().for_each(|e| self.rewrite_payload(e.kind, &mut e.payload));
        events
    }

    fn in_place(&self) -> Option<&dyn InPlace> {
        Some(self)
    }

    fn max_list_items(&self) -> Option<usize> {
        Some(self.max_list_items)
    }
}

impl InPlace for Truncate {
    fn rewrite_payload(&self, _kind: EventKind, payload: &mut BTreeMap<String, Value>) {
        for (k, v) in payload.iter_mut() {
            if !is_structural_key(k) {
                self.value(v);
            }
        }
    }

    fn rewrite_field(&self, _field: &str, _entry: Option<&str>, value: &mut Value) {
        self.value(value);
    }
}

#[cfg(test)]
mod tests {
    use operonx_runtime::EventKind::*;
    use serde_json::json;

    use super::*;
    use crate::processor::test_support::event;

    fn run(p: &Truncate, payload: Value) -> Value {
        let out = p.process(vec![event(0, OpEnd, Some("main.x"), &["main"], payload)]).remove(0);
        serde_json::to_value(out.payload).unwrap()
    }

    #[test]
    fn cuts_on_a_char_boundary_never_inside_a_multibyte_char() {
        // "é" is 2 bytes, "日" 3, "🦀" 4: a cut at 5 bytes falls inside "日".
        let p = Truncate::new(5, 10).unwrap();
        let out = run(&p, json!({"outputs": {"text": "aé日🦀z"}}));
        assert_eq!(out["outputs"]["text"], "aé...[truncated 8 bytes]");
        let p = Truncate::new(2, 10).unwrap();
        assert_eq!(run(&p, json!({"error": "🦀🦀"}))["error"], "...[truncated 8 bytes]");
        // Exactly at the limit: untouched.
        let p = Truncate::new(4, 10).unwrap();
        assert_eq!(run(&p, json!({"error": "🦀"}))["error"], "🦀");
    }

    #[test]
    fn a_list_cut_as_recorded_is_left_as_it_is() {
        // What a run records for a pipeline with this processor (`max_list_items`).
        let p = Truncate::new(100, 3).unwrap();
        let long = json!([1, 2, 3, 4, 5, 6, [7, 8, 9, 10]]);
        let recorded = operonx_runtime::trace::cut_lists(&long, 3);
        assert_eq!(recorded, json!([1, 2, 3, "...[truncated 4 items]"]));
        let once = run(&p, json!({"outputs": {"v": long}}));
        let cut_first = run(&p, json!({"outputs": {"v": recorded}}));
        assert_eq!(once, cut_first);
        assert_eq!(once["outputs"]["v"], json!([1, 2, 3, "...[truncated 4 items]"]));
        // A list of one more item whose last is not such a marker is cut as usual.
        let plain = run(&p, json!({"outputs": {"v": [1, 2, 3, "...[truncated x items]"]}}));
        assert_eq!(plain["outputs"]["v"], json!([1, 2, 3, "...[truncated 1 items]"]));
        assert_eq!(Processor::max_list_items(&p), Some(3));
    }

    #[test]
    fn caps_nested_lists_and_strings() {
        let p = Truncate::new(3, 2).unwrap();
        let out = run(&p, json!({"outputs": {"rows": [[1, 2, 3], "abcdef", 3, 4]}, "status": "okokok"}));
        assert_eq!(
            out["outputs"]["rows"],
            json!([[1, 2, "...[truncated 1 items]"], "abc...[truncated 3 bytes]", "...[truncated 2 items]"])
        );
        // Structural fields are never cut.
        assert_eq!(out["status"], "okokok");
    }
}
