//! Analysis of the annotated function's signature: which parameters are inputs, which
//! receive the op context, and what shape the return value has.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Pat, PathArguments, ReturnType, Signature, Type};

use crate::args::OpArgs;

/// What one parameter of the function receives.
pub(crate) enum Param {
    /// An input, read with `Inputs::parse::<ty>(name)`.
    Input {
        /// The input name: the parameter's identifier (without any `r#`).
        name: String,
        /// The parameter's type, as written.
        ty: Box<Type>,
    },
    /// `&OpContext`: a reference to the call's context.
    ContextRef,
    /// `OpContext`: a clone of the call's context.
    ContextOwned,
}

/// The shape of the return type, detected syntactically.
pub(crate) enum Return {
    /// No return type, or `()`: the op has no outputs.
    Unit,
    /// Any other type that is not a `Result`: serialized into outputs.
    Value,
    /// A type whose last path segment is `Result`: `Err` fails the op.
    Result {
        /// `Result<(), E>`: success produces no outputs.
        ok_unit: bool,
        /// `Result<T, OpError>`: the error is passed through as is instead of via `Display`.
        err_is_op_error: bool,
    },
}

/// Everything code generation needs to know about the function.
pub(crate) struct FnInfo {
    /// One entry per parameter, in order.
    pub(crate) params: Vec<Param>,
    /// The return shape.
    pub(crate) ret: Return,
    /// Where the return type is written (the fn name when there is none); type errors
    /// about the return value point here.
    pub(crate) ret_span: Span,
    /// `async fn`.
    pub(crate) is_async: bool,
    /// Where `async` is written (the fn name for a sync fn).
    pub(crate) async_span: Span,
}

impl FnInfo {
    /// Whether any parameter takes the op context.
    pub(crate) fn uses_context(&self) -> bool {
        self.params.iter().any(|p| !matches!(p, Param::Input { .. }))
    }

    /// Whether any parameter is an input.
    pub(crate) fn has_inputs(&self) -> bool {
        self.params.iter().any(|p| matches!(p, Param::Input { .. }))
    }
}

/// Check that `sig` can become an op and describe it. Every problem found is reported,
/// each pointing at the offending tokens.
pub(crate) fn analyze(sig: &Signature, args: &OpArgs) -> syn::Result<FnInfo> {
    let mut errors = Errors::default();

    if !sig.generics.params.is_empty() {
        errors.push(
            &sig.generics,
            "#[op] functions cannot be generic: every input is deserialized into one concrete type",
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(where_clause, "#[op] functions cannot have a `where` clause");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety, "#[op] functions cannot be `unsafe`: the generated op calls them from safe code");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, "#[op] functions cannot be variadic");
    }
    if let (Some(asyncness), Some(_)) = (&sig.asyncness, &args.generator) {
        errors.push(
            asyncness,
            "#[op(generator)] functions cannot be `async`: make it a sync fn that returns an iterator",
        );
    }

    let mut params = Vec::with_capacity(sig.inputs.len());
    for arg in &sig.inputs {
        match param(arg) {
            Ok(p) => params.push(p),
            Err(e) => errors.add(e),
        }
    }

    let (ret, ret_span) = match &sig.output {
        ReturnType::Default => (Return::Unit, sig.ident.span()),
        ReturnType::Type(_, ty) => (return_shape(ty), ty.span()),
    };
    if let Some(flag) = &args.generator {
        match (&sig.output, &ret) {
            (ReturnType::Default, _) => errors.push(
                flag,
                "a #[op(generator)] function must return the items to yield (any `IntoIterator`, \
                 or a `Result` of one)",
            ),
            (ReturnType::Type(_, ty), Return::Unit | Return::Result { ok_unit: true, .. }) => errors.push(
                ty,
                "a #[op(generator)] function must return the items to yield (any `IntoIterator`, \
                 or a `Result` of one), not `()`",
            ),
            _ => {}
        }
    }

    errors.finish()?;
    Ok(FnInfo {
        params,
        ret,
        ret_span,
        is_async: sig.asyncness.is_some(),
        async_span: sig.asyncness.as_ref().map_or_else(|| sig.ident.span(), |a| a.span),
    })
}

/// Classify one parameter.
fn param(arg: &FnArg) -> syn::Result<Param> {
    let typed = match arg {
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new_spanned(
                receiver,
                "#[op] goes on a free function; `self` receivers are not supported",
            ));
        }
        FnArg::Typed(typed) => typed,
    };

    let ty = peel(&typed.ty);
    match ty {
        Type::Reference(reference) if is_context(&reference.elem) => {
            return match reference.mutability {
                Some(_) => Err(syn::Error::new_spanned(
                    reference,
                    "take the op context as `&OpContext` (or `OpContext` by value), not `&mut OpContext`",
                )),
                None => Ok(Param::ContextRef),
            };
        }
        _ if is_context(ty) => return Ok(Param::ContextOwned),
        Type::Reference(reference) => {
            return Err(syn::Error::new_spanned(
                reference,
                "#[op] inputs are deserialized into owned values, so they cannot be references: \
                 use an owned type such as `String`, `Vec<T>` or `serde_json::Value`",
            ));
        }
        Type::ImplTrait(impl_trait) => {
            return Err(syn::Error::new_spanned(
                impl_trait,
                "`impl Trait` parameters make the function generic; #[op] needs a concrete input type",
            ));
        }
        _ => {}
    }

    let name = match &*typed.pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => ident.ident.unraw().to_string(),
        Pat::Wild(wild) => {
            return Err(syn::Error::new_spanned(
                wild,
                "#[op] parameters need a name, which is the name of the input they read: \
                 write `name: Type` instead of `_: Type`",
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[op] parameters must be plain identifiers (the identifier is the input name); \
                 destructure inside the function body instead",
            ));
        }
    };
    Ok(Param::Input { name, ty: typed.ty.clone() })
}

/// The return shape of `ty`.
fn return_shape(ty: &Type) -> Return {
    match peel(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => Return::Unit,
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return Return::Value;
            };
            if last.ident != "Result" {
                return Return::Value;
            }
            let types: Vec<&Type> = match &last.arguments {
                PathArguments::AngleBracketed(generic) => generic
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let ok_unit = types.first().is_some_and(|ok| matches!(peel(ok), Type::Tuple(t) if t.elems.is_empty()));
            let err_is_op_error = types.get(1).is_some_and(|err| last_segment_is(err, "OpError"));
            Return::Result { ok_unit, err_is_op_error }
        }
        _ => Return::Value,
    }
}

/// Whether `ty` names the op context (`OpContext`, `operonx::OpContext`, ...).
fn is_context(ty: &Type) -> bool {
    last_segment_is(ty, "OpContext")
}

/// Whether `ty` is a plain path (no generic arguments) whose last segment is `name`.
fn last_segment_is(ty: &Type, name: &str) -> bool {
    match peel(ty) {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().is_some_and(|last| last.ident == name && last.arguments.is_none())
        }
        _ => false,
    }
}

/// Look through parentheses and invisible groups (as produced by `macro_rules!`).
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => peel(&inner.elem),
        Type::Group(inner) => peel(&inner.elem),
        other => other,
    }
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, tokens: impl quote::ToTokens, message: &str) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
