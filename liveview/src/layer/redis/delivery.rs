//! Delivering what the subscriber receives to this process's members: one
//! task per group, each in its group's order, so that one group never
//! waits for another.
//!
//! With the shared log, the publish script numbers a frame and publishes it
//! in one step, so the subscription brings every group's frames in sequence
//! order, this process's own included: they are all delivered from there,
//! and nothing else delivers numbered frames. A number missing from the
//! stream (a message dropped on a full queue, lost while the subscriber was
//! reconnecting) is read back from the log before the frame after it goes
//! out. A new epoch means the numbering started again: the new numbers are
//! delivered as they come.
//!
//! Each time the subscriber has subscribed again (a reconnection), every
//! group being delivered here compares what it delivered with its log and
//! reads back at once what was published while the subscriber was away,
//! without waiting for the group's next frame (there may be none).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::Msg;
use tokio::sync::{Notify, mpsc};

use super::Inner;
use super::wire::{decode, is_expired, now_ms};
use crate::layer::{Frame, LocalDelivery};

/// A group task with no message for this long, and no member here, ends.
const GROUP_IDLE: Duration = Duration::from_secs(60);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below leaves the state consistent at each step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How far a group's frames have reached this process's members.
#[derive(Default)]
pub(super) struct Progress {
    /// The epoch and the newest sequence delivered.
    state: Mutex<(String, u64)>,
    changed: Notify,
}

impl Progress {
    fn set(&self, epoch: &str, seq: u64) {
        let mut state = lock(&self.state);
        if state.0 != epoch {
            state.0 = epoch.to_owned();
        }
        state.1 = seq;
        drop(state);
        self.changed.notify_waiters();
    }

    /// Returns once frame `seq` of `epoch` has been delivered.
    pub(super) async fn reached(&self, seq: u64, epoch: &str) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let state = lock(&self.state);
                if state.0 == epoch && state.1 >= seq {
                    return;
                }
            }
            changed.await;
        }
    }
}

/// The groups being delivered, and the hooks tests use to inject faults.
#[derive(Default)]
pub(super) struct Delivery {
    progress: Mutex<HashMap<String, Arc<Progress>>>,
    /// Test hook: the whole subscriber lags (nothing is delivered).
    lagging: Mutex<bool>,
    /// Test hook: groups whose delivery is stalled.
    held: Mutex<HashSet<String>>,
    /// Test hook: messages to lose, per group, before their delivery.
    lose: Mutex<HashMap<String, usize>>,
    hooks_changed: Notify,
    /// The running group tasks, each woken to catch up from the log after
    /// the subscriber subscribed again.
    catch_up: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Delivery {
    /// How far `group` has been delivered here.
    pub(super) fn progress(&self, group: &str) -> Arc<Progress> {
        lock(&self.progress)
            .entry(group.to_owned())
            .or_default()
            .clone()
    }

    /// `group` is no longer subscribed here.
    pub(super) fn forget(&self, group: &str) {
        lock(&self.progress).remove(group);
    }

    /// The subscriber subscribed again: every running group task reads
    /// back from the log what it missed meanwhile.
    pub(super) fn catch_up_all(&self) {
        for wake in lock(&self.catch_up).values() {
            // A stored permit: a task busy now catches up when it is done.
            wake.notify_one();
        }
    }

    pub(super) fn set_lagging(&self, lagging: bool) {
        *lock(&self.lagging) = lagging;
        self.hooks_changed.notify_waiters();
    }

    pub(super) fn set_held(&self, group: &str, held: bool) {
        if held {
            lock(&self.held).insert(group.to_owned());
        } else {
            lock(&self.held).remove(group);
        }
        self.hooks_changed.notify_waiters();
    }

    pub(super) fn lose_next(&self, group: &str, count: usize) {
        lock(&self.lose).insert(group.to_owned(), count);
    }

    fn lose_one(&self, group: &str) -> bool {
        let mut lose = lock(&self.lose);
        match lose.get_mut(group) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }

    async fn wait_until(&self, free: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.hooks_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if free(self) {
                return;
            }
            changed.await;
        }
    }
}

