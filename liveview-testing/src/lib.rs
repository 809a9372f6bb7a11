//! Browser tests for LiveView for Rust, kept apart from the `liveview`
//! crate so that its dependency tree carries no WebDriver client.
//!
//! [`browser::Browser`] drives a real headless Chromium through
//! chromedriver against a server, e.g. a
//! [`liveview::testing::TestServer`](https://docs.rs/liveview/latest/liveview/testing/struct.TestServer.html):
//! the real client script, the real socket, the real DOM. Add it as a
//! dev-dependency beside `liveview` with its `testing` feature.

pub mod browser;
