//! The load generator's minimal WebSocket client, for the timed calls
//! (round trip and throughput).
//!
//! A call writes a frame encoded and masked once, ahead of time, and reads
//! the answer with just enough parsing to find the frame's end and its
//! text: no per-call allocation, masking, UTF-8 validation or message
//! objects, so that the load generator spends as little as it can per
//! call and keeps headroom on its core. It speaks to every server alike
//! (the floor, our servers, Django LiveView): a plain handshake, frames as
//! RFC 6455 has them, pings answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::client::{Endpoint, HELLO_REPLY, SAY_HELLO};

/// The handshake key of every connection: the server only hashes it back.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key of every frame the client sends. A server unmasks
/// whatever the key; one fixed key lets the call's frame be masked once.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The longest handshake answer read.
const MAX_HEAD: usize = 8 * 1024;

/// The largest answer frame accepted (the servers' answers are a few
/// hundred bytes).
const MAX_FRAME: usize = 1024 * 1024;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The `say_hello` call as the client sends it: a final, masked text frame.
pub(crate) static SAY_HELLO_FRAME: LazyLock<Vec<u8>> =
    LazyLock::new(|| masked_frame(TEXT, SAY_HELLO.as_bytes()));

/// A final client frame of `opcode` carrying `payload`, masked with [`MASK`].
pub(crate) fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A server frame's header: whether it is the last of its message, its
/// opcode, and where its payload is in the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    payload_start: usize,
    payload_end: usize,
}

/// The header of the frame at the front of `bytes`; `None` until the
/// whole frame is there.
fn frame_at(bytes: &[u8]) -> Result<Option<Header>, String> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err("a masked frame from the server".to_owned());
    }
    if first & 0x70 != 0 {
        return Err("a frame with reserved bits (no extension was agreed)".to_owned());
    }
    let (len, at) = match second & 0x7f {
        126 => match bytes.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(b) => {
                let mut eight = [0; 8];
                eight.copy_from_slice(b);
                (u64::from_be_bytes(eight), 10)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| format!("a frame of {len} bytes"))?;
    if bytes.len() < at + len {
        return Ok(None);
    }
    Ok(Some(Header {
        fin: first & 0x80 != 0,
        opcode: first & 0x0f,
        payload_start: at,
        payload_end: at + len,
    }))
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A client connection of the timed calls.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet parsed: `buf[at..]`.
    buf: Vec<u8>,
    at: usize,
    /// A text message whose last frame has not come yet.
    partial: Vec<u8>,
    /// Whether the last read took everything the socket had and every
    /// byte of it was parsed: the next answer is not there yet.
    drained: bool,
}

