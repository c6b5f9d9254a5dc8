//! The run queue, on every backend: enqueue with idempotency keys, workers claiming the
//! oldest claimable run (queued, then crashed) and never the same one, requeue and cancel
//! rules, events stored sealed through the journal writer and read back in order,
//! listings by tenant in cursor pages, counts, waiters, and the migration of a store
//! written by the first schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Harness, LONG, Raw, TINY, new_run, op_entries};
use operonx_runtime::{Interrupt, Scratch};
use operonx_store::{
    Batch, Cancelled, Cursor, Durability, Journaler, ListFilter, NewRun, RunEnd, RunStatus, RunStore, StoreError,
    StoredEvent, WriterOptions,
};
use serde_json::{Map, Value, json};

suite! {
    store: [
        enqueue_is_idempotent_per_tenant,
        enqueue_many_tells_how_each_run_fared,
        claim_next_takes_queued_oldest_first_then_crashed,
        claim_many_takes_up_to_max_oldest_first,
        queued_runs_are_not_resumed_by_hand_nor_pruned,
        requeue_rules,
        cancel_rules,
        list_by_tenant_in_cursor_pages,
        counts_by_status,
    ],
    harness: [
        concurrent_workers_never_claim_the_same_run,
        events_are_stored_sealed_and_read_back_in_order,
        waiter_wakes_on_what_other_connections_do,
    ],
}

/// What must never be found in clear in a store.
const MARKER: &str = "ev-S3cr3t-marker";

fn object(v: Value) -> Map<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn end(status: RunStatus) -> RunEnd {
    RunEnd {
        status,
        result: Some(json!({"out": 1})),
        pending: Vec::new(),
        scratch: Map::new(),
        reason: Some(format!("stopped: {status}")),
        stats: None,
    }
}

fn waiting() -> RunEnd {
    let ask = Interrupt { id: "main.ask".into(), op: "main.ask".into(), payload: json!({"q": "ok?"}) };
    RunEnd { pending: vec![ask], ..end(RunStatus::Waiting) }
}

fn keyed(tenant: Option<&str>, key: Option<&str>) -> NewRun {
    NewRun { tenant: tenant.map(String::from), idempotency_key: key.map(String::from), ..new_run("queued") }
}

fn status(s: &dyn RunStore, run_id: &str) -> RunStatus {
    s.load(run_id).unwrap().summary.status
}

/// The same key twice (same tenant) gives the first run, untouched; another tenant, or
/// no key, gives a new run. A queued run reads as queued, with its tenant, no owner and
/// nothing journaled; its id taken again is refused.
fn enqueue_is_idempotent_per_tenant(s: &dyn RunStore) {
    let first = keyed(Some("acme"), Some("order-42"));
    let got = s.enqueue(&first).unwrap();
    assert_eq!((got.run_id.as_str(), got.created), (first.run_id.as_str(), true));
    let again = s.enqueue(&keyed(Some("acme"), Some("order-42"))).unwrap();
    assert_eq!((again.run_id.as_str(), again.created), (first.run_id.as_str(), false), "same tenant, same key");
    let other = keyed(Some("globex"), Some("order-42"));
    let got = s.enqueue(&other).unwrap();
    assert_eq!((got.run_id.as_str(), got.created), (other.run_id.as_str(), true), "another tenant");
    let untenanted = keyed(None, Some("order-42"));
    assert!(s.enqueue(&untenanted).unwrap().created, "no tenant is a tenant of its own");
    assert_eq!(s.enqueue(&keyed(None, Some("order-42"))).unwrap().run_id, untenanted.run_id);
    let (a, b) = (keyed(Some("acme"), None), keyed(Some("acme"), None));
    assert!(s.enqueue(&a).unwrap().created && s.enqueue(&b).unwrap().created, "no key, no deduplication");
    let err = s.enqueue(&a).unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }), "{err}");

    let run = s.load(&first.run_id).unwrap();
    assert_eq!(run.summary.status, RunStatus::Queued);
    assert_eq!(run.summary.tenant.as_deref(), Some("acme"));
    assert_eq!((run.summary.entries, run.summary.resumes, run.summary.events), (0, 0, 0));
    assert_eq!((run.inputs.clone(), run.graph.clone()), (first.inputs.clone(), first.graph.clone()));
    assert_eq!(s.list(&ListFilter::default()).unwrap().len(), 5);
}

