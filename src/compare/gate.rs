//! Gates of `compare --fail-on`: how far a metric may move from the baseline, e.g.
//! `p99_ms:+10%` (trips when p99 grows by more than 10 %), `ok_rps:-5%` (when successful
//! requests/s fall by more than 5 %), `ttft_p99_ms:+50ms` or `error_rate:+0.01` (by more
//! than that much, in the metric's unit).

use crate::model::threshold::{Metric, metric, metric_names};

/// How far a gate lets a metric move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allow {
    /// A fraction of the baseline: 0.10 for "+10%".
    Relative(f64),
    /// An amount in the metric's unit.
    Absolute(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub metric: &'static Metric,
    /// +1: trips on a rise beyond the allowance; −1: on a fall.
    pub sign: f64,
    pub allow: Allow,
    /// As written.
    pub text: String,
}

pub const FORMS: &str = "METRIC:+N% or METRIC:-N% (relative to the baseline), METRIC:+N or METRIC:-N (in the metric's unit; a trailing ms is allowed), e.g. p99_ms:+10%, ok_rps:-5%, ttft_p99_ms:+50ms, error_rate:+0.01";

impl Gate {
    pub fn parse(text: &str) -> Result<Gate, String> {
        let bad = || format!("--fail-on {text:?}: expected {FORMS}");
        let (name, change) = text.split_once(':').ok_or_else(bad)?;
        let metric = metric(name.trim())
            .ok_or_else(|| format!("--fail-on {text:?}: unknown metric `{}`, expected one of {}", name.trim(), metric_names()))?;
        let change = change.trim();
        let (sign, rest) = match change.as_bytes().first() {
            Some(b'+') => (1.0, &change[1..]),
            Some(b'-') => (-1.0, &change[1..]),
            _ => return Err(bad()),
        };
        let (number, allow): (&str, fn(f64) -> Allow) = match rest.strip_suffix('%') {
            Some(n) => (n, |x| Allow::Relative(x / 100.0)),
            None => (rest.strip_suffix("ms").filter(|_| metric.name.ends_with("_ms")).unwrap_or(rest), Allow::Absolute),
        };
        let x: f64 = number.trim().parse().map_err(|_| bad())?;
        if !x.is_finite() || x < 0.0 {
            return Err(bad());
        }
        Ok(Gate { metric, sign, allow: allow(x), text: text.trim().to_string() })
    }

    /// Whether moving from `base` to `new` trips the gate.
    pub fn trips(&self, base: f64, new: f64) -> bool {
        let moved = (new - base) * self.sign;
        match self.allow {
            Allow::Relative(f) => moved > f * base.abs(),
            Allow::Absolute(a) => moved > a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse_and_trip_in_their_direction() {
        let g = Gate::parse("p99_ms:+10%").unwrap();
        assert_eq!((g.metric.name, g.sign, g.allow), ("p99_ms", 1.0, Allow::Relative(0.1)));
        assert!(g.trips(100.0, 110.1) && !g.trips(100.0, 110.0) && !g.trips(100.0, 50.0));
        let g = Gate::parse("ok_rps:-5%").unwrap();
        assert!(g.trips(100.0, 94.9) && !g.trips(100.0, 95.5) && !g.trips(100.0, 200.0));
        let g = Gate::parse("ttft_p99_ms:+50ms").unwrap();
        assert!(g.trips(100.0, 150.5) && !g.trips(100.0, 149.0));
        let g = Gate::parse("error_rate:+0.01").unwrap();
        assert!(g.trips(0.0, 0.02) && !g.trips(0.0, 0.005));
    }

    #[test]
    fn bad_gates_say_what_is_accepted() {
        for bad in ["p99_ms", "p99_ms:10%", "p99_ms:+x%", "p99_ms:+-5%", "ok_rps:+5ms"] {
            let e = Gate::parse(bad).unwrap_err();
            assert!(e.contains("expected METRIC:+N%"), "{bad}: {e}");
        }
        assert!(Gate::parse("p98_ms:+1%").unwrap_err().contains("unknown metric `p98_ms`, expected one of mean_ms"));
    }
}
