//! The pacer of the fixed-rate scenario: calls made due at a fixed rate,
//! evenly over the connections, each connection with one call in flight.
//!
//! Call `j` of a turn is due `j / rate` after the turn's start, on
//! connection `j mod N`: the calls of the turn are evenly spaced, and each
//! connection's calls are `N / rate` apart, the connections' phases
//! staggered by `1 / rate`. A thread of the load generator releases them
//! on a grid of ticks (a quarter of a millisecond in the plan): each call
//! at the first tick at or after it falls due. Tokio's timers count whole
//! milliseconds, too coarse; releasing every call the moment it falls due
//! (every few microseconds) made the load generator wake, and wake its
//! workers, once per call or two, and spend two to three times its
//! saturated CPU per call on it; with a tick it wakes a fixed number of
//! times per second whatever the rate. A connection sends its next call
//! once one is released to it and its previous call is answered, so a
//! connection whose answer came late catches up at once, and calls held
//! back by a slow server show as an achieved rate below the offered one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// When each call of a turn falls due, and on which connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Calls per second, all connections together.
    pub rate: f64,
    pub connections: usize,
    /// Calls are released on a grid of this step from the start.
    pub tick: Duration,
}

impl Schedule {
    /// Calls due before `elapsed` from the start: call `j` is due at
    /// `j / rate`.
    pub(crate) fn due_before(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate).ceil() as u64
    }

    /// When call `j` is due, from the start.
    pub(crate) fn due_at(&self, j: u64) -> Duration {
        Duration::from_secs_f64(j as f64 / self.rate)
    }

    /// When call `j` is released, from the start: the first tick at or
    /// after it falls due.
    pub(crate) fn released_at(&self, j: u64) -> Duration {
        let due = self.due_at(j);
        let tick = self.tick.as_nanos().max(1);
        let ticks = due.as_nanos().div_ceil(tick);
        Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
    }

    /// The connection that makes call `j`.
    pub(crate) fn owner(&self, j: u64) -> usize {
        (j % self.connections.max(1) as u64) as usize
    }

    /// Calls due from `from` up to `to` (from the start).
    pub(crate) fn due_between(&self, from: Duration, to: Duration) -> u64 {
        self.due_before(to).saturating_sub(self.due_before(from))
    }
}

/// Calls released to one connection.
#[derive(Debug, Default)]
struct Slot {
    released: AtomicU64,
    notify: Notify,
}

#[derive(Debug)]
struct Shared {
    schedule: Schedule,
    start: Instant,
    end: Instant,
    slots: Vec<Slot>,
    /// Every call due before the end has been released.
    over: AtomicBool,
    stop: AtomicBool,
}

/// The pacing thread of one turn, stopped (and joined) when dropped.
#[derive(Debug)]
pub(crate) struct Pacer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A connection's side of the pacer: the calls released to it.
#[derive(Debug)]
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    index: usize,
    taken: u64,
}

