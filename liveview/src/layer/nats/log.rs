//! Each group's numbered log in the JetStream stream: appending a frame
//! with the next number, reading what a client or this process missed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::{self, DirectGetErrorKind, DiscardPolicy, StorageType};

use super::{
    Conn, H_EPOCH, H_NODE, H_SEQ, H_TIME, Inner, PUBLISH_TIMEOUT, REQUEST_TIMEOUT, bytes_of, now_ms,
};
use crate::layer::sequencer::Gap;
use crate::layer::{
    Frame, GroupPosition, LayerError, Missed, Replay, ReplayConfig, replay_in_epoch,
};

/// Bounds of how long a silent group's log is kept.
const MIN_LOG_AGE: Duration = Duration::from_secs(60);
const MAX_LOG_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A group's newest log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tail {
    /// Its number in the group.
    pub seq: u64,
    pub epoch: String,
    /// Its sequence in the stream.
    pub stream_seq: u64,
}

/// One frame of a group's log.
struct Logged {
    seq: u64,
    epoch: String,
    frame: Frame,
    stream_seq: u64,
    age: Duration,
}

/// How long a silent group's log is kept: four times the replay age, so
/// the numbering outlives quiet spells (it restarts, with a new epoch,
/// only when the whole log aged out).
fn log_age(config: &ReplayConfig) -> Duration {
    config
        .max_age()
        .checked_mul(4)
        .unwrap_or(MAX_LOG_AGE)
        .clamp(MIN_LOG_AGE, MAX_LOG_AGE)
}

