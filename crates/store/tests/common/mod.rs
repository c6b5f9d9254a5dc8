//! What the store tests share: a store of each backend with a raw way into its database,
//! and runs, entries and owners to put in it. Stores are opened with a key given to
//! them (never `OPERONX_STORE_KEY`, never a key file in the home folder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::hash::{BuildHasher, Hasher};
#[cfg(feature = "postgres")]
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use operonx_store::{Entry, EntryKind, NewRun, RunStore, SqliteRunStore, StoreKey};
use serde_json::{Map, Value, json};

/// A lease that does not expire during a test.
pub const LONG: Duration = Duration::from_secs(60);
/// A lease that expires at once (a crashed run).
pub const TINY: Duration = Duration::from_millis(50);

/// Each test function, as a test of each backend: `store` functions take a
/// `&dyn RunStore`, `harness` functions the [`Harness`].
#[allow(unused_macros)] // used by store.rs and group.rs, not by every test binary
macro_rules! suite {
    (store: [$($s:ident),* $(,)?], harness: [$($h:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(#[test] fn $s() { super::$s(super::Harness::sqlite().store.as_ref()); })*
            $(#[test] fn $h() { super::$h(&super::Harness::sqlite()); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $s() { if let Some(h) = super::Harness::postgres() { super::$s(h.store.as_ref()); } })*
            $(#[test] fn $h() { if let Some(h) = super::Harness::postgres() { super::$h(&h); } })*
        }
    };
}

/// A store under test, and how to reach its tables directly.
pub struct Harness {
    /// The store.
    pub store: Box<dyn RunStore>,
    /// The key it was opened with.
    pub key: StoreKey,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

/// Where a harness's database is.
pub enum Raw {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(PgSchema),
}

/// A fresh schema on the test server, dropped (with what it holds) at the end.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    /// The URL of the server with this schema first on the search path.
    pub url: String,
    admin: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// A new schema, or `None` (the test is skipped, loudly) when no server answers and
    /// `OPERONX_REQUIRE_POSTGRES` is not `1`.
    pub fn new() -> Option<PgSchema> {
        let admin = postgres_url();
        let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                let shown = operonx_store::redact_url(&admin);
                if std::env::var("OPERONX_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("OPERONX_REQUIRE_POSTGRES=1 but no Postgres at {shown}: {}", chain(&e));
                }
                // Straight to the process's stderr, past the test harness's capture: a
                // skipped backend must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: no Postgres at {shown} ({}); set OPERONX_TEST_POSTGRES_URL to test one",
                    chain(&e)
                );
                return None;
            }
        };
        let name = format!("operonx_t_{:016x}", random());
        client.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let url = with_param(&admin, &format!("options=-csearch_path%3D{name}"));
        Some(PgSchema { url, admin, name })
    }
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)));
        if let Err(e) = dropped {
            eprintln!("cannot drop test schema {}: {}", self.name, chain(&e));
        }
    }
}

impl Harness {
    /// A fresh SQLite store in a temporary folder.
    pub fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let key = StoreKey::generate().unwrap();
        let store = SqliteRunStore::open_with_key(&path, key.clone()).unwrap();
        Harness { store: Box::new(store), key, raw: Raw::Sqlite(path), _dir: Some(dir) }
    }

    /// A fresh Postgres store in a schema of its own, or `None` (see [`PgSchema::new`]).
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Option<Harness> {
        let schema = PgSchema::new()?;
        let key = StoreKey::generate().unwrap();
        let store = operonx_store::PostgresStore::connect_with_key(&schema.url, key.clone()).unwrap();
        Some(Harness { store: Box::new(store), key, raw: Raw::Postgres(schema), _dir: None })
    }

    /// Another store on the same database, with a connection of its own (as another
    /// process would have).
    pub fn reopen(&self) -> Box<dyn RunStore> {
        self.reopen_with(self.key.clone()).unwrap()
    }

    /// Another store on the same database, opened with `key`.
    pub fn reopen_with(&self, key: StoreKey) -> Result<Box<dyn RunStore>, operonx_store::StoreError> {
        Ok(match &self.raw {
            Raw::Sqlite(path) => Box::new(SqliteRunStore::open_with_key(path, key)?),
            #[cfg(feature = "postgres")]
            Raw::Postgres(schema) => Box::new(operonx_store::PostgresStore::connect_with_key(&schema.url, key)?),
        })
    }

    /// Where the database is.
    pub fn database(&self) -> &Raw {
        &self.raw
    }

    /// Run `sql` on the database directly; `{runs}`, `{journal}` and `{events}` stand for
    /// the tables.
    pub fn raw(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(path) => {
                let sql = sql.replace("{runs}", "runs").replace("{journal}", "journal").replace("{events}", "events");
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(&sql).unwrap();
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres(schema) => {
                let sql = sql
                    .replace("{runs}", "operonx_runs")
                    .replace("{journal}", "operonx_journal")
                    .replace("{events}", "operonx_events");
                let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
                client.batch_execute(&sql).unwrap();
            }
        }
    }
}

