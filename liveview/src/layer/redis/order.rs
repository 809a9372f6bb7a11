//! Keeping numbered frames in sequence order on their way to the members of
//! this process, and knowing when everything published up to a point has
//! been through local delivery.
//!
//! Frames from other processes arrive on the subscriber connection in the
//! order Redis published them, which is their sequence order, and the
//! delivery task hands them to local members one by one. A frame this
//! process publishes is delivered by its publisher once the script's answer
//! arrives on the publishing connection: a different connection, read by a
//! different task. Its echo (Redis sends it to the subscriber like any other
//! message) marks where it belongs, so the two meet there: the delivery task
//! stops at the echo until the publisher has delivered its frame and let go
//! of the [`Handoff`], and the publisher, if it got its number first, waits
//! until the delivery task reaches the echo, so that everything before it is
//! delivered first. Both waits are bounded.
//!
//! A sync message, published on this process's private channel right after
//! the shared log was read, is a barrier: once the delivery task reaches it,
//! every frame published before the read has been through local delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

/// Longest wait of either side of a meeting; both normally wait for less
/// than a round trip to Redis.
pub(super) const ORDER_WAIT: Duration = Duration::from_secs(1);

/// Held by a publisher until it delivered its frame; dropping it lets the
/// delivery task go past the publisher's echo.
#[derive(Debug)]
pub(super) struct Handoff(#[allow(dead_code)] oneshot::Sender<()>);

impl Handoff {
    fn new() -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Self(tx), rx)
    }
}

enum Slot {
    /// The publisher has its number and waits for the delivery task.
    Publisher(oneshot::Sender<Handoff>),
    /// The delivery task reached the echo first and waits for the publisher.
    Echo(Handoff),
}

#[derive(Default)]
struct Turns {
    /// Publishes of the group from this process still waiting for their
    /// number.
    unnumbered: usize,
    /// Meetings not complete yet, by sequence.
    slots: BTreeMap<u64, Slot>,
}

impl Turns {
    fn is_idle(&self) -> bool {
        self.unnumbered == 0 && self.slots.is_empty()
    }
}

#[derive(Default)]
struct Subscriptions {
    next: u64,
    /// Groups whose SUBSCRIBE was confirmed in the current session, each
    /// with a number that changes whenever it is subscribed again.
    confirmed: HashMap<String, u64>,
}

#[derive(Default)]
struct Syncs {
    next: u64,
    waiting: HashMap<u64, oneshot::Sender<()>>,
}

#[derive(Default)]
pub(super) struct Order {
    turns: Mutex<HashMap<String, Turns>>,
    subscriptions: Mutex<Subscriptions>,
    subscriptions_changed: Notify,
    syncs: Mutex<Syncs>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below leaves the state consistent at each step.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Order {
    // -- Subscriptions ------------------------------------------------------

    /// The subscriber confirmed these groups: their messages reach this
    /// process from now on.
    pub(super) fn confirm<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        let mut subscriptions = lock(&self.subscriptions);
        for group in groups {
            subscriptions.next += 1;
            let ticket = subscriptions.next;
            subscriptions.confirmed.insert(group.clone(), ticket);
        }
        drop(subscriptions);
        self.subscriptions_changed.notify_waiters();
    }