impl Pacer {
    /// Release the calls of `schedule` due from `start` until `end`, on a
    /// thread of its own: one ticket per connection, in order. The thread
    /// runs until [`stop`](Self::stop), so that its CPU time stays among
    /// the load generator's threads until the turn's last measurement.
    pub(crate) fn start(
        schedule: Schedule,
        start: Instant,
        end: Instant,
    ) -> Result<(Self, Vec<Ticket>), String> {
        let shared = Arc::new(Shared {
            schedule,
            start,
            end,
            slots: (0..schedule.connections).map(|_| Slot::default()).collect(),
            over: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let tickets = (0..schedule.connections)
            .map(|index| Ticket {
                shared: shared.clone(),
                index,
                taken: 0,
            })
            .collect();
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("load-pacer".to_owned())
            .spawn(move || release(&inner))
            .map_err(|e| format!("starting the pacer: {e}"))?;
        Ok((
            Self {
                shared,
                thread: Some(thread),
            },
            tickets,
        ))
    }

    /// Stop the thread and wait for it.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The pacing loop: release what is due, sleep until the tick at which
/// the next call is.
fn release(shared: &Shared) {
    let schedule = shared.schedule;
    let total = schedule.due_before(shared.end.saturating_duration_since(shared.start));
    let mut next = 0u64;
    while !shared.stop.load(Ordering::Acquire) && next < total {
        let now = Instant::now();
        let due = schedule
            .due_before(now.saturating_duration_since(shared.start))
            .min(total);
        while next < due {
            let slot = &shared.slots[schedule.owner(next)];
            slot.released.fetch_add(1, Ordering::Release);
            slot.notify.notify_one();
            next += 1;
        }
        if next < total {
            let at = shared.start + schedule.released_at(next);
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }
    // The connections waiting for a call learn that none will come.
    shared.over.store(true, Ordering::Release);
    for slot in &shared.slots {
        slot.notify.notify_one();
    }
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::park();
    }
}

impl Ticket {
    /// Wait until a call is released to this connection (`true`), or
    /// until every call of the turn has been (`false`).
    pub(crate) async fn next(&mut self) -> bool {
        let slot = &self.shared.slots[self.index];
        loop {
            if slot.released.load(Ordering::Acquire) > self.taken {
                self.taken += 1;
                return true;
            }
            if self.shared.over.load(Ordering::Acquire) {
                return false;
            }
            // A release or the end between the checks and this wait
            // leaves a permit: the wait returns at once.
            slot.notify.notified().await;
        }
    }

    /// When the call this connection took last fell due.
    #[cfg(test)]
    fn taken_due(&self) -> Instant {
        let n = self.shared.schedule.connections.max(1) as u64;
        let j = self.taken.saturating_sub(1) * n + self.index as u64;
        self.shared.start + self.shared.schedule.due_at(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_spread_evenly_over_the_connections() {
        let schedule = Schedule {
            rate: 1_000.0,
            connections: 7,
            tick: Duration::from_micros(250),
        };
        let second = Duration::from_secs(1);
        assert_eq!(schedule.due_before(Duration::ZERO), 0);
        assert_eq!(schedule.due_before(second), 1_000);
        let mut per_connection = [0u64; 7];
        for j in 0..schedule.due_before(second) {
            per_connection[schedule.owner(j)] += 1;
        }
        // 1,000 over 7: 142 or 143 each.
        assert!(per_connection.iter().all(|c| *c == 142 || *c == 143));
        assert_eq!(per_connection.iter().sum::<u64>(), 1_000);
        // A connection's calls are 7 ms apart, the next connection's 1 ms
        // after.
        assert_eq!(schedule.owner(3), schedule.owner(10));
        assert_eq!(
            schedule.due_at(10) - schedule.due_at(3),
            Duration::from_millis(7)
        );
        assert_eq!(schedule.due_at(4) - schedule.due_at(3), second / 1_000);
        // Released at the first tick at or after their due time: call 1,
        // due at 1 ms, at once; call 3, due at 3 ms, too.
        assert_eq!(schedule.released_at(0), Duration::ZERO);
        assert_eq!(schedule.released_at(1), Duration::from_millis(1));
        let fine = Schedule {
            rate: 3_000.0,
            ..schedule
        };
        // Due at 333 µs, 667 µs, 1 ms: released at 500 µs, 750 µs, 1 ms.
        let released: Vec<u128> = (1..=3).map(|j| fine.released_at(j).as_micros()).collect();
        assert_eq!(released, [500, 750, 1_000]);
        // Slices of a quarter of a second each get a quarter of the calls.
        let quarter = second / 4;
        for k in 0..4u32 {
            assert_eq!(schedule.due_between(quarter * k, quarter * (k + 1)), 250);
        }
    }

    #[test]
    fn the_pacer_releases_every_call_due_and_none_early() {
        let schedule = Schedule {
            rate: 20_000.0,
            connections: 10,
            tick: Duration::from_micros(250),
        };
        let start = Instant::now();
        let end = start + Duration::from_millis(50);
        let (pacer, tickets) = Pacer::start(schedule, start, end).expect("a pacer");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let taken: Vec<(u64, bool)> = runtime.block_on(async {
            let tasks: Vec<_> = tickets
                .into_iter()
                .map(|mut t| async move {
                    let mut early = false;
                    let mut count = 0;
                    while t.next().await {
                        early |= Instant::now() < t.taken_due();
                        count += 1;
                    }
                    (count, early)
                })
                .collect();
            futures_util::future::join_all(tasks).await
        });
        pacer.stop();
        // 50 ms at 20,000 calls per second: 1,000 calls, 100 on each of
        // the 10 connections, none before it was due.
        assert!(taken.iter().all(|(count, _)| *count == 100), "{taken:?}");
        assert!(taken.iter().all(|(_, early)| !early), "{taken:?}");
    }
}
