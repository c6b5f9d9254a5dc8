//! A fuzz target for what users hand the engine: graph.json, inputs and resources.yaml.
//! It runs on stable Rust under `cargo test`, over the committed seed corpus in
//! `tests/fuzz/corpus` (conformance graphs, the examples, and hostile variants: absurd
//! numbers, deep nesting, unicode and control characters, wrong types) and over
//! variants of it made by a seeded mutator, so a failure always reproduces.
//!
//! The property: loading, validating and running never panic and never hang (each run is
//! bounded by the engine's own timeout, and each case by a watchdog), and every refusal is
//! a clean error. The command itself gets the seed corpus too: it exits 0 to 4, never
//! with a panic.
//!
//! `OPERONX_FUZZ_CASES` (default 300) bounds the number of mutated cases,
//! `OPERONX_FUZZ_SECS` (default 60) the time spent making them, `OPERONX_FUZZ_SEED`
//! (default fixed) picks the mutations. A failing case is written to the temp folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use operonx::providers::ResourceHub;
use operonx::{Engine, MemorySink, RunOptions, Value, json};

/// How long one run may take before the engine stops it.
const RUN_TIMEOUT: Duration = Duration::from_millis(750);
/// How long one case may take at all (load, validate, run) before it counts as a hang.
const WATCHDOG: Duration = Duration::from_secs(30);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus")
}

/// The files of one corpus folder, sorted, as (name, text).
fn files(kind: &str) -> Vec<(String, String)> {
    let dir = corpus_dir().join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    out.sort();
    out
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that have broken parsers and conversions before.
fn hostile_value(rng: &mut Rng) -> Value {
    let long = "x".repeat(5000);
    let choices = [
        json!(1e300),
        json!(-1e300),
        json!(1e-300),
        json!(18_446_744_073_709_551_615u64),
        json!(i64::MIN),
        json!(9_223_372_036_854_775_807i64),
        json!(-1),
        json!(0),
        json!(-0.0),
        json!(0.5),
        json!(""),
        json!("\u{0}"),
        json!("é\u{202e}\u{2028}\u{1b}[31m"),
        json!("__PARENT__"),
        json!("main"),
        json!("${NOPE}"),
        json!("{x}"),
        json!("x >= "),
        json!("1e300"),
        json!(long),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([[[[[[1]]]]]]),
        json!({"ref": {"source": "__PARENT__", "var": "x"}}),
    ];
    rng.pick(&choices).clone()
}

/// Every string in `v` (op names, variables, sources): mutations reuse them, so refs end
/// up pointing at other ops, at themselves, or in cycles.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() < 100 => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Apply `f` to the `k`-th node of `v` in pre-order; `true` once applied.
fn at_node(v: &mut Value, k: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
    if *k == 0 {
        f(v);
        return true;
    }
    *k -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| at_node(x, k, f)),
        Value::Object(m) => m.values_mut().any(|x| at_node(x, k, f)),
        _ => false,
    }
}

/// Change one node of `doc`.
fn mutate_node(doc: &mut Value, rng: &mut Rng, pool: &[String]) {
    let mut k = rng.below(count_nodes(doc));
    let choice = rng.below(6);
    let hostile = hostile_value(rng);
    let from_pool = if pool.is_empty() { "x".to_string() } else { rng.pick(pool).clone() };
    let index = rng.next() as usize;
    at_node(doc, &mut k, &mut |node| match (choice, &mut *node) {
        (0, Value::Object(m)) if !m.is_empty() => {
            let key = m.keys().nth(index % m.len()).cloned().unwrap_or_default();
            m.shift_remove(&key);
        }
        (1, Value::Object(m)) => {
            m.insert(from_pool.clone(), hostile.clone());
        }
        (1, Value::Array(a)) if !a.is_empty() => {
            let copy = a[index % a.len()].clone();
            a.push(copy);
        }
        (2, Value::String(s)) => *s = from_pool.clone(),
        (3, other) => *other = json!([other.take()]),
        _ => *node = hostile.clone(),
    });
}

