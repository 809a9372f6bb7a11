//! Presence shared by every process, in two JetStream key-value buckets.
//!
//! - `P_presence`, key `<room>.<node id>`: the members of the room in that
//!   process, a JSON object of connection id to user (`null` for none).
//!   Only its process writes a key, so writes never conflict.
//! - `P_nodes`, key `<node id>`: the process's heartbeat, written every
//!   5 s; the bucket forgets entries after 15 s. The members of a process
//!   whose heartbeat is gone are not counted, and the first process that
//!   notices removes them, unless they were written again since it read
//!   them.
//!
//! Each process remembers its own members, to write a room again when a
//! write failed or when the server lost its keys (its heartbeat was gone).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{kv, stream};
use futures_util::TryStreamExt;

use super::names::untoken;
use super::{Conn, Hold, Inner, REQUEST_TIMEOUT, now_ms};
use crate::User;
use crate::layer::LayerError;

const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// This process's own members: room -> connection id -> user JSON.
#[derive(Debug, Default)]
pub(super) struct OwnPresence {
    rooms: Mutex<HashMap<String, BTreeMap<u64, serde_json::Value>>>,
    unsynced: Mutex<HashSet<String>>,
    heartbeat_started: std::sync::atomic::AtomicBool,
    /// For tests: holds each heartbeat before it is written.
    pub(super) heartbeats: Hold,
    /// For tests: holds the removal of a process's members for a missing
    /// heartbeat, once decided.
    pub(super) cleanups: Hold,
}

impl OwnPresence {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, BTreeMap<u64, serde_json::Value>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unsynced(&self) -> MutexGuard<'_, HashSet<String>> {
        self.unsynced.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn bounded<T, E>(
    what: &str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, LayerError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(LayerError::with_source(format!("nats: {what} failed"), err)),
        Err(_) => Err(LayerError::new(format!("nats: {what} timed out"))),
    }
}

