//! Kill points: start `operonx run`, SIGKILL it (or a resume of it) at a chosen moment,
//! check what the store holds, resume until the run is done, and compare everything with
//! an uninterrupted reference run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use operonx_store::{Entry, EntryKind, RunStore};
use serde_json::Value;

#[allow(unused_imports)]
use super::checks::*;
use super::graph::{self, ANSWER, ASK_ID, Variant};
use super::mock::{self, MockLlm};
#[allow(unused_imports)]
use super::plan::*;
#[allow(unused_imports)]
use super::reference::*;
use super::rng::splitmix;

/// The default seed; `OPERONX_CRASH_SEED` (decimal or `0x` hex) replaces it.
pub const DEFAULT_SEED: u64 = 0x0C0F_FEE5_EED5_2026;

/// The store key every process of the harness uses (the `operonx` children through
/// `OPERONX_STORE_KEY`, this process explicitly), so no key file is written anywhere.
pub const TEST_KEY: &str = "6f7065726f6e782d637261736b2d6861726e6573732d746573742d6b65792121";

/// The store key as a value.
pub fn test_key() -> operonx_store::StoreKey {
    operonx_store::StoreKey::from_env_value(std::ffi::OsStr::new(TEST_KEY)).expect("a valid key")
}

/// `operonx` to run in `dir` with the harness's store key.
pub fn operonx(dir: &std::path::Path) -> std::process::Command {
    let mut c = crate::common::operonx_cmd(dir);
    c.env(operonx_store::STORE_KEY_ENV, TEST_KEY);
    c
}

/// How long one `operonx` process may take before it is declared hung (and killed).
const HUNG: Duration = Duration::from_secs(60);

/// A run store under test: how the CLI names it, and a handle to read it directly.
pub struct Backend {
    /// Names the backend in messages (`sqlite`, `postgres`).
    pub label: String,
    /// The `--store` value.
    pub spec: String,
    /// The store, opened by this process.
    pub store: Arc<dyn RunStore>,
    /// Where the kill points' files go.
    pub dir: PathBuf,
}

impl Backend {
    /// A fresh SQLite store `runs.db` in a fresh directory named after `name`.
    pub fn sqlite(name: &str) -> Backend {
        let dir = crate::common::workdir("crash", name);
        let spec = dir.join("runs.db").to_string_lossy().into_owned();
        let store: Arc<dyn RunStore> = Arc::new(
            operonx_store::SqliteRunStore::open_with_key(&spec, test_key()).expect("open the SQLite run store"),
        );
        Backend { label: "sqlite".into(), spec, store, dir }
    }

    /// The Postgres store at `url` (a fresh schema), files in a fresh directory.
    pub fn postgres(name: &str, url: &str) -> Backend {
        let dir = crate::common::workdir("crash", name);
        let store: Arc<dyn RunStore> = Arc::new(
            operonx_store::PostgresStore::connect_with_key(url, test_key()).expect("open the Postgres run store"),
        );
        Backend { label: "postgres".into(), spec: url.to_string(), store, dir }
    }

