//! `operonx serve` as a user starts it: on the repository's examples (each with its own
//! resources), and scaled out on a shared Postgres run store: `operonx serve` (queueing only) and two
//! `operonx worker` processes; 1,000 runs submitted over HTTP; one worker SIGKILLed
//! midway. Every run must end done with its right result, none lost, and none run twice
//! past its journal: the workers journal with `--durability sync` (each op's result is
//! committed before anything uses it), and each run's two model calls are sequential, so
//! a run the killed worker held had at most one call in flight that its journal does not
//! hold, and only that call may have been made twice. (With the default `batched`, the
//! last group not yet committed is lost too and runs again: what the crash harness
//! checks against the journal as committed.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The crash harness's mock server and Postgres schemas (not all of their parts are used).
#[allow(dead_code)]
#[path = "crash/mock.rs"]
mod mock;
#[path = "crash/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "crash/rng.rs"]
mod rng;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Runs submitted.
const RUNS: usize = 1000;
/// Runs done before the first worker is killed.
const KILL_AFTER: usize = 300;
/// The store key every process shares.
const KEY: &str = "5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a1e5c0a";

fn parent(var: &str) -> Value {
    json!({"ref": {"source": "__PARENT__", "var": var}})
}

fn from(source: &str, var: &str) -> Value {
    json!({"ref": {"source": source, "var": var}})
}

/// `key` -> prompt "first {key}" -> llm -> prompt "second {key} after {first}" -> llm.
fn pair_graph() -> Value {
    let prompt = |user: &str, vars: Value| {
        let mut inputs = vars;
        inputs["template"] = json!({"literal": {"user": user}});
        json!({"type": "prompt", "inputs": inputs, "outputs": {"messages": {}}})
    };
    let llm = |src: &str, out: Option<&str>| {
        json!({"type": "llm", "bound": "io", "resource": "mock",
               "inputs": {"messages": {"required": true, "ref": {"source": src, "var": "messages"}}},
               "outputs": {"content": out.map_or_else(|| json!({}), parent)}})
    };
    let mut ops = serde_json::Map::new();
    let list = [
        (
            "p1",
            prompt("first {key}", json!({"key": {"required": true, "ref": {"source": "__PARENT__", "var": "key"}}})),
        ),
        ("llm1", llm("main.p1", None)),
        ("p2", prompt("second {key}", json!({"key": parent("key"), "after": from("main.llm1", "content")}))),
        ("llm2", llm("main.p2", Some("answer"))),
    ];
    for (name, mut op) in list {
        op["name"] = json!(name);
        op["full_name"] = json!(format!("main.{name}"));
        ops.insert(name.into(), op);
    }
    json!({"schema_version": "1.0", "type": "graph", "name": "main", "full_name": "main", "entries": ["p1"],
           "initial_ready_count": {"p1": 0, "llm1": 1, "p2": 1, "llm2": 1},
           "compiled_adj": {"p1": [["llm1", false]], "llm1": [["p2", false]], "p2": [["llm2", false]], "llm2": []},
           "ops": ops})
}

#[test]
fn serve_runs_the_examples_each_with_its_own_resources() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let examples = examples.to_str().unwrap();
    let mut server = start(dir.path(), &["serve", "--graphs", examples, "--bind", "127.0.0.1:0", "--store", "runs.db"]);
    let base = base_url(&mut server);
    let _procs = Killed(vec![server]);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let graphs: Value = http.get(format!("{base}/v1/graphs")).send().unwrap().json().unwrap();
    let names: Vec<&str> = graphs["graphs"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["order_report", "rag"]);
    for graph in names {
        let inputs: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{examples}/{graph}/inputs.json")).unwrap()).unwrap();
        let run: Value = http
            .post(format!("{base}/v1/runs?wait=true"))
            .json(&json!({"graph": graph, "inputs": inputs}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(run["status"], "done", "{run}");
        assert!(run["result"].as_object().is_some_and(|r| !r.is_empty() && !r.contains_key("$errors")), "{run}");
    }
    // What the CLI prints for the same run.
    let order: Value = http.get(format!("{base}/v1/runs?graph=order_report")).send().unwrap().json().unwrap();
    let id = order["runs"][0]["run_id"].as_str().unwrap();
    let served: Value = http.get(format!("{base}/v1/runs/{id}")).send().unwrap().json().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_operonx"))
        .current_dir(dir.path())
        .args(["run", &format!("{examples}/order_report/graph.json"), "--inputs"])
        .arg(format!("{examples}/order_report/inputs.json"))
        .args(["--no-trace-store", "--compact"])
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served["result"], printed);
}

