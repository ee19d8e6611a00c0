//! Each stage's figures with their confidence intervals (`stages[].ci`), formed from
//! what the result keeps — the stage's histograms and its per-second ones — so a merged
//! run's intervals come from its merged seconds, not from the shards' intervals.
//! Percentiles (e2e, TTFT, ITL): batch means over the window's seconds (Woodruff's
//! interval), or, for a window of fewer than 10 seconds, order statistics taking the
//! requests as independent. Rates and the error rate: batch means over the window's
//! whole seconds. What cannot be bounded is null with the reason (`stats`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageResult;
use crate::metrics::{Latency, SecondStats, hdr};
use crate::stats::{self, Below, Bounds, MIN_BATCHES};

/// A stage's intervals, by the figure's name in the threshold vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageCi {
    /// The confidence level (0.95).
    pub level: f64,
    /// Whole seconds in the window: the batches rates are formed from.
    pub seconds: u32,
    pub figures: BTreeMap<String, Interval>,
}

/// One figure's interval; `lo` and `hi` null, with `why`, when none can be formed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    pub value: f64,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// "batch_means" or "order_statistic"; null with no interval.
    pub method: Option<String>,
    /// Batch means: the batches it was formed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Interval {
    fn of(value: f64, b: Result<Bounds, String>) -> Interval {
        match b {
            Ok(b) => Interval {
                value,
                lo: Some(b.lo),
                hi: Some(b.hi),
                method: Some(b.method.name().into()),
                batches: match b.method {
                    stats::Method::BatchMeans { batches } => Some(batches),
                    stats::Method::OrderStatistic => None,
                },
                why: None,
            },
            Err(why) => Interval { value, lo: None, hi: None, method: None, batches: None, why: Some(why) },
        }
    }

    /// Half its width as a share of the figure: the wider side, for a skewed one.
    pub fn relative(&self) -> Option<f64> {
        let (lo, hi) = (self.lo?, self.hi?);
        (self.value != 0.0).then(|| (hi - self.value).max(self.value - lo).abs() / self.value.abs())
    }
}

/// A latency figure: its names' prefix, the stage's histogram, and a second's.
type Kind<'a> = (&'a str, &'a Option<crate::report::Dist>, fn(&SecondStats) -> &Option<String>);

/// The percentiles given intervals, and their names' stems.
const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")];

/// The stage's intervals at `level`; None for a stage that measured nothing.
pub fn stage_ci(s: &StageResult, level: f64) -> Option<StageCi> {
    s.latency_ms.as_ref()?;
    let (window, full) = (seconds(s, false), seconds(s, true));
    let mut figures = BTreeMap::new();
    let kinds: [Kind<'_>; 3] = [
        ("", &s.histograms.e2e_us, |x| &x.e2e_us),
        ("ttft_", &s.histograms.ttft_us, |x| &x.ttft_us),
        ("itl_", &s.histograms.itl_us, |x| &x.itl_us),
    ];
    for (prefix, whole, per_second) in kinds {
        let Some(lat) = whole.as_ref().and_then(|d| d.latency().ok()) else { continue };
        let seconds: Vec<_> = window.iter().filter_map(|x| per_second(x).as_deref().and_then(|t| hdr::decode(t).ok())).collect();
        for (p, stem) in QUANTILES {
            let b = percentile(&lat, &seconds, p, level);
            figures.insert(format!("{prefix}{stem}_ms"), Interval::of(lat.quantile_ms(p), b));
        }
    }
    let t = &s.throughput;
    let rate =
        |f: fn(&SecondStats) -> u64| stats::group(&full.iter().map(|x| (f(x), 1u64)).collect::<Vec<_>>(), |a, b| (a.0 + b.0, a.1 + b.1));
    let means = |g: Vec<(u64, u64)>| g.iter().map(|(n, secs)| *n as f64 / *secs as f64).collect::<Vec<_>>();
    figures.insert("ok_rps".into(), Interval::of(t.ok_per_s, stats::mean(t.ok_per_s, &means(rate(|x| x.ok)), level)));
    figures.insert(
        "output_tps".into(),
        Interval::of(t.output_tokens_per_s, stats::mean(t.output_tokens_per_s, &means(rate(|x| x.output_tokens)), level)),
    );
    let errors: Vec<Below> = full.iter().map(|x| Below { n: x.ok + x.errors, below: x.errors }).collect();
    let errors = stats::group(&errors, |a, b| Below { n: a.n + b.n, below: a.below + b.below });
    let error_rate = match errors.len() >= MIN_BATCHES {
        true => stats::share(s.error_rate, &errors, level),
        // Too short to batch: the requests taken as independent, as for a percentile.
        false => stats::share_exact(s.requests.failed, s.requests.ok + s.requests.failed, level),
    };
    figures.insert("error_rate".into(), Interval::of(s.error_rate, error_rate));
    Some(StageCi { level, seconds: full.len() as u32, figures })
}

