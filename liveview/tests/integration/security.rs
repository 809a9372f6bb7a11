//! Safe by default: rate limits, connection caps, nothing internal in any
//! frame, metrics and health routes.

use liveview::testing::Closed;
use liveview::{LiveView, RateLimit};
use serde_json::json;

use crate::support::{assert_nothing_pending, header, http_get, next, server, wait_until};

#[tokio::test]
async fn a_connection_over_its_rate_gets_rate_limited_then_closed_with_1008() {
    let builder = LiveView::builder()
        .rate_limit(Some(RateLimit::new(0.5, 3)))
        .rate_limit_strikes(4);
    let server = server(builder).await;
    let mut client = server.connect("rate").await.unwrap();
    for i in 0..3 {
        client.call("echo", json!({"i": i})).await.unwrap();
        assert_eq!(next(&mut client).await["form"]["i"], i);
    }
    client
        .send_json(&json!({"function": "echo", "ref": 41}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"error": "Rate limited", "ref": 41})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 41, "done": true}));
    for _ in 0..3 {
        client.call("echo", json!({})).await.unwrap();
    }
    for _ in 0..3 {
        assert_eq!(next(&mut client).await, json!({"error": "Rate limited"}));
    }
    assert_eq!(client.closed().await, Closed::Code(1008));
}

#[tokio::test]
async fn connections_of_one_address_share_the_address_rate() {
    let builder = LiveView::builder()
        .rate_limit(None)
        .address_rate_limit(Some(RateLimit::new(0.1, 4)));
    let server = server(builder).await;
    let mut a = server.connect("rate-addr").await.unwrap();
    let mut b = server.connect("rate-addr").await.unwrap();
    for _ in 0..2 {
        for client in [&mut a, &mut b] {
            client.call("echo", json!({})).await.unwrap();
            assert_eq!(next(client).await["function"], "echo");
        }
    }
    b.call("echo", json!({})).await.unwrap();
    assert_eq!(next(&mut b).await, json!({"error": "Rate limited"}));
}

#[tokio::test]
async fn an_address_may_hold_only_so_many_connections() {
    let server = server(LiveView::builder().max_connections_per_address(Some(2))).await;
    let first = server.connect("cap").await.unwrap();
    let _second = server.connect("cap").await.unwrap();
    match server.connect("cap").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("the third connection was not refused: {other:?}"),
    }
    first.close().await;
    let live = server.live().clone();
    wait_until("the first connection is gone", || live.connections() == 1).await;
    let mut again = server.connect("cap").await.unwrap();
    assert_nothing_pending(&mut again, "a freed slot is usable").await;
}

#[tokio::test]
async fn no_frame_ever_carries_internals_whatever_the_input() {
    let server = server(LiveView::builder().rate_limit(None)).await;
    let mut client = server.connect("no-leaks").await.unwrap();
    let mut inputs: Vec<String> = vec![
        "garbage".into(),
        "{".into(),
        "null".into(),
        "[]".into(),
        r#"{"function": ["echo"]}"#.into(),
        r#"{"function": "list_functions"}"#.into(),
        r#"{"function": "__private"}"#.into(),
        r#"{"function": "../../etc/passwd"}"#.into(),
        r#"{"function": "fail", "form": {"x": 1}}"#.into(),
        r#"{"function": "explode"}"#.into(),
        r#"{"function": "explode_sync"}"#.into(),
        r#"{"function": "signup", "form": {"age": "x"}, "ref": "not a number"}"#.into(),
        r#"{"function": "fail", "ref": 3}"#.into(),
        "\u{0}\u{1}\u{2}".into(),
        "{\"function\": \"\u{202e}\"}".into(),
    ];
    inputs.push(format!(r#"{{"function": "{}"}}"#, "a".repeat(5000)));
    let handlers = liveview::list_functions();
    for input in &inputs {
        client.send_text(input).await.unwrap();
    }
    // Every input gets its answer; collect until the marker's reply.
    client.call("echo", json!({"marker": "end"})).await.unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = next(&mut client).await;
        if frame["form"]["marker"] == "end" {
            break;
        }
        frames.push(frame);
    }
    assert!(frames.len() >= inputs.len(), "{frames:?}");
    for frame in frames {
        let text = frame.to_string();
        for leak in [
            "::",
            ".rs",
            "panick",
            "secret",
            "src/",
            "thread",
            "Error",
            "invalid type",
        ] {
            assert!(!text.contains(leak), "frame leaks {leak:?}: {text}");
        }
        for name in &handlers {
            assert!(
                !text.contains(&format!("\"{name}\"")),
                "frame names handler {name}: {text}"
            );
        }
        let allowed = [
            json!({"error": "Invalid message"}),
            json!({"error": "Unknown function"}),
            json!({"error": "Internal error"}),
            json!({"error": "Internal error", "ref": 3}),
            json!({"ref": 3, "done": true}),
        ];
        assert!(allowed.contains(&frame), "unexpected frame {frame}");
    }
}

#[tokio::test]
async fn metrics_count_calls_connections_and_memberships() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("metrics").await.unwrap();
    client.call("echo", json!({})).await.unwrap();
    next(&mut client).await;
    client.call("fail", json!({})).await.unwrap();
    next(&mut client).await;
    client.send_text("nope").await.unwrap();
    next(&mut client).await;

    let (status, headers, body) = http_get(server.addr(), "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    for line in [
        "liveview_connections 1\n",
        "liveview_group_memberships 2\n",
        "liveview_calls_total{function=\"echo\",outcome=\"ok\"} 1\n",
        "liveview_calls_total{function=\"fail\",outcome=\"error\"} 1\n",
        "liveview_calls_total{function=\"_unknown\",outcome=\"invalid\"} 1\n",
        "liveview_handler_duration_seconds_count{function=\"echo\"} 1\n",
        "liveview_frames_received_total 3\n",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }

    client.close().await;
    let live = server.live().clone();
    wait_until("the connection is gone", || live.connections() == 0).await;
    let text = live.metrics_text();
    assert!(text.contains("liveview_connections 0\n"), "{text}");
    assert!(text.contains("liveview_group_memberships 0\n"), "{text}");
    assert!(text.contains("liveview_groups 0\n"), "{text}");
}

