//! HTML escaping, and the safe markup that [`html!`](crate::html) builds.
//!
//! One routine escapes text: [`escape`] returns it as a string of its own,
//! and [`ToHtml`]'s text impls write it straight into the markup being built.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// Escape `&`, `<`, `>`, `"` and `'` so that `text` is inert in HTML
/// content and in quoted attribute values.
///
/// Text with nothing to escape is borrowed as it is; other text is copied
/// once, into a string of exactly the escaped length.
///
/// In a handler, build markup with [`html!`](crate::html), which escapes
/// every value it puts in; `escape` is for markup put together some other
/// way, such as an attribute written by hand.
///
/// ```
/// assert_eq!(
///     liveview::escape(r#"<script>alert("x")</script> & 'y'"#),
///     "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;y&#x27;"
/// );
/// assert_eq!(liveview::escape("plain"), "plain");
/// ```
#[inline]
pub fn escape(text: &str) -> Cow<'_, str> {
    // Inlined where it is called: most text has nothing to escape, and
    // costs only this look; the copy is made out of line.
    match first_to_escape(text) {
        None => Cow::Borrowed(text),
        Some(first) => Cow::Owned(escape_from(text, first)),
    }
}

/// Append `text` to `out`, escaped as [`escape`] does.
#[inline]
fn push_escaped(out: &mut String, text: &str) {
    match first_to_escape(text) {
        None => out.push_str(text),
        Some(first) => push_escaped_from(out, text, first),
    }
}

/// The index of the first byte of `text` to escape, if any.
#[inline]
fn first_to_escape(text: &str) -> Option<usize> {
    text.bytes().position(|b| entity(b).is_some())
}

/// `text` escaped, its first byte to escape at `first`.
#[cold]
#[inline(never)]
fn escape_from(text: &str, first: usize) -> String {
    let mut out = String::with_capacity(escaped_len(text, first));
    push_entities(&mut out, text, first);
    debug_assert_eq!(out.len(), out.capacity(), "the length was measured");
    out
}

/// [`push_escaped`]'s copy, out of line.
#[cold]
#[inline(never)]
fn push_escaped_from(out: &mut String, text: &str, first: usize) {
    out.reserve(escaped_len(text, first));
    push_entities(out, text, first);
}

/// The length of `text` escaped, its first byte to escape at `first`.
fn escaped_len(text: &str, first: usize) -> usize {
    let grows: usize = text.as_bytes()[first..]
        .iter()
        .map(|&b| entity(b).map_or(0, |e| e.len() - 1))
        .sum();
    text.len() + grows
}

/// Append `text` to `out` with each byte to escape replaced by its
/// entity, the first of them at `first`: the one escaping loop.
fn push_entities(out: &mut String, text: &str, first: usize) {
    let mut start = 0;
    for (i, &b) in text.as_bytes().iter().enumerate().skip(first) {
        if let Some(entity) = entity(b) {
            // The escaped characters are ASCII: `i` is on a character
            // boundary.
            out.push_str(&text[start..i]);
            out.push_str(entity);
            start = i + 1;
        }
    }
    out.push_str(&text[start..]);
}

/// The entity that replaces the byte `b`, if it is one to escape.
#[inline]
fn entity(b: u8) -> Option<&'static str> {
    match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&#x27;"),
        _ => None,
    }
}

/// Markup that is safe to put into a page as it is: what
/// [`html!`](crate::html) returns.
///
/// Put into another `html!`, it goes in unescaped, so markup built in
/// pieces is escaped once. It converts into the `String` that
/// [`Update::html`](crate::Update::html) takes, and reads as a `&str`.
///
/// ```
/// use liveview::{Html, html};
///
/// fn item(name: &str) -> Html {
///     html!("<li>{name}</li>")
/// }
///
/// let list = html!("<ul>{}{}</ul>", item("tea & cake"), item("<script>"));
/// assert_eq!(list, "<ul><li>tea &amp; cake</li><li>&lt;script&gt;</li></ul>");
/// let update = liveview::Update::new("#menu").html(list);
/// # let _ = update;
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[must_use = "markup does nothing until it is sent, e.g. with `Update::html`"]
pub struct Html(String);

impl Html {
    /// Markup taken as it is, without escaping: the caller vouches that
    /// `markup` is safe, that no text from a user reaches it unescaped.
    ///
    /// For markup from a trusted source, such as a template the app
    /// rendered with auto-escaping or a constant; build anything else with
    /// [`html!`](crate::html).
    ///
    /// ```
    /// use liveview::{Html, html};
    ///
    /// const ICON: &str = r##"<svg class="icon"><use href="#star"/></svg>"##;
    /// let star = Html::trusted(ICON);
    /// assert_eq!(html!("<b>{star}</b>"), format!("<b>{ICON}</b>"));
    /// ```
    pub fn trusted(markup: impl Into<String>) -> Self {
        Self(markup.into())
    }
}

