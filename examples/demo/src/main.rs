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
//! - `DEMO_METRICS_ADDR`: serve `/metrics` on this separate address (a
//!   private one: the metrics name every handler); `DEMO_METRICS_TOKEN`:
//!   serve it on the main port too, to requests with
//!   `Authorization: Bearer <token>`. Without either, there is no
//!   `/metrics`;
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
    let metrics_addr = config.metrics_addr.clone();
    tracing::info!(database = %config.database.display(), "opening the database");
    let demo = demo::Demo::open(config).await?;
    let live = demo.liveview(liveview::LiveView::builder().from_env()?)?;
    let router = demo.router(&live);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    if let Some(metrics_addr) = metrics_addr {
        let metrics = tokio::net::TcpListener::bind(&metrics_addr)
            .await
            .map_err(|err| format!("cannot listen on {metrics_addr}: {err}"))?;
        println!("Metrics on http://{}/metrics", metrics.local_addr()?);
        let app = demo.metrics_router(&live);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(metrics, app).await {
                tracing::error!(error = %err, "the metrics listener failed");
            }
        });
    }
    println!("LiveView demo on http://{}", listener.local_addr()?);
    liveview::serve(listener, router, live).await?;
    Ok(())
}
