//! A run's status, as stored and listed.

use serde::{Deserialize, Serialize};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waits in the queue for a worker (`operonx serve`, `operonx worker`).
    Queued,
    /// Owned by a live process.
    Running,
    /// Waits for answers to its interrupts.
    Waiting,
    /// Ended with op failures.
    Failed,
    /// Cancelled (Ctrl-C, SIGTERM, a cancel request).
    Cancelled,
    /// Stopped by its timeout.
    TimedOut,
    /// Its process died while running it (never stored: read from a `running` row whose
    /// owner is gone or whose lease expired).
    Crashed,
    /// Ended with no failure.
    Done,
}

impl RunStatus {
    /// Every status, in the order they are listed.
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
        RunStatus::Crashed,
        RunStatus::Done,
    ];

    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Crashed => "crashed",
            RunStatus::Done => "done",
        }
    }

    /// Whether a run with this status has stopped: it ended, or waits for answers (it
    /// changes again only when resumed).
    pub fn stopped(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::Crashed)
    }

    /// Whether a run with this status can be resumed (a queued run waits for a worker
    /// instead).
    pub fn resumable(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::Done)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown run status {s:?} (one of {})", names.join(", "))
        })
    }
}
