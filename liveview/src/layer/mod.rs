//! Channel layers: how a frame published to a group reaches every member of
//! that group, in this process and in the others.
//!
//! Membership and fan-out to the connections of *this* process always happen
//! here, in the local group table, whatever layer is configured. A layer only
//! carries frames between processes: it is told when a group gains its first
//! local member ([`ChannelLayer::subscribe`]) and loses its last
//! ([`ChannelLayer::unsubscribe`]), publishes frames that were sent here
//! ([`ChannelLayer::publish`]), and hands the frames it receives to
//! [`LocalDelivery`], the one sink through which every frame reaches the
//! connections of this process. A frame is therefore serialised once,
//! published once and fanned out locally once per process, whatever the
//! number of receivers.
//!
//! [`MemoryLayer`] (the default) carries nothing between processes: one
//! process is the whole world. The Redis layer (feature `redis`) carries
//! frames through Redis pub/sub.

/// The [`ChannelLayer`] methods of a layer whose `inner` reads and writes
/// what every process shares (the log of each group, and presence): one
/// body for the library's layers, so that each reads a log only when the
/// application keeps one (replay on), and for a resuming client only once
/// the group is subscribed here (see
/// [`Subscriptions::before_log_read`](subscriptions::Subscriptions::before_log_read)).
/// `$layer` names the layer in errors; `inner` has a `replay`
/// ([`ReplaySetting`]), `subscriptions`
/// ([`Subscriptions`](subscriptions::Subscriptions)), and the methods
/// `is_away`, `replay`, `position`, `presence_join`, `presence_leave` and
/// `presence`, each answering for the backend.
#[cfg(any(feature = "redis", feature = "nats", feature = "redis-cluster"))]
macro_rules! shared_state_methods {
    ($layer:literal) => {
        fn replay<'a>(
            &'a self,
            group: &'a str,
            after: u64,
            epoch: Option<&'a str>,
        ) -> ::futures_util::future::BoxFuture<
            'a,
            Result<Option<$crate::layer::Missed>, $crate::layer::LayerError>,
        > {
            Box::pin(async move {
                if self.inner.replay.is_none() {
                    return Ok(None);
                }
                self.inner
                    .subscriptions
                    .before_log_read($layer, self.inner.is_away(), group)
                    .await?;
                self.inner.replay(group, after, epoch).await.map(Some)
            })
        }

        fn position<'a>(
            &'a self,
            group: &'a str,
        ) -> ::futures_util::future::BoxFuture<
            'a,
            Result<Option<$crate::layer::GroupPosition>, $crate::layer::LayerError>,
        > {
            Box::pin(async move {
                if self.inner.replay.is_none() {
                    return Ok(None);
                }
                self.inner.position(group).await.map(Some)
            })
        }

        fn presence_join<'a>(
            &'a self,
            room: &'a str,
            id: u64,
            user: Option<&'a $crate::User>,
        ) -> ::futures_util::future::BoxFuture<'a, Result<(), $crate::layer::LayerError>> {
            Box::pin(self.inner.presence_join(room, id, user))
        }

        fn presence_leave<'a>(
            &'a self,
            room: &'a str,
            id: u64,
        ) -> ::futures_util::future::BoxFuture<'a, Result<(), $crate::layer::LayerError>> {
            Box::pin(self.inner.presence_leave(room, id))
        }

        fn presence<'a>(
            &'a self,
            room: &'a str,
        ) -> ::futures_util::future::BoxFuture<
            'a,
            Result<Option<Vec<Option<$crate::User>>>, $crate::layer::LayerError>,
        > {
            Box::pin(async move { self.inner.presence(room).await.map(Some) })
        }
    };
}

