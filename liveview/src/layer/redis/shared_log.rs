//! The log of each group's recent frames, kept in Redis and shared by every
//! process: numbering a frame, logging it and publishing it in one script,
//! and reading what a reconnecting client (or a lagging subscriber) missed.
//!
//! Keys of a group `G` (with the layer's prefix):
//!
//! - `<prefix>seq:G`, a counter: the sequence of the group's newest frame;
//! - `<prefix>epoch:G`, the epoch of the numbering: it changes whenever the
//!   numbering starts again at 1 (the keys expired, Redis restarted empty or
//!   was flushed), so that clients tell a new frame 3 from an old one;
//! - `<prefix>log:G`, a stream of the recent frames, capped with
//!   `XADD … MAXLEN ~ <capacity>`; each entry's id is `<seq>-0`, with the
//!   frame in field `f` and the Redis time it was logged at (Unix ms) in `t`.
//!
//! They expire when the group stays silent for four times the age limit of
//! the log (at least a minute): every publish pushes the expiry back, and so
//! does every process that has members in the group, periodically.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisResult, Script};

use super::wire::{self, now_ms};
use super::{COMMAND_TIMEOUT, Inner};
use crate::hub::log::new_epoch;
use crate::layer::{
    Frame, GroupPosition, LayerError, Missed, Replay, ReplayConfig, replay_in_epoch,
};

/// Time allowed for numbering and publishing a frame when the subscriber is
/// connected.
const SEQUENCED_TIMEOUT: Duration = Duration::from_secs(1);
/// The same while the subscriber is disconnected: Redis is probably down,
/// so local members should not wait for the attempt.
const SEQUENCED_TIMEOUT_DISCONNECTED: Duration = Duration::from_millis(250);
/// Longest wait of a publisher for its frame to reach this process's
/// members through the subscription (it returns then; the frame still
/// arrives, in order).
const LOCAL_DELIVERY_WAIT: Duration = Duration::from_secs(1);
/// Bounds of the expiry of a group's keys.
const MIN_KEY_TTL: Duration = Duration::from_secs(60);
const MAX_KEY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Groups per pipeline when pushing back the expiry of their keys.
const REFRESH_CHUNK: usize = 500;

/// Numbers, logs and publishes one frame.
///
/// `KEYS`: the group's counter, log and epoch. `ARGV`: the channel, the
/// message header up to the sequence, the frame, the log's capacity, the
/// keys' lifetime in ms, and an epoch for a numbering that starts now.
/// Returns the sequence and the epoch.
///
/// When the counter is behind the log (it was lost while the log was not),
/// the numbering continues after the log's newest entry instead of reusing
/// numbers that clients may have seen, in the same epoch.
const PUBLISH_SCRIPT: &str = r"
local function append(seq, now)
  return redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'f', ARGV[3], 't', now)
end
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local epoch = redis.call('GET', KEYS[3])
local seq = redis.call('INCR', KEYS[1])
local added = append(seq, now)
if type(added) == 'table' and added.err then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not newest then
    return added
  end
  seq = tonumber(string.match(newest[1], '^%d+')) + 1
  redis.call('SET', KEYS[1], seq)
  added = append(seq, now)
  if type(added) == 'table' and added.err then
    return added
  end
end
if seq == 1 or not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[3], epoch)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. seq .. ' ' .. epoch .. '\n' .. ARGV[3])
return {seq, epoch}
";

/// Reads a group's log after a sequence.
///
/// `KEYS`: the group's counter, log and epoch. `ARGV`: the first entry id
/// wanted and the most entries to return. Returns the newest sequence, the
/// epoch (empty when there is none), the Redis time (Unix ms) and the
/// entries.
const READ_SCRIPT: &str = r"
local newest = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[3]) or ''
local entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
local time = redis.call('TIME')
return {newest, epoch, time[1] * 1000 + math.floor(time[2] / 1000), entries}
";

/// Run `script` with `EVALSHA` (loaded with `SCRIPT LOAD` and tried again
/// when the server does not know it: a restart, a failover, a flush).
async fn invoke<T: FromRedisValue>(
    script: &Script,
    connection: &mut ConnectionManager,
    keys: &[&str],
    args: &[&[u8]],
) -> RedisResult<T> {
    let mut call = script.prepare_invoke();
    for key in keys {
        call.key(*key);
    }
    for arg in args {
        call.arg(*arg);
    }
    call.invoke_async(connection).await
}

/// The scripts of the shared log.
pub(super) struct Scripts {
    publish: Script,
    read: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            publish: Script::new(PUBLISH_SCRIPT),
            read: Script::new(READ_SCRIPT),
        }
    }
}

/// How long a silent group's counter and log are kept.
fn key_ttl(config: &ReplayConfig) -> Duration {
    config
        .max_age()
        .checked_mul(4)
        .unwrap_or(MAX_KEY_TTL)
        .clamp(MIN_KEY_TTL, MAX_KEY_TTL)
}

/// One entry of a group's log, as `XRANGE` gives it.
type Entry = (String, Vec<Vec<u8>>);

