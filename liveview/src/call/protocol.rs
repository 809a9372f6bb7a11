//! The wire protocol: parsing client frames, key normalisation, and the fixed
//! frames the server answers bad input with. See `PROTOCOL.md` in the
//! repository for the contract.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::call::content::keys::{normalize_data, normalize_form};
use crate::call::content::{Content, Fields};

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

#[derive(Deserialize)]
struct Incoming<'a> {
    function: String,
    #[serde(default)]
    form: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    #[serde(default)]
    lang: Option<String>,
    /// Checked to be a string, never used: the room is the connection's.
    /// Borrowed from the frame unless it has escapes, so the claim costs no
    /// allocation.
    #[serde(default, borrow, rename = "room")]
    _room: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, rename = "ref")]
    reference: Option<u64>,
}

/// Parse one text frame. `room` is the connection's room: the content's
/// room whatever the frame's `room` key says.
pub(crate) fn parse(text: &str, room: &str) -> Result<Call, InvalidMessage> {
    // serde would also read a struct from an array (`["echo"]`): only an
    // object is a message.
    if !text.trim_start().starts_with('{') {
        return Err(InvalidMessage("not a JSON object".to_owned()));
    }
    let incoming: Incoming =
        serde_json::from_str(text).map_err(|e| InvalidMessage(e.to_string()))?;
    if !is_valid_function(&incoming.function) {
        return Err(InvalidMessage(format!(
            "function name of {} bytes outside [A-Za-z0-9_.-]{{1,{MAX_FUNCTION_LEN}}}",
            incoming.function.len()
        )));
    }
    Ok(Call {
        content: Content {
            function: incoming.function,
            form: Fields::from(normalize_form(incoming.form.unwrap_or_default())).with_part("form"),
            data: Fields::from(normalize_data(incoming.data.unwrap_or_default())).with_part("data"),
            lang: incoming.lang.unwrap_or_default(),
            // Always the connection's own room: a frame's `room` key is
            // the client's claim, and a handler trusting it would bypass
            // signed rooms.
            room: room.to_owned(),
        },
        reference: incoming.reference,
    })
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
    format!(r#"{{"pong":{n}}}"#)
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
    let message = serde_json::to_string(message).unwrap_or_default();
    match reference {
        Some(r) => format!(r#"{{"error":{message},"ref":{r}}}"#),
        None => format!(r#"{{"error":{message}}}"#),
    }
}

/// `{"ref": n, "done": true}`: call `n` is finished.
pub(crate) fn done_frame(reference: u64) -> String {
    format!(r#"{{"ref":{reference},"done":true}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::content::keys::{normalize_keys, snake_case};
    use serde_json::json;

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
        assert_eq!(call.content.room, "lobby");
        let claimed = parse(r#"{"function":"f","room":"admins"}"#, "lobby").unwrap();
        assert_eq!(
            claimed.content.room, "lobby",
            "a frame cannot choose its room"
        );
        assert_eq!(call.content.lang, "");
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
                let once = normalize_data(map);
                fn no_capitals(value: &Value) -> bool {
                    match value {
                        Value::Object(m) => m.iter().all(|(k, v)| !k.bytes().any(|b| b.is_ascii_uppercase()) && no_capitals(v)),
                        Value::Array(items) => items.iter().all(no_capitals),
                        _ => true,
                    }
                }
                prop_assert!(no_capitals(&Value::Object(once.clone())));
                let twice = normalize_keys(once.clone());
                prop_assert_eq!(twice, once);
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
