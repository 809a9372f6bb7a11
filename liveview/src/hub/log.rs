//! Replay after reconnect: per-group sequence numbers, a bounded log of each
//! group's recent frames, and what a reconnecting client asked to resume.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Frame;

/// How much of each group's history is kept for clients that reconnect.
///
/// ```
/// use std::time::Duration;
///
/// let replay = liveview::layer::ReplayConfig::default()
///     .capacity(500)
///     .max_age(Duration::from_secs(120));
/// let live = liveview::LiveView::builder().replay(Some(replay)).build().unwrap();
/// # drop(live);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    pub(crate) capacity: usize,
    pub(crate) max_age: Duration,
}

impl Default for ReplayConfig {
    /// The last 256 frames of each group, at most 5 minutes old.
    fn default() -> Self {
        Self {
            capacity: 256,
            max_age: Duration::from_secs(300),
        }
    }
}

impl ReplayConfig {
    /// Frames kept per group.
    pub fn capacity(mut self, frames: usize) -> Self {
        self.capacity = frames.max(1);
        self
    }

    /// Oldest frame kept.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// The configured number of frames per group.
    pub fn frames(&self) -> usize {
        self.capacity
    }

    /// The configured age limit.
    pub fn age(&self) -> Duration {
        self.max_age
    }
}

/// What a group's log can give a client that last saw sequence `after`.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every frame after `after`, oldest first, each with its sequence
    /// (possibly none: the client missed nothing).
    Frames(Vec<(u64, Frame)>),
    /// Frames the client missed are no longer in the log (or the log
    /// restarted): the page must reload its live parts.
    Gap,
}

/// Decide what to replay from `entries` (sequence, frame), the log of a
/// group whose newest sequence is `newest` (0 when nothing was ever sent).
///
/// ```
/// use liveview::layer::{replay_from, Frame, Replay};
///
/// let log = vec![(4, Frame::from("d")), (5, Frame::from("e"))];
/// assert_eq!(replay_from(log.clone(), 5, 5), Replay::Frames(vec![]));
/// assert_eq!(replay_from(log.clone(), 5, 3), Replay::Frames(log.clone()));
/// assert_eq!(replay_from(log.clone(), 5, 4), Replay::Frames(log[1..].to_vec()));
/// assert_eq!(replay_from(log.clone(), 5, 2), Replay::Gap); // 3 is gone
/// assert_eq!(replay_from(log, 5, 9), Replay::Gap); // the server forgot
/// ```
pub fn replay_from(entries: Vec<(u64, Frame)>, newest: u64, after: u64) -> Replay {
    if after > newest {
        return Replay::Gap;
    }
    if after == newest {
        return Replay::Frames(Vec::new());
    }
    match entries.first() {
        Some((oldest, _)) if *oldest <= after + 1 => Replay::Frames(
            entries
                .into_iter()
                .filter(|(seq, _)| *seq > after)
                .collect(),
        ),
        _ => Replay::Gap,
    }
}

