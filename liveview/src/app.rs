//! The application: configuration, the handler registry, the group table
//! and the channel layer, shared by every connection.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::broadcast::Broadcaster;
use crate::call::handler::Registry;
use crate::call::middleware::Middleware;
use crate::call::protocol::DEFAULT_MAX_FRAME;
use crate::error::BuildError;
use crate::hub::Hub;
use crate::hub::log::Logs;
use crate::hub::presence::{OnPresence, Presence};
use crate::layer::{ChannelLayer, LocalDelivery, MemoryLayer, ReplayConfig};
use crate::limits::{Addresses, Limits, RateLimit};
use crate::metrics::Metrics;
use crate::session::RoomSigner;

/// Limits and timeouts; every field has a production default.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub max_frame: usize,
    pub max_outgoing_frame: usize,
    /// Bytes a second of group frames one connection's calls may publish.
    pub broadcast_budget: Option<u64>,
    pub ping_interval: Duration,
    pub sse_heartbeat: Duration,
    pub idle_timeout: Duration,
    pub request_header_timeout: Duration,
    pub request_body_timeout: Duration,
    pub queue: usize,
    pub handler_timeout: Duration,
    pub shutdown_grace: Duration,
    pub read_buffer: usize,
    pub write_buffer: usize,
    pub allowed_origins: Option<Vec<String>>,
    pub check_origin: bool,
    pub limits: Limits,
    pub room_signer: Option<RoomSigner>,
    pub replay: Option<ReplayConfig>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            max_outgoing_frame: crate::limits::DEFAULT_MAX_OUTGOING_FRAME,
            broadcast_budget: None,
            ping_interval: Duration::from_secs(25),
            sse_heartbeat: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            request_header_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(60),
            queue: 256,
            handler_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            read_buffer: 1024,
            write_buffer: 4 * 1024,
            allowed_origins: None,
            check_origin: true,
            limits: Limits::default(),
            room_signer: None,
            replay: Some(ReplayConfig::default()),
            trusted_proxies: Vec::new(),
        }
    }
}

pub(crate) struct Shared {
    pub registry: &'static Registry,
    pub middleware: Vec<Arc<dyn Middleware>>,
    pub hub: Arc<Hub>,
    pub broadcaster: Broadcaster,
    pub config: Config,
    pub authenticator: Option<Arc<dyn Authenticator>>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Arc<Metrics>,
    pub addresses: Arc<Addresses>,
    /// TCP connections per address, counted by [`serve`](crate::serve)
    /// before any request.
    pub sockets: Arc<Addresses>,
    pub presence: PresenceConfig,
    pub state: Arc<http::Extensions>,
    /// The addresses [`crate::serve`] listens on: without configured
    /// origins, the origin check accepts pages served from these.
    pub served_at: std::sync::Mutex<Vec<std::net::SocketAddr>>,
    /// The streams of the HTTP transport held here.
    pub streams: crate::connection::sse::Streams,
    /// Presence changes for the presence task (when presence is tracked).
    pub presence_queue: Arc<crate::hub::presence::PresenceQueue>,
    /// Stops the presence task when the application is dropped.
    _presence_task: Option<tokio_util::sync::DropGuard>,
    next_id: AtomicU64,
}

/// Whether presence is shared through the layer, and what to tell a room
/// when it changes.
#[derive(Clone, Default)]
pub(crate) struct PresenceConfig {
    pub tracked: bool,
    pub on_change: Option<OnPresence>,
}

impl Shared {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Note an address the app is served on (for the origin check).
    pub(crate) fn serving_on(&self, addr: std::net::SocketAddr) {
        let mut served = self.served_at.lock().unwrap_or_else(|e| e.into_inner());
        if !served.contains(&addr) {
            served.push(addr);
        }
    }
}

impl Drop for Shared {
    /// The application is gone (its last handle and connection dropped):
    /// the channel layer's background tasks stop with it.
    fn drop(&mut self) {
        self.hub.layer().shutdown();
    }
}

