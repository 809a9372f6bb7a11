//! The cost of the replay log on the broadcast path.
//!
//! Servers with and without the log (per layer) run in this process, each
//! with the same number of real WebSocket subscribers. They take turns
//! publish by publish, and each `Broadcaster::broadcast` call is timed in
//! the server, so the ratio log on / log off is taken side by side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use liveview::layer::{MemoryLayer, RedisLayer, ReplayConfig};
use liveview::{Broadcaster, LiveView, Update};
use tokio::runtime::{Handle, Runtime};

use crate::client::{Endpoint, ROUND_TAG};
use crate::procs;
use crate::report::{self, Latency, ReplayArm, ReplayLog};
use crate::scenarios::{self, FanOutRun, Plan, Pool, Tracker};
use crate::server::Layer;

/// What the scenario needs from the run.
#[derive(Debug)]
pub(crate) struct Setup<'a> {
    /// The load generator's runtime.
    pub runtime: &'a Runtime,
    pub plan: &'a Plan,
    /// The layers to measure, each with and without the log.
    pub layers: Vec<Layer>,
    pub redis_url: String,
    /// Prefix of the Redis keys and channels of this run.
    pub prefix: String,
    /// Put the servers' thread on core 0 (the load generator is on core 1).
    pub pin: bool,
    /// Open files available to this process.
    pub nofile: u64,
}

/// What the scenario measured, and what did not work.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub result: ReplayLog,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

/// Run the scenario at each of the plan's subscriber counts.
pub(crate) fn run(setup: &Setup<'_>) -> Outcome {
    let mut outcome = Outcome {
        result: ReplayLog {
            method: String::new(),
            arms: Vec::new(),
            ratios: Vec::new(),
        },
        failures: Vec::new(),
        notes: Vec::new(),
    };
    let arms: Vec<(Layer, bool)> = setup
        .layers
        .iter()
        .flat_map(|layer| [(*layer, true), (*layer, false)])
        .collect();
    let mut pinned = false;
    for &n in &setup.plan.replay_log_subscribers {
        // A client socket and a server socket per subscriber, here.
        let sockets = 2 * n * arms.len();
        if sockets as u64 + 512 > setup.nofile {
            outcome.notes.push(format!(
                "replay log with {} subscribers not measured: the open-files limit is {}",
                report::thousands(n as u64),
                setup.nofile
            ));
            continue;
        }
        eprintln!(
            "== replay log, {n} subscribers, taking turns: {}",
            arms.iter()
                .map(|(layer, log)| arm_name(*layer, *log))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let servers: Result<Vec<ServerThread>, String> = arms
            .iter()
            .map(|_| ServerThread::start(setup.pin))
            .collect();
        let servers = match servers {
            Ok(s) => s,
            Err(e) => {
                outcome
                    .failures
                    .push(format!("replay log: server thread: {e}"));
                return outcome;
            }
        };
        pinned = servers.iter().all(|s| s.pinned);
        match setup.runtime.block_on(measure(setup, &servers, &arms, n)) {
            Ok((measured, failures)) => {
                outcome.result.arms.extend(measured);
                outcome.failures.extend(failures);
            }
            Err(e) => outcome
                .failures
                .push(format!("replay log with {n} subscribers: {e}")),
        }
        drop(servers);
    }
    outcome.result.ratios = ReplayLog::ratios_of(&outcome.result.arms);
    outcome.result.method = method(setup.plan, pinned);
    outcome
}

fn method(plan: &Plan, pinned: bool) -> String {
    format!(
        "Measured in the harness's process: the quick start's app with the library's defaults \
         (abuse limits off), one server per layer with the log and one without \
         (`LiveView::builder().replay(None)`, which the Redis layer follows), \
         each on a current-thread tokio runtime on a thread of its own{}; their \
         subscribers are real WebSocket clients of the load generator, connected with \
         `?resume=` as clients that track sequences are. The servers take turns publish by \
         publish (up to {} timed publishes each, after {} untimed, at most {:.0} s per \
         subscriber count); each publish waits until every subscriber has the frame, so every \
         call starts on a quiet server. *Call* is the time of the `broadcast` call in the \
         server: serialisation, the log, local delivery (queue pushes) and, on Redis, the \
         round trip to Redis, plus whatever the runtime ran while the call waited for Redis. \
         *CPU* is the CPU time of the server's thread from the call until every subscriber \
         had the frame (`/proc/self/task/TID/schedstat`): the whole broadcast, writing the \
         frame to every socket included.",
        if pinned {
            " (all on core 0; the load generator on core 1)"
        } else {
            ""
        },
        report::thousands(plan.replay_log_publishes as u64),
        plan.replay_log_warmup,
        plan.replay_log_seconds
    )
}

fn arm_name(layer: Layer, log: bool) -> String {
    format!("{}, log {}", layer.as_str(), if log { "on" } else { "off" })
}

/// One server of the scenario, its subscribers and what it measured.
struct Side<'a> {
    server: &'a ServerThread,
    layer: Layer,
    log: bool,
    broadcaster: Broadcaster,
    tracker: Arc<Tracker>,
    /// Held for the subscribers' connections.
    _subscribers: Pool,
    publish: Histogram<u64>,
    cpu: Histogram<u64>,
    errors: u64,
}

