//! A latency distribution: an HDR histogram (1 µs … 1 h) with exact sum, sum of
//! squares, min and max beside it, so mean and stddev are exact and merges lossless.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histograms hold: one hour, in microseconds. Longer values are
/// clamped (and still counted), never dropped.
const MAX_US: u64 = 3_600_000_000;

/// A latency distribution: HDR histogram (3 significant figures) plus exact sum, sum of
/// squares, min and max, so mean and stddev are exact, not bucket-rounded.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
    sum_us: f64,
    sum_sq_us: f64,
    min_us: u64,
    max_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds"),
            sum_us: 0.0,
            sum_sq_us: 0.0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

/// Summary of a latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Latency {
    /// A distribution kept to `digits` significant digits (2 = 1 %, 3 = 0.1 %).
    pub fn with_digits(digits: u8) -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, digits).expect("valid bounds"),
            sum_us: 0.0,
            sum_sq_us: 0.0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_US);
        self.hist.saturating_record(us);
        let f = us as f64;
        self.sum_us += f;
        self.sum_sq_us += f * f;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Exact sum of the recorded values, µs (the histogram's is bucket-rounded).
    pub fn sum_us(&self) -> f64 {
        self.sum_us
    }

    /// Exact smallest and largest values recorded, µs; None when empty.
    pub fn range_us(&self) -> Option<(u64, u64)> {
        (self.count() > 0).then_some((self.min_us, self.max_us))
    }

    /// A distribution as a result file carries it: its histogram and the exact sums,
    /// min and max kept beside it. None when the histogram is not one this keeps.
    pub fn from_parts(hist: Histogram<u64>, sum_us: f64, sum_sq_us: f64, (min_us, max_us): (u64, u64)) -> Option<Latency> {
        let like = Latency::with_digits(hist.sigfig());
        let fits = hist.low() == like.hist.low() && hist.high() == like.hist.high() && matches!(hist.sigfig(), 2 | 3);
        fits.then_some(Latency { hist, sum_us, sum_sq_us, min_us, max_us })
    }

    /// Exact sum of the squares, µs² (the standard deviation's, kept for merges).
    pub fn sum_sq_us(&self) -> f64 {
        self.sum_sq_us
    }

    /// Whether `other` adds exactly into this (the same range and precision).
    pub fn same_layout(&self, other: &Latency) -> bool {
        self.hist.sigfig() == other.hist.sigfig() && self.hist.low() == other.hist.low() && self.hist.high() == other.hist.high()
    }

    /// Exact merge: the result is as if every value had been recorded into one.
    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("same bounds");
        self.sum_us += other.sum_us;
        self.sum_sq_us += other.sum_sq_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Value at quantile `q` (0..=1) in ms, from the histogram. Clamped to the exact
    /// min/max, so a bucket's upper edge never reads above the largest value seen.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count() == 0 {
            return 0.0;
        }
        self.hist.value_at_quantile(q).clamp(self.min_us, self.max_us) as f64 / 1000.0
    }

    pub fn mean_ms(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_us / n as f64 / 1000.0)
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        let n = self.count() as f64;
        let mean = self.mean_ms()?;
        let var_us = (self.sum_sq_us / n - (self.sum_us / n).powi(2)).max(0.0);
        Some(LatencySummary {
            mean,
            // min/max are exact, percentiles are histogram values (within 0.1 %).
            min: self.min_us as f64 / 1000.0,
            max: self.max_us as f64 / 1000.0,
            stddev: var_us.sqrt() / 1000.0,
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_exact_for_mean_min_max() {
        let mut l = Latency::default();
        for ms in [10, 20, 30, 40] {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary().unwrap();
        assert_eq!(s.mean, 25.0);
        assert_eq!((s.min, s.max), (10.0, 40.0));
        assert!((s.stddev - 11.180).abs() < 0.01, "{}", s.stddev);
        assert!((s.p50 - 20.0).abs() <= 0.02, "{}", s.p50);
        assert!((s.p99 - 40.0).abs() <= 0.04, "{}", s.p99);
    }

    #[test]
    fn empty_latency_has_no_summary() {
        assert!(Latency::default().summary().is_none());
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (Latency::default(), Latency::default(), Latency::default());
        for i in 1..=1000u64 {
            let d = Duration::from_micros(i * 37 % 5000 + 1);
            if i % 3 == 0 {
                a.record(d)
            } else {
                b.record(d)
            }
            all.record(d);
        }
        a.merge(&b);
        assert_eq!(a.summary(), all.summary());
        assert_eq!(a.histogram(), all.histogram());
    }
}
