//! What only the SQLite store has: many connections writing one file at once, private
//! files, and the ways a file can be unusable (not a database, newer, read-only), each
//! reported naming the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{new_run, op_entries};
use operonx_store::{
    Batch, ListFilter, RunEnd, RunStatus, RunStore, STORE_KEY_ENV, SqliteRunStore, StoreError, StoreKey,
};

/// Twenty threads, each with a connection of its own, open one fresh file together (and,
/// unless `OPERONX_STORE_KEY` is set, create its key file together) and create and write
/// a run each (50 batches): no error at all, nothing lost.
#[test]
fn twenty_connections_write_one_fresh_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/runs.db");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<String, StoreError> {
                barrier.wait();
                let store = SqliteRunStore::open(&path)?;
                let run = new_run("concurrent");
                let lease = store.create(&run, "owner", Duration::from_secs(60))?;
                for batch in 0..50 {
                    let entries = op_entries(batch * 4 + 1, 4);
                    store.append(&lease, &Batch { entries, ..Batch::default() })?;
                }
                let end = RunEnd {
                    status: RunStatus::Done,
                    result: None,
                    pending: Vec::new(),
                    scratch: Default::default(),
                    reason: None,
                    stats: None,
                };
                store.finish(&lease, &end)?;
                Ok(run.run_id)
            })
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    let store = SqliteRunStore::open(&path).unwrap();
    store.check().unwrap();
    let listed = store.list(&ListFilter { limit: 100, ..ListFilter::default() }).unwrap();
    assert_eq!(listed.len(), 20);
    for id in &ids {
        let run = store.load(id).unwrap();
        assert_eq!((run.entries.len(), run.summary.status), (200, RunStatus::Done));
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The folder is created 0700, the file and its WAL 0600; the journal is synced on
/// commit (WAL mode, synchronous = FULL).
#[cfg(unix)]
#[test]
fn files_are_private_and_commits_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/runs.db");
    let store = SqliteRunStore::open(&path).unwrap();
    store.create(&new_run("g"), "owner", Duration::from_secs(60)).unwrap();
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let wal = path.with_extension("db-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(store.path(), path);
    assert_eq!(store.location(), path.display().to_string());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(journal, "wal");
}

/// A file of random bytes where the database should be: open fails, naming the file.
#[test]
fn garbage_file_fails_to_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let mut bytes = Vec::new();
    while bytes.len() < 8192 {
        bytes.extend_from_slice(&common::random().to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteRunStore::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("not a database"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file is left as it was");
}

/// A store written by a newer build (higher schema version) is refused, naming the file.
#[test]
fn newer_schema_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    drop(SqliteRunStore::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteRunStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("version 99") && text.contains("newer"),
        "{text}"
    );
}

/// A folder that cannot be created (a file is in the way): a clear error naming it.
#[test]
fn uncreatable_folder_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), b"").unwrap();
    let path = dir.path().join("blocker/runs.db");
    let err = SqliteRunStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

/// Set in the environment of the child process [`read_only_file_is_reported`] starts when
/// it runs as root: the store to try, as an unprivileged user.
const READ_ONLY_ENV: &str = "OPERONX_TEST_READ_ONLY_STORE";

/// A database file the process may not write (mode 0444): opening or writing it fails,
/// naming the file. Root writes files whatever their mode, so as root the check runs in a
/// child process (this test binary again) as user `nobody`.
#[cfg(unix)]
#[test]
fn read_only_file_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let key = StoreKey::generate().unwrap();
    {
        let store = SqliteRunStore::open_with_key(&path, key.clone()).unwrap();
        store.create(&new_run("g"), "owner", Duration::from_secs(60)).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let privileged = std::fs::OpenOptions::new().write(true).open(&path).is_ok();
    if !privileged {
        expect_read_only_errors(&path, key);
        return;
    }
    // Root: the folder must be usable by the child (SQLite creates -wal and -shm there).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "read_only_child", "--nocapture", "--test-threads=1"])
        .env(READ_ONLY_ENV, &path)
        .env(STORE_KEY_ENV, key.to_hex())
        .uid(65534)
        .gid(65534)
        .output();
    match out {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "the child failed:\n{stdout}\n{stderr}");
            assert!(stdout.contains("1 passed"), "the child ran nothing:\n{stdout}\n{stderr}");
            eprintln!("as nobody: {}", stderr.trim());
        }
        // Cannot switch users here (no privilege to, or the binary is not reachable):
        // say so rather than pass silently.
        Err(e) => eprintln!("SKIPPED (running as root, cannot run the check as nobody: {e})"),
    }
}

/// The unprivileged half of [`read_only_file_is_reported`]; does nothing unless started
/// by it.
#[test]
fn read_only_child() {
    if let Some(path) = std::env::var_os(READ_ONLY_ENV) {
        let key = StoreKey::from_env_value(&std::env::var_os(STORE_KEY_ENV).unwrap()).unwrap();
        expect_read_only_errors(Path::new(&path), key);
    }
}

fn expect_read_only_errors(path: &Path, key: StoreKey) {
    let named = |e: &StoreError| {
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        eprintln!("read-only store reported as: {text}");
    };
    match SqliteRunStore::open_with_key(path, key) {
        Err(e) => named(&e),
        Ok(store) => {
            let err = store.create(&new_run("g"), "owner", Duration::from_secs(60)).unwrap_err();
            named(&err);
            let listed = store.list(&ListFilter::default()).unwrap();
            assert_eq!(listed.len(), 1, "reading still works");
            let lease = operonx_store::Lease {
                run_id: listed[0].run_id.clone(),
                owner: "owner".into(),
                epoch: 1,
                next_seq: 1,
                ttl: Duration::from_secs(60),
            };
            let err = store.append(&lease, &Batch { entries: op_entries(1, 2), ..Batch::default() }).unwrap_err();
            assert!(matches!(err, StoreError::Sqlite { .. }), "{err}");
            named(&err);
        }
    }
}