/// Several runs queued at once fare each as alone: new ones queued, a key used earlier in
/// the same group gives that run, a taken run id is refused without failing the others.
fn enqueue_many_tells_how_each_run_fared(s: &dyn RunStore) {
    let taken = keyed(Some("acme"), None);
    s.enqueue(&taken).unwrap();
    let (a, b) = (keyed(Some("acme"), Some("k-1")), keyed(Some("acme"), Some("k-1")));
    let c = keyed(None, None);
    let fared = s.enqueue_many(&[a.clone(), taken.clone(), b, c.clone()]).unwrap();
    assert_eq!(fared.len(), 4);
    let ok = |i: usize| fared[i].as_ref().map(|e| (e.run_id.clone(), e.created)).unwrap();
    assert_eq!(ok(0), (a.run_id.clone(), true));
    assert!(matches!(fared[1], Err(StoreError::Exists { .. })), "{:?}", fared[1]);
    assert_eq!(ok(2), (a.run_id.clone(), false), "the key's run, queued just before in the group");
    assert_eq!(ok(3), (c.run_id.clone(), true));
    for id in [&a.run_id, &c.run_id] {
        assert_eq!(status(s, id), RunStatus::Queued);
    }
    assert_eq!(s.list(&ListFilter::default()).unwrap().len(), 3);
    assert!(s.enqueue_many(&[]).unwrap().is_empty());
}

/// Queued runs go first, oldest first, as new runs (epoch 1, nothing to replay); then a
/// crashed run, with its journal, as a resume (its old lease lost); then nothing.
fn claim_next_takes_queued_oldest_first_then_crashed(s: &dyn RunStore) {
    assert!(s.claim_next("worker", LONG).unwrap().is_none(), "an empty queue");
    let crashed = new_run("crashed");
    let old = s.create(&crashed, "owner-x", TINY).unwrap();
    s.append(&old, &Batch { entries: op_entries(1, 3), ..Batch::default() }).unwrap();
    let live = s.create(&new_run("live"), "owner-y", LONG).unwrap();
    let mut queued = Vec::new();
    for i in 0..3 {
        let run = new_run(&format!("q{i}"));
        s.enqueue(&run).unwrap();
        queued.push(run);
        std::thread::sleep(Duration::from_millis(3));
    }
    std::thread::sleep(TINY * 2);
    for run in &queued {
        let (lease, got) = s.claim_next("worker-1", LONG).unwrap().unwrap();
        assert_eq!(lease.run_id, run.run_id, "oldest queued first");
        assert_eq!((lease.epoch, lease.next_seq, lease.owner.as_str()), (1, 1, "worker-1"));
        assert_eq!((got.summary.status, got.summary.resumes), (RunStatus::Running, 0));
        assert_eq!((got.inputs.clone(), got.entries.len()), (run.inputs.clone(), 0));
        assert_eq!(status(s, &run.run_id), RunStatus::Running);
        s.append(&lease, &Batch { entries: op_entries(1, 1), ..Batch::default() }).unwrap();
    }
    let (lease, got) = s.claim_next("worker-2", LONG).unwrap().unwrap();
    assert_eq!(lease.run_id, crashed.run_id, "then the crashed run");
    assert_eq!((lease.epoch, lease.next_seq), (2, 4));
    assert_eq!((got.entries.len(), got.summary.resumes), (3, 1));
    let lost = s.append(&old, &Batch { entries: op_entries(4, 1), ..Batch::default() }).unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost { .. }), "{lost}");
    assert!(s.claim_next("worker-3", LONG).unwrap().is_none(), "live runs are not taken");
    assert_eq!(status(s, &live.run_id), RunStatus::Running);
}

/// `claim_many` takes up to `max` queued runs, oldest first, each running with a lease of
/// its own; then the rest; then, with none queued, the crashed run; then nothing.
fn claim_many_takes_up_to_max_oldest_first(s: &dyn RunStore) {
    assert!(s.claim_many("worker", LONG, 4).unwrap().is_empty(), "an empty queue");
    let crashed = new_run("crashed");
    let old = s.create(&crashed, "owner-x", TINY).unwrap();
    s.append(&old, &Batch { entries: op_entries(1, 2), ..Batch::default() }).unwrap();
    let mut queued = Vec::new();
    for i in 0..5 {
        let run = new_run(&format!("q{i}"));
        s.enqueue(&run).unwrap();
        queued.push(run.run_id);
        std::thread::sleep(Duration::from_millis(3));
    }
    std::thread::sleep(TINY * 2);
    let ids = |claimed: &[(operonx_store::Lease, operonx_store::StoredRun)]| -> Vec<String> {
        for (lease, run) in claimed {
            assert_eq!((lease.epoch, lease.owner.as_str(), run.summary.status), (1, "worker", RunStatus::Running));
            assert_eq!(status(s, &lease.run_id), RunStatus::Running);
        }
        claimed.iter().map(|(lease, _)| lease.run_id.clone()).collect()
    };
    assert_eq!(ids(&s.claim_many("worker", LONG, 3).unwrap()), queued[..3], "the three oldest");
    assert_eq!(ids(&s.claim_many("worker", LONG, 10).unwrap()), queued[3..], "then the rest");
    let taken = s.claim_many("worker-2", LONG, 10).unwrap();
    assert_eq!(taken.len(), 1, "then the crashed run alone");
    assert_eq!(
        (taken[0].0.run_id.as_str(), taken[0].0.epoch, taken[0].1.entries.len()),
        (crashed.run_id.as_str(), 2, 2)
    );
    assert!(s.claim_many("worker", LONG, 10).unwrap().is_empty(), "then nothing");
}

