//! Confidence intervals for a stage's figures. A loaded server's latencies are
//! time-ordered and dependent (a slow second is slow for every request in it), so the
//! usual independent-sample formulas understate the uncertainty. Two methods:
//!
//! - **Batch means** (the simulation literature's standard for a steady-state mean;
//!   Law & Kelton, *Simulation Modeling and Analysis*, §9.5.3): the stage's seconds
//!   grouped into consecutive batches, each batch's figure taken as one observation;
//!   with batches long against the correlation, they are nearly independent, and a
//!   Student-t interval over them holds. For a rate, the batches' rates; for a
//!   percentile, Woodruff's interval (Woodruff 1952, *JASA* 47:635): the share of
//!   samples at or below the estimate is a mean (of an indicator), its standard error
//!   taken from the batches, and the interval is the empirical quantiles at that share
//!   ± the t-scaled error — no density estimate needed, and exact under any monotone
//!   rescaling of the figure.
//! - **Order statistics** (independent samples, for stages too short to batch): the
//!   ranks that bracket the p-quantile with the binomial's probability (exact, so at
//!   least the level; Hahn & Meeker, *Statistical Intervals*, §5.2).
//!
//! Either refuses what it cannot bound: too few batches, or too few samples beyond the
//! quantile — a two-sided 95 % interval for a p99 needs 368 samples even when they are
//! independent — is an error saying why, never a made-up width.

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

/// The confidence level a figure's interval is given at unless asked otherwise.
pub const LEVEL: f64 = 0.95;

/// Fewest batches a batch-means interval is formed from.
pub const MIN_BATCHES: usize = 10;

/// Most batches: seconds beyond it are grouped, so each batch is long against the
/// correlation between seconds.
pub const MAX_BATCHES: usize = 20;

/// How an interval was formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Over `batches` consecutive groups of the stage's seconds.
    BatchMeans { batches: u32 },
    /// From the order statistics of samples taken as independent.
    OrderStatistic,
}

impl Method {
    /// Its name in a result.
    pub fn name(self) -> &'static str {
        match self {
            Method::BatchMeans { .. } => "batch_means",
            Method::OrderStatistic => "order_statistic",
        }
    }
}

/// An interval and how it was formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lo: f64,
    pub hi: f64,
    pub method: Method,
}

/// One batch of a percentile's samples: how many, and how many at or below the
/// estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Below {
    pub n: u64,
    pub below: u64,
}

/// Student's t quantile for a two-sided `level` interval on `dof` degrees of freedom.
pub fn t_critical(level: f64, dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.5 + level / 2.0))
}

/// Groups `items` (time-ordered) into at most [`MAX_BATCHES`] consecutive groups of
/// near-equal length, adding each group's members with `add`.
pub fn group<T: Copy>(items: &[T], add: impl Fn(T, T) -> T) -> Vec<T> {
    let k = items.len().min(MAX_BATCHES);
    (0..k).filter_map(|b| items[b * items.len() / k..(b + 1) * items.len() / k].iter().copied().reduce(&add)).collect()
}

/// A mean's interval from its batches' means (a rate: each batch's per second), about
/// `center` (the figure itself, over the whole stage).
pub fn mean(center: f64, batches: &[f64], level: f64) -> Result<Bounds, String> {
    let b = batches.len();
    if b < MIN_BATCHES {
        return Err(format!("{b} batches of whole seconds, fewer than {MIN_BATCHES}"));
    }
    let m = batches.iter().sum::<f64>() / b as f64;
    let var = batches.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (b - 1) as f64;
    let half = t_critical(level, b - 1) * (var / b as f64).sqrt();
    Ok(Bounds { lo: center - half, hi: center + half, method: Method::BatchMeans { batches: b as u32 } })
}

/// The fewest independent samples whose order statistics bound the `p`-quantile on both
/// sides at `level` (368 for a 95 % p99, 6 for a p50).
pub fn fewest(p: f64, level: f64) -> u64 {
    let tail = (1.0 - level) / 2.0;
    (tail.ln() / p.max(1.0 - p).ln()).ceil() as u64
}

/// Woodruff's interval for the `p`-quantile over batches: the share at or below the
/// estimate, its standard error from the batches (a ratio estimator: batches may hold
/// different counts), and the quantiles at that share ± t·error (`quantile_at(q)`: the
/// whole stage's value at quantile `q`).
pub fn quantile(p: f64, level: f64, batches: &[Below], quantile_at: impl Fn(f64) -> f64) -> Result<Bounds, String> {
    let b = batches.len();
    let n: u64 = batches.iter().map(|x| x.n).sum();
    if b < MIN_BATCHES {
        return Err(format!("{b} batches of whole seconds, fewer than {MIN_BATCHES}"));
    }
    enough(p, level, n)?;
    let delta = t_critical(level, b - 1) * ratio(batches).1;
    let (lo, hi) = (p - delta, p + delta);
    if hi >= 1.0 || lo <= 0.0 {
        return Err(format!("too few samples beyond the p{} to bound it ({n}, and their batches disagree)", pct(p)));
    }
    Ok(Bounds { lo: quantile_at(lo), hi: quantile_at(hi), method: Method::BatchMeans { batches: b as u32 } })
}

