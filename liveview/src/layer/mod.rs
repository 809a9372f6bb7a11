//! Channel layers: how a frame published to a group reaches every member of
//! that group, in this process and in the others.
//!
//! Membership and fan-out to the connections of *this* process always happen
//! here, in the local group table, whatever layer is configured. A layer only
//! carries frames between processes: it is told when a group gains its first
//! local member ([`ChannelLayer::subscribe`]) and loses its last
//! ([`ChannelLayer::unsubscribe`]), publishes frames that were sent here
//! ([`ChannelLayer::publish`]), and hands frames that arrive from other
//! processes to [`LocalDelivery::deliver`]. A frame is therefore serialised
//! once, published once and fanned out locally once per process, whatever the
//! number of receivers.
//!
//! [`MemoryLayer`] (the default) carries nothing between processes: one
//! process is the whole world. The Redis layer (feature `redis`) carries
//! frames through Redis pub/sub.

mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use crate::hub::log::{Replay, ReplayConfig, Resume, replay_from};
pub use memory::MemoryLayer;
#[cfg(feature = "redis")]
pub use redis::{RedisLayer, RedisLayerBuilder};

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::hub::Hub;

/// One serialised update, as it goes on the wire: a cheaply clonable UTF-8
/// buffer, shared by every receiver of a broadcast.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// The group every connection joins: `broadcast` sends go here.
pub const BROADCAST_GROUP: &str = "broadcast";

/// The group of a room's connections: `room_<room>`.
///
/// ```
/// assert_eq!(liveview::layer::room_group("lobby"), "room_lobby");
/// ```
pub fn room_group(room: &str) -> String {
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

    /// Publish `frame` to the members of `group` in *other* processes. Local
    /// members already have it when this is called.
    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>>;

    /// Whether this layer keeps a log of group frames shared by every
    /// process ([`publish_sequenced`](Self::publish_sequenced) and
    /// [`replay`](Self::replay)). Default: no.
    fn has_shared_log(&self) -> bool {
        false
    }

    /// Publish `frame` to `group`'s log shared by every process, and to the
    /// members in other processes: returns the sequence number the log gave
    /// it. The layer also delivers the numbered frame to the members of
    /// *this* process ([`LocalDelivery::deliver_sequenced`]) before the
    /// future completes, at its place in the sequence among frames from
    /// other processes: only the layer knows that place. Layers without a
    /// shared log return `None` (the default), and the application then
    /// delivers the frame and keeps a log per process (replay works as long
    /// as a client reconnects to the same process).
    fn publish_sequenced<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Option<u64>, LayerError>> {
        Box::pin(async move { self.publish(group, frame).await.map(|()| None) })
    }

    /// What `group`'s shared log holds after sequence `after`, for a client
    /// that reconnects; `None` when the layer keeps no shared log.
    fn replay<'a>(
        &'a self,
        group: &'a str,
        after: u64,
    ) -> BoxFuture<'a, Result<Option<Replay>, LayerError>> {
        let _ = (group, after);
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

/// Delivers frames to the members of a group in this process.
///
/// Handed to [`ChannelLayer::start`]; clonable and `Send`, so a layer's
/// receiving task keeps its own copy.
#[derive(Clone)]
pub struct LocalDelivery {
    pub(crate) hub: Arc<Hub>,
}

impl LocalDelivery {
    /// Deliver `frame` to every local member of `group`; returns how many
    /// connections it was queued for. With replay on and a layer without a
    /// shared log, the frame joins this process's log of the group.
    pub fn deliver(&self, group: &str, frame: &Frame) -> usize {
        self.hub.deliver_logged(group, frame)
    }

    /// Deliver a frame of `group`'s shared log, with its sequence number,
    /// to every local member of `group`.
    pub fn deliver_sequenced(&self, group: &str, frame: &Frame, seq: u64) -> usize {
        self.hub.deliver_sequenced(group, frame, seq)
    }

    /// The groups that have at least one member in this process, e.g. to
    /// subscribe again after the layer reconnected.
    pub fn groups(&self) -> Vec<String> {
        self.hub.groups()
    }
}

impl fmt::Debug for LocalDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDelivery").finish_non_exhaustive()
    }
}

/// A channel layer failed to carry a frame to other processes.
///
/// Local delivery has happened by the time this is returned; only remote
/// members may have missed the frame.
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
