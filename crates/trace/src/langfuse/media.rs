//! Media in Langfuse items: the bytes behind each `{"$media": sha256, ...}` reference are
//! uploaded through Langfuse's media API and the reference is replaced by Langfuse's
//! token, `@@@langfuseMedia:type=<mime>|id=<mediaId>|source=bytes@@@`, which its UI
//! renders as the image, audio or file.
//!
//! Per reference (per trace, observation, field and hash; done once per exporter):
//! 1. `POST {host}/api/public/media` with `{traceId, observationId?, field, contentType,
//!    contentLength, sha256Hash}` (the hash in base64) answers `{mediaId, uploadUrl}`;
//! 2. when `uploadUrl` is set, the bytes are `PUT` there (a presigned URL: no auth) and
//!    `PATCH {host}/api/public/media/{mediaId}` reports `{uploadedAt, uploadHttpStatus,
//!    uploadHttpError?, uploadTimeMs}`; no `uploadUrl` means Langfuse has these bytes
//!    already (deduplicated by hash): nothing is sent.
//!
//! A failed upload (or bytes no longer in the store) leaves a readable placeholder,
//! `[media upload failed: image/png 12.3 KiB sha256:ab12cd34ef56…]`, never base64, and
//! never fails the export.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::LangfuseExporter;
use super::mapping::Item;
use crate::media::{MediaRef, human_size, replace_references};

/// How many uploads (trace, observation, field, hash) the exporter remembers.
const UPLOADS_CAP: usize = 10_000;

/// What identifies one upload.
fn upload_key(trace: &str, observation: Option<&str>, field: &str, sha256: &str) -> String {
    format!("{trace}\u{1}{}\u{1}{field}\u{1}{sha256}", observation.unwrap_or(""))
}

/// The placeholder of media that could not be uploaded.
fn placeholder(media: &MediaRef) -> String {
    format!("[media upload failed: {} {} sha256:{}…]", media.mime, human_size(media.size), media.short_sha())
}

/// Langfuse's media token.
fn token(media: &MediaRef, media_id: &str) -> String {
    format!("@@@langfuseMedia:type={}|id={media_id}|source=bytes@@@", essence(&media.mime))
}

/// A media type without its parameters (`audio/L16;rate=16000` → `audio/L16`).
fn essence(mime: &str) -> &str {
    mime.split(';').next().unwrap_or(mime).trim()
}

/// Every distinct reference in `v`.
fn references(v: &Value, out: &mut Vec<MediaRef>) {
    if let Some(r) = MediaRef::from_value(v) {
        if !out.iter().any(|o| o.sha256 == r.sha256) {
            out.push(r);
        }
        return;
    }
    match v {
        Value::Object(m) => m.values().for_each(|c| references(c, out)),
        Value::Array(a) => a.iter().for_each(|c| references(c, out)),
        _ => {}
    }
}

impl LangfuseExporter {
    /// Replace the media references in the items' `input`, `output` and `metadata` by
    /// Langfuse media tokens (uploading the bytes) or placeholders.
    pub(super) async fn resolve_media(&self, items: &mut [Item]) {
        for item in items {
            let trace_create = item.envelope.get("type").and_then(Value::as_str) == Some("trace-create");
            let Some(body) = item.envelope.get_mut("body").and_then(Value::as_object_mut) else { continue };
            let id = body.get("id").and_then(Value::as_str).map(str::to_string);
            let (trace, observation) = if trace_create {
                (id, None)
            } else {
                (body.get("traceId").and_then(Value::as_str).map(str::to_string), id)
            };
            let Some(trace) = trace else { continue };
            for field in ["input", "output", "metadata"] {
                let Some(value) = body.get_mut(field) else { continue };
                let mut refs = Vec::new();
                references(value, &mut refs);
                if refs.is_empty() {
                    continue;
                }
                let mut tokens = HashMap::new();
                for media in refs {
                    let text = self.media_token(&trace, observation.as_deref(), field, &media).await;
                    tokens.insert(media.sha256, text);
                }
                let replaced = replace_references(value, &|m| {
                    Value::String(tokens.get(&m.sha256).cloned().unwrap_or_else(|| placeholder(m)))
                })
                .into_owned();
                *value = replaced;
            }
        }
    }

