//! Writing runs' journals to a store as they go.
//!
//! A [`Journaler`] is a process's writer for one store: one thread that commits the
//! creates, journal entries and ends of every run of the process in groups (one
//! transaction, one commit for everything that came while the previous commit was
//! written). A [`DurableRun`] is one run's handle: its lease and the [`Journal`] to run
//! it with. The run hands every entry to the journal's sink on the thread that drives
//! it; the writer serializes entries (off the run's thread), redacts the resources'
//! secret values, and commits them in the run's [`Durability`]:
//! - `sync`: the run waits until each entry is committed before it goes on with the op's
//!   result (and until the run is recorded before it starts), so a crash loses nothing
//!   that anything downstream has seen;
//! - `batched` (the default): nothing waits for the store; entries are committed with
//!   the next group, so the work a crash can lose is what finished since the last commit
//!   (at most the time one commit takes);
//! - `off`: nothing is written while the run goes; when it stops short of done (waits for
//!   input, fails, is cancelled or times out) its whole journal is written with its end.
//!   A crash loses the run's work, never more.
//!
//! Whatever a crash loses runs again on resume (at least once), never silently: a write
//! that fails stops the run, naming the store. Interrupts are committed before the run
//! reports them, in every mode.

use std::sync::mpsc::{Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use operonx_graph::SecretSet;
use operonx_runtime::{Journal, JournalEntry, JournalError, JournalSink, Scratch};
use serde_json::{Map, Value};

use crate::writer::{Message, RunKey, RunSlot, Shared};
use crate::{Lease, NewRun, RunEnd, RunStore, StoreError, StoredEvent, StoredRun};

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

/// What is called when a run's journal cannot be written (e.g. to cancel the run).
pub type OnFailure = Box<dyn Fn(&str) + Send + Sync>;

/// How one run is written.
pub struct WriterOptions {
    /// How entries are committed.
    pub mode: Durability,
    /// The run's scratch space (saved with a batch when it changed).
    pub scratch: Scratch,
    /// Secret values replaced by the redaction marker in what is written.
    pub secrets: SecretSet,
    /// Called once if the run's journal cannot be written.
    pub on_failure: Option<OnFailure>,
}

/// A process's journal writer for one store (see the module documentation). Cheap to
/// clone (shared). Use it from plain threads, not inside an async task: the Postgres
/// client blocks.
#[derive(Clone)]
pub struct Journaler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Journaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaler").field("store", &self.shared.store.location()).finish()
    }
}

impl Journaler {
    /// Start the writer thread for `store`.
    pub fn start(store: Arc<dyn RunStore>) -> Result<Self, StoreError> {
        Ok(Self { shared: Shared::start(store)? })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.shared.store
    }

    /// Record a new run (status `running`, owned by this process) and return its handle,
    /// once the run is committed: from then on a crash leaves it resumable by its id.
    pub fn create(&self, run: NewRun, ttl: Duration, options: WriterOptions) -> Result<DurableRun, StoreError> {
        self.start_run(run, ttl, options, true)
    }

    /// Like [`Journaler::create`] without waiting for the commit (with `batched`
    /// durability; the other modes wait): the run is recorded with the next group, and a
    /// crash before that loses it whole — use it only when nobody learns the run's id
    /// before its first commit (many short runs of one process, say). A failure to record
    /// the run stops it as soon as the writer sees it.
    pub fn create_queued(&self, run: NewRun, ttl: Duration, options: WriterOptions) -> Result<DurableRun, StoreError> {
        let wait = options.mode != Durability::Batched;
        self.start_run(run, ttl, options, wait)
    }

    fn start_run(
        &self,
        run: NewRun,
        ttl: Duration,
        options: WriterOptions,
        wait: bool,
    ) -> Result<DurableRun, StoreError> {
        let owner = self.shared.owner.clone();
        let lease = Lease { run_id: run.run_id.clone(), owner: owner.clone(), epoch: 1, next_seq: 1, ttl };
        let mode = options.mode;
        let (slot, failed) = RunSlot::new(lease.clone(), options);
        let (ack, done) = ack_pair(wait);
        let key = self.shared.new_key();
        self.shared.send(Message::Create { key, run: Box::new(run), owner, ttl, slot: Box::new(slot), ack })?;
        if let Some(done) = done {
            self.wait(done)?;
        }
        Ok(self.handle(key, lease, mode, Journal::default(), failed))
    }

    /// Take a stored run over to resume it (see [`RunStore::claim`]), adding `answers`;
    /// the journal of the returned handle replays what the run journaled.
    pub fn resume(
        &self,
        run_id: &str,
        answers: &Map<String, Value>,
        ttl: Duration,
        options: WriterOptions,
    ) -> Result<(DurableRun, StoredRun), StoreError> {
        let (lease, run) = self.shared.store.claim(run_id, &self.shared.owner, ttl, answers)?;
        Ok((self.adopt(lease, &run, options)?, run))
    }

