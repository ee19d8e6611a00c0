//! Per-second time series of a stage: what happened in each second since it started,
//! warmup seconds included (and marked), so a plot shows the whole stage.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Latency;
use crate::client::{Outcome, RequestRecord};

/// One second of a stage, by when requests ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the stage started (warmup included).
    pub t_s: u32,
    /// Warmup requests: outside every other figure of the stage.
    pub warmup: bool,
    /// Requests that ended in this second: ok, failed (errors) or cancelled.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub output_tokens: u64,
    /// Most requests in flight seen when one ended in this second (measured window).
    pub in_flight: u64,
    /// e2e of the second's successful requests (2 significant digits).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl SecondStats {
    fn empty(t_s: u32, warmup: bool) -> SecondStats {
        SecondStats { t_s, warmup, requests: 0, ok: 0, errors: 0, output_tokens: 0, in_flight: 0, p50_ms: None, p99_ms: None }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    start: Option<Instant>,
    current: Option<(SecondStats, Latency)>,
    closed: Vec<SecondStats>,
}

impl Series {
    pub fn start(&mut self, at: Instant) {
        self.start = Some(at);
    }

    /// Counts a finished request into the second it ended in.
    pub fn record(&mut self, now: Instant, warmup: bool, rec: &RequestRecord, output_tokens: u64, in_flight: u64) {
        let t = now.saturating_duration_since(self.start.unwrap_or(now)).as_secs().min(u64::from(u32::MAX)) as u32;
        if self.current.as_ref().is_some_and(|(s, _)| s.t_s != t || s.warmup != warmup) {
            self.close();
            // Seconds in which nothing ended are kept, empty: a stall shows as a gap.
            let last = self.closed.last().map_or(t, |s| s.t_s + 1);
            for empty in last..t {
                self.closed.push(SecondStats::empty(empty, warmup));
            }
        }
        let (s, lat) = self.current.get_or_insert_with(|| (SecondStats::empty(t, warmup), Latency::with_digits(2)));
        s.requests += 1;
        s.in_flight = s.in_flight.max(in_flight);
        match rec.outcome {
            Outcome::Ok => {
                s.ok += 1;
                s.output_tokens += output_tokens;
                lat.record(rec.latency);
            }
            Outcome::Failed(_) => s.errors += 1,
            Outcome::Cancelled => {}
        }
    }

    fn close(&mut self) {
        if let Some((mut s, lat)) = self.current.take() {
            if lat.count() > 0 {
                s.p50_ms = Some(lat.quantile_ms(0.5));
                s.p99_ms = Some(lat.quantile_ms(0.99));
            }
            self.closed.push(s);
        }
    }

    /// Every second so far, the running one included.
    pub fn seconds(&self) -> Vec<SecondStats> {
        let mut out = self.closed.clone();
        if let Some((s, lat)) = &self.current {
            let mut s = s.clone();
            if lat.count() > 0 {
                s.p50_ms = Some(lat.quantile_ms(0.5));
                s.p99_ms = Some(lat.quantile_ms(0.99));
            }
            out.push(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(ms: u64, ok: bool) -> RequestRecord {
        let outcome = if ok { Outcome::Ok } else { Outcome::Failed(crate::client::FailureKind::Http5xx) };
        RequestRecord { outcome, latency: Duration::from_millis(ms), ..RequestRecord::default() }
    }

    #[test]
    fn requests_land_in_the_second_they_ended() {
        let t0 = Instant::now();
        let mut s = Series::default();
        s.start(t0);
        s.record(t0 + Duration::from_millis(100), true, &rec(10, true), 5, 0);
        s.record(t0 + Duration::from_millis(1100), false, &rec(20, true), 7, 3);
        s.record(t0 + Duration::from_millis(1900), false, &rec(40, false), 0, 2);
        s.record(t0 + Duration::from_millis(3500), false, &rec(30, true), 1, 1);
        let secs = s.seconds();
        assert_eq!(
            secs.iter().map(|x| (x.t_s, x.warmup, x.requests, x.ok, x.errors)).collect::<Vec<_>>(),
            [(0, true, 1, 1, 0), (1, false, 2, 1, 1), (2, false, 0, 0, 0), (3, false, 1, 1, 0)]
        );
        assert_eq!((secs[1].output_tokens, secs[1].in_flight), (7, 3));
        assert_eq!(secs[1].p50_ms, Some(20.0), "only successes carry latency");
        assert_eq!(secs[2].p50_ms, None, "a second in which nothing ended is kept, empty");
        assert_eq!(secs[3].p99_ms, Some(30.0), "the running second is reported too");
    }
}
