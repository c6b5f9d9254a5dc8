//! Expansion tests. Compile-fail behaviour is checked on the token level here (the
//! workspace has no `trybuild`): every rejected input must expand to the unchanged
//! function plus a `compile_error!` carrying the expected message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::expand;

fn expanded(attr: TokenStream, item: TokenStream) -> String {
    expand(attr, item).to_string()
}

/// Assert that expansion fails with a message containing `needle`, and still emits the
/// function (so its other uses do not produce follow-up errors).
fn assert_error(attr: TokenStream, item: TokenStream, needle: &str) {
    let out = expanded(attr, item);
    assert!(out.contains("compile_error"), "expected a compile error, got: {out}");
    assert!(out.contains(needle), "expected {needle:?} in: {out}");
    assert!(!out.contains("impl :: operonx :: Op"), "no op impl on error: {out}");
}

#[test]
fn generates_struct_and_impls() {
    let out = expanded(quote! {}, quote! { pub fn double(x: i64) -> i64 { x * 2 } });
    assert!(out.contains("pub fn double"), "{out}");
    assert!(out.contains("pub struct double_op"), "{out}");
    assert!(out.contains("impl :: operonx :: Op for double_op"), "{out}");
    assert!(out.contains("impl :: operonx :: NamedOp for double_op"), "{out}");
    assert!(out.contains("\"double\""), "{out}");
    assert!(out.contains("Invocation :: Ready"), "{out}");
    assert!(!out.contains("OpKind :: Generator"), "{out}");
}

#[test]
fn name_output_and_generator_arguments() {
    let out = expanded(
        quote! { output = "item", generator, name = "each" },
        quote! { fn each_item(items: Vec<i64>) -> Vec<i64> { items } },
    );
    assert!(out.contains("struct each_item_op"), "{out}");
    assert!(out.contains("\"each\""), "{out}");
    assert!(out.contains("Some (\"item\")"), "{out}");
    assert!(out.contains("OpKind :: Generator"), "{out}");
    assert!(out.contains("Invocation :: Items"), "{out}");
}

#[test]
fn async_fn_becomes_future() {
    let out = expanded(quote! {}, quote! { async fn wait(ms: u64, ctx: OpContext) {} });
    assert!(out.contains("Invocation :: Future"), "{out}");
    assert!(out.contains("__operonx_ctx_owned"), "{out}");
}

#[test]
fn raw_identifiers_are_unraw_names() {
    let out = expanded(quote! {}, quote! { fn r#type(r#in: String) -> String { r#in } });
    assert!(out.contains("struct type_op"), "{out}");
    assert!(out.contains("\"type\""), "{out}");
    assert!(out.contains("\"in\""), "{out}");
}

#[test]
fn rejects_unknown_argument() {
    assert_error(quote! { nme = "x" }, quote! { fn f() {} }, "unknown #[op] argument `nme`");
}

#[test]
fn rejects_duplicate_argument() {
    assert_error(quote! { name = "a", name = "b" }, quote! { fn f() {} }, "duplicate #[op] argument `name`");
}

#[test]
fn rejects_bad_argument_values() {
    assert_error(quote! { name }, quote! { fn f() {} }, "`name` needs a value");
    assert_error(quote! { output = 3 }, quote! { fn f() {} }, "`output` takes a string literal");
    assert_error(quote! { name = "" }, quote! { fn f() {} }, "`name` must not be empty");
    assert_error(quote! { generator = true }, quote! { fn f() -> Vec<i64> { vec![] } }, "takes no value");
}

#[test]
fn rejects_self_receiver() {
    assert_error(quote! {}, quote! { fn f(&self, x: i64) {} }, "`self` receivers are not supported");
}

#[test]
fn rejects_non_identifier_patterns() {
    assert_error(quote! {}, quote! { fn f((a, b): (i64, i64)) {} }, "must be plain identifiers");
    assert_error(quote! {}, quote! { fn f(ref a: i64) {} }, "must be plain identifiers");
    assert_error(quote! {}, quote! { fn f(_: i64) {} }, "need a name");
}

#[test]
fn accepts_mut_parameters() {
    let out = expanded(quote! {}, quote! { fn f(mut a: Vec<i64>) -> Vec<i64> { a.sort(); a } });
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("\"a\""), "{out}");
}

#[test]
fn rejects_generics() {
    assert_error(quote! {}, quote! { fn f<T>(x: T) {} }, "cannot be generic");
    assert_error(quote! {}, quote! { fn f<'a>(x: i64) {} }, "cannot be generic");
    assert_error(quote! {}, quote! { fn f(x: impl Into<i64>) {} }, "`impl Trait` parameters");
}

#[test]
fn rejects_reference_inputs() {
    assert_error(quote! {}, quote! { fn f(s: &str) {} }, "cannot be references");
    assert_error(quote! {}, quote! { fn f(ctx: &mut OpContext) {} }, "not `&mut OpContext`");
    let out = expanded(quote! {}, quote! { fn f(ctx: &operonx::OpContext) {} });
    assert!(!out.contains("compile_error"), "{out}");
}

#[test]
fn rejects_async_generator() {
    assert_error(quote! { generator }, quote! { async fn f() -> Vec<i64> { vec![] } }, "cannot be `async`");
}

#[test]
fn rejects_generator_without_items() {
    assert_error(quote! { generator }, quote! { fn f() {} }, "must return the items to yield");
    assert_error(
        quote! { generator },
        quote! { fn f() -> Result<(), String> { Ok(()) } },
        "must return the items to yield",
    );
}

#[test]
fn rejects_unsafe_and_non_functions() {
    assert_error(quote! {}, quote! { unsafe fn f() {} }, "cannot be `unsafe`");
    assert_error(quote! {}, quote! { struct S; }, "can only be applied to a free function");
}

#[test]
fn reports_every_problem_at_once() {
    let out = expanded(quote! {}, quote! { fn f(&self, s: &str, _: i64) {} });
    assert_eq!(out.matches("compile_error").count(), 3, "{out}");
}
