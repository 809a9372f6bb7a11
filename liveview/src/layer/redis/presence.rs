//! Presence shared by every process: who is in each room, kept in Redis.
//!
//! - `<prefix>presence:<room>` is a hash with one field per connection,
//!   `<node id>:<connection id>`, whose value is the connection's user as
//!   JSON (`null` for none). It expires an hour after its last refresh;
//!   every process refreshes the rooms it has members in every few minutes.
//! - `<prefix>node:<node id>` is the heartbeat of a process: refreshed every
//!   5 s with a 15 s lifetime. The entries of a process whose heartbeat is
//!   gone (it died without saying goodbye) are ignored, and removed by the
//!   next process that reads the room.
//!
//! Each process also remembers its own entries, to remove them on shutdown,
//! and to write them again with the next heartbeat when a join or a leave
//! could not be written, or when Redis lost them (a restart, a failover, a
//! partition longer than the heartbeat's lifetime).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::wire::now_ms;
use super::{COMMAND_TIMEOUT, Inner};
use crate::User;
use crate::layer::LayerError;

/// How often a process refreshes its heartbeat, and how long it lives.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// Lifetime of a room's hash, and how many heartbeats apart it is refreshed.
const ROOM_TTL: Duration = Duration::from_secs(3600);
const ROOM_REFRESH_BEATS: u64 = 60;

/// This process's own entries: room -> connection id -> user JSON.
#[derive(Default)]
pub(super) struct OwnPresence {
    rooms: Mutex<HashMap<String, HashMap<u64, String>>>,
    /// Rooms whose entries in Redis may differ from `rooms`: a join or a
    /// leave could not be written.
    unsynced: Mutex<HashSet<String>>,
    heartbeat_started: AtomicBool,
}

impl OwnPresence {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, HashMap<u64, String>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unsynced(&self) -> MutexGuard<'_, HashSet<String>> {
        self.unsynced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn written<T>(&self, room: &str, result: Result<T, LayerError>) -> Result<T, LayerError> {
        if result.is_err() {
            self.unsynced().insert(room.to_owned());
        }
        result
    }
}

impl Inner {
    fn presence_field(&self, id: u64) -> String {
        format!("{}:{id}", self.node_id)
    }

