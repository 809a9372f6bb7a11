//! What a handler receives: the content of one client call.

use std::borrow::Cow;
use std::fmt;
use std::ops::Index;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ContentError;

mod key;
pub(crate) mod keys;
mod lenient;
mod val;

use key::Key;
pub(crate) use val::Val;

/// The content of one call, as Django LiveView's handlers receive it: the function
/// name, the form values, the `data-data-*` values, the page language and the
/// room. Keys of `form` and `data` are already normalised to snake_case.
///
/// ```
/// use serde_json::json;
///
/// let content = liveview::Content::new("greet")
///     .with_form(json!({"name": "Ada", "age": "36", "subscribe": true}))
///     .with_data(json!({"userId": "7"}))
///     .with_lang("en");
/// assert_eq!(content.function(), "greet");
/// assert_eq!(content.form.str("name"), Some("Ada"));
/// assert_eq!(content.form.i64("age"), Some(36));
/// assert_eq!(content.form.bool("subscribe"), Some(true));
/// assert_eq!(content.data.str("user_id"), Some("7"));
/// assert_eq!(content.lang(), "en");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Content {
    /// The registered name when a client calls a handler: no copy of the
    /// name per call.
    function: Cow<'static, str>,
    /// The values of the triggering element's form, by input name.
    pub form: Fields,
    /// The triggering element's `data-data-*` attributes.
    pub data: Fields,
    /// In place when short, as nearly every language is; else shared
    /// with the connection's previous call when it is the same.
    lang: Lang,
    /// Shared with the connection.
    room: Arc<str>,
}

