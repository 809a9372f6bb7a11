//! The LiveView for Rust demo: every feature of the library in one small
//! application.
//!
//! - `/quickstart/`: the quick start's `say_hello` and `notify_all`;
//! - `/alerts/`: the alert system: a validated form, alerts stored in
//!   SQLite and pushed to every open page, deletion, auto-dismissal by a
//!   background task, infinite scroll;
//! - `/snake/`: snake, with the game loop on the server and every tab of a
//!   room watching the same game;
//! - `/search/`: a debounced search over a generated product catalogue,
//!   with the query in the URL;
//! - `/uploads/`: a shared photo wall: chunked, resumable uploads checked
//!   by content, thumbnails made on the server, shown on every open wall;
//! - `/login/`: sign in with a name (signed session cookie); only signed-in
//!   visitors may delete alerts;
//! - `/healthz`, `/readyz`: the library's health checks; `/metrics` only on
//!   a listener of its own or behind a token (see [`Config::metrics_token`]).
//!
//! The alerts page and every snake game show who is watching, from the
//! library's presence tracking.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`Config`]: what the environment sets (address, database file, session
//!   secret);
//! - [`Demo`]: the application's state (database, templates, games,
//!   sessions), given to the pages as axum state and to the LiveView
//!   handlers as the app's state (`consumer.app_state::<Demo>()`);
//! - [`db`]: the SQLite database and its migrations;
//! - [`templates`]: the minijinja templates, escaped by default;
//! - [`pages`]: one module per page, with its routes and its handlers.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (router, live) = demo::app(demo::Config::from_env()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! liveview::serve(listener, router, live).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use liveview::middleware::require_user;
use liveview::session::SessionAuth;
use liveview::{BuildError, Consumer, Identity, LiveView, LiveViewBuilder};

pub mod catalogue;
pub mod db;
mod metrics;
pub mod pages;
pub mod templates;

// The quick start page uses the quick start's own handlers: naming the
// crate links them in.
use quickstart as _;

/// Bytes a second of group frames (broadcasts, room sends) the calls of one
/// connection may publish: a person posting alerts or notifications never
/// comes near it.
pub const BROADCAST_BUDGET: u64 = 32 * 1024;

use db::{Db, DbError};
use templates::Templates;

/// The demo's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The address to listen on (`LIVEVIEW_ADDR`, default `127.0.0.1:8000`).
    pub addr: String,
    /// The SQLite file (`DEMO_DATABASE`, default `demo.sqlite3` in the
    /// working directory). Created on first start.
    pub database: PathBuf,
    /// How many products the search catalogue gets on first start.
    pub products: usize,
    /// The time between two moves of a snake.
    pub snake_tick: Duration,
    /// The key that signs session cookies (`DEMO_SECRET`, at least
    /// [`MIN_SECRET_BYTES`] bytes). Without one, a random key is made at
    /// start, so sign-ins do not survive a restart and are not shared
    /// between processes.
    pub secret: Option<Secret>,
    /// The origins whose pages may open a socket
    /// (`LIVEVIEW_ALLOWED_ORIGINS`, comma-separated, e.g.
    /// `https://demo.example`). Empty: only pages served from the address
    /// the demo listens on, which is right for `127.0.0.1:8000` and wrong
    /// behind a proxy or a public name.
    pub allowed_origins: Vec<String>,
    /// The token that `GET /metrics` on the demo's own port must carry as
    /// `Authorization: Bearer <token>` (`DEMO_METRICS_TOKEN`). Without it
    /// (and by default) the demo's port has no `/metrics`: the metrics
    /// name every handler and count every visitor, which is for the
    /// operator only.
    pub metrics_token: Option<String>,
    /// A separate address serving `/metrics` without a token
    /// (`DEMO_METRICS_ADDR`, e.g. `127.0.0.1:9000`), for a scraper on a
    /// private network. Off by default.
    pub metrics_addr: Option<String>,
    /// How often a process closes its connections of sessions signed out
    /// on another process sharing the database (default 1 s). A call of
    /// such a connection is refused at once, whatever this is.
    pub sign_out_check: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8000".to_owned(),
            database: PathBuf::from("demo.sqlite3"),
            products: 3_000,
            snake_tick: Duration::from_millis(125),
            secret: None,
            allowed_origins: Vec::new(),
            metrics_token: None,
            metrics_addr: None,
            sign_out_check: Duration::from_secs(1),
        }
    }
}

