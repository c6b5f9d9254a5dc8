//! Folding a batch of trace events into Langfuse ingestion items.
//!
//! One observation per span (op call or group), keyed by the event's `span_id`, so that
//! `parentObservationId` is the parent span's observation and partial flushes upsert the
//! same observation instead of duplicating it. Events of one span that arrive in the same
//! batch are merged into one `*-create` (when the batch holds the start) or `*-update`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use operonx_runtime::{EventKind, TraceEvent};
use serde_json::{Map, Value, json};

/// How many open observations / runs the exporter remembers between batches.
const MEMO_CAP: usize = 100_000;

/// The Langfuse type an observation was created with (updates must use the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObsType {
    Span,
    Generation,
}

impl ObsType {
    fn as_str(self) -> &'static str {
        match self {
            ObsType::Span => "span",
            ObsType::Generation => "generation",
        }
    }
}

/// What one run's earlier batches decided.
#[derive(Debug, Clone)]
pub(crate) struct RunMemo {
    timestamp: DateTime<Utc>,
    name: Option<String>,
    input_sent: bool,
}

/// State carried between batches: trace facts per run, types of observations still open.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    runs: HashMap<String, RunMemo>,
    open: HashMap<String, ObsType>,
}

/// Changes to apply to the [`Memo`] once a batch was delivered (or given up on).
#[derive(Debug, Default)]
pub(crate) struct MemoDelta {
    runs: Vec<(String, RunMemo)>,
    opened: Vec<(String, ObsType)>,
    closed: Vec<String>,
}

impl MemoDelta {
    /// Record this batch's decisions.
    pub(crate) fn apply(self, memo: &mut Memo) {
        if memo.runs.len() + self.runs.len() > MEMO_CAP {
            memo.runs.clear();
        }
        memo.runs.extend(self.runs);
        for id in self.closed {
            memo.open.remove(&id);
        }
        if memo.open.len() + self.opened.len() > MEMO_CAP {
            memo.open.clear();
        }
        memo.open.extend(self.opened);
    }
}

/// Trace-level settings from the config.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceOptions {
    pub(crate) trace_name: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) tags: Vec<String>,
}

/// One ingestion item: its envelope id and the whole envelope.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) id: String,
    pub(crate) envelope: Value,
}

/// Langfuse timestamps: RFC 3339, microseconds, `Z`.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A hash for ids that cannot be used verbatim.
fn name_hash64(s: &str) -> u64 {
    operonx_graph::digest::hash64(s.as_bytes())
}

/// The observation id of a span: the span id itself when it is URL-safe, else a hash.
pub(crate) fn observation_id(span: &str) -> String {
    let safe = !span.is_empty()
        && span.len() <= 200
        && span.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if safe { span.to_string() } else { format!("h{:016x}", name_hash64(span)) }
}

fn str_field<'a>(e: &'a TraceEvent, key: &str) -> Option<&'a str> {
    e.payload.get(key).and_then(Value::as_str)
}

/// The span key of an event: its `span_id`, or (older producers) its op and context, where a
/// yield's item context is folded back into its generator's.
fn span_key(e: &TraceEvent) -> String {
    if let Some(s) = str_field(e, "span_id") {
        return observation_id(s);
    }
    let mut ctx: &[String] = &e.ctx;
    if e.kind == EventKind::OpYield
        && let Some((last, rest)) = ctx.split_last()
        && (last.starts_with('[') || last.starts_with("yield_"))
    {
        ctx = rest;
    }
    let name = e.op_name.as_deref().or_else(|| str_field(e, "name")).unwrap_or("");
    observation_id(&format!("{}\u{1}{name}\u{1}{}", e.request_id, ctx.join("\u{1}")))
}

/// `Some(Some(id))`: parent known; `Some(None)`: top level; `None`: not said.
fn parent_of(e: &TraceEvent) -> Option<Option<String>> {
    match e.payload.get("parent_span_id") {
        Some(Value::String(p)) => Some(Some(observation_id(p))),
        Some(Value::Null) => Some(None),
        _ => None,
    }
}

fn non_empty(v: Option<&Value>) -> Option<Value> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(v) => Some(v.clone()),
    }
}

fn as_u64(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))).unwrap_or(0)
}

/// Token usage and cost of the model calls of one span within one batch.
#[derive(Debug, Clone, Default)]
struct Usage {
    model: Option<String>,
    provider: Option<String>,
    input: u64,
    output: u64,
    total: u64,
    cost: f64,
    extra: BTreeMap<String, u64>,
    first: Option<(DateTime<Utc>, u64)>,
    last: Option<DateTime<Utc>>,
}

