//! [`ResourceHub`]: the resources of `resources.yaml`, resolved to ready clients.
//!
//! The hub is an explicit value (no global instance): build one, share it in an `Arc`,
//! and hand it to [`crate::register_provider_types`]. Clients are built on first use and
//! cached per key, so every op using a resource shares its concurrency limit.

mod env;
pub(crate) mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

pub use env::{DotenvError, MissingVar, parse_dotenv};

use crate::chat::ChatClient;
use crate::config::{EmbeddingSettings, LlmSettings, RerankSettings};
use crate::embed::EmbeddingClient;
use crate::error::ProviderError;
use crate::rerank::RerankClient;
use crate::usage::Pricing;

/// The category of chat resources.
pub const LLM: &str = "llm";
/// The category of embedding resources.
pub const EMBEDDING: &str = "embedding";
/// The category of reranker resources.
pub const RERANKING: &str = "reranking";

/// Why a resource could not be loaded or resolved. Messages name the key and the file;
/// they never contain secret values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The resources file is not YAML.
    #[error("{origin}: invalid YAML: {source}")]
    Yaml {
        /// The file.
        origin: String,
        /// The parse error.
        #[source]
        source: yaml_rust2::ScanError,
    },
    /// The resources file is YAML but not laid out as resources.
    #[error("{origin}: {message}")]
    Layout {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A `.env` file could not be parsed.
    #[error("{}: {source}", path.display())]
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The bad line.
        #[source]
        source: DotenvError,
    },
    /// The same key is defined twice (flat and nested).
    #[error("{origin}: resource '{key}' is defined twice")]
    Duplicate {
        /// The key.
        key: String,
        /// The file.
        origin: String,
    },
    /// No resource has this key.
    #[error("resource '{key}' not found in {origin}; {}", available_text(available))]
    NotFound {
        /// The key looked up.
        key: String,
        /// The file (or `<in-memory resources>`).
        origin: String,
        /// Every key that exists, sorted.
        available: Vec<String>,
    },
    /// The resource uses environment variables that are not set.
    #[error("resource '{key}' in {origin} uses unset environment variable(s): {}{}", join(vars), env_hint(env_files))]
    MissingVars {
        /// The key.
        key: String,
        /// The file.
        origin: String,
        /// Every missing variable with where it is used.
        vars: Vec<MissingVar>,
        /// The `.env` files that were read.
        env_files: Vec<PathBuf>,
    },
    /// A field is missing, unknown or of the wrong type.
    #[error("resource '{key}' in {origin}: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// The file.
        origin: String,
        /// What is wrong (secrets scrubbed).
        message: String,
    },
    /// The client could not be built from valid settings.
    #[error("resource '{key}' in {origin} could not be built: {source}")]
    Build {
        /// The key.
        key: String,
        /// The file.
        origin: String,
        /// The cause.
        #[source]
        source: Box<ProviderError>,
    },
}

fn available_text(keys: &[String]) -> String {
    if keys.is_empty() { "no resources are defined".into() } else { format!("available: {}", keys.join(", ")) }
}

fn join(vars: &[MissingVar]) -> String {
    vars.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn env_hint(files: &[PathBuf]) -> String {
    if files.is_empty() {
        String::new()
    } else {
        format!(
            " (set them in the environment or in {})",
            files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }
}

/// A resolved `llm:` resource: its client plus what an op needs around it.
#[derive(Debug, Clone)]
pub struct LlmResource {
    key: String,
    client: Arc<dyn ChatClient>,
    pricing: Option<Pricing>,
}

impl LlmResource {
    /// A resource named `key` served by `client`.
    pub fn new(key: impl Into<String>, client: Arc<dyn ChatClient>, pricing: Option<Pricing>) -> Self {
        Self { key: key.into(), client, pricing }
    }

    /// The full key (`llm:name`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The client.
    pub fn client(&self) -> &Arc<dyn ChatClient> {
        &self.client
    }

    /// Prices, when configured.
    pub fn pricing(&self) -> Option<&Pricing> {
        self.pricing.as_ref()
    }
}

#[derive(Debug)]
struct Entry {
    config: Value,
    missing: Vec<MissingVar>,
    secrets: Vec<String>,
}

#[derive(Default)]
struct Built {
    llm: HashMap<String, Arc<LlmResource>>,
    embedding: HashMap<String, Arc<dyn EmbeddingClient>>,
    reranking: HashMap<String, Arc<dyn RerankClient>>,
}

/// The resources of one `resources.yaml` (or of code), by `category:name` key.
pub struct ResourceHub {
    origin: String,
    base_dir: Option<PathBuf>,
    env_files: Vec<PathBuf>,
    entries: BTreeMap<String, Entry>,
    ignored: Vec<String>,
    /// The `tracing:` section, interpolated.
    tracing: Option<Entry>,
    built: Mutex<Built>,
}

impl fmt::Debug for ResourceHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceHub").field("origin", &self.origin).field("keys", &self.keys()).finish()
    }
}