/// The frame with its group and sequence added: `{..., "seq": n,
/// "group": "g"}`. The original is one JSON object, so this is a splice,
/// not a second serialisation.
pub(crate) fn sequenced(frame: &Frame, group: &str, seq: u64) -> Frame {
    let text = frame.as_str();
    let Some(body) = text.strip_suffix('}') else {
        return frame.clone();
    };
    let group = serde_json::to_string(group).unwrap_or_default();
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    Frame::from(format!(r#"{body}{separator}"seq":{seq},"group":{group}}}"#))
}

/// A client's resume request: the last sequence it applied per group, from
/// the `resume` query parameter of the socket URL
/// (`?resume=broadcast:41,room_lobby:17`).
///
/// ```
/// let resume = liveview::layer::Resume::parse("broadcast:41,room_lobby:17,bad");
/// assert_eq!(resume.last("broadcast"), Some(41));
/// assert_eq!(resume.last("room_lobby"), Some(17));
/// assert_eq!(resume.last("room_other"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    last: HashMap<String, u64>,
}

impl Resume {
    /// Parse `group:seq` pairs separated by commas; malformed pairs are
    /// skipped.
    pub fn parse(text: &str) -> Self {
        let last = text
            .split(',')
            .filter_map(|pair| {
                let (group, seq) = pair.rsplit_once(':')?;
                Some((group.to_owned(), seq.parse().ok()?))
            })
            .take(16)
            .collect();
        Self { last }
    }

    /// The last sequence the client applied in `group`.
    pub fn last(&self, group: &str) -> Option<u64> {
        self.last.get(group).copied()
    }

    /// Whether the client asked for anything.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// The logs of this process, for layers that keep none across processes.
#[derive(Debug)]
pub(crate) struct Logs {
    config: ReplayConfig,
    groups: Mutex<HashMap<String, GroupLog>>,
}

#[derive(Debug, Default)]
struct GroupLog {
    newest: u64,
    entries: VecDeque<(u64, Instant, Frame)>,
}

impl GroupLog {
    fn prune(&mut self, config: &ReplayConfig, now: Instant) {
        while self.entries.len() > config.capacity {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|(_, at, _)| now.saturating_duration_since(*at) > config.max_age)
        {
            self.entries.pop_front();
        }
    }
}

impl Logs {
    pub(crate) fn new(config: ReplayConfig) -> Self {
        Self {
            config,
            groups: Mutex::default(),
        }
    }

    /// Assign the next sequence of `group` to `frame` and keep it. Runs
    /// `deliver` with the sequence while the log is locked, so frames reach
    /// members in sequence order.
    pub(crate) fn append<R>(
        &self,
        group: &str,
        frame: &Frame,
        deliver: impl FnOnce(u64) -> R,
    ) -> R {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let log = groups.entry(group.to_owned()).or_default();
        log.newest += 1;
        let seq = log.newest;
        log.entries.push_back((seq, now, frame.clone()));
        log.prune(&self.config, now);
        deliver(seq)
    }

    /// What to replay to a client that last applied `after` in `group`.
    pub(crate) fn replay(&self, group: &str, after: u64) -> Replay {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let Some(log) = groups.get_mut(group) else {
            return replay_from(Vec::new(), 0, after);
        };
        log.prune(&self.config, now);
        let entries = log
            .entries
            .iter()
            .map(|(seq, _, frame)| (*seq, frame.clone()))
            .collect();
        replay_from(entries, log.newest, after)
    }

    /// Drop logs whose every frame is older than the age limit and whose
    /// group has no member here (`live` says which groups have).
    pub(crate) fn sweep(&self, live: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.retain(|group, log| {
            log.prune(&self.config, now);
            live(group) || !log.entries.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_grow_per_group_and_the_log_is_bounded() {
        let logs = Logs::new(ReplayConfig::default().capacity(3));
        let mut seen = Vec::new();
        for i in 0..5 {
            logs.append("room_a", &Frame::from(format!("{{\"n\":{i}}}")), |seq| {
                seen.push(seq)
            });
        }
        logs.append("broadcast", &Frame::from("{}"), |seq| seen.push(seq));
        assert_eq!(seen, [1, 2, 3, 4, 5, 1]);
        // No gap: the client saw everything.
        assert_eq!(logs.replay("room_a", 5), Replay::Frames(vec![]));
        // A small gap: 4 and 5 are replayed, in order.
        match logs.replay("room_a", 3) {
            Replay::Frames(frames) => {
                assert_eq!(frames.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [4, 5])
            }
            Replay::Gap => panic!("4 and 5 are in the log"),
        }
        // Beyond the log: 2 was dropped (capacity 3 keeps 3, 4, 5).
        assert_eq!(logs.replay("room_a", 1), Replay::Gap);
        // A client from before a restart of the log.
        assert_eq!(logs.replay("room_b", 7), Replay::Gap);
        assert_eq!(logs.replay("room_b", 0), Replay::Frames(vec![]));
    }

    #[test]
    fn old_frames_age_out() {
        let logs = Logs::new(ReplayConfig::default().max_age(Duration::ZERO));
        logs.append("g", &Frame::from("{}"), |_| ());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(logs.replay("g", 0), Replay::Gap);
        logs.sweep(|_| false);
        assert_eq!(logs.replay("g", 0), Replay::Frames(vec![]));
    }

    #[test]
    fn sequence_keys_are_spliced_into_the_frame() {
        let frame = sequenced(&Frame::from(r##"{"target":"#n","html":"x"}"##), "room_a", 7);
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"target": "#n", "html": "x", "seq": 7, "group": "room_a"})
        );
        let empty = sequenced(&Frame::from("{}"), "g\"", 1);
        let value: serde_json::Value = serde_json::from_str(empty.as_str()).unwrap();
        assert_eq!(value, serde_json::json!({"seq": 1, "group": "g\""}));
    }
}
