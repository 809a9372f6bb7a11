//! The Redis channel layer: frames travel between server processes through
//! Redis pub/sub; each group's recent frames and each room's presence are
//! kept in Redis, shared by every process.
//!
//! Each process keeps **one** subscriber connection, subscribed once to the
//! channel of every group that has a member in this process, and talks to
//! Redis otherwise over one multiplexed connection ([`ConnectionManager`]).
//! Every message carries the id of the process that published it. Numbered
//! frames (the shared log's) reach this process's members only through the
//! subscription, this process's own included, so they are delivered in the
//! group's order whoever published them; an unnumbered frame reaches the
//! members of its own process from the publisher, and its echo is skipped:
//! each receiver gets a frame exactly once.
//!
//! # Wire format
//!
//! A group `G` is the Redis channel `<prefix>G` (prefix `liveview:` by
//! default). A message is one line of header, a newline, then the frame
//! exactly as it goes to the browser:
//!
//! ```text
//! lv1 <node id> <publish time, Unix milliseconds>[ <sequence> <epoch>]\n<frame>
//! ```
//!
//! The frame is not re-encoded, so publishing costs one copy of it. The
//! sequence and its epoch are there when the frame went through the shared
//! log.
//!
//! # Shared log and presence
//!
//! With replay on (the default), a frame is numbered, appended to its
//! group's log (a capped Redis stream) and published by one Lua script, in
//! one round trip: every process sees the same numbers, and a client that
//! reconnects to any process is replayed what it missed (`shared_log`).
//! Frames are delivered locally in sequence order, whichever process
//! published them, by one task per group that reads back from the log any
//! number the subscription skipped (`delivery`). Presence is a hash per
//! room, with a heartbeat per process so that the entries of a process that
//! died are ignored (`presence`).
//!
//! # Outages
//!
//! Redis pub/sub is at-most-once: a frame published while a process is cut off
//! from Redis never reaches that process. Local delivery does not depend on
//! Redis. Publishes that fail are logged, counted and reported to the caller;
//! a numbered publish fails within a second, and local members then get the
//! frame unnumbered. A client that reconnects while the log cannot be read
//! is asked to resync. A Redis that comes back empty starts every group's
//! numbering again in a new epoch, which the frames carry. The subscriber reconnects with capped exponential
//! backoff and subscribes again to every live group. With Sentinel, every
//! reconnection asks the sentinels for the current master, and the master
//! is checked again periodically and whenever a publish fails, so a
//! failover is followed even when the old master stays reachable.

mod config;
mod delivery;
mod presence;
mod shared_log;
mod subscriber;
mod util;
mod wire;

pub use config::RedisLayerBuilder;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionInfo};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::config::{Settings, Target, TargetSpec};
use self::delivery::Delivery;
use self::presence::OwnPresence;
use self::shared_log::Scripts;
use self::util::WarnLimiter;
use self::wire::{MAGIC, encode, now_ms};
use super::subscriptions::{self, Subscriptions};
use super::{ChannelLayer, Frame, LayerError, LocalDelivery, ReplaySetting};

/// Default prefix of the Redis channel and key names.
pub const DEFAULT_PREFIX: &str = "liveview:";

/// Default bound of the received frames and of the pending publishes (see
/// [`RedisLayerBuilder::received_queue`] and
/// [`RedisLayerBuilder::pending_publishes`]).
pub const DEFAULT_CAPACITY: usize = 1024;

/// Default message expiry (see [`RedisLayerBuilder::expiry`]).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(60);

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one command (PUBLISH, SUBSCRIBE, PING).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a whole publish, including waiting for a reconnection.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// A channel layer that carries frames between processes through Redis
/// pub/sub, and keeps the shared log of group frames and the presence of
/// rooms in Redis.
///
/// Cloning is cheap and every clone is the same layer: keep one to read the
/// counters after handing another to the application. Background work stops
/// on [`ChannelLayer::shutdown`] or when the last clone is dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use liveview::layer::RedisLayer;
///
/// let layer = RedisLayer::builder("redis://:secret@redis.internal:6379/0")
///     .prefix("shop:")
///     .received_queue(1500)
///     .expiry(Duration::from_secs(10))
///     .build()?;
/// let live = liveview::LiveView::builder().channel_layer(layer.clone()).build()?;
/// # drop(live);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisLayer {
    inner: Arc<Inner>,
    /// Cancels the background tasks when the last clone is dropped.
    _guard: Arc<DropGuard>,
}

