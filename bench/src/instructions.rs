//! `instructions`: the work of one call on the server, counted in
//! instructions. The floor and the quick start (memory layer) each run
//! under valgrind's callgrind; at each connection count the connections
//! open and warm up, the counters are zeroed, every connection makes the
//! same number of `say_hello` calls in a closed loop, and the counters are
//! dumped. Instructions divided by calls do not depend on the machine's
//! load, so the ratio to the floor is reproducible where CPU time is not;
//! the dumps are kept for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use crate::client::{self, SAY_HELLO, Ws};
use crate::procs::{self, ServerProc, Spawner};
use crate::report::{Machine, Provenance};
use crate::scenarios::{self, Plan};

/// The results file of an `instructions` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Instructions {
    pub started: String,
    pub provenance: Provenance,
    pub machine: Machine,
    /// `valgrind --version`.
    pub valgrind: String,
    /// Calls counted at each connection count (each connection makes the
    /// same number; at least `calls` in all).
    pub calls: u64,
    /// Calls each connection made before the counters were zeroed.
    pub warmup_calls_per_connection: usize,
    pub rows: Vec<Row>,
    /// Where the callgrind dumps were written, for `callgrind_annotate`.
    pub dumps: String,
    pub notes: Vec<String>,
}

/// One connection count: instructions per call of both servers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Row {
    pub connections: usize,
    /// Calls counted (the same on both servers).
    pub calls: u64,
    /// Instructions of the whole server process (every thread) while the
    /// calls ran, divided by the calls.
    pub floor_per_call: f64,
    pub liveview_per_call: f64,
    /// `liveview_per_call / floor_per_call`.
    pub ratio: f64,
}

/// One server's count at one connection count.
struct Counted {
    connections: usize,
    calls: u64,
    instructions: u64,
}

/// `liveview-bench instructions [--connections 1,50,500,5000] [--calls N]
/// [--out FILE] [--dumps DIR]`.
pub(crate) fn main(args: &[String]) -> Result<bool, String> {
    let mut counts = vec![1usize, 50, 500, 5_000];
    let mut calls = 10_000u64;
    let mut out: Option<PathBuf> = None;
    let mut dumps: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--connections" => {
                counts = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--connections: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--calls" => calls = value()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--dumps" => dumps = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if counts.is_empty() || counts.contains(&0) || calls == 0 {
        return Err("--connections and --calls must be positive".to_owned());
    }
    let valgrind =
        tool_version("valgrind").ok_or("valgrind is not installed (it counts the instructions)")?;
    tool_version("callgrind_control").ok_or("callgrind_control is not installed")?;
    let started = SystemTime::now();
    let stamp = crate::harness::compact(&crate::harness::utc(started));
    let nofile = crate::raise_fd_limit();
    if let Some(&most) = counts.iter().max()
        && most as u64 + 256 > nofile
    {
        return Err(format!(
            "{most} connections do not fit the open-files limit of {nofile}"
        ));
    }
    let dumps = dumps.unwrap_or_else(|| std::env::temp_dir().join(format!("instructions-{stamp}")));
    std::fs::create_dir_all(&dumps).map_err(|e| format!("{}: {e}", dumps.display()))?;
    let provenance = procs::provenance();
    let mut machine = procs::machine(
        false,
        false,
        nofile,
        std::net::SocketAddr::from(([127, 0, 0, 1], 6379)),
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let mut measured = Vec::new();
    for (name, words) in [
        ("floor", &["floor"][..]),
        ("liveview-memory", &["server", "--layer", "memory"][..]),
    ] {
        let server = start(&exe, name, words, &dumps)?;
        let mut rows = Vec::new();
        for &connections in &counts {
            let counted = runtime.block_on(count(&server, name, connections, calls, &dumps))?;
            eprintln!(
                "instructions: {name}, {connections} connections: {:.0} per call ({} calls)",
                counted.instructions as f64 / counted.calls as f64,
                counted.calls
            );
            rows.push(counted);
        }
        measured.push(rows);
    }
    let [floor, liveview] =
        <[Vec<Counted>; 2]>::try_from(measured).map_err(|_| "two servers measured".to_owned())?;
    let rows = floor
        .iter()
        .zip(&liveview)
        .map(|(f, l)| {
            let per_call = |c: &Counted| c.instructions as f64 / c.calls as f64;
            Row {
                connections: f.connections,
                calls: f.calls,
                floor_per_call: per_call(f),
                liveview_per_call: per_call(l),
                ratio: per_call(l) / per_call(f),
            }
        })
        .collect();
    machine.load_average_after = procs::load_average();
    let result = Instructions {
        started: crate::harness::utc(started),
        provenance,
        machine,
        valgrind,
        calls,
        warmup_calls_per_connection: WARMUP_CALLS,
        rows,
        dumps: dumps.display().to_string(),
        notes: vec![
            "Instructions (callgrind's Ir) of the whole server process, every thread, \
             from the zeroing of the counters to their dump; the connections were open \
             and warm before. Both servers run the same release binary."
                .to_owned(),
        ],
    };
    let out = out.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("instructions-{stamp}.json"))
    });
    let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    std::fs::write(&out, json + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{}", markdown(&result));
    println!("results written to {}", out.display());
    Ok(true)
}

