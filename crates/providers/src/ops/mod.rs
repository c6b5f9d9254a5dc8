//! The graph ops that use providers: `llm`, `embedding` and `rerank`, bound to a
//! [`ResourceHub`] through [`register_provider_types`].

mod llm;
mod retrieval;
pub(crate) mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use operonx_graph::wire::OpConfig;
use operonx_runtime::{Op, OpFactory, Registry};
use serde_json::Value;

use crate::resource::ResourceHub;

pub use llm::usage_payload;

/// Called with `(op full name, text delta)` for every streamed token of a `stream: true`
/// `llm` op.
pub type TokenHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Called with `(op full name, payload)` for every `llm_usage` event (the same payload
/// the trace gets), traced run or not.
pub type UsageHook = Arc<dyn Fn(&str, &BTreeMap<String, Value>) + Send + Sync>;

/// Optional observers for provider ops.
#[derive(Clone, Default)]
pub struct ProviderOptions {
    /// Streamed token deltas.
    pub on_token: Option<TokenHook>,
    /// Usage of every successful model call.
    pub on_usage: Option<UsageHook>,
}

impl fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderOptions")
            .field("on_token", &self.on_token.is_some())
            .field("on_usage", &self.on_usage.is_some())
            .finish()
    }
}

/// Add the `llm`, `embedding` and `rerank` op types, resolving resources in `hub`.
pub fn register_provider_types(registry: &mut Registry, hub: Arc<ResourceHub>) {
    register_provider_types_with(registry, hub, ProviderOptions::default());
}

/// [`register_provider_types`] with observers.
pub fn register_provider_types_with(registry: &mut Registry, hub: Arc<ResourceHub>, options: ProviderOptions) {
    let h = Arc::clone(&hub);
    let o = options.clone();
    let llm: OpFactory =
        Arc::new(move |cfg: &OpConfig| llm::LlmOp::bind(cfg, &h, &o).map(|op| Arc::new(op) as Arc<dyn Op>));
    let h = Arc::clone(&hub);
    let embedding: OpFactory =
        Arc::new(move |cfg: &OpConfig| retrieval::EmbeddingOp::bind(cfg, &h).map(|op| Arc::new(op) as Arc<dyn Op>));
    let h = hub;
    let rerank: OpFactory =
        Arc::new(move |cfg: &OpConfig| retrieval::RerankOp::bind(cfg, &h).map(|op| Arc::new(op) as Arc<dyn Op>));
    registry.register_type("llm", llm).register_type("embedding", embedding).register_type("rerank", rerank);
}

/// A string-or-list-of-strings op field (`resource`, `fallback`); `null` or absent is empty.
fn names(cfg: &OpConfig, field: &str) -> Result<Vec<String>, String> {
    match cfg.extra.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| format!("`{field}` must list resource names, found {i}"))
            })
            .collect(),
        Some(other) => Err(format!("`{field}` must be a resource name or a list of names, found {other}")),
    }
}

/// Treat JSON `null` (an unbound optional input) as absent.
fn present(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}
