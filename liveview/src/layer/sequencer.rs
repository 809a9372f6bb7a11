//! Delivery of each group's numbered frames in their order, whichever
//! process published them and whichever path they came by.
//!
//! Frames reach a process by two paths that do not keep each other's
//! order: its own publishes (delivered once the log numbered them) and the
//! fan-out subject (frames of other processes, each published after its
//! own acknowledgement). The sequencer puts them back in order: a frame
//! after its turn is held until the ones before it arrive, or until the
//! layer fetched them from the log (a fan-out message lost in a
//! reconnection), or gave up on them (the log no longer has them).
//!
//! A group's numbering lives in an epoch: frames of a new epoch restart at
//! 1, and frames of an epoch left behind are dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::layer::Frame;

/// Retired epochs remembered per group, to drop their late frames.
const RETIRED_EPOCHS: usize = 8;

/// Where each group's delivery stands in this process.
#[derive(Debug, Default)]
pub(super) struct Sequencer {
    groups: Mutex<HashMap<String, Order>>,
}

#[derive(Debug, Default)]
struct Order {
    /// The epoch being delivered; `None` before the group's start.
    epoch: Option<String>,
    /// The next sequence to deliver; `None` before the group's start.
    next: Option<u64>,
    /// Frames that came before their turn (or before the start).
    held: BTreeMap<u64, (String, Frame)>,
    /// Since when a frame is held.
    held_since: Option<Instant>,
    retired: Vec<String>,
}

/// A gap: `group` waits for `from..until` (exclusive) in `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gap {
    pub group: String,
    pub epoch: String,
    pub from: u64,
    pub until: u64,
}

impl Order {
    fn retire(&mut self, epoch: &str) {
        if !self.retired.iter().any(|e| e == epoch) {
            self.retired.push(epoch.to_owned());
            if self.retired.len() > RETIRED_EPOCHS {
                self.retired.remove(0);
            }
        }
    }

    /// Deliver the held frames that are next in turn.
    fn drain(&mut self, deliver: &mut impl FnMut(u64, &str, &Frame)) {
        let Some(mut next) = self.next else {
            return;
        };
        if self.epoch.is_none() {
            // Started on an empty log: the first frame names the epoch.
            self.epoch = self.held.first_key_value().map(|(_, (e, _))| e.clone());
        }
        let Some(epoch) = self.epoch.clone() else {
            return;
        };
        while let Some((seq, (held_epoch, frame))) = self.held.pop_first() {
            if held_epoch != epoch || seq < next {
                continue;
            }
            if seq > next {
                self.held.insert(seq, (held_epoch, frame));
                break;
            }
            deliver(seq, &epoch, &frame);
            next = seq + 1;
        }
        self.next = Some(next);
        if self.held.is_empty() {
            self.held_since = None;
        } else if self.held_since.is_none() {
            self.held_since = Some(Instant::now());
        }
    }
}

impl Sequencer {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Order>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A numbered frame of `group`: delivered now (with the held frames it
    /// makes next in turn), held, or dropped when already delivered or of
    /// a retired epoch. `deliver` runs under the sequencer's lock, so
    /// deliveries of one group never interleave.
    pub(super) fn offer(
        &self,
        group: &str,
        epoch: &str,
        seq: u64,
        frame: &Frame,
        deliver: &mut impl FnMut(u64, &str, &Frame),
    ) {
        let mut groups = self.lock();
        let order = groups.entry(group.to_owned()).or_default();
        if order.retired.iter().any(|e| e == epoch) {
            return;
        }
        match order.epoch.clone() {
            Some(current) if current != epoch => {
                // The group's numbering restarted: the new epoch wins.
                order.retire(&current);
                order.epoch = Some(epoch.to_owned());
                order.next = Some(1);
                order.held.retain(|_, (e, _)| e == epoch);
            }
            _ => {}
        }
        if order.next.is_some_and(|next| seq < next) {
            return;
        }
        order.held.insert(seq, (epoch.to_owned(), frame.clone()));
        if order.held_since.is_none() {
            order.held_since = Some(Instant::now());
        }
        order.drain(deliver);
    }

    /// The group was subscribed here and its log's newest frame is `last`
    /// of `epoch` (`None`: the log is empty, the first frame will be 1). Frames held until now that
    /// are not after `last` are delivered first, in order.
    pub(super) fn start(
        &self,
        group: &str,
        tail: Option<(&str, u64)>,
        deliver: &mut impl FnMut(u64, &str, &Frame),
    ) {
        let mut groups = self.lock();
        let order = groups.entry(group.to_owned()).or_default();
        if order.next.is_some() {
            return;
        }
        let Some((epoch, last)) = tail else {
            // An empty log: its first frame will be 1, of a new epoch.
            order.next = Some(1);
            order.drain(deliver);
            return;
        };
        let epoch = epoch.to_owned();
        order.held.retain(|_, (e, _)| *e == epoch);
        let early: Vec<u64> = order.held.range(..=last).map(|(seq, _)| *seq).collect();
        for seq in early {
            if let Some((_, frame)) = order.held.remove(&seq) {
                deliver(seq, &epoch, &frame);
            }
        }
        order.epoch = Some(epoch);
        order.next = Some(last + 1);
        order.drain(deliver);
    }

    /// The next sequence `group` waits for in `epoch`; `None` before its
    /// start or when it is in another epoch.
    pub(super) fn next(&self, group: &str, epoch: &str) -> Option<u64> {
        let groups = self.lock();
        let order = groups.get(group)?;
        (order.epoch.as_deref() == Some(epoch)).then_some(order.next?)
    }

    /// Whether the group's delivery has started.
    pub(super) fn started(&self, group: &str) -> bool {
        self.lock().get(group).is_some_and(|o| o.next.is_some())
    }

    /// The groups whose held frames wait for earlier ones for longer than
    /// `wait`.
    pub(super) fn gaps(&self, wait: Duration) -> Vec<Gap> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter_map(|(group, order)| {
                let since = order.held_since?;
                let (epoch, next) = (order.epoch.clone()?, order.next?);
                let (&until, _) = order.held.first_key_value()?;
                (now.duration_since(since) >= wait).then(|| Gap {
                    group: group.clone(),
                    epoch,
                    from: next,
                    until,
                })
            })
            .collect()
    }