/// `claim` (`operonx resume`) refuses a queued run, naming why; prune never deletes one;
/// a queued run is not "resumable".
fn queued_runs_are_not_resumed_by_hand_nor_pruned(s: &dyn RunStore) {
    let run = new_run("q");
    s.enqueue(&run).unwrap();
    let err = s.claim(&run.run_id, "cli", LONG, &Map::new()).unwrap_err();
    assert!(matches!(err, StoreError::Queued { .. }), "{err}");
    assert!(err.to_string().contains("is queued"), "{err}");
    assert!(!RunStatus::Queued.resumable());
    let later = Utc::now() + chrono::Duration::hours(1);
    assert_eq!(s.prune(later, Some(RunStatus::Queued)).unwrap(), 0);
    assert_eq!(s.prune(later, None).unwrap(), 0);
    assert_eq!(status(s, &run.run_id), RunStatus::Queued);
}

/// Stopped runs go back on the queue with their answers added (waiting, crashed, failed);
/// a queued one stays queued with answers added; a running one is busy, a done one
/// finished, a missing one not found. A requeued run is claimed with its journal and
/// answers, as a resume; its previous owner can write it no more.
fn requeue_rules(s: &dyn RunStore) {
    let answers = object(json!({"main.ask": "yes"}));
    let err = s.requeue(&"0".repeat(32), &answers).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // Runs created a few milliseconds apart, so the queue's order is theirs.
    let tick = || std::thread::sleep(Duration::from_millis(3));
    let queued = new_run("q");
    s.enqueue(&queued).unwrap();
    tick();
    s.requeue(&queued.run_id, &object(json!({"a": 1}))).unwrap();
    let got = s.load(&queued.run_id).unwrap();
    assert_eq!((got.summary.status, got.answers), (RunStatus::Queued, object(json!({"a": 1}))));

    let running = new_run("r");
    let lease = s.create(&running, "owner", LONG).unwrap();
    tick();
    assert!(matches!(s.requeue(&running.run_id, &answers), Err(StoreError::Busy { .. })));
    s.finish(&lease, &end(RunStatus::Done)).unwrap();
    assert!(matches!(s.requeue(&running.run_id, &answers), Err(StoreError::Finished { .. })));

    let asking = new_run("w");
    let lease = s.create(&asking, "owner", LONG).unwrap();
    tick();
    s.append(&lease, &Batch { entries: op_entries(1, 2), ..Batch::default() }).unwrap();
    s.finish(&lease, &waiting()).unwrap();
    s.requeue(&asking.run_id, &answers).unwrap();
    let got = s.load(&asking.run_id).unwrap();
    assert_eq!((got.summary.status, got.summary.reason.clone()), (RunStatus::Queued, None));
    let err = s.finish(&lease, &end(RunStatus::Failed)).unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "the last owner's lease is gone: {err}");

    let crashed = new_run("c");
    let old = s.create(&crashed, "owner", TINY).unwrap();
    std::thread::sleep(TINY * 2);
    let failed = new_run("f");
    let l = s.create(&failed, "owner", LONG).unwrap();
    s.finish(&l, &end(RunStatus::Failed)).unwrap();
    s.requeue(&crashed.run_id, &Map::new()).unwrap();
    s.requeue(&failed.run_id, &Map::new()).unwrap();
    let lost = s.append(&old, &Batch::default()).unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost { .. }), "{lost}");

    let mut claimed = Vec::new();
    while let Some((lease, run)) = s.claim_next("worker", LONG).unwrap() {
        claimed.push((lease, run));
    }
    let ids: Vec<&str> = claimed.iter().map(|(l, _)| l.run_id.as_str()).collect();
    assert_eq!(ids, [&queued.run_id, &asking.run_id, &crashed.run_id, &failed.run_id]);
    let (lease, run) = &claimed[1];
    assert_eq!((lease.epoch, lease.next_seq), (3, 3), "claimed, requeued, claimed");
    assert_eq!((run.answers.clone(), run.entries.len(), run.summary.resumes), (answers, 2, 1));
    assert_eq!(claimed[0].1.summary.resumes, 0, "a run that never ran is not resumed");
}

