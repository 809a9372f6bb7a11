//! What a run measured, as written to its JSON file, and the Markdown table
//! and target checks made from it.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One run of the harness.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Run {
    /// `full` or `smoke`.
    pub mode: String,
    /// Start of the run, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// What was measured and how to measure it again.
    #[serde(default)]
    pub provenance: Provenance,
    pub machine: Machine,
    /// Scenario sizes and durations.
    pub plan: serde_json::Value,
    /// The scenarios asked for (`idle`, `fan-out`, `calls`, `replay-log`).
    #[serde(default)]
    pub scenarios: Vec<String>,
    pub servers: Vec<ServerResult>,
    pub cross_node: Option<CrossNode>,
    /// Broadcasts with and without the replay log, side by side.
    #[serde(default)]
    pub replay_log: Option<ReplayLog>,
    pub targets: Vec<TargetCheck>,
    /// Things that did not work (a missed or duplicated frame, a wrong
    /// answer): these fail the run, timing never does.
    pub failures: Vec<String>,
    /// Scenarios that could not run here, and why.
    pub notes: Vec<String>,
}

/// The code a run measured, the harness that measured it, and the command
/// that ran it: enough to run it again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Provenance {
    /// `git rev-parse HEAD` of the tree the binary was run from.
    pub commit: String,
    /// Whether that tree had uncommitted changes (`git status --porcelain`):
    /// then the commit alone does not say what was measured.
    pub dirty: bool,
    /// [`HARNESS_VERSION`](crate::harness::HARNESS_VERSION): raised
    /// whenever the method changes, so results of different versions are
    /// not compared as if alike.
    pub harness_version: u32,
    /// The command line, as run.
    pub command: String,
    /// Socket buffers of the floor and of our servers, bytes (read, write).
    #[serde(default)]
    pub socket_buffers: (usize, usize),
}

/// Where the run ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub load_average_before: String,
    pub load_average_after: String,
    pub nofile_limit: u64,
    pub pinned: bool,
    /// Servers and load generator ran at nice -10.
    #[serde(default)]
    pub raised_priority: bool,
    /// Worker threads of the load generator's runtime.
    #[serde(default)]
    pub load_generator_threads: usize,
    /// Cores the load generator may run on (the cores not given to the
    /// servers when pinned).
    #[serde(default)]
    pub load_generator_cores: usize,
    /// Spinning processes at idle priority (`SCHED_IDLE`), one per core,
    /// that kept the cores awake during the round trip and were stopped
    /// before the other scenarios; 0 when the cores could sleep.
    #[serde(default)]
    pub round_trip_spinners: usize,
    pub build: String,
    pub rustc: String,
    pub redis: String,
    pub python: String,
    pub django_stack: String,
}

/// Everything measured on one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerResult {
    /// `floor`, `liveview-memory`, `liveview-redis` or `django-liveview`.
    pub name: String,
    pub round_trip: Option<Latency>,
    /// The round trip's p50 slice by slice: median and range.
    #[serde(default)]
    pub round_trip_p50_spread: Option<Spread>,
    /// The round trip's p50 of each slice, microseconds, in the order the
    /// slices ran (harness version 8 on).
    #[serde(default)]
    pub round_trip_slice_p50s: Vec<f64>,
    pub throughput: Vec<Throughput>,
    /// The same calls at a fixed rate below saturation, the same for
    /// every server (harness version 6 on).
    #[serde(default)]
    pub fixed_rate: Vec<Throughput>,
    pub fan_out: Vec<FanOut>,
    pub idle: Vec<Idle>,
    pub notes: Vec<String>,
}

impl ServerResult {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            round_trip: None,
            round_trip_p50_spread: None,
            round_trip_slice_p50s: Vec::new(),
            throughput: Vec::new(),
            fixed_rate: Vec::new(),
            fan_out: Vec::new(),
            idle: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn throughput_at(&self, connections: usize) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.connections == connections)
    }

    pub(crate) fn fixed_rate_at(&self, connections: usize) -> Option<&Throughput> {
        self.fixed_rate
            .iter()
            .find(|t| t.connections == connections)
    }

    pub(crate) fn fan_out_to(&self, subscribers: usize) -> Option<&FanOut> {
        self.fan_out.iter().find(|f| f.subscribers == subscribers)
    }

    pub(crate) fn idle_at(&self, connections: usize) -> Option<&Idle> {
        self.idle.iter().find(|i| i.connections == connections)
    }
}

/// A latency distribution, microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

impl Latency {
    /// From a histogram of nanoseconds.
    pub(crate) fn from_nanos(histogram: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            samples: histogram.len(),
            p50_us: us(histogram.value_at_quantile(0.50)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            mean_us: histogram.mean() / 1000.0,
            max_us: us(histogram.max()),
        }
    }
}

/// Calls from many connections at once: in a closed loop (saturation), or
/// at a fixed rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Throughput {
    pub connections: usize,
    pub seconds: f64,
    pub calls: u64,
    /// Calls answered per second (the achieved rate).
    pub calls_per_second: f64,
    /// The fixed rate offered, calls per second; absent for saturation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_per_second: Option<f64>,
    pub latency: Latency,
    /// Share of one core the server used while measured (100 = one core).
    pub server_cpu_percent: f64,
    /// Server CPU time per answered call over every slice together,
    /// microseconds: what a call costs the server whatever the load
    /// generator could offer. The figure compared is the median of the
    /// slices, [`server_cpu_us_per_call_spread`](Self::server_cpu_us_per_call_spread).
    pub server_cpu_us_per_call: f64,
    /// Server CPU per call slice by slice: median and range (harness
    /// version 5 on).
    #[serde(default)]
    pub server_cpu_us_per_call_spread: Spread,
    /// Share of one core the load generator (this process, all its
    /// threads) used while measured: well under 100 means it had headroom,
    /// so the server, not the load generator, set the pace.
    #[serde(default)]
    pub load_generator_cpu_percent: f64,
    /// Calls per second slice by slice: median and range.
    #[serde(default)]
    pub calls_per_second_spread: Spread,
    /// The load generator's share of a core slice by slice: median and
    /// range (harness version 5 on).
    #[serde(default)]
    pub load_generator_cpu_percent_spread: Spread,
    /// Turns the servers took (each of several slices from version 5 on).
    #[serde(default)]
    pub turns: usize,
    /// Each measured slice (the servers take turns, turn by turn).
    #[serde(default)]
    pub slices: Vec<ThroughputSlice>,
    pub errors: u64,
}

/// One measured slice of a throughput scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ThroughputSlice {
    /// The turn it belongs to, from 1 (0 in results before version 5).
    #[serde(default)]
    pub turn: usize,
    /// Its measured time, seconds, and the calls answered within it.
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub calls: u64,
    pub calls_per_second: f64,
    /// At a fixed rate: the calls made due within the slice, per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_per_second: Option<f64>,
    pub p50_us: f64,
    /// The p99 of the calls answered within the slice (harness version 6
    /// on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    pub server_cpu_us_per_call: f64,
    pub load_generator_cpu_percent: f64,
    /// The load generator's CPU per answered call, microseconds.
    #[serde(default)]
    pub load_generator_cpu_us_per_call: Option<f64>,
}

/// Median and range of a figure over the slices of a scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Spread {
    pub runs: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Self::default();
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            runs: n,
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

impl Throughput {
    /// Calls per second, the median of the slices (the aggregate in
    /// results without slices).
    pub(crate) fn median_calls_per_second(&self) -> f64 {
        spread(Some(&self.calls_per_second_spread)).map_or(self.calls_per_second, |s| s.median)
    }

    /// Server CPU per call, microseconds: the median of the slices (the
    /// aggregate in results without it).
    pub(crate) fn cpu_per_call(&self) -> Option<f64> {
        spread(Some(&self.server_cpu_us_per_call_spread))
            .map(|s| s.median)
            .or(Some(self.server_cpu_us_per_call))
            .filter(|v| *v > 0.0)
    }

    /// The load generator's share of a core: the median of the slices
    /// (the aggregate in results without it).
    pub(crate) fn load_generator_cpu(&self) -> f64 {
        spread(Some(&self.load_generator_cpu_percent_spread))
            .map_or(self.load_generator_cpu_percent, |s| s.median)
    }

    /// The load generator's CPU per answered call, microseconds: the
    /// median of the slices (harness version 5 on).
    pub(crate) fn load_generator_cpu_per_call(&self) -> Option<f64> {
        let per_call: Vec<f64> = self
            .slices
            .iter()
            .filter_map(|s| s.load_generator_cpu_us_per_call)
            .collect();
        spread(Some(&Spread::of(&per_call))).map(|s| s.median)
    }

