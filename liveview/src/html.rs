//! HTML escaping for values put into markup by hand.

use std::borrow::Cow;

/// Escape `&`, `<`, `>`, `"` and `'` so that `text` is inert in HTML
/// content and in quoted attribute values.
///
/// Text with nothing to escape is borrowed as it is; other text is copied
/// once, into a string of exactly the escaped length.
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
    match text.bytes().position(|b| entity(b).is_some()) {
        None => Cow::Borrowed(text),
        Some(first) => Cow::Owned(escape_from(text, first)),
    }
}

/// `text` escaped, its first byte to escape at `first`.
#[cold]
#[inline(never)]
fn escape_from(text: &str, first: usize) -> String {
    let bytes = text.as_bytes();
    let grows: usize = bytes[first..]
        .iter()
        .map(|&b| entity(b).map_or(0, |e| e.len() - 1))
        .sum();
    let mut out = String::with_capacity(text.len() + grows);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if let Some(entity) = entity(b) {
            // The escaped characters are ASCII: `i` is on a character
            // boundary.
            out.push_str(&text[start..i]);
            out.push_str(entity);
            start = i + 1;
        }
    }
    out.push_str(&text[start..]);
    debug_assert_eq!(out.len(), out.capacity(), "the length was measured");
    out
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
