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
///     .with_frames(500)
///     .with_max_age(Duration::from_secs(120));
/// assert_eq!((replay.frames(), replay.max_age()), (500, Duration::from_secs(120)));
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
    /// Keep the last `frames` frames of each group (at least 1).
    pub fn with_frames(mut self, frames: usize) -> Self {
        self.capacity = frames.max(1);
        self
    }

    /// Keep frames up to `age` old.
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How many frames of each group are kept.
    pub fn frames(&self) -> usize {
        self.capacity
    }

    /// How old the oldest frame kept may be.
    pub fn max_age(&self) -> Duration {
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

/// The frame with its group, sequence and epoch added: `{..., "seq": n,
/// "group": "g", "epoch": "e"}`. The original is one JSON object, so this is
/// a splice, not a second serialisation.
pub(crate) fn sequenced(frame: &Frame, group: &str, seq: u64, epoch: &str) -> Frame {
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
    // Epochs are `[A-Za-z0-9_-]`: nothing to escape.
    Frame::from(format!(
        r#"{body}{separator}"seq":{seq},"group":{group},"epoch":"{epoch}"}}"#
    ))
}

/// Whether `epoch` is a well-formed epoch: 1 to 32 of `[A-Za-z0-9_-]`.
///
/// ```
/// assert!(liveview::layer::is_valid_epoch("k3J_x-9"));
/// assert!(!liveview::layer::is_valid_epoch(""));
/// assert!(!liveview::layer::is_valid_epoch("a:b"));
/// assert!(!liveview::layer::is_valid_epoch(&"x".repeat(33)));
/// ```
pub fn is_valid_epoch(epoch: &str) -> bool {
    (1..=32).contains(&epoch.len())
        && epoch
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A fresh epoch: 16 random characters.
pub(crate) fn new_epoch() -> String {
    let mut epoch = uuid::Uuid::new_v4().simple().to_string();
    epoch.truncate(16);
    epoch
}

/// A client's resume request: per group, the last sequence it applied and
/// the epoch of that numbering, from the `resume` query parameter of the
/// socket URL (`?resume=broadcast:41:Zk3q,room_lobby:17`) or from the page's
/// position rendered by the template helpers.
///
/// Each entry is `GROUP:SEQ` or `GROUP:SEQ:EPOCH`; `SEQ` 0 means "from the
/// start of the group's numbering".
///
/// ```
/// let resume = liveview::layer::Resume::parse("broadcast:41:Zk3q,room_lobby:17,bad");
/// assert_eq!(resume.last("broadcast"), Some(41));
/// assert_eq!(resume.epoch("broadcast"), Some("Zk3q"));
/// assert_eq!(resume.last("room_lobby"), Some(17));
/// assert_eq!(resume.epoch("room_lobby"), None);
/// assert_eq!(resume.last("room_other"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The entries as sent, each read against a group's name when asked:
    /// a group name may itself contain `:`.
    entries: Vec<String>,
}

impl Resume {
    /// Parse entries separated by commas (at most 16); malformed ones are
    /// skipped when asked for.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .split(',')
            .filter(|entry| !entry.is_empty())
            .take(16)
            .map(str::to_owned)
            .collect();
        Self { entries }
    }

    /// The sequence and epoch the client gave for `group`.
    fn entry(&self, group: &str) -> Option<(u64, Option<&str>)> {
        self.entries.iter().find_map(|entry| {
            let rest = entry.strip_prefix(group)?.strip_prefix(':')?;
            match rest.split_once(':') {
                Some((seq, epoch)) if is_valid_epoch(epoch) => {
                    Some((seq.parse().ok()?, Some(epoch)))
                }
                Some(_) => None,
                None => Some((rest.parse().ok()?, None)),
            }
        })
    }

    /// The last sequence the client applied in `group`.
    pub fn last(&self, group: &str) -> Option<u64> {
        self.entry(group).map(|(seq, _)| seq)
    }

    /// The epoch of the client's numbering of `group`, if it said.
    pub fn epoch(&self, group: &str) -> Option<&str> {
        self.entry(group).and_then(|(_, epoch)| epoch)
    }

    /// Whether the client asked for anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where a group's numbering stands: its newest sequence (0 before the
/// first frame) and the epoch of the numbering, once there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPosition {
    /// The group.
    pub group: String,
    /// The newest sequence of the group.
    pub seq: u64,
    /// The numbering's epoch; `None` while the group has no numbering yet.
    pub epoch: Option<String>,
}

