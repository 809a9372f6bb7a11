//! Bytes on the wire of the demo's live search, over a WebSocket and over
//! the HTTP transport (plain, gzip, brotli): a visitor types "walnut lamp"
//! one letter at a time, each letter a `search` call, as the page sends it.
//! Every byte between client and server goes through a counting proxy:
//! request and response heads, the WebSocket handshake and frame headers,
//! the POSTs (one per call, on a kept-alive connection, as a browser sends
//! them) and the event stream.
//!
//! ```text
//! cargo run -p demo --example wire_bytes [-- --out bench/results/wire-bytes-<time>.json]
//! ```
//!
//! Writes the figures with the commit and the machine they were measured on.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use demo::{Config, Demo};
use futures_util::{SinkExt, StreamExt};
use liveview::LiveView;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const QUERY: &str = "walnut lamp";

/// Bytes through the proxy: client to server, server to client.
#[derive(Default)]
struct Counted {
    up: AtomicU64,
    down: AtomicU64,
}

/// A TCP proxy to `server` that counts every byte, both ways.
async fn proxy(server: SocketAddr, counted: Arc<Counted>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let upstream = match TcpStream::connect(server).await {
                    Ok(upstream) => upstream,
                    Err(err) => {
                        eprintln!("proxy: cannot connect: {err}");
                        return;
                    }
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let up = counted.clone();
                let a = tokio::spawn(async move {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        up.up.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
                let mut buf = [0u8; 16384];
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counted.down.fetch_add(n as u64, Ordering::Relaxed);
                }
                a.abort();
            });
        }
    });
    addr
}

/// The calls the page makes while "walnut lamp" is typed.
fn calls() -> Vec<Value> {
    (1..=QUERY.len())
        .map(|n| {
            json!({"function": "search", "form": {"q": &QUERY[..n]}, "data": {},
                   "lang": "en", "room": "wire", "ref": n})
        })
        .collect()
}

async fn over_websocket(addr: SocketAddr) -> u64 {
    let url = format!("ws://{addr}/ws/liveview/wire-ws/?resume=");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut html = 0;
    for call in calls() {
        let reference = call["ref"].clone();
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                call.to_string(),
            ))
            .await
            .unwrap();
        loop {
            let message = socket.next().await.unwrap().unwrap();
            let frame: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
            if let Some(h) = frame["html"].as_str() {
                html += h.len() as u64;
            }
            if frame["ref"] == reference && frame["done"] == true {
                break;
            }
        }
    }
    socket.close(None).await.unwrap();
    html
}

/// The decoded text of an event stream, whatever its encoding.
enum Decoder {
    Identity(Vec<u8>),
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    fn push(&mut self, bytes: &[u8]) {
        match self {
            Decoder::Identity(out) => out.extend_from_slice(bytes),
            Decoder::Gzip(d) => {
                d.write_all(bytes).unwrap();
                d.flush().unwrap();
            }
            Decoder::Brotli(d) => {
                d.write_all(bytes).unwrap();
                d.flush().unwrap();
            }
        }
    }

    fn text(&self) -> String {
        let bytes = match self {
            Decoder::Identity(out) => out,
            Decoder::Gzip(d) => d.get_ref(),
            Decoder::Brotli(d) => d.get_ref(),
        };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// The head of an answer, or `None` when the connection closed.
async fn read_head(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 1024];
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => answer.extend_from_slice(&buf[..read]),
        }
    }
    Some(answer)
}

/// Read the stream's response until `until` holds on its decoded text.
async fn read_until(
    tcp: &mut TcpStream,
    raw: &mut Vec<u8>,
    decoder: &mut Decoder,
    until: impl Fn(&str) -> bool,
) {
    loop {
        // Dechunk what arrived.
        while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap(), 16).unwrap();
            if raw.len() < end + 2 + size + 2 {
                break;
            }
            decoder.push(&raw[end + 2..end + 2 + size]);
            raw.drain(..end + 2 + size + 2);
        }
        if until(&decoder.text()) {
            return;
        }
        let mut buf = [0u8; 16384];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended");
        raw.extend_from_slice(&buf[..n]);
    }
}

