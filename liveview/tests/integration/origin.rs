//! The Origin check before the upgrade (cross-site WebSocket hijacking).

use liveview::LiveView;
use liveview::testing::WsClient;
use tokio_tungstenite::tungstenite::Error;

use crate::support::{assert_nothing_pending, server};

async fn status(url: &str, origin: &str) -> u16 {
    match WsClient::connect(url, &[("Origin", origin)]).await {
        Ok(_) => 101,
        Err(Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn a_cross_site_page_cannot_open_a_socket() {
    let server = server(LiveView::builder()).await;
    let url = server.ws_url("origin-room");
    assert_eq!(status(&url, "https://evil.example").await, 403);
    assert_eq!(status(&url, "null").await, 403);
    assert_eq!(
        status(&url, &format!("http://{}.evil.example", server.addr())).await,
        403
    );
    // The page's own origin is fine.
    assert_eq!(
        status(&url, &format!("http://{}", server.addr())).await,
        101
    );
    // Clients that are not browsers send no Origin and cannot be hijacked.
    let mut client = server.connect("origin-room").await.unwrap();
    assert_nothing_pending(&mut client, "no origin").await;
}

#[tokio::test]
async fn allowed_origins_and_the_explicit_opt_out() {
    let server = server(LiveView::builder().allowed_origins(["https://app.example"])).await;
    let url = server.ws_url("origin-list");
    assert_eq!(status(&url, "https://app.example").await, 101);
    assert_eq!(status(&url, "https://other.example").await, 403);

    let open = crate::support::server(LiveView::builder().disable_origin_check()).await;
    assert_eq!(
        status(&open.ws_url("origin-off"), "https://anything.example").await,
        101
    );
}
