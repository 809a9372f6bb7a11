//! The Redis Cluster channel layer: sharded pub/sub (`SSUBSCRIBE` /
//! `SPUBLISH`, Redis 7), so that a group's traffic stays on the shard that
//! owns its slot.
//!
//! Every key of a group `G` carries the hash tag `{G}`, and so does its
//! channel: with the prefix `P`, `P{G}` is the channel, `P{G}:seq` the
//! counter, `P{G}:epoch` the numbering's epoch, `P{G}:owner` the cluster
//! node that started it and `P{G}:log` the stream of recent frames. One
//! Lua script, on the group's slot, numbers a frame, logs it and publishes
//! it with `SPUBLISH`; on another node than the owner (a replica promoted
//! after a failover, which may lack the last frames) it starts a new epoch.
//!
//! The process keeps one cluster connection (redis-rs), which holds one
//! connection per primary: the subscriptions of the groups in a shard live
//! on that shard's connection. When slots move or a primary fails over,
//! the client follows the new slot map and subscribes again, and the layer
//! subscribes again itself any group that no node confirmed since a
//! connection was lost; each confirmation of a subscription makes the
//! layer read the group's log and deliver what the shard published
//! meanwhile. A client that resumes is answered from the log only once its
//! group's subscription is confirmed here, as with the other layers: the
//! first subscription starts the group's delivery at the newest frame, so
//! a read made before it could miss what was published in between. A
//! group whose subscription stands is not read again: the
//! layer's periodic check costs nothing per quiet group. Frames reach
//! local members through the sequencer, in the order of their numbers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::sequencer::Sequencer;
use super::subscriptions::{self, Subscriptions};
use super::{
    ChannelLayer, Frame, GroupPosition, LayerError, LocalDelivery, Missed, Replay, ReplayConfig,
    ReplaySetting, replay_in_epoch,
};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const GAP_WAIT: Duration = Duration::from_millis(250);
/// How often every subscribed group's slot is touched, so that a primary
/// that died is noticed (and the slot map refreshed) without traffic.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const MIN_KEY_TTL: Duration = Duration::from_secs(60);

/// Numbers, logs and publishes a frame. KEYS: counter, epoch, log, owner.
/// ARGV: channel, header up to the number, frame, log capacity, keys'
/// lifetime (ms), a fresh epoch.
///
/// A numbering belongs to the node that started it (`owner`, its cluster
/// node id). When another node serves the slot — a replica promoted after
/// a failover, which may lack the last frames the old primary numbered, or
/// a slot migrated — or the epoch is gone, the group starts a new
/// numbering: numbers are never given twice in one epoch.
const PUBLISH: &str = r"
local me = redis.call('CLUSTER', 'MYID')
local epoch = redis.call('GET', KEYS[2])
if not epoch or redis.call('GET', KEYS[4]) ~= me then
  epoch = ARGV[6]
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[4], me)
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'f', ARGV[3])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
redis.call('SPUBLISH', ARGV[1], ARGV[2] .. seq .. ' ' .. epoch .. '\n' .. ARGV[3])
return {seq, epoch}
";

/// Reads a group's numbering and log after a sequence. KEYS: counter,
/// epoch, log, owner. ARGV: first entry id, most entries. A numbering of
/// another node (see `PUBLISH`) reads as none: the next frame starts a
/// new one.
const READ: &str = r"
if redis.call('GET', KEYS[4]) ~= redis.call('CLUSTER', 'MYID') then
  return {0, '', {}}
end
local newest = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = redis.call('GET', KEYS[2]) or ''
local entries = redis.call('XRANGE', KEYS[3], ARGV[1], '+', 'COUNT', ARGV[2])
return {newest, epoch, entries}
";

/// A channel layer on a Redis Cluster with sharded pub/sub.
///
/// ```
/// let layer = liveview::layer::RedisClusterLayer::builder(["10.0.0.1:7000", "10.0.0.2:7000"])
///     .prefix("shop:")
///     .build()?;
/// assert_eq!(layer.prefix(), "shop:");
/// # Ok::<(), liveview::layer::LayerError>(())
/// ```
#[derive(Clone)]
pub struct RedisClusterLayer {
    inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
}

