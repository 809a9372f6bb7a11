//! `idle-scale`: as many idle connections as one process may hold here
//! (19,000 under a 20,000 open-files limit) against the quick start on the
//! library's defaults, abuse limits included. The load generator is split
//! over several `hold` processes, each well under the limit, whose
//! connections come from 254 loopback source addresses (127.0.0.2 to
//! 127.0.0.255), under the default cap of 256 connections per address.
//! Reports the server's RSS and bytes per connection, and the kernel's
//! TCP memory, for the extrapolation in `docs/benchmarks.md`.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::client::{self, Endpoint, SAY_HELLO};
use crate::procs::{self, Spawner};
use crate::report::{Machine, Provenance};
use crate::scenarios::{self, Plan};

/// The results file of an `idle-scale` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IdleScale {
    pub started: String,
    pub provenance: Provenance,
    pub machine: Machine,
    /// `liveview-memory`: the quick start's app on the memory layer with
    /// every default of the library.
    pub server: String,
    pub connections: usize,
    pub load_processes: usize,
    pub source_addresses: usize,
    /// Server RSS with only the warm-up connection gone, then with every
    /// connection open and idle (each made one call), KiB.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub bytes_per_connection: f64,
    /// The server's RSS at each quarter of the connections, KiB: the
    /// slope should not bend.
    pub rss_steps_kib: Vec<(usize, u64)>,
    /// Kernel memory of all TCP sockets (`/proc/net/sockstat`, `mem`, in
    /// pages of `page_size` bytes), before and after: client and server
    /// sides together, outside any process's RSS.
    pub kernel_tcp_pages_before: u64,
    pub kernel_tcp_pages_after: u64,
    pub page_size: u64,
    /// Each load process: connections held and its RSS, KiB.
    pub load_rss_kib: Vec<(usize, u64)>,
    pub seconds_to_open: f64,
    pub notes: Vec<String>,
}

/// `liveview-bench idle-scale [--connections N] [--procs P] [--out FILE]`.
pub(crate) fn main(args: &[String]) -> Result<bool, String> {
    let mut connections = 19_000usize;
    let mut load_processes = 4usize;
    let mut out: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--procs" => load_processes = value()?.parse().map_err(|e| format!("--procs: {e}"))?,
            "--out" => out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let load_processes = load_processes.max(1);
    let started = SystemTime::now();
    let nofile = crate::raise_fd_limit();
    if connections as u64 + 256 > nofile {
        return Err(format!(
            "{connections} connections do not fit the server's open-files limit of {nofile}"
        ));
    }
    let per_process = connections.div_ceil(load_processes);
    if per_process as u64 + 256 > nofile {
        return Err(format!(
            "{per_process} connections per load process do not fit its open-files limit of {nofile}: use more --procs"
        ));
    }
    let provenance = procs::provenance();
    let mut machine = procs::machine(
        false,
        false,
        nofile,
        SocketAddr::from(([127, 0, 0, 1], 6379)),
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let spawner = Spawner {
        pin: false,
        raise_priority: false,
    };
    let words = ["server", "--layer", "memory", "--defaults"];
    let server = spawner.bench_server(&exe, "liveview-memory", &words, &[])?;
    let plan = Plan::full();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // One connection and one call first (the abuse limits are on: no long
    // warm-up), so the baseline has the app's lazily made state.
    runtime.block_on(async {
        let mut ws = server
            .endpoint
            .connect(&client::room(0), None, plan.connect_timeout())
            .await?;
        client::call(&mut ws, SAY_HELLO, plan.connect_timeout()).await
    })?;
    server.settle(Duration::from_secs(10));
    let rss_before_kib = server.rss_kib().unwrap_or(0);
    let kernel_tcp_pages_before = tcp_pages();

    eprintln!(
        "idle-scale: {connections} connections from {load_processes} processes, server RSS {rss_before_kib} KiB"
    );
    let clock = Instant::now();
    let mut holders: Vec<Holder> = Vec::new();
    let mut rss_steps_kib = Vec::new();
    let mut first = 0;
    while first < connections {
        let count = per_process.min(connections - first);
        holders.push(Holder::start(&exe, server.endpoint.addr, first, count)?);
        first += count;
    }
    let mut held = 0;
    for holder in &mut holders {
        holder.wait_held(Duration::from_secs(900))?;
        held += holder.count;
        rss_steps_kib.push((held, server.rss_kib().unwrap_or(0)));
        eprintln!(
            "  {held} connections held, server RSS {} KiB",
            rss_steps_kib.last().map_or(0, |s| s.1)
        );
    }
    let seconds_to_open = clock.elapsed().as_secs_f64();
    server.settle(Duration::from_secs(60));
    let rss_after_kib = server.rss_kib().unwrap_or(0);
    let kernel_tcp_pages_after = tcp_pages();
    let load_rss_kib = holders
        .iter()
        .map(|h| (h.count, procs::rss_kib(h.child.id()).unwrap_or(0)))
        .collect();
    machine.load_average_after = procs::load_average();
    let result = IdleScale {
        started: crate::harness::utc(started),
        provenance,
        machine,
        server: crate::report::MEMORY.to_owned(),
        connections,
        load_processes: holders.len(),
        source_addresses: SOURCES as usize,
        rss_before_kib,
        rss_after_kib,
        bytes_per_connection: (rss_after_kib.saturating_sub(rss_before_kib) * 1024) as f64
            / connections as f64,
        rss_steps_kib,
        kernel_tcp_pages_before,
        kernel_tcp_pages_after,
        page_size: 4096,
        load_rss_kib,
        seconds_to_open,
        notes: Vec::new(),
    };
    for holder in holders {
        holder.release();
    }
    drop(server);

    let out = out.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!(
                "idle-scale-{}.json",
                crate::harness::compact(&result.started)
            ))
    });
    let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    std::fs::write(&out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "{} idle connections: server RSS {} KiB -> {} KiB, {:.0} bytes per connection; \
         kernel TCP memory {} -> {} pages; opened in {:.0} s\nresults written to {}",
        result.connections,
        result.rss_before_kib,
        result.rss_after_kib,
        result.bytes_per_connection,
        result.kernel_tcp_pages_before,
        result.kernel_tcp_pages_after,
        result.seconds_to_open,
        out.display()
    );
    Ok(true)
}

