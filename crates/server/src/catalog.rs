//! The graphs a server offers (`--graphs DIR`): every `DIR/NAME.json` that is a graph
//! document, named `NAME`, and every `DIR/NAME/graph.json`, named `NAME`.

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
}

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
    pub fn load_dir(engine: &Engine, dir: &Path) -> Result<Self, ServerError> {
        let io = |source| ServerError::GraphsDir { path: dir.to_path_buf(), source };
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(dir).map_err(io)?.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        let mut catalog = Catalog::default();
        for path in paths {
            let (name, file) = if path.is_dir() {
                let file = path.join("graph.json");
                if !file.is_file() {
                    continue;
                }
                (path.file_name(), file)
            } else if path.extension().is_some_and(|e| e == "json") {
                (path.file_stem(), path.clone())
            } else {
                continue;
            };
            let Some(name) = name.and_then(|n| n.to_str()).map(str::to_string) else { continue };
            let Some(doc) = graph_document(&file)? else { continue };
            let workflow = engine
                .load_value(doc)
                .map_err(|e| ServerError::Graph { path: file.clone(), message: e.to_string() })?;
            if let Some(other) = catalog.graphs.get(&name) {
                return Err(ServerError::Graph {
                    path: file,
                    message: format!("two graphs are named {name:?} (the other is {})", other.path.display()),
                });
            }
            catalog.graphs.insert(name.clone(), Entry { name, path: file, workflow: Arc::new(workflow) });
        }
        Ok(catalog)
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
