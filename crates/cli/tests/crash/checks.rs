//! What the harness checks of a journal and of a finished run.

#![allow(unused_imports)]
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use operonx_store::{Entry, EntryKind, RunStore};
use serde_json::{Map, Value};

use super::graph::{self, ANSWER, ASK_ID, ITEMS, LOOPS, Mode, PARALLEL, Variant};
use super::harness::*;
use super::mock::{self, MockLlm};
use super::plan::*;
use super::reference::*;
use super::rng::{XorShift, splitmix};

/// Check a journal against the reference: increasing sequence numbers, no entry twice
/// (interrupts aside), only entries the reference has and with its bodies, every entry
/// after what it depends on (`ordered`; else only with it: `--durability off` writes its
/// journal at once, ops first), and each llm call's recorded answer for its own prompt.
/// Returns the prompts of the llm calls journaled.
pub(crate) fn validate_journal(entries: &[Entry], r: &Reference, ordered: bool) -> Result<BTreeSet<String>, String> {
    let all: BTreeSet<EntryId> = entries.iter().map(entry_id).collect();
    let mut seen: BTreeSet<EntryId> = BTreeSet::new();
    let mut prompts = BTreeSet::new();
    let mut last_seq = i64::MIN;
    for e in entries {
        if e.seq <= last_seq {
            return Err(format!("journal seq {} follows seq {last_seq}", e.seq));
        }
        last_seq = e.seq;
        let id = entry_id(e);
        let Some(want) = r.bodies.get(&id) else {
            return Err(format!(
                "journal entry #{} {} {} {:?} is not in the reference journal",
                e.seq, id.0, id.1, id.2
            ));
        };
        let body: Value = serde_json::from_str(&e.body)
            .map_err(|x| format!("journal entry #{} {} body is not JSON: {x}", e.seq, e.key))?;
        if &body != want {
            return Err(format!(
                "journal entry #{} {} {} differs from the reference:\n  journal:   {body}\n  reference: {want}",
                e.seq, id.0, id.1
            ));
        }
        for dep in predecessors(&id) {
            if !(if ordered { &seen } else { &all }).contains(&dep) {
                return Err(format!(
                    "journal entry #{} {} {} is journaled before (or without) {} {} {:?}, which it depends on",
                    e.seq, id.0, id.1, dep.0, dep.1, dep.2
                ));
            }
        }
        if e.kind == EntryKind::Op && graph::is_llm_key(&e.key) {
            let prompt = mock::prompt_of_outputs(&e.body).ok_or_else(|| format!("llm call {} has no answer", e.key))?;
            prompts.insert(prompt);
        }
        if !seen.insert(id.clone()) && e.kind != EntryKind::Interrupt {
            return Err(format!("journal entry #{} {} {} {:?} is journaled twice", e.seq, id.0, id.1, id.2));
        }
    }
    Ok(prompts)
}