/// Hands each message from the subscriber to its group's task, started on
/// the group's first message.
pub(super) async fn route(
    inner: Arc<Inner>,
    local: LocalDelivery,
    mut incoming: mpsc::Receiver<Msg>,
) {
    let mut tasks: HashMap<String, mpsc::Sender<Msg>> = HashMap::new();
    let mut routed: u64 = 0;
    loop {
        let message = tokio::select! {
            () = inner.shutdown.cancelled() => break,
            message = incoming.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = inner.delivery.wait_until(|d| !*lock(&d.lagging)) => {}
        }
        let channel = message.get_channel_name();
        let Some(group) = channel.strip_prefix(inner.prefix.as_str()) else {
            inner.count_dropped("channel outside the prefix");
            continue;
        };
        let group = group.to_owned();
        if inner.delivery.lose_one(&group) {
            continue;
        }
        let message = match tasks.get(&group) {
            None => message,
            Some(tx) => match tx.try_send(message) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // A numbered frame is read back from the log when the
                    // next one arrives.
                    inner.count_dropped("group queue full");
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(message)) => message,
            },
        };
        let (tx, rx) = mpsc::channel(inner.received_queue);
        let _ = tx.try_send(message);
        tokio::spawn(run_group(inner.clone(), local.clone(), group.clone(), rx));
        tasks.insert(group, tx);
        routed += 1;
        if routed.is_multiple_of(1024) {
            tasks.retain(|_, tx| !tx.is_closed());
        }
    }
}

/// Where a group's delivery stands in this process.
struct GroupState {
    group: String,
    /// Empty until the first numbered frame.
    epoch: String,
    delivered: u64,
}

async fn run_group(
    inner: Arc<Inner>,
    local: LocalDelivery,
    group: String,
    mut rx: mpsc::Receiver<Msg>,
) {
    let wake = Arc::new(Notify::new());
    lock(&inner.delivery.catch_up).insert(group.clone(), wake.clone());
    let mut state = GroupState {
        group,
        epoch: String::new(),
        delivered: 0,
    };
    loop {
        let message = tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = wake.notified() => None,
            message = tokio::time::timeout(GROUP_IDLE, rx.recv()) => match message {
                Ok(Some(message)) => Some(message),
                Ok(None) => break,
                Err(_) if local.has_members(&state.group) => continue,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = inner.delivery.wait_until(|d| !lock(&d.held).contains(&state.group)) => {}
        }
        match message {
            Some(message) => handle(&inner, &local, &mut state, &message).await,
            None => catch_up(&inner, &local, &mut state).await,
        }
        if local.is_closed() {
            break;
        }
    }
    let mut tasks = lock(&inner.delivery.catch_up);
    if tasks
        .get(&state.group)
        .is_some_and(|current| Arc::ptr_eq(current, &wake))
    {
        tasks.remove(&state.group);
    }
}

async fn handle(inner: &Inner, local: &LocalDelivery, state: &mut GroupState, message: &Msg) {
    let envelope = match decode(message.get_payload_bytes()) {
        Ok(envelope) => envelope,
        Err(err) => {
            inner.count_dropped(&err.to_string());
            return;
        }
    };
    let own = envelope.node == inner.node_id;
    if let (Some(seq), Some(epoch), Some(_)) = (envelope.seq, envelope.epoch, inner.replay.get()) {
        let frame = Frame::from(envelope.frame);
        // Counted first: whoever sees the frame sees it counted.
        if !own {
            inner.count_received();
        }
        deliver_numbered(inner, local, state, seq, epoch, &frame).await;
        return;
    }
    if own {
        // Unnumbered frames of this process reached its members already.
        return;
    }
    let group = state.group.as_str();
    if is_expired(envelope.sent_ms, now_ms(), inner.expiry) {
        inner.count_expired();
        tracing::debug!(group, "redis layer: dropped an expired frame");
        return;
    }
    let frame = Frame::from(envelope.frame);
    inner.count_received();
    if inner.replay.is_some() {
        // Numbering comes from the shared log only: an unnumbered frame (from
        // a process without it, or published by hand) is not given a number
        // of this process's own.
        local.deliver_unnumbered(group, &frame);
    } else {
        local.deliver(group, &frame);
    }
}