/// Fields whose values a graph may hold anything in (literals, defaults, limits, refs):
/// changing one keeps the graph loadable often enough to reach the scheduler.
const SOFT_KEYS: &[&str] = &[
    "literal",
    "default",
    "timeout",
    "delay",
    "emit_yields",
    "max_stream_concurrent",
    "max_iterations",
    "until",
    "source",
    "var",
    "func_name",
    "ttl",
    "initial_delay",
    "max_delay",
    "max_attempts",
    "required",
    "enabled",
    "bound",
    "is_generator",
    "is_async",
];

/// Apply `f` to the `k`-th value held under one of [`SOFT_KEYS`]; returns how many there are.
fn at_soft(v: &mut Value, k: &mut usize, f: &mut dyn FnMut(&mut Value)) -> usize {
    let mut seen = 0;
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| seen += at_soft(x, k, f)),
        Value::Object(m) => {
            for (key, x) in m.iter_mut() {
                if SOFT_KEYS.contains(&key.as_str()) {
                    if *k == 0 {
                        f(x);
                    }
                    *k = k.wrapping_sub(1);
                    seen += 1;
                }
                seen += at_soft(x, k, f);
            }
        }
        _ => {}
    }
    seen
}

/// Change one value under a [`SOFT_KEYS`] field of `doc` (or, with none, any node).
fn mutate_soft(doc: &mut Value, rng: &mut Rng, pool: &[String]) {
    let mut never = usize::MAX;
    let total = at_soft(doc, &mut never, &mut |_| {});
    if total == 0 {
        return mutate_node(doc, rng, pool);
    }
    let mut k = rng.below(total);
    let hostile = hostile_value(rng);
    let from_pool = if pool.is_empty() { None } else { Some(rng.pick(pool).clone()) };
    let use_pool = rng.chance(3);
    at_soft(doc, &mut k, &mut |x| match (&from_pool, use_pool) {
        (Some(p), true) => *x = Value::String(p.clone()),
        _ => *x = hostile.clone(),
    });
}

/// Damage a text: cut it, insert odd characters, or blow up a number.
fn mutate_text(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(3) {
        let at = rng.below(chars.len() + 1);
        match rng.below(5) {
            0 => chars.truncate(at),
            1 => chars.insert(at, *rng.pick(&['\u{0}', '\u{feff}', '\u{202e}', '"', '{', '[', '\\', '\n', '\t', '😀'])),
            2 => {
                let end = (at + rng.below(40)).min(chars.len());
                chars.drain(at..end);
            }
            3 => {
                let n = *rng.pick(&["1e999", "-1e999", "99999999999999999999999999", "1e-999", "-0", "0x10"]);
                chars.splice(at..at, n.chars());
            }
            _ => {
                let n = rng.below(200);
                let open = *rng.pick(&['[', '{']);
                chars.splice(at..at, std::iter::repeat_n(open, n));
            }
        }
    }
    chars.into_iter().collect()
}

/// Change one line of a YAML text: a value, an indent, a duplicate, a deletion.
fn mutate_yaml(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return mutate_text(text, rng);
    }
    let i = rng.below(lines.len());
    match rng.below(6) {
        0 => {
            if let Some(colon) = lines[i].find(": ") {
                let v = *rng.pick(&[
                    "1e300",
                    "-1",
                    "2305843009213693952",
                    "1e-300",
                    "[]",
                    "{a: b}",
                    "~",
                    "!!binary aGk=",
                    "*nope",
                    "${NOPE}",
                    "\"\\u0000\"",
                    ".nan",
                    ".inf",
                ]);
                lines[i] = format!("{}: {v}", &lines[i][..colon]);
            }
        }
        1 => lines[i] = format!("  {}", lines[i]),
        2 => lines[i] = lines[i].trim_start().to_string(),
        3 => {
            let copy = lines[i].clone();
            lines.insert(i, copy);
        }
        4 => {
            lines.remove(i);
        }
        _ => return mutate_text(text, rng),
    }
    lines.join("\n")
}

