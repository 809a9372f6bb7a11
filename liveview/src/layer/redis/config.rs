//! The layer's settings: the builder, and where it connects (one server or a
//! master named by Redis Sentinel), checked when the layer is built.

use std::fmt;
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use super::{DEFAULT_CAPACITY, DEFAULT_EXPIRY, DEFAULT_PREFIX, RedisLayer};
use crate::layer::LayerError;

/// Default port of a Redis Sentinel.
const SENTINEL_PORT: u16 = 26379;

/// Builds a [`RedisLayer`]; made by [`RedisLayer::builder`] (one server) or
/// [`RedisLayer::sentinel`] (a master found through Redis Sentinel).
#[derive(Clone)]
#[must_use = "call .build() to get the layer"]
pub struct RedisLayerBuilder {
    target: TargetSpec,
    username: Option<String>,
    password: Option<String>,
    db: Option<i64>,
    sentinel_password: Option<String>,
    prefix: String,
    received_queue: usize,
    pending_publishes: usize,
    expiry: Duration,
    tls_roots: Option<Vec<u8>>,
}

#[derive(Clone)]
pub(super) enum TargetSpec {
    Url(String),
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// Where the layer connects, resolved and validated by `build()`.
#[derive(Clone)]
pub(super) enum Target {
    Server(ConnectionInfo),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master_name: String,
        redis: RedisConnectionInfo,
    },
}

/// Everything `build()` checked, for the layer to start from.
pub(super) struct Settings {
    pub target: Target,
    pub prefix: String,
    pub received_queue: usize,
    pub pending_publishes: usize,
    pub expiry: Duration,
    /// Certificates (PEM) trusted for `rediss://`, besides the system's.
    pub tls_roots: Option<Vec<u8>>,
}

/// Shows addresses only, never credentials.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Server(info) => write!(
                f,
                "Server({}, db {})",
                info.addr(),
                info.redis_settings().db()
            ),
            Target::Sentinel {
                sentinels,
                master_name,
                redis,
            } => {
                let sentinels: Vec<String> =
                    sentinels.iter().map(|s| s.addr().to_string()).collect();
                write!(
                    f,
                    "Sentinel({sentinels:?}, master {master_name:?}, db {})",
                    redis.db()
                )
            }
        }
    }
}

impl RedisLayerBuilder {
    pub(super) fn new(target: TargetSpec) -> Self {
        Self {
            target,
            username: None,
            password: None,
            db: None,
            sentinel_password: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            received_queue: DEFAULT_CAPACITY,
            pending_publishes: DEFAULT_CAPACITY,
            expiry: DEFAULT_EXPIRY,
            tls_roots: None,
        }
    }

