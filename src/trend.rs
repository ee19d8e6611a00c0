//! How a stage's per-second series behaves over time: where its start-up transient
//! ends (MSER truncation, for `warmup = "auto"`) and whether it climbs without bound (a
//! least-squares slope test, for `stop_on_saturation`). Pure arithmetic on series.
//!
//! - **MSER** (White 1997, "An effective truncation heuristic for bias reduction in
//!   simulation output", *Simulation* 69(6):323–334; as MSER-5 in White, Cobb & Spratt
//!   2000, Proc. WSC): the truncation point `d` minimising the squared standard error of
//!   the mean of what is kept, Σ_{i≥d}(x_i − x̄_d)² / (n−d)². MSER-5 first averages
//!   batches of five observations; here each observation is already one second's
//!   average over its requests, so the second is the batch. A minimum in the second
//!   half of the series means the series is still too short to tell (White's rule).
//! - **Slope**: ordinary least squares of the series on time, with the slope's
//!   t-statistic (the slope over its standard error, n − 2 degrees of freedom).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// MSER's truncation point of `xs`: how many leading observations to drop. `None`
/// while the series cannot tell (fewer than `MIN_SETTLE` observations, or the minimum
/// lies in the second half).
pub fn mser(xs: &[f64]) -> Option<usize> {
    let n = xs.len();
    if n < MIN_SETTLE {
        return None;
    }
    // Suffix sums (Σx, Σx²), so each d costs O(1).
    let mut suffix = vec![(0.0, 0.0); n + 1];
    for i in (0..n).rev() {
        suffix[i] = (suffix[i + 1].0 + xs[i], suffix[i + 1].1 + xs[i] * xs[i]);
    }
    let mut best = (f64::INFINITY, n);
    // At least five kept: a statistic over fewer is noise. Strictly less: among equal
    // statistics (a flat series), the earliest truncation.
    for (d, &(sum, sq)) in suffix.iter().enumerate().take(n - 4) {
        let k = (n - d) as f64;
        let stat = (sq - sum * sum / k).max(0.0) / (k * k);
        if stat < best.0 {
            best = (stat, d);
        }
    }
    // In the first half strictly: a minimum at the middle may still be falling.
    (2 * best.1 < n).then_some(best.1)
}

/// Fewest seconds MSER judges from.
pub const MIN_SETTLE: usize = 10;

/// A least-squares line through `(t, y)` points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub slope: f64,
    /// The slope over its standard error (infinite for a perfect fit that rises).
    pub t: f64,
    /// The line's value at the first and the last point's time.
    pub first: f64,
    pub last: f64,
    pub n: usize,
}

/// The least-squares line through `points`; `None` under three points or a single time.
pub fn line(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let slope = sxy / sxx;
    let rss = (syy - sxy * sxy / sxx).max(0.0);
    let se = (rss / (nf - 2.0) / sxx).sqrt();
    let t = if se > 0.0 { slope / se } else { slope.signum() * f64::INFINITY };
    let at = |x: f64| my + slope * (x - mx);
    Some(Line { slope, t, first: at(points[0].0), last: at(points[n - 1].0), n })
}

/// One-sided Student-t critical value at `level` on `dof` degrees of freedom.
pub fn t_one_sided(level: f64, dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64).map_or(f64::INFINITY, |t| t.inverse_cdf(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mser_drops_a_transient_and_keeps_a_flat_series_whole() {
        // Five cold seconds, then twenty-five steady ones with a little noise.
        let noise = |i: usize| ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        let cold: Vec<f64> = (0..30).map(|i| if i < 5 { 200.0 - 20.0 * i as f64 } else { 100.0 + noise(i) }).collect();
        // The transient and, at most, a few noisy seconds after it (MSER may take them).
        assert!(mser(&cold).is_some_and(|d| (5..=8).contains(&d)), "{:?}", mser(&cold));
        let flat: Vec<f64> = (0..30).map(|i| 100.0 + noise(i)).collect();
        assert!(mser(&flat).is_some_and(|d| d < 15), "{:?}", mser(&flat));
        assert_eq!(mser(&[100.0; 30]), Some(0), "a constant series keeps everything");
        // Still falling at the end: too short to tell.
        let falling: Vec<f64> = (0..30).map(|i| 300.0 - 10.0 * i as f64).collect();
        assert_eq!(mser(&falling), None);
        assert_eq!(mser(&[1.0; 9]), None, "fewer than ten seconds tell nothing");
    }

    #[test]
    fn a_line_fits_and_says_how_sure_its_slope_is() {
        let rising: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 })).collect();
        let l = line(&rising).unwrap();
        assert!((l.slope - 2.0).abs() < 0.1 && l.t > 10.0, "{l:?}");
        assert!(l.last > l.first + 15.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, if i % 2 == 0 { 1.0 } else { -1.0 })).collect();
        assert!(line(&flat).unwrap().t.abs() < 1.0);
        assert!(line(&[(0.0, 1.0), (1.0, 2.0)]).is_none());
        assert!((t_one_sided(0.999, 8) - 4.501).abs() < 1e-2);
    }
}
