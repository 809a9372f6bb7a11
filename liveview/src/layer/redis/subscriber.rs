//! The receiving side: one subscriber connection per process, subscribed to
//! the channel of every group with local members; what arrives goes to the
//! group's delivery task (`delivery`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use redis::sentinel::SentinelClient;
use redis::{ConnectionInfo, Msg};
use tokio::sync::mpsc;

use super::config::{Target, sentinel_client};
use super::util::Backoff;
use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, Inner, new_publisher, open_client};
use crate::layer::{LayerError, LocalDelivery};

/// Time allowed to ask the sentinels for the master.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the subscriber connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How often the sentinels are asked whether the master moved.
const SENTINEL_CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// Channels per SUBSCRIBE / UNSUBSCRIBE command.
const SUBSCRIBE_CHUNK: usize = 500;

/// Why a subscriber session ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Keeps one subscriber connection up for the life of the layer.
pub(super) async fn run_subscriber(
    inner: Arc<Inner>,
    local: LocalDelivery,
    queue: mpsc::Sender<Msg>,
) {
    let mut sentinel = match &inner.target {
        Target::Sentinel { .. } => match sentinel_client(&inner.target) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(error = %err, "redis layer: cannot use Sentinel; the layer stays idle");
                inner.first_attempt_over.store(true, Ordering::Release);
                return;
            }
        },
        Target::Server(_) => None,
    };
    let mut backoff = Backoff::new();
    let mut failures: u32 = 0;
    loop {
        let connected = tokio::select! {
            () = inner.shutdown.cancelled() => break,
            connected = connect_subscriber(&inner, sentinel.as_mut()) => connected,
        };
        match connected {
            Ok((pubsub, address)) => {
                if failures > 0 {
                    tracing::info!(%address, "redis layer: reconnected");
                } else {
                    tracing::debug!(%address, "redis layer: subscriber connected");
                }
                failures = 0;
                backoff.reset();
                let end =
                    run_session(&inner, &local, &queue, pubsub, &address, sentinel.as_mut()).await;
                inner.connected.store(false, Ordering::Release);
                inner.subscriptions.reset();
                match end {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Lost(why) => {
                        tracing::warn!(%address, reason = %why, "redis layer: subscriber connection lost; reconnecting");
                    }
                }
            }
            Err(err) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %err, "redis layer: cannot connect the subscriber; retrying");
                } else {
                    tracing::debug!(error = %err, attempt = failures, "redis layer: subscriber still not connected");
                }
            }
        }
        inner.first_attempt_over.store(true, Ordering::Release);
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    inner.connected.store(false, Ordering::Release);
    inner.subscriptions.reset();
    tracing::debug!("redis layer: subscriber stopped");
}

/// Finds the server (asking Sentinel if configured), points the publisher at
/// it, and opens a subscriber connection.
async fn connect_subscriber(
    inner: &Inner,
    sentinel: Option<&mut SentinelClient>,
) -> Result<(redis::aio::PubSub, String), LayerError> {
    let info = match (&inner.target, sentinel) {
        (Target::Server(info), _) => info.clone(),
        (Target::Sentinel { .. }, Some(sentinel)) => {
            let info = find_master(sentinel).await?;
            let address = info.addr().to_string();
            let current = inner
                .publisher
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|p| p.address.clone());
            if current.as_deref() != Some(address.as_str()) {
                tracing::info!(master = %address, "redis layer: using the master named by Sentinel");
                let publisher = new_publisher(info.clone(), inner.tls_roots.as_deref())?;
                *inner
                    .publisher
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(publisher);
            }
            info
        }
        (Target::Sentinel { .. }, None) => {
            return Err(LayerError::new("redis: no Sentinel client"));
        }
    };
    let address = info.addr().to_string();
    let client = open_client(info, inner.tls_roots.as_deref())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok((pubsub, address)),
        Ok(Err(err)) => Err(LayerError::with_source(
            format!("redis: cannot connect to {address}"),
            err,
        )),
        Err(_) => Err(LayerError::new(format!(
            "redis: connecting to {address} timed out"
        ))),
    }
}

async fn find_master(sentinel: &mut SentinelClient) -> Result<ConnectionInfo, LayerError> {
    match tokio::time::timeout(SENTINEL_TIMEOUT, sentinel.async_get_client()).await {
        Ok(Ok(client)) => Ok(client.get_connection_info().clone()),
        Ok(Err(err)) => Err(LayerError::with_source(
            "redis: Sentinel did not name a master",
            err,
        )),
        Err(_) => Err(LayerError::new(
            "redis: asking Sentinel for the master timed out",
        )),
    }
}

