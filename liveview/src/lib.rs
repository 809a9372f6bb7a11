//! # LiveView for Rust
//!
//! Real-time, server-rendered pages over WebSockets, on tokio and axum. A
//! small script in the page turns clicks, inputs and form submits into
//! WebSocket messages; your handlers answer with HTML that the script puts
//! into the page: for the caller, for a room, or for everyone, across server
//! processes through Redis. The wire protocol is Django LiveView's, so its
//! pages and its client work here unchanged.
//!
//! ## A handler
//!
//! A handler is a function registered under a name with
//! [`#[liveview_handler]`](liveview_handler). It gets the [`Consumer`] (the
//! connection) and the [`Content`] of the call, and answers with
//! [`Update`]s, their markup built with [`html!`], which escapes every
//! value it puts in:
//!
//! ```
//! use liveview::{html, liveview_handler, Consumer, Content, Update};
//!
//! #[liveview_handler("say_hello")]
//! async fn say_hello(consumer: &Consumer, content: Content) -> liveview::Result {
//!     let name = content.form.str_or("name", "World");
//!     consumer.send(Update::new("#greeting").html(html!("<h1>Hello, {name}!</h1>")))?;
//!     Ok(())
//! }
//! ```
//!
//! A plain `fn` works too and runs on the blocking pool, so it may use a
//! blocking database driver. Handlers are collected at link time: there is
//! no list to keep.
//!
//! ## The page
//!
//! ```html
//! <html data-room="{{ liveview_room_uuid() }}">
//! <body data-controller="page">
//!   <input type="text" name="name">
//!   <button data-liveview-function="say_hello" data-action="click->page#run">Greet</button>
//!   <div id="greeting"></div>
//!   {{ liveview_script() }}
//! </body>
//! </html>
//! ```
//!
//! ## Serving
//!
//! The page is a template: render it at every request, so that each page
//! load gets a room of its own. [`LiveView::router`] gives the WebSocket
//! endpoint and the script; merge it into your app:
//!
//! ```no_run
//! use axum::{http::StatusCode, response::Html, routing::get, Router};
//! use liveview::LiveView;
//!
//! async fn index() -> Result<Html<String>, StatusCode> {
//!     let mut env = minijinja::Environment::new();
//!     liveview::template::register(&mut env); // liveview_room_uuid(), liveview_script()
//!     env.add_template("index.html", include_str!("../../examples/quickstart/templates/index.html"))
//!         .and_then(|()| env.get_template("index.html")?.render(()))
//!         .map(Html)
//!         .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     tracing_subscriber::fmt::init(); // the registered handlers, handler errors
//!     let live = LiveView::builder().from_env()?.build()?;
//!     let app = Router::new()
//!         .route("/", get(index))
//!         .merge(live.router());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     liveview::serve(listener, app, live).await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Broadcasting
//!
//! ```
//! use liveview::{html, liveview_handler, Consumer, Content, Update};
//!
//! #[liveview_handler("notify_all")]
//! async fn notify_all(consumer: &Consumer, content: Content) -> liveview::Result {
//!     let message = content.form.str_or("message", "");
//!     let html = html!(r#"<div class="notification">{message}</div>"#);
//!     consumer.broadcast(Update::new("#notifications").html(html).append()).await?;
//!     Ok(())
//! }
//! ```
//!
//! [`Broadcaster::send_to_room`] reaches one room (a [`Consumer`] derefs to
//! the app's [`Broadcaster`]); [`LiveView::broadcaster`]
//! and [`Consumer::broadcaster`] give a handle for tasks and threads.
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `minijinja` | on | [`template::register`]: `liveview_room_uuid()` and `liveview_script()` for minijinja |
//! | `redis` | off | `layer::RedisLayer`, the channel layer between server processes, and `LIVEVIEW_REDIS_URL` in [`LiveViewBuilder::from_env`] |
//! | `redis-tls` | off | `rediss://` URLs for the Redis layer |
//! | `testing` | off | [`testing`]: a recording consumer, an in-process app, a real test server and WebSocket client |
//!
//! Test helpers are usually a dev-dependency (`features = ["testing"]`),
//! and `cargo doc` leaves out a dev-dependency's features: read them on
//! docs.rs, built with every feature, or run `cargo doc --open -p liveview
//! --features liveview/testing`.
//!
//! ## Modules
//!
//! - [`layer`]: channel layers (in-memory, Redis) and the trait behind them.
//! - [`middleware`]: ready middleware such as [`middleware::require_user`].
//! - [`protocol`]: the fixed error frames and close codes.
//! - [`testing`] (feature `testing`): test a handler, an app, or a real server.
//! - [`template`]: page helpers, for minijinja or any other engine.
//! - [`upload`]: file uploads, chunked and resumable, checked before storage.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs link to items of optional features (`testing`, `s3`);
// with those features off the links have no target. Builds with every
// feature (CI, docs.rs) still check them.
#![cfg_attr(
    not(all(feature = "testing", feature = "s3")),
    allow(rustdoc::broken_intra_doc_links)
)]

