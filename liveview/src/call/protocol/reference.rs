//! The parser of client frames as it was before the single-pass one: the
//! frame read into a struct of JSON maps, then each map's keys normalised
//! into a new map. Kept, unchanged in behaviour, as the reference the
//! differential tests and the `decode` fuzz target hold [`super::parse`]
//! to: the same content, the same `ref`, and a refusal for the same
//! frames.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::is_valid_function;
use crate::call::content::keys::snake_case;
use crate::call::content::{Content, Fields, Lang};

#[derive(Deserialize)]
struct Incoming<'a> {
    function: String,
    #[serde(default)]
    form: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default, borrow, rename = "room")]
    _room: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, rename = "ref")]
    reference: Option<u64>,
}

/// The content and `ref` of `text`, or why it is refused.
pub(crate) fn parse(text: &str, room: &str) -> Result<(Content, Option<u64>), String> {
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object".to_owned());
    }
    let incoming: Incoming = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !is_valid_function(&incoming.function) {
        return Err("invalid function".to_owned());
    }
    let content = Content::of_call(
        incoming.function.into(),
        Fields::from(normalize_keys(incoming.form.unwrap_or_default())).with_part("form"),
        Fields::from(strip_data_prefix(normalize_keys(
            incoming.data.unwrap_or_default(),
        )))
        .with_part("data"),
        Lang::new(&incoming.lang.unwrap_or_default()),
        room.into(),
    );
    Ok((content, incoming.reference))
}

/// camelCase to snake_case on every key, recursively.
fn normalize_keys(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .map(|(key, value)| (snake_case(&key).into_owned(), normalize_value(value)))
        .collect()
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
    let renamed: Vec<bool> = map
        .keys()
        .map(|key| {
            key.strip_prefix("data_")
                .is_some_and(|stripped| !stripped.is_empty() && !map.contains_key(stripped))
        })
        .collect();
    let mut out = Map::new();
    for ((key, value), renamed) in map.into_iter().zip(renamed) {
        if renamed {
            out.insert(key["data_".len()..].to_owned(), value);
        } else {
            out.insert(key, value);
        }
    }
    out
}
