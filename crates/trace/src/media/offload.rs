//! The pipeline step that moves media out of events into a [`MediaStore`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use operonx_runtime::{EventKind, TraceEvent};
use serde_json::{Map, Value};

use super::detect::{self, Site};
use super::{MediaRef, MediaStore};
use crate::processor::{ENTRY_FIELDS, is_structural_key};
use crate::recorded::RecordedEvent;

/// Offloads base64 media from events into a [`MediaStore`], leaving references (see the
/// [module docs](crate::media)). The pipeline runs it first, on each run's events, at
/// flush time (never on a run's task); events with no media pass through as they are,
/// read in place.
pub struct MediaOffload {
    store: Arc<dyn MediaStore>,
    min_bytes: usize,
    /// The shortest base64 that can decode to `min_bytes`.
    min_encoded: usize,
    /// A failed write was reported (once per pipeline).
    warned: AtomicBool,
}

impl std::fmt::Debug for MediaOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaOffload")
            .field("store", &self.store.describe())
            .field("min_bytes", &self.min_bytes)
            .finish()
    }
}

/// One value offloaded from an event.
struct Found {
    field_path: String,
    media: MediaRef,
    error: Option<String>,
}

impl MediaOffload {
    /// Values that decode to fewer bytes stay inline (1 KiB).
    pub const DEFAULT_MIN_BYTES: usize = 1024;

    /// Offload into `store`, from [`MediaOffload::DEFAULT_MIN_BYTES`] up.
    pub fn new(store: Arc<dyn MediaStore>) -> Self {
        Self::with_store(store, Self::DEFAULT_MIN_BYTES)
    }

    fn with_store(store: Arc<dyn MediaStore>, min_bytes: usize) -> Self {
        let min_bytes = min_bytes.max(1);
        Self { store, min_bytes, min_encoded: (min_bytes * 4).div_ceil(3), warned: AtomicBool::new(false) }
    }

    /// Offload only values of at least `n` decoded bytes (at least 1).
    #[must_use]
    pub fn min_bytes(self, n: usize) -> Self {
        Self::with_store(self.store, n)
    }

    /// The store media goes to (exporters that upload media read it from there).
    pub fn store(&self) -> &Arc<dyn MediaStore> {
        &self.store
    }

    /// Offload the media of one run's events (in `(timestamp, seq)` order): events
    /// holding media are built, their values replaced by references, and each is preceded
    /// by its `media_ref` events. Events without media are left as they are.
    pub fn apply(&self, events: &mut Vec<RecordedEvent>) {
        let Some(first) = events.iter().position(|e| self.may_hold(e)) else { return };
        let mut out = Vec::with_capacity(events.len() + 2);
        for (i, e) in std::mem::take(events).into_iter().enumerate() {
            if i < first || !self.may_hold(&e) {
                out.push(e);
                continue;
            }
            let mut built = e.into_event();
            out.extend(self.offload_event(&mut built).into_iter().map(RecordedEvent::Built));
            out.push(RecordedEvent::Built(built));
        }
        *events = out;
    }

    /// Whether the event may hold media (read in place; nothing is decoded).
    fn may_hold(&self, e: &RecordedEvent) -> bool {
        let min = self.min_encoded;
        match e {
            RecordedEvent::Raw(raw) => {
                raw.kind() != EventKind::MediaRef
                    && raw.any_value(&mut |field, entry, v| {
                        data_field(field) && detect::holds_site(v, entry.or(Some(field)), min)
                    })
            }
            RecordedEvent::Built(built) => {
                built.kind != EventKind::MediaRef
                    && built.payload.iter().any(|(k, v)| {
                        data_field(k)
                            && match (ENTRY_FIELDS.contains(&k.as_str()), v) {
                                (true, Value::Object(entries)) => {
                                    entries.iter().any(|(name, v)| detect::holds_site(v, Some(name), min))
                                }
                                _ => detect::holds_site(v, Some(k), min),
                            }
                    })
            }
            RecordedEvent::Meta(_) => false,
        }
    }

