//! `operonx-bench GRAPH.json --inputs JSON [--runs N] [--warmup N]`: run one benchmark
//! workload (see `shared/bench/README.md`) with the bench op pool and print one JSON line.
//!
//! The engine and the compiled graph are built once; warm-up runs come first; every
//! timed run's result is checked, and a wrong result is an error, never a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use std::sync::Arc;

use operonx::providers::ResourceHub;
use operonx::trace::RawEvent;
use operonx::{Engine, MemorySink, RunOptions, RunOutcome, TraceEvent, TraceSink, Value, Workflow, json};
use operonx_store::{Durability, Journaler, NewRun, RunEnd, RunStatus, RunStore, WriterOptions};
use operonx_testkit::mock_llm::MockLlm;
use operonx_trace::TracePipeline;

/// The process's allocator (see the `jemalloc` feature).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Run one benchmark workload graph and print its timings as a JSON line.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The workload graph (w0.json ... w5d.json).
    graph: PathBuf,
    /// Inputs: a JSON object, inline or as a file path.
    #[arg(long, default_value = "{}")]
    inputs: String,
    /// Timed runs.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// resources.yaml (model providers), for workloads that call models.
    #[arg(long)]
    resources: Option<PathBuf>,
    /// Start a mock OpenAI-compatible server answering after this many ms, and point the
    /// resource `llm:mock` at it (for W5). Ignores `--resources`.
    #[arg(long, value_name = "MS")]
    mock_llm_ms: Option<u64>,
    /// Tracing: `off`; `options` (untraced, but through `run_with` with default options,
    /// as the traced modes run); `raw` (the scheduler records events, a sink drops them);
    /// `null` (the full pipeline with an exporter that drops batches); `file` (JSON
    /// lines to a temporary file); `store` (the default SQLite store, in a temporary
    /// directory). Pipelines are flushed at the end of every timed run. Several modes,
    /// comma-separated (`off,raw,store`), are measured in one process, taking turns run
    /// by run, so their ratios are not skewed by the machine's drift; one line each.
    /// `journal-batched`, `journal-sync`, `journal-off` (untraced, every run journaled to
    /// a SQLite run store in a temporary directory with that durability; each run waits
    /// until it is recorded before it starts), `journal-queued` (batched, and runs start
    /// without waiting to be recorded: `Journaler::create_queued`) and
    /// `journal-pg-batched` (etc.: Postgres at $OPERONX_BENCH_POSTGRES, default the local
    /// test database).
    #[arg(long, default_value = "off")]
    trace: String,
    /// Graph runs per timed run for W2 (the README's W2 uses 10,000; W7 uses 1,000).
    #[arg(long)]
    repeat: Option<usize>,
    /// Worker threads of the engine's runtime: 1 (the default) runs it on one thread, as
    /// a run is one task; more gives a multi-thread runtime like the `operonx` CLI's, where
    /// the HTTP client's connection tasks spread over the cores (W5).
    #[arg(long, default_value_t = 1)]
    engine_threads: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("operonx-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What one timed unit of a workload does and how its result is checked.
struct Workload {
    name: String,
    /// Graph runs per timed run (W2 runs the graph 10,000 times).
    repeat: usize,
    unit: &'static str,
    units: f64,
}

fn workload(name: &str, inputs: &Value) -> Workload {
    let n = inputs.get("n").and_then(Value::as_u64).unwrap_or(0) as f64;
    let (repeat, unit, units) = match name {
        "w1" => (1, "op", 1000.0),
        "w2" => (10_000, "run", 10_000.0),
        "w3" | "w3io" | "w3n" => (1, "item", n),
        "w4" => (1, "branch", 500.0),
        "w5" | "w5d" => (1, "call", n),
        _ => (1, "run", 1.0),
    };
    Workload { name: name.to_string(), repeat, unit, units }
}

/// Check one graph run's outcome against the workload's expected result.
fn check(w: &Workload, inputs: &Value, out: &RunOutcome) -> anyhow::Result<()> {
    if !out.failures.is_empty() {
        bail!("the run failed: {}", out.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "));
    }
    let get = |k: &str| out.outputs.get(k).cloned().unwrap_or(Value::Null);
    let x = inputs.get("x").and_then(Value::as_i64).unwrap_or(0);
    let n = inputs.get("n").and_then(Value::as_i64).unwrap_or(0);
    let ok = match w.name.as_str() {
        "w0" => get("out") == json!(x + 1),
        "w1" => get("out") == json!(x + 1000),
        "w2" => get("out") == json!(3 * x + 5),
        "w3" | "w3io" => {
            let z = get("z");
            let values: Vec<i64> = match &z {
                Value::Array(a) => a.iter().filter_map(Value::as_i64).collect(),
                Value::Number(v) => v.as_i64().into_iter().collect(),
                _ => Vec::new(),
            };
            values.len() as i64 == n && values.iter().sum::<i64>() == n * (n + 1)
        }
        "w3n" => get("total") == json!(n * (n + 1)),
        "w4" => get("total") == json!(125_250) || get("out") == json!(125_250),
        "w5" | "w5d" => {
            let c = get("content");
            c.as_array().is_some_and(|a| a.len() as i64 == n && a.iter().all(|v| v == "ok"))
        }
        _ => true,
    };
    if !ok {
        bail!("wrong result for {}: {}", w.name, Value::Object(out.outputs.clone()));
    }
    Ok(())
}

fn parse_inputs(text: &str) -> anyhow::Result<Value> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            let body = std::fs::read_to_string(Path::new(text)).with_context(|| format!("reading inputs {text}"))?;
            serde_json::from_str(&body).with_context(|| format!("inputs file {text}"))?
        }
    };
    if !v.is_object() {
        bail!("inputs must be a JSON object");
    }
    Ok(v)
}