    /// A row of `operonx runs list --json` (filtered by `status` when given) for `run_id`.
    pub(crate) fn listed(&self, run_id: &str, status: Option<&str>) -> Result<Option<Value>, String> {
        let mut args = vec!["runs", "list", "--json", "--limit", "1000", "--store", &self.spec];
        if let Some(s) = status {
            args.extend(["--status", s]);
        }
        let out = operonx(&self.dir).args(&args).output().map_err(|e| e.to_string())?;
        if out.status.code() != Some(0) {
            return Err(format!(
                "`operonx {}` exited {:?}: {}",
                args.join(" "),
                out.status,
                crate::common::stderr(&out)
            ));
        }
        let rows: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("runs list --json printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))?;
        let rows = rows.as_array().ok_or_else(|| format!("runs list --json printed no array: {rows}"))?;
        for row in rows {
            for field in ["run_id", "graph", "status", "created_at", "updated_at", "entries", "resumes"] {
                if row.get(field).is_none() {
                    return Err(format!("runs list --json: a row without {field}: {row}"));
                }
            }
        }
        Ok(rows.iter().find(|r| r["run_id"] == run_id).cloned())
    }

    /// The run as `runs list --json` shows it, which must have `status` (and be found
    /// with `--status` too), with as many entries as its journal has.
    pub(crate) fn expect_listed(&self, run_id: &str, status: &str, journal_len: usize) -> Result<Value, String> {
        let row = self.listed(run_id, None)?.ok_or_else(|| format!("runs list --json does not show run {run_id}"))?;
        if row["status"] != status {
            return Err(format!("runs list shows the run {}, expected {status}: {row}", row["status"]));
        }
        if row["entries"].as_u64() != Some(journal_len as u64) {
            return Err(format!("runs list counts {} entries, the journal has {journal_len}: {row}", row["entries"]));
        }
        if self.listed(run_id, Some(status))?.is_none() {
            return Err(format!("runs list --status {status} leaves the run out"));
        }
        Ok(row)
    }
}

/// One `operonx` process as it ended.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) status: Option<ExitStatus>,
    pub(crate) killed: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// From its run id line to its end.
    pub(crate) ms: u64,
    /// The journal length the kill was sent at (as last polled), for entry-count kills.
    pub(crate) entries_at_kill: Option<usize>,
}

impl Proc {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub(crate) fn describe(&self) -> String {
        match (self.killed, self.status) {
            (true, _) => format!("SIGKILLed after {} ms", self.ms),
            (false, Some(s)) => {
                format!("exited {} after {} ms", s.code().map_or_else(|| format!("{s}"), |c| c.to_string()), self.ms)
            }
            (false, None) => "hung".into(),
        }
    }
}

/// What a kill left: the llm calls journaled then, and how often the mock had seen each
/// prompt by then.
pub(crate) struct Snapshot {
    pub(crate) journaled: BTreeSet<String>,
    pub(crate) counts: BTreeMap<String, u32>,
}

/// One kill point being run.
pub(crate) struct PointRun<'a> {
    pub(crate) backend: &'a Backend,
    pub(crate) durability: Durability,
    pub(crate) dir: PathBuf,
    pub(crate) mock: &'static MockLlm,
    pub(crate) generation: u64,
    pub(crate) run_id: Option<String>,
    pub(crate) processes: usize,
    pub(crate) resumes: usize,
    /// Kills after which the journal still grew (see [`PointRun::settle`]).
    pub(crate) grew_after_kill: usize,
    pub(crate) log: Vec<String>,
}

