//! The scope of a connection: what the upgrade request said, and who the
//! authenticator says the user is.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A copy of `headers` whose values own their bytes.
///
/// hyper parses a request without copying it: header values and the URI are
/// views into the connection's HTTP read buffer (8 to 16 KiB), which stays
/// allocated as long as any of them does. Kept for a WebSocket's lifetime,
/// they would hold that buffer per idle connection; copies of the few bytes
/// let it go at the upgrade.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}

/// A copy of `uri` that owns its bytes (see [`owned_headers`]).
fn owned_uri(uri: Uri) -> Uri {
    uri.to_string().parse().unwrap_or(uri)
}

/// A signed-in user, as an [`Authenticator`](crate::Authenticator) found it.
///
/// ```
/// let user = liveview::User::new("42", "Ada").staff(true);
/// assert_eq!(user.id, "42");
/// assert!(user.is_staff);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// A stable identifier.
    pub id: String,
    /// A name to show.
    pub name: String,
    /// Whether the user may do staff-only things.
    #[serde(default)]
    pub is_staff: bool,
    /// Anything else the application wants to carry.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl User {
    /// A user with an id and a display name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            ..Self::default()
        }
    }

    /// Mark the user as staff (or not).
    pub fn staff(mut self, is_staff: bool) -> Self {
        self.is_staff = is_staff;
        self
    }

    /// Attach an extra value.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// The upgrade request of a connection: headers, cookies, query, path, peer
/// address, and the user. The counterpart of Channels' `consumer.scope`.
///
/// ```
/// let scope = liveview::Scope::builder()
///     .uri("/ws/liveview/lobby/?theme=dark")
///     .header("cookie", "session=abc; lang=en")
///     .build();
/// assert_eq!(scope.path(), "/ws/liveview/lobby/");
/// assert_eq!(scope.query("theme").as_deref(), Some("dark"));
/// assert_eq!(scope.cookie("lang").as_deref(), Some("en"));
/// assert!(scope.user().is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Scope {
    headers: HeaderMap,
    uri: Uri,
    peer: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
    user: Option<User>,
}

impl Scope {
    /// A builder, for tests and for custom transports.
    pub fn builder() -> ScopeBuilder {
        ScopeBuilder::default()
    }

    /// The scope of an upgrade request. It lives as long as the
    /// connection, so it keeps its own copy of the headers and URI (see
    /// [`owned_headers`]).
    pub(crate) fn new(headers: HeaderMap, uri: Uri, peer: Option<SocketAddr>) -> Self {
        Self {
            headers: owned_headers(&headers),
            uri: owned_uri(uri),
            peer,
            client_ip: peer.map(|p| p.ip()),
            user: None,
        }
    }

    /// Resolve the client's address through `X-Forwarded-For` when the
    /// peer is a trusted proxy.
    pub(crate) fn trust_proxies(&mut self, proxies: &[IpAddr]) {
        let Some(peer) = self.peer else { return };
        if !proxies.contains(&peer.ip()) {
            return;
        }
        let forwarded = self
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        if let Some(client) = forwarded.into_iter().rev().find(|ip| !proxies.contains(ip)) {
            self.client_ip = Some(client);
        }
    }

    pub(crate) fn set_user(&mut self, user: Option<User>) {
        self.user = user;
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text, when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().remove(name)
    }

    /// Every cookie sent with the upgrade request.
    pub fn cookies(&self) -> HashMap<String, String> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .map(|c| (c.name().to_owned(), c.value_trimmed().to_owned()))
            .collect()
    }

    /// The request path, e.g. `/ws/liveview/lobby/`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.uri.query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The client's socket address, when the server was started with
    /// connect info (`liveview::serve` does this).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The client's address: the peer's, or, behind a trusted proxy
    /// ([`LiveViewBuilder::trusted_proxies`](crate::LiveViewBuilder::trusted_proxies)),
    /// the one the proxy forwarded.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The user the authenticator returned, if any.
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }
}

/// Builds a [`Scope`] by hand.
#[derive(Debug, Default)]
pub struct ScopeBuilder {
    scope: Scope,
}

impl ScopeBuilder {
    /// Set the request URI (path and query).
    pub fn uri(mut self, uri: &str) -> Self {
        self.scope.uri = uri.parse().unwrap_or_default();
        self
    }

    /// Add a header; invalid names or values are skipped.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            self.scope.headers.append(name, value);
        }
        self
    }

    /// Set the peer address.
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.scope.peer = Some(addr);
        self.scope.client_ip = Some(addr.ip());
        self
    }

    /// Set the user.
    pub fn user(mut self, user: User) -> Self {
        self.scope.user = Some(user);
        self
    }

    /// The scope.
    pub fn build(self) -> Scope {
        self.scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_copies_keep_every_value_and_the_uri() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1"));
        headers.append("cookie", HeaderValue::from_static("b=2"));
        let mut secret = HeaderValue::from_static("Bearer x");
        secret.set_sensitive(true);
        headers.insert("authorization", secret);
        let uri: Uri = "/ws/liveview/lobby/?resume=3".parse().unwrap();
        let scope = Scope::new(headers.clone(), uri.clone(), None);
        assert_eq!(scope.headers(), &headers);
        assert!(scope.headers()["authorization"].is_sensitive());
        assert_eq!(scope.headers().get_all("cookie").iter().count(), 2);
        assert_eq!(scope.uri, uri);
        assert_eq!(scope.query("resume").as_deref(), Some("3"));
    }

    #[test]
    fn cookies_of_every_header_are_read_quotes_and_blanks_aside() {
        let mut headers = HeaderMap::new();
        headers.append(
            "cookie",
            HeaderValue::from_static(" a=1;; b=\"two\" ; c=x=y; junk"),
        );
        headers.append("cookie", HeaderValue::from_static("d=4"));
        let scope = Scope::new(headers, Uri::from_static("/"), None);
        let cookies = scope.cookies();
        assert_eq!(cookies.len(), 4, "{cookies:?}");
        assert_eq!(scope.cookie("a").as_deref(), Some("1"));
        assert_eq!(scope.cookie("b").as_deref(), Some("two"));
        assert_eq!(scope.cookie("c").as_deref(), Some("x=y"));
        assert_eq!(scope.cookie("d").as_deref(), Some("4"));
        assert_eq!(scope.cookie("junk"), None);
    }
}
