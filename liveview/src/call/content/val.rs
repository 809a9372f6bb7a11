//! The values of [`Fields`](super::Fields): a short string as a client sends
//! nearly every form value kept in place, so that a call's fields cost no
//! allocation for it, nor a free when the call ends; any other value as
//! JSON.

use std::fmt;

use serde_json::Value;

use super::key::Key;

/// A field's value: a short string in place, or any JSON value.
#[derive(Clone)]
pub(crate) enum Val {
    Text(Key),
    Json(Value),
}

impl Val {
    /// `text` as a string value, in place when it is short.
    #[inline]
    pub(crate) fn text(text: &str) -> Self {
        match Key::short(text) {
            Some(short) => Self::Text(short),
            None => Self::Json(Value::String(text.to_owned())),
        }
    }

    /// The string, when the value is one.
    #[inline]
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Json(value) => value.as_str(),
        }
    }

    /// The value as JSON, when it is kept as JSON.
    pub(crate) fn as_json(&self) -> Option<&Value> {
        match self {
            Self::Text(_) => None,
            Self::Json(value) => Some(value),
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.into()),
            Self::Json(value) => value.clone(),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.into()),
            Self::Json(value) => value,
        }
    }
}

impl From<Value> for Val {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

impl PartialEq for Val {
    /// Equal as JSON values: a string in place equals the same string as
    /// JSON.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Json(a), Self::Json(b)) => a == b,
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Text(text), Self::Json(value)) | (Self::Json(value), Self::Text(text)) => value
                .as_str()
                .is_some_and(|s| s.as_bytes() == text.as_bytes()),
        }
    }
}

impl fmt::Debug for Val {
    /// As the JSON value it stands for prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "String({:?})", text.as_str()),
            Self::Json(value) => fmt::Debug::fmt(value, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_string_in_place_is_the_json_string(
            a in prop_oneof!["\\PC{0,30}", "[ab]{0,3}"],
            b in prop_oneof!["\\PC{0,30}", "[ab]{0,3}"],
        ) {
            let (val, json) = (Val::text(&a), Val::Json(Value::String(a.clone())));
            prop_assert_eq!(matches!(val, Val::Text(_)), a.len() <= 24);
            prop_assert_eq!(val.as_str(), Some(a.as_str()));
            prop_assert_eq!(val.as_json().is_none(), a.len() <= 24);
            prop_assert_eq!(val.to_value(), Value::String(a.clone()));
            prop_assert_eq!(val.clone().into_value(), Value::String(a.clone()));
            prop_assert_eq!(&val, &json);
            prop_assert_eq!(&json, &val);
            prop_assert_eq!(format!("{val:?}"), format!("{:?}", Value::String(a.clone())));
            let other = Val::text(&b);
            prop_assert_eq!(val == other, a == b);
            prop_assert_eq!(other == json, a == b);
            prop_assert_eq!(json == other, a == b);
            prop_assert!(Val::Json(Value::Null) != Val::text(""));
        }
    }
}
