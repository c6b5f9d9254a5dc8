//! Group writes ([`RunStore::write`]) and packed journal rows, written once and run
//! against every backend (as `store.rs` is): a group commits many runs' writes at once,
//! a write refused for its own reason does not stop the others, journals read back byte
//! for byte across many packed rows, and the check finds rows that overlap or miscount.
//! The `timing` tests print what journaling costs (see with `--nocapture`, in a release
//! build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

use std::time::Instant;

use common::{Harness, LONG, TINY, new_run, op_entries};
use operonx_store::{Batch, Entry, EntryKind, Lease, NewRun, RunEnd, RunStatus, RunStore, StoreError, Write};
use serde_json::{Map, Value, json};

suite! {
    store: [
        a_group_commits_the_writes_of_several_runs,
        refused_writes_do_not_stop_the_others,
        a_run_created_and_finished_in_one_group,
        packed_rows_read_back_byte_for_byte,
        group_write_timing,
    ],
    harness: [check_finds_overlapping_and_miscounted_rows],
}

fn object(v: Value) -> Map<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn end(status: RunStatus, n: i64) -> RunEnd {
    RunEnd {
        status,
        result: Some(json!({"out": n, "$errors": []})),
        pending: Vec::new(),
        scratch: object(json!({"n": n})),
        reason: None,
        stats: None,
    }
}

fn lease_of(run: &NewRun, owner: &str) -> Lease {
    Lease { run_id: run.run_id.clone(), owner: owner.into(), epoch: 1, next_seq: 1, ttl: LONG }
}

fn create(run: &NewRun) -> Write {
    Write::Create { run: run.clone(), owner: "owner".into(), ttl: LONG }
}

fn append(lease: &Lease, entries: Vec<Entry>) -> Write {
    Write::Append { lease: lease.clone(), batch: Batch { entries, ..Batch::default() } }
}

fn finish(lease: &Lease, end: RunEnd) -> Write {
    Write::Finish { lease: lease.clone(), end }
}

