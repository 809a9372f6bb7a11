//! The Redis channel layer: frames travel between server processes through
//! Redis pub/sub.
//!
//! Each process keeps **one** subscriber connection, subscribed once to the
//! channel of every group that has a member in this process, and publishes
//! over one multiplexed connection ([`ConnectionManager`]). Every message
//! carries the id of the process that published it, so a process skips its
//! own messages (its local members got the frame before it was published):
//! each receiver gets a frame exactly once.
//!
//! # Wire format
//!
//! A group `G` is the Redis channel `<prefix>G` (prefix `liveview:` by
//! default). A message is one line of header, a newline, then the frame
//! exactly as it goes to the browser:
//!
//! ```text
//! lv1 <node id> <publish time, Unix milliseconds>\n<frame>
//! ```
//!
//! The frame is not re-encoded, so publishing costs one copy of it.
//!
//! # Outages
//!
//! Redis pub/sub is at-most-once: a frame published while a process is cut off
//! from Redis never reaches that process. Local delivery does not depend on
//! Redis. Publishes that fail are logged, counted and reported to the caller;
//! the subscriber reconnects with capped exponential backoff and subscribes
//! again to every live group. With Sentinel, every reconnection asks the
//! sentinels for the current master, and the master is checked again
//! periodically and whenever a publish fails, so a failover is followed even
//! when the old master stays reachable.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, ConnectionInfo, IntoConnectionInfo, Msg, RedisConnectionInfo};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{ChannelLayer, Frame, LayerError, LocalDelivery};

/// Environment variable read by [`RedisLayer::from_env`].
pub const REDIS_URL_ENV: &str = "LIVEVIEW_REDIS_URL";

/// Default prefix of the Redis channel names.
pub const DEFAULT_PREFIX: &str = "liveview:";

/// Default bound of the local queues (see [`RedisLayerBuilder::capacity`]).
pub const DEFAULT_CAPACITY: usize = 1024;

/// Default message expiry (see [`RedisLayerBuilder::expiry`]).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(60);

/// Default port of a Redis Sentinel.
const SENTINEL_PORT: u16 = 26379;

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one command (PUBLISH, SUBSCRIBE, PING).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a whole publish, including waiting for a reconnection.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to ask the sentinels for the master.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the subscriber connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often the sentinels are asked whether the master moved.
const SENTINEL_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// First and longest delay between two connection attempts of the subscriber.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Channels per SUBSCRIBE / UNSUBSCRIBE command.
const SUBSCRIBE_CHUNK: usize = 500;
/// Repeated warnings of one kind are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A channel layer that carries frames between processes through Redis
/// pub/sub.
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
///     .capacity(1500)
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

/// Builds a [`RedisLayer`]; made by [`RedisLayer::builder`] (one server) or
/// [`RedisLayer::sentinel`] (a master found through Redis Sentinel).
#[derive(Clone)]
#[must_use = "call .build() to get the layer"]
pub struct RedisLayerBuilder {
    target: TargetSpec,
    username: Option<String>,
    password: Option<String>,
    db: Option<i64>,
    sentinel_password: Option<String>,
    prefix: String,
    capacity: usize,
    expiry: Duration,
}

#[derive(Clone)]
enum TargetSpec {
    Url(String),
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// Where the layer connects, resolved and validated by `build()`.
#[derive(Clone)]
enum Target {
    Server(ConnectionInfo),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master_name: String,
        redis: RedisConnectionInfo,
    },
}

struct Inner {
    target: Target,
    prefix: String,
    capacity: usize,
    expiry: Duration,
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
    /// Bounds the publishes in flight.
    pending_publishes: Arc<Semaphore>,
    started: AtomicBool,
    connected: AtomicBool,
    shutdown: CancellationToken,
    publish_warnings: WarnLimiter,
    drop_warnings: WarnLimiter,
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
}

impl RedisLayer {
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
    ///     .capacity(100)
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

