//! The run store's semantics, written once and run against every backend: SQLite (a
//! temporary file) and Postgres (a fresh schema on `OPERONX_TEST_POSTGRES_URL`; skipped
//! loudly when no server answers, unless `OPERONX_REQUIRE_POSTGRES=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Harness, LONG, TINY, dead_owner, live_owner, new_run, op_entries, op_entry};
use operonx_runtime::Interrupt;
use operonx_store::{Batch, Entry, EntryKind, ListFilter, RunEnd, RunStats, RunStatus, RunStore, StoreError, Write};
use serde_json::{Map, Value, json};

suite! {
    store: [
        round_trip,
        old_lease_is_lost_after_another_claim,
        claim_rules,
        crashed_by_expired_lease,
        crashed_by_dead_owner,
        answers_merge_and_next_seq_continues,
        list_order_filters_and_limit,
        prune_rules,
        append_timing,
        stats_are_read_back_by_list_load_and_summary,
    ],
    harness: [check_finds_orphans_and_miscounts, concurrent_claims_one_wins, concurrent_writers],
}

fn object(v: Value) -> Map<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn interrupt(id: &str) -> Interrupt {
    Interrupt { id: id.into(), op: "main.ask".into(), payload: json!({"question": "ok?", "b": 1, "a": 2}) }
}

fn end(status: RunStatus) -> RunEnd {
    RunEnd {
        status,
        result: Some(json!({"out": 1, "$errors": []})),
        pending: Vec::new(),
        scratch: object(json!({"count": 9})),
        reason: Some(format!("stopped: {status}")),
        stats: None,
    }
}

/// Create, append (entries of every kind, scratch and pending updates), heartbeat,
/// finish, load: everything reads back as written, bodies byte for byte.
fn round_trip(s: &dyn RunStore) {
    let run = new_run("round");
    let lease = s.create(&run, "owner-a", LONG).unwrap();
    assert_eq!((lease.epoch, lease.next_seq, lease.owner.as_str()), (1, 1, "owner-a"));
    let again = s.create(&run, "owner-b", LONG).unwrap_err();
    assert!(matches!(&again, StoreError::Exists { store, .. } if store == s.location()), "{again}");

    let fresh = s.load(&run.run_id).unwrap();
    assert_eq!(fresh.summary.status, RunStatus::Running);
    assert_eq!((fresh.summary.entries, fresh.summary.resumes), (0, 0));
    assert_eq!(fresh.graph, run.graph);
    assert_eq!(serde_json::to_string(&fresh.graph).unwrap(), serde_json::to_string(&run.graph).unwrap());
    assert_eq!(fresh.inputs.keys().collect::<Vec<_>>(), vec!["zeta", "alpha", "ünï"], "input key order kept");
    assert_eq!(
        (fresh.inputs.clone(), fresh.scratch.clone(), fresh.options.clone()),
        (run.inputs, run.scratch, run.options)
    );
    assert_eq!(
        (fresh.graph_path.as_deref(), fresh.fingerprint.as_str()),
        (Some("graphs/round.json"), run.fingerprint.as_str())
    );
    assert!(fresh.answers.is_empty() && fresh.pending.is_empty() && fresh.result.is_none() && fresh.entries.is_empty());

    let first = op_entries(1, 3);
    let scratch = object(json!({"count": 3, "b": [true]}));
    s.append(&lease, &Batch { entries: first.clone(), scratch: Some(scratch.clone()), pending: None }).unwrap();
    let second = vec![
        Entry { seq: 4, kind: EntryKind::Item, key: "main.gen@[]".into(), index: Some(0), body: "{\"item\":0}".into() },
        Entry { seq: 5, kind: EntryKind::StreamEnd, key: "main.gen@[]".into(), index: Some(1), body: "null".into() },
        Entry { seq: 6, kind: EntryKind::Interrupt, key: "main.ask".into(), index: None, body: "{ \"q\" : 1 }".into() },
    ];
    let pending = vec![interrupt("main.ask")];
    s.append(&lease, &Batch { entries: second.clone(), scratch: None, pending: Some(pending.clone()) }).unwrap();
    s.append(&lease, &Batch::default()).unwrap();
    s.heartbeat(&lease).unwrap();

    let loaded = s.load(&run.run_id).unwrap();
    let all: Vec<Entry> = first.into_iter().chain(second).collect();
    assert_eq!(loaded.entries, all, "entries in seq order, bodies byte for byte");
    assert_eq!(loaded.summary.entries, 6);
    assert_eq!(loaded.scratch, scratch, "scratch as last journaled (a batch without one keeps it)");
    assert_eq!(loaded.pending, pending);
    assert_eq!(loaded.summary.status, RunStatus::Running);
    assert!(loaded.summary.updated_at >= fresh.summary.updated_at);
    let listed = s.list(&ListFilter::default()).unwrap();
    assert_eq!(listed, vec![loaded.summary.clone()], "the listing's entry count is the journal's");

    let done = RunEnd { pending: vec![interrupt("main.ask"), interrupt("main.ask#1")], ..end(RunStatus::Waiting) };
    s.finish(&lease, &done).unwrap();
    let finished = s.load(&run.run_id).unwrap();
    assert_eq!(finished.summary.status, RunStatus::Waiting);
    assert_eq!(finished.summary.reason.as_deref(), Some("stopped: waiting"));
    assert_eq!((finished.result, finished.pending, finished.scratch), (done.result, done.pending, done.scratch));
    assert_eq!(finished.entries, loaded.entries);

    let missing = s.load("0".repeat(32).as_str()).unwrap_err();
    assert!(matches!(&missing, StoreError::NotFound { store, .. } if store == s.location()), "{missing}");
    let ghost = operonx_store::Lease { run_id: "1".repeat(32), ..lease };
    assert!(matches!(s.append(&ghost, &Batch::default()), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.finish(&ghost, &end(RunStatus::Failed)), Err(StoreError::NotFound { .. })));
}