/// The `p`-quantile's interval from the window's seconds' histograms, or the order
/// statistics of the whole when they are too few to batch.
fn percentile(lat: &Latency, seconds: &[hdrhistogram::Histogram<u64>], p: f64, level: f64) -> Result<Bounds, String> {
    let at = |q: f64| lat.quantile_ms(q);
    // Each second's count at or below the estimate, by its own (2-digit) buckets.
    let estimate = (at(p) * 1000.0) as u64;
    let below: Vec<Below> = seconds.iter().map(|h| Below { n: h.len(), below: h.count_between(0, estimate) }).collect();
    let batches = stats::group(&below, |a, b| Below { n: a.n + b.n, below: a.below + b.below });
    match batches.len() >= MIN_BATCHES {
        true => stats::quantile(p, level, &batches, at),
        false => stats::order_statistic(p, level, lat.count(), at),
    }
}

/// The window's seconds: every one it touched (a percentile's batches, whatever of
/// them it measured), or (`whole`) those wholly inside it — a rate's batches, where a
/// part-second would read as a slow one.
fn seconds(s: &StageResult, whole: bool) -> Vec<&SecondStats> {
    let from = s.window_offset_s.unwrap_or(0.0);
    let to = from + s.wall_time_s;
    let inside = |t: f64| match whole {
        true => t >= from && t + 1.0 <= to,
        false => t + 1.0 > from && t < to,
    };
    s.series.iter().filter(|x| inside(f64::from(x.t_s))).collect()
}

/// How a stage that ran `until` its figures were known ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UntilResult {
    /// Every goal's interval was within its share before `max`.
    pub converged: bool,
    /// When it was: seconds into the window, and requests started by then.
    pub after_s: Option<f64>,
    pub requests: Option<u64>,
    pub max_s: f64,
    /// By figure: the share asked for, and the one its final interval reached (null:
    /// unbounded).
    pub figures: BTreeMap<String, UntilFigure>,
    /// In words: "converged after 74 s, 21,480 requests" or "did not converge in 10 m:
    /// p99_ms ±7.9 %".
    pub said: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UntilFigure {
    pub within: f64,
    pub confidence: f64,
    pub reached: Option<f64>,
}

/// Each goal's interval, as `s`'s figures give it now: the share its half-width is of
/// the figure (None: unbounded, or the figure unknown). `batched`: only an interval of
/// batch means counts — a stage is not ended on one that takes its requests as
/// independent.
pub fn reached(s: &StageResult, spec: &crate::model::UntilSpec, batched: bool) -> Vec<Option<f64>> {
    // The stage's own intervals where their level is the goal's: not formed twice.
    let mut by_level: Vec<(f64, Option<StageCi>)> = s.ci.iter().map(|c| (c.level, Some(c.clone()))).collect();
    spec.goals
        .iter()
        .map(|g| {
            let ci = match by_level.iter().find(|(l, _)| *l == g.confidence) {
                Some((_, ci)) => ci.clone(),
                None => {
                    let ci = stage_ci(s, g.confidence);
                    by_level.push((g.confidence, ci.clone()));
                    ci
                }
            };
            let batch_means = |i: &&Interval| !batched || i.method.as_deref() == Some("batch_means");
            ci.and_then(|c| c.figures.get(&g.metric).filter(batch_means).and_then(Interval::relative))
        })
        .collect()
}

/// Whether every goal is met by what `reached` said.
pub fn converged(spec: &crate::model::UntilSpec, reached: &[Option<f64>]) -> bool {
    spec.goals.iter().zip(reached).all(|(g, r)| r.is_some_and(|r| r <= g.within))
}

/// The stage's `until` verdict from its final figures; `when`: the seconds into the
/// window and requests started when every goal was met, if they were.
pub fn until_result(s: &StageResult, spec: &crate::model::UntilSpec, when: Option<(f64, u64)>) -> UntilResult {
    let reached = reached(s, spec, false);
    let figures = spec
        .goals
        .iter()
        .zip(&reached)
        .map(|(g, r)| (g.metric.clone(), UntilFigure { within: g.within, confidence: g.confidence, reached: *r }))
        .collect();
    let max_s = spec.max.as_secs_f64();
    let said = match when {
        Some((after, n)) => format!("converged after {}, {n} requests", super::fmt_secs(after)),
        None => {
            let short: Vec<String> = spec
                .goals
                .iter()
                .zip(&reached)
                .filter(|(g, r)| !r.is_some_and(|r| r <= g.within))
                .map(|(g, r)| match r {
                    Some(r) => format!("{} ±{:.1} % (asked ±{:.0} %)", g.metric, r * 100.0, g.within * 100.0),
                    None => format!("{} unbounded", g.metric),
                })
                .collect();
            format!("did not converge in {}: {}", super::fmt_secs(s.wall_time_s.min(max_s).max(0.0)), short.join(", "))
        }
    };
    UntilResult { converged: when.is_some(), after_s: when.map(|w| w.0), requests: when.map(|w| w.1), max_s, figures, said }
}
