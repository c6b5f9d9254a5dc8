//! `/v1/graphs`, `/healthz`, `/metrics` and the answer to unknown routes.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::runs::blocking;
use super::{Caller, State};
use crate::problem::Problem;

/// A graph on offer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphView {
    /// Its name (what `POST /v1/runs` takes).
    name: String,
    /// Digest of the compiled graph.
    fingerprint: String,
    /// The inputs it declares.
    #[schema(value_type = Object)]
    inputs: serde_json::Value,
    /// Its description, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// The graphs on offer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphList {
    /// By name.
    graphs: Vec<GraphView>,
}

/// The graphs this server runs.
#[utoipa::path(get, path = "/v1/graphs", responses((status = 200, body = GraphList), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn graphs(state: State, _caller: Caller) -> Json<GraphList> {
    let graphs = state
        .catalog
        .iter()
        .map(|e| {
            let doc = e.workflow.document();
            GraphView {
                name: e.name.clone(),
                fingerprint: e.workflow.fingerprint().to_string(),
                inputs: doc.get("inputs").cloned().unwrap_or(serde_json::Value::Null),
                description: doc
                    .get("description")
                    .and_then(|d| d.as_str())
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            }
        })
        .collect();
    Json(GraphList { graphs })
}

/// Liveness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    status: String,
}

/// Whether the server is up.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn metrics(state: State, caller: Caller) -> Result<Response, Problem> {
    let state = state.0;
    let tenant = caller.0.clone();
    let counts = blocking(&state, move |s| s.counts(tenant.as_deref()))
        .await?
        .map_err(|e| Problem::internal("the run store", &e))?;
    let mut response = state.metrics.render(&counts).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// Unknown routes.
pub(crate) async fn not_found() -> Problem {
    Problem::not_found("no such route (see GET /openapi.json)")
}
