//! The WebSocket handshake, taken by hand rather than through axum's
//! `WebSocketUpgrade`: the same checks and refusals, but the upgraded
//! connection is ours to unwrap. When the request came through
//! [`serve`](crate::serve), the socket runs on the TCP stream itself, not
//! through hyper's boxed `Upgraded` and its layers on every read and
//! write; otherwise (an app served by `axum::serve`, behind TLS, another
//! transport) it runs on `Upgraded`.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::rejection::{
    ConnectionNotUpgradable, InvalidConnectionHeader, InvalidUpgradeHeader,
    InvalidWebSocketVersionHeader, MethodNotConnect, MethodNotGet, WebSocketKeyHeaderMissing,
    WebSocketUpgradeRejection,
};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::socket::Socket;
use crate::serve::Counted;

/// A request to open a WebSocket that passed the handshake's checks: the
/// answer it gets and the upgrade to wait for.
pub(crate) struct Upgrade {
    /// `Sec-WebSocket-Key`, on HTTP/1.1 (an HTTP/2 extended CONNECT has
    /// none).
    key: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade").field("key", &self.key).finish()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::check(parts)
    }
}

impl Upgrade {
    /// The checks (and refusals, with their statuses and texts) of axum's
    /// `WebSocketUpgrade`.
    fn check(parts: &mut Parts) -> Result<Self, WebSocketUpgradeRejection> {
        let headers = &parts.headers;
        let key = if parts.version <= Version::HTTP_11 {
            if parts.method != Method::GET {
                return Err(MethodNotGet::default().into());
            }
            if !header_contains(headers, header::CONNECTION, "upgrade") {
                return Err(InvalidConnectionHeader::default().into());
            }
            if !header_eq(headers, header::UPGRADE, "websocket") {
                return Err(InvalidUpgradeHeader::default().into());
            }
            match headers.get(header::SEC_WEBSOCKET_KEY) {
                Some(key) => Some(key.clone()),
                None => return Err(WebSocketKeyHeaderMissing::default().into()),
            }
        } else {
            if parts.method != Method::CONNECT {
                return Err(MethodNotConnect::default().into());
            }
            None
        };
        if !header_eq(headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(InvalidWebSocketVersionHeader::default().into());
        }
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(ConnectionNotUpgradable::default().into());
        };
        Ok(Self { key, on_upgrade })
    }

    /// The answer that accepts the upgrade, and the socket once the
    /// connection is upgraded: `open` gets it on whichever stream it runs
    /// on (and is not called if the connection is lost before).
    pub(crate) fn accept<F>(self, config: WebSocketConfig, open: F) -> Response
    where
        F: Open,
    {
        let Self { key, on_upgrade } = self;
        // A task of its own to wait for the upgrade, which hands the socket
        // to the connection's task and ends: the connection's task carries
        // nothing of how it was opened.
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            match upgraded.downcast::<TokioIo<Raw>>() {
                Ok(parts) => {
                    let tcp = parts.io.into_inner();
                    // A client may not send before it has the answer, but
                    // whatever hyper read past the request is the start
                    // of the first frame. Taken out of hyper's read
                    // buffer, whose memory is given back at once rather
                    // than held for the life of the socket.
                    let read: Option<Vec<u8>> =
                        (!parts.read_buf.is_empty()).then(|| parts.read_buf.to_vec());
                    drop(parts.read_buf);
                    let socket = Socket::new(tcp, read, config);
                    tokio::spawn(open.open(socket));
                }
                Err(upgraded) => {
                    let stream: Wrapped = TokioIo::new(upgraded);
                    let socket = Socket::new(stream, None, config);
                    tokio::spawn(open.open(socket));
                }
            }
        });
        let mut response = Response::new(Body::empty());
        // Without a key, an HTTP/2 extended CONNECT: a 200 accepts it.
        if let Some(key) = key {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
        }
        response
    }
}

/// The stream a socket runs on when its connection came through
/// [`serve`](crate::serve).
pub(crate) type Raw = Counted;

/// The stream a socket runs on otherwise.
pub(crate) type Wrapped = TokioIo<Upgraded>;

/// What to do with an upgraded socket, on either stream: two methods, so
/// that each runs the connection monomorphic.
pub(crate) trait Open: Send + 'static {
    /// The socket, on the TCP stream of [`serve`](crate::serve) ([`Raw`])
    /// or on hyper's `Upgraded` ([`Wrapped`]).
    fn open<S: Stream>(self, socket: Socket<S>) -> impl Future<Output = ()> + Send + 'static;
}

/// A stream a socket can run on.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

fn header_eq(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers
        .get(&key)
        .is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_contains(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers
        .get(&key)
        .and_then(|header| std::str::from_utf8(header.as_bytes()).ok())
        .is_some_and(|header| header.to_ascii_lowercase().contains(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(change: impl FnOnce(&mut Parts)) -> Parts {
        let mut parts = http::Request::get("/ws/liveview/a/")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        change(&mut parts);
        parts
    }

    fn refused(change: impl FnOnce(&mut Parts)) -> (u16, String) {
        let rejection = Upgrade::check(&mut parts(change)).unwrap_err();
        (rejection.status().as_u16(), rejection.body_text())
    }

    fn set(parts: &mut Parts, name: HeaderName, value: &'static str) {
        parts.headers.insert(name, HeaderValue::from_static(value));
    }

    #[test]
    fn the_checks_refuse_as_axum_does() {
        let refusal = |status: u16, text: &str| (status, text.to_owned());
        assert_eq!(
            refused(|p| p.method = Method::POST),
            refusal(405, "Request method must be `GET`")
        );
        assert_eq!(
            refused(|p| set(p, header::CONNECTION, "keep-alive")),
            refusal(400, "Connection header did not include 'upgrade'")
        );
        assert_eq!(
            refused(|p| set(p, header::UPGRADE, "h2c")),
            refusal(400, "`Upgrade` header did not include 'websocket'")
        );
        assert_eq!(
            refused(|p| {
                p.headers.remove(header::SEC_WEBSOCKET_KEY);
            }),
            refusal(400, "`Sec-WebSocket-Key` header missing")
        );
        assert_eq!(
            refused(|p| set(p, header::SEC_WEBSOCKET_VERSION, "8")),
            refusal(400, "`Sec-WebSocket-Version` header did not include '13'")
        );
        assert_eq!(
            refused(|p| p.version = Version::HTTP_2),
            refusal(405, "Request method must be `CONNECT`")
        );
        // Every header right, but no connection to upgrade (hyper gives
        // one to each request it serves).
        assert_eq!(
            refused(|_| {}),
            refusal(
                426,
                "WebSocket request couldn't be upgraded since no upgrade state was present"
            )
        );
    }
}
