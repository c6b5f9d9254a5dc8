//! The HTTP API's contract: every route, as a client uses it, against a real server on
//! a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_submitted_with_wait_answers_with_its_result() {
    let s = TestServer::start().await;
    let r = client().post(s.url("/v1/runs?wait=true")).json(&json!({"graph": "greet", "inputs": {"text": "HeLLo"}}));
    let (status, body) = json(r.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "done");
    assert_eq!(body["graph"], "greet");
    assert_eq!(body["result"], json!({"lowered": "hello"}));
    s.stop().await;
}

/// Submissions arriving together are queued in groups: each still gets its own run (the
/// same idempotency key, one run), and every run is done with its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_each_get_their_run() {
    let s = TestServer::start().await;
    let posts = (0..40).map(|i| {
        let key = if i % 10 == 0 { json!("shared-key") } else { json!(null) };
        let body = json!({"graph": "greet", "inputs": {"text": format!("Item-{i}")}, "idempotency_key": key});
        let body = if key.is_null() { json!({"graph": "greet", "inputs": body["inputs"]}) } else { body };
        let req = client().post(s.url("/v1/runs")).json(&body);
        async move { json(req.send().await.unwrap()).await }
    });
    let answers = futures_util::future::join_all(posts).await;
    let mut ids = std::collections::HashMap::new();
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 202, "{body}");
        ids.insert(i, body["run_id"].as_str().unwrap().to_string());
    }
    let shared: std::collections::HashSet<_> = (0..40).step_by(10).map(|i| ids[&i].clone()).collect();
    assert_eq!(shared.len(), 1, "one run for the shared key");
    let distinct: std::collections::HashSet<_> = ids.values().cloned().collect();
    assert_eq!(distinct.len(), 40 - 3, "every other submission its own run");
    for (i, id) in &ids {
        let run = wait_status(&s, None, id, "done").await;
        if i % 10 != 0 {
            assert_eq!(run["result"], json!({"lowered": format!("item-{i}")}), "{run}");
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_run_is_queued_then_done_and_the_same_idempotency_key_gives_the_same_run() {
    let s = TestServer::start().await;
    let body = json!({"graph": "greet", "inputs": {"text": "A"}, "idempotency_key": "order-17"});
    let (status, first) = json(client().post(s.url("/v1/runs")).json(&body).send().await.unwrap()).await;
    assert_eq!((status, &first["status"], &first["created"]), (202, &json!("queued"), &json!(true)), "{first}");
    let (status, again) = json(client().post(s.url("/v1/runs")).json(&body).send().await.unwrap()).await;
    assert_eq!(status, 202);
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["created"], false);
    let id = first["run_id"].as_str().unwrap();
    assert!(operonx::is_request_id(id) && id.len() == 36, "a UUIDv7 in its standard form: {id}");
    assert_eq!(&id[14..15], "7", "version 7: {id}");
    let run = wait_status(&s, None, id, "done").await;
    assert_eq!(run["result"], json!({"lowered": "a"}));
    let other = json!({"graph": "greet", "inputs": {"text": "A"}, "idempotency_key": "order-18"});
    let (_, third) = json(client().post(s.url("/v1/runs")).json(&other).send().await.unwrap()).await;
    assert_ne!(third["run_id"], first["run_id"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_runs_view_and_listing_carry_its_usage_stats() {
    let s = TestServer::start().await;
    let id = submit(&s, None, "greet", json!({"text": "Stats"})).await;
    let run = wait_status(&s, None, &id, "done").await;
    let (status, listing) = json(client().get(s.url("/v1/runs?graph=greet")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{listing}");
    let listed = listing["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == id.as_str()).unwrap().clone();
    for view in [&run, &listed] {
        // The greet graph has one op and calls no model.
        assert_eq!(view["ops"], 1, "{view}");
        assert_eq!(view["errors"], 0, "{view}");
        assert_eq!(view["llm_calls"], 0, "{view}");
        assert_eq!(view["tokens"], 0, "{view}");
        assert_eq!(view["cost_usd"], 0.0, "{view}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_filtered_and_paged_by_cursor() {
    let s = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = submit(&s, None, "greet", json!({"text": format!("t{i}")})).await;
        wait_status(&s, None, &id, "done").await;
        ids.push(id);
    }
    let slow = submit(&s, None, "slow", json!({"ms": 1})).await;
    wait_status(&s, None, &slow, "done").await;
    let (status, all) = json(client().get(s.url("/v1/runs?graph=greet")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{all}");
    let listed: Vec<&str> = all["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    let mut paged = Vec::new();
    let mut url = s.url("/v1/runs?graph=greet&limit=2");
    loop {
        let (status, page) = json(client().get(&url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(page["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => url = s.url(&format!("/v1/runs?graph=greet&limit=2&cursor={c}")),
            None => break,
        }
    }
    assert_eq!(paged, newest_first);
    let (_, done) = json(client().get(s.url("/v1/runs?status=done&limit=100")).send().await.unwrap()).await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 6);
    let (_, waiting) = json(client().get(s.url("/v1/runs?status=waiting")).send().await.unwrap()).await;
    assert_eq!(waiting["runs"], json!([]));
    s.stop().await;
}

/// A problem document with `status`, naming `pointer` when given.
async fn assert_problem(response: reqwest::Response, status: u16, pointer: Option<&str>) -> Value {
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let (got, body) = json(response).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    if let Some(p) = pointer {
        assert_eq!(body["pointer"], p, "{body}");
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_details_naming_the_field_never_a_server_error() {
    let s = TestServer::start().await;
    let post = |body: &'static str| {
        client().post(s.url("/v1/runs")).header("content-type", "application/json").body(body).send()
    };
    assert_problem(post("{\"graph\": ").await.unwrap(), 400, None).await;
    assert_problem(post("[1, 2]").await.unwrap(), 422, Some("")).await;
    assert_problem(post("{}").await.unwrap(), 422, Some("/graph")).await;
    assert_problem(post("{\"graph\": 7}").await.unwrap(), 422, Some("/graph")).await;
    assert_problem(post("{\"graph\": \"nope\"}").await.unwrap(), 404, Some("/graph")).await;
    assert_problem(post("{\"graph\": \"greet\", \"inputs\": [1]}").await.unwrap(), 422, Some("/inputs")).await;
    assert_problem(post("{\"graph\": \"greet\"}").await.unwrap(), 422, Some("/inputs/text")).await;
    assert_problem(post("{\"graph\": \"greet\", \"input\": {}}").await.unwrap(), 422, Some("/input")).await;
    assert_problem(
        post("{\"graph\": \"greet\", \"idempotency_key\": \"\"}").await.unwrap(),
        422,
        Some("/idempotency_key"),
    )
    .await;
    // An oversized body is refused from its declared length, before it is read: the
    // server answers 413 and closes, so the exchange is made by hand (a client that keeps
    // writing the body it announced meets a closed socket before it reads the answer).
    let (status, answer) = declare_oversized_body(&s).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("larger than"), "{answer}");
    for bad in [
        "/v1/runs?limit=0",
        "/v1/runs?limit=x",
        "/v1/runs?status=sleeping",
        "/v1/runs?cursor=zz",
        "/v1/runs?colour=red",
    ] {
        assert_problem(client().get(s.url(bad)).send().await.unwrap(), 400, None).await;
    }
    for id in [
        "not-a-run",
        "0190b6f4-9d2c-7b3e-8f00-0123456789ab",
        "0190B6F4-9D2C-7B3E-8F00-0123456789AB",
        "0190b6f4-9d2c-7b3e-8f00-0123456789a",
        "0190b6f4_9d2c_7b3e_8f00_0123456789ab",
    ] {
        let url = s.url(&format!("/v1/runs/{id}"));
        assert_problem(client().get(url).send().await.unwrap(), 404, None).await;
    }
    assert_problem(client().get(s.url(&format!("/v1/runs/{}", "ab".repeat(16)))).send().await.unwrap(), 404, None)
        .await;
    assert_problem(client().get(s.url("/v2/nothing")).send().await.unwrap(), 404, None).await;
    let bad_id = client().get(s.url(&format!("/v1/runs/{}/events", "cd".repeat(16)))).header("last-event-id", "x");
    assert_problem(bad_id.send().await.unwrap(), 400, None).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_runs_stream_replays_its_events_and_closes_and_last_event_id_continues_after_it() {
    let s = TestServer::start().await;
    let id = submit(&s, None, "greet", json!({"text": "SSE"})).await;
    wait_status(&s, None, &id, "done").await;
    let r = client().get(s.url(&format!("/v1/runs/{id}/events"))).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = sse_events(&r.text().await.unwrap());
    assert!(events.len() >= 2, "{events:?}");
    let ids: Vec<u64> = events.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    let (last_id, last) = events.last().unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["result"], json!({"lowered": "sse"}));
    assert!(events.iter().any(|(_, e)| e["type"] == "output" && e["values"]["lowered"] == "sse"), "{events:?}");
    let r = client().get(s.url(&format!("/v1/runs/{id}/events"))).header("last-event-id", "1").send().await.unwrap();
    let rest = sse_events(&r.text().await.unwrap());
    assert_eq!(rest, events[1..].to_vec());
    let r = client().get(s.url(&format!("/v1/runs/{id}/events"))).header("last-event-id", last_id.to_string());
    assert_eq!(sse_events(&r.send().await.unwrap().text().await.unwrap()), vec![]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_answered_over_http_and_its_stream_goes_on_after_a_server_restart() {
    let s = TestServer::start().await;
    let id = submit(&s, None, "approve", json!({})).await;
    let waiting = wait_status(&s, None, &id, "waiting").await;
    assert_eq!(waiting["pending"][0]["id"], "main.ask");
    assert_eq!(waiting["pending"][0]["payload"], "Ship it?");
    let stream = |s: &TestServer, after: Option<u64>| {
        let mut r = client().get(s.url(&format!("/v1/runs/{id}/events")));
        if let Some(a) = after {
            r = r.header("last-event-id", a.to_string());
        }
        r.send()
    };
    let before = sse_events(&stream(&s, None).await.unwrap().text().await.unwrap());
    assert!(before.iter().any(|(_, e)| e["type"] == "interrupt" && e["id"] == "main.ask"), "{before:?}");
    let seen = before.last().unwrap().0;
    // A wrong answer id names it; the run is not touched.
    let wrong = client().post(s.url(&format!("/v1/runs/{id}/resume"))).json(&json!({"answers": {"main.nope": "x"}}));
    assert_problem(wrong.send().await.unwrap(), 422, Some("/answers/main.nope")).await;
    // The server restarts on the same store: the run is still there, waiting.
    let again = s.stop().await;
    let s = TestServer::start_with(again).await;
    wait_status(&s, None, &id, "waiting").await;
    let ok = client().post(s.url(&format!("/v1/runs/{id}/resume"))).json(&json!({"answers": {"main.ask": "YES"}}));
    let (status, body) = json(ok.send().await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    let done = wait_status(&s, None, &id, "done").await;
    assert_eq!(done["result"], json!({"decision": "yes"}));
    assert_eq!(done["resumes"], 1);
    // The totals span the resume: `ask` ended twice (asking, then answered), `low` once.
    assert_eq!((&done["ops"], &done["errors"]), (&json!(3), &json!(0)), "{done}");
    let after = sse_events(&stream(&s, Some(seen)).await.unwrap().text().await.unwrap());
    assert!(!after.is_empty());
    assert_eq!(after[0].0, seen + 1, "{after:?}");
    assert_eq!(after.last().unwrap().1["result"], json!({"decision": "yes"}));
    let again = client().post(s.url(&format!("/v1/runs/{id}/resume"))).json(&json!({}));
    assert_problem(again.send().await.unwrap(), 409, None).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_cancelled_queued_running_and_not_once_ended() {
    let s = TestServer::start().await;
    let id = submit(&s, None, "slow", json!({"ms": 60_000})).await;
    wait_status(&s, None, &id, "running").await;
    let (status, body) = json(client().post(s.url(&format!("/v1/runs/{id}/cancel"))).send().await.unwrap()).await;
    assert_eq!((status, &body["status"]), (202, &json!("cancelling")), "{body}");
    let run = wait_status(&s, None, &id, "cancelled").await;
    assert_eq!(run["reason"], "cancelled by request");
    assert_problem(client().post(s.url(&format!("/v1/runs/{id}/cancel"))).send().await.unwrap(), 409, None).await;
    s.stop().await;
    // No workers: a run stays queued, and is cancelled at once.
    let s = TestServer::start_with(Options { workers: Some(0), ..Options::default() }).await;
    let id = submit(&s, None, "greet", json!({"text": "x"})).await;
    wait_status(&s, None, &id, "queued").await;
    let (status, body) = json(client().post(s.url(&format!("/v1/runs/{id}/cancel"))).send().await.unwrap()).await;
    assert_eq!((status, &body["status"]), (200, &json!("cancelled")), "{body}");
    wait_status(&s, None, &id, "cancelled").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_and_controls_only_its_own_runs() {
    let s = TestServer::start_with(Options { tokens: Some(TOKENS), ..Options::default() }).await;
    assert_problem(client().get(s.url("/v1/runs")).send().await.unwrap(), 401, None).await;
    assert_problem(
        client().get(s.url("/v1/runs")).bearer_auth("wrong-token-0123456789").send().await.unwrap(),
        401,
        None,
    )
    .await;
    let mine = submit(&s, Some(ACME), "approve", json!({})).await;
    wait_status(&s, Some(ACME), &mine, "waiting").await;
    let theirs = submit(&s, Some(GLOBEX), "greet", json!({"text": "G"})).await;
    wait_status(&s, Some(GLOBEX), &theirs, "done").await;
    let get = |path: String, token: &'static str| client().get(s.url(&path)).bearer_auth(token).send();
    let post = |path: String, token: &'static str, body: Value| {
        client().post(s.url(&path)).bearer_auth(token).json(&body).send()
    };
    assert_problem(get(format!("/v1/runs/{mine}"), GLOBEX).await.unwrap(), 404, None).await;
    assert_problem(get(format!("/v1/runs/{mine}/events"), GLOBEX).await.unwrap(), 404, None).await;
    assert_problem(post(format!("/v1/runs/{mine}/cancel"), GLOBEX, json!({})).await.unwrap(), 404, None).await;
    let answer = json!({"answers": {"main.ask": "no"}});
    assert_problem(post(format!("/v1/runs/{mine}/resume"), GLOBEX, answer.clone()).await.unwrap(), 404, None).await;
    let (_, listed) = json(get("/v1/runs".into(), GLOBEX).await.unwrap()).await;
    let ids: Vec<&str> = listed["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [theirs.as_str()]);
    // Still waiting: globex's attempts changed nothing; acme answers it.
    wait_status(&s, Some(ACME), &mine, "waiting").await;
    let (status, _) = json(post(format!("/v1/runs/{mine}/resume"), ACME, answer).await.unwrap()).await;
    assert_eq!(status, 202);
    let done = wait_status(&s, Some(ACME), &mine, "done").await;
    assert_eq!(done["result"], json!({"decision": "no"}));
    // The same idempotency key in two tenants makes two runs.
    let keyed = json!({"graph": "greet", "inputs": {"text": "k"}, "idempotency_key": "same"});
    let (_, a) = json(post("/v1/runs".into(), ACME, keyed.clone()).await.unwrap()).await;
    let (_, b) = json(post("/v1/runs".into(), GLOBEX, keyed).await.unwrap()).await;
    assert_ne!(a["run_id"], b["run_id"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_server_refuses_to_listen_beyond_loopback() {
    let store = operonx_store::SqliteRunStore::open_with_key(
        tempfile::tempdir().unwrap().path().join("runs.db"),
        operonx_store::StoreKey::generate().unwrap(),
    )
    .unwrap();
    let config = operonx_server::ServeConfig {
        bind: "0.0.0.0:0".into(),
        store: std::sync::Arc::new(store),
        catalog: operonx_server::Catalog::default(),
        tenants: None,
        executor: None,
        trace_store: None,
        grace: std::time::Duration::from_secs(1),
    };
    let e = operonx_server::bind(config).await.unwrap_err();
    assert!(matches!(e, operonx_server::ServerError::Unprotected { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_health_metrics_and_the_openapi_document_answer() {
    let s = TestServer::start().await;
    let id = submit(&s, None, "greet", json!({"text": "m"})).await;
    wait_status(&s, None, &id, "done").await;
    let (status, graphs) = json(client().get(s.url("/v1/graphs")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = graphs["graphs"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["approve", "greet", "slow"]);
    let (status, health) = json(client().get(s.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, health), (200, json!({"status": "ok"})));
    let metrics = client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("operonx_runs{status=\"done\"} 1"), "{metrics}");
    assert!(metrics.contains("operonx_queue_depth 0"), "{metrics}");
    assert!(metrics.contains("operonx_run_duration_seconds_count 1"), "{metrics}");
    let (status, doc) = json(client().get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/runs/{id}/resume",
        "/v1/runs/{id}/cancel",
        "/v1/graphs",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_hands_its_unfinished_runs_back_to_the_queue() {
    let s =
        TestServer::start_with(Options { grace: Some(std::time::Duration::from_millis(300)), ..Options::default() })
            .await;
    let quick = submit(&s, None, "slow", json!({"ms": 100})).await;
    let long = submit(&s, None, "slow", json!({"ms": 2500})).await;
    wait_status(&s, None, &long, "running").await;
    // Stopped: the quick run ends within the grace period, the long one is handed back.
    let again = s.stop().await;
    let s = TestServer::start_with(Options { workers: Some(0), ..again }).await;
    wait_status(&s, None, &quick, "done").await;
    let handed_back = wait_status(&s, None, &long, "queued").await;
    assert_eq!(handed_back["reason"], Value::Null, "{handed_back}");
    // Another server's workers take it and finish it.
    let again = s.stop().await;
    let s = TestServer::start_with(again).await;
    let done = wait_status(&s, None, &long, "done").await;
    assert_eq!(done["result"], json!({"value": "woke"}));
    assert_eq!(done["resumes"], 1);
    s.stop().await;
}

/// Sends the head of a `POST /v1/runs` announcing a 2 MiB JSON body, and reads the
/// answer: its status and the whole text.
async fn declare_oversized_body(s: &TestServer) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = s.url("").trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        2 << 20
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), tcp.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}
