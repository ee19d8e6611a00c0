//! Client-side rate limits: requests and tokens per minute, as two GCRA buckets
//! (`crate::gcra`) taken together at one instant. A reservation lies in the future,
//! first come first served, and the caller sleeps until its slot; one that would fall
//! past the stage's end is refused and takes nothing.

use std::sync::Mutex;
use std::time::Instant;

use crate::gcra::Bucket;

/// Client-side limits shared by every worker of a run: requests and tokens per minute.
#[derive(Debug)]
pub struct Limiter {
    buckets: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

impl Limiter {
    /// `rpm` requests and `tpm` tokens per minute; None when neither is set. Requests are
    /// paced one at a time (no burst); tokens may burst by one second's worth.
    pub fn new(rpm: Option<f64>, tpm: Option<f64>, now: Instant) -> Option<Limiter> {
        if rpm.is_none() && tpm.is_none() {
            return None;
        }
        let rpm = rpm.map(|r| Bucket::per_minute(r, 1.0, now));
        let tpm = tpm.map(|t| Bucket::per_minute(t, t / 60.0, now));
        Some(Limiter { buckets: Mutex::new((rpm, tpm)) })
    }

    /// Reserves one request of `tokens` tokens at the earliest instant both limits allow,
    /// unless that instant is at or past `deadline`: then nothing is taken and None is
    /// returned. The caller sleeps until the returned instant.
    pub fn reserve(&self, now: Instant, tokens: u64, deadline: Option<Instant>) -> Option<Instant> {
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (rpm, tpm) = &mut *guard;
        let n = tokens as f64;
        let at = [rpm.as_ref().map(|b| b.earliest(now, 1.0)), tpm.as_ref().map(|b| b.earliest(now, n))].into_iter().flatten().max()?;
        if deadline.is_some_and(|d| at >= d) {
            return None;
        }
        if let Some(b) = rpm {
            b.take(at, 1.0);
        }
        if let Some(b) = tpm {
            b.take(at, n);
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn requests_are_paced_one_interval_apart() {
        let t0 = Instant::now();
        let l = Limiter::new(Some(600.0), None, t0).unwrap();
        let slots: Vec<_> = (0..5).map(|_| l.reserve(t0, 1, None).unwrap() - t0).collect();
        assert_eq!(slots, [0, 100, 200, 300, 400].map(|m| m * MS));
    }

    #[test]
    fn ten_seconds_at_600_rpm_hold_100_slots() {
        let t0 = Instant::now();
        let l = Limiter::new(Some(600.0), None, t0).unwrap();
        let deadline = t0 + Duration::from_secs(10);
        let n = std::iter::from_fn(|| l.reserve(t0, 1, Some(deadline))).take(1000).count();
        assert_eq!(n, 100);
        // A refused reservation takes nothing: the next stage's first slot is unchanged.
        assert_eq!(l.reserve(t0, 1, None).unwrap() - t0, Duration::from_secs(10));
    }

    #[test]
    fn an_idle_limiter_does_not_bank_slots() {
        let t0 = Instant::now();
        let l = Limiter::new(Some(60.0), None, t0).unwrap();
        let later = t0 + Duration::from_secs(30);
        assert_eq!(l.reserve(later, 1, None).unwrap(), later);
        assert_eq!(l.reserve(later, 1, None).unwrap(), later + Duration::from_secs(1));
    }

    #[test]
    fn tokens_burst_one_second_then_pace() {
        let t0 = Instant::now();
        // 60k tokens per minute: 1000 per second, a burst of 1000.
        let l = Limiter::new(None, Some(60_000.0), t0).unwrap();
        assert_eq!(l.reserve(t0, 500, None).unwrap(), t0);
        assert_eq!(l.reserve(t0, 500, None).unwrap(), t0);
        // The bucket is full: the next 500 wait until 500 have drained.
        assert_eq!(l.reserve(t0, 500, None).unwrap() - t0, 500 * MS);
        // Larger than the burst: waits for an empty bucket.
        assert_eq!(l.reserve(t0, 3000, None).unwrap() - t0, 1500 * MS);
        // It took 3 s of drain: a single token fits once all but 999 have drained.
        assert_eq!(l.reserve(t0, 1, None).unwrap() - t0, 3501 * MS);
    }

    #[test]
    fn both_limits_are_taken_at_the_later_instant() {
        let t0 = Instant::now();
        let l = Limiter::new(Some(6000.0), Some(60_000.0), t0).unwrap();
        // 10 ms per request; 1 ms per token beyond the 1000-token burst.
        assert_eq!(l.reserve(t0, 1000, None).unwrap(), t0);
        assert_eq!(l.reserve(t0, 100, None).unwrap() - t0, 100 * MS);
        assert_eq!(l.reserve(t0, 1, None).unwrap() - t0, 110 * MS);
    }

    #[test]
    fn absurd_rates_do_not_panic() {
        let t0 = Instant::now();
        let l = Limiter::new(Some(1e-9), Some(1e-9), t0).unwrap();
        let _ = l.reserve(t0, u64::MAX, None);
        let _ = l.reserve(t0, u64::MAX, Some(t0));
    }
}
