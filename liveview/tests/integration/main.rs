//! The integration tests of the `liveview` crate, in one binary.

mod app;
mod assets;
mod auth;
mod browser;
mod delivery;
mod errors;
mod handlers;
mod levels;
mod middleware;
mod origin;
mod presence;
mod replay;
mod security;
#[cfg(feature = "redis")]
mod redis;
mod shutdown;
mod support;
