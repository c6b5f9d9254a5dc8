//! Stopping a run from outside: Ctrl-C (SIGINT) and, on unix, SIGTERM (what containers,
//! systemd and CI send) both cancel the run through its [`StopHandle`]; the run then ends
//! as usual — its trace flushed and marked cancelled, the partial result printed — and
//! the exit status tells which signal it was (130 or 143).

use operonx::StopHandle;

/// The stop reason of a run interrupted with Ctrl-C (exit status 130).
pub(crate) const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// The stop reason of a run stopped by SIGTERM (exit status 143).
pub(crate) const TERMINATED: &str = "terminated (SIGTERM)";

/// Wait for the first Ctrl-C or SIGTERM; the stop reason it stands for
/// ([`INTERRUPTED`] or [`TERMINATED`]). Call inside the runtime.
pub(crate) async fn stopped() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { INTERRUPTED } else { std::future::pending().await },
                Some(()) = term.recv() => TERMINATED,
            },
            Err(e) => {
                eprintln!("warning: cannot watch for SIGTERM: {e}");
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

/// Wait for Ctrl-C (forever when it cannot be watched).
async fn ctrl_c() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => INTERRUPTED,
        Err(_) => std::future::pending().await,
    }
}

/// Cancel `stop` on the first Ctrl-C or SIGTERM. Call inside the runtime; abort the task
/// when the run is over.
pub(crate) fn watch(stop: StopHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { stop.cancel(stopped().await) })
}