/// Once another process claimed the run, the old lease can neither append, heartbeat
/// nor finish, and nothing it tried is in the journal.
fn old_lease_is_lost_after_another_claim(s: &dyn RunStore) {
    let run = new_run("lost");
    let a = s.create(&run, "owner-a", TINY).unwrap();
    s.append(&a, &Batch { entries: op_entries(1, 2), ..Batch::default() }).unwrap();
    std::thread::sleep(TINY * 3);
    let (b, _) = s.claim(&run.run_id, "owner-b", LONG, &Map::new()).unwrap();
    assert_eq!((b.epoch, b.next_seq), (2, 3));

    let lost = s.append(&a, &Batch { entries: vec![op_entry(3)], ..Batch::default() }).unwrap_err();
    assert!(matches!(&lost, StoreError::LeaseLost { store, run_id } if store == s.location() && *run_id == run.run_id));
    assert!(lost.to_string().contains("taken over"), "{lost}");
    assert!(matches!(s.heartbeat(&a), Err(StoreError::LeaseLost { .. })));
    assert!(matches!(s.finish(&a, &end(RunStatus::Done)), Err(StoreError::LeaseLost { .. })));

    s.append(&b, &Batch { entries: vec![op_entry(3)], ..Batch::default() }).unwrap();
    let loaded = s.load(&run.run_id).unwrap();
    assert_eq!(loaded.entries, op_entries(1, 3));
    assert_eq!(loaded.summary.status, RunStatus::Running);
    s.finish(&b, &end(RunStatus::Done)).unwrap();
    assert_eq!(s.load(&run.run_id).unwrap().summary.status, RunStatus::Done);
}