/// How long a sign-in lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// The shortest session secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A session secret. Its `Debug` output does not show it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// A fresh random secret (256 bits from the operating system's
    /// generator, less the version bits of two UUIDs).
    pub fn random() -> Self {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(bytes)
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Config {
    /// The defaults, with `LIVEVIEW_ADDR`, `DEMO_DATABASE`, `DEMO_SECRET`,
    /// `DEMO_METRICS_TOKEN`, `DEMO_METRICS_ADDR` and
    /// `LIVEVIEW_ALLOWED_ORIGINS` from the environment when they are set.
    /// (`LIVEVIEW_REDIS_URL` is read by [`app`], through the library's
    /// `LiveViewBuilder::from_env`: with it, pages on several demo
    /// processes see each other's alerts.)
    pub fn from_env() -> Self {
        let mut config = Self::default();
        if let Some(addr) = std::env::var("LIVEVIEW_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        {
            config.addr = addr;
        }
        if let Some(path) = std::env::var_os("DEMO_DATABASE").filter(|p| !p.is_empty()) {
            config.database = PathBuf::from(path);
        }
        if let Some(secret) = std::env::var_os("DEMO_SECRET").filter(|s| !s.is_empty()) {
            config.secret = Some(Secret::new(secret.into_encoded_bytes()));
        }
        if let Some(token) = std::env::var("DEMO_METRICS_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            config.metrics_token = Some(token);
        }
        if let Some(addr) = std::env::var("DEMO_METRICS_ADDR")
            .ok()
            .filter(|a| !a.is_empty())
        {
            config.metrics_addr = Some(addr);
        }
        if let Ok(origins) = std::env::var("LIVEVIEW_ALLOWED_ORIGINS") {
            config.allowed_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        config
    }

    /// These settings with this session secret.
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// These settings with another database file.
    pub fn with_database(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = path.into();
        self
    }

    /// These settings with `/metrics` on the demo's port, for requests that
    /// carry `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: impl Into<String>) -> Self {
        self.metrics_token = Some(token.into());
        self
    }

    /// These settings with another interval between two looks for
    /// sessions signed out on other processes.
    pub fn with_sign_out_check(mut self, every: Duration) -> Self {
        self.sign_out_check = every;
        self
    }

    /// These settings with another snake speed.
    pub fn with_snake_tick(mut self, tick: Duration) -> Self {
        self.snake_tick = tick;
        self
    }

    /// These settings with a catalogue of `products` products.
    pub fn with_products(mut self, products: usize) -> Self {
        self.products = products;
        self
    }
}

/// Why the demo could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened, migrated or seeded.
    Database(DbError),
    /// A template does not compile.
    Templates(minijinja::Error),
    /// The LiveView application could not be built (a duplicate handler
    /// name, or an unreachable Redis URL).
    LiveView(BuildError),
    /// The session secret is too short: it has this many bytes.
    ShortSecret(usize),
    /// The photo wall's directory could not be made.
    Uploads(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(err) => write!(f, "{err}"),
            Self::Templates(err) => write!(f, "a template does not compile: {err}"),
            Self::LiveView(err) => write!(f, "{err}"),
            Self::Uploads(err) => write!(f, "the uploads directory: {err}"),
            Self::ShortSecret(len) => write!(
                f,
                "DEMO_SECRET has {len} bytes; use at least {MIN_SECRET_BYTES} random bytes"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(err) => Some(err),
            Self::Templates(err) => Some(err),
            Self::LiveView(err) => Some(err),
            Self::Uploads(err) => Some(err),
            Self::ShortSecret(_) => None,
        }
    }
}

impl From<DbError> for StartError {
    fn from(err: DbError) -> Self {
        Self::Database(err)
    }
}

impl From<BuildError> for StartError {
    fn from(err: BuildError) -> Self {
        Self::LiveView(err)
    }
}