    /// At a fixed rate: calls answered over calls made due, slice by
    /// slice (1 when the server kept up).
    pub(crate) fn achieved_share(&self) -> Option<Spread> {
        let shares: Vec<f64> = self
            .slices
            .iter()
            .filter_map(|s| {
                let offered = s.offered_per_second.filter(|o| *o > 0.0)?;
                Some(s.calls_per_second / offered)
            })
            .collect();
        spread(Some(&Spread::of(&shares))).cloned()
    }

    /// Calls one core of server CPU answers (from the median CPU per
    /// call): what the server could do if the load generator were not the
    /// limit.
    pub(crate) fn capacity(&self) -> Option<f64> {
        self.cpu_per_call().map(|c| 1e6 / c)
    }
}

/// One `notify_all` reaching every subscriber, over several rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FanOut {
    pub subscribers: usize,
    pub rounds: u64,
    /// Time from the call until the last subscriber had the frame, over
    /// every round.
    pub last_delivery: Latency,
    /// Its p90, microseconds (harness version 5 on).
    #[serde(default)]
    pub last_delivery_p90_us: Option<f64>,
    /// The same, block by block: the rounds cut in order into the plan's
    /// `fan_out_blocks` (harness version 5 on).
    #[serde(default)]
    pub blocks: Vec<Latency>,
    /// Subscriber-rounds that never got the frame.
    pub missing: u64,
    /// Frames a subscriber got more than once.
    pub duplicates: u64,
    /// Rounds not complete within the round timeout.
    pub timed_out_rounds: u64,
    /// Share of one core the load generator used during the rounds: well
    /// under its cores' worth means the subscribers' side had headroom.
    #[serde(default)]
    pub load_generator_cpu_percent: Option<f64>,
}

impl FanOut {
    /// The blocks' p99: median and range.
    pub(crate) fn block_p99(&self) -> Option<Spread> {
        let p99s: Vec<f64> = self.blocks.iter().map(|b| b.p99_us).collect();
        (p99s.len() > 1).then(|| Spread::of(&p99s))
    }
}

/// Server memory with idle connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Idle {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub bytes_per_connection: f64,
}

/// Two servers on Redis, and one without it as the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CrossNode {
    /// One subscriber and the call on a server on the memory layer: the
    /// same delivery without Redis, in the same turns.
    #[serde(default)]
    pub memory_layer: Option<Latency>,
    /// One subscriber on node B, the call on node B.
    pub same_node: Latency,
    /// One subscriber on node B, the call on node A.
    pub cross_node: Latency,
    /// `cross_node.p50 - memory_layer.p50`, microseconds (in results of
    /// harness version 1, `cross_node.p50 - same_node.p50`).
    pub redis_adds_p50_us: f64,
    /// 1,000 subscribers on each node, the call on node A (harness
    /// versions 1 and 2).
    pub two_nodes: Option<FanOut>,
    /// Fan-out to each subscriber count, half of them on each node, the
    /// call on node A (harness version 3 on).
    #[serde(default)]
    pub fan_out: Vec<FanOut>,
    pub missing: u64,
    pub duplicates: u64,
}

/// The cost of the replay log on the broadcast path: the same broadcasts
/// to the same number of subscribers, on servers that keep the log and on
/// servers that do not, taking turns publish by publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayLog {
    /// How it was measured.
    pub method: String,
    pub arms: Vec<ReplayArm>,
    /// Log on / log off, per layer and subscriber count.
    pub ratios: Vec<ReplayRatio>,
}

/// One server of the replay-log scenario: a layer, with or without the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayArm {
    /// `memory` or `redis`.
    pub layer: String,
    /// Whether the log was kept (the in-process log for the memory layer,
    /// the shared Redis-stream log for the Redis layer).
    pub log: bool,
    pub subscribers: usize,
    /// Time of one `Broadcaster::broadcast` call, in the server.
    pub publish: Latency,
    /// CPU time of the server's thread per broadcast, from the call until
    /// every subscriber had the frame (socket writes included).
    #[serde(default)]
    pub server_cpu: Option<Latency>,
    /// Time from the call until the last subscriber had the frame.
    pub last_delivery: Latency,
    /// Round frames that reached a subscriber with a sequence number: all
    /// of them with the log, none without.
    pub sequenced_frames: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub timed_out_rounds: u64,
    /// Broadcast calls that returned an error.
    pub errors: u64,
}

/// Log on / log off for one layer and subscriber count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayRatio {
    pub layer: String,
    pub subscribers: usize,
    pub publish_p50: f64,
    pub publish_p99: f64,
    pub publish_mean: f64,
    /// Server CPU per broadcast, mean.
    #[serde(default)]
    pub cpu_mean: Option<f64>,
    /// Server CPU per broadcast, p50.
    #[serde(default)]
    pub cpu_p50: Option<f64>,
}

impl ReplayLog {
    /// The ratios of the arms that have both sides measured.
    pub(crate) fn ratios_of(arms: &[ReplayArm]) -> Vec<ReplayRatio> {
        let mut out = Vec::new();
        for on in arms.iter().filter(|a| a.log && a.publish.samples > 0) {
            let off = arms.iter().find(|a| {
                !a.log
                    && a.layer == on.layer
                    && a.subscribers == on.subscribers
                    && a.publish.samples > 0
            });
            let Some(off) = off else { continue };
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            out.push(ReplayRatio {
                layer: on.layer.clone(),
                subscribers: on.subscribers,
                publish_p50: ratio(on.publish.p50_us, off.publish.p50_us),
                publish_p99: ratio(on.publish.p99_us, off.publish.p99_us),
                publish_mean: ratio(on.publish.mean_us, off.publish.mean_us),
                cpu_mean: on
                    .server_cpu
                    .as_ref()
                    .zip(off.server_cpu.as_ref())
                    .map(|(a, b)| ratio(a.mean_us, b.mean_us)),
                cpu_p50: on
                    .server_cpu
                    .as_ref()
                    .zip(off.server_cpu.as_ref())
                    .map(|(a, b)| ratio(a.p50_us, b.p50_us)),
            });
        }
        out
    }

    fn arm(&self, layer: &str, log: bool, subscribers: usize) -> Option<&ReplayArm> {
        self.arms
            .iter()
            .find(|a| a.layer == layer && a.log == log && a.subscribers == subscribers)
    }
}

/// One target of the benchmarks issue, checked against the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// `None` when the run did not measure what the target needs.
    pub holds: Option<bool>,
}

