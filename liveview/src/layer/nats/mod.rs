//! The NATS channel layer: frames travel between server processes on core
//! NATS subjects, each group's recent frames are kept in a JetStream
//! stream that numbers them, and each room's presence is kept in a
//! JetStream key-value bucket.
//!
//! # Names
//!
//! With the prefix `P` (default `liveview`) and a group `G` (written as one
//! subject token, see `names`):
//!
//! - `P.fan.G`: core subject of the group's frames, one subscription per
//!   group with local members;
//! - stream `P_log`, subjects `P.log.>`: the group's log on `P.log.G`,
//!   capped per subject at the replay capacity;
//! - `P.probe.<node id>`: a subject no one listens on; the server's answer
//!   to a request sent there (no responders) shows that it has the
//!   subscriptions the process made before;
//! - buckets `P_presence` (key `<room>.<node id>`: that process's members
//!   of the room) and `P_nodes` (key `<node id>`: its heartbeat, expiring
//!   after 15 s).
//!
//! # Numbering
//!
//! A group's frames are numbered 1, 2, 3… in its log. The publisher reads
//! the group's newest log message (cached after the first time), and
//! appends the next number with `Nats-Expected-Last-Subject-Sequence`: if
//! another process appended first, JetStream refuses, and the publisher
//! reads the newest message again and retries. Numbers are thus shared by
//! every process and survive restarts of the server and of the processes.
//! Each message carries its group's epoch, which changes only when the
//! numbering restarts (the stream was recreated, or the group's log aged
//! out entirely).
//!
//! Once appended, the frame goes to the other processes on the core
//! subject, with its number; every process, including the publisher,
//! delivers it through its sequencer, which restores the order of the
//! log and fetches from the log what the core subject lost (a
//! reconnection).

mod log;
mod names;
mod presence;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::names::{Names, valid_prefix};
use self::presence::OwnPresence;
use super::sequencer::Sequencer;
use super::subscriptions::{self, Hold, Subscriptions};
use super::{ChannelLayer, Frame, LayerError, LocalDelivery, ReplaySetting};

/// Default prefix of the layer's subjects, stream and buckets.
pub const DEFAULT_PREFIX: &str = "liveview";

/// Time allowed for one request to the server (a publish's acknowledgement,
/// a read of the log, a key).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed to number and publish a frame, retries included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a frame may wait for an earlier one before the layer reads the
/// missing frames from the log.
const GAP_WAIT: Duration = Duration::from_millis(250);

/// Headers of the layer's messages.
const H_NODE: &str = "Lv-Node";
const H_SEQ: &str = "Lv-Seq";
const H_EPOCH: &str = "Lv-Epoch";
const H_TIME: &str = "Lv-Time";

/// A channel layer on NATS: core subjects for fan-out, a JetStream stream
/// for each group's numbered log, a key-value bucket for presence.
///
/// Cloning is cheap and every clone is the same layer. Background work
/// stops on [`ChannelLayer::shutdown`] or when the last clone is dropped.
///
/// ```no_run
/// use liveview::layer::NatsLayer;
///
/// let layer = NatsLayer::builder("nats://127.0.0.1:4222").prefix("shop").build()?;
/// let live = liveview::LiveView::builder().channel_layer(layer.clone()).build()?;
/// # drop(live);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct NatsLayer {
    inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
}

/// Settings of a [`NatsLayer`], from [`NatsLayer::builder`].
#[derive(Debug, Clone)]
pub struct NatsLayerBuilder {
    url: String,
    prefix: String,
}

