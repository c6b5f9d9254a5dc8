//! The journal writer thread behind a [`crate::Journaler`]: it takes every run's
//! creates, entries and ends from one channel and commits whatever has come since its
//! last commit as one group ([`RunStore::write`]), renewing the leases of runs that have
//! nothing to write.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use operonx_graph::SecretSet;
use operonx_runtime::{Interrupt, JournalEntry, Scratch};

use crate::durable::{OnFailure, WriterOptions};
use crate::replay::encode;
use crate::{Batch, Lease, NewRun, RunEnd, RunStore, StoreError, StoredEvent, Write};

/// Most messages taken into one group.
const MAX_GROUP: usize = 16_384;

/// How often leases are renewed when no run has a shorter lease.
const DEFAULT_BEAT: Duration = Duration::from_secs(10);

/// A run as the writer knows it: a number the [`crate::Journaler`] hands out (cheap to
/// send with every entry and to look up).
pub(crate) type RunKey = u64;

/// Where to say a write is committed (or why it is not).
pub(crate) type Ack = SyncSender<Result<(), String>>;

/// What the writer is asked.
pub(crate) enum Message {
    /// Record a new run and take it on.
    Create { key: RunKey, run: Box<NewRun>, owner: String, ttl: Duration, slot: Box<RunSlot>, ack: Option<Ack> },
    /// Take on a run claimed by this process (resumed).
    Adopt { key: RunKey, slot: Box<RunSlot> },
    /// Journal an entry of a run.
    Entry { run: RunKey, entry: JournalEntry, ack: Option<Ack> },
    /// Store an event of a run (for its live stream).
    Event { run: RunKey, event: StoredEvent },
    /// Record a run's end (after `export`, a journal written only now) and let it go.
    Finish { run: RunKey, end: Box<RunEnd>, export: Vec<JournalEntry>, ack: Option<Ack> },
    /// Say when everything sent before is committed.
    Flush(Ack),
    /// Commit what is left and stop.
    Close,
}

/// What the writer keeps of a run it writes.
pub(crate) struct RunSlot {
    lease: Lease,
    next_seq: i64,
    scratch: Scratch,
    /// The scratch version last written (`None`: not yet).
    scratch_version: Option<u64>,
    secrets: SecretSet,
    failed: Arc<Mutex<Option<String>>>,
    on_failure: Option<OnFailure>,
    /// Interrupts raised so far (stored whole whenever one is added).
    pending: Vec<Interrupt>,
    pending_changed: bool,
    last_write: Instant,
    finished: bool,
}

impl RunSlot {
    /// A run to write with `lease`; the cell where its failure will be told.
    pub(crate) fn new(lease: Lease, options: WriterOptions) -> (Self, Arc<Mutex<Option<String>>>) {
        let failed = Arc::new(Mutex::new(None));
        let slot = RunSlot {
            next_seq: lease.next_seq,
            lease,
            scratch: options.scratch,
            scratch_version: None,
            secrets: options.secrets,
            failed: failed.clone(),
            on_failure: options.on_failure,
            pending: Vec::new(),
            pending_changed: false,
            last_write: Instant::now(),
            finished: false,
        };
        (slot, failed)
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Remember why the run cannot be written and tell its owner (once).
    fn fail(&mut self, message: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.is_some() {
            return;
        }
        *failed = Some(message.to_string());
        drop(failed);
        if let Some(f) = &self.on_failure {
            f(message);
        }
    }
}

/// What a [`crate::Journaler`] shares: the store, the channel, the thread.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn RunStore>,
    tx: Sender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The next run's [`RunKey`].
    next_key: std::sync::atomic::AtomicU64,
    /// This process, as the runs it writes name their owner (read from `/proc` once).
    pub(crate) owner: String,
}