/// Queued, waiting and crashed runs are cancelled at once (reason kept, the crashed run's
/// owner locked out); a running one is flagged for its owner, who finds it through
/// `cancel_requests` (with its current epoch only); ended runs are left alone.
fn cancel_rules(s: &dyn RunStore) {
    let err = s.cancel(&"0".repeat(32), "no").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    let queued = new_run("q");
    s.enqueue(&queued).unwrap();
    assert_eq!(s.cancel(&queued.run_id, "changed my mind").unwrap(), Cancelled::Now);
    let got = s.load(&queued.run_id).unwrap();
    assert_eq!((got.summary.status, got.summary.reason.as_deref()), (RunStatus::Cancelled, Some("changed my mind")));
    assert!(s.claim_next("worker", LONG).unwrap().is_none(), "a cancelled run is not claimed");

    let asking = new_run("w");
    let lease = s.create(&asking, "owner", LONG).unwrap();
    s.finish(&lease, &waiting()).unwrap();
    assert_eq!(s.cancel(&asking.run_id, "nobody answers").unwrap(), Cancelled::Now);
    assert_eq!(status(s, &asking.run_id), RunStatus::Cancelled);

    let crashed = new_run("c");
    let old = s.create(&crashed, "owner", TINY).unwrap();
    std::thread::sleep(TINY * 2);
    assert_eq!(s.cancel(&crashed.run_id, "gone").unwrap(), Cancelled::Now);
    assert_eq!(status(s, &crashed.run_id), RunStatus::Cancelled);
    assert!(matches!(s.finish(&old, &end(RunStatus::Done)), Err(StoreError::LeaseLost { .. })));

    let running = new_run("r");
    let lease = s.create(&running, "owner", LONG).unwrap();
    let other = s.create(&new_run("o"), "owner", LONG).unwrap();
    assert!(s.cancel_requests(&[lease.clone(), other.clone()]).unwrap().is_empty());
    assert_eq!(s.cancel(&running.run_id, "stop").unwrap(), Cancelled::Requested);
    assert_eq!(status(s, &running.run_id), RunStatus::Running, "its owner stops it");
    assert_eq!(s.cancel_requests(&[other.clone(), lease.clone()]).unwrap(), vec![running.run_id.clone()]);
    let stale = operonx_store::Lease { epoch: lease.epoch + 1, ..lease.clone() };
    assert!(s.cancel_requests(&[stale]).unwrap().is_empty(), "another epoch's request is not this lease's");
    assert!(s.cancel_requests(&[]).unwrap().is_empty());
    s.finish(&lease, &end(RunStatus::Cancelled)).unwrap();
    assert_eq!(s.cancel(&running.run_id, "again").unwrap(), Cancelled::AlreadyEnded(RunStatus::Cancelled));

    // Put back on the queue, the run is not asked to stop any more.
    s.requeue(&running.run_id, &Map::new()).unwrap();
    let (lease, _) = s.claim_next("worker", LONG).unwrap().unwrap();
    assert_eq!(lease.run_id, running.run_id);
    assert!(s.cancel_requests(std::slice::from_ref(&lease)).unwrap().is_empty());
    s.finish(&lease, &end(RunStatus::Done)).unwrap();
    assert_eq!(s.cancel(&running.run_id, "late").unwrap(), Cancelled::AlreadyEnded(RunStatus::Done));
    s.finish(&other, &end(RunStatus::Failed)).unwrap();
    assert_eq!(s.cancel(&other.run_id, "late").unwrap(), Cancelled::AlreadyEnded(RunStatus::Failed));
}

/// Every page of `filter` (pages of `size`), following the cursor of each page's last run.
fn pages(s: &dyn RunStore, filter: &ListFilter, size: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = s.list(&ListFilter { limit: size, after: after.clone(), ..filter.clone() }).unwrap();
        let Some(last) = page.last() else { return out };
        let cursor = Cursor { created_at: last.created_at, run_id: last.run_id.clone() };
        // A cursor goes through its text form (what an API hands out).
        after = Some(cursor.to_string().parse().unwrap());
        out.push(page.iter().map(|r| r.run_id.clone()).collect());
        assert!(out.len() < 100, "pages never end");
    }
}

