//! `cargo run --release -p demo`: the demo on http://127.0.0.1:8000.
//!
//! - `LIVEVIEW_ADDR`: the address to listen on;
//! - `DEMO_DATABASE`: the SQLite file (default `demo.sqlite3`, created on
//!   first start);
//! - `DEMO_SECRET`: the key that signs session cookies, at least 32 bytes
//!   (without it, a random one: sign-ins do not survive a restart);
//! - `LIVEVIEW_ALLOWED_ORIGINS`: the pages' public origins, comma-separated
//!   (`https://demo.example`), when the demo is behind a proxy or reached
//!   by a name; without it only pages served from `LIVEVIEW_ADDR` may open
//!   a socket;
//! - `LIVEVIEW_REDIS_URL`: use Redis as the channel layer, so several demo
//!   processes share their pages' updates;
//! - `RUST_LOG`: the log filter (default `info`).

use std::process::ExitCode;

use demo::Config;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env();
    let addr = config.addr.clone();
    tracing::info!(database = %config.database.display(), "opening the database");
    let (router, live) = demo::app(config).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("LiveView demo on http://{}", listener.local_addr()?);
    liveview::serve(listener, router, live).await?;
    Ok(())
}
