//! Sending to groups: every connection (`broadcast`) or one room.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::error::BroadcastError;
use crate::hub::Hub;
use crate::layer::{BROADCAST_GROUP, Frame, room_group};
use crate::metrics::Metrics;
use crate::update::IntoUpdate;

/// Sends updates to groups of connections, from anywhere: a handler, a
/// spawned task, a plain `std::thread`. Cheap to clone.
///
/// Each update is serialised once and published once through the channel
/// layer; this process's members get it through the application's group
/// table, in the group's order (see [`crate::layer`]). A [`Consumer`]
/// reaches these methods too, through `Deref`.
///
/// [`Consumer`]: crate::Consumer
///
/// ```no_run
/// use liveview::{LiveView, Update};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let live = LiveView::builder().build()?;
/// let broadcaster = live.broadcaster();
/// tokio::spawn(async move {
///     let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
///     loop {
///         tick.tick().await;
///         let _ = broadcaster.send_to_room("clock", Update::new("#now").html("tick")).await;
///     }
/// });
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Broadcaster {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    runtime: Option<tokio::runtime::Handle>,
    max_frame: usize,
    /// The broadcast budget of the connection this sends for, if any.
    budget: Option<Arc<crate::limits::ByteBudget>>,
}

impl Broadcaster {
    pub(crate) fn new(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Self {
        Self {
            hub,
            metrics,
            runtime: tokio::runtime::Handle::try_current().ok(),
            max_frame: crate::limits::DEFAULT_MAX_OUTGOING_FRAME,
            budget: None,
        }
    }

    /// The broadcaster of one connection's calls: with a budget of
    /// `bytes_per_second`, its group frames are counted against it.
    pub(crate) fn for_connection(&self, bytes_per_second: Option<u64>, max_frame: usize) -> Self {
        Self {
            budget: bytes_per_second
                .map(|rate| Arc::new(crate::limits::ByteBudget::new(rate, max_frame))),
            ..self.clone()
        }
    }

    /// Whether a group frame of `len` bytes may be published: within the
    /// outgoing limit and within the connection's budget (a refusal is
    /// counted).
    fn admit(&self, len: usize) -> Result<(), BroadcastError> {
        self.check_size(len)
            .map_err(|()| BroadcastError::TooLarge)?;
        if let Some(budget) = &self.budget
            && !budget.take(len, std::time::Instant::now())
        {
            self.metrics.broadcast_budget_exceeded.add(1);
            tracing::debug!(target: "liveview", size = len, "refused a group frame over the connection's broadcast budget");
            return Err(BroadcastError::OverBudget);
        }
        Ok(())
    }

    /// Refuse frames over `bytes` (the app's outgoing limit).
    pub(crate) fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Whether a frame of `len` bytes is within the outgoing limit (a
    /// refusal is logged and counted).
    #[inline]
    pub(crate) fn check_size(&self, len: usize) -> Result<(), ()> {
        crate::limits::check_outgoing(len, self.max_frame, &self.metrics)
    }

    /// Send to every connection of every room, on every process.
    pub async fn broadcast(&self, update: impl IntoUpdate) -> Result<(), BroadcastError> {
        self.publish(BROADCAST_GROUP, update).await
    }

    /// Send to every connection in `room`, on every process.
    pub async fn send_to_room(
        &self,
        room: &str,
        update: impl IntoUpdate,
    ) -> Result<(), BroadcastError> {
        self.publish(&room_group(room), update).await
    }

    /// Send to every member of `group`.
    pub(crate) async fn publish(
        &self,
        group: &str,
        update: impl IntoUpdate,
    ) -> Result<(), BroadcastError> {
        let frame = Self::serialise(update)?;
        self.publish_frame(group, &frame).await
    }

    /// Send an already serialised frame to every member of `group`.
    async fn publish_frame(&self, group: &str, frame: &Frame) -> Result<(), BroadcastError> {
        self.admit(frame.len())?;
        self.metrics.publishes.add(1);
        self.hub
            .publish(group, frame)
            .await
            .map_err(|err| self.publish_failed(group, err))
    }

    /// [`broadcast`](Self::broadcast) from code that is not async: a plain
    /// thread or a sync function. Safe to call from async code on a
    /// multi-threaded runtime (the thread blocks, the runtime moves its other
    /// tasks elsewhere); on a current-thread runtime, a layer that needs the
    /// network (Redis) returns an error instead: use the async method there.
    pub fn broadcast_blocking(&self, update: impl IntoUpdate) -> Result<(), BroadcastError> {
        self.publish_blocking(BROADCAST_GROUP, update)
    }

    /// [`send_to_room`](Self::send_to_room) from code that is not async
    /// (see [`broadcast_blocking`](Self::broadcast_blocking)).
    pub fn send_to_room_blocking(
        &self,
        room: &str,
        update: impl IntoUpdate,
    ) -> Result<(), BroadcastError> {
        self.publish_blocking(&room_group(room), update)
    }

    /// [`publish`](Self::publish) from code that is not async.
    fn publish_blocking(&self, group: &str, update: impl IntoUpdate) -> Result<(), BroadcastError> {
        let frame = Self::serialise(update)?;
        self.admit(frame.len())?;
        self.metrics.publishes.add(1);
        self.block_on(Box::pin(self.hub.publish(group, &frame)))
            .map_err(|err| self.publish_failed(group, err))
    }

    /// Finish a layer future from code that is not async. The in-memory
    /// layer is done at once; only a networked layer needs the runtime.
    ///
    /// Called on a thread of a multi-threaded runtime (a sync function
    /// called from async code), the thread is handed over for blocking
    /// first, rather than starting a runtime within the runtime (a panic).
    /// A current-thread runtime cannot wait for its own network I/O from
    /// its only thread: that is an error, not a deadlock.
    fn block_on<T>(
        &self,
        mut future: futures_util::future::BoxFuture<'_, Result<T, crate::layer::LayerError>>,
    ) -> Result<T, crate::layer::LayerError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if let Poll::Ready(result) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return result;
        }
        match Handle::try_current() {
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                Err(crate::layer::LayerError::new(
                    "a *_blocking send cannot wait for the channel layer on a current-thread \
                     runtime's own thread: use the async method",
                ))
            }
            Ok(current) => tokio::task::block_in_place(|| current.block_on(future)),
            Err(_) => match &self.runtime {
                Some(runtime) => runtime.block_on(future),
                None => Err(crate::layer::LayerError::new(
                    "no tokio runtime to publish from this thread",
                )),
            },
        }
    }

    /// Who is in `room`: on every process when the app tracks presence
    /// ([`LiveViewBuilder::on_presence`](crate::LiveViewBuilder::on_presence))
    /// and the channel layer shares it (Redis does), else in this process.
    pub async fn presence(&self, room: &str) -> crate::Presence {
        if !self.hub.presence_shared {
            return crate::Presence::new(room, self.hub.local_presence(room));
        }
        let members = match self.hub.layer().presence(room).await {
            Ok(Some(members)) => members,
            Ok(None) => self.hub.local_presence(room),
            Err(err) => {
                tracing::debug!(target: "liveview", room, error = %err, "shared presence unavailable; counting this process");
                self.hub.local_presence(room)
            }
        };
        crate::Presence::new(room, members)
    }

    /// How many connections of this process are in `room` (on every
    /// process: [`presence`](Self::presence) with presence tracked).
    ///
    /// ```
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// assert_eq!(live.broadcaster().local_connections("lobby"), 0);
    /// ```
    pub fn local_connections(&self, room: &str) -> usize {
        self.hub.members(&room_group(room))
    }

    fn serialise(update: impl IntoUpdate) -> Result<Frame, BroadcastError> {
        update
            .into_frame(None)
            .map(Frame::from)
            .map_err(BroadcastError::Serialize)
    }

    fn publish_failed(&self, group: &str, err: crate::layer::LayerError) -> BroadcastError {
        self.metrics.publish_failures.add(1);
        // Layers log their own failures (rate-limited during an outage).
        tracing::debug!(target: "liveview", group, error = %err, "publish to other processes failed");
        BroadcastError::Layer(err)
    }
}
