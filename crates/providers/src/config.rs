//! Typed resource settings, parsed from one interpolated `resources.yaml` entry.
//! Unknown keys are rejected (keys starting with `x-` are free for annotations).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use operonx_graph::duration::{Limit, checked_rate, checked_secs};

use crate::http::{HttpOptions, RetryPolicy};
use crate::secret::Secret;
use crate::usage::Pricing;

/// The chat wire format of an `llm:` resource (`api_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmApi {
    /// `openai`, `vllm`, `openai_compatible`: OpenAI Chat Completions.
    OpenAi,
    /// `azure`: Azure OpenAI deployments.
    Azure,
    /// `anthropic`: the Messages API.
    Anthropic,
    /// `gemini`: Google Generative Language `generateContent`.
    Gemini,
    /// `replay` (alias `scripted`): canned answers from `responses_file`.
    Replay,
}

/// What a replay list does when every entry was served (`on_exhausted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exhausted {
    /// `fail` (default): the next call is an error.
    #[default]
    Fail,
    /// `cycle`: start again from the first entry.
    Cycle,
}

/// Settings of an `llm:` resource.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Wire format.
    pub api: LlmApi,
    /// Model name sent to the provider (for Azure: the deployment when none is given).
    pub model: String,
    /// Credentials.
    pub api_key: Option<Secret>,
    /// The API root (see the crate docs for the rule).
    pub base_url: Option<String>,
    /// Azure `api-version` query parameter; Anthropic `anthropic-version` header.
    pub api_version: Option<String>,
    /// Azure deployment name (default: `model`).
    pub deployment: Option<String>,
    /// Default request parameters; the op's inputs win over them.
    pub params: Map<String, Value>,
    /// Prices for cost tracking.
    pub pricing: Option<Pricing>,
    /// Replay script (resolved against the resources file's directory).
    pub responses_file: Option<PathBuf>,
    /// Replay list behaviour when exhausted.
    pub on_exhausted: Exhausted,
    /// Transport settings.
    pub http: HttpOptions,
}

/// The wire format of an `embedding:` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingApi {
    /// `openai`, `vllm`, `openai_compatible`: `POST {base_url}/embeddings`.
    OpenAi,
    /// `azure`: `POST {base_url}/openai/deployments/{deployment}/embeddings?api-version=`.
    Azure,
    /// `tei`: Hugging Face text-embeddings-inference, `POST {base_url}/embed`.
    Tei,
    /// `replay`: deterministic hash-based vectors (no network).
    Replay,
}

/// Settings of an `embedding:` resource.
#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    /// Wire format.
    pub api: EmbeddingApi,
    /// Model name (required for OpenAI-shaped APIs).
    pub model: Option<String>,
    /// Credentials.
    pub api_key: Option<Secret>,
    /// The API root.
    pub base_url: Option<String>,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Azure deployment (default: `model`).
    pub deployment: Option<String>,
    /// Output dimensions (sent to OpenAI-shaped APIs; the replay vector size, default 64).
    pub dimensions: Option<usize>,
    /// Texts per request (`batch_size`, default 64).
    pub batch_size: usize,
    /// Extra request body fields.
    pub params: Map<String, Value>,
    /// Transport settings.
    pub http: HttpOptions,
}

/// The wire format of a `reranking:` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankApi {
    /// `tei`: `POST {base_url}/rerank` with `texts`.
    Tei,
    /// `vllm`, `cohere`, `jina`: `POST {base_url}/rerank` with `documents`, answering
    /// `results[].relevance_score`.
    Cohere,
    /// `pinecone`: `POST {base_url}/rerank` with `Api-Key` and `X-Pinecone-API-Version`.
    Pinecone,
    /// `replay`: lexical-overlap scores (no network).
    Replay,
}

/// Settings of a `reranking:` resource.
#[derive(Debug, Clone)]
pub struct RerankSettings {
    /// Wire format.
    pub api: RerankApi,
    /// Model name.
    pub model: Option<String>,
    /// Credentials.
    pub api_key: Option<Secret>,
    /// The API root.
    pub base_url: Option<String>,
    /// Pinecone API version header (default `2025-04`).
    pub api_version: Option<String>,
    /// Extra request body fields.
    pub params: Map<String, Value>,
    /// Transport settings.
    pub http: HttpOptions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    timeout_s: Option<f64>,
    connect_timeout_s: Option<f64>,
    max_retries: Option<u32>,
    retry_initial_backoff_s: Option<f64>,
    retry_max_backoff_s: Option<f64>,
    max_concurrency: Option<usize>,
    requests_per_second: Option<f64>,
    #[serde(default)]
    headers: Map<String, Value>,
}

