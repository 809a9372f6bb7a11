//! Origins as the origin check compares them: scheme, host and port.

/// The scheme, host and port of an origin (`http://localhost:8000`), with
/// the scheme and host in lower case and the scheme's default port filled
/// in.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        // An origin has no user, path, query or fragment.
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]:8000`, `host:8000`; not the colons inside `[::1]`.
            Some((host, port)) if !port.contains(']') => (host, Some(port.parse().ok()?)),
            _ => (rest, None),
        };
        let port = match (port, scheme.as_str()) {
            (Some(port), _) => port,
            (None, "http" | "ws") => 80,
            (None, "https" | "wss") => 443,
            (None, _) => return None,
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a page at this origin comes from a plain-HTTP listener at
    /// `addr`: same port, `http`, and the listener's own IP (or
    /// `localhost` for a loopback listener, or any IP literal for one on
    /// all interfaces: a rebinding page has a name, not an IP).
    pub(super) fn is_served_at(&self, addr: std::net::SocketAddr) -> bool {
        if self.scheme != "http" || self.port != addr.port() {
            return false;
        }
        let literal = self.host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => addr.ip().is_unspecified() || ip == addr.ip(),
            Err(_) => self.host == "localhost" && addr.ip().is_loopback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let parse = |s| Origin::parse(s);
        assert_eq!(
            parse("https://App.Example"),
            parse("https://app.example:443")
        );
        assert_eq!(parse("http://[::1]:8000").unwrap().host, "[::1]");
        assert_ne!(parse("http://app.example"), parse("https://app.example"));
        assert_ne!(
            parse("http://app.example:8080"),
            parse("http://app.example")
        );
        for bad in [
            "null",
            "app.example",
            "http://",
            "http://a/b",
            "http://u@a",
            "http://a:x",
            "ftp://a",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let served = "127.0.0.1:8712".parse().unwrap();
        assert!(parse("http://127.0.0.1:8712").unwrap().is_served_at(served));
        assert!(parse("http://localhost:8712").unwrap().is_served_at(served));
        assert!(!parse("ftp://127.0.0.1:8712").is_some_and(|o| o.is_served_at(served)));
        assert!(
            !parse("https://127.0.0.1:8712")
                .unwrap()
                .is_served_at(served)
        );
        assert!(!parse("http://127.0.0.1:8713").unwrap().is_served_at(served));
        assert!(
            !parse("http://evil.example:8712")
                .unwrap()
                .is_served_at(served)
        );
        let any = "0.0.0.0:80".parse().unwrap();
        assert!(parse("http://192.0.2.1").unwrap().is_served_at(any));
        assert!(!parse("http://evil.example").unwrap().is_served_at(any));
    }
}
