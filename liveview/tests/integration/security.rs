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
        client
            .call("echo", json!({"i": i}), json!({}))
            .await
            .unwrap();
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
        client.call("echo", json!({}), json!({})).await.unwrap();
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
            client.call("echo", json!({}), json!({})).await.unwrap();
            assert_eq!(next(client).await["function"], "echo");
        }
    }
    b.call("echo", json!({}), json!({})).await.unwrap();
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
    let handlers = server.live().functions();
    for input in &inputs {
        client.send_text(input).await.unwrap();
    }
    // Every input gets its answer; collect until the marker's reply.
    client
        .call("echo", json!({"marker": "end"}), json!({}))
        .await
        .unwrap();
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
    client.call("echo", json!({}), json!({})).await.unwrap();
    next(&mut client).await;
    client.call("fail", json!({}), json!({})).await.unwrap();
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

/// An application that exports metrics already gets the library's series
/// in its own registry (here metrics-exporter-prometheus), and `/metrics`
/// serves the same counts.
#[tokio::test]
async fn an_installed_recorder_gets_the_library_series_and_metrics_still_serves() {
    let exporter = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("recorded").await.unwrap();
    // Each call's `done` comes once the call is counted.
    for (reference, function) in [(1, "echo"), (2, "fail")] {
        client
            .send_json(&json!({"function": function, "ref": reference}))
            .await
            .unwrap();
        while next(&mut client).await != json!({"ref": reference, "done": true}) {}
    }

    let exported = exporter.render();
    let (status, _, served) = http_get(server.addr(), "/metrics", &[]).await;
    assert_eq!(status, 200);
    for line in [
        "liveview_connections_total 1\n",
        "liveview_calls_total{function=\"echo\",outcome=\"ok\"} 1\n",
        "liveview_calls_total{function=\"fail\",outcome=\"error\"} 1\n",
        "liveview_group_memberships 2\n",
    ] {
        assert!(exported.contains(line), "missing {line:?} in\n{exported}");
        assert!(served.contains(line), "missing {line:?} in\n{served}");
    }
    assert!(
        exported.contains("# HELP liveview_calls_total Calls by function and outcome."),
        "{exported}"
    );
    assert!(
        exported.contains("liveview_handler_duration_seconds{function=\"echo\",quantile=\"0.5\"}"),
        "{exported}"
    );
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
    let signer =
        liveview::session::RoomSigner::new(b"test room secret, thirty-two bytes+").unwrap();
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
    let auth = liveview::session::SessionAuth::new(b"test session secret, thirty-two b+").unwrap();
    let cookie = auth.set_cookie(&liveview::User::new("7", "Ada"));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let server = server(LiveView::builder().authenticator(auth)).await;

    let mut ada = server
        .connect_with("session", &[("Cookie", &pair)])
        .await
        .unwrap();
    ada.call("whoami", json!({}), json!({})).await.unwrap();
    assert_eq!(next(&mut ada).await["user"], "Ada");

    // A cookie the attacker signed with a key of their own.
    let attacker =
        liveview::session::SessionAuth::new(b"the attacker's own key, 32 bytes!!").unwrap();
    let forged = attacker.set_cookie(&liveview::User::new("7", "Eve"));
    let forged = forged.split(';').next().unwrap().to_owned();
    let mut eve = server
        .connect_with("session", &[("Cookie", &forged)])
        .await
        .unwrap();
    eve.call("whoami", json!({}), json!({})).await.unwrap();
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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The log of the whole test process, as an operator's terminal would
/// show it. Installed once: tests that share a process share it, and each
/// looks at the lines of its own room.
fn captured_logs() -> Captured {
    use tracing_subscriber::fmt::format::FmtSpan;

    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("liveview=debug")
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
    .clone()
}

#[tokio::test]
async fn spans_name_the_connection_and_each_call_with_its_outcome() {
    let captured = captured_logs();

    let server = server(LiveView::builder()).await;
    let mut client = server.connect("traced-room").await.unwrap();
    client.call("echo", json!({}), json!({})).await.unwrap();
    next(&mut client).await;
    client.call("fail", json!({}), json!({})).await.unwrap();
    next(&mut client).await;
    client.close().await;
    let live = server.live().clone();
    wait_until("the connection is gone", || live.connections() == 0).await;

    let text = captured.text();
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
    let signer =
        liveview::session::RoomSigner::new(b"test room secret, thirty-two bytes+").unwrap();
    let room = signer.new_room();
    let server = server(LiveView::builder().signed_rooms(signer)).await;
    let mut client = server.connect(&room).await.unwrap();
    // `echo` answers with `content.room()`.
    client
        .send_json(&json!({"function": "echo", "room": "someone-elses-room"}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await["room"], room.as_str());
}

#[tokio::test]
async fn client_chosen_names_cannot_forge_or_flood_the_log() {
    let captured = captured_logs();
    let builder = LiveView::builder()
        .rate_limit(None)
        .address_rate_limit(None);
    let server = server(builder).await;
    let mut client = server.connect("log-forging").await.unwrap();

    // A name that would print a fake log line in red, one of 65,000
    // bytes, and one that is not a string: each an invalid message that
    // still ends its call.
    let forged = "evil\nINFO liveview: FORGED admin signed in\u{1b}[31m";
    let long = "a".repeat(65_000);
    for (function, reference) in [(json!(forged), 1), (json!(long), 2), (json!(7), 5)] {
        client
            .send_json(&json!({"function": function, "ref": reference}))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            json!({"error": "Invalid message", "ref": reference})
        );
        assert_eq!(
            next(&mut client).await,
            json!({"ref": reference, "done": true})
        );
    }
    // Many unknown names: each answered, few logged.
    for i in 0..50 {
        client
            .send_json(&json!({"function": format!("no_such_handler_{i}")}))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            json!({"error": "Unknown function"})
        );
    }
    assert_nothing_pending(&mut client, "log-forging").await;
    client.close().await;
    let live = server.live().clone();
    wait_until("the connection is gone", || live.connections() == 0).await;

    let text = captured.text();
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    for line in text.lines().filter(|l| l.contains("FORGED")) {
        assert!(
            line.contains("room=log-forging"),
            "a line was forged: {line:?}"
        );
    }
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("room=log-forging"))
        .collect();
    // The 65,000-byte name once made a line of 128 KB.
    let longest = ours.iter().map(|l| l.len()).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
    let warnings = ours
        .iter()
        .filter(|l| l.contains("unknown function"))
        .count();
    assert!(
        (1..=10).contains(&warnings),
        "{warnings} warnings logged for 50 unknown names"
    );
    assert!(
        ours.iter().any(|l| l.contains("warnings are held back")),
        "the log says that warnings are held back"
    );
}

