//! Parsing of the arguments inside `#[op(...)]`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::LitStr;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;

/// The arguments of one `#[op(...)]` attribute.
#[derive(Default)]
pub(crate) struct OpArgs {
    /// `name = "..."`: the registry name (defaults to the function's name).
    pub(crate) name: Option<LitStr>,
    /// `output = "..."`: the whole return value becomes this single output.
    pub(crate) output: Option<LitStr>,
    /// `generator`: the function returns the items to yield. Holds the flag's path for spans.
    pub(crate) generator: Option<syn::Path>,
}

impl OpArgs {
    /// Parse the attribute's tokens: `name = "..."`, `output = "..."` and `generator`, in any
    /// order, comma-separated, each at most once.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let mut args = OpArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let lit = string_value(&meta, "name", "the name the op is registered under")?;
                store_once(&mut args.name, lit, &meta, "name")
            } else if meta.path.is_ident("output") {
                let lit = string_value(&meta, "output", "the name of the op's single output")?;
                store_once(&mut args.output, lit, &meta, "output")
            } else if meta.path.is_ident("generator") {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(meta.error("`generator` is a flag and takes no value: write `#[op(generator)]`"));
                }
                store_once(&mut args.generator, meta.path.clone(), &meta, "generator")
            } else {
                let path = meta.path.to_token_stream().to_string().replace(' ', "");
                Err(meta.error(format!(
                    "unknown #[op] argument `{path}`; expected `name = \"...\"`, `output = \"...\"` or `generator`"
                )))
            }
        });
        parser.parse2(tokens)?;
        Ok(args)
    }
}

/// Read the `= "..."` part of a `key = "..."` argument; the string must not be empty.
fn string_value(meta: &ParseNestedMeta<'_>, key: &str, what: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format!("`{key}` needs a value: `{key} = \"...\"` ({what})")));
    }
    let lit: LitStr = meta.value()?.parse().map_err(|e| {
        syn::Error::new(e.span(), format!("`{key}` takes a string literal: `{key} = \"...\"` ({what})"))
    })?;
    if lit.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(&lit, format!("`{key}` must not be empty")));
    }
    Ok(lit)
}

/// Store an argument, rejecting a second occurrence.
fn store_once<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate #[op] argument `{key}`")));
    }
    *slot = Some(value);
    Ok(())
}