struct Inner {
    target: Target,
    prefix: String,
    /// Frames received and waiting for local delivery, in all and per group.
    received_queue: usize,
    /// Publishes that may wait for Redis at once.
    max_pending_publishes: usize,
    expiry: Duration,
    /// The shared log's limits; `None` when the layer keeps no log.
    replay: ReplaySetting,
    /// Certificates trusted for `rediss://` instead of the system's.
    tls_roots: Option<Vec<u8>>,
    node_id: String,
    /// `lv1 <node id> `: how this process's own messages start.
    own_header: Vec<u8>,
    counters: Counters,
    /// Groups whose local membership changed since the subscriber last
    /// looked. The application's group table says whether each one has
    /// members; these are only the names to look at.
    dirty: Mutex<HashSet<String>>,
    /// Wakes the subscriber when `dirty` gained entries.
    groups_changed: Notify,
    /// Asks the subscriber to check with Sentinel where the master is.
    recheck_master: Notify,
    publisher: RwLock<Option<Publisher>>,
    /// The runtime the layer was started in.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Local delivery, from `start` (it does not keep the application
    /// alive).
    local: OnceLock<LocalDelivery>,
    /// Bounds the publishes in flight.
    pending_publishes: Arc<Semaphore>,
    started: AtomicBool,
    connected: AtomicBool,
    /// The subscriber's first attempt to connect is over, whatever came of
    /// it: from then on a disconnected layer is away, not on its way.
    first_attempt_over: AtomicBool,
    shutdown: CancellationToken,
    publish_warnings: WarnLimiter,
    drop_warnings: WarnLimiter,
    scripts: Scripts,
    delivery: Delivery,
    subscriptions: Subscriptions,
    own_presence: OwnPresence,
}

#[derive(Clone)]
struct Publisher {
    connection: ConnectionManager,
    /// `host:port` of the server it talks to.
    address: String,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    expired: AtomicU64,
    dropped: AtomicU64,
    recovered: AtomicU64,
}

impl RedisLayer {
    fn new(settings: Settings) -> Self {
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let own_header = format!("{MAGIC} {node_id} ").into_bytes();
        let shutdown = CancellationToken::new();
        let inner = Inner {
            target: settings.target,
            prefix: settings.prefix,
            received_queue: settings.received_queue,
            max_pending_publishes: settings.pending_publishes,
            expiry: settings.expiry,
            replay: ReplaySetting::default(),
            tls_roots: settings.tls_roots,
            node_id,
            own_header,
            counters: Counters::default(),
            dirty: Mutex::new(HashSet::new()),
            groups_changed: Notify::new(),
            recheck_master: Notify::new(),
            publisher: RwLock::new(None),
            runtime: OnceLock::new(),
            local: OnceLock::new(),
            pending_publishes: Arc::new(Semaphore::new(settings.pending_publishes)),
            started: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            first_attempt_over: AtomicBool::new(false),
            shutdown: shutdown.clone(),
            publish_warnings: WarnLimiter::default(),
            drop_warnings: WarnLimiter::default(),
            scripts: Scripts::default(),
            delivery: Delivery::default(),
            subscriptions: Subscriptions::default(),
            own_presence: OwnPresence::default(),
        };
        Self {
            inner: Arc::new(inner),
            _guard: Arc::new(shutdown.drop_guard()),
        }
    }

