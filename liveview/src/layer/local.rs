//! The local group table: which connections of this process are in which
//! group, and fan-out of one frame to all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use super::log::{Logs, sequenced};
use super::{ChannelLayer, Frame};
use crate::error::SendError;

/// Close code for a client that could not keep up with its frames.
pub(crate) const CLOSE_SLOW_CLIENT: u16 = 1013;

/// The sending side of one connection: a bounded queue of frames for its
/// writer, and the signal that tells the connection to close.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Frame>,
    closer: Arc<Closer>,
    /// Whether the client tracks group sequences (it asked to, by
    /// connecting with a `resume` parameter): only then do group frames
    /// carry `seq` and `group`.
    sequenced: bool,
}

/// Why and whether a connection is closing (the first reason wins), and
/// the gate that holds group frames back while a reconnecting client is
/// being replayed what it missed.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    code: AtomicU16,
    token: CancellationToken,
    gated: AtomicBool,
    held: Mutex<Vec<Held>>,
}

/// A group frame held back by the gate.
#[derive(Debug)]
pub(crate) struct Held {
    pub group: Arc<str>,
    pub seq: Option<u64>,
    pub frame: Frame,
}

impl Closer {
    /// Ask the connection to close with `code`, unless it already is.
    pub(crate) fn close(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.token.cancel();
        }
    }

    /// The close code, once [`close`](Self::close) was called.
    pub(crate) fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    pub(crate) async fn closed(&self) {
        self.token.cancelled().await
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, and the queue's
    /// receiving end for the connection's writer.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Self {
            tx,
            closer: Arc::new(Closer::default()),
            sequenced: false,
        };
        (outbox, rx)
    }

    /// Group frames to this outbox carry their sequence numbers.
    pub(crate) fn with_sequences(mut self, sequenced: bool) -> Self {
        self.sequenced = sequenced;
        self
    }

    pub(crate) fn wants_sequences(&self) -> bool {
        self.sequenced
    }

    /// Queue a frame. A full queue means the client is not reading fast
    /// enough: the connection is closed with 1013 rather than buffering
    /// without bound.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), SendError> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.closer.close(CLOSE_SLOW_CLIENT);
                Err(SendError::SlowClient)
            }
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Queue a frame of `group` (with its sequence, if any), unless the
    /// gate holds group frames back.
    pub(crate) fn push_group(
        &self,
        group: &Arc<str>,
        seq: Option<u64>,
        frame: Frame,
    ) -> Result<(), SendError> {
        if self.closer.gated.load(Ordering::Acquire) {
            let mut held = self.closer.held.lock().unwrap_or_else(|e| e.into_inner());
            if self.closer.gated.load(Ordering::Acquire) {
                if held.len() >= self.tx.max_capacity() {
                    self.closer.close(CLOSE_SLOW_CLIENT);
                    return Err(SendError::SlowClient);
                }
                held.push(Held {
                    group: group.clone(),
                    seq,
                    frame,
                });
                return Ok(());
            }
        }
        self.push(frame)
    }

    /// Hold group frames back from now on.
    pub(crate) fn hold(&self) {
        self.closer.gated.store(true, Ordering::Release);
    }

    /// Queue the held frames that `keep` accepts, in arrival order, and
    /// stop holding: frames published meanwhile come after them.
    pub(crate) fn release(&self, keep: impl Fn(&Held) -> bool) {
        let mut held = self.closer.held.lock().unwrap_or_else(|e| e.into_inner());
        for item in held.drain(..) {
            if keep(&item) {
                let _ = self.push(item.frame);
            }
        }
        self.closer.gated.store(false, Ordering::Release);
    }

    pub(crate) fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closer.code().is_some() || self.tx.is_closed()
    }
}

/// Group name -> members (connection id -> outbox), and the per-process
/// logs of group frames when replay is on.
#[derive(Debug)]
pub(crate) struct Hub {
    groups: RwLock<HashMap<Arc<str>, HashMap<u64, Outbox>>>,
    layer: Arc<dyn ChannelLayer>,
    logs: Option<Logs>,
    emptied: std::sync::atomic::AtomicU64,
    /// Who is in each room here, with their users.
    pub(crate) presence: crate::presence::LocalPresence,
    /// Whether presence is recorded through the layer for every process.
    pub(crate) presence_shared: bool,
}

impl Hub {
    pub(crate) fn new(layer: Arc<dyn ChannelLayer>) -> Self {
        Self {
            groups: RwLock::default(),
            layer,
            logs: None,
            emptied: Default::default(),
            presence: Default::default(),
            presence_shared: false,
        }
    }

    pub(crate) fn with_logs(mut self, logs: Option<Logs>) -> Self {
        self.logs = logs;
        self
    }

    pub(crate) fn with_shared_presence(mut self, shared: bool) -> Self {
        self.presence_shared = shared;
        self
    }

    pub(crate) fn logs(&self) -> Option<&Logs> {
        self.logs.as_ref()
    }

    /// Deliver a frame published here whose layer keeps no shared log:
    /// sequenced by this process's log when replay is on.
    pub(crate) fn deliver_logged(&self, group: &str, frame: &Frame) -> usize {
        match &self.logs {
            Some(logs) => logs.append(group, frame, |seq| {
                self.deliver_sequenced(group, frame, seq)
            }),
            None => self.deliver(group, frame),
        }
    }

