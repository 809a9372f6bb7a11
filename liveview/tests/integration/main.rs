//! The integration tests of the `liveview` crate, in one binary.

mod app;
mod assets;
mod auth;
mod browser;
mod closes;
mod conformance;
mod delivery;
mod errors;
mod handlers;
#[cfg(feature = "redis")]
mod health;
mod http_transport;
mod levels;
mod liveness;
mod middleware;
#[cfg(feature = "nats")]
mod nats;
mod origin;
mod outgoing;
mod presence;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis-cluster")]
mod redis_cluster;
mod replay;
mod security;
mod servers;
mod shutdown;
mod slowloris;
mod support;
mod testing_api;
mod uploads;
#[cfg(feature = "s3")]
mod uploads_s3;
