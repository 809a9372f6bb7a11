//! A private NATS server with JetStream for tests that kill or restart it.

use std::io::{self, BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use super::process::{Process, TempDir, free_port, wait_until};

/// Longest wait for the server to accept clients with JetStream on.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Where `nats-server` is looked for first (Debian's package); the `PATH`
/// after.
const DEBIAN_PATH: &str = "/usr/sbin/nats-server";

/// A `nats-server -js` on a free port of 127.0.0.1, its JetStream store in
/// a temporary directory, for tests that kill or restart it. The process
/// is a child of the test, killed on drop, and the directory is removed
/// then; [`restart`](Self::restart) keeps both port and store, as a server
/// restarted after a crash would.
///
/// ```no_run
/// use liveview::testing::NatsServer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let mut nats = NatsServer::start().await?;
/// let url = nats.url(); // nats://127.0.0.1:PORT
/// # drop(url);
/// nats.kill();
/// nats.restart().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    process: Process,
    _dir: TempDir,
}

impl NatsServer {
    /// Start a server and wait until it accepts clients with JetStream on.
    ///
    /// # Errors
    ///
    /// When `nats-server` cannot be started or is not ready in 20 seconds.
    pub async fn start() -> io::Result<Self> {
        let dir = TempDir::new("nats")?;
        let port = free_port()?;
        let program = if std::path::Path::new(DEBIAN_PATH).exists() {
            DEBIAN_PATH
        } else {
            "nats-server"
        };
        let args = [
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            &dir.path().join("store").display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        let process = Process::new(program, args, dir.path());
        let mut server = Self {
            port,
            process,
            _dir: dir,
        };
        server.restart().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server outright (SIGKILL). What JetStream had written to
    /// its store survives for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Start the server again on the same port with the same store (killing
    /// it first if it runs), and wait until it is ready.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.process.spawn()?;
        let port = self.port;
        wait_until(
            &format!("nats-server on {port} is ready"),
            READY_LIMIT,
            move || jetstream_ready(port),
        )
        .await
    }
}

/// Whether the server on `port` greets a client with JetStream on.
fn jetstream_ready(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok()
        && line.starts_with("INFO ")
        && line.contains("\"jetstream\":true")
}
