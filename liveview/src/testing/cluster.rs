//! A private Redis Cluster for tests: `redis-server` processes on free
//! ports, joined with `redis-cli --cluster create`, killed and removed on
//! drop.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use super::process::{Process, TempDir, free_port, output, wait_until};

/// Longest wait for the cluster to be formed, or to recover from a kill.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A Redis Cluster of `redis-server` processes on free ports of 127.0.0.1,
/// with no persistence, for tests that kill or restart a node. Each node
/// is a child process of the test, killed when the cluster is dropped;
/// their files live in a temporary directory removed then.
///
/// Nodes time out after one second, and a replica takes over from a
/// primary whatever its replication lag, so a failover takes a few seconds.
/// Requires `redis-server` and `redis-cli` (Redis 7) on the `PATH`.
///
/// ```no_run
/// use liveview::testing::RedisCluster;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// // Three primaries, each with one replica.
/// let mut cluster = RedisCluster::start(3, 1).await?;
/// // "127.0.0.1:P1,127.0.0.1:P2,...", as LIVEVIEW_REDIS_CLUSTER takes it.
/// let seeds = cluster.seed_list();
/// # drop(seeds);
/// let primary = cluster.primary_of("{room_lobby}").await?;
/// cluster.kill(primary);
/// let replacement = cluster.wait_healthy().await?;
/// assert!(!replacement.contains(&primary));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

#[derive(Debug)]
struct Node {
    port: u16,
    process: Process,
}

/// One line of `CLUSTER NODES`, as far as the helper needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeLine {
    port: u16,
    primary: bool,
    failed: bool,
    /// Slot ranges, inclusive, of a primary.
    slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Start `primaries` primaries (at least 3, as Redis requires) with
    /// `replicas` replicas each, create the cluster, and wait until every
    /// slot is served and every replica is in sync.
    ///
    /// # Errors
    ///
    /// When a process cannot be started, the cluster cannot be created,
    /// or it is not ready within 30 seconds.
    pub async fn start(primaries: usize, replicas: usize) -> io::Result<Self> {
        if primaries < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Redis Cluster needs at least 3 primaries",
            ));
        }
        let dir = TempDir::new("redis-cluster")?;
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            let port = free_port()?;
            let bus = free_port()?;
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let args = [
                "--port",
                &port.to_string(),
                "--cluster-port",
                &bus.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-replica-validity-factor",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &node_dir.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            let mut process = Process::new("redis-server", args, &node_dir);
            process.spawn()?;
            nodes.push(Node { port, process });
        }
        let cluster = Self { nodes, _dir: dir };
        for node in &cluster.nodes {
            let port = node.port;
            if let Err(err) = wait_until(
                &format!("redis-server on {port} answers"),
                READY_LIMIT,
                move || ping(port),
            )
            .await
            {
                // What the server said (a port it could not bind, for
                // one): the directory goes with the cluster.
                let log = cluster
                    ._dir
                    .path()
                    .join(port.to_string())
                    .join("redis-server.log");
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(io::Error::new(
                    err.kind(),
                    format!("{err}; its log:\n{said}"),
                ));
            }
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        create.extend([
            "--cluster-replicas".to_owned(),
            replicas.to_string(),
            "--cluster-yes".to_owned(),
        ]);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = create.iter().map(String::as_str).collect();
            output("redis-cli", &args)
        })
        .await
        .map_err(io::Error::other)??;
        cluster.wait_healthy().await?;
        Ok(cluster)
    }

    /// `host:port` of every running node: the seeds a client starts from.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.process.is_running())
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// The seeds joined by commas, as `LIVEVIEW_REDIS_CLUSTER` takes them.
    pub fn seed_list(&self) -> String {
        self.seeds().join(",")
    }

    /// The ports of every node, running or not, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The port of the primary that serves `key`'s slot now.
    ///
    /// # Errors
    ///
    /// When no running node answers or no primary serves the slot.
    pub async fn primary_of(&self, key: &str) -> io::Result<u16> {
        let port = self.any_running()?;
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let slot: u16 = output(
                "redis-cli",
                &["-p", &port.to_string(), "cluster", "keyslot", &key],
            )?
            .trim()
            .parse()
            .map_err(io::Error::other)?;
            cluster_nodes(port)?
                .into_iter()
                .find(|n| {
                    n.primary && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
                })
                .map(|n| n.port)
                .ok_or_else(|| io::Error::other(format!("no primary serves slot {slot}")))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Kill the node on `port` outright (SIGKILL), as if its machine died.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.process.kill();
        }
    }

    /// Start the node on `port` again, after [`kill`](Self::kill); it
    /// rejoins the cluster with its old configuration (as a replica, if a
    /// replica took over its slots). Does not wait: see
    /// [`wait_healthy`](Self::wait_healthy).
    ///
    /// # Errors
    ///
    /// When the process cannot be started.
    pub fn restart(&mut self, port: u16) -> io::Result<()> {
        match self.nodes.iter_mut().find(|n| n.port == port) {
            Some(node) => node.process.spawn(),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no node on port {port}"),
            )),
        }
    }

    /// Wait until every running node sees the whole cluster as healthy:
    /// `cluster_state:ok`, every slot served by a running primary, every
    /// running replica in sync. Returns the ports of the primaries.
    ///
    /// After a [`kill`](Self::kill) of a primary, this waits for a replica
    /// to take over its slots.
    ///
    /// # Errors
    ///
    /// When that does not happen within 30 seconds.
    pub async fn wait_healthy(&self) -> io::Result<Vec<u16>> {
        let running: BTreeSet<u16> = self
            .nodes
            .iter()
            .filter(|n| n.process.is_running())
            .map(|n| n.port)
            .collect();
        let check = running.clone();
        wait_until("the cluster is healthy", READY_LIMIT, move || {
            healthy(&check)
        })
        .await?;
        let port = self.any_running()?;
        let primaries = tokio::task::spawn_blocking(move || cluster_nodes(port))
            .await
            .map_err(io::Error::other)??
            .into_iter()
            .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        Ok(primaries)
    }

    fn any_running(&self) -> io::Result<u16> {
        self.nodes
            .iter()
            .find(|n| n.process.is_running())
            .map(|n| n.port)
            .ok_or_else(|| io::Error::other("no node of the cluster is running"))
    }
}