impl Shared {
    pub(crate) fn start(store: Arc<dyn RunStore>) -> Result<Arc<Self>, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("operonx-journal".into())
            .spawn(move || Writer { store: thread_store, runs: HashMap::new() }.run(rx))
            .map_err(|e| StoreError::Writer {
                store: store.location().to_string(),
                message: format!("cannot start the journal writer: {e}"),
            })?;
        let owner = operonx_trace::ProcessIdentity::current().to_column();
        Ok(Arc::new(Self { store, tx, thread: Mutex::new(Some(thread)), next_key: Default::default(), owner }))
    }

    /// A key for a run this writer takes on.
    pub(crate) fn new_key(&self) -> RunKey {
        self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn sender(&self) -> Sender<Message> {
        self.tx.clone()
    }

    pub(crate) fn send(&self, m: Message) -> Result<(), StoreError> {
        self.tx.send(m).map_err(|_| StoreError::Writer {
            store: self.store.location().to_string(),
            message: "the journal writer stopped".into(),
        })
    }
}

impl Drop for Shared {
    /// Commit what is queued and stop the thread.
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Close);
        if let Some(t) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    store: Arc<dyn RunStore>,
    runs: HashMap<RunKey, RunSlot>,
}

/// A group being built: the writes, the run each is for, and who waits for it.
#[derive(Default)]
struct Group {
    writes: Vec<Write>,
    runs: Vec<RunKey>,
    /// The open `Append` of each run (entries go there until the run's next create or end).
    open: HashMap<RunKey, usize>,
    /// The open `Events` write of each run (events go there until the run's end).
    open_events: HashMap<RunKey, usize>,
    acks: Vec<(Ack, Option<RunKey>)>,
}

impl Group {
    /// Add `event` to the run's open events write, made when there is none.
    fn push_event(&mut self, run: RunKey, slot: &RunSlot, event: StoredEvent) {
        let i = match self.open_events.get(&run) {
            Some(&i) => i,
            None => {
                self.writes.push(Write::Events { lease: slot.lease.clone(), events: Vec::new() });
                self.runs.push(run);
                self.open_events.insert(run, self.writes.len() - 1);
                self.writes.len() - 1
            }
        };
        // `open_events` only ever points at events writes.
        if let Some(Write::Events { events, .. }) = self.writes.get_mut(i) {
            events.push(event);
        }
    }

