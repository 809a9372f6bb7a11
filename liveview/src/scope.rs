//! The scope of a connection: what the upgrade request said, and who the
//! authenticator says the user is.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The upgrade request's headers and URI, packed in one buffer: a line
/// per header value, `name:value\n` (`!name:value\n` for a sensitive one;
/// names in lower case, and no value holds a `\n`), then the URI.
///
/// A connection keeps its scope for its lifetime: one buffer of the
/// request's own bytes costs a fraction of a [`HeaderMap`] and a [`Uri`]
/// (a table, an entry and an allocation per value), which are only made,
/// once, if the application asks for them. It also owns its bytes: hyper
/// parses a request without copying it, and views into its read buffer
/// (8 to 16 KiB) would keep that buffer allocated.
#[derive(Clone, Default)]
struct Packed {
    bytes: Box<[u8]>,
    /// Where the URI starts.
    uri_at: usize,
}

impl Packed {
    fn new(headers: &HeaderMap, uri: &Uri) -> Self {
        let uri = uri.to_string();
        let size: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 3)
            .sum();
        let mut bytes = Vec::with_capacity(size + uri.len());
        for (name, value) in headers {
            if value.is_sensitive() {
                bytes.push(b'!');
            }
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.push(b':');
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(b'\n');
        }
        let uri_at = bytes.len();
        bytes.extend_from_slice(uri.as_bytes());
        Self {
            bytes: bytes.into_boxed_slice(),
            uri_at,
        }
    }

    /// Each header value: name, value, and whether it is sensitive.
    fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8], bool)> {
        self.bytes[..self.uri_at]
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| {
                let (sensitive, line) = match line.strip_prefix(b"!") {
                    Some(line) => (true, line),
                    None => (false, line),
                };
                let colon = line.iter().position(|b| *b == b':')?;
                Some((&line[..colon], &line[colon + 1..], sensitive))
            })
    }

    /// The values of header `name` that are text.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers()
            .filter(move |(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .filter_map(|(_, value, _)| text(value))
    }

    fn uri(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.uri_at..]).unwrap_or("/")
    }

    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value, sensitive) in self.headers() {
            if let (Ok(name), Ok(mut value)) = (
                http::HeaderName::from_bytes(name),
                HeaderValue::from_bytes(value),
            ) {
                value.set_sensitive(sensitive);
                map.append(name, value);
            }
        }
        map
    }
}

/// A header value as text, when it is visible ASCII (what
/// [`HeaderValue::to_str`] accepts).
fn text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|b| *b == b'\t' || (32..127).contains(b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
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
#[derive(Clone, Default)]
pub struct Scope {
    request: Packed,
    /// Made from `request` on the first call of [`headers`](Self::headers).
    headers: std::sync::OnceLock<Box<HeaderMap>>,
    /// Made from `request` on the first call of [`uri`](Self::uri).
    uri: std::sync::OnceLock<Box<Uri>>,
    peer: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
    user: Option<Box<User>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("headers", &self.request.header_map())
            .field("uri", &self.request.uri())
            .field("peer", &self.peer)
            .field("client_ip", &self.client_ip)
            .field("user", &self.user)
            .finish()
    }
}

impl Scope {
    /// A builder, for tests and for custom transports.
    pub fn builder() -> ScopeBuilder {
        ScopeBuilder::default()
    }

    /// The scope of an upgrade request. It lives as long as the
    /// connection, so it keeps its own copy of the headers and URI, packed
    /// (see [`Packed`]).
    pub(crate) fn new(headers: &HeaderMap, uri: &Uri, peer: Option<SocketAddr>) -> Self {
        Self {
            request: Packed::new(headers, uri),
            peer,
            client_ip: peer.map(|p| p.ip()),
            ..Self::default()
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
            .request
            .values("x-forwarded-for")
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        if let Some(client) = forwarded.into_iter().rev().find(|ip| !proxies.contains(ip)) {
            self.client_ip = Some(client);
        }
    }

    pub(crate) fn set_user(&mut self, user: Option<User>) {
        self.user = user.map(Box::new);
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
            .get_or_init(|| Box::new(self.request.header_map()))
    }

    /// One header as text, when present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request
            .headers()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, value, _)| text(value))
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().remove(name)
    }

    /// Every cookie sent with the upgrade request.
    pub fn cookies(&self) -> HashMap<String, String> {
        self.request
            .values("cookie")
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .map(|c| (c.name().to_owned(), c.value_trimmed().to_owned()))
            .collect()
    }

    /// The request path, e.g. `/ws/liveview/lobby/`.
    pub fn path(&self) -> &str {
        let uri = self.request.uri();
        // The origin form, as requests have it: the path up to the query.
        if uri.starts_with('/') {
            return uri.split(['?', '#']).next().unwrap_or(uri);
        }
        self.uri().path()
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        self.uri
            .get_or_init(|| Box::new(self.request.uri().parse().unwrap_or_default()))
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let uri = self.request.uri();
        let query = uri.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or(query);
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
        self.user.as_deref()
    }
}

/// Builds a [`Scope`] by hand.
#[derive(Debug, Default)]
pub struct ScopeBuilder {
    headers: HeaderMap,
    uri: Uri,
    peer: Option<SocketAddr>,
    user: Option<User>,
}

impl ScopeBuilder {
    /// Set the request URI (path and query).
    pub fn uri(mut self, uri: &str) -> Self {
        self.uri = uri.parse().unwrap_or_default();
        self
    }

    /// Add a header; invalid names or values are skipped.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            self.headers.append(name, value);
        }
        self
    }

    /// Set the peer address.
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer = Some(addr);
        self
    }

    /// Set the user.
    pub fn user(mut self, user: User) -> Self {
        self.user = Some(user);
        self
    }

    /// The scope.
    pub fn build(self) -> Scope {
        let mut scope = Scope::new(&self.headers, &self.uri, self.peer);
        scope.set_user(self.user);
        scope
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
        let scope = Scope::new(&headers, &uri, None);
        assert_eq!(scope.headers(), &headers);
        assert!(scope.headers()["authorization"].is_sensitive());
        assert_eq!(scope.headers().get_all("cookie").iter().count(), 2);
        assert_eq!(scope.header("Cookie"), Some("a=1"));
        assert_eq!(scope.cookie("b").as_deref(), Some("2"));
        assert_eq!(scope.uri(), &uri);
        assert_eq!(scope.path(), "/ws/liveview/lobby/");
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
        let scope = Scope::new(&headers, &Uri::from_static("/"), None);
        let cookies = scope.cookies();
        assert_eq!(cookies.len(), 4, "{cookies:?}");
        assert_eq!(scope.cookie("a").as_deref(), Some("1"));
        assert_eq!(scope.cookie("b").as_deref(), Some("two"));
        assert_eq!(scope.cookie("c").as_deref(), Some("x=y"));
        assert_eq!(scope.cookie("d").as_deref(), Some("4"));
        assert_eq!(scope.cookie("junk"), None);
    }
}