/// Busy while the owner holds it, resumable after failed/waiting/cancelled/timed_out,
/// finished once done, not found when there is none.
fn claim_rules(s: &dyn RunStore) {
    let live = new_run("claims");
    s.create(&live, "owner-a", LONG).unwrap();
    let busy = s.claim(&live.run_id, "owner-b", LONG, &Map::new()).unwrap_err();
    assert!(
        matches!(&busy, StoreError::Busy { store, owner, .. } if store == s.location() && owner == "owner-a"),
        "{busy}"
    );

    for status in [RunStatus::Failed, RunStatus::Waiting, RunStatus::Cancelled, RunStatus::TimedOut] {
        let run = new_run("claims");
        let lease = s.create(&run, "owner-a", LONG).unwrap();
        s.finish(&lease, &end(status)).unwrap();
        assert_eq!(s.load(&run.run_id).unwrap().summary.status, status);
        let (again, stored) = s.claim(&run.run_id, "owner-b", LONG, &Map::new()).unwrap();
        assert_eq!((again.epoch, again.next_seq, again.owner.as_str(), again.ttl), (2, 1, "owner-b", LONG), "{status}");
        assert_eq!(stored.summary.status, RunStatus::Running);
        assert_eq!((stored.summary.resumes, stored.summary.reason.clone()), (1, None));
        assert_eq!(stored.result, end(status).result, "the last result is kept for the resumer");
        let reread = s.load(&run.run_id).unwrap();
        assert_eq!(reread.summary.status, RunStatus::Running);
        assert_eq!(reread.summary.resumes, 1);
        let busy = s.claim(&run.run_id, "owner-c", LONG, &Map::new()).unwrap_err();
        assert!(matches!(busy, StoreError::Busy { ref owner, .. } if owner == "owner-b"), "{busy}");
    }

    let done = new_run("claims");
    let lease = s.create(&done, "owner-a", LONG).unwrap();
    s.finish(&lease, &end(RunStatus::Done)).unwrap();
    let finished = s.claim(&done.run_id, "owner-b", LONG, &Map::new()).unwrap_err();
    assert!(matches!(&finished, StoreError::Finished { store, .. } if store == s.location()), "{finished}");

    let none = s.claim(&"9".repeat(32), "owner-b", LONG, &Map::new()).unwrap_err();
    assert!(matches!(none, StoreError::NotFound { .. }), "{none}");
}

/// A running run whose heartbeat is older than its lease reads as crashed (in `load`
/// and `list`), a heartbeat in time keeps it running, and it can be claimed.
fn crashed_by_expired_lease(s: &dyn RunStore) {
    let run = new_run("expired");
    let lease = s.create(&run, "owner-a", Duration::from_millis(1000)).unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        s.heartbeat(&lease).unwrap();
    }
    assert_eq!(s.load(&run.run_id).unwrap().summary.status, RunStatus::Running, "heartbeats keep it");
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(s.load(&run.run_id).unwrap().summary.status, RunStatus::Crashed);
    let crashed = ListFilter { status: Some(RunStatus::Crashed), ..ListFilter::default() };
    assert_eq!(s.list(&crashed).unwrap().iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), [run.run_id.as_str()]);
    let running = ListFilter { status: Some(RunStatus::Running), ..ListFilter::default() };
    assert!(s.list(&running).unwrap().is_empty());

    let (claimed, stored) = s.claim(&run.run_id, "owner-b", LONG, &Map::new()).unwrap();
    assert_eq!((claimed.epoch, stored.summary.status), (2, RunStatus::Running));
    assert_eq!(s.load(&run.run_id).unwrap().summary.status, RunStatus::Running);
    assert!(matches!(s.append(&lease, &Batch::default()), Err(StoreError::LeaseLost { .. })));
}

