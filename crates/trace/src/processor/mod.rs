//! Processors: steps that rewrite a run's events before they are exported (drop, redact,
//! sample, truncate, group).
//!
//! The pipeline runs its processors in order over each batch of one run's events, at
//! flush time, off the run's task. Sampling is the exception: it is decided once per run,
//! from the request id alone, before anything of the run is buffered
//! ([`Processor::admit_run`]).

mod drop;
mod group_by;
mod redact;
mod sample;
mod truncate;

use std::collections::BTreeMap;

use operonx_runtime::{EventKind, TraceEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::drop::DropEvents;
pub use self::group_by::{GroupBy, GroupKey};
pub use self::redact::Redact;
pub use self::sample::Sample;
pub use self::truncate::Truncate;
use crate::error::ConfigError;
use crate::recorded::RecordedEvent;
use crate::run_meta::RunEnd;

/// One step of the pipeline's processing.
///
/// ```
/// use operonx_runtime::TraceEvent;
/// use operonx_trace::processor::Processor;
///
/// /// Keeps only the events of ops whose name starts with `llm`.
/// struct OnlyLlm;
///
/// impl Processor for OnlyLlm {
///     fn name(&self) -> &str {
///         "only_llm"
///     }
///     fn process(&self, mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
///         events.retain(|e| e.op_name.as_deref().is_none_or(|n| n.starts_with("llm")));
///         events
///     }
/// }
/// ```
pub trait Processor: Send + Sync + 'static {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Whether the run with this id is traced at all. Asked once per run, before any of
    /// its events is buffered; a run any processor refuses costs nothing further.
    fn admit_run(&self, _request_id: &str) -> bool {
        true
    }

    /// Rewrite one batch of one run's events, in `(timestamp, seq)` order. A run whose
    /// trace is flushed in several batches passes through in order, one batch at a time.
    fn process(&self, events: Vec<TraceEvent>) -> Vec<TraceEvent>;

    /// This processor as an [`InPlace`] step, if it can be one: it decides and rewrites
    /// one event at a time, never adds or reorders events, and owes nothing at a run's
    /// end. When every processor of a pipeline is one, events are kept or dropped and
    /// rewritten as recorded, and never built into [`TraceEvent`]s unless an exporter
    /// needs them (the fast path to the store).
    fn in_place(&self) -> Option<&dyn InPlace> {
        None
    }

    /// The longest list this processor lets through, if it cuts lists to a fixed length
    /// (as [`Truncate`] does). A pipeline with such a processor has its runs record
    /// lists already cut to the smallest of these lengths (the first items, then a
    /// `"...[truncated N items]"` marker), so a large list is never copied into a trace
    /// whole; every processor, the earlier ones included, then sees the cut lists.
    fn max_list_items(&self) -> Option<usize> {
        None
    }

    /// The run's trace is complete: return any events still owed (for example the end of
    /// an open group) and forget the run. Those events go through the later processors.
    fn end_run(&self, _request_id: &str, _end: RunEnd) -> Vec<TraceEvent> {
        Vec::new()
    }
}

/// A processor working on one event at a time, in whichever form the event is (see
/// [`Processor::in_place`]): [`InPlace::keeps`] decides whether it stays, the rewrite
/// methods change its payload's values. Together they must do what
/// [`Processor::process`] does to that event.
pub trait InPlace: Send + Sync {
    /// Whether the event stays (the default: always).
    fn keeps(&self, _event: &RecordedEvent) -> bool {
        true
    }

    /// Rewrite the whole payload of an event of this kind (the default: no change).
    fn rewrite_payload(&self, _kind: EventKind, _payload: &mut BTreeMap<String, Value>) {}

    /// Rewrite one data field of a recorded event: `payload[field][entry]` when `entry`
    /// is given (an input, output or yielded value by name), else `payload[field]` (the
    /// default: no change).
    fn rewrite_field(&self, _field: &str, _entry: Option<&str>, _value: &mut Value) {}

