//! A token-length distribution (input or output tokens per request): an HDR histogram
//! (1 … 16M tokens, 2 significant figures: 1 %, ample for lengths, and small to copy
//! into every snapshot) with the exact sum, min and max beside it.

use hdrhistogram::Histogram;

/// Longest length held; longer ones are clamped (and still counted).
const MAX_TOKENS: u64 = 1 << 24;
/// Largest value of a [`Lengths::wide`] (pixels, bytes).
const MAX_WIDE: u64 = 1 << 40;

#[derive(Debug, Clone)]
pub struct Lengths {
    hist: Histogram<u64>,
    sum: u64,
    min: u64,
    max: u64,
    /// Zero-length values: the histogram holds 1 and up, so zeros are counted apart.
    zeros: u64,
}

impl Default for Lengths {
    fn default() -> Self {
        Self { hist: Histogram::new_with_bounds(1, MAX_TOKENS, 2).expect("valid bounds"), sum: 0, min: u64::MAX, max: 0, zeros: 0 }
    }
}

/// Summary of a length distribution, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LengthSummary {
    pub mean: f64,
    pub min: u64,
    pub max: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
}

impl Lengths {
    /// For counts beyond token lengths (pixels, bytes), up to 2^40.
    pub fn wide() -> Lengths {
        Self { hist: Histogram::new_with_bounds(1, MAX_WIDE, 2).expect("valid bounds"), ..Self::default() }
    }

    pub fn record(&mut self, n: u64) {
        let n = n.min(self.hist.high());
        if n == 0 {
            self.zeros += 1;
        } else {
            self.hist.saturating_record(n);
        }
        self.sum += n;
        self.min = self.min.min(n);
        self.max = self.max.max(n);
    }

    pub fn count(&self) -> u64 {
        self.hist.len() + self.zeros
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Zero lengths, counted beside the histogram (which holds 1 and up).
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    /// The histogram of the non-zero lengths (the dashboard draws it).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Exact smallest and largest lengths; None when empty.
    pub fn range(&self) -> Option<(u64, u64)> {
        (self.count() > 0).then_some((self.min, self.max))
    }

    /// Exact merge.
    /// Token lengths as a result file carries them (histogram, exact sum, min, max and
    /// zeros beside it). None when the histogram is not one this keeps.
    pub fn from_parts(hist: Histogram<u64>, sum: u64, (min, max): (u64, u64), zeros: u64) -> Option<Lengths> {
        let fits = [Lengths::default(), Lengths::wide()]
            .iter()
            .any(|like| hist.low() == like.hist.low() && hist.high() == like.hist.high() && hist.sigfig() == like.hist.sigfig());
        fits.then_some(Lengths { hist, sum, min, max, zeros })
    }

    /// Both hold the same range (token lengths, or wide counts): only these merge.
    pub fn same_shape(&self, other: &Lengths) -> bool {
        self.hist.high() == other.hist.high()
    }

    pub fn merge(&mut self, other: &Lengths) {
        self.hist.add(&other.hist).expect("same bounds");
        self.sum += other.sum;
        self.zeros += other.zeros;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum as f64 / n as f64)
    }

    /// Length at quantile `q`, within the exact min and max.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        if self.zeros == 0 {
            return self.hist.value_at_quantile(q).clamp(self.min, self.max);
        }
        // The zeros sit below every histogram value: walk the counts to the rank.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank <= self.zeros {
            return 0;
        }
        let mut seen = self.zeros;
        for v in self.hist.iter_recorded() {
            seen += v.count_at_value();
            if seen >= rank {
                return self.hist.highest_equivalent(v.value_iterated_to()).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Option<LengthSummary> {
        Some(LengthSummary {
            mean: self.mean()?,
            min: self.min,
            max: self.max,
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_exact_where_it_can_be() {
        let mut l = Lengths::default();
        assert!(l.summary().is_none());
        for n in [0, 10, 20, 30, 1000] {
            l.record(n);
        }
        let s = l.summary().unwrap();
        assert_eq!((s.min, s.max, s.mean), (0, 1000, 212.0));
        assert_eq!((s.p50, s.p99), (20, 1000));
        // The median of 1..=29 is 15 (a rank rounded once, not twice).
        let mut odd = Lengths::default();
        (1..=29).for_each(|n| odd.record(n));
        assert_eq!((odd.quantile(0.5), odd.quantile(1.0), odd.quantile(0.0)), (15, 29, 1));
        let mut other = Lengths::default();
        other.record(5);
        l.merge(&other);
        assert_eq!((l.count(), l.sum(), l.quantile(0.0)), (6, 1065, 0));
    }
}