/// A running run owned by a process that has ended reads as crashed at once (its lease
/// has not expired) and can be claimed; one owned by this process stays running.
fn crashed_by_dead_owner(s: &dyn RunStore) {
    let dead = new_run("dead");
    s.create(&dead, &dead_owner(), LONG).unwrap();
    let alive = new_run("alive");
    s.create(&alive, &live_owner(), LONG).unwrap();
    assert_eq!(s.load(&dead.run_id).unwrap().summary.status, RunStatus::Crashed);
    assert_eq!(s.load(&alive.run_id).unwrap().summary.status, RunStatus::Running);
    let listed = s.list(&ListFilter::default()).unwrap();
    let statuses: Vec<(&str, RunStatus)> = listed.iter().map(|r| (r.run_id.as_str(), r.status)).collect();
    assert!(statuses.contains(&(dead.run_id.as_str(), RunStatus::Crashed)), "{statuses:?}");
    assert!(statuses.contains(&(alive.run_id.as_str(), RunStatus::Running)), "{statuses:?}");
    assert!(matches!(s.claim(&alive.run_id, "x", LONG, &Map::new()), Err(StoreError::Busy { .. })));
    let (lease, _) = s.claim(&dead.run_id, &live_owner(), LONG, &Map::new()).unwrap();
    assert_eq!(lease.epoch, 2);
    assert_eq!(s.load(&dead.run_id).unwrap().summary.status, RunStatus::Running);
}

/// Answers accumulate over claims (later answers win, first-given order kept), and the
/// next sequence number follows the highest one journaled.
fn answers_merge_and_next_seq_continues(s: &dyn RunStore) {
    let run = new_run("answers");
    let lease = s.create(&run, "owner-a", LONG).unwrap();
    let gappy = vec![op_entry(1), op_entry(2), op_entry(7)];
    s.append(&lease, &Batch { entries: gappy.clone(), ..Batch::default() }).unwrap();
    s.finish(&lease, &RunEnd { pending: vec![interrupt("q1")], ..end(RunStatus::Waiting) }).unwrap();

    let (lease, stored) = s.claim(&run.run_id, "owner-b", LONG, &object(json!({"q1": "yes"}))).unwrap();
    assert_eq!(lease.next_seq, 8);
    assert_eq!(stored.entries, gappy);
    assert_eq!(stored.answers, object(json!({"q1": "yes"})));
    assert_eq!(stored.pending, vec![interrupt("q1")], "pending is what the resumer answers");
    s.append(&lease, &Batch { entries: vec![op_entry(8)], ..Batch::default() }).unwrap();
    s.finish(&lease, &end(RunStatus::Waiting)).unwrap();

    let (lease, stored) = s.claim(&run.run_id, "owner-c", LONG, &object(json!({"q2": {"n": 1}, "q1": "no"}))).unwrap();
    assert_eq!((lease.epoch, lease.next_seq, stored.summary.resumes), (3, 9, 2));
    let answers = s.load(&run.run_id).unwrap().answers;
    assert_eq!(answers, object(json!({"q1": "no", "q2": {"n": 1}})));
    assert_eq!(answers.keys().collect::<Vec<_>>(), ["q1", "q2"]);
    s.finish(&lease, &end(RunStatus::Failed)).unwrap();
    let (_, stored) = s.claim(&run.run_id, "owner-d", LONG, &Map::new()).unwrap();
    assert_eq!(stored.answers, answers, "no answers: the stored ones are kept");
}

