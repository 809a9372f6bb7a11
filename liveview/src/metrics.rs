//! What the server does, counted twice over: each counter is kept by the
//! application (rendered in the Prometheus text format at the opt-in
//! `/metrics` route) and reported through the [`metrics`] facade to the
//! recorder the application installed, if any, so an application that
//! exports metrics already gets the library's in its own registry.
//!
//! Facade handles are registered on first use, so a recorder installed
//! before the server takes its first connection sees every series.

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Key, KeyName, Label, Metadata, SharedString, Unit};

/// Upper bounds of the handler duration buckets, in seconds.
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`BOUNDS`] in nanoseconds.
const BOUNDS_NANOS: [u64; BOUNDS.len()] = {
    let mut nanos = [0; BOUNDS.len()];
    let mut i = 0;
    while i < BOUNDS.len() {
        nanos[i] = (BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// The label for calls of names that are not registered: one series for
/// all of them, so garbage cannot create series.
const UNKNOWN: &str = "_unknown";

static METADATA: Metadata<'static> =
    Metadata::new("liveview", metrics::Level::INFO, Some(module_path!()));

/// A series' name, labels and help, and its facade handle once registered.
#[derive(Debug)]
struct Facade<H> {
    key: Key,
    help: &'static str,
    handle: OnceLock<H>,
}

impl<H> Facade<H> {
    fn new(name: &'static str, labels: Vec<Label>, help: &'static str) -> Self {
        Self {
            key: Key::from_parts(name, labels),
            help,
            handle: OnceLock::new(),
        }
    }

    /// The handle from the recorder installed now (a no-op one when there
    /// is none), registered and described the first time.
    fn get(
        &self,
        register: impl FnOnce(&dyn metrics::Recorder, &Key, KeyName, SharedString) -> H,
    ) -> &H {
        self.handle.get_or_init(|| {
            metrics::with_recorder(|recorder| {
                register(
                    recorder,
                    &self.key,
                    self.key.name_shared(),
                    SharedString::const_str(self.help),
                )
            })
        })
    }
}

/// A counter.
#[derive(Debug)]
pub(crate) struct Count {
    value: AtomicU64,
    facade: Facade<metrics::Counter>,
}

impl Count {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self::labelled(name, Vec::new(), help)
    }

    fn labelled(name: &'static str, labels: Vec<Label>, help: &'static str) -> Self {
        Self {
            value: AtomicU64::new(0),
            facade: Facade::new(name, labels, help),
        }
    }

    /// Count `n` more.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Relaxed);
        self.facade
            .get(|recorder, key, name, help| {
                recorder.describe_counter(name, None, help);
                recorder.register_counter(key, &METADATA)
            })
            .increment(n);
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

/// A gauge that goes up and down.
#[derive(Debug)]
pub(crate) struct Level {
    value: AtomicI64,
    facade: Facade<metrics::Gauge>,
}

impl Level {
    fn new(name: &'static str, help: &'static str) -> Self {
        Self::labelled(name, Vec::new(), help)
    }

    fn labelled(name: &'static str, labels: Vec<Label>, help: &'static str) -> Self {
        Self {
            value: AtomicI64::new(0),
            facade: Facade::new(name, labels, help),
        }
    }

    fn handle(&self) -> &metrics::Gauge {
        self.facade.get(|recorder, key, name, help| {
            recorder.describe_gauge(name, None, help);
            recorder.register_gauge(key, &METADATA)
        })
    }

    /// Move the level by `delta`.
    pub(crate) fn add(&self, delta: i64) {
        let now = self.value.fetch_add(delta, Relaxed) + delta;
        self.handle().set(now as f64);
    }

    /// Set the level.
    pub(crate) fn set(&self, value: i64) {
        self.value.store(value, Relaxed);
        self.handle().set(value as f64);
    }

    /// The level now.
    pub(crate) fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    facade: Facade<metrics::Histogram>,
}

impl Histogram {
    fn new(function: &'static str) -> Self {
        Self {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            facade: Facade::new(
                "liveview_handler_duration_seconds",
                vec![Label::new("function", function)],
                "Time handlers took.",
            ),
        }
    }

    fn observe(&self, elapsed: Duration) {
        // In whole nanoseconds: compared with integers, no float but the
        // one the facade takes.
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS_NANOS.iter().position(|b| nanos <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(nanos / 1_000, Relaxed);
        self.facade
            .get(|recorder, key, name, help| {
                recorder.describe_histogram(name, Some(Unit::Seconds), help);
                recorder.register_histogram(key, &METADATA)
            })
            .record(elapsed.as_secs_f64());
    }
}

/// How a connection's frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A WebSocket.
    WebSocket = 0,
    /// Server-Sent Events down, POST requests up.
    Sse = 1,
}

impl Transport {
    pub(crate) const ALL: [Transport; 2] = [Transport::WebSocket, Transport::Sse];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        }
    }
}

/// The connections of one transport: open now, and accepted in all.
#[derive(Debug)]
pub(crate) struct TransportStats {
    pub open: Level,
    pub total: Count,
}

impl TransportStats {
    fn new(transport: Transport) -> Self {
        let label = || vec![Label::new("transport", transport.as_str())];
        Self {
            open: Level::labelled(
                "liveview_transport_connections",
                label(),
                "Open connections by transport.",
            ),
            total: Count::labelled(
                "liveview_transport_connections_total",
                label(),
                "Connections accepted by transport.",
            ),
        }
    }
}

#[derive(Debug)]
struct FunctionStats {
    outcomes: [Count; Outcome::ALL.len()],
    duration: Histogram,
}

impl FunctionStats {
    fn new(function: &'static str) -> Self {
        Self {
            outcomes: Outcome::ALL.map(|outcome| {
                Count::labelled(
                    "liveview_calls_total",
                    vec![
                        Label::new("function", function),
                        Label::new("outcome", outcome.as_str()),
                    ],
                    "Calls by function and outcome.",
                )
            }),
            duration: Histogram::new(function),
        }
    }
}

/// Every counter of one application.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub connections_open: Level,
    pub connections_total: Count,
    pub connections_refused: Count,
    pub frames_in: Count,
    pub frames_out: Count,
    pub bytes_in: Count,
    pub bytes_out: Count,
    pub publishes: Count,
    pub publish_failures: Count,
    pub slow_client_closes: Count,
    pub rate_limited: Count,
    pub frames_too_large: Count,
    pub write_failures: Count,
    pub idle_closes: Count,
    pub broadcast_budget_exceeded: Count,
    pub layer_received: Count,
    pub layer_expired: Count,
    pub layer_dropped: Count,
    pub layer_recovered: Count,
    pub groups: Level,
    pub memberships: Level,
    pub addresses: Level,
    /// Connections per [`Transport`].
    pub transports: [TransportStats; 2],
    /// The series of each handler, in the registry's order, then those of
    /// unknown names.
    functions: Vec<(&'static str, FunctionStats)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Metrics {
    /// Counters with one series per registered handler name, in the order
    /// of the registry's names: [`call`](Self::call) takes the index in it.
    pub(crate) fn new(functions: &[&'static str]) -> Self {
        let functions = functions
            .iter()
            .copied()
            .chain([UNKNOWN])
            .map(|name| (name, FunctionStats::new(name)))
            .collect();
        Self {
            connections_open: Level::new(
                "liveview_connections",
                "Open connections (WebSocket and HTTP transport).",
            ),
            connections_total: Count::new(
                "liveview_connections_total",
                "Connections accepted (WebSocket and HTTP transport).",
            ),
            connections_refused: Count::new(
                "liveview_connections_refused_total",
                "Connections refused by origin, room or connection cap.",
            ),
            frames_in: Count::new(
                "liveview_frames_received_total",
                "Text frames received from clients.",
            ),
            frames_out: Count::new("liveview_frames_sent_total", "Frames written to clients."),
            bytes_in: Count::new(
                "liveview_received_bytes_total",
                "Bytes of text frames received.",
            ),
            bytes_out: Count::new("liveview_sent_bytes_total", "Bytes of frames written."),
            publishes: Count::new(
                "liveview_publishes_total",
                "Frames sent to a group (broadcast or room).",
            ),
            publish_failures: Count::new(
                "liveview_layer_publish_failures_total",
                "Group frames the channel layer failed to publish to other processes.",
            ),
            slow_client_closes: Count::new(
                "liveview_slow_client_closes_total",
                "Connections closed with 1013 for not reading.",
            ),
            rate_limited: Count::new(
                "liveview_rate_limited_total",
                "Calls refused by a rate limit.",
            ),
            frames_too_large: Count::new(
                "liveview_frames_too_large_total",
                "Frames refused for being over the outgoing size limit.",
            ),
            write_failures: Count::new(
                "liveview_write_failures_total",
                "Writes to a client's socket that failed (the connection was lost).",
            ),
            idle_closes: Count::new(
                "liveview_idle_closes_total",
                "Connections closed with 4408 for sending nothing, not even a Pong.",
            ),
            broadcast_budget_exceeded: Count::new(
                "liveview_broadcast_budget_exceeded_total",
                "Group frames refused for being over their connection's broadcast budget.",
            ),
            layer_received: Count::new(
                "liveview_layer_received_total",
                "Frames from other processes the channel layer delivered here.",
            ),
            layer_expired: Count::new(
                "liveview_layer_expired_total",
                "Frames from other processes dropped for being older than the layer's expiry.",
            ),
            layer_dropped: Count::new(
                "liveview_layer_dropped_total",
                "Messages the channel layer dropped (a full queue, not a message of the layer).",
            ),
            layer_recovered: Count::new(
                "liveview_layer_recovered_total",
                "Frames the subscription skipped that were read back from the shared log.",
            ),
            groups: Level::new("liveview_groups", "Groups with members in this process."),
            memberships: Level::new(
                "liveview_group_memberships",
                "Group memberships of connections in this process.",
            ),
            addresses: Level::new(
                "liveview_tracked_addresses",
                "Client addresses with open connections or recent calls.",
            ),
            transports: Transport::ALL.map(TransportStats::new),
            functions,
        }
    }

    /// The counters of `transport`.
    pub(crate) fn transport(&self, transport: Transport) -> &TransportStats {
        &self.transports[transport as usize]
    }

    /// Count a call of the handler at `function` in the registry's order,
    /// or (`None`) of a name no handler has: no lookup of the name.
    #[inline]
    pub(crate) fn call(&self, function: Option<usize>, outcome: Outcome, elapsed: Duration) {
        let stats = function
            .and_then(|index| self.functions.get(index))
            .or_else(|| self.functions.last())
            .map(|(_, stats)| stats);
        if let Some(stats) = stats {
            stats.outcomes[outcome as usize].add(1);
            if matches!(
                outcome,
                Outcome::Ok | Outcome::Failed | Outcome::Panicked | Outcome::TimedOut
            ) {
                stats.duration.observe(elapsed);
            }
        }
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counts = [
            &self.connections_total,
            &self.connections_refused,
            &self.frames_in,
            &self.frames_out,
            &self.bytes_in,
            &self.bytes_out,
            &self.publishes,
            &self.publish_failures,
            &self.slow_client_closes,
            &self.rate_limited,
            &self.frames_too_large,
            &self.write_failures,
            &self.idle_closes,
            &self.broadcast_budget_exceeded,
            &self.layer_received,
            &self.layer_expired,
            &self.layer_dropped,
            &self.layer_recovered,
        ];
        let levels = [
            &self.connections_open,
            &self.groups,
            &self.memberships,
            &self.addresses,
        ];
        let series = levels
            .iter()
            .map(|l| (&l.facade.key, l.facade.help, "gauge", l.get()))
            .chain(
                counts
                    .iter()
                    .map(|c| (&c.facade.key, c.facade.help, "counter", c.get() as i64)),
            );
        for (key, help, kind, value) in series {
            let name = key.name();
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }

        for (help, kind, name) in [
            (
                "Open connections by transport.",
                "gauge",
                "liveview_transport_connections",
            ),
            (
                "Connections accepted by transport.",
                "counter",
                "liveview_transport_connections_total",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for transport in Transport::ALL {
                let stats = self.transport(transport);
                let value = match kind {
                    "gauge" => stats.open.get(),
                    _ => stats.total.get() as i64,
                };
                let _ = writeln!(
                    out,
                    "{name}{{transport=\"{}\"}} {value}",
                    transport.as_str()
                );
            }
        }

        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _ = writeln!(
                out,
                "# HELP liveview_runtime_alive_tasks Tasks alive in the tokio runtime.\n\
                 # TYPE liveview_runtime_alive_tasks gauge\n\
                 liveview_runtime_alive_tasks {}",
                runtime.metrics().num_alive_tasks()
            );
        }

        let mut functions: Vec<_> = self.functions.iter().collect();
        functions.sort_unstable_by_key(|(name, _)| *name);
        out.push_str("# HELP liveview_calls_total Calls by function and outcome.\n# TYPE liveview_calls_total counter\n");
        for (name, stats) in &functions {
            for outcome in Outcome::ALL {
                let n = stats.outcomes[outcome as usize].get();
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "liveview_calls_total{{function=\"{name}\",outcome=\"{}\"}} {n}",
                        outcome.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP liveview_handler_duration_seconds Time handlers took.\n# TYPE liveview_handler_duration_seconds histogram\n");
        for (name, stats) in &functions {
            let h = &stats.duration;
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bound, bucket) in BOUNDS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(
                    out,
                    "liveview_handler_duration_seconds_bucket{{function=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "liveview_handler_duration_seconds_bucket{{function=\"{name}\",le=\"+Inf\"}} {count}\n\
                 liveview_handler_duration_seconds_sum{{function=\"{name}\"}} {}\n\
                 liveview_handler_duration_seconds_count{{function=\"{name}\"}} {count}",
                h.sum_micros.load(Relaxed) as f64 / 1e6
            );
        }
        out
    }
}

/// How a call ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Invalid,
    Unknown,
    Refused,
    Failed,
    Panicked,
    TimedOut,
    /// The handler's group send was over the connection's broadcast budget.
    OverBudget,
}

impl Outcome {
    /// Every outcome, in discriminant order.
    pub(crate) const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::Unknown,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Panicked,
        Outcome::TimedOut,
        Outcome::OverBudget,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown_function",
            Outcome::Refused => "refused",
            Outcome::Failed => "error",
            Outcome::Panicked => "panic",
            Outcome::TimedOut => "timeout",
            Outcome::OverBudget => "over_budget",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_function_and_unknown_names_share_one_series() {
        let metrics = Metrics::new(&["say_hello"]);
        metrics.call(Some(0), Outcome::Ok, Duration::from_micros(700));
        metrics.call(Some(0), Outcome::Failed, Duration::from_millis(20));
        metrics.call(None, Outcome::Unknown, Duration::ZERO);
        metrics.call(None, Outcome::Unknown, Duration::ZERO);
        metrics.groups.set(2);
        metrics.memberships.add(4);
        let text = metrics.render();
        assert!(
            text.contains("liveview_calls_total{function=\"say_hello\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("liveview_calls_total{function=\"say_hello\",outcome=\"error\"} 1"));
        assert!(text.contains(
            "liveview_calls_total{function=\"_unknown\",outcome=\"unknown_function\"} 2"
        ));
        assert!(!text.contains("nope"));
        assert!(text.contains(
            "liveview_handler_duration_seconds_bucket{function=\"say_hello\",le=\"0.001\"} 1"
        ));
        assert!(text.contains("liveview_handler_duration_seconds_count{function=\"say_hello\"} 2"));
        assert!(text.contains("liveview_groups 2\n"));
        assert!(text.contains("liveview_group_memberships 4\n"));
    }

    #[test]
    fn a_duration_on_a_bound_falls_in_its_bucket_and_one_past_it_in_the_next() {
        let metrics = Metrics::new(&["f"]);
        for elapsed in [
            Duration::from_micros(500),
            Duration::from_nanos(500_001),
            Duration::from_millis(2_500),
            Duration::from_secs(11),
        ] {
            metrics.call(Some(0), Outcome::Ok, elapsed);
        }
        let text = metrics.render();
        let bucket = |le: &str| {
            let series =
                format!("liveview_handler_duration_seconds_bucket{{function=\"f\",le=\"{le}\"}} ");
            let at = text
                .find(&series)
                .unwrap_or_else(|| panic!("{series} in {text}"));
            text[at + series.len()..].lines().next().unwrap().to_owned()
        };
        assert_eq!(bucket("0.0005"), "1");
        assert_eq!(bucket("0.001"), "2");
        assert_eq!(bucket("1"), "2");
        assert_eq!(bucket("2.5"), "3");
        assert_eq!(bucket("10"), "3");
        assert_eq!(bucket("+Inf"), "4");
        assert!(
            text.contains("liveview_handler_duration_seconds_sum{function=\"f\"} 13.501"),
            "{text}"
        );
    }
}
