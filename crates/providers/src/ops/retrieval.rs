//! The `embedding` and `rerank` ops.

use std::sync::Arc;

use operonx_graph::wire::OpConfig;
use operonx_runtime::{Inputs, Invocation, Op, OpContext, OpError, OpResult, Outputs};
use serde_json::{Map, Value};

use super::{names, present};
use crate::embed::EmbeddingClient;
use crate::rerank::RerankClient;
use crate::resource::{EMBEDDING, RERANKING, ResourceHub};

fn single_resource(cfg: &OpConfig) -> Result<String, String> {
    let list = names(cfg, "resource")?;
    match list.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("no `resource` given".into()),
        _ => Err("`resource` must name one resource for this op type".into()),
    }
}

/// `embedding`: input `texts` (a string or a list of strings) → `{"embeddings": [[...]]}`
/// in input order.
pub(crate) struct EmbeddingOp {
    key: String,
    client: Arc<dyn EmbeddingClient>,
}

impl EmbeddingOp {
    pub(crate) fn bind(cfg: &OpConfig, hub: &ResourceHub) -> Result<Self, String> {
        let name = single_resource(cfg)?;
        let client = hub.get_embedding(&name).map_err(|e| e.to_string())?;
        Ok(Self { key: ResourceHub::full_key(EMBEDDING, &name), client })
    }
}

fn texts(v: Value) -> Result<Vec<String>, OpError> {
    match v {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, t)| match t {
                Value::String(s) => Ok(s),
                other => Err(OpError::input("texts", format!("item {i} is not a string: {other}"))),
            })
            .collect(),
        other => Err(OpError::input("texts", format!("expected a string or a list of strings, got {other}"))),
    }
}

/// An f32 as the shortest JSON number that reads back as the same f32.
fn number(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

impl Op for EmbeddingOp {
    fn accepts_objects(&self) -> bool {
        false
    }

    fn call(&self, mut inputs: Inputs, _ctx: &OpContext) -> Invocation {
        let client = Arc::clone(&self.client);
        let key = self.key.clone();
        let texts = present(inputs.take("texts"))
            .ok_or_else(|| OpError::input("texts", "required input not provided"))
            .and_then(texts);
        Invocation::Future(Box::pin(async move {
            let texts = texts?;
            let n = texts.len();
            if n == 0 {
                return Ok(Outputs::one("embeddings", Value::Array(Vec::new())));
            }
            let vectors = client
                .embed(texts)
                .await
                .map_err(|e| OpError::with_source(format!("{key}: embedding {n} text(s) failed"), e))?;
            if vectors.len() != n {
                return Err(OpError::new(format!("{key}: expected {n} embeddings, got {}", vectors.len())));
            }
            let rows = vectors.into_iter().map(|v| Value::Array(v.into_iter().map(number).collect())).collect();
            Ok(Outputs::one("embeddings", Value::Array(rows)))
        }))
    }
}

/// `rerank`: inputs `query`, `documents` (strings, or objects with `content`), `top_k`
/// (≤ 0 or null: all), `threshold` (null: none) → `{"reranks": [...]}` sorted by
/// descending score, keeping `score ≥ threshold`, then the first `top_k`. A string
/// document becomes `{content, score}`; an object document is returned with `score` added.
pub(crate) struct RerankOp {
    key: String,
    client: Arc<dyn RerankClient>,
}

impl RerankOp {
    pub(crate) fn bind(cfg: &OpConfig, hub: &ResourceHub) -> Result<Self, String> {
        let name = single_resource(cfg)?;
        let client = hub.get_reranker(&name).map_err(|e| e.to_string())?;
        Ok(Self { key: ResourceHub::full_key(RERANKING, &name), client })
    }
}

struct RerankArgs {
    query: String,
    docs: Vec<Value>,
    texts: Vec<String>,
    top_k: Option<usize>,
    threshold: Option<f64>,
}

fn rerank_args(inputs: &mut Inputs) -> Result<RerankArgs, OpError> {
    let query = match present(inputs.take("query")) {
        Some(Value::String(s)) => s,
        Some(other) => return Err(OpError::input("query", format!("expected a string, got {other}"))),
        None => return Err(OpError::input("query", "required input not provided")),
    };
    let docs = match present(inputs.take("documents")) {
        Some(Value::Array(d)) => d,
        Some(other) => return Err(OpError::input("documents", format!("expected a list, got {other}"))),
        None => return Err(OpError::input("documents", "required input not provided")),
    };
    let texts = docs
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Value::String(s) => Ok(s.clone()),
            Value::Object(m) => Ok(m.get("content").and_then(Value::as_str).unwrap_or_default().to_string()),
            other => Err(OpError::input(
                "documents",
                format!("item {i} must be a string or an object with `content`, got {other}"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let top_k = match present(inputs.take("top_k")) {
        None => None,
        Some(v) => match v.as_i64() {
            Some(k) if k > 0 => Some(k as usize),
            Some(_) => None,
            None => return Err(OpError::input("top_k", format!("expected an integer, got {v}"))),
        },
    };
    let threshold = match present(inputs.take("threshold")) {
        None => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| OpError::input("threshold", format!("expected a number, got {v}")))?),
    };
    Ok(RerankArgs { query, docs, texts, top_k, threshold })
}

impl Op for RerankOp {
    fn accepts_objects(&self) -> bool {
        false
    }

    fn call(&self, mut inputs: Inputs, _ctx: &OpContext) -> Invocation {
        let client = Arc::clone(&self.client);
        let key = self.key.clone();
        let args = rerank_args(&mut inputs);
        Invocation::Future(Box::pin(async move { rerank(client, key, args?).await }))
    }
}

async fn rerank(client: Arc<dyn RerankClient>, key: String, a: RerankArgs) -> OpResult {
    if a.docs.is_empty() {
        return Ok(Outputs::one("reranks", Value::Array(Vec::new())));
    }
    let n = a.docs.len();
    let mut hits = client
        .rerank(a.query, a.texts, a.top_k)
        .await
        .map_err(|e| OpError::with_source(format!("{key}: reranking {n} document(s) failed"), e))?;
    if let Some(bad) = hits.iter().find(|h| h.index >= n) {
        return Err(OpError::new(format!("{key}: the reranker returned index {} for {n} documents", bad.index)));
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let out: Vec<Value> = hits
        .into_iter()
        .filter(|h| a.threshold.is_none_or(|t| h.score >= t))
        .take(a.top_k.unwrap_or(usize::MAX))
        .map(|h| {
            let score = serde_json::Number::from_f64(h.score).map_or(Value::Null, Value::Number);
            match &a.docs[h.index] {
                Value::Object(m) => {
                    let mut m = m.clone();
                    m.insert("score".into(), score);
                    Value::Object(m)
                }
                doc => {
                    let mut m = Map::new();
                    m.insert("content".into(), doc.clone());
                    m.insert("score".into(), score);
                    Value::Object(m)
                }
            }
        })
        .collect();
    Ok(Outputs::one("reranks", Value::Array(out)))
}
