//! Rate limits and connection caps: token buckets per connection and per
//! client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::metrics::Metrics;

/// Largest frame the server sends by default: 256 KiB.
///
/// A frame over the outgoing limit is refused where it is made (an error
/// to the handler, a warning in the log, a count in
/// `liveview_frames_too_large_total`), never queued, delivered or kept
/// for replay: a frame a client's socket cannot take would otherwise end
/// the connection of every receiver.
pub(crate) const DEFAULT_MAX_OUTGOING_FRAME: usize = 256 * 1024;

/// Room in the socket's write buffer besides one frame of the outgoing
/// limit: the part of a previous frame still buffered (at most the write
/// buffer's size), the `seq`/`group` keys a numbered frame gains, and a
/// Pong or Close frame.
const WRITE_BUFFER_SLACK: usize = 4 * 1024;

/// The most the socket's write buffer must hold so that any frame the
/// server accepted to send fits: a smaller bound makes tungstenite fail
/// the write and drop the connection.
pub(crate) fn max_write_buffer(write_buffer: usize, max_outgoing: usize) -> usize {
    write_buffer + max_outgoing + WRITE_BUFFER_SLACK
}

/// `Ok` when a frame of `len` bytes may be sent; otherwise the refusal is
/// logged and counted.
#[inline]
pub(crate) fn check_outgoing(len: usize, max: usize, metrics: &Metrics) -> Result<(), ()> {
    if len <= max {
        return Ok(());
    }
    refuse_outgoing(len, max, metrics)
}

/// A frame of `len` bytes is over the outgoing limit `max`: count and log
/// the refusal.
#[cold]
#[inline(never)]
fn refuse_outgoing(len: usize, max: usize, metrics: &Metrics) -> Result<(), ()> {
    metrics.frames_too_large.add(1);
    tracing::warn!(target: "liveview", size = len, limit = max, "refused to send a frame over the outgoing limit");
    Err(())
}

/// A rate: `per_second` calls on average, bursts of up to `burst`.
///
/// ```
/// let rate = liveview::RateLimit::new(20.0, 60);
/// assert_eq!((rate.per_second(), rate.burst()), (20.0, 60));
/// // Clamped: no negative rate, a burst of at least one call.
/// let rate = liveview::RateLimit::new(-1.0, 0);
/// assert_eq!((rate.per_second(), rate.burst()), (0.0, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: u32,
}

impl RateLimit {
    /// A rate of `per_second` (at least 0; not a number counts as 0) with
    /// bursts of `burst` (at least 1).
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second: per_second.max(0.0),
            burst: burst.max(1),
        }
    }

    /// Average calls per second allowed.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Calls allowed at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The limits that protect a server from one client, on by default.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Calls of one connection.
    pub per_connection: Option<RateLimit>,
    /// Calls of all connections of one client address together.
    pub per_address: Option<RateLimit>,
    /// Open connections of one client address.
    pub connections_per_address: Option<usize>,
    /// Refusals in a row after which the connection is closed with 1008.
    pub strikes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_connection: Some(RateLimit::new(20.0, 60)),
            per_address: Some(RateLimit::new(200.0, 400)),
            connections_per_address: Some(256),
            strikes: 20,
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(limit: &RateLimit) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            last: Instant::now(),
        }
    }

    /// Take one token if there is one.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, limit: &RateLimit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * limit.per_second >= f64::from(limit.burst)
    }
}