/// Newest first (ties by run id, descending); the status filter sees derived statuses;
/// graph filter exact; limit.
fn list_order_filters_and_limit(s: &dyn RunStore) {
    assert!(s.list(&ListFilter::default()).unwrap().is_empty());
    let mut ids = Vec::new();
    let mut make = |graph: &str, ttl: Duration, status: Option<RunStatus>| {
        let run = new_run(graph);
        let lease = s.create(&run, "owner", ttl).unwrap();
        if let Some(status) = status {
            s.finish(&lease, &end(status)).unwrap();
        }
        ids.push(run.run_id.clone());
        std::thread::sleep(Duration::from_millis(3));
        run.run_id
    };
    let done = make("g", LONG, Some(RunStatus::Done));
    let failed = make("g", LONG, Some(RunStatus::Failed));
    let crashed = make("g", TINY, None);
    let running = make("g", LONG, None);
    let other = make("other", LONG, Some(RunStatus::Done));
    std::thread::sleep(TINY * 3);

    let ids_of = |f: ListFilter| s.list(&f).unwrap().into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(ids_of(ListFilter::default()), newest_first);
    assert_eq!(ids_of(ListFilter { limit: 2, ..ListFilter::default() }), newest_first[..2]);
    assert_eq!(ids_of(ListFilter { limit: 0, ..ListFilter::default() }), Vec::<String>::new());
    let by_status = |status| ids_of(ListFilter { status: Some(status), ..ListFilter::default() });
    assert_eq!(by_status(RunStatus::Done), [other.clone(), done.clone()]);
    assert_eq!(by_status(RunStatus::Failed), [failed]);
    assert_eq!(by_status(RunStatus::Crashed), [crashed]);
    assert_eq!(by_status(RunStatus::Running), std::slice::from_ref(&running));
    assert!(by_status(RunStatus::Waiting).is_empty());
    assert_eq!(ids_of(ListFilter { graph: Some("other".into()), ..ListFilter::default() }), [other]);
    let g_done =
        ListFilter { status: Some(RunStatus::Done), graph: Some("g".into()), limit: 5, ..ListFilter::default() };
    assert_eq!(ids_of(g_done), [done]);
    let one_live = ListFilter { status: Some(RunStatus::Running), graph: None, limit: 1, ..ListFilter::default() };
    assert_eq!(ids_of(one_live), [running]);
    assert!(ids_of(ListFilter { graph: Some("G".into()), ..ListFilter::default() }).is_empty(), "graph is exact");

    let listed = s.list(&ListFilter::default()).unwrap();
    assert!(listed.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    assert_eq!(listed[0].graph, "other");
}

/// Prune deletes runs last changed before the cutoff (with their journals), only those
/// of the status given, never a running one (a crashed one, yes).
fn prune_rules(s: &dyn RunStore) {
    let make = |ttl: Duration, status: Option<RunStatus>| {
        let run = new_run("prune");
        let lease = s.create(&run, "owner", ttl).unwrap();
        s.append(&lease, &Batch { entries: op_entries(1, 3), ..Batch::default() }).unwrap();
        if let Some(status) = status {
            s.finish(&lease, &end(status)).unwrap();
        }
        run.run_id
    };
    let done = make(LONG, Some(RunStatus::Done));
    let failed = make(LONG, Some(RunStatus::Failed));
    let waiting = make(LONG, Some(RunStatus::Waiting));
    let running = make(LONG, None);
    let crashed = make(TINY, None);
    std::thread::sleep(TINY * 3);
    let past = Utc::now() - chrono::Duration::hours(1);
    let future = Utc::now() + chrono::Duration::hours(1);

    assert_eq!(s.prune(past, None).unwrap(), 0, "nothing is that old");
    assert_eq!(s.prune(future, Some(RunStatus::Running)).unwrap(), 0, "running runs are never pruned");
    assert_eq!(s.prune(future, Some(RunStatus::Failed)).unwrap(), 1);
    assert!(matches!(s.load(&failed), Err(StoreError::NotFound { .. })));
    assert_eq!(s.prune(future, Some(RunStatus::Crashed)).unwrap(), 1);
    assert!(matches!(s.load(&crashed), Err(StoreError::NotFound { .. })));
    assert_eq!(s.prune(future, None).unwrap(), 2, "done and waiting");
    for gone in [&done, &waiting] {
        assert!(matches!(s.load(gone), Err(StoreError::NotFound { .. })));
    }
    let left: Vec<String> = s.list(&ListFilter::default()).unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(left, [running]);
    s.check().unwrap();
}

/// A healthy store passes the check; journal rows of no run, and runs whose entry count
/// differs from their journal, are reported.
fn check_finds_orphans_and_miscounts(h: &Harness) {
    let s = h.store.as_ref();
    s.check().unwrap();
    let run = new_run("check");
    let lease = s.create(&run, "owner", LONG).unwrap();
    s.append(&lease, &Batch { entries: op_entries(1, 4), ..Batch::default() }).unwrap();
    s.check().unwrap();

    let orphan = "f".repeat(32);
    h.raw(&format!(
        "INSERT INTO {{journal}} (run_id, seq, last_seq, count, body) VALUES ('{orphan}', 1, 1, 1, '\\x00')"
    ));
    let err = s.check().unwrap_err();
    let StoreError::Integrity { store, problems } = &err else { panic!("{err}") };
    assert_eq!(store, s.location());
    assert!(problems.contains(&orphan) && problems.contains("do not exist"), "{problems}");
    assert!(!problems.contains(&run.run_id), "{problems}");

    h.raw(&format!(
        "DELETE FROM {{journal}} WHERE run_id = '{orphan}'; UPDATE {{runs}} SET entries = 9 WHERE run_id = '{}'",
        run.run_id
    ));
    let err = s.check().unwrap_err();
    assert!(err.to_string().contains(&format!("{} (counts 9, has 4)", run.run_id)), "{err}");
    h.raw(&format!("UPDATE {{runs}} SET entries = 4 WHERE run_id = '{}'", run.run_id));
    s.check().unwrap();
}

/// Eight connections claim one crashed run at once: exactly one gets it, the others are
/// told it is busy (owned by the winner).
fn concurrent_claims_one_wins(h: &Harness) {
    let run = new_run("race");
    h.store.create(&run, "owner-a", TINY).unwrap();
    std::thread::sleep(TINY * 3);
    let stores: Vec<Box<dyn RunStore>> = (0..8).map(|_| h.reopen()).collect();
    let barrier = std::sync::Barrier::new(stores.len());
    let results: Vec<Result<i64, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (barrier, id) = (&barrier, &run.run_id);
                scope.spawn(move || {
                    barrier.wait();
                    s.claim(id, &format!("claimer-{i}"), LONG, &Map::new()).map(|(lease, _)| lease.epoch)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<i64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(won, [2], "{results:?}");
    let loaded = h.store.load(&run.run_id).unwrap();
    assert_eq!((loaded.summary.resumes, loaded.summary.status), (1, RunStatus::Running));
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Busy { owner, .. } if owner.starts_with("claimer-")), "{e}");
        }
    }
}

