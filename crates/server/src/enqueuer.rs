//! Submitted runs put on the queue in groups: one task takes the submissions waiting
//! while the previous group commits and queues them together
//! ([`RunStore::enqueue_many`], one transaction on Postgres), so a burst of submissions
//! costs a few commits instead of one each. A lone submission is queued at once.

use std::sync::Arc;

use operonx_store::{Enqueued, NewRun, RunStore};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// At most this many runs per group.
const GROUP: usize = 64;
/// Submissions waiting for the task, at most (beyond, submitting waits).
const BACKLOG: usize = 1024;

/// What queuing a run came to: the run queued (or the one its idempotency key names),
/// or why not, said as text (a failed group fails each of its runs with the same error).
pub type Fared = Result<Enqueued, String>;

type Job = (NewRun, oneshot::Sender<Fared>);

/// The submissions' way to the queue (see the module documentation).
#[derive(Debug, Clone)]
pub struct Enqueuer {
    jobs: mpsc::Sender<Job>,
}

impl Enqueuer {
    /// The task that queues submissions into `store`, owned by `tasks` (it ends once
    /// every [`Enqueuer`] is dropped, or with `tasks`).
    pub fn start(store: Arc<dyn RunStore>, tasks: &mut JoinSet<()>) -> Self {
        let (jobs, rx) = mpsc::channel(BACKLOG);
        tasks.spawn(queue_groups(store, rx));
        Enqueuer { jobs }
    }

    /// Queue `run`; `Err` with why when it was not (the store failed, or the server is
    /// stopping).
    pub async fn enqueue(&self, run: NewRun) -> Fared {
        let (done, fared) = oneshot::channel();
        self.jobs.send((run, done)).await.map_err(|_| "the server is stopping".to_string())?;
        fared.await.map_err(|_| "the server is stopping".to_string())?
    }
}

async fn queue_groups(store: Arc<dyn RunStore>, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut group, GROUP).await > 0 {
        let (runs, waiting): (Vec<NewRun>, Vec<oneshot::Sender<Fared>>) = group.drain(..).unzip();
        let store = store.clone();
        let fared = match tokio::task::spawn_blocking(move || store.enqueue_many(&runs)).await {
            Ok(Ok(fared)) => fared.into_iter().map(|f| f.map_err(|e| e.to_string())).collect(),
            Ok(Err(e)) => vec![Err(e.to_string()); waiting.len()],
            Err(e) => vec![Err(e.to_string()); waiting.len()],
        };
        for (done, fared) in waiting.into_iter().zip(fared) {
            // The submitter may have gone (its request was dropped): nothing to tell.
            let _ = done.send(fared);
        }
    }
}
