//! A server's WebSocket on a tokio stream: tungstenite's protocol, driven
//! from the poll of the connection's one task.
//!
//! tungstenite reads and writes through `std::io`; this adapter gives it
//! the stream with the waker of the task that polls the socket, kept
//! while that waker stays the same. A connection's reader and writer are
//! polled by one task (see [`live`](super::live)), so one waker serves
//! both: no waker of its own to allocate per connection, none to register
//! again at every poll, and a socket that is ready wakes the task itself,
//! not a waker that wakes it in turn.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

/// A WebSocket, server side, on the stream `S`: a
/// [`Stream`](futures_util::Stream) of the client's messages and a
/// [`Sink`](futures_util::Sink) of the server's.
pub(crate) struct Socket<S> {
    ws: WebSocket<Io<S>>,
    /// A frame waits in the write buffer for the socket to take it: it is
    /// flushed before another is accepted.
    blocked: bool,
    /// The close frame is queued: closing only flushes.
    closing: bool,
    /// The reader saw the end, or an error: it reads no more.
    ended: bool,
}

impl<S> std::fmt::Debug for Socket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("blocked", &self.blocked)
            .field("closing", &self.closing)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// The socket on `stream`, which answered the handshake; `read` is
    /// what was read past the request, the start of the first frame.
    pub(crate) fn new(stream: S, read: Option<Vec<u8>>, config: WebSocketConfig) -> Self {
        let io = Io {
            stream,
            waker: Waker::noop().clone(),
        };
        let ws = match read {
            None => WebSocket::from_raw_socket(io, Role::Server, Some(config)),
            Some(read) => WebSocket::from_partially_read(io, read, Role::Server, Some(config)),
        };
        Self {
            ws,
            blocked: false,
            closing: false,
            ended: false,
        }
    }

    /// Run `f` on the protocol, with `cx`'s waker for the stream.
    #[inline]
    fn with<R>(&mut self, cx: &mut Context<'_>, f: impl FnOnce(&mut WebSocket<Io<S>>) -> R) -> R {
        // Cloned only when it changed: the connection's task keeps its
        // waker for its life.
        self.ws.get_mut().waker.clone_from(cx.waker());
        f(&mut self.ws)
    }
}

/// The stream as tungstenite reads and writes it: an operation that would
/// wait is `WouldBlock`, and the stream wakes the waker when it can go on.
struct Io<S> {
    stream: S,
    /// The waker of the task polling the socket.
    waker: Waker,
}