impl Usage {
    fn add(&mut self, e: &TraceEvent) {
        let p = &e.payload;
        // The provider's model name (`provider_model`) when the op recorded it: `model` is
        // then the resource's name in resources.yaml, which Langfuse cannot price.
        if let Some(m) = str_field(e, "provider_model").or_else(|| str_field(e, "model")) {
            self.model = Some(m.to_string());
        }
        if let Some(m) = str_field(e, "provider") {
            self.provider = Some(m.to_string());
        }
        let (i, o) = (as_u64(p.get("prompt_tokens")), as_u64(p.get("completion_tokens")));
        let t = as_u64(p.get("total_tokens"));
        self.input += i;
        self.output += o;
        self.total += if t == 0 { i + o } else { t };
        self.cost += p.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
        for (k, v) in p {
            if k.ends_with("_tokens") && !matches!(k.as_str(), "prompt_tokens" | "completion_tokens" | "total_tokens") {
                *self.extra.entry(k.clone()).or_default() += as_u64(Some(v));
            }
        }
        self.first.get_or_insert((e.timestamp, e.seq));
        self.last = Some(e.timestamp);
    }

    /// `model`, `usage`, `usageDetails`, `costDetails` of a generation body.
    fn write(&self, body: &mut Map<String, Value>) {
        if let Some(m) = &self.model {
            body.insert("model".into(), json!(m));
        }
        body.insert(
            "usage".into(),
            json!({"input": self.input, "output": self.output, "total": self.total, "unit": "TOKENS"}),
        );
        let mut details = Map::new();
        details.insert("input".into(), json!(self.input));
        details.insert("output".into(), json!(self.output));
        details.insert("total".into(), json!(self.total));
        for (k, v) in &self.extra {
            details.insert(k.clone(), json!(v));
        }
        body.insert("usageDetails".into(), Value::Object(details));
        if self.cost > 0.0 {
            body.insert("costDetails".into(), json!({"total": self.cost}));
        }
    }
}

/// Everything one batch says about one span.
#[derive(Debug, Default)]
struct Obs {
    id: String,
    group: bool,
    name: Option<String>,
    parent: Option<String>,
    first_event: String,
    first_ts: Option<DateTime<Utc>>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    input: Option<Value>,
    output: Option<Value>,
    status: Option<String>,
    error: Option<String>,
    metadata: Map<String, Value>,
    media: Vec<Value>,
    usage: Option<Usage>,
}

impl Obs {
    fn level(&self) -> Option<(&'static str, String)> {
        let msg = |fallback: &str| self.error.clone().unwrap_or_else(|| fallback.to_string());
        match self.status.as_deref() {
            Some("error") => Some(("ERROR", msg("error"))),
            Some("cancelled") => Some(("WARNING", msg("cancelled"))),
            Some("truncated") => Some(("WARNING", msg("truncated"))),
            _ => None,
        }
    }

    fn body(&self, trace_id: &str, env: Option<&String>) -> Map<String, Value> {
        let mut b = Map::new();
        b.insert("id".into(), json!(self.id));
        b.insert("traceId".into(), json!(trace_id));
        if let Some(n) = &self.name {
            b.insert("name".into(), json!(n));
        }
        if let Some(p) = &self.parent {
            b.insert("parentObservationId".into(), json!(p));
        }
        if let Some(t) = self.start {
            b.insert("startTime".into(), json!(ts(t)));
        }
        if let Some(t) = self.end {
            b.insert("endTime".into(), json!(ts(t)));
        }
        if let Some(v) = &self.input {
            b.insert("input".into(), v.clone());
        }
        if let Some(v) = &self.output {
            b.insert("output".into(), v.clone());
        }
        let mut meta = self.metadata.clone();
        if !self.media.is_empty() {
            meta.insert("media_refs".into(), Value::Array(self.media.clone()));
        }
        if let Some(p) = self.usage.as_ref().and_then(|u| u.provider.as_ref()) {
            meta.insert("provider".into(), json!(p));
        }
        if !meta.is_empty() {
            b.insert("metadata".into(), Value::Object(meta));
        }
        if let Some((level, msg)) = self.level() {
            b.insert("level".into(), json!(level));
            b.insert("statusMessage".into(), json!(msg));
        }
        if let Some(e) = env {
            b.insert("environment".into(), json!(e));
        }
        b
    }
}

fn envelope(id: String, kind: &str, at: DateTime<Utc>, body: Map<String, Value>) -> Item {
    let envelope = json!({"id": id, "type": kind, "timestamp": ts(at), "body": Value::Object(body)});
    Item { id, envelope }
}

/// The annotation key under which the pipeline records a run's graph name.
const RUN_START: &str = "operonx.run_start";