    /// These groups are about to be unsubscribed.
    pub(super) fn withdraw<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        let mut subscriptions = lock(&self.subscriptions);
        for group in groups {
            subscriptions.confirmed.remove(group);
        }
    }

    /// The subscriber session ended: nothing is subscribed, no echo nor
    /// sync message will come, and whoever waits for one goes on.
    pub(super) fn reset(&self) {
        lock(&self.subscriptions).confirmed.clear();
        lock(&self.syncs).waiting.clear();
        for turns in lock(&self.turns).values_mut() {
            turns
                .slots
                .retain(|_, slot| !matches!(slot, Slot::Publisher(_)));
        }
        self.subscriptions_changed.notify_waiters();
    }

    /// Identifies the current subscription of `group`, if it is confirmed.
    pub(super) fn ticket(&self, group: &str) -> Option<u64> {
        lock(&self.subscriptions).confirmed.get(group).copied()
    }

    /// Wait until `group` is subscribed, for at most `limit`.
    pub(super) async fn wait_subscribed(&self, group: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.subscriptions_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.ticket(group).is_some() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    // -- Own frames and their echoes ---------------------------------------

    /// A publish of `group` from this process starts.
    pub(super) fn begin<'a>(&'a self, group: &'a str) -> InFlight<'a> {
        lock(&self.turns)
            .entry(group.to_owned())
            .or_default()
            .unnumbered += 1;
        InFlight {
            order: self,
            group,
            numbered: false,
        }
    }

    /// The delivery task reached the echo of this process's frame `seq` of
    /// `group`: returns once the publisher delivered it (or gave up).
    pub(super) async fn echo(&self, group: &str, seq: u64) {
        let wait = {
            let mut all = lock(&self.turns);
            let Some(turns) = all.get_mut(group) else {
                return;
            };
            // Publishers of earlier frames whose echo did not come (it would
            // have come first) need not wait any longer.
            turns
                .slots
                .retain(|s, slot| *s >= seq || !matches!(slot, Slot::Publisher(_)));
            let wait = match turns.slots.remove(&seq) {
                Some(Slot::Publisher(publisher)) => {
                    let (handoff, done) = Handoff::new();
                    publisher.send(handoff).ok().map(|()| done)
                }
                Some(Slot::Echo(handoff)) => {
                    turns.slots.insert(seq, Slot::Echo(handoff));
                    None
                }
                // The publisher may not have its number yet.
                None if turns.unnumbered > 0 => {
                    let (handoff, done) = Handoff::new();
                    turns.slots.insert(seq, Slot::Echo(handoff));
                    Some(done)
                }
                // It delivered its frame already.
                None => None,
            };
            if turns.is_idle() {
                all.remove(group);
            }
            wait
        };
        if let Some(done) = wait
            && tokio::time::timeout(ORDER_WAIT, done).await.is_err()
        {
            let mut all = lock(&self.turns);
            if let Some(turns) = all.get_mut(group) {
                if matches!(turns.slots.get(&seq), Some(Slot::Echo(_))) {
                    turns.slots.remove(&seq);
                }
                if turns.is_idle() {
                    all.remove(group);
                }
            }
        }
    }

    // -- Sync messages ------------------------------------------------------

    /// A token for a sync message, and what resolves when the delivery task
    /// reaches it.
    pub(super) fn sync(&self) -> Sync<'_> {
        let mut syncs = lock(&self.syncs);
        syncs.next += 1;
        let token = syncs.next;
        let (tx, rx) = oneshot::channel();
        syncs.waiting.insert(token, tx);
        Sync {
            order: self,
            token,
            reached: Some(rx),
        }
    }

    /// The delivery task reached the sync message `token`.
    pub(super) fn synced(&self, token: u64) {
        if let Some(tx) = lock(&self.syncs).waiting.remove(&token) {
            let _ = tx.send(());
        }
    }

    #[cfg(test)]
    fn is_idle(&self) -> bool {
        lock(&self.turns).is_empty() && lock(&self.syncs).waiting.is_empty()
    }
}

/// A publish of this process in progress; see [`Order::begin`].
pub(super) struct InFlight<'a> {
    order: &'a Order,
    group: &'a str,
    numbered: bool,
}

