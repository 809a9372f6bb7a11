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
//!   with the query in the URL.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`Config`]: what the environment sets (address, database file);
//! - [`Demo`]: the application's state (database, templates, games), given
//!   to the pages as axum state and to the LiveView handlers through the
//!   connection;
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
use liveview::{BuildError, Consumer, LiveView, LiveViewBuilder};

pub mod catalogue;
pub mod db;
pub mod pages;
pub mod templates;

// The quick start page uses the quick start's own handlers: naming the
// crate links them in.
use quickstart as _;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8000".to_owned(),
            database: PathBuf::from("demo.sqlite3"),
            products: 3_000,
            snake_tick: Duration::from_millis(125),
        }
    }
}

impl Config {
    /// The defaults, with `LIVEVIEW_ADDR` and `DEMO_DATABASE` from the
    /// environment when they are set. (`LIVEVIEW_REDIS_URL` is read by
    /// the library: with it, pages on several demo processes see each
    /// other's alerts.)
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
        config
    }

    /// These settings with another database file.
    pub fn with_database(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = path.into();
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
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(err) => write!(f, "{err}"),
            Self::Templates(err) => write!(f, "a template does not compile: {err}"),
            Self::LiveView(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(err) => Some(err),
            Self::Templates(err) => Some(err),
            Self::LiveView(err) => Some(err),
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

/// The application's state: database, templates and running games. Cheap
/// to clone.
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
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Open the database (creating, migrating and seeding it as needed)
    /// and load the templates.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        let templates = Templates::new().map_err(StartError::Templates)?;
        let db = Db::open(&config.database).await?;
        if db.seed_products(config.products).await? {
            tracing::info!(products = config.products, "seeded the search catalogue");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                db,
                templates,
                games: pages::snake::Games::default(),
                dismissals: pages::alerts::Dismissals::default(),
            }),
        })
    }

    /// Build the LiveView application from `builder` (which may carry a
    /// channel layer or limits of its own) and start the background task
    /// that dismisses alerts. Call it inside a tokio runtime.
    pub fn liveview(&self, builder: LiveViewBuilder) -> Result<LiveView, BuildError> {
        // Handlers are plain functions found at link time; the state
        // reaches them through the connection, put there by this
        // middleware before the first call.
        let demo = self.clone();
        let live = builder
            .middleware(move |consumer, _content, _function| {
                if consumer.get::<Demo>().is_none() {
                    consumer.insert(demo.clone());
                }
                true
            })
            .build()?;
        pages::alerts::spawn_dismisser(self, live.broadcaster());
        Ok(live)
    }

    /// Every route of the demo: the pages, the stylesheet and the LiveView
    /// endpoint of `live`.
    pub fn router(&self, live: &LiveView) -> Router {
        pages::routes()
            .with_state(self.clone())
            .merge(live.router())
    }

    /// The state of the connection's app, as the middleware of
    /// [`liveview`](Self::liveview) stored it.
    pub fn of(consumer: &Consumer) -> liveview::Result<Self> {
        consumer.get::<Demo>().ok_or_else(|| {
            liveview::Error::msg("the demo's state is missing: build the app with Demo::liveview")
        })
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

/// The whole demo, ready to serve: its router and its LiveView app (with
/// the in-memory channel layer, or Redis when `LIVEVIEW_REDIS_URL` is set).
pub async fn app(config: Config) -> Result<(Router, LiveView), StartError> {
    let demo = Demo::open(config).await?;
    let live = demo.liveview(LiveView::builder())?;
    Ok((demo.router(&live), live))
}
