//! operonx model providers: the resource hub (`resources.yaml`), chat, embedding and
//! rerank clients, and the `llm`, `embedding` and `rerank` ops that use them.
//!
//! # Resources
//!
//! `resources.yaml` maps `category:name` keys to settings, flat (`llm:gpt: {...}`) or
//! nested (`llm:` then `gpt: {...}`). String values may use `${VAR}` (required) and
//! `${VAR:default}`; variables come from the environment and then from `.env` (see
//! [`ResourceHub::discover`]). A missing resource, an unset variable or a wrong field is
//! an error naming the key and the file; keys beginning with `x-` are ignored, every
//! other unknown key is rejected. API keys are [`Secret`]s: they never appear in `Debug`
//! output, errors or trace payloads. Categories: `llm`, `embedding`, `reranking`.
//!
//! ```yaml
//! llm:
//!   gpt:
//!     api_type: openai            # openai | vllm | openai_compatible | azure | anthropic | gemini | replay
//!     model: gpt-4o-mini
//!     api_key: ${OPENAI_API_KEY}
//!     base_url: https://api.openai.com/v1
//!     pricing: {input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075}
//!     timeout_s: 60               # whole call; for streams: headers and each next chunk
//!     connect_timeout_s: 10
//!     max_retries: 2              # on 429, 5xx, 529, 408/409, timeouts, connection errors
//!     retry_initial_backoff_s: 0.5
//!     retry_max_backoff_s: 30     # also the longest Retry-After that is waited for
//!     max_concurrency: 8          # requests of this resource in flight at once
//!     requests_per_second: 5
//!     headers: {x-team: search}   # extra headers (treated as secrets)
//!     params: {reasoning_effort: low}   # default body parameters; op inputs win
//! embedding:
//!   small: {api_type: openai, model: text-embedding-3-small, api_key: ${OPENAI_API_KEY}, batch_size: 64}
//! reranking:
//!   bge: {api_type: tei, base_url: "http://localhost:8080"}
//! ```
//!
//! Durations (`timeout_s`, `connect_timeout_s`, the retry backoffs) are at most 7 days,
//! `requests_per_second` at least one request per 7 days, and `max_concurrency` between 1
//! and [`MAX_CONCURRENCY`]; a value outside its range is refused with a message naming the
//! field and the range (see [`operonx_graph::duration`]).
//!
//! # The `base_url` rule
//!
//! For every provider, **`base_url` is the API root including any version segment**,
//! and the client appends the endpoint path:
//!
//! | api_type | default `base_url` | request |
//! |---|---|---|
//! | `openai`, `vllm`, `openai_compatible` | `https://api.openai.com/v1` | `{base_url}/chat/completions`, `{base_url}/embeddings` |
//! | `azure` | — (required: `https://<res>.openai.azure.com`) | `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=…` (and `/embeddings`) |
//! | `anthropic` | `https://api.anthropic.com/v1` | `{base_url}/messages` |
//! | `gemini` | `https://generativelanguage.googleapis.com/v1beta` | `{base_url}/models/{model}:generateContent` / `:streamGenerateContent?alt=sse` |
//! | `tei` | — (required, e.g. `http://localhost:8080`) | `{base_url}/embed`, `{base_url}/rerank` |
//! | `vllm`/`jina` reranking | — (required, e.g. `http://localhost:8000/v1`) | `{base_url}/rerank` |
//! | `cohere` reranking | `https://api.cohere.com/v2` | `{base_url}/rerank` |
//! | `pinecone` reranking | `https://api.pinecone.io` | `{base_url}/rerank` |
//!
//! A `base_url` that already ends with the endpoint path (`…/v1/embeddings`) is rejected
//! with a message saying so, rather than silently doubled.
//!
//! # Pricing and usage
//!
//! `pricing` holds USD per million tokens: `input_per_mtok`, `output_per_mtok`, and
//! optionally `cached_input_per_mtok` and `cache_write_per_mtok` (both default to the
//! input price). Cost = `(prompt − cached − cache_write)·input + cached·cached_input +
//! cache_write·cache_write + completion·output`. Every successful model call emits one
//! `llm_usage` trace event (see [`usage_payload`]); `cost_usd` is `null` when the
//! resource has no pricing, never a made-up 0.
//!
//! # Offline provider
//!
//! `api_type: replay` (alias `scripted`) answers from `responses_file` (JSON when it
//! ends in `.json`, YAML otherwise; relative to the resources file), which is either
//!
//! - a **list** of replies served in order; once every reply was served the next call
//!   **fails loudly** (`on_exhausted: fail`, the default), or starts over with
//!   `on_exhausted: cycle`;
//! - or `{rules: [{match: "text", ...reply}], default: reply?}`: the first rule whose
//!   `match` occurs (case-insensitively) in the last user message answers, else the
//!   `default`, else the call fails.
//!
//! A reply is a string (the content) or a mapping with `content`, `tool_calls`
//! (`[{id?, name, arguments}]`), `finish_reason`, `usage` (counts; estimated from word
//! counts when absent), `reasoning`, `delay_ms`, or `error: {kind, message, status?}`
//! (`kind` is an [`ErrorKind`] name such as `rate_limit` or `server`). Streaming replays
//! the content word by word. Embedding `replay` resources give deterministic hash-based
//! vectors of `dimensions` (default 64); reranking `replay` resources score by the share
//! of the query's words found in each document.
//!
//! # Ops
//!
//! [`register_provider_types`] adds the `llm`, `embedding` and `rerank` op types to a
//! [`operonx_runtime::Registry`]. Resources are resolved when the graph is compiled, so a
//! missing or broken resource is a validation error at the op's path. An op's
//! `resource` names a resource of the op's category (`gpt` or `llm:gpt`).
//!
//! **`llm`** — op fields: `resource` (a name or a list), `ratios` (weights for a list;
//! the pick uses a deterministic generator seeded by `selection_seed`, default a hash of
//! the op's full name), `fallback` (names tried in order when the picked resource
//! fails), `stream` (use the streaming API and accumulate; tokens go to
//! [`ProviderOptions::on_token`]), `structured_retries` (default 2). Inputs: `messages`
//! (required), `temperature`, `top_p`, `max_tokens`, `stop` (string or list), `seed`,
//! `n`, `tools`, `tool_choice`, `response_format`, `logprobs`, `top_logprobs`, `user`,
//! `frequency_penalty`, `presence_penalty`, `output_schema`; `null` means unset, and any
//! other non-null input is forwarded as an extra body parameter. Outputs: `role`,
//! `content` (`""` when none), `finish_reason`, `model_used` (the resource name that
//! answered), `tool_calls` (OpenAI shape, `[]` by default), `usage` (`prompt_tokens`,
//! `completion_tokens`, `total_tokens`, `cached_tokens`, `cache_write_tokens`,
//! `reasoning_tokens`, `cost_usd`), `extras` (`thinking_content`, `refusal`,
//! `logprobs`, `provider_model`, and `parsed` for structured output).
//!
//! - Fallback happens on any provider error, but never after a streamed answer already
//!   handed tokens to the hook; the error of the last resource is kept as the source and
//!   the earlier ones are listed in the message.
//! - Structured output: with a `json_schema` `response_format` (or an `output_schema`
//!   input, which also sets that `response_format`) the answer is parsed as JSON (a
//!   code fence is tolerated) and checked against the schema; on failure the call is
//!   repeated with the problem appended as a user message, up to `structured_retries`
//!   times, then the op fails. `usage` sums every call.
//! - One `llm_usage` event per successful provider call (structured-output re-asks
//!   included; failed attempts have none), emitted before the op's `op_end`.
//!
//! **`embedding`** — input `texts` (a string or a list of strings) → `embeddings`.
//! **`rerank`** — inputs `query`, `documents` (strings or objects with `content`),
//! `top_k` (≤ 0 or null: all), `threshold` (null: none) → `reranks`, sorted by
//! descending score, filtered to `score ≥ threshold`, cut to `top_k`; string documents
//! become `{content, score}`, objects get a `score` key.

pub mod chat;
mod config;
pub mod embed;
mod error;
pub mod http;
mod ops;
pub mod rerank;
pub mod resource;
mod rng;
mod secret;
mod usage;

pub use chat::{
    ChatAccumulator, ChatClient, ChatDelta, ChatParams, ChatRequest, ChatResponse, DeltaStream, ToolCall,
    ToolCallDelta, collect_stream,
};
pub use config::{
    EmbeddingApi, EmbeddingSettings, Exhausted, LlmApi, LlmSettings, MAX_CONCURRENCY, RerankApi, RerankSettings,
};
pub use embed::EmbeddingClient;
pub use error::{ErrorKind, ProviderError};
pub use http::{HttpOptions, RetryPolicy};
pub use ops::{
    ProviderOptions, TokenHook, UsageHook, register_provider_types, register_provider_types_with, usage_payload,
};
pub use rerank::{RerankClient, RerankHit};
pub use resource::{LlmResource, MissingVar, ResourceError, ResourceHub};
pub use secret::Secret;
pub use usage::{Pricing, Usage};
