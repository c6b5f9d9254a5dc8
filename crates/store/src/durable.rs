//! Writing a run's journal to a store as the run goes.
//!
//! A [`DurableRun`] holds the run's lease and a writer thread. The run hands every
//! journal entry to the writer's [`JournalSink`] on the thread that drives it; the writer
//! serializes entries (off the run's thread), redacts the configured secret values, and
//! commits them in the chosen [`Durability`]:
//! - `sync`: the run waits until each entry is committed before it goes on with the op's
//!   result, so a crash loses nothing that anything downstream has seen;
//! - `batched` (the default): entries are committed in groups, each group as soon as the
//!   previous commit is done (group commit), so the work a crash can lose is what
//!   finished during the last commit; the run never waits for the store;
//! - `off`: nothing is written while the run goes; when it stops (waits for input, fails,
//!   is cancelled or times out) its whole journal is written at once. A crash loses the
//!   run's work, never more.
//!
//! Whatever a crash loses runs again on resume (at least once), never silently: a write
//! that fails stops the run, naming the store.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use operonx_graph::SecretSet;
use operonx_runtime::{Interrupt, Journal, JournalEntry, JournalError, JournalSink, Scratch};
use serde_json::{Map, Value};

use crate::{Batch, Entry, EntryKind, Lease, NewRun, RunEnd, RunStore, StoreError, StoredRun};

/// How a run's journal is written (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each entry is committed before the run goes on.
    Sync,
    /// Entries are committed in groups, without holding the run up.
    #[default]
    Batched,
    /// The journal is written only when the run stops.
    Off,
}

impl Durability {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Batched => "batched",
            Durability::Off => "off",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Durability::Sync),
            "batched" => Ok(Durability::Batched),
            "off" => Ok(Durability::Off),
            other => Err(format!("unknown durability {other:?} (one of sync, batched, off)")),
        }
    }
}

/// Most entries committed in one transaction.
const MAX_BATCH: usize = 4096;

/// A message to the writer: an entry and where to say it is committed (`sync`), or
/// (`None`) the end of the run's entries.
type Message = Option<(JournalEntry, Option<SyncSender<Result<(), JournalError>>>)>;

/// The run's end of the writer's channel, and the writer thread.
type WriterThread = (Sender<Message>, JoinHandle<Result<(), StoreError>>);

/// What is called when the writer fails (e.g. to cancel the run at once).
pub type OnFailure = Box<dyn Fn(&str) + Send + Sync>;

/// The run's end of the writer.
struct Sink {
    tx: Sender<Message>,
    mode: Durability,
    failed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("mode", &self.mode).finish()
    }
}

impl JournalSink for Sink {
    fn append(&self, entry: JournalEntry) -> Result<(), JournalError> {
        if let Some(message) = &*self.failed.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(JournalError(message.clone()));
        }
        let gone = || JournalError("the journal writer stopped".into());
        // An interrupt is committed before the run reports it, whatever the mode.
        if self.mode == Durability::Sync || matches!(entry, JournalEntry::Interrupt(_)) {
            let (ack, done) = std::sync::mpsc::sync_channel(1);
            self.tx.send(Some((entry, Some(ack)))).map_err(|_| gone())?;
            return done.recv().map_err(|_| gone())?;
        }
        self.tx.send(Some((entry, None))).map_err(|_| gone())
    }
}

/// A run being journaled to a store: its lease, the journal to run it with, and the
/// writer thread. Create it with [`DurableRun::create`] (a new run) or
/// [`DurableRun::resume`], run with [`DurableRun::journal`], end with
/// [`DurableRun::finish`]. Call these from a plain thread (not inside an async task):
/// the Postgres client blocks.
pub struct DurableRun {
    store: Arc<dyn RunStore>,
    lease: Lease,
    mode: Durability,
    journal: Arc<Journal>,
    writer: Option<WriterThread>,
    failed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for DurableRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableRun").field("run", &self.lease.run_id).field("mode", &self.mode).finish()
    }
}

/// What the writer needs besides the store and the lease.
pub struct WriterOptions {
    /// How entries are committed.
    pub mode: Durability,
    /// The run's scratch space (saved with a batch when it changed).
    pub scratch: Scratch,
    /// Secret values replaced by the redaction marker in what is written.
    pub secrets: SecretSet,
    /// Called once if the writer fails.
    pub on_failure: Option<OnFailure>,
}

impl DurableRun {
    /// Record a new run (status `running`, owned by this process) and start its writer.
    pub fn create(
        store: Arc<dyn RunStore>,
        run: &NewRun,
        ttl: Duration,
        options: WriterOptions,
    ) -> Result<Self, StoreError> {
        let owner = operonx_trace::ProcessIdentity::current().to_column();
        let lease = store.create(run, &owner, ttl)?;
        Ok(Self::start(store, lease, Journal::default(), options))
    }

