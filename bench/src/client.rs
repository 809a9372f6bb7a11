//! The load generator's WebSocket client: connecting (from a chosen
//! loopback source address), the frames it sends, and one call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client socket after the handshake.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// The `say_hello` call every scenario makes, without `ref`: Django
/// LiveView's client sends none, and each server answers it with exactly
/// one frame.
pub(crate) const SAY_HELLO: &str =
    r#"{"function":"say_hello","form":{"name":"Ada"},"data":{},"lang":"en"}"#;

/// What a `say_hello` answer contains, whatever the server's JSON spacing.
pub(crate) const HELLO_REPLY: &str = "Hello, Ada!";

/// Prefix of the message of every broadcast round; the round number
/// follows it, so a subscriber knows which round a frame belongs to.
pub(crate) const ROUND_TAG: &str = "bench-round-";

/// How many loopback source addresses connections are spread over when a
/// scenario needs many of them: 127.0.0.2 to 127.0.0.255, so that each
/// address keeps few connections (ephemeral ports, and per-address caps).
const SOURCE_ADDRESSES: u32 = 254;

/// The `notify_all` call of broadcast round `round`.
pub(crate) fn notify_all(round: u32) -> String {
    format!(
        r#"{{"function":"notify_all","form":{{"message":"{ROUND_TAG}{round}"}},"data":{{}},"lang":"en"}}"#
    )
}

/// The round a broadcast frame belongs to, if it is one.
pub(crate) fn round_of(frame: &str) -> Option<u32> {
    let start = frame.find(ROUND_TAG)? + ROUND_TAG.len();
    let digits = frame[start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    frame[start..start + digits].parse().ok()
}

/// A room name for connection `index`: one room per page, as browsers of
/// both frameworks do (36 characters, the length of a UUID).
pub(crate) fn room(index: usize) -> String {
    format!("bench-{index:030}")
}

/// The source address of connection `index` when connections are spread.
pub(crate) fn source_address(index: usize) -> IpAddr {
    let host = 2 + (index as u32 % SOURCE_ADDRESSES);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8))
}

/// Where a server under test listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    pub addr: SocketAddr,
    /// Connect with an empty `resume` parameter, as a client that tracks
    /// group sequences does: its group frames then carry `seq`.
    pub resume: bool,
}

impl Endpoint {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            resume: false,
        }
    }

    /// The same server, connected to as a client that tracks sequences.
    pub(crate) fn tracking_sequences(self) -> Self {
        Self {
            resume: true,
            ..self
        }
    }

    /// Open a WebSocket to `room`, from `source` when given. The socket
    /// has `TCP_NODELAY` (a browser's has too) and small buffers, so that
    /// thousands of client sockets stay cheap.
    pub(crate) async fn connect(
        &self,
        room: &str,
        source: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Ws, String> {
        tokio::time::timeout(timeout, self.connect_inner(room, source))
            .await
            .map_err(|_| format!("connecting to {} timed out", self.addr))?
    }

    async fn connect_inner(&self, room: &str, source: Option<IpAddr>) -> Result<Ws, String> {
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if let Some(source) = source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| format!("binding {source}: {e}"))?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let query = if self.resume { "?resume=" } else { "" };
        let url = format!("ws://{}/ws/liveview/{room}/{query}", self.addr);
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        let origin = format!("http://{}", self.addr);
        request.headers_mut().insert(
            "Origin",
            HeaderValue::from_str(&origin).map_err(|e| e.to_string())?,
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(1024 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(|e| format!("handshake with {}: {e}", self.addr))?;
        Ok(ws)
    }
}

/// Send `text` and wait for the `say_hello` answer. Any other text frame
/// before it is an error: in these scenarios nothing else is sent to a
/// caller.
pub(crate) async fn call(ws: &mut Ws, text: &str, timeout: Duration) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(reply))) => {
                    return if reply.contains(HELLO_REPLY) {
                        Ok(())
                    } else {
                        Err(format!("unexpected frame: {}", reply.as_str()))
                    };
                }
                Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("connection closed".to_owned()),
            }
        }
    })
    .await;
    answer.map_err(|_| "no answer in time".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_found_in_every_server_s_frames() {
        let ours = r##"{"target":"#notifications","html":"<div class=\"notification\">bench-round-17</div>","append":true}"##;
        let django = r##"{"target": "#notifications", "html": "<div class=\"notification\">bench-round-3</div>", "append": true}"##;
        assert_eq!(round_of(ours), Some(17));
        assert_eq!(round_of(django), Some(3));
        assert_eq!(round_of(&notify_all(42)), Some(42));
        assert_eq!(round_of(r#"{"html":"<h1>Hello, Ada!</h1>"}"#), None);
    }

    #[test]
    fn sources_cover_the_loopback_range_past_127_0_0_1() {
        let mut hosts: Vec<u8> = (0..1_000)
            .map(|i| match source_address(i) {
                IpAddr::V4(a) => a.octets()[3],
                IpAddr::V6(_) => panic!("IPv4 expected"),
            })
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        assert_eq!(hosts.first(), Some(&2));
        assert_eq!(hosts.last(), Some(&255));
        assert_eq!(hosts.len(), 254);
    }

    #[test]
    fn rooms_are_valid_and_uuid_long() {
        assert_eq!(room(7).len(), 36);
        assert!(liveview::is_valid_room(&room(123_456)));
    }
}