/// One connected period of the subscriber: subscribe to every live group,
/// then follow changes and forward messages until the connection fails.
async fn run_session(
    inner: &Inner,
    local: &LocalDelivery,
    queue: &mpsc::Sender<Msg>,
    pubsub: redis::aio::PubSub,
    address: &str,
    mut sentinel: Option<&mut SentinelClient>,
) -> SessionEnd {
    let (mut sink, mut stream) = pubsub.split();
    let mut subscribed = HashSet::new();

    // Every group with local members now. Changes from here on are in
    // `dirty` (cleared first, so none is missed) and applied by `reconcile`.
    inner.lock_dirty().clear();
    let initial = local.groups();
    if let Err(why) = command_in_chunks(inner, &mut sink, Subscription::Subscribe, &initial).await {
        return SessionEnd::Lost(why);
    }
    inner.subscriptions.confirm(&initial);
    subscribed.extend(initial);
    if inner.replay.is_some() {
        // What was published while no subscription was up is only in the
        // logs, and no later frame may come to reveal the gap.
        inner.delivery.catch_up_all();
    }
    inner.connected.store(true, Ordering::Release);
    tracing::debug!(%address, groups = subscribed.len(), "redis layer: subscribed");

    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    let mut master_check = tokio::time::interval(SENTINEL_CHECK_INTERVAL);
    master_check.reset();
    let uses_sentinel = sentinel.is_some();

    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return SessionEnd::Shutdown,
            message = stream.next() => match message {
                Some(message) => forward(inner, queue, message),
                None => return SessionEnd::Lost("connection closed".to_owned()),
            },
            () = inner.groups_changed.notified() => {
                if let Err(why) = reconcile(inner, local, &mut sink, &mut subscribed).await {
                    return SessionEnd::Lost(why);
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return SessionEnd::Lost(format!("PING failed: {err}")),
                    Err(_) => return SessionEnd::Lost("PING timed out".to_owned()),
                }
            }
            () = inner.recheck_master.notified(), if uses_sentinel => {
                if let Some(moved) = master_moved(sentinel.as_deref_mut(), address).await {
                    return SessionEnd::Lost(moved);
                }
            }
            _ = master_check.tick(), if uses_sentinel => {
                if let Some(moved) = master_moved(sentinel.as_deref_mut(), address).await {
                    return SessionEnd::Lost(moved);
                }
            }
        }
    }
}

/// Asks Sentinel where the master is; `Some(reason)` when it is no longer at
/// `address`. A Sentinel that cannot be asked leaves things as they are.
async fn master_moved(sentinel: Option<&mut SentinelClient>, address: &str) -> Option<String> {
    let sentinel = sentinel?;
    match find_master(sentinel).await {
        Ok(info) => {
            let master = info.addr().to_string();
            (master != address).then(|| format!("the master moved from {address} to {master}"))
        }
        Err(err) => {
            tracing::debug!(error = %err, "redis layer: could not check the master with Sentinel");
            None
        }
    }
}

/// Queues a message for delivery. This process's own messages are skipped,
/// except, with the shared log, numbered ones: those are delivered here
/// like the others, in their group's order.
fn forward(inner: &Inner, queue: &mpsc::Sender<Msg>, message: Msg) {
    if inner.replay.is_none() && message.get_payload_bytes().starts_with(&inner.own_header) {
        return;
    }
    match queue.try_send(message) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => inner.count_dropped("local queue full"),
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[derive(Clone, Copy)]
enum Subscription {
    Subscribe,
    Unsubscribe,
}

/// Applies the group changes made since the last call: subscribes to the
/// changed groups that have local members, unsubscribes from the others
/// (their confirmation withdrawn before their members are looked at: see
/// [`Subscriptions::changes`](crate::layer::subscriptions::Subscriptions::changes)).
async fn reconcile(
    inner: &Inner,
    local: &LocalDelivery,
    sink: &mut PubSubSink,
    subscribed: &mut HashSet<String>,
) -> Result<(), String> {
    if inner.subscriptions.changes_held() {
        return Ok(());
    }
    let dirty = std::mem::take(&mut *inner.lock_dirty());
    if dirty.is_empty() {
        return Ok(());
    }
    // Looked at after taking `dirty`: the table is at least as new as
    // every change noted there; a later change marks its group dirty again.
    let changes = inner.subscriptions.changes(
        dirty,
        |group| subscribed.contains(group),
        |group| local.has_members(group),
    );
    command_in_chunks(inner, sink, Subscription::Subscribe, &changes.subscribe).await?;
    inner.subscriptions.confirm(&changes.subscribe);
    subscribed.extend(changes.subscribe);
    if changes.unsubscribe.is_empty() {
        return Ok(());
    }
    inner.subscriptions.before_unsubscribe().await;
    for group in &changes.unsubscribe {
        inner.delivery.forget(group);
    }
    command_in_chunks(inner, sink, Subscription::Unsubscribe, &changes.unsubscribe).await?;
    for group in &changes.unsubscribe {
        subscribed.remove(group);
    }
    Ok(())
}

async fn command_in_chunks(
    inner: &Inner,
    sink: &mut PubSubSink,
    kind: Subscription,
    groups: &[String],
) -> Result<(), String> {
    for chunk in groups.chunks(SUBSCRIBE_CHUNK) {
        let prefixed: Vec<String> = chunk.iter().map(|group| inner.channel(group)).collect();
        let result = match kind {
            Subscription::Subscribe => {
                tokio::time::timeout(COMMAND_TIMEOUT, sink.subscribe(prefixed)).await
            }
            Subscription::Unsubscribe => {
                tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(prefixed)).await
            }
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("(UN)SUBSCRIBE failed: {err}")),
            Err(_) => return Err("(UN)SUBSCRIBE timed out".to_owned()),
        }
    }
    Ok(())
}