/// Settings of a [`RedisClusterLayer`].
#[derive(Debug, Clone)]
pub struct RedisClusterLayerBuilder {
    seeds: Vec<String>,
    prefix: String,
}

struct Inner {
    seeds: Vec<String>,
    prefix: String,
    node_id: String,
    /// The application's replay setting, from `start`.
    replay: ReplaySetting,
    /// The cluster connection, once made.
    conn: tokio::sync::watch::Sender<Option<ClusterConnection>>,
    local: OnceLock<LocalDelivery>,
    runtime: OnceLock<tokio::runtime::Handle>,
    sequencer: Sequencer,
    dirty: Mutex<HashSet<String>>,
    groups_changed: Notify,
    connected: AtomicBool,
    /// The first attempt to connect is over, whatever came of it: from
    /// then on a disconnected layer is away, not on its way.
    first_attempt_over: AtomicBool,
    /// The groups whose subscription a node confirmed, on the connection
    /// that holds it now.
    subscriptions: Subscriptions,
    started: AtomicBool,
    heartbeat_started: AtomicBool,
    shutdown: CancellationToken,
    publish_script: redis::Script,
    read_script: redis::Script,
}

impl RedisClusterLayerBuilder {
    /// The prefix of channel and key names (default `liveview:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// When no seed is given, or the prefix holds `{` or `}` (they would
    /// change the keys' hash tag).
    pub fn build(self) -> Result<RedisClusterLayer, LayerError> {
        if self.seeds.is_empty() {
            return Err(LayerError::new("redis cluster: no seed node"));
        }
        if self.prefix.contains(['{', '}']) {
            return Err(LayerError::new(
                "redis cluster: the prefix may not hold { or }",
            ));
        }
        let shutdown = CancellationToken::new();
        let inner = Inner {
            seeds: self.seeds,
            prefix: self.prefix,
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            replay: ReplaySetting::default(),
            conn: tokio::sync::watch::Sender::new(None),
            local: OnceLock::new(),
            runtime: OnceLock::new(),
            sequencer: Sequencer::default(),
            dirty: Mutex::default(),
            groups_changed: Notify::new(),
            connected: AtomicBool::new(false),
            first_attempt_over: AtomicBool::new(false),
            subscriptions: Subscriptions::default(),
            started: AtomicBool::new(false),
            heartbeat_started: AtomicBool::new(false),
            shutdown: shutdown.clone(),
            publish_script: redis::Script::new(PUBLISH),
            read_script: redis::Script::new(READ),
        };
        Ok(RedisClusterLayer {
            inner: Arc::new(inner),
            _guard: Arc::new(shutdown.drop_guard()),
        })
    }
}

impl RedisClusterLayer {
    /// A builder from seed nodes (`host:port` or `redis://host:port`).
    pub fn builder<I, S>(seeds: I) -> RedisClusterLayerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisClusterLayerBuilder {
            seeds: seeds.into_iter().map(Into::into).collect(),
            prefix: "liveview:".to_owned(),
        }
    }

    /// The prefix of channel and key names.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    subscription_test_hooks!();
}

impl fmt::Debug for RedisClusterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterLayer")
            .field("seeds", &self.inner.seeds)
            .field("prefix", &self.inner.prefix)
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

impl Inner {
    /// The limits of each group's log: the application's, or the defaults
    /// when its replay is off (the log is then written but never read).
    fn log_limits(&self) -> ReplayConfig {
        self.replay.get().unwrap_or_default()
    }

    fn channel(&self, group: &str) -> String {
        format!("{}{{{group}}}", self.prefix)
    }

    fn keys(&self, group: &str) -> [String; 4] {
        let base = self.channel(group);
        [
            format!("{base}:seq"),
            format!("{base}:epoch"),
            format!("{base}:log"),
            format!("{base}:owner"),
        ]
    }

