//! Media offloaded from traces: images, audio and files that op inputs, outputs and
//! yields carry as base64 (data URLs, content parts) are stored once, by content hash,
//! beside the trace, and the trace keeps a reference instead.
//!
//! - [`MediaStore`]: content-addressed blobs, keyed by the SHA-256 of their bytes (hex).
//!   [`LocalMediaStore`] keeps them as files, `<root>/<sha[0:2]>/<sha>.<ext>` (written
//!   temp-then-rename, private: files `0600`, folders `0700`); the CLI's root is `media/`
//!   beside the SQLite trace store (`.operonx/media`). [`MemoryMediaStore`] keeps them in
//!   memory, for pipelines with no trace store (the Langfuse exporter still uploads them).
//! - [`MediaOffload`]: the pipeline's first step, before the processors (so `truncate`
//!   never cuts a data URL and `redact` never reads base64). In each event's data it
//!   finds base64 media of at least [`MediaOffload::DEFAULT_MIN_BYTES`] decoded bytes:
//!   - a string `data:<mime>[;params];base64,<data>` (OpenAI `image_url.url`,
//!     `file.file_data`, a code op's output, ...): the string is replaced;
//!   - `{"input_audio": {"data": <base64>, "format": "wav"}}` (OpenAI audio input),
//!     `{"audio": {"data": <base64>, "transcript": ...}}` (OpenAI audio output),
//!     `{"type": "base64", "media_type": <mime>, "data": <base64>}` (Anthropic sources),
//!     `{"inline_data": {"mime_type": <mime>, "data": <base64>}}` (Gemini, also
//!     `inlineData`/`mimeType`): the `data` string is replaced;
//!   - `{"__media__": true, "encoding": "base64", "data": <base64>, "mime_type": <mime>}`
//!     (the JSON media value of the reference engine): the whole object is replaced;
//!   - a bare base64 string whose bytes start with a well-known format's magic number
//!     (PNG, JPEG, GIF, WebP, WAV, ID3 MP3, Ogg, FLAC, WebM, MP4, PDF, `.npy`): the
//!     string is replaced. Other bare base64 cannot be told from text and stays.
//!
//!   The replacement is the reference `{"$media": "<sha256 hex>", "mime": "image/png",
//!   "size": 12345}` (`mime` is the type sniffed from the bytes' magic numbers when they
//!   have one, else the declared type). Smaller values, and strings that are not valid
//!   base64, stay inline as ordinary data. The event's payload gets a `media_refs` list
//!   (`{field_path, handle, mime, size_bytes}` per reference; `field_path` as
//!   `outputs.messages[0].content[1].image_url.url`), and a `media_ref` event is written
//!   just before it (same op, context, span, time and `seq`; payload `{handle, mime,
//!   size_bytes, field_path, span_id, uri}`, `uri` the stored file's `file://` URI).
//!
//! Exporters see references, never base64: the store and JSON lines keep them as they
//! are, `operonx trace show` prints `[media image/png 12.3 KiB sha256:ab12cd34ef56…]`
//! where the value was, the Langfuse exporter uploads the bytes through Langfuse's media
//! API and puts its `@@@langfuseMedia:...@@@` token there, and the OTLP exporter keeps the
//! `media_ref` events as `operonx.media_ref` span events.

mod detect;
mod offload;
mod store;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub(crate) use self::detect::holds_reference;
pub use self::detect::{extension, sniff};
pub use self::offload::MediaOffload;
pub use self::store::{LocalMediaStore, MediaStore, MemoryMediaStore};

/// The key that marks a media reference object in trace data.
pub const REF_KEY: &str = "$media";

/// A stored blob, as trace data refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// SHA-256 of the bytes, 64 lowercase hex digits: the blob's address.
    pub sha256: String,
    /// Media type (`image/png`), as sniffed from the bytes or else as declared.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
}

