//! HTML escaping for values put into markup by hand.

use std::borrow::Cow;

/// Escape `&`, `<`, `>`, `"` and `'` so that `text` is inert in HTML
/// content and in quoted attribute values.
///
/// ```
/// assert_eq!(
///     liveview::escape(r#"<script>alert("x")</script> & 'y'"#),
///     "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;y&#x27;"
/// );
/// assert_eq!(liveview::escape("plain"), "plain");
/// ```
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
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
    Cow::Owned(out)
}