/// Records every event, keeps none: the cost of tracing in the scheduler alone.
struct NullSink;

impl TraceSink for NullSink {
    fn record(&self, event: TraceEvent) {
        std::hint::black_box(event);
    }

    fn record_raw(&self, event: RawEvent) {
        std::hint::black_box(event);
    }
}

/// Takes every batch, keeps nothing: the pipeline's own cost.
struct NullExporter;

impl operonx_trace::Exporter for NullExporter {
    fn name(&self) -> &str {
        "null"
    }

    fn export<'a>(
        &'a self,
        batch: &'a [TraceEvent],
    ) -> futures_util::future::BoxFuture<'a, Result<(), operonx_trace::ExportError>> {
        std::hint::black_box(batch);
        Box::pin(async { Ok(()) })
    }

    fn takes_recorded(&self) -> bool {
        true
    }

    fn export_recorded(
        &self,
        batch: Arc<Vec<operonx_trace::RecordedEvent>>,
    ) -> futures_util::future::BoxFuture<'_, Result<(), operonx_trace::ExportError>> {
        std::hint::black_box(batch);
        Box::pin(async { Ok(()) })
    }
}

async fn run_once(wf: &Workflow, inputs: Value, mode: &TraceMode) -> anyhow::Result<RunOutcome> {
    Ok(match (&mode.sink, mode.with_options) {
        (None, false) => wf.run(inputs).await?,
        (None, true) => wf.run_with(inputs, RunOptions::default()).await?,
        (Some(s), _) => wf.run_with(inputs, RunOptions::default().trace(s.clone())).await?,
    })
}

/// One graph run journaled to a run store: the run recorded, run, its end recorded (the
/// store is written from this thread, outside the runtime, as the CLI does).
fn run_journaled(
    rt: &tokio::runtime::Runtime,
    wf: &Workflow,
    inputs: Value,
    journaler: &Journaler,
    mode: Durability,
    queued: bool,
) -> anyhow::Result<RunOutcome> {
    let options = RunOptions::default();
    let new = NewRun {
        run_id: options.request_id.clone(),
        graph_name: wf.name().to_string(),
        graph_path: None,
        graph: wf.document().clone(),
        fingerprint: wf.fingerprint().to_string(),
        inputs: inputs.as_object().cloned().unwrap_or_default(),
        scratch: operonx::Map::new(),
        options: operonx::Map::new(),
        ..NewRun::default()
    };
    let writer = WriterOptions {
        mode,
        scratch: options.scratch.clone(),
        secrets: operonx::graph::SecretSet::new(),
        on_failure: None,
    };
    let run = if queued {
        journaler.create_queued(new, operonx_store::DEFAULT_LEASE, writer)?
    } else {
        journaler.create(new, operonx_store::DEFAULT_LEASE, writer)?
    };
    let out = rt.block_on(wf.run_with(inputs, options.journal(run.journal())))?;
    let end = RunEnd {
        status: RunStatus::Done,
        result: None,
        pending: Vec::new(),
        scratch: operonx::Map::new(),
        reason: None,
        stats: None,
    };
    // The end is committed with the next group (the timed unit ends with a flush).
    run.finish_queued(&end)?;
    Ok(out)
}

