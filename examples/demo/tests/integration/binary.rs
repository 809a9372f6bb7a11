//! The `demo` binary as a newcomer runs it: settings from the environment,
//! the database created on first start, two processes sharing their pages'
//! updates through Redis when `LIVEVIEW_REDIS_URL` is set, and their
//! sessions (sign-ins and sign-outs) through the secret and the database.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use demo::pages::alerts::ROOM;
use liveview::testing::{Closed, SseClient, WsClient};

use crate::support::{TempDir, create_alert_until_it_crosses, http_get};

/// The session secret of the processes: the same for all, so a sign-in
/// on one is valid on the others.
const SECRET: &str = "a test secret that is long enough to sign sessions";

/// A running `demo` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary on a free port with `database`, and Redis if given;
/// the process and the address it printed.
fn start(database: &Path, redis: Option<&str>) -> (Process, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .env("LIVEVIEW_ADDR", "127.0.0.1:0")
        .env("DEMO_DATABASE", database)
        .env("DEMO_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match redis {
        Some(url) => command.env("LIVEVIEW_REDIS_URL", url),
        None => command.env_remove("LIVEVIEW_REDIS_URL"),
    };
    let mut child = command.spawn().expect("the demo binary starts");
    let stdout = child.stdout.take().expect("its output");
    let process = Process(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("LiveView demo on http://") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo says where it listens");
    (process, addr.parse().expect("an address"))
}

#[tokio::test]
async fn the_binary_creates_its_database_and_serves_every_page() {
    let dir = TempDir::new();
    let database = dir.path().join("fresh.sqlite3");
    let (_process, addr) = start(&database, None);
    assert!(
        database.exists(),
        "the database file is created on first start"
    );
    for path in ["/", "/quickstart/", "/alerts/", "/search/?q=oak"] {
        let (status, _, body) = http_get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains(r#"data-controller="page""#), "{path}");
    }
}

#[tokio::test]
async fn two_processes_share_alerts_through_redis() {
    let url = crate::redis::redis();
    let dir = TempDir::new();
    let database = dir.path().join("shared.sqlite3");
    let (_one, one) = start(&database, Some(url));
    let (_two, two) = start(&database, Some(url));
    let socket = |addr: SocketAddr| async move {
        WsClient::connect(&format!("ws://{addr}/ws/liveview/{ROOM}/"), &[])
            .await
            .expect("the WebSocket opens")
    };
    let mut ada = socket(one).await;
    let mut bob = socket(two).await;

    // Bob's process subscribes to the room when he connects.
    let frame = create_alert_until_it_crosses(&mut ada, &mut bob).await;
    assert_eq!(frame["target"], "#alerts-live");
}

#[test]
fn a_short_session_secret_is_refused_at_start() {
    let dir = TempDir::new();
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env("LIVEVIEW_ADDR", "127.0.0.1:0")
        .env("DEMO_DATABASE", dir.path().join("unused.sqlite3"))
        .env("DEMO_SECRET", "too short")
        .env("RUST_LOG", "off")
        .env_remove("LIVEVIEW_REDIS_URL")
        .output()
        .expect("the demo binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEMO_SECRET has 9 bytes; use at least 32 random bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_session_from_one_process_is_valid_on_another_with_the_same_secret() {
    let dir = TempDir::new();
    let database = dir.path().join("sessions.sqlite3");
    let (_one, one) = start(&database, None);
    let (_two, two) = start(&database, None);
    let cookie = sign_in_as_ada(one).await;
    let (_, _, page) = crate::support::http(two, "GET", "/", &[("cookie", &cookie)], "").await;
    assert!(
        page.contains(r#"<span class="account__name">Ada</span>"#),
        "{page}"
    );
}

/// Sign in as Ada on `addr`; the session cookie as a `name=value` pair.
async fn sign_in_as_ada(addr: SocketAddr) -> String {
    let (status, headers, _) = crate::support::http(
        addr,
        "POST",
        "/login/",
        &[("origin", &format!("http://{addr}"))],
        "name=Ada&next=%2F",
    )
    .await;
    assert_eq!(status, 303);
    crate::support::cookie_pair(
        crate::support::header(&headers, "set-cookie").expect("a session cookie"),
    )
}

/// `alerts_validate` on `socket`, which answers nothing: the connection is
/// known to the session's process once a call went through.
async fn make_a_call(socket: &mut WsClient) {
    crate::support::call(
        socket,
        "alerts_validate",
        serde_json::json!({}),
        serde_json::json!({"field": "none"}),
    )
    .await;
}

/// A call on `stream` that answers nothing, until its `done`.
async fn make_a_stream_call(stream: &mut SseClient) {
    let call = serde_json::json!({
        "function": "alerts_validate", "form": {}, "data": {"field": "none"}, "ref": 1,
    });
    let answer = stream.call(&call).await.expect("the POST is answered");
    assert_eq!(answer.status, 204, "{answer:?}");
    loop {
        let frame = stream.recv().await.expect("a frame of the stream");
        if frame["done"] == true {
            return;
        }
    }
}

/// Two processes behind one load balancer, one database: a session signed
/// out on one is refused by the other, on its pages, its sockets and its
/// event streams, and the connections the other already had close with
/// 4401 without making another call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_signed_out_on_one_process_is_refused_by_another() {
    let dir = TempDir::new();
    let database = dir.path().join("sessions.sqlite3");
    let (_one, one) = start(&database, None);
    let (_two, two) = start(&database, None);
    let cookie = sign_in_as_ada(one).await;
    let with_cookie = [("cookie", cookie.as_str())];
    let signed_in = r#"<span class="account__name">Ada</span>"#;

    // Ada's tabs on the second process: a page, a socket, an event stream.
    let (_, _, page) = crate::support::http(two, "GET", "/alerts/", &with_cookie, "").await;
    assert!(page.contains(signed_in), "{page}");
    let url = format!("ws://{two}/ws/liveview/{ROOM}/");
    let mut socket = WsClient::connect(&url, &with_cookie)
        .await
        .expect("the WebSocket opens");
    make_a_call(&mut socket).await;
    let mut stream = SseClient::open(two, ROOM, "", &with_cookie)
        .await
        .expect("the stream opens");
    make_a_stream_call(&mut stream).await;

    // Signed out through the first process.
    let (status, _, _) = crate::support::http(
        one,
        "POST",
        "/logout/",
        &[("origin", &format!("http://{one}")), ("cookie", &cookie)],
        "next=%2F",
    )
    .await;
    assert_eq!(status, 303);

    // The second process's open connections of the session end.
    assert_eq!(socket.closed().await, Closed::Code(4401));
    assert_eq!(stream.closed().await, Some(4401));
    // Its pages see no one, and new connections are refused, on both
    // processes.
    for addr in [two, one] {
        let (_, _, page) = crate::support::http(addr, "GET", "/alerts/", &with_cookie, "").await;
        assert!(!page.contains(signed_in), "{addr}: {page}");
        assert!(page.contains(">Sign in</a>"), "{addr}: {page}");
        let url = format!("ws://{addr}/ws/liveview/{ROOM}/");
        let mut copy = WsClient::connect(&url, &with_cookie)
            .await
            .expect("the upgrade is accepted");
        assert_eq!(copy.closed().await, Closed::Code(4401), "{addr}");
        let mut copy = SseClient::open(addr, ROOM, "", &with_cookie)
            .await
            .expect("the stream is accepted");
        assert_eq!(copy.closed().await, Some(4401), "{addr}");
    }
}
