//! The scenarios, as the load generator runs them against one endpoint.
//! Every loop is bounded in count and in time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Endpoint, SAY_HELLO, Ws};
use crate::procs::{self, ServerProc};
use crate::report::{FanOut, Latency, Spread, Throughput, ThroughputSlice};

/// Sizes and durations of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub warmup_calls: usize,
    pub round_trip_calls: usize,
    pub round_trip_seconds: f64,
    pub throughput_connections: Vec<usize>,
    /// Throughput levels from this many connections on open their
    /// connections for each slice and close them after it, one server at a
    /// time: every server's connections held at once would pass the
    /// open-files limit of the load generator's process.
    pub throughput_reopened_from: usize,
    pub throughput_warmup_seconds: f64,
    pub throughput_seconds: f64,
    /// Idle connection counts at which the server's memory is read.
    pub idle_connections: Vec<usize>,
    /// Subscriber counts of the fan-out scenario.
    pub fan_out_subscribers: Vec<usize>,
    pub fan_out_rounds: usize,
    /// Fan-out rounds stop early past this time (slow servers).
    pub fan_out_seconds: f64,
    pub round_timeout_seconds: f64,
    pub cross_node_rounds: usize,
    /// Subscriber counts of the fan-out across two nodes (half on each).
    pub cross_node_fan_out: Vec<usize>,
    /// Subscriber counts of the replay-log scenario.
    pub replay_log_subscribers: Vec<usize>,
    /// Timed publishes per server of the replay-log scenario, at each
    /// subscriber count.
    pub replay_log_publishes: usize,
    /// Untimed publishes per server before them.
    pub replay_log_warmup: usize,
    /// The replay-log scenario stops publishing past this time, at each
    /// subscriber count (all its servers together).
    pub replay_log_seconds: f64,
    pub connect_timeout_seconds: f64,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Servers take turns: each timed scenario is cut into this many
    /// slices, run server after server, so that a machine whose load
    /// drifts (other work on it) weighs on every server alike.
    pub slices: usize,
}

impl Plan {
    /// The documented full run.
    pub(crate) fn full() -> Self {
        Self {
            warmup_calls: 500,
            round_trip_calls: 20_000,
            round_trip_seconds: 5.0,
            throughput_connections: vec![50, 500, 5_000],
            throughput_reopened_from: 5_000,
            throughput_warmup_seconds: 0.3,
            throughput_seconds: 5.0,
            idle_connections: vec![1_000, 10_000],
            fan_out_subscribers: vec![10_000, 1_000, 100],
            fan_out_rounds: 30,
            fan_out_seconds: 60.0,
            round_timeout_seconds: 30.0,
            cross_node_rounds: 300,
            cross_node_fan_out: vec![1_000, 10_000],
            replay_log_subscribers: vec![100, 1_000],
            replay_log_publishes: 2_000,
            replay_log_warmup: 50,
            replay_log_seconds: 60.0,
            connect_timeout_seconds: 30.0,
            connect_concurrency: 64,
            slices: 5,
        }
    }

    /// CI's few seconds: small numbers, same code paths.
    pub(crate) fn smoke() -> Self {
        Self {
            warmup_calls: 20,
            round_trip_calls: 200,
            round_trip_seconds: 1.0,
            throughput_connections: vec![10, 20],
            throughput_reopened_from: 20,
            throughput_warmup_seconds: 0.1,
            throughput_seconds: 0.6,
            idle_connections: vec![200],
            fan_out_subscribers: vec![200, 20],
            fan_out_rounds: 5,
            fan_out_seconds: 10.0,
            round_timeout_seconds: 5.0,
            cross_node_rounds: 20,
            cross_node_fan_out: vec![20, 200],
            replay_log_subscribers: vec![20],
            replay_log_publishes: 30,
            replay_log_warmup: 3,
            replay_log_seconds: 10.0,
            connect_timeout_seconds: 10.0,
            connect_concurrency: 32,
            slices: 2,
        }
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_seconds)
    }

    pub(crate) fn round_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.round_timeout_seconds)
    }
}

