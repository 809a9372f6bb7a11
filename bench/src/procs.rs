//! Server processes under test, and what `/proc` says about them and the
//! machine.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Endpoint;
use crate::report::{Machine, Provenance};

/// A server process, killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProc {
    pub name: String,
    pub endpoint: Endpoint,
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

/// How to start the processes: pinned to core 0 or not, at a raised
/// priority or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spawner {
    pub pin: bool,
    pub raise_priority: bool,
}

impl Spawner {
    /// A command for `program`, on core 0 when pinning, at nice -10 when
    /// raising the priority.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut words: Vec<&std::ffi::OsStr> = Vec::new();
        if self.raise_priority {
            words.extend(["nice", "-n", PRIORITY].map(std::ffi::OsStr::new));
        }
        if self.pin {
            words.extend(["taskset", "-c", "0"].map(std::ffi::OsStr::new));
        }
        words.push(program.as_os_str());
        let mut command = Command::new(words[0]);
        command.args(&words[1..]);
        command
    }

    /// Start the bench binary `exe` as server `name` on a free port of
    /// 127.0.0.1: `exe WORDS... --addr 127.0.0.1:PORT EXTRA...`.
    pub(crate) fn bench_server(
        &self,
        exe: &Path,
        name: &str,
        words: &[&str],
        extra: &[&str],
    ) -> Result<ServerProc, String> {
        let port = free_port()?;
        let mut command = self.command(exe);
        command.args(words);
        command.args(["--addr", &format!("127.0.0.1:{port}")]);
        command.args(extra);
        self.start(name, command, port, Duration::from_secs(60))
    }

    /// Start `command` as server `name` listening on `port`, and wait until
    /// it accepts TCP connections.
    pub(crate) fn start(
        &self,
        name: &str,
        mut command: Command,
        port: u16,
        ready_within: Duration,
    ) -> Result<ServerProc, String> {
        let log = std::env::temp_dir().join(format!("liveview-bench-{name}-{port}.log"));
        let file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = ServerProc {
            name: name.to_owned(),
            endpoint: Endpoint::new(addr),
            pid: child.id(),
            child,
            log,
        };
        let deadline = Instant::now() + ready_within;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{name} exited ({status}): {}", server.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not listen within {ready_within:?}: {}",
                    server.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl ServerProc {
    /// Resident memory, KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait until the server uses (almost) no CPU: it has finished what the
    /// previous scenario left it (closing thousands of connections, say).
    /// Quiet is two 50 ms intervals in a row with under 8% of a core each
    /// (its threads' run time, to the nanosecond).
    pub(crate) fn settle(&self, at_most: Duration) {
        const STEP: Duration = Duration::from_millis(50);
        let deadline = Instant::now() + at_most;
        let mut quiet = 0;
        let mut last = ThreadTimes::of(self.pid);
        while Instant::now() < deadline && quiet < 2 {
            std::thread::sleep(STEP);
            let now = ThreadTimes::of(self.pid);
            quiet = match now.since(&last) {
                Some(ns) if ns * 100 <= STEP.as_nanos() as u64 * 8 => quiet + 1,
                _ => 0,
            };
            last = now;
        }
    }

    /// Run time of the server's threads so far.
    pub(crate) fn thread_times(&self) -> ThreadTimes {
        ThreadTimes::of(self.pid)
    }

    /// The end of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("log {}: {}", self.log.display(), tail.join(" | "))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes that spin at idle priority (`SCHED_IDLE`), one pinned to each
/// core, killed when dropped. A core that would otherwise sleep between
/// two hand-offs stays awake, so a single call's latency shows the hand-offs
/// rather than the cores' wake-ups; any other runnable thread takes the
/// core from them at once.
#[derive(Debug)]
pub(crate) struct Spinners {
    children: Vec<Child>,
}

/// `SCHED_IDLE` in `/proc/PID/stat`'s policy field.
const SCHED_IDLE: u32 = 5;

impl Spinners {
    /// One spinner on each of cores `0..cores`, each running (under
    /// `SCHED_IDLE`, on its core) when this returns.
    pub(crate) fn start(cores: usize) -> Result<Self, String> {
        let mut spinners = Self {
            children: Vec::new(),
        };
        for core in 0..cores {
            // chrt and taskset exec what follows them: the shell keeps the
            // child's pid, policy and affinity.
            let child = Command::new("chrt")
                .args(["-i", "0", "taskset", "-c", &core.to_string()])
                .args(["sh", "-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting a spinner (chrt): {e}"))?;
            spinners.children.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut spinners.children {
            let pid = child.id();
            while !is_idle_shell(pid) {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("a spinner exited ({status})"));
                }
                if Instant::now() > deadline {
                    return Err("the spinners did not run under SCHED_IDLE within 5 s".to_owned());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(spinners)
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }
}

/// Whether process `pid` runs `sh` under `SCHED_IDLE`.
fn is_idle_shell(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let name = &stat[open + 1..close];
    // Fields after the name start at the state (field 3); the policy is
    // field 41.
    let policy = stat[close + 2..]
        .split_whitespace()
        .nth(41 - 3)
        .and_then(|p| p.parse::<u32>().ok());
    name == "sh" && policy == Some(SCHED_IDLE)
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// `VmRSS` of a process, KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The niceness of the benchmark's processes when they may raise their
/// priority: other work on the machine then disturbs the measurements less.
const PRIORITY: &str = "-10";

/// Raise this process's priority (before it starts threads, which inherit
/// it); false when not allowed.
pub(crate) fn raise_priority_self() -> bool {
    Command::new("renice")
        .args(["-n", PRIORITY, "-p", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pin this process (and the threads it starts later) to every core but
/// core 0, which the servers have.
pub(crate) fn pin_self() -> bool {
    Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &format!("1-{}", cores().max(2) - 1),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pin the calling thread (only it, and the threads it starts later) to
/// `core`.
pub(crate) fn pin_this_thread(core: usize) -> bool {
    let Some(tid) = this_thread_id() else {
        return false;
    };
    Command::new("taskset")
        .args(["-p", "-c", &core.to_string(), &tid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The calling thread's id.
pub(crate) fn this_thread_id() -> Option<u32> {
    // `/proc/thread-self` links to `PID/task/TID`.
    fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// Time thread `tid` of this process has run on a CPU, nanoseconds
/// (`/proc/self/task/TID/schedstat`).
pub(crate) fn thread_cpu_ns(tid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of this process so far, every thread, nanoseconds (the sum of
/// `/proc/self/task/*/schedstat`: finer than clock ticks, for short
/// rounds).
pub(crate) fn process_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        let ns = fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        total += ns.unwrap_or(0);
    }
    Some(total)
}

/// The run time of each thread of a process at one moment, nanoseconds
/// (`/proc/PID/task/TID/schedstat`): CPU time to the nanosecond, where
/// `/proc/PID/stat` counts clock ticks (10 ms), too coarse for slices of
/// a fraction of a second.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadTimes {
    /// `(thread id, run time)`; empty when the process could not be read.
    threads: Vec<(u32, u64)>,
}

impl ThreadTimes {
    pub(crate) fn of(pid: u32) -> Self {
        let mut threads = Vec::new();
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
            return Self { threads };
        };
        for task in dir.flatten() {
            let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
            let ns = fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let (Some(tid), Some(ns)) = (tid, ns) {
                threads.push((tid, ns));
            }
        }
        Self { threads }
    }

    /// This process's threads.
    pub(crate) fn of_self() -> Self {
        Self::of(std::process::id())
    }

    /// CPU time used between `earlier` and this snapshot, nanoseconds: a
    /// thread started in between counts from zero; a thread that ended in
    /// between is not counted (its last moments are lost, not
    /// double-counted). `None` when either snapshot is empty.
    pub(crate) fn since(&self, earlier: &Self) -> Option<u64> {
        if self.threads.is_empty() || earlier.threads.is_empty() {
            return None;
        }
        Some(
            self.threads
                .iter()
                .map(|(tid, ns)| {
                    let before = earlier
                        .threads
                        .iter()
                        .find(|(t, _)| t == tid)
                        .map_or(0, |(_, b)| *b);
                    ns.saturating_sub(before)
                })
                .sum(),
        )
    }
}

/// Number of cores of the machine (not of this process's affinity).
pub(crate) fn cores() -> usize {
    fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1)
        .max(1)
}

/// `/proc/loadavg`'s three averages.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What the machine is.
pub(crate) fn machine(
    pinned: bool,
    raised_priority: bool,
    nofile: u64,
    redis: SocketAddr,
) -> Machine {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
    Machine {
        cpu,
        cores: cores(),
        memory_gib,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_default(),
        load_average_before: load_average(),
        load_average_after: String::new(),
        nofile_limit: nofile,
        pinned,
        raised_priority,
        load_generator_threads: 0,
        load_generator_cores: 0,
        round_trip_spinners: 0,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
        rustc,
        redis: redis_version(redis).unwrap_or_else(|| "not reachable".to_owned()),
        python: String::new(),
        django_stack: String::new(),
    }
}

/// The commit of the working tree the harness runs in, whether it has
/// uncommitted changes, and the command line.
pub(crate) fn provenance() -> Provenance {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    let commit = git(&["rev-parse", "HEAD"]).map_or_else(String::new, |s| s.trim().to_owned());
    // Untracked files count: a new source file changes the build as much.
    let dirty = git(&["status", "--porcelain"]).is_none_or(|s| !s.trim().is_empty());
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let command = std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    Provenance {
        commit,
        dirty,
        harness_version: crate::harness::HARNESS_VERSION,
        command: format!(
            "{command} ({} build)",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
        socket_buffers: crate::floor::library_socket_buffers().unwrap_or_default(),
    }
}

/// Send one RESP command and read what comes back within a short time.
fn redis_command(addr: SocketAddr, parts: &[&str]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut request = format!("*{}\r\n", parts.len());
    for p in parts {
        request.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut buf = vec![0; 16 * 1024];
    let mut read = 0;
    // A bulk reply may come in several reads; the INFO section is small.
    while read < buf.len() {
        match stream.read(&mut buf[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        if buf[..read].ends_with(b"\r\n") {
            break;
        }
    }
    Some(String::from_utf8_lossy(&buf[..read]).into_owned())
}

/// Whether a Redis server answers PING at `addr`.
pub(crate) fn redis_up(addr: SocketAddr) -> bool {
    redis_command(addr, &["PING"]).is_some_and(|r| r.starts_with("+PONG"))
}

fn redis_version(addr: SocketAddr) -> Option<String> {
    let info = redis_command(addr, &["INFO", "server"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| format!("redis-server {}", v.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measurable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(
            ThreadTimes::of(pid)
                .since(&ThreadTimes::default())
                .is_none()
        );
        assert!(ThreadTimes::of(pid).since(&ThreadTimes::of(pid)).is_some());
        assert!(cores() >= 1);
    }

    #[test]
    fn thread_times_count_what_ran_in_between() {
        let before = ThreadTimes::of_self();
        // A thread started after the first snapshot runs 20 ms of CPU (by
        // its own count), then waits to be let go.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let tid = this_thread_id().expect("a thread id");
            let start = thread_cpu_ns(tid).expect("its run time");
            let mut x = 0u64;
            while thread_cpu_ns(tid).expect("its run time") < start + 20_000_000 {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
            done_tx.send(()).expect("the test waits");
            let _ = go_rx.recv();
        });
        done_rx.recv().expect("the worker ran");
        let after = ThreadTimes::of_self();
        let ns = after.since(&before).expect("this process is readable");
        assert!(ns >= 20_000_000, "the worker's 20 ms of CPU: {ns} ns");
        assert_eq!(ThreadTimes::default().since(&after), None);
        drop(go_tx);
        worker.join().expect("the worker");
    }

    #[test]
    fn spinners_run_at_idle_priority_until_dropped() {
        let spinners = Spinners::start(1).expect("chrt and taskset start a spinner");
        let pid = spinners.children[0].id();
        assert!(is_idle_shell(pid));
        assert!(!is_idle_shell(std::process::id()));
        drop(spinners);
        assert!(!is_idle_shell(pid));
    }
}
