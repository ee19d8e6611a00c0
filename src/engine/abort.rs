//! `abort_on_error_rate`: a measured window's outcomes counted as they end, so the
//! stage stops once its error rate passes the threshold — judged only once enough
//! requests have finished that one early storm of fast failures is not read as the rate.

use crate::scenario::Load;

/// Counts a measured phase's outcomes to stop it once its error rate passes the
/// scenario's `abort_on_error_rate`.
pub(super) struct AbortWatch {
    pub threshold: f64,
    /// Finished requests needed before the rate is judged mid-stage.
    min_done: u64,
    /// (finished, failed), under one lock so the rate is never read half-updated.
    counts: std::sync::Mutex<(u64, u64)>,
    /// The rate and the finished count when it tripped.
    tripped: std::sync::Mutex<Option<(f64, u64)>>,
}

/// Fewest finished requests before a stage is judged by its error rate mid-way: one
/// early failure must not abort a run.
const ABORT_MIN_REQUESTS: u64 = 20;

impl AbortWatch {
    /// The watch of a stage with this load: judged once every request in flight could
    /// have ended twice — for an open loop, two seconds of arrivals, not its (large) cap.
    pub fn for_load(threshold: f64, load: Load) -> AbortWatch {
        let in_flight = match load {
            Load::Closed { concurrency } => concurrency,
            Load::Open { rate, max_in_flight, .. } => (rate.ceil() as u32).min(max_in_flight),
        };
        AbortWatch::new(threshold, in_flight)
    }

    fn new(threshold: f64, concurrency: u32) -> AbortWatch {
        // The first requests to finish are the fastest, and failures are often fast
        // (429s, refused connections): judging before every worker has finished two
        // would read a storm into a normal error rate.
        let min_done = ABORT_MIN_REQUESTS.max(2 * u64::from(concurrency));
        AbortWatch { threshold, min_done, counts: Default::default(), tripped: Default::default() }
    }

    /// Counts one outcome; true when this one trips the threshold.
    pub fn count(&self, failed: bool) -> bool {
        let (done, failed) = {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.0 += 1;
            c.1 += u64::from(failed);
            *c
        };
        let rate = failed as f64 / done as f64;
        if done < self.min_done || rate <= self.threshold {
            return false;
        }
        let mut t = self.tripped.lock().unwrap_or_else(|e| e.into_inner());
        t.is_none() && t.replace((rate, done)).is_none()
    }

    /// Whether the phase must end the run: the rate it tripped at, or the whole
    /// phase's when that passes the threshold, with the number of requests judged.
    pub fn verdict(&self) -> Option<(f64, u64, bool)> {
        if let Some((rate, done)) = *self.tripped.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some((rate, done, true));
        }
        let (done, failed) = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let rate = if done == 0 { 0.0 } else { failed as f64 / done as f64 };
        (rate > self.threshold).then_some((rate, done, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_judged_only_after_every_worker_could_finish_twice() {
        // 10-way: 20 finished (the floor) before judging; 50-way: 100.
        let w = AbortWatch::for_load(0.5, Load::Closed { concurrency: 10 });
        assert!((0..19).all(|_| !w.count(true)), "19 failures are not yet a rate");
        assert!(w.count(true), "the 20th trips it");
        assert!(!w.count(true), "it trips once");
        assert_eq!(w.verdict(), Some((1.0, 20, true)), "judged at the rate and count it tripped at");
        let w = AbortWatch::for_load(0.5, Load::Closed { concurrency: 50 });
        assert!((0..99).all(|_| !w.count(true)));
        assert!(w.count(true));
        // Open loop: two seconds of arrivals, capped by max_in_flight.
        let open = |rate, max_in_flight| Load::Open { rate, arrival: crate::scenario::Arrival::Constant, max_in_flight, seed: 0 };
        assert_eq!(AbortWatch::for_load(0.5, open(40.0, 1000)).min_done, 80);
        assert_eq!(AbortWatch::for_load(0.5, open(40.0, 15)).min_done, 30);
        assert_eq!(AbortWatch::for_load(0.5, open(0.5, 1000)).min_done, ABORT_MIN_REQUESTS);
    }

    #[test]
    fn a_rate_at_the_threshold_goes_on_and_the_end_judges_the_whole_window() {
        let w = AbortWatch::for_load(0.25, Load::Closed { concurrency: 1 });
        // Every 4th fails: the rate reaches the threshold, never passes it.
        for i in 0..40 {
            assert!(!w.count(i % 4 == 3), "request {i}");
        }
        assert_eq!(w.verdict(), None);
        // A window that ends above the threshold without tripping mid-way (too few to
        // judge) is judged at its end.
        let w = AbortWatch::for_load(0.25, Load::Closed { concurrency: 1 });
        assert!(!w.count(true) && !w.count(false));
        assert_eq!(w.verdict(), Some((0.5, 2, false)));
        assert_eq!(AbortWatch::for_load(0.25, Load::Closed { concurrency: 1 }).verdict(), None, "nothing finished");
    }
}
