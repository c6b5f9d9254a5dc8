//! Media offloaded from a real workflow's trace: a run whose ops output and take data URLs
//! and an OpenAI `input_audio` part, traced through the pipeline (media offload, then the
//! default redaction and a short truncation) into the SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use operonx::{Engine, EventKind, Outputs, RunOptions, Value, json};
use operonx_trace::media::{LocalMediaStore, MediaOffload, MediaRef};
use operonx_trace::processor::{Redact, Truncate};
use operonx_trace::{SqliteStore, TracePipeline, render_timeline, render_tree};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png() -> Vec<u8> {
    [b"\x89PNG\r\n\x1a\n".as_slice(), &[11u8; 2400]].concat()
}

fn wav() -> Vec<u8> {
    [b"RIFF\0\0\0\0WAVEfmt ".as_slice(), &[13u8; 5000]].concat()
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", b64(bytes))
}

fn engine() -> Engine {
    let mut e = Engine::new();
    let r = e.registry_mut();
    r.register_fn("picture", |_, _| {
        Ok(Outputs::one("image", data_url("image/png", &png()))
            .with("tiny", data_url("image/png", b"\x89PNG\r\n\x1a\n"))
            .with("bad", format!("data:image/png;base64,{}", "%%".repeat(1000))))
    });
    r.register_fn("describe", |_, _| Ok(Outputs::one("reply", "a grey square and a hum")));
    e
}

/// `picture` makes an image; `describe` is given it, and a chat message with the same
/// image as a data URL and a wav as an `input_audio` part (an LLM call's inputs).
fn graph() -> Value {
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "what do you see and hear?"},
        {"type": "image_url", "image_url": {"url": data_url("image/png", &png())}},
        {"type": "input_audio", "input_audio": {"data": b64(&wav()), "format": "wav"}}
    ]}]);
    json!({
        "schema_version": "1.0", "type": "graph", "name": "see", "full_name": "see",
        "entries": ["picture"],
        "initial_ready_count": {"picture": 0, "describe": 1},
        "compiled_adj": {"picture": [["describe", false]], "describe": []},
        "ops": {
            "picture": {"type": "code", "func_name": "picture"},
            "describe": {"type": "code", "func_name": "describe", "inputs": {
                "image": {"ref": {"source": "see.picture", "var": "image"}},
                "messages": {"literal": messages}
            }}
        }
    })
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test]
async fn a_run_with_media_stores_each_blob_once_and_its_trace_only_references() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(".operonx/traces.db");
    let store = SqliteStore::open(&db).unwrap();
    let media = LocalMediaStore::beside(&db);
    let pipeline = TracePipeline::builder()
        .flush_interval(Duration::from_secs(3600))
        .media(MediaOffload::new(Arc::new(media.clone())))
        .processor(Redact::with_defaults())
        // Shorter than any data URL here: the media step must have run first.
        .processor(Truncate::new(100, 100).unwrap())
        .exporter(store.clone())
        .build()
        .unwrap();
    let wf = engine().load_value(graph()).unwrap();
    pipeline.begin_run("run-media", "see");
    let options = RunOptions::default().trace(pipeline.sink()).request_id("run-media");
    wf.run_with(json!({}), options).await.unwrap();
    pipeline.shutdown().await;

    let (png, wav) = (png(), wav());
    let (image, audio) = (MediaRef::of(&png, "image/png"), MediaRef::of(&wav, "audio/wav"));
    assert_eq!((image.mime.as_str(), audio.mime.as_str()), ("image/png", "audio/wav"));

    // The blobs, once each, private.
    let files = files_under(media.root());
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(std::fs::read(media.path_of(&image)).unwrap(), png);
    assert_eq!(std::fs::read(media.path_of(&audio)).unwrap(), wav);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&media.path_of(&image)), 0o600);
        assert_eq!(mode(media.root()), 0o700);
    }

    // The trace: references where the media was, small and invalid values inline.
    let events = store.run_events("run-media").unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&b64(&png)[..64]) && !text.contains(&b64(&wav)[..64]), "no base64 in the trace");
    let end =
        |op: &str| events.iter().find(|e| e.kind == EventKind::OpEnd && e.op_name.as_deref() == Some(op)).unwrap();
    let start =
        |op: &str| events.iter().find(|e| e.kind == EventKind::OpStart && e.op_name.as_deref() == Some(op)).unwrap();
    let outputs = &end("see.picture").payload["outputs"];
    assert_eq!(outputs["image"], image.to_value());
    assert_eq!(outputs["tiny"], data_url("image/png", b"\x89PNG\r\n\x1a\n"), "below the threshold: inline");
    let bad = outputs["bad"].as_str().unwrap();
    assert!(
        bad.starts_with("data:image/png;base64,%%") && bad.contains("...[truncated"),
        "not base64: plain data, {bad}"
    );
    let inputs = &start("see.describe").payload["inputs"];
    assert_eq!(inputs["image"], image.to_value());
    assert_eq!(inputs["messages"][0]["content"][1]["image_url"]["url"], image.to_value());
    assert_eq!(inputs["messages"][0]["content"][2]["input_audio"], json!({"data": audio.to_value(), "format": "wav"}));
    let listed: Vec<&str> = start("see.describe").payload["media_refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            "inputs.image",
            "inputs.messages[0].content[1].image_url.url",
            "inputs.messages[0].content[2].input_audio.data"
        ]
    );
    assert_eq!(end("see.picture").payload["media_refs"][0]["field_path"], "outputs.image");

    // One media_ref event per reference, just before the event holding it.
    let refs: Vec<usize> = (0..events.len()).filter(|&i| events[i].kind == EventKind::MediaRef).collect();
    assert_eq!(refs.len(), 4);
    for &i in &refs {
        let (r, next) = (&events[i], &events[i + 1..].iter().find(|e| e.kind != EventKind::MediaRef).unwrap());
        assert_eq!((r.seq, r.timestamp, &r.op_name), (next.seq, next.timestamp, &next.op_name));
        assert_eq!(r.payload["span_id"], next.payload["span_id"]);
        let path = media.path_of(
            &MediaRef::from_value(&json!({"$media": r.payload["handle"], "mime": r.payload["mime"]})).unwrap(),
        );
        assert!(r.payload["uri"].as_str().unwrap().ends_with(path.file_name().unwrap().to_str().unwrap()));
    }
    let summary = store.run("run-media").unwrap();
    assert_eq!(summary.op_count, 2);

    // What `operonx trace show` prints.
    let tree = render_tree(&events, false);
    let label = format!("media image/png 2.4 KiB sha256:{}…", &image.sha256[..12]);
    assert!(tree.contains(&format!("· {label} at outputs.image")), "{tree}");
    assert!(tree.contains("· media audio/wav 4.9 KiB"), "{tree}");
    let timeline = render_timeline(&events, false);
    assert!(timeline.contains(&format!("[{label}]")), "{timeline}");
}
