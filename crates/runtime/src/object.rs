//! Values that are not JSON (a Python `datetime`, a numpy array, a Rust `Vec<f32>`),
//! passed from one op to the next of a run unchanged.
//!
//! The engine's values are JSON. An op that produces something else puts it in the
//! run's [`ObjectTable`] and passes on its stand-in, a JSON object
//! `{"$object": {"id": 3, "type": "datetime.datetime", "repr": "..."}}`: ops that know
//! the table get the very same object back, `getattr` / `getitem` ref transforms ask the
//! object itself, traces record the stand-in (so the object's `repr`), and built-in ops,
//! which need JSON, refuse it with an error naming the type.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

/// The key of a stand-in.
pub const OBJECT_KEY: &str = "$object";

/// Longest `repr` kept in a stand-in (characters).
const MAX_REPR: usize = 200;

/// An object held by a run's table.
pub trait HostObject: Send + Sync + 'static {
    /// Its type, as its language writes it (`datetime.datetime`, `Vec<f32>`).
    fn type_name(&self) -> String;

    /// A short text for people (what traces show).
    fn repr(&self) -> String;

    /// The object itself, to downcast.
    fn as_any(&self) -> &dyn Any;

    /// `obj.name` for a `getattr` ref transform: a JSON value, or a stand-in put in `table`.
    fn getattr(&self, name: &str, table: &ObjectTable) -> Result<Value, String> {
        let _ = table;
        Err(format!("'{}' object has no attribute '{name}'", self.type_name()))
    }

    /// `obj[key]` for a `getitem` ref transform.
    fn getitem(&self, key: &Value, table: &ObjectTable) -> Result<Value, String> {
        let _ = (key, table);
        Err(format!("'{}' object is not subscriptable", self.type_name()))
    }
}

/// A Rust value as a [`HostObject`] (see [`ObjectTable::put_value`]).
struct RustObject<T>(T);

impl<T: Any + Send + Sync + fmt::Debug> HostObject for RustObject<T> {
    fn type_name(&self) -> String {
        std::any::type_name::<T>().to_string()
    }

    fn repr(&self) -> String {
        format!("{:?}", self.0)
    }

    fn as_any(&self) -> &dyn Any {
        &self.0
    }
}

/// The objects of one run (nested graphs included). Cloning the `Arc` shares it.
#[derive(Default)]
pub struct ObjectTable {
    entries: Mutex<Vec<Arc<dyn HostObject>>>,
}

impl fmt::Debug for ObjectTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectTable").field("objects", &self.len()).finish()
    }
}

impl ObjectTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn HostObject>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold `object` for the rest of the run; returns its stand-in.
    pub fn put(&self, object: Arc<dyn HostObject>) -> Value {
        let mut repr: String = object.repr();
        if let Some((cut, _)) = repr.char_indices().nth(MAX_REPR) {
            repr.truncate(cut);
            repr.push_str("...");
        }
        let type_name = object.type_name();
        let id = {
            let mut entries = self.entries();
            entries.push(object);
            entries.len() - 1
        };
        let mut inner = Map::new();
        inner.insert("id".into(), Value::from(id));
        inner.insert("type".into(), Value::String(type_name));
        inner.insert("repr".into(), Value::String(repr));
        let mut outer = Map::new();
        outer.insert(OBJECT_KEY.into(), Value::Object(inner));
        Value::Object(outer)
    }

    /// Hold a Rust value (shown in traces with its `Debug` form); returns its stand-in.
    pub fn put_value<T: Any + Send + Sync + fmt::Debug>(&self, value: T) -> Value {
        self.put(Arc::new(RustObject(value)))
    }

    /// The object `stand_in` stands for, when it is a stand-in of this table.
    pub fn get(&self, stand_in: &Value) -> Option<Arc<dyn HostObject>> {
        let id = object_id(stand_in)?;
        let index = usize::try_from(id).ok()?;
        self.entries().get(index).cloned()
    }

    /// The Rust value of type `T` that `stand_in` stands for.
    pub fn get_value<T: Any + Clone>(&self, stand_in: &Value) -> Option<T> {
        self.get(stand_in)?.as_any().downcast_ref::<T>().cloned()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// No object was put in the table (then no value of the run is a stand-in).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The id of the object `v` stands for, when `v` has a stand-in's shape.
pub fn object_id(v: &Value) -> Option<u64> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(OBJECT_KEY)?.get("id")?.as_u64(),
        _ => None,
    }
}

/// The first stand-in inside `v` (at any depth), for errors that name it.
pub fn find_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Object(m) => {
            if object_id(v).is_some() {
                return Some(v);
            }
            m.values().find_map(find_object)
        }
        Value::Array(items) => items.iter().find_map(find_object),
        _ => None,
    }
}

/// The type a stand-in names.
pub fn object_type(stand_in: &Value) -> &str {
    stand_in.get(OBJECT_KEY).and_then(|o| o.get("type")).and_then(Value::as_str).unwrap_or("object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_value_comes_back_as_the_same_value() {
        let table = ObjectTable::new();
        let v = table.put_value(vec![0.5f32, 1.5]);
        assert_eq!(object_id(&v), Some(0));
        assert_eq!(object_type(&v), "alloc::vec::Vec<f32>");
        assert_eq!(v[OBJECT_KEY]["repr"], "[0.5, 1.5]");
        assert_eq!(table.get_value::<Vec<f32>>(&v), Some(vec![0.5, 1.5]));
        assert_eq!(table.get_value::<String>(&v), None);
        let nested = serde_json::json!({"a": [1, v.clone()]});
        assert_eq!(find_object(&nested), Some(&v));
        assert_eq!(find_object(&serde_json::json!({"a": [1, {"$object": "x"}]})), None);
        assert!(table.get(&serde_json::json!({"$object": {"id": 7}})).is_none());
    }

    #[test]
    fn long_reprs_are_cut() {
        let table = ObjectTable::new();
        let v = table.put_value("é".repeat(500));
        let repr = v[OBJECT_KEY]["repr"].as_str().unwrap_or_default();
        assert_eq!(repr.chars().count(), MAX_REPR + 3);
        assert!(repr.ends_with("..."));
    }
}
