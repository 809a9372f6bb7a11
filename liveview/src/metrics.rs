//! Counters of what the server does, rendered in the Prometheus text
//! format at an opt-in route.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the handler duration buckets, in seconds.
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label for calls of names that are not registered: one series for
/// all of them, so garbage cannot create series.
const UNKNOWN: &str = "_unknown";

#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}

#[derive(Debug, Default)]
struct FunctionStats {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    duration: Histogram,
}

/// Every counter of one application.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub publishes: AtomicU64,
    pub publish_failures: AtomicU64,
    pub slow_client_closes: AtomicU64,
    pub rate_limited: AtomicU64,
    pub frames_too_large: AtomicU64,
    pub write_failures: AtomicU64,
    pub idle_closes: AtomicU64,
    functions: HashMap<&'static str, FunctionStats>,
}

impl Metrics {
    /// Counters with one series per registered handler name.
    pub(crate) fn new(functions: &[&'static str]) -> Self {
        let mut map: HashMap<&'static str, FunctionStats> = functions
            .iter()
            .map(|name| (*name, FunctionStats::default()))
            .collect();
        map.insert(UNKNOWN, FunctionStats::default());
        Self {
            functions: map,
            ..Self::default()
        }
    }

    pub(crate) fn call(&self, function: &str, outcome: Outcome, elapsed: Duration) {
        let stats = self
            .functions
            .get(function)
            .or_else(|| self.functions.get(UNKNOWN));
        if let Some(stats) = stats {
            stats.outcomes[outcome as usize].fetch_add(1, Relaxed);
            if matches!(
                outcome,
                Outcome::Ok | Outcome::Failed | Outcome::Panicked | Outcome::TimedOut
            ) {
                stats.duration.observe(elapsed);
            }
        }
    }

    /// The Prometheus text exposition of every counter, plus the gauges
    /// passed in (read from their owners at render time).
    pub(crate) fn render(&self, groups: usize, memberships: usize, addresses: usize) -> String {
        let mut out = String::with_capacity(4096);
        let simple: [(&str, &str, &str, i64); 17] = [
            (
                "liveview_connections",
                "gauge",
                "Open WebSocket connections.",
                self.connections_open.load(Relaxed),
            ),
            (
                "liveview_connections_total",
                "counter",
                "WebSocket connections accepted.",
                self.connections_total.load(Relaxed) as i64,
            ),
            (
                "liveview_connections_refused_total",
                "counter",
                "Upgrades refused by origin, room or connection cap.",
                self.connections_refused.load(Relaxed) as i64,
            ),
            (
                "liveview_frames_received_total",
                "counter",
                "Text frames received from clients.",
                self.frames_in.load(Relaxed) as i64,
            ),
            (
                "liveview_frames_sent_total",
                "counter",
                "Frames written to clients.",
                self.frames_out.load(Relaxed) as i64,
            ),
            (
                "liveview_received_bytes_total",
                "counter",
                "Bytes of text frames received.",
                self.bytes_in.load(Relaxed) as i64,
            ),
            (
                "liveview_sent_bytes_total",
                "counter",
                "Bytes of frames written.",
                self.bytes_out.load(Relaxed) as i64,
            ),
            (
                "liveview_publishes_total",
                "counter",
                "Frames sent to a group (broadcast or room).",
                self.publishes.load(Relaxed) as i64,
            ),
            (
                "liveview_layer_publish_failures_total",
                "counter",
                "Group frames the channel layer failed to publish to other processes.",
                self.publish_failures.load(Relaxed) as i64,
            ),
            (
                "liveview_slow_client_closes_total",
                "counter",
                "Connections closed with 1013 for not reading.",
                self.slow_client_closes.load(Relaxed) as i64,
            ),
            (
                "liveview_rate_limited_total",
                "counter",
                "Calls refused by a rate limit.",
                self.rate_limited.load(Relaxed) as i64,
            ),
            (
                "liveview_frames_too_large_total",
                "counter",
                "Frames refused for being over the outgoing size limit.",
                self.frames_too_large.load(Relaxed) as i64,
            ),
            (
                "liveview_write_failures_total",
                "counter",
                "Writes to a client's socket that failed (the connection was lost).",
                self.write_failures.load(Relaxed) as i64,
            ),
            (
                "liveview_idle_closes_total",
                "counter",
                "Connections closed with 4408 for sending nothing, not even a Pong.",
                self.idle_closes.load(Relaxed) as i64,
            ),
            (
                "liveview_groups",
                "gauge",
                "Groups with members in this process.",
                groups as i64,
            ),
            (
                "liveview_group_memberships",
                "gauge",
                "Group memberships of connections in this process.",
                memberships as i64,
            ),
            (
                "liveview_tracked_addresses",
                "gauge",
                "Client addresses with open connections or recent calls.",
                addresses as i64,
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
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

        let mut names: Vec<_> = self.functions.keys().copied().collect();
        names.sort_unstable();
        out.push_str("# HELP liveview_calls_total Calls by function and outcome.\n# TYPE liveview_calls_total counter\n");
        for name in &names {
            let stats = &self.functions[name];
            for outcome in Outcome::ALL {
                let n = stats.outcomes[outcome as usize].load(Relaxed);
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
        for name in &names {
            let h = &self.functions[name].duration;
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
}

impl Outcome {
    /// Every outcome, in discriminant order.
    pub(crate) const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Invalid,
        Outcome::Unknown,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Panicked,
        Outcome::TimedOut,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_function_and_unknown_names_share_one_series() {
        let metrics = Metrics::new(&["say_hello"]);
        metrics.call("say_hello", Outcome::Ok, Duration::from_micros(700));
        metrics.call("say_hello", Outcome::Failed, Duration::from_millis(20));
        metrics.call("nope", Outcome::Unknown, Duration::ZERO);
        metrics.call("also_nope", Outcome::Unknown, Duration::ZERO);
        let text = metrics.render(2, 4, 1);
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
}
