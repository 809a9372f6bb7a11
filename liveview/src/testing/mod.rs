//! Test helpers, Django LiveView's three levels of testing (feature `testing`).
//!
//! 1. **One handler, no socket**: [`consumer`] gives a [`Consumer`] and a
//!    [`Recorder`] of everything sent through it; call the handler function
//!    directly.
//! 2. **The app, in process**: [`TestApp`] connects clients to rooms and
//!    calls functions through the real dispatch (registry, middleware,
//!    errors), returning the frames each client received.
//! 3. **A real server**: [`TestServer`] serves the real router on
//!    `127.0.0.1:0`, and [`WsClient`] talks to it over a real WebSocket
//!    ([`SseClient`] over the HTTP transport).
//! 4. **A real browser** (the `liveview-testing` crate, kept apart so this
//!    crate carries no WebDriver client): `liveview_testing::browser::Browser` drives a
//!    headless Chromium through chromedriver against a [`TestServer`].
//!
//! For channel layers, private servers a test may kill: [`RedisServer`] (a
//! `redis-server`), [`RedisCluster`] (a Redis Cluster of `redis-server`
//! processes) and [`NatsServer`] (a `nats-server` with JetStream).
//!
//! ```
//! use liveview::{liveview_handler, testing, Consumer, Content, Update};
//! use serde_json::json;
//!
//! #[liveview_handler("testing_docs_hello")]
//! async fn hello(consumer: &Consumer, content: Content) -> liveview::Result {
//!     let name = liveview::escape(content.form.str_or("name", "World"));
//!     consumer.send(Update::new("#greeting").html(format!("<h1>Hello, {name}!</h1>")))?;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (consumer, recorder) = testing::consumer("room-1");
//! hello(&consumer, Content::new("testing_docs_hello").with_form(json!({"name": "Ada"}))).await.unwrap();
//! assert_eq!(recorder.sent(), [json!({"target": "#greeting", "html": "<h1>Hello, Ada!</h1>"})]);
//! # }
//! ```

mod client;
mod cluster;
pub mod conformance;
mod nats;
mod process;
mod recorder;
mod redis;
mod server;
pub mod sse;

pub use client::{TestApp, TestClient};
pub use cluster::RedisCluster;
pub use nats::NatsServer;
pub use recorder::{Recorder, consumer, consumer_with_scope};
pub use redis::RedisServer;
pub use server::{Closed, TestServer, WsClient};
pub use sse::SseClient;

#[doc(no_inline)]
pub use crate::Consumer;
