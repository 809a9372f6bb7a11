//! What the private servers of the test helpers share: free ports,
//! temporary directories, child processes killed on drop, and waiting for a
//! condition with a deadline.

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Ports handed out by [`free_port`] in this process.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port of 127.0.0.1 that nothing listens on right now, never handed out
/// before in this process, and outside the range the kernel picks local
/// ports of outgoing connections from (where it knows that range).
///
/// The port is free when it is picked, not reserved: the server it is for
/// binds it later. A port the kernel chose for a listener of its own
/// (`127.0.0.1:0`) lies in that very range, where any outgoing connection
/// of the machine may take it in between (a suite that opens thousands
/// of sockets does), and may come back from two calls in a row; either
/// way the server then cannot bind it.
pub(crate) fn free_port() -> io::Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let below = ephemeral_ports_start().unwrap_or(0);
    if below > FIRST_PORT + 1_000 {
        let span = u32::from(below - FIRST_PORT);
        for _ in 0..1_000 {
            let pick = getrandom::u32().map_err(|err| io::Error::other(err.to_string()))?;
            let port = FIRST_PORT + u16::try_from(pick % span).unwrap_or(0);
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    loop {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// The lowest port [`free_port`] picks.
const FIRST_PORT: u16 = 10_000;

/// Where the kernel's range of local ports for outgoing connections
/// starts (Linux).
fn ephemeral_ports_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(kind: &str) -> io::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("liveview-{kind}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process started from a program and arguments, which can be
/// killed and started again with the same ones; killed on drop.
#[derive(Debug)]
pub(crate) struct Process {
    program: String,
    args: Vec<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl Process {
    pub(crate) fn new(program: &str, args: Vec<String>, dir: &Path) -> Self {
        Self {
            program: program.to_owned(),
            args,
            dir: dir.to_owned(),
            child: None,
        }
    }

    /// Start the process (again); its output goes to `<dir>/<program>.log`.
    pub(crate) fn spawn(&mut self) -> io::Result<()> {
        self.kill();
        let name = Path::new(&self.program)
            .file_name()
            .map_or_else(|| "process".into(), |n| n.to_string_lossy().into_owned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|err| {
                io::Error::new(err.kind(), format!("cannot start {}: {err}", self.program))
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Kill the process outright (SIGKILL), as if its machine died, and
    /// reap it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the process (again) and wait until `ready` holds, for at
    /// most `limit`.
    pub(crate) async fn spawn_until<F>(
        &mut self,
        what: &str,
        limit: Duration,
        ready: F,
    ) -> io::Result<()>
    where
        F: Fn() -> bool + Clone + Send + 'static,
    {
        self.spawn()?;
        wait_until(what, limit, ready).await
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run a blocking check on the blocking pool until it holds, for at most
/// `limit`; an error names `what` when it never does.
pub(crate) async fn wait_until<F>(what: &str, limit: Duration, check: F) -> io::Result<()>
where
    F: Fn() -> bool + Clone + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let check = check.clone();
        let holds = tokio::task::spawn_blocking(check)
            .await
            .map_err(io::Error::other)?;
        if holds {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {limit:?} waiting until {what}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The standard output of a command that must succeed.
pub(crate) fn output(program: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot run {program}: {err}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports for the nodes of several clusters: never one twice, and none
    /// that an outgoing connection may be given meanwhile.
    #[test]
    fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..300).map(|_| free_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        if let Some(start) = ephemeral_ports_start() {
            assert!(
                ports.iter().all(|&port| port < start),
                "a port in the range of outgoing connections (from {start}): {ports:?}"
            );
        }
    }
}