/// Calls each connection makes before the counters are zeroed (the first
/// one, made on opening, included): lazily made state is made by then.
const WARMUP_CALLS: usize = 3;

/// The table of `docs/benchmarks.md`'s "Work per call".
pub(crate) fn markdown(run: &Instructions) -> String {
    let mut out = String::from(
        "| Connections | Calls counted | Floor, instructions per call | LiveView (memory), instructions per call | Ratio |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    for row in &run.rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.2}× |\n",
            row.connections, row.calls, row.floor_per_call, row.liveview_per_call, row.ratio
        ));
    }
    out
}

/// `PROGRAM --version`'s first line, if it runs.
fn tool_version(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

/// Start the bench binary as server `name` (`exe WORDS... --addr ...`)
/// under callgrind, its dumps in `dumps`.
fn start(exe: &Path, name: &str, words: &[&str], dumps: &Path) -> Result<ServerProc, String> {
    let port = procs::free_port()?;
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dumps.join(format!("callgrind.{name}.%p")).display()
        ))
        .arg(exe)
        .args(words)
        .args(["--addr", &format!("127.0.0.1:{port}")]);
    let spawner = Spawner {
        pin: false,
        raise_priority: false,
    };
    spawner.start(name, command, port, Duration::from_secs(300))
}

/// Open `connections` connections to `server`, warm them up, zero the
/// counters, make `calls` calls (rounded up to a number per connection),
/// dump the counters and read the instructions.
async fn count(
    server: &ServerProc,
    name: &str,
    connections: usize,
    calls: u64,
    dumps: &Path,
) -> Result<Counted, String> {
    // Under valgrind a server is some fifty times slower: long timeouts.
    let plan = Plan {
        connect_timeout_seconds: 600.0,
        connect_concurrency: 16,
        ..Plan::full()
    };
    let timeout = Duration::from_secs(600);
    let mut sockets =
        scenarios::open_many(server.endpoint, 2_000_000, connections, spread, &plan).await?;
    rounds(&mut sockets, WARMUP_CALLS - 1, timeout).await?;
    callgrind_control(server.pid, "-z")?;
    let per_connection = calls.div_ceil(connections as u64) as usize;
    rounds(&mut sockets, per_connection, timeout).await?;
    let before = dump_files(dumps, name, server.pid);
    callgrind_control(server.pid, "-d")?;
    let dump = dump_files(dumps, name, server.pid)
        .into_iter()
        .find(|f| !before.contains(f))
        .ok_or_else(|| format!("no new callgrind dump of {name} in {}", dumps.display()))?;
    let instructions = total_instructions(&dump)?;
    drop(sockets);
    Ok(Counted {
        connections,
        calls: (per_connection * connections) as u64,
        instructions,
    })
}

/// Connections come from several loopback addresses, as in the
/// throughput scenarios.
fn spread(index: usize) -> Option<std::net::IpAddr> {
    Some(client::source_address(index))
}

/// Every connection makes `calls` calls, one at a time, all connections at
/// once.
async fn rounds(sockets: &mut [Ws], calls: usize, timeout: Duration) -> Result<(), String> {
    let mut running: FuturesUnordered<_> = sockets
        .iter_mut()
        .map(|ws| async move {
            for _ in 0..calls {
                client::call(ws, SAY_HELLO, timeout).await?;
            }
            Ok::<(), String>(())
        })
        .collect();
    while let Some(done) = running.next().await {
        done?;
    }
    Ok(())
}

/// `callgrind_control FLAG PID`: `-z` zeroes the counters, `-d` dumps
/// them (it returns once the dump is written).
fn callgrind_control(pid: u32, flag: &str) -> Result<(), String> {
    let output = Command::new("callgrind_control")
        .args([flag, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {flag} {pid} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The dumps of server `name`'s process `pid` so far.
fn dump_files(dumps: &Path, name: &str, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("callgrind.{name}.{pid}");
    std::fs::read_dir(dumps)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.strip_prefix(&prefix)
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The instructions a dump counted: its `summary:` (or `totals:`) line.
fn total_instructions(dump: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{}: no summary line", dump.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_s_total_is_read() {
        let dir = std::env::temp_dir().join(format!("instructions-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("callgrind.floor.1.1");
        std::fs::write(
            &file,
            "version: 1\nevents: Ir\nfn=main\n1 5\nsummary: 123456\ntotals: 123456\n",
        )
        .unwrap();
        assert_eq!(total_instructions(&file).unwrap(), 123_456);
        assert_eq!(dump_files(&dir, "floor", 1), vec![file]);
        assert!(dump_files(&dir, "floor", 2).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