impl<'a> PointRun<'a> {
    pub(crate) fn new(
        backend: &'a Backend,
        variant: Variant,
        durability: Durability,
        seed: u64,
        name: String,
    ) -> PointRun<'a> {
        let dir = backend.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mock = mock::server();
        let generation = mock.generation(seed);
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
        write("graph.json", serde_json::to_string_pretty(&graph::document(true, variant.paced)).unwrap_or_default());
        write("inputs.json", graph::inputs(variant.mode).to_string());
        write("resources.yaml", mock.resources_yaml(generation));
        PointRun {
            backend,
            durability,
            dir,
            mock,
            generation,
            run_id: None,
            processes: 0,
            resumes: 0,
            grew_after_kill: 0,
            log: Vec::new(),
        }
    }

    /// The run once the store stopped changing after a kill. (A Postgres server finishes
    /// a commit its killed client had sent: the journal can grow for a moment after the
    /// kill.) Its row must count the entries its journal has.
    pub(crate) fn settle(&mut self, id: &str) -> Result<operonx_store::StoredRun, String> {
        let load = || {
            self.backend.store.load(id).map_err(|e| match e {
                operonx_store::StoreError::NotFound { .. } => format!(
                    "(2) the process printed run id {id} and was killed, but the store has no such run: the run \
                     cannot be resumed nor listed as crashed ({e})"
                ),
                e => format!("load({id}) after the kill: {e}"),
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = load()?;
        let first = last.entries.len();
        loop {
            std::thread::sleep(Duration::from_millis(if self.backend.label == "postgres" { 100 } else { 5 }));
            let now = load()?;
            let same = now.entries.len() == last.entries.len() && now.summary == last.summary;
            last = now;
            if same || Instant::now() > deadline {
                break;
            }
        }
        if last.entries.len() != first {
            self.grew_after_kill += 1;
            self.log.push(format!(
                "  the journal went on from {first} to {} entries after the kill (a commit the killed process sent)",
                last.entries.len()
            ));
        }
        if last.summary.entries != last.entries.len() as u64 {
            return Err(format!(
                "after the kill the run's row counts {} entries but its journal has {} (the store no longer changes)",
                last.summary.entries,
                last.entries.len()
            ));
        }
        Ok(last)
    }

    pub(crate) fn journal(&self) -> Result<Vec<Entry>, String> {
        let id = self.run_id.as_deref().ok_or("no run id yet")?;
        self.backend.store.load(id).map(|r| r.entries).map_err(|e| format!("load({id}): {e}"))
    }

    /// Start the next process (the run, else a resume answering what the run waits for)
    /// and kill it as `kill` says.
    pub(crate) fn process(&mut self, kill: Option<KillAt>) -> Result<Proc, String> {
        self.process_answering(kill, true)
    }

    /// [`PointRun::process`], answering the interrupt only when `answer`.
    pub(crate) fn process_answering(&mut self, kill: Option<KillAt>, answer: bool) -> Result<Proc, String> {
        let mut args: Vec<String> = Vec::new();
        let before = match &self.run_id {
            None => {
                args.extend(["run", "graph.json", "--inputs", "inputs.json"].map(String::from));
                0
            }
            Some(id) => {
                let saved = self.backend.store.load(id).map_err(|e| format!("load({id}) before resuming: {e}"))?;
                args.extend(["resume".to_string(), id.clone()]);
                if answer && saved.pending.iter().any(|i| i.id == ASK_ID) {
                    args.extend(["--answer".to_string(), format!("{ASK_ID}={ANSWER}")]);
                }
                saved.entries.len()
            }
        };
        args.extend(
            ["--resources", "resources.yaml", "--no-trace-store", "--compact", "--durability"].map(String::from),
        );
        args.push(self.durability.as_str().into());
        args.extend(["--store".to_string(), self.backend.spec.clone()]);
        self.processes += 1;
        let proc = self.launch(&args, kill, before)?;
        self.log.push(format!(
            "process {}: operonx {} [journal at start: {before}, kill plan {kill:?}{}] -> {}",
            self.processes,
            args.iter().take_while(|a| !a.starts_with("--resources")).cloned().collect::<Vec<_>>().join(" "),
            proc.entries_at_kill.map_or_else(String::new, |n| format!(", sent at {n} entries")),
            proc.describe()
        ));
        Ok(proc)
    }

    pub(crate) fn launch(&mut self, args: &[String], kill: Option<KillAt>, before: usize) -> Result<Proc, String> {
        let mut child = operonx(&self.dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start operonx: {e}"))?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let out_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel::<String>();
        let err_thread = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        let first = match rx.recv_timeout(HUNG) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = err_thread.join().unwrap_or_default();
                return Err(format!(
                    "operonx {} printed nothing for {} s (killed):\n{err}",
                    args.join(" "),
                    HUNG.as_secs()
                ));
            }
        };
        let t0 = Instant::now();
        let id = first.as_deref().and_then(|l| l.strip_prefix("run id: ")).and_then(|r| r.split_whitespace().next());
        let mut entries_at_kill = None;
        let mut poll_error = None;
        if let Some(id) = id {
            match &self.run_id {
                None => self.run_id = Some(id.to_string()),
                Some(known) if known != id => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("the resume printed run id {id}, not {known}"));
                }
                Some(_) => self.resumes += 1,
            }
            match kill {
                None => {}
                Some(KillAt::Millis(ms) | KillAt::Moment(ms)) => {
                    let at = Duration::from_millis(ms);
                    while child.try_wait().ok().flatten().is_none() {
                        if t0.elapsed() >= at {
                            let _ = child.kill();
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(250));
                    }
                }
                Some(KillAt::Entries(n)) => {
                    while child.try_wait().ok().flatten().is_none() && t0.elapsed() < HUNG {
                        match self.backend.store.load(id) {
                            Ok(run) if run.entries.len() >= before + n => {
                                let _ = child.kill();
                                entries_at_kill = Some(run.entries.len());
                                break;
                            }
                            Ok(_) => {}
                            Err(e) => poll_error = Some(e.to_string()),
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if t0.elapsed() > HUNG => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("waiting for operonx: {e}")),
            }
        };
        let ms = t0.elapsed().as_millis() as u64;
        let stdout = out_thread.join().unwrap_or_default();
        let mut stderr = err_thread.join().unwrap_or_default();
        if let Some(e) = poll_error {
            stderr.push_str(&format!("[harness: polling the store failed at least once: {e}]\n"));
        }
        let killed = status.is_some_and(|s| s.signal() == Some(9));
        let proc = Proc { status, killed, stdout, stderr, ms, entries_at_kill };
        if status.is_none() {
            return Err(format!("operonx {} hung for {} s (killed):\n{}", args.join(" "), HUNG.as_secs(), proc.stderr));
        }
        if id.is_none() && !killed {
            return Err(format!(
                "operonx {} printed no run id line ({}):\n{}",
                args.join(" "),
                proc.describe(),
                proc.stderr
            ));
        }
        Ok(proc)
    }
}

/// How a kill point went, for the suite's tally.
#[derive(Debug, Default, Clone)]
pub struct PointReport {
    /// Processes killed.
    pub kills: usize,
    /// Of which in a resume.
    pub kills_in_resume: usize,
    /// Of which in the resume that answered the interrupt (or later).
    pub kills_after_answer: usize,
    /// Processes run.
    pub processes: usize,
    /// llm calls made twice (in flight at a kill).
    pub redone: usize,
    /// Journal lengths right after each kill.
    pub journal_at_kills: Vec<usize>,
    /// Kills that found the generator unfinished (its end not journaled).
    pub generator_unfinished: usize,
    /// Kills after which the journal still grew for a moment.
    pub grew_after_kill: usize,
}

/// Run kill point `kp` on `backend` and check everything; the error says what failed.
pub fn run_point(backend: &Backend, kp: &KillPoint) -> Result<PointReport, String> {
    let r = references().get(kp.variant);
    let mut run = PointRun::new(backend, kp.variant, kp.durability, kp.seed, format!("kp{:03}", kp.index));
    let outcome = drive(&mut run, kp, r);
    outcome.map_err(|e| {
        let mut msg = format!("{e}\n  what happened:\n");
        for line in &run.log {
            msg.push_str(&format!("    {line}\n"));
        }
        if let Some(id) = &run.run_id {
            msg.push_str(&format!("    run id {id}; files in {}\n", run.dir.display()));
        }
        msg
    })
}

pub(crate) fn drive(run: &mut PointRun<'_>, kp: &KillPoint, r: &Reference) -> Result<PointReport, String> {
    let mut report = PointReport::default();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let ordered = kp.durability != Durability::Off;
    let mut unanswered_done = false;
    loop {
        if run.processes >= 8 {
            return Err("the run is not done after 8 processes".into());
        }
        let kill = kp.kills.get(run.processes).copied().flatten();
        let before = if run.run_id.is_some() { run.journal()?.len() } else { 0 };
        let answered_before = match &run.run_id {
            Some(id) => run.backend.store.load(id).is_ok_and(|s| !s.answers.is_empty() || !s.pending.is_empty()),
            None => false,
        };
        let waiting = match &run.run_id {
            Some(id) => run.backend.store.load(id).is_ok_and(|s| s.summary.status.as_str() == "waiting"),
            None => false,
        };
        let answer = !(kp.unanswered && waiting && !unanswered_done);
        unanswered_done |= waiting && !answer;
        let base = if answered_before { r.resume_ms } else { r.run_ms };
        let kill = kill.map(|k| match k {
            KillAt::Moment(per_mille) => KillAt::Millis(base * per_mille / 1000),
            other => other,
        });
        let counts_before = run.mock.counts(run.generation);
        let proc = run.process_answering(kill, answer)?;
        let label = format!("process {}", run.processes);
        let Some(id) = run.run_id.clone() else { return Err(format!("{label} ended before it printed its run id")) };
        // A kill can land after the process recorded the run's end (it waits, or is done):
        // the store then says so, and that is what is checked.
        let status = if proc.killed {
            report.kills += 1;
            report.kills_in_resume += usize::from(run.processes > 1);
            report.kills_after_answer += usize::from(answered_before);
            let saved = run.settle(&id)?;
            run.backend.store.check().map_err(|e| format!("(1) {label}: check() after the kill fails: {e}"))?;
            let status = saved.summary.status.as_str();
            if status != "crashed" {
                run.log.push(format!("  the kill landed after the run's end was recorded: it is {status}"));
            }
            status
        } else {
            match proc.code() {
                Some(4) => "waiting",
                Some(0) => "done",
                _ => {
                    return Err(format!(
                        "{label} {} (expected 0, or 4 while the run waits):\n--- stdout:\n{}\n--- stderr:\n{}",
                        proc.describe(),
                        clip(&proc.stdout),
                        clip(&proc.stderr)
                    ));
                }
            }
        };
        match status {
            "crashed" => {
                let entries = run.journal()?;
                if entries.len() < before {
                    return Err(format!(
                        "{label} killed: the journal shrank from {before} to {} entries",
                        entries.len()
                    ));
                }
                report.journal_at_kills.push(entries.len());
                report.generator_unfinished += usize::from(!entries.iter().any(|e| e.kind == EntryKind::StreamEnd));
                run.backend
                    .expect_listed(&id, "crashed", entries.len())
                    .map_err(|e| format!("(2) {label} killed: {e}"))?;
                let journaled = validate_journal(&entries, r, ordered).map_err(|e| format!("{label} killed: {e}"))?;
                let counts = run.mock.counts(run.generation);
                check_durability(kp.durability, before, &entries, &counts, r)
                    .map_err(|e| format!("{label} killed: {e}"))?;
                snapshots.push(Snapshot { journaled, counts });
            }
            "waiting" => {
                let saved = run.backend.store.load(&id).map_err(|e| e.to_string())?;
                if !saved.pending.iter().any(|i| i.id == ASK_ID) {
                    return Err(format!("{label}: the run waits, but not for {ASK_ID}: {:?}", saved.pending));
                }
                run.backend.store.check().map_err(|e| format!("(1) {label} waits: check() fails: {e}"))?;
                run.backend
                    .expect_listed(&id, "waiting", saved.entries.len())
                    .map_err(|e| format!("{label} waits: {e}"))?;
                validate_journal(&saved.entries, r, ordered).map_err(|e| format!("{label} waits: {e}"))?;
                let counts = run.mock.counts(run.generation);
                if !answer && !proc.killed && counts != counts_before {
                    return Err(format!(
                        "{label}: a waiting run resumed without an answer made llm calls again (it had journaled \
                         everything before it asked):\n  before: {counts_before:?}\n  after:  {counts:?}"
                    ));
                }
            }
            "done" => {
                let printed = if proc.killed {
                    // Killed after its end was recorded: the stored result stands for the printed one.
                    let saved = run.backend.store.load(&id).map_err(|e| e.to_string())?;
                    saved.result.ok_or_else(|| format!("{label}: the run is done but has no stored result"))?
                } else {
                    serde_json::from_str(proc.stdout.trim()).map_err(|e| {
                        format!("{label} printed no JSON result ({e}):\n{}\n{}", proc.stdout, proc.stderr)
                    })?
                };
                finish(run, &printed, &snapshots, r, ordered, &mut report).map_err(|e| format!("{label} done: {e}"))?;
                report.processes = run.processes;
                report.grew_after_kill = run.grew_after_kill;
                return Ok(report);
            }
            other => {
                return Err(format!(
                    "(2) {label} was killed and the run reads {other:?}, expected crashed:\n--- stderr:\n{}",
                    clip(&proc.stderr)
                ));
            }
        }
    }
}

/// At most 3000 characters of `s`.
pub fn clip(s: &str) -> String {
    if s.len() <= 3000 {
        return s.to_string();
    }
    let mut end = 3000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &s[..end], s.len() - end)
}