/// A LiveView application: handlers, middleware, channel layer and limits.
///
/// Build one with [`LiveView::builder`], serve it with [`LiveView::router`]
/// (merged into your axum app), and broadcast from anywhere with
/// [`LiveView::broadcaster`]. Cheap to clone.
///
/// ```no_run
/// use axum::{routing::get, response::Html, Router};
/// use liveview::{liveview_handler, Consumer, Content, LiveView, Update};
///
/// #[liveview_handler("say_hello")]
/// async fn say_hello(consumer: &Consumer, content: Content) -> liveview::Result {
///     let name = liveview::escape(content.form.str_or("name", "World"));
///     consumer.send(Update::new("#greeting").html(format!("<h1>Hello, {name}!</h1>")))?;
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let live = LiveView::builder().build()?;
///     let app = Router::new()
///         .route("/", get(|| async { Html("<html>...</html>") }))
///         .merge(live.router());
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
///     liveview::serve(listener, app, live).await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct LiveView {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for LiveView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveView")
            .field("layer", self.shared.hub.layer())
            .field("middleware", &self.shared.middleware.len())
            .finish_non_exhaustive()
    }
}

impl LiveView {
    /// Start configuring an application.
    pub fn builder() -> LiveViewBuilder {
        LiveViewBuilder::default()
    }

    /// The application state of type `T` given to
    /// [`LiveViewBuilder::state`].
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.state.get::<T>()
    }

    /// A handle that broadcasts and sends to rooms from anywhere.
    pub fn broadcaster(&self) -> Broadcaster {
        self.shared.broadcaster.clone()
    }

    /// The sorted names of the registered handlers, like Django LiveView's
    /// `liveview_registry.list_functions()`. For logs and tests: never send
    /// this list to a client.
    ///
    /// ```
    /// use liveview::{liveview_handler, Consumer, Content};
    ///
    /// #[liveview_handler("docs_example")]
    /// async fn docs_example(_consumer: &Consumer, _content: Content) {}
    ///
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// assert!(live.functions().contains(&"docs_example"));
    /// ```
    pub fn functions(&self) -> Vec<&'static str> {
        self.shared.registry.names()
    }

    /// Number of connections open in this process.
    pub fn connections(&self) -> usize {
        usize::try_from(self.shared.metrics.connections_open.get()).unwrap_or(0)
    }

    /// Where the groups of a page in `room` stand now (`room_<room>` and
    /// `broadcast`): render it into the page (the template helper
    /// `liveview_script(position)` does), and the client's first connection
    /// resumes from there, so that a frame published between the render and
    /// the connection is not lost. Empty when replay is off, or when the
    /// shared log cannot be read (the client then starts from the live
    /// frames).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// let position = live.position("lobby").await;
    /// assert!(position.to_string().starts_with("room_lobby:0:"));
    /// let tag = liveview::template::script_tag_at(&position);
    /// assert!(tag.contains(r#"data-liveview-resume="room_lobby:0:"#));
    /// # }
    /// ```
    pub async fn position(&self, room: &str) -> crate::template::Position {
        let mut groups = Vec::with_capacity(2);
        for group in [
            crate::layer::room_group(room),
            crate::layer::BROADCAST_GROUP.to_owned(),
        ] {
            match self.shared.hub.position(&group).await {
                Some(position) => groups.push(position),
                None => return crate::template::Position::default(),
            }
        }
        crate::template::Position::new(groups)
    }

    /// Fault injection for tests: while `held`, presence changes are queued
    /// but neither written through the layer nor announced.
    #[doc(hidden)]
    pub fn hold_presence_updates(&self, held: bool) {
        self.shared.presence_queue.hold(held);
    }

    /// Whether the channel layer can carry frames now (for readiness
    /// checks).
    pub async fn layer_health(&self) -> Result<(), crate::layer::LayerError> {
        self.shared.hub.layer().health().await
    }

    /// Stop: refuse new connections, let running handlers finish, close
    /// every socket with 1001, and wait up to the grace period for them.
    /// Returns whether every connection closed in time.
    pub async fn shutdown(&self) -> bool {
        self.shared.shutdown.cancel();
        // Every WebSocket connection is in the broadcast group; one that
        // joins from now on sees the token cancelled (`join::open`).
        self.shared
            .hub
            .for_each_member(crate::layer::BROADCAST_GROUP, |outbox| {
                outbox.state().go_away();
            });
        self.shared.tracker.close();
        let finished = tokio::time::timeout(
            self.shared.config.shutdown_grace,
            self.shared.tracker.wait(),
        )
        .await
        .is_ok();
        self.shared.hub.layer().shutdown();
        finished
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }
}