/// The hidden test hooks of a layer whose `inner` follows its groups with
/// a subscription loop: `subscriptions`
/// ([`Subscriptions`](subscriptions::Subscriptions)), and `groups_changed`,
/// the loop's wake-up.
#[cfg(any(feature = "redis", feature = "nats", feature = "redis-cluster"))]
macro_rules! subscription_test_hooks {
    () => {
        /// Fault injection for tests: while `held`, a group that gains its
        /// first member here is not subscribed (nor one that loses its last
        /// unsubscribed); once released, the changes are made, in order.
        #[doc(hidden)]
        pub fn hold_subscriptions(&self, held: bool) {
            self.inner.subscriptions.hold_changes(held);
            if !held {
                self.inner.groups_changed.notify_one();
            }
        }

        /// Fault injection for tests: while `held`, the layer's loop, once
        /// it has decided which groups to unsubscribe (their last member
        /// here left), waits before it unsubscribes them.
        #[doc(hidden)]
        pub fn hold_unsubscribes(&self, held: bool) {
            self.inner.subscriptions.hold_unsubscribes(held);
        }

        /// For tests: whether the layer's loop waits now to unsubscribe
        /// (see [`hold_unsubscribes`](Self::hold_unsubscribes)).
        #[doc(hidden)]
        pub fn paused_before_unsubscribing(&self) -> bool {
            self.inner.subscriptions.paused_before_unsubscribing() > 0
        }

        /// For tests: how many callers wait now for a group's subscription
        /// (a log read for a resuming client, a publish to a group with
        /// members here).
        #[doc(hidden)]
        pub fn waiting_for_subscriptions(&self) -> usize {
            self.inner.subscriptions.waiting()
        }
    };
}

mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis-cluster")]
mod redis_cluster;
#[cfg(any(feature = "nats", feature = "redis-cluster"))]
mod sequencer;
#[cfg(any(feature = "redis", feature = "nats", feature = "redis-cluster"))]
mod subscriptions;

pub use crate::hub::log::{
    GroupPosition, Missed, Replay, ReplayConfig, Resume, is_valid_epoch, replay_from,
    replay_in_epoch,
};
pub use memory::MemoryLayer;
#[cfg(feature = "nats")]
pub use nats::{NatsLayer, NatsLayerBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisLayer, RedisLayerBuilder};
#[cfg(feature = "redis-cluster")]
pub use redis_cluster::{RedisClusterLayer, RedisClusterLayerBuilder};

use std::fmt;

use futures_util::future::BoxFuture;

use crate::hub::Hub;
use std::sync::Weak;

/// One serialised update, as it goes on the wire: a cheaply clonable UTF-8
/// buffer, shared by every receiver of a broadcast. It reads as a `str`.
///
/// ```
/// use liveview::layer::Frame;
///
/// let frame = Frame::from(String::from(r##"{"target":"#a","html":"1"}"##));
/// let copy = frame.clone(); // shares the buffer
/// assert_eq!(copy.as_str(), r##"{"target":"#a","html":"1"}"##);
/// assert_eq!(frame.len(), 26);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Frame(tokio_tungstenite::tungstenite::Utf8Bytes);

impl Frame {
    /// A frame of a `'static` text, without copying it.
    pub const fn from_static(text: &'static str) -> Self {
        Self(tokio_tungstenite::tungstenite::Utf8Bytes::from_static(text))
    }

    /// The frame's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The buffer, as the socket takes it: shared, not copied, and not
    /// checked again.
    pub(crate) fn into_text(self) -> tokio_tungstenite::tungstenite::Utf8Bytes {
        self.0
    }
}

impl std::ops::Deref for Frame {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self(text.into())
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Self(text.into())
    }
}

/// The group every connection joins: `broadcast` sends go here.
pub(crate) const BROADCAST_GROUP: &str = "broadcast";

/// The group of a room's connections: `room_<room>`.
pub(crate) fn room_group(room: &str) -> String {
    format!("room_{room}")
}