// `html!` names its items as `::liveview::...`, here as in any other crate.
extern crate self as liveview;

// The app on top: builder, consumer, broadcaster, routes, serving.
mod app;
pub mod assets;
mod auth;
mod broadcast;
mod consumer;
mod router;
mod serve;
pub mod session;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upload;

// One call: protocol, content, dispatch, handlers, middleware.
mod call;
// One connection: upgrade, reader and writer, outbox, joining its groups.
mod connection;
// This process's groups, local replay log and presence.
mod hub;
// How frames reach other processes.
pub mod layer;

// Leaves, importing nothing above them.
mod error;
mod html;
mod limits;
mod metrics;
mod scope;
mod update;

pub use app::{LiveView, LiveViewBuilder};
pub use auth::{Authenticator, Identity};
pub use broadcast::Broadcaster;
pub use call::content::{Content, Fields};
pub use call::{middleware, protocol};
pub use connection::is_valid_room;
pub use consumer::Consumer;
pub use error::{BroadcastError, BuildError, ContentError, Error, Result, SendError};
pub use html::{Html, ToHtml, escape};
pub use hub::presence::Presence;
pub use limits::RateLimit;
pub use liveview_macros::{html, liveview_handler};
pub use scope::{Scope, ScopeBuilder, User};
pub use serve::{serve, serve_until, shutdown_signal};
pub use update::{IntoUpdate, Update};

/// Entry points for the fuzz targets and benchmarks (`fuzz/`, `bench/`).
/// Not public API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::call::content::keys::snake_case;
    /// Decode one client frame as the server does: parse it, normalise the keys
    /// of `form` and `data`, and fill the defaults. Returns the content a
    /// handler would see and the call's `ref`, or `None` for a frame the server
    /// answers with `{"error": "Invalid message"}`. Never panics, whatever the
    /// input (it is fuzzed).
    ///
    /// ```
    /// let (content, reference) = liveview::__fuzz::decode(
    ///     r#"{"function": "delete_comment", "data": {"dataCommentId": "3"}, "ref": 5}"#,
    ///     "lobby",
    /// )
    /// .unwrap();
    /// assert_eq!(content.data.str("comment_id"), Some("3"));
    /// assert_eq!(content.room(), "lobby");
    /// assert_eq!(reference, Some(5));
    /// assert!(liveview::__fuzz::decode("[1]", "lobby").is_none());
    /// ```
    pub fn decode(text: &str, room: &str) -> Option<(crate::Content, Option<u64>)> {
        crate::call::protocol::parse(text, room)
            .ok()
            .map(|call| (call.content, call.reference))
    }

    /// [`decode`] as the parser before the single-pass one did it: the
    /// reference the `decode` fuzz target holds [`decode`] to (the same
    /// content, `ref` and refusals). Built only under cargo-fuzz.
    #[cfg(fuzzing)]
    pub fn decode_reference(text: &str, room: &str) -> Option<(crate::Content, Option<u64>)> {
        crate::call::protocol::reference::parse(text, room).ok()
    }
}

/// What the `#[liveview_handler]` and `html!` expansions name. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use std::string::String;

    pub use crate::call::handler::{
        Handler, HandlerEntry, HandlerFuture, IntoHandlerResult, boxed,
    };
    pub use inventory;
}