    /// Trust the certificate authorities in `pem` (one or more PEM
    /// certificates) for a `rediss://` server, instead of the system's:
    /// for a Redis with a private CA or a self-signed certificate.
    /// Certificate checks are never turned off: a `#insecure` URL is
    /// refused.
    ///
    /// ```no_run
    /// let ca = std::fs::read("redis-ca.pem")?;
    /// let layer = liveview::layer::RedisLayer::builder("rediss://redis.internal:6380")
    ///     .tls_root_certificates(ca)
    ///     .build()?;
    /// # drop(layer);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots = Some(pem.into());
        self
    }

    /// Prefix of the Redis channel and key names (default `liveview:`), so
    /// that several applications can share one Redis: only processes with
    /// the same prefix see each other's frames, logs and presence.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many frames received from Redis may wait for local delivery
    /// (default 1024, in all and in each group): more are dropped and counted
    /// ([`RedisLayer::dropped`]).
    pub fn received_queue(mut self, frames: usize) -> Self {
        self.received_queue = frames;
        self
    }

    /// How many publishes may wait for Redis at once (default 1024): one
    /// more fails at once instead of queueing.
    pub fn pending_publishes(mut self, publishes: usize) -> Self {
        self.pending_publishes = publishes;
        self
    }

    /// Frames received more than `expiry` after they were published are
    /// dropped and counted ([`RedisLayer::expired`]) instead of delivered
    /// (default 60 s). The age is measured with the clocks of the two
    /// processes, so keep them synchronised.
    pub fn expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry;
        self
    }

    /// Password of the Redis server (overrides one in the URL).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// User name of the Redis server, for ACLs (overrides one in the URL).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Database number (overrides one in the URL). Pub/sub channels are
    /// shared by all databases of a server, so use [`prefix`](Self::prefix),
    /// not the database, to separate applications.
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }

    /// Password of the sentinels themselves, when they require one (Sentinel
    /// only; a `redis://:password@host:port` sentinel address works too).
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }

    /// Checks the settings and makes the layer; nothing is connected yet.
    ///
    /// # Errors
    ///
    /// When the URL or a sentinel address does not parse, or a setting is
    /// out of range (a queue of 0, zero expiry, glob characters in the
    /// prefix).
    pub fn build(self) -> Result<RedisLayer, LayerError> {
        if self.received_queue == 0 || self.pending_publishes == 0 {
            return Err(LayerError::new(
                "redis: the received queue and the pending publishes must be at least 1",
            ));
        }
        if self.expiry.is_zero() {
            return Err(LayerError::new("redis: expiry must be longer than zero"));
        }
        if self.prefix.contains(['*', '?', '[', ']']) {
            // Would turn the PUBSUB CHANNELS pattern used for inspection into
            // something else; also almost certainly a mistake.
            return Err(LayerError::new(
                "redis: the prefix must not contain glob characters (*, ?, [, ])",
            ));
        }
        let target = match self.target {
            TargetSpec::Url(ref url) => {
                let info = parse_url(url)?;
                let redis = apply_credentials(
                    info.redis_settings().clone(),
                    self.username.as_ref(),
                    self.password.as_ref(),
                    self.db,
                );
                Target::Server(info.set_redis_settings(redis))
            }
            TargetSpec::Sentinel {
                ref sentinels,
                ref master_name,
            } => {
                if sentinels.is_empty() {
                    return Err(LayerError::new("redis: no sentinel address given"));
                }
                if master_name.is_empty() {
                    return Err(LayerError::new("redis: the Sentinel master name is empty"));
                }
                let sentinels = sentinels
                    .iter()
                    .map(|address| parse_sentinel(address, self.sentinel_password.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?;
                let redis = apply_credentials(
                    RedisConnectionInfo::default(),
                    self.username.as_ref(),
                    self.password.as_ref(),
                    self.db,
                );
                let target = Target::Sentinel {
                    sentinels,
                    master_name: master_name.clone(),
                    redis,
                };
                // Validate now rather than in the background task.
                sentinel_client(&target)?;
                target
            }
        };
        Ok(RedisLayer::new(Settings {
            target,
            prefix: self.prefix,
            received_queue: self.received_queue,
            pending_publishes: self.pending_publishes,
            expiry: self.expiry,
            tls_roots: self.tls_roots,
        }))
    }
}

impl fmt::Debug for RedisLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            TargetSpec::Url(url) => match parse_url(url) {
                Ok(info) => info.addr().to_string(),
                Err(_) => "<invalid URL>".to_owned(),
            },
            TargetSpec::Sentinel {
                sentinels,
                master_name,
            } => format!("sentinels {sentinels:?}, master {master_name:?}"),
        };
        f.debug_struct("RedisLayerBuilder")
            .field("target", &target)
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("received_queue", &self.received_queue)
            .field("pending_publishes", &self.pending_publishes)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

fn parse_url(url: &str) -> Result<ConnectionInfo, LayerError> {
    if url.contains('#') {
        // redis-rs reads `#insecure` as "skip certificate checks"; the
        // feature that honours it is not enabled, and a fragment has no
        // other use: refuse it outright rather than connect in some other way.
        return Err(LayerError::new(
            "redis: a URL fragment (such as #insecure) is not accepted: certificate \
             checks stay on; trust a private CA with `tls_root_certificates`",
        ));
    }
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => {}
        "rediss" | "valkeys" => {
            if cfg!(not(feature = "redis-tls")) {
                return Err(LayerError::new(
                    "redis: a rediss:// URL needs the `redis-tls` cargo feature of liveview",
                ));
            }
        }
        _ => {
            return Err(LayerError::new(
                "redis: the URL must start with redis:// or rediss://",
            ));
        }
    }
    // redis-rs's parse errors never quote the URL, which may hold a password.
    url.into_connection_info()
        .map_err(|err| LayerError::with_source("redis: invalid URL", err))
}

fn parse_sentinel(address: &str, password: Option<&String>) -> Result<ConnectionInfo, LayerError> {
    let address = address.trim();
    let info = if address.contains("://") {
        parse_url(address)?
    } else {
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                let port = port.parse::<u16>().map_err(|_| {
                    LayerError::new(format!("redis: invalid sentinel address {address:?}"))
                })?;
                (host, port)
            }
            _ => (address, SENTINEL_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(LayerError::new(format!(
                "redis: invalid sentinel address {address:?}"
            )));
        }
        (host.to_owned(), port)
            .into_connection_info()
            .map_err(|err| LayerError::with_source("redis: invalid sentinel address", err))?
    };
    Ok(match password {
        Some(password) => {
            let redis = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(redis)
        }
        None => info,
    })
}

fn apply_credentials(
    mut redis: RedisConnectionInfo,
    username: Option<&String>,
    password: Option<&String>,
    db: Option<i64>,
) -> RedisConnectionInfo {
    if let Some(username) = username {
        redis = redis.set_username(username);
    }
    if let Some(password) = password {
        redis = redis.set_password(password);
    }
    if let Some(db) = db {
        redis = redis.set_db(db);
    }
    redis
}

