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
/// use liveview::__fuzz::snake_case;
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
///
/// Linear in the number of keys: one lookup in the map per prefixed key,
/// then one pass that moves every entry. (A frame of 64 KiB holds about
/// 5,000 keys; a quadratic membership test here cost tens of
/// milliseconds of CPU per frame.)
fn strip_data_prefix(map: Map<String, Value>) -> Map<String, Value> {
    if !map.keys().any(|k| k.len() > 5 && k.starts_with("data_")) {
        return map;
    }
    // Decided against the keys as they came, before any is renamed: the
    // same order `into_iter` yields them in.
    let renamed: Vec<bool> = map
        .keys()
        .map(|key| {
            key.strip_prefix("data_").is_some_and(|stripped| {
                probe();
                !stripped.is_empty() && !map.contains_key(stripped)
            })
        })
        .collect();
    if !renamed.contains(&true) {
        return map;
    }
    let mut out = Map::with_capacity(map.len());
    for ((key, value), renamed) in map.into_iter().zip(renamed) {
        probe();
        if renamed {
            out.insert(key["data_".len()..].to_owned(), value);
        } else {
            out.insert(key, value);
        }
    }
    out
}

/// Counts the steps of [`strip_data_prefix`] in tests, so a test can hold
/// it to a linear bound without timing it.
#[cfg(test)]
fn probe() {
    PROBES.with(|p| p.set(p.get() + 1));
}

#[cfg(not(test))]
fn probe() {}

/// How many steps [`strip_data_prefix`] took on this thread so far.
#[cfg(test)]
pub(crate) fn probes() -> usize {
    PROBES.with(std::cell::Cell::get)
}

#[cfg(test)]
thread_local! {
    static PROBES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The frame of the attack: `count` distinct `data_…` keys, as short as
/// they can be (5,000 of them fit in a 64 KiB frame).
#[cfg(test)]
pub(crate) fn prefixed_keys(count: usize) -> Map<String, Value> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..count)
        .map(|mut i| {
            let mut key = String::from("data_");
            loop {
                key.push(char::from(DIGITS[i % DIGITS.len()]));
                i /= DIGITS.len();
                if i == 0 {
                    break;
                }
            }
            (key, Value::from(1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes_for(map: Map<String, Value>) -> (usize, Map<String, Value>) {
        PROBES.with(|p| p.set(0));
        let out = normalize_data(map);
        (PROBES.with(std::cell::Cell::get), out)
    }

    #[test]
    fn stripping_the_data_prefix_of_a_full_frame_of_keys_is_linear() {
        let keys = 5_000;
        let frame = serde_json::json!({"function": "f", "data": prefixed_keys(keys)}).to_string();
        assert!(
            frame.len() <= 64 * 1024,
            "the frame fits the limit: {}",
            frame.len()
        );

        let (probes, out) = probes_for(prefixed_keys(keys));
        assert_eq!(out.len(), keys);
        assert!(out.keys().all(|k| !k.starts_with("data_")));
        // One lookup and one move per key. The quadratic version made
        // about keys^2 / 2 = 12.5 million.
        assert!(probes <= 2 * keys, "{probes} steps for {keys} keys");

        // And the work grows with the keys, not with their square.
        let (double, _) = probes_for(prefixed_keys(2 * keys));
        assert!(
            double <= 2 * probes + 2,
            "{double} steps for twice the keys"
        );
    }

    #[test]
    fn a_prefixed_key_whose_short_form_exists_keeps_its_prefix_among_many() {
        let mut map = prefixed_keys(1_000);
        map.insert("a1".into(), Value::from("short"));
        let (_, out) = probes_for(map);
        assert_eq!(out["a1"], "short");
        assert_eq!(out["data_a1"], 1);
        assert_eq!(out["b1"], 1);
        assert_eq!(out.len(), 1_001);
    }
}