/// The largest `max_concurrency` a resource may set (requests in flight at once).
pub const MAX_CONCURRENCY: usize = 1_000_000;

const HTTP_KEYS: &[&str] = &[
    "timeout_s",
    "connect_timeout_s",
    "max_retries",
    "retry_initial_backoff_s",
    "retry_max_backoff_s",
    "max_concurrency",
    "requests_per_second",
    "headers",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLlm {
    api_type: String,
    model: Option<String>,
    api_key: Option<Secret>,
    base_url: Option<String>,
    api_version: Option<String>,
    deployment: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
    pricing: Option<Pricing>,
    responses_file: Option<String>,
    on_exhausted: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmbedding {
    api_type: String,
    model: Option<String>,
    api_key: Option<Secret>,
    base_url: Option<String>,
    api_version: Option<String>,
    deployment: Option<String>,
    dimensions: Option<usize>,
    batch_size: Option<usize>,
    #[serde(default)]
    params: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRerank {
    api_type: String,
    model: Option<String>,
    api_key: Option<Secret>,
    base_url: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
}

/// Split the transport keys off `cfg` and drop `x-*` keys.
fn split(cfg: &Map<String, Value>) -> Result<(HttpOptions, Map<String, Value>), String> {
    let mut http = Map::new();
    let mut rest = Map::new();
    for (k, v) in cfg {
        if k.starts_with("x-") {
            continue;
        }
        if HTTP_KEYS.contains(&k.as_str()) {
            http.insert(k.clone(), v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    let raw: RawHttp = from_map(http)?;
    let secs = |name: &str, v: Option<f64>, default: Duration| -> Result<Duration, String> {
        match v {
            None => Ok(default),
            Some(s) => checked_secs(name, s, Limit::WAIT).map_err(|e| format!("field {e}")),
        }
    };
    let d = HttpOptions::default();
    let r = RetryPolicy::default();
    let mut headers = Vec::new();
    for (k, v) in raw.headers {
        match v {
            Value::String(s) => headers.push((k, Secret::new(s))),
            other => return Err(format!("header `{k}` must be a string, got {other}")),
        }
    }
    let opts = HttpOptions {
        timeout: secs("timeout_s", raw.timeout_s, d.timeout)?,
        connect_timeout: secs("connect_timeout_s", raw.connect_timeout_s, d.connect_timeout)?,
        retry: RetryPolicy {
            max_retries: raw.max_retries.unwrap_or(r.max_retries),
            initial_backoff: secs("retry_initial_backoff_s", raw.retry_initial_backoff_s, r.initial_backoff)?,
            max_backoff: secs("retry_max_backoff_s", raw.retry_max_backoff_s, r.max_backoff)?,
        },
        max_concurrency: match raw.max_concurrency {
            Some(n) if !(1..=MAX_CONCURRENCY).contains(&n) => {
                return Err(format!("field `max_concurrency` must be between 1 and {MAX_CONCURRENCY}, got {n}"));
            }
            other => other,
        },
        requests_per_second: match raw.requests_per_second {
            Some(r) => Some(checked_rate("requests_per_second", r).map(|_| r).map_err(|e| format!("field {e}"))?),
            None => None,
        },
        headers,
    };
    Ok((opts, rest))
}

fn from_map<T: DeserializeOwned>(m: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(m)).map_err(|e| e.to_string())
}

fn non_empty(key: Option<Secret>) -> Option<Secret> {
    key.filter(|k| !k.is_empty())
}

fn resolve(base_dir: Option<&Path>, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    match base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    }
}

impl LlmSettings {
    /// Parse an interpolated `llm:` entry; relative paths resolve against `base_dir`.
    pub fn parse(cfg: &Map<String, Value>, base_dir: Option<&Path>) -> Result<Self, String> {
        let (http, rest) = split(cfg)?;
        let raw: RawLlm = from_map(rest)?;
        let api = match raw.api_type.as_str() {
            "openai" | "vllm" | "openai_compatible" => LlmApi::OpenAi,
            "azure" => LlmApi::Azure,
            "anthropic" => LlmApi::Anthropic,
            "gemini" => LlmApi::Gemini,
            "replay" | "scripted" => LlmApi::Replay,
            other => {
                return Err(format!(
                    "unknown api_type '{other}' (expected openai, vllm, openai_compatible, azure, anthropic, gemini, replay)"
                ));
            }
        };
        let model = match (raw.model, api) {
            (Some(m), _) => m,
            (None, LlmApi::Replay) => "replay".to_string(),
            (None, LlmApi::Azure) if raw.deployment.is_some() => raw.deployment.clone().unwrap_or_default(),
            (None, _) => return Err("missing field `model`".into()),
        };
        if api == LlmApi::Azure {
            if raw.api_version.is_none() {
                return Err("azure needs `api_version`".into());
            }
            if raw.base_url.is_none() {
                return Err("azure needs `base_url` (https://<resource>.openai.azure.com)".into());
            }
        }
        if api == LlmApi::Replay && raw.responses_file.is_none() {
            return Err("replay needs `responses_file`".into());
        }
        let on_exhausted = match raw.on_exhausted.as_deref() {
            None | Some("fail") => Exhausted::Fail,
            Some("cycle") => Exhausted::Cycle,
            Some(o) => return Err(format!("`on_exhausted` must be `fail` or `cycle`, got '{o}'")),
        };
        Ok(Self {
            api,
            model,
            api_key: non_empty(raw.api_key),
            base_url: raw.base_url,
            api_version: raw.api_version,
            deployment: raw.deployment,
            params: raw.params,
            pricing: raw.pricing,
            responses_file: raw.responses_file.map(|f| resolve(base_dir, &f)),
            on_exhausted,
            http,
        })
    }
}

impl EmbeddingSettings {
    /// Parse an interpolated `embedding:` entry.
    pub fn parse(cfg: &Map<String, Value>) -> Result<Self, String> {
        let (http, rest) = split(cfg)?;
        let raw: RawEmbedding = from_map(rest)?;
        let api = match raw.api_type.as_str() {
            "openai" | "vllm" | "openai_compatible" => EmbeddingApi::OpenAi,
            "azure" => EmbeddingApi::Azure,
            "tei" => EmbeddingApi::Tei,
            "replay" | "scripted" => EmbeddingApi::Replay,
            other => {
                return Err(format!(
                    "unknown api_type '{other}' (expected openai, vllm, openai_compatible, azure, tei, replay)"
                ));
            }
        };
        match api {
            EmbeddingApi::OpenAi if raw.model.is_none() => return Err("missing field `model`".into()),
            EmbeddingApi::Azure if raw.api_version.is_none() || raw.base_url.is_none() => {
                return Err("azure needs `base_url` and `api_version`".into());
            }
            EmbeddingApi::Tei if raw.base_url.is_none() => return Err("tei needs `base_url`".into()),
            _ => {}
        }
        if raw.batch_size == Some(0) || raw.dimensions == Some(0) {
            return Err("`batch_size` and `dimensions` must be at least 1".into());
        }
        Ok(Self {
            api,
            model: raw.model,
            api_key: non_empty(raw.api_key),
            base_url: raw.base_url,
            api_version: raw.api_version,
            deployment: raw.deployment,
            dimensions: raw.dimensions,
            batch_size: raw.batch_size.unwrap_or(64),
            params: raw.params,
            http,
        })
    }
}

impl RerankSettings {
    /// Parse an interpolated `reranking:` entry.
    pub fn parse(cfg: &Map<String, Value>) -> Result<Self, String> {
        let (http, rest) = split(cfg)?;
        let raw: RawRerank = from_map(rest)?;
        let api = match raw.api_type.as_str() {
            "tei" => RerankApi::Tei,
            "vllm" | "cohere" | "jina" => RerankApi::Cohere,
            "pinecone" => RerankApi::Pinecone,
            "replay" | "scripted" => RerankApi::Replay,
            other => {
                return Err(format!("unknown api_type '{other}' (expected tei, vllm, cohere, jina, pinecone, replay)"));
            }
        };
        match api {
            RerankApi::Tei | RerankApi::Cohere if raw.base_url.is_none() && raw.api_type != "cohere" => {
                return Err(format!("{} needs `base_url`", raw.api_type));
            }
            RerankApi::Pinecone if raw.model.is_none() => return Err("pinecone needs `model`".into()),
            _ => {}
        }
        Ok(Self {
            api,
            model: raw.model,
            api_key: non_empty(raw.api_key),
            base_url: raw.base_url,
            api_version: raw.api_version,
            params: raw.params,
            http,
        })
    }
}

/// `{base}/{path}`, the one URL rule for every provider: `base_url` is the API root,
/// including any version segment, and the client appends the endpoint path. A
/// `base_url` that already ends with the endpoint path is rejected.
pub(crate) fn endpoint(base: &str, path: &str) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let suffix = format!("/{}", path.split(['?', ':']).next().unwrap_or(path));
    if suffix.len() > 1 && base.ends_with(&suffix) {
        return Err(format!(
            "base_url '{base}' already ends with '{suffix}': base_url is the API root (e.g. https://api.openai.com/v1) and the client appends '{suffix}'"
        ));
    }
    Ok(format!("{base}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn llm_settings_parse_http_pricing_and_reject_unknown_keys() {
        let s = LlmSettings::parse(
            &map(json!({
                "api_type": "vllm", "model": "m", "api_key": "", "timeout_s": 2.5, "max_retries": 5,
                "max_concurrency": 3, "requests_per_second": 2, "headers": {"x-team": "a"},
                "pricing": {"input_per_mtok": 1, "output_per_mtok": 2}, "x-note": "ignored"
            })),
            None,
        )
        .unwrap();
        assert_eq!(s.api, LlmApi::OpenAi);
        assert!(s.api_key.is_none(), "an empty key means no key");
        assert_eq!(s.http.timeout, Duration::from_millis(2500));
        assert_eq!(s.http.retry.max_retries, 5);
        assert_eq!(s.http.max_concurrency, Some(3));
        assert_eq!(s.pricing.unwrap().output_per_mtok, 2.0);
        let e =
            LlmSettings::parse(&map(json!({"api_type": "openai", "model": "m", "temprature": 1})), None).unwrap_err();
        assert!(e.contains("unknown field `temprature`"), "{e}");
        let e = LlmSettings::parse(&map(json!({"api_type": "databricks", "model": "m"})), None).unwrap_err();
        assert!(e.contains("unknown api_type 'databricks'"), "{e}");
        let e =
            LlmSettings::parse(&map(json!({"api_type": "openai", "model": "m", "timeout_s": "x"})), None).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        assert!(LlmSettings::parse(&map(json!({"api_type": "azure", "model": "m", "base_url": "u"})), None).is_err());
    }

    #[test]
    fn durations_rates_and_limits_out_of_range_are_refused_with_their_range() {
        let parse = |extra: Value| {
            let mut cfg = map(json!({"api_type": "openai", "model": "m"}));
            cfg.extend(map(extra));
            LlmSettings::parse(&cfg, None)
        };
        for key in ["timeout_s", "connect_timeout_s", "retry_initial_backoff_s", "retry_max_backoff_s"] {
            let e = parse(json!({key: 1e300})).unwrap_err();
            assert_eq!(
                e,
                format!("field `{key}` must be a non-negative number of seconds, at most 604800 (7 days), got 1e300")
            );
            assert!(parse(json!({key: -1})).is_err(), "{key}");
            assert!(parse(json!({key: 604_800})).is_ok(), "{key}");
        }
        let e = parse(json!({"requests_per_second": 1e-300})).unwrap_err();
        assert!(
            e.starts_with("field `requests_per_second` must be a number of requests per second of at least 1/604800"),
            "{e}"
        );
        assert!(parse(json!({"requests_per_second": 0})).is_err());
        assert_eq!(parse(json!({"requests_per_second": 0.5})).unwrap().http.requests_per_second, Some(0.5));
        let e = parse(json!({"max_concurrency": 2_305_843_009_213_693_952u64})).unwrap_err();
        assert_eq!(e, "field `max_concurrency` must be between 1 and 1000000, got 2305843009213693952");
        assert!(parse(json!({"max_concurrency": 0})).is_err());
        assert_eq!(parse(json!({"max_concurrency": 1_000_000})).unwrap().http.max_concurrency, Some(1_000_000));
    }

    #[test]
    fn replay_file_resolves_against_the_resources_dir() {
        let s = LlmSettings::parse(
            &map(json!({"api_type": "scripted", "responses_file": "r.json"})),
            Some(Path::new("/a/b")),
        )
        .unwrap();
        assert_eq!(s.responses_file.unwrap(), PathBuf::from("/a/b/r.json"));
        assert_eq!(s.model, "replay");
    }

    #[test]
    fn endpoint_rule_appends_and_rejects_suffixes() {
        assert_eq!(
            endpoint("https://api.openai.com/v1/", "chat/completions").unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert!(endpoint("https://x/v1/embeddings", "embeddings").unwrap_err().contains("API root"));
        assert_eq!(
            endpoint("https://g/v1beta", "models/m:generateContent").unwrap(),
            "https://g/v1beta/models/m:generateContent"
        );
    }
}
