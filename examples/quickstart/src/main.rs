//! `cargo run -p quickstart`: the quick start on http://127.0.0.1:8000
//! (`LIVEVIEW_ADDR` overrides the address; `LIVEVIEW_METRICS=1` adds
//! `/metrics`, `/healthz` and `/readyz`).

use liveview::LiveView;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let live = LiveView::builder().from_env()?.build()?;
    let mut app = quickstart::app(&live);
    if std::env::var_os("LIVEVIEW_METRICS").is_some() {
        app = app.merge(live.metrics_router()).merge(live.health_router());
    }
    let addr = std::env::var("LIVEVIEW_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("LiveView quick start on http://{}", listener.local_addr()?);
    liveview::serve(listener, app, live).await?;
    Ok(())
}