/// Run `count` kill points of `suite` on `backend`; panic listing every failure (with the
/// seed and how to replay it) after all ran.
pub fn run_suite(name: &str, backend: &Backend, suite: Suite, count: usize) {
    let seed = splitmix(seed() ^ super::rng::fnv1a(name.as_bytes()));
    let t0 = Instant::now();
    let only = only();
    let mut failures = Vec::new();
    let mut tally = PointReport::default();
    let mut points = 0;
    let mut missed = Vec::new();
    let mut repeated = 0;
    for kp in plan(suite, seed, count) {
        if only.as_ref().is_some_and(|o| !o.contains(&kp.index)) {
            continue;
        }
        points += 1;
        match run_point(backend, &kp) {
            Ok(rep) => {
                tally.kills += rep.kills;
                tally.kills_in_resume += rep.kills_in_resume;
                tally.kills_after_answer += rep.kills_after_answer;
                tally.processes += rep.processes;
                tally.redone += rep.redone;
                tally.journal_at_kills.extend(rep.journal_at_kills);
                tally.generator_unfinished += rep.generator_unfinished;
                tally.grew_after_kill += rep.grew_after_kill;
                if rep.kills == 0 {
                    missed.push(format!("#{} {:?}", kp.index, kp.kills));
                }
                repeated += usize::from(rep.kills >= 2);
            }
            Err(e) => failures.push(format!(
                "kill point {} of {name} ({} store, seed 0x{:016x}, graph {}, durability {}, kills {:?}, \
                 unanswered resume first: {}):\n{e}\n  \
                 replay: \
                 OPERONX_CRASH_SEED=0x{:016x} OPERONX_CRASH_ONLY={} cargo test -p operonx-cli --test crash {name}",
                kp.index,
                backend.label,
                kp.seed,
                kp.variant.name(),
                kp.durability.as_str(),
                kp.kills,
                kp.unanswered,
                self::seed(),
                kp.index
            )),
        }
    }
    let mut at: Vec<usize> = tally.journal_at_kills.clone();
    at.sort_unstable();
    eprintln!(
        "crash harness {name} on {}: {points} kill points, {} processes, {} kills ({} in resumes, {} after the answer, \
         {repeated} points killed twice or more, {} with the generator unfinished; points whose processes all \
         ended before their kill: {missed:?}), {} in-flight llm calls made twice, {} kills after which the journal \
         still grew, journal lengths at the kills {:?}, {:.1} s, {} failed",
        backend.label,
        tally.processes,
        tally.kills,
        tally.kills_in_resume,
        tally.kills_after_answer,
        tally.generator_unfinished,
        tally.redone,
        tally.grew_after_kill,
        at,
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    let durations: Vec<String> =
        references().0.iter().map(|(v, r)| format!("{} {} + {} ms", v.name(), r.run_ms, r.resume_ms)).collect();
    eprintln!(
        "crash harness {name}: the uninterrupted runs took (run until it waits + the answering resume) {durations:?}"
    );
    let strays = mock::server().strays();
    if !strays.is_empty() {
        failures.push(format!("the mock got requests it could not place: {strays:?}"));
    }
    if !failures.is_empty() {
        panic!("{} of {points} kill points of {name} failed:\n\n{}", failures.len(), failures.join("\n\n"));
    }
    if only.is_none() {
        let _ = std::fs::remove_dir_all(&backend.dir);
    }
}
