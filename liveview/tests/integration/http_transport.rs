//! The HTTP transport: Server-Sent Events down, POST up, with the
//! guarantees of a socket, and without sticky sessions.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use liveview::layer::{ChannelLayer, Frame, LayerError, LocalDelivery};
use liveview::testing::sse::{Answer, post};
use liveview::testing::{SseClient, TestServer};
use liveview::{Identity, LiveView, LiveViewBuilder, RateLimit, Scope};
use serde_json::{Value, json};

use crate::support::{server, wait_until};

async fn frame(stream: &mut SseClient) -> Value {
    match stream.recv().await {
        Ok(frame) => frame,
        Err(err) => panic!("expected a frame: {err}"),
    }
}

/// The frame after any others that satisfies `wanted`.
async fn frame_where(stream: &mut SseClient, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let got = frame(stream).await;
        if wanted(&got) {
            return got;
        }
    }
}

fn echo(marker: &str, reference: u64) -> Value {
    json!({"function": "echo", "form": {"marker": marker}, "ref": reference})
}

/// A server built from `builder`, and a stream opened on it in `room`.
async fn stream_on(builder: LiveViewBuilder, room: &str) -> (TestServer, SseClient) {
    let server = server(builder).await;
    let stream = server.events(room).await.unwrap();
    (server, stream)
}

/// A POST of `body` to `room` on `addr`, naming stream `token` and number
/// `seq`.
async fn post_as(addr: SocketAddr, room: &str, body: &[u8], token: &str, seq: &str) -> Answer {
    post(
        addr,
        room,
        body,
        &[("LiveView-Stream", token), ("LiveView-Seq", seq)],
    )
    .await
    .unwrap()
}

/// Two server processes on the shared Redis, with a prefix of their own.
async fn two_processes_on_redis() -> (TestServer, TestServer) {
    use liveview::layer::RedisLayer;

    let prefix = format!("lvtest-sse-{}:", liveview::template::room_uuid());
    let layer = || {
        RedisLayer::builder("redis://127.0.0.1:6379")
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    let holder = server(LiveView::builder().channel_layer(layer())).await;
    let other = server(LiveView::builder().channel_layer(layer())).await;
    (holder, other)
}

#[tokio::test]
async fn a_stream_carries_calls_and_their_replies() {
    let (server, mut stream) = stream_on(LiveView::builder(), "lobby").await;
    assert_eq!(stream.token().len(), 32, "a 128-bit token");
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));

    let answer = stream.call(&echo("hi", 1)).await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (204, ""));
    let reply = frame(&mut stream).await;
    assert_eq!(reply["form"]["marker"], "hi");
    assert_eq!(reply["room"], "lobby");
    assert_eq!(reply["ref"], 1);
    assert_eq!(frame(&mut stream).await, json!({"ref": 1, "done": true}));

    // A ping is answered as on a socket.
    stream.call(&json!({"ping": 3})).await.unwrap();
    assert_eq!(frame(&mut stream).await, json!({"pong": 3}));
    let metrics = server.live().metrics_text();
    assert!(
        metrics.contains("liveview_transport_connections_total{transport=\"sse\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("liveview_transport_connections{transport=\"sse\"} 1"));
}

