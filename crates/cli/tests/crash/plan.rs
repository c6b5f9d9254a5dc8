//! Kill plans: where and how each kill point stops the process, from a seed.

#![allow(unused_imports)]
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use operonx_store::{Entry, EntryKind, RunStore};
use serde_json::{Map, Value};

use super::graph::{self, ANSWER, ASK_ID, ITEMS, LOOPS, Mode, PARALLEL, Variant};
use super::harness::*;
use super::mock::{self, MockLlm};
use super::reference::*;
use super::rng::{XorShift, splitmix};

/// When to kill one `operonx` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAt {
    /// Once the run's journal holds this many more entries than when the process started
    /// (0: right after it printed the run id).
    Entries(usize),
    /// This long after it printed the run id.
    Millis(u64),
    /// At this many thousandths of what the same phase took in the uninterrupted reference
    /// run (the run until it waits, or the resume that answers), after the run id line:
    /// becomes [`KillAt::Millis`] when the process starts (so a seed gives the same plan on
    /// a faster or slower machine).
    Moment(u64),
}

/// The `--durability` of a kill point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `batched`, the default.
    Batched,
    /// `sync`.
    Sync,
    /// `off`.
    Off,
}

impl Durability {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Durability::Batched => "batched",
            Durability::Sync => "sync",
            Durability::Off => "off",
        }
    }
}

/// One kill point: a run of the graph and, per process it takes (the run, then each
/// resume), whether and when to kill it.
#[derive(Debug, Clone)]
pub struct KillPoint {
    /// Its number in its suite (`OPERONX_CRASH_ONLY` picks by it).
    pub index: usize,
    /// Its seed (the mock's delays come from it too).
    pub seed: u64,
    /// The graph variant and inputs.
    pub variant: Variant,
    /// The journal's durability.
    pub durability: Durability,
    /// Per process, in order: kill it then, or let it end.
    pub kills: Vec<Option<KillAt>>,
    /// The first time the run waits, resume it once without an answer (it must wait again,
    /// having redone nothing).
    pub unanswered: bool,
}

/// The kinds of kill plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Batched; kill when the journal reaches a random entry count (in the run, or in the
    /// resume that answers the interrupt).
    EntryCounts,
    /// Batched; kill at a random moment.
    Moments,
    /// `sync` (entry counts or moments) and `off` (moments).
    SyncAndOff,
    /// Kill the run and then its resume (sometimes a third process too).
    Repeated,
    /// Any of the above.
    Mixed,
}

/// The seed in force (`OPERONX_CRASH_SEED`, else [`DEFAULT_SEED`]).
pub fn seed() -> u64 {
    match std::env::var("OPERONX_CRASH_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("OPERONX_CRASH_SEED={s}: not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// The kill points `OPERONX_CRASH_ONLY` (comma-separated indexes) keeps, if set.
pub(crate) fn only() -> Option<BTreeSet<usize>> {
    let s = std::env::var("OPERONX_CRASH_ONLY").ok()?;
    Some(s.split(',').filter_map(|p| p.trim().parse().ok()).collect())
}

/// `count` kill points of `suite`, drawn from `seed` (each from its own seed, so one can
/// be run alone).
pub fn plan(suite: Suite, seed: u64, count: usize) -> Vec<KillPoint> {
    let refs = references();
    (0..count)
        .map(|index| {
            let kp_seed = splitmix(seed ^ (index as u64).wrapping_mul(0x9E37_79B9));
            let mut rng = XorShift::new(kp_seed);
            let mode = if rng.one_in(2) { Mode::Deep } else { Mode::Shallow };
            let variant = Variant { mode, paced: rng.one_in(2) };
            let r = refs.get(variant);
            let suite = match suite {
                Suite::Mixed => {
                    [Suite::EntryCounts, Suite::Moments, Suite::SyncAndOff, Suite::Repeated][rng.between(0, 3) as usize]
                }
                s => s,
            };
            let wait = r.entries_at_wait as u64;
            let after = (r.entries_total - r.entries_at_wait) as u64;
            // Entry counts the process reaches well before it ends (a kill sent as it ends
            // lands after the run's end was recorded, which a few plans still do).
            let in_run_entries = |rng: &mut XorShift| KillAt::Entries(rng.between(0, wait.saturating_sub(2)) as usize);
            let in_answer_entries =
                |rng: &mut XorShift| KillAt::Entries(rng.between(0, after.saturating_sub(1)) as usize);
            let in_run_moment = |rng: &mut XorShift| KillAt::Moment(rng.between(0, 1000));
            let in_answer_moment = |rng: &mut XorShift| KillAt::Moment(rng.between(0, 1000));
            let (durability, kills) = match suite {
                Suite::EntryCounts if rng.one_in(4) => {
                    (Durability::Batched, vec![None, Some(in_answer_entries(&mut rng))])
                }
                Suite::EntryCounts => (Durability::Batched, vec![Some(in_run_entries(&mut rng))]),
                Suite::Moments if rng.one_in(4) => (Durability::Batched, vec![None, Some(in_answer_moment(&mut rng))]),
                Suite::Moments => (Durability::Batched, vec![Some(in_run_moment(&mut rng))]),
                Suite::SyncAndOff if index % 3 == 2 => {
                    let kill = if rng.one_in(3) {
                        vec![None, Some(in_answer_moment(&mut rng))]
                    } else {
                        vec![Some(in_run_moment(&mut rng))]
                    };
                    (Durability::Off, kill)
                }
                Suite::SyncAndOff => {
                    let kill = match rng.between(0, 4) {
                        0 => vec![Some(in_run_moment(&mut rng))],
                        1 => vec![None, Some(in_answer_entries(&mut rng))],
                        // Early, while the generator has not finished.
                        2 => vec![Some(KillAt::Entries(rng.between(1, 12) as usize))],
                        _ => vec![Some(in_run_entries(&mut rng))],
                    };
                    (Durability::Sync, kill)
                }
                _ => {
                    let durability = if rng.one_in(4) { Durability::Sync } else { Durability::Batched };
                    let again = |rng: &mut XorShift| {
                        if rng.one_in(2) {
                            KillAt::Entries(rng.between(0, 12) as usize)
                        } else {
                            KillAt::Moment(rng.between(0, 500))
                        }
                    };
                    let kill = match rng.between(0, 4) {
                        0 => vec![None, Some(in_answer_entries(&mut rng)), Some(again(&mut rng))],
                        1 => vec![Some(in_run_entries(&mut rng)), Some(again(&mut rng)), Some(again(&mut rng))],
                        2 => vec![Some(in_run_moment(&mut rng)), Some(again(&mut rng))],
                        _ => vec![Some(in_run_entries(&mut rng)), Some(again(&mut rng))],
                    };
                    (durability, kill)
                }
            };
            let unanswered = rng.one_in(4);
            KillPoint { index, seed: kp_seed, variant, durability, kills, unanswered }
        })
        .collect()
}
