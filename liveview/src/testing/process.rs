//! What the private servers of the test helpers share: free ports,
//! temporary directories, child processes killed on drop, and waiting for a
//! condition with a deadline.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port of 127.0.0.1 that nothing listens on right now.
pub(crate) fn free_port() -> io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|addr| addr.port())
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
