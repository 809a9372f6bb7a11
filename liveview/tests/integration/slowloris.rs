//! Slowloris: sockets that send nothing or half a request are closed
//! within the header-read timeout, and count toward their address's cap
//! before any upgrade.

use std::time::Duration;

use liveview::LiveView;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{assert_nothing_pending, server};

/// Read until the server closes the connection; whatever it sent first.
/// Fails if it is still open after `bound`.
async fn closed_within(mut tcp: TcpStream, bound: Duration) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = [0; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await
        .expect("the server closed the connection in time");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn silent_and_half_sent_connections_are_closed_within_the_header_timeout() {
    let server =
        server(LiveView::builder().request_header_timeout(Duration::from_millis(300))).await;
    let addr = server.addr();
    let mut silent = Vec::new();
    let mut half = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let head =
            format!("GET /ws/liveview/slow/ HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        half.push(tcp);
    }
    // A complete request on a kept-alive connection is answered; the
    // connection, idle after it, is closed like the others.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();

    let bound = Duration::from_secs(5);
    let answered = closed_within(kept, bound).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    for tcp in silent.into_iter().chain(half) {
        closed_within(tcp, bound).await;
    }
}

#[tokio::test]
async fn sockets_count_toward_the_address_cap_before_any_upgrade() {
    let builder = LiveView::builder()
        .max_connections_per_address(Some(3))
        .request_header_timeout(Duration::from_millis(500));
    let server = server(builder).await;
    let addr = server.addr();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    match server.connect("slowloris-cap").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a fourth connection was not refused: {other:?}"),
    }
    // Closed by the header timeout, they free their slots.
    for tcp in silent {
        closed_within(tcp, Duration::from_secs(5)).await;
    }
    let mut client = server.connect("slowloris-cap").await.unwrap();
    assert_nothing_pending(&mut client, "a slot is free again").await;
}

/// A POST whose body trickles in (or stops) cannot hold its connection and
/// its handler forever: past the body timeout, reading it fails, the
/// route answers, and the connection is closed.
#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_ends_its_connection() {
    let routes = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: String| async move { body }),
    );
    let server = liveview::testing::TestServer::start(
        LiveView::builder().request_body_timeout(Duration::from_millis(300)),
        routes,
    )
    .await
    .unwrap();
    let addr = server.addr();

    // In time: answered.
    let mut quick = TcpStream::connect(addr).await.unwrap();
    quick
        .write_all(
            format!("POST /echo HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
                .as_bytes(),
        )
        .await
        .unwrap();
    let answered = closed_within(quick, Duration::from_secs(5)).await;
    assert!(
        answered.starts_with("HTTP/1.1 200") && answered.ends_with("hello"),
        "{answered}"
    );

    // 10 bytes of a promised 1,000, then nothing more.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        format!("POST /echo HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n0123456789")
            .as_bytes(),
    )
    .await
    .unwrap();
    let answered = closed_within(slow, Duration::from_secs(5)).await;
    assert!(!answered.starts_with("HTTP/1.1 200"), "{answered}");
}