/// The entries younger than `max_age` at `now_ms` (Redis time), with their
/// sequence, oldest first. Entries that do not parse are left out.
fn fresh_entries(entries: Vec<Entry>, now_ms: u64, max_age: Duration) -> Vec<(u64, Frame)> {
    entries
        .into_iter()
        .filter_map(|(id, fields)| {
            let seq = id.split_once('-').map_or(id.as_str(), |(seq, _)| seq);
            let seq = seq.parse::<u64>().ok()?;
            let mut frame = None;
            let mut logged_ms = None;
            let mut pairs = fields.into_iter();
            while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
                match name.as_slice() {
                    b"f" => frame = String::from_utf8(value).ok(),
                    b"t" => {
                        logged_ms = std::str::from_utf8(&value)
                            .ok()
                            .and_then(|t| t.parse::<u64>().ok())
                    }
                    _ => {}
                }
            }
            let age = u128::from(now_ms.saturating_sub(logged_ms?));
            let frame = frame?;
            (age <= max_age.as_millis()).then(|| (seq, Frame::from(frame)))
        })
        .collect()
}

/// What a read of a group's log found.
pub(super) struct LogRead {
    pub newest: u64,
    /// Empty when the group has no numbering.
    pub epoch: String,
    /// Fresh entries after the requested sequence, oldest first.
    pub entries: Vec<(u64, Frame)>,
}

impl Inner {
    fn replay_config(&self) -> Result<ReplayConfig, LayerError> {
        self.replay
            .get()
            .ok_or_else(|| LayerError::new("redis: this layer keeps no shared log"))
    }

    fn group_keys(&self, group: &str) -> [String; 3] {
        [
            self.seq_key(group),
            self.log_key(group),
            self.epoch_key(group),
        ]
    }

    /// Number `frame` in `group`'s shared log, log it and publish it. The
    /// subscriber brings it back to this process's members in the group's
    /// order; this waits (briefly) until it has, so that a caller that sends
    /// to its own connection next is not overtaken by its own broadcast.
    pub(super) async fn publish_sequenced(
        &self,
        group: &str,
        frame: &Frame,
    ) -> Result<(u64, String), LayerError> {
        let config = self.replay_config()?;
        let Ok(_permit) = self.pending_publishes.try_acquire() else {
            return Err(LayerError::new(format!(
                "redis: {} publishes already pending",
                self.max_pending_publishes
            )));
        };
        let mut publisher = self.publisher()?;
        let limit = if self.connected.load(std::sync::atomic::Ordering::Acquire) {
            SEQUENCED_TIMEOUT
        } else {
            SEQUENCED_TIMEOUT_DISCONNECTED
        };
        let keys = self.group_keys(group);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let channel = self.channel(group);
        let header = wire::numbered_header(&self.node_id, now_ms());
        let capacity = config.frames().to_string();
        let ttl = key_ttl(&config).as_millis().to_string();
        let candidate = new_epoch();
        let args = [
            channel.as_bytes(),
            header.as_bytes(),
            frame.as_str().as_bytes(),
            capacity.as_bytes(),
            ttl.as_bytes(),
            candidate.as_bytes(),
        ];
        let run = invoke::<(u64, String)>(
            &self.scripts.publish,
            &mut publisher.connection,
            &keys,
            &args,
        );
        let (seq, epoch) = match tokio::time::timeout(limit, run).await {
            Ok(Ok(numbered)) => numbered,
            Ok(Err(err)) => {
                return Err(LayerError::with_source(
                    format!("redis: logging a frame on {} failed", publisher.address),
                    err,
                ));
            }
            Err(_) => {
                return Err(LayerError::new(format!(
                    "redis: logging a frame on {} timed out",
                    publisher.address
                )));
            }
        };
        if self.subscriptions.is_confirmed(group) {
            let progress = self.delivery.progress(group);
            let _ = tokio::time::timeout(LOCAL_DELIVERY_WAIT, progress.reached(seq, &epoch)).await;
        }
        Ok((seq, epoch))
    }

