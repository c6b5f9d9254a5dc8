//! The side-effect counter: a mock LLM server speaking the OpenAI chat completions wire
//! format on 127.0.0.1, living in the test process so it outlives every `operonx` process
//! the harness kills.
//!
//! Every request is counted per *generation* (one per kill point: the generation is the
//! first segment of the API root the resources file names, `/g<N>/v1`) and per prompt (the
//! content of the request's last message). The answer is a function of the prompt alone
//! (`{"echo": PROMPT IN CAPITALS, "of": prompt}`), sent after a delay of 5 to 40 ms drawn
//! from the generation's seed, the prompt and how many times it was asked, so kills land
//! while calls are in flight.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

use super::rng::{fnv1a, splitmix};

/// The mock server (one per test process, see [`server`]).
pub struct MockLlm {
    port: u16,
    state: Arc<Mutex<State>>,
    next_generation: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The seed of each generation.
    seeds: HashMap<u64, u64>,
    /// Requests seen, per generation and prompt.
    counts: HashMap<u64, BTreeMap<String, u32>>,
    /// Requests the server could not read or place (never expected).
    strays: Vec<String>,
}

impl State {
    fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The test process's mock server, started on first use.
pub fn server() -> &'static MockLlm {
    static SERVER: OnceLock<MockLlm> = OnceLock::new();
    SERVER.get_or_init(MockLlm::start)
}

impl MockLlm {
    fn start() -> MockLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::Builder::new()
            .name("mock-llm".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let state = Arc::clone(&shared);
                    let _ = std::thread::Builder::new().name("mock-llm-conn".into()).spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            })
            .expect("spawn the mock server");
        MockLlm { port, state, next_generation: AtomicU64::new(1) }
    }

    /// A new generation (a fresh set of counters), its delays drawn from `seed`.
    pub fn generation(&self, seed: u64) -> u64 {
        let g = self.next_generation.fetch_add(1, Ordering::SeqCst);
        State::lock(&self.state).seeds.insert(g, seed);
        g
    }

    /// The API root of generation `g`.
    pub fn base_url(&self, g: u64) -> String {
        format!("http://127.0.0.1:{}/g{g}/v1", self.port)
    }

    /// A resources.yaml whose `llm:mock` resource is generation `g` of this server. No
    /// retries: a prompt asked twice was asked by the engine twice.
    pub fn resources_yaml(&self, g: u64) -> String {
        format!(
            "llm:\n  mock:\n    api_type: openai\n    model: mock-model\n    api_key: sk-crash-harness-key-0000\n    \
             base_url: {}\n    max_retries: 0\n    timeout_s: 60\n",
            self.base_url(g)
        )
    }

    /// How many times each prompt was asked in generation `g`, so far.
    pub fn counts(&self, g: u64) -> BTreeMap<String, u32> {
        State::lock(&self.state).counts.get(&g).cloned().unwrap_or_default()
    }

    /// Requests that could not be read or placed in a generation (should stay empty).
    pub fn strays(&self) -> Vec<String> {
        State::lock(&self.state).strays.clone()
    }
}

/// Answer requests on one connection (kept alive) until the client closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_string();
        if request_line.is_empty() {
            continue;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let (status, reply) = answer(&request_line, &body, state);
        let reply = reply.to_string();
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
        writer.flush()?;
    }
}

/// The generation a request path names (`/g<N>/v1/chat/completions`).
fn generation_of(path: &str) -> Option<u64> {
    let rest = path.strip_prefix("/g")?;
    let (g, tail) = rest.split_once('/')?;
    (tail == "v1/chat/completions").then(|| g.parse().ok()).flatten()
}

/// Count the request and compute its answer (after the delay).
fn answer(request_line: &str, body: &[u8], state: &Mutex<State>) -> (&'static str, Value) {
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let prompt = parsed
        .as_ref()
        .and_then(|v| v.get("messages"))
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string));
    let (Some(g), Some(prompt)) = (generation_of(path), prompt) else {
        State::lock(state).strays.push(format!("{request_line} {}", String::from_utf8_lossy(body)));
        return ("404 Not Found", json!({"error": {"message": "not a chat completion of a known generation"}}));
    };
    let (seed, nth) = {
        let mut s = State::lock(state);
        let seed = s.seeds.get(&g).copied().unwrap_or(g);
        let count = s.counts.entry(g).or_default().entry(prompt.clone()).or_insert(0);
        *count += 1;
        (seed, *count)
    };
    let delay = 5 + splitmix(seed ^ fnv1a(prompt.as_bytes()) ^ u64::from(nth)) % 36;
    std::thread::sleep(Duration::from_millis(delay));
    let content = json!({"echo": prompt.to_uppercase(), "of": prompt}).to_string();
    let tokens = prompt.chars().count();
    (
        "200 OK",
        json!({
            "id": "chatcmpl-crash-harness",
            "object": "chat.completion",
            "created": 0,
            "model": "mock-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens, "completion_tokens": 3, "total_tokens": tokens + 3}
        }),
    )
}

/// The prompt an llm op's journaled outputs answer (the mock echoes it as `of`).
pub fn prompt_of_outputs(body: &str) -> Option<String> {
    let outputs: Value = serde_json::from_str(body).ok()?;
    let content: Value = serde_json::from_str(outputs.get("content")?.as_str()?).ok()?;
    content.get("of")?.as_str().map(str::to_string)
}
