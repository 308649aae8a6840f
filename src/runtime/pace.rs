//! Spacing out a recurring job whose cost grows with the number of tenants.
//!
//! Two loops recompute something from the whole caches after each change: what Secrets the
//! server needs (`secrets`) and which client secrets to pre-warm (`flow::clients`). Each run
//! is O(N). At 10,000 tenants a run took tens of milliseconds and, while thousands of objects
//! were being created, ran every 200–250 ms: a fifth of the operator's CPU went to repeating
//! it. A [`Pace`] lets a run start only after `SHARE`× its own duration has passed since the
//! previous one, so such a job takes at most 1/`SHARE` of a core whatever N is, and runs as
//! often as before when it is cheap.

use std::time::{Duration, Instant};

/// A job may use at most 1/`SHARE` of a core.
const SHARE: u32 = 20;

/// When a paced job may run again.
#[derive(Debug)]
pub struct Pace {
    next: Instant,
}

impl Pace {
    /// A job that may run at once.
    pub fn new(now: Instant) -> Pace {
        Pace { next: now }
    }

    /// Whether the job may run at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Runs `job` now and returns its result; the next run may start after `SHARE` times as
    /// long as this one took.
    pub fn run<T>(&mut self, job: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = job();
        self.ran(started, started.elapsed());
        result
    }

    fn ran(&mut self, started: Instant, took: Duration) {
        self.next = started + took * SHARE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_waits_twenty_times_as_long_as_the_last_one_took() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        assert!(pace.ready(t0));
        pace.ran(t0, Duration::from_millis(30));
        assert!(!pace.ready(t0 + Duration::from_millis(599)));
        assert!(pace.ready(t0 + Duration::from_millis(600)));
        // A cheap run leaves it ready at the loop's own period.
        pace.ran(t0, Duration::from_micros(50));
        assert!(pace.ready(t0 + Duration::from_millis(1)));
    }
}
