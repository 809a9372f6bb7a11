//! The Django LiveView peer in `bench/peer/`: its virtualenv, made from
//! PyPI on first use, and its Daphne command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::Spawner;

/// The peer's project directory (`bench/peer`).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub dir: PathBuf,
}

/// How long creating the virtualenv and installing from PyPI may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Peer {
    fn venv(&self) -> PathBuf {
        self.dir.join(".venv")
    }

    fn python(&self) -> PathBuf {
        self.venv().join("bin").join("python")
    }

    /// Make `.venv` and install `requirements.txt` into it, unless Daphne
    /// is there already.
    pub(crate) fn ensure_installed(&self) -> Result<(), String> {
        if self.venv().join("bin").join("daphne").exists() {
            return Ok(());
        }
        eprintln!(
            "installing the Django LiveView peer into {}",
            self.venv().display()
        );
        run_bounded(
            Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(self.venv()),
            INSTALL_TIMEOUT,
        )?;
        run_bounded(
            Command::new(self.python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(self.dir.join("requirements.txt")),
            INSTALL_TIMEOUT,
        )
    }

    /// `(python version, "django-liveview X, Django Y, channels Z, ...")`.
    pub(crate) fn versions(&self) -> (String, String) {
        let script = "import sys, importlib.metadata as m\n\
            print(sys.version.split()[0])\n\
            print(', '.join(f'{p} {m.version(p)}' for p in \
            ['django-liveview', 'Django', 'channels', 'channels-redis', 'daphne', 'Twisted']))";
        let output = Command::new(self.python()).arg("-c").arg(script).output();
        let text = output
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut lines = text.lines();
        (
            lines.next().unwrap_or("unknown").to_owned(),
            lines.next().unwrap_or("unknown").to_owned(),
        )
    }

    /// Daphne serving the peer on `port`, with its own channel-layer
    /// prefix.
    pub(crate) fn command(
        &self,
        spawner: &Spawner,
        port: u16,
        prefix: &str,
        redis: SocketAddr,
    ) -> Command {
        let daphne = self.venv().join("bin").join("daphne");
        let mut command = spawner.command(&daphne);
        command
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-v", "0"])
            // Daphne refuses (403) a WebSocket its application has not
            // accepted within 5 s; thousands of connections opening at once
            // wait longer than that in its single application thread.
            .args(["--websocket_connect_timeout", "120"])
            .arg("peer.asgi:application")
            .current_dir(&self.dir)
            .env("DJANGO_SETTINGS_MODULE", "peer.settings")
            .env("BENCH_CHANNEL_PREFIX", prefix)
            .env("BENCH_REDIS_HOST", redis.ip().to_string())
            .env("BENCH_REDIS_PORT", redis.port().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }
}

/// Run `command` to the end, or kill it after `timeout`.
fn run_bounded(command: &mut Command, timeout: Duration) -> Result<(), String> {
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{command:?} failed: {status}")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{command:?} took longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `bench/peer`, next to this crate's manifest.
pub(crate) fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peer")
}
