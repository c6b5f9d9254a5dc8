//! `/v1/runs`: submit, list, read, resume and cancel runs.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use operonx::Value;
use operonx_store::{Cancelled, Cursor, ListFilter, NewRun, RunStatus, RunSummary, StoreError, StoredRun};
use serde::Serialize;

use super::body::{self, pointer};
use super::view::summary_view;
use super::{AppState, Caller, RunView, State, run_view};
use crate::executor::CANCELLED_BY_REQUEST;
use crate::problem::Problem;

/// What `POST /v1/runs` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // read field by field, for errors that name the field; here for the schema
pub(crate) struct SubmitRun {
    /// The graph's name (see `GET /v1/graphs`).
    graph: String,
    /// The run's inputs.
    #[schema(value_type = Option<Object>)]
    inputs: Option<Value>,
    /// The scratch space the run starts with.
    #[schema(value_type = Option<Object>)]
    scratch: Option<Value>,
    /// Submitting twice with one key gives one run (per tenant).
    idempotency_key: Option<String>,
}

/// What `POST /v1/runs/{id}/resume` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // as SubmitRun
pub(crate) struct ResumeRun {
    /// Answers to the run's interrupts, by interrupt id.
    #[schema(value_type = Option<Object>)]
    answers: Option<Value>,
}

/// A run accepted (queued) or changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// The run id.
    run_id: String,
    /// Its status now.
    status: String,
    /// `false` when an earlier submission with the same idempotency key made the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<bool>,
}

/// A page of runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunPage {
    /// The runs, newest first.
    runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Longest idempotency key.
const MAX_KEY: usize = 256;

/// Run `f` on the store on a blocking thread (the store's clients block).
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn operonx_store::RunStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, Problem> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(|e| Problem::internal("the run store", &e))
}

/// `id` as a run id (a 404 when it cannot be one).
fn run_id(id: &str) -> Result<String, Problem> {
    if !operonx::is_request_id(id) {
        return Err(Problem::not_found(format!(
            "no run {id:?} (a run id is a lowercase UUID, or 32 lowercase hex digits)"
        )));
    }
    Ok(id.to_string())
}

/// The run `id` if it exists and is the caller's (else 404, as for no run at all).
async fn owned_run(state: &Arc<AppState>, caller: &Caller, id: &str) -> Result<StoredRun, Problem> {
    let run_id = run_id(id)?;
    let run = blocking(state, move |s| s.load(&run_id)).await?.map_err(|e| Problem::from_store(e, id))?;
    if !caller.owns(run.summary.tenant.as_deref()) {
        return Err(Problem::not_found(format!("no run {id}")));
    }
    Ok(run)
}

/// The summary of run `id` if it is the caller's.
pub(crate) async fn owned_summary(state: &Arc<AppState>, caller: &Caller, id: &str) -> Result<RunSummary, Problem> {
    let run_id = run_id(id)?;
    let summary = blocking(state, move |s| s.summary(&run_id)).await?.map_err(|e| Problem::from_store(e, id))?;
    if !caller.owns(summary.tenant.as_deref()) {
        return Err(Problem::not_found(format!("no run {id}")));
    }
    Ok(summary)
}