impl Default for ResourceHub {
    fn default() -> Self {
        Self::empty()
    }
}

/// The process environment, then `dotenv` for variables the environment does not set.
pub fn env_with_dotenv(dotenv: BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> {
    move |name| std::env::var(name).ok().or_else(|| dotenv.get(name).cloned())
}

/// Read and parse a `.env` file.
pub fn load_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ResourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResourceError::Io { path: path.into(), source })?;
    parse_dotenv(&text).map_err(|source| ResourceError::Dotenv { path: path.into(), source })
}

impl ResourceHub {
    /// A hub without resources (every lookup fails with "not found").
    pub fn empty() -> Self {
        Self {
            origin: "<in-memory resources>".into(),
            base_dir: None,
            env_files: Vec::new(),
            entries: BTreeMap::new(),
            ignored: Vec::new(),
            tracing: None,
            built: Mutex::new(Built::default()),
        }
    }

    /// Resources from YAML text; `env` resolves `${VAR}` placeholders. Relative paths
    /// (replay scripts) resolve against the current directory.
    pub fn from_yaml_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ResourceError> {
        Self::parse(text, "<in-memory resources>".into(), None, env)
    }

    /// Resources from a YAML file; relative paths resolve against its directory.
    pub fn from_yaml_file(path: impl AsRef<Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ResourceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ResourceError::Io { path: path.into(), source })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs.parent().map(Path::to_path_buf);
        Self::parse(&text, abs.display().to_string(), dir, env)
    }

    /// The resources of a working directory: `./resources.yaml` when present (else an
    /// empty hub), with `${VAR}` taken from the environment and then from `./.env`
    /// (which never overrides the environment).
    pub fn discover(cwd: impl AsRef<Path>) -> Result<Self, ResourceError> {
        let cwd = cwd.as_ref();
        let env_path = cwd.join(".env");
        let dotenv = if env_path.is_file() { load_dotenv(&env_path)? } else { BTreeMap::new() };
        let env = env_with_dotenv(dotenv);
        let yaml = cwd.join("resources.yaml");
        let mut hub = if yaml.is_file() {
            Self::from_yaml_file(&yaml, &env)?
        } else {
            let mut h = Self::empty();
            h.origin = format!("{} (no such file)", yaml.display());
            h
        };
        hub.env_files.push(env_path);
        Ok(hub)
    }

    /// What the CLI and the Python package load: the file at `path` when given (with
    /// `${VAR}` from the environment, then from `./.env`), else [`ResourceHub::discover`]
    /// in the current directory.
    pub fn load(path: Option<&Path>) -> Result<Self, ResourceError> {
        let Some(path) = path else { return Self::discover(".") };
        let dotenv = Path::new(".env");
        let vars = if dotenv.is_file() { load_dotenv(dotenv)? } else { BTreeMap::new() };
        Self::from_yaml_file(path, &env_with_dotenv(vars))
    }

    fn parse(
        text: &str,
        origin: String,
        base_dir: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ResourceError> {
        let layout = yaml::parse_resources(text).map_err(|e| match e {
            yaml::LayoutError::Scan(source) => ResourceError::Yaml { origin: origin.clone(), source },
            yaml::LayoutError::Shape(message) => ResourceError::Layout { origin: origin.clone(), message },
            yaml::LayoutError::Duplicate(key) => ResourceError::Duplicate { key, origin: origin.clone() },
        })?;
        let entry = |key: &str, mut config: Value| {
            let mut out = env::Interpolation::default();
            env::interpolate(&mut config, key, env, &mut out);
            let secrets = out.substituted.into_iter().filter(|s| s.len() >= 4).collect();
            Entry { config, missing: out.missing, secrets }
        };
        let entries = layout.resources.into_iter().map(|(key, config)| (key.clone(), entry(&key, config))).collect();
        let tracing = layout.tracing.map(|config| entry(yaml::TRACING, config));
        Ok(Self {
            origin,
            base_dir,
            env_files: Vec::new(),
            entries,
            ignored: layout.ignored,
            tracing,
            built: Mutex::new(Built::default()),
        })
    }

    /// Where the resources came from (a file path, or `<in-memory resources>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `tracing:` section (the trace exporters' settings, read by `operonx-trace`'s
    /// `exporters_from_env`), its `${VAR}`s replaced; `None` when the file has none. An
    /// unset variable it uses is an error naming it. Holds secrets: not for display.
    pub fn tracing(&self) -> Result<Option<&Value>, ResourceError> {
        let Some(entry) = &self.tracing else { return Ok(None) };
        if !entry.missing.is_empty() {
            return Err(ResourceError::MissingVars {
                key: yaml::TRACING.into(),
                origin: self.origin.clone(),
                vars: entry.missing.clone(),
                env_files: self.env_files.clone(),
            });
        }
        Ok(Some(&entry.config))
    }

    /// Every secret value these resources hold, for redaction by value
    /// ([`operonx_graph::SecretSet`]): each resource's `api_key` and `headers` values
    /// (however they were written), the `tracing:` section's `secret_key`s and `headers`
    /// values, and every value a `${VAR}` placeholder brought in from the environment or
    /// `.env`. Values shorter than [`operonx_graph::secrets::MIN_SECRET_LEN`] bytes are
    /// left out.
    pub fn secrets(&self) -> operonx_graph::SecretSet {
        let mut set = operonx_graph::SecretSet::new();
        if let Some(tracing) = &self.tracing {
            tracing.secrets.iter().for_each(|s| {
                set.insert(s);
            });
            for exporter in tracing.config.as_object().into_iter().flat_map(|m| m.values()) {
                if let Some(Value::String(key)) = exporter.get("secret_key") {
                    set.insert(key);
                }
                if let Some(Value::Object(headers)) = exporter.get("headers") {
                    headers.values().filter_map(Value::as_str).for_each(|v| {
                        set.insert(v);
                    });
                }
            }
        }
        for entry in self.entries.values() {
            entry.secrets.iter().for_each(|s| {
                set.insert(s);
            });
            let Some(config) = entry.config.as_object() else { continue };
            if let Some(Value::String(key)) = config.get("api_key") {
                set.insert(key);
            }
            if let Some(Value::Object(headers)) = config.get("headers") {
                for value in headers.values() {
                    if let Value::String(v) = value {
                        set.insert(v);
                    }
                }
            }
        }
        set
    }

    /// Every key (`category:name`), sorted, including clients added in code.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.keys().cloned().collect();
        if let Ok(b) = self.built.lock() {
            keys.extend(b.llm.keys().cloned());
            keys.extend(b.embedding.keys().cloned());
            keys.extend(b.reranking.keys().cloned());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Top-level keys that are neither `category:name` nor a category block (e.g.
    /// exporter settings); they are never resolved.
    pub fn ignored_keys(&self) -> &[String] {
        &self.ignored
    }

    /// Resources that use unset environment variables, with the variables.
    pub fn unresolved(&self) -> Vec<(String, Vec<MissingVar>)> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.missing.is_empty())
            .map(|(k, e)| (k.clone(), e.missing.clone()))
            .collect()
    }

    /// `name` as a full key of `category` (`gpt` → `llm:gpt`; `llm:gpt` stays).
    pub fn full_key(category: &str, name: &str) -> String {
        match name.strip_prefix(category).and_then(|r| r.strip_prefix(':')) {
            Some(_) => name.to_string(),
            None => format!("{category}:{name}"),
        }
    }

    /// The interpolated settings map of `key` (contains secrets: not for display).
    fn config(&self, key: &str) -> Result<&Map<String, Value>, ResourceError> {
        let entry = self.entries.get(key).ok_or_else(|| self.not_found(key))?;
        if !entry.missing.is_empty() {
            return Err(ResourceError::MissingVars {
                key: key.into(),
                origin: self.origin.clone(),
                vars: entry.missing.clone(),
                env_files: self.env_files.clone(),
            });
        }
        entry.config.as_object().ok_or_else(|| self.invalid(key, "a resource must be a mapping of settings".into()))
    }

    fn not_found(&self, key: &str) -> ResourceError {
        ResourceError::NotFound { key: key.into(), origin: self.origin.clone(), available: self.keys() }
    }

    fn invalid(&self, key: &str, message: String) -> ResourceError {
        let mut message = message;
        if let Some(e) = self.entries.get(key) {
            for s in &e.secrets {
                message = message.replace(s.as_str(), "***");
            }
        }
        ResourceError::Invalid { key: key.into(), origin: self.origin.clone(), message }
    }

    fn build_error(&self, key: &str, source: ProviderError) -> ResourceError {
        ResourceError::Build { key: key.into(), origin: self.origin.clone(), source: Box::new(source) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Built> {
        self.built.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The chat resource `name` (`gpt` or `llm:gpt`), built on first use.
    pub fn get_llm(&self, name: &str) -> Result<Arc<LlmResource>, ResourceError> {
        let key = Self::full_key(LLM, name);
        if let Some(r) = self.lock().llm.get(&key) {
            return Ok(Arc::clone(r));
        }
        let settings =
            LlmSettings::parse(self.config(&key)?, self.base_dir.as_deref()).map_err(|m| self.invalid(&key, m))?;
        let client = crate::chat::build(&settings).map_err(|e| self.build_error(&key, e))?;
        let res = Arc::new(LlmResource::new(key.clone(), client, settings.pricing));
        Ok(Arc::clone(self.lock().llm.entry(key).or_insert(res)))
    }

    /// The embedding resource `name` (`bge` or `embedding:bge`), built on first use.
    pub fn get_embedding(&self, name: &str) -> Result<Arc<dyn EmbeddingClient>, ResourceError> {
        let key = Self::full_key(EMBEDDING, name);
        if let Some(r) = self.lock().embedding.get(&key) {
            return Ok(Arc::clone(r));
        }
        let settings = EmbeddingSettings::parse(self.config(&key)?).map_err(|m| self.invalid(&key, m))?;
        let client = crate::embed::build(&settings).map_err(|e| self.build_error(&key, e))?;
        Ok(Arc::clone(self.lock().embedding.entry(key).or_insert(client)))
    }

    /// The reranker resource `name` (`bge` or `reranking:bge`), built on first use.
    pub fn get_reranker(&self, name: &str) -> Result<Arc<dyn RerankClient>, ResourceError> {
        let key = Self::full_key(RERANKING, name);
        if let Some(r) = self.lock().reranking.get(&key) {
            return Ok(Arc::clone(r));
        }
        let settings = RerankSettings::parse(self.config(&key)?).map_err(|m| self.invalid(&key, m))?;
        let client = crate::rerank::build(&settings).map_err(|e| self.build_error(&key, e))?;
        Ok(Arc::clone(self.lock().reranking.entry(key).or_insert(client)))
    }

    /// Add (or replace) a chat client under `name` (e.g. a custom provider).
    pub fn insert_llm(&self, name: &str, client: Arc<dyn ChatClient>, pricing: Option<Pricing>) {
        let key = Self::full_key(LLM, name);
        self.lock().llm.insert(key.clone(), Arc::new(LlmResource::new(key, client, pricing)));
    }

    /// Add (or replace) an embedding client under `name`.
    pub fn insert_embedding(&self, name: &str, client: Arc<dyn EmbeddingClient>) {
        self.lock().embedding.insert(Self::full_key(EMBEDDING, name), client);
    }

    /// Add (or replace) a reranker under `name`.
    pub fn insert_reranker(&self, name: &str, client: Arc<dyn RerankClient>) {
        self.lock().reranking.insert(Self::full_key(RERANKING, name), client);
    }
}