impl<S: AsyncRead + Unpin> Read for Io<S> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        let mut cx = Context::from_waker(&self.waker);
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for Io<S> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut cx = Context::from_waker(&self.waker);
        match Pin::new(&mut self.stream).poll_write(&mut cx, buf) {
            Poll::Ready(written) => written,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        let mut cx = Context::from_waker(&self.waker);
        match Pin::new(&mut self.stream).poll_flush(&mut cx) {
            Poll::Ready(flushed) => flushed,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// A result of tungstenite's, with `WouldBlock` as `Pending`.
#[inline]
fn ready<T>(result: Result<T, Error>) -> Poll<Result<T, Error>> {
    match result {
        Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures_util::Stream for Socket<S> {
    type Item = Result<Message, Error>;

    /// The next message; `None` once the connection is closed. After an
    /// error, `None` too: the socket cannot be read again.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.with(cx, |ws| ready(ws.read()))) {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(err) => {
                this.ended = true;
                match err {
                    Error::AlreadyClosed | Error::ConnectionClosed => Poll::Ready(None),
                    err => Poll::Ready(Some(Err(err))),
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures_util::Sink<Message> for Socket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.blocked {
            return Poll::Ready(Ok(()));
        }
        let flushed = std::task::ready!(this.with(cx, |ws| ready(ws.flush())));
        this.blocked = false;
        Poll::Ready(flushed)
    }

    /// Queue `message`; a socket that cannot take it yet keeps it, and
    /// [`poll_ready`](futures_util::Sink::poll_ready) sends it first.
    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        // The stream is written to once the write buffer is past its
        // size, with the waker of the last poll: a write it cannot take
        // now leaves the socket blocked, and the caller's next
        // `poll_ready` or `poll_flush` writes again with its own waker.
        match ready(this.ws.write(message)) {
            Poll::Pending => {
                this.blocked = true;
                Ok(())
            }
            Poll::Ready(written) => {
                this.blocked = false;
                written
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        let flushed = std::task::ready!(this.with(cx, |ws| ready(ws.flush())));
        this.blocked = false;
        // Flushed the last of a closing handshake: done, not failed.
        Poll::Ready(match flushed {
            Err(Error::ConnectionClosed) => Ok(()),
            other => other,
        })
    }

    /// Send a close frame without a code (unless one was queued), and
    /// flush.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.blocked = false;
        let closing = this.closing;
        let closed = this.with(cx, |ws| if closing { ws.flush() } else { ws.close(None) });
        match ready(closed) {
            Poll::Pending => {
                this.closing = true;
                Poll::Pending
            }
            Poll::Ready(Ok(()) | Err(Error::ConnectionClosed)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

    use super::*;

    /// The server's configuration here: no write buffer, so that every
    /// `start_send` writes to the stream, as the library's small default
    /// buffer makes it do for a large frame.
    fn config() -> WebSocketConfig {
        WebSocketConfig::default().write_buffer_size(0)
    }

    /// `future`, or a failure when it does not finish in time: a lost
    /// wake-up fails the test instead of hanging it.
    async fn soon<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("the socket stalled")
    }

    /// A server socket and a tungstenite client on the two ends of an
    /// in-memory duplex stream of `capacity` bytes.
    async fn pair(capacity: usize) -> (Socket<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(capacity);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (Socket::new(server, None, config()), client)
    }

    #[tokio::test]
    async fn messages_go_both_ways_and_the_close_ends_the_reader() {
        let (mut server, mut client) = pair(1 << 16).await;
        client.send(Message::text("hello")).await.unwrap();
        let hello = soon(server.next()).await.unwrap().unwrap();
        assert_eq!(hello, Message::text("hello"));
        soon(server.send(Message::text("welcome"))).await.unwrap();
        let welcome = soon(client.next()).await.unwrap().unwrap();
        assert_eq!(welcome, Message::text("welcome"));
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        };
        soon(server.send(Message::Close(Some(frame.clone()))))
            .await
            .unwrap();
        let close = soon(client.next()).await.unwrap().unwrap();
        assert_eq!(close, Message::Close(Some(frame)));
        // The client's answer to the close goes out; the server's reader
        // reads it, then ends.
        soon(client.flush()).await.unwrap();
        assert!(matches!(
            soon(server.next()).await,
            Some(Ok(Message::Close(Some(answer)))) if answer.code == CloseCode::Away
        ));
        assert!(soon(server.next()).await.is_none());
        assert!(server.next().await.is_none(), "an ended reader stays ended");
    }

    #[tokio::test]
    async fn a_reader_waiting_for_a_frame_is_woken_when_it_comes() {
        let (mut server, mut client) = pair(1 << 16).await;
        let reader = tokio::spawn(async move { server.next().await.unwrap().unwrap() });
        // The reader is parked on an empty stream before the frame comes.
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        client.send(Message::text("late")).await.unwrap();
        assert_eq!(soon(reader).await.unwrap(), Message::text("late"));
    }

    #[tokio::test]
    async fn a_full_stream_holds_the_frame_until_the_client_reads() {
        // Room for less than one frame: the write waits for the reader.
        let (mut server, mut client) = pair(64).await;
        let text = "x".repeat(4_096);
        let sent = text.clone();
        let writer = tokio::spawn(async move {
            server.send(Message::text(sent)).await.unwrap();
            server
        });
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "the frame cannot fit yet");
        let read = soon(client.next()).await.unwrap().unwrap();
        assert_eq!(read, Message::text(text));
        soon(writer).await.unwrap();
    }

    #[tokio::test]
    async fn split_halves_in_one_task_send_then_close_with_a_code() {
        // As a connection ends: its reader and its writer, two halves of
        // the socket, polled together in one task, over a stream too
        // small for the frame.
        let (server, mut client) = pair(64).await;
        let (mut sink, mut stream) = server.split();
        let frame = CloseFrame {
            code: CloseCode::Again,
            reason: "".into(),
        };
        let text = "y".repeat(1_000);
        let (sent, closing) = (text.clone(), frame.clone());
        let server = tokio::spawn(async move {
            let ((), read) = futures_util::future::join(
                async {
                    sink.send(Message::text(sent)).await.unwrap();
                    sink.send(Message::Close(Some(closing))).await.unwrap();
                    sink.close().await.unwrap();
                },
                async {
                    let mut read = Vec::new();
                    while let Some(Ok(message)) = stream.next().await {
                        read.push(message);
                    }
                    read
                },
            )
            .await;
            read
        });
        let first = soon(client.next()).await.unwrap().unwrap();
        assert_eq!(first, Message::text(text));
        let close = soon(client.next()).await.unwrap().unwrap();
        assert_eq!(close, Message::Close(Some(frame)));
        soon(client.flush()).await.unwrap();
        // The server's reader got the client's answer to its close, then
        // the end.
        let read = soon(server).await.unwrap();
        assert!(
            matches!(read.as_slice(), [Message::Close(Some(answer))] if answer.code == CloseCode::Again),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn a_broken_frame_is_an_error_then_the_end() {
        let (server, mut client) = tokio::io::duplex(1 << 10);
        let mut server = Socket::new(server, None, config());
        // An unmasked text frame from a client breaks the protocol.
        client.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
        let broken = soon(server.next()).await;
        assert!(
            matches!(broken, Some(Err(Error::Protocol(_)))),
            "{broken:?}"
        );
        assert!(soon(server.next()).await.is_none());
    }

    #[tokio::test]
    async fn what_was_read_past_the_request_starts_the_first_frame() {
        let (server, client) = tokio::io::duplex(1 << 10);
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // A masked "hi" frame, its first three bytes read with the request.
        let frame = [0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
        let mut server = Socket::new(server, Some(frame[..3].to_vec()), config());
        client.get_mut().write_all(&frame[3..]).await.unwrap();
        let hi = soon(server.next()).await.unwrap().unwrap();
        assert_eq!(hi, Message::text("hi"));
    }
}
