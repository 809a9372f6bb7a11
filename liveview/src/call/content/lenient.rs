//! A deserializer over JSON values that reads form strings as the numbers
//! and booleans a user's type asks for, the way HTML form decoders do.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Error, Value};

pub(crate) struct Lenient(pub Value);

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "on" | "1" | "yes" => Some(true),
        "false" | "off" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

impl<'de> IntoDeserializer<'de, Error> for Lenient {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! integer {
    ($($method:ident => $visit:ident as $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(s) => match s.trim().parse::<$ty>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(de::Error::custom(format_args!("{s:?} is not a whole number"))),
                },
                other => Lenient(other).deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => n.deserialize_any(visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Lenient));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut access =
                    MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Lenient(v))));
                let value = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(value)
            }
        }
    }

    integer! {
        deserialize_i8 => visit_i64 as i64,
        deserialize_i16 => visit_i64 as i64,
        deserialize_i32 => visit_i64 as i64,
        deserialize_i64 => visit_i64 as i64,
        deserialize_i128 => visit_i128 as i128,
        deserialize_u8 => visit_u64 as u64,
        deserialize_u16 => visit_u64 as u64,
        deserialize_u32 => visit_u64 as u64,
        deserialize_u64 => visit_u64 as u64,
        deserialize_u128 => visit_u128 as u128,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(n) => visitor.visit_f64(n),
                Err(_) => Err(de::Error::custom(format_args!("{s:?} is not a number"))),
            },
            other => Lenient(other).deserialize_any(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => match parse_bool(&s) {
                Some(b) => visitor.visit_bool(b),
                None => Err(de::Error::custom(format_args!(
                    "{s:?} is not a yes/no value"
                ))),
            },
            other => Lenient(other).deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::String(s) if s.is_empty() => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Info,
        Warning,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Form {
        kind: Kind,
        count: u8,
        ratio: f64,
        agree: bool,
        later: Option<u32>,
        tags: Vec<String>,
    }

    #[test]
    fn strings_become_the_types_asked_for() {
        let form: Form = Form::deserialize(Lenient(json!({
            "kind": "warning", "count": "3", "ratio": "0.5", "agree": "on",
            "later": "", "tags": ["a"]
        })))
        .unwrap();
        assert_eq!(
            form,
            Form {
                kind: Kind::Warning,
                count: 3,
                ratio: 0.5,
                agree: true,
                later: None,
                tags: vec!["a".into()],
            }
        );
        assert_ne!(form.kind, Kind::Info);
    }

    #[test]
    fn out_of_range_and_garbage_are_errors() {
        let err = Form::deserialize(Lenient(json!({
            "kind": "info", "count": "300", "ratio": "1", "agree": true, "later": null, "tags": []
        })))
        .unwrap_err();
        assert!(err.to_string().contains("300"), "{err}");
        assert!(u8::deserialize(Lenient(json!("x"))).is_err());
        assert!(bool::deserialize(Lenient(json!("maybe"))).is_err());
    }
}