impl InFlight<'_> {
    /// The script numbered the frame `seq`. When its echo is expected on the
    /// subscriber (`echo_expected`), wait until the delivery task reaches
    /// it. The returned handoff, held until the frame is delivered, keeps the
    /// delivery task from going past the echo.
    pub(super) async fn numbered(&mut self, seq: u64, echo_expected: bool) -> Option<Handoff> {
        let turn = {
            let mut all = lock(&self.order.turns);
            let turns = all.entry(self.group.to_owned()).or_default();
            // An echo waiting for this publisher is claimed before the others
            // are let go.
            let claimed = match turns.slots.remove(&seq) {
                Some(Slot::Echo(handoff)) => Some(Some(handoff)),
                Some(Slot::Publisher(_)) | None if !echo_expected => Some(None),
                Some(Slot::Publisher(_)) | None => None,
            };
            if !self.numbered {
                self.numbered = true;
                turns.leave_unnumbered();
            }
            if let Some(claimed) = claimed {
                if turns.is_idle() {
                    all.remove(self.group);
                }
                return claimed;
            }
            let (tx, rx) = oneshot::channel();
            turns.slots.insert(seq, Slot::Publisher(tx));
            rx
        };
        match tokio::time::timeout(ORDER_WAIT, turn).await {
            Ok(Ok(handoff)) => Some(handoff),
            _ => {
                let mut all = lock(&self.order.turns);
                if let Some(turns) = all.get_mut(self.group) {
                    if matches!(turns.slots.get(&seq), Some(Slot::Publisher(_))) {
                        turns.slots.remove(&seq);
                    }
                    if turns.is_idle() {
                        all.remove(self.group);
                    }
                }
                None
            }
        }
    }
}

impl Turns {
    /// One publisher less waits for its number. When none does any more,
    /// echoes waiting for a publisher will not meet one.
    fn leave_unnumbered(&mut self) {
        self.unnumbered = self.unnumbered.saturating_sub(1);
        if self.unnumbered == 0 {
            self.slots
                .retain(|_, slot| matches!(slot, Slot::Publisher(_)));
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut all = lock(&self.order.turns);
        if let Some(turns) = all.get_mut(self.group) {
            if !self.numbered {
                turns.leave_unnumbered();
            }
            // Turns of publishers that gave up are of no use any more.
            turns.slots.retain(|_, slot| match slot {
                Slot::Publisher(tx) => !tx.is_closed(),
                Slot::Echo(_) => true,
            });
            if turns.is_idle() {
                all.remove(self.group);
            }
        }
    }
}

/// A sync message being waited for; forgotten when dropped.
pub(super) struct Sync<'a> {
    order: &'a Order,
    pub token: u64,
    reached: Option<oneshot::Receiver<()>>,
}

impl Sync<'_> {
    /// Whether the delivery task reached the sync message within `limit`
    /// (false when the subscriber session ended meanwhile).
    pub(super) async fn reached(&mut self, limit: Duration) -> bool {
        match self.reached.take() {
            Some(rx) => matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(()))),
            None => false,
        }
    }
}

