#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Embedding and reranker clients over a raw HTTP mock.

mod common;

use common::*;
use operonx_providers::{ErrorKind, RerankHit};
use serde_json::{Value, json};

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

#[tokio::test]
async fn openai_embeddings_are_batched_and_reordered_by_index() {
    // Each vector is [position of the text in its batch's input, its length]; the items come back reversed.
    let server = MockServer::with(|req, _| {
        let input: Vec<String> = serde_json::from_value(req.json()["input"].clone()).unwrap();
        let data: Vec<Value> = input
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": [t.len() as f64, i as f64]}))
            .collect();
        ok(json!({"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 3, "total_tokens": 3}}))
    })
    .await;
    let yaml = format!(
        "embedding:\n  small: {{api_type: openai, model: text-embedding-3-small, api_key: ek, dimensions: 2, batch_size: 2, base_url: '{}/v1'}}\n",
        server.url
    );
    let client = hub(&yaml).get_embedding("small").unwrap();
    let mut input = texts(5);
    input[3] = "a much longer text than the others".into();
    let out = client.embed(input.clone()).await.unwrap();
    assert_eq!(out.len(), 5);
    for (i, (v, t)) in out.iter().zip(&input).enumerate() {
        assert_eq!(v[0], t.len() as f32, "vector {i} belongs to text {i}");
        assert_eq!(v[1], (i % 2) as f32);
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "5 texts in batches of 2");
    let mut batches: Vec<Value> = reqs.iter().map(|r| r.json()["input"].clone()).collect();
    batches.sort_by_key(|b| b[0].as_str().unwrap().to_string());
    assert_eq!(batches, vec![json!([input[0], input[1]]), json!([input[2], input[3]]), json!([input[4]])]);
    assert_eq!(reqs[0].path, "/v1/embeddings");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer ek"));
    let body = reqs[0].json();
    assert_eq!((body["model"].as_str(), body["dimensions"].as_u64()), (Some("text-embedding-3-small"), Some(2)));
}

#[tokio::test]
async fn embedding_count_mismatch_is_a_protocol_error() {
    let server = MockServer::sequence(vec![ok(json!({"data": [{"index": 0, "embedding": [1.0]}]}))]).await;
    let yaml = format!("embedding:\n  e: {{api_type: vllm, model: m, base_url: '{}/v1'}}\n", server.url);
    let err = hub(&yaml).get_embedding("e").unwrap().embed(texts(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn tei_embed() {
    let server = MockServer::sequence(vec![ok(json!([[0.5, 0.25], [1.0, 2.0]]))]).await;
    let yaml = format!("embedding:\n  tei: {{api_type: tei, base_url: '{}'}}\n", server.url);
    let out = hub(&yaml).get_embedding("tei").unwrap().embed(vec!["a".into(), "b".into()]).await.unwrap();
    assert_eq!(out, vec![vec![0.5, 0.25], vec![1.0, 2.0]]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/embed");
    assert_eq!(sent.json(), json!({"inputs": ["a", "b"]}));
}

#[tokio::test]
async fn tei_rerank() {
    let server = MockServer::sequence(vec![ok(json!([{"index": 1, "score": 0.9}, {"index": 0, "score": 0.1}]))]).await;
    let yaml = format!("reranking:\n  tei: {{api_type: tei, base_url: '{}'}}\n", server.url);
    let hits = hub(&yaml)
        .get_reranker("tei")
        .unwrap()
        .rerank("q".into(), vec!["x".into(), "y".into()], Some(1))
        .await
        .unwrap();
    assert_eq!(hits, vec![RerankHit { index: 1, score: 0.9 }, RerankHit { index: 0, score: 0.1 }]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/rerank");
    assert_eq!(sent.json(), json!({"query": "q", "texts": ["x", "y"], "raw_scores": false}));
}

#[tokio::test]
async fn vllm_cohere_rerank() {
    let server = MockServer::sequence(vec![ok(
        json!({"id": "r", "results": [{"index": 2, "relevance_score": 0.8, "document": {"text": "z"}},
        {"index": 0, "relevance_score": 0.3}]}),
    )])
    .await;
    let yaml = format!(
        "reranking:\n  bge: {{api_type: vllm, model: bge-reranker, api_key: rk, base_url: '{}/v1'}}\n",
        server.url
    );
    let hits = hub(&yaml)
        .get_reranker("bge")
        .unwrap()
        .rerank("q".into(), vec!["x".into(), "y".into(), "z".into()], Some(2))
        .await
        .unwrap();
    assert_eq!(hits, vec![RerankHit { index: 2, score: 0.8 }, RerankHit { index: 0, score: 0.3 }]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1/rerank");
    assert_eq!(sent.header("authorization"), Some("Bearer rk"));
    assert_eq!(sent.json(), json!({"model": "bge-reranker", "query": "q", "documents": ["x", "y", "z"], "top_n": 2}));
}

#[tokio::test]
async fn pinecone_rerank_headers_and_body() {
    let server =
        MockServer::sequence(vec![ok(json!({"model": "bge-reranker-v2-m3", "data": [{"index": 0, "score": 0.7}],
        "usage": {"rerank_units": 1}}))])
        .await;
    let yaml = format!(
        "reranking:\n  pc: {{api_type: pinecone, model: bge-reranker-v2-m3, api_key: pc-key, base_url: '{}'}}\n",
        server.url
    );
    let hits = hub(&yaml).get_reranker("pc").unwrap().rerank("q".into(), vec!["x".into()], None).await.unwrap();
    assert_eq!(hits, vec![RerankHit { index: 0, score: 0.7 }]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/rerank");
    assert_eq!(sent.header("api-key"), Some("pc-key"));
    assert_eq!(sent.header("x-pinecone-api-version"), Some("2025-04"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        json!({"model": "bge-reranker-v2-m3", "query": "q", "documents": [{"id": "0", "text": "x"}], "return_documents": false,
               "parameters": {"truncate": "END"}})
    );
}

#[tokio::test]
async fn out_of_range_rerank_index_is_an_error() {
    let server = MockServer::sequence(vec![ok(json!([{"index": 5, "score": 0.9}]))]).await;
    let yaml = format!("reranking:\n  tei: {{api_type: tei, base_url: '{}'}}\n", server.url);
    let err = hub(&yaml).get_reranker("tei").unwrap().rerank("q".into(), vec!["x".into()], None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.message().contains("out of range"), "{err}");
}

#[tokio::test]
async fn embedding_retries_on_server_errors_too() {
    let server = MockServer::sequence(vec![text_reply(502, "bad gateway"), ok(json!([[1.0]]))]).await;
    let yaml =
        format!("embedding:\n  tei: {{api_type: tei, base_url: '{}', retry_initial_backoff_s: 0.01}}\n", server.url);
    let out = hub(&yaml).get_embedding("tei").unwrap().embed(vec!["a".into()]).await.unwrap();
    assert_eq!(out, vec![vec![1.0]]);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn azure_embeddings_use_the_deployment_url_and_api_key() {
    let server = MockServer::sequence(vec![ok(json!({"data": [{"index": 0, "embedding": [0.5]}]}))]).await;
    let yaml = format!(
        "embedding:\n  az: {{api_type: azure, deployment: emb-prod, api_version: 2024-02-01, api_key: azk, base_url: '{}'}}\n",
        server.url
    );
    let out = hub(&yaml).get_embedding("az").unwrap().embed(vec!["a".into()]).await.unwrap();
    assert_eq!(out, vec![vec![0.5]]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/openai/deployments/emb-prod/embeddings?api-version=2024-02-01");
    assert_eq!(sent.header("api-key"), Some("azk"));
    assert_eq!(sent.header("authorization"), None);
}