impl Side<'_> {
    /// One round: broadcast round `id`'s frame on the servers' runtime,
    /// timing the call there (`record`), and wait for every subscriber.
    async fn round(
        &mut self,
        run: &mut FanOutRun,
        timeout: Duration,
        record: bool,
    ) -> Result<(), String> {
        let cpu_before = self.server.cpu_ns();
        let servers = &self.server.handle;
        let (broadcaster, hist, errors) = (&self.broadcaster, &mut self.publish, &mut self.errors);
        run.round_with(
            |id| async move {
                let elapsed = timed_broadcast(servers, broadcaster, id, errors).await?;
                if record {
                    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                    let _ = hist.record(nanos.max(1));
                }
                Ok(())
            },
            timeout,
        )
        .await?;
        if record && let (Some(a), Some(b)) = (cpu_before, self.server.cpu_ns()) {
            let _ = self.cpu.record(b.saturating_sub(a).max(1));
        }
        Ok(())
    }
}

/// Broadcast round `id`'s frame from a task on the servers' runtime, and
/// return how long the `broadcast` call took there. A failed broadcast is
/// counted in `errors` (local subscribers still get the frame).
async fn timed_broadcast(
    servers: &Handle,
    broadcaster: &Broadcaster,
    id: u32,
    errors: &mut u64,
) -> Result<Duration, String> {
    let broadcaster = broadcaster.clone();
    let update = Update::new("#notifications")
        .html(format!(
            r#"<div class="notification">{ROUND_TAG}{id}</div>"#
        ))
        .append();
    let (elapsed, result) = servers
        .spawn(async move {
            let start = Instant::now();
            let result = broadcaster.broadcast(update).await;
            (start.elapsed(), result)
        })
        .await
        .map_err(|e| format!("the servers' runtime: {e}"))?;
    if result.is_err() {
        *errors += 1;
    }
    Ok(elapsed)
}