/// The entries a journal entry depends on (each must come before it).
pub(crate) fn predecessors(id: &EntryId) -> Vec<EntryId> {
    let (kind, key, index) = id;
    let op = |k: String| ("op", k, None);
    let item = |i: u64| ("item", "main.gen@main".to_string(), Some(i as u32));
    match *kind {
        "item" => index.filter(|i| *i > 0).map(|i| vec![item(u64::from(i) - 1)]).unwrap_or_default(),
        "stream_end" => vec![item(ITEMS - 1)],
        "interrupt" => vec![op("main.low_chain@main".into())],
        _ => {
            let (name, ctx) = graph::split_key(key);
            let at = |n: &str| op(format!("{n}@{ctx}"));
            let item_index =
                ctx.strip_prefix("main/[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse::<u64>().ok());
            match name {
                "main.llm_chain" => vec![at("main.p_chain")],
                "main.parse_chain" => vec![at("main.llm_chain")],
                "main.low_chain" => vec![at("main.parse_chain")],
                "main.ask" => vec![at("main.low_chain")],
                "main.p_final" => vec![at("main.ask")],
                "main.llm_final" => vec![at("main.p_final")],
                "main.p_item" | "main.sub.p" => item_index.map(|i| vec![item(i)]).unwrap_or_default(),
                "main.llm_item" => vec![at("main.p_item")],
                "main.sub.llm_inner" => vec![at("main.sub.p")],
                "main.sub.pick" => vec![at("main.sub.llm_inner")],
                "main.collect" => {
                    let mut deps = vec![("stream_end", "main.gen@main".to_string(), Some(ITEMS as u32))];
                    deps.extend((0..ITEMS).map(|i| op(format!("main.llm_item@main/[{i}]"))));
                    deps
                }
                "main.lp.p" => match ctx.strip_prefix("main/loop_").and_then(|n| n.parse::<u64>().ok()) {
                    Some(1) => vec![op("main.lp.inc@main".into())],
                    Some(n) => vec![op(format!("main.lp.inc@main/loop_{}", n - 1))],
                    None => Vec::new(),
                },
                "main.lp.llm_loop" => vec![at("main.lp.p")],
                "main.lp.pick" => vec![at("main.lp.llm_loop")],
                "main.lp.cat" => vec![at("main.lp.pick")],
                "main.lp.inc" => vec![at("main.lp.cat")],
                _ => Vec::new(),
            }
        }
    }
}

/// Whether the journal holds every entry of the reference that does not need the answer
/// (what a run writes when it stops to wait with `--durability off`).
pub(crate) fn holds_all_before_the_answer(entries: &[Entry], r: &Reference) -> bool {
    let have: BTreeSet<EntryId> = entries.iter().map(entry_id).collect();
    let after = ["main.ask@main", "main.p_final@main", "main.llm_final@main"];
    r.bodies
        .keys()
        .filter(|(kind, key, _)| *kind != "interrupt" && !after.contains(&key.as_str()))
        .all(|id| have.contains(id))
}

/// What the durability promises of a killed process: `off` wrote nothing while it ran
/// (only when it stopped);
/// `sync` used nothing before it was committed, so every llm call the mock saw had the
/// entries it depends on journaled.
pub(crate) fn check_durability(
    durability: Durability,
    before: usize,
    entries: &[Entry],
    counts: &BTreeMap<String, u32>,
    r: &Reference,
) -> Result<(), String> {
    match durability {
        // (Unless the kill landed after the run stopped to wait and wrote its journal, but
        // before it recorded that it waits: then the journal holds all the run did before
        // it asked.)
        Durability::Off if entries.len() != before && !holds_all_before_the_answer(entries, r) => Err(format!(
            "--durability off: the journal went from {before} to {} entries while the process ran",
            entries.len()
        )),
        Durability::Sync => {
            let have: BTreeSet<EntryId> = entries.iter().map(entry_id).collect();
            for prompt in counts.keys() {
                let Some(key) = r.prompts.get(prompt) else { continue };
                for dep in predecessors(&("op", key.clone(), None)) {
                    if !have.contains(&dep) {
                        return Err(format!(
                            "--durability sync: the mock was asked {prompt:?} ({key}) but {} {} {:?}, whose result \
                             the call sends, is not journaled",
                            dep.0, dep.1, dep.2
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The checks once the run is done: (5) the result is the reference's, (7) the run lists
/// as done, the store is consistent, the journal is the reference's, and (6) no llm call
/// journaled at a kill was made again.
pub(crate) fn finish(
    run: &PointRun<'_>,
    printed: &Value,
    snapshots: &[Snapshot],
    r: &Reference,
    ordered: bool,
    report: &mut PointReport,
) -> Result<(), String> {
    let id = run.run_id.clone().unwrap_or_default();
    let result = canonical(printed);
    if result != r.result {
        return Err(format!("(5) the result differs from the uninterrupted run's:\n{}", diff(&result, &r.result)));
    }
    run.backend.store.check().map_err(|e| format!("(1) check() after the run is done: {e}"))?;
    let saved = run.backend.store.load(&id).map_err(|e| e.to_string())?;
    run.backend.expect_listed(&id, "done", saved.entries.len()).map_err(|e| format!("(7) {e}"))?;
    if saved.summary.resumes as usize != run.resumes {
        return Err(format!(
            "the run counts {} resumes, {} resume processes claimed it",
            saved.summary.resumes, run.resumes
        ));
    }
    validate_journal(&saved.entries, r, ordered)?;
    let have: BTreeSet<EntryId> = saved.entries.iter().map(entry_id).collect();
    let missing: Vec<&EntryId> = r.bodies.keys().filter(|k| !have.contains(*k)).collect();
    // `off` writes the journal when a run stops short of done (waits, fails, ...), not when
    // it is done: the last process's entries are not kept then.
    if ordered && !missing.is_empty() {
        return Err(format!("the finished journal lacks {missing:?}"));
    }
    let counts = run.mock.counts(run.generation);
    for (prompt, n) in &counts {
        if !r.prompts.contains_key(prompt) {
            return Err(format!("the mock was asked {prompt:?} ({n}x), which the graph never asks"));
        }
    }
    for (prompt, key) in &r.prompts {
        if !counts.contains_key(prompt) {
            return Err(format!("(6) the llm call {key} ({prompt:?}) never reached the mock, yet the run is done"));
        }
    }
    for (k, snap) in snapshots.iter().enumerate() {
        for prompt in &snap.journaled {
            let then = snap.counts.get(prompt).copied().unwrap_or(0);
            let now = counts.get(prompt).copied().unwrap_or(0);
            let key = r.prompts.get(prompt).map_or("?", String::as_str);
            if k == 0 && then != 1 {
                return Err(format!(
                    "(6) {key} ({prompt:?}) was journaled at the first kill, but the mock had seen it {then}x"
                ));
            }
            if now != then {
                return Err(format!(
                    "(6) {key} ({prompt:?}) was journaled at kill {} (mock count {then}), yet was called again: \
                     the mock saw it {now}x in all: a journaled op ran twice",
                    k + 1
                ));
            }
        }
    }
    report.redone = counts.values().filter(|n| **n > 1).count();
    Ok(())
}

/// Where two results differ, key by key.
pub(crate) fn diff(got: &Value, want: &Value) -> String {
    let (Some(g), Some(w)) = (got.as_object(), want.as_object()) else {
        return format!("  got:  {got}\n  want: {want}");
    };
    let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
    let mut s = String::new();
    for k in keys {
        if g.get(k) != w.get(k) {
            s.push_str(&format!("  {k}: got {:?}, want {:?}\n", g.get(k), w.get(k)));
        }
    }
    s
}
