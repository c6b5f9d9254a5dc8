//! Which process writes a run, so a run left `running` by a process that was killed
//! (SIGKILL, a crash, a power cut) reads as [`RunStatus::Crashed`] instead of running
//! forever.
//!
//! Why a process identity and not a heartbeat: a heartbeat needs a write every few
//! seconds for every running run, even one that waits an hour on a model, and still
//! calls a live run crashed when its machine sleeps or its disk stalls past the lease. A
//! process identity costs one column written with the run's batches and one check when a
//! `running` run is read, and its answer does not depend on timing. The identity is the
//! host name, the kernel's boot id and the process id with the process's start time
//! (Linux: `/proc`), so a reboot or a pid taken over by a later process is not mistaken
//! for the writer. A run is called crashed only when this can be known: written on this
//! host and its writer no longer exists. A run written on another host (a shared
//! folder) or whose writer's liveness cannot be checked here stays `running`.
//!
//! [`RunStatus::Crashed`]: crate::RunStatus::Crashed

use serde::{Deserialize, Serialize};

/// A process that writes runs to the store, as kept in the `runs.writer` column (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// The host name.
    host: String,
    /// The kernel's boot id (Linux), changed by a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot: Option<String>,
    /// The process id.
    pid: u32,
    /// The process's start time in clock ticks since boot (Linux), telling a reused pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<u64>,
}

impl Writer {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self { host: host_name(), boot: boot_id(), pid, start: start_time(pid) }
    }

    /// The stored form.
    pub fn to_column(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the run's writer, as stored, is known to be gone: it ran on this host and
    /// either the machine rebooted since or the process no longer exists (or its pid now
    /// belongs to a process started later). `false` when that cannot be told.
    pub fn is_gone(column: &str) -> bool {
        let Ok(writer) = serde_json::from_str::<Writer>(column) else { return false };
        writer.gone_from(&Self::current())
    }

    fn gone_from(&self, here: &Writer) -> bool {
        if self.host != here.host || self.host.is_empty() {
            return false;
        }
        if let (Some(then), Some(now)) = (&self.boot, &here.boot)
            && then != now
        {
            return true;
        }
        if self.pid == here.pid {
            return self.start.is_some() && here.start.is_some() && self.start != here.start;
        }
        match alive(self.pid) {
            Some(false) => true,
            Some(true) => self.start.zip(start_time(self.pid)).is_some_and(|(then, now)| then != now),
            None => false,
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn host_name() -> String {
    if let Some(h) = read_trimmed("/proc/sys/kernel/hostname") {
        return h;
    }
    #[cfg(unix)]
    {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_default()
    }
}

fn boot_id() -> Option<String> {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// Field 22 of `/proc/PID/stat` (after the parenthesized command name, which may hold
/// spaces and parentheses: read from the last `)`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and has not ended (a zombie, killed but not yet reaped
/// by its parent, has ended). `None`: cannot tell here.
fn alive(pid: u32) -> Option<bool> {
    if std::path::Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Some(false) };
        let state = stat.rfind(')').and_then(|end| stat[end + 1..].split_whitespace().next());
        return Some(!matches!(state, Some("Z" | "X" | "x")));
    }
    #[cfg(unix)]
    {
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
        match rustix::process::test_kill_process(pid) {
            Ok(()) => Some(true),
            Err(e) if e == rustix::io::Errno::PERM => Some(true),
            Err(e) if e == rustix::io::Errno::SRCH => Some(false),
            Err(_) => None,
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_gone() {
        let me = Writer::current();
        assert!(!Writer::is_gone(&me.to_column()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Writer { pid, start: None, ..me.clone() };
        #[cfg(unix)]
        assert!(Writer::is_gone(&dead.to_column()), "{dead:?}");
        let elsewhere = Writer { host: "another-host".into(), ..dead.clone() };
        assert!(!Writer::is_gone(&elsewhere.to_column()), "another host: cannot tell");
        assert!(!Writer::is_gone("not json"));
    }

    #[test]
    fn a_reboot_or_a_reused_pid_means_gone() {
        let me = Writer::current();
        if me.boot.is_some() {
            let before_reboot = Writer { boot: Some("another-boot".into()), ..me.clone() };
            assert!(Writer::is_gone(&before_reboot.to_column()));
        }
        if let Some(start) = me.start {
            let earlier_owner_of_my_pid = Writer { start: Some(start.wrapping_add(1)), ..me.clone() };
            assert!(Writer::is_gone(&earlier_owner_of_my_pid.to_column()));
        }
    }
}
