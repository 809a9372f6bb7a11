//! Which groups a layer's server has confirmed the subscription of, for
//! [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed) and for a
//! log read that must not miss what follows it
//! ([`Subscriptions::before_log_read`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::LayerError;

/// Longest wait for the server to confirm a group's subscription: in
/// [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed), and
/// before a log read.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Whether a layer's server is away: the layer is not `connected` and its
/// first attempt to connect is over. Before that attempt ends the layer is
/// on its way, and a group joined meanwhile is subscribed as it connects:
/// worth the wait.
pub(super) fn is_away(connected: &AtomicBool, first_attempt_over: &AtomicBool) -> bool {
    !connected.load(Ordering::Acquire) && first_attempt_over.load(Ordering::Acquire)
}

/// The groups whose subscription the server confirmed: what other
/// processes publish to them reaches this one.
#[derive(Default)]
pub(super) struct Subscriptions {
    confirmed: Mutex<HashSet<String>>,
    /// How many times every confirmation was taken away at once
    /// ([`reset`](Self::reset)); changed under the `confirmed` lock.
    resets: AtomicU64,
    changed: Notify,
    /// Callers waiting now for a subscription that is not confirmed yet.
    waiting: AtomicUsize,
    /// Fault injection for tests: group changes wait while this is set.
    changes_held: AtomicBool,
    /// Fault injection for tests: a subscription loop that is about to
    /// unsubscribe waits here while held.
    unsubscribes: Hold,
}

/// What a subscription loop does about the groups whose membership here
/// changed: see [`Subscriptions::changes`].
pub(super) struct Changes {
    /// Groups with members here and no subscription yet.
    pub(super) subscribe: Vec<String>,
    /// Subscribed groups without members here any more, their confirmation
    /// withdrawn already.
    pub(super) unsubscribe: Vec<String>,
}

/// A point where a test may hold a layer's work (fault injection): passed
/// at once unless held.
#[derive(Debug, Default)]
pub(super) struct Hold {
    held: watch::Sender<bool>,
    /// Callers waiting now in [`pass`](Self::pass).
    waiting: AtomicUsize,
}