/// A histogram of nanoseconds, 1 ns to 10 minutes, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Warm a server up: one connection, `calls` calls.
pub(crate) async fn warm_up(endpoint: Endpoint, plan: &Plan) -> Result<(), String> {
    let mut ws = endpoint
        .connect(&client::room(0), None, plan.connect_timeout())
        .await?;
    for _ in 0..plan.warmup_calls {
        client::call(&mut ws, SAY_HELLO, plan.round_trip_timeout()).await?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

impl Plan {
    fn round_trip_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// How long a throughput call may wait for its answer.
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// Length of one slice of the round-trip scenario, seconds.
    pub(crate) fn round_trip_slice(&self) -> f64 {
        self.round_trip_seconds / self.slices as f64
    }

    /// Calls of one slice of the round-trip scenario.
    pub(crate) fn round_trip_slice_calls(&self) -> usize {
        self.round_trip_calls.div_ceil(self.slices)
    }

    /// Warm-up and measured time of one throughput slice.
    pub(crate) fn throughput_slice(&self) -> (Duration, Duration) {
        (
            Duration::from_secs_f64(self.throughput_warmup_seconds),
            Duration::from_secs_f64(self.throughput_seconds / self.slices as f64),
        )
    }
}

/// One connection calling `say_hello` in a loop, one call at a time; run
/// in slices so that servers can take turns.
#[derive(Debug)]
pub(crate) struct RoundTrip {
    ws: Ws,
    hist: Histogram<u64>,
    /// p50 of each slice, microseconds.
    slice_p50s: Vec<f64>,
}

impl RoundTrip {
    /// Connect and warm the connection up.
    pub(crate) async fn open(endpoint: Endpoint, plan: &Plan) -> Result<Self, String> {
        let mut ws = endpoint
            .connect(&client::room(1), None, plan.connect_timeout())
            .await?;
        for _ in 0..plan.warmup_calls {
            client::call(&mut ws, SAY_HELLO, plan.round_trip_timeout()).await?;
        }
        Ok(Self {
            ws,
            hist: histogram(),
            slice_p50s: Vec::new(),
        })
    }

    /// Up to `calls` calls, for at most `seconds`.
    pub(crate) async fn slice(&mut self, calls: usize, seconds: f64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let mut slice = histogram();
        for _ in 0..calls {
            if Instant::now() > deadline {
                break;
            }
            let start = Instant::now();
            client::call(&mut self.ws, SAY_HELLO, Duration::from_secs(10)).await?;
            let _ = slice.record(nanos(start.elapsed()));
        }
        if !slice.is_empty() {
            self.slice_p50s
                .push(slice.value_at_quantile(0.5) as f64 / 1000.0);
        }
        self.hist.add(&slice).map_err(|e| e.to_string())?;
        Ok(())
    }

    pub(crate) fn result(&self) -> (Latency, Spread) {
        (
            Latency::from_nanos(&self.hist),
            Spread::of(&self.slice_p50s),
        )
    }
}

/// Where connection `index` connects from: `None` for the default.
pub(crate) type Source = fn(usize) -> Option<IpAddr>;

/// The default source address for every connection.
fn default_source(_: usize) -> Option<IpAddr> {
    None
}

/// Spread over [`client::source_address`]'s addresses.
fn spread_source(index: usize) -> Option<IpAddr> {
    Some(client::source_address(index))
}

/// Open `count` connections (indexes from `first_index`, each from
/// `source(index)`), the plan's `connect_concurrency` at a time, each
/// with one call answered (so the server has it in its groups).
pub(crate) async fn open_many(
    endpoint: Endpoint,
    first_index: usize,
    count: usize,
    source: Source,
    plan: &Plan,
) -> Result<Vec<Ws>, String> {
    let mut out = Vec::with_capacity(count);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let timeout = plan.connect_timeout();
    let open = move |i: usize| async move {
        let index = first_index + i;
        let mut ws = endpoint
            .connect(&client::room(index), source(index), timeout)
            .await?;
        client::call(&mut ws, SAY_HELLO, timeout)
            .await
            .map_err(|e| format!("first call of connection {index}: {e}"))?;
        Ok::<_, String>(ws)
    };
    while out.len() < count {
        while next < count && pending.len() < plan.connect_concurrency {
            pending.push(open(next));
            next += 1;
        }
        match pending.next().await {
            Some(Ok(ws)) => out.push(ws),
            Some(Err(e)) => return Err(format!("after {} connections: {e}", out.len())),
            None => break,
        }
    }
    Ok(out)
}

/// What one connection did in a throughput slice: the socket back, its
/// latencies (nanoseconds), calls answered in the measured time, calls
/// failed. Latencies as a list, not a histogram: a histogram is tens of
/// kilobytes, and thousands of them made at the start of a slice would
/// hold the load generator up.
type SliceOfOne = (Ws, Vec<u64>, u64, u64);

/// `connections` connections calling `say_hello` in a closed loop (each
/// waits for its answer before the next call), measured in slices so that
/// servers can take turns.
#[derive(Debug)]
pub(crate) struct Load {
    endpoint: Endpoint,
    call_timeout: Duration,
    connections: usize,
    sockets: Vec<Ws>,
    hist: Histogram<u64>,
    calls: u64,
    errors: u64,
    seconds: f64,
    cpu_seconds: f64,
    /// CPU time of this process (the load generator) while measured.
    load_cpu_seconds: f64,
    slices: Vec<ThroughputSlice>,
}

impl Load {
    /// `connections` connections, open.
    pub(crate) async fn open(
        endpoint: Endpoint,
        connections: usize,
        plan: &Plan,
    ) -> Result<Self, String> {
        let mut load = Self::closed(endpoint, connections, plan);
        load.reopen(plan).await?;
        Ok(load)
    }

    /// A load whose connections are opened later, by
    /// [`reopen`](Self::reopen).
    pub(crate) fn closed(endpoint: Endpoint, connections: usize, plan: &Plan) -> Self {
        Self {
            endpoint,
            call_timeout: plan.call_timeout(),
            connections,
            sockets: Vec::new(),
            hist: histogram(),
            calls: 0,
            errors: 0,
            seconds: 0.0,
            cpu_seconds: 0.0,
            load_cpu_seconds: 0.0,
            slices: Vec::new(),
        }
    }

    /// Open the connections (those that failed in a slice and the ones
    /// closed by [`close`](Self::close)), each with one call answered.
    pub(crate) async fn reopen(&mut self, plan: &Plan) -> Result<(), String> {
        let source: Source = if self.connections > 100 {
            spread_source
        } else {
            default_source
        };
        let missing = self.connections.saturating_sub(self.sockets.len());
        let first = 1_000_000 + self.sockets.len();
        let sockets = open_many(self.endpoint, first, missing, source, plan).await?;
        self.sockets.extend(sockets);
        Ok(())
    }

    /// Close every connection (call within the runtime).
    pub(crate) fn close(&mut self) {
        self.sockets.clear();
    }

    /// Ramp up for `warm`, then count calls answered within `measured`,
    /// and the server's CPU time meanwhile.
    pub(crate) async fn slice(
        &mut self,
        server: &ServerProc,
        warm: Duration,
        measured: Duration,
    ) -> Result<(), String> {
        self.slice_with(Some(server), warm, measured).await
    }

    /// [`slice`](Self::slice) against a server whose process is not ours.
    async fn slice_untimed(&mut self, warm: Duration, measured: Duration) -> Result<(), String> {
        self.slice_with(None, warm, measured).await
    }

    async fn slice_with(
        &mut self,
        server: Option<&ServerProc>,
        warm: Duration,
        measured: Duration,
    ) -> Result<(), String> {
        let measure_from = Instant::now() + warm;
        let end = measure_from + measured;
        let timeout = self.call_timeout;
        let tasks: Vec<JoinHandle<SliceOfOne>> = self
            .sockets
            .drain(..)
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut calls = 0;
                    let mut errors = 0;
                    // Bounded by time, and by count should the clock misbehave.
                    for _ in 0..100_000_000u64 {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        match client::call(&mut ws, SAY_HELLO, timeout).await {
                            Ok(()) => {
                                let t1 = Instant::now();
                                // Calls answered within the measured time,
                                // whenever sent: with thousands of
                                // connections a call takes a good part of
                                // a slice, and counting only calls sent and
                                // answered within it would undercount.
                                if t1 >= measure_from && t1 <= end {
                                    calls += 1;
                                    latencies.push(nanos(t1 - t0));
                                }
                            }
                            Err(_) => {
                                errors += 1;
                                break;
                            }
                        }
                    }
                    (ws, latencies, calls, errors)
                })
            })
            .collect();
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu_start = server.and_then(ServerProc::cpu_ticks);
        let load_start = procs::cpu_ticks(std::process::id());
        tokio::time::sleep_until(end.into()).await;
        let cpu_end = server.and_then(ServerProc::cpu_ticks);
        let load_end = procs::cpu_ticks(std::process::id());
        let mut slice_hist = histogram();
        let mut slice_calls = 0;
        for task in tasks {
            let (ws, latencies, calls, errors) = task.await.map_err(|e| e.to_string())?;
            for latency in latencies {
                let _ = slice_hist.record(latency);
            }
            slice_calls += calls;
            self.errors += errors;
            if errors == 0 {
                self.sockets.push(ws);
            }
        }
        self.hist.add(&slice_hist).map_err(|e| e.to_string())?;
        self.calls += slice_calls;
        let seconds = measured.as_secs_f64();
        self.seconds += seconds;
        let ticks = |a: Option<u64>, b: Option<u64>| {
            a.zip(b)
                .map(|(a, b)| b.saturating_sub(a) as f64 / procs::ticks_per_second())
        };
        let server_cpu = ticks(cpu_start, cpu_end);
        let load_cpu = ticks(load_start, load_end);
        self.cpu_seconds += server_cpu.unwrap_or(0.0);
        self.load_cpu_seconds += load_cpu.unwrap_or(0.0);
        self.slices.push(ThroughputSlice {
            calls_per_second: slice_calls as f64 / seconds.max(f64::EPSILON),
            p50_us: slice_hist.value_at_quantile(0.5) as f64 / 1000.0,
            server_cpu_us_per_call: server_cpu
                .filter(|_| slice_calls > 0)
                .map_or(0.0, |c| c * 1e6 / slice_calls as f64),
            load_generator_cpu_percent: load_cpu.map_or(0.0, |c| 100.0 * c / seconds),
        });
        Ok(())
    }

    pub(crate) fn result(&self) -> Throughput {
        let seconds = self.seconds.max(f64::EPSILON);
        Throughput {
            connections: self.connections,
            seconds: self.seconds,
            calls: self.calls,
            calls_per_second: self.calls as f64 / seconds,
            latency: Latency::from_nanos(&self.hist),
            server_cpu_percent: 100.0 * self.cpu_seconds / seconds,
            load_generator_cpu_percent: 100.0 * self.load_cpu_seconds / seconds,
            calls_per_second_spread: Spread::of(
                &self
                    .slices
                    .iter()
                    .map(|s| s.calls_per_second)
                    .collect::<Vec<_>>(),
            ),
            slices: self.slices.clone(),
            server_cpu_us_per_call: if self.calls > 0 {
                self.cpu_seconds * 1e6 / self.calls as f64
            } else {
                0.0
            },
            errors: self.errors,
        }
    }
}