    /// [`InPlace::rewrite_payload`] for an event of run `request_id` (the default ignores
    /// the run). For steps that remember something of a run, as `redact` remembers the
    /// secret values the run was given.
    fn rewrite_run_payload(&self, _request_id: &str, kind: EventKind, payload: &mut BTreeMap<String, Value>) {
        self.rewrite_payload(kind, payload);
    }

    /// [`InPlace::rewrite_field`] for an event of run `request_id` (the default ignores
    /// the run).
    fn rewrite_run_field(&self, _request_id: &str, field: &str, entry: Option<&str>, value: &mut Value) {
        self.rewrite_field(field, entry, value);
    }

    /// The run's trace is complete: forget what was remembered of it (the default:
    /// nothing was).
    fn forget_run(&self, _request_id: &str) {}
}

/// Apply `step` to events of run `request_id` in place: drop those it does not keep,
/// rewrite the others.
pub(crate) fn apply_in_place(step: &dyn InPlace, request_id: &str, events: &mut Vec<RecordedEvent>) {
    events.retain(|e| step.keeps(e));
    for event in events {
        match event {
            RecordedEvent::Raw(e) => e.rewrite_values(
                &mut |kind, payload| step.rewrite_run_payload(request_id, kind, payload),
                &mut |field, entry, value| step.rewrite_run_field(request_id, field, entry, value),
            ),
            RecordedEvent::Built(e) => step.rewrite_run_payload(request_id, e.kind, &mut e.payload),
            // Added after the processors ran: never handed to them.
            RecordedEvent::Meta(_) => {}
        }
    }
}

/// The payload fields whose values a raw event hands out entry by entry.
pub(crate) const ENTRY_FIELDS: &[&str] = &["inputs", "outputs", "yielded"];

/// A processor described as data (for configuration files), built with
/// [`ProcessorConfig::build`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessorConfig {
    /// See [`DropEvents`].
    Drop {
        /// Event kinds to drop.
        #[serde(default)]
        kinds: Vec<EventKind>,
        /// Op name patterns (full or short name) whose events are dropped.
        #[serde(default)]
        ops: Vec<String>,
        /// When non-empty, only events of ops matching one of these patterns are kept
        /// (events bound to no op are always kept).
        #[serde(default)]
        keep_ops: Vec<String>,
        /// Drop successful `op_end`/`op_yield` events whose outputs are empty or all null.
        #[serde(default)]
        empty: bool,
    },
    /// See [`Redact`].
    Redact {
        /// Extra keys whose values are replaced (in addition to the defaults).
        #[serde(default)]
        keys: Vec<String>,
        /// Extra regular expressions whose matches inside strings are replaced.
        #[serde(default)]
        patterns: Vec<String>,
        /// The replacement text (default `<redacted>`).
        #[serde(default)]
        marker: Option<String>,
        /// Whether the built-in keys and patterns apply (default true).
        #[serde(default = "yes")]
        defaults: bool,
    },
    /// See [`Sample`].
    Sample {
        /// Fraction of runs kept, `0..=1`.
        rate: f64,
    },
    /// See [`Truncate`].
    Truncate {
        /// Longest string kept, in bytes.
        #[serde(default = "default_max_string_bytes")]
        max_string_bytes: usize,
        /// Longest list kept, in items.
        #[serde(default = "default_max_list_items")]
        max_list_items: usize,
    },
    /// See [`GroupBy`].
    GroupBy {
        /// What consecutive events must share to be grouped.
        key: GroupKey,
    },
}

fn yes() -> bool {
    true
}

fn default_max_string_bytes() -> usize {
    Truncate::DEFAULT_MAX_STRING_BYTES
}

fn default_max_list_items() -> usize {
    Truncate::DEFAULT_MAX_LIST_ITEMS
}