    /// A layer configured by the `LIVEVIEW_REDIS_URL` environment variable:
    /// `None` when it is unset or empty, an error when it is not a valid URL.
    ///
    /// ```
    /// use liveview::layer::RedisLayer;
    /// # fn app() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut builder = liveview::LiveView::builder();
    /// if let Some(layer) = RedisLayer::from_env() {
    ///     builder = builder.channel_layer(layer?);
    /// }
    /// # drop(builder);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_env() -> Option<Result<Self, LayerError>> {
        let url = std::env::var(REDIS_URL_ENV).ok()?;
        let url = url.trim();
        if url.is_empty() {
            return None;
        }
        Some(Self::from_url(url))
    }

    /// The prefix of this layer's Redis channel names.
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
}

impl fmt::Debug for RedisLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisLayer")
            .field("target", &inner.target)
            .field("prefix", &inner.prefix)
            .field("capacity", &inner.capacity)
            .field("expiry", &inner.expiry)
            .field("node_id", &inner.node_id)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Shows addresses only, never credentials.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Server(info) => write!(
                f,
                "Server({}, db {})",
                info.addr(),
                info.redis_settings().db()
            ),
            Target::Sentinel {
                sentinels,
                master_name,
                redis,
            } => {
                let sentinels: Vec<String> =
                    sentinels.iter().map(|s| s.addr().to_string()).collect();
                write!(
                    f,
                    "Sentinel({sentinels:?}, master {master_name:?}, db {})",
                    redis.db()
                )
            }
        }
    }
}

impl RedisLayerBuilder {
    fn new(target: TargetSpec) -> Self {
        Self {
            target,
            username: None,
            password: None,
            db: None,
            sentinel_password: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            capacity: DEFAULT_CAPACITY,
            expiry: DEFAULT_EXPIRY,
        }
    }

    /// Prefix of the Redis channel names (default `liveview:`), so that
    /// several applications can share one Redis: only processes with the same
    /// prefix see each other's frames.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound of the local queues (default 1024): frames received from Redis
    /// and waiting for local delivery, and publishes waiting for Redis. When
    /// the first is full, received frames are dropped and counted
    /// ([`RedisLayer::dropped`]); when the second is, publishing fails at once.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Frames received more than `expiry` after they were published are
    /// dropped and counted ([`RedisLayer::expired`]) instead of delivered
    /// (default 60 s). The age is measured with the clocks of the two
    /// processes, so keep them synchronised.
    pub fn expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry;
        self
    }

    /// Password of the Redis server (overrides one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// User name of the Redis server, for ACLs (overrides one in the URL).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Database number (overrides one in the URL). Pub/sub channels are
    /// shared by all databases of a server, so use [`prefix`](Self::prefix),
    /// not the database, to separate applications.
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }

    /// Password of the sentinels themselves, when they require one (Sentinel
    /// only; a `redis://:password@host:port` sentinel address works too).
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }

    /// Checks the settings and makes the layer; nothing is connected yet.
    ///
    /// # Errors
    ///
    /// When the URL or a sentinel address does not parse, or a setting is
    /// out of range (capacity 0, zero expiry, glob characters in the prefix).
    pub fn build(self) -> Result<RedisLayer, LayerError> {
        if self.capacity == 0 {
            return Err(LayerError::new("redis: capacity must be at least 1"));
        }
        if self.expiry.is_zero() {
            return Err(LayerError::new("redis: expiry must be longer than zero"));
        }
        if self.prefix.contains(['*', '?', '[', ']']) {
            // Would turn the PUBSUB CHANNELS pattern used for inspection into
            // something else; also almost certainly a mistake.
            return Err(LayerError::new(
                "redis: the prefix must not contain glob characters (*, ?, [, ])",
            ));
        }
        let target = match self.target {
            TargetSpec::Url(ref url) => {
                let info = parse_url(url)?;
                let redis = apply_credentials(
                    info.redis_settings().clone(),
                    self.username.as_ref(),
                    self.password.as_ref(),
                    self.db,
                );
                Target::Server(info.set_redis_settings(redis))
            }
            TargetSpec::Sentinel {
                ref sentinels,
                ref master_name,
            } => {
                if sentinels.is_empty() {
                    return Err(LayerError::new("redis: no sentinel address given"));
                }
                if master_name.is_empty() {
                    return Err(LayerError::new("redis: the Sentinel master name is empty"));
                }
                let sentinels = sentinels
                    .iter()
                    .map(|address| parse_sentinel(address, self.sentinel_password.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?;
                let redis = apply_credentials(
                    RedisConnectionInfo::default(),
                    self.username.as_ref(),
                    self.password.as_ref(),
                    self.db,
                );
                let target = Target::Sentinel {
                    sentinels,
                    master_name: master_name.clone(),
                    redis,
                };
                // Validate now rather than in the background task.
                sentinel_client(&target)?;
                target
            }
        };

        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let own_header = format!("{MAGIC} {node_id} ").into_bytes();
        let shutdown = CancellationToken::new();
        let inner = Inner {
            target,
            prefix: self.prefix,
            capacity: self.capacity,
            expiry: self.expiry,
            node_id,
            own_header,
            counters: Counters::default(),
            dirty: Mutex::new(HashSet::new()),
            groups_changed: Notify::new(),
            recheck_master: Notify::new(),
            publisher: RwLock::new(None),
            runtime: OnceLock::new(),
            pending_publishes: Arc::new(Semaphore::new(self.capacity)),
            started: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            shutdown: shutdown.clone(),
            publish_warnings: WarnLimiter::default(),
            drop_warnings: WarnLimiter::default(),
        };
        Ok(RedisLayer {
            inner: Arc::new(inner),
            _guard: Arc::new(shutdown.drop_guard()),
        })
    }
}

impl fmt::Debug for RedisLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            TargetSpec::Url(url) => match parse_url(url) {
                Ok(info) => info.addr().to_string(),
                Err(_) => "<invalid URL>".to_owned(),
            },
            TargetSpec::Sentinel {
                sentinels,
                master_name,
            } => format!("sentinels {sentinels:?}, master {master_name:?}"),
        };
        f.debug_struct("RedisLayerBuilder")
            .field("target", &target)
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("capacity", &self.capacity)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

