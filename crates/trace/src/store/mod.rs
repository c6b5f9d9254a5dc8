//! The embedded trace store: a SQLite database (WAL mode) with a `runs` table maintained
//! from events and a `batches` table holding the events (each exported batch: its runs'
//! events as JSON lines, run after run; a run's row lists where its lines are), the
//! default destination of traces. It is an [`Exporter`] and the reader behind
//! `operonx trace`.

mod codec;
mod migrate;
mod read;
mod write;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use operonx_runtime::TraceEvent;
use rusqlite::{Connection, OpenFlags};

use crate::blocking::run_blocking;
use crate::error::StoreError;
use crate::export::{ExportError, Exporter};
use crate::recorded::{EventView, RecordedEvent};

/// Where the store lives by default, relative to the working directory.
pub const DEFAULT_STORE_PATH: &str = ".operonx/traces.db";

/// Page cache of a connection, in KiB (SQLite reads negative sizes as KiB).
const STORE_CACHE_KIB: i64 = -32 * 1024;

/// WAL pages after which a commit checkpoints (SQLite's default is 1000).
const WAL_CHECKPOINT_PAGES: i64 = 4000;

/// The schema version this build reads and writes (`PRAGMA user_version`). Version 1
/// stored a row per event (migrated into `chunks` on open); version 2 a `chunks` row per
/// run and batch (still read; the runs table gains `segments` on open); version 3 had no
/// `writer` column (added on open).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    request_id      TEXT PRIMARY KEY,
    graph           TEXT,
    started_at      TEXT,
    ended_at        TEXT,
    status          TEXT NOT NULL DEFAULT 'running',
    duration_ms     REAL,
    op_count        INTEGER NOT NULL DEFAULT 0,
    error_count     INTEGER NOT NULL DEFAULT 0,
    cancelled_count INTEGER NOT NULL DEFAULT 0,
    interrupted_count INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    event_count     INTEGER NOT NULL DEFAULT 0,
    dropped_events  INTEGER NOT NULL DEFAULT 0,
    -- Where the run's lines are: `batch:offset:length:first_ts` entries, `;`-separated
    -- (a byte range of a batch's data; times count from first_ts, see codec.rs).
    segments        TEXT NOT NULL DEFAULT '',
    -- The process that last wrote the run (JSON, see writer.rs): a `running` run whose
    -- writer is gone reads as `crashed`.
    writer          TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
-- Version 2's events: one run's lines per row. Read, no longer written.
CREATE TABLE IF NOT EXISTS chunks (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT NOT NULL,
    first_ts    INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    data        BLOB NOT NULL,
    UNIQUE (request_id, first_ts, first_seq)
);
CREATE TABLE IF NOT EXISTS batches (
    id            INTEGER PRIMARY KEY,
    -- The batch's first and last events (run, microseconds since the epoch, seq) and its
    -- size: a batch exported twice (a retry after a timeout) is stored once, while a
    -- resumed run (same request id, seq counted from 0 again, later timestamps) is
    -- stored again.
    first_request TEXT NOT NULL,
    first_ts      INTEGER NOT NULL,
    first_seq     INTEGER NOT NULL,
    last_request  TEXT NOT NULL,
    last_ts       INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL,
    event_count   INTEGER NOT NULL,
    -- The events, one per line, run after run (see codec.rs).
    data          BLOB NOT NULL,
    UNIQUE (first_request, first_ts, first_seq, last_request, last_ts, last_seq, event_count)
);
";

/// Create the private directory and empty private file of a database at `path`, unless
/// they exist, before SQLite opens it (SQLite gives its side files the file's mode).
pub(crate) fn create_private_db(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
    }
    crate::private::create_file(path).map_err(|source| StoreError::CreateFile { path: path.to_path_buf(), source })
}

/// A database left readable by others (not ours to change): say so, go on.
pub(crate) fn not_private(path: &Path, e: &std::io::Error) {
    tracing::warn!("cannot make {} private (mode 0600): {e}", path.display());
}