/// Eight connections write runs of their own at once (and heartbeat): nothing fails,
/// nothing is lost.
fn concurrent_writers(h: &Harness) {
    let stores: Vec<Box<dyn RunStore>> = (0..8).map(|_| h.reopen()).collect();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    let run = new_run("writers");
                    let lease = s.create(&run, "owner", LONG).unwrap();
                    for batch in 0..25 {
                        s.append(&lease, &Batch { entries: op_entries(batch * 8 + 1, 8), ..Batch::default() }).unwrap();
                        s.heartbeat(&lease).unwrap();
                    }
                    s.finish(&lease, &end(RunStatus::Done)).unwrap();
                    run.run_id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        let run = h.store.load(id).unwrap();
        assert_eq!((run.entries, run.summary.status), (op_entries(1, 200), RunStatus::Done));
    }
    h.store.check().unwrap();
}

/// How long one 100-entry batch takes to commit (printed; see with `--nocapture`).
fn append_timing(s: &dyn RunStore) {
    let run = new_run("timing");
    let lease = s.create(&run, "owner", LONG).unwrap();
    let body = format!("{{\"text\":\"{}\",\"n\":1}}", "x".repeat(200));
    let batches = 20;
    let mut seq = 0;
    let started = Instant::now();
    for _ in 0..batches {
        let entries = (0..100)
            .map(|_| {
                seq += 1;
                Entry { seq, kind: EntryKind::Op, key: format!("main.op{seq}@[]"), index: None, body: body.clone() }
            })
            .collect();
        let scratch = Some(object(json!({"seq": seq})));
        s.append(&lease, &Batch { entries, scratch, pending: None }).unwrap();
    }
    let each = started.elapsed() / batches;
    eprintln!("TIMING {}: one 100-entry append batch takes {each:?} (mean of {batches})", s.location());
    assert_eq!(s.load(&run.run_id).unwrap().entries.len(), 2000);
}

