//! The provider-neutral chat model: requests, answers, stream deltas, and the
//! [`ChatClient`] trait every LLM provider implements.
//!
//! Messages use the OpenAI Chat Completions shape (`role`, `content` as a string or a
//! list of parts, `tool_calls`, `tool_call_id`); providers with another wire format
//! convert to and from it.

pub(crate) mod anthropic;
pub(crate) mod gemini;
mod http_chat;
pub(crate) mod openai;
pub(crate) mod replay;

use std::collections::BTreeMap;
use std::fmt;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value, json};

use crate::config::{LlmApi, LlmSettings};
use crate::error::ProviderError;
use crate::usage::Usage;
use http_chat::HttpChat;

/// Build the client an `llm:` resource describes.
pub(crate) fn build(s: &LlmSettings) -> Result<std::sync::Arc<dyn ChatClient>, ProviderError> {
    Ok(match s.api {
        LlmApi::OpenAi | LlmApi::Azure => std::sync::Arc::new(HttpChat::new(openai::OpenAiWire::new(s)?)),
        LlmApi::Anthropic => std::sync::Arc::new(HttpChat::new(anthropic::AnthropicWire::new(s)?)),
        LlmApi::Gemini => std::sync::Arc::new(HttpChat::new(gemini::GeminiWire::new(s)?)),
        LlmApi::Replay => std::sync::Arc::new(replay::ReplayChat::new(s)?),
    })
}

/// Everything a chat call sends besides the model and the endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// OpenAI-shaped messages.
    pub messages: Vec<Value>,
    /// Sampling and tool parameters.
    pub params: ChatParams,
}

/// The request parameters an `llm` op may carry. `None` means "not set": nothing is
/// sent for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatParams {
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Output token cap.
    pub max_tokens: Option<u64>,
    /// Stop sequences (a single string input becomes one entry).
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Number of choices (only the first is used).
    pub n: Option<u64>,
    /// OpenAI function-tool definitions.
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or `{type: function, function: {name}}`.
    pub tool_choice: Option<Value>,
    /// `{type: json_object}` or `{type: json_schema, json_schema: {name, schema, strict?}}`.
    pub response_format: Option<Value>,
    /// Return token log-probabilities.
    pub logprobs: Option<bool>,
    /// Alternatives per token when `logprobs` is on.
    pub top_logprobs: Option<u64>,
    /// End-user id.
    pub user: Option<String>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Any other parameter, sent as is (provider-specific placement).
    pub extras: Map<String, Value>,
}

impl ChatParams {
    /// The JSON schema of a `response_format` of type `json_schema`, if any.
    pub fn json_schema(&self) -> Option<&Value> {
        let rf = self.response_format.as_ref()?;
        if rf.get("type").and_then(Value::as_str) != Some("json_schema") {
            return None;
        }
        rf.get("json_schema").and_then(|j| j.get("schema"))
    }

    /// Whether the caller asked for JSON output (`json_object` or `json_schema`).
    pub fn wants_json(&self) -> bool {
        matches!(
            self.response_format.as_ref().and_then(|r| r.get("type")).and_then(Value::as_str),
            Some("json_object" | "json_schema")
        )
    }
}

/// One tool call the model made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's call id.
    pub id: String,
    /// The function name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

impl ToolCall {
    /// The OpenAI wire form: `{id, type: "function", function: {name, arguments}}`.
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}})
    }
}

/// A complete answer (the first choice).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    /// The text, if the model produced any.
    pub content: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    pub finish_reason: Option<String>,
    /// Token counts.
    pub usage: Usage,
    /// The provider's model string, when it reports one.
    pub model: Option<String>,
    /// Reasoning / thinking text.
    pub reasoning: Option<String>,
    /// A refusal message.
    pub refusal: Option<String>,
    /// Token log-probabilities (provider shape).
    pub logprobs: Option<Value>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatDelta {
    /// More answer text.
    Text(String),
    /// More reasoning text.
    Reasoning(String),
    /// More refusal text.
    Refusal(String),
    /// A fragment of tool call `index`.
    ToolCall(ToolCallDelta),
    /// The finish reason.
    Finish(String),
    /// Usage counts (possibly partial; merged).
    Usage(Usage),
    /// The provider's model string.
    Model(String),
    /// Log-probability entries to append.
    Logprobs(Vec<Value>),
}

/// A fragment of a streamed tool call: the first carries the id and name, later ones
/// append to the arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call (position in the answer).
    pub index: usize,
    /// The call id, when this fragment carries it.
    pub id: Option<String>,
    /// The function name, when this fragment carries it.
    pub name: Option<String>,
    /// Arguments text to append.
    pub arguments: String,
}

/// A streamed answer.
pub type DeltaStream = BoxStream<'static, Result<ChatDelta, ProviderError>>;