/// A run-level event (the pipeline's `operonx.*` annotations): bound to no op and no span.
fn is_run_level(e: &TraceEvent) -> bool {
    e.kind == EventKind::Annotation && e.op_name.is_none() && !e.payload.contains_key("span_id")
}

/// Everything one batch says about one run.
#[derive(Debug, Default)]
struct RunFold {
    obs: Vec<Obs>,
    index: HashMap<String, usize>,
    graph_name: Option<String>,
    run_graph: Option<String>,
    metadata: Map<String, Value>,
    input: Option<Value>,
    output: Option<Value>,
}

impl RunFold {
    fn obs(&mut self, e: &TraceEvent) -> &mut Obs {
        let key = span_key(e);
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.obs.push(Obs { id: key.clone(), first_event: e.event_id.clone(), ..Obs::default() });
                self.index.insert(key, self.obs.len() - 1);
                self.obs.len() - 1
            }
        };
        let o = &mut self.obs[i];
        o.first_ts.get_or_insert(e.timestamp);
        o
    }

    fn add(&mut self, e: &TraceEvent) {
        if is_run_level(e) {
            if let Some(k) = str_field(e, "key") {
                let v = e.payload.get("value").cloned().unwrap_or(Value::Null);
                if k == RUN_START
                    && let Some(g) = v.get("graph").and_then(Value::as_str)
                {
                    self.run_graph = Some(g.to_string());
                }
                self.metadata.insert(k.to_string(), v);
            }
            return;
        }
        let top_level = matches!(parent_of(e), Some(None));
        match e.kind {
            EventKind::OpStart => {
                if top_level && self.graph_name.is_none() {
                    self.graph_name = e.op_name.as_deref().and_then(|n| n.split_once('.')).map(|(g, _)| g.to_string());
                }
                let inputs = non_empty(e.payload.get("inputs"));
                if top_level && self.input.is_none() {
                    self.input.clone_from(&inputs);
                }
                let o = self.obs(e);
                o.start = Some(e.timestamp);
                o.input = inputs;
                o.metadata.insert("ctx".into(), json!(e.ctx));
                o.name.clone_from(&e.op_name);
                if let Some(p) = parent_of(e) {
                    o.parent = p;
                }
            }
            EventKind::OpEnd => {
                let outputs = non_empty(e.payload.get("outputs"));
                let status = str_field(e, "status").unwrap_or("ok").to_string();
                if top_level && status == "ok" && outputs.is_some() {
                    self.output.clone_from(&outputs);
                }
                let o = self.obs(e);
                o.end = Some(e.timestamp);
                o.output = outputs;
                o.name.clone_from(&e.op_name);
                o.error = e.payload.get("error").filter(|v| !v.is_null()).map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
                if status != "ok" {
                    o.metadata.insert("status".into(), json!(status));
                }
                o.status = Some(status);
                let yields = as_u64(e.payload.get("yield_count"));
                if yields > 1 {
                    o.metadata.insert("yield_count".into(), json!(yields));
                }
                if let Some(p) = parent_of(e) {
                    o.parent = p;
                }
            }
            EventKind::OpYield => {
                let o = self.obs(e);
                if let Some(y) = e.payload.get("yielded") {
                    o.metadata.insert("last_yielded".into(), y.clone());
                }
            }
            EventKind::Annotation => {
                let o = self.obs(e);
                if let Some(k) = str_field(e, "key") {
                    o.metadata.insert(k.to_string(), e.payload.get("value").cloned().unwrap_or(Value::Null));
                }
            }
            EventKind::LlmUsage => self.obs(e).usage.get_or_insert_with(Usage::default).add(e),
            EventKind::MediaRef => {
                let media = Value::Object(e.payload.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
                self.obs(e).media.push(media);
            }
            EventKind::GroupStart => {
                let o = self.obs(e);
                o.group = true;
                o.start = Some(e.timestamp);
                o.name = str_field(e, "name").map(str::to_string);
                for (k, v) in &e.payload {
                    if !matches!(k.as_str(), "name" | "span_id" | "parent_span_id") {
                        o.metadata.insert(k.clone(), v.clone());
                    }
                }
                o.metadata.insert("ctx".into(), json!(e.ctx));
                if let Some(p) = parent_of(e) {
                    o.parent = p;
                }
            }
            EventKind::GroupEnd => {
                let o = self.obs(e);
                o.group = true;
                o.end = Some(e.timestamp);
                o.name = str_field(e, "name").map(str::to_string);
                let status = str_field(e, "status").unwrap_or("ok").to_string();
                if status != "ok" {
                    o.metadata.insert("status".into(), json!(status));
                }
                o.status = Some(status);
            }
        }
    }
}