impl Run {
    /// The plan's throughput levels (connections), when the run had the
    /// calls scenario.
    pub(crate) fn planned_throughput_connections(&self) -> Vec<usize> {
        if !self.scenarios.is_empty() && !self.scenarios.iter().any(|s| s == "calls") {
            return Vec::new();
        }
        self.plan
            .get("throughput_connections")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn server(&self, name: &str) -> Option<&ServerResult> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The sizes (connections, subscribers) some server was measured at,
    /// in order: `of` gives a server's.
    pub(crate) fn sizes(&self, of: impl Fn(&ServerResult) -> Vec<usize>) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.servers.iter().flat_map(of).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Check the targets of the issue against this run's numbers.
    pub(crate) fn check_targets(&mut self) {
        let ours = self.server(MEMORY);
        let floor = self.server(FLOOR);
        let django = self.server(DJANGO);
        let mut checks = Vec::new();

        let rt = |s: Option<&ServerResult>| s.and_then(|s| s.round_trip.as_ref()).map(|l| l.p50_us);
        checks.push(match (rt(ours), rt(floor)) {
            (Some(o), Some(f)) => check(
                "round trip p50 within 1.3x of the floor",
                format!("{:.2}x ({o:.0} us vs {f:.0} us)", o / f),
                o / f <= 1.3,
            ),
            _ => unmeasured("round trip p50 within 1.3x of the floor"),
        });

        let tp = |s: Option<&ServerResult>| {
            s.and_then(|s| s.throughput_at(50))
                .map(Throughput::median_calls_per_second)
        };
        let cap = |s: Option<&ServerResult>| {
            s.and_then(|s| s.throughput_at(50))
                .and_then(Throughput::capacity)
        };
        // The load generator may be the limit rather than the server: the
        // ratio of calls per second of server CPU is shown beside it.
        let by_cpu = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("; {:.2}x per second of server CPU", a / b),
            _ => String::new(),
        };
        checks.push(match (tp(ours), tp(floor)) {
            (Some(o), Some(f)) => check(
                "throughput at 50 connections at least 0.8x the floor",
                format!(
                    "{:.2}x ({o:.0}/s vs {f:.0}/s{})",
                    o / f,
                    by_cpu(cap(ours), cap(floor))
                ),
                o / f >= 0.8,
            ),
            _ => unmeasured("throughput at 50 connections at least 0.8x the floor"),
        });
        // Like for like: Django LiveView runs on channels-redis.
        let ours_redis = self.server(REDIS);
        checks.push(match (tp(ours_redis), tp(django)) {
            (Some(o), Some(d)) => check(
                "throughput at 50 connections at least 25x Django LiveView",
                format!(
                    "{:.1}x (Redis layer, {o:.0}/s vs {d:.0}/s{})",
                    o / d,
                    by_cpu(cap(ours_redis), cap(django))
                ),
                o / d >= 25.0,
            ),
            _ => unmeasured("throughput at 50 connections at least 25x Django LiveView"),
        });

        for (subscribers, limit_ms) in [(1_000, 10.0), (10_000, 100.0)] {
            let name = format!(
                "fan-out to {} subscribers p99 under {limit_ms} ms",
                thousands(subscribers as u64)
            );
            checks.push(match ours.and_then(|s| s.fan_out_to(subscribers)) {
                Some(f) if f.rounds > 0 => {
                    let p99 = f.last_delivery.p99_us / 1000.0;
                    check(
                        &name,
                        format!("{p99:.2} ms ({} rounds)", thousands(f.rounds)),
                        p99 < limit_ms,
                    )
                }
                _ => unmeasured(&name),
            });
        }

        // The ratios to the floor of the proof issue: each at most 1.1x.
        let name = "round trip p50 at one connection within 1.1x of the floor";
        let awake = if self.machine.round_trip_spinners > 0 {
            "cores kept awake"
        } else {
            "cores not kept awake"
        };
        checks.push(match (rt(ours), rt(floor)) {
            (Some(o), Some(f)) => check(
                name,
                format!("{:.2}x ({o:.0} us vs {f:.0} us, {awake})", o / f),
                o / f <= 1.1,
            ),
            _ => unmeasured(name),
        });
        // Every level the plan asked for, measured or not: a level that
        // could not be measured shows as such rather than vanish.
        let mut levels = self.sizes(|s| s.throughput.iter().map(|t| t.connections).collect());
        levels.extend(self.planned_throughput_connections());
        levels.sort_unstable();
        levels.dedup();
        // The median of the slices: one slice where the machine or the
        // load generator stalled moves an aggregate, not a median.
        let cpu = |s: Option<&ServerResult>, c: usize| {
            s.and_then(|s| s.throughput_at(c))
                .and_then(Throughput::cpu_per_call)
        };
        let name = "server CPU per call (median of slices) within 1.1x of the floor at every \
                    connection count";
        let ratios: Vec<(usize, Option<f64>)> = levels
            .iter()
            .map(|c| (*c, cpu(ours, *c).zip(cpu(floor, *c)).map(|(o, f)| o / f)))
            .collect();
        checks.push(per_level(name, &ratios, 1.1));
        // The same at the fixed rate, every server offered the same calls
        // per second: an additional row, the saturated one above stays.
        let mut levels = self.sizes(|s| s.fixed_rate.iter().map(|t| t.connections).collect());
        if self.scenarios.iter().any(|s| s == "fixed-rate") {
            levels.extend(self.planned_throughput_connections());
        }
        levels.sort_unstable();
        levels.dedup();
        let cpu = |s: Option<&ServerResult>, c: usize| {
            s.and_then(|s| s.fixed_rate_at(c))
                .and_then(Throughput::cpu_per_call)
        };
        let ratios: Vec<(usize, Option<f64>)> = levels
            .iter()
            .map(|c| (*c, cpu(ours, *c).zip(cpu(floor, *c)).map(|(o, f)| o / f)))
            .collect();
        checks.push(per_level(FIXED_RATE_CPU_TARGET, &ratios, 1.1));
        for subscribers in [1_000, 10_000] {
            let name = format!(
                "fan-out to {} p99 within 1.1x of the floor",
                thousands(subscribers as u64)
            );
            fn fan(s: Option<&ServerResult>, subscribers: usize) -> Option<&FanOut> {
                s.and_then(|s| s.fan_out_to(subscribers))
                    .filter(|f| f.rounds > 0)
            }
            checks.push(match (fan(ours, subscribers), fan(floor, subscribers)) {
                (Some(o), Some(f)) => {
                    let (a, b) = (o.last_delivery.p99_us, f.last_delivery.p99_us);
                    check(
                        &name,
                        format!(
                            "{:.2}x ({:.2} ms vs {:.2} ms, p99 of {} and {} rounds)",
                            a / b,
                            a / 1000.0,
                            b / 1000.0,
                            thousands(o.rounds),
                            thousands(f.rounds)
                        ),
                        a / b <= 1.1,
                    )
                }
                _ => unmeasured(&name),
            });
        }
        let idle = ours.and_then(|s| s.idle.iter().max_by_key(|i| i.connections));
        for (name, limit) in [
            ("idle connection at most 6 KB of server memory", 6_000.0),
            ("idle connection under 8 KiB of server memory", 8_191.0),
        ] {
            checks.push(match idle {
                Some(i) => check(
                    name,
                    format!(
                        "{:.0} bytes ({} connections)",
                        i.bytes_per_connection,
                        thousands(i.connections as u64)
                    ),
                    i.bytes_per_connection <= limit,
                ),
                None => unmeasured(name),
            });
        }

        let name = REPLAY_TARGET;
        checks.push(match self.replay_log.as_ref().map(|r| &r.ratios) {
            Some(ratios) if !ratios.is_empty() => {
                let measured = ratios
                    .iter()
                    .map(|r| {
                        let cpu = r
                            .cpu_mean
                            .map_or(String::new(), |c| format!(", CPU {c:.2}x"));
                        format!(
                            "{} {}: call {:.2}x{cpu}",
                            layer_label(&r.layer),
                            thousands(r.subscribers as u64),
                            r.publish_p50
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                let holds = ratios
                    .iter()
                    .all(|r| r.publish_p50 < 1.5 && r.cpu_mean.is_none_or(|c| c < 1.5));
                check(name, measured, holds)
            }
            _ => unmeasured(name),
        });

        let name = "Redis adds under 0.3 ms at p50 across nodes";
        checks.push(match &self.cross_node {
            Some(c) => check(
                name,
                match &c.memory_layer {
                    Some(m) => format!(
                        "{:.0} us ({:.0} us cross-node on Redis vs {:.0} us on the memory layer)",
                        c.redis_adds_p50_us, c.cross_node.p50_us, m.p50_us
                    ),
                    None => format!(
                        "{:.0} us ({:.0} us cross-node vs {:.0} us same node)",
                        c.redis_adds_p50_us, c.cross_node.p50_us, c.same_node.p50_us
                    ),
                },
                c.redis_adds_p50_us < 300.0,
            ),
            None => unmeasured(name),
        });
        self.targets = checks;
    }

    /// The targets, one line each, for the terminal.
    pub(crate) fn targets_text(&self) -> String {
        let mut out = String::new();
        for t in &self.targets {
            let verdict = match t.holds {
                Some(true) => "holds ",
                Some(false) => "MISSED",
                None => "n/a   ",
            };
            let _ = writeln!(out, "  [{verdict}] {}: {}", t.target, t.measured);
        }
        out
    }

    /// The tables of `docs/benchmarks.md`.
    pub(crate) fn markdown(&self) -> String {
        self.markdown_with_charts(None)
    }

    /// The tables, with the charts of `liveview-bench charts` beside them
    /// when `charts` is the folder they are in, relative to the page.
    pub(crate) fn markdown_with_charts(&self, charts: Option<&str>) -> String {
        let chart = |out: &mut String, file: &str, what: &str| {
            if let Some(dir) = charts {
                let _ = writeln!(out, "![{what}]({dir}/{file})\n");
            }
        };
        let mut out = String::new();
        let m = &self.machine;
        let scenarios = if self.scenarios.is_empty() {
            String::new()
        } else {
            format!(", scenarios {}", self.scenarios.join(", "))
        };
        let _ = writeln!(
            out,
            "Run of {} ({} mode{scenarios}, {:.0} s).\n",
            self.started, self.mode, self.seconds
        );
        let p = &self.provenance;
        let _ = writeln!(out, "| run | |\n|---|---|");
        let _ = writeln!(
            out,
            "| commit | `{}`{} |",
            if p.commit.is_empty() {
                "unknown"
            } else {
                &p.commit
            },
            if p.dirty {
                " with uncommitted changes"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "| harness version | {} |", p.harness_version);
        let _ = writeln!(out, "| command | `{}` |", p.command);
        let _ = writeln!(
            out,
            "| socket buffers (floor and LiveView) | {} B read, {} B write |",
            p.socket_buffers.0, p.socket_buffers.1
        );
        out.push('\n');
        let _ = writeln!(out, "| machine | |\n|---|---|");
        let _ = writeln!(out, "| CPU | {} ({} cores) |", m.cpu, m.cores);
        let _ = writeln!(out, "| memory | {:.0} GiB |", m.memory_gib);
        let _ = writeln!(out, "| kernel | {} |", m.kernel);
        let _ = writeln!(
            out,
            "| load average before / after | {} / {} |",
            m.load_average_before, m.load_average_after
        );
        let _ = writeln!(out, "| open files limit | {} |", m.nofile_limit);
        let _ = writeln!(
            out,
            "| load generator | one process, {} threads on {} core{}; the timed calls through \
             a minimal client (a frame masked once, the answer parsed in place); its CPU \
             recorded per throughput slice{} and over the fan-out rounds: under {}% of a core \
             it had headroom |",
            m.load_generator_threads,
            m.load_generator_cores.max(1),
            if m.load_generator_cores > 1 { "s" } else { "" },
            if self.servers.iter().any(|s| !s.fixed_rate.is_empty()) {
                " (at the fixed rate, its pacing thread included)"
            } else {
                ""
            },
            100 * m.load_generator_cores.max(1)
        );
        let _ = writeln!(
            out,
            "| cores kept awake | {} |",
            if m.round_trip_spinners > 0 {
                format!(
                    "during the round trip only: a spinning process at idle priority \
                     (`SCHED_IDLE`) on each of the {} cores, stopped before the other scenarios",
                    m.round_trip_spinners
                )
            } else {
                "no: the cores could sleep between calls".to_owned()
            }
        );
        let _ = writeln!(
            out,
            "| CPU pinning | {} |",
            if m.pinned {
                "servers on core 0, load generator on the other cores"
            } else {
                "none"
            }
        );
        let _ = writeln!(
            out,
            "| priority | {} |",
            if m.raised_priority {
                "nice -10 (servers and load generator)"
            } else {
                "default"
            }
        );
        let _ = writeln!(out, "| build | {} ({}) |", m.build, m.rustc);
        let _ = writeln!(out, "| Redis | {} |", m.redis);
        if m.python.is_empty() && m.django_stack.is_empty() {
            let _ = writeln!(out, "| Python / Django stack | not used in this run |");
        } else {
            let _ = writeln!(
                out,
                "| Python / Django stack | {} / {} |",
                m.python, m.django_stack
            );
        }
        out.push('\n');
        if self.servers_measured() {
            chart(
                &mut out,
                "latency.svg",
                "Latency of a call (p50) against connections",
            );
            chart(
                &mut out,
                "cpu-per-call.svg",
                "Server CPU per call against connections",
            );
            chart(
                &mut out,
                "idle-memory.svg",
                "Server memory per idle connection",
            );
        }
        self.servers_table(&mut out);
        if self.servers.iter().any(|s| !s.fixed_rate.is_empty()) {
            chart(
                &mut out,
                "fixed-rate.svg",
                "Server CPU per call at a fixed rate against connections",
            );
        }
        self.fixed_rate_table(&mut out);
        if !self.fan_out_series().is_empty() {
            chart(&mut out, "fan-out.svg", "Fan-out p99 against subscribers");
        }
        self.fan_out_table(&mut out);
        self.cross_node_table(&mut out);
        self.replay_log_table(&mut out);

        let _ = writeln!(out, "| target | measured | holds |\n|---|---|---|");
        for t in &self.targets {
            let verdict = match t.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {verdict} |", t.target, t.measured);
        }
        if !self.notes.is_empty() || self.servers.iter().any(|s| !s.notes.is_empty()) {
            out.push_str("\nNotes of the run:\n\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
            for s in &self.servers {
                for n in &s.notes {
                    let _ = writeln!(out, "- {}: {n}", label(&s.name));
                }
            }
        }
        if !self.failures.is_empty() {
            out.push_str("\nFailures:\n\n");
            for f in &self.failures {
                let _ = writeln!(out, "- {f}");
            }
        }
        out
    }
}

impl Run {
    /// Whether any server has a number of the single-server scenarios.
    fn servers_measured(&self) -> bool {
        self.servers.iter().any(|s| {
            s.round_trip.is_some()
                || !s.throughput.is_empty()
                || !s.fan_out.is_empty()
                || !s.idle.is_empty()
        })
    }

    /// The servers side by side, with the ratios like for like: the memory
    /// layer to the floor (both in one process, nothing between
    /// connections), the Redis layer to Django LiveView (which runs on
    /// channels-redis).
    fn servers_table(&self, out: &mut String) {
        if !self.servers_measured() {
            return;
        }
        let names: Vec<&str> = [FLOOR, MEMORY, REDIS, DJANGO]
            .into_iter()
            .filter(|n| self.server(n).is_some())
            .collect();
        let _ = write!(out, "| scenario |");
        for n in &names {
            let _ = write!(out, " {} |", label(n));
        }
        let _ = write!(
            out,
            " LiveView (memory) / floor | LiveView (Redis) / Django LiveView |\n|---|"
        );
        for _ in &names {
            out.push_str("---:|");
        }
        out.push_str("---:|---:|\n");

        let floor = self.server(FLOOR);
        let ours = self.server(MEMORY);
        let ours_redis = self.server(REDIS);
        let django = self.server(DJANGO);
        let mut row = |title: String, value: &dyn Fn(&ServerResult) -> Option<f64>, unit: Unit| {
            let _ = write!(out, "| {title} |");
            for n in &names {
                let v = self.server(n).and_then(value);
                let _ = write!(out, " {} |", v.map_or("n/a".to_owned(), |v| unit.show(v)));
            }
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                // The load generator's figures are no server's.
                _ if matches!(unit, Unit::Percent | Unit::LoadMicros) => String::new(),
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                " {} | {} |",
                ratio(ours.and_then(value), floor.and_then(value)),
                ratio(ours_redis.and_then(value), django.and_then(value))
            );
        };

        row(
            "round trip p50".into(),
            &|s| s.round_trip.as_ref().map(|l| l.p50_us),
            Unit::Micros,
        );
        row(
            "round trip p99".into(),
            &|s| s.round_trip.as_ref().map(|l| l.p99_us),
            Unit::Micros,
        );
        // The ends of a spread: (title, which end).
        let ends: [SpreadEnd; 2] = [("fastest slice", |r| r.min), ("slowest slice", |r| r.max)];
        for (end, pick) in ends {
            row(
                format!("  round trip p50, {end}"),
                &move |s| spread(s.round_trip_p50_spread.as_ref()).map(pick),
                Unit::Micros,
            );
        }
        let mut sizes = self.sizes(|s| s.throughput.iter().map(|t| t.connections).collect());
        sizes.extend(self.planned_throughput_connections());
        sizes.sort_unstable();
        sizes.dedup();
        for c in &sizes {
            let c = *c;
            let n = thousands(c as u64);
            row(
                format!("throughput, {n} connections (median of slices)"),
                &move |s| s.throughput_at(c).map(Throughput::median_calls_per_second),
                Unit::PerSecond,
            );
            // Calls per second: the slowest slice is the one with fewest.
            let ends: [SpreadEnd; 2] = [("slowest slice", |r| r.min), ("fastest slice", |r| r.max)];
            for (end, pick) in ends {
                row(
                    format!("  {end}, {n} connections"),
                    &move |s| {
                        s.throughput_at(c)
                            .and_then(|t| spread(Some(&t.calls_per_second_spread)))
                            .map(pick)
                    },
                    Unit::PerSecond,
                );
            }
            // Slices per server at this level, as the titles say.
            let slices = self
                .servers
                .iter()
                .filter_map(|s| s.throughput_at(c))
                .map(|t| t.slices.len())
                .max()
                .unwrap_or(0);
            row(
                format!("  load generator CPU, {n} connections (median of slices)"),
                &move |s| {
                    s.throughput_at(c)
                        .filter(|t| !t.slices.is_empty())
                        .map(Throughput::load_generator_cpu)
                },
                Unit::Percent,
            );
            row(
                format!("  load generator CPU, {n} connections, busiest slice"),
                &move |s| {
                    s.throughput_at(c)
                        .and_then(|t| spread(Some(&t.load_generator_cpu_percent_spread)))
                        .map(|r| r.max)
                },
                Unit::Percent,
            );
            row(
                format!("  p50 at {n} connections"),
                &move |s| s.throughput_at(c).map(|t| t.latency.p50_us),
                Unit::Micros,
            );
            row(
                format!("  p99 at {n} connections"),
                &move |s| s.throughput_at(c).map(|t| t.latency.p99_us),
                Unit::Micros,
            );
            row(
                format!("  server CPU per call, {n} connections (median of {slices} slices)"),
                &move |s| s.throughput_at(c).and_then(Throughput::cpu_per_call),
                Unit::FineMicros,
            );
            let ends: [SpreadEnd; 2] = [("lowest slice", |r| r.min), ("highest slice", |r| r.max)];
            for (end, pick) in ends {
                row(
                    format!("  server CPU per call, {n} connections, {end}"),
                    &move |s| {
                        s.throughput_at(c)
                            .and_then(|t| spread(Some(&t.server_cpu_us_per_call_spread)))
                            .map(pick)
                    },
                    Unit::FineMicros,
                );
            }
            row(
                format!("  server CPU per call, {n} connections, all slices together"),
                &move |s| {
                    s.throughput_at(c)
                        .map(|t| t.server_cpu_us_per_call)
                        .filter(|v| *v > 0.0)
                },
                Unit::FineMicros,
            );
            row(
                format!("  load generator CPU per call, {n} connections (median of slices)"),
                &move |s| {
                    s.throughput_at(c)
                        .and_then(Throughput::load_generator_cpu_per_call)
                },
                Unit::LoadMicros,
            );
            row(
                format!("  calls per second of server CPU, {n} connections (from the median)"),
                &move |s| s.throughput_at(c).and_then(|t| t.capacity()),
                Unit::PerSecond,
            );
        }
        let fans = self.sizes(|s| s.fan_out.iter().map(|f| f.subscribers).collect());
        for n in &fans {
            let n = *n;
            row(
                format!("fan-out to {}, last subscriber p50", thousands(n as u64)),
                &move |s| {
                    s.fan_out_to(n)
                        .filter(|f| f.rounds > 0)
                        .map(|f| f.last_delivery.p50_us)
                },
                Unit::Millis,
            );
            row(
                format!("fan-out to {}, last subscriber p99", thousands(n as u64)),
                &move |s| {
                    s.fan_out_to(n)
                        .filter(|f| f.rounds > 0)
                        .map(|f| f.last_delivery.p99_us)
                },
                Unit::Millis,
            );
            row(
                format!("  load generator CPU, fan-out to {}", thousands(n as u64)),
                &move |s| s.fan_out_to(n).and_then(|f| f.load_generator_cpu_percent),
                Unit::Percent,
            );
        }
        let idles = self.sizes(|s| s.idle.iter().map(|i| i.connections).collect());
        row(
            "RSS, no connection".into(),
            &|s| s.idle.first().map(|i| i.rss_before_kib as f64 * 1024.0),
            Unit::Bytes,
        );
        for n in &idles {
            let n = *n;
            row(
                format!("RSS, {} idle connections", thousands(n as u64)),
                &move |s| s.idle_at(n).map(|i| i.rss_after_kib as f64 * 1024.0),
                Unit::Bytes,
            );
            row(
                format!("memory per idle connection ({})", thousands(n as u64)),
                &move |s| s.idle_at(n).map(|i| i.bytes_per_connection),
                Unit::Bytes,
            );
        }
        out.push('\n');
    }

    /// The plan's fixed rate as a share of the floor's saturated rate.
    pub(crate) fn fixed_rate_fraction(&self) -> Option<f64> {
        self.plan
            .get("fixed_rate_fraction")
            .and_then(serde_json::Value::as_f64)
    }

    /// The calls at a fixed rate, server by server at each connection
    /// count, with the ratios to the floor at the same rate, and whether
    /// every server got the rate it was offered and the load generator
    /// stayed below its cores.
    fn fixed_rate_table(&self, out: &mut String) {
        let sizes = self.sizes(|s| s.fixed_rate.iter().map(|t| t.connections).collect());
        if sizes.is_empty() {
            return;
        }
        let plan = |key: &str| self.plan.get(key).and_then(serde_json::Value::as_f64);
        let share = self
            .fixed_rate_fraction()
            .map_or("a share".to_owned(), |f| format!("{:.0}%", 100.0 * f));
        let slices = match (plan("slices"), plan("fixed_rate_slices_per_turn")) {
            (Some(turns), Some(per_turn)) => format!(
                "{turns:.0} turns of {per_turn:.0} slices per server and connection count, the \
                 servers taking turns"
            ),
            _ => "slices per server and connection count, the servers taking turns".to_owned(),
        };
        let tick = plan("fixed_rate_tick_us").map_or(String::new(), |t| {
            format!(", released at the first tick of {t:.0} µs at or after that")
        });
        let _ = writeln!(
            out,
            "Fixed rate: every server offered the same calls per second at each connection \
             count, {share} of the floor's median saturated throughput there in this run, \
             paced evenly over the connections (call j due j / rate after the turn's start, \
             on connection j mod N{tick}; each connection with one call in flight), {slices}; \
             achieved is the calls answered per second; medians of the slices, ranges in \
             brackets; ratios to the floor at the same rate:\n"
        );
        let _ = writeln!(
            out,
            "| connections | server | offered | achieved | achieved / offered: median \
             (lowest slice) | server CPU per call | CPU per call / floor | load generator CPU: \
             median (busiest slice) | load generator CPU per call | p50 | p99 | p50 / floor | \
             p99 / floor |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".to_owned(),
        };
        let na = || "n/a".to_owned();
        let percent = |v: f64| format!("{:.1}%", 100.0 * v);
        for c in &sizes {
            let floor = self.server(FLOOR).and_then(|s| s.fixed_rate_at(*c));
            for name in [FLOOR, MEMORY, REDIS, DJANGO] {
                let Some(t) = self.server(name).and_then(|s| s.fixed_rate_at(*c)) else {
                    continue;
                };
                let range = |s: &Spread, unit: Unit| {
                    format!(
                        "{} ({} to {})",
                        unit.show(s.median),
                        unit.show(s.min),
                        unit.show(s.max)
                    )
                };
                let achieved = spread(Some(&t.calls_per_second_spread))
                    .map_or_else(na, |s| range(s, Unit::PerSecond));
                let share = t.achieved_share().map_or_else(na, |s| {
                    format!("{} ({})", percent(s.median), percent(s.min))
                });
                let cpu = spread(Some(&t.server_cpu_us_per_call_spread))
                    .map_or_else(na, |s| range(s, Unit::FineMicros));
                let load = spread(Some(&t.load_generator_cpu_percent_spread))
                    .map_or_else(na, |s| {
                        format!("{:.0}% ({:.0}%) of a core", s.median, s.max)
                    });
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {achieved} | {share} | {cpu} | {} | {load} | {} | {} | {} \
                     | {} | {} |",
                    thousands(*c as u64),
                    label(name),
                    t.offered_per_second
                        .map_or_else(na, |o| Unit::PerSecond.show(o)),
                    ratio(t.cpu_per_call(), floor.and_then(Throughput::cpu_per_call)),
                    t.load_generator_cpu_per_call()
                        .map_or_else(na, |v| Unit::LoadMicros.show(v)),
                    Unit::Micros.show(t.latency.p50_us),
                    Unit::Micros.show(t.latency.p99_us),
                    ratio(Some(t.latency.p50_us), floor.map(|f| f.latency.p50_us)),
                    ratio(Some(t.latency.p99_us), floor.map(|f| f.latency.p99_us)),
                );
            }
        }
        let _ = writeln!(out, "\n{}\n", self.fixed_rate_verdict());
    }

    /// What the fixed rate shows, in plain words: whether every server
    /// answered the rate it was offered, and whether the load generator
    /// stayed below its cores while offering it.
    pub(crate) fn fixed_rate_verdict(&self) -> String {
        // (server, connections, rate) for every fixed-rate result.
        let all: Vec<(&str, usize, &Throughput)> = self
            .servers
            .iter()
            .flat_map(|s| {
                s.fixed_rate
                    .iter()
                    .map(move |t| (label(&s.name), t.connections, t))
            })
            .collect();
        let shares: Vec<(&str, usize, Spread)> = all
            .iter()
            .filter_map(|(n, c, t)| Some((*n, *c, t.achieved_share()?)))
            .collect();
        if shares.is_empty() {
            return "No slice at the fixed rate was measured.".to_owned();
        }
        let mut out = String::new();
        let differ: Vec<String> = shares
            .iter()
            .filter(|(_, _, s)| (s.median - 1.0).abs() > FIXED_RATE_KEPT)
            .map(|(n, c, s)| {
                format!(
                    "{n} at {} connections ({:.1}% of it in the median slice)",
                    thousands(*c as u64),
                    100.0 * s.median
                )
            })
            .collect();
        let medians = shares.iter().map(|(_, _, s)| s.median);
        let (lo, hi) = medians.fold((f64::MAX, f64::MIN), |(lo, hi), m| (lo.min(m), hi.max(m)));
        let lowest = shares
            .iter()
            .min_by(|a, b| a.2.min.total_cmp(&b.2.min))
            .map(|(n, c, s)| format!("{:.1}%, {n} at {}", 100.0 * s.min, thousands(*c as u64)))
            .unwrap_or_default();
        if differ.is_empty() {
            let _ = write!(
                out,
                "**The achieved rate equalled the offered rate**: every server's median slice \
                 at every connection count answered {:.1}% to {:.1}% of the calls made due in \
                 it (within {:.0}%; the lowest single slice {lowest}).",
                100.0 * lo,
                100.0 * hi,
                100.0 * FIXED_RATE_KEPT
            );
        } else {
            let _ = write!(
                out,
                "**The achieved rate did not equal the offered rate** (the median slice more \
                 than {:.0}% from it) for {}.",
                100.0 * FIXED_RATE_KEPT,
                differ.join(", ")
            );
        }
        let cores = self.machine.load_generator_cores.max(1);
        let limit = 100.0 * cores as f64;
        let of = if cores == 1 {
            "its one core".to_owned()
        } else {
            format!("its {cores} cores")
        };
        let medians: Vec<f64> = all.iter().map(|(_, _, t)| t.load_generator_cpu()).collect();
        let busiest = all
            .iter()
            .filter_map(|(_, _, t)| spread(Some(&t.load_generator_cpu_percent_spread)))
            .map(|s| s.max)
            .fold(0.0, f64::max);
        let median = medians.iter().copied().fold(0.0, f64::max);
        if busiest < limit {
            let _ = write!(
                out,
                " **The load generator stayed below {of}**: at most {median:.0}% of a core in \
                 its median slice and {busiest:.0}% in its busiest, so it had headroom, and at \
                 the same offered load the servers' CPU per call compares the servers alone."
            );
        } else if median < limit {
            let _ = write!(
                out,
                " The load generator's median slice stayed below {of} (at most {median:.0}% of \
                 a core), but its busiest slice used {busiest:.0}%."
            );
        } else {
            let _ = write!(
                out,
                " **The load generator did not stay below {of}**: {median:.0}% of a core in its \
                 median slice."
            );
        }
        out
    }

    /// Two servers on one Redis.
    fn cross_node_table(&self, out: &mut String) {
        if let Some(c) = &self.cross_node {
            let _ = writeln!(out, "Two LiveView servers on one Redis:\n");
            let _ = writeln!(out, "| cross-node | p50 | p99 |\n|---|---:|---:|");
            if let Some(m) = &c.memory_layer {
                let _ = writeln!(
                    out,
                    "| one subscriber, call on the same server, memory layer (no Redis) | {} | {} |",
                    Unit::Micros.show(m.p50_us),
                    Unit::Micros.show(m.p99_us)
                );
            }
            let _ = writeln!(
                out,
                "| one subscriber, call on the same node | {} | {} |",
                Unit::Micros.show(c.same_node.p50_us),
                Unit::Micros.show(c.same_node.p99_us)
            );
            let _ = writeln!(
                out,
                "| one subscriber, call on the other node | {} | {} |",
                Unit::Micros.show(c.cross_node.p50_us),
                Unit::Micros.show(c.cross_node.p99_us)
            );
            let _ = writeln!(
                out,
                "| Redis adds (other node on Redis minus memory layer, p50) | {} | |",
                Unit::Micros.show(c.redis_adds_p50_us)
            );
            for f in c.two_nodes.iter().chain(&c.fan_out) {
                let _ = writeln!(
                    out,
                    "| 2 nodes x {} subscribers, last subscriber | {} | {} |",
                    thousands(f.subscribers as u64 / 2),
                    Unit::Millis.show(f.last_delivery.p50_us),
                    Unit::Millis.show(f.last_delivery.p99_us)
                );
            }
            out.push('\n');
        }
    }

    /// Fan-out results by series, as the fan-out table and chart show
    /// them: every server on one process, then the Redis layer across two
    /// processes (half the subscribers on each).
    pub(crate) fn fan_out_series(&self) -> Vec<(String, Vec<&FanOut>)> {
        let mut series = Vec::new();
        for name in [FLOOR, MEMORY, REDIS, DJANGO] {
            if let Some(s) = self.server(name).filter(|s| !s.fan_out.is_empty()) {
                let label = format!("{}, one process", label(name));
                series.push((label, s.fan_out.iter().collect()));
            }
        }
        if let Some(c) = &self.cross_node {
            let two: Vec<&FanOut> = c.two_nodes.iter().chain(&c.fan_out).collect();
            if !two.is_empty() {
                series.push((format!("{}, two processes", label(REDIS)), two));
            }
        }
        series
    }

    /// Fan-out at every subscriber count, on one process and across two,
    /// with the ratios to the floor's fan-out to as many subscribers in
    /// the same run.
    fn fan_out_table(&self, out: &mut String) {
        let series = self.fan_out_series();
        let floor = |n: usize| {
            self.server(FLOOR)
                .and_then(|s| s.fan_out_to(n))
                .filter(|f| f.rounds > 0)
        };
        let mut sizes: Vec<usize> = series
            .iter()
            .flat_map(|(_, fs)| fs.iter().map(|f| f.subscribers))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Fan-out: one `notify_all`, the time until every subscriber has the frame \
             (the last one), over each server's rounds (the p99 of N rounds has N/100 \
             of them above it); the rounds cut in order into blocks, the median and \
             range of the blocks' p99; ratios to the floor's fan-out to as many \
             subscribers in the same run:\n"
        );
        let _ = writeln!(
            out,
            "| subscribers | server | rounds | last subscriber p50 | p90 | p99 | \
             p99 of blocks: median (range) | p50 / floor | p99 / floor | load generator CPU |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let ratio = |a: f64, b: Option<f64>| match b {
            Some(b) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".to_owned(),
        };
        for n in sizes {
            for (name, fs) in &series {
                let Some(f) = fs.iter().find(|f| f.subscribers == n) else {
                    continue;
                };
                let cpu = f
                    .load_generator_cpu_percent
                    .map_or("n/a".to_owned(), |c| Unit::Percent.show(c));
                if f.rounds == 0 {
                    let _ = writeln!(
                        out,
                        "| {} | {name} | 0 | no round complete | | | | | | {cpu} |",
                        thousands(n as u64)
                    );
                    continue;
                }
                let d = &f.last_delivery;
                let blocks = f.block_p99().map_or("n/a".to_owned(), |b| {
                    format!(
                        "{} ({} to {}, {} blocks)",
                        Unit::Millis.show(b.median),
                        Unit::Millis.show(b.min),
                        Unit::Millis.show(b.max),
                        b.runs
                    )
                });
                let _ = writeln!(
                    out,
                    "| {} | {name} | {} | {} | {} | {} | {blocks} | {} | {} | {cpu} |",
                    thousands(n as u64),
                    thousands(f.rounds),
                    Unit::Millis.show(d.p50_us),
                    f.last_delivery_p90_us
                        .map_or("n/a".to_owned(), |p| Unit::Millis.show(p)),
                    Unit::Millis.show(d.p99_us),
                    ratio(d.p50_us, floor(n).map(|f| f.last_delivery.p50_us)),
                    ratio(d.p99_us, floor(n).map(|f| f.last_delivery.p99_us)),
                );
            }
        }
        out.push('\n');
    }

    /// Broadcasts with and without the replay log.
    fn replay_log_table(&self, out: &mut String) {
        let Some(r) = &self.replay_log else { return };
        if r.arms.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Cost of the replay log, log on / log off (call: the `broadcast` call in the server; \
             CPU: the server's CPU per broadcast, socket writes included):\n"
        );
        let _ = writeln!(
            out,
            "| layer | subscribers | publishes | call p50 | call p50 on / off | call p99 | \
             call p99 on / off | CPU, mean | CPU on / off | last subscriber p50 |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let pair = |on: f64, off: f64, show: &dyn Fn(f64) -> String| {
            format!("{} / {}", show(on), show(off))
        };
        let times = |x: Option<f64>| x.map_or("n/a".to_owned(), |x| format!("{x:.2}x"));
        for ratio in &r.ratios {
            let (Some(on), Some(off)) = (
                r.arm(&ratio.layer, true, ratio.subscribers),
                r.arm(&ratio.layer, false, ratio.subscribers),
            ) else {
                continue;
            };
            let cpu = match (&on.server_cpu, &off.server_cpu) {
                (Some(a), Some(b)) => pair(a.mean_us, b.mean_us, &fine_micros),
                _ => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {cpu} | {} | {} |",
                layer_label(&ratio.layer),
                thousands(ratio.subscribers as u64),
                thousands(on.publish.samples.min(off.publish.samples)),
                pair(on.publish.p50_us, off.publish.p50_us, &fine_micros),
                times(Some(ratio.publish_p50)),
                pair(on.publish.p99_us, off.publish.p99_us, &fine_micros),
                times(Some(ratio.publish_p99)),
                times(ratio.cpu_mean),
                pair(on.last_delivery.p50_us, off.last_delivery.p50_us, &|v| {
                    Unit::Millis.show(v)
                }),
            );
        }
        let _ = writeln!(out, "\n{}\n", r.method);
    }
}

/// One end of a spread, as a table row names it.
type SpreadEnd = (&'static str, fn(&Spread) -> f64);

/// A spread that has runs.
fn spread(s: Option<&Spread>) -> Option<&Spread> {
    s.filter(|r| r.runs > 0)
}

/// The servers' names in results.
pub(crate) const FLOOR: &str = "floor";
pub(crate) const MEMORY: &str = "liveview-memory";
pub(crate) const REDIS: &str = "liveview-redis";
pub(crate) const DJANGO: &str = "django-liveview";

/// A server's name as the tables and charts show it.
pub(crate) fn label(name: &str) -> &str {
    match name {
        FLOOR => "floor",
        MEMORY => "LiveView (memory)",
        REDIS => "LiveView (Redis)",
        DJANGO => "Django LiveView",
        other => other,
    }
}

/// The target of the replay issue.
const REPLAY_TARGET: &str = "replay log under 1.5x the broadcast without it \
     (call p50 and server CPU per broadcast, log on / log off)";

/// A layer of the replay-log scenario, as the tables name it.
fn layer_label(layer: &str) -> &str {
    match layer {
        "memory" => "memory",
        "redis" => "Redis",
        other => other,
    }
}

/// Microseconds with a decimal below 100 µs.
fn fine_micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1} µs")
    } else {
        Unit::Micros.show(us)
    }
}

