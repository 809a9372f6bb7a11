//! Names on the NATS server: subjects of a group, the stream, the buckets
//! and their keys.
//!
//! A group name may hold any character, a NATS subject token only some: a
//! group becomes one token by keeping ASCII letters, digits, `-` and `_`,
//! and writing every other byte as `=XX` (hex). The same token is a valid
//! key of a key-value bucket.

use std::fmt::Write;

/// The subjects, stream and buckets of one layer prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Names {
    prefix: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Core subject that carries a group's frames to every process.
    pub(super) fn fan_subject(&self, group: &str) -> String {
        format!("{}.fan.{}", self.prefix, token(group))
    }

    /// Subject nobody listens on, that a process sends requests to: the
    /// server's answer (no responders) shows that it processed what the
    /// process sent before.
    pub(super) fn probe_subject(&self, node: &str) -> String {
        format!("{}.probe.{node}", self.prefix)
    }

    /// Subject of a group's messages in the log stream.
    pub(super) fn log_subject(&self, group: &str) -> String {
        format!("{}.log.{}", self.prefix, token(group))
    }

    /// Every subject of the log stream.
    pub(super) fn log_subjects(&self) -> String {
        format!("{}.log.>", self.prefix)
    }

    /// The stream of every group's recent frames.
    pub(super) fn stream(&self) -> String {
        format!("{}_log", self.prefix)
    }

    /// The bucket of who is in each room.
    pub(super) fn presence_bucket(&self) -> String {
        format!("{}_presence", self.prefix)
    }

    /// The bucket of the processes' heartbeats.
    pub(super) fn nodes_bucket(&self) -> String {
        format!("{}_nodes", self.prefix)
    }

    /// Key of a process's members of a room in the presence bucket.
    pub(super) fn presence_key(&self, room: &str, node: &str) -> String {
        format!("{}.{node}", token(room))
    }

    /// Filter of every key of a room, as stream subjects of the bucket.
    pub(super) fn presence_filter(&self, room: &str) -> String {
        format!("$KV.{}.{}.*", self.presence_bucket(), token(room))
    }
}

/// Whether `prefix` can name subjects, a stream and buckets.
pub(super) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One subject token (and bucket key) for any group or room name.
pub(super) fn token(name: &str) -> String {
    if name.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "={byte:02X}");
        }
    }
    out
}

/// The name a [`token`] was made from.
pub(super) fn untoken(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_is_one_token_and_back() {
        for name in [
            "broadcast",
            "room_lobby",
            "room_a.b c*>",
            "",
            "=",
            "r\u{e9}sum\u{e9}",
            "$KV",
        ] {
            let t = token(name);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        assert_eq!(token("room_a.b"), "room_a=2Eb");
        assert_eq!(untoken("=zz"), None);
        assert_eq!(untoken("a="), None);
    }

    #[test]
    fn subjects_streams_and_buckets() {
        let names = Names::new("shop");
        assert_eq!(names.fan_subject("room_x.y"), "shop.fan.room_x=2Ey");
        assert_eq!(names.log_subject("broadcast"), "shop.log.broadcast");
        assert_eq!(names.log_subjects(), "shop.log.>");
        assert_eq!(names.stream(), "shop_log");
        assert_eq!(names.presence_bucket(), "shop_presence");
        assert_eq!(names.nodes_bucket(), "shop_nodes");
        assert_eq!(names.presence_key("lobby", "n1"), "lobby.n1");
        assert_eq!(names.presence_filter("lobby"), "$KV.shop_presence.lobby.*");
        assert!(valid_prefix("liveview") && valid_prefix("a-b_1"));
        assert!(!valid_prefix("") && !valid_prefix("a.b") && !valid_prefix("a b"));
    }
}
