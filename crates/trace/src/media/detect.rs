//! Finding base64 media in trace data, and telling what the bytes are.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::REF_KEY;

/// Standard base64, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A data URL's header (`data:` up to the comma) is at most this long.
const MAX_DATA_URL_HEADER: usize = 256;

/// The media type of well-known formats, from their first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    sniff_with(bytes, true)
}

/// [`sniff`]; `weak` also takes a bare MPEG audio frame sync (`FF Ex`), which text can
/// start with too.
fn sniff_with(bytes: &[u8], weak: bool) -> Option<&'static str> {
    let at = |i: usize, magic: &[u8]| bytes.get(i..i + magic.len()) == Some(magic);
    Some(if at(0, b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if at(0, b"\xff\xd8\xff") {
        "image/jpeg"
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        "image/gif"
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if at(0, b"RIFF") && at(8, b"WAVE") {
        "audio/wav"
    } else if at(0, b"ID3") || (weak && bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0xe0 == 0xe0) {
        "audio/mpeg"
    } else if at(0, b"OggS") {
        "audio/ogg"
    } else if at(0, b"fLaC") {
        "audio/flac"
    } else if at(0, b"\x1a\x45\xdf\xa3") {
        "video/webm"
    } else if at(4, b"ftyp") {
        if at(8, b"M4A ") { "audio/mp4" } else { "video/mp4" }
    } else if at(0, b"%PDF-") {
        "application/pdf"
    } else if at(0, b"\x93NUMPY") {
        "application/x-npy"
    } else {
        return None;
    })
}

/// The declared type, unless the bytes say otherwise: the sniffed type wins, except over
/// a declared type of the same subtype (`audio/webm` stays `audio/webm`).
pub(crate) fn choose_mime(declared: &str, sniffed: Option<&'static str>) -> String {
    let declared = declared.trim();
    let essence = |m: &str| m.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let subtype = |m: &str| essence(m).split_once('/').map(|(_, s)| s.to_string());
    match sniffed {
        Some(s) if subtype(declared) != subtype(s) => s.to_string(),
        _ if declared.is_empty() => "application/octet-stream".to_string(),
        _ => declared.to_string(),
    }
}

/// The file extension of a media type (`bin` when unknown).
pub fn extension(mime: &str) -> &'static str {
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/bmp" => "bmp",
        "image/tiff" => "tiff",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/flac" => "flac",
        "audio/webm" | "video/webm" => "webm",
        "audio/mp4" | "audio/m4a" => "m4a",
        "audio/aac" => "aac",
        "audio/l16" | "audio/pcm" => "pcm",
        "video/mp4" => "mp4",
        "application/pdf" => "pdf",
        "application/x-npy" => "npy",
        "application/json" => "json",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// `audio/<format>` for an OpenAI `input_audio.format`.
fn audio_mime(format: Option<&str>) -> Cow<'static, str> {
    match format.map(str::to_ascii_lowercase).as_deref() {
        Some("wav") => Cow::Borrowed("audio/wav"),
        Some("mp3") => Cow::Borrowed("audio/mpeg"),
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric()) => Cow::Owned(format!("audio/{f}")),
        _ => Cow::Borrowed(""),
    }
}

/// Where base64 media sits in a value.
#[derive(Debug)]
pub(crate) struct Site<'a> {
    /// The declared media type (may be empty).
    pub(crate) declared: Cow<'a, str>,
    /// The base64 text.
    pub(crate) data: &'a str,
    /// `Some(key)`: the object's `key` field is replaced; `None`: the value itself.
    pub(crate) field: Option<&'static str>,
}

/// `(declared type, base64)` of a base64 data URL.
fn data_url(s: &str) -> Option<(&str, &str)> {
    if !s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        return None;
    }
    let comma = s.as_bytes().iter().take(MAX_DATA_URL_HEADER).position(|&b| b == b',')?;
    let header = &s[5..comma];
    let n = header.len();
    if n < 7 || !header.get(n - 7..)?.eq_ignore_ascii_case(";base64") {
        return None;
    }
    Some((&header[..n - 7], &s[comma + 1..]))
}

/// The media type of a bare base64 string, from its first bytes: only strong magic
/// numbers (PNG, JPEG, WAV, PDF, ...), so text is never taken for media.
fn bare_base64(s: &str) -> Option<&'static str> {
    let head = s.get(..24)?;
    if !head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') {
        return None;
    }
    sniff_with(&BASE64.decode(head).ok()?, false)
}

