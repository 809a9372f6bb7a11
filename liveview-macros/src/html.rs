//! `html!`: a `format!`-like template whose values are escaped, expanded
//! into one sized string and a push for each piece.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token};

/// The macro's input: the template, then positional and named arguments.
struct Input {
    template: LitStr,
    positional: Vec<Expr>,
    named: Vec<(Ident, Expr)>,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(
                input.error("html! takes a string literal template: html!(\"<p>{name}</p>\")")
            );
        }
        let template = input.parse::<LitStr>().map_err(|err| {
            syn::Error::new(
                err.span(),
                "html!'s first argument is a string literal template: html!(\"<p>{name}</p>\")",
            )
        })?;
        let mut positional = Vec::new();
        let mut named: Vec<(Ident, Expr)> = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
                let name = input.parse::<Ident>()?;
                input.parse::<Token![=]>()?;
                let value = input.parse::<Expr>()?;
                if named.iter().any(|(other, _)| *other == name) {
                    return Err(syn::Error::new(
                        name.span(),
                        format!("duplicate argument named `{name}`"),
                    ));
                }
                named.push((name, value));
            } else {
                let value = input.parse::<Expr>()?;
                if let Some((name, _)) = named.first() {
                    return Err(syn::Error::new(
                        value.span(),
                        format!("positional arguments come before named ones (such as `{name}`)"),
                    ));
                }
                positional.push(value);
            }
        }
        Ok(Self {
            template,
            positional,
            named,
        })
    }
}

/// A reference from the template to a value.
#[derive(Debug, PartialEq)]
enum Placeholder {
    /// `{}`
    Next,
    /// `{0}`
    Index(usize),
    /// `{name}`
    Name(String),
}

/// A piece of the template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// Split a template into its text and placeholders, or say what is wrong.
fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '{' if chars.peek().is_some_and(|&(_, next)| next == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, next)| next == '}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(
                    "unmatched `}` in the html! template: write `}}` for a literal `}`".into(),
                );
            }
            '{' => {
                let rest = &template[at + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(
                        "unclosed `{` in the html! template: write `{{` for a literal `{`".into(),
                    );
                };
                let inside = &rest[..end];
                for _ in inside.chars().chain(['}']) {
                    chars.next();
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(placeholder(inside)?));
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// What `{inside}` refers to.
fn placeholder(inside: &str) -> Result<Placeholder, String> {
    let (value, spec) = match inside.split_once(':') {
        Some((value, spec)) => (value, Some(spec)),
        None => (inside, None),
    };
    match (reference(value), spec) {
        (Some(Ok(reference)), None) => Ok(reference),
        (Some(Err(too_large)), _) => Err(too_large),
        (Some(Ok(_)), Some(spec)) => {
            let value = if value.is_empty() { "x" } else { value };
            Err(format!(
                "`{{{inside}}}`: html! takes no format spec (`:{spec}`); format the value \
                 first, e.g. `format!(\"{{{value}:{spec}}}\")`, and pass that String, which \
                 html! escapes"
            ))
        }
        (None, _) => Err(format!(
            "invalid placeholder `{{{inside}}}` in the html! template: write `{{}}`, `{{0}}` \
             or `{{name}}`, and `{{{{` for a literal `{{`"
        )),
    }
}

/// The argument `value` names (`""`, a position, or a name), if it is one.
fn reference(value: &str) -> Option<Result<Placeholder, String>> {
    if value.is_empty() {
        return Some(Ok(Placeholder::Next));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            value
                .parse()
                .map(Placeholder::Index)
                .map_err(|_| format!("`{{{value}}}`: argument index too large")),
        );
    }
    let is_name = syn::parse_str::<Ident>(value).is_ok()
        && !value.starts_with("r#")
        && !value.contains(char::is_whitespace);
    is_name.then(|| Ok(Placeholder::Name(value.to_owned())))
}

