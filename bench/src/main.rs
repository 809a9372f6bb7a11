//! `liveview-bench`: measures LiveView for Rust against Django LiveView
//! and against a bare WebSocket server (the floor), in one run on one
//! machine. See `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p liveview-bench -- all      # the full run
//! cargo run -p liveview-bench -- smoke              # CI: a few seconds
//! cargo run --release -p liveview-bench -- replay-log  # the replay log alone
//! liveview-bench server --layer memory|redis --addr 127.0.0.1:9000
//! liveview-bench floor --addr 127.0.0.1:9001
//! liveview-bench report bench/results/run-….json   # the Markdown tables
//! liveview-bench charts bench/results/run-….json   # the SVG charts of docs/benchmarks/
//! cargo run --release -p liveview-bench -- idle-scale  # 19,000 idle connections
//! cargo run --release -p liveview-bench -- layers  # every channel layer, cross-node
//! cargo run --release -p liveview-bench -- instructions  # instructions per call, callgrind
//! ```

mod charts;
mod client;
mod floor;
mod harness;
mod idle_scale;
mod instructions;
mod layers;
mod pace;
mod peer;
mod procs;
mod progress;
mod replay_log;
mod report;
mod scenarios;
mod server;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use harness::{Mode, Options};

const USAGE: &str = "\
usage: liveview-bench COMMAND [OPTIONS]

commands:
  all      the full run: floor, LiveView (memory and Redis layers), Django
           LiveView, cross-node; writes bench/results/run-<time>.json
  smoke    the same scenarios with small numbers, without Django (CI)
  replay-log
           only the full run's replay-log scenario (memory and Redis layers);
           writes bench/results/replay-log-<time>.json
  layers   the channel layers side by side: latency on one node and across
           two, fan-out over two, and frames to many rooms across two, for
           memory, Redis, Redis Cluster (3 shards) and NATS, each on a
           private server [--quick] [--layers a,b] [--out FILE]; writes
           bench/results/layers-<time>.json
  server   serve the quick start for load: --layer
           memory|redis|redis-cluster|nats --addr ADDR [--redis-url URL]
           [--seeds HOST:PORT,...] [--nats-url URL] [--prefix PREFIX]
  floor    serve the floor: --addr ADDR
  idle-scale
           19,000 idle connections (--connections N) against the quick start
           with every default, from --procs P load processes over source
           addresses 127.0.0.2-255: server RSS and bytes per connection;
           writes bench/results/idle-scale-<time>.json
  instructions
           instructions per call of the floor and of the quick start
           (memory layer), each under valgrind's callgrind, at
           --connections 1,50,500,5000 (--calls N counted at each)
           [--out FILE] [--dumps DIR]; writes
           bench/results/instructions-<time>.json
  hold     (used by idle-scale) hold --connections N from --first I on --addr
  report   print the Markdown tables of a results file: report FILE
           [--charts DIR] (with links to its charts, DIR relative to the page)
  charts   draw the SVG charts of a results file: charts FILE
           [--idle-scale FILE] [--out DIR] (default docs/benchmarks/)
  drive    load a server started by hand (to profile it): --addr ADDR
           --load calls|idle|broadcast --connections N --seconds S

options of all and smoke:
  --servers floor,memory,redis,django   which servers to measure
  --scenarios idle,fan-out,calls,fixed-rate,replay-log
                                        which scenarios to run (besides cross-node);
                                        fixed-rate needs calls
  --no-cross-node                       skip the two-node scenarios
  --no-pin                              do not pin servers and load generator to cores
  --no-spin                             do not keep the cores awake during the round
                                        trip (by default a spinning process at idle
                                        priority runs on each core, then stops)
  --redis HOST:PORT                     Redis (default 127.0.0.1:6379)
  --peer DIR                            the Django project (default bench/peer)
  --out FILE                            where to write the JSON
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "all" => options(Mode::Full, rest).and_then(|o| harness::run(&o)),
        "smoke" => options(Mode::Smoke, rest).and_then(|o| harness::run(&o)),
        "replay-log" => replay_log_options(rest).and_then(|o| harness::run(&o)),
        "server" => server::main(rest).map(|()| true),
        "floor" => floor::main(rest).map(|()| true),
        "report" => print_report(rest).map(|()| true),
        "charts" => charts::main(rest).map(|()| true),
        "drive" => drive(rest).map(|()| true),
        "idle-scale" => idle_scale::main(rest),
        "layers" => layers::main(rest),
        "instructions" => instructions::main(rest),
        "hold" => idle_scale::hold(rest).map(|()| true),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(true)
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("liveview-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn options(mode: Mode, args: &[String]) -> Result<Options, String> {
    let mut options = Options::new(mode);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--servers" => {
                options.servers = value()?.split(',').map(|s| s.trim().to_owned()).collect();
            }
            "--no-cross-node" => options.cross_node = false,
            "--scenarios" => {
                options.scenarios = value()?.split(',').map(|s| s.trim().to_owned()).collect();
            }
            "--no-pin" => options.pin = false,
            "--no-spin" => options.spin = false,
            "--redis" => {
                options.redis = value()?
                    .parse()
                    .map_err(|e| format!("--redis wants HOST:PORT: {e}"))?;
                if !options.redis.ip().is_loopback() {
                    return Err(
                        "--redis must be a loopback address: load stays on this machine".to_owned(),
                    );
                }
            }
            "--peer" => options.peer.dir = PathBuf::from(value()?),
            "--out" => options.out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// `all` with only the replay-log scenario, on the memory and Redis layers.
fn replay_log_options(args: &[String]) -> Result<Options, String> {
    let mut options = options(Mode::Full, args)?;
    options.scenarios = vec!["replay-log".to_owned()];
    options.servers.retain(|s| s == "memory" || s == "redis");
    options.cross_node = false;
    options.label = "replay-log";
    Ok(options)
}

fn print_report(args: &[String]) -> Result<(), String> {
    let path = args.first().ok_or("report needs a results file")?;
    let charts = match &args[1..] {
        [] => None,
        [flag, dir] if flag == "--charts" => Some(dir.as_str()),
        _ => return Err("report FILE [--charts DIR]".to_owned()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut run: report::Run = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    run.check_targets();
    print!("{}", run.markdown_with_charts(charts));
    Ok(())
}

fn drive(args: &[String]) -> Result<(), String> {
    let mut addr = None;
    let mut load = "calls".to_owned();
    let mut connections = 50;
    let mut seconds: f64 = 10.0;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => addr = Some(value()?),
            "--load" => load = value()?,
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let addr: std::net::SocketAddr = addr
        .ok_or("--addr is required")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("drive only loads servers on this machine (a loopback address)".to_owned());
    }
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = client::Endpoint::new(addr);
    let summary = runtime.block_on(scenarios::drive(
        endpoint,
        &load,
        connections,
        seconds.min(600.0),
    ))?;
    println!("{summary}");
    Ok(())
}

/// The multi-threaded runtime the bench servers run on.
pub(crate) fn server_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Raise the soft open-files limit to the hard one; returns the limit in
/// force. Child processes inherit it.
pub(crate) fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|_| {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
    })
}