/// What a group's log answers a resuming client, with the epoch of the
/// numbering the frames belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// The epoch of the group's numbering now.
    pub epoch: String,
    /// The frames, or a gap.
    pub replay: Replay,
}

/// Decide what to replay to a client that gave `after` and `epoch` for a
/// group whose numbering is `current` (its epoch) and whose log is
/// `entries`, newest `newest`: a different epoch is a gap, whatever the
/// numbers say.
///
/// ```
/// use liveview::layer::{replay_in_epoch, Frame, Replay};
///
/// let log = vec![(1, Frame::from("a")), (2, Frame::from("b"))];
/// assert_eq!(replay_in_epoch(log.clone(), 2, "e1", 1, Some("e1")), Replay::Frames(log[1..].to_vec()));
/// assert_eq!(replay_in_epoch(log.clone(), 2, "e1", 1, None), Replay::Frames(log[1..].to_vec()));
/// assert_eq!(replay_in_epoch(log.clone(), 2, "e2", 1, Some("e1")), Replay::Gap);
/// // From the start of the numbering: everything, while the log starts at 1.
/// assert_eq!(replay_in_epoch(log.clone(), 2, "e1", 0, None), Replay::Frames(log));
/// ```
pub fn replay_in_epoch(
    entries: Vec<(u64, Frame)>,
    newest: u64,
    current: &str,
    after: u64,
    epoch: Option<&str>,
) -> Replay {
    match epoch {
        Some(epoch) if epoch != current => Replay::Gap,
        _ => replay_from(entries, newest, after),
    }
}

/// The logs of this process, for layers that keep none across processes.
#[derive(Debug)]
pub(crate) struct Logs {
    config: ReplayConfig,
    groups: Mutex<HashMap<String, GroupLog>>,
}

#[derive(Debug)]
struct GroupLog {
    /// Changes when the numbering restarts: a log forgotten and made again.
    epoch: std::sync::Arc<str>,
    newest: u64,
    entries: VecDeque<(u64, Instant, Frame)>,
}

impl Default for GroupLog {
    fn default() -> Self {
        Self {
            epoch: new_epoch().into(),
            newest: 0,
            entries: VecDeque::new(),
        }
    }
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
    /// `deliver` with the sequence and epoch while the log is locked, so
    /// frames reach members in sequence order.
    pub(crate) fn append<R>(
        &self,
        group: &str,
        frame: &Frame,
        deliver: impl FnOnce(u64, &std::sync::Arc<str>) -> R,
    ) -> R {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let log = groups.entry(group.to_owned()).or_default();
        log.newest += 1;
        let seq = log.newest;
        log.entries.push_back((seq, now, frame.clone()));
        log.prune(&self.config, now);
        deliver(seq, &log.epoch)
    }

    /// What to replay to a client that last applied `after` in `group`, in
    /// the numbering `epoch` (if it said).
    pub(crate) fn replay(&self, group: &str, after: u64, epoch: Option<&str>) -> Missed {
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        // A group never numbered here gets its numbering now, so that the
        // client is told the epoch its next frames come in.
        let log = groups.entry(group.to_owned()).or_default();
        log.prune(&self.config, now);
        let entries = log
            .entries
            .iter()
            .map(|(seq, _, frame)| (*seq, frame.clone()))
            .collect();
        Missed {
            epoch: log.epoch.to_string(),
            replay: replay_in_epoch(entries, log.newest, &log.epoch, after, epoch),
        }
    }

