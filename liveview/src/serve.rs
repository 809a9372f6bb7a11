//! Serving an app with graceful shutdown on ctrl-c and SIGTERM.

use std::future::IntoFuture;
use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::LiveView;

/// Serve `app` (which should include [`LiveView::router`]) until ctrl-c or
/// SIGTERM, then shut down gracefully: stop accepting, let running handlers
/// finish, close sockets with 1001 within the grace period.
///
/// Peer addresses reach [`Scope::peer_addr`](crate::Scope::peer_addr).
///
/// ```no_run
/// # async fn run(app: axum::Router, live: liveview::LiveView) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// liveview::serve(listener, app, live).await
/// # }
/// ```
pub async fn serve(listener: TcpListener, app: Router, live: LiveView) -> std::io::Result<()> {
    serve_until(listener, app, live, shutdown_signal()).await
}

/// [`serve`] until `signal` completes instead of a process signal.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    live: LiveView,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    if let Ok(addr) = listener.local_addr() {
        live.shared.serving_on(addr);
    }
    // LiveView frames are small and latency-bound: without TCP_NODELAY a
    // frame written while an earlier one is unacknowledged waits for the
    // peer's delayed ACK (up to 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(target: "liveview", error = %err, "could not set TCP_NODELAY");
        }
    });
    // Stop accepting and close the live connections at the same time:
    // upgraded sockets are not HTTP requests the server would wait for.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        signal.await;
        let _ = stop_tx.send(());
    });
    let connections = async move {
        // Also reached if the server fails before any signal.
        let _ = stop_rx.await;
        tracing::info!(target: "liveview", "shutting down");
        if !live.shutdown().await {
            tracing::warn!(target: "liveview", "some connections did not close within the grace period");
        }
    };
    let (served, ()) = tokio::join!(server.into_future(), connections);
    served
}

/// Completes on ctrl-c, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