/// Start the servers, connect `n` subscribers to each, and let them take
/// turns. Returns the arms measured and the functional failures.
async fn measure(
    setup: &Setup<'_>,
    servers: &[ServerThread],
    arms: &[(Layer, bool)],
    n: usize,
) -> Result<(Vec<ReplayArm>, Vec<String>), String> {
    let plan = setup.plan;
    let mut sides = Vec::new();
    for (i, (&(layer, log), server)) in arms.iter().zip(servers).enumerate() {
        let prefix = format!("{}{n}-{i}:", setup.prefix);
        let redis_url = setup.redis_url.clone();
        let (addr, broadcaster) = server
            .handle
            .spawn(start_server(layer, log, redis_url, prefix))
            .await
            .map_err(|e| format!("the servers' runtime: {e}"))?
            .map_err(|e| format!("{}: {e}", arm_name(layer, log)))?;
        let tracker = Tracker::new();
        let endpoint = Endpoint::new(addr).tracking_sequences();
        let mut pool = Pool::new(endpoint, tracker.clone(), 10);
        pool.grow(n, plan)
            .await
            .map_err(|e| format!("{}: opening {n} subscribers: {e}", arm_name(layer, log)))?;
        sides.push(Side {
            server,
            layer,
            log,
            broadcaster,
            tracker,
            _subscribers: pool,
            publish: scenarios::histogram(),
            cpu: scenarios::histogram(),
            errors: 0,
        });
    }
    // Let the handshakes' work settle before the first publish.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let timeout = plan.round_timeout();
    let mut failures = Vec::new();
    let mut warm: Vec<FanOutRun> = sides
        .iter()
        .map(|s| FanOutRun::new(&s.tracker, n))
        .collect();
    for _ in 0..plan.replay_log_warmup {
        for (side, run) in sides.iter_mut().zip(warm.iter_mut()) {
            side.round(run, timeout, false).await?;
        }
    }
    for (side, run) in sides.iter().zip(warm) {
        let f = run.finish().await;
        if f.missing > 0 || f.duplicates > 0 {
            failures.push(format!(
                "replay log, {} to {n}, warm-up: {} frames missing, {} duplicated",
                arm_name(side.layer, side.log),
                f.missing,
                f.duplicates
            ));
        }
    }

    let mut runs: Vec<FanOutRun> = sides
        .iter()
        .map(|s| FanOutRun::new(&s.tracker, n))
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(plan.replay_log_seconds);
    for r in 0..plan.replay_log_publishes {
        if Instant::now() > deadline {
            break;
        }
        // Every other publish in the reverse order: no server always
        // follows the same one.
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for i in order {
            sides[i].round(&mut runs[i], timeout, true).await?;
        }
    }

    let mut measured = Vec::new();
    for (side, run) in sides.iter().zip(runs) {
        let f = run.finish().await;
        let name = arm_name(side.layer, side.log);
        if f.missing > 0 || f.duplicates > 0 || f.timed_out_rounds > 0 {
            failures.push(format!(
                "replay log, {name} to {n}: {} frames missing, {} duplicated, {} rounds timed out",
                f.missing, f.duplicates, f.timed_out_rounds
            ));
        }
        if side.errors > 0 {
            failures.push(format!(
                "replay log, {name} to {n}: {} broadcasts failed",
                side.errors
            ));
        }
        // The arms must be what they say: frames numbered with the log,
        // plain without it.
        let sequenced = side.tracker.sequenced();
        if side.log && sequenced == 0 {
            failures.push(format!(
                "replay log, {name} to {n}: no frame carried a sequence number"
            ));
        }
        if !side.log && sequenced > 0 {
            failures.push(format!(
                "replay log, {name} to {n}: {sequenced} frames carried a sequence number"
            ));
        }
        measured.push(ReplayArm {
            layer: side.layer.as_str().to_owned(),
            log: side.log,
            subscribers: n,
            publish: Latency::from_nanos(&side.publish),
            server_cpu: (!side.cpu.is_empty()).then(|| Latency::from_nanos(&side.cpu)),
            last_delivery: f.last_delivery,
            sequenced_frames: sequenced,
            missing: f.missing,
            duplicates: f.duplicates,
            timed_out_rounds: f.timed_out_rounds,
            errors: side.errors,
        });
    }
    drop(sides);
    // Let the subscribers' readers see their sockets close.
    tokio::task::yield_now().await;
    Ok((measured, failures))
}

/// A server of the scenario on the servers' runtime: the quick start's
/// app, with or without the replay log. Returns its address and its
/// broadcaster.
async fn start_server(
    layer: Layer,
    log: bool,
    redis_url: String,
    prefix: String,
) -> Result<(SocketAddr, Broadcaster), String> {
    let replay = log.then(ReplayConfig::default);
    let builder = LiveView::builder()
        .rate_limit(None)
        .address_rate_limit(None)
        .max_connections_per_address(None)
        .replay(replay);
    let builder = match layer {
        Layer::Memory => builder.channel_layer(MemoryLayer),
        Layer::Redis => {
            let redis = RedisLayer::builder(redis_url)
                .prefix(prefix)
                .build()
                .map_err(|e| e.to_string())?;
            builder.channel_layer(redis)
        }
        Layer::RedisCluster | Layer::Nats => {
            return Err("the replay-log scenario runs on the memory and Redis layers".to_owned());
        }
    };
    let live = builder.build().map_err(|e| e.to_string())?;
    let app = quickstart::app(&live);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let broadcaster = live.broadcaster();
    tokio::spawn(async move {
        if let Err(e) = liveview::serve_until(listener, app, live, std::future::pending()).await {
            eprintln!("replay-log server on {addr}: {e}");
        }
    });
    Ok((addr, broadcaster))
}

/// A current-thread tokio runtime on a thread of its own, on core 0 when
/// pinning: the scenario's servers. Stopped (with everything on it) when
/// dropped.
struct ServerThread {
    handle: Handle,
    pinned: bool,
    /// The thread's id, for its CPU time.
    tid: Option<u32>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    fn start(pin: bool) -> Result<Self, String> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("replay-log-servers".to_owned())
            .spawn(move || {
                let pinned = pin && procs::pin_this_thread(0);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = started_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let tid = procs::this_thread_id();
                let _ = started_tx.send(Ok((runtime.handle().clone(), pinned, tid)));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(|e| e.to_string())?;
        let (handle, pinned, tid) = started_rx
            .recv()
            .map_err(|_| "the servers' thread did not start".to_owned())??;
        Ok(Self {
            handle,
            pinned,
            tid,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl ServerThread {
    /// CPU time the thread has used so far, nanoseconds.
    fn cpu_ns(&self) -> Option<u64> {
        self.tid.and_then(procs::thread_cpu_ns)
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
