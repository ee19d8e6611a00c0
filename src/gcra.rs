//! A rate limit as a leaky bucket in GCRA form: one instant per bucket (when it would
//! be empty) instead of a counter refilled by a timer. The client side reserves slots
//! in the future with it (`engine::ratelimit`); the mock answers "not yet, retry in …"
//! with it (`mock::state`). Imports nothing of the crate: both may import it.
//!
//! Hand-rolled rather than `governor`: the engine needs reservations it can refuse when
//! the slot falls past the stage's end (a request that would start after the deadline
//! is never sent, so never counted), and two buckets (requests and tokens) taken
//! together at one instant. governor offers neither; the whole algorithm is the
//! arithmetic below.

use std::time::{Duration, Instant};

/// A bucket of `burst` units draining at `per_sec` units per second.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_sec: f64,
    burst: f64,
    /// When the bucket would be empty (theoretical arrival time).
    tat: Instant,
}

impl Bucket {
    /// `per_minute` units per minute, at most `burst` at once. Both must be positive.
    pub fn per_minute(per_minute: f64, burst: f64, now: Instant) -> Bucket {
        Bucket { per_sec: per_minute / 60.0, burst: burst.max(1.0), tat: now }
    }

    /// Earliest instant at or after `now` when `n` units fit. A request larger than the
    /// burst waits for an empty bucket, then takes its time's worth.
    pub fn earliest(&self, now: Instant, n: f64) -> Instant {
        let room = (self.burst - n).max(0.0);
        let start = self.tat.checked_sub(secs(room / self.per_sec)).unwrap_or(now);
        start.max(now)
    }

    /// Takes `n` units at `at` (from `earliest`, or later).
    pub fn take(&mut self, at: Instant, n: f64) {
        self.tat = self.tat.max(at) + secs(n / self.per_sec);
    }

    /// Takes one unit now if it fits, else says how long until it would.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let at = self.earliest(now, 1.0);
        if at > now {
            return Err(at - now);
        }
        self.take(now, 1.0);
        Ok(())
    }
}

/// Durations from float seconds, saturating: rates are validated, but a tiny rate with a
/// huge request must not panic.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_side_check_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = Bucket::per_minute(120.0, 2.0, t0);
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(500)));
        assert_eq!(b.try_take(t0 + Duration::from_millis(500)), Ok(()));
    }
}
