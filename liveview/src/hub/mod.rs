//! This process's groups: which connections are in which group, fan-out
//! of one frame to all of them, the local replay log and presence.

pub(crate) mod log;
pub(crate) mod presence;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use crate::connection::outbox::Outbox;
use crate::layer::{ChannelLayer, Frame, LayerError};
use crate::metrics::Metrics;
use log::{GroupPosition, Logs, sequenced};

/// Group name -> members (connection id -> outbox), and the per-process
/// logs of group frames when replay is on.
#[derive(Debug)]
pub(crate) struct Hub {
    groups: RwLock<HashMap<Arc<str>, Members>>,
    layer: Arc<dyn ChannelLayer>,
    logs: Option<Logs>,
    emptied: std::sync::atomic::AtomicU64,
    /// Who is in each room here, with their users.
    pub(crate) presence: presence::LocalPresence,
    /// Whether presence is recorded through the layer for every process.
    pub(crate) presence_shared: bool,
    /// The application's counters (groups and memberships are kept here).
    pub(crate) metrics: Arc<Metrics>,
}

/// The members of a group here, by connection id. A group of one
/// connection (a room of its own) holds it in place, without a table.
#[derive(Debug)]
enum Members {
    Empty,
    One(u64, Outbox),
    Many(HashMap<u64, Outbox>),
}

impl Members {
    /// Add a member (or replace its outbox); whether it is new.
    fn insert(&mut self, id: u64, outbox: Outbox) -> bool {
        let (members, new) = match std::mem::replace(self, Members::Empty) {
            Members::Empty => (Members::One(id, outbox), true),
            Members::One(one, _) if one == id => (Members::One(id, outbox), false),
            Members::One(one, current) => (
                Members::Many(HashMap::from([(one, current), (id, outbox)])),
                true,
            ),
            Members::Many(mut members) => {
                let new = members.insert(id, outbox).is_none();
                (Members::Many(members), new)
            }
        };
        *self = members;
        new
    }

    /// Remove a member; whether it was one.
    fn remove(&mut self, id: u64) -> bool {
        match self {
            Members::One(one, _) if *one == id => {
                *self = Members::Empty;
                true
            }
            Members::Many(members) => members.remove(&id).is_some(),
            Members::Empty | Members::One(..) => false,
        }
    }

    fn len(&self) -> usize {
        match self {
            Members::Empty => 0,
            Members::One(..) => 1,
            Members::Many(members) => members.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn outboxes(&self) -> impl Iterator<Item = &Outbox> {
        let (one, many) = match self {
            Members::Empty => (None, None),
            Members::One(_, outbox) => (Some(outbox), None),
            Members::Many(members) => (None, Some(members.values())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
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
            metrics: Arc::default(),
        }
    }

    pub(crate) fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
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

    /// Send `frame` to every member of `group`, here and in the other
    /// processes. The hub alone delivers to this process's connections:
    ///
    /// - with a shared log (Redis), the layer numbers the frame and hands it
    ///   back to the hub in the group's order, with the frames of the other
    ///   processes: this process's own frames take no other path;
    /// - otherwise the hub delivers it at once (numbered by this process's
    ///   log when replay is on) and the layer carries it to the others;
    /// - when the layer fails, local members still get the frame,
    ///   unnumbered, and the error is returned.
    pub(crate) async fn publish(&self, group: &str, frame: &Frame) -> Result<(), LayerError> {
        if self.logs.is_some() && self.layer.has_shared_log() {
            // This process's members get its frames back through the
            // layer's subscription: a group joined here a moment ago, not
            // yet subscribed, is waited for (within the layer's bound), or
            // they would miss the frame.
            if self.members(group) > 0 {
                let _ = self.layer.subscribed(group).await;
            }
            match self.layer.publish_sequenced(group, frame).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => {
                    self.deliver_logged(group, frame);
                    Ok(())
                }
                Err(err) => {
                    self.deliver(group, frame);
                    Err(err)
                }
            }
        } else {
            // Local members first: they never wait for the network.
            self.deliver_logged(group, frame);
            self.layer.publish(group, frame).await
        }
    }

    /// Where `group`'s numbering stands: from the layer's shared log, or
    /// this process's. `None` when nothing is numbered (replay off) or the
    /// shared log cannot be read.
    pub(crate) async fn position(&self, group: &str) -> Option<GroupPosition> {
        let logs = self.logs.as_ref()?;
        if !self.layer.has_shared_log() {
            return Some(logs.position(group));
        }
        match self.layer.position(group).await {
            Ok(Some(position)) => Some(position),
            Ok(None) => Some(logs.position(group)),
            Err(err) => {
                tracing::debug!(target: "liveview", group, error = %err, "position unavailable");
                None
            }
        }
    }

    /// Deliver a frame whose layer keeps no shared log: sequenced by this
    /// process's log when replay is on.
    pub(crate) fn deliver_logged(&self, group: &str, frame: &Frame) -> usize {
        match &self.logs {
            Some(logs) => logs.append(group, frame, |seq, epoch| {
                self.fan_out(group, Some((seq, epoch)), frame)
            }),
            None => self.deliver(group, frame),
        }
    }

    /// Deliver a frame of a group's log: members that track sequences get
    /// it with `seq`, `group` and `epoch` spliced in (once for all of them),
    /// the others as it is.
    pub(crate) fn deliver_sequenced(
        &self,
        group: &str,
        frame: &Frame,
        seq: u64,
        epoch: &str,
    ) -> usize {
        self.fan_out(group, Some((seq, &Arc::from(epoch))), frame)
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
                if members.insert(id, outbox) {
                    self.metrics.memberships.add(1);
                }
            }
            None => {
                groups.insert(Arc::from(group), Members::One(id, outbox));
                self.layer.subscribe(group);
                self.metrics.groups.add(1);
                self.metrics.memberships.add(1);
            }
        }
    }