/// Transport of group frames between server processes.
///
/// Implementations must be cheap to call: [`subscribe`](Self::subscribe) and
/// [`unsubscribe`](Self::unsubscribe) are called on the connection path,
/// while the group table is locked (so they arrive in order): they must not
/// block nor call back into [`LocalDelivery`]; queue the work for a task of
/// the layer's own.
///
/// ```
/// use futures_util::future::BoxFuture;
/// use liveview::layer::{ChannelLayer, Frame, LayerError, LocalDelivery};
///
/// /// A layer that only counts what it is asked to publish.
/// #[derive(Debug, Default)]
/// struct Counting(std::sync::atomic::AtomicUsize);
///
/// impl ChannelLayer for Counting {
///     fn start(&self, _local: LocalDelivery) {}
///     fn subscribe(&self, _group: &str) {}
///     fn unsubscribe(&self, _group: &str) {}
///     fn publish<'a>(&'a self, _group: &'a str, _frame: &'a Frame) -> BoxFuture<'a, Result<(), LayerError>> {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait ChannelLayer: Send + Sync + fmt::Debug + 'static {
    /// Called once when the application is built, with the handle that
    /// delivers frames arriving from other processes to local members.
    fn start(&self, local: LocalDelivery);

    /// `group` gained its first member in this process: start receiving it.
    fn subscribe(&self, group: &str);

    /// `group` lost its last member in this process: stop receiving it.
    fn unsubscribe(&self, group: &str);

    /// Wait until what other processes publish to `group` reaches this
    /// one: the subscription [`subscribe`](Self::subscribe) asked for is in
    /// place, as the server confirmed it. `false` when it is not within the
    /// layer's own bound, or at once while the layer cannot reach its
    /// server (frames published meanwhile may then be missed here). The
    /// library's layers wait up to 2 s, also while their first connection
    /// is being made. Default: `true` at once, for a layer that carries
    /// nothing between processes or whose subscriptions are in place as
    /// soon as they are asked for.
    ///
    /// ```
    /// use liveview::layer::{ChannelLayer, MemoryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // One process is the whole world: nothing to wait for.
    /// assert!(MemoryLayer.subscribed("room_lobby").await);
    /// # }
    /// ```
    fn subscribed<'a>(&'a self, group: &'a str) -> BoxFuture<'a, bool> {
        let _ = group;
        Box::pin(async { true })
    }

    /// Publish `frame` to the members of `group` in *other* processes. Local
    /// members are given it by the application (this layer keeps no shared
    /// log).
    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// Whether this layer carries nothing between processes (the process
    /// is the whole world, as with [`MemoryLayer`]). Then a call for a
    /// stream of the HTTP transport that this process does not hold is
    /// answered at once, instead of being forwarded. Default: no.
    fn is_local(&self) -> bool {
        false
    }

    /// Whether this layer keeps a log of group frames shared by every
    /// process ([`publish_sequenced`](Self::publish_sequenced) and
    /// [`replay`](Self::replay)). Default: no.
    fn has_shared_log(&self) -> bool {
        false
    }

    /// Publish `frame` to `group`'s log shared by every process, and to the
    /// members of every process, this one included: returns the sequence
    /// number and epoch the log gave it. The layer hands the numbered frame
    /// to [`LocalDelivery::deliver_sequenced`] in the group's order, as it
    /// does the frames of other processes (a layer that receives its own
    /// messages back, in order, simply delivers them all); the future may
    /// complete before that. Layers without a shared log return `None` (the
    /// default): the application then delivers the frame locally and keeps a
    /// log per process (replay works as long as a client reconnects to the
    /// same process).
    fn publish_sequenced<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Option<(u64, String)>, LayerError>> {
        Box::pin(async move { self.publish(group, frame).await.map(|()| None) })
    }

    /// What `group`'s shared log holds after sequence `after` of the
    /// numbering `epoch` (when the client said which), for a client that
    /// reconnects; `None` when the layer keeps no shared log. The client
    /// relies on live delivery for every frame after the answer: the
    /// library's layers read the log only once `group` is subscribed here
    /// (as [`subscribed`](Self::subscribed) waits for it, within the same
    /// bound), and answer an error when it is not, rather than a read that
    /// a frame published before the subscription would slip past. Frames
    /// both read and delivered live reach the client once.
    fn replay<'a>(
        &'a self,
        group: &'a str,
        after: u64,
        epoch: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<Missed>, LayerError>> {
        let _ = (group, after, epoch);
        Box::pin(async { Ok(None) })
    }

    /// Where `group`'s shared numbering stands now, for a page to carry
    /// (see [`LiveView::position`](crate::LiveView::position)); `None` when
    /// the layer keeps no shared log.
    fn position<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Option<GroupPosition>, LayerError>> {
        let _ = group;
        Box::pin(async { Ok(None) })
    }

    /// A connection (`id`, unique in this process) with `user` entered
    /// `room`: record it where every process can see it. Called only when
    /// the app tracks presence. Default: nothing (presence is local).
    fn presence_join<'a>(
        &'a self,
        room: &'a str,
        id: u64,
        user: Option<&'a crate::User>,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let _ = (room, id, user);
        Box::pin(async { Ok(()) })
    }

    /// The connection `id` left `room`.
    fn presence_leave<'a>(
        &'a self,
        room: &'a str,
        id: u64,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        let _ = (room, id);
        Box::pin(async { Ok(()) })
    }

    /// Every connection in `room` on every process, with its user; `None`
    /// when the layer keeps no shared presence (the app then counts this
    /// process only).
    fn presence<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<Option<crate::User>>>, LayerError>> {
        let _ = room;
        Box::pin(async { Ok(None) })
    }

    /// Whether the layer can currently carry frames (readiness checks).
    fn health(&self) -> BoxFuture<'_, Result<(), LayerError>> {
        Box::pin(async { Ok(()) })
    }

    /// Stop background work; called on graceful shutdown.
    fn shutdown(&self) {}
}

