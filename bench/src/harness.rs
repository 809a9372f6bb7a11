//! One run: start each server in its own process, drive the scenarios
//! against it, record, compare, check the targets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;

use crate::peer::Peer;
use crate::procs::{self, ServerProc, Spawner};
use crate::progress;
use crate::replay_log;
use crate::report::{self, CrossNode, FanOut, Idle, Latency, Run, ServerResult, Throughput};
use crate::scenarios::{self, FanOutRun, Load, Plan, Pool, Publisher, RoundTrip, Tracker};
use crate::server::Layer;

/// The version of the method: raised whenever a change to the harness
/// makes its numbers incomparable with earlier ones (2: the floor with the
/// library's socket buffers, ratios like for like, load generator CPU,
/// median and spread over slices; 3: the floor's buffers read from the
/// library, the bench server on the library's default buffers, fan-out to
/// 1,000 and 10,000 subscribers across two processes, the load
/// generator's CPU during fan-out; 4: throughput at 5,000 connections,
/// opened for each slice; calls counted by when they are answered; the
/// round trip with every core kept awake by idle-priority spinners;
/// connections spread over 254 source addresses; 5: the timed calls
/// through a minimal client (a frame masked once, the answer parsed in
/// place, no timer per call) instead of tokio-tungstenite, the same for
/// every server; the load generator's CPU per call; throughput in turns
/// of several short slices, server CPU per call the median of the
/// slices, CPU time read to the nanosecond from `schedstat`, a server
/// quiet after its turn before the next one's; fan-out over up to 1,000
/// rounds per server or 30 s, with p90 and the p99 of blocks of rounds;
/// 6: a fixed-rate scenario beside saturation: every server offered the
/// same calls per second, a share of the floor's saturated rate in the
/// same run, paced evenly over the connections, with the achieved rate,
/// server and load generator CPU and p50/p99 per slice; the p99 of every
/// throughput slice; 7: fan-out over up to 3,000 rounds per server, so
/// that the p99 rests on 30 rounds rather than 10, and the peer's rounds
/// after the others', not between them, as its servers stay busy after
/// a round and slowed the rounds that followed; 8: the round trip in 40
/// slices of 1,000 calls per server instead of 5 of 4,000, the servers
/// taking turns slice by slice, and each slice's p50 recorded in order,
/// as the machine changed pace between slices and 5 slices left one
/// server with more of the slow ones than another).
pub(crate) const HARNESS_VERSION: u32 = 8;

/// Full run or CI's smoke run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Full,
    Smoke,
}

/// Command-line options of `all` and `smoke`.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub mode: Mode,
    pub out: Option<PathBuf>,
    /// Some of `floor`, `memory`, `redis`, `django`.
    pub servers: Vec<String>,
    pub cross_node: bool,
    /// Some of `idle`, `fan-out`, `calls` (round trip and throughput),
    /// `fixed-rate` (throughput at a fixed rate, after `calls`' saturated
    /// throughput at the same level), `replay-log`.
    pub scenarios: Vec<String>,
    /// The results file is `<label>-<time>.json` in a full run.
    pub label: &'static str,
    pub pin: bool,
    /// Keep every core awake during the round trip: one spinning process
    /// at idle priority (`SCHED_IDLE`) on each.
    pub spin: bool,
    pub redis: SocketAddr,
    pub peer: Peer,
}

impl Options {
    pub(crate) fn new(mode: Mode) -> Self {
        let servers = match mode {
            Mode::Full => vec!["floor", "memory", "redis", "django"],
            // No virtualenv in CI: the Django peer is for full runs.
            Mode::Smoke => vec!["floor", "memory", "redis"],
        };
        Self {
            mode,
            out: None,
            servers: servers.into_iter().map(str::to_owned).collect(),
            cross_node: true,
            scenarios: ["idle", "fan-out", "calls", "fixed-rate", "replay-log"]
                .map(str::to_owned)
                .to_vec(),
            label: "run",
            pin: true,
            spin: true,
            redis: SocketAddr::from(([127, 0, 0, 1], 6379)),
            peer: Peer {
                dir: crate::peer::default_dir(),
            },
        }
    }
}

/// A server to measure, and how to start a fresh process of it.
struct Entry<'a> {
    name: &'static str,
    /// Ours or the floor (a problem fails the run), or the peer (a note).
    ours: bool,
    start: Box<dyn Fn() -> Result<ServerProc, String> + 'a>,
}

/// Everything a server's scenarios need.
struct Bench<'a> {
    plan: &'a Plan,
    scenarios: &'a [String],
    runtime: &'a Runtime,
    nofile: u64,
    spin: bool,
    run: &'a mut Run,
}

/// A scenario at one level of connections in which the servers take
/// turns slice by slice, one load of connections each.
struct Turns<'s> {
    /// The servers, each with its place in the entries and the results.
    servers: &'s [(usize, ServerProc)],
    entries: &'s [Entry<'s>],
    /// The scenario's name in its messages: `throughput`, `fixed rate`.
    label: &'static str,
    connections: usize,
    /// Each server's connections opened for its own turn and closed after
    /// it, rather than kept open throughout.
    reopened: bool,
    /// Where a server's result in the scenario goes.
    measured: fn(&mut ServerResult) -> &mut Vec<Throughput>,
}

