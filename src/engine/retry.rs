//! Retry timing decisions, as pure functions of the policy: whether a failed attempt
//! is sent again, and how long to wait first (full jitter under a doubling cap, with the
//! server's Retry-After as a floor when honoured).

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::model::{FailureKind, Outcome};
use crate::scenario::RetryPolicy;

/// The failure to retry, when `outcome` is one the policy retries and an attempt is
/// left after the `sent` ones.
pub(super) fn retry_kind(policy: &RetryPolicy, outcome: Outcome, sent: usize) -> Option<FailureKind> {
    match outcome {
        Outcome::Failed(kind) if sent < policy.max_attempts as usize && policy.retries(kind) => Some(kind),
        _ => None,
    }
}

/// The jitter source of request `i`: seeded per request number, so the jitter is
/// reproducible and needs no shared state.
pub(super) fn jitter_rng(i: u64) -> StdRng {
    StdRng::seed_from_u64(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How long to wait before the retry that follows `earlier` failed attempts: a uniform
/// draw (`draw` in 0..1) below min(max_backoff, backoff × 2^earlier), so failed
/// requests do not come back in step; with the server's wish (`retry_after`, honoured
/// up to `max_retry_after`) as a floor the jitter goes on top of — else every request
/// told "in 50 ms" returns at that instant and all but one are refused again. Also
/// whether the server's wish was waited.
pub(super) fn wait(policy: &RetryPolicy, earlier: u32, draw: f64, retry_after: Option<Duration>) -> (Duration, bool) {
    let cap = policy.backoff.saturating_mul(1u32 << earlier.min(30)).min(policy.max_backoff);
    let jitter = cap.mul_f64(draw);
    let asked = retry_after.filter(|_| policy.respect_retry_after).map(|a| a.min(policy.max_retry_after));
    (asked.map_or(jitter, |a| a.saturating_add(jitter)), asked.is_some())
}

/// The next jitter draw of a request's generator.
pub(super) fn draw(rng: &mut StdRng) -> f64 {
    rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, ..RetryPolicy::default() }
    }

    #[test]
    fn a_covered_failure_is_retried_while_attempts_remain() {
        let p = policy();
        let e429 = Outcome::Failed(FailureKind::Http429);
        assert_eq!(retry_kind(&p, e429, 1), Some(FailureKind::Http429));
        assert_eq!(retry_kind(&p, e429, 2), Some(FailureKind::Http429));
        assert_eq!(retry_kind(&p, e429, 3), None, "three attempts sent: none left");
        assert_eq!(retry_kind(&p, Outcome::Failed(FailureKind::Decode), 1), None, "not a covered failure");
        assert_eq!(retry_kind(&p, Outcome::Ok, 1), None);
        assert_eq!(retry_kind(&p, Outcome::Cancelled, 1), None);
        assert_eq!(retry_kind(&RetryPolicy::default(), e429, 1), None, "one attempt: no retries");
    }

    #[test]
    fn the_backoff_cap_doubles_up_to_its_maximum() {
        let p = policy(); // 250 ms, at most 10 s
        let full = |earlier| wait(&p, earlier, 1.0, None).0;
        assert_eq!(full(0), Duration::from_millis(250));
        assert_eq!(full(1), Duration::from_millis(500));
        assert_eq!(full(2), Duration::from_secs(1));
        assert_eq!(full(5), Duration::from_secs(8));
        assert_eq!(full(6), Duration::from_secs(10));
        assert_eq!(full(40), Duration::from_secs(10), "no overflow past 2^30");
        // Full jitter: the draw scales the cap.
        assert_eq!(wait(&p, 2, 0.5, None), (Duration::from_millis(500), false));
        assert_eq!(wait(&p, 2, 0.0, None), (Duration::ZERO, false));
    }

    #[test]
    fn the_servers_wait_is_a_floor_under_the_jitter() {
        let p = policy();
        let two = Some(Duration::from_secs(2));
        assert_eq!(wait(&p, 0, 0.5, two), (Duration::from_millis(2125), true));
        // Cut to max_retry_after (60 s by default), never below it.
        assert_eq!(wait(&p, 0, 0.0, Some(Duration::from_secs(600))), (Duration::from_secs(60), true));
        // Not honoured: the jitter alone.
        let ignore = RetryPolicy { respect_retry_after: false, ..policy() };
        assert_eq!(wait(&ignore, 0, 0.5, two), (Duration::from_millis(125), false));
    }

    #[test]
    fn jitter_is_reproducible_per_request() {
        let draws = |i| {
            let mut r = jitter_rng(i);
            (0..4).map(|_| draw(&mut r)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert!(draws(7).iter().all(|d| (0.0..1.0).contains(d)));
    }
}
