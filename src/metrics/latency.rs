//! A latency distribution: an HDR histogram (1 µs … 1 h) with exact sum, sum of
//! squares, min and max beside it, so mean and stddev are exact and merges lossless.
//! The histogram is made on the first value: a stage keeps eleven distributions at
//! 3 digits (~190 KB each), and most runs fill only a few (no retries, no limiter, a
//! closed loop, no stream), so an empty one costs nothing to keep or to copy.

use std::sync::OnceLock;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency the histograms hold: one hour, in microseconds. Longer values are
/// clamped (and still counted), never dropped.
const MAX_US: u64 = 3_600_000_000;

/// A latency distribution: HDR histogram (3 significant figures) plus exact sum, sum of
/// squares, min and max, so mean and stddev are exact, not bucket-rounded.
#[derive(Debug, Clone)]
pub struct Latency {
    /// None until the first value.
    hist: Option<Histogram<u64>>,
    digits: u8,
    sum_us: f64,
    sum_sq_us: f64,
    min_us: u64,
    max_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::with_digits(3)
    }
}

fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, digits).expect("valid bounds")
}

/// The empty histogram of each precision, for a distribution with no value yet.
fn empty(digits: u8) -> &'static Histogram<u64> {
    static TWO: OnceLock<Histogram<u64>> = OnceLock::new();
    static THREE: OnceLock<Histogram<u64>> = OnceLock::new();
    match digits {
        2 => TWO.get_or_init(|| histogram(2)),
        _ => THREE.get_or_init(|| histogram(3)),
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
        assert!(matches!(digits, 2 | 3), "2 or 3 significant digits");
        Self { hist: None, digits, sum_us: 0.0, sum_sq_us: 0.0, min_us: u64::MAX, max_us: 0 }
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_US);
        self.hist.get_or_insert_with(|| histogram(self.digits)).saturating_record(us);
        let f = us as f64;
        self.sum_us += f;
        self.sum_sq_us += f * f;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len())
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        self.hist.as_ref().unwrap_or_else(|| empty(self.digits))
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
        let digits = hist.sigfig();
        let fits = matches!(digits, 2 | 3) && hist.low() == empty(digits).low() && hist.high() == empty(digits).high();
        fits.then_some(Latency { hist: Some(hist), digits, sum_us, sum_sq_us, min_us, max_us })
    }

    /// Exact sum of the squares, µs² (the standard deviation's, kept for merges).
    pub fn sum_sq_us(&self) -> f64 {
        self.sum_sq_us
    }

    /// Whether `other` adds exactly into this (the same range and precision).
    pub fn same_layout(&self, other: &Latency) -> bool {
        self.digits == other.digits
    }

    /// Exact merge: the result is as if every value had been recorded into one.
    pub fn merge(&mut self, other: &Latency) {
        if let Some(h) = &other.hist {
            self.hist.get_or_insert_with(|| histogram(self.digits)).add(h).expect("same bounds");
        }
        self.sum_us += other.sum_us;
        self.sum_sq_us += other.sum_sq_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Value at quantile `q` (0..=1) in ms, from the histogram: the middle of the bucket
    /// the quantile falls in (its top edge would read up to a bucket's width high, 0.1 %
    /// at 3 digits), clamped to the exact min/max, so a constant reads as itself and no
    /// figure reads past the values seen.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count() == 0 {
            return 0.0;
        }
        let h = self.histogram();
        let v = h.median_equivalent(h.value_at_quantile(q));
        v.clamp(self.min_us, self.max_us) as f64 / 1000.0
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

    /// The exact value at quantile `q` of sorted values: the one at rank ⌈q·n⌉.
    fn exact(sorted: &[u64], q: f64) -> f64 {
        sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1] as f64 / 1000.0
    }

    /// Percentiles within `bound` (relative) of the exact ones, for a distribution kept
    /// at `digits`; a constant reads as itself.
    fn holds_at(digits: u8, bound: f64) {
        let mut constant = Latency::with_digits(digits);
        (0..30).for_each(|_| constant.record(Duration::from_micros(9_998)));
        let s = constant.summary().unwrap();
        assert_eq!((s.p50, s.p90, s.p99, s.p999), (9.998, 9.998, 9.998, 9.998), "{digits} digits");
        // Uniform 1 µs … 1 s; exponential about 10 ms (a deterministic spread of both).
        let uniform: Vec<u64> = (1..=200_000u64).map(|i| i * 5).collect();
        let exponential: Vec<u64> = (1..=20_000u64).map(|i| (-(1.0 - i as f64 / 20_001.0).ln() * 10_000.0) as u64 + 1).collect();
        // Two values, the lower at the bottom of a bucket (8,192 µs starts a doubling):
        // its bucket's top edge reads 0.09 % high at 3 digits, 0.8 % at 2.
        let two: Vec<u64> = (0..100u64).map(|i| if i < 50 { 8_192 } else { 30_000 }).collect();
        for values in [uniform, exponential, two] {
            let mut l = Latency::with_digits(digits);
            values.iter().for_each(|&us| l.record(Duration::from_micros(us)));
            let mut sorted = values.clone();
            sorted.sort_unstable();
            for q in [0.5, 0.9, 0.99, 0.999] {
                let (got, want) = (l.quantile_ms(q), exact(&sorted, q));
                assert!((got - want).abs() <= bound * want, "{digits} digits, p{}: {got} against {want}", q * 100.0);
            }
        }
    }

    #[test]
    fn percentiles_hold_their_precision_and_a_constant_reads_as_itself() {
        // A bucket at 3 digits is at most 0.1 % wide and the middle of it is read: half
        // that (a bucket's top edge would miss this bound).
        holds_at(3, 0.0005);
        // The per-second series and the per-turn figures are kept at 2 digits: 1 %.
        holds_at(2, 0.005);
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