/// Runs of two tenants and of none, created and enqueued in quick succession (many in
/// the same millisecond): a tenant's listing holds its runs only, and cursor pages cover
/// every run exactly once, in the order of the whole listing.
fn list_by_tenant_in_cursor_pages(s: &dyn RunStore) {
    let mut of_a = Vec::new();
    for i in 0..7 {
        let run = NewRun { tenant: Some("a".into()), ..new_run("listed") };
        if i % 2 == 0 {
            s.enqueue(&run).unwrap();
        } else {
            s.create(&run, "owner", LONG).unwrap();
        }
        of_a.push(run.run_id);
    }
    for _ in 0..3 {
        s.enqueue(&NewRun { tenant: Some("b".into()), ..new_run("listed") }).unwrap();
    }
    for _ in 0..2 {
        s.create(&new_run("listed"), "owner", LONG).unwrap();
    }
    let a = ListFilter { tenant: Some("a".into()), limit: 100, ..ListFilter::default() };
    let whole: Vec<String> = s.list(&a).unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(whole.iter().collect::<HashSet<_>>(), of_a.iter().collect::<HashSet<_>>());
    assert!(s.list(&a).unwrap().iter().all(|r| r.tenant.as_deref() == Some("a")));
    let paged = pages(s, &a, 3);
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(paged.concat(), whole, "pages cover the listing exactly once, in order");

    let all = ListFilter { limit: 100, ..ListFilter::default() };
    let whole: Vec<String> = s.list(&all).unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(whole.len(), 12);
    assert_eq!(pages(s, &all, 5).concat(), whole);
    assert_eq!(pages(s, &all, 1).concat(), whole);
    let queued_a = ListFilter { status: Some(RunStatus::Queued), ..a.clone() };
    assert_eq!(pages(s, &queued_a, 2).concat().len(), 4);
    let running = ListFilter { status: Some(RunStatus::Running), ..all.clone() };
    assert_eq!(pages(s, &running, 2).concat().len(), 5, "derived statuses page too");
}

/// Counts per status, every status listed, crashed runs counted as crashed; by tenant.
fn counts_by_status(s: &dyn RunStore) {
    let counted = |tenant: Option<&str>| -> Vec<(RunStatus, u64)> {
        let counts = s.counts(tenant).unwrap();
        assert_eq!(counts.iter().map(|(st, _)| *st).collect::<Vec<_>>(), RunStatus::ALL);
        counts.into_iter().filter(|(_, n)| *n > 0).collect()
    };
    assert!(counted(None).is_empty());
    let of = |t: &str| NewRun { tenant: Some(t.into()), ..new_run("counted") };
    s.enqueue(&of("a")).unwrap();
    s.enqueue(&of("a")).unwrap();
    s.create(&of("a"), "owner", LONG).unwrap();
    s.create(&of("b"), "owner", TINY).unwrap();
    let l = s.create(&of("b"), "owner", LONG).unwrap();
    s.finish(&l, &waiting()).unwrap();
    let l = s.create(&of("a"), "owner", LONG).unwrap();
    s.finish(&l, &end(RunStatus::Done)).unwrap();
    std::thread::sleep(TINY * 2);
    use RunStatus::*;
    assert_eq!(counted(None), [(Queued, 2), (Running, 1), (Waiting, 1), (Crashed, 1), (Done, 1)]);
    assert_eq!(counted(Some("a")), [(Queued, 2), (Running, 1), (Done, 1)]);
    assert_eq!(counted(Some("b")), [(Waiting, 1), (Crashed, 1)]);
    assert!(counted(Some("nobody")).is_empty());
}

