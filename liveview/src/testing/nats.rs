//! A private NATS server with JetStream for tests that kill or restart it.

use std::io::{self, BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::{Process, TempDir, free_port, wait_until};

/// Longest wait for the server to accept clients with JetStream on.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Longest wait for an answer of the monitoring endpoint.
const MONITOR_LIMIT: Duration = Duration::from_secs(5);

/// Where `nats-server` is looked for first (Debian's package); the `PATH`
/// after.
const DEBIAN_PATH: &str = "/usr/sbin/nats-server";

/// A `nats-server -js` on a free port of 127.0.0.1, its JetStream store in
/// a temporary directory, for tests that kill or restart it. The process
/// is a child of the test, killed on drop, and the directory is removed
/// then; [`restart`](Self::restart) keeps both ports and store, as a server
/// restarted after a crash would. A second port serves the server's HTTP
/// monitoring, through which [`subscriptions`](Self::subscriptions) tells
/// what the server holds.
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
    monitoring_port: u16,
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
        let monitoring_port = free_port()?;
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
            "-m",
            &monitoring_port.to_string(),
            "-sd",
            &dir.path().join("store").display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        let process = Process::new(program, args, dir.path());
        let mut server = Self {
            port,
            monitoring_port,
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

    /// How many subscriptions the server holds now on exactly `subject` (a
    /// subject without wildcards, as published to), counting those of every
    /// client, queue subscriptions included; a subscription with wildcards
    /// that matches `subject` (`shop.fan.*`, `>`) is not counted. The
    /// server's monitoring endpoint (`/subsz`) answers, from the same table
    /// that routes messages: a client's subscribe or unsubscribe counts
    /// once the server has processed it, so a test can wait until a
    /// process's unsubscribe has reached the server before it publishes.
    ///
    /// ```no_run
    /// use liveview::testing::NatsServer;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let nats = NatsServer::start().await?;
    /// // The NATS layer with the prefix `shop` subscribes to the room
    /// // `lobby`'s group on `shop.fan.room_lobby`, once per process with a
    /// // member of it.
    /// assert_eq!(nats.subscriptions("shop.fan.room_lobby").await?, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// When the monitoring endpoint cannot be reached (the server is
    /// killed), refuses `subject` (one with wildcards), or gives no answer
    /// within 5 seconds.
    pub async fn subscriptions(&self, subject: &str) -> io::Result<usize> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("subs", "1")
            .append_pair("test", subject)
            .finish();
        let body = tokio::time::timeout(
            MONITOR_LIMIT,
            monitoring_get(self.monitoring_port, &format!("/subsz?{query}")),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer of nats-server's monitoring within {MONITOR_LIMIT:?}"),
            )
        })??;
        let answer: Subsz = serde_json::from_slice(&body).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an unexpected answer of nats-server's /subsz: {err}"),
            )
        })?;
        if answer.subscriptions_list.len() < answer.total {
            return Err(io::Error::other(format!(
                "nats-server's /subsz listed {} of {} subscriptions",
                answer.subscriptions_list.len(),
                answer.total
            )));
        }
        Ok(answer
            .subscriptions_list
            .iter()
            .filter(|sub| sub.subject == subject)
            .count())
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

/// What `/subsz?subs=1&test=SUBJECT` answers: the subscriptions that a
/// message published to the subject reaches (both fields absent when
/// there are none).
#[derive(Deserialize)]
struct Subsz {
    #[serde(default)]
    total: usize,
    #[serde(default)]
    subscriptions_list: Vec<Subscription>,
}

#[derive(Deserialize)]
struct Subscription {
    subject: String,
}

/// The body of a `GET path` to the monitoring endpoint on `port`, which
/// must answer `200 OK`. HTTP/1.0: the answer is neither chunked nor kept
/// alive, and ends with the connection.
async fn monitoring_get(port: u16, path: &str) -> io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut headers);
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let body_start = match head.parse(&raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err(invalid(format!(
                "nats-server's answer to {path} ended in its head"
            )));
        }
        Err(err) => return Err(invalid(format!("nats-server's answer to {path}: {err}"))),
    };
    let code = head.code.unwrap_or_default();
    let body = raw.split_off(body_start);
    if code != 200 {
        return Err(io::Error::other(format!(
            "nats-server answered {path} with {code}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok(body)
}