struct Inner {
    url: String,
    names: Names,
    node_id: String,
    /// The application's replay setting, from `start`.
    replay: ReplaySetting,
    conn: RwLock<Option<Arc<Conn>>>,
    /// Local delivery, from `start` (it does not keep the app alive).
    local: OnceLock<LocalDelivery>,
    runtime: OnceLock<tokio::runtime::Handle>,
    sequencer: Sequencer,
    /// Each group's newest log message as this process knows it, behind a
    /// lock per group that serialises this process's publishes to it.
    tails: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<log::Tail>>>>>,
    dirty: Mutex<HashSet<String>>,
    groups_changed: Notify,
    reconnected: Notify,
    started: AtomicBool,
    connected: AtomicBool,
    /// The first attempt to connect is over, whatever came of it: from
    /// then on a disconnected layer is away, not on its way.
    first_attempt_over: AtomicBool,
    /// The groups whose subscription the server has, on the connection
    /// that is up now.
    subscriptions: Subscriptions,
    shutdown: CancellationToken,
    own_presence: OwnPresence,
    /// For tests: holds a group's subscription between the server having
    /// it and the start of its delivery.
    catch_ups: Hold,
    /// For tests: holds each frame received on a group's subject before it
    /// is handled.
    incoming_frames: Hold,
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
}

/// One client connection and what hangs off it.
struct Conn {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: OnceCell<jetstream::stream::Stream>,
    presence: OnceCell<jetstream::kv::Store>,
    nodes: OnceCell<jetstream::kv::Store>,
}

impl NatsLayerBuilder {
    /// The prefix of subjects, stream and buckets (default `liveview`):
    /// ASCII letters, digits, `-` and `_`. Applications sharing a server
    /// use different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// When the URL is not a `nats://` (or `tls://`) URL or the prefix has
    /// characters that cannot name a stream.
    pub fn build(self) -> Result<NatsLayer, LayerError> {
        if !valid_prefix(&self.prefix) {
            return Err(LayerError::new(format!(
                "nats: invalid prefix {:?} (letters, digits, - and _)",
                self.prefix
            )));
        }
        let scheme_ok = ["nats://", "tls://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        let servers: Result<Vec<async_nats::ServerAddr>, _> =
            self.url.split(',').map(|u| u.trim().parse()).collect();
        if !scheme_ok || servers.is_err() {
            return Err(LayerError::new(format!(
                "nats: invalid URL {:?} (nats://host:port)",
                self.url
            )));
        }
        let shutdown = CancellationToken::new();
        let inner = Inner {
            url: self.url,
            names: Names::new(&self.prefix),
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            replay: ReplaySetting::default(),
            conn: RwLock::new(None),
            local: OnceLock::new(),
            runtime: OnceLock::new(),
            sequencer: Sequencer::default(),
            tails: Mutex::default(),
            dirty: Mutex::default(),
            groups_changed: Notify::new(),
            reconnected: Notify::new(),
            started: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            first_attempt_over: AtomicBool::new(false),
            subscriptions: Subscriptions::default(),
            shutdown: shutdown.clone(),
            own_presence: OwnPresence::default(),
            catch_ups: Hold::default(),
            incoming_frames: Hold::default(),
            published: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            received: AtomicU64::new(0),
        };
        Ok(NatsLayer {
            inner: Arc::new(inner),
            _guard: Arc::new(shutdown.drop_guard()),
        })
    }
}

impl NatsLayer {
    /// A builder for a layer using the server(s) at `url`
    /// (`nats://[user:password@]host:port`, several separated by commas).
    /// Nothing is connected here: the layer connects when the application
    /// starts it, and keeps trying while the server is unreachable.
    ///
    /// ```
    /// let layer = liveview::layer::NatsLayer::builder("nats://127.0.0.1:4222")
    ///     .prefix("blog")
    ///     .build()?;
    /// assert_eq!(layer.prefix(), "blog");
    /// # Ok::<(), liveview::layer::LayerError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> NatsLayerBuilder {
        NatsLayerBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    subscription_test_hooks!();

    /// Fault injection for tests: while `held`, this process's heartbeat
    /// (the first one included) waits before it is written.
    #[doc(hidden)]
    pub fn hold_heartbeats(&self, held: bool) {
        self.inner.own_presence.heartbeats.set(held);
    }

    /// Fault injection for tests: while `held`, a presence read that found
    /// another process's members without its heartbeat waits before it
    /// removes them.
    #[doc(hidden)]
    pub fn hold_presence_cleanups(&self, held: bool) {
        self.inner.own_presence.cleanups.set(held);
    }