impl Turns<'_> {
    /// The message for a load that failed with `e`.
    fn failed(&self, e: &str) -> String {
        format!(
            "{} at {}: {e}",
            self.label,
            report::thousands(self.connections as u64)
        )
    }
}

/// Run the benchmarks; `Ok(true)` when nothing was functionally broken.
pub(crate) fn run(options: &Options) -> Result<bool, String> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let nofile = crate::raise_fd_limit();
    let pinned = options.pin && procs::cores() >= 2 && procs::pin_self();
    let raised = procs::raise_priority_self();
    let plan = match options.mode {
        Mode::Full => Plan::full(),
        Mode::Smoke => Plan::smoke(),
    };
    let mut run = Run {
        mode: match options.mode {
            Mode::Full => "full",
            Mode::Smoke => "smoke",
        }
        .to_owned(),
        started: utc(started),
        seconds: 0.0,
        provenance: procs::provenance(),
        machine: procs::machine(pinned, raised, nofile, options.redis),
        plan: serde_json::to_value(&plan).map_err(|e| e.to_string())?,
        scenarios: options.scenarios.clone(),
        servers: Vec::new(),
        cross_node: None,
        replay_log: None,
        targets: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
    };
    if options.mode == Mode::Smoke {
        run.notes.push(
            "smoke run: it checks that every scenario works; its small numbers are not measurements"
                .to_owned(),
        );
    }
    if options.mode == Mode::Full && cfg!(debug_assertions) {
        run.notes
            .push("debug build: run with --release for numbers worth comparing".to_owned());
    }
    // The load generator: one worker thread per core not given to the
    // servers (core 0), at least two. Its CPU is recorded beside every
    // throughput figure, to show whether it had headroom.
    let load_threads = procs::cores().saturating_sub(1).max(2);
    run.machine.load_generator_threads = load_threads;
    run.machine.load_generator_cores = if pinned {
        procs::cores() - 1
    } else {
        procs::cores()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(load_threads)
        .thread_name("load-generator")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let spawner = Spawner {
        pin: pinned,
        raise_priority: raised,
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let unix = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let redis_up = procs::redis_up(options.redis);
    if !redis_up {
        let message = format!(
            "no Redis answers at {}: the Redis layer was not measured",
            options.redis
        );
        match options.mode {
            // CI provides Redis (scripts/ensure-redis.sh); its absence there
            // would silently stop testing the layer.
            Mode::Smoke => run.failures.push(message),
            Mode::Full => run.notes.push(message),
        }
    }
    let redis_url = format!("redis://{}", options.redis);

    // A channel prefix of its own for every server process started.
    let started_servers = std::sync::atomic::AtomicU32::new(0);
    let prefix = |what: &str| {
        let n = started_servers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("lvbench-{unix}-{what}-{n}:")
    };
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for name in &options.servers {
        match name.as_str() {
            "floor" => {
                let (spawner, exe) = (&spawner, &exe);
                entries.push(Entry {
                    name: report::FLOOR,
                    ours: true,
                    start: Box::new(move || {
                        spawner.bench_server(exe, report::FLOOR, &["floor"], &[])
                    }),
                });
            }
            "memory" | "redis" => {
                if name == "redis" && !redis_up {
                    continue;
                }
                let result_name = if name == "memory" {
                    report::MEMORY
                } else {
                    report::REDIS
                };
                let (spawner, exe, redis_url, prefix) = (&spawner, &exe, &redis_url, &prefix);
                let layer = name.clone();
                entries.push(Entry {
                    name: result_name,
                    ours: true,
                    start: Box::new(move || {
                        let words = ["server", "--layer", &layer];
                        let extra = ["--redis-url", redis_url, "--prefix", &prefix(&layer)];
                        spawner.bench_server(exe, result_name, &words, &extra)
                    }),
                });
            }
            "django" => {
                let single = ["idle", "fan-out", "calls"];
                if !options
                    .scenarios
                    .iter()
                    .any(|s| single.contains(&s.as_str()))
                {
                    // Only the replay log, which is ours alone.
                    continue;
                }
                if !redis_up {
                    run.notes
                        .push("Django LiveView needs Redis: not measured".to_owned());
                    continue;
                }
                if let Err(e) = options.peer.ensure_installed() {
                    run.notes.push(format!(
                        "Django LiveView peer not installed, not measured: {e}"
                    ));
                    continue;
                }
                let (python, stack) = options.peer.versions();
                run.machine.python = python;
                run.machine.django_stack = stack;
                let (spawner, peer, redis) = (&spawner, &options.peer, options.redis);
                entries.push(Entry {
                    name: report::DJANGO,
                    ours: false,
                    start: Box::new(move || {
                        let port = procs::free_port()?;
                        let prefix = format!("lvbench-{unix}-django-{port}");
                        let command = peer.command(spawner, port, &prefix, redis);
                        spawner.start(report::DJANGO, command, port, Duration::from_secs(60))
                    }),
                });
            }
            other => run.notes.push(format!("unknown server {other}: skipped")),
        }
    }

    let mut bench = Bench {
        plan: &plan,
        scenarios: &options.scenarios,
        runtime: &runtime,
        nofile,
        spin: options.spin,
        run: &mut run,
    };
    let mut results: Vec<ServerResult> =
        entries.iter().map(|e| ServerResult::new(e.name)).collect();
    // Idle memory needs a fresh process, and the largest fan-out needs more
    // sockets than the servers together may have: one server at a time.
    let largest_idle = plan
        .idle_connections
        .iter()
        .copied()
        .filter(|n| bench.fits(*n) && bench.wants("idle"))
        .max();
    let (alone, together): (Vec<usize>, Vec<usize>) = plan
        .fan_out_subscribers
        .iter()
        .copied()
        .filter(|_| bench.wants("fan-out"))
        .partition(|n| largest_idle.is_some_and(|i| *n >= i) || !bench.fits(n * entries.len()));
    let ours = options
        .servers
        .iter()
        .any(|s| s == "memory" || s == "redis");
    let steps = [
        if largest_idle.is_some() || !alone.is_empty() {
            entries.len()
        } else {
            0
        },
        if bench.wants("calls") {
            1 + plan.throughput_connections.len()
        } else {
            0
        },
        if bench.wants("calls") && bench.wants("fixed-rate") {
            plan.throughput_connections.len()
        } else {
            0
        },
        together.len(),
        usize::from(bench.wants("replay-log") && ours),
        usize::from(options.cross_node && redis_up && ours),
    ];
    progress::start(steps.iter().sum::<usize>() as u64);
    for (entry, result) in entries.iter().zip(results.iter_mut()) {
        if largest_idle.is_none() && alone.is_empty() {
            break;
        }
        let sizes: Vec<String> = alone.iter().map(|n| report::thousands(*n as u64)).collect();
        progress::step(&format!(
            "{}, alone on a fresh process: idle memory{}",
            report::label(entry.name),
            if sizes.is_empty() {
                String::new()
            } else {
                format!(", fan-out to {} subscribers", sizes.join(" and "))
            }
        ));
        match (entry.start)() {
            Ok(mut server) => {
                bench.memory_and_fan_out(&server, result, entry.ours, &alone);
                bench.check_alive(&mut server, result, entry.ours);
            }
            Err(e) => bench.problem(result, entry.ours, format!("did not start: {e}")),
        }
    }
    // Timed scenarios with every server up, taking turns.
    if bench.wants("calls") || !together.is_empty() {
        bench.together(&entries, &mut results, &together);
    }
    for result in &mut results {
        for n in &plan.idle_connections {
            if bench.wants("idle") && !bench.fits(*n) {
                result.notes.push(format!(
                    "{} idle connections not measured: the open-files limit is {}",
                    report::thousands(*n as u64),
                    bench.nofile
                ));
            }
        }
        result.fan_out.sort_by_key(|f| f.subscribers);
    }
    bench.run.servers = results;

    if bench.wants("replay-log") {
        let mut layers = Vec::new();
        if options.servers.iter().any(|s| s == "memory") {
            layers.push(Layer::Memory);
        }
        if options.servers.iter().any(|s| s == "redis") && redis_up {
            layers.push(Layer::Redis);
        }
        if !layers.is_empty() {
            progress::step("replay log: broadcasts with and without it, memory and Redis layers");
            let outcome = replay_log::run(&replay_log::Setup {
                runtime: &runtime,
                plan: &plan,
                layers,
                redis_url: redis_url.clone(),
                prefix: format!("lvbench-{unix}-replay-"),
                pin: pinned,
                nofile,
            });
            bench.run.failures.extend(outcome.failures);
            bench.run.notes.extend(outcome.notes);
            bench.run.replay_log = Some(outcome.result);
        }
    }

    if options.cross_node && redis_up && ours {
        // Both nodes on one prefix: they share the groups.
        let cross = prefix("cross");
        let start = || {
            let extra = ["--redis-url", &redis_url, "--prefix", &cross];
            spawner.bench_server(
                &exe,
                "liveview-node",
                &["server", "--layer", "redis"],
                &extra,
            )
        };
        // The baseline of "what Redis adds": the same delivery on a server
        // without Redis (the memory layer), measured in the same turns.
        let start_memory = || {
            let words = ["server", "--layer", "memory"];
            spawner.bench_server(&exe, "liveview-memory-node", &words, &[])
        };
        match bench.cross_node(&start, &start_memory) {
            Ok(cross) => {
                if cross.missing > 0 || cross.duplicates > 0 {
                    bench.run.failures.push(format!(
                        "cross-node: {} frames missing, {} duplicated",
                        cross.missing, cross.duplicates
                    ));
                }
                bench.run.cross_node = Some(cross);
            }
            Err(e) => bench.run.failures.push(format!("cross-node: {e}")),
        }
    }

    progress::finish();
    run.machine.load_average_after = procs::load_average();
    run.seconds = clock.elapsed().as_secs_f64();
    run.check_targets();
    let out = match &options.out {
        Some(path) => path.clone(),
        None => match options.mode {
            Mode::Full => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("results")
                .join(format!("{}-{}.json", options.label, compact(&run.started))),
            Mode::Smoke => std::env::temp_dir().join("liveview-bench-smoke.json"),
        },
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&run).map_err(|e| e.to_string())?;
    std::fs::write(&out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;

    println!("\n{}", run.markdown());
    println!("targets:\n{}", run.targets_text());
    println!("results written to {}", out.display());
    if run.failures.is_empty() {
        println!("no functional failure");
    } else {
        println!("FUNCTIONAL FAILURES:");
        for f in &run.failures {
            println!("  - {f}");
        }
    }
    Ok(run.failures.is_empty())
}

impl Bench<'_> {
    /// Record a problem: a failure of the run for our servers and the
    /// floor (the harness or the library is broken), a note for the peer.
    fn problem(&mut self, result: &mut ServerResult, ours: bool, what: String) {
        progress::line(&format!("{}: {what}", result.name));
        if ours {
            self.run.failures.push(format!("{}: {what}", result.name));
        } else {
            result.notes.push(what);
        }
    }

    fn check_alive(&mut self, server: &mut ServerProc, result: &mut ServerResult, ours: bool) {
        if !server.alive() {
            let what = format!(
                "{} exited during the run: {}",
                server.name,
                server.log_tail()
            );
            self.problem(result, ours, what);
        }
    }

    /// Idle memory, then fan-out to `sizes` subscribers on the same
    /// connections, on a fresh process: its memory is not yet shaped by
    /// earlier scenarios.
    fn memory_and_fan_out(
        &mut self,
        server: &ServerProc,
        result: &mut ServerResult,
        ours: bool,
        sizes: &[usize],
    ) {
        let plan = self.plan;
        let runtime = self.runtime;
        let endpoint = server.endpoint;
        let tracker = Tracker::new();
        let setup = runtime.block_on(async {
            scenarios::warm_up(endpoint, plan).await?;
            Publisher::connect(endpoint, 2, plan).await
        });
        let mut publisher = match setup {
            Ok(p) => p,
            Err(e) => return self.problem(result, ours, format!("warm-up: {e}")),
        };
        let mut pool = Pool::new(endpoint, tracker.clone(), 10);
        server.settle(Duration::from_secs(10));
        let before = server.rss_kib().unwrap_or(0);
        let levels: Vec<usize> = if self.wants("idle") {
            plan.idle_connections
                .iter()
                .copied()
                .filter(|n| self.fits(*n))
                .collect()
        } else {
            Vec::new()
        };
        for level in levels {
            progress::detail(&format!(
                "{}: RSS with {} idle connections",
                report::label(&result.name),
                report::thousands(level as u64)
            ));
            if let Err(e) = runtime.block_on(pool.grow(level, plan)) {
                return self.problem(result, ours, format!("opening {level} connections: {e}"));
            }
            server.settle(Duration::from_secs(60));
            let after = server.rss_kib().unwrap_or(0);
            result.idle.push(Idle {
                connections: level,
                rss_before_kib: before,
                rss_after_kib: after,
                bytes_per_connection: (after.saturating_sub(before) * 1024) as f64 / level as f64,
            });
        }
        let mut sizes = sizes.to_vec();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for n in sizes {
            progress::detail(&format!(
                "{}: fan-out to {} subscribers",
                report::label(&result.name),
                report::thousands(n as u64)
            ));
            if pool.len() > n {
                runtime.block_on(async { pool.shrink(n) });
            } else if let Err(e) = runtime.block_on(pool.grow(n, plan)) {
                return self.problem(result, ours, format!("opening {n} subscribers: {e}"));
            }
            server.settle(Duration::from_secs(60));
            match runtime.block_on(scenarios::fan_out(&mut publisher, &tracker, n, plan)) {
                Ok(f) => self.fan_out_done(result, ours, f),
                Err(e) => self.problem(result, ours, format!("fan-out to {n}: {e}")),
            }
        }
        runtime.block_on(async move {
            drop(pool);
            drop(publisher);
        });
    }

    fn fan_out_done(&mut self, result: &mut ServerResult, ours: bool, f: FanOut) {
        if f.missing > 0 || f.duplicates > 0 || f.timed_out_rounds > 0 {
            self.problem(
                result,
                ours,
                format!(
                    "fan-out to {}: {} frames missing, {} duplicated, {} rounds timed out",
                    f.subscribers, f.missing, f.duplicates, f.timed_out_rounds
                ),
            );
        }
        result.fan_out.push(f);
    }

    /// Round trip, throughput and the smaller fan-outs with every server
    /// up at once: each scenario is cut into slices (rounds, for fan-out)
    /// that the servers take in turn.
    fn together(&mut self, entries: &[Entry<'_>], results: &mut [ServerResult], fan_out: &[usize]) {
        let plan = self.plan;
        let runtime = self.runtime;
        let mut servers: Vec<(usize, ServerProc)> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match (entry.start)() {
                Ok(server) => match runtime.block_on(scenarios::warm_up(server.endpoint, plan)) {
                    Ok(()) => servers.push((i, server)),
                    Err(e) => self.problem(&mut results[i], entry.ours, format!("warm-up: {e}")),
                },
                Err(e) => self.problem(&mut results[i], entry.ours, format!("did not start: {e}")),
            }
        }
        if servers.is_empty() {
            return;
        }
        let names = || {
            servers
                .iter()
                .map(|(i, _)| report::label(entries[*i].name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ours = |i: usize| entries[i].ours;

        if self.wants("calls") {
            self.round_trips(&servers, entries, results);
            for &connections in &plan.throughput_connections {
                progress::step(&format!(
                    "throughput at {} connections, taking turns: {}",
                    report::thousands(connections as u64),
                    names()
                ));
                self.throughput(&servers, entries, results, connections);
                if self.wants("fixed-rate") {
                    self.fixed_rate(&servers, entries, results, connections);
                }
            }
        } else if self.wants("fixed-rate") {
            self.run.notes.push(
                "the fixed rate was not measured: it is a share of the floor's saturated \
                 throughput, measured by the calls scenario"
                    .to_owned(),
            );
        }

        let mut sizes = fan_out.to_vec();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for n in sizes {
            progress::step(&format!(
                "fan-out to {} subscribers, taking turns: {}",
                report::thousands(n as u64),
                names()
            ));
            let mut setups = Vec::new();
            for (i, server) in &servers {
                let tracker = Tracker::new();
                let setup = runtime.block_on(async {
                    let publisher = Publisher::connect(server.endpoint, 2, plan).await?;
                    let mut pool = Pool::new(server.endpoint, tracker.clone(), 10);
                    pool.grow(n, plan).await?;
                    Ok::<_, String>((publisher, pool, FanOutRun::planned(&tracker, n, plan)))
                });
                match setup {
                    Ok(s) => setups.push(Some(s)),
                    Err(e) => {
                        self.problem(&mut results[*i], ours(*i), format!("fan-out to {n}: {e}"));
                        setups.push(None);
                    }
                }
            }
            for (_, server) in &servers {
                server.settle(Duration::from_secs(60));
            }
            // Round by round, server after server, each until its rounds
            // are done or its time for them is used: first the floor and
            // ours, then the peer alone, whose servers stay busy for a
            // while after each of its rounds.
            for peer in [false, true] {
                for _ in 0..plan.fan_out_rounds {
                    let mut any = false;
                    for ((i, _), setup) in servers.iter().zip(setups.iter_mut()) {
                        if ours(*i) == peer {
                            continue;
                        }
                        let Some((publisher, _, run)) = setup else {
                            continue;
                        };
                        if run.done(plan) {
                            continue;
                        }
                        any = true;
                        let round = runtime.block_on(run.round(publisher, plan.round_timeout()));
                        if let Err(e) = round {
                            let problem = format!("fan-out to {n}: {e}");
                            self.problem(&mut results[*i], ours(*i), problem);
                            *setup = None;
                        }
                    }
                    if !any {
                        break;
                    }
                }
            }
            for ((i, server), setup) in servers.iter().zip(setups) {
                let Some((publisher, pool, run)) = setup else {
                    continue;
                };
                let f = runtime.block_on(run.finish());
                self.fan_out_done(&mut results[*i], ours(*i), f);
                runtime.block_on(async move { drop((publisher, pool)) });
                server.settle(Duration::from_secs(30));
            }
        }
        for (i, mut server) in servers {
            self.check_alive(&mut server, &mut results[i], ours(i));
        }
    }

    /// One connection per server calling in a loop, the servers taking
    /// turns slice by slice; with every core kept awake by idle-priority
    /// spinners when asked, which stop before anything else is measured.
    fn round_trips(
        &mut self,
        servers: &[(usize, ServerProc)],
        entries: &[Entry<'_>],
        results: &mut [ServerResult],
    ) {
        let plan = self.plan;
        let runtime = self.runtime;
        let ours = |i: usize| entries[i].ours;
        let names: Vec<&str> = servers
            .iter()
            .map(|(i, _)| report::label(entries[*i].name))
            .collect();
        let spinners = if self.spin {
            match procs::Spinners::start(procs::cores()) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.run.notes.push(format!(
                        "round trip measured without spinners (cores not kept awake): {e}"
                    ));
                    None
                }
            }
        } else {
            None
        };
        self.run.machine.round_trip_spinners = spinners.as_ref().map_or(0, procs::Spinners::len);
        progress::step(&format!(
            "round trip of one connection{}, taking turns: {}",
            if spinners.is_some() {
                " (cores kept awake)"
            } else {
                ""
            },
            names.join(", ")
        ));
        let mut trips: Vec<Option<RoundTrip>> = Vec::new();
        for (i, server) in servers {
            match runtime.block_on(RoundTrip::open(server.endpoint, plan)) {
                Ok(t) => trips.push(Some(t)),
                Err(e) => {
                    self.problem(&mut results[*i], ours(*i), format!("round trip: {e}"));
                    trips.push(None);
                }
            }
        }
        for _ in 0..plan.round_trip_slices() {
            for ((i, _), trip) in servers.iter().zip(trips.iter_mut()) {
                let Some(t) = trip else { continue };
                let sliced = runtime
                    .block_on(t.slice(plan.round_trip_slice_calls(), plan.round_trip_slice()));
                if let Err(e) = sliced {
                    self.problem(&mut results[*i], ours(*i), format!("round trip: {e}"));
                    *trip = None;
                }
            }
        }
        // Before anything else runs: the spinners would take the cores'
        // idle time, which the servers' CPU figures and the load
        // generator's headroom are read against.
        drop(spinners);
        for ((i, _), trip) in servers.iter().zip(trips) {
            if let Some(t) = trip {
                let (latency, spread, slices) = t.result();
                results[*i].round_trip = Some(latency);
                results[*i].round_trip_p50_spread = Some(spread);
                results[*i].round_trip_slice_p50s = slices;
                runtime.block_on(async move { drop(t) });
            }
        }
    }

    /// Closed-loop calls from `connections` connections per server, the
    /// servers taking turns slice by slice. The connections of every server
    /// stay open throughout when they fit the open-files limit together;
    /// from the plan's `throughput_reopened_from` (or when they do not
    /// fit), each server's connections are opened for its own slice and
    /// closed after it.
    fn throughput(
        &mut self,
        servers: &[(usize, ServerProc)],
        entries: &[Entry<'_>],
        results: &mut [ServerResult],
        connections: usize,
    ) {
        let plan = self.plan;
        let runtime = self.runtime;
        let at = report::thousands(connections as u64);
        if !self.fits(connections) {
            for (i, _) in servers {
                results[*i].notes.push(format!(
                    "throughput at {at} connections not measured: the open-files limit is {}",
                    self.nofile
                ));
            }
            return;
        }
        let reopened =
            connections >= plan.throughput_reopened_from || !self.fits(connections * servers.len());
        let turns = Turns {
            servers,
            entries,
            label: "throughput",
            connections,
            reopened,
            measured: |r| &mut r.throughput,
        };
        // A server too slow for this level is left out: a problem for ours.
        let left_out = |_: usize, result: &ServerResult| {
            too_slow_for(result, connections, plan)
                .map(|why| format!("throughput at {at} connections not measured: {why}"))
        };
        let mut loads = self.open_loads(&turns, results, left_out, true);
        let shape = plan.throughput_turn();
        self.take_turns(&turns, results, &mut loads, |l, server| {
            runtime.block_on(l.turn(server, shape))
        });
        let cores = self.run.machine.load_generator_cores.max(1);
        self.record_loads(&turns, results, loads, |t| {
            let mut notes = Vec::new();
            if t.load_generator_cpu() > 90.0 * cores as f64 {
                notes.push(format!(
                    "throughput at {at}: the load generator used {:.0}% of a core \
                     of its {cores} (median of the slices): calls per second may be its \
                     limit rather than the server's; server CPU per call is the figure \
                     to compare",
                    t.load_generator_cpu()
                ));
            }
            if reopened {
                notes.push(format!(
                    "throughput at {at}: connections opened for each turn and closed after it"
                ));
            }
            notes
        });
    }

    /// Calls at a fixed rate, the same for every server: the plan's share
    /// of the floor's median saturated calls per second at `connections`
    /// (measured just before), paced evenly over the connections, each
    /// connection with one call in flight; the servers take turns as in
    /// the throughput scenario. A server whose own saturated throughput at
    /// this level is below the rate is not offered it: it could not keep up.
    fn fixed_rate(
        &mut self,
        servers: &[(usize, ServerProc)],
        entries: &[Entry<'_>],
        results: &mut [ServerResult],
        connections: usize,
    ) {
        let plan = self.plan;
        let runtime = self.runtime;
        let at = report::thousands(connections as u64);
        // Each server's median saturated calls per second at this level.
        let saturated: Vec<Option<f64>> = servers
            .iter()
            .map(|(i, _)| {
                results[*i]
                    .throughput_at(connections)
                    .filter(|t| t.calls > 0)
                    .map(report::Throughput::median_calls_per_second)
            })
            .collect();
        let floor = servers
            .iter()
            .zip(&saturated)
            .find(|((i, _), _)| entries[*i].name == report::FLOOR)
            .and_then(|(_, s)| *s)
            .filter(|r| *r > 0.0);
        let Some(floor) = floor else {
            progress::step(&format!("fixed rate at {at} connections: no rate"));
            self.run.notes.push(format!(
                "fixed rate at {at} connections not measured: no saturated throughput of the \
                 floor at that level to take the rate from"
            ));
            return;
        };
        let rate = plan.fixed_rate_fraction * floor;
        let shown = report::thousands(rate.round() as u64);
        let offered: Vec<bool> = saturated
            .iter()
            .map(|s| s.is_some_and(|s| s >= rate))
            .collect();
        let names: Vec<&str> = servers
            .iter()
            .zip(&offered)
            .filter(|(_, o)| **o)
            .map(|((i, _), _)| report::label(entries[*i].name))
            .collect();
        progress::step(&format!(
            "fixed rate of {shown}/s at {at} connections, taking turns: {}",
            names.join(", ")
        ));
        let turns = Turns {
            servers,
            entries,
            label: "fixed rate",
            connections,
            reopened: !self.fits(connections * names.len()),
            measured: |r| &mut r.fixed_rate,
        };
        // A server that could not keep up with the rate is left out, with
        // a note whichever server it is.
        let left_out = |k: usize, _: &ServerResult| {
            (!offered[k]).then(|| {
                let why = match saturated[k] {
                    Some(own) => format!(
                        "its saturated throughput there, {}/s, is below it",
                        report::thousands(own.round() as u64)
                    ),
                    None => "its saturated throughput there was not measured".to_owned(),
                };
                format!("fixed rate of {shown}/s at {at} connections not offered: {why}")
            })
        };
        let mut loads = self.open_loads(&turns, results, left_out, false);
        let shape = plan.fixed_rate_turn();
        let tick = plan.fixed_rate_tick();
        self.take_turns(&turns, results, &mut loads, |l, server| {
            runtime.block_on(l.paced_turn(server, shape, rate, tick))
        });
        self.record_loads(&turns, results, loads, |_| Vec::new());
    }

    /// One load of `turns.connections` connections per server, in the
    /// servers' order: opened now, or, when `turns.reopened`, for each
    /// turn. `None` for a server whose connections did not open (a
    /// problem), and for one `left_out` gives a reason for (called with
    /// the server's place in `turns.servers` and its result): recorded as
    /// a problem when `left_out_fails`, as a note otherwise.
    fn open_loads(
        &mut self,
        turns: &Turns<'_>,
        results: &mut [ServerResult],
        left_out: impl Fn(usize, &ServerResult) -> Option<String>,
        left_out_fails: bool,
    ) -> Vec<Option<Load>> {
        let plan = self.plan;
        let runtime = self.runtime;
        let connections = turns.connections;
        let mut loads: Vec<Option<Load>> = Vec::new();
        for (k, (i, server)) in turns.servers.iter().enumerate() {
            if let Some(what) = left_out(k, &results[*i]) {
                let ours = left_out_fails && turns.entries[*i].ours;
                self.problem(&mut results[*i], ours, what);
                loads.push(None);
                continue;
            }
            let opened = if turns.reopened {
                Ok(Load::closed(server.endpoint, connections, plan))
            } else {
                runtime.block_on(Load::open(server.endpoint, connections, plan))
            };
            match opened {
                Ok(l) => loads.push(Some(l)),
                Err(e) => {
                    let what = turns.failed(&e);
                    self.problem(&mut results[*i], turns.entries[*i].ours, what);
                    loads.push(None);
                }
            }
        }
        loads
    }

    /// The plan's slices: in each, every server with a load takes its
    /// turn, `turn` run on its load, in the servers' order; a load whose
    /// turn fails is a problem and takes no more turns.
    fn take_turns(
        &mut self,
        turns: &Turns<'_>,
        results: &mut [ServerResult],
        loads: &mut [Option<Load>],
        turn: impl Fn(&mut Load, &ServerProc) -> Result<(), String>,
    ) {
        let plan = self.plan;
        let runtime = self.runtime;
        for _ in 0..plan.slices {
            for ((i, server), load) in turns.servers.iter().zip(loads.iter_mut()) {
                let Some(l) = load else { continue };
                let mut sliced = Ok(());
                if turns.reopened {
                    sliced = runtime.block_on(l.reopen(plan));
                }
                if sliced.is_ok() {
                    server.settle(Duration::from_secs(5));
                    sliced = turn(l, server);
                }
                if turns.reopened {
                    runtime.block_on(async { l.close() });
                    // The server closes thousands of connections before the
                    // next one's turn.
                    server.settle(Duration::from_secs(30));
                } else {
                    // It may still be answering its last calls: the next
                    // server's turn starts once it is quiet.
                    server.settle(Duration::from_secs(5));
                }
                if let Err(e) = sliced {
                    let what = turns.failed(&e);
                    self.problem(&mut results[*i], turns.entries[*i].ours, what);
                    *load = None;
                }
            }
        }
    }

    /// Each load's result into its server's, in the servers' order: first
    /// the `notes` on it, then failed calls as a problem, then the result
    /// itself; the load closed, the server settles before the next one.
    fn record_loads(
        &mut self,
        turns: &Turns<'_>,
        results: &mut [ServerResult],
        loads: Vec<Option<Load>>,
        notes: impl Fn(&Throughput) -> Vec<String>,
    ) {
        let runtime = self.runtime;
        for ((i, server), load) in turns.servers.iter().zip(loads) {
            let Some(l) = load else { continue };
            let t = l.result();
            results[*i].notes.extend(notes(&t));
            if t.errors > 0 {
                let what = turns.failed(&format!("{} calls failed", t.errors));
                self.problem(&mut results[*i], turns.entries[*i].ours, what);
            }
            (turns.measured)(&mut results[*i]).push(t);
            runtime.block_on(async move { drop(l) });
            server.settle(Duration::from_secs(30));
        }
    }

    /// Two Redis-layer servers: single-subscriber delivery on the same and
    /// on the other node, and on a server of the memory layer (the
    /// baseline); then fan-out to each of the plan's subscriber counts,
    /// half of them on each node, the call on node A.
    fn cross_node(
        &mut self,
        start: &dyn Fn() -> Result<ServerProc, String>,
        start_memory: &dyn Fn() -> Result<ServerProc, String>,
    ) -> Result<CrossNode, String> {
        progress::step(
            "cross-node: one subscriber, the call on the same node, on the other node (Redis) \
             and on the memory layer",
        );
        let plan = self.plan;
        let mut sizes = plan.cross_node_fan_out.clone();
        sizes.sort_unstable();
        if let Some(n) = sizes.iter().copied().find(|n| !self.fits(*n)) {
            return Err(format!(
                "{} connections do not fit the open-files limit",
                report::thousands(n as u64)
            ));
        }
        let a = start()?;
        let b = start()?;
        let m = start_memory()?;
        self.runtime.block_on(async {
            scenarios::warm_up(a.endpoint, plan).await?;
            scenarios::warm_up(b.endpoint, plan).await?;
            scenarios::warm_up(m.endpoint, plan).await?;
            let tracker = Tracker::new();
            let mut on_a = Publisher::connect(a.endpoint, 3, plan).await?;
            let mut on_b = Publisher::connect(b.endpoint, 4, plan).await?;
            let mut on_m = Publisher::connect(m.endpoint, 5, plan).await?;
            let mut pool_b = Pool::new(b.endpoint, tracker.clone(), 100);
            pool_b.grow(1, plan).await?;
            let mut pool_m = Pool::new(m.endpoint, tracker.clone(), 2_000_000);
            pool_m.grow(1, plan).await?;
            // Node B subscribes to the Redis channel in the background once
            // its first member joins; wait until a call on A reaches it.
            if !on_a
                .until_delivered(&tracker, 1, Duration::from_secs(10))
                .await
            {
                return Err("a broadcast on node A never reached node B".to_owned());
            }
            let duplicates_before = tracker.duplicates();
            let (latencies, mut missing) = scenarios::cross_node_latency(
                &mut [&mut on_m, &mut on_b, &mut on_a],
                &tracker,
                plan,
            )
            .await?;
            let [memory, same, cross] = <[Latency; 3]>::try_from(latencies)
                .map_err(|_| "cross-node: three latencies expected".to_owned())?;
            drop((pool_m, on_m));
            let mut pool_a = Pool::new(a.endpoint, tracker.clone(), 1_000_000);
            let mut fan_out = Vec::new();
            for total in sizes {
                progress::detail(&format!(
                    "cross-node: fan-out to {} subscribers, half on each node",
                    report::thousands(total as u64)
                ));
                pool_b.grow(total / 2, plan).await?;
                pool_a.grow(total - total / 2, plan).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let f = scenarios::fan_out(&mut on_a, &tracker, total, plan).await?;
                missing += f.missing;
                fan_out.push(f);
            }
            let duplicates = tracker.duplicates() - duplicates_before;
            drop((pool_a, pool_b, on_a, on_b));
            Ok(CrossNode {
                redis_adds_p50_us: cross.p50_us - memory.p50_us,
                memory_layer: Some(memory),
                same_node: same,
                cross_node: cross,
                two_nodes: None,
                fan_out,
                missing,
                duplicates,
            })
        })
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    /// Whether `connections` client sockets (and as many server sockets in
    /// the server's process) fit the open-files limit.
    fn fits(&self, connections: usize) -> bool {
        connections as u64 + 512 <= self.nofile
    }
}

/// Why `connections` connections calling in a closed loop would not give
/// a measurement on a server, judged from its throughput at the largest
/// level measured below it: each call would wait about `connections`
/// divided by its calls per second, and past half the call timeout the
/// calls would time out rather than be answered.
fn too_slow_for(result: &ServerResult, connections: usize, plan: &Plan) -> Option<String> {
    let below = result
        .throughput
        .iter()
        .filter(|t| t.connections < connections && t.calls > 0)
        .max_by_key(|t| t.connections)?;
    let per_second = below.median_calls_per_second();
    let wait = connections as f64 / per_second.max(f64::EPSILON);
    let timeout = plan.call_timeout().as_secs_f64();
    (wait > timeout / 2.0).then(|| {
        format!(
            "at its {per_second:.0} calls per second with {} connections, each call would \
             wait about {wait:.1} s, past half the {timeout:.0} s call timeout",
            report::thousands(below.connections as u64)
        )
    })
}

/// `2026-11-25T10:20:30Z`.
pub(crate) fn utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `2026-11-25T10:20:30Z` -> `20261125-102030`.
pub(crate) fn compact(utc: &str) -> String {
    utc.replace(['-', ':', 'Z'], "").replace('T', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_is_skipped_when_its_calls_would_time_out() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/run-20261206-060847.json"
        );
        let text = std::fs::read_to_string(path).expect("a committed results file");
        let run: Run = serde_json::from_str(&text).expect("a run");
        let plan = Plan::full();
        let django = run.server(report::DJANGO).expect("Django LiveView");
        let floor = run.server(report::FLOOR).expect("the floor");
        // 737 calls per second at 500 connections: 5,000 would wait ~7 s.
        let why = too_slow_for(django, 5_000, &plan).expect("too slow at 5,000");
        assert!(why.contains("500 connections"), "{why}");
        assert!(too_slow_for(django, 500, &plan).is_none());
        assert!(too_slow_for(floor, 5_000, &plan).is_none());
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_066_030);
        assert_eq!(utc(t), "2025-11-25T10:20:30Z");
        assert_eq!(compact("2025-11-25T10:20:30Z"), "20251125-102030");
    }
}