    /// Where `group`'s numbering stands here.
    pub(crate) fn position(&self, group: &str) -> GroupPosition {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let log = groups.entry(group.to_owned()).or_default();
        GroupPosition {
            group: group.to_owned(),
            seq: log.newest,
            epoch: Some(log.epoch.to_string()),
        }
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
        let logs = Logs::new(ReplayConfig::default().with_frames(3));
        let mut seen = Vec::new();
        for i in 0..5 {
            logs.append(
                "room_a",
                &Frame::from(format!("{{\"n\":{i}}}")),
                |seq, _| seen.push(seq),
            );
        }
        logs.append("broadcast", &Frame::from("{}"), |seq, _| seen.push(seq));
        assert_eq!(seen, [1, 2, 3, 4, 5, 1]);
        // No gap: the client saw everything.
        assert_eq!(
            logs.replay("room_a", 5, None).replay,
            Replay::Frames(vec![])
        );
        // A small gap: 4 and 5 are replayed, in order.
        match logs.replay("room_a", 3, None).replay {
            Replay::Frames(frames) => {
                assert_eq!(frames.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [4, 5])
            }
            Replay::Gap => panic!("4 and 5 are in the log"),
        }
        // Beyond the log: 2 was dropped (capacity 3 keeps 3, 4, 5).
        assert_eq!(logs.replay("room_a", 1, None).replay, Replay::Gap);
        // A client from before a restart of the log.
        assert_eq!(logs.replay("room_b", 7, None).replay, Replay::Gap);
        assert_eq!(
            logs.replay("room_b", 0, None).replay,
            Replay::Frames(vec![])
        );
    }

    #[test]
    fn a_forgotten_log_restarts_its_numbering_in_a_new_epoch() {
        let logs = Logs::new(ReplayConfig::default().with_max_age(Duration::ZERO));
        let first = logs.append("g", &Frame::from("{}"), |_, epoch| epoch.to_string());
        std::thread::sleep(Duration::from_millis(2));
        logs.sweep(|_| false);
        let second = logs.append("g", &Frame::from("{}"), |seq, epoch| {
            (seq, epoch.to_string())
        });
        assert_eq!(second.0, 1);
        assert_ne!(first, second.1);
        assert!(is_valid_epoch(&first) && is_valid_epoch(&second.1));
        // A client of the old numbering resyncs.
        assert_eq!(logs.replay("g", 1, Some(&first)).replay, Replay::Gap);
        assert_eq!(
            logs.replay("g", 1, Some(&second.1)).replay,
            Replay::Frames(vec![])
        );
    }

    #[test]
    fn resume_entries_with_and_without_epoch() {
        let resume = Resume::parse("a:b:3:E-1,room_x:0,broadcast:5:bad!,c:x");
        assert_eq!(
            (resume.last("a:b"), resume.epoch("a:b")),
            (Some(3), Some("E-1"))
        );
        assert_eq!(
            (resume.last("room_x"), resume.epoch("room_x")),
            (Some(0), None)
        );
        assert_eq!(resume.last("broadcast"), None);
        assert_eq!(resume.last("c"), None);
        assert_eq!(resume.last("a"), None);
    }

    #[test]
    fn old_frames_age_out() {
        let logs = Logs::new(ReplayConfig::default().with_max_age(Duration::ZERO));
        logs.append("g", &Frame::from("{}"), |_, _| ());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(logs.replay("g", 0, None).replay, Replay::Gap);
        logs.sweep(|_| false);
        assert_eq!(logs.replay("g", 0, None).replay, Replay::Frames(vec![]));
    }

    #[test]
    fn sequence_keys_are_spliced_into_the_frame() {
        let frame = sequenced(
            &Frame::from(r##"{"target":"#n","html":"x"}"##),
            "room_a",
            7,
            "e1",
        );
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"target": "#n", "html": "x", "seq": 7, "group": "room_a", "epoch": "e1"})
        );
        let empty = sequenced(&Frame::from("{}"), "g\"", 1, "e");
        let value: serde_json::Value = serde_json::from_str(empty.as_str()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"seq": 1, "group": "g\"", "epoch": "e"})
        );
    }
}
