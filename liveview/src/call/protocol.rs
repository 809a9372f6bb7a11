//! The wire protocol: parsing client frames, key normalisation, and the fixed
//! frames the server answers bad input with. See `PROTOCOL.md` in the
//! repository for the contract.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::call::content::{Content, Few, Lang, Val};
use crate::update::json;

/// Longest handler name a client may call.
pub const MAX_FUNCTION_LEN: usize = 64;

/// Whether `name` can be a called handler: 1 to 64 characters of
/// `[A-Za-z0-9_.-]`. Any other `function` is an `Invalid message`, so a
/// client-chosen name that reaches the log is short and has no control
/// characters.
///
/// ```
/// use liveview::protocol::is_valid_function;
///
/// assert!(is_valid_function("say_hello"));
/// assert!(is_valid_function("alerts.create-v2"));
/// assert!(!is_valid_function(""));
/// assert!(!is_valid_function("evil\n\u{1b}[31mforged"));
/// assert!(!is_valid_function(&"a".repeat(65)));
/// ```
pub fn is_valid_function(name: &str) -> bool {
    (1..=MAX_FUNCTION_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Largest frame accepted by default: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Close codes used by the server.
pub mod close {
    /// Normal closure (the client left).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (graceful shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (reserved bits or opcodes,
    /// an unmasked frame, an oversized control frame, an invalid close
    /// code).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The client sent a binary frame.
    pub const UNSUPPORTED: u16 = 1003;
    /// The client sent a text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The client kept exceeding its rate limit.
    pub const POLICY: u16 = 1008;
    /// The client sent a frame larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// The client did not read its frames fast enough.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client sent nothing, not even a Pong, for the idle timeout.
    pub const IDLE: u16 = 4408;
    /// The session of the connection ended (the authenticator said
    /// [`Identity::Expired`](crate::Identity::Expired), or a handler called
    /// [`Consumer::expire`](crate::Consumer::expire)): the client stops
    /// reconnecting.
    pub const SESSION_EXPIRED: u16 = 4401;
}

/// The fixed error frames. Nothing else about a failure reaches the client.
pub mod errors {
    /// `function` names no registered handler.
    pub const UNKNOWN_FUNCTION: &str = "Unknown function";
    /// A handler returned an error, panicked or timed out.
    pub const INTERNAL: &str = "Internal error";
    /// The frame is not a JSON object with a `function` name of 1 to 64
    /// characters of `[A-Za-z0-9_.-]`.
    pub const INVALID_MESSAGE: &str = "Invalid message";
    /// The client is over its rate limit.
    pub const RATE_LIMITED: &str = "Rate limited";
}

/// A parsed client call: the content the handler sees, and the optional
/// `ref` that ties replies to it.
#[derive(Debug)]
pub(crate) struct Call {
    pub content: Content,
    pub reference: Option<u64>,
}

/// Why a frame was refused. Logged, never sent.
#[derive(Debug)]
pub(crate) struct InvalidMessage(pub String);

/// Parse one text frame. `room` is the connection's room: the content's
/// room whatever the frame's `room` key says.
pub(crate) fn parse(text: &str, room: &str) -> Result<Call, InvalidMessage> {
    let mut frame = Frame::default();
    parse_frame(text, &mut frame)?;
    let reference = frame.reference;
    let function = Cow::Owned(frame.function.clone().into_owned());
    let lang = Lang::new(frame.lang.as_deref().unwrap_or(""));
    Ok(Call {
        content: frame.take_content(function, lang, Arc::from(room)),
        reference,
    })
}

/// Read one text frame as a call into `frame` (empty), its strings
/// borrowed from `text`.
///
/// One pass over the frame: the members of `form` and `data` are collected
/// as they come, keys borrowed from the frame where it has no escapes, and
/// normalised into their [`Fields`](crate::Fields) once, by [`Frame::take_content`] (no
/// JSON map is built and then rebuilt). The frame is written where the
/// caller keeps it: it is large, and a call moves it no more.
pub(crate) fn parse_frame<'a>(text: &'a str, frame: &mut Frame<'a>) -> Result<(), InvalidMessage> {
    // A plain frame's `function` was checked as it was read.
    if plain::read(text, frame) {
        return Ok(());
    }
    *frame = parse_any(text)?;
    if !is_valid_function(&frame.function) {
        return Err(InvalidMessage(format!(
            "function name of {} bytes outside [A-Za-z0-9_.-]{{1,{MAX_FUNCTION_LEN}}}",
            frame.function.len()
        )));
    }
    Ok(())
}

impl Frame<'_> {
    /// The content a handler sees: `function` is the called name (the
    /// registered one, not a copy), `lang` the frame's and `room` always the
    /// connection's own: a frame's `room` key is the client's claim, and a
    /// handler trusting it would bypass signed rooms.
    pub(crate) fn take_content(
        &mut self,
        function: Cow<'static, str>,
        lang: Lang,
        room: Arc<str>,
    ) -> Content {
        Content::of_frame(function, &mut self.form, &mut self.data, lang, room)
    }
}

/// Any frame, with serde_json: the judge of every frame [`plain::parse`]
/// leaves.
fn parse_any(text: &str) -> Result<Frame<'_>, InvalidMessage> {
    // serde would also read a struct from an array (`["echo"]`): only an
    // object is a message.
    if !text.trim_start().starts_with('{') {
        return Err(InvalidMessage("not a JSON object".to_owned()));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut de)
        .deserialize_map(FrameVisitor)
        .and_then(|frame| de.end().map(|()| frame))
        .map_err(|e| InvalidMessage(e.to_string()))
}

