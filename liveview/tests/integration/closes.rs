//! Every close the server starts is observable: the client reads what was
//! queued for it, then a close frame with the code, also while it is still
//! sending. And protocol violations close with 1002 or 1007.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use liveview::LiveView;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{server, wait_until};

/// What a flooding client saw: its text frames, and how the connection
/// ended (`Ok(code)` for a close frame, `Err(description)` otherwise).
struct Flooded {
    texts: Vec<String>,
    end: Result<u16, String>,
}

/// How a flooding client reads.
#[derive(Clone, Copy)]
enum Reading {
    /// From the start, concurrently with sending.
    Concurrently,
    /// Only once everything is sent, through a small receive buffer: the
    /// server's replies wait in its send buffer meanwhile, where a reset
    /// would destroy them.
    AfterSending,
}

/// Send `frames` as fast as the socket takes them, and read until the
/// server's close frame (or the end of the connection).
async fn flood(url: &str, frames: Vec<Message>, reading: Reading) -> Flooded {
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Reading::AfterSending = reading {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    let tcp = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        for frame in frames {
            // The server may close in the middle: stop at the first error.
            if sink.feed(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.flush().await;
        let _ = sent_tx.send(());
        // Keep the sink alive (not closed) until the reader is done.
        std::future::pending::<()>().await;
    });
    if let Reading::AfterSending = reading {
        let _ = sent_rx.await;
    }
    let mut texts = Vec::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Err(_) => break Err("timed out".to_owned()),
            Ok(None) => break Err("ended without a close frame".to_owned()),
            Ok(Some(Err(err))) => break Err(format!("ended without a close frame: {err}")),
            Ok(Some(Ok(Message::Text(text)))) => texts.push(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                break frame
                    .map(|f| u16::from(f.code))
                    .ok_or_else(|| "a close frame without a code".to_owned());
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    sender.abort();
    Flooded { texts, end }
}

fn calls(function: &str, n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message::text(json!({"function": function, "data": {"i": i}}).to_string()))
        .collect()
}

fn assert_rate_limited_then_1008(flooded: &Flooded) {
    assert_eq!(flooded.end, Ok(1008));
    assert!(
        flooded
            .texts
            .iter()
            .any(|t| t == r#"{"error":"Unknown function"}"#),
        "the calls within the rate were answered"
    );
    assert_eq!(
        flooded.texts.last().map(String::as_str),
        Some(r#"{"error":"Rate limited"}"#),
        "the refusals before the close are delivered"
    );
}

#[tokio::test]
async fn a_flood_of_calls_ends_with_rate_limited_and_a_1008_close_frame() {
    let server = server(LiveView::builder()).await;
    let url = server.ws_url("closes-flood");
    let flooded = flood(&url, calls("no_such_handler", 5_000), Reading::Concurrently).await;
    assert_rate_limited_then_1008(&flooded);

    // A page that reads late, after calls with large replies: the replies
    // still wait in the server's send buffer when it decides to close.
    let mut frames: Vec<Message> = (0..10)
        .map(|_| {
            Message::text(
                json!({"function": "echo", "form": {"text": "r".repeat(8_000)}}).to_string(),
            )
        })
        .collect();
    frames.extend(calls("no_such_handler", 5_000));
    let flooded = flood(&url, frames, Reading::AfterSending).await;
    assert_rate_limited_then_1008(&flooded);
    assert_eq!(
        flooded.texts.iter().filter(|t| t.contains("rrrr")).count(),
        10,
        "every large reply arrived"
    );
}

/// No rate limit and a queue that never overflows: only the frame under
/// test closes the connection.
fn unlimited() -> liveview::LiveViewBuilder {
    LiveView::builder()
        .rate_limit(None)
        .address_rate_limit(None)
        .queue_capacity(100_000)
}

#[tokio::test]
async fn a_binary_frame_amid_a_flood_gets_a_1003_close_frame() {
    let server = server(unlimited()).await;
    for reading in [Reading::Concurrently, Reading::AfterSending] {
        let mut frames = calls("no_such_handler", 1_000);
        frames.push(Message::binary(vec![1, 2, 3]));
        frames.extend(calls("no_such_handler", 4_000));
        let flooded = flood(&server.ws_url("closes-binary"), frames, reading).await;
        assert_eq!(flooded.end, Ok(1003));
    }
}

#[tokio::test]
async fn an_oversized_frame_amid_a_flood_gets_a_1009_close_frame() {
    let server = server(unlimited().max_frame_size(4 * 1024)).await;
    for reading in [Reading::Concurrently, Reading::AfterSending] {
        let mut frames = calls("no_such_handler", 1_000);
        frames.push(Message::text(
            json!({"function": "echo", "form": {"text": "x".repeat(200_000)}}).to_string(),
        ));
        frames.extend(calls("no_such_handler", 4_000));
        let flooded = flood(&server.ws_url("closes-big"), frames, reading).await;
        assert_eq!(flooded.end, Ok(1009));
    }
}

#[tokio::test]
async fn shutdown_amid_a_flood_gets_a_1001_close_frame() {
    let server = server(unlimited()).await;
    let live = server.live().clone();
    let url = server.ws_url("closes-shutdown");
    let flooding = tokio::spawn(async move {
        flood(
            &url,
            calls("no_such_handler", 100_000),
            Reading::Concurrently,
        )
        .await
    });
    wait_until("the flood is under way", || {
        live.broadcaster().local_connections("closes-shutdown") == 1
    })
    .await;
    let stopping = tokio::spawn(server.shutdown());
    let flooded = flooding.await.unwrap();
    assert_eq!(flooded.end, Ok(1001));
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_slow_reader_that_keeps_calling_gets_a_1013_close_frame() {
    let server = server(LiveView::builder().queue_capacity(4).rate_limit(None)).await;
    let broadcaster = server.live().broadcaster();
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url("closes-slow"))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    wait_until("joined", || {
        broadcaster.local_connections("closes-slow") == 1
    })
    .await;
    // Not reading: big frames fill the socket buffers, then the queue.
    let chunk = "z".repeat(32 * 1024);
    let mut sent = 0;
    while broadcaster.local_connections("closes-slow") == 1 {
        assert!(sent < 20_000, "the stalled client was never closed");
        broadcaster
            .send_to_room(
                "closes-slow",
                liveview::Update::new("#big").html(chunk.clone()),
            )
            .await
            .unwrap();
        sent += 1;
    }
    // The server decided to close. The page, still unaware, calls again
    // before it reads.
    for frame in calls("echo", 10) {
        sink.send(frame)
            .await
            .expect("the server reads until the closing handshake");
    }
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Err(_) => break Err("timed out".to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => break Ok(frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => {}
            Ok(None) => break Err("ended without a close frame".to_owned()),
            Ok(Some(Err(err))) => break Err(format!("ended without a close frame: {err}")),
        }
    };
    assert_eq!(end, Ok(Some(1013)));
}

/// A client too slow for its frames is often too slow for the close
/// frame as well, or gone before it: it is counted as closed for being too
/// slow all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gone_before_its_close_frame_is_counted_as_too_slow() {
    let server = server(LiveView::builder().queue_capacity(4).rate_limit(None)).await;
    let live = server.live();
    let broadcaster = live.broadcaster();
    // A small receive buffer: what the client does not read soon fills
    // the server's socket.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(server.ws_url("closes-gone"), tcp)
        .await
        .unwrap();
    wait_until("joined", || {
        broadcaster.local_connections("closes-gone") == 1
    })
    .await;
    // A first frame read: the connection's writer runs.
    let (_sink, mut stream) = ws.split();
    broadcaster
        .send_to_room("closes-gone", liveview::Update::new("#first"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    assert!(matches!(first, Ok(Some(Ok(Message::Text(_))))), "{first:?}");
    // Not reading: big frames fill the socket buffers, then the queue, and
    // the server gives up on the client with its last write unfinished.
    let chunk = "z".repeat(32 * 1024);
    let mut sent = 0;
    while broadcaster.local_connections("closes-gone") == 1 {
        assert!(sent < 20_000, "the stalled client was never closed");
        broadcaster
            .send_to_room(
                "closes-gone",
                liveview::Update::new("#big").html(chunk.clone()),
            )
            .await
            .unwrap();
        sent += 1;
        // A steady stream, not a burst: the writer takes each frame as it
        // comes while the socket takes them, so the queue fills once the
        // socket takes nothing more.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Gone with unread data: the server's socket is reset under the
    // unfinished write, and no close frame can go out.
    drop((_sink, stream));
    let metric = |name: &str| {
        let text = live.metrics_text();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} is not in the metrics: {text}"))
    };
    wait_until("the connection ended", || {
        metric("liveview_connections") == 0.0
    })
    .await;
    assert_eq!(metric("liveview_slow_client_closes_total"), 1.0);
}

/// A raw TCP connection upgraded by hand, to send frames no WebSocket
/// library would.
struct Raw(TcpStream);

impl Raw {
    async fn open(addr: std::net::SocketAddr, room: &str) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws/liveview/{room}/ HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self(tcp)
    }

    /// Write one frame: `first` is the FIN/RSV/opcode byte; masked with a
    /// fixed key when `masked`.
    async fn frame(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut bytes = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => bytes.push(mask_bit | n as u8),
            n => {
                bytes.push(mask_bit | 126);
                bytes.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let key = [0x12, 0x34, 0x56, 0x78];
        if masked {
            bytes.extend_from_slice(&key);
            bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            bytes.extend_from_slice(payload);
        }
        self.0.write_all(&bytes).await.unwrap();
    }

    /// Read the server's frames until its close frame: the close code, or
    /// `None` if the connection ended first.
    async fn close_code(&mut self) -> Option<u16> {
        let read = async {
            loop {
                let mut header = [0; 2];
                self.0.read_exact(&mut header).await.ok()?;
                let len = match header[1] & 0x7f {
                    126 => {
                        let mut n = [0; 2];
                        self.0.read_exact(&mut n).await.ok()?;
                        usize::from(u16::from_be_bytes(n))
                    }
                    127 => {
                        let mut n = [0; 8];
                        self.0.read_exact(&mut n).await.ok()?;
                        usize::try_from(u64::from_be_bytes(n)).ok()?
                    }
                    n => usize::from(n),
                };
                let mut payload = vec![0; len];
                self.0.read_exact(&mut payload).await.ok()?;
                if header[0] & 0x0f == 0x8 {
                    return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server answers within 10 s")
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002_or_1007() {
    let server = server(LiveView::builder()).await;
    let close = |code: u16| code.to_be_bytes().to_vec();
    // (what, first byte, payload, masked, expected code)
    let cases: Vec<(&str, u8, Vec<u8>, bool, u16)> = vec![
        (
            "invalid UTF-8 in a text frame",
            0x81,
            vec![b'{', 0xff, 0xfe, b'}'],
            true,
            1007,
        ),
        ("RSV1 set", 0xC1, b"{}".to_vec(), true, 1002),
        ("RSV3 set", 0x91, b"{}".to_vec(), true, 1002),
        (
            "an unmasked client frame",
            0x81,
            b"{}".to_vec(),
            false,
            1002,
        ),
        ("reserved data opcode 3", 0x83, b"{}".to_vec(), true, 1002),
        ("reserved control opcode 0xB", 0x8B, Vec::new(), true, 1002),
        ("a ping of 126 bytes", 0x89, vec![0; 126], true, 1002),
        ("a fragmented ping", 0x09, Vec::new(), true, 1002),
        ("a close with code 999", 0x88, close(999), true, 1002),
        ("a close with code 1005", 0x88, close(1005), true, 1002),
        ("a close with code 5000", 0x88, close(5000), true, 1002),
        ("a close with a one-byte body", 0x88, vec![3], true, 1002),
        ("a valid close is echoed", 0x88, close(1000), true, 1000),
    ];
    for (what, first, payload, masked, expected) in cases {
        let mut raw = Raw::open(server.addr(), "closes-raw").await;
        raw.frame(first, &payload, masked).await;
        assert_eq!(raw.close_code().await, Some(expected), "{what}");
    }
}