/// A page handler of an app served by [`serve`](crate::serve) can take the
/// `LiveView` as an argument, e.g. to render the page's
/// [`position`](LiveView::position):
///
/// ```
/// use axum::response::Html;
/// use liveview::LiveView;
///
/// async fn page(live: LiveView) -> Html<String> {
///     let room = liveview::template::room_uuid();
///     let position = live.position(&room).await;
///     Html(liveview::template::script_tag_at(&position))
/// }
/// let app: axum::Router = axum::Router::new().route("/", axum::routing::get(page));
/// # drop(app);
/// ```
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LiveView {
    type Rejection = (http::StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<LiveView>().cloned().ok_or_else(|| {
            tracing::error!(target: "liveview", "a handler asked for the LiveView: serve the app with liveview::serve, or add .layer(axum::Extension(live))");
            (http::StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
        })
    }
}

/// Configures a [`LiveView`].
///
/// ```
/// use std::time::Duration;
///
/// let live = liveview::LiveView::builder()
///     .max_frame_size(32 * 1024)
///     .queue_capacity(512)
///     .handler_timeout(Duration::from_secs(10))
///     .allowed_origins(["https://example.com"])
///     .middleware(|_consumer: &liveview::Consumer, _content: &liveview::Content, function: &str| {
///         tracing::info!("calling {function}");
///         true
///     })
///     .build()
///     .unwrap();
/// # drop(live);
/// ```
#[derive(Default)]
pub struct LiveViewBuilder {
    config: Config,
    presence: PresenceConfig,
    state: http::Extensions,
    middleware: Vec<Arc<dyn Middleware>>,
    layer: Option<Arc<dyn ChannelLayer>>,
    authenticator: Option<Arc<dyn Authenticator>>,
}

impl fmt::Debug for LiveViewBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveViewBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LiveViewBuilder {
    /// Use this channel layer (default: [`MemoryLayer`], which reaches
    /// the connections of this process only).
    pub fn channel_layer(mut self, layer: impl ChannelLayer) -> Self {
        self.layer = Some(Arc::new(layer));
        self
    }

    /// Find the user of each connection at upgrade time.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Add a [`Middleware`], run before every handler in registration
    /// order; the first that answers `false` stops the call. A closure
    /// `(consumer, content, function) -> bool` is one; implement the trait
    /// for one that awaits.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Largest accepted frame (default 64 KiB); larger ones close the
    /// connection with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// Largest frame the server sends (default 256 KiB). A `send`,
    /// `broadcast` or room send of a larger update fails with
    /// [`SendError::TooLarge`](crate::SendError::TooLarge) or
    /// [`BroadcastError::TooLarge`](crate::BroadcastError::TooLarge), is
    /// logged and counted, and reaches no one; every connection stays open.
    /// Each socket's write buffer may grow to this size.
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .max_outgoing_frame_size(1024 * 1024)
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn max_outgoing_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_outgoing_frame = bytes;
        self
    }

    /// How many bytes a second of group frames (broadcasts, room sends)
    /// the calls of one connection may publish, or `None` (the default)
    /// for no budget. Every group frame is multiplied by its receivers: a
    /// budget bounds what one client at its call rate can make the server
    /// send to everyone. A connection may spend a second's worth at once
    /// (at least one frame of the outgoing limit).
    ///
    /// A send over the budget publishes nothing and fails with
    /// [`BroadcastError::OverBudget`](crate::BroadcastError::OverBudget)
    /// (counted in `liveview_broadcast_budget_exceeded_total`); a handler
    /// that returns that error with `?` answers its client
    /// `{"error": "Rate limited"}`. Sends from a [`Broadcaster`](crate::Broadcaster)
    /// of the application (tasks, other routes) are not counted.
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .broadcast_budget(Some(64 * 1024))
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn broadcast_budget(mut self, bytes_per_second: Option<u64>) -> Self {
        self.config.broadcast_budget = bytes_per_second;
        self
    }

    /// How often the server pings each connection (default 25 s). Browsers
    /// answer pings by themselves; the answers keep a quiet connection
    /// alive under [`idle_timeout`](Self::idle_timeout), and the pings keep
    /// proxies from closing it for silence.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let live = liveview::LiveView::builder()
    ///     .ping_interval(Duration::from_secs(20))
    ///     .idle_timeout(Duration::from_secs(45))
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How often a stream of the HTTP transport (Server-Sent Events) gets a
    /// heartbeat comment when it has nothing else to say (default 15 s), so
    /// that proxies with an idle timeout (often 30 or 60 s) keep it open.
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .sse_heartbeat(std::time::Duration::from_secs(10))
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn sse_heartbeat(mut self, interval: Duration) -> Self {
        self.config.sse_heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a connection may send nothing at all, not even a Pong,
    /// before the server closes it with 4408 (default 60 s; the silence is
    /// noticed when the ping timer fires, so the close may come up to a
    /// [`ping_interval`](Self::ping_interval) later). A client that
    /// vanished without closing its socket (a laptop lid, a lost network)
    /// then leaves its room's presence, its groups and its address's
    /// connection slot instead of holding them forever. Keep it above
    /// [`ping_interval`](Self::ping_interval).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long [`serve`](crate::serve) waits for a complete request head
    /// (default 10 s), from the connection's start and again after each
    /// response on a kept-alive connection. A connection that sends
    /// nothing, or half a request, is closed when it runs out, so idle
    /// sockets cannot pile up before any upgrade (slowloris).
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .request_header_timeout(std::time::Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn request_header_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_header_timeout = timeout;
        self
    }

    /// How long [`serve`](crate::serve) lets a request's body take to
    /// arrive, from its head (default 60 s). A body still incomplete then
    /// fails where the route reads it (axum answers 400) and the connection
    /// is closed, so a POST that trickles its body cannot hold a socket and
    /// a handler forever. Upload chunks must fit in it.
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .request_body_timeout(std::time::Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn request_body_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_body_timeout = timeout;
        self
    }

    /// Frames a connection may have waiting to be written (default 256);
    /// a client that lets more pile up is closed with 1013.
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.config.queue = frames.max(1);
        self
    }

    /// How long a handler may run (default 30 s). One that takes longer is
    /// abandoned and the caller gets `{"error": "Internal error"}`.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.config.handler_timeout = timeout;
        self
    }

    /// How long [`LiveView::shutdown`] waits for connections (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Socket buffer sizes (default 1 KiB to read, 4 KiB to write):
    /// LiveView frames are small, and the read buffer is paid for by every
    /// idle connection (the write buffer only grows to what is written).
    /// Larger frames are still read whole, in reads of this size.
    pub fn socket_buffers(mut self, read: usize, write: usize) -> Self {
        self.config.read_buffer = read;
        self.config.write_buffer = write;
        self
    }

    /// The origins whose pages may open a socket, e.g.
    /// `"https://app.example.com"`: scheme, host and port are compared
    /// (`https://app.example.com` and `https://app.example.com:443` are
    /// one origin). `"*"` allows any.
    ///
    /// Without this list, only pages served from the address
    /// [`serve`](crate::serve) listens on are allowed (`http://127.0.0.1:8000`
    /// for a server bound there, also `http://localhost:8000` on loopback),
    /// never the request's `Host` header, which a DNS-rebinding page
    /// controls. A public site, behind a proxy or listening on all
    /// interfaces, names its origin here.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The call rate of one connection (default 20/s, bursts of 60), or
    /// `None` for no limit. A call over it gets `{"error": "Rate limited"}`;
    /// a client that keeps going is closed with 1008.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.limits.per_connection = limit;
        self
    }

    /// The call rate of all connections of one client address together
    /// (default 200/s, bursts of 400), or `None`.
    pub fn address_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.limits.per_address = limit;
        self
    }

    /// How many connections one client address may have open (default
    /// 256), or `None`. Past it, upgrades get HTTP 429. Counted twice over:
    /// per WebSocket at the upgrade (behind a trusted proxy, by the
    /// forwarded client's address), and by [`serve`](crate::serve) per TCP
    /// connection before any request, so sockets that never upgrade count
    /// too.
    pub fn max_connections_per_address(mut self, cap: Option<usize>) -> Self {
        self.config.limits.connections_per_address = cap;
        self
    }

    /// How many refused calls in a row close a connection with 1008
    /// (default 20).
    pub fn rate_limit_strikes(mut self, strikes: u32) -> Self {
        self.config.limits.strikes = strikes.max(1);
        self
    }

    /// Accept only rooms signed by `signer` (others get HTTP 403), so a
    /// room id cannot be guessed. Issue rooms with
    /// [`RoomSigner::new_room`] (or the template helper registered by
    /// [`template::register_signed`](crate::template::register_signed)).
    pub fn signed_rooms(mut self, signer: RoomSigner) -> Self {
        self.config.room_signer = Some(signer);
        self
    }

    /// Keep each group's recent frames so a client that reconnects gets
    /// what it missed, in order, before live frames (default: the last 256
    /// frames of each group, up to 5 minutes old). Group frames then carry
    /// `"seq"` and `"group"` keys; `None` turns replay off. This is the one
    /// replay setting: a channel layer with a log shared by every process
    /// (Redis, NATS) keeps the same limits there, and none when it is off.
    pub fn replay(mut self, replay: Option<ReplayConfig>) -> Self {
        self.config.replay = replay;
        self
    }

    /// Share a value with every handler and middleware, read with
    /// [`Consumer::app_state`](crate::Consumer::app_state) (one value per type; a
    /// second call with the same type replaces the first).
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Track who is in each room on every process (through the channel
    /// layer), for [`Consumer::presence`](crate::Consumer::presence) and
    /// [`Broadcaster::presence`](crate::Broadcaster::presence) (without it
    /// they count this process only), and when someone joins or leaves a
    /// room, send the room the update `f` makes from its new presence, if
    /// any. `.on_presence(|_| None)` tracks without telling anyone.
    ///
    /// ```
    /// use liveview::{LiveView, Update};
    ///
    /// let live = LiveView::builder()
    ///     .on_presence(|presence| {
    ///         Some(Update::new("#viewers").html(format!("{} watching", presence.count)))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn on_presence<F>(mut self, f: F) -> Self
    where
        F: Fn(&Presence) -> Option<crate::Update> + Send + Sync + 'static,
    {
        self.presence.tracked = true;
        self.presence.on_change = Some(Arc::new(f));
        self
    }

    /// Reverse proxies whose `X-Forwarded-For` header is believed: when a
    /// connection comes from one of them, the client's address (for
    /// [`Scope::client_ip`](crate::Scope::client_ip), the per-address rate
    /// limit and connection cap) is the last address in the header that is
    /// not a trusted proxy. Without this, behind a proxy every client has
    /// the proxy's address.
    ///
    /// ```
    /// let live = liveview::LiveView::builder()
    ///     .trusted_proxies(["127.0.0.1".parse().unwrap()])
    ///     .build()
    ///     .unwrap();
    /// # drop(live);
    /// ```
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.config.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Turn the origin check off. Only for APIs that are not reachable from
    /// browsers, or behind a proxy that checks it already.
    pub fn disable_origin_check(mut self) -> Self {
        self.config.check_origin = false;
        self
    }

    /// Apply the configuration found in the environment. Only this method
    /// reads environment variables; each one that is set (and not empty)
    /// replaces what was configured before the call, and later builder
    /// calls replace it in turn.
    ///
    /// | Variable | Value | Same as |
    /// |---|---|---|
    /// | `LIVEVIEW_REDIS_URL` | `redis://[[user]:password@]host[:port][/db]`, or `rediss://` (feature `redis-tls`) | [`channel_layer`](Self::channel_layer)`(RedisLayer::from_url(url)?)` (feature `redis`) |
    /// | `LIVEVIEW_REDIS_CLUSTER` | comma-separated seed nodes, `host:port,host:port` | [`channel_layer`](Self::channel_layer)`(RedisClusterLayer::builder(seeds).build()?)` (feature `redis-cluster`) |
    /// | `LIVEVIEW_NATS_URL` | `nats://[user:password@]host:port` (several separated by commas) | [`channel_layer`](Self::channel_layer)`(NatsLayer::from_url(url)?)` (feature `nats`) |
    /// | `LIVEVIEW_ALLOWED_ORIGINS` | comma-separated origins, e.g. `https://app.example.com,https://example.com` | [`allowed_origins`](Self::allowed_origins) |
    /// | `LIVEVIEW_TRUSTED_PROXIES` | comma-separated IP addresses, e.g. `10.0.0.1,10.0.0.2` | [`trusted_proxies`](Self::trusted_proxies) |
    ///
    /// # Errors
    ///
    /// [`BuildError::Env`] naming the variable when a value cannot be used,
    /// including `LIVEVIEW_REDIS_URL` in a build without the `redis`
    /// feature, `LIVEVIEW_NATS_URL` without `nats` and
    /// `LIVEVIEW_REDIS_CLUSTER` without `redis-cluster` (rather than silently
    /// staying on one process), and more than one of them set at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let live = liveview::LiveView::builder()
    ///     .from_env()?
    ///     .build()?;
    /// # drop(live);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_env(self) -> Result<Self, BuildError> {
        self.apply_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `var`.
    fn apply_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, BuildError> {
        let var = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let invalid = |variable: &'static str, reason: String| BuildError::Env { variable, reason };
        let layers = [NATS_URL_ENV, REDIS_URL_ENV, REDIS_CLUSTER_ENV];
        if layers.iter().filter(|name| var(name).is_some()).count() > 1 {
            return Err(invalid(
                NATS_URL_ENV,
                "more than one of LIVEVIEW_NATS_URL, LIVEVIEW_REDIS_URL and LIVEVIEW_REDIS_CLUSTER is set: choose one channel layer".to_owned(),
            ));
        }
        if let Some(seeds) = var(REDIS_CLUSTER_ENV) {
            #[cfg(feature = "redis-cluster")]
            {
                let layer = crate::layer::RedisClusterLayer::builder(comma_separated(&seeds))
                    .build()
                    .map_err(|err| invalid(REDIS_CLUSTER_ENV, err.to_string()))?;
                self = self.channel_layer(layer);
            }
            #[cfg(not(feature = "redis-cluster"))]
            {
                let _ = seeds;
                return Err(invalid(
                    REDIS_CLUSTER_ENV,
                    "it is set, but liveview was built without its `redis-cluster` feature"
                        .to_owned(),
                ));
            }
        }
        if let Some(url) = var(NATS_URL_ENV) {
            #[cfg(feature = "nats")]
            {
                let layer = crate::layer::NatsLayer::from_url(&url)
                    .map_err(|err| invalid(NATS_URL_ENV, err.to_string()))?;
                self = self.channel_layer(layer);
            }
            #[cfg(not(feature = "nats"))]
            {
                let _ = url;
                return Err(invalid(
                    NATS_URL_ENV,
                    "it is set, but liveview was built without its `nats` feature".to_owned(),
                ));
            }
        }
        if let Some(url) = var(REDIS_URL_ENV) {
            #[cfg(feature = "redis")]
            {
                let layer = crate::layer::RedisLayer::from_url(&url)
                    .map_err(|err| invalid(REDIS_URL_ENV, err.to_string()))?;
                self = self.channel_layer(layer);
            }
            #[cfg(not(feature = "redis"))]
            {
                let _ = url;
                return Err(invalid(
                    REDIS_URL_ENV,
                    "it is set, but liveview was built without its `redis` feature".to_owned(),
                ));
            }
        }
        if let Some(origins) = var(ALLOWED_ORIGINS_ENV) {
            self = self.allowed_origins(comma_separated(&origins));
        }
        if let Some(proxies) = var(TRUSTED_PROXIES_ENV) {
            let proxies = comma_separated(&proxies)
                .map(|proxy| {
                    proxy.parse().map_err(|_| {
                        invalid(
                            TRUSTED_PROXIES_ENV,
                            format!("{proxy:?} is not an IP address"),
                        )
                    })
                })
                .collect::<Result<Vec<std::net::IpAddr>, _>>()?;
            self = self.trusted_proxies(proxies);
        }
        Ok(self)
    }

    /// Build the application: collects the handlers (refusing duplicate
    /// names) and starts the channel layer. Call it inside a tokio runtime.
    pub fn build(self) -> Result<LiveView, BuildError> {
        let registry = Registry::global()?;
        let layer = self.layer.unwrap_or_else(|| Arc::new(MemoryLayer));
        let logs = self.config.replay.map(Logs::new);
        let metrics = Arc::new(Metrics::new(&registry.names()));
        let hub = Arc::new(
            Hub::new(layer.clone())
                .with_metrics(metrics.clone())
                .with_logs(logs)
                .with_shared_presence(self.presence.tracked),
        );
        layer.start(LocalDelivery {
            hub: Arc::downgrade(&hub),
            replay: self.config.replay,
        });
        let broadcaster = Broadcaster::new(hub.clone(), metrics.clone())
            .with_max_frame(self.config.max_outgoing_frame);
        let presence_queue = Arc::new(crate::hub::presence::PresenceQueue::default());
        let presence_task = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if self.presence.tracked => {
                let stop = CancellationToken::new();
                runtime.spawn(crate::connection::join::run_presence(
                    presence_queue.clone(),
                    hub.layer().clone(),
                    broadcaster.clone(),
                    self.presence.on_change.clone(),
                    stop.clone(),
                ));
                Some(stop.drop_guard())
            }
            _ => None,
        };
        let live = LiveView {
            shared: Arc::new(Shared {
                registry,
                middleware: self.middleware,
                hub,
                broadcaster,
                config: self.config,
                authenticator: self.authenticator,
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                metrics,
                addresses: Arc::default(),
                sockets: Arc::default(),
                presence: self.presence,
                state: Arc::new(self.state),
                served_at: Default::default(),
                streams: Default::default(),
                presence_queue,
                _presence_task: presence_task,
                next_id: AtomicU64::new(1),
            }),
        };
        // Answers to calls forwarded to other processes come through a
        // group of this process's own: joined now, so the first one is
        // not missed.
        if !live.shared.hub.layer().is_local() && tokio::runtime::Handle::try_current().is_ok() {
            crate::connection::sse::listen_for_replies(&live.shared);
        }
        Ok(live)
    }
}