/// Deliver frame `seq` of `epoch`, after any the stream skipped.
async fn deliver_numbered(
    inner: &Inner,
    local: &LocalDelivery,
    state: &mut GroupState,
    seq: u64,
    epoch: &str,
    frame: &Frame,
) {
    let group = state.group.as_str();
    let missing_from = if state.epoch == epoch {
        if seq <= state.delivered {
            // Delivered already (read back from the log).
            return;
        }
        state.delivered + 1
    } else if state.epoch.is_empty() {
        // The first frame since the group was subscribed: whatever came
        // before is the business of the clients' replay.
        seq
    } else {
        // The numbering started again while the group was followed here:
        // the new numbers before this one were missed.
        1
    };
    if missing_from < seq {
        match inner.read_log(group, missing_from - 1).await {
            Ok(read) if read.epoch == epoch => {
                read_back(inner, local, group, read.entries, missing_from..seq, epoch);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(group, error = %err, "redis layer: missed frames could not be read back");
            }
        }
    }
    local.deliver_sequenced(group, frame, seq, epoch);
    state.advance(inner, epoch, seq);
}

/// Deliver the entries of `range` read back from the log; returns the
/// newest delivered.
fn read_back(
    inner: &Inner,
    local: &LocalDelivery,
    group: &str,
    entries: Vec<(u64, Frame)>,
    range: std::ops::Range<u64>,
    epoch: &str,
) -> Option<u64> {
    let mut newest = None;
    for (missed, frame) in entries {
        if range.contains(&missed) {
            local.deliver_sequenced(group, &frame, missed, epoch);
            inner.count_recovered();
            newest = Some(missed);
        }
    }
    newest
}

/// After the subscriber subscribed again: deliver what the group's log
/// gained since the last frame delivered here (frames published while the
/// subscriber was away). A new epoch is delivered from its first frame, as
/// when a frame of it arrives. A group with nothing delivered yet starts
/// with its next frame, as it would have.
async fn catch_up(inner: &Inner, local: &LocalDelivery, state: &mut GroupState) {
    if state.epoch.is_empty() {
        return;
    }
    let group = state.group.as_str();
    let mut read = match inner.read_log(group, state.delivered).await {
        Ok(read) => read,
        Err(err) => {
            tracing::debug!(group, error = %err, "redis layer: could not catch up from the log");
            return;
        }
    };
    if read.epoch.is_empty() {
        return;
    }
    let from = if read.epoch == state.epoch {
        if read.newest <= state.delivered {
            return;
        }
        state.delivered + 1
    } else {
        // The numbering started again meanwhile: the new epoch from its
        // first frame.
        match inner.read_log(group, 0).await {
            Ok(again) if !again.epoch.is_empty() => read = again,
            Ok(_) => return,
            Err(err) => {
                tracing::debug!(group, error = %err, "redis layer: could not catch up from the log");
                return;
            }
        }
        1
    };
    let epoch = read.epoch;
    if let Some(newest) = read_back(inner, local, group, read.entries, from..u64::MAX, &epoch) {
        state.advance(inner, &epoch, newest);
    }
}

impl GroupState {
    /// Frame `seq` of `epoch` was delivered.
    fn advance(&mut self, inner: &Inner, epoch: &str, seq: u64) {
        if self.epoch != epoch {
            epoch.clone_into(&mut self.epoch);
        }
        self.delivered = seq;
        inner.delivery.progress(&self.group).set(epoch, seq);
    }
}