    /// Take over a stored run to resume it (see [`RunStore::claim`]), adding `answers`;
    /// the journal it returns replays what the run journaled.
    pub fn resume(
        store: Arc<dyn RunStore>,
        run_id: &str,
        answers: &Map<String, Value>,
        ttl: Duration,
        options: WriterOptions,
    ) -> Result<(Self, StoredRun), StoreError> {
        let owner = operonx_trace::ProcessIdentity::current().to_column();
        let (lease, run) = store.claim(run_id, &owner, ttl, answers)?;
        let journal = replay_journal(store.location(), &run)?;
        Ok((Self::start(store, lease, journal, options), run))
    }

    fn start(store: Arc<dyn RunStore>, lease: Lease, journal: Journal, options: WriterOptions) -> Self {
        let failed = Arc::new(Mutex::new(None));
        let mode = options.mode;
        let (tx, rx) = std::sync::mpsc::channel::<Message>();
        let journal = match mode {
            Durability::Off => journal,
            _ => journal.with_sink(Arc::new(Sink { tx: tx.clone(), mode, failed: failed.clone() })),
        };
        let writer = Writer {
            store: store.clone(),
            lease: lease.clone(),
            next_seq: lease.next_seq,
            scratch: options.scratch,
            scratch_version: None,
            secrets: options.secrets,
            failed: failed.clone(),
            on_failure: options.on_failure,
        };
        let handle =
            std::thread::Builder::new().name(format!("operonx-journal-{}", short(&lease.run_id))).spawn(move || {
                let mut writer = writer;
                writer.run(rx)
            });
        let writer = match handle {
            Ok(h) => Some((tx, h)),
            Err(e) => {
                *failed.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("run store {}: cannot start the journal writer: {e}", store.location()));
                None
            }
        };
        Self { store, lease, mode, journal: Arc::new(journal), writer, failed }
    }

    /// The journal to run with (`RunOptions::journal`).
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// The run's lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The durability the run is written with.
    pub fn mode(&self) -> Durability {
        self.mode
    }

    /// Why the writer failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Commit what is queued, record how the run ended and release it. With durability
    /// `off`, the journal is written first unless the run is done.
    pub fn finish(mut self, end: &RunEnd, secrets: &SecretSet) -> Result<(), StoreError> {
        if let Some((tx, handle)) = self.writer.take() {
            // The journal (held by the run's options too) keeps its own sender: say it ends.
            let _ = tx.send(None);
            let joined = handle.join().map_err(|_| StoreError::Writer {
                store: self.store.location().to_string(),
                message: "the journal writer panicked".into(),
            })?;
            joined?;
        }
        if let Some(message) = self.failure() {
            return Err(StoreError::Writer { store: self.store.location().to_string(), message });
        }
        if self.mode == Durability::Off && end.status != crate::RunStatus::Done {
            let mut seq = self.lease.next_seq;
            let entries = self
                .journal
                .export()
                .into_iter()
                .chain(end.pending.iter().cloned().map(JournalEntry::Interrupt))
                .map(|e| {
                    let entry = encode(e, seq, secrets);
                    seq += 1;
                    entry
                })
                .collect();
            self.store.append(&self.lease, &Batch { entries, scratch: None, pending: None })?;
        }
        let mut end = end.clone();
        if !secrets.is_empty() {
            if let Some(result) = end.result.as_mut() {
                secrets.redact_value(result);
            }
            secrets.redact_map(&mut end.scratch);
            for i in &mut end.pending {
                secrets.redact_value(&mut i.payload);
            }
        }
        self.store.finish(&self.lease, &end)
    }
}

/// An entry queued for the writer, and where to say it is committed.
type Queued = (JournalEntry, Option<SyncSender<Result<(), JournalError>>>);

/// The writer thread's state.
struct Writer {
    store: Arc<dyn RunStore>,
    lease: Lease,
    next_seq: i64,
    scratch: Scratch,
    /// The scratch version last saved (`None`: never saved by this writer).
    scratch_version: Option<u64>,
    secrets: SecretSet,
    failed: Arc<Mutex<Option<String>>>,
    on_failure: Option<OnFailure>,
}