#[tokio::test]
async fn health_and_readiness() {
    let server = server(LiveView::builder()).await;
    let (status, _, body) = http_get(server.addr(), "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = http_get(server.addr(), "/readyz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
}

#[tokio::test]
async fn a_guessed_room_is_refused_when_rooms_are_signed() {
    let signer = liveview::session::RoomSigner::new(b"test room secret, thirty-two bytes+");
    let room = signer.new_room();
    let server = server(LiveView::builder().signed_rooms(signer)).await;
    let mut client = server.connect(&room).await.unwrap();
    assert_nothing_pending(&mut client, "signed room").await;
    for guess in ["user-42", "lobby", &format!("{}x", &room[..room.len() - 1])] {
        match server.connect(guess).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "room {guess}")
            }
            other => panic!("room {guess} was not refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn signed_session_cookies_authenticate_and_forgeries_do_not() {
    let auth = liveview::session::SessionAuth::new(b"test session secret, thirty-two b+");
    let cookie = auth.set_cookie(&liveview::User::new("7", "Ada"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let server = server(LiveView::builder().authenticator(auth)).await;

    let mut ada = server
        .connect_with("session", &[("Cookie", &pair)])
        .await
        .unwrap();
    ada.call("whoami", json!({})).await.unwrap();
    assert_eq!(next(&mut ada).await["user"], "Ada");

    // A cookie the attacker signed with a key of their own.
    let attacker = liveview::session::SessionAuth::new(b"the attacker's own key, 32 bytes!!");
    let forged = attacker.set_cookie(&liveview::User::new("7", "Eve"));
    let forged = forged.split(';').next().unwrap().to_owned();
    let mut eve = server
        .connect_with("session", &[("Cookie", &forged)])
        .await
        .unwrap();
    eve.call("whoami", json!({})).await.unwrap();
    assert_eq!(next(&mut eve).await["user"], json!(null));
}

#[tokio::test]
async fn behind_a_trusted_proxy_limits_key_on_the_forwarded_client() {
    let builder = LiveView::builder()
        .max_connections_per_address(Some(1))
        .trusted_proxies(["127.0.0.1".parse().unwrap()]);
    let server = server(builder).await;
    let _ada = server
        .connect_with("proxy", &[("X-Forwarded-For", "203.0.113.7")])
        .await
        .unwrap();
    // Another client behind the same proxy is not refused...
    let mut bob = server
        .connect_with("proxy", &[("X-Forwarded-For", "198.51.100.2, 127.0.0.1")])
        .await
        .unwrap();
    assert_nothing_pending(&mut bob, "a second client through the proxy").await;
    // ...but a second socket of the same client is.
    match server
        .connect_with("proxy", &[("X-Forwarded-For", "203.0.113.7")])
        .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("the same client was not capped: {other:?}"),
    }

    // Without trusting the proxy, the header is ignored.
    let plain =
        crate::support::server(LiveView::builder().max_connections_per_address(Some(1))).await;
    let _first = plain
        .connect_with("proxy", &[("X-Forwarded-For", "203.0.113.7")])
        .await
        .unwrap();
    assert!(
        plain
            .connect_with("proxy", &[("X-Forwarded-For", "198.51.100.2")])
            .await
            .is_err()
    );
}

/// A writer collecting everything the subscriber prints.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spans_name_the_connection_and_each_call_with_its_outcome() {
    use tracing_subscriber::fmt::format::FmtSpan;

    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("liveview=debug")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = server(LiveView::builder()).await;
    let mut client = server.connect("traced-room").await.unwrap();
    client.call("echo", json!({})).await.unwrap();
    next(&mut client).await;
    client.call("fail", json!({})).await.unwrap();
    next(&mut client).await;
    client.close().await;
    let live = server.live().clone();
    wait_until("the connection is gone", || live.connections() == 0).await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("connection{room=traced-room"), "{text}");
    assert!(
        text.contains("call{function=echo outcome=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("call{function=fail outcome=\"error\"}"),
        "{text}"
    );
    assert!(
        text.contains("time.busy"),
        "span durations are reported: {text}"
    );
}

#[tokio::test]
async fn a_frame_cannot_choose_the_room_its_handler_sees() {
    let signer = liveview::session::RoomSigner::new(b"test room secret, thirty-two bytes+");
    let room = signer.new_room();
    let server = server(LiveView::builder().signed_rooms(signer)).await;
    let mut client = server.connect(&room).await.unwrap();
    // `echo` answers with `content.room`.
    client
        .send_json(&json!({"function": "echo", "room": "someone-elses-room"}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await["room"], room.as_str());
}
