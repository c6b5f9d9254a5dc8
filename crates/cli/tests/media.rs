//! Media offloaded from traces (issue 16, item 4), end to end: `operonx run` on a graph
//! whose op outputs and LLM inputs carry a data URL image and an OpenAI `input_audio`
//! part, with the trace store, Langfuse and OTLP on (mock servers on 127.0.0.1). The
//! stored trace holds references, the bytes are stored once beside it, `trace show`
//! prints the references, Langfuse receives the upload and its token, OTLP the reference.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use base64::Engine as _;
use common::mock_http::{Log, Received, server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use sha2::Digest as _;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png() -> Vec<u8> {
    [b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".as_slice(), &[21u8; 3000]].concat()
}

fn wav() -> Vec<u8> {
    [b"RIFF\0\0\0\0WAVEfmt ".as_slice(), &[17u8; 4000]].concat()
}

fn sha_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Langfuse: ingestion, and the media API (an upload URL the first time a hash is seen).
fn langfuse() -> (String, Log) {
    let seen = Mutex::new(HashSet::new());
    server(move |base, r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/public/ingestion") => (207, r#"{"successes":[],"errors":[]}"#.into()),
        ("POST", "/api/public/media") => {
            let ask: Value = serde_json::from_slice(&r.body).unwrap();
            let sha = ask["sha256Hash"].as_str().unwrap().to_string();
            let id: String = sha.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
            let upload = seen.lock().unwrap().insert(sha).then(|| format!("{base}/upload/{id}"));
            (200, json!({"mediaId": id, "uploadUrl": upload}).to_string())
        }
        ("PUT", _) => (200, String::new()),
        ("PATCH", _) => (200, "{}".into()),
        _ => (404, "{}".into()),
    })
}

/// The graph: `picture` outputs a PNG data URL, `tiny` a data URL below the threshold,
/// `bad` a long "data URL" that is not base64; `prompt` puts the picture and a wav into
/// a chat message (an `image_url` and an `input_audio` part) that `llm` is given.
fn workspace(dir: &Path) {
    let image = format!("data:image/png;base64,{}", b64(&png()));
    let graph = json!({
        "schema_version": "1.0", "type": "graph", "name": "see",
        "entries": ["picture", "tiny", "bad"],
        "initial_ready_count": {"picture": 0, "tiny": 0, "bad": 0, "prompt": 1, "llm": 1},
        "compiled_adj": {"picture": [["prompt", false]], "tiny": [], "bad": [], "prompt": [["llm", false]], "llm": []},
        "ops": {
            "picture": {"type": "code", "func_name": "identity", "inputs": {"value": {"literal": image}},
                        "outputs": {"value": {}}},
            "tiny": {"type": "code", "func_name": "identity",
                     "inputs": {"value": {"literal": "data:image/gif;base64,R0lGODlhAQABAAAAACw="}}},
            "bad": {"type": "code", "func_name": "identity",
                    "inputs": {"value": {"literal": format!("data:image/png;base64,{}", "*".repeat(3000))}}},
            "prompt": {"type": "prompt", "inputs": {
                "template": {"literal": [{"role": "user", "content": [
                    {"type": "text", "text": "What is in the picture and the recording?"},
                    {"type": "image_url", "image_url": {"url": "{image}"}},
                    {"type": "input_audio", "input_audio": {"data": "{audio}", "format": "wav"}}
                ]}]},
                "image": {"ref": {"source": "see.picture", "var": "value"}},
                "audio": {"literal": b64(&wav())}
            }, "outputs": {"messages": {}}},
            "llm": {"type": "llm", "bound": "io", "resource": "assistant",
                    "inputs": {"messages": {"required": true, "ref": {"source": "see.prompt", "var": "messages"}}},
                    "outputs": {"content": {"ref": {"source": "__PARENT__", "var": "answer", "is_output": true}}}}
        }
    });
    std::fs::write(dir.join("graph.json"), graph.to_string()).unwrap();
    std::fs::write(dir.join("replies.json"), r#"{"rules": [], "default": "A grey square and a hum."}"#).unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        "llm:\n  assistant:\n    api_type: replay\n    model: replay-vision\n    responses_file: replies.json\n",
    )
    .unwrap();
}

fn operonx(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = common::operonx_cmd(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("LANGFUSE_") || k == "OPERONX_STORE" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(vars.iter().copied()).output().expect("operonx starts")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn media_is_stored_once_beside_the_trace_and_exporters_get_references() {
    let dir = common::workdir("media", "end-to-end");
    workspace(&dir);
    let (lf_url, lf) = langfuse();
    let (otel_url, otel) = server(|_, _| (200, "{}".into()));
    let vars = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-media"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-media-secret"),
        ("LANGFUSE_HOST", lf_url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otel_url.as_str()),
    ];
    let out = operonx(&dir, &["run", "graph.json"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["answer"], "A grey square and a hum.");

    let (png, wav) = (png(), wav());
    let (png_b64, wav_b64) = (b64(&png), b64(&wav));
    let (png_sha, wav_sha) = (sha_hex(&png), sha_hex(&wav));

    // The media, once each (the picture is an output, a prompt input and an LLM input).
    let media = dir.join(".operonx/media");
    let mut files: Vec<String> =
        files_under(&media).iter().map(|p| p.strip_prefix(&media).unwrap().display().to_string()).collect();
    files.sort();
    let mut expected = vec![format!("{}/{png_sha}.png", &png_sha[..2]), format!("{}/{wav_sha}.wav", &wav_sha[..2])];
    expected.sort();
    assert_eq!(files, expected);
    let png_file = media.join(&png_sha[..2]).join(format!("{png_sha}.png"));
    assert_eq!(std::fs::read(&png_file).unwrap(), png);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&png_file), 0o600);
        assert_eq!(mode(png_file.parent().unwrap()), 0o700);
        assert_eq!(mode(&media), 0o700);
    }

    // The stored trace: no base64 of either, in the database and its side files.
    for f in std::fs::read_dir(dir.join(".operonx")).unwrap() {
        let path = f.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&png_b64[..80]) && !text.contains(&wav_b64[..80]), "base64 in {}", path.display());
        }
    }
    let listed = operonx(&dir, &["trace", "list", "--json"], &[]);
    let runs: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let run_id = runs[0]["request_id"].as_str().unwrap().to_string();
    let shown = operonx(&dir, &["trace", "show", &run_id, "--json"], &[]);
    let events: Vec<Value> = serde_json::from_slice(&shown.stdout).unwrap();
    let find = |kind: &str, op: &str| {
        events.iter().find(|e| e["kind"] == kind && e["op_name"] == op).unwrap_or_else(|| panic!("{kind} {op}"))
    };
    let reference = json!({"$media": png_sha, "mime": "image/png", "size": png.len()});
    assert_eq!(find("op_end", "see.picture")["payload"]["outputs"]["value"], reference);
    let llm_in = &find("op_start", "see.llm")["payload"]["inputs"]["messages"][0]["content"];
    assert_eq!(llm_in[1]["image_url"]["url"], reference);
    assert_eq!(llm_in[2]["input_audio"]["data"], json!({"$media": wav_sha, "mime": "audio/wav", "size": wav.len()}));
    assert_eq!(find("op_start", "see.llm")["payload"]["media_refs"].as_array().unwrap().len(), 2);
    assert_eq!(find("op_end", "see.tiny")["payload"]["outputs"]["value"], "data:image/gif;base64,R0lGODlhAQABAAAAACw=");
    let bad = find("op_end", "see.bad")["payload"]["outputs"]["value"].as_str().unwrap().to_string();
    assert!(bad.starts_with("data:image/png;base64,****"), "not base64: left as data ({bad})");
    let media_refs = events.iter().filter(|e| e["kind"] == "media_ref").count();
    // picture: input, output; prompt: inputs (the image's data URL, the bare base64 wav),
    // output (image + audio parts); llm: image + audio.
    assert_eq!(media_refs, 8);
    let prompt_in = &find("op_start", "see.prompt")["payload"]["inputs"];
    assert_eq!(prompt_in["audio"], json!({"$media": wav_sha, "mime": "audio/wav", "size": wav.len()}));

    // What a person reads.
    let tree = String::from_utf8(operonx(&dir, &["trace", "show", &run_id], &[]).stdout).unwrap();
    let label = format!("media image/png 2.9 KiB sha256:{}…", &png_sha[..12]);
    let (input_note, output_note) =
        (tree.find(&format!("{label} at inputs.value")), tree.find(&format!("{label} at outputs.value")));
    assert!(input_note.is_some() && input_note < output_note, "the op's notes in order: {tree}");
    assert!(tree.contains("media audio/wav 3.9 KiB"), "{tree}");
    let timeline = String::from_utf8(operonx(&dir, &["trace", "show", &run_id, "--timeline"], &[]).stdout).unwrap();
    assert!(timeline.contains(&format!("[{label}]")), "{timeline}");
    assert!(timeline.contains("media_ref"), "{timeline}");

    // Langfuse: the bytes through its media API (each once), its tokens in the observations.
    let lf = lf.lock().unwrap().clone();
    let puts: Vec<&Received> = lf.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2, "each blob uploaded once: {:?}", lf.iter().map(|r| &r.path).collect::<Vec<_>>());
    let image_put = puts.iter().find(|r| r.header("content-type") == Some("image/png")).unwrap();
    assert_eq!(image_put.body, png);
    assert!(lf.iter().any(|r| r.method == "PATCH" && r.path.starts_with("/api/public/media/")));
    let ingested: String = lf.iter().filter(|r| r.path == "/api/public/ingestion").map(Received::text).collect();
    assert!(ingested.contains("@@@langfuseMedia:type=image/png|id="), "{ingested}");
    assert!(ingested.contains("@@@langfuseMedia:type=audio/wav|id="), "{ingested}");
    for r in lf.iter().filter(|r| r.method != "PUT") {
        let text = r.text();
        assert!(!text.contains(&png_b64[..80]) && !text.contains(&wav_b64[..80]), "base64 sent to {}", r.path);
        assert!(!text.contains("$media"), "references are replaced by tokens: {}", r.path);
    }

    // OTLP: the references as span events, never the bytes.
    let otel = otel.lock().unwrap().clone();
    assert!(!otel.is_empty());
    let mut seen = Vec::new();
    for r in &otel {
        assert!(!r.text().contains(&png_b64[..80]), "no base64 to the collector");
        let req = ExportTraceServiceRequest::decode(r.body.as_slice()).unwrap();
        for span in req.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans) {
            for ev in span.events.iter().filter(|e| e.name == "operonx.media_ref") {
                let handle = ev.attributes.iter().find(|a| a.key == "operonx.media.handle").unwrap();
                seen.push(format!("{:?}", handle.value));
            }
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.iter().any(|h| h.contains(&wav_sha)));
}

#[test]
fn without_a_trace_store_nothing_is_written_and_langfuse_still_gets_the_media() {
    let dir = common::workdir("media", "no-store");
    workspace(&dir);
    let (lf_url, lf) = langfuse();
    let vars = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-media"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-media-secret"),
        ("LANGFUSE_HOST", lf_url.as_str()),
    ];
    let out = operonx(&dir, &["run", "graph.json", "--no-trace-store", "--trace-jsonl", "trace.jsonl"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(!dir.join(".operonx/media").exists(), "nothing under .operonx");
    let jsonl = std::fs::read_to_string(dir.join("trace.jsonl")).unwrap();
    assert!(jsonl.contains(r#""$media":""#) && !jsonl.contains(&b64(&png())[..80]), "references in the JSON lines");
    let lf = lf.lock().unwrap().clone();
    assert_eq!(lf.iter().filter(|r| r.method == "PUT").count(), 2, "uploaded from memory");
}