/// What one case does; returns a description of a failure, if any.
enum Case {
    Graph { name: String, graph: String, inputs: Option<String> },
    Resources { name: String, yaml: String, graph: String },
}

impl Case {
    fn name(&self) -> &str {
        match self {
            Case::Graph { name, .. } | Case::Resources { name, .. } => name,
        }
    }

    fn dump(&self) -> String {
        match self {
            Case::Graph { graph, inputs, .. } => {
                format!("{graph}\n--- inputs ---\n{}", inputs.as_deref().unwrap_or(""))
            }
            Case::Resources { yaml, .. } => yaml.clone(),
        }
    }
}

/// The CLI's engine, plus the conformance op pool (the corpus's conformance graphs use it).
fn engine(hub: ResourceHub) -> Engine {
    let mut engine = Engine::new().with_resources(Arc::new(hub));
    engine.registry_mut().merge(&operonx_testkit::test_ops());
    operonx::ops::register_std(engine.registry_mut());
    engine
}

/// A clean error: something to read, and no sign of a panic.
fn check_message(what: &str, message: &str) -> Result<(), String> {
    if message.trim().is_empty() || message.contains("panicked") {
        return Err(format!("{what}: unclean error {message:?}"));
    }
    Ok(())
}

/// How far a case got: refused (cleanly) before running, or ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Refused,
    Ran,
}

/// A clean refusal.
fn refused(what: &str, message: &str) -> Result<Reached, String> {
    check_message(what, message).map(|()| Reached::Refused)
}

