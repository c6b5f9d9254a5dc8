//! Stopping a run from outside: Ctrl-C (SIGINT) and, on unix, SIGTERM (what containers,
//! systemd and CI send) both cancel the run through its [`StopHandle`]; the run then ends
//! as usual — its trace flushed and marked cancelled, the partial result printed — and
//! the exit status tells which signal it was (130 or 143).

use operonx::StopHandle;

/// The stop reason of a run interrupted with Ctrl-C (exit status 130).
pub(crate) const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// The stop reason of a run stopped by SIGTERM (exit status 143).
pub(crate) const TERMINATED: &str = "terminated (SIGTERM)";

/// Cancel `stop` on the first Ctrl-C or SIGTERM. Call inside the runtime; abort the task
/// when the run is over.
pub(crate) fn watch(stop: StopHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    r = tokio::signal::ctrl_c() => if r.is_ok() { stop.cancel(INTERRUPTED) },
                    Some(()) = term.recv() => stop.cancel(TERMINATED),
                },
                Err(e) => {
                    eprintln!("warning: cannot watch for SIGTERM: {e}");
                    if tokio::signal::ctrl_c().await.is_ok() {
                        stop.cancel(INTERRUPTED);
                    }
                }
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel(INTERRUPTED);
        }
    })
}
