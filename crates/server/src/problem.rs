//! Errors as answered to a client: RFC 9457 problem details
//! (`application/problem+json`), naming the field at fault with a JSON pointer.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use operonx_store::StoreError;
use serde::Serialize;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// A JSON pointer into the request body (`/inputs/question`), or `?name` for a query
    /// parameter.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

/// A problem details document (RFC 9457).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` with the status's title).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's short title.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// The field at fault, when one is (the first of `errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Every field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            pointer: None,
            errors: Vec::new(),
        }
    }

    /// 400: the request cannot be read (malformed JSON, a bad header or parameter).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the run is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422 at `pointer`: the request is well-formed but a field is wrong.
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let (pointer, detail) = (pointer.into(), detail.into());
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{pointer}: {detail}"));
        p.pointer = Some(pointer.clone());
        p.errors.push(FieldError { pointer, detail });
        p
    }

    /// 400 for a query parameter `name`.
    pub fn bad_parameter(name: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::bad_request(format!("query parameter {name}: {detail}"));
        p.pointer = Some(format!("?{name}"));
        p.errors.push(FieldError { pointer: format!("?{name}"), detail });
        p
    }

    /// 401: no token, or one that is not known.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than {limit} bytes"))
    }

    /// 500 or 503 for a failure of ours (the store), logged; the client gets no details
    /// beyond what failed.
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what}: {error}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("{what} failed; try again (see the server's log)"))
    }

    /// The problem a store error is for a request about run `run_id`.
    pub fn from_store(e: StoreError, run_id: &str) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(format!("no run {run_id}")),
            StoreError::Busy { .. } => Self::conflict(format!("run {run_id} is running")),
            StoreError::Finished { .. } => Self::conflict(format!("run {run_id} is done; there is nothing to resume")),
            other => Self::internal("the run store", &other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
