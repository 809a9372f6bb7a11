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
use crate::pace::{Pacer, Schedule, Ticket};
use crate::procs::{self, ServerProc, ThreadTimes};
use crate::report::{FanOut, Latency, Spread, Throughput, ThroughputSlice};
use crate::wire::{Conn, SAY_HELLO_FRAME};

/// Sizes and durations of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub warmup_calls: usize,
    pub round_trip_calls: usize,
    pub round_trip_seconds: f64,
    /// Each turn of the round trip is cut into this many slices, the
    /// servers taking turns slice by slice: short slices, so that a
    /// machine that changes pace within a second weighs on every server
    /// alike.
    pub round_trip_slices_per_turn: usize,
    pub throughput_connections: Vec<usize>,
    /// Throughput levels from this many connections on open their
    /// connections for each slice and close them after it, one server at a
    /// time: every server's connections held at once would pass the
    /// open-files limit of the load generator's process.
    pub throughput_reopened_from: usize,
    pub throughput_warmup_seconds: f64,
    /// Measured time of each server at each level, seconds: cut into
    /// `slices` turns of `throughput_slices_per_turn` slices each.
    pub throughput_seconds: f64,
    /// Slices of a turn: measured back to back on the same connections,
    /// each its own figure (calls, server CPU per call, load generator
    /// CPU), so that the median and spread are over many short slices.
    pub throughput_slices_per_turn: usize,
    /// The fixed rate offered to every server at each throughput level, as
    /// a share of the floor's median saturated calls per second there (in
    /// the same run).
    pub fixed_rate_fraction: f64,
    /// Measured time of each server at each level at the fixed rate,
    /// seconds: cut into `slices` turns of `fixed_rate_slices_per_turn`
    /// slices each, after a ramp of `throughput_warmup_seconds`.
    pub fixed_rate_seconds: f64,
    pub fixed_rate_slices_per_turn: usize,
    /// The pacer's tick at the fixed rate, microseconds: calls fall due
    /// evenly, and are released at the first tick at or after their time.
    pub fixed_rate_tick_us: u64,
    /// Idle connection counts at which the server's memory is read.
    pub idle_connections: Vec<usize>,
    /// Subscriber counts of the fan-out scenario.
    pub fan_out_subscribers: Vec<usize>,
    /// The most rounds of each server at each subscriber count.
    pub fan_out_rounds: usize,
    /// A server's rounds stop once they have taken this long, seconds, at
    /// each subscriber count (slow servers), or once one timed out.
    pub fan_out_seconds: f64,
    /// A server's rounds are cut into this many blocks, in order, each
    /// with its own p50 and p99: their spread shows how much the tail
    /// moves within the run.
    pub fan_out_blocks: usize,
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
    /// turns (of `round_trip_slices_per_turn` slices of the round trip, of
    /// `throughput_slices_per_turn` slices of throughput), run server after
    /// server, so that a machine whose load drifts (other work on it) weighs
    /// on every server alike.
    pub slices: usize,
}