impl Writer {
    /// Commit entries as they come until the run's end of the channel is dropped; renew
    /// the lease while nothing comes.
    fn run(&mut self, rx: Receiver<Message>) -> Result<(), StoreError> {
        let beat = (self.lease.ttl / 3).max(Duration::from_millis(10));
        let mut batch: Vec<Queued> = Vec::new();
        loop {
            let mut closed = false;
            match rx.recv_timeout(beat) {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => closed = true,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.store.heartbeat(&self.lease) {
                        self.fail(&e, &mut batch, &rx);
                        return Err(e);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while !closed && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Some(m)) => batch.push(m),
                    Ok(None) => closed = true,
                    Err(_) => break,
                }
            }
            if !batch.is_empty()
                && let Err(e) = self.commit(&mut batch)
            {
                self.fail(&e, &mut batch, &rx);
                return Err(e);
            }
            if closed {
                return Ok(());
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Queued>) -> Result<(), StoreError> {
        let mut pending: Option<Vec<Interrupt>> = None;
        let mut entries = Vec::with_capacity(batch.len());
        for (entry, _) in batch.iter() {
            if let JournalEntry::Interrupt(i) = entry {
                pending.get_or_insert_with(Vec::new).push(i.clone());
            }
            entries.push(encode(entry.clone(), self.next_seq, &self.secrets));
            self.next_seq += 1;
        }
        let version = self.scratch.version();
        let scratch = (self.scratch_version != Some(version)).then(|| {
            let mut map = self.scratch.snapshot();
            self.secrets.redact_map(&mut map);
            map
        });
        if let Some(p) = pending.as_mut() {
            for i in p.iter_mut() {
                self.secrets.redact_value(&mut i.payload);
            }
        }
        self.store.append(&self.lease, &Batch { entries, scratch, pending })?;
        self.scratch_version = Some(version);
        for (_, ack) in batch.drain(..) {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(()));
            }
        }
        Ok(())
    }

    /// Remember the failure (later appends are refused), tell whoever waits, and stop the run.
    fn fail(&mut self, e: &StoreError, batch: &mut Vec<Queued>, rx: &Receiver<Message>) {
        let message = e.to_string();
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
        if let Some(f) = &self.on_failure {
            f(&message);
        }
        for (_, ack) in batch.drain(..).chain(rx.try_iter().flatten()) {
            if let Some(ack) = ack {
                let _ = ack.send(Err(JournalError(message.clone())));
            }
        }
    }
}

/// An entry as stored: its body serialized (shared values are not copied first), with
/// the secret values redacted.
fn encode(entry: JournalEntry, seq: i64, secrets: &SecretSet) -> Entry {
    let (kind, key, index, body) = match entry {
        JournalEntry::Op { key, outputs } => (EntryKind::Op, key.to_string(), None, serde_json::to_string(&outputs)),
        JournalEntry::Item { key, index, item } => {
            (EntryKind::Item, key.to_string(), Some(index), serde_json::to_string(&item))
        }
        JournalEntry::StreamEnd { key, count } => {
            (EntryKind::StreamEnd, key.to_string(), Some(count), Ok("null".into()))
        }
        JournalEntry::Interrupt(i) => (EntryKind::Interrupt, i.id.clone(), None, serde_json::to_string(&i)),
    };
    // Serializing a JSON value cannot fail (keys are strings); `null` if it ever did.
    let body = body.unwrap_or_else(|_| "null".into());
    let body = if secrets.is_empty() { body } else { secrets.redact(&body).into_owned() };
    Entry { seq, kind, key, index, body }
}

/// The journal a stored run replays: its op calls, generator items and ends, and its
/// answers.
fn replay_journal(store: &str, run: &StoredRun) -> Result<Journal, StoreError> {
    let corrupt = |what: String, message: String| StoreError::Corrupt {
        store: store.to_string(),
        run_id: run.summary.run_id.clone(),
        what,
        message,
    };
    let mut ops = Map::new();
    let mut items: Vec<(&str, u32, Map<String, Value>)> = Vec::new();
    let mut ends: Vec<(&str, u32)> = Vec::new();
    for e in &run.entries {
        let object = || match serde_json::from_str::<Value>(&e.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(corrupt(
                format!("journal entry {}", e.seq),
                format!("expected an object, got {}", operonx_graph::document::kind_of(&other)),
            )),
            Err(err) => Err(corrupt(format!("journal entry {}", e.seq), err.to_string())),
        };
        match (e.kind, e.index) {
            (EntryKind::Op, _) => {
                ops.insert(e.key.clone(), Value::Object(object()?));
            }
            (EntryKind::Item, Some(i)) => items.push((&e.key, i, object()?)),
            (EntryKind::StreamEnd, Some(n)) => ends.push((&e.key, n)),
            (EntryKind::Interrupt, _) => {}
            (kind, None) => {
                return Err(corrupt(format!("journal entry {}", e.seq), format!("{} without an index", kind.as_str())));
            }
        }
    }
    let mut journal = Journal::new(ops, run.answers.clone());
    // Items in order per generator (a generator run again re-journals none it matched).
    items.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    for (key, index, item) in items {
        journal.seed_item(key, index, item);
    }
    for (key, count) in ends {
        journal.seed_end(key, count);
    }
    Ok(journal)
}

/// The first digits of a run id (thread names are short).
fn short(run_id: &str) -> &str {
    run_id.get(..8).unwrap_or(run_id)
}
