//! Built-in Operon ops.
//!
//! This crate holds the pure logic behind the built-in ops, written as plain
//! functions over [`serde_json::Value`]:
//!
//! - [`parser`]: the ParserOp logic (extract typed fields from JSON, YAML or
//!   XML text produced by a model);
//! - [`prompt`]: the PromptOp logic (turn a template plus variables into a
//!   chat message list).

pub mod parser;
pub mod prompt;

mod builtin;
pub use builtin::register_builtin_types;
mod stdlib;
pub use stdlib::register_std;