    /// The token of `media` in `field` of this trace/observation: uploaded now, or
    /// remembered from an earlier upload; a placeholder when that fails.
    async fn media_token(&self, trace: &str, observation: Option<&str>, field: &str, media: &MediaRef) -> String {
        let key = upload_key(trace, observation, field, &media.sha256);
        if let Some(t) = self.uploads().get(&key) {
            return t.clone();
        }
        let bytes = match self.media.get() {
            None => Err("no media store".to_string()),
            Some(store) => {
                let (store, sha) = (std::sync::Arc::clone(store), media.sha256.clone());
                match crate::blocking::run_blocking(move || store.get(&sha)).await {
                    Ok(Ok(Some(bytes))) => Ok(bytes),
                    Ok(Ok(None)) => Err("the bytes are no longer in the media store".to_string()),
                    Ok(Err(e)) => Err(format!("cannot read the media store: {e}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let uploaded = match bytes {
            Ok(bytes) => self.upload(trace, observation, field, media, bytes).await,
            Err(e) => Err(e),
        };
        match uploaded {
            Ok(media_id) => {
                let t = token(media, &media_id);
                let mut uploads = self.uploads();
                if uploads.len() >= UPLOADS_CAP {
                    uploads.clear();
                }
                uploads.insert(key, t.clone());
                t
            }
            Err(e) => {
                tracing::warn!(mime = %media.mime, size = media.size, sha256 = %media.short_sha(), error = %e,
                    "langfuse: media upload failed; the observation shows a placeholder");
                placeholder(media)
            }
        }
    }

    /// Upload `bytes` as `field` of this trace/observation: Langfuse's media id.
    async fn upload(
        &self,
        trace: &str,
        observation: Option<&str>,
        field: &str,
        media: &MediaRef,
        bytes: Vec<u8>,
    ) -> Result<String, String> {
        let host = self.config.host.trim_end_matches('/');
        let sha = media.sha256_base64().ok_or("not a SHA-256")?;
        let content_type = essence(&media.mime).to_string();
        let mut request = json!({
            "traceId": trace,
            "field": field,
            "contentType": content_type,
            "contentLength": bytes.len(),
            "sha256Hash": sha,
        });
        if let Some(o) = observation {
            request["observationId"] = json!(o);
        }
        let resp = self
            .api(reqwest::Method::POST, &format!("{host}/api/public/media"))
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach {host}: {}", crate::export::describe(&e)))?;
        let status = resp.status();
        let answer = resp.bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", super::snippet(&answer)));
        }
        let answer: Value = serde_json::from_slice(&answer).map_err(|e| format!("unreadable answer: {e}"))?;
        let media_id = answer.get("mediaId").and_then(Value::as_str).ok_or("no mediaId in the answer")?.to_string();
        let Some(upload_url) = answer.get("uploadUrl").and_then(Value::as_str) else {
            // Langfuse has these bytes already.
            return Ok(media_id);
        };
        let method = match answer.get("uploadHttpMethod").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case("post") => reqwest::Method::POST,
            _ => reqwest::Method::PUT,
        };
        let started = Instant::now();
        let sent = self
            .client
            .request(method, upload_url)
            .header(reqwest::header::CONTENT_TYPE, &content_type)
            .header("x-amz-checksum-sha256", &sha)
            .header("x-ms-blob-type", "BlockBlob")
            .body(bytes)
            .send()
            .await;
        let (upload_status, upload_error) = match sent {
            Ok(r) if r.status().is_success() => (r.status().as_u16(), None),
            Ok(r) => {
                let s = r.status().as_u16();
                let text = r.bytes().await.map(|b| super::snippet(&b)).unwrap_or_default();
                (s, Some(format!("HTTP {s}: {text}")))
            }
            Err(e) => (0, Some(crate::export::describe(&e))),
        };
        let mut report = json!({
            "uploadedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "uploadHttpStatus": upload_status,
            "uploadTimeMs": started.elapsed().as_millis() as u64,
        });
        if let Some(e) = &upload_error {
            report["uploadHttpError"] = json!(e);
        }
        let patched = self
            .api(reqwest::Method::PATCH, &format!("{host}/api/public/media/{media_id}"))
            .body(report.to_string())
            .send()
            .await;
        if let Some(e) = upload_error {
            return Err(format!("upload: {e}"));
        }
        match patched {
            Ok(r) if r.status().is_success() => Ok(media_id),
            Ok(r) => Err(format!("reporting the upload: HTTP {}", r.status())),
            Err(e) => Err(format!("reporting the upload: {}", crate::export::describe(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_placeholders_name_the_media_without_its_bytes() {
        let media = MediaRef::of(b"\x89PNG\r\n\x1a\n", "image/png");
        assert_eq!(token(&media, "m1"), "@@@langfuseMedia:type=image/png|id=m1|source=bytes@@@");
        assert_eq!(placeholder(&media), "[media upload failed: image/png 8 B sha256:4c4b6a3be131…]");
        let pcm = MediaRef { mime: "audio/L16;rate=16000".into(), ..media };
        assert_eq!(token(&pcm, "m2"), "@@@langfuseMedia:type=audio/L16|id=m2|source=bytes@@@");
        let mut found = Vec::new();
        references(&json!({"a": [pcm.to_value(), {"b": pcm.to_value()}], "c": "x"}), &mut found);
        assert_eq!(found.len(), 1);
    }
}