    /// For tests: how many presence reads wait now to remove a process's
    /// members (see [`hold_presence_cleanups`](Self::hold_presence_cleanups)).
    #[doc(hidden)]
    pub fn waiting_presence_cleanups(&self) -> usize {
        self.inner.own_presence.cleanups.waiting()
    }

    /// For tests: how many heartbeats wait now to be written (see
    /// [`hold_heartbeats`](Self::hold_heartbeats)).
    #[doc(hidden)]
    pub fn waiting_heartbeats(&self) -> usize {
        self.inner.own_presence.heartbeats.waiting()
    }

    /// Fault injection for tests: while `held`, a group's new subscription,
    /// once the server has it, waits before its delivery starts at its
    /// log's tail.
    #[doc(hidden)]
    pub fn hold_catch_ups(&self, held: bool) {
        self.inner.catch_ups.set(held);
    }

    /// For tests: how many new subscriptions wait now to start their
    /// delivery (see [`hold_catch_ups`](Self::hold_catch_ups)).
    #[doc(hidden)]
    pub fn waiting_catch_ups(&self) -> usize {
        self.inner.catch_ups.waiting()
    }

    /// Fault injection for tests: while `held`, each frame received on a
    /// group's subject waits before it is handled.
    #[doc(hidden)]
    pub fn hold_incoming_frames(&self, held: bool) {
        self.inner.incoming_frames.set(held);
    }

    /// For tests: how many received frames wait now to be handled (see
    /// [`hold_incoming_frames`](Self::hold_incoming_frames)).
    #[doc(hidden)]
    pub fn waiting_incoming_frames(&self) -> usize {
        self.inner.incoming_frames.waiting()
    }

    /// For tests: whether `group`'s delivery has started here (its log's
    /// tail read, or the log found empty).
    #[doc(hidden)]
    pub fn delivery_started(&self, group: &str) -> bool {
        self.inner.sequencer.started(group)
    }

    /// For tests: whether `group` counts as subscribed now, without
    /// waiting (see [`ChannelLayer::subscribed`]).
    #[doc(hidden)]
    pub fn subscribed_now(&self, group: &str) -> bool {
        self.inner.subscriptions.is_confirmed(group)
    }

    /// A layer for `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`NatsLayerBuilder::build`].
    ///
    /// ```
    /// let layer = liveview::layer::NatsLayer::from_url("nats://127.0.0.1:4222")?;
    /// assert_eq!(layer.prefix(), "liveview");
    /// assert!(liveview::layer::NatsLayer::from_url("http://example.com").is_err());
    /// # Ok::<(), liveview::layer::LayerError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, LayerError> {
        Self::builder(url).build()
    }

    /// The prefix of the layer's subjects, stream and buckets.
    pub fn prefix(&self) -> &str {
        self.inner.names.prefix()
    }

    /// The id of this process in the layer's messages and keys.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Whether the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Frames published successfully.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Publishes that failed.
    pub fn publish_failures(&self) -> u64 {
        self.inner.publish_failures.load(Ordering::Relaxed)
    }