impl MediaRef {
    /// The reference of `bytes` declared as `declared` (a media type, possibly empty):
    /// the type sniffed from the bytes wins over the declared one (see [`sniff`]).
    pub fn of(bytes: &[u8], declared: &str) -> Self {
        let digest = Sha256::digest(bytes);
        let mut sha256 = String::with_capacity(64);
        for b in digest.iter() {
            sha256.push(char::from(HEX[usize::from(b >> 4)]));
            sha256.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Self { sha256, mime: detect::choose_mime(declared, sniff(bytes)), size: bytes.len() as u64 }
    }

    /// The reference as trace data: `{"$media": sha256, "mime": ..., "size": ...}`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(REF_KEY.into(), Value::String(self.sha256.clone()));
        m.insert("mime".into(), Value::String(self.mime.clone()));
        m.insert("size".into(), Value::from(self.size));
        Value::Object(m)
    }

    /// Read a reference written by [`MediaRef::to_value`] (`None` for anything else).
    pub fn from_value(v: &Value) -> Option<Self> {
        let m = v.as_object()?;
        let sha256 = m.get(REF_KEY)?.as_str().filter(|s| is_sha256_hex(s))?;
        let mime = m.get("mime").and_then(Value::as_str).unwrap_or("application/octet-stream");
        let size = m.get("size").and_then(Value::as_u64).unwrap_or(0);
        Some(Self { sha256: sha256.to_string(), mime: mime.to_string(), size })
    }

    /// The SHA-256 as standard base64 (what Langfuse's media API takes).
    pub fn sha256_base64(&self) -> Option<String> {
        let bytes: Option<Vec<u8>> = (0..self.sha256.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(self.sha256.get(i..i + 2)?, 16).ok())
            .collect();
        Some(base64::engine::general_purpose::STANDARD.encode(bytes?))
    }

    /// How a reference reads to a person: `[media image/png 12.3 KiB sha256:ab12cd34ef56…]`.
    pub fn label(&self) -> String {
        format!("[media {} {} sha256:{}…]", self.mime, human_size(self.size), self.short_sha())
    }

    /// The first 12 hex digits of the hash.
    pub fn short_sha(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }

    /// The file extension of its media type (`png`, `wav`, `bin` when unknown).
    pub fn extension(&self) -> &'static str {
        extension(&self.mime)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// A copy of `v` in which every media reference is replaced by `with(reference)`
/// (borrowed as it is when it holds none).
pub fn replace_references<'a>(v: &'a Value, with: &dyn Fn(&MediaRef) -> Value) -> std::borrow::Cow<'a, Value> {
    if !holds_reference(v) {
        return std::borrow::Cow::Borrowed(v);
    }
    fn walk(v: &mut Value, with: &dyn Fn(&MediaRef) -> Value) {
        if let Some(r) = MediaRef::from_value(v) {
            *v = with(&r);
            return;
        }
        match v {
            Value::Object(m) => m.values_mut().for_each(|c| walk(c, with)),
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, with)),
            _ => {}
        }
    }
    let mut copy = v.clone();
    walk(&mut copy, with);
    std::borrow::Cow::Owned(copy)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reference_round_trips_and_reads_as_a_label() {
        let r = MediaRef::of(b"hello", "text/plain");
        assert_eq!(r.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(r.sha256_base64().as_deref(), Some("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="));
        let v = r.to_value();
        assert_eq!(v, json!({"$media": r.sha256, "mime": "text/plain", "size": 5}));
        assert_eq!(MediaRef::from_value(&v), Some(r.clone()));
        assert_eq!(r.label(), "[media text/plain 5 B sha256:2cf24dba5fb0…]");
        assert_eq!(MediaRef::from_value(&json!({"$media": "not-a-hash"})), None);
        assert_eq!(MediaRef::from_value(&json!("x")), None);
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(12_595), "12.3 KiB");
        assert_eq!(human_size(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn references_are_replaced_wherever_they_are() {
        let r = MediaRef::of(b"abc", "image/png").to_value();
        let v = json!({"a": [1, {"url": r}], "b": "x"});
        let shown = replace_references(&v, &|m| Value::String(m.label()));
        assert_eq!(shown["a"][1]["url"], "[media image/png 3 B sha256:ba7816bf8f01…]");
        assert_eq!(shown["b"], "x");
        let plain = json!({"a": 1});
        assert!(matches!(replace_references(&plain, &|_| Value::Null), std::borrow::Cow::Borrowed(_)));
    }
}
