//! The Operon graph model: reading `graph.json` (both the exporter's form and the compact
//! hand-written form), validating it with precise, located diagnostics, and compiling it
//! into a [`GraphPlan`] whose ids, refs, transforms and loop conditions are resolved once.
//!
//! This crate is pure: no async runtime, no I/O beyond parsing text.

pub mod backoff;
pub mod builder;
pub mod changes;
pub mod compile;
pub mod digest;
pub mod document;
pub mod duration;
pub mod error;
pub mod expr;
pub mod plan;
pub mod secrets;
mod streams;
pub mod transform;
pub mod type_names;
pub mod wire;

pub use compile::{Binder, compile};
pub use document::GraphDocument;
pub use error::{Diagnostic, GraphError, printable};
pub use plan::GraphPlan;
pub use secrets::SecretSet;

// Authoring graphs in Rust.
pub use builder::{BuildError, Graph, OpSpec};