/// The application's state: database, templates, running games and
/// sessions. Cheap to clone.
#[derive(Clone)]
pub struct Demo {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    templates: Templates,
    games: pages::snake::Games,
    dismissals: pages::alerts::Dismissals,
    sessions: SessionAuth,
    live_sessions: pages::login::LiveSessions,
    wall: Arc<pages::uploads::Wall>,
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Open the database (creating, migrating and seeding it as needed),
    /// load the templates and set up the session keys.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let sessions = match &config.secret {
            Some(secret) => SessionAuth::new(secret.as_bytes())
                .map_err(|short| StartError::ShortSecret(short.len()))?
                .max_age(SESSION_LIFETIME),
            None => {
                tracing::warn!(
                    "DEMO_SECRET is not set: sessions are signed with a random key made at start, \
                     so sign-ins will not survive a restart"
                );
                SessionAuth::new(Secret::random().as_bytes())
                    .map_err(|short| StartError::ShortSecret(short.len()))?
                    .max_age(SESSION_LIFETIME)
            }
        };
        let templates = Templates::new().map_err(StartError::Templates)?;
        // Uploaded photos live beside the database: `demo.uploads/`.
        let wall = pages::uploads::Wall::open(config.database.with_extension("uploads"))
            .map_err(StartError::Uploads)?;
        let db = Db::open(&config.database).await?;
        if db.seed_products(config.products).await? {
            tracing::info!(products = config.products, "seeded the search catalogue");
        }
        let live_sessions = pages::login::LiveSessions::open(db.clone(), SESSION_LIFETIME).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                db,
                templates,
                games: pages::snake::Games::default(),
                dismissals: pages::alerts::Dismissals::default(),
                sessions,
                live_sessions,
                wall,
            }),
        })
    }

    /// Build the LiveView application from `builder` (which may carry a
    /// channel layer or limits of its own) and start the background task
    /// that dismisses alerts. Call it inside a tokio runtime.
    ///
    /// The builder gets the demo as the app's state (handlers are plain
    /// functions found at link time: they read it with [`Demo::of`]), the
    /// session cookie as the authenticator (a session signed out on any
    /// process is refused as expired), a middleware that notes the
    /// connections of each session (signing out closes them with 4401,
    /// also those on other processes sharing the database), one that lets
    /// only signed-in visitors delete alerts, and the presence callback that
    /// tells the alerts page and the snake games who is watching.
    pub fn liveview(&self, builder: LiveViewBuilder) -> Result<LiveView, BuildError> {
        let refusal = pages::flash(self, pages::FlashKind::Error, SIGN_IN_TO_DELETE)
            .unwrap_or_else(|_| liveview::Update::new("#flash").html(SIGN_IN_TO_DELETE));
        let demo = self.clone();
        let builder = if self.config().allowed_origins.is_empty() {
            builder
        } else {
            builder.allowed_origins(self.config().allowed_origins.clone())
        };
        let live = builder
            .state(self.clone())
            // A session signed out in another tab, on any process, is
            // refused with 4401, and so is every call its open tabs still
            // make.
            .authenticator(SignedOutRefused(self.clone()))
            .middleware(SignedOutRefused(self.clone()))
            // Broadcasts are multiplied by their receivers: the texts
            // broadcast are capped, and so are the bytes a second of group
            // frames one connection's calls may publish.
            .middleware(pages::quickstart::cap_lengths)
            .broadcast_budget(Some(BROADCAST_BUDGET))
            .middleware(require_user(refusal, &[pages::alerts::DELETE]))
            .on_presence(move |presence| pages::presence::update(&demo, presence))
            .uploads(pages::uploads::uploads(
                self.wall(),
                self.config().secret.as_ref().map(Secret::as_bytes),
            ))
            .build()?;
        pages::alerts::spawn_dismisser(self, live.broadcaster());
        self.spawn_sign_out_check();
        Ok(live)
    }

    /// Close, every [`Config::sign_out_check`], the connections of this
    /// process whose session another process signed out, until the demo is
    /// dropped.
    fn spawn_sign_out_check(&self) {
        let weak = self.downgrade();
        let every = self.config().sign_out_check;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(demo) = Demo::upgrade(&weak) else {
                    return;
                };
                if let Err(err) = demo.live_sessions().close_signed_out().await {
                    tracing::warn!(error = %err, "looking for sessions signed out elsewhere failed");
                }
            }
        });
    }

    /// Every route of the demo: the pages, the stylesheet, the sign-in
    /// routes, and the LiveView endpoint and health checks (`/healthz`,
    /// `/readyz`) of `live`. `/metrics` is there only with a
    /// [`Config::metrics_token`], for requests that carry it; otherwise
    /// serve [`metrics_router`](Self::metrics_router) on a private address.
    pub fn router(&self, live: &LiveView) -> Router {
        let router = pages::routes()
            .with_state(self.clone())
            .merge(live.router())
            .merge(live.health_router());
        let router = match &self.config().metrics_token {
            Some(token) => router.merge(metrics::behind_token(live, token)),
            None => router,
        };
        router.layer(axum::middleware::map_response(pages::security_headers))
    }

    /// `/metrics` without a token, for a listener of its own that only the
    /// monitoring reaches ([`Config::metrics_addr`]).
    pub fn metrics_router(&self, live: &LiveView) -> Router {
        live.metrics_router()
    }

    /// The demo, as [`liveview`](Self::liveview) gave it to the app.
    pub fn of(consumer: &Consumer) -> liveview::Result<&Self> {
        consumer.app_state::<Demo>().ok_or_else(|| {
            liveview::Error::msg("the demo's state is missing: build the app with Demo::liveview")
        })
    }

    /// The signed session cookies: who is signed in.
    pub fn sessions(&self) -> &SessionAuth {
        &self.inner.sessions
    }

    /// The open connections of signed-in sessions, and the sessions
    /// signed out.
    pub fn live_sessions(&self) -> &pages::login::LiveSessions {
        &self.inner.live_sessions
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The templates.
    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    pub(crate) fn games(&self) -> &pages::snake::Games {
        &self.inner.games
    }

    /// The photo wall.
    pub fn wall(&self) -> &pages::uploads::Wall {
        &self.inner.wall
    }

    pub(crate) fn dismissals(&self) -> &pages::alerts::Dismissals {
        &self.inner.dismissals
    }

    fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }
}