    /// A layer for the server at `url`, with the default settings.
    ///
    /// `url` is `redis://[[user]:password@]host[:port][/db]`, or `rediss://…`
    /// for TLS (cargo feature `redis-tls`). Nothing is connected here: the
    /// layer connects when the application starts it, and keeps retrying
    /// while Redis is unreachable.
    ///
    /// # Errors
    ///
    /// When the URL does not parse, or is `rediss://` without TLS support.
    ///
    /// ```
    /// let layer = liveview::layer::RedisLayer::from_url("redis://127.0.0.1:6379/0")?;
    /// assert_eq!(layer.prefix(), "liveview:");
    /// # Ok::<(), liveview::layer::LayerError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, LayerError> {
        Self::builder(url).build()
    }

    /// A builder for a layer using the server at `url` (see
    /// [`from_url`](Self::from_url) for the format).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = liveview::layer::RedisLayer::builder("redis://127.0.0.1")
    ///     .prefix("blog:")
    ///     .received_queue(100)
    ///     .expiry(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(layer.prefix(), "blog:");
    /// # Ok::<(), liveview::layer::LayerError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisLayerBuilder {
        RedisLayerBuilder::new(TargetSpec::Url(url.into()))
    }

    /// A builder for a layer that asks Redis Sentinel where the master named
    /// `master_name` is.
    ///
    /// Each sentinel is `host:port` (port 26379 when left out) or a
    /// `redis://` URL. The password, user and database of the master are set
    /// on the builder.
    ///
    /// ```
    /// let layer = liveview::layer::RedisLayer::sentinel(
    ///     vec!["sentinel1:26379".to_string(), "sentinel2:26379".to_string()],
    ///     "mymaster",
    /// )
    /// .password("secret")
    /// .db(0)
    /// .build()?;
    /// # drop(layer);
    /// # Ok::<(), liveview::layer::LayerError>(())
    /// ```
    pub fn sentinel<I, S>(sentinels: I, master_name: impl Into<String>) -> RedisLayerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisLayerBuilder::new(TargetSpec::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master_name: master_name.into(),
        })
    }

    /// The prefix of this layer's Redis channel and key names.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The id this process puts in the messages it publishes.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Whether the subscriber connection is currently up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Frames published to Redis successfully.
    pub fn published(&self) -> u64 {
        self.inner.counters.published.load(Ordering::Relaxed)
    }

    /// Publishes that failed (Redis unreachable, timed out, too many pending).
    pub fn publish_failures(&self) -> u64 {
        self.inner.counters.publish_failures.load(Ordering::Relaxed)
    }

    /// Frames from other processes handed to local delivery.
    pub fn received(&self) -> u64 {
        self.inner.counters.received.load(Ordering::Relaxed)
    }

    /// Frames from other processes dropped because they were older than the
    /// expiry when they would have been delivered.
    pub fn expired(&self) -> u64 {
        self.inner.counters.expired.load(Ordering::Relaxed)
    }

    /// Messages dropped because the local queue was full or they were not
    /// messages of this layer.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Numbered frames the subscription skipped (a full queue, a
    /// reconnection) that were read back from the shared log and delivered
    /// in their place.
    pub fn recovered(&self) -> u64 {
        self.inner.counters.recovered.load(Ordering::Relaxed)
    }

    /// Fault injection for tests: while `lagging`, the subscriber delivers
    /// nothing (messages wait, in order).
    #[doc(hidden)]
    pub fn inject_subscriber_lag(&self, lagging: bool) {
        self.inner.delivery.set_lagging(lagging);
    }

    /// Fault injection for tests: while `stalled`, the delivery of `group`
    /// alone waits.
    #[doc(hidden)]
    pub fn inject_group_stall(&self, group: &str, stalled: bool) {
        self.inner.delivery.set_held(group, stalled);
    }

    /// Fault injection for tests: the next `count` messages of `group` are
    /// lost on their way from the subscriber to delivery.
    #[doc(hidden)]
    pub fn inject_message_loss(&self, group: &str, count: usize) {
        self.inner.delivery.lose_next(group, count);
    }

    subscription_test_hooks!();

    /// Push back the expiry of the shared log's keys of every group with
    /// members here now, as the layer does periodically (for tests).
    #[doc(hidden)]
    pub async fn refresh_keys_now(&self) -> Result<(), LayerError> {
        let groups = self
            .inner
            .local
            .get()
            .map(LocalDelivery::groups)
            .unwrap_or_default();
        self.inner.refresh_keys(&groups).await
    }
}