impl Conn {
    /// Open a WebSocket to `room` on `endpoint`, from `source` when given,
    /// with an `Origin` header (Django's `AllowedHostsOriginValidator`
    /// requires one) and `TCP_NODELAY`, as the other client's.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        room: &str,
        source: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let addr = endpoint.addr;
        tokio::time::timeout(timeout, Self::connect_inner(endpoint, room, source))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
    }

    async fn connect_inner(
        endpoint: &Endpoint,
        room: &str,
        source: Option<IpAddr>,
    ) -> Result<Self, String> {
        let addr = endpoint.addr;
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| format!("binding {source}: {e}"))?;
        }
        let mut stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let query = if endpoint.resume { "?resume=" } else { "" };
        let request = format!(
            "GET /ws/liveview/{room}/{query} HTTP/1.1\r\nHost: {addr}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: {KEY}\r\nOrigin: http://{addr}\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        let mut buf = Vec::with_capacity(4096);
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_HEAD {
                return Err(format!("handshake with {addr}: an answer head too long"));
            }
            buf.reserve(1024);
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("handshake with {addr}: {e}"))?;
            if n == 0 {
                return Err(format!("handshake with {addr}: connection closed"));
            }
        };
        check_upgrade(&buf[..head_end]).map_err(|e| format!("handshake with {addr}: {e}"))?;
        Ok(Self {
            stream,
            buf,
            at: head_end,
            partial: Vec::new(),
            drained: false,
        })
    }

    /// Send `frame` (a whole, masked client frame, such as
    /// [`SAY_HELLO_FRAME`]) and read until the answer: a text message that
    /// contains [`HELLO_REPLY`]. Any other text message is an error (in
    /// these scenarios nothing else is sent to a caller); pings are
    /// answered, pongs skipped.
    pub(crate) async fn call(&mut self, frame: &[u8]) -> Result<(), String> {
        if self.drained {
            // The socket was read empty and its answer is not sent yet:
            // forget that it was readable, so that the answer is read once
            // the kernel says it came rather than tried for first (a read
            // that would find nothing, one system call per call). Nothing
            // is lost: data that comes later raises a new readiness event,
            // and the answer can only come after the call is written.
            let _ = self.stream.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        self.drained = false;
        self.stream
            .write_all(frame)
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match self.next_message()? {
                Some(true) => {
                    self.drained &= self.at == self.buf.len();
                    return Ok(());
                }
                Some(false) => {
                    let text = String::from_utf8_lossy(&self.partial).into_owned();
                    return Err(format!("unexpected frame: {text}"));
                }
                None => self.read_more().await?,
            }
        }
    }

    /// The next complete text message in the buffer, if any: whether it
    /// holds the answer (its text stays in `partial` when it does not).
    /// Control frames on the way are handled.
    fn next_message(&mut self) -> Result<Option<bool>, String> {
        loop {
            let Some(h) = frame_at(&self.buf[self.at..])? else {
                return Ok(None);
            };
            let payload = self.at + h.payload_start..self.at + h.payload_end;
            self.at += h.payload_end;
            match (h.opcode, h.fin) {
                (TEXT, true) => {
                    let found = contains(&self.buf[payload.clone()], HELLO_REPLY.as_bytes());
                    if !found {
                        self.partial.clear();
                        self.partial.extend_from_slice(&self.buf[payload]);
                    }
                    return Ok(Some(found));
                }
                (TEXT, false) => {
                    self.partial.clear();
                    self.partial.extend_from_slice(&self.buf[payload]);
                }
                (CONTINUATION, fin) => {
                    self.partial.extend_from_slice(&self.buf[payload]);
                    if fin {
                        return Ok(Some(contains(&self.partial, HELLO_REPLY.as_bytes())));
                    }
                }
                (CLOSE, _) => return Err("closed by the server".to_owned()),
                (PING, _) => {
                    let pong = masked_frame(PONG, &self.buf[payload]);
                    self.pending_pong(pong)?;
                }
                (PONG, _) => {}
                (other, _) => return Err(format!("unexpected frame, opcode {other}")),
            }
        }
    }

    /// Answer a ping: written at once if the socket takes it, which a
    /// socket waiting for an answer does (a few bytes).
    fn pending_pong(&mut self, pong: Vec<u8>) -> Result<(), String> {
        match self.stream.try_write(&pong) {
            Ok(n) if n == pong.len() => Ok(()),
            Ok(_) => Err("pong: a partial write".to_owned()),
            Err(e) => Err(format!("pong: {e}")),
        }
    }

    /// Read what the socket has into the buffer, after the unparsed bytes.
    async fn read_more(&mut self) -> Result<(), String> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.reserve(4096);
        let spare = self.buf.capacity() - self.buf.len();
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        // A read that did not fill the buffer took all there was.
        self.drained = n < spare;
        Ok(())
    }
}