    /// Frames from other processes handed to local delivery.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for NatsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsLayer")
            .field("url", &redacted(&self.inner.url))
            .field("prefix", &self.prefix())
            .field("replay", &self.inner.replay.get())
            .field("node_id", &self.inner.node_id)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// The URL without its credentials, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl ChannelLayer for NatsLayer {
    fn start(&self, local: LocalDelivery) {
        let inner = &self.inner;
        if inner.started.swap(true, Ordering::AcqRel) {
            tracing::warn!("nats layer: start called twice; ignored");
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("nats layer: start must be called inside a tokio runtime");
            return;
        };
        let _ = inner.runtime.set(runtime.clone());
        inner.replay.set(local.replay());
        let _ = inner.local.set(local);
        runtime.spawn(run(self.inner.clone()));
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
            let inner = self.inner.clone();
            let (group, frame) = (group.to_owned(), frame.clone());
            let result = self
                .inner
                .on_runtime(async move { inner.publish_plain(&group, &frame).await })
                .await;
            self.inner.count(result)
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
            let inner = self.inner.clone();
            let (group, frame) = (group.to_owned(), frame.clone());
            let result = self
                .inner
                .on_runtime(async move { inner.publish_numbered(&group, &frame).await })
                .await;
            self.inner.count(result).map(Some)
        })
    }

    shared_state_methods!("nats");

    fn health(&self) -> BoxFuture<'_, Result<(), LayerError>> {
        Box::pin(async move {
            let conn = self.inner.conn()?;
            if !self.inner.connected.load(Ordering::Acquire) {
                return Err(LayerError::new("nats: not connected"));
            }
            match tokio::time::timeout(REQUEST_TIMEOUT, conn.client.flush()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(LayerError::with_source("nats: flush failed", err)),
                Err(_) => Err(LayerError::new("nats: flush timed out")),
            }
        })
    }

    fn shutdown(&self) {
        let inner = self.inner.clone();
        inner.shutdown.cancel();
        inner.connected.store(false, Ordering::Release);
        // Best effort: other processes stop counting this one's members at
        // once rather than when its heartbeat expires. The connection is
        // closed after that.
        match (inner.presence_farewell(), inner.runtime.get()) {
            (Some(farewell), Some(runtime)) => {
                let closing = inner.clone();
                runtime.spawn(async move {
                    farewell.await;
                    closing.close();
                });
            }
            _ => inner.close(),
        }
    }
}

impl Inner {
    /// The server is away (see [`subscriptions::is_away`]).
    fn is_away(&self) -> bool {
        subscriptions::is_away(&self.connected, &self.first_attempt_over)
    }

    fn conn(&self) -> Result<Arc<Conn>, LayerError> {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                if self.shutdown.is_cancelled() {
                    LayerError::new("nats: layer shut down")
                } else {
                    LayerError::new("nats: layer not started")
                }
            })
    }

    fn close(&self) {
        *self.conn.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn lock_dirty(&self) -> MutexGuard<'_, HashSet<String>> {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn group_changed(&self, group: &str) {
        self.lock_dirty().insert(group.to_owned());
        self.groups_changed.notify_one();
    }

    fn local(&self) -> Option<&LocalDelivery> {
        self.local.get()
    }

    /// Runs `task` on the layer's runtime when polled outside any runtime.
    async fn on_runtime<T: Send + 'static>(
        &self,
        task: impl Future<Output = Result<T, LayerError>> + Send + 'static,
    ) -> Result<T, LayerError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return task.await;
        }
        match self.runtime.get() {
            Some(runtime) => runtime.spawn(task).await.unwrap_or_else(|err| {
                Err(LayerError::with_source("nats: publish task failed", err))
            }),
            None => Err(LayerError::new("nats: layer not started")),
        }
    }

    fn count<T>(&self, result: Result<T, LayerError>) -> Result<T, LayerError> {
        match &result {
            Ok(_) => self.published.fetch_add(1, Ordering::Relaxed),
            Err(err) => {
                tracing::debug!(error = %err, "nats layer: publish failed");
                self.publish_failures.fetch_add(1, Ordering::Relaxed)
            }
        };
        result
    }

    /// Whether the server answered a request sent now: it then processed
    /// everything the client sent before it, subscriptions included (after
    /// a reconnection, the client subscribes again before it sends
    /// anything else).
    async fn round_trip(&self, conn: &Conn) -> bool {
        let probe = conn
            .client
            .request(self.names.probe_subject(&self.node_id), bytes::Bytes::new());
        match tokio::time::timeout(REQUEST_TIMEOUT, probe).await {
            Ok(Ok(_)) => true,
            Ok(Err(err)) => err.kind() == async_nats::client::RequestErrorKind::NoResponders,
            Err(_) => false,
        }
    }

    /// An unnumbered frame to the other processes.
    async fn publish_plain(&self, group: &str, frame: &Frame) -> Result<(), LayerError> {
        let conn = self.conn()?;
        if !self.connected.load(Ordering::Acquire) {
            return Err(LayerError::new("nats: not connected"));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(H_NODE, self.node_id.as_str());
        headers.insert(H_TIME, now_ms().to_string().as_str());
        let payload = bytes_of(frame);
        conn.client
            .publish_with_headers(self.names.fan_subject(group), headers, payload)
            .await
            .map_err(|err| LayerError::with_source("nats: publish failed", err))
    }

    /// A frame that arrived on a group's fan-out subject.
    fn incoming(&self, group: &str, message: &async_nats::Message) {
        let headers = message.headers.as_ref();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        if header(H_NODE) == Some(self.node_id.as_str()) {
            return;
        }
        let Ok(text) = std::str::from_utf8(&message.payload) else {
            if let Some(local) = self.local() {
                local.count(|m| m.layer_dropped.add(1));
            }
            tracing::debug!(group, "nats layer: dropped a frame that is not UTF-8");
            return;
        };
        let frame = Frame::from(text);
        let Some(local) = self.local() else { return };
        self.received.fetch_add(1, Ordering::Relaxed);
        local.count(|m| m.layer_received.add(1));
        let seq = header(H_SEQ).and_then(|s| s.parse::<u64>().ok());
        match (seq, header(H_EPOCH)) {
            (Some(seq), Some(epoch)) if self.replay.is_some() => {
                self.sequencer
                    .offer(group, epoch, seq, &frame, &mut |seq, epoch, frame| {
                        local.deliver_sequenced(group, frame, seq, epoch);
                    });
            }
            // Numbering comes from the log only: an unnumbered frame is
            // not given a number of this process's own.
            _ if self.replay.is_some() => {
                local.deliver_unnumbered(group, &frame);
            }
            _ => {
                local.deliver(group, &frame);
            }
        }
    }
}