impl Plan {
    /// The documented full run.
    pub(crate) fn full() -> Self {
        Self {
            warmup_calls: 500,
            round_trip_calls: 40_000,
            round_trip_seconds: 10.0,
            round_trip_slices_per_turn: 8,
            throughput_connections: vec![50, 500, 5_000],
            throughput_reopened_from: 5_000,
            throughput_warmup_seconds: 0.3,
            throughput_seconds: 5.0,
            throughput_slices_per_turn: 4,
            fixed_rate_fraction: 0.5,
            fixed_rate_seconds: 2.5,
            fixed_rate_slices_per_turn: 2,
            fixed_rate_tick_us: 250,
            idle_connections: vec![1_000, 10_000],
            fan_out_subscribers: vec![10_000, 1_000, 100],
            fan_out_rounds: 3_000,
            fan_out_seconds: 30.0,
            fan_out_blocks: 5,
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
            round_trip_slices_per_turn: 2,
            throughput_connections: vec![10, 20],
            throughput_reopened_from: 20,
            throughput_warmup_seconds: 0.1,
            throughput_seconds: 0.8,
            throughput_slices_per_turn: 2,
            // The debug build of CI's smoke run answers a third of the
            // floor's calls on our servers: a tenth of the floor's rate
            // keeps every server offered it, the code paths the same.
            fixed_rate_fraction: 0.1,
            fixed_rate_seconds: 0.4,
            fixed_rate_slices_per_turn: 2,
            fixed_rate_tick_us: 250,
            idle_connections: vec![200],
            fan_out_subscribers: vec![200, 20],
            fan_out_rounds: 20,
            fan_out_seconds: 5.0,
            fan_out_blocks: 2,
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

    /// Slices of the round-trip scenario, per server.
    pub(crate) fn round_trip_slices(&self) -> usize {
        self.slices.max(1) * self.round_trip_slices_per_turn.max(1)
    }

    /// Length of one slice of the round-trip scenario, seconds.
    pub(crate) fn round_trip_slice(&self) -> f64 {
        self.round_trip_seconds / self.round_trip_slices() as f64
    }

    /// Calls of one slice of the round-trip scenario.
    pub(crate) fn round_trip_slice_calls(&self) -> usize {
        self.round_trip_calls.div_ceil(self.round_trip_slices())
    }

    /// The shape of one throughput turn: its ramp, then its slices.
    pub(crate) fn throughput_turn(&self) -> Turn {
        let slices = self.throughput_slices_per_turn.max(1);
        Turn {
            warm: Duration::from_secs_f64(self.throughput_warmup_seconds),
            slice: Duration::from_secs_f64(
                self.throughput_seconds / (self.slices.max(1) * slices) as f64,
            ),
            slices,
        }
    }

    /// The pacer's tick at the fixed rate.
    pub(crate) fn fixed_rate_tick(&self) -> Duration {
        Duration::from_micros(self.fixed_rate_tick_us)
    }

    /// The shape of one turn at the fixed rate: the same ramp, then its
    /// slices.
    pub(crate) fn fixed_rate_turn(&self) -> Turn {
        let slices = self.fixed_rate_slices_per_turn.max(1);
        Turn {
            warm: Duration::from_secs_f64(self.throughput_warmup_seconds),
            slice: Duration::from_secs_f64(
                self.fixed_rate_seconds / (self.slices.max(1) * slices) as f64,
            ),
            slices,
        }
    }
}

/// One connection calling `say_hello` in a loop, one call at a time; run
/// in slices so that servers can take turns.
#[derive(Debug)]
pub(crate) struct RoundTrip {
    conn: Conn,
    hist: Histogram<u64>,
    /// p50 of each slice, microseconds.
    slice_p50s: Vec<f64>,
}

impl RoundTrip {
    /// Connect and warm the connection up.
    pub(crate) async fn open(endpoint: Endpoint, plan: &Plan) -> Result<Self, String> {
        let mut conn =
            Conn::connect(&endpoint, &client::room(1), None, plan.connect_timeout()).await?;
        for _ in 0..plan.warmup_calls {
            tokio::time::timeout(plan.round_trip_timeout(), conn.call(&SAY_HELLO_FRAME))
                .await
                .map_err(|_| "no answer in time".to_owned())??;
        }
        Ok(Self {
            conn,
            hist: histogram(),
            slice_p50s: Vec::new(),
        })
    }

    /// Up to `calls` calls, for at most `seconds`; a call not answered
    /// within the call timeout after that is an error.
    pub(crate) async fn slice(&mut self, calls: usize, seconds: f64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let give_up = tokio::time::sleep_until((deadline + Duration::from_secs(10)).into());
        tokio::pin!(give_up);
        let mut slice = histogram();
        for _ in 0..calls {
            if Instant::now() > deadline {
                break;
            }
            let start = Instant::now();
            tokio::select! {
                biased;
                answered = self.conn.call(&SAY_HELLO_FRAME) => answered?,
                () = &mut give_up => return Err("no answer in time".to_owned()),
            }
            let _ = slice.record(nanos(start.elapsed()));
        }
        if !slice.is_empty() {
            self.slice_p50s
                .push(slice.value_at_quantile(0.5) as f64 / 1000.0);
        }
        self.hist.add(&slice).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The latency over every slice, the spread of the slices' p50s, and
    /// those p50s in the order the slices ran.
    pub(crate) fn result(&self) -> (Latency, Spread, Vec<f64>) {
        (
            Latency::from_nanos(&self.hist),
            Spread::of(&self.slice_p50s),
            self.slice_p50s.clone(),
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

/// `count` results of `open(i)`, `concurrency` at a time; the first error
/// stops it.
async fn open_concurrently<T, F, Fut>(
    count: usize,
    concurrency: usize,
    open: F,
) -> Result<Vec<T>, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut out = Vec::with_capacity(count);
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while out.len() < count {
        while next < count && pending.len() < concurrency {
            pending.push(open(next));
            next += 1;
        }
        match pending.next().await {
            Some(Ok(c)) => out.push(c),
            Some(Err(e)) => return Err(format!("after {} connections: {e}", out.len())),
            None => break,
        }
    }
    Ok(out)
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
    let timeout = plan.connect_timeout();
    open_concurrently(
        count,
        plan.connect_concurrency,
        move |i: usize| async move {
            let index = first_index + i;
            let mut ws = endpoint
                .connect(&client::room(index), source(index), timeout)
                .await?;
            client::call(&mut ws, SAY_HELLO, timeout)
                .await
                .map_err(|e| format!("first call of connection {index}: {e}"))?;
            Ok::<_, String>(ws)
        },
    )
    .await
}

/// [`open_many`] with the minimal client of the timed calls.
async fn open_many_calling(
    endpoint: Endpoint,
    first_index: usize,
    count: usize,
    source: Source,
    plan: &Plan,
) -> Result<Vec<Conn>, String> {
    let timeout = plan.connect_timeout();
    open_concurrently(
        count,
        plan.connect_concurrency,
        move |i: usize| async move {
            let index = first_index + i;
            let mut conn =
                Conn::connect(&endpoint, &client::room(index), source(index), timeout).await?;
            tokio::time::timeout(timeout, conn.call(&SAY_HELLO_FRAME))
                .await
                .map_err(|_| "no answer in time".to_owned())
                .and_then(|answered| answered)
                .map_err(|e| format!("first call of connection {index}: {e}"))?;
            Ok::<_, String>(conn)
        },
    )
    .await
}

/// The shape of a throughput turn: a ramp of `warm` (calls answered then
/// are not counted), then `slices` slices of `slice`, back to back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Turn {
    pub warm: Duration,
    pub slice: Duration,
    pub slices: usize,
}

/// What one connection did in a turn: the socket back, its answered
/// calls (when answered, and the call's latency in nanoseconds), and
/// whether it failed. Calls as a list, not a histogram: a histogram is
/// tens of kilobytes, and thousands of them made at the start of a turn
/// would hold the load generator up.
type TurnOfOne = (Conn, Vec<(Instant, u64)>, bool);

/// The moment a slice boundary was taken, with the CPU time of the server
/// and of the load generator then.
struct Mark {
    at: Instant,
    server: Option<ThreadTimes>,
    load: ThreadTimes,
}

impl Mark {
    fn now(server: Option<&ServerProc>) -> Self {
        Self {
            server: server.map(ServerProc::thread_times),
            load: ThreadTimes::of_self(),
            at: Instant::now(),
        }
    }
}

/// Add the boundary `mark` (taken at `at(&mark)`) after `marks`, the
/// boundaries of slices of `slice` so far. A boundary reached late (the
/// load generator waited for a core) is followed at once by the next: no
/// slice shorter than half its length is made; the one before grows
/// instead, up to the `last` boundary, which is always kept.
fn push_boundary<M>(
    marks: &mut Vec<M>,
    mark: M,
    at: impl Fn(&M) -> Instant,
    slice: Duration,
    last: bool,
) {
    let previous = marks.last().map_or(at(&mark), &at);
    if at(&mark).duration_since(previous) < slice / 2 {
        if !last {
            return;
        }
        if marks.len() > 1 {
            marks.pop();
        }
    }
    marks.push(mark);
}

/// `connections` connections calling `say_hello` in a closed loop (each
/// waits for its answer before the next call), measured in turns of
/// slices so that servers can take turns.
#[derive(Debug)]
pub(crate) struct Load {
    endpoint: Endpoint,
    call_timeout: Duration,
    connections: usize,
    sockets: Vec<Conn>,
    hist: Histogram<u64>,
    calls: u64,
    errors: u64,
    seconds: f64,
    cpu_seconds: f64,
    /// CPU time of this process (the load generator) while measured.
    load_cpu_seconds: f64,
    turns: usize,
    slices: Vec<ThroughputSlice>,
    /// The fixed rate of the turns, calls per second; `None` for calls
    /// in a closed loop (saturation).
    offered_per_second: Option<f64>,
    /// The pacer's tick at the fixed rate.
    tick: Duration,
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
            turns: 0,
            slices: Vec::new(),
            offered_per_second: None,
            tick: Duration::ZERO,
        }
    }

    /// Open the connections (those that failed in a turn and the ones
    /// closed by [`close`](Self::close)), each with one call answered.
    pub(crate) async fn reopen(&mut self, plan: &Plan) -> Result<(), String> {
        let source: Source = if self.connections > 100 {
            spread_source
        } else {
            default_source
        };
        let missing = self.connections.saturating_sub(self.sockets.len());
        let first = 1_000_000 + self.sockets.len();
        let sockets = open_many_calling(self.endpoint, first, missing, source, plan).await?;
        self.sockets.extend(sockets);
        Ok(())
    }

    /// Close every connection (call within the runtime).
    pub(crate) fn close(&mut self) {
        self.sockets.clear();
    }

    /// One turn: ramp up, then count calls answered within each slice,
    /// and the server's and the load generator's CPU time meanwhile.
    pub(crate) async fn turn(&mut self, server: &ServerProc, shape: Turn) -> Result<(), String> {
        self.turn_with(Some(server), shape).await
    }

    /// One turn at the fixed rate of `rate` calls per second, paced by a
    /// [`Pacer`] over the connections from the start of the ramp, on a
    /// grid of `tick`.
    pub(crate) async fn paced_turn(
        &mut self,
        server: &ServerProc,
        shape: Turn,
        rate: f64,
        tick: Duration,
    ) -> Result<(), String> {
        self.offered_per_second = Some(rate);
        self.tick = tick;
        self.turn_with(Some(server), shape).await
    }

    async fn turn_with(&mut self, server: Option<&ServerProc>, shape: Turn) -> Result<(), String> {
        let started = Instant::now();
        let measure_from = started + shape.warm;
        let end = measure_from + shape.slice * shape.slices as u32;
        // A call still unanswered this long after the turn is an error;
        // one timer per connection and turn, not one per call.
        let give_up = end + self.call_timeout;
        let frame: &'static [u8] = &SAY_HELLO_FRAME;
        let schedule = self.offered_per_second.map(|rate| Schedule {
            rate,
            connections: self.sockets.len(),
            tick: self.tick,
        });
        let (pacer, tickets): (Option<Pacer>, Vec<Ticket>) = match schedule {
            Some(schedule) => {
                let (pacer, tickets) = Pacer::start(schedule, started, end)?;
                (Some(pacer), tickets)
            }
            None => (None, Vec::new()),
        };
        let mut tickets = tickets.into_iter();
        let tasks: Vec<JoinHandle<TurnOfOne>> = self
            .sockets
            .drain(..)
            .map(|mut conn| {
                let mut ticket = tickets.next();
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    let mut failed = false;
                    let deadline = tokio::time::sleep_until(give_up.into());
                    tokio::pin!(deadline);
                    // Bounded by time, and by count should the clock misbehave.
                    for _ in 0..100_000_000u64 {
                        if let Some(ticket) = &mut ticket {
                            // At the fixed rate: the next call released to
                            // this connection, or the end of the turn.
                            tokio::select! {
                                biased;
                                released = ticket.next() => if !released { break },
                                () = &mut deadline => {
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        tokio::select! {
                            biased;
                            call = conn.call(frame) => {
                                if call.is_err() {
                                    failed = true;
                                    break;
                                }
                                // Counted by when the answer came,
                                // whenever the call was sent: with
                                // thousands of connections a call takes a
                                // good part of a slice.
                                let t1 = Instant::now();
                                if t1 >= measure_from {
                                    answered.push((t1, nanos(t1 - t0)));
                                }
                            }
                            () = &mut deadline => {
                                failed = true;
                                break;
                            }
                        }
                    }
                    (conn, answered, failed)
                })
            })
            .collect();
        tokio::time::sleep_until(measure_from.into()).await;
        let mut marks = vec![Mark::now(server)];
        for k in 1..=shape.slices {
            tokio::time::sleep_until((measure_from + shape.slice * k as u32).into()).await;
            let last = k == shape.slices;
            push_boundary(&mut marks, Mark::now(server), |m| m.at, shape.slice, last);
        }
        // After the last mark: the pacer's thread is counted until then.
        if let Some(pacer) = pacer {
            pacer.stop();
        }
        let mut hists: Vec<Histogram<u64>> = (0..shape.slices).map(|_| histogram()).collect();
        let mut counts = vec![0u64; shape.slices];
        for task in tasks {
            let (conn, answered, failed) = task.await.map_err(|e| e.to_string())?;
            for (t1, latency) in answered {
                // The slice whose marks bracket the answer.
                let Some(k) = marks.windows(2).position(|w| t1 >= w[0].at && t1 < w[1].at) else {
                    continue;
                };
                counts[k] += 1;
                let _ = hists[k].record(latency);
            }
            if failed {
                self.errors += 1;
            } else {
                self.sockets.push(conn);
            }
        }
        self.turns += 1;
        for (k, w) in marks.windows(2).enumerate() {
            let seconds = (w[1].at - w[0].at).as_secs_f64().max(f64::EPSILON);
            let server_cpu = match (&w[0].server, &w[1].server) {
                (Some(a), Some(b)) => b.since(a).map(|ns| ns as f64 / 1e9),
                _ => None,
            };
            let load_cpu = w[1].load.since(&w[0].load).map(|ns| ns as f64 / 1e9);
            let calls = counts[k];
            // The calls the pacer made due within the slice.
            let offered = schedule.map(|s| {
                let due = s.due_between(w[0].at - started, w[1].at - started);
                due as f64 / seconds
            });
            self.hist.add(&hists[k]).map_err(|e| e.to_string())?;
            self.calls += calls;
            self.seconds += seconds;
            self.cpu_seconds += server_cpu.unwrap_or(0.0);
            self.load_cpu_seconds += load_cpu.unwrap_or(0.0);
            self.slices.push(ThroughputSlice {
                turn: self.turns,
                seconds,
                calls,
                calls_per_second: calls as f64 / seconds,
                offered_per_second: offered,
                p50_us: hists[k].value_at_quantile(0.5) as f64 / 1000.0,
                p99_us: (!hists[k].is_empty())
                    .then(|| hists[k].value_at_quantile(0.99) as f64 / 1000.0),
                server_cpu_us_per_call: server_cpu
                    .filter(|_| calls > 0)
                    .map_or(0.0, |c| c * 1e6 / calls as f64),
                load_generator_cpu_percent: load_cpu.map_or(0.0, |c| 100.0 * c / seconds),
                load_generator_cpu_us_per_call: load_cpu
                    .filter(|_| calls > 0)
                    .map(|c| c * 1e6 / calls as f64),
            });
        }
        Ok(())
    }

    pub(crate) fn result(&self) -> Throughput {
        let seconds = self.seconds.max(f64::EPSILON);
        let of = |pick: fn(&ThroughputSlice) -> Option<f64>| {
            Spread::of(&self.slices.iter().filter_map(pick).collect::<Vec<_>>())
        };
        Throughput {
            connections: self.connections,
            seconds: self.seconds,
            calls: self.calls,
            calls_per_second: self.calls as f64 / seconds,
            offered_per_second: self.offered_per_second,
            latency: Latency::from_nanos(&self.hist),
            server_cpu_percent: 100.0 * self.cpu_seconds / seconds,
            load_generator_cpu_percent: 100.0 * self.load_cpu_seconds / seconds,
            calls_per_second_spread: of(|s| Some(s.calls_per_second)),
            // Slices without an answered call have no CPU per call.
            server_cpu_us_per_call_spread: of(|s| {
                (s.calls > 0 && s.server_cpu_us_per_call > 0.0).then_some(s.server_cpu_us_per_call)
            }),
            load_generator_cpu_percent_spread: of(|s| Some(s.load_generator_cpu_percent)),
            turns: self.turns,
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
    /// Each complete round's time until the last subscriber, in order.
    round_ns: Vec<u64>,
    /// Blocks the rounds are cut into for their spread.
    blocks: usize,
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
            round_ns: Vec::new(),
            blocks: 1,
        }
    }

    /// Cut the rounds into `blocks` blocks, in order, for their spread.
    pub(crate) fn with_blocks(mut self, blocks: usize) -> Self {
        self.blocks = blocks.max(1);
        self
    }

    /// A run of the plan's fan-out: its blocks.
    pub(crate) fn planned(tracker: &Arc<Tracker>, expected: usize, plan: &Plan) -> Self {
        Self::new(tracker, expected).with_blocks(plan.fan_out_blocks)
    }

    /// Whether this server's rounds are over: the plan's rounds done, its
    /// time for them used, or a round timed out (a server that could not
    /// deliver one round within the round timeout would spend the rest of
    /// the time on the next).
    pub(crate) fn done(&self, plan: &Plan) -> bool {
        self.hist.len() + self.timed_out >= plan.fan_out_rounds as u64
            || self.rounds_ns as f64 >= plan.fan_out_seconds * 1e9
            || self.timed_out > 0
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
                let took = last.saturating_sub(start).max(1);
                let _ = self.hist.record(took);
                self.round_ns.push(took);
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
        let blocks = blocks_of(&self.round_ns, self.blocks);
        FanOut {
            subscribers: self.expected,
            rounds: self.hist.len(),
            last_delivery: Latency::from_nanos(&self.hist),
            last_delivery_p90_us: (!self.hist.is_empty())
                .then(|| self.hist.value_at_quantile(0.90) as f64 / 1000.0),
            blocks,
            missing,
            duplicates: self.tracker.duplicates() - self.duplicates_before,
            timed_out_rounds: self.timed_out,
            load_generator_cpu_percent: (self.rounds_ns > 0)
                .then(|| 100.0 * self.load_cpu_ns as f64 / self.rounds_ns as f64),
        }
    }
}

/// `rounds` (nanoseconds, in the order they ran) cut into `blocks`
/// consecutive blocks of (nearly) equal size, none empty: the latency of
/// each.
pub(crate) fn blocks_of(rounds: &[u64], blocks: usize) -> Vec<Latency> {
    let blocks = blocks.min(rounds.len()).max(1);
    (0..blocks)
        .filter_map(|b| {
            let part = &rounds[b * rounds.len() / blocks..(b + 1) * rounds.len() / blocks];
            let mut h = histogram();
            for ns in part {
                let _ = h.record(*ns);
            }
            (!h.is_empty()).then(|| Latency::from_nanos(&h))
        })
        .collect()
}

/// [`FanOutRun`] for the plan's rounds, stopping early once a server has
/// used the plan's fan-out time (or a round timed out).
pub(crate) async fn fan_out(
    publisher: &mut Publisher,
    tracker: &Arc<Tracker>,
    expected: usize,
    plan: &Plan,
) -> Result<FanOut, String> {
    let mut run = FanOutRun::planned(tracker, expected, plan);
    // Bounded by the plan's rounds (and time).
    for _ in 0..plan.fan_out_rounds {
        if run.done(plan) {
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
                let shape = Turn {
                    warm,
                    slice: chunk,
                    slices: 1,
                };
                load.turn_with(None, shape).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_boundaries_make_no_short_slices() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let slice = Duration::from_millis(250);
        let place = |taken: &[u64]| {
            let mut marks = vec![ms(0)];
            for (i, t) in taken.iter().enumerate() {
                push_boundary(&mut marks, ms(*t), |m| *m, slice, i + 1 == taken.len());
            }
            marks
                .windows(2)
                .map(|w| (w[1] - w[0]).as_millis() as u64)
                .collect::<Vec<_>>()
        };
        assert_eq!(place(&[250, 500, 750, 1000]), [250, 250, 250, 250]);
        // The second boundary came 400 ms late: the third follows at once
        // and is skipped; the last, 100 ms after, closes the slice before.
        assert_eq!(place(&[250, 900, 901, 1000]), [250, 750]);
        assert_eq!(place(&[250, 650, 651, 1000]), [250, 400, 350]);
        // A late last boundary closes the slice before it.
        assert_eq!(place(&[250, 500, 990, 1000]), [250, 250, 500]);
        assert_eq!(place(&[1000]), [1000]);
    }

    #[test]
    fn rounds_are_cut_into_blocks_in_order() {
        // 1 ms to 1,000 ms, in order: five blocks of 200 rounds.
        let rounds: Vec<u64> = (1..=1_000).map(|ms| ms * 1_000_000).collect();
        let blocks = blocks_of(&rounds, 5);
        assert_eq!(blocks.len(), 5);
        assert!(blocks.iter().all(|b| b.samples == 200));
        // The first block's p99 is its 198th round, not its last.
        assert!(
            (blocks[0].p99_us / 1000.0 - 198.0).abs() < 1.0,
            "{:?}",
            blocks[0]
        );
        assert!((blocks[4].max_us / 1000.0 - 1_000.0).abs() < 1.0);
        // Fewer rounds than blocks: one block per round; none: one empty
        // block left out.
        assert_eq!(blocks_of(&rounds[..3], 5).len(), 3);
        assert!(blocks_of(&[], 5).is_empty());
        // Uneven: every round in exactly one block.
        let uneven = blocks_of(&rounds[..11], 5);
        assert_eq!(uneven.iter().map(|b| b.samples).sum::<u64>(), 11);
    }
}
