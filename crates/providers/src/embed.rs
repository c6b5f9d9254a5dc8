//! Embedding clients: OpenAI-shaped (`POST {base_url}/embeddings`), Azure deployments,
//! Hugging Face TEI (`POST {base_url}/embed`), and the offline `replay` embedder.
//! Texts are sent in batches of `batch_size` (a few batches in flight at once);
//! the result keeps the input order.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Map, Value, json};

use crate::config::{EmbeddingApi, EmbeddingSettings, endpoint};
use crate::error::{ErrorKind, ProviderError};
use crate::http::{Call, Transport};
use crate::rng::fnv1a;
use crate::secret::Secret;

/// Batches of one call that may be in flight at once (the resource's
/// `max_concurrency` still applies on top).
const PARALLEL_BATCHES: usize = 4;

/// Turns texts into vectors.
pub trait EmbeddingClient: Send + Sync + fmt::Debug {
    /// The provider family (`openai`, `azure`, `tei`, `replay`).
    fn provider(&self) -> &'static str;

    /// One vector per text, in input order.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, ProviderError>>;
}

/// Build the client an `embedding:` resource describes.
pub(crate) fn build(s: &EmbeddingSettings) -> Result<Arc<dyn EmbeddingClient>, ProviderError> {
    if s.api == EmbeddingApi::Replay {
        return Ok(Arc::new(HashEmbedder { dimensions: s.dimensions.unwrap_or(64) }));
    }
    let (provider, url) = match s.api {
        EmbeddingApi::Azure => {
            let deployment = s.deployment.as_deref().or(s.model.as_deref()).unwrap_or_default();
            let url = endpoint(
                s.base_url.as_deref().unwrap_or_default(),
                &format!("openai/deployments/{deployment}/embeddings"),
            )
            .map_err(|m| ProviderError::new(ErrorKind::Config, "azure", m))?;
            let mut url =
                reqwest::Url::parse(&url).map_err(|e| ProviderError::new(ErrorKind::Config, "azure", e.to_string()))?;
            url.query_pairs_mut().append_pair("api-version", s.api_version.as_deref().unwrap_or_default());
            ("azure", url.to_string())
        }
        EmbeddingApi::Tei => (
            "tei",
            endpoint(s.base_url.as_deref().unwrap_or_default(), "embed")
                .map_err(|m| ProviderError::new(ErrorKind::Config, "tei", m))?,
        ),
        _ => {
            let base = s.base_url.as_deref().unwrap_or("https://api.openai.com/v1");
            ("openai", endpoint(base, "embeddings").map_err(|m| ProviderError::new(ErrorKind::Config, "openai", m))?)
        }
    };
    let transport = Transport::new(provider, &url, &s.http)?;
    Ok(Arc::new(HttpEmbedder {
        inner: Arc::new(Inner {
            provider,
            api: s.api,
            url,
            model: s.model.clone(),
            key: s.api_key.clone(),
            dimensions: s.dimensions,
            batch_size: s.batch_size.max(1),
            params: s.params.clone(),
            transport,
        }),
    }))
}

#[derive(Debug)]
struct HttpEmbedder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    provider: &'static str,
    api: EmbeddingApi,
    url: String,
    model: Option<String>,
    key: Option<Secret>,
    dimensions: Option<usize>,
    batch_size: usize,
    params: Map<String, Value>,
    transport: Transport,
}

impl Inner {
    fn protocol(&self, m: impl Into<String>) -> ProviderError {
        ProviderError::new(ErrorKind::Protocol, self.provider, m)
    }