fn bytes_of(frame: &Frame) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(frame.as_str().as_bytes())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The layer's background work: connect, follow the groups, repair gaps.
async fn run(inner: Arc<Inner>) {
    let events = inner.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("liveview {}", inner.node_id))
        .retry_on_initial_connect()
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .event_callback(move |event| {
            let inner = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        inner.connected.store(true, Ordering::Release);
                        inner.first_attempt_over.store(true, Ordering::Release);
                        inner.reconnected.notify_one();
                        tracing::info!("nats layer: connected");
                    }
                    async_nats::Event::Disconnected => {
                        inner.connected.store(false, Ordering::Release);
                        inner.subscriptions.reset();
                        tracing::warn!("nats layer: disconnected; reconnecting");
                    }
                    async_nats::Event::ClientError(error) => {
                        // An attempt to connect failed.
                        inner.first_attempt_over.store(true, Ordering::Release);
                        tracing::debug!(%error, "nats layer: event");
                    }
                    other => tracing::debug!(event = %other, "nats layer: event"),
                }
            }
        });
    let servers: Vec<async_nats::ServerAddr> = inner
        .url
        .split(',')
        .filter_map(|u| u.trim().parse().ok())
        .collect();
    let client = match options.connect(servers).await {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "nats layer: cannot connect; the layer stays idle");
            return;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client.clone());
    *inner.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Conn {
        client,
        js,
        stream: OnceCell::new(),
        presence: OnceCell::new(),
        nodes: OnceCell::new(),
    }));
    follow_groups(inner.clone()).await;
    tracing::debug!("nats layer: stopped");
}

/// Keeps one subscription per group with local members, starts each
/// group's delivery from its log, repairs gaps, and catches up after a
/// reconnection.
async fn follow_groups(inner: Arc<Inner>) {
    let mut subscribed: HashMap<String, CancellationToken> = HashMap::new();
    let mut repair = tokio::time::interval(GAP_WAIT / 2);
    repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = inner.groups_changed.notified() => {
                reconcile(&inner, &mut subscribed).await;
            }
            () = inner.reconnected.notified() => {
                // The client subscribed again on the new connection.
                confirm_subscriptions(&inner, &subscribed).await;
                // Frames published while this process was away are in the
                // logs: deliver them.
                for group in subscribed.keys() {
                    inner.catch_up(group).await;
                }
            }
            _ = repair.tick() => {
                // Subscriptions that could not be made are tried again,
                // even when no group changes any more, and those the server
                // was not seen to have are checked again.
                reconcile(&inner, &mut subscribed).await;
                confirm_subscriptions(&inner, &subscribed).await;
                if inner.replay.is_some() {
                    for gap in inner.sequencer.gaps(GAP_WAIT) {
                        inner.repair(&gap).await;
                    }
                }
            }
        }
    }
    for (_, token) in subscribed {
        token.cancel();
    }
}

