//! Per-second time series of a stage: what happened in each second since it started,
//! warmup seconds included (and marked), so a plot shows the whole stage; each
//! second's latency histograms are also the batches of the stage's confidence
//! intervals (`report::ci`).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::info::Part;
use super::latency::Latency;
use crate::model::{Outcome, RequestRecord};

/// One second of a stage, by when requests ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the stage started (warmup and ramp included).
    pub t_s: u32,
    /// Warmup and ramp requests that ended in this second: outside every other figure.
    pub warmup: u64,
    /// Mean e2e of the successful ones, ms (what `warmup = "auto"` watches settle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_ms: Option<f64>,
    /// Cooldown requests (sent after the window) that ended in this second: the same.
    pub cooldown: u64,
    /// Measured requests that ended in this second: ok, failed (errors) or cancelled.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub output_tokens: u64,
    /// Most measured requests in flight seen when one ended in this second.
    pub in_flight: u64,
    /// e2e of the second's successful measured requests (2 significant digits).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// That second's e2e histogram, µs, HdrHistogram V2 + deflate in base64 (`hdr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_us: Option<String>,
    /// Streams: that second's TTFT and per-request ITL histograms, the same way (the
    /// batches of their confidence intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_us: Option<String>,
}

impl SecondStats {
    /// Second `t_s` with nothing in it.
    pub fn empty(t_s: u32) -> SecondStats {
        SecondStats {
            t_s,
            warmup: 0,
            warmup_ms: None,
            cooldown: 0,
            requests: 0,
            ok: 0,
            errors: 0,
            output_tokens: 0,
            in_flight: 0,
            p50_ms: None,
            p99_ms: None,
            e2e_us: None,
            ttft_us: None,
            itl_us: None,
        }
    }

    fn with_quantiles(mut self, lat: &Second) -> SecondStats {
        let encoded = |l: &Latency| (l.count() > 0).then(|| super::hdr::encode(l.histogram()));
        if lat.e2e.count() > 0 {
            self.p50_ms = Some(lat.e2e.quantile_ms(0.5));
            self.p99_ms = Some(lat.e2e.quantile_ms(0.99));
        }
        (self.e2e_us, self.ttft_us, self.itl_us) = (encoded(&lat.e2e), encoded(&lat.ttft), encoded(&lat.itl));
        self.warmup_ms = (lat.warm_ok > 0).then(|| (lat.warm_sum_ms / lat.warm_ok as f64 * 100.0).round() / 100.0);
        self
    }
}

/// The running second's latencies (2 significant digits).
#[derive(Debug, Clone)]
struct Second {
    e2e: Latency,
    ttft: Latency,
    itl: Latency,
    /// The warmup's successes: their e2e summed, ms, and how many.
    warm_sum_ms: f64,
    warm_ok: u64,
}

impl Default for Second {
    fn default() -> Second {
        Second { e2e: Latency::with_digits(2), ttft: Latency::with_digits(2), itl: Latency::with_digits(2), warm_sum_ms: 0.0, warm_ok: 0 }
    }
}

/// One entry per second from the stage's start, empty seconds included. The closed
/// seconds are shared, so the live view's copy every 100 ms costs a pointer.
#[derive(Debug, Clone, Default)]
pub struct Series {
    start: Option<Instant>,
    current: Option<(SecondStats, Second)>,
    closed: Arc<Vec<SecondStats>>,
}

impl Series {
    pub fn start(&mut self, at: Instant) {
        self.start = Some(at);
    }

    /// How long after the stage's start `at` is.
    pub fn since_start(&self, at: Instant) -> Option<std::time::Duration> {
        self.start.map(|s| at.saturating_duration_since(s))
    }