/// Delivers frames to the members of a group in this process: the one sink
/// every frame goes through on its way to this process's connections.
///
/// Handed to [`ChannelLayer::start`]; clonable and `Send`, so a layer's
/// receiving tasks keep their own copies. It does not keep the application
/// alive: once the application is dropped, deliveries reach no one.
#[derive(Clone)]
pub struct LocalDelivery {
    pub(crate) hub: Weak<Hub>,
    pub(crate) replay: Option<ReplayConfig>,
}

impl LocalDelivery {
    /// The application's replay setting
    /// ([`LiveViewBuilder::replay`](crate::LiveViewBuilder::replay)): how
    /// much of each group a layer with a shared log keeps; `None` when
    /// replay is off (keep no log).
    pub fn replay(&self) -> Option<ReplayConfig> {
        self.replay
    }

    /// Deliver `frame` to every local member of `group`; returns how many
    /// connections it was queued for. With replay on and a layer without a
    /// shared log, the frame joins this process's log of the group.
    pub fn deliver(&self, group: &str, frame: &Frame) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver_logged(group, frame))
    }

    /// Deliver a frame as it is, never numbered by this process (a frame
    /// without a number from a layer whose log numbers the others).
    pub fn deliver_unnumbered(&self, group: &str, frame: &Frame) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver(group, frame))
    }

    /// Deliver frame `seq` of `group`'s shared log, numbered in `epoch`, to
    /// every local member of `group`.
    pub fn deliver_sequenced(&self, group: &str, frame: &Frame, seq: u64, epoch: &str) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver_sequenced(group, frame, seq, epoch))
    }

    /// The groups that have at least one member in this process, e.g. to
    /// subscribe again after the layer reconnected.
    pub fn groups(&self) -> Vec<String> {
        self.hub.upgrade().map_or_else(Vec::new, |hub| hub.groups())
    }

    /// Whether `group` has members in this process.
    pub fn has_members(&self, group: &str) -> bool {
        self.hub.upgrade().is_some_and(|hub| hub.members(group) > 0)
    }

    /// Whether the application this delivers to is gone.
    pub fn is_closed(&self) -> bool {
        self.hub.strong_count() == 0
    }

    /// Count something in the application's metrics (the library's
    /// layers report what they received, dropped or recovered).
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
    pub(crate) fn count(&self, counter: impl FnOnce(&crate::metrics::Metrics)) {
        if let Some(hub) = self.hub.upgrade() {
            counter(&hub.metrics);
        }
    }
}

/// The application's replay setting as a layer keeps it: unknown (no log)
/// until the layer is started.
#[derive(Debug, Default)]
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "redis-cluster")),
    allow(dead_code)
)]
pub(crate) struct ReplaySetting(std::sync::OnceLock<Option<ReplayConfig>>);

#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "redis-cluster")),
    allow(dead_code)
)]
impl ReplaySetting {
    /// Take the application's setting (once; later calls are ignored).
    pub(crate) fn set(&self, replay: Option<ReplayConfig>) {
        let _ = self.0.set(replay);
    }

    /// The limits of the log, `None` when none is kept.
    pub(crate) fn get(&self) -> Option<ReplayConfig> {
        self.0.get().copied().flatten()
    }

    pub(crate) fn is_some(&self) -> bool {
        self.get().is_some()
    }

    pub(crate) fn is_none(&self) -> bool {
        self.get().is_none()
    }
}

impl fmt::Debug for LocalDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDelivery").finish_non_exhaustive()
    }
}

/// A channel layer failed to carry a frame to other processes.
///
/// Local members get the frame all the same (unnumbered when the layer
/// would have numbered it); only remote members may have missed it.
#[derive(Debug)]
pub struct LayerError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl LayerError {
    /// A layer error with a message and no underlying cause.
    ///
    /// ```
    /// let err = liveview::layer::LayerError::new("not connected");
    /// assert_eq!(err.to_string(), "channel layer: not connected");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A layer error caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel layer: {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LayerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