/// Check a handshake answer's head: `101` and the accept key of [`KEY`].
fn check_upgrade(head: &[u8]) -> Result<(), String> {
    let head = std::str::from_utf8(head).map_err(|_| "an answer head not in UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!("answered {status}"));
    }
    let expected = derive_accept_key(KEY.as_bytes());
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-accept")
            .then(|| value.trim())
    });
    match accept {
        Some(a) if a == expected => Ok(()),
        other => Err(format!("a wrong Sec-WebSocket-Accept: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's (unmasked) frame.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(len as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn the_call_frame_unmasks_to_the_call() {
        let frame = &*SAY_HELLO_FRAME;
        assert_eq!(frame[0], 0x81, "final text frame");
        assert_eq!(
            frame[1],
            0x80 | SAY_HELLO.len() as u8,
            "masked, short length"
        );
        let mask = &frame[2..6];
        let text: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(text, SAY_HELLO.as_bytes());
        let long = masked_frame(TEXT, &[b'x'; 300]);
        assert_eq!(&long[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(long.len(), 4 + 4 + 300);
    }

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        let reply = br#"{"html":"<h1>Hello, Ada!</h1>"}"#;
        let frame = server_frame(true, TEXT, reply);
        for cut in 0..frame.len() {
            assert_eq!(frame_at(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        let h = frame_at(&frame).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, TEXT);
        assert_eq!(&frame[h.payload_start..h.payload_end], reply);
        let long = server_frame(true, TEXT, &[b'y'; 1000]);
        let h = frame_at(&long).unwrap().unwrap();
        assert_eq!((h.payload_start, h.payload_end), (4, 1004));
        assert!(frame_at(&masked_frame(TEXT, b"hi")).is_err(), "masked");
        assert!(frame_at(&[0xc1, 0]).is_err(), "reserved bit");
        assert!(frame_at(&[0x81, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn handshake_answers_are_checked() {
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             sec-websocket-accept: {}\r\n\r\n",
            derive_accept_key(KEY.as_bytes())
        );
        assert_eq!(check_upgrade(good.as_bytes()), Ok(()));
        let refused = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert!(check_upgrade(refused.as_bytes()).is_err());
        let wrong = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n\r\n";
        assert!(check_upgrade(wrong.as_bytes()).is_err());
    }

    /// A real server: the quick start's app on the memory layer, in this
    /// process, and one of each answer the client must tell apart.
    #[tokio::test]
    async fn calls_the_quick_start_and_tells_answers_apart() {
        let live = liveview::LiveView::builder()
            .channel_layer(liveview::layer::MemoryLayer)
            .build()
            .expect("a LiveView");
        let app = quickstart::app(&live);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("its address");
        let server = tokio::spawn(liveview::serve(listener, app, live));
        let endpoint = Endpoint::new(addr);
        let timeout = Duration::from_secs(10);
        let mut conn = Conn::connect(&endpoint, &crate::client::room(1), None, timeout)
            .await
            .expect("connected");
        for _ in 0..3 {
            conn.call(&SAY_HELLO_FRAME).await.expect("answered");
        }
        assert_eq!(conn.at, conn.buf.len(), "nothing left unread");
        // A broadcast is a text message without the greeting.
        let notify = masked_frame(TEXT, crate::client::notify_all(7).as_bytes());
        let err = conn.call(&notify).await.expect_err("not the answer");
        assert!(err.contains("bench-round-7"), "{err}");
        server.abort();
    }

    /// Pings are answered and fragmented answers put together, as a
    /// server other than ours may send them.
    #[tokio::test]
    async fn pings_and_fragments_are_handled() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("a connection");
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                head.reserve(1024);
                s.read_buf(&mut head).await.expect("the request");
            }
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(KEY.as_bytes())
            );
            s.write_all(answer.as_bytes()).await.expect("the answer");
            let mut call = vec![0; SAY_HELLO_FRAME.len()];
            s.read_exact(&mut call).await.expect("the call");
            let mut out = server_frame(true, PING, b"p1");
            out.extend(server_frame(false, TEXT, b"<h1>Hello, "));
            out.extend(server_frame(true, CONTINUATION, b"Ada!</h1>"));
            s.write_all(&out).await.expect("the frames");
            let mut pong = vec![0; 8];
            s.read_exact(&mut pong).await.expect("the pong");
            pong
        });
        let endpoint = Endpoint::new(addr);
        let mut conn = Conn::connect(&endpoint, "r", None, Duration::from_secs(10))
            .await
            .expect("connected");
        conn.call(&SAY_HELLO_FRAME).await.expect("answered");
        let pong = server.await.expect("the server");
        assert_eq!(pong, masked_frame(PONG, b"p1"));
    }
}
