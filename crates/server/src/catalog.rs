//! The graphs a server offers (`--graphs DIR`): every `DIR/NAME.json` that is a graph
//! document, named `NAME`, and every `DIR/NAME/graph.json`, named `NAME`. A graph in a
//! folder of its own with a `resources.yaml` beside it runs with those resources (as
//! `operonx run DIR/NAME/graph.json --resources DIR/NAME/resources.yaml` would); the
//! others with the server's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use operonx::{Engine, Value, Workflow};

use crate::ServerError;

/// One graph on offer.
#[derive(Clone)]
pub struct Entry {
    /// Its name (what `POST /v1/runs` names).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The compiled graph.
    pub workflow: Arc<Workflow>,
    /// The engine it runs with (its own resources, or the server's).
    pub engine: Arc<Engine>,
}

/// Makes the engine of a graph with its own resources file (`None`: the server's).
pub type EngineFor<'a> = &'a dyn Fn(Option<&Path>) -> Result<Arc<Engine>, String>;

/// The graphs a server offers, by name.
#[derive(Clone, Default)]
pub struct Catalog {
    graphs: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.graphs.keys()).finish()
    }
}

impl Catalog {
    /// Read and compile the graphs of `dir` with `engine`. A file that is a graph document
    /// but does not compile is an error naming it; other JSON files (inputs, say) are
    /// skipped.
    pub fn load_dir(engine: Arc<Engine>, dir: &Path) -> Result<Self, ServerError> {
        Self::load_dir_with(dir, &|_| Ok(engine.clone()))
    }

    /// [`Catalog::load_dir`], each graph compiled with the engine `engine_for` makes for
    /// its resources file (`DIR/NAME/resources.yaml` when there is one).
    pub fn load_dir_with(dir: &Path, engine_for: EngineFor<'_>) -> Result<Self, ServerError> {
        let io = |source| ServerError::GraphsDir { path: dir.to_path_buf(), source };
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(dir).map_err(io)?.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        let mut catalog = Catalog::default();
        for path in paths {
            let (name, file, resources) = if path.is_dir() {
                let file = path.join("graph.json");
                if !file.is_file() {
                    continue;
                }
                let resources = Some(path.join("resources.yaml")).filter(|r| r.is_file());
                (path.file_name(), file, resources)
            } else if path.extension().is_some_and(|e| e == "json") {
                (path.file_stem(), path.clone(), None)
            } else {
                continue;
            };
            let Some(name) = name.and_then(|n| n.to_str()).map(str::to_string) else { continue };
            let Some(doc) = graph_document(&file)? else { continue };
            let bad = |message: String| ServerError::Graph { path: file.clone(), message };
            let engine = engine_for(resources.as_deref()).map_err(bad)?;
            let workflow = engine.load_value(doc).map_err(|e| bad(e.to_string()))?;
            if let Some(other) = catalog.graphs.get(&name) {
                return Err(bad(format!("two graphs are named {name:?} (the other is {})", other.path.display())));
            }
            let entry = Entry { name: name.clone(), path: file.clone(), workflow: Arc::new(workflow), engine };
            catalog.graphs.insert(name, entry);
        }
        Ok(catalog)
    }

    /// The engines of the graphs, by name (what the workers compile a stored run of that
    /// graph with).
    pub fn engines(&self) -> std::collections::HashMap<String, Arc<Engine>> {
        self.graphs.iter().map(|(name, e)| (name.clone(), e.engine.clone())).collect()
    }

    /// The graph named `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.graphs.get(name)
    }

    /// Every graph, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.graphs.values()
    }

    /// How many graphs there are.
    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }
}

/// The document in `file` when it is a graph (an object with `ops` and `entries`);
/// `None` for other JSON.
fn graph_document(file: &Path) -> Result<Option<Value>, ServerError> {
    let bad = |message: String| ServerError::Graph { path: file.to_path_buf(), message };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let Ok(doc) = serde_json::from_str::<Value>(&text) else {
        // Named graph.json, it must be one; any other file may be something else.
        if file.file_name().is_some_and(|n| n == "graph.json") {
            return Err(bad("not valid JSON".into()));
        }
        return Ok(None);
    };
    let is_graph = doc.get("ops").is_some_and(Value::is_object) && doc.get("entries").is_some();
    Ok(is_graph.then_some(doc))
}