impl Content {
    /// Content calling `function`, with empty form and data: handy in unit
    /// tests of handlers.
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: Cow::Owned(function.into()),
            ..Self::default()
        }
    }

    /// The content of a client's call of the handler `function`.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn of_call(
        function: Cow<'static, str>,
        form: Fields,
        data: Fields,
        lang: Lang,
        room: Arc<str>,
    ) -> Self {
        Self {
            function,
            form,
            data,
            lang,
            room,
        }
    }

    /// The content of a client's call of the handler `function`, its `form`
    /// and `data` entries taken from the frame that sent them, as
    /// [`Fields::from_entries`] makes fields: built where it is returned,
    /// not from fields made first and then moved into it.
    #[inline(always)]
    pub(crate) fn of_frame(
        function: Cow<'static, str>,
        form: &mut Few<(Cow<'_, str>, Val)>,
        data: &mut Few<(Cow<'_, str>, Val)>,
        lang: Lang,
        room: Arc<str>,
    ) -> Self {
        Self {
            function,
            form: Fields::taken(form, false),
            data: Fields::taken(data, true),
            lang,
            room,
        }
    }

    /// The handler name that was called.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The page language (`<html lang>`), or `""`.
    pub fn lang(&self) -> &str {
        self.lang.as_str()
    }

    /// The room of the page.
    ///
    /// ```
    /// let content = liveview::Content::new("f").with_room("lobby");
    /// assert_eq!(content.room(), "lobby");
    /// ```
    pub fn room(&self) -> &str {
        &self.room
    }

    /// Replace the form values; `value` should be a JSON object, whose keys
    /// are normalised the way the server normalises a client's.
    pub fn with_form(mut self, value: Value) -> Self {
        self.form = Fields::from_value(value, false);
        self
    }

    /// Replace the data values, normalised as the server does (camelCase to
    /// snake_case, `data_` prefix dropped).
    pub fn with_data(mut self, value: Value) -> Self {
        self.data = Fields::from_value(value, true);
        self
    }

    /// Set the room.
    pub fn with_room(mut self, room: impl Into<Arc<str>>) -> Self {
        self.room = room.into();
        self
    }

    /// Set the language.
    pub fn with_lang(mut self, lang: impl Into<Arc<str>>) -> Self {
        self.lang = Lang::Shared(lang.into());
        self
    }
}

/// The language of a call: in place when it is short (`en`, `pt-BR`: no
/// allocation, no lock, no count to share it), else an `Arc`, shared with
/// the connection's previous call when it is the same.
#[derive(Clone)]
pub(crate) enum Lang {
    Short(Key),
    Shared(Arc<str>),
}

impl Lang {
    /// `lang`, in place when it is short.
    pub(crate) fn new(lang: &str) -> Self {
        match Key::short(lang) {
            Some(short) => Self::Short(short),
            None => Self::Shared(Arc::from(lang)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Short(short) => short.as_str(),
            Self::Shared(lang) => lang,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Short(short) => short.as_bytes(),
            Self::Shared(lang) => lang.as_bytes(),
        }
    }
}

impl Default for Lang {
    fn default() -> Self {
        Self::new("")
    }
}

impl PartialEq for Lang {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The language of a connection's last long language: the next call in
/// the same language shares it instead of a copy. (A short language costs
/// less in place than shared.)
#[derive(Debug, Default)]
pub(crate) struct LastLang(std::sync::Mutex<Option<Arc<str>>>);

impl LastLang {
    /// `lang`: in place when short, else shared with the last call's when
    /// it is the same.
    #[inline]
    pub(crate) fn share(&self, lang: &str) -> Lang {
        match Key::short(lang) {
            Some(short) => Lang::Short(short),
            None => Lang::Shared(self.share_long(lang)),
        }
    }

    fn share_long(&self, lang: &str) -> Arc<str> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some(same) if **same == *lang => same.clone(),
            _ => {
                let lang: Arc<str> = Arc::from(lang);
                *last = Some(lang.clone());
                lang
            }
        }
    }
}

/// Form or data values: a JSON object with easy, forgiving accessors.
///
/// Browsers send form values as strings, so the number and boolean accessors
/// also read `"42"`, `"true"` and `"on"`. [`Fields::deserialize`] turns the
/// values into your own type with the same leniency.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct NewAlert {
///     kind: String,
///     message: String,
///     dismiss_after: Option<u32>,
/// }
///
/// let content = liveview::Content::new("create_alert").with_form(serde_json::json!({
///     "kind": "info", "message": "Deploy at 5", "dismissAfter": "30"
/// }));
/// let alert: NewAlert = content.form.deserialize().unwrap();
/// assert_eq!(alert.dismiss_after, Some(30));
/// assert_eq!(content.form["message"], "Deploy at 5");
/// ```
#[derive(Clone, Default)]
pub struct Fields {
    /// Sorted by key, each key once: the order of a JSON map, and a binary
    /// search to find a key. No tree to build or to free, and for the one
    /// short string of a typical call no allocation at all: its key and
    /// value are kept in place.
    entries: Few<(Key, Val)>,
    /// What is built from the entries when first asked for; boxed, so that
    /// the fields of a call stay small to move.
    built: OnceLock<Box<Built>>,
    part: &'static str,
}

impl Fields {
    pub(crate) fn from_value(value: Value, is_data: bool) -> Self {
        let entries = match value {
            Value::Object(map) => Few::Heap(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Val::Json(v)))
                    .collect(),
            ),
            _ => Few::default(),
        };
        // A map's keys are sorted unless serde_json's `preserve_order` is
        // on (any crate of the application may turn it on), and then they
        // come in the order they were inserted: normalize_entries sorts
        // them when they are not.
        Self::from_entries(entries, is_data)
    }

    /// The fields of a `form` (or, with `is_data`, a `data`) object whose
    /// entries are `entries`, in the order they came, keys as they were
    /// sent: see [`keys::normalize_entries`].
    pub(crate) fn from_entries(mut entries: Few<(Cow<'_, str>, Val)>, is_data: bool) -> Self {
        Self::taken(&mut entries, is_data)
    }

    /// [`Fields::from_entries`] of the entries where the frame keeps them,
    /// taken from there rather than moved out first.
    #[inline(always)]
    fn taken(entries: &mut Few<(Cow<'_, str>, Val)>, is_data: bool) -> Self {
        Self {
            entries: keys::normalize_entries(entries, is_data),
            built: OnceLock::new(),
            part: if is_data { "data" } else { "form" },
        }
    }

    #[cfg(any(test, fuzzing))]
    pub(crate) fn with_part(mut self, part: &'static str) -> Self {
        self.part = part;
        self
    }

    #[inline]
    fn position(&self, key: &str) -> Option<usize> {
        match &self.entries {
            // Nearly every call's form: one field, one comparison.
            Few::Inline(one) => one
                .as_ref()
                .is_some_and(|(k, _)| k.as_bytes() == key.as_bytes())
                .then_some(0),
            Few::Heap(entries) => search(entries, key),
        }
    }

    /// The value of `key`. Inlined where a handler asks, so that the one
    /// comparison of a one-field form is with a key the compiler knows.
    #[inline(always)]
    fn find(&self, key: &str) -> Option<&Val> {
        match &self.entries {
            Few::Inline(Some((k, value))) => (k.as_bytes() == key.as_bytes()).then_some(value),
            Few::Inline(None) => None,
            Few::Heap(entries) => search(entries, key).map(|i| &entries[i].1),
        }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self.position(key)?;
        match &self.entries.as_slice()[i].1 {
            Val::Json(value) => Some(value),
            Val::Text(_) => Some(&self.values()[i]),
        }
    }

    fn built(&self) -> &Built {
        self.built.get_or_init(Box::default)
    }

    /// Every value as JSON, in the order of the entries, built once.
    fn values(&self) -> &[Value] {
        self.built().values.get_or_init(|| {
            self.entries
                .as_slice()
                .iter()
                .map(|(_, value)| value.to_value())
                .collect()
        })
    }

    /// `key` as a string slice, when it is a string.
    #[inline(always)]
    pub fn str(&self, key: &str) -> Option<&str> {
        self.find(key).and_then(Val::as_str)
    }

    /// `key` as a string, or `default` when it is missing, not a string, or
    /// empty (an empty input).
    ///
    /// ```
    /// let content = liveview::Content::new("f").with_form(serde_json::json!({"name": ""}));
    /// assert_eq!(content.form.str_or("name", "World"), "World");
    /// ```
    #[inline(always)]
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        match self.str(key) {
            Some(s) if !s.is_empty() => s,
            _ => default,
        }
    }

    /// `key` as an integer: a JSON number or a string of digits.
    pub fn i64(&self, key: &str) -> Option<i64> {
        let value = self.find(key)?;
        if let Some(s) = value.as_str() {
            return s.trim().parse().ok();
        }
        match value.as_json()? {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// `key` as a float: a JSON number or a numeric string.
    pub fn f64(&self, key: &str) -> Option<f64> {
        let value = self.find(key)?;
        if let Some(s) = value.as_str() {
            return s.trim().parse().ok();
        }
        match value.as_json()? {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// `key` as a boolean: `true`/`false`, or the strings `"true"`, `"on"`,
    /// `"1"`, `"false"`, `"off"`, `"0"`, `""`.
    pub fn bool(&self, key: &str) -> Option<bool> {
        let value = self.find(key)?;
        if let Some(s) = value.as_str() {
            return lenient::parse_bool(s);
        }
        match value.as_json()? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_i64().map(|n| n != 0),
            _ => None,
        }
    }

    /// `key` as an array (a multiple `<select>`).
    pub fn array(&self, key: &str) -> Option<&Vec<Value>> {
        self.find(key)
            .and_then(Val::as_json)
            .and_then(Value::as_array)
    }

    /// The strings of an array value; a single string counts as one.
    ///
    /// ```
    /// let content = liveview::Content::new("f")
    ///     .with_form(serde_json::json!({"tags": ["a", "b"], "one": "c"}));
    /// assert_eq!(content.form.strings("tags"), ["a", "b"]);
    /// assert_eq!(content.form.strings("one"), ["c"]);
    /// assert!(content.form.strings("none").is_empty());
    /// ```
    pub fn strings(&self, key: &str) -> Vec<&str> {
        let Some(value) = self.find(key) else {
            return Vec::new();
        };
        if let Some(s) = value.as_str() {
            return vec![s];
        }
        match value.as_json() {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.entries.as_slice().is_empty()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.as_slice().len()
    }

    /// Iterate over `(key, value)` pairs, in the order of their keys.
    ///
    /// The pairs are those of [`Fields::as_map`], which the first call
    /// builds.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.as_map().iter()
    }

    /// The values as a JSON map, built by the first call.
    pub fn as_map(&self) -> &Map<String, Value> {
        self.built().map.get_or_init(|| self.to_map())
    }

    fn to_map(&self) -> Map<String, Value> {
        self.entries
            .as_slice()
            .iter()
            .map(|(key, value)| (String::from(key), value.to_value()))
            .collect()
    }

    /// The values as a JSON map, by value.
    pub fn into_map(mut self) -> Map<String, Value> {
        match self.built.take().and_then(|built| built.map.into_inner()) {
            Some(map) => map,
            None => self
                .entries
                .into_vec()
                .into_iter()
                .map(|(key, value)| (String::from(key), value.into_value()))
                .collect(),
        }
    }

    /// Deserialise the values into `T`. Strings are read as numbers or
    /// booleans where `T` wants those, and an empty string is `None` for an
    /// `Option` field. The error names the field that did not fit.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ContentError> {
        let part = if self.part.is_empty() {
            "form"
        } else {
            self.part
        };
        let value = Value::Object(self.to_map());
        serde_path_to_error::deserialize(lenient::Lenient(value)).map_err(|err| {
            let path = err.path().to_string();
            ContentError::new(part, path, err.into_inner().to_string())
        })
    }
}

/// Where `key` is among `entries`, sorted by key.
#[inline(never)]
fn search(entries: &[(Key, Val)], key: &str) -> Option<usize> {
    entries
        .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
        .ok()
}

/// The values of [`Fields`] as [`Fields::as_map`] and [`Fields::get`] give
/// them, each built the first time it is asked for.
#[derive(Clone, Default)]
struct Built {
    /// The values as a JSON map.
    map: OnceLock<Map<String, Value>>,
    /// The values as JSON, in the order of the entries (for a string kept
    /// in place).
    values: OnceLock<Box<[Value]>>,
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Self {
        let mut entries: Vec<(Key, Val)> = map
            .into_iter()
            .map(|(k, v)| (Key::from(k), Val::Json(v)))
            .collect();
        // A map's keys are distinct, and sorted unless serde_json's
        // `preserve_order` is on.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Self {
            entries: Few::Heap(entries),
            built: OnceLock::new(),
            part: "",
        }
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.entries.as_slice() == other.entries.as_slice() && self.part == other.part
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = DebugMap(self.entries.as_slice());
        f.debug_struct("Fields")
            .field("map", &map)
            .field("part", &self.part)
            .finish()
    }
}

struct DebugMap<'a>(&'a [(Key, Val)]);

