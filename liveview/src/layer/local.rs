//! The local group table: which connections of this process are in which
//! group, and fan-out of one frame to all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

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
}

/// Why and whether a connection is closing. The first reason wins.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    code: AtomicU16,
    token: CancellationToken,
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
        };
        (outbox, rx)
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

    pub(crate) fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closer.code().is_some() || self.tx.is_closed()
    }
}

/// Group name -> members (connection id -> outbox).
#[derive(Debug)]
pub(crate) struct Hub {
    groups: RwLock<HashMap<Arc<str>, HashMap<u64, Outbox>>>,
    layer: Arc<dyn ChannelLayer>,
}

impl Hub {
    pub(crate) fn new(layer: Arc<dyn ChannelLayer>) -> Self {
        Self {
            groups: RwLock::default(),
            layer,
        }
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
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups.get_mut(group) {
            members.remove(&id);
            if members.is_empty() {
                groups.remove(group);
                self.layer.unsubscribe(group);
            }
        }
    }

    /// Queue `frame` for every local member of `group`. The frame buffer is
    /// shared, not copied. Returns the number of members it was queued for.
    pub(crate) fn deliver(&self, group: &str, frame: &Frame) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        let Some(members) = groups.get(group) else {
            return 0;
        };
        members
            .values()
            .filter(|outbox| outbox.push(frame.clone()).is_ok())
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