impl Hold {
    pub(super) fn set(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// How many wait now in [`pass`](Self::pass).
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Return at once, unless held: then once released.
    pub(super) async fn pass(&self) {
        // Without a receiver first: the point may be on a hot path.
        if !*self.held.borrow() {
            return;
        }
        let mut held = self.held.subscribe();
        if !*held.borrow_and_update() {
            return;
        }
        let _waiting = Waiting::new(&self.waiting);
        // The sender lives as long as `self`.
        let _ = held.wait_for(|held| !held).await;
    }
}

/// One caller counted while it waits (in [`Subscriptions::waiting`], or
/// [`Hold::waiting`]).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Subscriptions {
    fn confirmed(&self) -> MutexGuard<'_, HashSet<String>> {
        self.confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The server confirmed these groups: their messages reach this
    /// process from now on.
    pub(super) fn confirm<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        self.confirmed().extend(groups.into_iter().cloned());
        self.changed.notify_waiters();
    }

    /// The server dropped these groups' subscription. (A group the layer
    /// unsubscribes loses its confirmation in [`changes`](Self::changes).)
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) fn withdraw<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        let mut confirmed = self.confirmed();
        for group in groups {
            confirmed.remove(group);
        }
    }

    /// The connection that held the subscriptions was lost: nothing is
    /// subscribed.
    pub(super) fn reset(&self) {
        let mut confirmed = self.confirmed();
        confirmed.clear();
        self.resets.fetch_add(1, Ordering::AcqRel);
        drop(confirmed);
        self.changed.notify_waiters();
    }

    /// What to do about the groups in `dirty`, whose membership here
    /// changed: subscribe those that have members here (`has_members`) and
    /// are not `subscribed`, unsubscribe the `subscribed` ones that have
    /// none.
    ///
    /// A subscribed group that seems to have no member left loses its
    /// confirmation first, and only then are its members looked at again:
    /// a client that resumes into it meanwhile either saw the confirmation
    /// before it went away, and then joined before that second look, which
    /// keeps the group (its confirmation given back: the subscription
    /// never stopped), or its log read waits for the group's next
    /// subscription ([`before_log_read`](Self::before_log_read)). So a log
    /// is never read under a confirmation that an unsubscribe is about to
    /// take away: the frames published between that unsubscribe and the
    /// next subscription would be neither in the read nor delivered. A
    /// client that joins after the second look marks its group changed
    /// again, and the loop subscribes it again after unsubscribing it.
    pub(super) fn changes(
        &self,
        dirty: impl IntoIterator<Item = String>,
        subscribed: impl Fn(&str) -> bool,
        has_members: impl Fn(&str) -> bool,
    ) -> Changes {
        let mut subscribe = Vec::new();
        let mut leaving = Vec::new();
        for group in dirty {
            match (has_members(&group), subscribed(&group)) {
                (true, false) => subscribe.push(group),
                (false, true) => leaving.push(group),
                _ => {}
            }
        }
        if leaving.is_empty() {
            return Changes {
                subscribe,
                unsubscribe: leaving,
            };
        }
        let (withdrawn, resets) = {
            let mut confirmed = self.confirmed();
            let withdrawn: HashSet<String> = leaving
                .iter()
                .filter(|group| confirmed.remove(*group))
                .cloned()
                .collect();
            (withdrawn, self.resets.load(Ordering::Acquire))
        };
        let (kept, unsubscribe): (Vec<String>, Vec<String>) =
            leaving.into_iter().partition(|group| has_members(group));
        if !kept.is_empty() {
            let mut confirmed = self.confirmed();
            // Unless the connection was lost meanwhile, with every
            // subscription.
            if self.resets.load(Ordering::Acquire) == resets {
                confirmed.extend(kept.into_iter().filter(|g| withdrawn.contains(g)));
            }
            drop(confirmed);
            self.changed.notify_waiters();
        }
        Changes {
            subscribe,
            unsubscribe,
        }
    }

    /// For tests: while `held`, group changes wait (the layer's loop
    /// leaves them marked; once released, it is woken to make them).
    pub(super) fn hold_changes(&self, held: bool) {
        self.changes_held.store(held, Ordering::Release);
    }

    /// Whether group changes wait now (see [`hold_changes`](Self::hold_changes)).
    pub(super) fn changes_held(&self) -> bool {
        self.changes_held.load(Ordering::Acquire)
    }

    /// For tests: while `held`, a subscription loop that has decided to
    /// unsubscribe groups waits in
    /// [`before_unsubscribe`](Self::before_unsubscribe) before it does.
    pub(super) fn hold_unsubscribes(&self, held: bool) {
        self.unsubscribes.set(held);
    }

    /// How many subscription loops wait now in
    /// [`before_unsubscribe`](Self::before_unsubscribe).
    pub(super) fn paused_before_unsubscribing(&self) -> usize {
        self.unsubscribes.waiting()
    }

    /// Called by a subscription loop between deciding which groups to
    /// unsubscribe and unsubscribing them: returns at once, unless a test
    /// holds unsubscribes ([`hold_unsubscribes`](Self::hold_unsubscribes)).
    pub(super) async fn before_unsubscribe(&self) {
        self.unsubscribes.pass().await;
    }

    /// How many callers wait now for a subscription that is not confirmed
    /// yet (for tests: a log read held back until its group is subscribed).
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Whether `group` is subscribed now.
    pub(super) fn is_confirmed(&self, group: &str) -> bool {
        self.confirmed().contains(group)
    }

    /// [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed): wait
    /// until `group` is subscribed, for at most [`SUBSCRIBE_WAIT`]; `false`
    /// at once while the server is `away`, when nothing is subscribed.
    pub(super) async fn subscribed(&self, away: bool, group: &str) -> bool {
        !away && self.wait_subscribed(group, SUBSCRIBE_WAIT).await
    }

    /// Before `group`'s log is read for a client that resumes: wait until
    /// the group is subscribed here, for at most [`SUBSCRIBE_WAIT`], so
    /// that every frame numbered after the read reaches this process live
    /// (frames both read and received are queued once, by the outbox). A
    /// group that gained its first member a moment ago may not be yet: a
    /// frame published between the read and its subscription would be
    /// neither read nor received. An error at once while the server is
    /// `away`, and when the subscription does not come in time; `layer`
    /// names the layer in it. A client that resumes in the process's first
    /// moments, before the layer's first connection is made, is answered
    /// once it is (the server is not away yet).
    pub(super) async fn before_log_read(
        &self,
        layer: &str,
        away: bool,
        group: &str,
    ) -> Result<(), LayerError> {
        if away {
            return Err(LayerError::new(format!(
                "{layer}: not connected; the log cannot be read"
            )));
        }
        if !self.wait_subscribed(group, SUBSCRIBE_WAIT).await {
            return Err(LayerError::new(format!(
                "{layer}: {group} was not subscribed in time"
            )));
        }
        Ok(())
    }

    /// Wait until `group` is subscribed, for at most `limit`.
    async fn wait_subscribed(&self, group: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut waiting = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.confirmed().contains(group) {
                return true;
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.waiting));
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn names(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn a_group_without_members_is_unsubscribed_and_no_longer_confirmed() {
        let subscriptions = Subscriptions::default();
        subscriptions.confirm(&names(&["left", "stays"]));
        let changes = subscriptions.changes(
            names(&["left", "joined", "stays"]),
            |g| g != "joined",
            |g| g != "left",
        );
        assert_eq!(changes.subscribe, ["joined"]);
        assert_eq!(changes.unsubscribe, ["left"]);
        assert!(!subscriptions.is_confirmed("left"));
        assert!(subscriptions.is_confirmed("stays"));
    }

    /// `changes` of the one subscribed group `g`, which has no member at
    /// the first look and one at the second, when `at_second_look` runs;
    /// and how many looks there were.
    fn a_member_joins_between_the_looks(
        subscriptions: &Subscriptions,
        at_second_look: impl Fn(&str),
    ) -> (Changes, usize) {
        let looks = Cell::new(0);
        let changes = subscriptions.changes(
            names(&["g"]),
            |_| true,
            |g| {
                looks.set(looks.get() + 1);
                if looks.get() == 1 {
                    return false;
                }
                at_second_look(g);
                true
            },
        );
        (changes, looks.get())
    }

    #[test]
    fn members_are_looked_at_again_only_once_the_confirmation_is_withdrawn() {
        let subscriptions = Subscriptions::default();
        subscriptions.confirm(&names(&["g"]));
        // One joined (and saw no confirmation) by the second look.
        let (changes, looks) = a_member_joins_between_the_looks(&subscriptions, |g| {
            assert!(
                !subscriptions.is_confirmed(g),
                "the members are looked at again under the confirmation"
            );
        });
        assert_eq!(looks, 2);
        assert!(changes.unsubscribe.is_empty(), "the group is kept");
        assert!(changes.subscribe.is_empty());
        assert!(
            subscriptions.is_confirmed("g"),
            "the subscription stood: its confirmation is given back"
        );
    }

    #[test]
    fn a_kept_group_is_not_confirmed_again_after_a_lost_connection() {
        let subscriptions = Subscriptions::default();
        subscriptions.confirm(&names(&["g"]));
        let (changes, _) =
            a_member_joins_between_the_looks(&subscriptions, |_| subscriptions.reset());
        assert!(changes.unsubscribe.is_empty());
        assert!(!subscriptions.is_confirmed("g"));
    }

    #[test]
    fn a_kept_group_that_was_not_confirmed_stays_unconfirmed() {
        let subscriptions = Subscriptions::default();
        let (changes, _) = a_member_joins_between_the_looks(&subscriptions, |_| {});
        assert!(changes.unsubscribe.is_empty());
        assert!(!subscriptions.is_confirmed("g"));
    }
}