    /// Offload the media of one event: its values are replaced by references and its
    /// `media_refs` list is filled. Returns its `media_ref` events (none when it held no
    /// media), to be written just before it.
    pub fn offload_event(&self, event: &mut TraceEvent) -> Vec<TraceEvent> {
        if event.kind == EventKind::MediaRef {
            return Vec::new();
        }
        let mut found = Vec::new();
        let mut offload = |site: &Site<'_>, at: &str| -> Option<Value> {
            let bytes = detect::decode(site, self.min_bytes)?;
            let media = MediaRef::of(&bytes, &site.declared);
            let error = self.store.put(&media, &bytes).err().map(|e| {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(store = %self.store.describe(), error = %e,
                        "cannot store media of a trace; the trace keeps its reference only");
                }
                e.to_string()
            });
            let reference = media.to_value();
            found.push(Found { field_path: at.to_string(), media, error });
            Some(reference)
        };
        for (k, v) in event.payload.iter_mut() {
            if !data_field(k) {
                continue;
            }
            match (ENTRY_FIELDS.contains(&k.as_str()), v) {
                (true, Value::Object(entries)) => {
                    for (name, v) in entries.iter_mut() {
                        let mut path = format!("{k}.{name}");
                        detect::rewrite(v, Some(name), &mut path, self.min_encoded, &mut offload);
                    }
                }
                (_, v) => {
                    let mut path = k.clone();
                    detect::rewrite(v, Some(k), &mut path, self.min_encoded, &mut offload);
                }
            }
        }
        if found.is_empty() {
            return Vec::new();
        }
        let refs: Vec<Value> = found
            .iter()
            .map(|f| {
                let mut m = Map::new();
                m.insert("field_path".into(), Value::String(f.field_path.clone()));
                m.insert("handle".into(), Value::String(f.media.sha256.clone()));
                m.insert("mime".into(), Value::String(f.media.mime.clone()));
                m.insert("size_bytes".into(), Value::from(f.media.size));
                Value::Object(m)
            })
            .collect();
        match event.payload.get_mut("media_refs") {
            Some(Value::Array(list)) => list.extend(refs),
            _ => {
                event.payload.insert("media_refs".into(), Value::Array(refs));
            }
        }
        let span = event.payload.get("span_id").filter(|s| s.is_string()).cloned();
        found
            .into_iter()
            .enumerate()
            .map(|(n, f)| {
                let mut payload = BTreeMap::new();
                payload.insert("handle".to_string(), Value::String(f.media.sha256.clone()));
                payload.insert("mime".to_string(), Value::String(f.media.mime.clone()));
                payload.insert("size_bytes".to_string(), Value::from(f.media.size));
                payload.insert("field_path".to_string(), Value::String(f.field_path));
                if let Some(s) = &span {
                    payload.insert("span_id".to_string(), s.clone());
                }
                if let Some(uri) = self.store.uri(&f.media) {
                    payload.insert("uri".to_string(), Value::String(uri));
                }
                if let Some(e) = f.error {
                    payload.insert("error".to_string(), Value::String(e));
                }
                TraceEvent {
                    event_id: format!("{}-media{n}", event.event_id),
                    request_id: event.request_id.clone(),
                    kind: EventKind::MediaRef,
                    op_name: event.op_name.clone(),
                    ctx: event.ctx.clone(),
                    timestamp: event.timestamp,
                    seq: event.seq,
                    payload,
                }
            })
            .collect()
    }
}

