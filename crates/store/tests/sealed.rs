//! Encryption at rest, on every backend: no user value is in the database in clear, a
//! store is refused to a process with another key and reads back byte for byte with its
//! own, a value altered or moved between rows is reported corrupt naming its run and
//! column, and where the key comes from (a private key file, `OPERONX_STORE_KEY`).
//!
//! Keys are given to the stores explicitly (the tests run in parallel threads of one
//! process: none sets an environment variable, and none writes a key file outside its
//! temporary folder).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::time::Duration;

use common::{Harness, Raw, new_run};
use operonx_runtime::Interrupt;
use operonx_store::{
    Batch, Entry, EntryKind, KeyError, RunEnd, RunStatus, RunStore, STORE_KEY_ENV, SqliteRunStore, StoreError,
    StoreKey, StoredRun,
};
use serde_json::{Map, Value, json};

const LONG: Duration = Duration::from_secs(60);

/// What must never be found in clear in a store.
const MARKER: &str = "pw-Tr0ub4dor-marker";

/// Each test function, as a test of each backend.
macro_rules! suite {
    ($($t:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $t() { super::$t(&super::Harness::sqlite()); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[test] fn $t() { if let Some(h) = super::Harness::postgres() { super::$t(&h); } })*
        }
    };
}

suite![no_value_is_stored_in_clear, another_key_is_refused_and_the_right_one_reads_back, altered_values_are_corrupt];

fn object(v: Value) -> Map<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn marked(what: &str) -> String {
    format!("{what}: {MARKER}")
}

/// A run with the marker in every value it holds: graph, inputs, scratch, options,
/// journal bodies (op, item, interrupt), pending interrupts, answers, result and reason;
/// created, journaled, stopped waiting, resumed with answers and finished.
fn marked_run(s: &dyn RunStore) -> String {
    let mut run = new_run("sealed");
    run.graph = json!({"name": "sealed", "doc": marked("graph")});
    run.inputs = object(json!({"password": marked("inputs")}));
    run.scratch = object(json!({"note": marked("scratch seed")}));
    run.options = object(json!({"header": marked("options")}));
    let lease = s.create(&run, "owner-a", LONG).unwrap();
    let ask = Interrupt { id: "main.ask".into(), op: "main.ask".into(), payload: json!({"q": marked("pending")}) };
    let entries = vec![
        Entry {
            seq: 1,
            kind: EntryKind::Op,
            key: "main.prompt@[]".into(),
            index: None,
            body: format!("{{\"messages\": \"Log in with {MARKER} please\"}}"),
        },
        Entry {
            seq: 2,
            kind: EntryKind::Item,
            key: "main.gen@[]".into(),
            index: Some(0),
            body: json!({"item": marked("item")}).to_string(),
        },
        Entry {
            seq: 3,
            kind: EntryKind::Interrupt,
            key: "main.ask".into(),
            index: None,
            body: serde_json::to_string(&ask).unwrap(),
        },
    ];
    let batch =
        Batch { entries, scratch: Some(object(json!({"note": marked("scratch")}))), pending: Some(vec![ask.clone()]) };
    s.append(&lease, &batch).unwrap();
    let waiting = RunEnd {
        status: RunStatus::Waiting,
        result: Some(json!({"$interrupts": [marked("result")]})),
        pending: vec![ask],
        scratch: object(json!({"note": marked("scratch at stop")})),
        reason: Some(marked("reason")),
        stats: None,
    };
    s.finish(&lease, &waiting).unwrap();
    let answers = object(json!({"main.ask": marked("answer")}));
    let (lease, _) = s.claim(&run.run_id, "owner-b", LONG, &answers).unwrap();
    let more = Entry {
        seq: 4,
        kind: EntryKind::Op,
        key: "main.after@[]".into(),
        index: None,
        body: json!({"said": marked("body")}).to_string(),
    };
    s.append(&lease, &Batch { entries: vec![more], ..Batch::default() }).unwrap();
    let failed = RunEnd {
        status: RunStatus::Failed,
        result: Some(json!({"said": marked("result"), "$errors": [marked("error")]})),
        pending: Vec::new(),
        scratch: object(json!({"note": marked("final scratch")})),
        reason: Some(marked("failure")),
        stats: None,
    };
    s.finish(&lease, &failed).unwrap();
    run.run_id
}