fn parse(message: &StreamMessage) -> Option<Logged> {
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    let seq = header(H_SEQ)?.parse().ok()?;
    let epoch = header(H_EPOCH)?;
    let frame = Frame::from(std::str::from_utf8(&message.payload).ok()?);
    let logged_ns = message.time.unix_timestamp_nanos();
    let now_ns = i128::from(now_ms()) * 1_000_000;
    let age = Duration::from_nanos(u64::try_from(now_ns - logged_ns).unwrap_or(0));
    Some(Logged {
        seq,
        epoch,
        frame,
        stream_seq: message.sequence,
        age,
    })
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

impl Conn {
    /// The log stream, created the first time it is needed.
    async fn log_stream(
        &self,
        name: String,
        subjects: String,
        config: &ReplayConfig,
    ) -> Result<stream::Stream, LayerError> {
        let stream = self
            .stream
            .get_or_try_init(|| async {
                let settings = stream::Config {
                    name,
                    subjects: vec![subjects],
                    max_messages_per_subject: i64::try_from(config.frames()).unwrap_or(i64::MAX),
                    max_age: log_age(config),
                    storage: StorageType::File,
                    discard: DiscardPolicy::Old,
                    allow_direct: true,
                    ..Default::default()
                };
                self.js
                    .get_or_create_stream(settings)
                    .await
                    .map_err(|err| LayerError::with_source("nats: cannot open the log stream", err))
            })
            .await?;
        Ok(stream.clone())
    }
}

impl Inner {
    fn replay_config(&self) -> Result<ReplayConfig, LayerError> {
        self.replay
            .get()
            .ok_or_else(|| LayerError::new("nats: this layer keeps no log"))
    }

    async fn stream(&self) -> Result<stream::Stream, LayerError> {
        let config = self.replay_config()?;
        let conn = self.conn()?;
        conn.log_stream(self.names.stream(), self.names.log_subjects(), &config)
            .await
    }

    /// The group's newest log message; `None` when its log is empty.
    async fn read_tail(
        &self,
        stream: &stream::Stream,
        group: &str,
    ) -> Result<Option<Tail>, LayerError> {
        let read = stream.direct_get_last_for_subject(self.names.log_subject(group));
        match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
            Ok(Ok(message)) => Ok(parse(&message).map(|logged| Tail {
                seq: logged.seq,
                epoch: logged.epoch,
                stream_seq: logged.stream_seq,
            })),
            Ok(Err(err)) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Ok(Err(err)) => Err(LayerError::with_source("nats: reading the log failed", err)),
            Err(_) => Err(LayerError::new("nats: reading the log timed out")),
        }
    }

    fn tail_lock(&self, group: &str) -> Arc<tokio::sync::Mutex<Option<Tail>>> {
        let mut tails = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tails.entry(group.to_owned()).or_default().clone()
    }

    /// Append `frame` to `group`'s log with the next number, send it to
    /// the other processes, and deliver it here at its place.
    pub(super) async fn publish_numbered(
        &self,
        group: &str,
        frame: &Frame,
    ) -> Result<(u64, String), LayerError> {
        if !self.connected.load(Ordering::Acquire) {
            return Err(LayerError::new("nats: not connected"));
        }
        let work = async {
            let stream = self.stream().await?;
            let conn = self.conn()?;
            let lock = self.tail_lock(group);
            let mut tail = lock.lock().await;
            let subject = self.names.log_subject(group);
            loop {
                let known = match tail.clone() {
                    Some(known) => Some(known),
                    None => self.read_tail(&stream, group).await?,
                };
                let (seq, epoch, expected) = match &known {
                    Some(t) => (t.seq + 1, t.epoch.clone(), t.stream_seq),
                    None => (1, new_epoch(), 0),
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(H_NODE, self.node_id.as_str());
                headers.insert(H_SEQ, seq.to_string().as_str());
                headers.insert(H_EPOCH, epoch.as_str());
                headers.insert(H_TIME, now_ms().to_string().as_str());
                let message = PublishMessage::build()
                    .payload(bytes_of(frame))
                    .headers(headers.clone())
                    .expected_last_subject_sequence(expected);
                let ack = match conn.js.send_publish(subject.clone(), message).await {
                    Ok(ack) => ack.await,
                    Err(err) => Err(err),
                };
                match ack {
                    Ok(ack) => {
                        *tail = Some(Tail {
                            seq,
                            epoch: epoch.clone(),
                            stream_seq: ack.sequence,
                        });
                        conn.client
                            .publish_with_headers(
                                self.names.fan_subject(group),
                                headers,
                                bytes_of(frame),
                            )
                            .await
                            .map_err(|err| {
                                LayerError::with_source("nats: fan-out publish failed", err)
                            })?;
                        self.deliver_own(group, &epoch, seq, frame);
                        return Ok((seq, epoch));
                    }
                    Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
                        // Another process appended first: read again.
                        *tail = None;
                    }
                    Err(err) => {
                        *tail = None;
                        return Err(LayerError::with_source(
                            "nats: appending to the log failed",
                            err,
                        ));
                    }
                }
            }
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(LayerError::new("nats: numbering a frame timed out")),
        }
    }

    fn deliver_own(&self, group: &str, epoch: &str, seq: u64, frame: &Frame) {
        let Some(local) = self.local() else { return };
        self.sequencer
            .offer(group, epoch, seq, frame, &mut |seq, epoch, frame| {
                local.deliver_sequenced(group, frame, seq, epoch);
            });
    }

    /// Frames of `group` after `after` (in `epoch`, if given) from the log,
    /// oldest first, at most `limit`; reading starts at stream sequence
    /// `from_stream` when known.
    async fn read_after(
        &self,
        stream: &stream::Stream,
        group: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Logged>, LayerError> {
        let subject = self.names.log_subject(group);
        let mut out = Vec::new();
        let mut position: Option<u64> = None;
        while out.len() < limit {
            let read = stream.direct_get_next_for_subject(subject.clone(), position);
            let message = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
                Ok(Ok(message)) => message,
                Ok(Err(err)) if err.kind() == DirectGetErrorKind::NotFound => break,
                Ok(Err(err)) => {
                    return Err(LayerError::with_source("nats: reading the log failed", err));
                }
                Err(_) => return Err(LayerError::new("nats: reading the log timed out")),
            };
            position = Some(message.sequence + 1);
            if let Some(logged) = parse(&message)
                && logged.seq > after
            {
                out.push(logged);
            }
        }
        Ok(out)
    }

    /// Start or resume `group`'s delivery from its log: on a first
    /// subscription, and after a reconnection (frames published meanwhile
    /// are delivered from the log).
    pub(super) async fn catch_up(&self, group: &str) {
        let Some(local) = self.local() else { return };
        let Ok(stream) = self.stream().await else {
            return;
        };
        let tail = match self.read_tail(&stream, group).await {
            Ok(tail) => tail,
            Err(err) => {
                tracing::debug!(group, error = %err, "nats layer: cannot read a group's log");
                return;
            }
        };
        let mut deliver = |seq: u64, epoch: &str, frame: &Frame| {
            local.deliver_sequenced(group, frame, seq, epoch);
        };
        if !self.sequencer.started(group) {
            self.sequencer.start(
                group,
                tail.as_ref().map(|t| (t.epoch.as_str(), t.seq)),
                &mut deliver,
            );
            return;
        }
        let Some(tail) = tail else { return };
        // In another epoch than the one delivered here (the numbering
        // restarted while this process was away): from its first frame.
        let next = self.sequencer.next(group, &tail.epoch).unwrap_or(1);
        if next <= tail.seq {
            let limit = usize::try_from(tail.seq - next + 1).unwrap_or(usize::MAX);
            if let Ok(missed) = self.read_after(&stream, group, next - 1, limit).await {
                for logged in missed {
                    self.sequencer.offer(
                        group,
                        &logged.epoch,
                        logged.seq,
                        &logged.frame,
                        &mut deliver,
                    );
                }
            }
        }
    }

    /// Fetch what a held frame waits for; when the log no longer has it,
    /// stop waiting.
    pub(super) async fn repair(&self, gap: &Gap) {
        let Some(local) = self.local() else { return };
        let mut deliver = |seq: u64, epoch: &str, frame: &Frame| {
            local.deliver_sequenced(&gap.group, frame, seq, epoch);
        };
        let missing = usize::try_from(gap.until - gap.from).unwrap_or(usize::MAX);
        let found = match self.stream().await {
            Ok(stream) => self
                .read_after(&stream, &gap.group, gap.from - 1, missing)
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let mut filled = false;
        for logged in found {
            if logged.epoch == gap.epoch && logged.seq == gap.from {
                filled = true;
            }
            self.sequencer.offer(
                &gap.group,
                &logged.epoch,
                logged.seq,
                &logged.frame,
                &mut deliver,
            );
        }
        if !filled && self.connected.load(Ordering::Acquire) {
            tracing::debug!(
                group = gap.group,
                from = gap.from,
                "nats layer: frames no longer in the log"
            );
            self.sequencer.skip_gap(&gap.group, &mut deliver);
        }
    }

    /// What `group`'s log holds after `after` (of `epoch`, when the
    /// client said which), for a client that reconnects; asked once the
    /// group is subscribed here (see
    /// [`Subscriptions::before_log_read`](crate::layer::subscriptions::Subscriptions::before_log_read)).
    pub(super) async fn replay(
        &self,
        group: &str,
        after: u64,
        epoch: Option<&str>,
    ) -> Result<Missed, LayerError> {
        let config = self.replay_config()?;
        let stream = self.stream().await?;
        let Some(tail) = self.read_tail(&stream, group).await? else {
            // No numbering at all: only a client that saw nothing is in step.
            let replay = if after == 0 {
                Replay::Frames(Vec::new())
            } else {
                Replay::Gap
            };
            return Ok(Missed {
                epoch: String::new(),
                replay,
            });
        };
        let missed = tail.seq.saturating_sub(after);
        let replay = if epoch.is_some_and(|e| e != tail.epoch) {
            Replay::Gap
        } else if missed > u64::try_from(config.frames()).unwrap_or(u64::MAX) {
            // More than the log keeps, whatever the stream still holds.
            Replay::Gap
        } else {
            let entries: Vec<(u64, Frame)> = if missed == 0 {
                Vec::new()
            } else {
                self.read_after(&stream, group, after, config.frames())
                    .await?
                    .into_iter()
                    .filter(|l| {
                        l.epoch == tail.epoch && l.seq <= tail.seq && l.age <= config.max_age()
                    })
                    .map(|l| (l.seq, l.frame))
                    .collect()
            };
            replay_in_epoch(entries, tail.seq, &tail.epoch, after, epoch)
        };
        Ok(Missed {
            epoch: tail.epoch,
            replay,
        })
    }

    /// Where `group`'s numbering stands.
    pub(super) async fn position(&self, group: &str) -> Result<GroupPosition, LayerError> {
        let stream = self.stream().await?;
        let tail = self.read_tail(&stream, group).await?;
        Ok(GroupPosition {
            group: group.to_owned(),
            seq: tail.as_ref().map_or(0, |t| t.seq),
            epoch: tail.map(|t| t.epoch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_logs_are_kept_a_few_ages() {
        let config = ReplayConfig::default();
        assert_eq!(log_age(&config), Duration::from_secs(1200));
        assert_eq!(
            log_age(&config.with_max_age(Duration::from_secs(1))),
            MIN_LOG_AGE
        );
        assert_eq!(log_age(&config.with_max_age(Duration::MAX)), MAX_LOG_AGE);
        assert_eq!(new_epoch().len(), 16);
        assert_ne!(new_epoch(), new_epoch());
    }
}