    /// A room's members on every process: a hash of `<node>:<id>` to
    /// the user's JSON, in the room's slot.
    fn presence_key(&self, room: &str) -> String {
        format!("{}{{presence:{room}}}", self.prefix)
    }

    /// A process's heartbeat, refreshed every 5 s, living 15 s.
    fn heartbeat_key(&self, node: &str) -> String {
        format!("{}{{node:{node}}}", self.prefix)
    }

    async fn beat(&self) -> Result<(), LayerError> {
        let mut conn = self.conn().await?;
        let mut set = redis::cmd("SET");
        set.arg(self.heartbeat_key(&self.node_id))
            .arg(now_ms())
            .arg("PX")
            .arg(15_000);
        self.bounded("heartbeat", set.query_async::<()>(&mut conn))
            .await
    }

    fn start_heartbeat(self: &Arc<Self>) {
        if self.heartbeat_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.clone();
        if let Some(runtime) = self.runtime.get() {
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        () = inner.shutdown.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    if let Err(err) = inner.beat().await {
                        tracing::debug!(error = %err, "redis cluster layer: heartbeat failed");
                    }
                }
            });
        }
    }

    /// Whether the cluster is away (see [`subscriptions::is_away`]).
    fn is_away(&self) -> bool {
        subscriptions::is_away(&self.connected, &self.first_attempt_over)
    }

    fn group_of(&self, channel: &str) -> Option<String> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix('{')?;
        rest.strip_suffix('}').map(str::to_owned)
    }

    /// The cluster connection, waiting a little for the first one.
    async fn conn(&self) -> Result<ClusterConnection, LayerError> {
        let mut made = self.conn.subscribe();
        match tokio::time::timeout(COMMAND_TIMEOUT, made.wait_for(Option::is_some)).await {
            Ok(Ok(conn)) => conn
                .clone()
                .ok_or_else(|| LayerError::new("redis cluster: not connected")),
            _ => Err(LayerError::new("redis cluster: not connected yet")),
        }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        work: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LayerError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(LayerError::with_source(
                format!("redis cluster: {what} failed"),
                err,
            )),
            Err(_) => Err(LayerError::new(format!("redis cluster: {what} timed out"))),
        }
    }

    fn deliver(&self, group: &str, epoch: &str, seq: u64, frame: &Frame) {
        let Some(local) = self.local.get() else {
            return;
        };
        self.sequencer
            .offer(group, epoch, seq, frame, &mut |seq, epoch, frame| {
                local.deliver_sequenced(group, frame, seq, epoch);
            });
    }

    async fn publish_numbered(
        &self,
        group: &str,
        frame: &Frame,
    ) -> Result<(u64, String), LayerError> {
        let mut conn = self.conn().await?;
        let keys = self.keys(group);
        let ttl = self
            .log_limits()
            .max_age()
            .checked_mul(4)
            .unwrap_or(MIN_KEY_TTL)
            .max(MIN_KEY_TTL)
            .as_millis()
            .to_string();
        let header = format!("lv1 {} {} ", self.node_id, now_ms());
        let mut invocation = self.publish_script.prepare_invoke();
        invocation
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .key(&keys[3])
            .arg(self.channel(group))
            .arg(header)
            .arg(frame.as_str())
            .arg(self.log_limits().frames())
            .arg(ttl)
            .arg(new_epoch());
        let (seq, epoch): (u64, String) = self
            .bounded("publishing", invocation.invoke_async(&mut conn))
            .await?;
        self.deliver(group, &epoch, seq, frame);
        Ok((seq, epoch))
    }

    /// The group's newest number, epoch and log entries after `after`.
    async fn read(
        &self,
        group: &str,
        after: u64,
    ) -> Result<(u64, String, Vec<(u64, Frame)>), LayerError> {
        let mut conn = self.conn().await?;
        let keys = self.keys(group);
        let mut invocation = self.read_script.prepare_invoke();
        invocation
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .key(&keys[3])
            .arg(format!("{}-0", after.saturating_add(1)))
            .arg(self.log_limits().frames());
        type Entry = (String, Vec<(String, String)>);
        let (newest, epoch, entries): (u64, String, Vec<Entry>) = self
            .bounded("reading the log", invocation.invoke_async(&mut conn))
            .await?;
        let entries = entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let seq = id.split('-').next()?.parse().ok()?;
                let frame = fields.into_iter().find(|(k, _)| k == "f")?.1;
                Some((seq, Frame::from(frame)))
            })
            .collect();
        Ok((newest, epoch, entries))
    }

    /// Start or resume a group's delivery from its log; whether the log
    /// was read.
    async fn catch_up(&self, group: &str) -> bool {
        let Some(local) = self.local.get() else {
            return true;
        };
        let mut deliver = |seq: u64, epoch: &str, frame: &Frame| {
            local.deliver_sequenced(group, frame, seq, epoch);
        };
        if !self.sequencer.started(group) {
            return match self.read(group, u64::MAX - 1).await {
                Ok((newest, epoch, _)) => {
                    let tail = (!epoch.is_empty()).then_some((epoch.as_str(), newest));
                    self.sequencer.start(group, tail, &mut deliver);
                    true
                }
                Err(err) => {
                    tracing::debug!(group, error = %err, "redis cluster: cannot read a log");
                    false
                }
            };
        }
        let Ok((newest, epoch, _)) = self.read(group, u64::MAX - 1).await else {
            return false;
        };
        if epoch.is_empty() {
            return true;
        }
        // In another epoch than the one delivered here (the numbering
        // restarted, after a failover for one): from its first frame.
        let next = self.sequencer.next(group, &epoch).unwrap_or(1);
        if next > newest {
            return true;
        }
        let Ok((_, _, entries)) = self.read(group, next - 1).await else {
            return false;
        };
        for (seq, frame) in entries {
            self.sequencer
                .offer(group, &epoch, seq, &frame, &mut deliver);
        }
        true
    }

    /// What `group`'s log holds after `after` (of `epoch`, when the client
    /// said which), for a client that reconnects; asked once the group is
    /// subscribed here (see
    /// [`Subscriptions::before_log_read`](subscriptions::Subscriptions::before_log_read)):
    /// the group's delivery here starts at the newest frame when it is
    /// first subscribed, so a frame numbered after a read made before that
    /// would be neither in the answer nor delivered.
    async fn replay(
        &self,
        group: &str,
        after: u64,
        epoch: Option<&str>,
    ) -> Result<Missed, LayerError> {
        let (newest, current, entries) = self.read(group, after).await?;
        let capacity = u64::try_from(self.log_limits().frames()).unwrap_or(u64::MAX);
        let replay = if current.is_empty() {
            if after == 0 {
                Replay::Frames(Vec::new())
            } else {
                Replay::Gap
            }
        } else if newest.saturating_sub(after) > capacity {
            Replay::Gap
        } else {
            replay_in_epoch(entries, newest, &current, after, epoch)
        };
        Ok(Missed {
            epoch: current,
            replay,
        })
    }

    /// Where `group`'s numbering stands. Read at once, subscribed or not:
    /// a page renders it before any of its connections joins here, and the
    /// connection resumes from it through [`replay`](Self::replay), which
    /// waits for the subscription.
    async fn position(&self, group: &str) -> Result<GroupPosition, LayerError> {
        let (seq, epoch, _) = self.read(group, u64::MAX - 1).await?;
        Ok(GroupPosition {
            group: group.to_owned(),
            seq,
            epoch: (!epoch.is_empty()).then_some(epoch),
        })
    }

    /// Record that connection `id` with `user` is in `room`.
    async fn presence_join(
        self: &Arc<Self>,
        room: &str,
        id: u64,
        user: Option<&crate::User>,
    ) -> Result<(), LayerError> {
        let value = serde_json::to_string(&user)
            .map_err(|err| LayerError::with_source("redis cluster: cannot encode the user", err))?;
        self.start_heartbeat();
        self.beat().await?;
        let mut conn = self.conn().await?;
        let mut hset = redis::cmd("HSET");
        hset.arg(self.presence_key(room))
            .arg(format!("{}:{id}", self.node_id))
            .arg(value);
        self.bounded("presence join", hset.query_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    /// Connection `id` left `room`.
    async fn presence_leave(&self, room: &str, id: u64) -> Result<(), LayerError> {
        let mut conn = self.conn().await?;
        let mut hdel = redis::cmd("HDEL");
        hdel.arg(self.presence_key(room))
            .arg(format!("{}:{id}", self.node_id));
        self.bounded("presence leave", hdel.query_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    /// Every connection in `room` on the live processes, with its user.
    async fn presence(&self, room: &str) -> Result<Vec<Option<crate::User>>, LayerError> {
        let mut conn = self.conn().await?;
        let key = self.presence_key(room);
        let entries: HashMap<String, String> = self
            .bounded(
                "presence",
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn),
            )
            .await?;
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut members = Vec::new();
        let mut stale = Vec::new();
        for (field, value) in entries {
            let Some((node, _)) = field.rsplit_once(':') else {
                continue;
            };
            let live = match alive.get(node) {
                Some(live) => *live,
                None => {
                    let live = node == self.node_id
                        || self
                            .bounded(
                                "heartbeat",
                                redis::cmd("EXISTS")
                                    .arg(self.heartbeat_key(node))
                                    .query_async::<bool>(&mut conn),
                            )
                            .await?;
                    alive.insert(node.to_owned(), live);
                    live
                }
            };
            if live {
                members.push(serde_json::from_str::<Option<crate::User>>(&value).unwrap_or(None));
            } else {
                stale.push(field);
            }
        }
        if !stale.is_empty() {
            // Members of processes that died: removed for everyone.
            let _ = self
                .bounded(
                    "presence cleanup",
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(&stale)
                        .query_async::<i64>(&mut conn),
                )
                .await;
        }
        Ok(members)
    }

    /// A push of the cluster connection: a frame is delivered here; what
    /// the subscriptions became is returned.
    fn incoming(&self, push: PushInfo) -> Subscription {
        if push.kind == PushKind::Disconnection {
            return Subscription::Disconnected;
        }
        let mut data = push.data.into_iter();
        let Some(Value::BulkString(channel)) = data.next() else {
            return Subscription::Unchanged;
        };
        let Some(group) = String::from_utf8(channel)
            .ok()
            .and_then(|c| self.group_of(&c))
        else {
            return Subscription::Unchanged;
        };
        match push.kind {
            PushKind::SSubscribe => Subscription::Confirmed(group),
            PushKind::SUnsubscribe => Subscription::Dropped(group),
            PushKind::SMessage => {
                if let Some(Value::BulkString(payload)) = data.next() {
                    self.message(&group, payload);
                }
                Subscription::Unchanged
            }
            _ => Subscription::Unchanged,
        }
    }

    /// A frame published by another process, delivered in its turn.
    fn message(&self, group: &str, payload: Vec<u8>) -> Option<()> {
        let text = String::from_utf8(payload).ok()?;
        let (header, frame) = text.split_once('\n')?;
        let words: Vec<&str> = header.split(' ').collect();
        if words.first() != Some(&"lv1") || words.get(1) == Some(&self.node_id.as_str()) {
            return None;
        }
        let seq = words.get(3)?.parse().ok()?;
        let epoch = words.get(4)?;
        self.deliver(group, epoch, seq, &Frame::from(frame));
        Some(())
    }
}

/// What a push says of the layer's subscriptions.
enum Subscription {
    /// A node confirmed the group's subscription (perhaps again, on another
    /// shard).
    Confirmed(String),
    /// A node ended the group's subscription (its slot moved away).
    Dropped(String),
    /// A connection to a node was lost: its subscriptions with it.
    Disconnected,
    Unchanged,
}

impl ChannelLayer for RedisClusterLayer {
    fn start(&self, local: LocalDelivery) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("redis cluster layer: start must be called inside a tokio runtime");
            return;
        };
        let _ = self.inner.runtime.set(runtime.clone());
        self.inner.replay.set(local.replay());
        let _ = self.inner.local.set(local);
        runtime.spawn(run(self.inner.clone()));
    }

    fn subscribe(&self, group: &str) {
        self.inner
            .dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group.to_owned());
        self.inner.groups_changed.notify_one();
    }

    fn unsubscribe(&self, group: &str) {
        self.subscribe(group);
    }

    fn subscribed<'a>(&'a self, group: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let away = self.inner.is_away();
            self.inner.subscriptions.subscribed(away, group).await
        })
    }

    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async move { self.inner.publish_numbered(group, frame).await.map(|_| ()) })
    }

    fn has_shared_log(&self) -> bool {
        true
    }

    fn publish_sequenced<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Option<(u64, String)>, LayerError>> {
        Box::pin(async move { self.inner.publish_numbered(group, frame).await.map(Some) })
    }

    shared_state_methods!("redis cluster");

    fn health(&self) -> BoxFuture<'_, Result<(), LayerError>> {
        Box::pin(async move {
            let mut conn = self.inner.conn().await?;
            self.inner
                .bounded("PING", redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .map(|_| ())
        })
    }

    fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.connected.store(false, Ordering::Release);
    }
}