/// Creates, journal batches (two for one run) and ends of four runs, interleaved, in one
/// group: all are written, each run reads back as if written one by one.
fn a_group_commits_the_writes_of_several_runs(s: &dyn RunStore) {
    let runs: Vec<NewRun> = (0..4).map(|_| new_run("group")).collect();
    let leases: Vec<Lease> = runs.iter().map(|r| lease_of(r, "owner")).collect();
    let mut writes: Vec<Write> = runs.iter().map(create).collect();
    for (i, lease) in leases.iter().enumerate() {
        let mut batch = Batch { entries: op_entries(1, 3), ..Batch::default() };
        batch.scratch = Some(object(json!({"run": i})));
        writes.push(Write::Append { lease: lease.clone(), batch });
    }
    writes.push(append(&leases[1], op_entries(4, 2)));
    writes.push(finish(&leases[0], end(RunStatus::Done, 0)));
    writes.push(finish(&leases[1], end(RunStatus::Failed, 1)));
    writes.push(append(&leases[2], Vec::new()));
    let results = s.write(&writes).unwrap();
    assert_eq!(results.len(), writes.len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let loaded: Vec<_> = runs.iter().map(|r| s.load(&r.run_id).unwrap()).collect();
    assert_eq!((loaded[0].summary.status, loaded[1].summary.status), (RunStatus::Done, RunStatus::Failed));
    assert_eq!((loaded[2].summary.status, loaded[3].summary.status), (RunStatus::Running, RunStatus::Running));
    assert_eq!(loaded[0].entries, op_entries(1, 3));
    assert_eq!(loaded[1].entries, op_entries(1, 5), "two batches of one run, in order");
    assert_eq!((loaded[1].summary.entries, loaded[3].summary.entries), (5, 3));
    assert_eq!(
        (loaded[0].scratch.clone(), loaded[0].result.clone()),
        (object(json!({"n": 0})), end(RunStatus::Done, 0).result)
    );
    assert_eq!(loaded[3].scratch, object(json!({"run": 3})));
    assert_eq!(loaded[2].inputs, runs[2].inputs);
    assert!(s.write(&[]).unwrap().is_empty());
    s.check().unwrap();
}

/// A group holding an append with a lost lease, a create of a run that exists and an
/// append to no run returns those errors, and still commits every other write.
fn refused_writes_do_not_stop_the_others(s: &dyn RunStore) {
    let taken = new_run("taken");
    let old = s.create(&taken, "owner-a", TINY).unwrap();
    s.append(&old, &Batch { entries: op_entries(1, 2), ..Batch::default() }).unwrap();
    std::thread::sleep(TINY * 3);
    let (new, _) = s.claim(&taken.run_id, "owner-b", LONG, &Map::new()).unwrap();
    let existing = new_run("existing");
    s.create(&existing, "owner-e", LONG).unwrap();
    let fresh = new_run("fresh");
    let fresh_lease = lease_of(&fresh, "owner");
    let ghost = lease_of(&new_run("ghost"), "owner");

    let writes = vec![
        create(&fresh),
        append(&old, op_entries(3, 2)),
        create(&existing),
        append(&fresh_lease, op_entries(1, 4)),
        append(&ghost, op_entries(1, 1)),
        append(&new, op_entries(3, 1)),
        finish(&ghost, end(RunStatus::Done, 9)),
        finish(&fresh_lease, end(RunStatus::Done, 1)),
    ];
    let results = s.write(&writes).unwrap();
    let shown = format!("{results:?}");
    assert!(results[0].is_ok() && results[3].is_ok() && results[5].is_ok() && results[7].is_ok(), "{shown}");
    assert!(matches!(&results[1], Err(StoreError::LeaseLost { run_id, .. }) if *run_id == taken.run_id), "{shown}");
    assert!(matches!(&results[2], Err(StoreError::Exists { run_id, .. }) if *run_id == existing.run_id), "{shown}");
    assert!(matches!(&results[4], Err(StoreError::NotFound { .. })), "{shown}");
    assert!(matches!(&results[6], Err(StoreError::NotFound { .. })), "{shown}");

    let fresh_run = s.load(&fresh.run_id).unwrap();
    assert_eq!((fresh_run.summary.status, fresh_run.entries.clone()), (RunStatus::Done, op_entries(1, 4)));
    let taken_run = s.load(&taken.run_id).unwrap();
    assert_eq!(taken_run.entries, op_entries(1, 3), "the old lease wrote nothing, the new one its entry");
    let listed = s.list(&Default::default()).unwrap();
    let existing_summary = listed.iter().find(|r| r.run_id == existing.run_id).unwrap();
    assert_eq!((existing_summary.status, existing_summary.entries), (RunStatus::Running, 0));
    assert_eq!(listed.len(), 3, "no ghost run: {listed:?}");
    s.check().unwrap();
}

/// A run's create, journal batch and end in one group (the end sees the created row);
/// a batch after the end in the same group is refused, as it would be after it.
fn a_run_created_and_finished_in_one_group(s: &dyn RunStore) {
    let run = new_run("one-group");
    let lease = lease_of(&run, "owner");
    let writes = vec![create(&run), finish(&lease, end(RunStatus::Done, 7))];
    assert!(s.write(&writes).unwrap().iter().all(Result::is_ok));
    let done = s.load(&run.run_id).unwrap();
    assert_eq!((done.summary.status, done.result), (RunStatus::Done, end(RunStatus::Done, 7).result));

    let other = new_run("one-group");
    let lease = lease_of(&other, "owner");
    let writes = vec![
        create(&other),
        append(&lease, op_entries(1, 5)),
        finish(&lease, end(RunStatus::Waiting, 1)),
        append(&lease, op_entries(6, 1)),
        create(&other),
    ];
    let results = s.write(&writes).unwrap();
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    assert!(matches!(results[3], Err(StoreError::LeaseLost { .. })), "{results:?}");
    assert!(matches!(results[4], Err(StoreError::Exists { .. })), "{results:?}");
    let waiting = s.load(&other.run_id).unwrap();
    assert_eq!((waiting.summary.status, waiting.entries), (RunStatus::Waiting, op_entries(1, 5)));
    s.check().unwrap();
}

/// Entries of every kind with odd bodies (empty, non-ASCII, NUL, quotes, 200 KiB),
/// appended in 40 batches of varied sizes (and heartbeats between): load and claim return
/// every entry byte for byte in seq order, and count them.
fn packed_rows_read_back_byte_for_byte(s: &dyn RunStore) {
    let run = new_run("packed");
    let lease = s.create(&run, "owner", LONG).unwrap();
    let bodies = ["", "{}", "\"é\\u00e9 ü 😀\"", "\u{0}\n\t\"'\\", "{\"a\": [1, 2 ,3],  \"z\":null}"];
    let big = format!("\"{}\"", "x".repeat(200 * 1024));
    let mut all = Vec::new();
    let mut seq = 0;
    for batch in 0..40usize {
        let entries: Vec<Entry> = (0..(batch * 7) % 23 + 1)
            .map(|i| {
                seq += if i % 5 == 4 { 3 } else { 1 };
                let kind = [EntryKind::Op, EntryKind::Item, EntryKind::StreamEnd, EntryKind::Interrupt][i % 4];
                let index = matches!(kind, EntryKind::Item | EntryKind::StreamEnd).then_some(i as u32 * 1000);
                let body = if batch == 17 && i == 0 { big.clone() } else { bodies[(batch + i) % bodies.len()].into() };
                Entry { seq, kind, key: format!("main.op{batch}@[{i}, \"ü\"]"), index, body }
            })
            .collect();
        all.extend(entries.iter().cloned());
        s.append(&lease, &Batch { entries, ..Batch::default() }).unwrap();
        if batch % 10 == 0 {
            s.heartbeat(&lease).unwrap();
        }
    }
    let loaded = s.load(&run.run_id).unwrap();
    assert_eq!(loaded.entries.len(), all.len());
    assert!(loaded.entries.iter().zip(&all).all(|(a, b)| a == b && a.body.as_bytes() == b.body.as_bytes()));
    assert_eq!(loaded.summary.entries, all.len() as u64);
    s.check().unwrap();
    s.finish(&lease, &end(RunStatus::Waiting, 0)).unwrap();
    let (claimed, stored) = s.claim(&run.run_id, "owner-b", LONG, &Map::new()).unwrap();
    assert_eq!(stored.entries, all);
    assert_eq!(claimed.next_seq, seq + 1);
}

/// Rows that overlap (a row starting at or before the end of the one before), rows whose
/// count does not fit their seqs, and runs whose count is not their rows' sum are
/// reported; orphan rows too.
fn check_finds_overlapping_and_miscounted_rows(h: &Harness) {
    let s = h.store.as_ref();
    let run = new_run("check");
    let lease = s.create(&run, "owner", LONG).unwrap();
    s.append(&lease, &Batch { entries: op_entries(1, 4), ..Batch::default() }).unwrap();
    s.append(&lease, &Batch { entries: op_entries(5, 4), ..Batch::default() }).unwrap();
    s.check().unwrap();
    let id = &run.run_id;

    h.raw(&format!("INSERT INTO {{journal}} (run_id, seq, last_seq, count, body) VALUES ('{id}', 3, 5, 2, '\\x00')"));
    let err = s.check().unwrap_err().to_string();
    assert!(err.contains(&format!("journal rows that overlap: {id} from entry 3 (the row before ends at 4)")), "{err}");
    assert!(err.contains(&format!("{id} (counts 8, has 10)")), "{err}");
    h.raw(&format!("DELETE FROM {{journal}} WHERE run_id = '{id}' AND seq = 3"));
    s.check().unwrap();

    h.raw(&format!("UPDATE {{journal}} SET count = 5 WHERE run_id = '{id}' AND seq = 1"));
    let err = s.check().unwrap_err().to_string();
    assert!(err.contains(&format!("{id} entries 1 to 4 (says it holds 5)")), "{err}");
    assert!(err.contains(&format!("{id} (counts 8, has 9)")), "{err}");
    let load = s.load(id).unwrap_err();
    assert!(matches!(load, StoreError::Corrupt { .. }), "the count is sealed with the row: {load}");
    h.raw(&format!("UPDATE {{journal}} SET count = 4 WHERE run_id = '{id}' AND seq = 1"));
    s.check().unwrap();
    assert_eq!(s.load(id).unwrap().entries, op_entries(1, 8));
}

/// Tiny entry bodies, as a small op's outputs are.
fn tiny_entries(from: i64, n: i64) -> Vec<Entry> {
    (from..from + n)
        .map(|seq| Entry {
            seq,
            kind: EntryKind::Op,
            key: format!("main.op{}@[]", seq % 5),
            index: None,
            body: format!("{{\"value\":{seq},\"text\":\"item {seq}\"}}"),
        })
        .collect()
}

/// What journaling costs (printed; see with `--nocapture` in a release build): one group
/// of 1,000 tiny runs (each a create, a 5-entry batch and an end), per run; and a
/// 30,000-entry run appended in batches of 1,000, per entry.
fn group_write_timing(s: &dyn RunStore) {
    let runs: Vec<NewRun> = (0..1000)
        .map(|_| {
            let mut run = new_run("tiny");
            run.graph = json!({"name": "tiny", "ops": ["a", "b", "c", "d", "e"]});
            run
        })
        .collect();
    let mut writes = Vec::with_capacity(3 * runs.len());
    for (i, run) in runs.iter().enumerate() {
        let lease = lease_of(run, "owner");
        writes.push(create(run));
        writes.push(append(&lease, tiny_entries(1, 5)));
        writes.push(finish(&lease, end(RunStatus::Done, i as i64)));
    }
    let started = Instant::now();
    let results = s.write(&writes).unwrap();
    let per_run = started.elapsed() / runs.len() as u32;
    assert!(results.iter().all(Result::is_ok));

    let run = new_run("big");
    let lease = s.create(&run, "owner", LONG).unwrap();
    let batches: Vec<Vec<Entry>> = (0..30).map(|b| tiny_entries(b * 1000 + 1, 1000)).collect();
    let started = Instant::now();
    for entries in batches {
        s.append(&lease, &Batch { entries, ..Batch::default() }).unwrap();
    }
    let per_entry = started.elapsed() / 30_000;
    let started = Instant::now();
    let loaded = s.load(&run.run_id).unwrap();
    let load_per_entry = started.elapsed() / 30_000;
    eprintln!(
        "TIMING {}: a group of 1,000 tiny runs (create, 5 entries, end): {per_run:?} per run; a 30,000-entry run in \
         batches of 1,000: {per_entry:?} per entry appended, {load_per_entry:?} per entry loaded",
        s.location()
    );
    assert_eq!(loaded.entries.len(), 30_000);
    assert_eq!(s.load(&runs[999].run_id).unwrap().entries, tiny_entries(1, 5));
}