/// Who got which broadcast round, and when.
#[derive(Debug)]
pub(crate) struct Tracker {
    base: Instant,
    rounds: Mutex<HashMap<u32, Arc<Round>>>,
    duplicates: AtomicU64,
    unknown: AtomicU64,
    /// Round frames that carried a group sequence (`"seq":`).
    sequenced: AtomicU64,
    next_round: AtomicU32,
}

#[derive(Debug)]
struct Round {
    expected: usize,
    arrived: AtomicUsize,
    last_ns: AtomicU64,
    complete: Notify,
}

impl Tracker {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            rounds: Mutex::default(),
            duplicates: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            sequenced: AtomicU64::new(0),
            next_round: AtomicU32::new(1),
        })
    }

    /// A new round: numbers only grow, whoever publishes, so a subscriber
    /// can tell a repeated frame from a new one.
    fn next_round(&self) -> u32 {
        self.next_round.fetch_add(1, Ordering::Relaxed)
    }

    fn open(&self, round: u32, expected: usize) -> Arc<Round> {
        let r = Arc::new(Round {
            expected,
            arrived: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
            complete: Notify::new(),
        });
        self.rounds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(round, r.clone());
        r
    }

    fn arrive(&self, round: u32) {
        let now = nanos(self.base.elapsed());
        let r = self
            .rounds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&round)
            .cloned();
        match r {
            Some(r) => {
                r.last_ns.fetch_max(now, Ordering::Relaxed);
                if r.arrived.fetch_add(1, Ordering::AcqRel) + 1 == r.expected {
                    r.complete.notify_one();
                }
            }
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed) + self.unknown.load(Ordering::Relaxed)
    }

    /// Round frames received with a group sequence number.
    pub(crate) fn sequenced(&self) -> u64 {
        self.sequenced.load(Ordering::Relaxed)
    }
}