/// 200 queued runs, four workers (each with a connection of its own; two claiming one
/// run at a time, two in batches) claiming at once until the queue is empty: every run
/// is claimed exactly once.
fn concurrent_workers_never_claim_the_same_run(h: &Harness) {
    let n = 200;
    let mut queued = HashSet::new();
    for _ in 0..n {
        let run = new_run("many");
        h.store.enqueue(&run).unwrap();
        queued.insert(run.run_id);
    }
    let barrier = std::sync::Barrier::new(4);
    let claimed: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (store, barrier) = (h.reopen(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    let owner = format!("worker-{w}");
                    if w % 2 == 0 {
                        while let Some((lease, _)) = store.claim_next(&owner, LONG).unwrap() {
                            mine.push(lease.run_id);
                        }
                    } else {
                        // Batches, as a server's claimer takes them.
                        loop {
                            let batch = store.claim_many(&owner, LONG, 7).unwrap();
                            if batch.is_empty() {
                                break;
                            }
                            mine.extend(batch.into_iter().map(|(lease, _)| lease.run_id));
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let all: Vec<&String> = claimed.iter().flatten().collect();
    assert_eq!(all.len(), n, "each run claimed once: {:?}", claimed.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(all.into_iter().cloned().collect::<HashSet<_>>(), queued);
    if !matches!(h.database(), Raw::Sqlite(_)) {
        // Postgres: workers skip the rows others hold instead of waiting for them. (SQLite
        // serializes them on its write lock, and may well let one take everything.)
        assert!(claimed.iter().filter(|c| !c.is_empty()).count() >= 2, "the workers shared the queue");
    }
}

fn writer(mode: Durability) -> WriterOptions {
    WriterOptions { mode, scratch: Scratch::default(), secrets: Default::default(), on_failure: None }
}

fn event(seq: u64) -> StoredEvent {
    StoredEvent { seq, event: json!({"type": "op_end", "op": "main.step", "said": format!("{MARKER} {seq}")}) }
}

/// Events recorded through the journal writer, in every durability mode, are stored as
/// they go (before the run ends), read back in order from any seq, and numbered on
/// across a resume; none is stored in clear.
fn events_are_stored_sealed_and_read_back_in_order(h: &Harness) {
    let store: Arc<dyn RunStore> = Arc::from(h.reopen());
    let journaler = Journaler::start(store.clone()).unwrap();
    for mode in [Durability::Batched, Durability::Sync, Durability::Off] {
        let run = new_run("events");
        let id = run.run_id.clone();
        let durable = journaler.create(run, LONG, writer(mode)).unwrap();
        for seq in 1..=5 {
            durable.record_event(event(seq)).unwrap();
        }
        journaler.flush().unwrap();
        let got = store.events(&id, 0, 100).unwrap();
        assert_eq!(got, (1..=5).map(event).collect::<Vec<_>>(), "{mode:?}: stored while the run goes");
        assert_eq!(store.events(&id, 2, 2).unwrap(), vec![event(3), event(4)]);
        assert!(store.events(&id, 5, 10).unwrap().is_empty());
        assert_eq!(store.load(&id).unwrap().summary.events, 5);
        durable.finish(&waiting()).unwrap();

        let (resumed, stored) = journaler.resume(&id, &Map::new(), LONG, writer(mode)).unwrap();
        assert_eq!(stored.summary.events, 5, "a resumed run numbers on from here");
        resumed.record_event(event(6)).unwrap();
        resumed.record_event(event(7)).unwrap();
        resumed.finish(&end(RunStatus::Done)).unwrap();
        assert_eq!(store.events(&id, 5, 10).unwrap(), vec![event(6), event(7)]);
        assert_eq!(store.events(&id, 0, 100).unwrap().len(), 7);
        assert_eq!(store.list(&ListFilter::default()).unwrap()[0].events, 7);
    }

    // A worker's run: taken from the queue with the writer's owner, adopted, written.
    let queued = new_run("worker-run");
    store.enqueue(&queued).unwrap();
    let (lease, claimed) = store.claim_next(journaler.owner(), LONG).unwrap().unwrap();
    assert_eq!((lease.run_id.as_str(), claimed.summary.events), (queued.run_id.as_str(), 0));
    let adopted = journaler.adopt(lease, &claimed, writer(Durability::Batched)).unwrap();
    adopted.record_event(event(1)).unwrap();
    adopted.record_event(event(2)).unwrap();
    adopted.finish(&end(RunStatus::Done)).unwrap();
    assert_eq!(store.events(&queued.run_id, 0, 10).unwrap(), vec![event(1), event(2)]);
    let done = store.load(&queued.run_id).unwrap().summary;
    assert_eq!((done.status, done.events), (RunStatus::Done, 2));

    let err = store.events(&"0".repeat(32), 0, 10).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    store.check().unwrap();
    drop(journaler);
    assert!(!h.raw_text().contains(MARKER), "an event is stored in clear");

    // Events of a run that does not exist are found by the check.
    let orphan = "e".repeat(32);
    h.raw(&format!("INSERT INTO {{events}} (run_id, seq, last_seq, body) VALUES ('{orphan}', 1, 1, '\\x00')"));
    let err = store.check().unwrap_err().to_string();
    assert!(err.contains("events of runs that do not exist") && err.contains(&orphan), "{err}");
}

/// Postgres: a waiter wakes within two seconds of an enqueue, a cancel request and
/// events written from other connections. Stores without notifications: the waiter
/// returns nothing, after the timeout.
fn waiter_wakes_on_what_other_connections_do(h: &Harness) {
    let mut waiter = h.store.waiter().unwrap();
    match h.database() {
        Raw::Sqlite(_) => {
            let start = Instant::now();
            assert!(waiter.wait(Duration::from_millis(200)).unwrap().is_empty());
            assert!(start.elapsed() >= Duration::from_millis(200));
        }
        #[cfg(feature = "postgres")]
        Raw::Postgres(schema) => postgres_waiter_wakes(h, schema, waiter),
    }
}

/// [`waiter_wakes_on_what_other_connections_do`] on Postgres.
#[cfg(feature = "postgres")]
fn postgres_waiter_wakes(h: &Harness, schema: &common::PgSchema, mut waiter: Box<dyn operonx_store::Waiter>) {
    // Other tests share the server's notifications: wait for this test's own.
    let until = |waiter: &mut Box<dyn operonx_store::Waiter>,
                 want: &operonx_store::Notice,
                 done: &dyn Fn() -> Option<Instant>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = waiter.wait(Duration::from_millis(500)).unwrap();
            if let Some(at) = done().filter(|_| got.contains(want)) {
                return at.elapsed();
            }
            assert!(Instant::now() < deadline, "no {want:?} notice");
        }
    };
    // A plain listener sees which run each notice is about (the waiter's `Work` does not
    // say): this test's runs, not other tests' on the same server.
    let mut listener = ::postgres::Client::connect(&schema.url, ::postgres::NoTls).unwrap();
    listener.batch_execute("LISTEN operonx_runs").unwrap();
    let heard = |listener: &mut ::postgres::Client, id: &str| {
        use ::postgres::fallible_iterator::FallibleIterator;
        let mut notifications = listener.notifications();
        let mut it = notifications.timeout_iter(Duration::from_secs(2));
        while let Some(n) = it.next().unwrap() {
            if n.channel() == "operonx_runs" && n.payload() == id {
                return true;
            }
        }
        false
    };
    let other = h.reopen();
    // When the enqueue began (the notice may come before the enqueue returns).
    let began = std::sync::Mutex::new(None);
    let run = new_run("woken");
    let id = run.run_id.clone();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            *began.lock().unwrap() = Some(Instant::now());
            other.enqueue(&run).unwrap();
        });
        let late = until(&mut waiter, &operonx_store::Notice::Work, &|| *began.lock().unwrap());
        assert!(late < Duration::from_secs(2), "woken {late:?} after the enqueue");
    });
    assert!(heard(&mut listener, &id), "the enqueue notified its run");
    let (lease, _) = other.claim_next("worker", LONG).unwrap().unwrap();
    assert_eq!(lease.run_id, id);
    assert_eq!(other.cancel(&id, "stop").unwrap(), Cancelled::Requested);
    let now = Instant::now();
    until(&mut waiter, &operonx_store::Notice::Cancel(id.clone()), &|| Some(now));
    let events = operonx_store::Write::Events { lease: lease.clone(), events: vec![event(1)] };
    other.write(&[events]).unwrap().remove(0).unwrap();
    let now = Instant::now();
    until(&mut waiter, &operonx_store::Notice::Events(id.clone()), &|| Some(now));
    other.finish(&lease, &waiting()).unwrap();
    other.requeue(&id, &Map::new()).unwrap();
    assert!(heard(&mut listener, &id), "the requeue notified its run");
}