/// The session cookie's user, unless the session was signed out on any
/// process: as the authenticator, such a session is refused with 4401; as
/// a middleware, it notes each call's connection (for signing out to close
/// it) and refuses, with 4401, the calls of a session signed out since the
/// connection opened.
struct SignedOutRefused(Demo);

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl liveview::Authenticator for SignedOutRefused {
    fn authenticate<'a>(&'a self, scope: &'a liveview::Scope) -> Pending<'a, Identity> {
        Box::pin(async move {
            match self.0.sessions().identity(scope) {
                Identity::User(user) => {
                    match self.0.live_sessions().is_signed_out(&user.id).await {
                        Ok(false) => Identity::User(user),
                        Ok(true) => Identity::Expired,
                        Err(err) => {
                            // Anonymous: nothing a signed-out visitor could not
                            // do, and the page stays live.
                            tracing::warn!(error = %err, "a session could not be looked up");
                            Identity::Anonymous
                        }
                    }
                }
                identity => identity,
            }
        })
    }
}

impl liveview::middleware::Middleware for SignedOutRefused {
    fn allows<'a>(
        &'a self,
        consumer: &'a Consumer,
        _: &'a liveview::Content,
        _: &'a str,
    ) -> Pending<'a, bool> {
        Box::pin(self.0.live_sessions().track(consumer))
    }
}

/// What an anonymous visitor who tries to delete an alert is told.
pub const SIGN_IN_TO_DELETE: &str = "Sign in to delete alerts.";

/// The whole demo, ready to serve: its router and its LiveView app (with
/// the in-memory channel layer, or Redis when `LIVEVIEW_REDIS_URL` is set:
/// the library's [`LiveViewBuilder::from_env`] reads it).
pub async fn app(config: Config) -> Result<(Router, LiveView), StartError> {
    let demo = Demo::open(config).await?;
    let live = demo.liveview(LiveView::builder().from_env()?)?;
    Ok((demo.router(&live), live))
}
