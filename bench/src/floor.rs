//! The floor: a bare tokio-tungstenite server doing the least a LiveView
//! server must do. It answers every message with one fixed frame and fans a
//! `notify_all` frame out to every connection, with no parsing, no routing,
//! no rendering and no framework around it: what is left is the cost of
//! WebSockets on tokio, the limit a framework can approach.
//!
//! One task per connection, which both reads and writes; broadcasts reach
//! it through a bounded queue holding one shared buffer per frame. Socket
//! buffers are the library's defaults, read from the library itself
//! ([`library_socket_buffers`]), and the bench server keeps its defaults,
//! so memory per connection compares like with like even when the
//! defaults move.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The answer to every call: the bytes of the framework's `say_hello`
/// answer.
const REPLY: &str = r##"{"target":"#greeting","html":"<h1>Hello, Ada!</h1>"}"##;

/// Largest frame, bytes: the library's default (PROTOCOL.md).
const MAX_FRAME: usize = 64 * 1024;

/// Frames a connection may have waiting, as the library's default.
const QUEUE: usize = 256;

type Members = Arc<Mutex<HashMap<u64, mpsc::Sender<Utf8Bytes>>>>;

/// `liveview-bench floor --addr 127.0.0.1:9000`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut addr = "127.0.0.1:9000".to_owned();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.clone(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let buffers = library_socket_buffers()?;
    crate::raise_fd_limit();
    let runtime = crate::server_runtime()?;
    runtime.block_on(serve(addr, buffers))
}

/// The library's default socket buffers, bytes (read, write), as its
/// builder reports them (`LiveViewBuilder`'s `Debug` shows its
/// configuration): what `LiveViewBuilder::socket_buffers` is left at.
pub(crate) fn library_socket_buffers() -> Result<(usize, usize), String> {
    let text = format!("{:?}", liveview::LiveView::builder());
    let field = |name: &str| {
        let at = text.find(&format!("{name}: "))? + name.len() + 2;
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<usize>().ok()
    };
    field("read_buffer")
        .zip(field("write_buffer"))
        .ok_or_else(|| format!("the library's socket buffers are not in {text}"))
}

async fn serve(addr: String, buffers: (usize, usize)) -> Result<(), String> {
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    eprintln!(
        "floor server on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let members: Members = Arc::default();
    let next_id = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _peer): (TcpStream, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: keep serving the
                // connections already open.
                eprintln!("accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id, members.clone(), buffers));
    }
}

async fn connection(stream: TcpStream, id: u64, members: Members, (read, write): (usize, usize)) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(read)
        .write_buffer_size(write)
        // A cap, not an allocation: room for a few of the largest frames.
        .max_write_buffer_size(write.max(MAX_FRAME) * 4)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, tx);
    let reply = Utf8Bytes::from_static(REPLY);
    loop {
        let sent = tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if text.contains("\"notify_all\"") {
                        fan_out(&members, &text);
                        Ok(())
                    } else {
                        ws.send(Message::Text(reply.clone())).await
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => Ok(()),
            },
            Some(frame) = rx.recv() => ws.send(Message::Text(frame)).await,
        };
        if sent.is_err() {
            break;
        }
    }
    members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

/// Queue one shared frame for every connection; a full queue drops the
/// frame for that connection (the harness would report it missing).
fn fan_out(members: &Members, frame: &Utf8Bytes) {
    let members = members.lock().unwrap_or_else(|e| e.into_inner());
    for tx in members.values() {
        let _ = tx.try_send(frame.clone());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_library_s_socket_buffers_are_found() {
        let (read, write) = super::library_socket_buffers().expect("socket buffers");
        assert!(read >= 256 && write >= 256, "{read} {write}");
    }
}