fn parse_url(url: &str) -> Result<ConnectionInfo, LayerError> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => {}
        "rediss" | "valkeys" => {
            if cfg!(not(feature = "redis-tls")) {
                return Err(LayerError::new(
                    "redis: a rediss:// URL needs the `redis-tls` cargo feature of liveview",
                ));
            }
        }
        _ => {
            return Err(LayerError::new(
                "redis: the URL must start with redis:// or rediss://",
            ));
        }
    }
    // redis-rs's parse errors never quote the URL, which may hold a password.
    url.into_connection_info()
        .map_err(|err| LayerError::with_source("redis: invalid URL", err))
}

fn parse_sentinel(address: &str, password: Option<&String>) -> Result<ConnectionInfo, LayerError> {
    let address = address.trim();
    let info = if address.contains("://") {
        parse_url(address)?
    } else {
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                let port = port.parse::<u16>().map_err(|_| {
                    LayerError::new(format!("redis: invalid sentinel address {address:?}"))
                })?;
                (host, port)
            }
            _ => (address, SENTINEL_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(LayerError::new(format!(
                "redis: invalid sentinel address {address:?}"
            )));
        }
        (host.to_owned(), port)
            .into_connection_info()
            .map_err(|err| LayerError::with_source("redis: invalid sentinel address", err))?
    };
    Ok(match password {
        Some(password) => {
            let redis = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(redis)
        }
        None => info,
    })
}

