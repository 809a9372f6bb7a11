//! The Origin check before the upgrade (cross-site WebSocket hijacking).

use liveview::LiveView;
use liveview::testing::WsClient;
use tokio_tungstenite::tungstenite::Error;

use crate::support::{assert_nothing_pending, server};

async fn status(url: &str, origin: &str) -> u16 {
    status_with(url, &[("Origin", origin)]).await
}

async fn status_with(url: &str, headers: &[(&str, &str)]) -> u16 {
    match WsClient::connect(url, headers).await {
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
    // (Another room: the socket above may still be leaving this one, and
    // `connect` waits for the room to grow.)
    let mut client = server.connect("origin-no-origin").await.unwrap();
    assert_nothing_pending(&mut client, "no origin").await;
}

#[tokio::test]
async fn the_origin_must_match_the_served_address_in_scheme_host_and_port() {
    let server = server(LiveView::builder()).await;
    let url = server.ws_url("origin-parts");
    let port = server.addr().port();
    // Another scheme on the right host and port.
    assert_eq!(status(&url, &format!("ftp://127.0.0.1:{port}")).await, 403);
    assert_eq!(
        status(&url, &format!("https://127.0.0.1:{port}")).await,
        403
    );
    // Another port of the same host.
    assert_eq!(
        status(&url, &format!("http://127.0.0.1:{}", port.wrapping_add(1))).await,
        403
    );
    // Junk around an allowed origin.
    assert_eq!(
        status(&url, &format!("http://127.0.0.1:{port}/path")).await,
        403
    );
    // The loopback server's other name.
    assert_eq!(status(&url, &format!("http://localhost:{port}")).await, 101);
}

#[tokio::test]
async fn a_dns_rebinding_page_is_refused_although_its_host_header_matches() {
    // evil.example resolves to 127.0.0.1 after the page loaded: the
    // browser sends its own name as both Origin and Host.
    let server = server(LiveView::builder()).await;
    let url = server.ws_url("origin-rebinding");
    let port = server.addr().port();
    let evil = format!("evil.example:{port}");
    assert_eq!(
        status_with(
            &url,
            &[("Origin", &format!("http://{evil}")), ("Host", &evil)]
        )
        .await,
        403
    );
    let evil = "evil.example";
    assert_eq!(
        status_with(&url, &[("Origin", "http://evil.example"), ("Host", evil)]).await,
        403
    );
}

#[tokio::test]
async fn allowed_origins_and_the_explicit_opt_out() {
    let server = server(LiveView::builder().allowed_origins(["https://app.example"])).await;
    let url = server.ws_url("origin-list");
    assert_eq!(status(&url, "https://app.example").await, 101);
    assert_eq!(status(&url, "https://APP.example:443").await, 101);
    assert_eq!(status(&url, "https://other.example").await, 403);
    assert_eq!(status(&url, "http://app.example").await, 403);
    assert_eq!(status(&url, "https://app.example:8443").await, 403);
    assert_eq!(status(&url, "ftp://app.example:443").await, 403);

    let open = crate::support::server(LiveView::builder().disable_origin_check()).await;
    assert_eq!(
        status(&open.ws_url("origin-off"), "https://anything.example").await,
        101
    );
}