/// Stats as a run's finish records them, in every summary of it.
fn stats_in_summaries(s: &dyn RunStore, run_id: &str) -> Vec<Option<RunStats>> {
    let listed = s.list(&ListFilter::default()).unwrap().into_iter().find(|r| r.run_id == run_id).unwrap();
    vec![listed.stats, s.load(run_id).unwrap().summary.stats, s.summary(run_id).unwrap().stats]
}

/// A finish with stats is read back by list, load and summary; a finish without keeps
/// them; another finish with stats replaces them (the caller passes totals); a run
/// created and finished in one group gets them too; a run never given any has none.
fn stats_are_read_back_by_list_load_and_summary(s: &dyn RunStore) {
    let first = RunStats { ops: 3, errors: 1, llm_calls: 2, tokens: 1234, cost_usd: 0.0125 };
    let run = new_run("stats");
    let lease = s.create(&run, "owner", LONG).unwrap();
    assert_eq!(stats_in_summaries(s, &run.run_id), vec![None; 3], "none before an end with stats");
    s.finish(&lease, &RunEnd { stats: Some(first), ..end(RunStatus::Waiting) }).unwrap();
    assert_eq!(stats_in_summaries(s, &run.run_id), vec![Some(first); 3]);

    let (lease, stored) = s.claim(&run.run_id, "owner", LONG, &Map::new()).unwrap();
    assert_eq!(stored.summary.stats, Some(first), "a claimed run brings its stats");
    s.finish(&lease, &end(RunStatus::Waiting)).unwrap();
    assert_eq!(stats_in_summaries(s, &run.run_id), vec![Some(first); 3], "a finish without stats keeps them");

    let (lease, _) = s.claim(&run.run_id, "owner", LONG, &Map::new()).unwrap();
    let total = first.plus(&RunStats { ops: 1, errors: 0, llm_calls: 1, tokens: 6, cost_usd: 0.5 });
    assert_eq!((total.ops, total.errors, total.llm_calls, total.tokens), (4, 1, 3, 1240));
    s.finish(&lease, &RunEnd { stats: Some(total), ..end(RunStatus::Done) }).unwrap();
    assert_eq!(stats_in_summaries(s, &run.run_id), vec![Some(total); 3], "the totals given replace them");

    let grouped = new_run("stats-group");
    let lease = operonx_store::Lease {
        run_id: grouped.run_id.clone(),
        owner: "owner".into(),
        epoch: 1,
        next_seq: 1,
        ttl: LONG,
    };
    let writes = [
        Write::Create { run: grouped.clone(), owner: "owner".into(), ttl: LONG },
        Write::Finish { lease: lease.clone(), end: RunEnd { stats: Some(first), ..end(RunStatus::Waiting) } },
        Write::Finish { lease, end: end(RunStatus::Done) },
    ];
    assert!(s.write(&writes).unwrap().iter().all(Result::is_ok));
    assert_eq!(stats_in_summaries(s, &grouped.run_id), vec![Some(first); 3], "folded into the create");

    let plain = new_run("no-stats");
    let lease = s.create(&plain, "owner", LONG).unwrap();
    s.finish(&lease, &end(RunStatus::Done)).unwrap();
    assert_eq!(stats_in_summaries(s, &plain.run_id), vec![None; 3]);
    s.check().unwrap();
}