impl Harness {
    /// Every stored byte of the database, as text: the SQLite file and its WAL (lossy
    /// UTF-8); on Postgres every row of every table of the store, byte columns with their
    /// printable bytes as they are (`encode(.., 'escape')`).
    pub fn raw_text(&self) -> String {
        match &self.raw {
            Raw::Sqlite(path) => {
                let mut out = String::new();
                for suffix in ["", "-wal"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    if let Ok(bytes) = std::fs::read(&name) {
                        out.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                out
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres(schema) => {
                let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
                let mut out = String::new();
                for sql in [
                    "SELECT t::text FROM operonx_runs t",
                    "SELECT t::text FROM operonx_store_meta t",
                    "SELECT encode(body, 'escape') FROM operonx_journal",
                    "SELECT encode(body, 'escape') FROM operonx_events",
                ] {
                    for r in client.query(sql, &[]).unwrap() {
                        out.push_str(&r.get::<_, String>(0));
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

/// An error with its sources, `: `-separated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The test server: `OPERONX_TEST_POSTGRES_URL`, or the local one.
pub fn postgres_url() -> String {
    std::env::var("OPERONX_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with the query parameter `param` (`key=value`, encoded) added.
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// A random number (from the standard library's randomly seeded hasher).
pub fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A fresh run id (32 hex digits).
pub fn run_id() -> String {
    format!("{:016x}{:016x}", random(), random())
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A new run of graph `graph` (keys deliberately not in sorted order).
pub fn new_run(graph: &str) -> NewRun {
    NewRun {
        run_id: run_id(),
        graph_name: graph.into(),
        graph_path: Some(format!("graphs/{graph}.json")),
        graph: json!({"name": graph, "ops": [{"z": 1, "a": 2}], "version": 1}),
        fingerprint: "f00d".repeat(16),
        inputs: object(json!({"zeta": "last first", "alpha": [1, 2.5, null], "ünï": "cödé"})),
        scratch: object(json!({"count": 0})),
        options: object(json!({"timeout_ms": 5000, "fail_fast": true})),
        ..NewRun::default()
    }
}

/// An op entry whose body is JSON text with odd spacing and key order (kept as is).
pub fn op_entry(seq: i64) -> Entry {
    Entry {
        seq,
        kind: EntryKind::Op,
        key: format!("main.step{seq}@[]"),
        index: None,
        body: format!("{{\"z\": {seq},  \"a\":[1, 2 ,3], \"s\":\"é\\u00e9\\n\"}}"),
    }
}

/// Entries `from..from+n` (op entries).
pub fn op_entries(from: i64, n: i64) -> Vec<Entry> {
    (from..from + n).map(op_entry).collect()
}

/// The owner column of a process that has ended (on this host), as
/// `ProcessIdentity::current().to_column()` writes it for a live one.
pub fn dead_owner() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mut me: Value = serde_json::from_str(&operonx_trace::ProcessIdentity::current().to_column()).unwrap();
    let fields = me.as_object_mut().unwrap();
    fields.insert("pid".into(), json!(pid));
    fields.remove("start");
    let column = me.to_string();
    assert!(operonx_trace::ProcessIdentity::is_gone(&column), "a finished child reads as gone: {column}");
    column
}

/// This process, as an owner.
pub fn live_owner() -> String {
    operonx_trace::ProcessIdentity::current().to_column()
}
