//! Notifications from other processes (Postgres `LISTEN`): new work wakes the workers,
//! new events wake the streams, a cancel request stops the run here. One thread, owned
//! by the server or worker, stopped with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use operonx_store::{Notice, RunStore, StoreError};

use crate::executor::{CANCELLED_BY_REQUEST, Executor};
use crate::live::Live;

/// How long one wait for notifications lasts (how soon the thread sees it must stop).
const WAIT: Duration = Duration::from_millis(500);

/// The notification thread.
pub(crate) struct Waker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Waker {
    /// Start listening to `store`'s notifications.
    pub(crate) fn start(
        store: Arc<dyn RunStore>,
        live: Live,
        executor: Option<Arc<Executor>>,
    ) -> Result<Self, StoreError> {
        let mut waiter = store.waiter()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("operonx-waker".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    match waiter.wait(WAIT) {
                        Ok(notices) => {
                            for notice in notices {
                                match notice {
                                    Notice::Work => {
                                        if let Some(e) = &executor {
                                            e.wake();
                                        }
                                    }
                                    Notice::Events(run_id) => live.changed(&run_id),
                                    Notice::Cancel(run_id) => {
                                        if let Some(e) = &executor {
                                            e.cancel_local(&run_id, CANCELLED_BY_REQUEST);
                                        }
                                        live.changed(&run_id);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!("run store notifications: {e}; polling instead");
                            std::thread::sleep(WAIT);
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Writer { store: store.location().to_string(), message: e.to_string() })?;
        Ok(Waker { stop, thread: Some(thread) })
    }

    /// Stop the thread and wait for it.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