/// `operonx ARGS` in `dir`, its stderr piped.
fn start(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_operonx"))
        .current_dir(dir)
        .args(args)
        .env("OPERONX_STORE_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("operonx starts")
}

/// The base URL the server prints once it listens.
fn base_url(server: &mut Child) -> String {
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find("http://") {
            let url = line[at..].split_whitespace().next().unwrap().to_string();
            // Keep draining the pipe so the server never blocks on a full one.
            std::thread::spawn(move || for _ in lines {});
            return url;
        }
    }
    panic!("the server never said where it listens");
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn done_runs(http: &reqwest::blocking::Client, base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = format!("{base}/v1/runs?status=done&limit=1000");
    loop {
        let page: Value = http.get(&url).send().unwrap().json().unwrap();
        out.extend(page["runs"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{base}/v1/runs?status=done&limit=1000&cursor={c}"),
            None => return out,
        }
    }
}

#[test]
fn a_thousand_runs_survive_a_worker_killed_midway() {
    let Some(schema) = pg::fresh() else { return };
    let mock = mock::server();
    let g = mock.generation(0x5ca1e);
    let dir = tempfile::tempdir().unwrap();
    let graphs = dir.path().join("graphs");
    std::fs::create_dir_all(&graphs).unwrap();
    std::fs::write(graphs.join("pair.json"), pair_graph().to_string()).unwrap();
    std::fs::write(dir.path().join("resources.yaml"), mock.resources_yaml(g)).unwrap();
    let url = schema.url.as_str();
    let common = ["--graphs", "graphs", "--store", url, "--no-trace-store", "--resources", "resources.yaml"];
    let mut server = start(dir.path(), &[&["serve", "--bind", "127.0.0.1:0"][..], &common].concat());
    let base = base_url(&mut server);
    let worker =
        |n: &str| start(dir.path(), &[&["worker", "--concurrency", n, "--durability", "sync"][..], &common].concat());
    let mut procs = Killed(vec![server]);

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut ids = Vec::with_capacity(RUNS);
    for k in 0..RUNS {
        let r: Value = http
            .post(format!("{base}/v1/runs"))
            .json(&json!({"graph": "pair", "inputs": {"key": format!("k{k}")}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        ids.push(r["run_id"].as_str().unwrap().to_string());
    }
    // The workers start once every run is queued, so the one killed holds runs.
    procs.0.push(worker("8"));
    procs.0.push(worker("8"));
    let deadline = Instant::now() + Duration::from_secs(240);
    while done_runs(&http, &base).len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "runs do not progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL: no drain, its runs are left running with its lease.
    procs.0[1].kill().unwrap();
    procs.0[1].wait().unwrap();
    let done = loop {
        let done = done_runs(&http, &base);
        if done.len() == RUNS {
            break done;
        }
        assert!(Instant::now() < deadline, "only {} of {RUNS} runs done", done.len());
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut listed: Vec<&str> = done.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut submitted: Vec<&str> = ids.iter().map(String::as_str).collect();
    submitted.sort_unstable();
    assert_eq!(listed, submitted, "runs lost or made up");
    let counts = mock.counts(g);
    let mut resumed = 0;
    for (k, run) in done.iter().enumerate() {
        let id = run["run_id"].as_str().unwrap();
        let full: Value = http.get(format!("{base}/v1/runs/{id}")).send().unwrap().json().unwrap();
        let key = ids.iter().position(|i| i == id).map(|p| format!("k{p}")).unwrap();
        let answer: Value = serde_json::from_str(full["result"]["answer"].as_str().unwrap()).unwrap();
        assert_eq!(answer["of"], format!("second {key}"), "run {id} (#{k})");
        let first = counts.get(&format!("first {key}")).copied().unwrap_or(0);
        let second = counts.get(&format!("second {key}")).copied().unwrap_or(0);
        if full["resumes"].as_u64().unwrap() == 0 {
            assert_eq!((first, second), (1, 1), "run {id} was never taken over, yet called twice");
        } else {
            resumed += 1;
            assert!(first >= 1 && second >= 1 && first + second <= 3, "run {id}: calls {first} + {second}");
        }
    }
    assert!(resumed > 0, "the killed worker held no run: the test proves nothing");
    assert!(mock.strays().is_empty(), "{:?}", mock.strays());
    eprintln!("{RUNS} runs done; {resumed} taken over from the killed worker");
}