/// The expansion of `html!(input)`.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input = syn::parse2::<Input>(input)?;
    let template = &input.template;
    let pieces = parse_template(&template.value())
        .map_err(|message| syn::Error::new(template.span(), message))?;

    // The values, each evaluated once: the positional arguments, the
    // named ones, then the variables the template captures, in order.
    let mut values: Vec<TokenStream> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    // In parentheses, so that `&` borrows the whole of `a + b`.
    for value in input
        .positional
        .iter()
        .chain(input.named.iter().map(|(_, value)| value))
    {
        values.push(quote!((#value)));
        spans.push(value.span());
    }
    let out = Ident::new("__liveview_html", Span::mixed_site());
    let mut used = vec![false; values.len()];
    let mut captured: Vec<String> = Vec::new();
    let mut next = 0;
    let mut literal_len = 0;
    let mut hints = Vec::new();
    let mut pushes = Vec::new();
    for piece in &pieces {
        let index = match piece {
            Piece::Text(text) => {
                literal_len += text.len();
                pushes.push(quote!(::liveview::__private::String::push_str(&mut #out, #text);));
                continue;
            }
            Piece::Value(Placeholder::Next) => {
                next += 1;
                positional_index(next - 1, input.positional.len(), template)?
            }
            Piece::Value(Placeholder::Index(index)) => {
                positional_index(*index, input.positional.len(), template)?
            }
            Piece::Value(Placeholder::Name(name)) => {
                if let Some(at) = input.named.iter().position(|(named, _)| named == name) {
                    input.positional.len() + at
                } else if let Some(at) = captured.iter().position(|other| other == name) {
                    input.positional.len() + input.named.len() + at
                } else {
                    // A variable in scope, resolved where the template is.
                    let ident = Ident::new(name, template.span());
                    captured.push(name.clone());
                    values.push(quote!(#ident));
                    spans.push(template.span());
                    used.push(false);
                    values.len() - 1
                }
            }
        };
        used[index] = true;
        let value = binding(index, spans[index]);
        let span = value.span();
        hints.push(quote_spanned!(span=> + ::liveview::ToHtml::html_len_hint(#value)));
        pushes.push(quote_spanned!(span=> ::liveview::ToHtml::push_html(#value, &mut #out);));
    }
    for (index, value) in input.positional.iter().enumerate() {
        if !used[index] {
            return Err(syn::Error::new(
                value.span(),
                "argument never used: the html! template has no `{}` or `{N}` for it",
            ));
        }
    }
    for (at, (name, _)) in input.named.iter().enumerate() {
        if !used[input.positional.len() + at] {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "named argument `{name}` never used: the html! template has no `{{{name}}}`"
                ),
            ));
        }
    }

    let bindings = spans.iter().enumerate().map(|(i, span)| binding(i, *span));
    Ok(quote! {
        match (#(&#values,)*) {
            (#(#bindings,)*) => {
                let mut #out = ::liveview::__private::String::with_capacity(#literal_len #(#hints)*);
                #(#pushes)*
                ::liveview::Html::trusted(#out)
            }
        }
    })
}

/// The name the expansion binds value `index` to: hygienic, and located
/// at the value, so that a value that cannot be put into markup is
/// reported where it is written.
fn binding(index: usize, span: Span) -> Ident {
    format_ident!(
        "__liveview_value{index}",
        span = Span::mixed_site().located_at(span)
    )
}

/// The value index of positional argument `index`, if there is one.
fn positional_index(index: usize, count: usize, template: &LitStr) -> syn::Result<usize> {
    if index < count {
        return Ok(index);
    }
    let there = match count {
        0 => "there are no positional arguments".to_owned(),
        1 => "there is 1 positional argument".to_owned(),
        n => format!("there are {n} positional arguments"),
    };
    Err(syn::Error::new(
        template.span(),
        format!("the html! template refers to positional argument {index}, but {there}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::{Piece, Placeholder, parse_template};

    #[test]
    fn templates_split_into_text_and_placeholders() {
        use Placeholder::*;
        assert_eq!(
            parse_template("<p>{{x}} {} {0} {name}</p>{é}").unwrap(),
            vec![
                Piece::Text("<p>{x} ".into()),
                Piece::Value(Next),
                Piece::Text(" ".into()),
                Piece::Value(Index(0)),
                Piece::Text(" ".into()),
                Piece::Value(Name("name".into())),
                Piece::Text("</p>".into()),
                Piece::Value(Name("é".into())),
            ]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_templates_are_refused_with_a_reason() {
        for (template, says) in [
            ("{x:?}", "no format spec"),
            ("{:>5}", "no format spec"),
            ("a } b", "unmatched `}`"),
            ("a { b", "unclosed `{`"),
            ("{ x }", "invalid placeholder"),
            ("p { color: red }", "invalid placeholder"),
            ("{a.b}", "invalid placeholder"),
            ("{fn}", "invalid placeholder"),
            ("{99999999999999999999999}", "too large"),
        ] {
            let error = parse_template(template).unwrap_err();
            assert!(error.contains(says), "{template}: {error}");
        }
    }
}
