//! Python values to and from the engine's values (JSON: None, bool, int, float, str,
//! list, dict), exactly: an int stays an int and a float a float. Any other object is
//! held in the run's object table and travels as its stand-in, so the next Python op
//! gets the very same object.

use std::sync::Arc;

use operonx::{HostObject, ObjectTable};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting converted; deeper values (or a list that contains itself) are refused
/// instead of exhausting the stack.
const MAX_DEPTH: usize = 200;

/// A Python value the engine cannot hold, and where it sat.
#[derive(Debug)]
pub struct Unrepresentable {
    /// Where in the value: `['items'][2]`, empty at the top.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { f.write_str(&self.problem) } else { write!(f, "at {}: {}", self.path, self.problem) }
    }
}

/// The Python type of `obj` as users write it (`datetime.datetime`, `int`).
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let ty = obj.get_type();
    let name = ty.qualname().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    match ty.module().map(|m| m.to_string()) {
        Ok(m) if m != "builtins" => format!("{m}.{name}"),
        _ => name,
    }
}

/// Convert a Python value into an engine value; objects that are not JSON go into
/// `objects` (without a table they are refused).
pub fn to_value(obj: &Bound<'_, PyAny>, objects: Option<&ObjectTable>) -> Result<Value, Unrepresentable> {
    let mut path = String::new();
    convert(obj, objects, 0, &mut path)
}

/// A Python object held by a run's object table.
pub struct PyObjectRef(pub Py<PyAny>);

impl HostObject for PyObjectRef {
    fn type_name(&self) -> String {
        Python::attach(|py| type_name(self.0.bind(py)))
    }

    fn repr(&self) -> String {
        Python::attach(|py| {
            self.0.bind(py).repr().map(|r| r.to_string()).unwrap_or_else(|e| format!("<repr failed: {e}>"))
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        &self.0
    }

    fn getattr(&self, name: &str, table: &ObjectTable) -> Result<Value, String> {
        Python::attach(|py| {
            let attr = self.0.bind(py).getattr(name).map_err(|e| e.to_string())?;
            to_value(&attr, Some(table)).map_err(|e| e.to_string())
        })
    }

    fn getitem(&self, key: &Value, table: &ObjectTable) -> Result<Value, String> {
        Python::attach(|py| {
            let key = to_py(py, key, Some(table)).map_err(|e| e.to_string())?;
            let item = self.0.bind(py).get_item(key).map_err(|e| e.to_string())?;
            to_value(&item, Some(table)).map_err(|e| e.to_string())
        })
    }
}

fn fail(path: &str, problem: String) -> Unrepresentable {
    Unrepresentable { path: path.to_string(), problem }
}

fn convert(
    obj: &Bound<'_, PyAny>,
    objects: Option<&ObjectTable>,
    depth: usize,
    path: &mut String,
) -> Result<Value, Unrepresentable> {
    if depth > MAX_DEPTH {
        return Err(fail(path, format!("nested deeper than {MAX_DEPTH} levels (a container that holds itself?)")));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return s
            .to_str()
            .map(|s| Value::String(s.to_string()))
            .map_err(|e| fail(path, format!("a str that is not valid Unicode: {e}")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        let shown = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        return Err(fail(path, format!("the int {shown} does not fit in 64 bits")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        return Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| fail(path, format!("the float {x} has no JSON form (nan and infinities cannot cross)")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_str()
            .map(|s| Value::String(s.to_string()))
            .map_err(|e| fail(path, format!("a str that is not valid Unicode: {e}")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return Err(fail(path, format!("a dict key of type {} (keys must be str)", type_name(&k))));
            };
            let key = key.to_str().map_err(|e| fail(path, format!("a dict key that is not valid Unicode: {e}")))?;
            let mark = path.len();
            // Written as Python would: ['key'].
            path.push_str(&format!("['{}']", key.replace('\\', "\\\\").replace('\'', "\\'")));
            let value = convert(&v, objects, depth + 1, path)?;
            path.truncate(mark);
            map.insert(key.to_string(), value);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return sequence(l.iter(), objects, depth, path);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return sequence(t.iter(), objects, depth, path);
    }
    if let Some(table) = objects {
        return Ok(table.put(Arc::new(PyObjectRef(obj.clone().unbind()))));
    }
    Err(fail(
        path,
        format!(
            "a {} cannot cross the engine: values are None, bool, int, float, str, list, tuple and dict with str keys",
            type_name(obj)
        ),
    ))
}

fn sequence<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    objects: Option<&ObjectTable>,
    depth: usize,
    path: &mut String,
) -> Result<Value, Unrepresentable> {
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        let mark = path.len();
        path.push_str(&format!("[{i}]"));
        out.push(convert(&item, objects, depth + 1, path)?);
        path.truncate(mark);
    }
    Ok(Value::Array(out))
}

/// Convert an engine value into a fresh Python value; stand-ins of `objects` become the
/// objects they stand for.
pub fn to_py<'py>(py: Python<'py>, value: &Value, objects: Option<&ObjectTable>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item, objects)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            if let Some(found) = objects.and_then(|t| t.get(value))
                && let Some(held) = found.as_any().downcast_ref::<Py<PyAny>>()
            {
                return Ok(held.bind(py).clone());
            }
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v, objects)?)?;
            }
            dict.into_any()
        }
    })
}