impl Conn {
    async fn bucket(
        &self,
        cell: &tokio::sync::OnceCell<kv::Store>,
        name: String,
        max_age: Duration,
    ) -> Result<kv::Store, LayerError> {
        let store = cell
            .get_or_try_init(|| async {
                if let Ok(store) = self.js.get_key_value(&name).await {
                    return Ok(store);
                }
                // The stream of a bucket, as the key-value conventions
                // describe it, made here rather than by `create_key_value`,
                // which needs account details that servers before 2.10 do
                // not give.
                let config = stream::Config {
                    name: format!("KV_{name}"),
                    subjects: vec![format!("$KV.{name}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    storage: stream::StorageType::File,
                    discard: stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    num_replicas: 1,
                    ..Default::default()
                };
                self.js.get_or_create_stream(config).await.map_err(|err| {
                    LayerError::with_source("nats: cannot create a presence bucket", err)
                })?;
                self.js.get_key_value(&name).await.map_err(|err| {
                    LayerError::with_source("nats: cannot open a presence bucket", err)
                })
            })
            .await?;
        Ok(store.clone())
    }
}

impl Inner {
    async fn presence_store(&self) -> Result<kv::Store, LayerError> {
        let conn = self.conn()?;
        conn.bucket(&conn.presence, self.names.presence_bucket(), Duration::ZERO)
            .await
    }

    async fn nodes_store(&self) -> Result<kv::Store, LayerError> {
        let conn = self.conn()?;
        conn.bucket(&conn.nodes, self.names.nodes_bucket(), HEARTBEAT_TTL)
            .await
    }

    /// Write this process's members of `room` as it knows them.
    async fn write_room(&self, room: &str) -> Result<(), LayerError> {
        let members = self.own_presence.rooms().get(room).cloned();
        let store = self.presence_store().await?;
        let key = self.names.presence_key(room, &self.node_id);
        match members {
            Some(members) if !members.is_empty() => {
                let value = serde_json::to_vec(&members)
                    .map_err(|err| LayerError::with_source("nats: cannot encode presence", err))?;
                bounded("presence write", store.put(key, value.into())).await?;
            }
            _ => bounded("presence write", store.purge(key)).await?,
        }
        Ok(())
    }

    async fn write_or_remember(&self, room: &str) -> Result<(), LayerError> {
        let written = self.write_room(room).await;
        if written.is_err() {
            self.own_presence.unsynced().insert(room.to_owned());
        }
        written
    }

    pub(super) async fn presence_join(
        self: &Arc<Self>,
        room: &str,
        id: u64,
        user: Option<&User>,
    ) -> Result<(), LayerError> {
        let value = serde_json::to_value(user)
            .map_err(|err| LayerError::with_source("nats: cannot encode the user", err))?;
        self.own_presence
            .rooms()
            .entry(room.to_owned())
            .or_default()
            .insert(id, value);
        self.start_heartbeat();
        self.write_or_remember(room).await
    }

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
        self.write_or_remember(room).await
    }

    /// Every member of `room` in the live processes.
    pub(super) async fn presence(&self, room: &str) -> Result<Vec<Option<User>>, LayerError> {
        let store = self.presence_store().await?;
        let nodes = self.nodes_store().await?;
        let subjects: Vec<(String, usize)> = bounded("presence read", async {
            store
                .stream
                .info_with_subjects(self.names.presence_filter(room))
                .await?
                .try_collect()
                .await
        })
        .await?;
        let mut members = Vec::new();
        for (subject, _) in subjects {
            let Some(node) = subject.rsplit('.').next().and_then(untoken) else {
                continue;
            };
            let key = self.names.presence_key(room, &node);
            // The members are read before the heartbeat: a cleanup below
            // removes only the revision read here.
            let Some(entry) = bounded("presence read", store.entry(key.clone()))
                .await?
                .filter(|entry| entry.operation == kv::Operation::Put)
            else {
                continue;
            };
            if node != self.node_id {
                let beat = bounded("heartbeat read", nodes.get(node.clone())).await?;
                if beat.is_none() {
                    // A process that died without saying goodbye, or one
                    // whose first heartbeat is on its way: that one writes
                    // its rooms again once its heartbeat is written, and a
                    // removal of the revision read before would then be
                    // refused rather than erase the members written again.
                    self.own_presence.cleanups.pass().await;
                    let _ = bounded(
                        "presence cleanup",
                        store.purge_expect_revision(&key, Some(entry.revision)),
                    )
                    .await;
                    continue;
                }
            }
            let map: BTreeMap<String, Option<User>> =
                serde_json::from_slice(&entry.value).unwrap_or_default();
            members.extend(map.into_values());
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

    /// One heartbeat; rooms are written again when a write failed or the
    /// server had forgotten this process.
    async fn beat(&self) -> Result<(), LayerError> {
        self.own_presence.heartbeats.pass().await;
        let nodes = self.nodes_store().await?;
        let was_alive = bounded("heartbeat read", nodes.get(self.node_id.clone()))
            .await?
            .is_some();
        bounded(
            "heartbeat",
            nodes.put(self.node_id.clone(), now_ms().to_string().into()),
        )
        .await?;
        let mut rooms = std::mem::take(&mut *self.own_presence.unsynced());
        if !was_alive {
            rooms.extend(self.own_presence.rooms().keys().cloned());
        }
        for room in rooms {
            if self.write_room(&room).await.is_err() {
                self.own_presence.unsynced().insert(room);
            }
        }
        Ok(())
    }

    /// On graceful shutdown: remove this process's heartbeat and members.
    pub(super) fn presence_farewell(
        self: &Arc<Self>,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<>> {
        let rooms: Vec<String> = std::mem::take(&mut *self.own_presence.rooms())
            .into_keys()
            .collect();
        if rooms.is_empty() && !self.own_presence.heartbeat_started.load(Ordering::Acquire) {
            return None;
        }
        let inner = self.clone();
        Some(async move {
            if let Ok(nodes) = inner.nodes_store().await {
                let _ = bounded("heartbeat removal", nodes.purge(inner.node_id.clone())).await;
            }
            for room in rooms {
                let _ = inner.write_room(&room).await;
            }
        })
    }
}

async fn heartbeat(inner: Arc<Inner>) {
    if let Err(err) = inner.beat().await {
        tracing::debug!(error = %err, "nats layer: heartbeat failed");
    }
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(err) = inner.beat().await {
            tracing::debug!(error = %err, "nats layer: heartbeat failed");
        }
    }
}