/// The bytes of group frames one connection's calls may publish: a token
/// bucket of `per_second` bytes a second, holding at most `burst` (at
/// least one frame of the outgoing limit, so a frame the limit allows is
/// never refused for its size alone).
#[derive(Debug)]
pub(crate) struct ByteBudget {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl ByteBudget {
    pub(crate) fn new(per_second: u64, max_frame: usize) -> Self {
        let per_second = per_second as f64;
        let burst = per_second.max(max_frame as f64);
        Self {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Spend `bytes` if the budget has them.
    pub(crate) fn take(&self, bytes: usize, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *state;
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *last = now;
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        let bytes = bytes as f64;
        if *tokens >= bytes {
            *tokens -= bytes;
            true
        } else {
            false
        }
    }
}

/// What limits count per: an IPv4 address (also one mapped into IPv6), or
/// the /64 network of an IPv6 address. One IPv6 subscriber usually gets a
/// whole /64 and can pick any of its 2^64 addresses per connection.
///
/// ```text
/// 2001:db8:1:2:aaaa::1 and 2001:db8:1:2:bbbb::9 -> 2001:db8:1:2::
/// ::ffff:192.0.2.7 -> 192.0.2.7
/// ```
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Per-address state: open connections and the shared call bucket.
#[derive(Debug)]
struct Address {
    connections: usize,
    bucket: Option<Bucket>,
}

/// Every client address with open connections or recent calls. Entries go
/// away when an address has no connection and a full bucket, so the table
/// cannot grow with addresses that are gone.
#[derive(Debug, Default)]
pub(crate) struct Addresses {
    table: Mutex<HashMap<IpAddr, Address>>,
    closes: std::sync::atomic::AtomicU32,
}

/// Holds one connection slot of an address; frees it when dropped, also
/// when an upgrade never completes.
#[derive(Debug)]
pub(crate) struct Slot {
    addresses: std::sync::Arc<Addresses>,
    ip: IpAddr,
    limit: Option<RateLimit>,
}

impl Addresses {
    /// Count a new connection of `ip`, unless it already has `cap`.
    pub(crate) fn open(&self, ip: IpAddr, cap: Option<usize>) -> Option<()> {
        let ip = address_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry(ip).or_insert(Address {
            connections: 0,
            bucket: None,
        });
        if cap.is_some_and(|cap| entry.connections >= cap) {
            return None;
        }
        entry.connections += 1;
        Some(())
    }

    /// A slot guard for a connection counted by [`open`](Self::open).
    pub(crate) fn slot(self: &std::sync::Arc<Self>, ip: IpAddr, limit: Option<RateLimit>) -> Slot {
        Slot {
            addresses: self.clone(),
            ip: address_key(ip),
            limit,
        }
    }

    /// Take a call token for `ip`.
    pub(crate) fn take(&self, ip: IpAddr, limit: &RateLimit) -> bool {
        let ip = address_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry(ip).or_insert(Address {
            connections: 0,
            bucket: None,
        });
        entry
            .bucket
            .get_or_insert_with(|| Bucket::new(limit))
            .take(limit, Instant::now())
    }

    fn close(&self, ip: IpAddr, limit: Option<&RateLimit>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // An address with nothing open and a refilled bucket carries no
        // information any more.
        let forgettable = |a: &Address| {
            a.connections == 0
                && match (&a.bucket, limit) {
                    (Some(bucket), Some(limit)) => bucket.is_full(limit, now),
                    _ => true,
                }
        };
        if let Some(entry) = table.get_mut(&ip) {
            entry.connections = entry.connections.saturating_sub(1);
            if forgettable(entry) {
                table.remove(&ip);
            }
        }
        // Now and then, sweep addresses whose buckets refilled since.
        let closes = self
            .closes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if closes % 256 == 255 {
            table.retain(|_, a| !forgettable(a));
        }
    }

    /// Addresses tracked (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.addresses.close(self.ip, self.limit.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_budget_refuses_what_is_over_and_refills_with_time() {
        let budget = ByteBudget::new(1000, 400);
        let start = Instant::now();
        assert!(budget.take(600, start));
        assert!(budget.take(400, start));
        assert!(!budget.take(1, start));
        let later = start + std::time::Duration::from_millis(500);
        assert!(!budget.take(501, later));
        assert!(budget.take(500, later));
        // A small rate still lets one frame of the outgoing limit through.
        let small = ByteBudget::new(10, 4096);
        assert!(small.take(4096, start));
        assert!(!small.take(4096, start));
    }
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limit = RateLimit::new(10.0, 3);
        let mut bucket = Bucket::new(&limit);
        let start = Instant::now();
        assert!(bucket.take(&limit, start));
        assert!(bucket.take(&limit, start));
        assert!(bucket.take(&limit, start));
        assert!(!bucket.take(&limit, start));
        assert!(!bucket.take(&limit, start + Duration::from_millis(50)));
        assert!(bucket.take(&limit, start + Duration::from_millis(160)));
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_their_limits() {
        let addresses = std::sync::Arc::new(Addresses::default());
        let cap = Some(2);
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb:cccc:dddd:9".parse().unwrap();
        let three: IpAddr = "2001:db8:1:2::3".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(addresses.open(one, cap).is_some());
        let first = addresses.slot(one, None);
        assert!(addresses.open(two, cap).is_some());
        let second = addresses.slot(two, None);
        assert!(
            addresses.open(three, cap).is_none(),
            "a third address of the same /64"
        );
        assert!(addresses.open(elsewhere, cap).is_some(), "another /64");
        let other = addresses.slot(elsewhere, None);
        drop((first, second, other));
        assert_eq!(addresses.len(), 0);

        let limit = RateLimit::new(0.0, 2);
        assert!(addresses.take(one, &limit));
        assert!(addresses.take(two, &limit));
        assert!(!addresses.take(three, &limit), "the /64 shares one bucket");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connection_caps_count_and_release_slots() {
        let addresses = std::sync::Arc::new(Addresses::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(addresses.open(ip, Some(2)).is_some());
        let first = addresses.slot(ip, None);
        assert!(addresses.open(ip, Some(2)).is_some());
        let second = addresses.slot(ip, None);
        assert!(addresses.open(ip, Some(2)).is_none());
        drop(first);
        assert!(addresses.open(ip, Some(2)).is_some());
        let third = addresses.slot(ip, None);
        drop((second, third));
        assert_eq!(
            addresses.len(),
            0,
            "an address with nothing open is forgotten"
        );
    }
}
