//! A client of the HTTP transport (Server-Sent Events down, POST up) for
//! integration tests, speaking HTTP/1.1 over plain TCP.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One event of a stream: its name (`message` when it has none) and its
/// data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, or `message`.
    pub name: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// An answer to a POST: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body (`{"error": "..."}` for a refusal, empty when taken).
    pub body: String,
}

/// A stream of the HTTP transport, opened with
/// [`TestServer::events`](crate::testing::TestServer::events).
///
/// ```no_run
/// use liveview::{testing::TestServer, LiveView};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let server = TestServer::start(LiveView::builder(), axum::Router::new()).await.unwrap();
/// let mut stream = server.events("lobby").await.unwrap();
/// let answer = stream.call(&json!({"function": "nope", "ref": 1})).await.unwrap();
/// assert_eq!(answer.status, 204);
/// assert_eq!(stream.recv().await.unwrap()["error"], "Unknown function");
/// # }
/// ```
#[derive(Debug)]
pub struct SseClient {
    tcp: TcpStream,
    addr: SocketAddr,
    room: String,
    token: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// Raw bytes read and not yet dechunked.
    raw: Vec<u8>,
    /// Dechunked text not yet parsed into events.
    text: String,
    ended: bool,
    heartbeats: usize,
    seq: u64,
    timeout: Duration,
}

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

impl SseClient {
    /// Open a stream of `room` at `addr` with extra request headers, and
    /// read its first event (the token). A refused stream is an error
    /// naming its status.
    pub async fn open(
        addr: SocketAddr,
        room: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let mut tcp = TcpStream::connect(addr).await?;
        let mut request = format!(
            "GET /liveview/events/{room}/{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut client = Self {
            tcp,
            addr,
            room: room.to_owned(),
            token: String::new(),
            status: 0,
            headers: Vec::new(),
            raw: Vec::new(),
            text: String::new(),
            ended: false,
            heartbeats: 0,
            seq: 0,
            timeout: Duration::from_secs(10),
        };
        client.read_head().await?;
        if client.status != 200 {
            return Err(std::io::Error::other(format!(
                "the stream was refused with {}",
                client.status
            )));
        }
        let first = client.event().await?;
        if first.name == "stream" {
            let value: Value = serde_json::from_str(&first.data)
                .map_err(|err| invalid(format!("the first event is not JSON: {err}")))?;
            client.token = value["token"].as_str().unwrap_or_default().to_owned();
        } else {
            // A stream closed at once (an expired session): keep the event.
            client.text.insert_str(
                0,
                &format!("event: {}\ndata: {}\n\n", first.name, first.data),
            );
        }
        Ok(client)
    }