/// The tables of the first schema (version 1), as the first build created them.
const V1_SQLITE: &str = "
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY NOT NULL, graph_name TEXT NOT NULL, graph_path TEXT, fingerprint TEXT NOT NULL,
    spec TEXT NOT NULL, scratch TEXT, pending TEXT, answers TEXT, outcome TEXT, reason TEXT, status TEXT NOT NULL,
    owner TEXT, epoch INTEGER NOT NULL, heartbeat_ms INTEGER, lease_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, resumes INTEGER NOT NULL, entries INTEGER NOT NULL
);
CREATE INDEX runs_by_created ON runs (created_ms, run_id);
CREATE INDEX runs_by_updated ON runs (updated_ms);
CREATE TABLE journal (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, count INTEGER NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (run_id, seq)
);
CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// The columns of a version 1 run row.
const V1_COLUMNS: &str = "run_id, graph_name, graph_path, fingerprint, spec, scratch, pending, answers, outcome, \
    reason, status, owner, epoch, heartbeat_ms, lease_ms, created_ms, updated_ms, resumes, entries";

/// Two runs (one waiting with a journal, one done) in a store, and what they read as.
fn two_runs(s: &dyn RunStore) -> Vec<operonx_store::StoredRun> {
    let (w, d) = (new_run("old-waiting"), new_run("old-done"));
    let lease = s.create(&w, "owner", LONG).unwrap();
    s.append(&lease, &Batch { entries: op_entries(1, 3), ..Batch::default() }).unwrap();
    s.finish(&lease, &waiting()).unwrap();
    let lease = s.create(&d, "owner", LONG).unwrap();
    s.finish(&lease, &end(RunStatus::Done)).unwrap();
    vec![s.load(&w.run_id).unwrap(), s.load(&d.run_id).unwrap()]
}

/// What a migrated store must do: its runs read back as they were, its check passes, and
/// the queue works on it (a new run enqueued and an old one requeued, both claimed).
fn migrated_store_works(s: &dyn RunStore, before: &[operonx_store::StoredRun]) {
    for run in before {
        assert_eq!(&s.load(&run.summary.run_id).unwrap(), run, "a run of the old schema reads back as it was");
    }
    s.check().unwrap();
    let fresh = NewRun { idempotency_key: Some("k".into()), ..new_run("new") };
    assert!(s.enqueue(&fresh).unwrap().created);
    assert!(!s.enqueue(&NewRun { idempotency_key: Some("k".into()), ..new_run("new") }).unwrap().created);
    s.requeue(&before[0].summary.run_id, &object(json!({"main.ask": "yes"}))).unwrap();
    let (first, old) = s.claim_next("worker", LONG).unwrap().unwrap();
    let (second, _) = s.claim_next("worker", LONG).unwrap().unwrap();
    assert_eq!(first.run_id, before[0].summary.run_id, "the older run first");
    assert_eq!(second.run_id, fresh.run_id);
    assert_eq!(old.summary.stats, None, "a run of the old schema has no stats");
    let stats = operonx_store::RunStats { ops: 2, errors: 0, llm_calls: 1, tokens: 40, cost_usd: 0.25 };
    s.finish(&first, &RunEnd { stats: Some(stats), ..end(RunStatus::Done) }).unwrap();
    assert_eq!(s.summary(&first.run_id).unwrap().stats, Some(stats), "stats stored in a migrated store");
    assert_eq!(s.load(&first.run_id).unwrap().summary.stats, Some(stats));
    let listed = s.list(&ListFilter::default()).unwrap();
    assert_eq!(listed.iter().find(|r| r.run_id == first.run_id).and_then(|r| r.stats), Some(stats));
    assert_eq!(s.counts(None).unwrap().iter().find(|(st, _)| *st == RunStatus::Done).map(|(_, n)| *n), Some(2));
}