/// What a run reads back as, in text (every value, every body byte for byte).
fn as_text(run: &StoredRun) -> String {
    format!("{run:?}")
}

/// The marker is in every value read back, and in no byte of the database: the SQLite
/// file and its WAL (the store still open, its last writes in the WAL), or any column
/// of any table on Postgres.
fn no_value_is_stored_in_clear(h: &Harness) {
    let s = h.store.as_ref();
    let id = marked_run(s);
    let run = s.load(&id).unwrap();
    for what in ["graph", "inputs", "options", "answer", "final scratch", "result", "failure"] {
        assert!(as_text(&run).contains(&marked(what)), "{what} reads back: {run:?}");
    }
    assert!(run.entries.iter().all(|e| e.body.contains(MARKER)), "{:?}", run.entries);
    assert_eq!(s.list(&Default::default()).unwrap()[0].reason.as_deref(), Some(marked("failure").as_str()));

    for (place, text) in raw_contents(h) {
        assert!(!text.contains(MARKER), "{place} holds the marker in clear");
    }
}

/// Every byte of the database, by where it is: the SQLite file and its `-wal` and `-shm`
/// files; on Postgres every row of every table of the store, as text.
fn raw_contents(h: &Harness) -> Vec<(String, String)> {
    match h.database() {
        Raw::Sqlite(path) => {
            let mut out = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                if let Ok(bytes) = std::fs::read(&name) {
                    out.push((name.to_string_lossy().into_owned(), String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
            assert!(out.len() >= 2, "the database and its WAL: {out:?}");
            assert!(out[1].1.len() > 1000, "the WAL holds the writes");
            out
        }
        #[cfg(feature = "postgres")]
        Raw::Postgres(schema) => {
            let mut client = ::postgres::Client::connect(&schema.url, ::postgres::NoTls).unwrap();
            let mut out = Vec::new();
            for table in ["operonx_runs", "operonx_journal", "operonx_store_meta"] {
                let rows = client.query(&format!("SELECT t::text FROM {table} t"), &[]).unwrap();
                assert!(!rows.is_empty(), "{table} has rows");
                for r in rows {
                    out.push((table.to_string(), r.get::<_, String>(0)));
                }
            }
            out
        }
    }
}

/// Opened with another key, the store is refused at once with a message naming both
/// keys' ids (never a key) and what to do; with its own key again, everything reads back
/// as it was, byte for byte.
fn another_key_is_refused_and_the_right_one_reads_back(h: &Harness) {
    let s = h.store.as_ref();
    let id = marked_run(s);
    let before = s.load(&id).unwrap();
    let other = StoreKey::generate().unwrap();
    let err = h.reopen_with(other.clone()).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    let want = format!(
        "run store {} was written with key {}, this process has key {}: set OPERONX_STORE_KEY to the key the store's \
         other processes use",
        s.location(),
        h.key.id(),
        other.id()
    );
    assert_eq!(err.to_string(), want);
    assert!(!err.to_string().contains(&h.key.to_hex()) && !err.to_string().contains(&other.to_hex()));

    let again = h.reopen_with(h.key.clone()).unwrap();
    let after = again.load(&id).unwrap();
    assert_eq!(as_text(&after), as_text(&before));
    assert_eq!(after, before);
    assert_eq!(
        after.entries.iter().map(|e| e.body.as_bytes()).collect::<Vec<_>>(),
        before.entries.iter().map(|e| e.body.as_bytes()).collect::<Vec<_>>()
    );
    again.check().unwrap();
}

/// A byte flipped in a sealed column, a value copied from another run, and two journal rows'
/// bodies swapped: each load fails, naming the store, the run and the column.
fn altered_values_are_corrupt(h: &Harness) {
    let s = h.store.as_ref();
    let (flipped, copied, swapped) = (marked_run(s), marked_run(s), marked_run(s));
    h.raw(&format!(
        "UPDATE {{runs}} SET spec = substr(spec, 1, 39) || CASE substr(spec, 40, 1) WHEN 'A' THEN 'B' ELSE 'A' END
             || substr(spec, 41) WHERE run_id = '{flipped}'"
    ));
    h.raw(&format!(
        "UPDATE {{runs}} SET outcome = (SELECT outcome FROM {{runs}} WHERE run_id = '{flipped}') WHERE run_id = '{copied}'"
    ));
    h.raw(&format!(
        "UPDATE {{journal}} SET body = (SELECT body FROM {{journal}} WHERE run_id = '{swapped}' AND seq = 4)
             WHERE run_id = '{swapped}' AND seq = 1"
    ));
    for (id, column) in
        [(&flipped, "corrupt spec"), (&copied, "corrupt outcome"), (&swapped, "corrupt journal entries 1 to 3")]
    {
        let err = s.load(id).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
        assert!(text.contains(s.location()) && text.contains(&format!("run {id}")) && text.contains(column), "{text}");
        assert!(text.contains("does not open with this store's key"), "{text}");
        assert!(!text.contains(MARKER), "{text}");
        let claimed = s.claim(id, "owner-c", LONG, &Map::new());
        assert!(matches!(claimed, Err(StoreError::Corrupt { .. })), "a corrupt run is not resumed: {claimed:?}");
    }
}

/// Opened without a key given (and no `OPERONX_STORE_KEY`), a SQLite store makes its key
/// file beside it, private, and uses it again; the key in it opens the store; a store
/// opened with it is refused to another key.
#[test]
fn a_key_file_is_made_private_beside_the_database() {
    if std::env::var_os(STORE_KEY_ENV).is_some() {
        eprintln!("SKIPPED: {STORE_KEY_ENV} is set, so no key file is made");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/runs.db");
    let store = SqliteRunStore::open(&path).unwrap();
    let id = store.create(&new_run("k"), "owner", LONG).unwrap().run_id;
    let key_file = dir.path().join("state/runs.db.key");
    assert_eq!(operonx_store::sqlite_key_file(&path), key_file);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(text.len() == 65 && text.ends_with('\n'), "64 hex digits and a newline");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_file), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
    }
    drop(store);
    let again = SqliteRunStore::open(&path).unwrap();
    assert_eq!(again.load(&id).unwrap().summary.graph, "k");
    let key = StoreKey::from_env_value(OsStr::new(&text)).unwrap();
    let with_key = SqliteRunStore::open_with_key(&path, key).unwrap();
    assert_eq!(with_key.load(&id).unwrap().summary.graph, "k");
    let err = SqliteRunStore::open_with_key(&path, StoreKey::generate().unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
}

/// `OPERONX_STORE_KEY` wins over the key file when set, and a value that is not a key is
/// an error naming the variable and the expected form, never the value; no key file is
/// made then.
#[test]
fn the_key_variable_wins_and_a_bad_one_is_named_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("runs.db.key");
    let key = StoreKey::generate().unwrap();
    let hex = key.to_hex();
    assert_eq!(StoreKey::resolve(Some(OsStr::new(&hex)), Some(&key_file)).unwrap(), key);
    assert!(!key_file.exists(), "no key file when the variable is set");

    let secret = "my-database-password-not-a-key";
    let err = StoreKey::resolve(Some(OsStr::new(secret)), Some(&key_file)).unwrap_err();
    assert!(matches!(err, KeyError::Env { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(STORE_KEY_ENV) && text.contains("64 hex digits") && !text.contains(secret), "{text}");
    let almost = format!("{}g", &hex[..63]);
    let text = StoreKey::resolve(Some(OsStr::new(&almost)), Some(&key_file)).unwrap_err().to_string();
    assert!(text.contains("not a hex digit") && !text.contains(&almost) && !text.contains(&hex[..63]), "{text}");
    assert!(!key_file.exists(), "no key file for a bad variable either");

    let made = StoreKey::resolve(None, Some(&key_file)).unwrap();
    assert!(key_file.exists());
    assert_eq!(StoreKey::resolve(None, Some(&key_file)).unwrap(), made);
    assert_eq!(format!("{made:?}"), format!("StoreKey({})", made.id()), "Debug shows the id only");
}
