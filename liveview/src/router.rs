//! The routes a LiveView app adds to an axum router.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::{StatusCode, header};

use crate::app::LiveView;
use crate::assets::{SCRIPT_PATH, SCRIPT_PATH_MIN, serve_script};
use crate::connection::sse;
use crate::connection::upgrade;

impl LiveView {
    /// The routes of the app, the counterpart of Django LiveView's
    /// `get_liveview_urlpatterns()`: the WebSocket endpoint
    /// `/ws/liveview/{room}/` (with or without the trailing slash), the
    /// HTTP transport `/liveview/events/{room}/` (Server-Sent Events down,
    /// POST up, for browsers whose WebSocket cannot get through) and the
    /// client script at `/static/liveview/liveview.js` (and `.min.js`), the
    /// upload script and, with [`uploads`](crate::LiveViewBuilder::uploads),
    /// the upload route.
    /// Merge it into your own router.
    ///
    /// ```
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.router());
    /// # drop(app);
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/ws/liveview/{room}/", get(upgrade))
            .route("/ws/liveview/{room}", get(upgrade))
            .route(SCRIPT_PATH, get(serve_script))
            .route(SCRIPT_PATH_MIN, get(serve_script))
            .with_state(self.shared.clone())
            .merge(sse::router(self.shared.clone()))
            .merge(crate::upload::router(self))
    }
}

impl LiveView {
    /// `GET /metrics`: the app's counters in the Prometheus text format
    /// (connections, calls by function and outcome, handler durations,
    /// frames and bytes, group publishes, layer failures, slow-client
    /// closes, rate-limit refusals, the channel layer's dropped and expired
    /// frames). Opt-in: merge it where only your monitoring can reach it.
    ///
    /// The same series also go through the [`metrics`](https://docs.rs/metrics)
    /// facade to the recorder the application installed (before the first
    /// connection): an application with its own exporter gets them there
    /// and needs no route. This route serves the application's own counts,
    /// whatever recorder is installed.
    ///
    /// ```
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.router()).merge(live.metrics_router());
    /// # drop(app);
    /// ```
    pub fn metrics_router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// `GET /healthz` (200 while serving, 503 once shutting down) and
    /// `GET /readyz` (also 503 while the channel layer cannot carry
    /// frames), for load balancers and orchestrators.
    ///
    /// ```
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.health_router());
    /// # drop(app);
    /// ```
    pub fn health_router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// The metrics text, as `/metrics` serves it.
    pub fn metrics_text(&self) -> String {
        let shared = &self.shared;
        shared
            .metrics
            .addresses
            .set(shared.addresses.len().try_into().unwrap_or(i64::MAX));
        shared.metrics.render()
    }
}

async fn metrics(State(live): State<LiveView>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        live.metrics_text(),
    )
}

async fn healthz(State(live): State<LiveView>) -> impl IntoResponse {
    if live.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else {
        (StatusCode::OK, "ok")
    }
}

async fn readyz(State(live): State<LiveView>) -> impl IntoResponse {
    if live.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    }
    match live.layer_health().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(err) => {
            tracing::warn!(target: "liveview", error = %err, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "channel layer unavailable".to_owned(),
            )
        }
    }
}