/// The media at `v` (found under `key` in its parent object, if it is in one), when its
/// base64 is at least `min_encoded` characters long. Only a bare string's first bytes
/// are decoded here.
pub(crate) fn site<'a>(v: &'a Value, key: Option<&str>, min_encoded: usize) -> Option<Site<'a>> {
    let long = |d: &'a Value| d.as_str().filter(|s| s.len() >= min_encoded);
    match v {
        Value::String(s) if s.len() >= min_encoded => match data_url(s) {
            Some((declared, data)) => Some(Site { declared: Cow::Borrowed(declared), data, field: None }),
            None => Some(Site { declared: Cow::Borrowed(bare_base64(s)?), data: s, field: None }),
        },
        Value::Object(m) => {
            // One pass over the keys: cheaper than hashed lookups on the small objects that
            // make up messages, and every object of every event is asked.
            let (mut data, mut wrapped) = (None, false);
            for (k, v) in m {
                match k.as_str() {
                    "data" => data = Some(v),
                    "__media__" => wrapped = *v == Value::Bool(true),
                    _ => {}
                }
            }
            let data = long(data?)?;
            let text = |k: &str| m.get(k).and_then(Value::as_str);
            if wrapped {
                (text("encoding") == Some("base64")).then_some(())?;
                return Some(Site { declared: Cow::Borrowed(text("mime_type")?), data, field: None });
            }
            let declared = match key {
                Some("input_audio") => audio_mime(text("format")),
                Some("audio") if m.contains_key("transcript") || m.contains_key("format") => audio_mime(text("format")),
                Some("inline_data" | "inlineData") => Cow::Borrowed(text("mime_type").or(text("mimeType"))?),
                _ if text("type") == Some("base64") => Cow::Borrowed(text("media_type")?),
                _ => return None,
            };
            Some(Site { declared, data, field: Some("data") })
        }
        _ => None,
    }
}

/// Whether `v` (under `key`) holds a media site anywhere (read only; nothing decoded).
pub(crate) fn holds_site(v: &Value, key: Option<&str>, min_encoded: usize) -> bool {
    if site(v, key, min_encoded).is_some() {
        return true;
    }
    match v {
        Value::Object(m) => m.iter().any(|(k, c)| holds_site(c, Some(k), min_encoded)),
        Value::Array(a) => a.iter().any(|c| holds_site(c, None, min_encoded)),
        _ => false,
    }
}

/// Whether `v` holds a media reference (`{"$media": ...}`) anywhere.
pub(crate) fn holds_reference(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key(REF_KEY) || m.values().any(holds_reference),
        Value::Array(a) => a.iter().any(holds_reference),
        _ => false,
    }
}

/// The bytes of `site`, when its base64 is valid and decodes to at least `min_bytes`.
pub(crate) fn decode(site: &Site<'_>, min_bytes: usize) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(site.data.trim_end()).ok()?;
    (bytes.len() >= min_bytes && !bytes.is_empty()).then_some(bytes)
}