/// The Clopper–Pearson interval of a share of `k` in `n` independent trials (exact:
/// at least the level; the binomial's order statistics, as for a percentile).
pub fn share_exact(k: u64, n: u64, level: f64) -> Result<Bounds, String> {
    if n == 0 {
        return Err("no request ended".into());
    }
    let tail = (1.0 - level) / 2.0;
    let beta = |a: f64, b: f64, q: f64| Beta::new(a, b).map_or(f64::NAN, |d| d.inverse_cdf(q));
    let (kf, nf) = (k as f64, n as f64);
    let lo = if k == 0 { 0.0 } else { beta(kf, nf - kf + 1.0, tail) };
    let hi = if k == n { 1.0 } else { beta(kf + 1.0, nf - kf, 1.0 - tail) };
    Ok(Bounds { lo, hi, method: Method::OrderStatistic })
}

/// A share's (a rate of failures) interval from its batches, about `center`.
pub fn share(center: f64, batches: &[Below], level: f64) -> Result<Bounds, String> {
    let b = batches.len();
    if b < MIN_BATCHES {
        return Err(format!("{b} batches of whole seconds, fewer than {MIN_BATCHES}"));
    }
    let half = t_critical(level, b - 1) * ratio(batches).1;
    Ok(Bounds { lo: (center - half).max(0.0), hi: (center + half).min(1.0), method: Method::BatchMeans { batches: b as u32 } })
}

/// The share `Σbelow / Σn` over batches, and its standard error as a ratio estimator
/// (batches may hold different counts).
fn ratio(batches: &[Below]) -> (f64, f64) {
    let b = batches.len();
    let n: u64 = batches.iter().map(|x| x.n).sum();
    if n == 0 || b < 2 {
        return (0.0, 0.0);
    }
    let share = batches.iter().map(|x| x.below).sum::<u64>() as f64 / n as f64;
    let mean_n = n as f64 / b as f64;
    let var = batches.iter().map(|x| (x.below as f64 - share * x.n as f64).powi(2)).sum::<f64>() / (b * (b - 1)) as f64 / (mean_n * mean_n);
    (share, var.sqrt())
}

/// The order-statistic interval for the `p`-quantile of `n` independent samples: the
/// ranks `l` < `u` with P(l ≤ K < u) ≥ `level` for K ~ Binomial(n, p), the samples at
/// or below the true quantile (`quantile_at(q)` gives the sample of rank ⌈q·n⌉).
pub fn order_statistic(p: f64, level: f64, n: u64, quantile_at: impl Fn(f64) -> f64) -> Result<Bounds, String> {
    enough(p, level, n)?;
    let k = Binomial::new(p, n).map_err(|e| e.to_string())?;
    let tail = (1.0 - level) / 2.0;
    // The largest l with P(K < l) ≤ tail, and the smallest u with P(K ≥ u) ≤ tail.
    let l = k.inverse_cdf(tail);
    let u = k.inverse_cdf(1.0 - tail) + 1;
    if l == 0 || u > n {
        return Err(format!("too few samples beyond the p{} to bound it ({n})", pct(p)));
    }
    Ok(Bounds { lo: quantile_at(l as f64 / n as f64), hi: quantile_at(u as f64 / n as f64), method: Method::OrderStatistic })
}

/// Refuses a percentile that `n` samples cannot bound even independent.
fn enough(p: f64, level: f64, n: u64) -> Result<(), String> {
    let need = fewest(p, level);
    match n >= need {
        true => Ok(()),
        false => Err(format!("{n} samples: a {}% interval for a p{} needs at least {need}", pct(level), pct(p))),
    }
}

/// 0.99 → "99", 0.999 → "99.9".
fn pct(x: f64) -> String {
    let s = format!("{:.1}", x * 100.0);
    s.trim_end_matches(".0").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fewest_samples_are_the_known_ones() {
        assert_eq!(fewest(0.99, 0.95), 368);
        assert_eq!(fewest(0.5, 0.95), 6);
        assert!((t_critical(0.95, 19) - 2.093).abs() < 1e-3);
    }

    #[test]
    fn the_order_statistic_ranks_hold_the_level() {
        // n = 100, p = 0.5: the textbook ranks 40 and 61 (Hahn & Meeker's table).
        let at = |q: f64| (q * 100.0).round();
        let b = order_statistic(0.5, 0.95, 100, at).unwrap();
        assert_eq!((b.lo, b.hi), (40.0, 61.0));
        assert!(order_statistic(0.99, 0.95, 367, at).is_err());
        assert!(order_statistic(0.99, 0.95, 1000, at).is_ok());
        // No failure in 100: at most 3.6 % at 95 % (the rule of three's 3/n, nearly).
        let b = share_exact(0, 100, 0.95).unwrap();
        assert_eq!(b.lo, 0.0);
        assert!((b.hi - 0.0362).abs() < 1e-3, "{b:?}");
    }

    #[test]
    fn batches_are_grouped_in_order() {
        let g = group(&(1..=40).collect::<Vec<u64>>(), |a, b| a + b);
        assert_eq!(g.len(), MAX_BATCHES);
        assert_eq!((g[0], g[19]), (3, 79));
        assert_eq!(group(&[1u64, 2, 3], |a, b| a + b), vec![1, 2, 3]);
        assert!(mean(1.0, &[1.0; 9], 0.95).is_err());
    }
}