async fn over_sse(addr: SocketAddr, encoding: &str) -> (String, u64) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let accept = if encoding.is_empty() {
        String::new()
    } else {
        format!("Accept-Encoding: {encoding}\r\n")
    };
    stream
        .write_all(
            format!(
                "GET /liveview/events/wire-sse/?resume= HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{accept}\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    let head_end = loop {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    raw.drain(..head_end);
    let used = head
        .lines()
        .find_map(|l| l.strip_prefix("content-encoding: "))
        .unwrap_or("identity")
        .to_owned();
    let mut decoder = match used.as_str() {
        "gzip" => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
        "br" => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
            Vec::new(),
            4096,
        ))),
        _ => Decoder::Identity(Vec::new()),
    };
    read_until(&mut stream, &mut raw, &mut decoder, |t| {
        t.contains("\"token\"")
    })
    .await;
    let text = decoder.text();
    let token = text.split("\"token\":\"").nth(1).unwrap()[..32].to_owned();

    // The calls, on one kept-alive connection, one after the other.
    let mut posts = TcpStream::connect(addr).await.unwrap();
    for (n, call) in calls().into_iter().enumerate() {
        let body = call.to_string();
        let request = format!(
            "POST /liveview/events/wire-sse/ HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nLiveView-Stream: {token}\r\nLiveView-Seq: {}\r\n\r\n{body}",
            body.len(),
            n + 1
        );
        // A kept-alive connection the server closed (idle past its
        // header timeout while this client decoded): a new one, and the
        // same call again, as a browser does.
        let answer = loop {
            if posts.write_all(request.as_bytes()).await.is_ok()
                && let Some(answer) = read_head(&mut posts).await
            {
                break answer;
            }
            posts = TcpStream::connect(addr).await.unwrap();
        };
        assert!(
            answer.starts_with(b"HTTP/1.1 204"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let done = format!("{{\"ref\":{},\"done\":true}}", n + 1);
        read_until(&mut stream, &mut raw, &mut decoder, |t| t.contains(&done)).await;
    }
    let html: u64 = decoder
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|f| f["html"].as_str().map(|h| h.len() as u64))
        .sum();
    (used, html)
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    let out = std::env::args().skip_while(|a| a != "--out").nth(1);
    let dir = std::env::temp_dir().join(format!("demo-wire-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = Demo::open(Config::default().with_database(dir.join("demo.sqlite3")))
        .await
        .unwrap();
    let live = demo
        .liveview(LiveView::builder().disable_origin_check())
        .unwrap();
    let router = demo.router(&live);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(liveview::serve(listener, router, live.clone()));

    let mut rows = Vec::new();
    let counted = Arc::new(Counted::default());
    let addr = proxy(server, counted.clone()).await;
    let html = over_websocket(addr).await;
    // The proxy counts a closing socket's last bytes a moment later.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    rows.push(json!({"transport": "websocket", "encoding": "none",
        "down": counted.down.load(Ordering::Relaxed), "up": counted.up.load(Ordering::Relaxed), "html": html}));
    for encoding in ["", "gzip", "br"] {
        let counted = Arc::new(Counted::default());
        let addr = proxy(server, counted.clone()).await;
        let (used, html) = over_sse(addr, encoding).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        rows.push(json!({"transport": "sse", "encoding": used,
            "down": counted.down.load(Ordering::Relaxed), "up": counted.up.load(Ordering::Relaxed), "html": html}));
    }
    let dirty = !command("git", &["status", "--porcelain"]).is_empty();
    let result = json!({
        "what": format!("bytes on the wire of the demo's live search: \"{QUERY}\" typed one letter at a time ({} search calls), through a counting TCP proxy", QUERY.len()),
        "command": "cargo run -p demo --example wire_bytes (bytes do not depend on the build profile)",
        "commit": command("git", &["rev-parse", "HEAD"]),
        "dirty": dirty,
        "machine": {
            "cpu": command("sh", &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": command("uname", &["-sr"]),
        },
        "rows": rows,
    });
    let text = serde_json::to_string_pretty(&result).unwrap();
    println!("{text}");
    println!(
        "\n| transport | encoding | server to client | client to server | HTML in the frames |\n|---|---|---|---|---|"
    );
    for row in result["rows"].as_array().unwrap() {
        println!(
            "| {} | {} | {} B | {} B | {} B |",
            row["transport"].as_str().unwrap(),
            row["encoding"].as_str().unwrap(),
            row["down"],
            row["up"],
            row["html"]
        );
    }
    if let Some(out) = out {
        std::fs::write(&out, text + "\n").unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
