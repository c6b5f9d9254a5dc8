//! Rerank clients: TEI (`POST {base_url}/rerank` with `texts`), vLLM/Cohere/Jina
//! (`POST {base_url}/rerank` with `documents`, answering `results[].relevance_score`),
//! Pinecone (`POST {base_url}/rerank`, `Api-Key` and `X-Pinecone-API-Version` headers),
//! and the offline `replay` reranker (lexical overlap).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use crate::config::{RerankApi, RerankSettings, endpoint};
use crate::embed::tokens;
use crate::error::{ErrorKind, ProviderError};
use crate::http::{Call, Transport};
use crate::secret::Secret;

/// One scored document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RerankHit {
    /// Position in the documents sent.
    pub index: usize,
    /// Relevance (higher is better).
    pub score: f64,
}

/// Scores documents against a query.
pub trait RerankClient: Send + Sync + fmt::Debug {
    /// The provider family (`tei`, `cohere`, `pinecone`, `replay`).
    fn provider(&self) -> &'static str;

    /// Scores for (up to `top_n` of) `documents`; every index is in range.
    fn rerank(
        &self,
        query: String,
        documents: Vec<String>,
        top_n: Option<usize>,
    ) -> BoxFuture<'static, Result<Vec<RerankHit>, ProviderError>>;
}

/// Build the client a `reranking:` resource describes.
pub(crate) fn build(s: &RerankSettings) -> Result<Arc<dyn RerankClient>, ProviderError> {
    let (provider, default_base) = match s.api {
        RerankApi::Replay => return Ok(Arc::new(OverlapReranker)),
        RerankApi::Tei => ("tei", None),
        RerankApi::Cohere => ("cohere", Some("https://api.cohere.com/v2")),
        RerankApi::Pinecone => ("pinecone", Some("https://api.pinecone.io")),
    };
    let base = s.base_url.as_deref().or(default_base).unwrap_or_default();
    let url = endpoint(base, "rerank").map_err(|m| ProviderError::new(ErrorKind::Config, provider, m))?;
    let transport = Transport::new(provider, &url, &s.http)?;
    Ok(Arc::new(HttpReranker {
        inner: Arc::new(Inner {
            provider,
            api: s.api,
            url,
            model: s.model.clone(),
            key: s.api_key.clone(),
            version: s.api_version.clone().unwrap_or_else(|| "2025-04".into()),
            params: s.params.clone(),
            transport,
        }),
    }))
}

#[derive(Debug)]
struct HttpReranker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    provider: &'static str,
    api: RerankApi,
    url: String,
    model: Option<String>,
    key: Option<Secret>,
    version: String,
    params: Map<String, Value>,
    transport: Transport,
}

impl Inner {
    async fn rerank(
        &self,
        query: String,
        documents: Vec<String>,
        top_n: Option<usize>,
    ) -> Result<Vec<RerankHit>, ProviderError> {
        let n = documents.len();
        let mut b = Map::new();
        if let Some(m) = &self.model {
            b.insert("model".into(), json!(m));
        }
        b.insert("query".into(), json!(query));
        match self.api {
            RerankApi::Tei => {
                b.insert("texts".into(), json!(documents));
                b.insert("raw_scores".into(), json!(false));
            }
            RerankApi::Pinecone => {
                let docs: Vec<Value> =
                    documents.iter().enumerate().map(|(i, d)| json!({"id": i.to_string(), "text": d})).collect();
                b.insert("documents".into(), Value::Array(docs));
                b.insert("return_documents".into(), json!(false));
                b.insert("parameters".into(), json!({"truncate": "END"}));
            }
            _ => {
                b.insert("documents".into(), json!(documents));
            }
        }
        if let (Some(k), false) = (top_n, self.api == RerankApi::Tei) {
            b.insert("top_n".into(), json!(k));
        }
        for (k, v) in &self.params {
            b.insert(k.clone(), v.clone());
        }
        let mut call = Call::json(self.provider, &self.url, &Value::Object(b))?;
        if let Some(k) = &self.key {
            call = match self.api {
                RerankApi::Pinecone => call.secret_header(self.provider, "Api-Key", k.expose())?,
                _ => call.secret_header(self.provider, "authorization", &format!("Bearer {}", k.expose()))?,
            };
        }
        if self.api == RerankApi::Pinecone {
            call = call.header(self.provider, "X-Pinecone-API-Version", &self.version)?;
        }
        let v = self.transport.post_json(&call).await?;
        let protocol = |m: String| ProviderError::new(ErrorKind::Protocol, self.provider, m);
        let (items, score_key) = match self.api {
            RerankApi::Tei => (v.as_array(), "score"),
            RerankApi::Pinecone => (v.get("data").and_then(Value::as_array), "score"),
            _ => (v.get("results").and_then(Value::as_array), "relevance_score"),
        };
        let items = items.ok_or_else(|| {
            protocol(format!("unexpected answer shape: {}", crate::error::shorten(&v.to_string(), 200)))
        })?;
        items
            .iter()
            .map(|it| {
                let index =
                    it.get("index").and_then(Value::as_u64).ok_or_else(|| protocol("a result has no `index`".into()))?
                        as usize;
                let score = it
                    .get(score_key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| protocol(format!("a result has no `{score_key}`")))?;
                if index >= n {
                    return Err(protocol(format!("index {index} is out of range for {n} documents")));
                }
                Ok(RerankHit { index, score })
            })
            .collect()
    }
}

impl RerankClient for HttpReranker {
    fn provider(&self) -> &'static str {
        self.inner.provider
    }

    fn rerank(
        &self,
        query: String,
        documents: Vec<String>,
        top_n: Option<usize>,
    ) -> BoxFuture<'static, Result<Vec<RerankHit>, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.rerank(query, documents, top_n).await })
    }
}

/// The offline reranker: the share of the query's distinct words found in a document.
#[derive(Debug)]
pub(crate) struct OverlapReranker;

impl RerankClient for OverlapReranker {
    fn provider(&self) -> &'static str {
        "replay"
    }

    fn rerank(
        &self,
        query: String,
        documents: Vec<String>,
        _top_n: Option<usize>,
    ) -> BoxFuture<'static, Result<Vec<RerankHit>, ProviderError>> {
        let q: HashSet<String> = tokens(&query).collect();
        let hits = documents
            .iter()
            .enumerate()
            .map(|(index, d)| {
                let words: HashSet<String> = tokens(d).collect();
                let score = if q.is_empty() { 0.0 } else { q.intersection(&words).count() as f64 / q.len() as f64 };
                RerankHit { index, score }
            })
            .collect();
        Box::pin(async move { Ok(hits) })
    }
}