    /// Read `group`'s log after `after`: the newest sequence, the epoch and
    /// the fresh entries (at most the log's capacity).
    pub(super) async fn read_log(&self, group: &str, after: u64) -> Result<LogRead, LayerError> {
        let config = self.replay_config()?;
        let mut publisher = self.publisher()?;
        let keys = self.group_keys(group);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let first = format!("{}-0", after.saturating_add(1));
        let count = config.frames().to_string();
        let args = [first.as_bytes(), count.as_bytes()];
        let run = invoke::<(u64, String, u64, Vec<Entry>)>(
            &self.scripts.read,
            &mut publisher.connection,
            &keys,
            &args,
        );
        match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
            Ok(Ok((newest, epoch, redis_now, entries))) => Ok(LogRead {
                newest,
                epoch,
                entries: fresh_entries(entries, redis_now, config.max_age()),
            }),
            Ok(Err(err)) => Err(LayerError::with_source(
                format!("redis: reading the log on {} failed", publisher.address),
                err,
            )),
            Err(_) => Err(LayerError::new(format!(
                "redis: reading the log on {} timed out",
                publisher.address
            ))),
        }
    }

    /// What `group`'s shared log holds after `after` of `epoch`, for a
    /// reconnecting client; asked once the group is subscribed here (see
    /// [`Subscriptions::before_log_read`](crate::layer::subscriptions::Subscriptions::before_log_read)).
    pub(super) async fn replay(
        &self,
        group: &str,
        after: u64,
        epoch: Option<&str>,
    ) -> Result<Missed, LayerError> {
        let config = self.replay_config()?;
        let read = self.read_log(group, after).await?;
        let missed = read.newest.saturating_sub(after);
        let replay = if read.epoch.is_empty() {
            // No numbering at all: only a client that saw nothing is in step.
            if after == 0 && read.newest == 0 {
                Replay::Frames(Vec::new())
            } else {
                Replay::Gap
            }
        } else if missed > u64::try_from(config.frames()).unwrap_or(u64::MAX) {
            // More than the log keeps, whatever the stream still holds.
            Replay::Gap
        } else {
            replay_in_epoch(read.entries, read.newest, &read.epoch, after, epoch)
        };
        Ok(Missed {
            epoch: read.epoch,
            replay,
        })
    }

    /// Where `group`'s numbering stands.
    pub(super) async fn position(&self, group: &str) -> Result<GroupPosition, LayerError> {
        self.replay_config()?;
        let mut publisher = self.publisher()?;
        let mut command = redis::cmd("MGET");
        command.arg(self.seq_key(group)).arg(self.epoch_key(group));
        let command =
            command.query_async::<(Option<u64>, Option<String>)>(&mut publisher.connection);
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok((seq, epoch))) => Ok(match (seq, epoch) {
                (Some(seq), Some(epoch)) => GroupPosition {
                    group: group.to_owned(),
                    seq,
                    epoch: Some(epoch),
                },
                // No numbering (or one from before epochs): from its start.
                _ => GroupPosition {
                    group: group.to_owned(),
                    seq: 0,
                    epoch: None,
                },
            }),
            Ok(Err(err)) => Err(LayerError::with_source(
                "redis: reading a position failed",
                err,
            )),
            Err(_) => Err(LayerError::new("redis: reading a position timed out")),
        }
    }

    /// Push back the expiry of the keys of `groups` (those with members
    /// here), so that a numbering does not restart while pages follow it.
    /// Keys that are gone stay gone.
    pub(super) async fn refresh_keys(&self, groups: &[String]) -> Result<(), LayerError> {
        let Some(config) = self.replay.get() else {
            return Ok(());
        };
        let ttl = u64::try_from(key_ttl(&config).as_millis()).unwrap_or(u64::MAX);
        for chunk in groups.chunks(REFRESH_CHUNK) {
            let mut pipe = redis::pipe();
            for group in chunk {
                for key in self.group_keys(group) {
                    pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
                }
            }
            let mut publisher = self.publisher()?;
            match tokio::time::timeout(COMMAND_TIMEOUT, pipe.exec_async(&mut publisher.connection))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    return Err(LayerError::with_source(
                        "redis: refreshing keys failed",
                        err,
                    ));
                }
                Err(_) => return Err(LayerError::new("redis: refreshing keys timed out")),
            }
        }
        Ok(())
    }
}

/// How often the keys of the groups with members here are refreshed.
pub(super) fn refresh_every(config: &ReplayConfig) -> Duration {
    key_ttl(config) / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, frame: &str, logged_ms: u64) -> Entry {
        (
            format!("{seq}-0"),
            vec![
                b"f".to_vec(),
                frame.as_bytes().to_vec(),
                b"t".to_vec(),
                logged_ms.to_string().into_bytes(),
            ],
        )
    }

    #[test]
    fn entries_are_parsed_and_aged() {
        let age = Duration::from_secs(10);
        let now = 1_000_000;
        let entries = vec![
            entry(3, "old", now - 10_001),
            entry(4, "{\"a\":4}", now - 10_000),
            ("bad".to_owned(), vec![]),
            (
                "6-0".to_owned(),
                vec![b"t".to_vec(), now.to_string().into_bytes()],
            ),
            entry(7, "{\"a\":7}", now + 5),
        ];
        let fresh = fresh_entries(entries, now, age);
        assert_eq!(
            fresh,
            [(4, Frame::from("{\"a\":4}")), (7, Frame::from("{\"a\":7}"))]
        );
    }

    #[test]
    fn silent_groups_expire_after_a_few_ages() {
        let config = ReplayConfig::default();
        assert_eq!(key_ttl(&config), Duration::from_secs(1200));
        let short = config.with_max_age(Duration::from_secs(1));
        assert_eq!(key_ttl(&short), MIN_KEY_TTL);
        let long = config.with_max_age(Duration::MAX);
        assert_eq!(key_ttl(&long), MAX_KEY_TTL);
    }
}