#[tokio::test]
async fn a_frame_full_of_data_keys_is_normalised_and_a_refused_one_keeps_its_ref() {
    // The CPU attack of a 64 KiB frame with 5,000 `data_…` keys: the call
    // goes through with every key normalised (the work per key is bounded
    // by the unit test `keys::tests::stripping_the_data_prefix_of_a_full_frame_of_keys_is_linear`).
    let builder = LiveView::builder()
        .rate_limit(Some(RateLimit::new(0.01, 1)))
        .address_rate_limit(None);
    let server = server(builder).await;
    let mut client = server.connect("many-keys").await.unwrap();
    // Keys in base 36, as short as they can be, so 5,000 fit in 64 KiB.
    let base36 = |mut i: usize| {
        let mut key = String::new();
        loop {
            key.insert(0, char::from_digit((i % 36) as u32, 36).unwrap());
            i /= 36;
            if i == 0 {
                return key;
            }
        }
    };
    let data: serde_json::Map<String, serde_json::Value> = (0..5_000)
        .map(|i| (format!("data_{}", base36(i)), json!(1)))
        .collect();
    let frame = json!({"function": "echo", "data": data, "ref": 1}).to_string();
    assert!(frame.len() <= 64 * 1024, "{}", frame.len());
    client.send_text(&frame).await.unwrap();
    let reply = next(&mut client).await;
    let keys = reply["data"].as_object().unwrap();
    assert_eq!(keys.len(), 5_000);
    assert!(keys.contains_key("3uv") && !keys.contains_key("data_3uv"));
    assert_eq!(next(&mut client).await, json!({"ref": 1, "done": true}));
    // Over the rate, the same frame is answered from its `ref` alone.
    let frame = json!({"function": "echo", "data": data, "ref": 2}).to_string();
    client.send_text(&frame).await.unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"error": "Rate limited", "ref": 2})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 2, "done": true}));
}

#[tokio::test]
async fn ipv6_clients_count_per_64_for_connections_and_calls() {
    // One IPv6 subscriber holds a whole /64: a new address per socket must
    // not buy a new allowance.
    let builder = LiveView::builder()
        .max_connections_per_address(Some(2))
        .rate_limit(None)
        .address_rate_limit(Some(RateLimit::new(0.01, 3)))
        .trusted_proxies(["127.0.0.1".parse().unwrap()]);
    let server = server(builder).await;
    let mut first = server
        .connect_with("ipv6", &[("X-Forwarded-For", "2001:db8:7:1::1")])
        .await
        .unwrap();
    let mut second = server
        .connect_with(
            "ipv6",
            &[("X-Forwarded-For", "2001:db8:7:1:ffff:eeee:dddd:2")],
        )
        .await
        .unwrap();
    match server
        .connect_with("ipv6", &[("X-Forwarded-For", "2001:db8:7:1:1234::3")])
        .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a third address of the /64 was not capped: {other:?}"),
    }
    // Another /64 is another client.
    let _other = server
        .connect_with("ipv6", &[("X-Forwarded-For", "2001:db8:7:2::1")])
        .await
        .unwrap();
    // The two sockets of the /64 share one call bucket of 3.
    for i in 0..3 {
        let client = if i == 1 { &mut second } else { &mut first };
        client.call("echo", json!({}), json!({})).await.unwrap();
        assert_eq!(next(client).await["function"], "echo");
    }
    second.call("echo", json!({}), json!({})).await.unwrap();
    assert_eq!(next(&mut second).await, json!({"error": "Rate limited"}));
}