pub(super) fn sentinel_client(target: &Target) -> Result<SentinelClient, LayerError> {
    let Target::Sentinel {
        sentinels,
        master_name,
        redis,
    } = target
    else {
        return Err(LayerError::new("redis: not a Sentinel configuration"));
    };
    let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis.clone());
    SentinelClient::build(
        sentinels.clone(),
        master_name.clone(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|err| LayerError::with_source("redis: invalid Sentinel configuration", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(layer: &RedisLayer) -> &ConnectionInfo {
        match &layer.inner.target {
            Target::Server(info) => info,
            Target::Sentinel { .. } => panic!("not a server target"),
        }
    }

    #[test]
    fn url_settings_and_overrides() {
        let layer = RedisLayer::from_url("redis://:s3cret@10.0.0.5:6380/3").unwrap();
        let info = server(&layer);
        assert_eq!(info.addr().to_string(), "10.0.0.5:6380");
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(layer.prefix(), DEFAULT_PREFIX);
        assert_eq!(layer.inner.received_queue, DEFAULT_CAPACITY);
        assert_eq!(layer.inner.max_pending_publishes, DEFAULT_CAPACITY);
        assert_eq!(layer.inner.expiry, DEFAULT_EXPIRY);

        let layer = RedisLayer::builder("redis://:s3cret@10.0.0.5:6380/3")
            .password("other")
            .username("app")
            .db(7)
            .prefix("shop:")
            .received_queue(10)
            .pending_publishes(11)
            .expiry(Duration::from_secs(2))
            .build()
            .unwrap();
        let info = server(&layer);
        assert_eq!(info.redis_settings().password(), Some("other"));
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(info.redis_settings().db(), 7);
        assert_eq!(layer.prefix(), "shop:");
        assert_eq!(layer.inner.received_queue, 10);
        assert_eq!(layer.inner.max_pending_publishes, 11);
        assert_eq!(layer.inner.expiry, Duration::from_secs(2));
    }

    #[test]
    fn bad_settings_are_refused() {
        for url in [
            "",
            "127.0.0.1:6379",
            "http://127.0.0.1",
            "redis://",
            "redis://h/notadb",
        ] {
            assert!(RedisLayer::from_url(url).is_err(), "{url:?} accepted");
        }
        for url in [
            "rediss://h/#insecure",
            "redis://h#insecure",
            "rediss://h:6380/0#x",
        ] {
            let err = RedisLayer::from_url(url).unwrap_err().to_string();
            assert!(err.contains("certificate checks stay on"), "{url:?}: {err}");
        }
        #[cfg(not(feature = "redis-tls"))]
        assert!(
            RedisLayer::from_url("rediss://h")
                .unwrap_err()
                .to_string()
                .contains("redis-tls")
        );
        assert!(
            RedisLayer::builder("redis://h")
                .received_queue(0)
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::builder("redis://h")
                .pending_publishes(0)
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::builder("redis://h")
                .expiry(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::builder("redis://h")
                .prefix("a*")
                .build()
                .is_err()
        );
        assert!(
            RedisLayer::sentinel(Vec::<String>::new(), "m")
                .build()
                .is_err()
        );
        assert!(RedisLayer::sentinel(["h:1"], "").build().is_err());
        assert!(RedisLayer::sentinel(["h:notaport"], "m").build().is_err());
    }

    #[test]
    fn credentials_stay_out_of_debug_and_errors() {
        let layer = RedisLayer::from_url("redis://user:hunter2@h:1/2").unwrap();
        let shown = format!("{layer:?}");
        assert!(shown.contains("h:1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let builder = RedisLayer::builder("redis://:hunter2@h").password("hunter3");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        let sentinel = RedisLayer::sentinel(["redis://:hunter2@s:1"], "m")
            .password("hunter3")
            .build()
            .unwrap();
        let shown = format!("{sentinel:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        let err = RedisLayer::from_url("redis://:hunter2@h/x").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[test]
    fn sentinel_addresses() {
        let parse = |a: &str| parse_sentinel(a, None).unwrap();
        assert_eq!(parse("s1:26380").addr().to_string(), "s1:26380");
        assert_eq!(parse("s1").addr().to_string(), "s1:26379");
        assert_eq!(parse("[::1]:5000").addr().to_string(), "::1:5000");
        let with_url = parse("redis://:pw@s2:1234");
        assert_eq!(with_url.addr().to_string(), "s2:1234");
        assert_eq!(with_url.redis_settings().password(), Some("pw"));
        let pw = "sentinel-pw".to_owned();
        let with_password = parse_sentinel("s3", Some(&pw)).unwrap();
        assert_eq!(
            with_password.redis_settings().password(),
            Some("sentinel-pw")
        );

        let layer = RedisLayer::sentinel(vec!["a:1".to_owned(), "b:2".to_owned()], "mymaster")
            .password("pw")
            .db(4)
            .build()
            .unwrap();
        let Target::Sentinel {
            sentinels,
            master_name,
            redis,
        } = &layer.inner.target
        else {
            panic!("not a sentinel target");
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(master_name, "mymaster");
        assert_eq!(redis.password(), Some("pw"));
        assert_eq!(redis.db(), 4);
    }
}