/// Markup pieces one after the other, such as the items of a list.
///
/// ```
/// use liveview::{Html, html};
///
/// let tags = ["rust", "<html>"];
/// let items: Html = tags.iter().map(|tag| html!("<li>{tag}</li>")).collect();
/// assert_eq!(html!("<ul>{items}</ul>"), "<ul><li>rust</li><li>&lt;html&gt;</li></ul>");
/// ```
impl FromIterator<Html> for Html {
    fn from_iter<I: IntoIterator<Item = Html>>(pieces: I) -> Self {
        let mut pieces = pieces.into_iter();
        let mut all = pieces.next().map(String::from).unwrap_or_default();
        for piece in pieces {
            all.push_str(&piece.0);
        }
        Self(all)
    }
}

impl From<Html> for String {
    /// The markup as a `String`, without a copy.
    fn from(html: Html) -> Self {
        html.0
    }
}

impl Deref for Html {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Html {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Html {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Html").field(&self.0).finish()
    }
}

impl PartialEq<str> for Html {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Html {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Html {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

/// A value that [`html!`](crate::html) can put into markup.
///
/// Text (`str`, `String`, `Cow<str>`, `char`) is escaped as [`escape`]
/// does; integers and `bool` are written as text, floats as their
/// `Display` writes them; [`Html`] goes in as it is, and a reference as
/// what it points to.
///
/// ```
/// use liveview::html;
///
/// let comment = "<script>alert(1)</script>";
/// let likes = 3;
/// assert_eq!(
///     html!("<p>{comment}</p><small>{likes} likes</small>"),
///     "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p><small>3 likes</small>"
/// );
/// ```
///
/// A type of the app's own implements it by writing its parts, escaped
/// through their own impls:
///
/// ```
/// use liveview::{ToHtml, html};
///
/// struct Price {
///     cents: u64,
/// }
///
/// impl ToHtml for Price {
///     fn push_html(&self, out: &mut String) {
///         out.push('€');
///         (self.cents / 100).push_html(out);
///         out.push('.');
///         if self.cents % 100 < 10 {
///             out.push('0');
///         }
///         (self.cents % 100).push_html(out);
///     }
///
///     fn html_len_hint(&self) -> usize {
///         8
///     }
/// }
///
/// assert_eq!(html!("<td>{}</td>", Price { cents: 1205 }), "<td>€12.05</td>");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be put into `html!`",
    label = "not text, a number or `Html`",
    note = "`html!` takes text (escaped), integers, floats, `bool`, `char` and `liveview::Html`; \
            format other values into a `String` first (e.g. with `format!`), or implement `liveview::ToHtml`"
)]
pub trait ToHtml {
    /// Append this value to `out` as HTML, escaped where it is text.
    fn push_html(&self, out: &mut String);

