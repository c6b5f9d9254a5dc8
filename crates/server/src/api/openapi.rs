//! `GET /openapi.json`: the API's OpenAPI document, generated from the handlers'
//! annotations (utoipa), so it says what the server does.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{events, meta, runs, view};
use crate::problem::{FieldError, Problem};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "operonx", description = "Runs of Operon workflows: submit, follow live, answer, cancel."),
    paths(runs::create, runs::list, runs::get, runs::resume, runs::cancel, runs::trace, events::stream,
        meta::graphs, meta::healthz, meta::metrics),
    components(schemas(runs::SubmitRun, runs::ResumeRun, runs::Accepted, runs::RunPage, runs::TraceView,
        view::RunView, view::PendingView, meta::GraphList, meta::GraphView, meta::Health, Problem, FieldError)),
    modifiers(&Bearer)
)]
pub(crate) struct ApiDoc;

/// Declares the bearer token scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