/// Applies the group changes made since the last call: subscribes to the
/// changed groups that have local members, unsubscribes from the others
/// (their confirmation withdrawn before their members are looked at: see
/// [`Subscriptions::changes`](super::subscriptions::Subscriptions::changes)).
async fn reconcile(inner: &Arc<Inner>, subscribed: &mut HashMap<String, CancellationToken>) {
    if inner.subscriptions.changes_held() {
        return;
    }
    let dirty = std::mem::take(&mut *inner.lock_dirty());
    if dirty.is_empty() {
        return;
    }
    let Some(local) = inner.local() else {
        inner.lock_dirty().extend(dirty);
        return;
    };
    let changes = inner.subscriptions.changes(
        dirty,
        |group| subscribed.contains_key(group),
        |group| local.has_members(group),
    );
    for group in changes.subscribe {
        if let Some(token) = subscribe_group(inner, &group).await {
            subscribed.insert(group, token);
        } else {
            // Try again at the next change or reconnection.
            inner.lock_dirty().insert(group);
        }
    }
    if changes.unsubscribe.is_empty() {
        return;
    }
    inner.subscriptions.before_unsubscribe().await;
    for group in changes.unsubscribe {
        if let Some(token) = subscribed.remove(&group) {
            token.cancel();
        }
        inner.sequencer.forget(&group);
    }
}

/// Subscribe to a group's fan-out subject, then start its delivery at its
/// log's newest frame.
async fn subscribe_group(inner: &Arc<Inner>, group: &str) -> Option<CancellationToken> {
    let conn = inner.conn().ok()?;
    let subject = inner.names.fan_subject(group);
    let mut subscriber = match conn.client.subscribe(subject).await {
        Ok(subscriber) => subscriber,
        Err(err) => {
            tracing::warn!(group, error = %err, "nats layer: cannot subscribe");
            return None;
        }
    };
    // The subscription is on the server once it answered a request sent
    // after it: a frame numbered after the tail read below reaches this
    // process.
    let on_server = inner.round_trip(&conn).await;
    let token = inner.shutdown.child_token();
    let cancelled = token.clone();
    let task_inner = inner.clone();
    let owned_group = group.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancelled.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(message) => {
                        task_inner.incoming_frames.pass().await;
                        task_inner.incoming(&owned_group, &message);
                    }
                    None => break,
                },
            }
        }
        let _ = subscriber.unsubscribe().await;
    });
    inner.catch_ups.pass().await;
    if inner.replay.is_some() {
        inner.catch_up(group).await;
    }
    // Confirmed once its delivery has started: a frame published after
    // that is numbered after the tail read, and is delivered. Confirmed
    // before, a frame appended to the log before the tail read, whose
    // copy on the subject arrives after it, would be taken as delivered
    // and dropped, though published once the group counted as subscribed.
    if on_server {
        inner.subscriptions.confirm([&group.to_owned()]);
    }
    Some(token)
}

/// Confirm the subscriptions the server was not yet seen to have (after a
/// reconnection, or when the round trip after subscribing failed).
async fn confirm_subscriptions(inner: &Inner, subscribed: &HashMap<String, CancellationToken>) {
    let unconfirmed: Vec<&String> = subscribed
        .keys()
        .filter(|group| !inner.subscriptions.is_confirmed(group))
        .collect();
    if unconfirmed.is_empty() || !inner.connected.load(Ordering::Acquire) {
        return;
    }
    let Ok(conn) = inner.conn() else { return };
    if inner.round_trip(&conn).await {
        inner.subscriptions.confirm(unconfirmed);
    }
}