/// The members of a call frame, strings borrowed from the text where they
/// have no escapes.
#[derive(Default)]
pub(crate) struct Frame<'de> {
    pub function: Cow<'de, str>,
    form: Entries<'de>,
    data: Entries<'de>,
    pub lang: Option<Cow<'de, str>>,
    pub reference: Option<u64>,
}

/// The members of a `form` or `data` object, in the order they came.
type Entries<'de> = Few<(Cow<'de, str>, Val)>;

/// The members a call frame may have; any other is skipped.
enum Member {
    Function,
    Form,
    Data,
    Lang,
    Room,
    Ref,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl Visitor<'_> for MemberVisitor {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "function" => Member::Function,
                    "form" => Member::Form,
                    "data" => Member::Data,
                    "lang" => Member::Lang,
                    "room" => Member::Room,
                    "ref" => Member::Ref,
                    _ => Member::Other,
                })
            }
        }
        deserializer.deserialize_identifier(MemberVisitor)
    }
}

/// A JSON string, borrowed from the frame unless it has escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The frame's `room` claim: checked to be a string, never kept (the room
/// is the connection's), so it costs no allocation even with escapes.
struct RoomClaim;

impl<'de> Deserialize<'de> for RoomClaim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RoomVisitor;
        impl Visitor<'_> for RoomVisitor {
            type Value = RoomClaim;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RoomClaim, E> {
                Ok(RoomClaim)
            }
        }
        deserializer.deserialize_str(RoomVisitor)
    }
}