    /// Deliver a frame of a group's log: members that track sequences get
    /// it with `seq` and `group` spliced in (once for all of them), the
    /// others as it is.
    pub(crate) fn deliver_sequenced(&self, group: &str, frame: &Frame, seq: u64) -> usize {
        self.fan_out(group, Some(seq), frame)
    }

    pub(crate) fn layer(&self) -> &Arc<dyn ChannelLayer> {
        &self.layer
    }

    /// Add a member; the layer subscribes when the group is new here.
    ///
    /// The layer is told while the table is locked, so it hears of joins
    /// and leaves in the order they happened (its calls do not block).
    pub(crate) fn join(&self, group: &str, id: u64, outbox: Outbox) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        match groups.get_mut(group) {
            Some(members) => {
                members.insert(id, outbox);
            }
            None => {
                groups.insert(Arc::from(group), HashMap::from([(id, outbox)]));
                self.layer.subscribe(group);
            }
        }
    }

    /// Remove a member; the layer unsubscribes when it was the last here.
    pub(crate) fn leave(&self, group: &str, id: u64) {
        let emptied = {
            let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
            match groups.get_mut(group) {
                Some(members) => {
                    members.remove(&id);
                    let empty = members.is_empty();
                    if empty {
                        groups.remove(group);
                        self.layer.unsubscribe(group);
                    }
                    empty
                }
                None => false,
            }
        };
        // Now and then, forget the logs of groups that are gone and whose
        // frames all aged out (outside the table lock: logs, then table).
        if emptied
            && let Some(logs) = &self.logs
            && self.emptied.fetch_add(1, Ordering::Relaxed) % 64 == 63
        {
            logs.sweep(|g| self.members(g) > 0);
        }
    }

    /// Queue `frame` for every local member of `group`. The frame buffer is
    /// shared, not copied. Returns the number of members it was queued for.
    pub(crate) fn deliver(&self, group: &str, frame: &Frame) -> usize {
        self.fan_out(group, None, frame)
    }

    fn fan_out(&self, group: &str, seq: Option<u64>, frame: &Frame) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        let Some((name, members)) = groups.get_key_value(group) else {
            return 0;
        };
        let mut numbered: Option<Frame> = None;
        members
            .values()
            .filter(|outbox| {
                let frame = match seq {
                    Some(seq) if outbox.wants_sequences() => numbered
                        .get_or_insert_with(|| sequenced(frame, group, seq))
                        .clone(),
                    _ => frame.clone(),
                };
                outbox.push_group(name, seq, frame).is_ok()
            })
            .count()
    }

    /// Names of the groups with local members.
    pub(crate) fn groups(&self) -> Vec<String> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.keys().map(|g| g.to_string()).collect()
    }

    /// Group memberships of local connections, over all groups.
    pub(crate) fn memberships(&self) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.values().map(HashMap::len).sum()
    }

    /// How many local members `group` has.
    pub(crate) fn members(&self, group: &str) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.get(group).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::MemoryLayer;

    #[test]
    fn a_full_queue_closes_the_connection_as_slow() {
        let (outbox, _rx) = Outbox::new(2);
        assert!(outbox.push(Frame::from("a")).is_ok());
        assert!(outbox.push(Frame::from("b")).is_ok());
        assert!(matches!(
            outbox.push(Frame::from("c")),
            Err(SendError::SlowClient)
        ));
        assert_eq!(outbox.closer().code(), Some(CLOSE_SLOW_CLIENT));
    }

    #[test]
    fn held_frames_are_released_in_order_minus_those_already_replayed() {
        let (outbox, mut rx) = Outbox::new(8);
        let group: Arc<str> = Arc::from("room_a");
        outbox.hold();
        outbox
            .push_group(&group, Some(3), Frame::from("3"))
            .unwrap();
        outbox
            .push_group(&group, Some(4), Frame::from("4"))
            .unwrap();
        assert!(rx.try_recv().is_err(), "held back");
        outbox.push(Frame::from("replayed 3")).unwrap();
        outbox.release(|held| held.seq.is_some_and(|s| s > 3));
        outbox
            .push_group(&group, Some(5), Frame::from("5"))
            .unwrap();
        let order: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, ["replayed 3", "4", "5"].map(Frame::from));
    }

    #[test]
    fn groups_appear_and_disappear_with_their_members() {
        let hub = Hub::new(Arc::new(MemoryLayer));
        let (a, mut rx_a) = Outbox::new(8);
        let (b, mut rx_b) = Outbox::new(8);
        hub.join("room_x", 1, a);
        hub.join("room_x", 2, b);
        assert_eq!(hub.deliver("room_x", &Frame::from("hi")), 2);
        assert_eq!(rx_a.try_recv().unwrap().as_str(), "hi");
        assert_eq!(rx_b.try_recv().unwrap().as_str(), "hi");
        hub.leave("room_x", 1);
        assert_eq!(hub.members("room_x"), 1);
        hub.leave("room_x", 2);
        assert!(hub.groups().is_empty());
        assert_eq!(hub.deliver("room_x", &Frame::from("gone")), 0);
    }
}