impl fmt::Debug for DebugMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k.as_str(), v)))
            .finish()
    }
}

impl Index<&str> for Fields {
    type Output = Value;

    /// The value of `key`, or `Value::Null` when it is missing.
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// Zero or one item in place, more on the heap: the form of a call has
/// one field or two, and its data often none.
#[derive(Debug, Clone)]
pub(crate) enum Few<T> {
    Inline(Option<T>),
    Heap(Vec<T>),
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Self::Inline(None)
    }
}

impl<T> Few<T> {
    /// Add `item`: the first is written in place, where it will stay.
    #[inline(always)]
    pub(crate) fn push(&mut self, item: T) {
        match self {
            Self::Inline(slot @ None) => *slot = Some(item),
            Self::Inline(Some(_)) => self.spill(item),
            Self::Heap(items) => items.push(item),
        }
    }

    /// The second item: both go to the heap.
    #[cold]
    fn spill(&mut self, item: T) {
        let mut items = Vec::with_capacity(2);
        items.extend(std::mem::take(self).into_vec());
        items.push(item);
        *self = Self::Heap(items);
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Inline(None) => &[],
            Self::Inline(Some(item)) => std::slice::from_ref(item),
            Self::Heap(items) => items,
        }
    }

    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Self::Inline(item) => item.into_iter().collect(),
            Self::Heap(items) => items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_kept_in_place_read_as_the_json_strings_they_stand_for() {
        let text = r#"{"function":"f","form":{"name":"Ada","age":" 36 ","ratio":"0.5","agree":"on",
            "long":"a string longer than twenty-two bytes","n":null}}"#;
        let call = crate::call::protocol::parse(text, "r").unwrap();
        let form = &call.content.form;
        assert!(matches!(form.find("name"), Some(Val::Text(_))));
        assert!(matches!(form.find("long"), Some(Val::Json(_))));
        let expected = serde_json::json!({
            "name": "Ada", "age": " 36 ", "ratio": "0.5", "agree": "on",
            "long": "a string longer than twenty-two bytes", "n": null,
        });
        let Value::Object(map) = expected.clone() else {
            unreachable!()
        };
        for (key, value) in &map {
            assert_eq!(form.get(key), Some(value), "{key}");
            assert_eq!(&form[key.as_str()], value, "{key}");
            assert_eq!(form.str(key), value.as_str(), "{key}");
        }
        assert_eq!(form.get("none"), None);
        assert_eq!(form.i64("age"), Some(36));
        assert_eq!(form.f64("ratio"), Some(0.5));
        assert_eq!(form.bool("agree"), Some(true));
        assert_eq!(form.bool("n"), None);
        assert_eq!(form.strings("name"), ["Ada"]);
        assert_eq!(form.array("name"), None);
        assert_eq!(form.as_map(), &map);
        let pairs: Map<String, Value> = form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(pairs, map);
        assert_eq!(form.clone().into_map(), map);
        let same = Content::new("f").with_form(expected).form;
        assert_eq!(*form, same);
        assert_eq!(format!("{form:?}"), format!("{same:?}"));
        #[derive(serde::Deserialize)]
        struct Form {
            name: String,
            age: u8,
            agree: bool,
        }
        let read: Form = form.deserialize().unwrap();
        assert_eq!(
            (read.name.as_str(), read.age, read.agree),
            ("Ada", 36, true)
        );
    }

    /// A JSON map keeps its keys sorted, unless serde_json's
    /// `preserve_order` is on (any crate of an application may turn it
    /// on), and then they come in the order they were inserted: the fields
    /// made from one find each of its keys either way.
    #[test]
    fn fields_made_from_a_json_map_find_its_keys_in_any_order() {
        let keys = ["zeta", "alpha", "mid", "beta", "dataGamma", "data_delta"];
        let mut map = Map::new();
        for key in keys {
            map.insert(key.to_owned(), Value::from(key));
        }
        let content = Content::new("f")
            .with_form(Value::Object(map.clone()))
            .with_data(Value::Object(map.clone()));
        let raw = Fields::from(map);
        for key in ["zeta", "alpha", "mid", "beta"] {
            assert_eq!(content.form.str(key), Some(key));
            assert_eq!(content.data.str(key), Some(key));
            assert_eq!(raw.str(key), Some(key));
        }
        assert_eq!(content.form.str("data_gamma"), Some("dataGamma"));
        assert_eq!(content.data.str("gamma"), Some("dataGamma"));
        assert_eq!(content.data.str("delta"), Some("data_delta"));
        assert_eq!(raw.str("dataGamma"), Some("dataGamma"));
    }

    #[test]
    fn a_long_language_is_shared_while_it_stays_the_same_and_replaced_when_it_changes() {
        let last = LastLang::default();
        let shared = |lang: Lang| match lang {
            Lang::Shared(lang) => lang,
            Lang::Short(short) => panic!("{short:?} is in place"),
        };
        let long = "en-Latn-US-x-private-use-1";
        let first = shared(last.share(long));
        assert_eq!(&*first, long);
        assert!(
            Arc::ptr_eq(&first, &shared(last.share(long))),
            "the same language is shared"
        );
        let other = "es-Latn-ES-x-private-use-1";
        assert_eq!(&*shared(last.share(other)), other);
        assert_eq!(last.share(""), Lang::new(""));
        let again = shared(last.share(long));
        assert_eq!(&*again, long);
        assert!(!Arc::ptr_eq(&again, &first), "replaced when it changed");
        assert!(Arc::ptr_eq(&again, &shared(last.share(long))));
    }

    #[test]
    fn a_short_language_is_in_place_and_reads_as_it_came() {
        let last = LastLang::default();
        for lang in [
            "",
            "en",
            "pt-BR",
            "zh-Hant-TW",
            "ü",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let read = last.share(lang);
            assert!(matches!(read, Lang::Short(_)), "{lang}");
            assert_eq!(read.as_str(), lang);
            let content = Content::of_call(
                "f".into(),
                Fields::default(),
                Fields::default(),
                read,
                Arc::from("r"),
            );
            assert_eq!(content, Content::new("f").with_lang(lang).with_room("r"));
            assert_eq!(content.lang(), lang);
            assert_eq!(
                format!("{content:?}"),
                format!("{:?}", Content::new("f").with_lang(lang).with_room("r"))
            );
        }
        assert!(matches!(Lang::new(&"a".repeat(25)), Lang::Shared(_)));
    }
}