fn run_graph(graph: &str, inputs: Option<&str>) -> Result<Reached, String> {
    let engine = engine(ResourceHub::empty());
    let wf = match engine.load_str(graph) {
        Ok(wf) => wf,
        Err(e) => return refused("load", &e.to_string()),
    };
    let inputs: Value = match inputs.map(serde_json::from_str::<Value>) {
        None => json!({}),
        Some(Ok(v)) => v,
        Some(Err(e)) => return refused("inputs", &e.to_string()),
    };
    if let Some(map) = inputs.as_object() {
        // The CLI refuses these up front; the engine must cope either way.
        let _ = wf.missing_inputs(map);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let sink = Arc::new(MemorySink::new());
    let options = RunOptions::default().timeout(RUN_TIMEOUT).resumable().trace(sink.clone());
    let outcome = match rt.block_on(wf.run_with(inputs, options)) {
        Ok(o) => o,
        Err(e) => return refused("run", &e.to_string()),
    };
    for f in &outcome.failures {
        check_message(&format!("op {}", f.op), &f.message)?;
    }
    serde_json::to_string(&outcome.json_view()).map_err(|e| format!("result does not print: {e}"))?;
    if let Some(state) = &outcome.state {
        serde_json::to_string(state).map_err(|e| format!("state does not save: {e}"))?;
    }
    Ok(Reached::Ran)
}

fn load_resources(yaml: &str, graph: &str) -> Result<Reached, String> {
    let hub = match ResourceHub::from_yaml_str(yaml, &|_| None) {
        Ok(h) => h,
        Err(e) => return refused("resources", &e.to_string()),
    };
    for key in hub.keys() {
        let (category, name) = key.split_once(':').unwrap_or(("", &key));
        let built = match category {
            "llm" => hub.get_llm(name).map(|_| ()),
            "embedding" => hub.get_embedding(name).map(|_| ()),
            "reranking" => hub.get_reranker(name).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = built {
            check_message(&key, &e.to_string())?;
        }
    }
    // Validate only: a graph's model calls are never made against fuzzed providers.
    match engine(hub).load_str(graph) {
        Ok(_) => Ok(Reached::Ran),
        Err(e) => refused("validate", &e.to_string()),
    }
}

/// Run one case on its own thread (the CLI's main-thread stack), under a watchdog.
fn check(case: Case) -> Result<Reached, String> {
    let (tx, rx) = mpsc::channel();
    let name = case.name().to_string();
    let dump = case.dump();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz {name}"))
        .stack_size(8 << 20)
        .spawn(move || {
            let r = match &case {
                Case::Graph { graph, inputs, .. } => run_graph(graph, inputs.as_deref()),
                Case::Resources { yaml, graph, .. } => load_resources(yaml, graph),
            };
            let _ = tx.send(r);
        })
        .map_err(|e| e.to_string())?;
    let failure = match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(reached)) => {
            let _ = worker.join();
            return Ok(reached);
        }
        Ok(Err(e)) => e,
        Err(mpsc::RecvTimeoutError::Timeout) => format!("hung for more than {WATCHDOG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(p) => format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
            Ok(()) => "the case ended without a result".to_string(),
        },
    };
    let file = std::env::temp_dir().join(format!("operonx-fuzz-failure-{}.txt", sanitize(&name)));
    let _ = std::fs::write(&file, &dump);
    Err(format!("{name}: {failure} (case written to {})", file.display()))
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// The seed cases: each graph with its own inputs (or a hostile one), each resources file.
fn seeds() -> Vec<Case> {
    let graphs = files("graph");
    let inputs = files("inputs");
    let resources = files("resources");
    let hostile: Vec<&(String, String)> = inputs.iter().filter(|(n, _)| n.starts_with("hostile-")).collect();
    let rag = graphs.iter().find(|(n, _)| n == "example-rag.json").map(|(_, t)| t.clone()).unwrap_or_default();
    let mut cases = Vec::new();
    for (i, (name, graph)) in graphs.iter().enumerate() {
        let own = inputs.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
        cases.push(Case::Graph { name: format!("seed {name}"), graph: graph.clone(), inputs: own });
        if let Some((iname, itext)) = hostile.get(i % hostile.len().max(1)) {
            cases.push(Case::Graph {
                name: format!("seed {name} + {iname}"),
                graph: graph.clone(),
                inputs: Some(itext.clone()),
            });
        }
    }
    for (name, yaml) in resources {
        cases.push(Case::Resources { name: format!("seed {name}"), yaml, graph: rag.clone() });
    }
    cases
}

/// Mutated cases, made on demand from the corpus.
struct Mutator {
    rng: Rng,
    graphs: Vec<(String, String, Option<Value>)>,
    inputs: Vec<(String, String)>,
    resources: Vec<(String, String)>,
    rag: String,
}

impl Mutator {
    fn new(seed: u64) -> Self {
        let inputs = files("inputs");
        let graphs = files("graph")
            .into_iter()
            .map(|(n, t)| {
                let parsed = serde_json::from_str(&t).ok();
                (n, t, parsed)
            })
            .collect::<Vec<_>>();
        let rag = graphs.iter().find(|(n, ..)| n == "example-rag.json").map(|(_, t, _)| t.clone()).unwrap_or_default();
        Self { rng: Rng(seed | 1), graphs, inputs, resources: files("resources"), rag }
    }

    fn case(&mut self, i: u64) -> Case {
        let rng = &mut self.rng;
        if rng.chance(6) {
            let (name, yaml) = rng.pick(&self.resources).clone();
            let mut yaml = yaml;
            for _ in 0..=rng.below(3) {
                yaml = mutate_yaml(&yaml, rng);
            }
            return Case::Resources { name: format!("mutant {i} of {name}"), yaml, graph: self.rag.clone() };
        }
        let (name, text, parsed) = rng.pick(&self.graphs).clone();
        // Half the cases keep the graph (odd inputs reach the scheduler), a quarter change
        // its soft fields, the rest damage it anywhere (the loader's side).
        let graph = match (parsed, rng.below(8)) {
            (Some(doc), 0..=3) => doc.to_string(),
            (Some(mut doc), 4 | 5) => {
                let mut pool = Vec::new();
                strings(&doc, &mut pool);
                for _ in 0..=rng.below(2) {
                    mutate_soft(&mut doc, rng, &pool);
                }
                doc.to_string()
            }
            (Some(mut doc), 6) => {
                let mut pool = Vec::new();
                strings(&doc, &mut pool);
                for _ in 0..=rng.below(4) {
                    mutate_node(&mut doc, rng, &pool);
                }
                doc.to_string()
            }
            _ => mutate_text(&text, rng),
        };
        let own = self.inputs.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone());
        let inputs = match (own, rng.below(3)) {
            (Some(t), 0) => Some(t),
            (_, 1) => Some(rng.pick(&self.inputs).1.clone()),
            (own, _) => {
                let base = own.unwrap_or_else(|| rng.pick(&self.inputs).1.clone());
                match serde_json::from_str::<Value>(&base) {
                    Ok(mut v) if !rng.chance(4) => {
                        let mut pool = Vec::new();
                        strings(&v, &mut pool);
                        mutate_node(&mut v, rng, &pool);
                        Some(v.to_string())
                    }
                    _ => Some(mutate_text(&base, rng)),
                }
            }
        };
        Case::Graph { name: format!("mutant {i} of {name}"), graph, inputs }
    }
}