/// A SQLite store made by the first schema (its runs written, sealed, by this build in
/// another file with the same key, then copied column by column) is migrated when this
/// build opens it: its runs stay, and it has the queue.
#[test]
fn a_sqlite_store_of_schema_1_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let key = operonx_store::StoreKey::generate().unwrap();
    let source = dir.path().join("source.db");
    let before = two_runs(&operonx_store::SqliteRunStore::open_with_key(&source, key.clone()).unwrap());
    let old = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(V1_SQLITE).unwrap();
    conn.execute("ATTACH DATABASE ?1 AS source", [source.to_str().unwrap()]).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO runs ({V1_COLUMNS}) SELECT {V1_COLUMNS} FROM source.runs;
         INSERT INTO journal SELECT * FROM source.journal;
         INSERT INTO meta SELECT * FROM source.meta;
         DETACH DATABASE source;"
    ))
    .unwrap();
    drop(conn);

    let store = operonx_store::SqliteRunStore::open_with_key(&old, key).unwrap();
    migrated_store_works(&store, &before);
    drop(store);
    let conn = rusqlite::Connection::open(&old).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
}

/// A Postgres store made by the first schema (its runs copied from a store of this build
/// in another schema, with the same key) is migrated when this build connects: its runs
/// stay, and it has the queue.
#[cfg(feature = "postgres")]
#[test]
fn a_postgres_store_of_schema_1_is_migrated() {
    let (Some(source), Some(old)) = (common::PgSchema::new(), common::PgSchema::new()) else { return };
    let key = operonx_store::StoreKey::generate().unwrap();
    let before = two_runs(&operonx_store::PostgresStore::connect_with_key(&source.url, key.clone()).unwrap());
    let mut client = ::postgres::Client::connect(&old.url, ::postgres::NoTls).unwrap();
    let src = source.name();
    client
        .batch_execute(&format!(
            "CREATE TABLE operonx_runs (
                run_id text PRIMARY KEY, graph_name text NOT NULL, graph_path text, fingerprint text NOT NULL,
                spec text NOT NULL, scratch text, pending text, answers text, outcome text, reason text,
                status text NOT NULL, owner text, epoch bigint NOT NULL, heartbeat_ms bigint, lease_ms bigint NOT NULL,
                created_ms bigint NOT NULL, updated_ms bigint NOT NULL, resumes bigint NOT NULL, entries bigint NOT NULL
            );
            CREATE INDEX operonx_runs_by_created ON operonx_runs (created_ms, run_id);
            CREATE INDEX operonx_runs_by_updated ON operonx_runs (updated_ms);
            CREATE TABLE operonx_journal (
                run_id text NOT NULL, seq bigint NOT NULL, last_seq bigint NOT NULL, count bigint NOT NULL,
                body bytea NOT NULL, PRIMARY KEY (run_id, seq)
            );
            CREATE TABLE operonx_store_meta (name text PRIMARY KEY, value text NOT NULL);
            INSERT INTO operonx_runs ({V1_COLUMNS}) SELECT {V1_COLUMNS} FROM {src}.operonx_runs;
            INSERT INTO operonx_journal SELECT * FROM {src}.operonx_journal;
            INSERT INTO operonx_store_meta VALUES ('schema', '1');
            INSERT INTO operonx_store_meta SELECT * FROM {src}.operonx_store_meta WHERE name = 'key_id';"
        ))
        .unwrap();
    let store = operonx_store::PostgresStore::connect_with_key(&old.url, key.clone()).unwrap();
    migrated_store_works(&store, &before);
    let version: String =
        client.query_one("SELECT value FROM operonx_store_meta WHERE name = 'schema'", &[]).unwrap().get(0);
    assert_eq!(version, "2");
    // Connecting again finds it migrated.
    operonx_store::PostgresStore::connect_with_key(&old.url, key).unwrap().check().unwrap();
}