impl fmt::Debug for RedisLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisLayer")
            .field("target", &inner.target)
            .field("prefix", &inner.prefix)
            .field("received_queue", &inner.received_queue)
            .field("max_pending_publishes", &inner.max_pending_publishes)
            .field("expiry", &inner.expiry)
            .field("replay", &inner.replay.get())
            .field("node_id", &inner.node_id)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl ChannelLayer for RedisLayer {
    fn start(&self, local: LocalDelivery) {
        let inner = &self.inner;
        if inner.started.swap(true, Ordering::AcqRel) {
            tracing::warn!("redis layer: start called twice; ignored");
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                "redis layer: start must be called inside a tokio runtime; the layer stays idle"
            );
            return;
        };
        let _ = inner.runtime.set(runtime.clone());
        inner.replay.set(local.replay());
        let _ = inner.local.set(local.clone());
        if let Target::Server(info) = &inner.target {
            match new_publisher(info.clone(), inner.tls_roots.as_deref()) {
                Ok(publisher) => {
                    *inner
                        .publisher
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Some(publisher)
                }
                Err(err) => {
                    tracing::error!(error = %err, "redis layer: cannot create the publishing connection")
                }
            }
        }
        let (queue, incoming) = mpsc::channel(inner.received_queue);
        runtime.spawn(delivery::route(self.inner.clone(), local.clone(), incoming));
        if let Some(config) = inner.replay.get() {
            runtime.spawn(keep_keys_alive(
                self.inner.clone(),
                local.clone(),
                shared_log::refresh_every(&config),
            ));
        }
        runtime.spawn(subscriber::run_subscriber(self.inner.clone(), local, queue));
        tracing::debug!(layer = ?self, "redis layer started");
    }

    fn subscribe(&self, group: &str) {
        self.inner.group_changed(group);
    }

    fn unsubscribe(&self, group: &str) {
        self.inner.group_changed(group);
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
        Box::pin(async move {
            let result = if tokio::runtime::Handle::try_current().is_ok() {
                self.inner.publish(group, frame).await
            } else {
                // Polled outside any runtime (a plain thread blocking on it):
                // run the publish on the runtime the layer was started in.
                let (inner, group, frame) = (self.inner.clone(), group.to_owned(), frame.clone());
                self.inner
                    .on_own_runtime(async move { inner.publish(&group, &frame).await })
                    .await
            };
            self.inner.record_publish(group, result)
        })
    }

    fn has_shared_log(&self) -> bool {
        self.inner.replay.is_some()
    }

    fn publish_sequenced<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Option<(u64, String)>, LayerError>> {
        Box::pin(async move {
            if self.inner.replay.is_none() {
                return self.publish(group, frame).await.map(|()| None);
            }
            let result = if tokio::runtime::Handle::try_current().is_ok() {
                self.inner.publish_sequenced(group, frame).await
            } else {
                let (inner, group, frame) = (self.inner.clone(), group.to_owned(), frame.clone());
                self.inner
                    .on_own_runtime(async move { inner.publish_sequenced(&group, &frame).await })
                    .await
            };
            self.inner.record_publish(group, result).map(Some)
        })
    }

    shared_state_methods!("redis");

    fn health(&self) -> BoxFuture<'_, Result<(), LayerError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if !inner.started.load(Ordering::Acquire) {
                return Err(LayerError::new("redis: layer not started"));
            }
            if !inner.connected.load(Ordering::Acquire) {
                return Err(LayerError::new("redis: subscriber not connected"));
            }
            let mut publisher = inner.publisher()?;
            let pong = tokio::time::timeout(
                COMMAND_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut publisher.connection),
            )
            .await;
            match pong {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(LayerError::with_source("redis: PING failed", err)),
                Err(_) => Err(LayerError::new("redis: PING timed out")),
            }
        })
    }

    fn shutdown(&self) {
        let inner = &self.inner;
        // Best effort: other processes stop counting this one's members at
        // once rather than when its heartbeat expires.
        if let (Some(farewell), Some(runtime)) = (inner.presence_farewell(), inner.runtime.get()) {
            runtime.spawn(farewell);
        }
        inner.shutdown.cancel();
        inner.connected.store(false, Ordering::Release);
        *inner
            .publisher
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Inner {
    /// Redis is away (see [`subscriptions::is_away`]): the subscriber is
    /// not connected, and its first attempt to connect is over.
    pub(super) fn is_away(&self) -> bool {
        subscriptions::is_away(&self.connected, &self.first_attempt_over)
    }

    fn lock_dirty(&self) -> MutexGuard<'_, HashSet<String>> {
        // A set of names stays consistent even if a holder panicked.
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `group` gained its first or lost its last local member.
    ///
    /// Whether to (un)subscribe is decided later from the application's group
    /// table, not from which of the two calls came last: two connections
    /// joining and leaving at once may report in either order.
    fn group_changed(&self, group: &str) {
        let mut dirty = self.lock_dirty();
        if !dirty.contains(group) {
            dirty.insert(group.to_owned());
        }
        drop(dirty);
        self.groups_changed.notify_one();
    }

    fn publisher(&self) -> Result<Publisher, LayerError> {
        self.publisher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                if self.shutdown.is_cancelled() {
                    LayerError::new("redis: layer shut down")
                } else if !self.started.load(Ordering::Acquire) {
                    LayerError::new("redis: layer not started")
                } else {
                    LayerError::new("redis: not connected to Redis yet")
                }
            })
    }

    fn channel(&self, group: &str) -> String {
        let mut channel = String::with_capacity(self.prefix.len() + group.len());
        channel.push_str(&self.prefix);
        channel.push_str(group);
        channel
    }

    /// `<prefix><kind><name>`: the names of the layer's keys.
    fn key(&self, kind: &str, name: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + name.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(name);
        key
    }

    /// A group's sequence counter.
    pub(super) fn seq_key(&self, group: &str) -> String {
        self.key("seq:", group)
    }

    /// A group's log.
    pub(super) fn log_key(&self, group: &str) -> String {
        self.key("log:", group)
    }

    /// The epoch of a group's numbering.
    pub(super) fn epoch_key(&self, group: &str) -> String {
        self.key("epoch:", group)
    }

    /// A room's presence hash.
    pub(super) fn presence_key(&self, room: &str) -> String {
        self.key("presence:", room)
    }

    /// A process's heartbeat.
    pub(super) fn node_key(&self, node: &str) -> String {
        self.key("node:", node)
    }

    /// Runs `task` on the runtime the layer was started in, for futures
    /// polled outside any runtime (a plain thread blocking on a publish).
    async fn on_own_runtime<T: Send + 'static>(
        &self,
        task: impl Future<Output = Result<T, LayerError>> + Send + 'static,
    ) -> Result<T, LayerError> {
        match self.runtime.get() {
            Some(runtime) => runtime.spawn(task).await.unwrap_or_else(|err| {
                Err(LayerError::with_source("redis: publish task failed", err))
            }),
            None => Err(LayerError::new("redis: layer not started")),
        }
    }

    /// Counts a publish, and logs a failure (rate-limited).
    fn record_publish<T>(
        &self,
        group: &str,
        result: Result<T, LayerError>,
    ) -> Result<T, LayerError> {
        match result {
            Ok(value) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                Ok(value)
            }
            Err(err) => {
                self.counters
                    .publish_failures
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.publish_warnings.allow() {
                    tracing::warn!(
                        group,
                        error = %err,
                        similar_suppressed = suppressed,
                        "redis layer: publish failed; other processes miss this frame"
                    );
                }
                if matches!(self.target, Target::Sentinel { .. }) {
                    self.recheck_master.notify_one();
                }
                Err(err)
            }
        }
    }

    async fn publish(&self, group: &str, frame: &Frame) -> Result<(), LayerError> {
        let Ok(_permit) = self.pending_publishes.try_acquire() else {
            return Err(LayerError::new(format!(
                "redis: {} publishes already pending",
                self.max_pending_publishes
            )));
        };
        let mut publisher = self.publisher()?;
        let payload = encode(&self.node_id, now_ms(), frame.as_str());
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.channel(group)).arg(payload);
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            command.query_async::<i64>(&mut publisher.connection),
        )
        .await
        {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(err)) => Err(LayerError::with_source(
                format!("redis: PUBLISH to {} failed", publisher.address),
                err,
            )),
            Err(_) => Err(LayerError::new(format!(
                "redis: PUBLISH to {} timed out",
                publisher.address
            ))),
        }
    }

    /// Count in the layer's counters and in the application's metrics.
    fn count(&self, counter: &AtomicU64, metric: impl FnOnce(&crate::metrics::Metrics)) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(local) = self.local.get() {
            local.count(metric);
        }
    }

    fn count_received(&self) {
        self.count(&self.counters.received, |m| m.layer_received.add(1));
    }

    fn count_expired(&self) {
        self.count(&self.counters.expired, |m| m.layer_expired.add(1));
    }

    fn count_recovered(&self) {
        self.count(&self.counters.recovered, |m| m.layer_recovered.add(1));
    }

    fn count_dropped(&self, why: &str) {
        self.count(&self.counters.dropped, |m| m.layer_dropped.add(1));
        if let Some(suppressed) = self.drop_warnings.allow() {
            tracing::warn!(
                reason = why,
                similar_suppressed = suppressed,
                "redis layer: dropped a message from Redis"
            );
        }
    }
}

