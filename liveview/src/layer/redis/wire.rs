//! The format of the messages the layer publishes on the group channels.
//!
//! ```text
//! lv1 <node id> <publish time, Unix ms>\n<frame>                  unnumbered
//! lv1 <node id> <publish time, Unix ms> <seq> <epoch>\n<frame>    numbered by the shared log
//! ```
//!
//! The sequence and epoch are more header words rather than a new format:
//! processes that predate them ignore words they do not know, so a rolling
//! deploy keeps carrying frames both ways.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First word of every message; a format that older processes must not
/// read changes it.
pub(super) const MAGIC: &str = "lv1";

/// A message as it travels through Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Envelope<'a> {
    /// Id of the publishing process.
    pub node: &'a str,
    /// Publish time, milliseconds since the Unix epoch.
    pub sent_ms: u64,
    /// The frame's number in its group's shared log, if it has one.
    pub seq: Option<u64>,
    /// The epoch of that numbering (absent from processes that predate
    /// epochs).
    pub epoch: Option<&'a str>,
    /// The frame, as sent to the browser.
    pub frame: &'a str,
}

/// Why a message from Redis was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// No header line, or not ours.
    NotOurs,
    /// Our magic, but a header that does not parse.
    BadHeader,
    /// The frame is not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::NotOurs => "not a LiveView message",
            DecodeError::BadHeader => "malformed header",
            DecodeError::NotUtf8 => "frame is not UTF-8",
        })
    }
}

/// The header of a message up to, and without, its sequence: the shared
/// log's script appends `<seq> <epoch>\n<frame>` once the number is known.
pub(super) fn numbered_header(node: &str, sent_ms: u64) -> String {
    format!("{MAGIC} {node} {sent_ms} ")
}

/// An unnumbered message.
pub(super) fn encode(node: &str, sent_ms: u64, frame: &str) -> Vec<u8> {
    let header = format!("{MAGIC} {node} {sent_ms}\n");
    let mut out = Vec::with_capacity(header.len() + frame.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(frame.as_bytes());
    out
}

pub(super) fn decode(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let newline = payload
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DecodeError::NotOurs)?;
    let header = std::str::from_utf8(&payload[..newline]).map_err(|_| DecodeError::NotOurs)?;
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(DecodeError::NotOurs);
    }
    let node = words
        .next()
        .filter(|n| !n.is_empty())
        .ok_or(DecodeError::BadHeader)?;
    let sent_ms = words
        .next()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(DecodeError::BadHeader)?;
    // A number is the sequence; later versions of the format may add other
    // words: ignore them.
    let seq = words.next().and_then(|s| s.parse::<u64>().ok());
    let epoch = words
        .next()
        .filter(|_| seq.is_some())
        .filter(|e| crate::layer::is_valid_epoch(e));
    let frame = std::str::from_utf8(&payload[newline + 1..]).map_err(|_| DecodeError::NotUtf8)?;
    Ok(Envelope {
        node,
        sent_ms,
        seq,
        epoch,
        frame,
    })
}

/// Whether a message sent at `sent_ms` is too old at `now_ms`. A message from
/// the future (clock skew) is not.
pub(super) fn is_expired(sent_ms: u64, now_ms: u64, expiry: Duration) -> bool {
    let age = u128::from(now_ms.saturating_sub(sent_ms));
    age > expiry.as_millis()
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let frame =
            "{\"target\":\"#a\",\"html\":\"<p>line 1\\nline 2 \u{e9}\u{1f600}</p>\"}\nraw newline";
        let payload = encode("node1", 1_700_000_000_123, frame);
        assert!(payload.starts_with(b"lv1 node1 1700000000123\n"));
        let envelope = decode(&payload).unwrap();
        assert_eq!(
            envelope,
            Envelope {
                node: "node1",
                sent_ms: 1_700_000_000_123,
                seq: None,
                epoch: None,
                frame,
            }
        );
    }

    #[test]
    fn numbered_payload_round_trips() {
        // What the shared log's script publishes.
        let payload = format!(
            "{}{} {}\n{}",
            numbered_header("n1", 42),
            17,
            "Ep0",
            "{\"a\":1}"
        );
        assert_eq!(payload, "lv1 n1 42 17 Ep0\n{\"a\":1}");
        let envelope = decode(payload.as_bytes()).unwrap();
        assert_eq!(envelope.epoch, Some("Ep0"));
        assert_eq!(
            (
                envelope.node,
                envelope.sent_ms,
                envelope.seq,
                envelope.frame
            ),
            ("n1", 42, Some(17), "{\"a\":1}")
        );
    }

    #[test]
    fn empty_frame_round_trips() {
        let payload = encode("n", 0, "");
        assert_eq!(decode(&payload).unwrap().frame, "");
    }

    #[test]
    fn foreign_and_broken_payloads_are_rejected() {
        assert_eq!(decode(b""), Err(DecodeError::NotOurs));
        assert_eq!(decode(b"{\"html\":\"x\"}"), Err(DecodeError::NotOurs));
        assert_eq!(decode(b"lv2 node 1\nframe"), Err(DecodeError::NotOurs));
        assert_eq!(decode(b"\xff\xfe\nframe"), Err(DecodeError::NotOurs));
        assert_eq!(decode(b"lv1\nframe"), Err(DecodeError::BadHeader));
        assert_eq!(decode(b"lv1  1\nframe"), Err(DecodeError::BadHeader));
        assert_eq!(decode(b"lv1 node\nframe"), Err(DecodeError::BadHeader));
        assert_eq!(decode(b"lv1 node soon\nframe"), Err(DecodeError::BadHeader));
        assert_eq!(decode(b"lv1 node -1\nframe"), Err(DecodeError::BadHeader));
        assert_eq!(decode(b"lv1 node 1\n\xff"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn later_header_words_are_ignored() {
        let envelope = decode(b"lv1 node 5 future-field\n{}").unwrap();
        assert_eq!(
            (
                envelope.node,
                envelope.sent_ms,
                envelope.seq,
                envelope.frame
            ),
            ("node", 5, None, "{}")
        );
        let envelope = decode(b"lv1 node 5 9 future-field\n{}").unwrap();
        assert_eq!(
            (envelope.seq, envelope.epoch),
            (Some(9), Some("future-field"))
        );
        let envelope = decode(b"lv1 node 5 9 not:an:epoch more\n{}").unwrap();
        assert_eq!((envelope.seq, envelope.epoch), (Some(9), None));
    }

    #[test]
    fn expiry_counts_from_the_publish_time() {
        let expiry = Duration::from_secs(10);
        let sent = 1_000_000;
        assert!(!is_expired(sent, sent, expiry));
        assert!(!is_expired(sent, sent + 10_000, expiry));
        assert!(is_expired(sent, sent + 10_001, expiry));
        assert!(is_expired(0, u64::MAX, expiry));
        // A clock behind the publisher's never makes a frame expire.
        assert!(!is_expired(sent + 60_000, sent, expiry));
        assert!(!is_expired(sent, sent + 1, Duration::MAX));
    }

    #[test]
    fn decoded_publish_time_drives_expiry() {
        let payload = encode("n", now_ms() - 20_000, "{}");
        let envelope = decode(&payload).unwrap();
        assert!(is_expired(
            envelope.sent_ms,
            now_ms(),
            Duration::from_secs(10)
        ));
        assert!(!is_expired(
            envelope.sent_ms,
            now_ms(),
            Duration::from_secs(60)
        ));
    }
}