    /// Counts a finished request into the second it ended in.
    pub fn record(&mut self, now: Instant, part: Part, rec: &RequestRecord, output_tokens: u64, in_flight: u64) {
        let t = now.saturating_duration_since(self.start.unwrap_or(now)).as_secs().min(u64::from(u32::MAX)) as u32;
        if self.current.as_ref().is_some_and(|(s, _)| s.t_s != t) {
            let (s, lat) = self.current.take().expect("checked above");
            Arc::make_mut(&mut self.closed).push(s.with_quantiles(&lat));
        }
        if self.current.is_none() {
            // Seconds in which nothing ended are kept, empty: a stall shows as a gap.
            let next = self.closed.last().map_or(0, |s| s.t_s + 1);
            if next < t {
                Arc::make_mut(&mut self.closed).extend((next..t).map(SecondStats::empty));
            }
            self.current = Some((SecondStats::empty(t), Second::default()));
        }
        let (s, lat) = self.current.as_mut().expect("set above");
        match part {
            Part::Warmup => {
                if rec.outcome == Outcome::Ok {
                    lat.warm_sum_ms += rec.latency.as_secs_f64() * 1e3;
                    lat.warm_ok += 1;
                }
                return s.warmup += 1;
            }
            Part::Cooldown => return s.cooldown += 1,
            Part::Window => {}
        }
        s.requests += 1;
        s.in_flight = s.in_flight.max(in_flight);
        match rec.outcome {
            Outcome::Ok => {
                s.ok += 1;
                s.output_tokens += output_tokens;
                lat.e2e.record(rec.latency);
                if let Some(t) = rec.ttft {
                    lat.ttft.record(t);
                }
                if let Some(itl) = rec.itl(output_tokens) {
                    lat.itl.record(itl);
                }
            }
            Outcome::Failed(_) => s.errors += 1,
            Outcome::Cancelled => {}
        }
    }

    /// The seconds that have closed (every one but the running one).
    pub fn closed(&self) -> &[SecondStats] {
        &self.closed
    }

    /// Every second so far, the running one included.
    pub fn seconds(&self) -> Vec<SecondStats> {
        let mut out = (*self.closed).clone();
        if let Some((s, lat)) = &self.current {
            out.push(s.clone().with_quantiles(lat));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(ms: u64, ok: bool) -> RequestRecord {
        let outcome = if ok { Outcome::Ok } else { Outcome::Failed(crate::model::FailureKind::Http5xx) };
        RequestRecord { outcome, latency: Duration::from_millis(ms), ..RequestRecord::default() }
    }

    #[test]
    fn requests_land_in_the_second_they_ended() {
        let t0 = Instant::now();
        let mut s = Series::default();
        s.start(t0);
        s.record(t0 + Duration::from_millis(100), Part::Warmup, &rec(10, true), 5, 0);
        s.record(t0 + Duration::from_millis(1100), Part::Window, &rec(20, true), 7, 3);
        // The ramp's last request ends in the same second as the first measured ones.
        s.record(t0 + Duration::from_millis(1300), Part::Warmup, &rec(10, true), 5, 0);
        s.record(t0 + Duration::from_millis(1900), Part::Window, &rec(40, false), 0, 2);
        s.record(t0 + Duration::from_millis(3500), Part::Window, &rec(30, true), 1, 1);
        s.record(t0 + Duration::from_millis(3600), Part::Cooldown, &rec(30, true), 1, 1);
        let secs = s.seconds();
        assert_eq!(
            secs.iter().map(|x| (x.t_s, x.warmup, x.requests, x.ok, x.errors, x.cooldown)).collect::<Vec<_>>(),
            [(0, 1, 0, 0, 0, 0), (1, 1, 2, 1, 1, 0), (2, 0, 0, 0, 0, 0), (3, 0, 1, 1, 0, 1)],
            "one entry per second, warmup counted apart"
        );
        assert_eq!((secs[1].output_tokens, secs[1].in_flight), (7, 3));
        assert_eq!(secs[1].p50_ms, Some(20.0), "only measured successes carry latency");
        assert_eq!((secs[0].warmup_ms, secs[1].warmup_ms), (Some(10.0), Some(10.0)), "the warmup's mean apart");
        assert_eq!(secs[2].p50_ms, None, "a second in which nothing ended is kept, empty");
        assert_eq!(secs[3].p99_ms, Some(30.0), "the running second is reported too");
    }
}
