//! Key normalisation, so that handlers see the same keys whatever client
//! sent the frame: camelCase to snake_case, and the `data_` prefix of older
//! clients dropped.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::Few;
use super::Val;
use super::key::Key;

/// The entries of a `form` or `data` object as a [`Fields`](super::Fields)
/// keeps them: keys normalised (camelCase to snake_case, recursively into
/// nested objects; for `data` also the `data_` prefix dropped where the
/// short key is free), sorted by key, each key once.
///
/// `entries` come in the order of the frame, keys as they were sent. A key
/// sent twice keeps its last value; keys that only differ before
/// normalisation (`userId`, `user_id`) resolve in the order of the keys as
/// sent, the greatest winning, as they did when the object was a JSON map
/// first.
///
/// At most three sorts and a binary search per prefixed key: a frame of
/// 5,000 keys costs a few milliseconds, never their square.
///
/// The entries are taken from where they stand, `entries` left empty: the
/// one entry of nearly every call is normalised as it is taken, and an
/// empty object, as `data` nearly always is, has nothing to move.
#[inline(always)]
pub(crate) fn normalize_entries(
    entries: &mut Few<(Cow<'_, str>, Val)>,
    is_data: bool,
) -> Few<(Key, Val)> {
    match entries {
        Few::Inline(slot) => match slot.take() {
            None => Few::Inline(None),
            Some((key, value)) => {
                Few::Inline(Some((normalize_one(&key, is_data), normalize_val(value))))
            }
        },
        Few::Heap(items) => Few::Heap(normalize_many(std::mem::take(items), is_data)),
    }
}

/// The only key of a `form` (or, with `is_data`, a `data`) object, in
/// snake_case and for `data` without its `data_` prefix: nothing to sort,
/// nothing it could collide with. Nearly every such key (an input's name)
/// is already snake_case, and is copied once, as it is.
#[inline]
fn normalize_one(key: &str, is_data: bool) -> Key {
    let key = snake_case(key);
    match key.strip_prefix("data_") {
        Some(rest) if is_data && !rest.is_empty() => {
            probe();
            Key::from(rest)
        }
        _ => Key::from(key),
    }
}

/// The key in snake_case, and whether that changed it.
#[inline]
fn normalize_key(key: &str) -> (Key, bool) {
    let snake = snake_case(key);
    let changed = matches!(snake, Cow::Owned(_));
    (Key::from(snake), changed)
}

#[inline(never)]
fn normalize_many(mut entries: Vec<(Cow<'_, str>, Val)>, is_data: bool) -> Vec<(Key, Val)> {
    if !is_strictly_sorted(&entries) {
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        dedup_keep_last(&mut entries);
    }
    let mut renamed = false;
    // Same size and alignment: the vector's buffer is reused.
    let mut entries: Vec<(Key, Val)> = entries
        .into_iter()
        .map(|(key, value)| {
            let (key, changed) = normalize_key(&key);
            renamed |= changed;
            (key, normalize_val(value))
        })
        .collect();
    if renamed && !is_strictly_sorted(&entries) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        dedup_keep_last(&mut entries);
    }
    if is_data {
        strip_data_prefix(&mut entries);
    }
    entries
}

fn is_strictly_sorted<K: AsBytes>(entries: &[(K, Val)]) -> bool {
    entries
        .windows(2)
        .all(|pair| pair[0].0.bytes() < pair[1].0.bytes())
}

/// The bytes of a key, as sent or normalised: ordered as text is.
trait AsBytes {
    fn bytes(&self) -> &[u8];
}

impl AsBytes for Cow<'_, str> {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsBytes for Key {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Of each run of equal keys (sorted, so they are next to each other), one
/// entry with the value of the last.
fn dedup_keep_last<K: AsBytes>(entries: &mut Vec<(K, Val)>) {
    entries.dedup_by(|later, kept| {
        if later.0.bytes() == kept.0.bytes() {
            std::mem::swap(&mut later.1, &mut kept.1);
            true
        } else {
            false
        }
    });
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
#[inline]
pub fn snake_case(key: &str) -> Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return key.into();
    }
    snake_case_of_camel(key).into()
}

/// [`snake_case`] of a key with an ASCII capital.
#[cold]
#[inline(never)]
fn snake_case_of_camel(key: &str) -> String {
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
    out
}

/// camelCase to snake_case on every key, recursively.
pub(crate) fn normalize_keys(map: Map<String, Value>) -> Map<String, Value> {
    let needs_work = map
        .iter()
        .any(|(k, v)| matches!(snake_case(k), Cow::Owned(_)) || has_nested(v));
    if !needs_work {
        return map;
    }
    map.into_iter()
        .map(|(key, value)| {
            // A key that is already snake_case keeps its String.
            let renamed = match snake_case(&key) {
                Cow::Owned(renamed) => Some(renamed),
                Cow::Borrowed(_) => None,
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

/// A string in place has no keys to normalise.
#[inline]
fn normalize_val(value: Val) -> Val {
    match value {
        Val::Json(value @ (Value::Object(_) | Value::Array(_))) => {
            Val::Json(normalize_value(value))
        }
        other => other,
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
/// `entries` are sorted by key, each key once, and stay so.
///
/// Decided against the keys before any is renamed: one binary search per
/// prefixed key, then one sort if any was renamed. (A frame of 64 KiB
/// holds about 5,000 keys; a quadratic membership test here cost tens of
/// milliseconds of CPU per frame.)
fn strip_data_prefix(entries: &mut [(Key, Val)]) {
    if !entries
        .iter()
        .any(|(k, _)| k.len() > "data_".len() && k.as_bytes().starts_with(b"data_"))
    {
        return;
    }
    let renamed: Vec<bool> = entries
        .iter()
        .map(|(key, _)| {
            key.as_bytes()
                .strip_prefix(b"data_")
                .is_some_and(|stripped| {
                    probe();
                    !stripped.is_empty()
                        && entries
                            .binary_search_by(|(other, _)| other.as_bytes().cmp(stripped))
                            .is_err()
                })
        })
        .collect();
    if !renamed.contains(&true) {
        return;
    }
    for ((key, _), renamed) in entries.iter_mut().zip(renamed) {
        if renamed {
            probe();
            key.drop_prefix("data_".len());
        }
    }
    // A short key is free, so no two keys become equal.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
        let mut entries = Few::Heap(
            map.into_iter()
                .map(|(k, v)| (Cow::Owned(k), Val::Json(v)))
                .collect(),
        );
        let out = normalize_entries(&mut entries, true)
            .into_vec()
            .into_iter()
            .map(|(k, v)| (String::from(k), v.into_value()))
            .collect();
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