/// Loopback source addresses: 127.0.0.2 to 127.0.0.255.
const SOURCES: u32 = 254;

fn source(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (2 + index as u32 % SOURCES) as u8))
}

/// Pages of memory the kernel's TCP sockets use (`TCP: ... mem N`).
fn tcp_pages() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("TCP:"))?.to_owned();
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "mem")?;
            words.get(at + 1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// A `hold` child process.
struct Holder {
    child: Child,
    count: usize,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Holder {
    fn start(exe: &Path, addr: SocketAddr, first: usize, count: usize) -> Result<Self, String> {
        let mut child = Command::new(exe)
            .args([
                "hold",
                "--addr",
                &addr.to_string(),
                "--first",
                &first.to_string(),
                "--connections",
                &count.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting a load process: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Self {
            child,
            count,
            lines,
        })
    }

    fn wait_held(&mut self, within: Duration) -> Result<(), String> {
        match self.lines.recv_timeout(within) {
            Ok(line) if line.starts_with("held ") => Ok(()),
            Ok(line) => Err(format!("a load process said {line:?}")),
            Err(_) => Err(format!(
                "a load process did not hold its {} connections within {within:?}",
                self.count
            )),
        }
    }

    /// Close its stdin: it drops its connections and exits.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `liveview-bench hold --addr ADDR --first I --connections N`: open N
/// connections (indexes I.. for rooms and source addresses), each with
/// one call answered, print `held N`, and keep them until stdin closes.
pub(crate) fn hold(args: &[String]) -> Result<(), String> {
    let mut addr = None;
    let mut first = 0usize;
    let mut count = 0usize;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => {
                addr = Some(
                    value()?
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--addr: {e}"))?,
                )
            }
            "--first" => first = value()?.parse().map_err(|e| format!("--first: {e}"))?,
            "--connections" => {
                count = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    if !addr.ip().is_loopback() {
        return Err("hold only loads servers on this machine".to_owned());
    }
    crate::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let plan = Plan::full();
    let endpoint = Endpoint::new(addr);
    let sockets = runtime.block_on(scenarios::open_many(
        endpoint,
        first,
        count,
        |index| Some(source(index)),
        &plan,
    ))?;
    println!("held {}", sockets.len());
    // Idle until the parent closes stdin; the sockets stay open meanwhile
    // (no reads are needed: an idle server sends nothing).
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(sockets);
    Ok(())
}