    async fn batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ProviderError> {
        let n = texts.len();
        let mut body = Map::new();
        if self.api == EmbeddingApi::Tei {
            body.insert("inputs".into(), json!(texts));
        } else {
            if let Some(m) = &self.model {
                body.insert("model".into(), json!(m));
            }
            body.insert("input".into(), json!(texts));
            body.insert("encoding_format".into(), json!("float"));
            if let Some(d) = self.dimensions {
                body.insert("dimensions".into(), json!(d));
            }
        }
        for (k, v) in &self.params {
            body.insert(k.clone(), v.clone());
        }
        let mut call = Call::json(self.provider, &self.url, &Value::Object(body))?;
        if let Some(k) = &self.key {
            call = match self.api {
                EmbeddingApi::Azure => call.secret_header(self.provider, "api-key", k.expose())?,
                _ => call.secret_header(self.provider, "authorization", &format!("Bearer {}", k.expose()))?,
            };
        }
        let v = self.transport.post_json(&call).await?;
        let vectors = if self.api == EmbeddingApi::Tei {
            let rows = v.as_array().ok_or_else(|| self.protocol("expected a list of vectors"))?;
            rows.iter()
                .map(|r| vector(r).ok_or_else(|| self.protocol("expected a list of numbers")))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let data = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| self.protocol("the answer has no `data` list"))?;
            let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
            for (pos, item) in data.iter().enumerate() {
                let i = item.get("index").and_then(Value::as_u64).map_or(pos, |i| i as usize);
                let e = item
                    .get("embedding")
                    .and_then(vector)
                    .ok_or_else(|| self.protocol("an item has no numeric `embedding`"))?;
                match slots.get_mut(i) {
                    Some(slot @ None) => *slot = Some(e),
                    Some(Some(_)) => return Err(self.protocol(format!("index {i} appears twice"))),
                    None => return Err(self.protocol(format!("index {i} is out of range for {n} inputs"))),
                }
            }
            slots
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.protocol(format!("expected {n} embeddings, got {}", data.len())))?
        };
        if vectors.len() != n {
            return Err(self.protocol(format!("expected {n} embeddings, got {}", vectors.len())));
        }
        Ok(vectors)
    }
}

fn vector(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

impl EmbeddingClient for HttpEmbedder {
    fn provider(&self) -> &'static str {
        self.inner.provider
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let batches: Vec<Vec<String>> = texts.chunks(inner.batch_size).map(<[String]>::to_vec).collect();
            let results: Vec<Vec<Vec<f32>>> = stream::iter(batches)
                .map(|b| {
                    let inner = Arc::clone(&inner);
                    async move { inner.batch(b).await }
                })
                .buffered(PARALLEL_BATCHES)
                .try_collect()
                .await?;
            Ok(results.into_iter().flatten().collect())
        })
    }
}

/// The offline embedder: each lowercase word adds ±1 to a hashed dimension, then the
/// vector is L2-normalised. Deterministic, and texts sharing words are close.
#[derive(Debug)]
pub(crate) struct HashEmbedder {
    pub(crate) dimensions: usize,
}

impl HashEmbedder {
    pub(crate) fn vector(&self, text: &str) -> Vec<f32> {
        let dims = self.dimensions.max(1);
        let mut v = vec![0f32; dims];
        for w in tokens(text) {
            let h = fnv1a(w.as_bytes());
            let sign = if (h >> 63) & 1 == 0 { 1.0 } else { -1.0 };
            v[(h % dims as u64) as usize] += sign;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

/// Lowercase alphanumeric words.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl EmbeddingClient for HashEmbedder {
    fn provider(&self) -> &'static str {
        "replay"
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, ProviderError>> {
        let out = texts.iter().map(|t| self.vector(t)).collect();
        Box::pin(async move { Ok(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_vectors_are_deterministic_normalised_and_similar_for_shared_words() {
        let e = HashEmbedder { dimensions: 32 };
        let a = e.vector("The cat sat");
        assert_eq!(a, e.vector("the CAT sat!"));
        assert_eq!(a.len(), 32);
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        assert!(dot(&a, &e.vector("a cat sat down")) > dot(&a, &e.vector("quantum chromodynamics")));
        assert!(e.vector("").iter().all(|x| *x == 0.0));
    }
}