fn apply_credentials(
    mut redis: RedisConnectionInfo,
    username: Option<&String>,
    password: Option<&String>,
    db: Option<i64>,
) -> RedisConnectionInfo {
    if let Some(username) = username {
        redis = redis.set_username(username);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    if let Some(db) = db {
        redis = redis.set_db(db);
    }
    redis
}

fn sentinel_client(target: &Target) -> Result<SentinelClient, LayerError> {
    let Target::Sentinel {
        sentinels,
        master_name,
        redis,
    } = target
    else {
        return Err(LayerError::new("redis: not a Sentinel configuration"));
    };
    let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis.clone());
    SentinelClient::build(
        sentinels.clone(),
        master_name.clone(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|err| LayerError::with_source("redis: invalid Sentinel configuration", err))
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

/// First word of every message; a future format changes it.
const MAGIC: &str = "lv1";

/// A message as it travels through Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Envelope<'a> {
    /// Id of the publishing process.
    node: &'a str,
    /// Publish time, milliseconds since the Unix epoch.
    sent_ms: u64,
    /// The frame, as sent to the browser.
    frame: &'a str,
}

/// Why a message from Redis was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeError {
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

fn encode(node: &str, sent_ms: u64, frame: &str) -> Vec<u8> {
    let header = format!("{MAGIC} {node} {sent_ms}\n");
    let mut out = Vec::with_capacity(header.len() + frame.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(frame.as_bytes());
    out
}

fn decode(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
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
    // Later versions of the format may add words; ignore them.
    let frame = std::str::from_utf8(&payload[newline + 1..]).map_err(|_| DecodeError::NotUtf8)?;
    Ok(Envelope {
        node,
        sent_ms,
        frame,
    })
}

/// Whether a message sent at `sent_ms` is too old at `now_ms`. A message from
/// the future (clock skew) is not.
fn is_expired(sent_ms: u64, now_ms: u64, expiry: Duration) -> bool {
    let age = u128::from(now_ms.saturating_sub(sent_ms));
    age > expiry.as_millis()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------

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
        if let Target::Server(info) = &inner.target {
            match new_publisher(info.clone()) {
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
        let (queue, incoming) = mpsc::channel(inner.capacity);
        runtime.spawn(deliver_incoming(
            self.inner.clone(),
            local.clone(),
            incoming,
        ));
        runtime.spawn(run_subscriber(self.inner.clone(), local, queue));
        tracing::debug!(layer = ?self, "redis layer started");
    }

    fn subscribe(&self, group: &str) {
        self.inner.group_changed(group);
    }

    fn unsubscribe(&self, group: &str) {
        self.inner.group_changed(group);
    }

    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let result = if tokio::runtime::Handle::try_current().is_ok() {
                inner.publish(group, frame).await
            } else {
                // Polled outside any runtime (a plain thread blocking on it):
                // run the publish on the runtime the layer was started in.
                match inner.runtime.get() {
                    Some(runtime) => {
                        let task = {
                            let inner = self.inner.clone();
                            let group = group.to_owned();
                            let frame = frame.clone();
                            runtime.spawn(async move { inner.publish(&group, &frame).await })
                        };
                        task.await.unwrap_or_else(|err| {
                            Err(LayerError::with_source("redis: publish task failed", err))
                        })
                    }
                    None => Err(LayerError::new("redis: layer not started")),
                }
            };
            match result {
                Ok(()) => {
                    inner.counters.published.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(err) => {
                    inner
                        .counters
                        .publish_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = inner.publish_warnings.allow() {
                        tracing::warn!(
                            group,
                            error = %err,
                            similar_suppressed = suppressed,
                            "redis layer: publish failed; other processes miss this frame"
                        );
                    }
                    if matches!(inner.target, Target::Sentinel { .. }) {
                        inner.recheck_master.notify_one();
                    }
                    Err(err)
                }
            }
        })
    }

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
        self.inner.shutdown.cancel();
        self.inner.connected.store(false, Ordering::Release);
        *self
            .inner
            .publisher
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Inner {
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

    async fn publish(&self, group: &str, frame: &Frame) -> Result<(), LayerError> {
        let Ok(_permit) = self.pending_publishes.try_acquire() else {
            return Err(LayerError::new(format!(
                "redis: {} publishes already pending",
                self.capacity
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

    fn count_dropped(&self, why: &str) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.drop_warnings.allow() {
            tracing::warn!(
                reason = why,
                similar_suppressed = suppressed,
                "redis layer: dropped a message from Redis"
            );
        }
    }
}

fn new_publisher(info: ConnectionInfo) -> Result<Publisher, LayerError> {
    let address = info.addr().to_string();
    let client = Client::open(info)
        .map_err(|err| LayerError::with_source("redis: invalid connection settings", err))?;
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

/// Hands frames received from Redis to the local members of their group.
async fn deliver_incoming(
    inner: Arc<Inner>,
    local: LocalDelivery,
    mut incoming: mpsc::Receiver<Msg>,
) {
    while let Some(message) = incoming.recv().await {
        let Some(group) = message
            .get_channel_name()
            .strip_prefix(inner.prefix.as_str())
        else {
            inner.count_dropped("channel outside the prefix");
            continue;
        };
        let envelope = match decode(message.get_payload_bytes()) {
            Ok(envelope) => envelope,
            Err(err) => {
                inner.count_dropped(&err.to_string());
                continue;
            }
        };
        if envelope.node == inner.node_id {
            continue;
        }
        if is_expired(envelope.sent_ms, now_ms(), inner.expiry) {
            inner.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(group, "redis layer: dropped an expired frame");
            continue;
        }
        let frame = Frame::from(envelope.frame);
        local.deliver(group, &frame);
        inner.counters.received.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// The subscriber
// ---------------------------------------------------------------------------

/// Why a subscriber session ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Keeps one subscriber connection up for the life of the layer.
async fn run_subscriber(inner: Arc<Inner>, local: LocalDelivery, queue: mpsc::Sender<Msg>) {
    let mut sentinel = match &inner.target {
        Target::Sentinel { .. } => match sentinel_client(&inner.target) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(error = %err, "redis layer: cannot use Sentinel; the layer stays idle");
                return;
            }
        },
        Target::Server(_) => None,
    };
    let mut backoff = Backoff::new();
    let mut failures: u32 = 0;
    loop {
        let connected = tokio::select! {
            () = inner.shutdown.cancelled() => break,
            connected = connect_subscriber(&inner, sentinel.as_mut()) => connected,
        };
        match connected {
            Ok((pubsub, address)) => {
                if failures > 0 {
                    tracing::info!(%address, "redis layer: reconnected");
                } else {
                    tracing::debug!(%address, "redis layer: subscriber connected");
                }
                failures = 0;
                backoff.reset();
                let end =
                    run_session(&inner, &local, &queue, pubsub, &address, sentinel.as_mut()).await;
                inner.connected.store(false, Ordering::Release);
                match end {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Lost(why) => {
                        tracing::warn!(%address, reason = %why, "redis layer: subscriber connection lost; reconnecting");
                    }
                }
            }
            Err(err) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %err, "redis layer: cannot connect the subscriber; retrying");
                } else {
                    tracing::debug!(error = %err, attempt = failures, "redis layer: subscriber still not connected");
                }
            }
        }
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    inner.connected.store(false, Ordering::Release);
    tracing::debug!("redis layer: subscriber stopped");
}

/// Finds the server (asking Sentinel if configured), points the publisher at
/// it, and opens a subscriber connection.
async fn connect_subscriber(
    inner: &Inner,
    sentinel: Option<&mut SentinelClient>,
) -> Result<(redis::aio::PubSub, String), LayerError> {
    let info = match (&inner.target, sentinel) {
        (Target::Server(info), _) => info.clone(),
        (Target::Sentinel { .. }, Some(sentinel)) => {
            let info = find_master(sentinel).await?;
            let address = info.addr().to_string();
            let current = inner
                .publisher
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|p| p.address.clone());
            if current.as_deref() != Some(address.as_str()) {
                tracing::info!(master = %address, "redis layer: using the master named by Sentinel");
                let publisher = new_publisher(info.clone())?;
                *inner
                    .publisher
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(publisher);
            }
            info
        }
        (Target::Sentinel { .. }, None) => {
            return Err(LayerError::new("redis: no Sentinel client"));
        }
    };
    let address = info.addr().to_string();
    let client = Client::open(info)
        .map_err(|err| LayerError::with_source("redis: invalid connection settings", err))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok((pubsub, address)),
        Ok(Err(err)) => Err(LayerError::with_source(
            format!("redis: cannot connect to {address}"),
            err,
        )),
        Err(_) => Err(LayerError::new(format!(
            "redis: connecting to {address} timed out"
        ))),
    }
}

async fn find_master(sentinel: &mut SentinelClient) -> Result<ConnectionInfo, LayerError> {
    match tokio::time::timeout(SENTINEL_TIMEOUT, sentinel.async_get_client()).await {
        Ok(Ok(client)) => Ok(client.get_connection_info().clone()),
        Ok(Err(err)) => Err(LayerError::with_source(
            "redis: Sentinel did not name a master",
            err,
        )),
        Err(_) => Err(LayerError::new(
            "redis: asking Sentinel for the master timed out",
        )),
    }
}

/// One connected period of the subscriber: subscribe to every live group,
/// then follow changes and forward messages until the connection fails.
async fn run_session(
    inner: &Inner,
    local: &LocalDelivery,
    queue: &mpsc::Sender<Msg>,
    pubsub: redis::aio::PubSub,
    address: &str,
    mut sentinel: Option<&mut SentinelClient>,
) -> SessionEnd {
    let (mut sink, mut stream) = pubsub.split();
    let mut subscribed = HashSet::new();

    // Every group with local members now. Changes from here on are in
    // `dirty` (cleared first, so none is missed) and applied by `reconcile`.
    inner.lock_dirty().clear();
    let initial = local.groups();
    if let Err(why) = command_in_chunks(inner, &mut sink, Subscription::Subscribe, &initial).await {
        return SessionEnd::Lost(why);
    }
    subscribed.extend(initial);
    inner.connected.store(true, Ordering::Release);
    tracing::debug!(%address, groups = subscribed.len(), "redis layer: subscribed");

    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    let mut master_check = tokio::time::interval(SENTINEL_CHECK_INTERVAL);
    master_check.reset();
    let uses_sentinel = sentinel.is_some();

    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return SessionEnd::Shutdown,
            message = stream.next() => match message {
                Some(message) => forward(inner, queue, message),
                None => return SessionEnd::Lost("connection closed".to_owned()),
            },
            () = inner.groups_changed.notified() => {
                if let Err(why) = reconcile(inner, local, &mut sink, &mut subscribed).await {
                    return SessionEnd::Lost(why);
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return SessionEnd::Lost(format!("PING failed: {err}")),
                    Err(_) => return SessionEnd::Lost("PING timed out".to_owned()),
                }
            }
            () = inner.recheck_master.notified(), if uses_sentinel => {
                if let Some(moved) = master_moved(sentinel.as_deref_mut(), address).await {
                    return SessionEnd::Lost(moved);
                }
            }
            _ = master_check.tick(), if uses_sentinel => {
                if let Some(moved) = master_moved(sentinel.as_deref_mut(), address).await {
                    return SessionEnd::Lost(moved);
                }
            }
        }
    }
}

/// Asks Sentinel where the master is; `Some(reason)` when it is no longer at
/// `address`. A Sentinel that cannot be asked leaves things as they are.
async fn master_moved(sentinel: Option<&mut SentinelClient>, address: &str) -> Option<String> {
    let sentinel = sentinel?;
    match find_master(sentinel).await {
        Ok(info) => {
            let master = info.addr().to_string();
            (master != address).then(|| format!("the master moved from {address} to {master}"))
        }
        Err(err) => {
            tracing::debug!(error = %err, "redis layer: could not check the master with Sentinel");
            None
        }
    }
}

/// Queues a message for delivery, skipping this process's own.
fn forward(inner: &Inner, queue: &mpsc::Sender<Msg>, message: Msg) {
    if message.get_payload_bytes().starts_with(&inner.own_header) {
        return;
    }
    match queue.try_send(message) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => inner.count_dropped("local queue full"),
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[derive(Clone, Copy)]
enum Subscription {
    Subscribe,
    Unsubscribe,
}

/// Applies the group changes made since the last call: subscribes to the
/// changed groups that have local members, unsubscribes from the others.
async fn reconcile(
    inner: &Inner,
    local: &LocalDelivery,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<String>,
) -> Result<(), String> {
    let dirty = std::mem::take(&mut *inner.lock_dirty());
    if dirty.is_empty() {
        return Ok(());
    }
    // Read after taking `dirty`: the table is at least as new as every
    // change noted there; a later change marks its group dirty again.
    let live: HashSet<String> = local.groups().into_iter().collect();
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for group in dirty {
        match (live.contains(&group), subscribed.contains(&group)) {
            (true, false) => add.push(group),
            (false, true) => remove.push(group),
            _ => {}
        }
    }
    command_in_chunks(inner, sink, Subscription::Subscribe, &add).await?;
    subscribed.extend(add);
    command_in_chunks(inner, sink, Subscription::Unsubscribe, &remove).await?;
    for group in &remove {
        subscribed.remove(group);
    }
    Ok(())
}

async fn command_in_chunks(
    inner: &Inner,
    sink: &mut PubSubSink,
    kind: Subscription,
    groups: &[String],
) -> Result<(), String> {
    for chunk in groups.chunks(SUBSCRIBE_CHUNK) {
        let prefixed: Vec<String> = chunk.iter().map(|group| inner.channel(group)).collect();
        let result = match kind {
            Subscription::Subscribe => {
                tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(prefixed)).await
            }
            Subscription::Unsubscribe => {
                tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(prefixed)).await
            }
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("(UN)SUBSCRIBE failed: {err}")),
            Err(_) => return Err("(UN)SUBSCRIBE timed out".to_owned()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Capped exponential backoff with jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: BACKOFF_MIN }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// A delay between half and all of the current step; the step doubles up
    /// to the cap.
    fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(BACKOFF_MAX);
        let half = step / 2;
        let jitter = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let random = (uuid::Uuid::new_v4().as_u128() as u64) % jitter.max(1);
        half + Duration::from_micros(random)
    }
}

