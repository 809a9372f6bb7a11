//! Procedural macros for LiveView for Rust: `#[liveview_handler]` and
//! `html!`.
//!
//! Use them through the `liveview` crate, which re-exports them and provides
//! every item the expansion names (through its hidden `__private` module), so
//! an application never depends on this crate or on the registry machinery.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr};

mod html;

/// Registers a function as the LiveView handler called `name`.
///
/// The function takes the connection's consumer and the message content, and
/// may be `async` or plain. A plain function runs on tokio's blocking pool so
/// that slow work never stalls the async workers. It returns `()` or
/// `Result<(), E>` for any error that converts into `liveview::Error`.
///
/// ```ignore
/// use liveview::{liveview_handler, Consumer, Content, Update};
///
/// #[liveview_handler("say_hello")]
/// async fn say_hello(consumer: &Consumer, content: Content) -> liveview::Result {
///     consumer.send(Update::new("#greeting").html("<h1>Hello!</h1>"))?;
///     Ok(())
/// }
/// ```
///
/// The name must be 1 to 94 characters of `[A-Za-z0-9_.-]`; anything else is
/// a compile error, as is an attribute on something other than a free
/// function, or a function without exactly the two arguments.
#[proc_macro_attribute]
pub fn liveview_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match handler(attr.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // The item stays as written, so that a wrong attribute is the one
        // error: no cascade of "unused import" or "cannot find function".
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item).into()
        }
    }
}

fn handler(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    if attr.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing handler name: write #[liveview_handler(\"name\")]",
        ));
    }
    let name = syn::parse2::<LitStr>(attr).map_err(|err| {
        syn::Error::new(
            err.span(),
            "the handler name must be one string literal: #[liveview_handler(\"name\")]",
        )
    })?;
    check_name(&name.value()).map_err(|why| syn::Error::new(name.span(), why))?;
    let function = syn::parse2::<ItemFn>(item).map_err(|err| {
        syn::Error::new(
            err.span(),
            "#[liveview_handler] goes on a free function: fn name(consumer: &Consumer, content: Content)",
        )
    })?;
    expand(&name, &function)
}

/// The same rule as the router's room names: short, printable, URL-safe.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the handler name must not be empty".into());
    }
    if name.len() > 94 {
        return Err("the handler name must be at most 94 characters".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "the handler name may only contain A-Z, a-z, 0-9, '_', '.' and '-', found {bad:?}"
        ));
    }
    Ok(())
}

fn expand(name: &LitStr, function: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    let ident = &sig.ident;
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new(
            receiver.span(),
            "#[liveview_handler] goes on a free function, not a method",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a handler cannot be generic",
        ));
    }
    if sig.inputs.len() != 2 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a handler takes exactly two arguments: (consumer: &Consumer, content: Content)",
        ));
    }
    if let Some(FnArg::Typed(first)) = sig.inputs.first()
        && !matches!(*first.ty, syn::Type::Reference(_))
    {
        return Err(syn::Error::new(
            first.ty.span(),
            "the first argument of a handler is a reference to the consumer: `consumer: &Consumer`",
        ));
    }
    let function_name = ident.to_string();
    // A return type the library does not take is reported on that type,
    // with the message of `IntoHandlerResult`'s `on_unimplemented`.
    let output_span = match &sig.output {
        syn::ReturnType::Default => ident.span(),
        syn::ReturnType::Type(_, ty) => ty.span(),
    };
    let into_result =
        quote_spanned!(output_span=> ::liveview::__private::IntoHandlerResult::into_handler_result);
    let output = quote_spanned!(output_span=> __liveview_output);
    let (adapter, kind) = if sig.asyncness.is_some() {
        // No `async` block: the handler's future, boxed as it is, holds
        // the content once, and borrows the connection's consumer.
        let adapter = quote! {
            fn __liveview_adapter(
                consumer: &::liveview::Consumer,
                content: ::liveview::Content,
            ) -> ::liveview::__private::HandlerFuture<'_> {
                ::liveview::__private::boxed(
                    |consumer, content| #ident(consumer, content),
                    consumer,
                    content,
                    |#output| #into_result(#output),
                )
            }
        };
        (adapter, quote!(Async))
    } else {
        let adapter = quote! {
            fn __liveview_adapter(
                consumer: &::liveview::Consumer,
                content: ::liveview::Content,
            ) -> ::liveview::Result {
                let #output = #ident(consumer, content);
                #into_result(#output)
            }
        };
        (adapter, quote!(Blocking))
    };
    Ok(quote! {
        #function

        const _: () = {
            #adapter
            ::liveview::__private::inventory::submit! {
                ::liveview::__private::HandlerEntry {
                    name: #name,
                    function: #function_name,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                    handler: ::liveview::__private::Handler::#kind(__liveview_adapter),
                }
            }
        };
    })
}

/// Builds markup from a template, escaping every value it puts in: the way
/// to build HTML in a handler.
///
/// The template is a string literal written as for `format!`: `{name}`
/// takes a variable in scope, `{}` the next argument after the template,
/// `{0}` an argument by its position, `{name}` with `name = expr` a named
/// argument, and `{{` and `}}` are literal braces. It returns a
/// `liveview::Html`, which `Update::html` takes as it is.
///
/// Each value goes in through `liveview::ToHtml`: text is escaped
/// (`& < > " '`, as `liveview::escape` does), numbers and `bool` are
/// written as text, and `Html`, such as the result of another `html!`, goes
/// in as it is, so markup built in pieces is escaped once.
///
/// ```
/// use liveview::{html, Update};
///
/// let name = "<script>alert('hi')</script>";
/// let greeting = html!("<h1>Hello, {name}!</h1>");
/// assert_eq!(
///     greeting,
///     "<h1>Hello, &lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;!</h1>"
/// );
///
/// // Nested: the inner markup is not escaped a second time.
/// let unread = 3;
/// let page = html!(r#"<div class="card">{greeting}<p>{} new, {unread}</p></div>"#, "a & b");
/// assert_eq!(
///     page,
///     "<div class=\"card\"><h1>Hello, &lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;!</h1>\
///      <p>a &amp; b new, 3</p></div>"
/// );
///
/// let update = Update::new("#greeting").html(html!("<b>{who}</b> {{ok}}", who = "Ann"));
/// # let _ = update;
/// ```
///
/// Each argument is evaluated once, by reference. The string is sized
/// once for the template and the values, and written in one pass: no
/// `format!` machinery, no intermediate strings.
///
/// Format specs such as `{x:?}` or `{x:>5}` are a compile error: format the
/// value first (`format!("{x:?}")`) and pass the `String`, which is then
/// escaped. As with `format!`, an argument the template does not use is a
/// compile error, and so is a name that is neither an argument nor a
/// variable in scope.
#[proc_macro]
pub fn html(input: TokenStream) -> TokenStream {
    match html::expand(input.into()) {
        Ok(expanded) => expanded.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_the_room_alphabet() {
        assert!(check_name("say_hello").is_ok());
        assert!(check_name("alerts.create-v2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("say hello").is_err());
        assert!(check_name("héllo").is_err());
        assert!(check_name(&"a".repeat(95)).is_err());
    }
}