    /// The owner identity this process's claims are made with (pass it to
    /// [`RunStore::claim_next`]).
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Write a run this process claimed (its `lease` and what the store held, from
    /// [`RunStore::claim`] or [`RunStore::claim_next`] with [`Journaler::owner`]); the
    /// journal of the returned handle replays what the run journaled.
    pub fn adopt(&self, lease: Lease, run: &StoredRun, options: WriterOptions) -> Result<DurableRun, StoreError> {
        let journal = crate::replay::replay_journal(self.shared.store.location(), run)?;
        let mode = options.mode;
        let (slot, failed) = RunSlot::new(lease.clone(), options);
        let key = self.shared.new_key();
        self.shared.send(Message::Adopt { key, slot: Box::new(slot) })?;
        Ok(self.handle(key, lease, mode, journal, failed))
    }

    fn handle(
        &self,
        key: RunKey,
        lease: Lease,
        mode: Durability,
        journal: Journal,
        failed: Arc<Mutex<Option<String>>>,
    ) -> DurableRun {
        let journal = match mode {
            Durability::Off => journal.log_only(),
            _ => journal.with_sink(Arc::new(Sink { run: key, tx: self.shared.sender(), mode, failed: failed.clone() })),
        };
        DurableRun { journaler: self.clone(), key, lease, mode, journal: Arc::new(journal), failed }
    }

    /// Wait until everything queued so far is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.shared.send(Message::Flush(ack))?;
        self.wait(done)
    }

    fn wait(&self, done: std::sync::mpsc::Receiver<Result<(), String>>) -> Result<(), StoreError> {
        let gone = || StoreError::Writer {
            store: self.shared.store.location().to_string(),
            message: "the journal writer stopped".into(),
        };
        done.recv()
            .map_err(|_| gone())?
            .map_err(|message| StoreError::Writer { store: self.shared.store.location().to_string(), message })
    }
}

/// A sender for a commit acknowledgement, and its receiver, when asked for.
type AckPair = (Option<SyncSender<Result<(), String>>>, Option<std::sync::mpsc::Receiver<Result<(), String>>>);

fn ack_pair(wait: bool) -> AckPair {
    if !wait {
        return (None, None);
    }
    let (ack, done) = std::sync::mpsc::sync_channel(1);
    (Some(ack), Some(done))
}

/// One run being journaled: its lease and the journal to run it with. End it with
/// [`DurableRun::finish`].
pub struct DurableRun {
    journaler: Journaler,
    key: RunKey,
    lease: Lease,
    mode: Durability,
    journal: Arc<Journal>,
    failed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for DurableRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableRun").field("run", &self.lease.run_id).field("mode", &self.mode).finish()
    }
}

impl DurableRun {
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

    /// Why the run's journal could not be written, if it could not.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Store an event the run emitted (the JSON line of `operonx run --stream`, with its
    /// seq: 1, 2, ... across resumes, continuing from the stored run's
    /// `summary.events`), for its live stream ([`RunStore::events`]). Never waits: the
    /// event is committed with the writer's next group, in every durability mode (with
    /// `off` too: events are what live streams show). Secret values are redacted as in
    /// the journal. Fails only when the run's journal could not be written.
    pub fn record_event(&self, event: StoredEvent) -> Result<(), StoreError> {
        if let Some(message) = self.failure() {
            return Err(StoreError::Writer { store: self.journaler.store().location().to_string(), message });
        }
        self.journaler.shared.send(Message::Event { run: self.key, event })
    }

    /// Record how the run ended (with durability `off`, its journal first unless it is
    /// done) and release it; waits until that is committed.
    pub fn finish(self, end: &RunEnd) -> Result<(), StoreError> {
        let journaler = self.journaler.clone();
        let done = self.send_end(end, true)?;
        match done {
            Some(done) => journaler.wait(done),
            None => Ok(()),
        }
    }

    /// Like [`DurableRun::finish`] without waiting: the end is committed with the next
    /// group ([`Journaler::flush`] waits for it).
    pub fn finish_queued(self, end: &RunEnd) -> Result<(), StoreError> {
        self.send_end(end, false).map(|_| ())
    }

    fn send_end(
        self,
        end: &RunEnd,
        wait: bool,
    ) -> Result<Option<std::sync::mpsc::Receiver<Result<(), String>>>, StoreError> {
        if let Some(message) = self.failure() {
            return Err(StoreError::Writer { store: self.journaler.store().location().to_string(), message });
        }
        let export = if self.mode == Durability::Off && end.status != crate::RunStatus::Done {
            self.journal.export()
        } else {
            Vec::new()
        };
        let (ack, done) = ack_pair(wait);
        self.journaler.shared.send(Message::Finish { run: self.key, end: Box::new(end.clone()), export, ack })?;
        Ok(done)
    }
}

/// The run's end of the writer: queues entries (or, `sync`, waits for their commit).
struct Sink {
    run: RunKey,
    tx: Sender<Message>,
    mode: Durability,
    failed: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("run", &self.run).field("mode", &self.mode).finish()
    }
}

impl JournalSink for Sink {
    fn append(&self, entry: JournalEntry) -> Result<(), JournalError> {
        if let Some(message) = &*self.failed.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err(JournalError(message.clone()));
        }
        let gone = || JournalError("the journal writer stopped".into());
        // An interrupt is committed before the run reports it, whatever the mode.
        let wait = self.mode == Durability::Sync || matches!(entry, JournalEntry::Interrupt(_));
        let (ack, done) = ack_pair(wait);
        self.tx.send(Message::Entry { run: self.run, entry, ack }).map_err(|_| gone())?;
        match done {
            Some(done) => done.recv().map_err(|_| gone())?.map_err(JournalError),
            None => Ok(()),
        }
    }
}
