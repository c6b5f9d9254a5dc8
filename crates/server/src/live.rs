//! Wake-ups inside one server process: "run X changed" (new events, a new status), so
//! streams and waiting requests read the store again at once instead of at their next
//! poll. The store stays the one source of what happened; a lost wake-up only delays a
//! reader until its poll.

use tokio::sync::broadcast;

/// How many wake-ups a slow reader may miss before it is told it lagged (it then reads
/// the store anyway).
const CAPACITY: usize = 4096;

/// The process's wake-up channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Live {
    tx: broadcast::Sender<String>,
}

impl Default for Live {
    fn default() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl Live {
    /// Say that run `run_id` changed.
    pub fn changed(&self, run_id: &str) {
        // No receiver is no one waiting: nothing to do.
        let _ = self.tx.send(run_id.to_string());
    }

    /// Wait for changes from now on.
    pub fn subscribe(&self) -> Watch {
        Watch { rx: self.tx.subscribe() }
    }
}

/// One reader's view of [`Live`].
#[derive(Debug)]
pub struct Watch {
    rx: broadcast::Receiver<String>,
}

impl Watch {
    /// Wait until run `run_id` changes (or wake-ups were missed), at most `timeout`;
    /// whether it changed (`false`: the time ran out).
    pub async fn changed(&mut self, run_id: &str, timeout: std::time::Duration) -> bool {
        let wait = async {
            loop {
                match self.rx.recv().await {
                    Ok(id) if id == run_id => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}