async fn run(inner: Arc<Inner>) {
    let (tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let seeds: Vec<String> = inner
        .seeds
        .iter()
        .map(|s| {
            if s.contains("://") {
                s.clone()
            } else {
                format!("redis://{s}")
            }
        })
        .collect();
    let client = match ClusterClientBuilder::new(seeds)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .connection_timeout(COMMAND_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "redis cluster layer: invalid seeds; the layer stays idle");
            return;
        }
    };
    loop {
        let connected = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            connected = client.get_async_connection() => connected,
        };
        match connected {
            Ok(conn) => {
                inner.conn.send_replace(Some(conn));
                inner.connected.store(true, Ordering::Release);
                inner.first_attempt_over.store(true, Ordering::Release);
                break;
            }
            Err(err) => {
                inner.first_attempt_over.store(true, Ordering::Release);
                tracing::debug!(error = %err, "redis cluster layer: cannot connect yet");
                tokio::select! {
                    () = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
    let mut subscribed: HashSet<String> = HashSet::new();
    // Groups whose subscription a node confirmed since the last lost
    // connection, and whose log was read after that confirmation: nothing
    // published to them can have been missed. redis-rs subscribes again
    // by itself after a reconnection, but not always: after every node of
    // the cluster restarted it reconnects to each and its subscriptions
    // never reach them (no confirmation comes, and the servers count no
    // subscriber). The layer does not rely on it: a group without a
    // confirmation is subscribed again, and its log read, on every check
    // until a node confirms it. The others cost the check nothing, however
    // many they are.
    let mut confirmed: HashSet<String> = HashSet::new();
    let mut repair = tokio::time::interval(GAP_WAIT / 2);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let mut broken = false;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = inner.groups_changed.notified() => {
                if inner.subscriptions.changes_held() {
                    continue;
                }
                let dirty = std::mem::take(&mut *inner.dirty.lock().unwrap_or_else(PoisonError::into_inner));
                let Ok(mut conn) = inner.conn().await else {
                    inner.dirty.lock().unwrap_or_else(PoisonError::into_inner).extend(dirty);
                    continue;
                };
                // Members looked at after each leaving group's confirmation
                // is withdrawn (see Subscriptions::changes).
                let changes = inner.subscriptions.changes(
                    dirty,
                    |group| subscribed.contains(group),
                    |group| inner.local.get().is_some_and(|l| l.has_members(group)),
                );
                for group in changes.subscribe {
                    match inner.bounded("SSUBSCRIBE", conn.ssubscribe(inner.channel(&group))).await {
                        Ok(()) => {
                            inner.catch_up(&group).await;
                            subscribed.insert(group);
                        }
                        Err(err) => {
                            tracing::debug!(group, error = %err, "redis cluster layer: cannot subscribe");
                            inner.dirty.lock().unwrap_or_else(PoisonError::into_inner).insert(group);
                        }
                    }
                }
                if !changes.unsubscribe.is_empty() {
                    inner.subscriptions.before_unsubscribe().await;
                }
                for group in changes.unsubscribe {
                    let _ = inner.bounded("SUNSUBSCRIBE", conn.sunsubscribe(inner.channel(&group))).await;
                    inner.sequencer.forget(&group);
                    subscribed.remove(&group);
                    confirmed.remove(&group);
                }
            }
            push = pushes.recv() => {
                let Some(push) = push else { break };
                match inner.incoming(push) {
                    Subscription::Confirmed(group) => {
                        // What other processes publish reaches this one
                        // from now on; what the shard published before
                        // comes from the log (read again at the next check
                        // if it cannot be).
                        if subscribed.contains(&group) {
                            inner.subscriptions.confirm([&group]);
                        }
                        if !subscribed.contains(&group) || inner.catch_up(&group).await {
                            confirmed.insert(group);
                        }
                    }
                    Subscription::Dropped(group) => {
                        inner.subscriptions.withdraw([&group]);
                        confirmed.remove(&group);
                    }
                    Subscription::Disconnected => {
                        inner.subscriptions.reset();
                        confirmed.clear();
                    }
                    Subscription::Unchanged => {}
                }
            }
            _ = repair.tick() => {
                for gap in inner.sequencer.gaps(GAP_WAIT) {
                    inner.catch_up(&gap.group).await;
                    if inner.sequencer.gaps(GAP_WAIT).iter().any(|g| g.group == gap.group && g.from == gap.from)
                        && let Some(local) = inner.local.get()
                    {
                        inner.sequencer.skip_gap(&gap.group, &mut |seq, epoch, frame| {
                            local.deliver_sequenced(&gap.group, frame, seq, epoch);
                        });
                    }
                }
            }
            _ = check.tick() => {
                // A PING notices a cluster that went away; once it answers
                // again, a new connection is made and every group
                // subscribed again (the old connection's subscriptions
                // may be gone with the servers that held them).
                let Ok(mut conn) = inner.conn().await else { continue };
                let alive = inner.bounded("PING", redis::cmd("PING").query_async::<String>(&mut conn)).await.is_ok();
                if !alive {
                    broken = true;
                    inner.connected.store(false, Ordering::Release);
                    inner.subscriptions.reset();
                    continue;
                }
                if broken {
                    match client.get_async_connection().await {
                        Ok(fresh) => {
                            broken = false;
                            conn = fresh.clone();
                            inner.conn.send_replace(Some(fresh));
                            inner.connected.store(true, Ordering::Release);
                            inner.subscriptions.reset();
                            confirmed.clear();
                            tracing::info!("redis cluster layer: reconnected");
                        }
                        Err(err) => tracing::debug!(error = %err, "redis cluster layer: cannot reconnect yet"),
                    }
                }
                // Subscribe again where no node confirmed it; stop at the
                // first failure (the cluster is not back yet).
                let unconfirmed: Vec<&String> = subscribed.iter().filter(|g| !confirmed.contains(*g)).collect();
                for group in &unconfirmed {
                    if let Err(err) = inner.bounded("SSUBSCRIBE", conn.ssubscribe(inner.channel(group))).await {
                        tracing::debug!(group, error = %err, "redis cluster layer: cannot subscribe again yet");
                        break;
                    }
                }
                // Touch those groups' slots: a moved slot or a dead primary
                // refreshes the slot map (and the subscriptions follow);
                // then catch up from the log. A group whose subscription
                // stands has missed nothing: a lost connection or a moved
                // slot would have taken its confirmation away.
                for group in unconfirmed {
                    inner.catch_up(group).await;
                }
            }
        }
    }
}
