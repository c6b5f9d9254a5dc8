//! `GET /v1/runs/{id}/events`: the run's events as a server-sent event stream, read from
//! the store (so any server process can serve any run's stream, also after a restart).
//!
//! Each event is one `data:` line holding the JSON line `operonx run --stream` prints for
//! it (`output`, `failure`, `frame`, `interrupt`, `stopped`, and last `result`), with
//! `id: <seq>`. A client reconnecting with `Last-Event-ID: N` gets the events after N.
//! The stream ends once the run has stopped (ended, or waits for answers) and every
//! event it stored was sent; a resumed run's events go on from the next seq.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use operonx::graph::backoff::Backoff;
use operonx_store::StoredEvent;

use super::runs::{blocking, owned_summary};
use super::{AppState, Caller, State};
use crate::live::Watch;
use crate::problem::Problem;

/// Events read from the store at once.
const PAGE: usize = 256;
/// Longest wait between two looks at the store while the run goes (a wake-up from this
/// process comes sooner).
const POLL: Duration = Duration::from_millis(250);
/// After a wake-up found nothing new (events are announced before their group is
/// committed), the store is looked at again 2 ms later, then twice as late each time
/// while that is sooner than [`POLL`].
const SOON: Backoff = Backoff::doubling(Duration::from_millis(2), POLL);

/// Where one stream is.
struct Follow {
    state: Arc<AppState>,
    run_id: String,
    after: u64,
    buffered: VecDeque<StoredEvent>,
    watch: Watch,
    done: bool,
    /// How many times the store was looked at again ([`SOON`]) since a wake-up found
    /// nothing (`None`: wait to be woken).
    soon: Option<u32>,
}

impl Follow {
    /// The next event, `None` at the end of the stream.
    async fn next(&mut self) -> Option<StoredEvent> {
        loop {
            if let Some(ev) = self.buffered.pop_front() {
                self.after = ev.seq;
                self.soon = None;
                return Some(ev);
            }
            if self.done {
                return None;
            }
            // The status first: a run seen stopped has stored all its events by then.
            let id = self.run_id.clone();
            let summary = match blocking(&self.state, move |s| s.summary(&id)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::error!("run {}: events: {e}", self.run_id);
                    return None;
                }
                Err(_) => return None,
            };
            let (id, after) = (self.run_id.clone(), self.after);
            match blocking(&self.state, move |s| s.events(&id, after, PAGE)).await {
                Ok(Ok(events)) if !events.is_empty() => {
                    self.buffered.extend(events);
                    continue;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!("run {}: events: {e}", self.run_id);
                    return None;
                }
                Err(_) => return None,
            }
            if summary.status.stopped() {
                self.done = true;
                continue;
            }
            let wait = self.soon.map_or(POLL, |n| SOON.delay(n));
            let woken = self.watch.changed(&self.run_id, wait).await;
            self.soon = match (woken, self.soon) {
                (true, _) => Some(0),
                (false, Some(n)) if SOON.delay(n + 1) < POLL => Some(n + 1),
                (false, _) => None,
            };
        }
    }
}

/// The run's events, live.
#[utoipa::path(get, path = "/v1/runs/{id}/events", params(("id" = String, Path, description = "The run id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Continue after this event")),
    responses((status = 200, description = "text/event-stream of the run's events", content_type = "text/event-stream"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn stream(
    state: State,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let state = state.0;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
            Problem::bad_request("Last-Event-ID must be the id of an event of this stream (a whole number)")
        })?,
    };
    // Subscribed before the first read, so nothing that changes after it is missed.
    let watch = state.live.subscribe();
    owned_summary(&state, &caller, &id).await?;
    let follow = Follow { state, run_id: id, after, buffered: VecDeque::new(), watch, done: false, soon: None };
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        let ev = follow.next().await?;
        let data = serde_json::to_string(&ev.event).unwrap_or_default();
        Some((Ok(Event::default().id(ev.seq.to_string()).data(data)), follow))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