/// A handle to a trace store (cheap to clone; clones share the connection).
///
/// Writes are idempotent per batch: a batch exported twice (a retry after a timeout) is
/// stored and counted once, while a resumed run (same request id, event ids counted from 0
/// again, later timestamps) is stored in full.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// This process, as stored with the runs it writes.
    writer: Arc<str>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// [`DEFAULT_STORE_PATH`] under the current working directory.
    pub fn default_path() -> PathBuf {
        std::env::current_dir().unwrap_or_default().join(DEFAULT_STORE_PATH)
    }

    /// Open (creating it and its directory if needed) the store at [`Self::default_path`].
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(Self::default_path())
    }

    /// Open the store at `path`, creating the file and its parent directory if needed.
    /// Both are private (see [`crate::private`]): the file and its `-wal` and `-shm`
    /// files `0600`, a directory created here `0700`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private_db(&path)?;
        let store = Self::connect(path, OpenFlags::default())?;
        crate::private::restrict_sqlite(&store.path).unwrap_or_else(|e| not_private(&store.path, &e));
        Ok(store)
    }

    /// Open an existing store (for reading traces: nothing is created). Fails with
    /// [`StoreError::Missing`] if there is none at `path`.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(StoreError::Missing(path));
        }
        Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
    }

    /// How many trace events run `run_id` recorded in the store at `path` (0 when there is
    /// no store or no such run): where a resumed run's trace goes on from.
    pub fn recorded_events(path: impl AsRef<Path>, run_id: &str) -> u64 {
        let Ok(store) = Self::open_existing(path) else { return 0 };
        store.run_events(run_id).map_or(0, |events| u64::try_from(events.len()).unwrap_or(u64::MAX))
    }

    /// Open and bring up to date, safely while other processes do the same (see
    /// [`crate::sqlite`]): the version check and migration run in one `BEGIN IMMEDIATE`
    /// transaction, so one process migrates and the others then see the new version.
    fn connect(path: PathBuf, flags: OpenFlags) -> Result<Self, StoreError> {
        // Batches touch the newest pages of the tables and their indexes: keep them cached
        // (KiB when negative) and checkpoint the WAL less often, in bigger steps.
        let pragmas = [("cache_size", STORE_CACHE_KIB), ("wal_autocheckpoint", WAL_CHECKPOINT_PAGES)];
        let conn = crate::sqlite::open_shared(&path, flags, &pragmas, &|tx| migrate(tx, &path))?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path, writer: writer::Writer::current().to_column().into() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Store a batch of events (of one or more runs, each run's in `(timestamp, seq)`
    /// order) and update their runs' summaries, in one transaction. Returns how many
    /// events were new.
    pub fn write<E: EventView>(&self, events: &[E]) -> Result<usize, StoreError> {
        write::insert(&mut self.conn(), events, &self.writer)
    }

    /// [`SqliteStore::write`] on a blocking thread, as an export.
    fn export_blocking<E: EventView + Send + Sync + 'static>(
        &self,
        batch: Arc<Vec<E>>,
    ) -> BoxFuture<'_, Result<(), ExportError>> {
        let store = self.clone();
        Box::pin(async move {
            let written = run_blocking(move || store.write(&batch)).await?;
            written.map(drop).map_err(export_error)
        })
    }
}

/// Check the schema version and bring an older store up to date, inside the caller's
/// exclusive transaction.
fn migrate(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Version {
            what: "trace store",
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(open_err)?;
        if version == 1 {
            migrate::events_to_chunks(tx)?;
        }
        migrate::add_segments(tx)?;
        migrate::add_writer(tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(open_err)?;
    }
    Ok(())
}

/// Whether a failed write is worth retrying.
/// A failed store write as an export failure: the store's message, caused by SQLite's
/// own error when SQLite failed.
fn export_error(e: StoreError) -> ExportError {
    let message = e.to_string();
    let error = if retryable(&e) { ExportError::retryable(message) } else { ExportError::fatal(message) };
    match e {
        StoreError::Sqlite(sqlite) => error.with_source(sqlite),
        other => error.with_source(other),
    }
}

fn retryable(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure};
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            matches!(f.code, DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure)
        }
        _ => false,
    }
}

impl Exporter for SqliteStore {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn export<'a>(&'a self, batch: &'a [TraceEvent]) -> BoxFuture<'a, Result<(), ExportError>> {
        self.export_shared(Arc::new(batch.to_vec()))
    }

    /// Serializes and writes the batch on a blocking thread, keeping the shared batch
    /// (no copy).
    fn export_shared(&self, batch: Arc<Vec<TraceEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        self.export_blocking(batch)
    }

    fn takes_recorded(&self) -> bool {
        true
    }

    /// Events the scheduler recorded are serialized straight to their stored text.
    fn export_recorded(&self, batch: Arc<Vec<RecordedEvent>>) -> BoxFuture<'_, Result<(), ExportError>> {
        self.export_blocking(batch)
    }
}
