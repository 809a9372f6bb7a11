//! Small helpers of the layer's background work: reconnection backoff and
//! rate-limited warnings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// First and longest delay between two connection attempts of the subscriber.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Repeated warnings of one kind are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Capped exponential backoff with jitter.
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(super) fn new() -> Self {
        Self { next: BACKOFF_MIN }
    }

    pub(super) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// A delay between half and all of the current step; the step doubles up
    /// to the cap.
    pub(super) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(BACKOFF_MAX);
        let half = step / 2;
        let jitter = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let random = (uuid::Uuid::new_v4().as_u128() as u64) % jitter.max(1);
        half + Duration::from_micros(random)
    }
}

/// Lets one warning of a kind through per [`WARN_EVERY`], counting the rest.
#[derive(Default)]
pub(super) struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    /// `Some(number suppressed since the last one)` when a warning may be
    /// logged now.
    pub(super) fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut backoff = Backoff::new();
        let mut longest = Duration::ZERO;
        for _ in 0..30 {
            let delay = backoff.next_delay();
            assert!(delay <= BACKOFF_MAX);
            longest = longest.max(delay);
        }
        assert!(longest >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_MIN);
    }

    #[test]
    fn repeated_warnings_are_limited() {
        let limiter = WarnLimiter::default();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 2);
    }
}