fn ping(port: u16) -> bool {
    output("redis-cli", &["-p", &port.to_string(), "ping"]).is_ok_and(|out| out.trim() == "PONG")
}

fn cluster_nodes(port: u16) -> io::Result<Vec<NodeLine>> {
    let text = output("redis-cli", &["-p", &port.to_string(), "cluster", "nodes"])?;
    Ok(text.lines().filter_map(parse_node_line).collect())
}

/// `<id> <ip:port@bus> <flags> <primary id> <ping> <pong> <epoch> <link> <slot>...`
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let address = words.get(1)?;
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags: Vec<&str> = words.get(2)?.split(',').collect();
    let slots = words
        .iter()
        .skip(8)
        .filter(|w| !w.starts_with('['))
        .filter_map(|w| match w.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => w.parse().ok().map(|s| (s, s)),
        })
        .collect();
    Some(NodeLine {
        port,
        primary: flags.contains(&"master"),
        failed: flags.iter().any(|f| f.starts_with("fail")),
        slots,
    })
}

/// Whether every running node reports a healthy cluster made of running
/// nodes.
fn healthy(running: &BTreeSet<u16>) -> bool {
    running.iter().all(|&port| {
        let info = output("redis-cli", &["-p", &port.to_string(), "cluster", "info"]);
        if !info.is_ok_and(|i| i.lines().any(|l| l.trim() == "cluster_state:ok")) {
            return false;
        }
        let Ok(nodes) = cluster_nodes(port) else {
            return false;
        };
        let served: u32 = nodes
            .iter()
            .filter(|n| n.primary && !n.failed && running.contains(&n.port))
            .flat_map(|n| n.slots.iter())
            .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
            .sum();
        let me = nodes.iter().find(|n| n.port == port);
        let in_sync = match me {
            Some(node) if !node.primary => output(
                "redis-cli",
                &["-p", &port.to_string(), "info", "replication"],
            )
            .is_ok_and(|i| i.lines().any(|l| l.trim() == "master_link_status:up")),
            _ => true,
        };
        served == 16384 && in_sync
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lines_parse() {
        let line = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host \
                    slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected";
        assert_eq!(
            parse_node_line(line),
            Some(NodeLine {
                port: 30004,
                primary: false,
                failed: false,
                slots: vec![]
            })
        );
        let line = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - \
                    0 0 1 connected 0-5460 6000 [5461->-abc]";
        assert_eq!(
            parse_node_line(line),
            Some(NodeLine {
                port: 30001,
                primary: true,
                failed: false,
                slots: vec![(0, 5460), (6000, 6000)]
            })
        );
        let line = "abc 127.0.0.1:30002@31002 master,fail - 1 2 2 disconnected 5461-10922";
        assert!(parse_node_line(line).unwrap().failed);
        assert_eq!(parse_node_line(""), None);
    }
}