    async fn read_head(&mut self) -> std::io::Result<()> {
        loop {
            let mut parsed = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut parsed);
            match head.parse(&self.raw) {
                Ok(httparse::Status::Complete(len)) => {
                    self.status = head.code.unwrap_or_default();
                    self.headers = head
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    self.raw.drain(..len);
                    return Ok(());
                }
                Ok(httparse::Status::Partial) => {}
                Err(err) => return Err(invalid(format!("not an HTTP response: {err}"))),
            }
            if !self.fill().await? {
                return Err(invalid("the response ended in its head"));
            }
        }
    }

    /// Read more bytes; false at the end of the connection.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(self.timeout, self.tcp.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no event in time"))??;
        self.raw.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }

    /// Move the complete chunks of `raw` into `text`.
    fn dechunk(&mut self) -> std::io::Result<()> {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return Ok(());
            };
            let size = std::str::from_utf8(&self.raw[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| invalid("a malformed chunk"))?;
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return Ok(());
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return Ok(());
            }
            let chunk = String::from_utf8(self.raw[start..start + size].to_vec())
                .map_err(|_| invalid("an event that is not UTF-8"))?;
            self.text.push_str(&chunk);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event, comments (heartbeats) skipped; an error of kind
    /// `UnexpectedEof` when the stream ended.
    pub async fn event(&mut self) -> std::io::Result<Event> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    // A comment: the heartbeat.
                    self.heartbeats += 1;
                    continue;
                }
                return Ok(Event {
                    name,
                    data: data.join("\n"),
                });
            }
            self.dechunk()?;
            if self.text.contains("\n\n") {
                continue;
            }
            if self.ended || !self.fill().await? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the stream ended",
                ));
            }
        }
    }

    /// The next frame (a `message` event) as JSON; a `close` event is an
    /// error naming its code.
    pub async fn recv(&mut self) -> std::io::Result<Value> {
        let event = self.event().await?;
        if event.name != "message" {
            return Err(std::io::Error::other(format!(
                "{} event: {}",
                event.name, event.data
            )));
        }
        serde_json::from_str(&event.data).map_err(|err| invalid(err.to_string()))
    }

    /// Read until the `close` event and return its code (`None` when the
    /// stream ended without one).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.event().await {
                Ok(event) if event.name == "close" => {
                    let value: Value = serde_json::from_str(&event.data).ok()?;
                    return value["code"].as_u64().map(|c| c as u16);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether the response ended (the last chunk arrived), reading what
    /// is left.
    pub async fn ended(&mut self) -> bool {
        while !self.ended {
            match self.fill().await {
                Ok(true) => {
                    if self.dechunk().is_err() {
                        return false;
                    }
                }
                _ => return self.ended,
            }
        }
        true
    }

    /// Read until `count` heartbeats (comments) arrived in all, keeping
    /// the events read meanwhile for [`event`](Self::event).
    pub async fn heartbeats(&mut self, count: usize) -> std::io::Result<()> {
        let mut kept = String::new();
        while self.heartbeats < count {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                if block
                    .lines()
                    .all(|line| line.is_empty() || line.starts_with(':'))
                {
                    self.heartbeats += 1;
                } else {
                    kept.push_str(&block);
                }
                continue;
            }
            self.dechunk()?;
            if !self.text.contains("\n\n") && (self.ended || !self.fill().await?) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the stream ended",
                ));
            }
        }
        self.text.insert_str(0, &kept);
        Ok(())
    }

    /// The stream's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A header of the stream's response.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Send `call` with the next number, to the server that holds the
    /// stream.
    pub async fn call(&mut self, call: &Value) -> std::io::Result<Answer> {
        self.seq += 1;
        let (addr, seq) = (self.addr, self.seq);
        self.post_to(addr, seq, &call.to_string(), &[]).await
    }

    /// The number the next [`call`](Self::call) takes, counting this one
    /// (for sending through [`post_to`](Self::post_to)).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// POST `body` as call `seq` of this stream to the server at `addr`
    /// (any process of the app), with extra headers.
    pub async fn post_to(
        &self,
        addr: SocketAddr,
        seq: u64,
        body: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Answer> {
        let seq = seq.to_string();
        let mut all = vec![
            ("LiveView-Stream", self.token.as_str()),
            ("LiveView-Seq", &seq),
        ];
        all.extend_from_slice(headers);
        post(addr, &self.room, body.as_bytes(), &all).await
    }
}

/// `POST /liveview/events/{room}/` with `body` and `headers`, on a
/// connection of its own.
pub async fn post(
    addr: SocketAddr,
    room: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    let mut tcp = TcpStream::connect(addr).await?;
    let mut request = format!(
        "POST /liveview/events/{room}/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    // A body refused before it was read: the answer may come while it is
    // still being written.
    let _ = tcp.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    let mut parsed = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut parsed);
    let start = match head.parse(&raw) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Err(invalid("no HTTP response")),
    };
    let chunked = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding") && h.value.eq_ignore_ascii_case(b"chunked")
    });
    let status = head.code.unwrap_or_default();
    let mut body = raw[start..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&rest[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if size == 0 || rest.len() < line_end + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[(line_end + 4 + size).min(rest.len())..];
        }
        body = out;
    }
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
