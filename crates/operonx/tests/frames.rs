//! Frames op bodies send (token deltas, progress) reach the run's stream once each,
//! namespaced by op path and context, from any nesting depth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use operonx::{Engine, Outputs, RunEvent, RunOptions, Value, json};

fn engine() -> Engine {
    let mut e = Engine::new();
    e.registry_mut().register_async("talk", |i, ctx| async move {
        let text = i.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut out = String::new();
        for word in text.split(' ') {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ctx.send_token(word);
            out.push_str(word);
        }
        ctx.send_frame("progress", json!({"done": true}));
        Ok(Outputs::one("text", out))
    });
    e
}

#[tokio::test]
async fn token_frames_from_a_nested_graph_arrive_once_in_order() {
    let g = json!({"schema_version": "1.0", "type": "graph", "name": "main", "entries": ["sub"],
        "initial_ready_count": {"sub": 0}, "compiled_adj": {"sub": []},
        "ops": {"sub": {"type": "graph", "entries": ["llm"], "initial_ready_count": {"llm": 0}, "compiled_adj": {"llm": []},
            "outputs": {"text": {"ref": {"source": "main", "var": "text"}}},
            "ops": {"llm": {"type": "code", "func_name": "talk", "bound": "io", "inputs": {"text": {"literal": "a b c"}},
                            "outputs": {"text": {"ref": {"source": "main.sub", "var": "text"}}}}}}}});
    let wf = engine().load_value(g).unwrap();
    let mut seen = Vec::new();
    let out = wf.run_observed(json!({}), RunOptions::default().frames(true), |ev| seen.push(ev.clone())).await.unwrap();
    assert_eq!(out.outputs["text"], "abc");
    let frames: Vec<(String, String, Value)> = seen
        .iter()
        .filter_map(|e| match e {
            RunEvent::Custom(f) if !f.kind.starts_with("op_") => {
                Some((f.op.to_string(), f.kind.clone(), f.data.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        frames,
        [
            ("main.sub.llm".to_string(), "token".to_string(), json!("a")),
            ("main.sub.llm".to_string(), "token".to_string(), json!("b")),
            ("main.sub.llm".to_string(), "token".to_string(), json!("c")),
            ("main.sub.llm".to_string(), "progress".to_string(), json!({"done": true})),
        ]
    );
    let lifecycle: Vec<(String, String)> = seen
        .iter()
        .filter_map(|e| match e {
            RunEvent::Custom(f) if f.kind.starts_with("op_") => Some((f.op.to_string(), f.kind.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            ("main.sub".to_string(), "op_start".to_string()),
            ("main.sub.llm".to_string(), "op_start".to_string()),
            ("main.sub.llm".to_string(), "op_end".to_string()),
            ("main.sub".to_string(), "op_end".to_string()),
        ],
        "op lifecycle events stream too"
    );
    let last_frame = seen.iter().rposition(|e| matches!(e, RunEvent::Custom(f) if f.kind == "progress")).unwrap();
    let output = seen.iter().position(|e| matches!(e, RunEvent::Output(_))).unwrap();
    assert!(last_frame < output, "an op's frames come before its output");
    if let RunEvent::Custom(f) = &seen[0] {
        assert_eq!(f.ctx, vec!["main"]);
    }

    let mut quiet = 0;
    wf.run_observed(json!({}), RunOptions::default(), |e| quiet += usize::from(matches!(e, RunEvent::Custom(_))))
        .await
        .unwrap();
    assert_eq!(quiet, 0, "frames are only delivered when asked for");
}
