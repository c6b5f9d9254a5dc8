//! The `#[op]` attribute macro for operonx: turn an ordinary Rust function into an op
//! that graphs can call by name.
//!
//! Use it through the `operonx` facade crate (`use operonx::op;`); the generated code
//! refers to `::operonx::...` only, so no other imports are needed.
//!
//! ```ignore
//! use operonx::{op, OpContext, Registry};
//!
//! /// Doubles `x`. An `i64` return value becomes the output `result`.
//! #[op]
//! fn double(x: i64) -> i64 {
//!     x * 2
//! }
//!
//! /// Registered as "add_one"; the return value is the single output "answer".
//! #[op(name = "add_one", output = "answer")]
//! fn add_one_impl(n: i64) -> i64 {
//!     n + 1
//! }
//!
//! /// `Option` parameters are optional inputs; `Err` fails the op with its `Display` text.
//! #[op]
//! fn divide(a: i64, b: Option<i64>) -> Result<i64, String> {
//!     let b = b.unwrap_or(1);
//!     if b == 0 { Err("division by zero".into()) } else { Ok(a / b) }
//! }
//!
//! /// Async functions run concurrently; an `OpContext` parameter receives the context.
//! #[op(output = "value")]
//! async fn remember(key: String, ctx: OpContext) -> Option<serde_json::Value> {
//!     ctx.scratch().get(&key)
//! }
//!
//! /// Generators return the items to yield; each item is one output frame.
//! #[op(generator, output = "item")]
//! fn count_to(n: u32) -> std::ops::RangeInclusive<u32> {
//!     1..=n
//! }
//!
//! let mut registry = Registry::new();
//! registry.add(double_op).add(add_one_impl_op).add(divide_op).add(remember_op).add(count_to_op);
//! assert!(registry.lookup("add_one").is_some());
//! assert_eq!(double(21), 42); // the function itself is unchanged
//! ```
//!
//! (The example is not compiled here because this crate cannot depend on `operonx`; the
//! same cases are exercised by `crates/operonx/tests/op_macro.rs`.)
//!
//! # What `#[op]` generates
//!
//! The function is kept exactly as written. Next to it comes a unit struct named
//! `<fn name>_op`, with the function's visibility, implementing `operonx::Op` and
//! `operonx::NamedOp`; register it with `registry.add(double_op)`.
//!
//! - **Inputs.** Each parameter `p: T` reads input `"p"` (the identifier as written, minus
//!   any `r#`) with `Inputs::parse::<T>`; a missing input reads as `null`, so `Option<T>`
//!   parameters are optional. A parse failure fails the op with a message naming the input.
//!   A parameter of type `&OpContext` or `OpContext` (detected by the type's last path
//!   segment) receives the call's context instead of an input.
//! - **Outputs.** The return value goes through `Outputs::from_return`: with
//!   `output = "..."` it is that single output; otherwise an object's fields (a struct,
//!   a map) become the outputs and any other value becomes the output `result`. A function
//!   returning `()` has no outputs.
//! - **Errors.** When the return type's last path segment is `Result`, `Err(e)` fails the
//!   op with `e.to_string()` (or `e` itself when the error type is `OpError`).
//! - **Async.** An `async fn` is called after its inputs are parsed and returned as
//!   `Invocation::Future`.
//! - **Generators.** With `generator`, the function returns any `IntoIterator` (or a
//!   `Result` of one) whose iterator is `Send + 'static`; each item is one output frame,
//!   pulled lazily, and the op reports `OpKind::Generator`.
//!
//! # Arguments
//!
//! `#[op(name = "...", output = "...", generator)]`, all optional, in any order.
//!
//! # Rejected at compile time
//!
//! Unknown or repeated arguments, `self` receivers, parameters that are not plain
//! identifiers (`_`, tuples, `ref x`), reference parameters other than `&OpContext`,
//! generic or `unsafe` functions, `impl Trait` parameters, and `async` generators.

mod args;
mod expand;
mod sig;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Turn a function into an operonx op: keeps the function and adds a unit struct
/// `<fn name>_op` implementing `operonx::Op` and `operonx::NamedOp`.
///
/// Arguments (all optional): `name = "..."` (registry name, default: the function's
/// name), `output = "..."` (the return value is this single output) and `generator` (the
/// function returns the items to yield). See the [crate documentation](crate) for the
/// full rules.
#[proc_macro_attribute]
pub fn op(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(attr.into(), item.into()).into()
}
