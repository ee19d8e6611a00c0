//! The mock's latency curve: measured (in flight, ms) points, e.g. a seed table's rows,
//! read by linear interpolation and flat beyond its ends; its checks and its flag form.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Largest latency knob: one hour, in ms.
pub(super) const MAX_KNOB_MS: f64 = 3_600_000.0;

/// `[[in_flight, ms], …]`, by strictly increasing in-flight count (`latency_curve =
/// [[1, 82], [10, 110]]` in TOML, `--latency-curve 1:82,10:110` as a flag).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct LatencyCurve(pub Vec<[f64; 2]>);

impl<'de> Deserialize<'de> for LatencyCurve {
    /// Points of exactly two numbers: serde's arrays would drop a third unsaid.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LatencyCurve, D::Error> {
        let points = Vec::<Vec<f64>>::deserialize(d)?;
        let pair = |(i, p): (usize, Vec<f64>)| {
            <[f64; 2]>::try_from(p.as_slice())
                .map_err(|_| D::Error::custom(format!("latency_curve point {i} must be [in-flight count, ms], got {} numbers", p.len())))
        };
        points.into_iter().enumerate().map(pair).collect::<Result<_, _>>().map(LatencyCurve)
    }
}

impl LatencyCurve {
    /// The curve's ms at `in_flight` requests: linear between two points, the end
    /// point's value beyond either end. 0 for a curve with no point (problems() names it).
    pub fn at(&self, in_flight: f64) -> f64 {
        let points = &self.0;
        let (Some(first), Some(last)) = (points.first(), points.last()) else { return 0.0 };
        if in_flight <= first[0] {
            return first[1];
        }
        if in_flight >= last[0] {
            return last[1];
        }
        // Clamped: an unchecked, unsorted curve gives a wrong value, never a panic.
        let i = points.partition_point(|p| p[0] <= in_flight).clamp(1, points.len() - 1);
        let ([x0, y0], [x1, y1]) = (points[i - 1], points[i]);
        y0 + (y1 - y0) * (in_flight - x0) / (x1 - x0)
    }

    /// Its lowest ms, the bound for `jitter_ms`.
    pub fn min_ms(&self) -> f64 {
        self.0.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min)
    }

    /// Problems with the points, each naming `latency_curve`.
    pub fn problems(&self) -> Vec<String> {
        if self.0.is_empty() {
            return vec!["latency_curve needs at least one [in-flight count, ms] point".to_string()];
        }
        let mut out = Vec::new();
        for (i, &[n, ms]) in self.0.iter().enumerate() {
            if !(n.is_finite() && n >= 1.0) {
                out.push(format!("latency_curve point {i}: the in-flight count must be at least 1, got {n}"));
            }
            if !(ms.is_finite() && (0.0..=MAX_KNOB_MS).contains(&ms)) {
                out.push(format!("latency_curve point {i}: ms must be between 0 and {MAX_KNOB_MS} (one hour), got {ms}"));
            }
        }
        for (i, w) in self.0.windows(2).enumerate() {
            // NaN compares as nothing, so it fails here too (and is named above).
            if w[1][0].partial_cmp(&w[0][0]) != Some(std::cmp::Ordering::Greater) {
                out.push(format!(
                    "latency_curve points must be sorted by strictly increasing in-flight count: point {} ({}) follows {}",
                    i + 1,
                    w[1][0],
                    w[0][0]
                ));
            }
        }
        out
    }
}

impl std::str::FromStr for LatencyCurve {
    type Err = String;
    /// `IN_FLIGHT:MS,…`, for `llmload mock --latency-curve 1:82,10:110`; problems()
    /// checks the values.
    fn from_str(s: &str) -> Result<LatencyCurve, String> {
        let point = |p: &str| -> Result<[f64; 2], String> {
            let (n, ms) = p.split_once(':').ok_or_else(|| format!("expected IN_FLIGHT:MS, e.g. 10:110, got {p:?}"))?;
            let num = |v: &str| v.trim().parse::<f64>().map_err(|_| format!("{v:?} in {p:?} is not a number"));
            Ok([num(n)?, num(ms)?])
        };
        s.split(',').filter(|p| !p.trim().is_empty()).map(point).collect::<Result<Vec<_>, _>>().map(LatencyCurve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> LatencyCurve {
        LatencyCurve(vec![[1.0, 82.0], [10.0, 110.0], [20.0, 120.0], [50.0, 180.0]])
    }

    #[test]
    fn the_curve_interpolates_and_is_flat_beyond_its_ends() {
        let c = seed();
        for (n, ms) in [(0.0, 82.0), (1.0, 82.0), (5.5, 96.0), (10.0, 110.0), (15.0, 115.0), (35.0, 150.0), (50.0, 180.0), (100.0, 180.0)] {
            assert!((c.at(n) - ms).abs() < 1e-9, "at {n}: {} not {ms}", c.at(n));
        }
        assert_eq!(LatencyCurve(vec![[4.0, 30.0]]).at(1.0), 30.0);
        assert_eq!(LatencyCurve(vec![[4.0, 30.0]]).at(9.0), 30.0);
        assert_eq!(c.min_ms(), 82.0);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn bad_curves_are_named() {
        let p = |points: Vec<[f64; 2]>| LatencyCurve(points).problems().join("; ");
        assert_eq!(p(vec![]), "latency_curve needs at least one [in-flight count, ms] point");
        assert_eq!(p(vec![[0.0, 5.0]]), "latency_curve point 0: the in-flight count must be at least 1, got 0");
        assert_eq!(
            p(vec![[1.0, -1.0], [2.0, f64::INFINITY]]),
            "latency_curve point 0: ms must be between 0 and 3600000 (one hour), got -1; \
             latency_curve point 1: ms must be between 0 and 3600000 (one hour), got inf"
        );
        assert_eq!(
            p(vec![[1.0, 5.0], [10.0, 6.0], [10.0, 7.0]]),
            "latency_curve points must be sorted by strictly increasing in-flight count: point 2 (10) follows 10"
        );
        assert!(p(vec![[5.0, 5.0], [f64::NAN, 6.0]]).contains("point 1: the in-flight count must be at least 1, got NaN"));
    }

    #[test]
    fn curves_parse_from_flags_and_toml() {
        assert_eq!("1:82, 10:110,20:120,50:180".parse::<LatencyCurve>(), Ok(seed()));
        assert!("1=82".parse::<LatencyCurve>().unwrap_err().contains("expected IN_FLIGHT:MS"));
        assert!("1:fast".parse::<LatencyCurve>().unwrap_err().contains("\"fast\" in \"1:fast\" is not a number"));
        #[derive(Deserialize)]
        struct T {
            latency_curve: LatencyCurve,
        }
        let t: T = toml::from_str("latency_curve = [[1, 82], [10, 110.0], [20, 120], [50, 180]]").unwrap();
        assert_eq!(t.latency_curve, seed());
        assert_eq!(serde_json::to_string(&t.latency_curve).unwrap(), "[[1.0,82.0],[10.0,110.0],[20.0,120.0],[50.0,180.0]]");
        let e = toml::from_str::<T>("latency_curve = [[1, 82], [10, 110, 3]]").err().unwrap().to_string();
        assert!(e.contains("latency_curve point 1 must be [in-flight count, ms], got 3 numbers"), "{e}");
    }
}