    /// Record that connection `id` with `user` is in `room`.
    pub(super) async fn presence_join(
        self: &Arc<Self>,
        room: &str,
        id: u64,
        user: Option<&User>,
    ) -> Result<(), LayerError> {
        let value = match user {
            Some(user) => serde_json::to_string(user)
                .map_err(|err| LayerError::with_source("redis: cannot encode the user", err))?,
            None => "null".to_owned(),
        };
        self.own_presence
            .rooms()
            .entry(room.to_owned())
            .or_default()
            .insert(id, value.clone());
        self.start_heartbeat();
        let key = self.presence_key(room);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.node_key(&self.node_id))
            .arg(now_ms())
            .arg("PX")
            .arg(millis(HEARTBEAT_TTL))
            .ignore()
            .cmd("HSET")
            .arg(&key)
            .arg(self.presence_field(id))
            .arg(value)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ROOM_TTL))
            .ignore();
        let written = self.run_pipe(&pipe, "presence join").await;
        self.own_presence.written(room, written)
    }

    /// Connection `id` left `room`.
    pub(super) async fn presence_leave(&self, room: &str, id: u64) -> Result<(), LayerError> {
        {
            let mut rooms = self.own_presence.rooms();
            if let Some(members) = rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HDEL")
            .arg(self.presence_key(room))
            .arg(self.presence_field(id))
            .ignore();
        let written = self.run_pipe(&pipe, "presence leave").await;
        self.own_presence.written(room, written)
    }

    /// Every connection in `room` on the live processes, with its user.
    pub(super) async fn presence(&self, room: &str) -> Result<Vec<Option<User>>, LayerError> {
        let key = self.presence_key(room);
        let mut publisher = self.publisher()?;
        let entries: HashMap<String, String> = self
            .bounded(
                "presence",
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut publisher.connection),
            )
            .await?;
        let node_of = |field: &str| field.rsplit_once(':').map(|(node, _)| node.to_owned());
        let others: BTreeSet<String> = entries
            .keys()
            .filter_map(|field| node_of(field))
            .filter(|node| *node != self.node_id)
            .collect();
        let mut dead = BTreeSet::new();
        if !others.is_empty() {
            let keys: Vec<String> = others.iter().map(|node| self.node_key(node)).collect();
            let beats: Vec<Option<String>> = self
                .bounded(
                    "presence",
                    redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut publisher.connection),
                )
                .await?;
            dead.extend(
                others
                    .into_iter()
                    .zip(beats)
                    .filter(|(_, beat)| beat.is_none())
                    .map(|(node, _)| node),
            );
        }
        let mut members = Vec::with_capacity(entries.len());
        let mut stale = Vec::new();
        for (field, value) in entries {
            match node_of(&field) {
                Some(node) if !dead.contains(&node) => {
                    members.push(serde_json::from_str::<Option<User>>(&value).unwrap_or(None));
                }
                _ => stale.push(field),
            }
        }
        if !stale.is_empty() {
            // Entries of processes that died: remove them for everyone.
            let removed: Result<i64, LayerError> = self
                .bounded(
                    "presence",
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(&stale)
                        .query_async(&mut publisher.connection),
                )
                .await;
            if let Err(err) = removed {
                tracing::debug!(room, error = %err, "redis layer: stale presence entries not removed");
            }
        }
        Ok(members)
    }

    fn start_heartbeat(self: &Arc<Self>) {
        if self
            .own_presence
            .heartbeat_started
            .swap(true, Ordering::AcqRel)
        {
            return;
        }
        if let Some(runtime) = self.runtime.get() {
            runtime.spawn(heartbeat(self.clone()));
        }
    }

    /// One heartbeat. Rooms whose entries could not be written, or all of
    /// them when Redis forgot this process (its heartbeat was gone), are
    /// written again; every so often (`refresh`) their expiry is pushed back.
    async fn beat(&self, refresh: bool) -> Result<(), LayerError> {
        let mut publisher = self.publisher()?;
        let node_key = self.node_key(&self.node_id);
        let (was_alive, ()): (bool, ()) = self
            .bounded(
                "heartbeat",
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(&node_key)
                    .cmd("SET")
                    .arg(&node_key)
                    .arg(now_ms())
                    .arg("PX")
                    .arg(millis(HEARTBEAT_TTL))
                    .query_async(&mut publisher.connection),
            )
            .await?;
        let mut rooms = std::mem::take(&mut *self.own_presence.unsynced());
        if !was_alive {
            rooms.extend(self.own_presence.rooms().keys().cloned());
        }
        for room in rooms {
            if let Err(err) = self.sync_room(&room).await {
                tracing::debug!(room, error = %err, "redis layer: presence not written again");
                self.own_presence.unsynced().insert(room);
            }
        }
        if !refresh {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for room in self.own_presence.rooms().keys() {
            pipe.cmd("PEXPIRE")
                .arg(self.presence_key(room))
                .arg(millis(ROOM_TTL))
                .ignore();
        }
        self.run_pipe(&pipe, "presence refresh").await
    }

    /// Make this process's entries of `room` in Redis what it knows: remove
    /// those of connections that left, write the others.
    async fn sync_room(&self, room: &str) -> Result<(), LayerError> {
        let key = self.presence_key(room);
        let mut publisher = self.publisher()?;
        let fields: Vec<String> = self
            .bounded(
                "presence read",
                redis::cmd("HKEYS")
                    .arg(&key)
                    .query_async(&mut publisher.connection),
            )
            .await?;
        let members = self
            .own_presence
            .rooms()
            .get(room)
            .cloned()
            .unwrap_or_default();
        let own = format!("{}:", self.node_id);
        let gone: Vec<&String> = fields
            .iter()
            .filter(|field| {
                field
                    .strip_prefix(&own)
                    .and_then(|id| id.parse::<u64>().ok())
                    .is_some_and(|id| !members.contains_key(&id))
            })
            .collect();
        let mut pipe = redis::pipe();
        if !gone.is_empty() {
            pipe.cmd("HDEL").arg(&key).arg(&gone).ignore();
        }
        if !members.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (id, value) in &members {
                hset.arg(self.presence_field(*id)).arg(value);
            }
            pipe.add_command(hset).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(millis(ROOM_TTL)).ignore();
        }
        self.run_pipe(&pipe, "presence write").await
    }

    /// Remove this process's heartbeat and entries, on graceful shutdown:
    /// the command to run, if there is anything to remove.
    pub(super) fn presence_farewell(
        &self,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<>> {
        let rooms = std::mem::take(&mut *self.own_presence.rooms());
        if rooms.is_empty() && !self.own_presence.heartbeat_started.load(Ordering::Acquire) {
            return None;
        }
        let mut publisher = self.publisher().ok()?;
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.node_key(&self.node_id)).ignore();
        for (room, members) in rooms {
            let mut hdel = redis::cmd("HDEL");
            hdel.arg(self.presence_key(&room));
            for id in members.keys() {
                hdel.arg(self.presence_field(*id));
            }
            pipe.add_command(hdel).ignore();
        }
        Some(async move {
            let done =
                tokio::time::timeout(COMMAND_TIMEOUT, pipe.exec_async(&mut publisher.connection))
                    .await;
            if !matches!(done, Ok(Ok(()))) {
                tracing::debug!("redis layer: presence entries not removed on shutdown");
            }
        })
    }

    async fn run_pipe(&self, pipe: &redis::Pipeline, what: &str) -> Result<(), LayerError> {
        if pipe.is_empty() {
            return Ok(());
        }
        let mut publisher = self.publisher()?;
        self.bounded(what, pipe.exec_async(&mut publisher.connection))
            .await
    }

    /// A command's result within [`COMMAND_TIMEOUT`].
    async fn bounded<T>(
        &self,
        what: &str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LayerError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(LayerError::with_source(
                format!("redis: {what} failed"),
                err,
            )),
            Err(_) => Err(LayerError::new(format!("redis: {what} timed out"))),
        }
    }
}

/// Keeps this process's heartbeat alive until shutdown.
async fn heartbeat(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        beats += 1;
        if let Err(err) = inner.beat(beats.is_multiple_of(ROOM_REFRESH_BEATS)).await {
            tracing::debug!(error = %err, "redis layer: heartbeat failed");
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