/// A `form` or `data` object, its members collected as they come.
struct Object<'de>(Entries<'de>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut entries = Few::default();
                while let Some(Text(key)) = map.next_key()? {
                    let value: Value = map.next_value()?;
                    entries.push((key, Val::Json(value)));
                }
                Ok(Object(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct FrameVisitor;

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Frame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a call object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame<'de>, A::Error> {
        // Each known member at most once; `null` is the same as absent
        // except for `function`.
        fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
            slot: &mut Option<T>,
            map: &mut A,
            name: &'static str,
        ) -> Result<(), A::Error> {
            if slot.is_some() {
                return Err(de::Error::duplicate_field(name));
            }
            *slot = Some(map.next_value()?);
            Ok(())
        }
        let mut function: Option<Text<'de>> = None;
        let mut form: Option<Option<Object<'de>>> = None;
        let mut data: Option<Option<Object<'de>>> = None;
        let mut lang: Option<Option<Text<'de>>> = None;
        let mut room: Option<Option<RoomClaim>> = None;
        let mut reference: Option<Option<u64>> = None;
        while let Some(member) = map.next_key()? {
            match member {
                Member::Function => once(&mut function, &mut map, "function")?,
                Member::Form => once(&mut form, &mut map, "form")?,
                Member::Data => once(&mut data, &mut map, "data")?,
                Member::Lang => once(&mut lang, &mut map, "lang")?,
                Member::Room => once(&mut room, &mut map, "room")?,
                Member::Ref => once(&mut reference, &mut map, "ref")?,
                Member::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let Some(Text(function)) = function else {
            return Err(de::Error::missing_field("function"));
        };
        let entries = |object: Option<Option<Object<'de>>>| object.flatten().map(|o| o.0);
        Ok(Frame {
            function,
            form: entries(form).unwrap_or_default(),
            data: entries(data).unwrap_or_default(),
            lang: lang.flatten().map(|t| t.0),
            reference: reference.flatten(),
        })
    }
}

/// The `n` of a liveness probe `{"ping": n}` (an integer, and no
/// `function`): our client sends one after a quiet spell, to learn whether
/// the connection still works. Anything else is `None`. Asked only of
/// frames that [`parse`] refused (a probe has no `function`), so a call
/// costs no search for the key.
pub(crate) fn ping(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Ping {
        ping: u64,
        #[serde(default)]
        function: Option<serde::de::IgnoredAny>,
    }
    if !text.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Ping>(text) {
        Ok(Ping {
            ping,
            function: None,
        }) => Some(ping),
        _ => None,
    }
}

/// `{"pong": n}`: the answer to `{"ping": n}`.
pub(crate) fn pong_frame(n: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let n = digits.format(n);
    let mut out = String::with_capacity(PONG.len() + n.len() + 1);
    out.push_str(PONG);
    out.push_str(n);
    out.push('}');
    out
}

/// The `ref` of a frame, and nothing else: for frames the server refuses
/// without running them (over a rate limit), so a flood of refused frames
/// costs a scan of the text, not the parsing of every value and key
/// normalisation. `None` when the frame is not an object or its `ref` is
/// not an unsigned integer.
pub(crate) fn reference_only(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct RefOnly {
        #[serde(default, rename = "ref")]
        reference: Option<u64>,
    }
    if !text.trim_start().starts_with('{') {
        return None;
    }
    // Every other member is skipped as `IgnoredAny`: no map, no string
    // is built for it.
    serde_json::from_str::<RefOnly>(text).ok()?.reference
}

/// `{"error": message}`, with the call's `ref` when there is one.
pub(crate) fn error_frame(message: &str, reference: Option<u64>) -> String {
    let message_len = json::string_len(message);
    let mut digits = itoa::Buffer::new();
    let reference = reference.map(|r| digits.format(r));
    let len = ERROR.len() + message_len + json::close_with_ref_len(reference);
    let mut out = String::with_capacity(len);
    out.push_str(ERROR);
    json::write_string(&mut out, message, message_len);
    json::close_with_ref(&mut out, reference);
    debug_assert_eq!(out.len(), len, "the frame's length was measured");
    out
}

/// `{"ref": n, "done": true}`: call `n` is finished.
pub(crate) fn done_frame(reference: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let reference = digits.format(reference);
    let mut out = String::with_capacity(DONE_START.len() + reference.len() + DONE_END.len());
    out.push_str(DONE_START);
    out.push_str(reference);
    out.push_str(DONE_END);
    out
}

// The fixed text of the frames above, around their message and numbers:
// each frame is written into a buffer of exactly its length, with no
// formatting machinery, since every call with a `ref` gets one.
const PONG: &str = "{\"pong\":";
const ERROR: &str = "{\"error\":";
const DONE_START: &str = "{\"ref\":";
const DONE_END: &str = ",\"done\":true}";

mod plain;
#[cfg(any(test, fuzzing))]
pub(crate) mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::content::keys::snake_case;
    use serde_json::{Map, json};

    #[test]
    fn a_ping_is_an_integer_without_a_function() {
        assert_eq!(ping(r#"{"ping": 7}"#), Some(7));
        assert_eq!(ping(r#"{"ping": 7, "function": "f"}"#), None);
        assert_eq!(ping(r#"{"ping": "7"}"#), None);
        assert_eq!(ping(r#"{"function": "ping"}"#), None);
        assert_eq!(pong_frame(7), r#"{"pong":7}"#);
    }

    #[test]
    fn camel_case_keys_become_snake_case_recursively() {
        let call = parse(
            r#"{"function":"f","form":{"firstName":"Ada","address":{"zipCode":"1"}},"data":{"userId":"7"}}"#,
            "r",
        )
        .unwrap();
        assert_eq!(
            Value::Object(call.content.form.into_map()),
            json!({"first_name": "Ada", "address": {"zip_code": "1"}})
        );
        assert_eq!(
            Value::Object(call.content.data.into_map()),
            json!({"user_id": "7"})
        );
    }

    #[test]
    fn data_prefix_is_stripped_unless_the_short_key_exists() {
        let call = parse(
            r#"{"function":"f","data":{"dataCommentId":"3","data_post_id":"4","data_x":"1","x":"2"}}"#,
            "r",
        )
        .unwrap();
        assert_eq!(
            Value::Object(call.content.data.into_map()),
            json!({"comment_id": "3", "post_id": "4", "data_x": "1", "x": "2"})
        );
    }

    #[test]
    fn defaults_fill_missing_keys_and_room_comes_from_the_url() {
        let call = parse(r#"{"function":"f","ref":9,"extra":[1]}"#, "lobby").unwrap();
        assert_eq!(call.content.room(), "lobby");
        let claimed = parse(r#"{"function":"f","room":"admins"}"#, "lobby").unwrap();
        assert_eq!(
            claimed.content.room(),
            "lobby",
            "a frame cannot choose its room"
        );
        assert_eq!(call.content.lang(), "");
        assert!(call.content.form.is_empty());
        assert_eq!(call.reference, Some(9));
    }

    #[test]
    fn bad_frames_are_invalid_messages() {
        for text in [
            "not json",
            "[1,2]",
            r#"["echo"]"#,
            "\"s\"",
            "{}",
            r#"{"function":7}"#,
            r#"{"function":"f","form":"x"}"#,
            r#"{"function":"f","ref":-1}"#,
            r#"{"function":""}"#,
            r#"{"function":"a b"}"#,
            "{\"function\":\"evil\\n\\u001b[31mforged\"}",
        ] {
            assert!(parse(text, "r").is_err(), "{text} should be refused");
        }
    }

    /// The frames every call with a `ref` gets, as they were written with
    /// `format!` and serde_json: the hand-written ones must match them byte
    /// for byte.
    mod fixed_frames {
        use super::*;
        use proptest::prelude::*;

        fn pong_formatted(n: u64) -> String {
            format!(r#"{{"pong":{n}}}"#)
        }

        fn error_formatted(message: &str, reference: Option<u64>) -> String {
            let message = serde_json::to_string(message).unwrap();
            match reference {
                Some(r) => format!(r#"{{"error":{message},"ref":{r}}}"#),
                None => format!(r#"{{"error":{message}}}"#),
            }
        }

        fn done_formatted(reference: u64) -> String {
            format!(r#"{{"ref":{reference},"done":true}}"#)
        }

        /// Each frame equals the formatted one, in a buffer of its length.
        fn check(reference: u64, message: &str) -> Result<(), TestCaseError> {
            for (written, formatted) in [
                (pong_frame(reference), pong_formatted(reference)),
                (done_frame(reference), done_formatted(reference)),
                (
                    error_frame(message, Some(reference)),
                    error_formatted(message, Some(reference)),
                ),
                (error_frame(message, None), error_formatted(message, None)),
            ] {
                prop_assert_eq!(&written, &formatted);
                prop_assert_eq!(written.capacity(), written.len(), "{}", written);
            }
            Ok(())
        }

        /// Every count of digits, at both of its ends, and the numbers
        /// around them.
        fn edge_references() -> Vec<u64> {
            let mut refs = vec![0, 1, 9, 10, 11, 99, 100, 101, u64::MAX - 1, u64::MAX];
            for power in 1..=19 {
                let p = 10u64.pow(power);
                refs.extend([p - 1, p, p + 1]);
            }
            refs
        }

        const KINDS: [&str; 4] = [
            errors::UNKNOWN_FUNCTION,
            errors::INTERNAL,
            errors::INVALID_MESSAGE,
            errors::RATE_LIMITED,
        ];

        #[test]
        fn every_error_kind_at_every_count_of_digits() {
            for reference in edge_references() {
                for kind in KINDS {
                    check(reference, kind).unwrap();
                }
            }
            assert_eq!(
                done_frame(u64::MAX),
                r#"{"ref":18446744073709551615,"done":true}"#
            );
            assert_eq!(
                error_frame(errors::RATE_LIMITED, Some(0)),
                r#"{"error":"Rate limited","ref":0}"#
            );
        }

        fn reference() -> impl Strategy<Value = u64> {
            prop_oneof![
                any::<u64>(),
                0..1_000u64,
                prop::sample::select(edge_references()),
                // Any count of digits, not only the 19 and 20 most random
                // numbers have.
                (0..20u32, any::<u64>()).prop_map(|(digits, n)| n % 10u64.pow(digits)),
            ]
        }

        fn message() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(KINDS.to_vec()).prop_map(String::from),
                any::<String>(),
                "[\"\\\\\\x00-\\x1fa\\x7f\\u{2028}é]{0,12}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn frames_are_the_text_format_wrote(reference in reference(), message in message()) {
                check(reference, &message)?;
            }
        }
    }

    #[test]
    fn fixed_frames_are_valid_json() {
        assert_eq!(
            serde_json::from_str::<Value>(&error_frame("Unknown function", Some(3))).unwrap(),
            json!({"error": "Unknown function", "ref": 3})
        );
        assert_eq!(
            serde_json::from_str::<Value>(&done_frame(5)).unwrap(),
            json!({"ref": 5, "done": true})
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[a-zA-Z_ ]{0,8}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_bytes_parse_or_are_invalid_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let text = String::from_utf8_lossy(&bytes);
                let _ = parse(&text, "room");
            }

            #[test]
            fn any_json_parses_or_is_invalid(value in json_value()) {
                let text = value.to_string();
                let parsed = parse(&text, "room");
                let valid = value.as_object().is_some_and(|o| {
                    o.get("function").and_then(Value::as_str).is_some_and(is_valid_function)
                        && o.get("form").is_none_or(|f| f.is_object() || f.is_null())
                        && o.get("data").is_none_or(|f| f.is_object() || f.is_null())
                        && o.get("lang").is_none_or(|f| f.is_string() || f.is_null())
                        && o.get("room").is_none_or(|f| f.is_string() || f.is_null())
                        && o.get("ref").is_none_or(|f| f.is_u64() || f.is_null())
                });
                prop_assert_eq!(parsed.is_ok(), valid, "{}", text);
            }

            #[test]
            fn normalised_keys_have_no_capitals_and_normalising_twice_changes_nothing(
                form in prop::collection::btree_map("[a-zA-Z_]{1,10}", json_value(), 0..6)
            ) {
                let map: Map<String, Value> = form.into_iter().collect();
                let once = Content::new("f").with_data(Value::Object(map)).data.into_map();
                fn no_capitals(value: &Value) -> bool {
                    match value {
                        Value::Object(m) => m.iter().all(|(k, v)| !k.bytes().any(|b| b.is_ascii_uppercase()) && no_capitals(v)),
                        Value::Array(items) => items.iter().all(no_capitals),
                        _ => true,
                    }
                }
                prop_assert!(no_capitals(&Value::Object(once.clone())));
                let twice = Content::new("f").with_form(Value::Object(once.clone())).form.into_map();
                prop_assert_eq!(twice, once);
            }
        }
    }

    /// The parser against the one it replaced (`reference`), on frames
    /// built to reach every branch: escapes, duplicate and colliding keys,
    /// nesting, numbers of every kind, wrong types and broken JSON.
    mod differential {
        use super::*;
        use crate::call::content::Fields;
        use proptest::prelude::*;

        /// Same content and `ref`, or both refused.
        fn same_as_reference(text: &str) -> Result<(), String> {
            let new = parse(text, "room").map(|call| (call.content, call.reference));
            let old = reference::parse(text, "room");
            match (new, old) {
                (Ok(new), Ok(old)) if new == old => {
                    let order = |f: &Fields| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
                    let (new_keys, old_keys) = (order(&new.0.form), order(&old.0.form));
                    if new_keys == old_keys {
                        Ok(())
                    } else {
                        Err(format!("{text}: keys {new_keys:?}, reference {old_keys:?}"))
                    }
                }
                (Err(_), Err(_)) => Ok(()),
                (new, old) => Err(format!(
                    "{text}:\n  parse     {:?}\n  reference {:?}",
                    new.map_err(|e| e.0),
                    old
                )),
            }
        }

        fn space() -> impl Strategy<Value = &'static str> {
            prop_oneof![8 => Just(""), 2 => Just(" "), 1 => Just("\n\t\r ")]
        }

        /// The inside of a JSON string literal, escapes included (some of
        /// them invalid: lone surrogates, unknown escapes, raw control
        /// characters).
        fn string_body() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                8 => "[a-zA-Z0-9_ .-]{1,6}",
                1 => Just("é".to_owned()),
                1 => Just("日本".to_owned()),
                1 => Just("😀".to_owned()),
                1 => Just("\\u00e9".to_owned()),
                1 => Just("\\u0041".to_owned()),
                1 => Just("\\u005f".to_owned()),
                1 => Just("\\ud83d\\ude00".to_owned()),
                1 => Just("\\uD83D\\uDE00".to_owned()),
                1 => Just("\\ud83d".to_owned()),
                1 => Just("\\ude00x".to_owned()),
                1 => Just("\\n".to_owned()),
                1 => Just("\\\"".to_owned()),
                1 => Just("\\\\".to_owned()),
                1 => Just("\\/".to_owned()),
                1 => Just("\\x".to_owned()),
                1 => Just("\\u12".to_owned()),
                1 => Just("\u{1}".to_owned()),
                1 => Just("\t".to_owned()),
            ];
            prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
        }

        /// A key of `form` or `data`, quoted: many need normalising.
        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(vec![
                    "name", "user_id", "userId", "userID", "UserId", "user-id", "URL",
                    "data_", "data", "data_x", "x", "dataX", "data_user_id", "dataUserId",
                    "data_data_x", "data_X", "_", "a_", "aB", "a_b", "HTMLParser", "html_parser",
                    "itemID2", "x-Y", "",
                ])
                .prop_map(|k| format!("\"{k}\"")),
                2 => "(data_|data|)[a-z]{0,3}([A-Z-][a-zA-Z]{0,3}){0,2}"
                    .prop_map(|k| format!("\"{k}\"")),
                1 => string_body().prop_map(|k| format!("\"{k}\"")),
                1 => Just("\"user\\u0049d\"".to_owned()),
            ]
        }

        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(vec![
                    "0", "-0", "7", "-17", "18446744073709551615", "18446744073709551616",
                    "-9223372036854775808", "-9223372036854775809", "1.5", "-0.0", "1e3",
                    "1E-2", "2.5e+10", "1e400", "-1e400", "123456789012345678901234567890",
                    "0.1000000000000000055511151231257827", "01", "1.", ".5", "+1", "-", "1e",
                    "NaN", "Infinity",
                ])
                .prop_map(str::to_owned),
                1 => any::<i64>().prop_map(|n| n.to_string()),
                1 => any::<f64>().prop_map(|n| n.to_string()),
            ]
        }

        /// Any JSON value (mostly valid), as text.
        fn value() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                1 => Just("null".to_owned()),
                1 => Just("true".to_owned()),
                1 => Just("false".to_owned()),
                1 => Just("nul".to_owned()),
                1 => number(),
                3 => string_body().prop_map(|s| format!("\"{s}\"")),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec((space(), inner.clone()), 0..4).prop_map(|items| {
                        let items: Vec<String> =
                            items.into_iter().map(|(s, v)| format!("{s}{v}")).collect();
                        format!("[{}]", items.join(","))
                    }),
                    prop::collection::vec((key(), space(), inner), 0..4).prop_map(|members| {
                        let members: Vec<String> = members
                            .into_iter()
                            .map(|(k, s, v)| format!("{k}:{s}{v}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }

        /// A `form` or `data` object, keys repeated and colliding.
        fn fields() -> impl Strategy<Value = String> {
            prop::collection::vec((key(), space(), value()), 0..8).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, s, v)| format!("{k}:{s}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            })
        }

        fn member() -> impl Strategy<Value = String> {
            let function = prop_oneof![
                4 => prop::sample::select(vec![
                    "say_hello", "a.b-c", "f", "", "a b", "say\\u005fhello", "evil\\n",
                    "ünïcode", "x\\ud83d\\ude00",
                ])
                .prop_map(|f| format!("\"{f}\"")),
                1 => Just(format!("\"{}\"", "a".repeat(64))),
                1 => Just(format!("\"{}\"", "a".repeat(65))),
                1 => value(),
            ];
            let text_or_any = || {
                prop_oneof![
                    3 => string_body().prop_map(|s| format!("\"{s}\"")),
                    1 => Just("null".to_owned()),
                    1 => value(),
                ]
            };
            let object_or_any = || {
                prop_oneof![
                    4 => fields(),
                    1 => Just("null".to_owned()),
                    1 => value(),
                ]
            };
            let reference = prop_oneof![
                3 => prop::sample::select(vec!["0", "7", "null", "18446744073709551615"])
                    .prop_map(str::to_owned),
                1 => number(),
                1 => value(),
            ];
            let name = prop::sample::select(vec![
                "function",
                "form",
                "data",
                "lang",
                "room",
                "ref",
                "fun\\u0063tion",
                "Function",
                "other",
                "ping",
            ]);
            (
                prop_oneof![8 => name.prop_map(|n| format!("\"{n}\"")), 1 => key()],
                space(),
                function,
                text_or_any(),
                object_or_any(),
                reference,
                value(),
            )
                .prop_map(|(name, space, function, text, object, reference, any)| {
                    let value = match name.as_str() {
                        "\"function\"" | "\"fun\\u0063tion\"" => function,
                        "\"lang\"" | "\"room\"" => text,
                        "\"form\"" | "\"data\"" => object,
                        "\"ref\"" => reference,
                        _ => any,
                    };
                    format!("{name}{space}:{space}{value}")
                })
        }

        /// A frame: a call object (usually with a `function`), sometimes
        /// broken afterwards.
        fn frame() -> impl Strategy<Value = String> {
            let object = (
                space(),
                prop::option::weighted(0.8, member()),
                prop::collection::vec(member(), 0..6),
                space(),
            )
                .prop_map(|(space, first, members, end)| {
                    let first = first.map(|_| r#""function":"say_hello""#.to_owned());
                    let members: Vec<String> = first.into_iter().chain(members).collect();
                    format!("{space}{{{space}{}{end}}}{end}", members.join(","))
                });
            (
                object,
                0..8u8,
                any::<prop::sample::Index>(),
                "[a-z{}\\[\\],:\"0-9 ]{1,3}",
            )
                .prop_map(|(text, how, at, garbage)| {
                    let cut = at.index(text.len() + 1);
                    let cut = (0..=cut)
                        .rev()
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0);
                    match how {
                        0 => format!("{text}{garbage}"),
                        1 => text[..cut].to_owned(),
                        2 => format!("{}{garbage}{}", &text[..cut], &text[cut..]),
                        _ => text,
                    }
                })
        }

        /// A frame as browsers send it, read by [`plain::parse`] unless
        /// it strays (a number, an escape, a repeated member, a stray byte).
        fn plain_frame() -> impl Strategy<Value = String> {
            let text = || {
                prop_oneof![
                    8 => "[a-zA-Z0-9_ .-]{0,8}",
                    1 => Just("Ünïcødé 😀".to_owned()),
                    1 => Just("a\\b".to_owned()),
                    1 => Just("tab\there".to_owned()),
                ]
                .prop_map(|s| format!("\"{s}\""))
            };
            let plain_key = prop_oneof![
                4 => prop::sample::select(vec![
                    "name", "user_id", "userId", "userID", "data_x", "x", "dataX", "data_",
                    "data", "data_data_x", "a-b", "HTMLParser", "",
                ])
                .prop_map(|k| format!("\"{k}\"")),
                1 => key(),
            ];
            let field_value = prop_oneof![
                6 => text(),
                1 => Just("true".to_owned()),
                1 => Just("false".to_owned()),
                1 => Just("null".to_owned()),
                1 => Just("tru".to_owned()),
                1 => Just("7".to_owned()),
                1 => value(),
            ];
            let object = prop::collection::vec((plain_key, space(), field_value), 0..5)
                .prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, s, v)| format!("{k}{s}:{s}{v}{s}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                })
                .boxed();
            let function = prop_oneof![
                12 => prop::sample::select(vec!["say_hello", "f", "a.b-c"])
                    .prop_map(|f| format!("\"{f}\"")),
                1 => prop::sample::select(vec!["\"\"", "\"a b\"", "\"ü\"", "null", "\"say\\u005fhello\""])
                    .prop_map(str::to_owned),
            ];
            let reference = prop_oneof![
                4 => prop::sample::select(vec!["0", "7", "42", "18446744073709551615"]),
                1 => prop::sample::select(vec![
                    "01", "00", "-1", "1.0", "1e2", "18446744073709551616",
                    "99999999999999999999", "null", "\"7\"",
                ]),
            ]
            .prop_map(str::to_owned);
            let stray = prop::sample::select(vec![
                "\"function\":\"g\"",
                "\"other\":1",
                "\"lang\":\"x\"",
                "\"form\":{}",
                "\"ref\":1",
            ]);
            let members = (
                function,
                prop::option::weighted(0.6, object.clone()),
                prop::option::weighted(0.6, object),
                prop::option::weighted(0.5, text()),
                prop::option::weighted(0.3, text()),
                prop::option::weighted(0.5, reference),
                prop::option::weighted(0.1, stray),
            )
                .prop_map(|(function, form, data, lang, room, reference, stray)| {
                    let mut members = vec![format!("\"function\":{function}")];
                    members.extend(form.map(|o| format!("\"form\":{o}")));
                    members.extend(data.map(|o| format!("\"data\":{o}")));
                    members.extend(lang.map(|t| format!("\"lang\":{t}")));
                    members.extend(room.map(|t| format!("\"room\":{t}")));
                    members.extend(reference.map(|r| format!("\"ref\":{r}")));
                    members.extend(stray.map(str::to_owned));
                    members
                })
                .prop_shuffle();
            (
                members,
                prop::collection::vec(space(), 16),
                prop_oneof![
                    8 => Just(""),
                    1 => prop::sample::select(vec![" ", "\n", "\u{a0}", "x", ",", "}"]),
                ],
                prop_oneof![
                    8 => Just(""),
                    1 => prop::sample::select(vec![" ", "\r\n", "\u{a0}", "\u{feff}"]),
                ],
            )
                .prop_map(|(members, spaces, after, before)| {
                    let members: Vec<String> = members
                        .iter()
                        .zip(spaces.chunks(2))
                        .map(|(m, s)| format!("{}{m}{}", s[0], s[1]))
                        .collect();
                    format!("{before}{{{}}}{after}", members.join(","))
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn frames_parse_as_they_did(text in frame()) {
                same_as_reference(&text).map_err(TestCaseError::fail)?;
            }

            #[test]
            fn form_and_data_objects_parse_as_they_did(form in fields(), data in fields()) {
                let text = format!(r#"{{"function":"f","form":{form},"data":{data},"ref":1}}"#);
                same_as_reference(&text).map_err(TestCaseError::fail)?;
            }

            #[test]
            fn any_json_value_parses_as_it_did(value in value()) {
                same_as_reference(&value).map_err(TestCaseError::fail)?;
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn plain_frames_parse_as_they_did(text in plain_frame()) {
                same_as_reference(&text).map_err(TestCaseError::fail)?;
            }
        }

        #[test]
        fn a_browser_frame_takes_the_plain_path() {
            let text = r#" {"function":"say_hello", "form":{"name":"Ada","agree":true,"x":null},
                "data":{"dataUserId":"7"},"lang":"en","room":"lobby","ref":12} "#;
            let frame = plain::parse(text).expect("read without serde");
            assert_eq!(frame.function, "say_hello");
            assert_eq!(frame.form.as_slice().len(), 3);
            assert_eq!(frame.reference, Some(12));
            for strays in [
                r#"{"function":"f","ref":1.5}"#,
                r#"{"function":"f","form":{"n":1}}"#,
                r#"{"function":"f\n"}"#,
                // Names that cannot be called: refused by serde's path,
                // as the plain path does not check them again.
                r#"{"function":""}"#,
                r#"{"function":"a b"}"#,
                r#"{"function":"f\u00e9"}"#,
                "{\"function\":\"é\"}",
                "{\"function\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                r#"{"function":"f"#,
                r#"{"functions":"f"}"#,
                r#"{"function":"f","other":1}"#,
                r#"{"function":"f","lang":"a","lang":"b"}"#,
                r#"{"function":"f"} x"#,
            ] {
                assert!(plain::parse(strays).is_none(), "{strays}");
                same_as_reference(strays).unwrap();
            }
            let longest = format!(r#"{{"function":"{}"}}"#, "a".repeat(MAX_FUNCTION_LEN));
            assert!(plain::parse(&longest).is_some(), "the longest name");
            same_as_reference(text).unwrap();
        }

        #[test]
        fn chosen_frames_parse_as_they_did() {
            let many: String = (0..5_000)
                .rev()
                .map(|i| format!(r#""dataK{i}":{i},"k{}":1,"data_k{i}":2"#, i * 7 % 5_000))
                .collect::<Vec<_>>()
                .join(",");
            let deep = |n: usize| {
                format!(
                    r#"{{"function":"f","form":{{"a":{}1{}}}}}"#,
                    "[".repeat(n),
                    "]".repeat(n)
                )
            };
            for text in [
                r#"{"function":"say_hello","form":{"name":"Ada"},"data":{},"lang":"en"}"#.to_owned(),
                r#"{"function":"f","form":{"a":1,"a":2,"b":3,"a":4}}"#.to_owned(),
                r#"{"function":"f","form":{"user_id":1,"userId":2,"userID":3}}"#.to_owned(),
                r#"{"function":"f","form":{"userID":3,"userId":2,"user_id":1}}"#.to_owned(),
                r#"{"function":"f","data":{"data_x":1,"x":2,"dataY":3,"data_z":4,"z":5,"data_":6}}"#.to_owned(),
                r#"{"function":"f","data":{"dataX":1,"data_x":2,"data_X":3}}"#.to_owned(),
                r#"{"function":"f","form":{"a":{"bC":1,"b_c":2},"l":[{"xY":1}]}}"#.to_owned(),
                r#"{"function":"f","function":"g"}"#.to_owned(),
                r#"{"function":"f","room":"a","room":"b"}"#.to_owned(),
                r#"{"function":"f","ref":null,"ref":1}"#.to_owned(),
                r#"{"function":"f","form":null,"data":null,"lang":null,"room":null,"ref":null}"#.to_owned(),
                r#"{"function":"f","room":"\ud83d\ude00","lang":"\u00e9"}"#.to_owned(),
                r#"{"function":"f","room":"\ud83d"}"#.to_owned(),
                r#"{"fun\u0063tion":"f"}"#.to_owned(),
                r#"{"function":"f"} x"#.to_owned(),
                r#"{"function":"f"}}"#.to_owned(),
                r#"{"function":null}"#.to_owned(),
                r#"{"function":"f","ref":18446744073709551616}"#.to_owned(),
                r#"{"function":"f","ref":1.0}"#.to_owned(),
                r#"{"function":"f","ref":01}"#.to_owned(),
                r#"{"function":"f","ref":18446744073709551615}"#.to_owned(),
                r#"{"function":"f","form":{"a":true,"a":null,"b":false,"B":"x"}}"#.to_owned(),
                "\u{feff}{\"function\":\"f\"}".to_owned(),
                "\u{a0}{\"function\":\"f\"}".to_owned(),
                "{\"function\":\"f\"}\u{a0}".to_owned(),
                format!(r#"{{"function":"f","data":{{{many}}},"form":{{{many}}}}}"#),
                deep(120),
                deep(126),
                deep(127),
                deep(200),
            ] {
                if let Err(diff) = same_as_reference(&text) {
                    panic!("{diff}");
                }
            }
        }

        /// Text around the 24 bytes kept in place: ASCII, then a character
        /// of one to four bytes that may straddle the boundary, then a few
        /// more bytes.
        fn near_inline() -> impl Strategy<Value = String> {
            (
                "[a-z]{19,25}",
                prop::sample::select(vec!["", "Z", "\u{7f}", "é", "€", "😀"]),
                "[a-z0-9]{0,2}",
            )
                .prop_map(|(ascii, character, more)| format!("{ascii}{character}{more}"))
        }

        /// Keys that normalise across the inline boundary: camelCase that
        /// grows past 24 bytes, `data_` and `data` prefixes that bring a key
        /// back under it.
        fn boundary_key() -> impl Strategy<Value = String> {
            prop_oneof![
                near_inline(),
                "[a-z]{2,7}([A-Z][a-z]{1,6}){1,3}[A-Z]{0,2}",
                near_inline().prop_map(|k| format!("data_{k}")),
                "[a-z]{14,20}".prop_map(|k| format!("data_{k}")),
                "[A-Z][a-z]{3,7}([A-Z][a-z]{3,6}){1,2}".prop_map(|k| format!("data{k}")),
            ]
        }

        /// A `form` or `data` object whose keys come from a few, repeated
        /// and colliding once normalised (`userName`, `user_name`,
        /// `data_user_name`, `dataUserName`).
        fn boundary_object() -> impl Strategy<Value = String> {
            let value = prop_oneof![
                4 => near_inline().prop_map(|v| format!("\"{v}\"")),
                2 => "[a-zA-Z ]{0,4}".prop_map(|v| format!("\"{v}\"")),
                1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_owned),
            ];
            (
                prop::collection::vec(boundary_key(), 1..4),
                prop::collection::vec((any::<prop::sample::Index>(), space(), value), 0..8),
            )
                .prop_map(|(mut pool, members)| {
                    let first = pool[0].clone();
                    let snake = snake_case(&first).into_owned();
                    let mut upper = snake.clone();
                    if let Some(c) = upper.get_mut(..1) {
                        c.make_ascii_uppercase();
                    }
                    pool.extend([
                        snake.clone(),
                        format!("data_{snake}"),
                        format!("data{upper}"),
                    ]);
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(at, s, v)| format!("{s}\"{}\"{s}:{s}{v}{s}", at.get(&pool)))
                        .collect();
                    format!("{{{}}}", members.join(","))
                })
        }

        /// A `ref` of every count of digits, and past `u64::MAX`.
        fn any_count_of_digits() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (0..=20u32, any::<u64>()).prop_map(|(digits, n)| {
                    10u64.checked_pow(digits).map_or(n, |p| n % p).to_string()
                }),
                1 => prop::sample::select(vec![
                    "18446744073709551615", "18446744073709551614", "18446744073709551616",
                    "18446744073709551619", "18446744073709551620", "20000000000000000000",
                    "100000000000000000000", "184467440737095516150",
                ])
                .prop_map(str::to_owned),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Plain frames whose keys, values and language are about 22
            /// bytes long: read without serde, as serde_json reads them,
            /// and seen the same by a handler's accessors.
            #[test]
            fn plain_frames_at_the_inline_boundary_parse_as_they_did(
                form in boundary_object(),
                data in boundary_object(),
                lang in near_inline(),
                reference in any_count_of_digits(),
                spaces in prop::array::uniform6(space()),
            ) {
                let [a, b, c, d, e, f] = spaces;
                let text = format!(
                    r#"{a}{{{b}"function"{c}:{d}"f"{e},"form":{form},{f}"data"{a}:{b}{data},"lang":{c}"{lang}","ref"{d}:{e}{reference}{f}}}{a}"#
                );
                let fits = reference.parse::<u64>().is_ok();
                prop_assert_eq!(plain::parse(&text).is_some(), fits, "{}", text);
                same_as_reference(&text).map_err(TestCaseError::fail)?;
                if !fits {
                    return Ok(());
                }
                let (call, (old, _)) = (parse(&text, "room").unwrap(), reference::parse(&text, "room").unwrap());
                prop_assert_eq!(call.content.lang(), lang.as_str());
                for (new, old) in [(&call.content.form, &old.form), (&call.content.data, &old.data)] {
                    let expected = old.clone().into_map();
                    prop_assert_eq!(new.as_map(), &expected, "{}", text);
                    prop_assert_eq!(new.len(), expected.len());
                    for (key, value) in &expected {
                        prop_assert_eq!(new.get(key), Some(value), "{}: {}", text, key);
                        prop_assert_eq!(new.str(key), value.as_str(), "{}: {}", text, key);
                    }
                }
            }

            /// A string is read without serde exactly when it has nothing
            /// to escape (no control character, no `\`): whatever its
            /// characters, and wherever they fall among eight-byte words.
            #[test]
            fn a_string_is_read_without_serde_when_it_has_nothing_to_escape(
                strings in prop::array::uniform3(prop::collection::vec(
                    prop_oneof![
                        4 => "[a-z]{0,9}",
                        1 => (0u8..0x20).prop_map(|b| char::from(b).to_string()),
                        1 => prop::sample::select(vec![
                            "\\", "\\n", "\\\"", "\\u00e9", "\u{7f}", "\u{80}", "\u{a2}",
                            "\u{dc}", "é", "\u{2028}", "😀", " ", "!", "#", "[", "]",
                        ])
                        .prop_map(str::to_owned),
                    ],
                    0..6,
                )),
            ) {
                let [key, value, lang] = strings.map(|pieces| pieces.concat());
                let plain = [&key, &value, &lang]
                    .iter()
                    .all(|s| !s.bytes().any(crate::update::json::needs_escape));
                // Each string last in its frame too, where it ends less
                // than a word before the end of the text.
                for text in [
                    format!(r#"{{"function":"f","ref":1,"form":{{"{key}":"{value}"}},"lang":"{lang}"}}"#),
                    format!(r#"{{"function":"f","lang":"{lang}","ref":1,"form":{{"{key}":"{value}"}}}}"#),
                ] {
                    prop_assert_eq!(plain::parse(&text).is_some(), plain, "{:?}", text);
                    same_as_reference(&text).map_err(TestCaseError::fail)?;
                }
            }
        }

        /// Every frame cut short, and every frame with one byte taken out,
        /// is read as serde_json reads it, without a panic: the scanner
        /// never reads past the text, nor accepts a frame that ends early.
        #[test]
        fn plain_frames_cut_short_or_missing_a_byte_parse_as_they_did() {
            for text in [
                r#"{"function":"say_hello","form":{"name":"Ada Lovelace","agree":true,"x":null},"data":{"dataUserId":"12345678901234567890123"},"lang":"pt-BR","room":"lobby","ref":18446744073709551615}"#,
                "{ \"function\" : \"a.b-c\" , \"ref\" : 7 , \"form\" : { \"k\" : false } , \"lang\" : \"\" }\n",
                r#"{"ref":0,"data":{"data_":"é€😀","a":"b"},"function":"abcdefghijklmnop"}"#,
            ] {
                let object_end = text.rfind('}').unwrap() + 1;
                for cut in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
                    let short = &text[..cut];
                    assert_eq!(plain::parse(short).is_some(), cut >= object_end, "{short}");
                    same_as_reference(short).unwrap();
                    if let Some(next) = (cut + 1..=text.len()).find(|&i| text.is_char_boundary(i)) {
                        let missing = format!("{short}{}", &text[next..]);
                        same_as_reference(&missing).unwrap();
                    }
                }
            }
        }
    }

    #[test]
    fn snake_case_examples() {
        assert_eq!(snake_case("userId"), "user_id");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("dataCommentId"), "data_comment_id");
        assert_eq!(snake_case("URL"), "url");
        assert_eq!(snake_case("userID"), "user_id");
        assert_eq!(snake_case("itemID2"), "item_id2");
        assert_eq!(snake_case("pageURLPath"), "page_url_path");
    }
}