/// A client for `info`, trusting the layer's own certificate authorities
/// when it has some (`rediss://` only).
fn open_client(info: ConnectionInfo, tls_roots: Option<&[u8]>) -> Result<Client, LayerError> {
    let client = match tls_roots {
        #[cfg(feature = "redis-tls")]
        Some(pem) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        _ => Client::open(info),
    };
    client.map_err(|err| LayerError::with_source("redis: invalid connection settings", err))
}

/// Pushes back the expiry of the shared log's keys of the groups with
/// members here, every `every`, until shutdown.
async fn keep_keys_alive(inner: Arc<Inner>, local: LocalDelivery, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if local.is_closed() {
            break;
        }
        if let Err(err) = inner.refresh_keys(&local.groups()).await {
            tracing::debug!(error = %err, "redis layer: the log's keys were not refreshed");
        }
    }
}

fn new_publisher(info: ConnectionInfo, tls_roots: Option<&[u8]>) -> Result<Publisher, LayerError> {
    let address = info.addr().to_string();
    let client = open_client(info, tls_roots)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(|err| {
        LayerError::with_source("redis: cannot create the publishing connection", err)
    })?;
    Ok(Publisher {
        connection,
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_messages_are_recognised_by_their_header() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        let own = encode(layer.node_id(), now_ms(), "{}");
        assert!(own.starts_with(&layer.inner.own_header));
        let numbered = format!(
            "{}3 e\n{{}}",
            wire::numbered_header(layer.node_id(), now_ms())
        );
        assert!(numbered.as_bytes().starts_with(&layer.inner.own_header));
        let other = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        assert_ne!(layer.node_id(), other.node_id());
        let theirs = encode(other.node_id(), now_ms(), "{}");
        assert!(!theirs.starts_with(&layer.inner.own_header));
    }

    #[test]
    fn group_changes_are_coalesced() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        layer.subscribe("room_a");
        layer.subscribe("room_a");
        layer.subscribe("broadcast");
        layer.unsubscribe("room_a");
        assert_eq!(
            *layer.inner.lock_dirty(),
            HashSet::from(["broadcast".to_owned(), "room_a".to_owned()])
        );
        assert_eq!(layer.inner.channel("room_a"), "liveview:room_a");
    }

    #[test]
    fn names_of_keys_and_channels() {
        let layer = RedisLayer::builder("redis://127.0.0.1")
            .prefix("app:")
            .build()
            .unwrap();
        let inner = &layer.inner;
        assert_eq!(inner.seq_key("room_a"), "app:seq:room_a");
        assert_eq!(inner.log_key("broadcast"), "app:log:broadcast");
        assert_eq!(inner.presence_key("lobby"), "app:presence:lobby");
        assert_eq!(inner.node_key("n1"), "app:node:n1");
        assert_eq!(inner.epoch_key("room_a"), "app:epoch:room_a");
    }

    #[tokio::test]
    async fn the_shared_log_follows_the_applications_replay_setting() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        assert!(!layer.has_shared_log(), "no log before the app starts it");
        let live = crate::LiveView::builder()
            .channel_layer(layer.clone())
            .build()
            .unwrap();
        assert!(layer.has_shared_log());
        drop(live);
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        let live = crate::LiveView::builder()
            .channel_layer(layer.clone())
            .replay(None)
            .build()
            .unwrap();
        assert!(!layer.has_shared_log());
        drop(live);
    }

    #[tokio::test]
    async fn publishing_before_start_fails_and_is_counted() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        let frame = Frame::from("{}");
        assert!(layer.publish("broadcast", &frame).await.is_err());
        assert!(layer.publish_sequenced("broadcast", &frame).await.is_err());
        assert_eq!((layer.published(), layer.publish_failures()), (0, 2));
        assert!(layer.health().await.is_err());
        // No log before the application starts the layer with its setting.
        assert!(layer.replay("broadcast", 0, None).await.unwrap().is_none());
        assert!(layer.position("broadcast").await.unwrap().is_none());
        assert!(layer.presence("lobby").await.is_err());
    }
}