/// Submit a run of a graph.
#[utoipa::path(post, path = "/v1/runs", request_body = SubmitRun,
    params(("wait" = Option<bool>, Query, description = "Answer when the run stops, with the run")),
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 200, description = "The run, stopped (with wait=true)", body = RunView),
        (status = 400, description = "Malformed", body = Problem),
        (status = 401, description = "No or unknown token", body = Problem),
        (status = 404, description = "Unknown graph", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 422, description = "A field is wrong", body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    state: State,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let state = state.0;
    let q = body::query(raw.as_deref(), &["wait"])?;
    let wait = body::bool_param(&q, "wait")?;
    let mut body = body::object(&headers, body).await?;
    body::only(&body, &["graph", "inputs", "scratch", "idempotency_key"])?;
    let Some(graph) = body::string_field(&body, "graph")? else {
        return Err(Problem::invalid("/graph", "required: the name of a graph (see GET /v1/graphs)"));
    };
    let key = body::string_field(&body, "idempotency_key")?;
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_KEY) {
        return Err(Problem::invalid("/idempotency_key", format!("must be 1 to {MAX_KEY} characters")));
    }
    let inputs = body::object_field(&mut body, "inputs")?;
    let scratch = body::object_field(&mut body, "scratch")?;
    let Some(entry) = state.catalog.get(&graph) else {
        let mut p = Problem::not_found(format!("no graph {graph:?} (see GET /v1/graphs)"));
        p.pointer = Some("/graph".into());
        return Err(p);
    };
    let wf = &entry.workflow;
    if let Some(m) = wf.missing_inputs(&inputs).first() {
        return Err(Problem::invalid(pointer(&["inputs", &m.input]), format!("required (read by {})", m.op)));
    }
    let new = NewRun {
        run_id: operonx::new_request_id(),
        graph_name: entry.name.clone(),
        graph_path: Some(entry.path.display().to_string()),
        graph: wf.document().clone(),
        fingerprint: wf.fingerprint().to_string(),
        inputs,
        scratch,
        options: Default::default(),
        tenant: caller.0.clone(),
        idempotency_key: key,
    };
    let queued = state.enqueuer.enqueue(new).await.map_err(|e| Problem::internal("the run store", &e))?;
    if let Some(executor) = &state.executor {
        executor.wake();
    }
    if wait {
        let run = wait_until_stopped(&state, &caller, &queued.run_id).await?;
        return Ok(Json(run_view(&run)).into_response());
    }
    let accepted = Accepted { run_id: queued.run_id, status: "queued".into(), created: Some(queued.created) };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Wait until the run stops (ends, or waits for answers); the run then.
