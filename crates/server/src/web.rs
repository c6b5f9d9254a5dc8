//! The web view: `GET /` (the runs list) and `GET /runs/{id}` (a run's tree, timeline,
//! live events and a form to answer its questions). Plain HTML, CSS and JavaScript built
//! into the binary: no CDN, works offline. The pages call the API like any client (with
//! the token the page asks for once, when the server has tokens).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page of the runs list.
const INDEX: &str = include_str!("../assets/index.html");
/// The page of one run.
const RUN: &str = include_str!("../assets/run.html");
/// The pages' script.
const APP_JS: &str = include_str!("../assets/app.js");
/// The pages' style.
const STYLE: &str = include_str!("../assets/style.css");

/// The web view's routes.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/runs/{id}", get(|| async { asset(RUN, "text/html; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/assets/style.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"),
    );
    response
}
