//! A private Redis server for tests that kill or restart it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use super::process::{Process, TempDir, free_port};

/// Longest wait for the server to answer.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// A `redis-server` on a free port of 127.0.0.1, for tests that kill or
/// restart it (never the shared one other tests use): no persistence, its
/// working directory a temporary one. The process is a child of the test,
/// killed on drop, and the directory is removed then;
/// [`restart`](Self::restart) keeps the port and the arguments, as a
/// server restarted after a crash would (empty, since nothing is saved).
///
/// ```no_run
/// use liveview::layer::RedisLayer;
/// use liveview::testing::RedisServer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut redis = RedisServer::start().await?;
/// let layer = RedisLayer::builder(redis.url()).prefix("outage-test:").build()?;
/// let live = liveview::LiveView::builder().channel_layer(layer.clone()).build()?;
/// redis.kill(); // an outage
/// redis.restart().await?; // back, empty
/// # drop(live);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    process: Process,
    dir: TempDir,
    password: Option<String>,
}

impl RedisServer {
    /// Start a server and wait until it answers.
    ///
    /// # Errors
    ///
    /// When `redis-server` cannot be started or does not answer within 10
    /// seconds.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Start a server with extra arguments of `redis-server` (e.g.
    /// `["--requirepass", "secret"]`, or `["--replicaof", "127.0.0.1",
    /// "6380"]`), and wait until it answers.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn start_with(extra: &[&str]) -> io::Result<Self> {
        let dir = TempDir::new("redis")?;
        let port = free_port()?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1))
            .map(|p| (*p).to_owned());
        let process = Process::new("redis-server", args, dir.path());
        let mut server = Self {
            port,
            process,
            dir,
            password,
        };
        server.restart().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT` (with the password when one was set).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The port served.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (its log is `redis-server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill the server outright (SIGKILL), as if its machine died.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Start the server again on the same port with the same arguments
    /// (killing it first if it runs), and wait until it answers.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn restart(&mut self) -> io::Result<()> {
        let port = self.port;
        let what = format!("redis-server on {port} answers");
        self.process
            .spawn_until(&what, READY_LIMIT, move || answers(port))
            .await
    }
}

/// Whether the server on `port` answers a `PING` (with `PONG`, or asking
/// for the password it was given).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 64];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read(&mut reply).is_ok_and(|n| {
            let reply = &reply[..n];
            reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH")
        })
}