    /// Give up waiting for the frames before the first held one of `group`
    /// (they are not in the log any more): deliver from there on.
    pub(super) fn skip_gap(&self, group: &str, deliver: &mut impl FnMut(u64, &str, &Frame)) {
        let mut groups = self.lock();
        let Some(order) = groups.get_mut(group) else {
            return;
        };
        if let Some((&first, _)) = order.held.first_key_value()
            && order.next.is_some()
        {
            order.next = Some(first);
            order.drain(deliver);
        }
    }

    /// The group has no member here any more.
    pub(super) fn forget(&self, group: &str) {
        self.lock().remove(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: &Sequencer, group: &str, epoch: &str, n: u64, out: &mut Vec<(u64, String)>) {
        seq.offer(
            group,
            epoch,
            n,
            &Frame::from(format!("f{n}")),
            &mut |s, e, _| out.push((s, e.to_owned())),
        );
    }

    #[test]
    fn frames_are_delivered_in_order_once() {
        let seq = Sequencer::default();
        let mut out = Vec::new();
        seq.start("g", Some(("e1", 4)), &mut |s, e, _| {
            out.push((s, e.to_owned()))
        });
        run(&seq, "g", "e1", 6, &mut out);
        run(&seq, "g", "e1", 4, &mut out);
        assert!(out.is_empty());
        run(&seq, "g", "e1", 5, &mut out);
        run(&seq, "g", "e1", 5, &mut out);
        run(&seq, "g", "e1", 7, &mut out);
        let got: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
        assert_eq!(got, [5, 6, 7]);
    }

    #[test]
    fn frames_before_the_start_are_held_then_delivered() {
        let seq = Sequencer::default();
        let mut out = Vec::new();
        run(&seq, "g", "e1", 3, &mut out);
        run(&seq, "g", "e1", 5, &mut out);
        assert!(out.is_empty() && !seq.started("g"));
        seq.start("g", Some(("e1", 4)), &mut |s, e, _| {
            out.push((s, e.to_owned()))
        });
        let got: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
        assert_eq!(got, [3, 5]);
    }

    #[test]
    fn an_empty_log_starts_at_one_in_the_first_frames_epoch() {
        let seq = Sequencer::default();
        let mut out = Vec::new();
        run(&seq, "g", "e9", 2, &mut out);
        seq.start("g", None, &mut |s, e, _| out.push((s, e.to_owned())));
        assert!(out.is_empty());
        run(&seq, "g", "e9", 1, &mut out);
        assert_eq!(out, [(1, "e9".to_owned()), (2, "e9".to_owned())]);
    }

    #[test]
    fn a_gap_waits_then_is_skipped() {
        let seq = Sequencer::default();
        let mut out = Vec::new();
        seq.start("g", Some(("e1", 0)), &mut |s, e, _| {
            out.push((s, e.to_owned()))
        });
        run(&seq, "g", "e1", 3, &mut out);
        assert!(out.is_empty());
        let gaps = seq.gaps(Duration::ZERO);
        assert_eq!(
            gaps,
            [Gap {
                group: "g".into(),
                epoch: "e1".into(),
                from: 1,
                until: 3
            }]
        );
        assert!(seq.gaps(Duration::from_secs(60)).is_empty());
        seq.skip_gap("g", &mut |s, e, _| out.push((s, e.to_owned())));
        assert_eq!(out, [(3, "e1".to_owned())]);
        assert!(seq.gaps(Duration::ZERO).is_empty());
    }

    #[test]
    fn a_new_epoch_restarts_the_numbering_and_retires_the_old_one() {
        let seq = Sequencer::default();
        let mut out = Vec::new();
        seq.start("g", Some(("e1", 10)), &mut |s, e, _| {
            out.push((s, e.to_owned()))
        });
        run(&seq, "g", "e1", 11, &mut out);
        run(&seq, "g", "e2", 1, &mut out);
        run(&seq, "g", "e1", 12, &mut out);
        run(&seq, "g", "e2", 2, &mut out);
        assert_eq!(
            out,
            [
                (11, "e1".to_owned()),
                (1, "e2".to_owned()),
                (2, "e2".to_owned())
            ]
        );
    }
}