/// Map `events` (any number of runs) to ingestion items, given what earlier batches did.
pub(crate) fn map_batch(events: &[TraceEvent], memo: &Memo, opts: &TraceOptions) -> (Vec<Item>, MemoDelta) {
    let mut order: Vec<&str> = Vec::new();
    let mut runs: HashMap<&str, Vec<&TraceEvent>> = HashMap::new();
    for e in events {
        runs.entry(&e.request_id)
            .or_insert_with(|| {
                order.push(&e.request_id);
                Vec::new()
            })
            .push(e);
    }
    let mut items = Vec::new();
    let mut delta = MemoDelta::default();
    for rid in order {
        let Some(mut evs) = runs.remove(rid) else { continue };
        evs.sort_by_key(|e| e.sort_key());
        map_run(rid, &evs, memo, opts, &mut items, &mut delta);
    }
    (items, delta)
}

fn map_run(
    rid: &str,
    events: &[&TraceEvent],
    memo: &Memo,
    opts: &TraceOptions,
    items: &mut Vec<Item>,
    delta: &mut MemoDelta,
) {
    let (Some(first), Some(earliest)) = (events.first(), events.iter().map(|e| e.timestamp).min()) else { return };
    let mut fold = RunFold::default();
    for e in events {
        fold.add(e);
    }
    let known = memo.runs.get(rid);
    let name = (opts.trace_name.clone().or(fold.run_graph.take()))
        .or_else(|| known.and_then(|k| k.name.clone()))
        .or(fold.graph_name.take());
    let run = RunMemo {
        timestamp: known.map_or(earliest, |k| k.timestamp),
        name: name.clone(),
        input_sent: known.is_some_and(|k| k.input_sent) || fold.input.is_some(),
    };
    let mut body = Map::new();
    body.insert("id".into(), json!(rid));
    body.insert("name".into(), json!(name.as_deref().unwrap_or("operonx")));
    body.insert("timestamp".into(), json!(ts(run.timestamp)));
    if let Some(input) = fold.input.take().filter(|_| !known.is_some_and(|k| k.input_sent)) {
        body.insert("input".into(), input);
    }
    if let Some(output) = fold.output.take() {
        body.insert("output".into(), output);
    }
    if !fold.metadata.is_empty() {
        body.insert("metadata".into(), Value::Object(std::mem::take(&mut fold.metadata)));
    }
    if let Some(e) = &opts.environment {
        body.insert("environment".into(), json!(e));
    }
    if let Some(r) = &opts.release {
        body.insert("release".into(), json!(r));
    }
    if !opts.tags.is_empty() {
        body.insert("tags".into(), json!(opts.tags));
    }
    items.push(envelope(format!("{}-trace-create", first.event_id), "trace-create", earliest, body));
    delta.runs.push((rid.to_string(), run));

    for o in &fold.obs {
        let typ = if o.group {
            ObsType::Span
        } else if o.start.is_some() {
            if o.usage.is_some() { ObsType::Generation } else { ObsType::Span }
        } else {
            memo.open.get(&o.id).copied().unwrap_or(ObsType::Span)
        };
        let mut body = o.body(rid, opts.environment.as_ref());
        if let (ObsType::Generation, Some(u)) = (typ, &o.usage) {
            u.write(&mut body);
        }
        let action = if o.start.is_some() { "create" } else { "update" };
        let kind = format!("{}-{action}", typ.as_str());
        let at = o.start.or(o.first_ts).unwrap_or(earliest);
        items.push(envelope(format!("{}-{kind}", o.first_event), &kind, at, body));
        if o.end.is_some() {
            delta.closed.push(o.id.clone());
        } else if o.start.is_some() {
            delta.opened.push((o.id.clone(), typ));
        }
        // The op was created as a span by an earlier batch: its usage becomes a child generation.
        if let (ObsType::Span, false, Some(u)) = (typ, o.group, &o.usage) {
            let (first_at, seq) = u.first.unwrap_or((at, 0));
            let mut g = Map::new();
            g.insert("id".into(), json!(format!("{}-llm{seq}", o.id)));
            g.insert("traceId".into(), json!(rid));
            g.insert("parentObservationId".into(), json!(o.id));
            g.insert("name".into(), json!(u.model.clone().or(o.name.clone()).unwrap_or_else(|| "llm".into())));
            g.insert("startTime".into(), json!(ts(first_at)));
            g.insert("endTime".into(), json!(ts(u.last.unwrap_or(first_at))));
            if let Some(e) = &opts.environment {
                g.insert("environment".into(), json!(e));
            }
            u.write(&mut g);
            items.push(envelope(
                format!("{}-llm{seq}-generation-create", o.first_event),
                "generation-create",
                first_at,
                g,
            ));
        }
    }
}