impl Drop for Sync<'_> {
    fn drop(&mut self) {
        lock(&self.order.syncs).waiting.remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    impl Order {
        fn has_slot(&self, group: &str, seq: u64) -> bool {
            lock(&self.turns)
                .get(group)
                .is_some_and(|turns| turns.slots.contains_key(&seq))
        }

        fn unnumbered(&self, group: &str) -> usize {
            lock(&self.turns)
                .get(group)
                .map_or(0, |turns| turns.unnumbered)
        }
    }

    async fn until(mut condition: impl FnMut() -> bool) {
        while !condition() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_publisher_that_got_its_number_first_waits_for_the_echo() {
        let order = Arc::new(Order::default());
        let delivered = Arc::new(AtomicU64::new(0));
        let publisher = {
            let (order, delivered) = (order.clone(), delivered.clone());
            tokio::spawn(async move {
                let mut flight = order.begin("g");
                let handoff = flight.numbered(2, true).await;
                assert!(handoff.is_some(), "the echo came in time");
                // Everything before 2 was delivered before 2 is.
                assert_eq!(delivered.load(Ordering::SeqCst), 1);
                delivered.store(2, Ordering::SeqCst);
            })
        };
        until(|| order.has_slot("g", 2)).await;
        // The delivery task: frame 1 from elsewhere, then the echo of 2.
        delivered.store(1, Ordering::SeqCst);
        order.echo("g", 2).await;
        assert_eq!(delivered.load(Ordering::SeqCst), 2, "2 before what follows");
        publisher.await.unwrap();
        assert!(order.is_idle());
    }

    #[tokio::test]
    async fn an_echo_that_came_first_waits_for_its_publisher() {
        let order = Arc::new(Order::default());
        let flight_order = order.clone();
        let (numbered_tx, numbered_rx) = oneshot::channel::<()>();
        let publisher = tokio::spawn(async move {
            let mut flight = flight_order.begin("g");
            numbered_rx.await.unwrap();
            let handoff = flight.numbered(7, false).await;
            assert!(handoff.is_some(), "the waiting echo hands over");
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(handoff);
        });
        until(|| order.unnumbered("g") == 1).await;
        let started = tokio::time::Instant::now();
        let echo = order.echo("g", 7);
        tokio::pin!(echo);
        // The echo waits while the publisher has no number yet.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), echo.as_mut())
                .await
                .is_err()
        );
        numbered_tx.send(()).unwrap();
        echo.await;
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert!(started.elapsed() < ORDER_WAIT);
        publisher.await.unwrap();
        assert!(order.is_idle());
    }

    #[tokio::test]
    async fn echoes_without_publishers_and_lost_echoes_do_not_block() {
        let order = Order::default();
        // Nothing of the group in flight: nothing to wait for.
        order.echo("g", 1).await;

        // An echo waiting for a publisher without a number yet goes on when
        // that publisher gets another number.
        let mut other = order.begin("g");
        let echo = order.echo("g", 2);
        tokio::pin!(echo);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), echo.as_mut())
                .await
                .is_err()
        );
        assert!(other.numbered(3, false).await.is_none());
        tokio::time::timeout(Duration::from_millis(100), echo)
            .await
            .expect("released");
        drop(other);

        // A publisher whose echo will not come is released by a later echo.
        let mut lost = order.begin("g");
        let mut next = order.begin("g");
        let (lost_turn, next_turn) = tokio::join!(
            async {
                let waiting = lost.numbered(4, true);
                tokio::pin!(waiting);
                waiting.await
            },
            async {
                let handoff = next.numbered(5, true);
                let echo = async {
                    until(|| order.has_slot("g", 5)).await;
                    order.echo("g", 5).await;
                };
                let (handoff, ()) = tokio::join!(handoff, async {
                    tokio::time::timeout(Duration::from_millis(10), echo)
                        .await
                        .ok();
                });
                handoff
            }
        );
        assert!(lost_turn.is_none());
        assert!(next_turn.is_some());
        drop((lost, next, next_turn));

        // ... or by the end of the session.
        let mut flight = order.begin("g");
        {
            let waiting = flight.numbered(6, true);
            tokio::pin!(waiting);
            assert!(
                tokio::time::timeout(Duration::from_millis(10), waiting.as_mut())
                    .await
                    .is_err()
            );
            order.reset();
            assert!(waiting.await.is_none());
        }
        drop(flight);
        assert!(order.is_idle());
    }

    #[tokio::test]
    async fn subscriptions_and_syncs() {
        let order = Order::default();
        let group = "room_a".to_owned();
        assert!(
            !order
                .wait_subscribed("room_a", Duration::from_millis(5))
                .await
        );
        let waiter = order.wait_subscribed("room_a", Duration::from_secs(5));
        tokio::pin!(waiter);
        assert!(
            tokio::time::timeout(Duration::from_millis(5), waiter.as_mut())
                .await
                .is_err()
        );
        order.confirm([&group]);
        assert!(waiter.await);
        let first = order.ticket("room_a").unwrap();
        order.withdraw([&group]);
        assert_eq!(order.ticket("room_a"), None);
        order.confirm([&group]);
        assert_ne!(order.ticket("room_a"), Some(first), "a new subscription");

        let mut sync = order.sync();
        order.synced(sync.token);
        assert!(sync.reached(Duration::from_secs(1)).await);
        let mut lost = order.sync();
        order.reset();
        assert!(!lost.reached(Duration::from_secs(1)).await);
        assert_eq!(order.ticket("room_a"), None);
        drop((sync, lost));
        assert!(order.is_idle());
    }
}