/// The Redis URL read by [`LiveViewBuilder::from_env`].
const REDIS_URL_ENV: &str = "LIVEVIEW_REDIS_URL";
/// The NATS URL read by [`LiveViewBuilder::from_env`].
const NATS_URL_ENV: &str = "LIVEVIEW_NATS_URL";
/// The Redis Cluster seeds read by [`LiveViewBuilder::from_env`].
const REDIS_CLUSTER_ENV: &str = "LIVEVIEW_REDIS_CLUSTER";
/// The origins read by [`LiveViewBuilder::from_env`].
const ALLOWED_ORIGINS_ENV: &str = "LIVEVIEW_ALLOWED_ORIGINS";
/// The trusted proxies read by [`LiveViewBuilder::from_env`].
const TRUSTED_PROXIES_ENV: &str = "LIVEVIEW_TRUSTED_PROXIES";

fn comma_separated(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn apply_vars(vars: &[(&str, &str)]) -> Result<LiveViewBuilder, BuildError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LiveView::builder().apply_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_variables_change_nothing() {
        let builder = apply_vars(&[("LIVEVIEW_REDIS_URL", "  ")]).unwrap();
        assert!(builder.layer.is_none());
        assert!(builder.config.allowed_origins.is_none());
        assert!(builder.config.trusted_proxies.is_empty());
    }

    #[test]
    fn origins_and_proxies_are_comma_separated() {
        let builder = apply_vars(&[
            (
                "LIVEVIEW_ALLOWED_ORIGINS",
                "https://a.example, https://b.example,",
            ),
            ("LIVEVIEW_TRUSTED_PROXIES", "10.0.0.1, ::1"),
        ])
        .unwrap();
        assert_eq!(
            builder.config.allowed_origins.as_deref(),
            Some(
                &[
                    "https://a.example".to_owned(),
                    "https://b.example".to_owned()
                ][..]
            )
        );
        let proxies: Vec<std::net::IpAddr> =
            vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(builder.config.trusted_proxies, proxies);
    }

    #[test]
    fn one_channel_layer_from_the_environment() {
        let both = apply_vars(&[
            ("LIVEVIEW_REDIS_URL", "redis://127.0.0.1"),
            ("LIVEVIEW_NATS_URL", "nats://127.0.0.1:4222"),
        ]);
        assert!(both.unwrap_err().to_string().contains("LIVEVIEW_NATS_URL"));
        let nats = apply_vars(&[("LIVEVIEW_NATS_URL", "nats://127.0.0.1:4222")]);
        if cfg!(feature = "nats") {
            assert!(nats.unwrap().layer.is_some());
        } else {
            let err = nats.unwrap_err().to_string();
            assert!(err.contains("without its `nats` feature"), "{err}");
        }
    }

    #[test]
    fn a_bad_value_is_an_error_naming_its_variable() {
        let err =
            apply_vars(&[("LIVEVIEW_TRUSTED_PROXIES", "10.0.0.1,proxy.internal")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "LIVEVIEW_TRUSTED_PROXIES: \"proxy.internal\" is not an IP address"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_url_selects_the_redis_layer() {
        let builder = apply_vars(&[("LIVEVIEW_REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap();
        assert!(builder.layer.is_some());
        let err = apply_vars(&[("LIVEVIEW_REDIS_URL", "http://example.com")]).unwrap_err();
        assert!(err.to_string().starts_with("LIVEVIEW_REDIS_URL: "), "{err}");
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_redis_url_without_the_feature_is_an_error() {
        let err = apply_vars(&[("LIVEVIEW_REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap_err();
        assert!(err.to_string().contains("`redis` feature"), "{err}");
    }
}