/// Replace the media in `v` (under `key`, at `path`) by what `offload` returns for it:
/// `offload(site, field path)` gives the reference value, or `None` to leave the media
/// as it is. `path` is restored on return.
pub(crate) fn rewrite(
    v: &mut Value,
    key: Option<&str>,
    path: &mut String,
    min_encoded: usize,
    offload: &mut dyn FnMut(&Site<'_>, &str) -> Option<Value>,
) {
    let replaced = site(v, key, min_encoded).and_then(|s| {
        let at = match s.field {
            Some(f) => format!("{path}.{f}"),
            None => path.clone(),
        };
        offload(&s, &at).map(|r| (s.field, r))
    });
    match (replaced, v) {
        (Some((Some(field), reference)), Value::Object(m)) => {
            m.insert(field.to_string(), reference);
        }
        (Some((_, reference)), v) => *v = reference,
        (None, Value::Object(m)) => {
            for (k, child) in m.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                rewrite(child, Some(k), path, min_encoded, offload);
                path.truncate(len);
            }
        }
        (None, Value::Array(items)) => {
            for (i, child) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                rewrite(child, None, path, min_encoded, offload);
                path.truncate(len);
            }
        }
        (None, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::media::MediaRef;

    /// The reference of a site's bytes.
    fn reference_of(site: &Site<'_>, min_bytes: usize) -> Option<MediaRef> {
        decode(site, min_bytes).map(|b| MediaRef::of(&b, &site.declared))
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn magic_numbers_name_the_common_formats() {
        let riff = |kind: &[u8]| [b"RIFF\0\0\0\0".as_slice(), kind].concat();
        assert_eq!(sniff(PNG), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff(&riff(b"WEBP")), Some("image/webp"));
        assert_eq!(sniff(&riff(b"WAVE")), Some("audio/wav"));
        assert_eq!(sniff(b"ID3\x04"), Some("audio/mpeg"));
        assert_eq!(sniff(b"\xff\xfb\x90"), Some("audio/mpeg"));
        assert_eq!(sniff(b"OggS\0"), Some("audio/ogg"));
        assert_eq!(sniff(b"fLaC"), Some("audio/flac"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some("video/mp4"));
        assert_eq!(sniff(b"plain text"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn the_sniffed_type_wins_over_the_declared_one() {
        assert_eq!(choose_mime("image/jpeg", Some("image/png")), "image/png");
        assert_eq!(choose_mime("audio/webm", Some("video/webm")), "audio/webm");
        assert_eq!(choose_mime("audio/L16;rate=16000", None), "audio/L16;rate=16000");
        assert_eq!(choose_mime("", None), "application/octet-stream");
        assert_eq!(extension("image/png"), "png");
        assert_eq!(extension("audio/L16;rate=16000"), "pcm");
        assert_eq!(extension("application/x-unknown"), "bin");
    }

    #[test]
    fn data_urls_and_content_parts_are_found() {
        let data = b64(&[PNG, &[7u8; 40]].concat());
        let url = json!(format!("data:image/png;base64,{data}"));
        let s = site(&url, Some("url"), 16).unwrap();
        assert_eq!((s.declared.as_ref(), s.field), ("image/png", None));
        assert_eq!(reference_of(&s, 1).unwrap().mime, "image/png");
        // Parameters are kept; the header must say base64.
        let pcm = json!(format!("data:audio/L16;rate=16000;base64,{data}"));
        assert_eq!(site(&pcm, None, 16).unwrap().declared, "audio/L16;rate=16000");
        assert!(site(&json!(format!("data:text/plain,{data}")), None, 16).is_none());
        assert!(site(&json!(format!("DATA:image/png;BASE64,{data}")), None, 16).is_some());

        let audio = json!({"data": data, "format": "mp3"});
        let s = site(&audio, Some("input_audio"), 16).unwrap();
        assert_eq!((s.declared.as_ref(), s.field), ("audio/mpeg", Some("data")));
        assert!(site(&audio, Some("other"), 16).is_none(), "only under input_audio");
        let out_audio = json!({"id": "a1", "data": data, "transcript": "hi"});
        assert!(site(&out_audio, Some("audio"), 16).is_some());
        let anthropic = json!({"type": "base64", "media_type": "image/jpeg", "data": data});
        assert_eq!(site(&anthropic, Some("source"), 16).unwrap().declared, "image/jpeg");
        let gemini = json!({"mimeType": "image/webp", "data": data});
        assert_eq!(site(&gemini, Some("inlineData"), 16).unwrap().declared, "image/webp");
        let wrapped = json!({"__media__": true, "data": data, "encoding": "base64", "mime_type": "image/png"});
        assert_eq!(site(&wrapped, None, 16).unwrap().field, None);
        let by_reference = json!({"__media__": true, "data": "https://x/cat.png", "mime_type": "image/png"});
        assert!(site(&by_reference, None, 4).is_none(), "a URL reference is not bytes");
    }

    #[test]
    fn bare_base64_is_media_only_when_its_bytes_say_so() {
        let wav = [b"RIFF\0\0\0\0WAVEfmt ".as_slice(), &[1u8; 100]].concat();
        let bare = json!(b64(&wav));
        let s = site(&bare, Some("audio"), 16).unwrap();
        assert_eq!((s.declared.as_ref(), s.field), ("audio/wav", None));
        assert_eq!(reference_of(&s, 1).unwrap().mime, "audio/wav");
        // Text, base64 of text, and base64 of bytes with only a weak signature: not media.
        assert!(site(&json!("x".repeat(200)), None, 16).is_none());
        assert!(site(&json!(b64(&[b'a'; 150])), None, 16).is_none());
        assert!(site(&json!(b64(&[0xff; 150])), None, 16).is_none());
        assert!(site(&json!("iVBORw0KGgo ".repeat(20)), None, 16).is_none(), "not base64 past its start");
        let broken = json!(format!("{}!!", b64(&wav)));
        assert!(decode(&site(&broken, None, 16).unwrap(), 1).is_none(), "invalid base64 stays data");
    }

    #[test]
    fn short_values_and_invalid_base64_are_not_media() {
        let short = json!("data:image/png;base64,iVBORw0KGgo=");
        assert!(site(&short, None, 1368).is_none());
        let s = site(&short, None, 4).unwrap();
        assert!(decode(&s, 1024).is_none(), "decodes to fewer bytes than the threshold");
        let bad = json!(format!("data:image/png;base64,{}", "not base64!".repeat(200)));
        let s = site(&bad, None, 16).unwrap();
        assert!(decode(&s, 1).is_none());
    }

    #[test]
    fn rewriting_replaces_the_site_and_names_its_path() {
        let data = b64(&[7u8; 64]);
        let mut v = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}},
            {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
        ]}]});
        let mut paths = Vec::new();
        let mut path = String::from("inputs");
        rewrite(&mut v, None, &mut path, 16, &mut |s, at| {
            paths.push((at.to_string(), s.declared.to_string()));
            Some(json!("REF"))
        });
        assert_eq!(path, "inputs");
        assert_eq!(
            paths,
            [
                ("inputs.messages[0].content[1].image_url.url".to_string(), "image/png".to_string()),
                ("inputs.messages[0].content[2].input_audio.data".to_string(), "audio/wav".to_string()),
            ]
        );
        assert_eq!(v["messages"][0]["content"][1]["image_url"]["url"], "REF");
        assert_eq!(v["messages"][0]["content"][2]["input_audio"], json!({"data": "REF", "format": "wav"}));
        assert!(holds_site(&json!({"a": [format!("data:x/y;base64,{data}")]}), None, 16));
        assert!(!holds_site(&v, None, 16));
    }
}