/// A connection that only reads: a subscriber (counted in a tracker) or a
/// publisher's own echo (ignored).
#[derive(Debug)]
struct Member {
    sink: SplitSink<Ws, Message>,
    reader: JoinHandle<()>,
}

impl Member {
    fn new(ws: Ws, tracker: Option<Arc<Tracker>>) -> Self {
        let (sink, mut stream) = ws.split();
        let reader = tokio::spawn(async move {
            let mut last: Option<u32> = None;
            while let Some(Ok(message)) = stream.next().await {
                let (Message::Text(text), Some(tracker)) = (message, &tracker) else {
                    continue;
                };
                if let Some(round) = client::round_of(&text) {
                    if text.contains("\"seq\":") {
                        tracker.sequenced.fetch_add(1, Ordering::Relaxed);
                    }
                    if last.is_some_and(|l| round <= l) {
                        tracker.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        last = Some(round);
                        tracker.arrive(round);
                    }
                }
            }
        });
        Self { sink, reader }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Subscribers on one server: connections that sit in the `broadcast`
/// group and count the rounds they receive.
#[derive(Debug)]
pub(crate) struct Pool {
    endpoint: Endpoint,
    tracker: Arc<Tracker>,
    members: Vec<Member>,
    next_index: usize,
}

impl Pool {
    pub(crate) fn new(endpoint: Endpoint, tracker: Arc<Tracker>, first_index: usize) -> Self {
        Self {
            endpoint,
            tracker,
            members: Vec::new(),
            next_index: first_index,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Open connections until there are `count`, spread over several
    /// source addresses.
    pub(crate) async fn grow(&mut self, count: usize, plan: &Plan) -> Result<(), String> {
        if count <= self.members.len() {
            return Ok(());
        }
        let more = count - self.members.len();
        let sockets = open_many(self.endpoint, self.next_index, more, spread_source, plan).await?;
        self.next_index += more;
        self.members.extend(
            sockets
                .into_iter()
                .map(|ws| Member::new(ws, Some(self.tracker.clone()))),
        );
        Ok(())
    }

    /// Close connections until there are `count`.
    pub(crate) fn shrink(&mut self, count: usize) {
        self.members.truncate(count);
    }
}

/// The connection that calls `notify_all`.
#[derive(Debug)]
pub(crate) struct Publisher {
    member: Member,
}

impl Publisher {
    pub(crate) async fn connect(
        endpoint: Endpoint,
        index: usize,
        plan: &Plan,
    ) -> Result<Self, String> {
        let mut ws = endpoint
            .connect(&client::room(index), None, plan.connect_timeout())
            .await?;
        client::call(&mut ws, SAY_HELLO, plan.connect_timeout()).await?;
        Ok(Self {
            member: Member::new(ws, None),
        })
    }

    async fn publish(&mut self, round: u32) -> Result<(), String> {
        self.member
            .sink
            .send(Message::text(client::notify_all(round)))
            .await
            .map_err(|e| format!("publishing: {e}"))
    }
}

/// A fan-out measured over rounds: one `notify_all` at a time, waiting for
/// all `expected` subscribers of a tracker before the next.
#[derive(Debug)]
pub(crate) struct FanOutRun {
    tracker: Arc<Tracker>,
    expected: usize,
    hist: Histogram<u64>,
    opened: Vec<Arc<Round>>,
    timed_out: u64,
    duplicates_before: u64,
    /// CPU time of the load generator (this process) during the rounds,
    /// and the rounds' wall time, nanoseconds.
    load_cpu_ns: u64,
    rounds_ns: u64,
}

impl FanOutRun {
    pub(crate) fn new(tracker: &Arc<Tracker>, expected: usize) -> Self {
        Self {
            tracker: tracker.clone(),
            expected,
            hist: histogram(),
            opened: Vec::new(),
            timed_out: 0,
            duplicates_before: tracker.duplicates(),
            load_cpu_ns: 0,
            rounds_ns: 0,
        }
    }

    /// One round: `publisher` calls `notify_all`; the time until the last
    /// subscriber has the frame is recorded.
    pub(crate) async fn round(
        &mut self,
        publisher: &mut Publisher,
        timeout: Duration,
    ) -> Result<(), String> {
        self.round_with(|id| publisher.publish(id), timeout).await
    }

    /// [`round`](Self::round) with another way of publishing round `id`
    /// (which must send a frame containing [`client::ROUND_TAG`] and `id`
    /// to the tracker's subscribers).
    pub(crate) async fn round_with<F>(
        &mut self,
        publish: impl FnOnce(u32) -> F,
        timeout: Duration,
    ) -> Result<(), String>
    where
        F: Future<Output = Result<(), String>>,
    {
        let id = self.tracker.next_round();
        let round = self.tracker.open(id, self.expected);
        let cpu_before = procs::process_cpu_ns();
        let start = nanos(self.tracker.base.elapsed());
        publish(id).await?;
        let expected = self.expected;
        let complete = tokio::time::timeout(timeout, async {
            while round.arrived.load(Ordering::Acquire) < expected {
                round.complete.notified().await;
            }
        })
        .await;
        self.rounds_ns += nanos(self.tracker.base.elapsed()).saturating_sub(start);
        if let (Some(a), Some(b)) = (cpu_before, procs::process_cpu_ns()) {
            self.load_cpu_ns += b.saturating_sub(a);
        }
        match complete {
            Ok(()) => {
                let last = round.last_ns.load(Ordering::Relaxed);
                let _ = self.hist.record(last.saturating_sub(start).max(1));
            }
            Err(_) => self.timed_out += 1,
        }
        self.opened.push(round);
        Ok(())
    }

    /// Count what never arrived and what arrived twice, after a moment
    /// for late frames.
    pub(crate) async fn finish(self) -> FanOut {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let missing = self
            .opened
            .iter()
            .map(|r| r.expected.saturating_sub(r.arrived.load(Ordering::Acquire)) as u64)
            .sum();
        FanOut {
            subscribers: self.expected,
            rounds: self.hist.len(),
            last_delivery: Latency::from_nanos(&self.hist),
            missing,
            duplicates: self.tracker.duplicates() - self.duplicates_before,
            timed_out_rounds: self.timed_out,
            load_generator_cpu_percent: (self.rounds_ns > 0)
                .then(|| 100.0 * self.load_cpu_ns as f64 / self.rounds_ns as f64),
        }
    }
}

/// [`FanOutRun`] for the plan's rounds, stopping early past the plan's
/// fan-out time.
pub(crate) async fn fan_out(
    publisher: &mut Publisher,
    tracker: &Arc<Tracker>,
    expected: usize,
    plan: &Plan,
) -> Result<FanOut, String> {
    let mut run = FanOutRun::new(tracker, expected);
    let phase_end = Instant::now() + Duration::from_secs_f64(plan.fan_out_seconds);
    for _ in 0..plan.fan_out_rounds {
        if Instant::now() > phase_end {
            break;
        }
        run.round(publisher, plan.round_timeout()).await?;
    }
    Ok(run.finish().await)
}

/// Single-subscriber delivery, alternating a call on the subscriber's own
/// node (`same`) and on another node (`other`): p50/p99 of each, measured
/// under the same conditions. Returns `(same node, other node, missing)`.
pub(crate) async fn cross_node_latency(
    arms: &mut [&mut Publisher],
    tracker: &Arc<Tracker>,
    plan: &Plan,
) -> Result<(Vec<Latency>, u64), String> {
    let mut hists: Vec<Histogram<u64>> = arms.iter().map(|_| histogram()).collect();
    let mut missing = 0;
    for _ in 0..plan.cross_node_rounds {
        for (publisher, hist) in arms.iter_mut().zip(hists.iter_mut()) {
            let id = tracker.next_round();
            let round = tracker.open(id, 1);
            let start = nanos(tracker.base.elapsed());
            publisher.publish(id).await?;
            let complete = tokio::time::timeout(plan.round_timeout(), async {
                while round.arrived.load(Ordering::Acquire) < 1 {
                    round.complete.notified().await;
                }
            })
            .await;
            if complete.is_ok() {
                let last = round.last_ns.load(Ordering::Relaxed);
                let _ = hist.record(last.saturating_sub(start).max(1));
            } else {
                missing += 1;
            }
        }
    }
    Ok((hists.iter().map(Latency::from_nanos).collect(), missing))
}

impl Publisher {
    /// Publish warm-up rounds until `tracker`'s subscribers (`expected`)
    /// all got one, or `within` passed: a node subscribes to Redis
    /// channels in the background, after its first member joins.
    pub(crate) async fn until_delivered(
        &mut self,
        tracker: &Arc<Tracker>,
        expected: usize,
        within: Duration,
    ) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let id = tracker.next_round();
            let round = tracker.open(id, expected);
            if self.publish(id).await.is_err() {
                return false;
            }
            let done = tokio::time::timeout(Duration::from_millis(200), async {
                while round.arrived.load(Ordering::Acquire) < expected {
                    round.complete.notified().await;
                }
            })
            .await;
            if done.is_ok() {
                return true;
            }
        }
        false
    }
}

/// `liveview-bench drive`: load a server started by hand, for profiling.
/// `calls` runs the throughput loop, `idle` holds connections open,
/// `broadcast` publishes rounds to the held connections; each for
/// `seconds`.
pub(crate) async fn drive(
    endpoint: Endpoint,
    what: &str,
    connections: usize,
    seconds: f64,
) -> Result<String, String> {
    let plan = Plan::full();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    match what {
        "calls" => {
            let mut load = Load::open(endpoint, connections, &plan).await?;
            let warm = Duration::from_millis(200);
            let measured = Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let mut calls_before = 0;
            let mut rounds = 0;
            while Instant::now() < until && rounds < 1_000 {
                rounds += 1;
                let chunk = measured.min(Duration::from_secs(1));
                load.slice_untimed(warm, chunk).await?;
                let calls = load.calls;
                eprintln!(
                    "{} calls/s",
                    (calls - calls_before) as f64 / chunk.as_secs_f64()
                );
                calls_before = calls;
            }
            Ok(format!(
                "{} calls in {:.1} s",
                load.calls,
                started.elapsed().as_secs_f64()
            ))
        }
        "idle" | "broadcast" => {
            let tracker = Tracker::new();
            let mut publisher = Publisher::connect(endpoint, 2, &plan).await?;
            let mut pool = Pool::new(endpoint, tracker.clone(), 10);
            pool.grow(connections, &plan).await?;
            eprintln!("{connections} connections open");
            let mut run = FanOutRun::new(&tracker, connections);
            let mut rounds = 0;
            while Instant::now() < until {
                if what == "broadcast" && rounds < 1_000_000 {
                    rounds += 1;
                    run.round(&mut publisher, Duration::from_secs(10)).await?;
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let f = run.finish().await;
            Ok(format!(
                "{} rounds, last subscriber p50 {:.2} ms p99 {:.2} ms, {} missing",
                f.rounds,
                f.last_delivery.p50_us / 1000.0,
                f.last_delivery.p99_us / 1000.0,
                f.missing
            ))
        }
        other => Err(format!("unknown load {other}: calls, idle or broadcast")),
    }
}