/// Whether a payload key holds user data (media may be there).
fn data_field(key: &str) -> bool {
    !is_structural_key(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use base64::Engine as _;
    use operonx_runtime::EventKind::{Annotation, OpEnd, OpStart};
    use serde_json::json;

    use super::*;
    use crate::media::{LocalMediaStore, MemoryMediaStore};
    use crate::processor::test_support::event;

    fn png(n: usize) -> Vec<u8> {
        [b"\x89PNG\r\n\x1a\n".as_slice(), &vec![42u8; n]].concat()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn offload() -> (MediaOffload, Arc<MemoryMediaStore>) {
        let store = Arc::new(MemoryMediaStore::default());
        (MediaOffload::new(store.clone()), store)
    }

    #[test]
    fn media_becomes_references_listed_in_the_payload_and_announced_before_it() {
        let (offload, store) = offload();
        let image = png(2000);
        let audio = [b"RIFF\0\0\0\0WAVE".as_slice(), &[1u8; 3000]].concat();
        let url = format!("data:image/png;base64,{}", b64(&image));
        let mut events = vec![
            RecordedEvent::Built(event(
                0,
                OpStart,
                Some("g.llm"),
                &["main"],
                json!({
                    "inputs": {"messages": [{"role": "user", "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": url}},
                        {"type": "input_audio", "input_audio": {"data": b64(&audio), "format": "wav"}}
                    ]}]},
                    "span_id": "r1-s1", "parent_span_id": null
                }),
            )),
            RecordedEvent::Built(event(
                1,
                OpEnd,
                Some("g.llm"),
                &["main"],
                json!({
                    "outputs": {"image": url, "small": format!("data:image/png;base64,{}", b64(&png(10)))},
                    "status": "ok", "span_id": "r1-s1"
                }),
            )),
        ];
        offload.apply(&mut events);
        let events: Vec<TraceEvent> = events.into_iter().map(RecordedEvent::into_event).collect();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        let m = EventKind::MediaRef;
        assert_eq!(kinds, [m, m, OpStart, m, OpEnd]);
        let image_ref = MediaRef::of(&image, "image/png");
        let audio_ref = MediaRef::of(&audio, "audio/wav");
        let start = &events[2];
        let content = &start.payload["inputs"]["messages"][0]["content"];
        assert_eq!(content[1]["image_url"]["url"], image_ref.to_value());
        assert_eq!(content[2]["input_audio"], json!({"data": audio_ref.to_value(), "format": "wav"}));
        assert_eq!(
            start.payload["media_refs"],
            json!([
                {"field_path": "inputs.messages[0].content[1].image_url.url", "handle": image_ref.sha256,
                 "mime": "image/png", "size_bytes": 2008},
                {"field_path": "inputs.messages[0].content[2].input_audio.data", "handle": audio_ref.sha256,
                 "mime": "audio/wav", "size_bytes": 3012}
            ])
        );
        let announced = &events[0];
        assert_eq!(announced.event_id, "r1-0-media0");
        assert_eq!((announced.seq, announced.timestamp, &announced.op_name), (0, start.timestamp, &start.op_name));
        assert_eq!(
            serde_json::to_value(&announced.payload).unwrap(),
            json!({"handle": image_ref.sha256, "mime": "image/png", "size_bytes": 2008,
                   "field_path": "inputs.messages[0].content[1].image_url.url", "span_id": "r1-s1"})
        );
        // The small image stays inline; the same bytes twice are stored once.
        let end = &events[4];
        assert!(end.payload["outputs"]["small"].as_str().unwrap().starts_with("data:image/png;base64,"));
        assert_eq!(end.payload["outputs"]["image"], image_ref.to_value());
        assert_eq!(store.get(&image_ref.sha256).unwrap().unwrap(), image);
        assert_eq!(store.get(&audio_ref.sha256).unwrap().unwrap(), audio);
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains(&b64(&image)[..200]) && !text.contains(&b64(&audio)[..200]), "no base64 left");
    }

    #[test]
    fn events_without_media_are_left_as_they_are() {
        let (offload, _) = offload();
        let bad = format!("data:image/png;base64,{}", "%".repeat(4000));
        let payload = json!({"outputs": {"text": "hello", "bad": bad, "n": 3}, "status": "ok"});
        let mut events = vec![RecordedEvent::Built(event(0, OpEnd, Some("g.a"), &["main"], payload.clone()))];
        offload.apply(&mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(serde_json::to_value(&events[0].to_event().payload).unwrap(), payload);
        // A media_ref event is never rewritten.
        let mut own = event(0, EventKind::MediaRef, None, &[], json!({"handle": "x", "note": bad}));
        assert!(offload.offload_event(&mut own).is_empty());
    }

    #[test]
    fn json_media_values_and_annotations_are_offloaded_too() {
        let (offload, _) = offload();
        let bytes = png(1500);
        let mut e = event(
            0,
            Annotation,
            Some("g.a"),
            &["main"],
            json!({
                "key": "frame",
                "value": {"__media__": true, "data": b64(&bytes), "encoding": "base64", "mime_type": "image/jpeg"}
            }),
        );
        let announced = offload.offload_event(&mut e);
        assert_eq!(announced.len(), 1);
        // The sniffed type wins over the declared one.
        assert_eq!(e.payload["value"], MediaRef::of(&bytes, "image/png").to_value());
        assert_eq!(e.payload["media_refs"][0]["field_path"], "value");
        assert_eq!(e.payload["key"], "frame");
    }

    #[test]
    fn a_store_that_cannot_write_still_leaves_only_the_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let offload = MediaOffload::new(Arc::new(LocalMediaStore::new(blocker.join("media")))).min_bytes(16);
        let bytes = png(64);
        let mut e = event(
            0,
            OpEnd,
            Some("g.a"),
            &["main"],
            json!({"outputs": {"img": format!("data:image/png;base64,{}", b64(&bytes))}}),
        );
        let announced = offload.offload_event(&mut e);
        assert_eq!(e.payload["outputs"]["img"], MediaRef::of(&bytes, "image/png").to_value());
        assert!(announced[0].payload["error"].is_string(), "{:?}", announced[0].payload);
    }
}