#[test]
fn the_seed_corpus_never_panics_or_hangs_in_the_engine() {
    let failures: Vec<String> = seeds().into_iter().filter_map(|c| check(c).err()).collect();
    assert!(failures.is_empty(), "{} failing seed cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn mutated_cases_never_panic_or_hang_in_the_engine() {
    let cases = env_num("OPERONX_FUZZ_CASES", 300);
    let budget = Duration::from_secs(env_num("OPERONX_FUZZ_SECS", 60));
    let seed = env_num("OPERONX_FUZZ_SEED", 0x5eed_0f0e_4a11);
    let mut mutator = Mutator::new(seed);
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut tried, mut ran) = (0, 0);
    for i in 0..cases {
        if started.elapsed() > budget {
            break;
        }
        match check(mutator.case(i)) {
            Ok(Reached::Ran) => ran += 1,
            Ok(Reached::Refused) => {}
            Err(e) => failures.push(e),
        }
        tried += 1;
    }
    eprintln!(
        "fuzz: {tried} mutated cases, {ran} ran (the rest refused cleanly), seed {seed:#x}, {:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{} failing cases (seed {seed:#x}):\n{}", failures.len(), failures.join("\n"));
}

/// The command on the seed corpus: `validate` and `run` exit 0 to 4, never with a panic.
#[test]
fn the_command_never_panics_on_the_seed_corpus() {
    let dir = std::env::temp_dir().join(format!("operonx-fuzz-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = corpus_dir();
    let mut failures = Vec::new();
    let graphs = files("graph");
    let inputs = files("inputs");
    let operonx = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_operonx")).args(args).current_dir(&dir).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0..=4) if !stderr.contains("panicked") => None,
            code => Some(format!("operonx {}: status {code:?}\n{stderr}", args.join(" "))),
        }
    };
    for (name, _) in &graphs {
        let graph = corpus.join("graph").join(name);
        let graph = graph.to_str().unwrap();
        failures.extend(operonx(&["validate", graph]));
        let own = inputs.iter().any(|(n, _)| n == name).then(|| corpus.join("inputs").join(name));
        let mut args = vec!["run", graph, "--no-trace-store", "--compact", "--timeout", "2"];
        let own = own.as_ref().map(|p| p.to_str().unwrap().to_string());
        if let Some(p) = &own {
            args.extend(["--inputs", p.as_str()]);
        }
        failures.extend(operonx(&args));
    }
    let rag = corpus.join("graph/example-rag.json");
    for (name, _) in files("resources") {
        let res = corpus.join("resources").join(&name);
        failures.extend(operonx(&["validate", rag.to_str().unwrap(), "--resources", res.to_str().unwrap()]));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{} failing invocations:\n{}", failures.len(), failures.join("\n"));
}