    /// Add `entry` to the run's open append, made when there is none.
    fn push_entry(&mut self, run: RunKey, slot: &RunSlot, entry: crate::Entry) {
        let i = match self.open.get(&run) {
            Some(&i) => i,
            None => {
                self.writes.push(Write::Append { lease: slot.lease.clone(), batch: Batch::default() });
                self.runs.push(run);
                self.open.insert(run, self.writes.len() - 1);
                self.writes.len() - 1
            }
        };
        // `open` only ever points at appends.
        if let Some(Write::Append { batch, .. }) = self.writes.get_mut(i) {
            batch.entries.push(entry);
        }
    }
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        let mut queue: Vec<Message> = Vec::new();
        loop {
            let beat = self.runs.values().map(|s| s.lease.ttl / 3).min().unwrap_or(DEFAULT_BEAT);
            let mut closed = false;
            match rx.recv_timeout(beat.max(Duration::from_millis(10))) {
                Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => closed = true,
                Ok(m) => queue.push(m),
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !closed && queue.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(Message::Close) => closed = true,
                    Ok(m) => queue.push(m),
                    Err(_) => break,
                }
            }
            self.commit(&mut queue);
            if closed {
                return;
            }
        }
    }

    /// Build one group from `queue` (plus lease renewals) and commit it.
    fn commit(&mut self, queue: &mut Vec<Message>) {
        let mut g = Group::default();
        for m in queue.drain(..) {
            self.take(m, &mut g);
        }
        // Runs with nothing to write renew their lease when it is a third gone.
        for (&key, slot) in &self.runs {
            if !g.open.contains_key(&key)
                && !slot.finished
                && slot.failure().is_none()
                && slot.last_write.elapsed() >= slot.lease.ttl / 3
            {
                g.writes.push(Write::Append { lease: slot.lease.clone(), batch: Batch::default() });
                g.runs.push(key);
            }
        }
        // Each run's scratch (when it changed) and interrupts go with its last append.
        for (run, &i) in &g.open {
            let (Some(slot), Some(Write::Append { batch, .. })) = (self.runs.get_mut(run), g.writes.get_mut(i)) else {
                continue;
            };
            let version = slot.scratch.version();
            if slot.scratch_version != Some(version) {
                let mut map = slot.scratch.snapshot();
                slot.secrets.redact_map(&mut map);
                batch.scratch = Some(map);
                slot.scratch_version = Some(version);
            }
            if slot.pending_changed {
                batch.pending = Some(slot.pending.clone());
                slot.pending_changed = false;
            }
        }
        if g.writes.is_empty() {
            for (ack, _) in g.acks {
                let _ = ack.send(Ok(()));
            }
            return;
        }
        match self.store.write(&g.writes) {
            Ok(results) => {
                for (run, result) in g.runs.iter().zip(results) {
                    if let (Err(e), Some(slot)) = (result, self.runs.get_mut(run)) {
                        slot.fail(&e.to_string());
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                for run in &g.runs {
                    if let Some(slot) = self.runs.get_mut(run) {
                        slot.fail(&message);
                    }
                }
            }
        }
        let now = Instant::now();
        for run in &g.runs {
            if let Some(slot) = self.runs.get_mut(run) {
                slot.last_write = now;
            }
        }
        for (ack, run) in g.acks {
            let failure = run.and_then(|r| self.runs.get(&r)).and_then(RunSlot::failure);
            let _ = ack.send(failure.map_or(Ok(()), Err));
        }
        self.runs.retain(|_, slot| !slot.finished);
    }

    /// Add one message to the group.
    fn take(&mut self, m: Message, g: &mut Group) {
        match m {
            Message::Create { key, run, owner, ttl, slot, ack } => {
                g.open.remove(&key);
                g.open_events.remove(&key);
                g.writes.push(Write::Create { run: *run, owner, ttl });
                g.runs.push(key);
                self.runs.insert(key, *slot);
                if let Some(ack) = ack {
                    g.acks.push((ack, Some(key)));
                }
            }
            Message::Adopt { key, slot } => {
                self.runs.insert(key, *slot);
            }
            Message::Entry { run, entry, ack } => {
                let Some(slot) = self.runs.get_mut(&run) else {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err("the run is not being written by this process".to_string()));
                    }
                    return;
                };
                if let Some(message) = slot.failure() {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(message));
                    }
                    return;
                }
                if let JournalEntry::Interrupt(i) = &entry {
                    let mut i = i.clone();
                    slot.secrets.redact_value(&mut i.payload);
                    slot.pending.push(i);
                    slot.pending_changed = true;
                }
                let encoded = encode(entry, slot.next_seq, &slot.secrets);
                slot.next_seq += 1;
                g.push_entry(run, slot, encoded);
                if let Some(ack) = ack {
                    g.acks.push((ack, Some(run)));
                }
            }
            Message::Event { run, mut event } => {
                let Some(slot) = self.runs.get_mut(&run) else { return };
                if slot.failure().is_some() {
                    return;
                }
                if !slot.secrets.is_empty() {
                    slot.secrets.redact_value(&mut event.event);
                }
                g.push_event(run, slot, event);
            }
            Message::Finish { run, end, export, ack } => {
                let Some(slot) = self.runs.get_mut(&run) else {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err("the run is not being written by this process".to_string()));
                    }
                    return;
                };
                for entry in export {
                    let encoded = encode(entry, slot.next_seq, &slot.secrets);
                    slot.next_seq += 1;
                    g.push_entry(run, slot, encoded);
                }
                g.open.remove(&run);
                g.open_events.remove(&run);
                let mut end = *end;
                if !slot.secrets.is_empty() {
                    if let Some(result) = end.result.as_mut() {
                        slot.secrets.redact_value(result);
                    }
                    slot.secrets.redact_map(&mut end.scratch);
                    for i in &mut end.pending {
                        slot.secrets.redact_value(&mut i.payload);
                    }
                }
                g.writes.push(Write::Finish { lease: slot.lease.clone(), end });
                g.runs.push(run);
                slot.finished = true;
                if let Some(ack) = ack {
                    g.acks.push((ack, Some(run)));
                }
            }
            Message::Flush(ack) => g.acks.push((ack, None)),
            Message::Close => {}
        }
    }
}
