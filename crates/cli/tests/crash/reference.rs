//! The reference runs: each variant of the crash graph run once without a kill, what every
//! killed and resumed run must end up equal to.

#![allow(unused_imports)]
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use operonx_store::{Entry, EntryKind, RunStore};
use serde_json::{Map, Value};

use super::checks::*;
use super::graph::{self, ANSWER, ASK_ID, ITEMS, LOOPS, Mode, PARALLEL, Variant};
use super::harness::*;
use super::mock::{self, MockLlm};
use super::plan::*;
use std::sync::OnceLock;

/// What an uninterrupted run of the graph gives, for one mode.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The result, keys sorted.
    pub result: Value,
    /// The journal: each entry's body, by kind, key and index.
    pub bodies: BTreeMap<EntryId, Value>,
    /// The prompt of each llm call, and its journal key.
    pub prompts: BTreeMap<String, String>,
    /// Journal entries when the run waits for its answer.
    pub entries_at_wait: usize,
    /// Journal entries at the end.
    pub entries_total: usize,
    /// How long the run took (from its run id line to its exit, waiting for the answer).
    pub run_ms: u64,
    /// How long the resume that answers took.
    pub resume_ms: u64,
}

/// The references of every variant.
pub struct References(pub(crate) Vec<(Variant, Reference)>);

impl References {
    /// The reference for `variant`.
    pub fn get(&self, variant: Variant) -> &Reference {
        &self.0.iter().find(|(v, _)| *v == variant).expect("a reference per variant").1
    }
}

/// The references, computed once per test process (on their own SQLite store). Pacing
/// changes nothing a run computes: the paced references must equal the free ones.
pub fn references() -> &'static References {
    static REFS: OnceLock<Result<References, String>> = OnceLock::new();
    let refs = REFS.get_or_init(|| {
        let backend = Backend::sqlite("reference");
        let all =
            Variant::ALL.iter().map(|v| reference(&backend, *v).map(|r| (*v, r))).collect::<Result<Vec<_>, _>>()?;
        for (v, r) in &all {
            let free = &all.iter().find(|(f, _)| f.mode == v.mode && !f.paced).expect("free variant").1;
            if r.result != free.result || r.bodies != free.bodies {
                return Err(format!("the {} reference differs from the {} one", v.name(), v.mode.as_str()));
            }
        }
        let _ = std::fs::remove_dir_all(&backend.dir);
        Ok(References(all))
    });
    match refs {
        Ok(r) => r,
        Err(e) => panic!("the uninterrupted reference run failed, so nothing can be compared with it:\n{e}"),
    }
}

/// A journal entry's identity: kind, key, index.
pub type EntryId = (&'static str, String, Option<u32>);

pub(crate) fn entry_id(e: &Entry) -> EntryId {
    (e.kind.as_str(), e.key.clone(), e.index)
}

/// JSON with every object's keys sorted (results compare and print the same whatever
/// order the engine emitted them in).
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Run the graph once without a kill (answering the interrupt) and record everything a
/// crashed run of it is compared with; the harness's own expectations are checked here.
pub(crate) fn reference(backend: &Backend, variant: Variant) -> Result<Reference, String> {
    let mode = variant.mode;
    let mut run = PointRun::new(backend, variant, Durability::Batched, 0x5EED_0000, format!("ref-{}", variant.name()));
    let first = run.process(None)?;
    if first.code() != Some(4) {
        return Err(format!(
            "the reference run exited {:?}, expected 4 (waits for input):\n{}",
            first.status, first.stderr
        ));
    }
    let run_id = run.run_id.clone().ok_or("no run id")?;
    let waiting = backend.store.load(&run_id).map_err(|e| e.to_string())?;
    if !waiting.pending.iter().any(|i| i.id == ASK_ID) {
        return Err(format!("the waiting reference run has no pending {ASK_ID}: {:?}", waiting.pending));
    }
    backend.expect_listed(&run_id, "waiting", waiting.entries.len())?;
    let second = run.process(None)?;
    if second.code() != Some(0) {
        return Err(format!("the reference resume exited {:?}:\n{}", second.status, second.stderr));
    }
    let result: Value = serde_json::from_str(second.stdout.trim())
        .map_err(|e| format!("the reference printed no JSON result ({e}): {}", second.stdout))?;
    let result = canonical(&result);
    let done = backend.store.load(&run_id).map_err(|e| e.to_string())?;
    backend.expect_listed(&run_id, "done", done.entries.len())?;
    let mut bodies = BTreeMap::new();
    let mut prompts = BTreeMap::new();
    for e in &done.entries {
        let body: Value =
            serde_json::from_str(&e.body).map_err(|x| format!("entry {} body is not JSON: {x}", e.seq))?;
        if bodies.insert(entry_id(e), body).is_some() {
            return Err(format!("the reference journal has {} {} twice", e.kind.as_str(), e.key));
        }
        if e.kind == EntryKind::Op && graph::is_llm_key(&e.key) {
            let prompt = mock::prompt_of_outputs(&e.body);
            let expected = graph::expected_prompt(&e.key);
            if prompt.is_none() || prompt != expected {
                return Err(format!("llm call {} answered {prompt:?}, its prompt should be {expected:?}", e.key));
            }
            prompts.insert(prompt.unwrap_or_default(), e.key.clone());
        }
    }
    let calls = (1 + 2 * ITEMS + LOOPS + 1 + PARALLEL + 1) as usize;
    if prompts.len() != calls {
        return Err(format!(
            "the reference made {} distinct llm calls, the graph has {calls}: {prompts:?}",
            prompts.len()
        ));
    }
    let counts = run.mock.counts(run.generation);
    let once: BTreeMap<String, u32> = prompts.keys().map(|p| (p.clone(), 1)).collect();
    if counts != once {
        return Err(format!("an uninterrupted run asks each prompt exactly once; the mock saw {counts:?}"));
    }
    let expect =
        |key: &str, ok: bool| if ok { Ok(()) } else { Err(format!("reference result: unexpected {key}: {result}")) };
    expect("loops", result["loops"] == LOOPS)?;
    expect("nested", result["nested"].as_array().is_some_and(|a| a.len() == ITEMS as usize))?;
    expect("items", result["items"].as_str().is_some_and(|s| s.split('|').count() == ITEMS as usize))?;
    expect("branch", result["branch"].as_str().is_some_and(|s| s.contains(&format!("branch {}", mode.as_str()))))?;
    expect("final", result["final"].as_str().is_some_and(|s| s.contains(ANSWER)))?;
    let reference = Reference {
        result,
        bodies,
        prompts,
        entries_at_wait: waiting.entries.len(),
        entries_total: done.entries.len(),
        run_ms: first.ms.max(1),
        resume_ms: second.ms.max(1),
    };
    validate_journal(&done.entries, &reference, true).map_err(|e| format!("the reference journal: {e}"))?;
    Ok(reference)
}
