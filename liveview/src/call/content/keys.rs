//! Key normalisation, so that handlers see the same keys whatever client
//! sent the frame: camelCase to snake_case, and the `data_` prefix of older
//! clients dropped.

use serde_json::{Map, Value};

/// Normalise the keys of a `form` object: camelCase to snake_case.
pub(crate) fn normalize_form(form: Map<String, Value>) -> Map<String, Value> {
    normalize_keys(form)
}

/// Normalise the keys of a `data` object: camelCase to snake_case, then the
/// `data_` prefix of older clients dropped.
pub(crate) fn normalize_data(data: Map<String, Value>) -> Map<String, Value> {
    strip_data_prefix(normalize_keys(data))
}

/// `userId` -> `user_id`, `userID` -> `user_id`, `HTMLParser` ->
/// `html_parser`: an underscore goes before an upper-case letter that
/// follows a lower-case letter or digit, and before the last capital of a
/// run of capitals followed by a lower-case letter. Keys without an
/// upper-case letter come back as they are, without allocating.
///
/// ```
/// use liveview::protocol::snake_case;
///
/// assert_eq!(snake_case("dataCommentId"), "data_comment_id");
/// assert_eq!(snake_case("userID"), "user_id");
/// assert_eq!(snake_case("HTMLParser"), "html_parser");
/// assert_eq!(snake_case("already_snake"), "already_snake");
/// ```
pub fn snake_case(key: &str) -> std::borrow::Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return key.into();
    }
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::with_capacity(key.len() + 4);
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
            let boundary = prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_is_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out.into()
}

/// camelCase to snake_case on every key, recursively.
pub(crate) fn normalize_keys(map: Map<String, Value>) -> Map<String, Value> {
    let needs_work = map
        .iter()
        .any(|(k, v)| matches!(snake_case(k), std::borrow::Cow::Owned(_)) || has_nested(v));
    if !needs_work {
        return map;
    }
    map.into_iter()
        .map(|(key, value)| {
            // A key that is already snake_case keeps its String.
            let renamed = match snake_case(&key) {
                std::borrow::Cow::Owned(renamed) => Some(renamed),
                std::borrow::Cow::Borrowed(_) => None,
            };
            (renamed.unwrap_or(key), normalize_value(value))
        })
        .collect()
}

fn has_nested(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(has_nested),
        _ => false,
    }
}

fn normalize_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(normalize_keys(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_value).collect()),
        other => other,
    }
}

/// `data_comment_id` -> `comment_id`, unless `comment_id` is there too.
fn strip_data_prefix(map: Map<String, Value>) -> Map<String, Value> {
    if !map.keys().any(|k| k.len() > 5 && k.starts_with("data_")) {
        return map;
    }
    // Only the keys that lose their prefix are copied, not every key.
    let renamed: Vec<String> = map
        .keys()
        .filter(|k| {
            k.strip_prefix("data_")
                .is_some_and(|stripped| !stripped.is_empty() && !map.contains_key(stripped))
        })
        .cloned()
        .collect();
    if renamed.is_empty() {
        return map;
    }
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        if renamed.contains(&key) {
            out.insert(key["data_".len()..].to_owned(), value);
        } else {
            out.insert(key, value);
        }
    }
    out
}