#[tokio::test]
async fn calls_run_in_their_order_and_once_each() {
    let (server, mut stream) = stream_on(LiveView::builder(), "ordered").await;
    let addr = server.addr();
    // 2 arrives before 1: it waits for it.
    let second = stream
        .post_to(addr, 2, &echo("b", 2).to_string(), &[])
        .await
        .unwrap();
    assert_eq!(second.status, 204);
    let first = stream
        .post_to(addr, 1, &echo("a", 1).to_string(), &[])
        .await
        .unwrap();
    assert_eq!(first.status, 204);
    // A retransmission is taken, and not run again.
    let again = stream
        .post_to(addr, 1, &echo("a again", 9).to_string(), &[])
        .await
        .unwrap();
    assert_eq!(again.status, 204);
    stream
        .post_to(addr, 3, &echo("c", 3).to_string(), &[])
        .await
        .unwrap();
    let mut markers = Vec::new();
    while markers.len() < 3 {
        let reply = frame_where(&mut stream, |f| f["form"]["marker"].is_string()).await;
        markers.push(reply["form"]["marker"].as_str().unwrap().to_owned());
    }
    assert_eq!(markers, ["a", "b", "c"]);
    // Numbered too far ahead: refused, the stream goes on.
    let far = stream
        .post_to(addr, 1000, &echo("far", 4).to_string(), &[])
        .await
        .unwrap();
    assert_eq!(
        (far.status, far.body.as_str()),
        (409, r#"{"error":"Out of order"}"#)
    );
    stream
        .post_to(addr, 4, &echo("d", 4).to_string(), &[])
        .await
        .unwrap();
    let reply = frame_where(&mut stream, |f| f["form"]["marker"].is_string()).await;
    assert_eq!(reply["form"]["marker"], "d");
}

#[tokio::test]
async fn rooms_and_broadcasts_cross_transports() {
    let server = server(LiveView::builder()).await;
    let mut socket = server.connect("mixed").await.unwrap();
    let mut stream = server.events("mixed").await.unwrap();

    socket
        .call("room_say", json!({"text": "from the socket"}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        frame(&mut stream).await,
        json!({"target": "#room", "html": "from the socket"})
    );
    stream
        .call(&json!({"function": "shout", "form": {"text": "from the stream"}}))
        .await
        .unwrap();
    let expected = json!({"target": "#all", "html": "from the stream", "append": true});
    assert_eq!(frame(&mut stream).await, expected);
    loop {
        let got = socket.recv().await.unwrap();
        if got["target"] == "#all" {
            assert_eq!(got, expected);
            break;
        }
    }
}

#[tokio::test]
async fn a_stream_resumes_where_it_left() {
    let server = server(LiveView::builder()).await;
    let broadcaster = server.live().broadcaster();
    for n in 1..=2 {
        broadcaster
            .send_to_room("resumed", json!({"target": "#n", "html": n.to_string()}))
            .await
            .unwrap();
    }
    let position = server.live().position("resumed").await.to_string();
    let room = position
        .split(',')
        .find(|g| g.starts_with("room_"))
        .unwrap();
    let (group, rest) = room.split_once(':').unwrap();
    let epoch = rest.split(':').nth(1).unwrap();
    let mut stream = server
        .events_with("resumed", &format!("?resume={group}:1:{epoch}"), &[])
        .await
        .unwrap();
    let missed = frame(&mut stream).await;
    assert_eq!(
        (missed["html"].as_str(), missed["seq"].as_u64()),
        (Some("2"), Some(2))
    );
}

#[tokio::test]
async fn the_error_table_holds_over_post() {
    let server = server(
        LiveView::builder()
            .max_frame_size(1024)
            .allowed_origins(["http://app.example"]),
    )
    .await;
    let addr = server.addr();
    let mut stream = server
        .events_with("errors", "", &[("Origin", "http://app.example")])
        .await
        .unwrap();
    let ok = [("Origin", "http://app.example")];

    // Another origin: refused before anything is read.
    let seq = stream.next_seq();
    let foreign = stream
        .post_to(
            addr,
            seq,
            &echo("x", 1).to_string(),
            &[("Origin", "http://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(foreign.status, 403);
    // The same number, from the page: taken (the refused one was not).
    let taken = stream
        .post_to(addr, seq, &echo("x", 1).to_string(), &ok)
        .await
        .unwrap();
    assert_eq!(taken.status, 204);
    assert_eq!(frame(&mut stream).await["form"]["marker"], "x");
    assert_eq!(frame(&mut stream).await["done"], true);

    // No token, a token of no stream, a token of another room.
    let bare = post(addr, "errors", b"{}", &[("LiveView-Seq", "1")])
        .await
        .unwrap();
    assert_eq!(
        (bare.status, bare.body.as_str()),
        (400, r#"{"error":"Invalid request"}"#)
    );
    let unknown = post_as(addr, "errors", b"{}", &"0".repeat(32), "1").await;
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (404, r#"{"error":"Unknown stream"}"#)
    );
    let elsewhere = post_as(addr, "other-room", b"{}", stream.token(), "9").await;
    assert_eq!(elsewhere.status, 404);

    // Bad calls: the answers of a socket, on the stream.
    stream
        .call(&json!({"function": "no_such", "ref": 5}))
        .await
        .unwrap();
    assert_eq!(
        frame(&mut stream).await,
        json!({"error": "Unknown function", "ref": 5})
    );
    assert_eq!(frame(&mut stream).await["done"], true);
    let seq = stream.next_seq();
    let garbage = stream.post_to(addr, seq, "not json", &ok).await.unwrap();
    assert_eq!(garbage.status, 204);
    assert_eq!(
        frame(&mut stream).await,
        json!({"error": "Invalid message"})
    );

    // A body over the frame limit: refused, and the stream closes as a
    // socket would.
    let seq = stream.next_seq();
    let big = format!(
        r#"{{"function":"echo","form":{{"x":"{}"}}}}"#,
        "y".repeat(2000)
    );
    let refused = stream.post_to(addr, seq, &big, &ok).await.unwrap();
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (413, r#"{"error":"Frame too large"}"#)
    );
    assert_eq!(stream.closed().await, Some(1009));
    assert!(stream.ended().await);
    wait_until("the stream is freed", || server.streams() == 0).await;
}

#[tokio::test]
async fn a_body_that_is_not_utf8_closes_the_stream_with_1007() {
    let (server, mut stream) = stream_on(LiveView::builder(), "utf8").await;
    let answer = post_as(
        server.addr(),
        "utf8",
        &[b'"', 0xff, 0xfe, b'"'],
        stream.token(),
        "1",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(stream.closed().await, Some(1007));
}

#[tokio::test]
async fn a_stream_is_refused_as_a_socket_would_be() {
    let server = server(LiveView::builder().allowed_origins(["http://app.example"])).await;
    let refused = SseClient::open(
        server.addr(),
        "lobby",
        "",
        &[("Origin", "http://evil.example")],
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let bad_room = SseClient::open(server.addr(), "a%20b", "", &[])
        .await
        .unwrap_err();
    assert!(bad_room.to_string().contains("400"), "{bad_room}");
}

#[tokio::test]
async fn calls_over_the_rate_limit_are_refused_then_the_stream_closed() {
    let (_server, mut stream) = stream_on(
        LiveView::builder()
            .rate_limit(Some(RateLimit::new(0.001, 1)))
            .rate_limit_strikes(3),
        "limited",
    )
    .await;
    for n in 1..=5 {
        stream.call(&echo("x", n)).await.unwrap();
    }
    let mut limited = 0;
    let code = loop {
        match stream.event().await {
            Ok(event) if event.name == "close" => break event.data,
            Ok(event) => limited += usize::from(event.data.contains("Rate limited")),
            Err(err) => panic!("no close event: {err}"),
        }
    };
    assert_eq!(code, r#"{"code":1008}"#);
    assert_eq!(limited, 3);
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_stream_open() {
    let (server, mut stream) = stream_on(
        LiveView::builder().sse_heartbeat(Duration::from_millis(20)),
        "quiet",
    )
    .await;
    stream.heartbeats(3).await.unwrap();
    assert_eq!(server.streams(), 1);
}

#[tokio::test]
async fn a_stream_that_ends_frees_everything() {
    let (server, stream) = stream_on(
        LiveView::builder().sse_heartbeat(Duration::from_millis(20)),
        "freed",
    )
    .await;
    assert_eq!(server.streams(), 1);
    assert_eq!(server.live().connections(), 1);
    drop(stream);
    wait_until("the stream is gone", || {
        server.streams() == 0 && server.live().connections() == 0
    })
    .await;
    let metrics = server.live().metrics_text();
    assert!(metrics.contains("\nliveview_groups 0\n"), "{metrics}");
    assert!(
        metrics.contains("\nliveview_group_memberships 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("liveview_transport_connections{transport=\"sse\"} 0"));
}

#[tokio::test]
async fn an_idle_stream_is_closed_with_4408() {
    let (_server, mut stream) = stream_on(
        LiveView::builder().idle_timeout(Duration::from_millis(200)),
        "idle",
    )
    .await;
    assert_eq!(stream.closed().await, Some(4408));
}

#[tokio::test]
async fn shutdown_closes_streams_with_1001() {
    let (server, mut stream) = stream_on(LiveView::builder(), "leaving").await;
    let live = server.live().clone();
    tokio::spawn(async move { live.shutdown().await });
    assert_eq!(stream.closed().await, Some(1001));
}

#[tokio::test]
async fn an_expired_session_gets_a_stream_closed_with_4401() {
    let server = TestServer::start(
        LiveView::builder().authenticator(|_scope: &Scope| Identity::Expired),
        axum::Router::new(),
    )
    .await
    .unwrap();
    let mut stream = SseClient::open(server.addr(), "lobby", "", &[])
        .await
        .unwrap();
    assert_eq!(stream.closed().await, Some(4401));
    assert!(stream.ended().await);
    assert_eq!(server.streams(), 0);
}

/// Two processes on one Redis, no sticky sessions: the stream is held by
/// one, the calls are POSTed to either in turn, and each runs once, in
/// order, with the connection's state, its replies on the stream.
#[tokio::test]
async fn calls_posted_to_either_process_run_in_order_on_the_holder() {
    let (holder, other) = two_processes_on_redis().await;
    let mut stream = holder.events("nosticky").await.unwrap();
    let nodes = [holder.addr(), other.addr()];

    // The holder's stream group is subscribed before the token is sent:
    // the first call, POSTed at once to the other process, is taken.
    let first = stream
        .post_to(other.addr(), 1, r#"{"ping": 1}"#, &[])
        .await
        .unwrap();
    assert_eq!(first.status, 204, "{first:?}");
    assert_eq!(frame(&mut stream).await, json!({"pong": 1}));

    for seq in 2..=21u64 {
        let node = nodes[seq as usize % 2];
        let call = json!({"function": "count", "ref": seq});
        let answer = stream
            .post_to(node, seq, &call.to_string(), &[])
            .await
            .unwrap();
        assert_eq!(answer.status, 204, "call {seq} through {node}");
    }
    // A retransmission through the other process is not run again.
    let again = stream
        .post_to(
            other.addr(),
            5,
            &json!({"function": "count", "ref": 5}).to_string(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(again.status, 204);
    let mut counts = Vec::new();
    while counts.len() < 20 {
        let got = frame_where(&mut stream, |f| f["target"] == "#count").await;
        counts.push(got["html"].as_str().unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    // The next call proves the retransmission did not run.
    stream
        .post_to(
            other.addr(),
            22,
            &json!({"function": "count"}).to_string(),
            &[],
        )
        .await
        .unwrap();
    let got = frame_where(&mut stream, |f| f["target"] == "#count").await;
    assert_eq!(got["html"], "21");

    // A token no process holds: unknown, once the wait for its holder ran
    // out.
    let unknown = post_as(other.addr(), "nosticky", b"{}", &"ab".repeat(16), "1").await;
    assert_eq!(unknown.status, 404);
}

/// A layer slow to subscribe the groups of streams: each such subscription
/// is asked of the server a third of a second late, as from a process whose
/// subscriber is busy.
#[derive(Debug)]
struct SlowToSubscribe<L>(L);

impl<L: ChannelLayer + Clone> ChannelLayer for SlowToSubscribe<L> {
    fn start(&self, local: LocalDelivery) {
        self.0.start(local);
    }
    fn subscribe(&self, group: &str) {
        if !group.starts_with("liveview-stream-") {
            return self.0.subscribe(group);
        }
        let (layer, group) = (self.0.clone(), group.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            layer.subscribe(&group);
        });
    }
    fn unsubscribe(&self, group: &str) {
        self.0.unsubscribe(group);
    }
    fn subscribed<'a>(&'a self, group: &'a str) -> BoxFuture<'a, bool> {
        self.0.subscribed(group)
    }
    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        self.0.publish(group, frame)
    }
    fn has_shared_log(&self) -> bool {
        self.0.has_shared_log()
    }
    fn publish_sequenced<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<Option<(u64, String)>, LayerError>> {
        self.0.publish_sequenced(group, frame)
    }
    fn shutdown(&self) {
        self.0.shutdown();
    }
}

/// The first call of a new stream may be POSTed to any process as soon as
/// the token is known, however slow the holder is to subscribe the
/// stream's group: it waits for that subscription before it sends the
/// token, so the call is forwarded to it the first time.
#[tokio::test]
async fn the_first_call_of_a_stream_reaches_its_holder_through_another_process() {
    let prefix = format!("lvtest-sse-first-{}:", liveview::template::room_uuid());
    let layer = || {
        liveview::layer::RedisLayer::builder("redis://127.0.0.1:6379")
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    first_call_reaches_its_holder(layer(), layer()).await;
}

/// The same on the NATS layer.
#[cfg(feature = "nats")]
#[tokio::test]
async fn on_nats_the_first_call_of_a_stream_reaches_its_holder_through_another_process() {
    let prefix = format!("lvtest_sse_first_{}", uuid::Uuid::new_v4().simple());
    let layer = || {
        liveview::layer::NatsLayer::builder("nats://127.0.0.1:4222")
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    first_call_reaches_its_holder(layer(), layer()).await;
}

/// The same on the Redis Cluster layer, on a private cluster.
#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_cluster_the_first_call_of_a_stream_reaches_its_holder_through_another_process() {
    let cluster = liveview::testing::RedisCluster::start(3, 0)
        .await
        .expect("the cluster starts");
    let layer = || {
        liveview::layer::RedisClusterLayer::builder(cluster.seeds())
            .build()
            .unwrap()
    };
    first_call_reaches_its_holder(layer(), layer()).await;
}

/// A stream opened on a process whose layer (`held`) is slow to subscribe
/// its group; its first call, POSTed to another process (on `forwarding`),
/// is answered on the stream.
async fn first_call_reaches_its_holder<L: ChannelLayer + Clone>(held: L, forwarding: L) {
    let holder = server(LiveView::builder().channel_layer(SlowToSubscribe(held.clone()))).await;
    let other = server(LiveView::builder().channel_layer(forwarding.clone())).await;
    // Both processes reach the server: only the stream's group is late.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while held.health().await.is_err() || forwarding.health().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the layers never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut stream = holder.events("first").await.unwrap();
    let answer = stream
        .post_to(other.addr(), 1, r#"{"ping": 1}"#, &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(frame(&mut stream).await, json!({"pong": 1}));
}
