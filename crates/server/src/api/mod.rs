//! The HTTP API: routes, the state they share, and who is asking.

mod body;
pub(crate) mod events;
pub(crate) mod meta;
pub(crate) mod openapi;
pub(crate) mod runs;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::{get, post};
use operonx_store::RunStore;

use crate::catalog::Catalog;
use crate::executor::Executor;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::tenants::Tenants;

pub(crate) use view::{RunView, run_view};

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

/// What every request handler reads.
pub(crate) struct AppState {
    pub store: Arc<dyn RunStore>,
    /// Where submitted runs go to be queued.
    pub enqueuer: crate::enqueuer::Enqueuer,
    pub catalog: Arc<Catalog>,
    pub tenants: Option<Tenants>,
    pub live: Live,
    pub metrics: Arc<Metrics>,
    /// This process's workers, when it runs runs itself.
    pub executor: Option<Arc<Executor>>,
    /// Where this process's traces are kept, if it keeps them.
    pub trace_store: Option<std::path::PathBuf>,
}

/// Shared state.
pub(crate) type State = axum::extract::State<Arc<AppState>>;

/// Who asks: the tenant a bearer token names (`None` on a server without tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller(pub Option<String>);

impl Caller {
    /// Whether a run of `tenant` is this caller's to see.
    pub fn owns(&self, tenant: Option<&str>) -> bool {
        self.0.as_deref() == tenant || self.0.is_none()
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let Some(tenants) = &state.tenants else { return Ok(Caller(None)) };
        let header = match parts.headers.get(AUTHORIZATION) {
            Some(v) => Some(v.to_str().map_err(|_| Problem::unauthorized("the Authorization header is not text"))?),
            None => None,
        };
        tenants.authenticate(header).map(|t| Caller(Some(t)))
    }
}

/// Every route.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/events", get(events::stream))
        .route("/v1/runs/{id}/trace", get(runs::trace))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/graphs", get(meta::graphs))
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(crate::web::routes())
        .fallback(meta::not_found)
        .with_state(state)
}