    /// About how many bytes [`push_html`](Self::push_html) appends, for
    /// sizing the string once: cheap to compute, and a guess may be short
    /// (the string then grows).
    fn html_len_hint(&self) -> usize {
        0
    }
}

/// Text, escaped.
macro_rules! text {
    ($($text:ty),*) => {$(
        impl ToHtml for $text {
            #[inline]
            fn push_html(&self, out: &mut String) {
                push_escaped(out, self);
            }

            #[inline]
            fn html_len_hint(&self) -> usize {
                self.len()
            }
        }
    )*};
}

text!(str, String, Cow<'_, str>);

impl ToHtml for char {
    #[inline]
    fn push_html(&self, out: &mut String) {
        push_escaped(out, self.encode_utf8(&mut [0; 4]));
    }

    #[inline]
    fn html_len_hint(&self) -> usize {
        self.len_utf8()
    }
}

impl ToHtml for Html {
    #[inline]
    fn push_html(&self, out: &mut String) {
        out.push_str(&self.0);
    }

    #[inline]
    fn html_len_hint(&self) -> usize {
        self.0.len()
    }
}

impl ToHtml for bool {
    #[inline]
    fn push_html(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }

    #[inline]
    fn html_len_hint(&self) -> usize {
        5
    }
}

impl<T: ToHtml + ?Sized> ToHtml for &T {
    #[inline]
    fn push_html(&self, out: &mut String) {
        (**self).push_html(out);
    }

    #[inline]
    fn html_len_hint(&self) -> usize {
        (**self).html_len_hint()
    }
}

/// Integers in decimal, sized for their longest.
macro_rules! integers {
    ($($int:ty => $longest:literal),* $(,)?) => {$(
        impl ToHtml for $int {
            #[inline]
            fn push_html(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self));
            }

            #[inline]
            fn html_len_hint(&self) -> usize {
                $longest
            }
        }
    )*};
}

integers! {
    u8 => 3, u16 => 5, u32 => 10, u64 => 20, u128 => 39, usize => 20,
    i8 => 4, i16 => 6, i32 => 11, i64 => 20, i128 => 40, isize => 20,
}

/// Floats as their `Display` writes them (never anything to escape).
macro_rules! floats {
    ($($float:ty),*) => {$(
        impl ToHtml for $float {
            fn push_html(&self, out: &mut String) {
                use std::fmt::Write as _;
                // Writing into a `String` cannot fail.
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

floats!(f32, f64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html;

    /// The escaping as written out character by character.
    fn by_hand(text: &str) -> String {
        let mut out = String::new();
        for ch in text.chars() {
            match ch {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#x27;"),
                other => out.push(other),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_escaped_character_by_character_into_a_string_of_its_length(
            text in "[a-z&<>\"' é€😀\u{0}]{0,40}"
        ) {
            let escaped = escape(&text);
            proptest::prop_assert_eq!(escaped.as_ref(), by_hand(&text));
            match escaped {
                Cow::Borrowed(_) => proptest::prop_assert!(!text.contains(['&', '<', '>', '"', '\''])),
                Cow::Owned(owned) => proptest::prop_assert_eq!(owned.capacity(), owned.len()),
            }
        }

        #[test]
        fn html_escapes_any_text_as_escape_does(text in "[a-z&<>\"' é€😀\u{0}]{0,40}|\\PC*") {
            let x = text.as_str();
            let escaped = escape(x);
            proptest::prop_assert_eq!(html!("{x}"), escaped.as_ref());
            proptest::prop_assert_eq!(html!("<p>{}</p>", &text), format!("<p>{}</p>", escape(x)));
        }
    }

    #[test]
    fn each_entity_is_escaped_in_every_kind_of_text() {
        let text = r#"a&b<c>d"e'f"#;
        let escaped = "a&amp;b&lt;c&gt;d&quot;e&#x27;f";
        assert_eq!(html!("{text}"), escaped);
        assert_eq!(html!("{}", text.to_owned()), escaped);
        assert_eq!(html!("{}", Cow::Borrowed(text)), escaped);
        assert_eq!(html!("{}", &&text), escaped);
        for (ch, entity) in [
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "&#x27;"),
        ] {
            assert_eq!(html!("{ch}"), entity);
        }
        assert_eq!(html!("{}", 'é'), "é");
    }

    #[test]
    fn text_beyond_ascii_is_kept_around_the_entities() {
        assert_eq!(
            html!("<p>{}</p>", "Grüße <aus> Köln, 東京 & 😀"),
            "<p>Grüße &lt;aus&gt; Köln, 東京 &amp; 😀</p>"
        );
    }

    #[test]
    fn numbers_and_booleans_are_written_as_text() {
        assert_eq!(
            html!(
                "{} {} {} {} {}",
                0u8,
                -128i8,
                u64::MAX,
                i128::MIN,
                usize::MAX
            ),
            format!("0 -128 {} {} {}", u64::MAX, i128::MIN, usize::MAX)
        );
        assert_eq!(html!("{} {}", true, false), "true false");
        assert_eq!(html!("{} {} {}", 2.5f64, -0.1f32, f64::NAN), "2.5 -0.1 NaN");
        assert_eq!(html!("{}", 1e21f64), format!("{}", 1e21f64));
    }

    #[test]
    fn nested_markup_is_escaped_once() {
        let inner = html!("<b>{}</b>", "<i>");
        let outer = html!("<p>{inner}</p>");
        assert_eq!(outer, "<p><b>&lt;i&gt;</b></p>");
        assert_eq!(html!("{}", &outer), outer.as_ref());
        assert_eq!(html!("{}", Html::trusted("<hr>")), "<hr>");
    }

    #[test]
    fn arguments_are_captured_positional_indexed_or_named() {
        let who = "Ann & Bo";
        let count = 2;
        assert_eq!(
            html!(
                "{who}: {} of {}, {0} again; {name} {{ok}}",
                count,
                3,
                name = "<n>"
            ),
            "Ann &amp; Bo: 2 of 3, 2 again; &lt;n&gt; {ok}"
        );
        // Each argument is evaluated once, however often it is used.
        let mut calls = 0;
        let mut next = || {
            calls += 1;
            calls
        };
        assert_eq!(html!("{0}{0}{n}{n}", next(), n = next()), "1122");
        assert_eq!(calls, 2);
        // An argument is borrowed whole, whatever its operators.
        let (a, b) = (2, 3);
        assert_eq!(html!("{} {x}", a + b, x = a * b), "5 6");
        assert_eq!(html!("{}", "<".to_owned() + ">"), "&lt;&gt;");
        assert_eq!(html!("no values"), "no values");
        assert_eq!(html!(""), "");
    }

    #[test]
    fn the_string_is_sized_once_when_nothing_is_escaped() {
        let name = "World";
        let html = String::from(html!("<h1>Hello, {name}! {}</h1>", 12345u32));
        assert_eq!(html, "<h1>Hello, World! 12345</h1>");
        assert!(html.capacity() >= html.len());
        let exact = String::from(html!("<h1>Hello, {name}!</h1>"));
        assert_eq!(exact.capacity(), exact.len());
    }

    #[test]
    fn markup_reads_as_text_and_converts_to_a_string() {
        let html = html!("<i>{}</i>", 1);
        assert_eq!(&*html, "<i>1</i>");
        assert_eq!(html.to_string(), "<i>1</i>");
        assert_eq!(format!("{html:?}"), r#"Html("<i>1</i>")"#);
        assert_eq!(html, String::from("<i>1</i>"));
        assert_eq!(String::from(html.clone()), "<i>1</i>");
        assert_eq!(html.as_ref(), "<i>1</i>");
    }
}