async fn wait_until_stopped(state: &Arc<AppState>, caller: &Caller, id: &str) -> Result<StoredRun, Problem> {
    let mut watch = state.live.subscribe();
    loop {
        let summary = owned_summary(state, caller, id).await?;
        if summary.status.stopped() {
            return owned_run(state, caller, id).await;
        }
        watch.changed(id, Duration::from_millis(500)).await;
    }
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/runs",
    params(
        ("status" = Option<String>, Query, description = "Only runs with this status"),
        ("graph" = Option<String>, Query, description = "Only runs of this graph"),
        ("limit" = Option<usize>, Query, description = "At most this many (1 to 1000, default 50)"),
        ("cursor" = Option<String>, Query, description = "The next_cursor of the previous page")),
    responses((status = 200, body = RunPage), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(state: State, caller: Caller, RawQuery(raw): RawQuery) -> Result<Json<RunPage>, Problem> {
    let q = body::query(raw.as_deref(), &["status", "graph", "limit", "cursor"])?;
    let status = match q.get("status").and_then(Value::as_str) {
        Some(s) => Some(s.parse::<RunStatus>().map_err(|e| Problem::bad_parameter("status", e))?),
        None => None,
    };
    let after = match q.get("cursor").and_then(Value::as_str) {
        Some(c) => Some(c.parse::<Cursor>().map_err(|e| Problem::bad_parameter("cursor", e))?),
        None => None,
    };
    let limit = body::number_param(&q, "limit", 1..=1000)?.unwrap_or(50);
    let filter = ListFilter {
        status,
        graph: q.get("graph").and_then(Value::as_str).map(str::to_string),
        limit,
        tenant: caller.0.clone(),
        after,
    };
    let runs =
        blocking(&state.0, move |s| s.list(&filter)).await?.map_err(|e| Problem::internal("the run store", &e))?;
    let next_cursor = (runs.len() == limit)
        .then(|| runs.last().map(|r| Cursor { created_at: r.created_at, run_id: r.run_id.clone() }.to_string()))
        .flatten();
    Ok(Json(RunPage { runs: runs.iter().map(summary_view).collect(), next_cursor }))
}

/// A run: its status, and its result once it stopped.
#[utoipa::path(get, path = "/v1/runs/{id}", params(("id" = String, Path, description = "The run id")),
    responses((status = 200, body = RunView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(state: State, caller: Caller, Path(id): Path<String>) -> Result<Json<RunView>, Problem> {
    Ok(Json(run_view(&owned_run(&state.0, &caller, &id).await?)))
}

/// Resume a stopped run (answers to its interrupts, if it waits for some): it goes back
/// on the queue and a worker continues it from its journal.
#[utoipa::path(post, path = "/v1/runs/{id}/resume", params(("id" = String, Path, description = "The run id")),
    request_body = ResumeRun,
    responses((status = 202, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "Running, queued or done", body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let state = state.0;
    let mut body = body::object(&headers, body).await?;
    body::only(&body, &["answers"])?;
    let answers = body::object_field(&mut body, "answers")?;
    let run = owned_run(&state, &caller, &id).await?;
    let status = run.summary.status;
    if !status.resumable() {
        return Err(Problem::conflict(format!("run {id} is {status}; only a stopped run can be resumed")));
    }
    for key in answers.keys() {
        if !run.pending.iter().any(|i| &i.id == key) {
            let pending: Vec<&str> = run.pending.iter().map(|i| i.id.as_str()).collect();
            let waits = if pending.is_empty() { "none".to_string() } else { pending.join(", ") };
            return Err(Problem::invalid(
                pointer(&["answers", key]),
                format!("the run waits for no such interrupt (it waits for: {waits})"),
            ));
        }
    }
    let run_id = id.clone();
    blocking(&state, move |s| s.requeue(&run_id, &answers)).await?.map_err(|e| Problem::from_store(e, &id))?;
    if let Some(executor) = &state.executor {
        executor.wake();
    }
    state.live.changed(&id);
    Ok((StatusCode::ACCEPTED, Json(Accepted { run_id: id, status: "queued".into(), created: None })).into_response())
}

/// Cancel a run: at once when it is queued or waiting, by its worker when it runs.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "Cancelled", body = Accepted),
        (status = 202, description = "Its worker was asked to stop it", body = Accepted),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "It had ended", body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(state: State, caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let state = state.0;
    owned_summary(&state, &caller, &id).await?;
    let run_id = id.clone();
    let done = blocking(&state, move |s| s.cancel(&run_id, CANCELLED_BY_REQUEST))
        .await?
        .map_err(|e| Problem::from_store(e, &id))?;
    state.live.changed(&id);
    match done {
        Cancelled::Now => Ok(Json(Accepted { run_id: id, status: "cancelled".into(), created: None }).into_response()),
        Cancelled::Requested => {
            if let Some(executor) = &state.executor {
                executor.cancel_local(&id, CANCELLED_BY_REQUEST);
            }
            let accepted = Accepted { run_id: id, status: "cancelling".into(), created: None };
            Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
        }
        Cancelled::AlreadyEnded(status) => Err(Problem::conflict(format!("run {id} has already ended ({status})"))),
    }
}

/// The trace of a run, as `operonx trace show` prints it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TraceView {
    /// The tree of spans.
    tree: String,
    /// The timeline.
    timeline: String,
    /// How many trace events there are.
    events: usize,
}

/// The run's trace as kept by this server (runs executed by workers on other machines
/// are traced there).
#[utoipa::path(get, path = "/v1/runs/{id}/trace", params(("id" = String, Path, description = "The run id")),
    responses((status = 200, body = TraceView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn trace(state: State, caller: Caller, Path(id): Path<String>) -> Result<Json<TraceView>, Problem> {
    let state = state.0;
    owned_summary(&state, &caller, &id).await?;
    let none = || Problem::not_found(format!("this server keeps no trace of run {id} (it ran elsewhere, or untraced)"));
    let Some(path) = state.trace_store.clone() else { return Err(none()) };
    let run_id = id.clone();
    let events = tokio::task::spawn_blocking(move || {
        operonx_trace::SqliteStore::open_existing(&path).and_then(|s| s.run_events(&run_id)).ok()
    })
    .await
    .map_err(|e| Problem::internal("the trace store", &e))?;
    let events = events.filter(|e| !e.is_empty()).ok_or_else(none)?;
    Ok(Json(TraceView {
        tree: operonx_trace::view::render_tree(&events, false),
        timeline: operonx_trace::view::render_timeline(&events, false),
        events: events.len(),
    }))
}