/// Lets one warning of a kind through per [`WARN_EVERY`], counting the rest.
#[derive(Default)]
struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    /// `Some(number suppressed since the last one)` when a warning may be
    /// logged now.
    fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
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
                frame,
            }
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
            (envelope.node, envelope.sent_ms, envelope.frame),
            ("node", 5, "{}")
        );
    }

    #[test]
    fn own_messages_are_recognised_by_their_header() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        let own = encode(layer.node_id(), now_ms(), "{}");
        assert!(own.starts_with(&layer.inner.own_header));
        let other = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        assert_ne!(layer.node_id(), other.node_id());
        let theirs = encode(other.node_id(), now_ms(), "{}");
        assert!(!theirs.starts_with(&layer.inner.own_header));
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

    fn server(layer: &RedisLayer) -> &ConnectionInfo {
        match &layer.inner.target {
            Target::Server(info) => info,
            Target::Sentinel { .. } => panic!("not a server target"),
        }
    }

    #[test]
    fn url_settings_and_overrides() {
        let layer = RedisLayer::from_url("redis://:s3cret@10.0.0.5:6380/3").unwrap();
        let info = server(&layer);
        assert_eq!(info.addr().to_string(), "10.0.0.5:6380");
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(layer.prefix(), DEFAULT_PREFIX);
        assert_eq!(layer.inner.capacity, DEFAULT_CAPACITY);
        assert_eq!(layer.inner.expiry, DEFAULT_EXPIRY);

        let layer = RedisLayer::builder("redis://:s3cret@10.0.0.5:6380/3")
            .password("other")
            .username("app")
            .db(7)
            .prefix("shop:")
            .capacity(10)
            .expiry(Duration::from_secs(2))
            .build()
            .unwrap();
        let info = server(&layer);
        assert_eq!(info.redis_settings().password(), Some("other"));
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(info.redis_settings().db(), 7);
        assert_eq!(layer.prefix(), "shop:");
        assert_eq!(layer.inner.capacity, 10);
        assert_eq!(layer.inner.expiry, Duration::from_secs(2));
    }

    #[test]
    fn bad_settings_are_refused() {
        for url in [
            "",
            "127.0.0.1:6379",
            "http://127.0.0.1",
            "redis://",
            "redis://h/notadb",
        ] {
            assert!(RedisLayer::from_url(url).is_err(), "{url:?} accepted");
        }
        #[cfg(not(feature = "redis-tls"))]
        assert!(
            RedisLayer::from_url("rediss://h")
                .unwrap_err()
                .to_string()
                .contains("redis-tls")
        );
        assert!(
            RedisLayer::builder("redis://h")
                .capacity(0)
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::builder("redis://h")
                .expiry(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::builder("redis://h")
                .prefix("a*")
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::sentinel(Vec::<String>::new(), "m")
                .build()
                .is_err()
        );
        assert!(RedisLayer::sentinel(["h:1"], "").build().is_err());
        assert!(RedisLayer::sentinel(["h:notaport"], "m").build().is_err());
    }

    #[test]
    fn credentials_stay_out_of_debug_and_errors() {
        let layer = RedisLayer::from_url("redis://user:hunter2@h:1/2").unwrap();
        let shown = format!("{layer:?}");
        assert!(shown.contains("h:1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let builder = RedisLayer::builder("redis://:hunter2@h").password("hunter3");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        let sentinel = RedisLayer::sentinel(["redis://:hunter2@s:1"], "m")
            .password("hunter3")
            .build()
            .unwrap();
        let shown = format!("{sentinel:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        let err = RedisLayer::from_url("redis://:hunter2@h/x").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[test]
    fn sentinel_addresses() {
        let parse = |a: &str| parse_sentinel(a, None).unwrap();
        assert_eq!(parse("s1:26380").addr().to_string(), "s1:26380");
        assert_eq!(parse("s1").addr().to_string(), "s1:26379");
        assert_eq!(parse("[::1]:5000").addr().to_string(), "::1:5000");
        let with_url = parse("redis://:pw@s2:1234");
        assert_eq!(with_url.addr().to_string(), "s2:1234");
        assert_eq!(with_url.redis_settings().password(), Some("pw"));
        let pw = "sentinel-pw".to_owned();
        let with_password = parse_sentinel("s3", Some(&pw)).unwrap();
        assert_eq!(
            with_password.redis_settings().password(),
            Some("sentinel-pw")
        );

        let layer = RedisLayer::sentinel(vec!["a:1".to_owned(), "b:2".to_owned()], "mymaster")
            .password("pw")
            .db(4)
            .build()
            .unwrap();
        let Target::Sentinel {
            sentinels,
            master_name,
            redis,
        } = &layer.inner.target
        else {
            panic!("not a sentinel target");
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(master_name, "mymaster");
        assert_eq!(redis.password(), Some("pw"));
        assert_eq!(redis.db(), 4);
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

    #[tokio::test]
    async fn publishing_before_start_fails_and_is_counted() {
        let layer = RedisLayer::from_url("redis://127.0.0.1").unwrap();
        let frame = Frame::from("{}");
        assert!(layer.publish("broadcast", &frame).await.is_err());
        assert_eq!((layer.published(), layer.publish_failures()), (0, 1));
        assert!(layer.health().await.is_err());
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut backoff = Backoff::new();
        let mut longest = Duration::ZERO;
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(delay <= BACKOFF_MAX);
            longest = longest.max(delay);
        }
        assert!(longest >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_MIN);
    }

    #[test]
    fn repeated_warnings_are_limited() {
        let limiter = WarnLimiter::default();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 2);
    }
}