impl ProcessorConfig {
    /// Build the processor, checking its settings.
    pub fn build(&self) -> Result<Box<dyn Processor>, ConfigError> {
        Ok(match self {
            ProcessorConfig::Drop { kinds, ops, keep_ops, empty } => Box::new(
                DropEvents::new()
                    .kinds(kinds.iter().copied())
                    .ops(ops.iter().map(String::as_str))
                    .keep_ops(keep_ops.iter().map(String::as_str))
                    .empty(*empty),
            ),
            ProcessorConfig::Redact { keys, patterns, marker, defaults } => {
                let mut r = if *defaults { Redact::with_defaults() } else { Redact::empty() };
                r = r.keys(keys.iter().map(String::as_str));
                for p in patterns {
                    r = r.pattern(p)?;
                }
                if let Some(m) = marker {
                    r = r.marker(m);
                }
                Box::new(r)
            }
            ProcessorConfig::Sample { rate } => Box::new(Sample::new(*rate)?),
            ProcessorConfig::Truncate { max_string_bytes, max_list_items } => {
                Box::new(Truncate::new(*max_string_bytes, *max_list_items)?)
            }
            ProcessorConfig::GroupBy { key } => Box::new(GroupBy::new(key.clone())),
        })
    }
}

/// Whether a payload key carries the pipeline's structure, not user data: processors that
/// rewrite values leave these alone — among them the media references the pipeline wrote
/// (an op event's `media_refs`, a `media_ref` event's `handle`, `field_path` and `uri`).
/// (A `match`: asked for every key of every payload.)
pub(crate) fn is_structural_key(key: &str) -> bool {
    matches!(
        key,
        "span_id"
            | "parent_span_id"
            | "status"
            | "duration_ms"
            | "yield_count"
            | "idx"
            | "key"
            | "name"
            | "media_refs"
            | "handle"
            | "field_path"
            | "uri"
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};
    use operonx_runtime::{EventKind, TraceEvent};
    use serde_json::Value;

    pub(crate) fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_780_000_000_000 + ms).single().unwrap_or_default()
    }

    pub(crate) fn event(seq: u64, kind: EventKind, op: Option<&str>, ctx: &[&str], payload: Value) -> TraceEvent {
        let payload: BTreeMap<String, Value> = match payload {
            Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        TraceEvent {
            event_id: format!("r1-{seq}"),
            request_id: "r1".into(),
            kind,
            op_name: op.map(str::to_string),
            ctx: ctx.iter().map(|s| s.to_string()).collect(),
            timestamp: at(seq as i64),
            seq,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_build() {
        let json = r#"[
            {"type": "drop", "kinds": ["op_yield"], "ops": ["*.debug_*"], "empty": true},
            {"type": "redact", "keys": ["ssn"], "patterns": ["\\d{3}-\\d{2}-\\d{4}"]},
            {"type": "sample", "rate": 0.25},
            {"type": "truncate", "max_string_bytes": 100},
            {"type": "group_by", "key": {"ctx_prefix": 2}}
        ]"#;
        let configs: Vec<ProcessorConfig> = serde_json::from_str(json).unwrap();
        let names: Vec<String> = configs.iter().map(|c| c.build().unwrap().name().to_string()).collect();
        assert_eq!(names, ["drop", "redact", "sample", "truncate", "group_by"]);
        assert_eq!(configs[3], ProcessorConfig::Truncate { max_string_bytes: 100, max_list_items: 100 });
    }

    #[test]
    fn bad_settings_are_refused_not_panicked() {
        assert!(matches!(ProcessorConfig::Sample { rate: 1.5 }.build(), Err(ConfigError::SampleRate(_))));
        assert!(matches!(ProcessorConfig::Sample { rate: f64::NAN }.build(), Err(ConfigError::SampleRate(_))));
        let bad = ProcessorConfig::Redact { keys: vec![], patterns: vec!["(".into()], marker: None, defaults: true };
        assert!(matches!(bad.build(), Err(ConfigError::Pattern { .. })));
        let zero = ProcessorConfig::Truncate { max_string_bytes: 0, max_list_items: 1 };
        assert!(matches!(zero.build(), Err(ConfigError::Zero(_))));
        let unknown = r#"{"type": "drop", "kinds": [], "colour": "red"}"#;
        assert!(serde_json::from_str::<ProcessorConfig>(unknown).is_err());
    }
}