/// How far from the offered rate the median slice's achieved rate may be
/// for the report to call them equal.
const FIXED_RATE_KEPT: f64 = 0.01;

/// The target of server CPU per call at the fixed rate.
const FIXED_RATE_CPU_TARGET: &str = "server CPU per call at the fixed rate (median of slices) \
     within 1.1x of the floor at every connection count";

/// A target checked at every connection count: `ratios` of ours to the
/// floor at each (`None` where not measured), each at most `limit`.
fn per_level(name: &str, ratios: &[(usize, Option<f64>)], limit: f64) -> TargetCheck {
    if ratios.iter().all(|(_, r)| r.is_none()) {
        return unmeasured(name);
    }
    let missed = ratios.iter().any(|(_, r)| r.is_some_and(|r| r > limit));
    let complete = ratios.iter().all(|(_, r)| r.is_some());
    TargetCheck {
        target: name.to_owned(),
        measured: ratios
            .iter()
            .map(|(c, r)| match r {
                Some(r) => format!("{r:.2}x at {}", thousands(*c as u64)),
                None => format!("n/a at {}", thousands(*c as u64)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        // A level not measured leaves the target open, unless another
        // already missed it.
        holds: if missed {
            Some(false)
        } else {
            complete.then_some(true)
        },
    }
}

fn check(target: &str, measured: String, holds: bool) -> TargetCheck {
    TargetCheck {
        target: target.to_owned(),
        measured,
        holds: Some(holds),
    }
}

fn unmeasured(target: &str) -> TargetCheck {
    TargetCheck {
        target: target.to_owned(),
        measured: "not measured in this run".to_owned(),
        holds: None,
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Micros,
    /// Microseconds with a decimal below 100 µs.
    FineMicros,
    /// The same, of the load generator: no ratio between servers.
    LoadMicros,
    Millis,
    PerSecond,
    Bytes,
    /// Of one core.
    Percent,
}

impl Unit {
    /// `value` is in microseconds for times, per second or bytes otherwise.
    fn show(self, value: f64) -> String {
        match self {
            Unit::Micros if value >= 1_000.0 => format!("{:.2} ms", value / 1000.0),
            Unit::Micros => format!("{value:.0} µs"),
            Unit::FineMicros | Unit::LoadMicros => fine_micros(value),
            Unit::Millis => format!("{:.2} ms", value / 1000.0),
            Unit::PerSecond => format!("{}/s", thousands(value.round() as u64)),
            Unit::Bytes if value >= 1024.0 * 1024.0 => {
                format!("{:.1} MiB", value / 1024.0 / 1024.0)
            }
            Unit::Bytes => format!("{} B", thousands(value.round() as u64)),
            Unit::Percent => format!("{value:.0}% of a core"),
        }
    }
}

/// `12345` -> `12,345`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn replay_ratios_pair_log_on_with_log_off() {
        let latency = |us: f64| Latency {
            samples: 10,
            p50_us: us,
            p99_us: 2.0 * us,
            mean_us: us,
            max_us: 3.0 * us,
        };
        let arm = |layer: &str, log: bool, subscribers: usize, us: f64| ReplayArm {
            layer: layer.to_owned(),
            log,
            subscribers,
            publish: latency(us),
            server_cpu: Some(latency(10.0 * us)),
            last_delivery: latency(1000.0),
            sequenced_frames: 0,
            missing: 0,
            duplicates: 0,
            timed_out_rounds: 0,
            errors: 0,
        };
        let arms = vec![
            arm("memory", true, 100, 30.0),
            arm("memory", false, 100, 20.0),
            arm("redis", true, 100, 300.0),
            arm("memory", false, 1_000, 200.0),
        ];
        let ratios = ReplayLog::ratios_of(&arms);
        assert_eq!(ratios.len(), 1, "only pairs measured on both sides");
        assert_eq!(ratios[0].layer, "memory");
        assert_eq!(ratios[0].subscribers, 100);
        assert!((ratios[0].publish_p50 - 1.5).abs() < 1e-9);
        assert!((ratios[0].cpu_mean.unwrap() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn every_planned_connection_count_is_reported_measured_or_not() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/run-20261206-060847.json"
        );
        let text = std::fs::read_to_string(path).expect("a committed results file");
        let mut run: Run = serde_json::from_str(&text).expect("a run");
        run.plan["throughput_connections"] = serde_json::json!([50, 500, 5_000]);
        run.check_targets();
        let cpu = run
            .targets
            .iter()
            .find(|t| t.target.starts_with("server CPU per call"))
            .expect("the CPU-per-call target");
        assert!(cpu.measured.contains("at 50,"), "{}", cpu.measured);
        assert!(cpu.measured.contains("at 500,"), "{}", cpu.measured);
        assert!(cpu.measured.ends_with("n/a at 5,000"), "{}", cpu.measured);
        let markdown = run.markdown();
        assert!(markdown.contains("| throughput, 5,000 connections (median of slices) | n/a |"));
        assert!(markdown.contains("| cores kept awake | no:"));
        run.machine.round_trip_spinners = 2;
        assert!(run.markdown().contains("on each of the 2 cores"));
    }

    #[test]
    fn cpu_per_call_is_compared_by_the_median_of_the_slices() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/run-20261206-115630.json"
        );
        let text = std::fs::read_to_string(path).expect("a committed results file");
        let mut run: Run = serde_json::from_str(&text).expect("a run");
        // Version 4 had no spread: the aggregate stands in.
        let t = run
            .server(FLOOR)
            .and_then(|s| s.throughput_at(50))
            .expect("floor at 50");
        assert_eq!(t.cpu_per_call(), Some(t.server_cpu_us_per_call));
        // One stalled slice moves the aggregate, not the median.
        for s in &mut run.servers {
            let median = if s.name == FLOOR { 10.0 } else { 10.5 };
            for t in &mut s.throughput {
                t.server_cpu_us_per_call_spread = Spread::of(&[median, median, 4.0 * median]);
            }
        }
        run.check_targets();
        let cpu = run
            .targets
            .iter()
            .find(|t| t.target.starts_with("server CPU per call"))
            .expect("the CPU-per-call target");
        assert_eq!(cpu.measured, "1.05x at 50, 1.05x at 500, 1.05x at 5,000");
        assert_eq!(cpu.holds, Some(true));
        let markdown = run.markdown();
        assert!(
            markdown.contains(
                "|   server CPU per call, 50 connections, highest slice | 40.0 µs | 42.0 µs |"
            ),
            "{markdown}"
        );
    }

    #[test]
    fn fan_out_tables_give_the_rounds_and_the_blocks() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/run-20261206-115630.json"
        );
        let text = std::fs::read_to_string(path).expect("a committed results file");
        let mut run: Run = serde_json::from_str(&text).expect("a run");
        let latency = |p99_ms: f64| Latency {
            samples: 200,
            p50_us: 1_000.0,
            p99_us: p99_ms * 1000.0,
            mean_us: 1_000.0,
            max_us: p99_ms * 1000.0,
        };
        for s in &mut run.servers {
            for f in &mut s.fan_out {
                f.rounds = 1_000;
                f.last_delivery_p90_us = Some(2_000.0);
                f.blocks = [3.0, 1.0, 2.0, 5.0, 4.0].map(latency).to_vec();
            }
        }
        run.check_targets();
        let markdown = run.markdown();
        assert!(
            markdown.contains(
                "| 1,000 | floor, one process | 1,000 | 12.62 ms | 2.00 ms | 30.85 ms | \
                 3.00 ms (1.00 ms to 5.00 ms, 5 blocks) |"
            ),
            "{markdown}"
        );
        let target = run
            .targets
            .iter()
            .find(|t| t.target == "fan-out to 1,000 p99 within 1.1x of the floor")
            .expect("the fan-out target");
        assert!(
            target.measured.ends_with("p99 of 1,000 and 1,000 rounds)"),
            "{}",
            target.measured
        );
    }

    /// A result at a fixed rate of `offered` calls per second: one slice
    /// per `(achieved, server CPU per call, load generator CPU)`.
    fn at_fixed_rate(connections: usize, offered: f64, slices: &[(f64, f64, f64)]) -> Throughput {
        let slices: Vec<ThroughputSlice> = slices
            .iter()
            .enumerate()
            .map(|(k, (achieved, cpu, load))| ThroughputSlice {
                turn: k / 2 + 1,
                seconds: 0.25,
                calls: (achieved / 4.0) as u64,
                calls_per_second: *achieved,
                offered_per_second: Some(offered),
                p50_us: 60.0,
                p99_us: Some(200.0),
                server_cpu_us_per_call: *cpu,
                load_generator_cpu_percent: *load,
                load_generator_cpu_us_per_call: Some(load * 1e4 / achieved),
            })
            .collect();
        let of = |pick: fn(&ThroughputSlice) -> f64| {
            Spread::of(&slices.iter().map(pick).collect::<Vec<_>>())
        };
        Throughput {
            connections,
            seconds: 0.25 * slices.len() as f64,
            calls: slices.iter().map(|s| s.calls).sum(),
            calls_per_second: offered,
            offered_per_second: Some(offered),
            latency: Latency {
                samples: 1_000,
                p50_us: 60.0,
                p99_us: 200.0,
                mean_us: 70.0,
                max_us: 900.0,
            },
            server_cpu_percent: 50.0,
            server_cpu_us_per_call: 7.0,
            server_cpu_us_per_call_spread: of(|s| s.server_cpu_us_per_call),
            load_generator_cpu_percent: 50.0,
            calls_per_second_spread: of(|s| s.calls_per_second),
            load_generator_cpu_percent_spread: of(|s| s.load_generator_cpu_percent),
            turns: slices.len().div_ceil(2),
            slices,
            errors: 0,
        }
    }

    /// The committed version-5 run, read as `report` reads it.
    fn version_5_run() -> Run {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/run-20261206-144551.json"
        );
        let text = std::fs::read_to_string(path).expect("a committed results file");
        serde_json::from_str(&text).expect("a run")
    }

    #[test]
    fn a_version_5_run_reads_without_the_fixed_rate() {
        let mut run = version_5_run();
        assert_eq!(run.provenance.harness_version, 5);
        assert!(run.servers.iter().all(|s| s.fixed_rate.is_empty()));
        run.check_targets();
        let fixed = run
            .targets
            .iter()
            .find(|t| t.target == FIXED_RATE_CPU_TARGET)
            .expect("the fixed-rate row");
        assert_eq!(fixed.holds, None);
        let markdown = run.markdown();
        assert!(!markdown.contains("Fixed rate:"), "{markdown}");
        // The saturated row is still there, unchanged.
        assert!(markdown.contains(
            "| server CPU per call (median of slices) within 1.1x of the floor at every \
             connection count | 1.15x at 50, 1.12x at 500, 1.11x at 5,000 | **no** |"
        ));
    }

    #[test]
    fn the_fixed_rate_table_shows_the_rate_kept_and_the_headroom() {
        let mut run = version_5_run();
        run.scenarios.push("fixed-rate".to_owned());
        run.plan["fixed_rate_fraction"] = serde_json::json!(0.5);
        run.plan["fixed_rate_slices_per_turn"] = serde_json::json!(2);
        run.plan["fixed_rate_tick_us"] = serde_json::json!(250);
        for s in &mut run.servers {
            let cpu = match s.name.as_str() {
                FLOOR => 6.0,
                MEMORY => 6.6,
                REDIS => 6.9,
                _ => continue,
            };
            for c in [50, 500, 5_000] {
                let offered = 60_000.0;
                s.fixed_rate.push(at_fixed_rate(
                    c,
                    offered,
                    &[
                        (offered, cpu, 50.0),
                        (0.995 * offered, cpu * 1.2, 61.0),
                        (1.004 * offered, cpu, 48.0),
                    ],
                ));
            }
        }
        run.check_targets();
        let markdown = run.markdown();
        assert!(
            markdown.contains(
                "(call j due j / rate after the turn's start, on connection j mod N, released \
                 at the first tick of 250 µs at or after that; each connection with one call \
                 in flight), 5 turns of 2 slices per server"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "| 500 | LiveView (memory) | 60,000/s | 60,000/s (59,700/s to 60,240/s) | \
                 100.0% (99.5%) | 6.6 µs (6.6 µs to 7.9 µs) | 1.10x | 50% (61%) of a core | \
                 8.3 µs | 60 µs | 200 µs | 1.00x | 1.00x |"
            ),
            "{markdown}"
        );
        // No row for a server not offered the rate.
        assert!(!markdown.contains("| 50 | Django LiveView | 60,000/s"));
        assert!(
            markdown.contains(
                "**The achieved rate equalled the offered rate**: every server's median \
                 slice at every connection count answered 100.0% to 100.0% of the calls \
                 made due in it (within 1%; the lowest single slice 99.5%,"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "**The load generator stayed below its one core**: at most 50% of a core \
                 in its median slice and 61% in its busiest"
            ),
            "{markdown}"
        );
        let fixed = run
            .targets
            .iter()
            .find(|t| t.target == FIXED_RATE_CPU_TARGET)
            .expect("the fixed-rate row");
        assert_eq!(fixed.measured, "1.10x at 50, 1.10x at 500, 1.10x at 5,000");
        assert_eq!(fixed.holds, Some(true));
        // The saturated target is still read from saturation.
        let saturated = run
            .targets
            .iter()
            .find(|t| {
                t.target
                    .starts_with("server CPU per call (median of slices)")
            })
            .expect("the saturated row");
        assert_eq!(
            saturated.measured,
            "1.15x at 50, 1.12x at 500, 1.11x at 5,000"
        );

        // The verdict with the floor's result at 5,000 connections made of
        // `slices` instead.
        let with_floor_at_5_000 = |run: &mut Run, slices: &[(f64, f64, f64)]| {
            let floor = run
                .servers
                .iter_mut()
                .find(|s| s.name == FLOOR)
                .expect("the floor");
            floor.fixed_rate[2] = at_fixed_rate(5_000, 60_000.0, slices);
            run.fixed_rate_verdict()
        };

        // A server that fell behind the rate, a load generator at its core.
        let verdict =
            with_floor_at_5_000(&mut run, &[(54_000.0, 6.0, 100.0), (54_000.0, 6.0, 101.0)]);
        assert!(
            verdict.contains(
                "**The achieved rate did not equal the offered rate** (the median slice more \
                 than 1% from it) for floor at 5,000 connections (90.0% of it in the median \
                 slice)."
            ),
            "{verdict}"
        );
        assert!(
            verdict.contains("**The load generator did not stay below its one core**"),
            "{verdict}"
        );
        // Below its core in the median slice, not in the busiest.
        let verdict = with_floor_at_5_000(
            &mut run,
            &[
                (60_000.0, 6.0, 80.0),
                (60_000.0, 6.0, 101.0),
                (60_000.0, 6.0, 90.0),
            ],
        );
        assert!(
            verdict.contains(
                "The load generator's median slice stayed below its one core (at most 90% of \
                 a core), but its busiest slice used 101%."
            ),
            "{verdict}"
        );
    }

    #[test]
    fn units_read_well() {
        assert_eq!(Unit::Micros.show(41.4), "41 µs");
        assert_eq!(Unit::Micros.show(25_000.0), "25.00 ms");
        assert_eq!(Unit::Millis.show(1_500.0), "1.50 ms");
        assert_eq!(Unit::PerSecond.show(12_345.6), "12,346/s");
        assert_eq!(Unit::Bytes.show(5_000.0), "5,000 B");
    }
}