    /// Remove a member; the layer unsubscribes when it was the last here.
    pub(crate) fn leave(&self, group: &str, id: u64) {
        let emptied = {
            let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
            match groups.get_mut(group) {
                Some(members) => {
                    if members.remove(id) {
                        self.metrics.memberships.add(-1);
                    }
                    let empty = members.is_empty();
                    if empty {
                        groups.remove(group);
                        self.layer.unsubscribe(group);
                        self.metrics.groups.add(-1);
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

    fn fan_out(&self, group: &str, number: Option<(u64, &Arc<str>)>, frame: &Frame) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        let Some((name, members)) = groups.get_key_value(group) else {
            return 0;
        };
        let mut numbered: Option<Frame> = None;
        members
            .outboxes()
            .filter(|outbox| {
                let frame = match number {
                    Some((seq, epoch)) if outbox.wants_sequences() => numbered
                        .get_or_insert_with(|| sequenced(frame, group, seq, epoch))
                        .clone(),
                    _ => frame.clone(),
                };
                outbox.push_group(name, number, frame).is_ok()
            })
            .count()
    }

    /// Call `f` with the outbox of every local member of `group`.
    pub(crate) fn for_each_member(&self, group: &str, mut f: impl FnMut(&Outbox)) {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = groups.get(group) {
            members.outboxes().for_each(&mut f);
        }
    }

    /// Who is in `room` in this process: one entry per connection, with
    /// its user if it has one.
    pub(crate) fn local_presence(&self, room: &str) -> Vec<Option<crate::scope::User>> {
        let count = self.members(&crate::layer::room_group(room));
        self.presence.members(room, count)
    }

    /// Names of the groups with local members.
    pub(crate) fn groups(&self) -> Vec<String> {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.keys().map(|g| g.to_string()).collect()
    }

    /// How many local members `group` has.
    pub(crate) fn members(&self, group: &str) -> usize {
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        groups.get(group).map_or(0, Members::len)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::layer::MemoryLayer;

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

    /// A layer with a shared log whose subscriptions are confirmed only
    /// when the test says so; it notes what happened in which order.
    #[derive(Debug, Default)]
    struct Confirming {
        confirmed: tokio::sync::Notify,
        events: std::sync::Mutex<Vec<&'static str>>,
    }

    impl Confirming {
        fn note(&self, event: &'static str) {
            self.events.lock().unwrap().push(event);
        }
    }

    impl ChannelLayer for Confirming {
        fn start(&self, _local: crate::layer::LocalDelivery) {}
        fn subscribe(&self, _group: &str) {}
        fn unsubscribe(&self, _group: &str) {}
        fn subscribed<'a>(&'a self, _group: &'a str) -> BoxFuture<'a, bool> {
            Box::pin(async move {
                self.confirmed.notified().await;
                self.note("subscribed");
                true
            })
        }
        fn publish<'a>(
            &'a self,
            _: &'a str,
            _: &'a Frame,
        ) -> BoxFuture<'a, Result<(), LayerError>> {
            Box::pin(async { Ok(()) })
        }
        fn has_shared_log(&self) -> bool {
            true
        }
        fn publish_sequenced<'a>(
            &'a self,
            _: &'a str,
            _: &'a Frame,
        ) -> BoxFuture<'a, Result<Option<(u64, String)>, LayerError>> {
            self.note("published");
            Box::pin(async { Ok(Some((1, "e".to_owned()))) })
        }
    }

    /// The frames of a group joined here come back through the layer's
    /// subscription: the frame is published only once that subscription
    /// is in place, or this process's members would never get it.
    #[tokio::test]
    async fn a_group_joined_here_is_subscribed_before_its_frame_is_published() {
        let layer = Arc::new(Confirming::default());
        let logs = Some(Logs::new(log::ReplayConfig::default()));
        let hub = Arc::new(Hub::new(layer.clone()).with_logs(logs));
        let (outbox, _rx) = Outbox::new(8);
        hub.join("room_x", 1, outbox);
        let publishing = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish("room_x", &Frame::from("hi")).await }
        });
        tokio::task::yield_now().await;
        assert!(
            layer.events.lock().unwrap().is_empty(),
            "published before it was subscribed"
        );
        layer.confirmed.notify_one();
        publishing.await.unwrap().unwrap();
        assert_eq!(*layer.events.lock().unwrap(), ["subscribed", "published"]);
    }
}