/// A chat-completion provider bound to one resource (endpoint, model, credentials).
/// Implementations own their HTTP client and limits; futures are `'static` so callers
/// can run them anywhere.
pub trait ChatClient: Send + Sync + fmt::Debug {
    /// The provider family (`openai`, `azure`, `anthropic`, `gemini`, `replay`).
    fn provider(&self) -> &'static str;

    /// The model the resource uses.
    fn model(&self) -> &str;

    /// One complete answer.
    fn chat(&self, request: ChatRequest) -> BoxFuture<'static, Result<ChatResponse, ProviderError>>;

    /// A streamed answer: the future resolves once the provider accepted the request.
    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'static, Result<DeltaStream, ProviderError>>;
}

/// Folds stream deltas into a [`ChatResponse`]; tool-call fragments are merged by index.
#[derive(Debug, Default)]
pub struct ChatAccumulator {
    text: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    calls: BTreeMap<usize, ToolCall>,
    finish: Option<String>,
    usage: Usage,
    model: Option<String>,
    logprobs: Option<Vec<Value>>,
}

impl ChatAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one delta.
    pub fn push(&mut self, delta: ChatDelta) {
        match delta {
            ChatDelta::Text(t) => self.text.get_or_insert_with(String::new).push_str(&t),
            ChatDelta::Reasoning(t) => self.reasoning.get_or_insert_with(String::new).push_str(&t),
            ChatDelta::Refusal(t) => self.refusal.get_or_insert_with(String::new).push_str(&t),
            ChatDelta::ToolCall(d) => {
                let call = self.calls.entry(d.index).or_default();
                if let Some(id) = d.id.filter(|s| !s.is_empty())
                    && call.id.is_empty()
                {
                    call.id = id;
                }
                if let Some(name) = d.name.filter(|s| !s.is_empty())
                    && call.name.is_empty()
                {
                    call.name = name;
                }
                call.arguments.push_str(&d.arguments);
            }
            ChatDelta::Finish(f) => self.finish = Some(f),
            ChatDelta::Usage(u) => self.usage.merge(&u),
            ChatDelta::Model(m) => self.model = Some(m),
            ChatDelta::Logprobs(entries) => self.logprobs.get_or_insert_with(Vec::new).extend(entries),
        }
    }

    /// The complete answer.
    pub fn finish(self) -> ChatResponse {
        ChatResponse {
            content: self.text,
            tool_calls: self.calls.into_values().collect(),
            finish_reason: self.finish,
            usage: self.usage.with_total(),
            model: self.model,
            reasoning: self.reasoning,
            refusal: self.refusal,
            logprobs: self.logprobs.map(|content| json!({ "content": content })),
        }
    }
}

/// Drain `stream` into one answer, calling `on_text` with every text delta.
pub async fn collect_stream(
    mut stream: DeltaStream,
    mut on_text: impl FnMut(&str) + Send,
) -> Result<ChatResponse, ProviderError> {
    let mut acc = ChatAccumulator::new();
    while let Some(delta) = stream.next().await {
        let delta = delta?;
        if let ChatDelta::Text(t) = &delta {
            on_text(t);
        }
        acc.push(delta);
    }
    Ok(acc.finish())
}

/// The text of an OpenAI message content (a string, or the `text` parts of a list).
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Split a `data:` URL into `(mime, base64 data)`.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((if mime.is_empty() { "application/octet-stream" } else { mime }, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulator_merges_tool_call_fragments_by_index() {
        let mut acc = ChatAccumulator::new();
        let frag = |index, id: Option<&str>, name: Option<&str>, args: &str| {
            ChatDelta::ToolCall(ToolCallDelta {
                index,
                id: id.map(Into::into),
                name: name.map(Into::into),
                arguments: args.into(),
            })
        };
        acc.push(frag(0, Some("call_a"), Some("search"), ""));
        acc.push(frag(1, Some("call_b"), Some("lookup"), "{\"id\""));
        acc.push(frag(0, None, None, "{\"q\":"));
        acc.push(frag(0, Some(""), None, "\"rust\"}"));
        acc.push(frag(1, None, None, ":7}"));
        acc.push(ChatDelta::Finish("tool_calls".into()));
        acc.push(ChatDelta::Usage(Usage { prompt_tokens: 3, ..Usage::default() }));
        acc.push(ChatDelta::Usage(Usage { completion_tokens: 2, ..Usage::default() }));
        let r = acc.finish();
        assert_eq!(r.content, None);
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall { id: "call_a".into(), name: "search".into(), arguments: "{\"q\":\"rust\"}".into() },
                ToolCall { id: "call_b".into(), name: "lookup".into(), arguments: "{\"id\":7}".into() },
            ]
        );
        assert_eq!(r.usage.total_tokens, 5);
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn data_urls_and_content_text() {
        assert_eq!(data_url("data:image/png;base64,AAAA"), Some(("image/png", "AAAA")));
        assert_eq!(data_url("https://x/y.png"), None);
        assert_eq!(
            content_text(&json!([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}])),
            "ab"
        );
    }
}