fn one(
    rt: &tokio::runtime::Runtime,
    wf: &Workflow,
    w: &Workload,
    inputs: &Value,
    mode: &TraceMode,
) -> anyhow::Result<()> {
    let go = |inp: Value| match &mode.journal {
        Some((journaler, durability, queued)) => run_journaled(rt, wf, inp, journaler, *durability, *queued),
        None => rt.block_on(run_once(wf, inp, mode)),
    };
    if w.repeat == 1 {
        let out = go(inputs.clone())?;
        check(w, inputs, &out)?;
    } else {
        for i in 0..w.repeat {
            let inp = json!({"x": i});
            let out = go(inp.clone())?;
            check(w, &inp, &out)?;
        }
    }
    if let Some((journaler, _, _)) = &mode.journal {
        journaler.flush()?;
    }
    Ok(())
}

fn cpu_time_ms() -> f64 {
    // utime + stime of this process, from /proc (Linux); 0 elsewhere.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks * 10.0
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    // The engine runs on one thread, as a run is one task; the mock server and the trace
    // pipeline's flusher get their own runtime (their own thread), like separate processes.
    let rt = match args.engine_threads {
        0 => bail!("--engine-threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    let side_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let scratch_dir = std::env::temp_dir().join(format!("operonx-bench-{}", std::process::id()));
    let modes = args
        .trace
        .split(',')
        .map(|name| TraceMode::new(name.trim(), &side_rt, &scratch_dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let inputs = parse_inputs(&args.inputs)?;
    let mock = match args.mock_llm_ms {
        Some(ms) => Some(side_rt.block_on(MockLlm::start(std::time::Duration::from_millis(ms)))?),
        None => None,
    };
    let hub = match (&mock, &args.resources) {
        (Some(m), _) => {
            let yaml = format!(
                "llm:\n  mock:\n    api_type: openai\n    model: mock\n    base_url: {}\n    api_key: none\n    max_concurrency: 4096\n",
                m.base_url()
            );
            ResourceHub::from_yaml_str(&yaml, &|_| None)?
        }
        (None, Some(path)) => ResourceHub::from_yaml_file(path, &|k| std::env::var(k).ok())?,
        (None, None) => ResourceHub::empty(),
    };
    let mut engine = Engine::new().with_resources(Arc::new(hub));
    engine.registry_mut().merge(&operonx_testkit::bench_ops());
    let wf = engine.load_file(&args.graph)?;
    let name = args.graph.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut w = workload(&name, &inputs);
    if let (Some(r), "w2") = (args.repeat, name.as_str()) {
        w.repeat = r.max(1);
        w.units = w.repeat as f64;
    }

    for _ in 0..args.warmup {
        for m in &modes {
            one(&rt, &wf, &w, &inputs, m)?;
            m.flush(&side_rt);
        }
    }
    let mut totals = vec![Vec::with_capacity(args.runs); modes.len()];
    let mut runs_only = vec![Vec::with_capacity(args.runs); modes.len()];
    let cpu0 = cpu_time_ms();
    for i in 0..args.runs {
        // Take turns, starting with a different mode each time.
        for k in 0..modes.len() {
            let at = (i + k) % modes.len();
            let m = &modes[at];
            let t = Instant::now();
            one(&rt, &wf, &w, &inputs, m)?;
            runs_only[at].push(t.elapsed().as_secs_f64() * 1000.0);
            m.flush(&side_rt);
            totals[at].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let cpu = (cpu_time_ms() - cpu0) / (args.runs * modes.len()) as f64;
    for m in &modes {
        if let Some(p) = &m.pipeline {
            side_rt.block_on(p.shutdown());
        }
    }
    let _ = std::fs::remove_dir_all(&scratch_dir);
    // Each mode against `off` round by round (both timed within moments of each other),
    // then the median: steadier than a ratio of medians on a machine that drifts.
    let off = modes.iter().position(|m| m.name == "off");
    let ratio_to_off = |times: &[f64]| {
        let base = &totals[off?];
        let mut r: Vec<f64> = times.iter().zip(base).map(|(t, b)| t / b).collect();
        r.sort_by(f64::total_cmp);
        Some(round3(r[r.len() / 2]))
    };
    let ratios: Vec<(Option<f64>, Option<f64>)> =
        (0..modes.len()).map(|at| (ratio_to_off(&totals[at]), ratio_to_off(&runs_only[at]))).collect();
    for (at, m) in modes.iter().enumerate() {
        let times = &mut totals[at];
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let mut line = json!({
            "graph": name,
            "runs": args.runs,
            "median_ms": round3(median),
            "min_ms": round3(times[0]),
            "max_ms": round3(times[times.len() - 1]),
            "cpu_ms": round3(cpu),
            "result_ok": true,
            "unit": w.unit,
            "per_unit_us": round3(median * 1000.0 / w.units.max(1.0)),
        });
        if modes.len() > 1 {
            line["trace"] = json!(m.name);
            line["cpu_ms"] = json!(null);
            if let (Some(total), runs) = ratios[at] {
                line["ratio_to_off"] = json!(total);
                if m.pipeline.is_some() {
                    line["runs_ratio_to_off"] = json!(runs);
                }
            }
        }
        if m.pipeline.is_some() {
            // The runs alone, before the flush that waits for the exporter: the latency
            // tracing adds to the runs themselves (the exporter works on its own thread).
            let runs = &mut runs_only[at];
            runs.sort_by(f64::total_cmp);
            line["runs_median_ms"] = json!(round3(runs[runs.len() / 2]));
            line["runs_min_ms"] = json!(round3(runs[0]));
        }
        println!("{line}");
    }
    Ok(())
}

/// One way of tracing the timed runs.
struct TraceMode {
    name: String,
    pipeline: Option<TracePipeline>,
    sink: Option<Arc<dyn TraceSink>>,
    /// Run through `run_with(RunOptions)` (a request id, an outcome carrying it) even
    /// when untraced: the `options` mode, the baseline that isolates tracing's own cost.
    with_options: bool,
    /// Journal every run to this run store (`journal-*` modes).
    journal: Option<(Journaler, Durability, bool)>,
}

impl TraceMode {
    /// The mode named `name`; pipelines run their flusher on `side_rt`.
    fn new(name: &str, side_rt: &tokio::runtime::Runtime, scratch_dir: &Path) -> anyhow::Result<Self> {
        let _guard = side_rt.enter();
        // As the CLI's pipeline: media offloaded first (beside the store), then the
        // default redaction and truncation.
        let media = operonx_trace::media::LocalMediaStore::new(scratch_dir.join("media"));
        let base = TracePipeline::builder()
            .media(operonx_trace::media::MediaOffload::new(Arc::new(media)))
            .processor(operonx_trace::processor::Redact::with_defaults())
            .processor(operonx_trace::processor::Truncate::default());
        let pipeline = match name {
            "null" => Some(base.exporter(NullExporter).build()?),
            "file" => {
                std::fs::create_dir_all(scratch_dir)?;
                Some(base.exporter(operonx_trace::JsonlExporter::file(scratch_dir.join("trace.jsonl"))).build()?)
            }
            "store" => {
                std::fs::create_dir_all(scratch_dir)?;
                Some(base.exporter(operonx_trace::SqliteStore::open(scratch_dir.join("traces.db"))?).build()?)
            }
            _ => None,
        };
        let journal = match name.strip_prefix("journal-") {
            Some(rest) => {
                let (backend, durability) = rest.split_once('-').unwrap_or(("sqlite", rest));
                let queued = durability == "queued";
                let durability: Durability =
                    if queued { Durability::Batched } else { durability.parse().map_err(anyhow::Error::msg)? };
                std::fs::create_dir_all(scratch_dir)?;
                let store: Arc<dyn RunStore> = match backend {
                    "sqlite" => Arc::new(operonx_store::SqliteRunStore::open(scratch_dir.join(format!("{name}.db")))?),
                    "pg" => {
                        let url = std::env::var("OPERONX_BENCH_POSTGRES")
                            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                        operonx_store::open(Some(&url))?
                    }
                    other => bail!("--trace {name}: unknown store {other:?} (sqlite or pg)"),
                };
                Some((Journaler::start(store)?, durability, queued))
            }
            None => None,
        };
        let sink: Option<Arc<dyn TraceSink>> = match (name, &pipeline) {
            ("off" | "options", _) => None,
            (n, _) if n.starts_with("journal-") => None,
            ("raw", _) => Some(Arc::new(NullSink)),
            ("memory", _) => Some(Arc::new(MemorySink::new())),
            (_, Some(p)) => Some(p.sink()),
            (other, None) => bail!("--trace {other}: expected off, options, raw, null, file, store or memory"),
        };
        Ok(Self { name: name.to_string(), pipeline, sink, with_options: name != "off", journal })
    }

    /// Wait until everything recorded so far is exported.
    fn flush(&self, side_rt: &tokio::runtime::Runtime) {
        if let Some(p) = &self.pipeline {
            side_rt.block_on(p.flush());
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
