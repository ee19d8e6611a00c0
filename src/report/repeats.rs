//! `--repeat K`: the whole scenario run K times, each repetition's figures kept, and
//! per stage and figure their mean, standard deviation and the Student-t interval of
//! the mean across repetitions — the noise of a run as a whole (the server's, the
//! client's, the network's), which no interval within one run can see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{RunResult, Verdict, measure};

/// The figures kept of each repetition and spread across them.
pub const FIGURES: [&str; 12] = [
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "ok_rps",
    "output_tps",
    "error_rate",
    "task_p50_ms",
];

/// Every repetition of a `--repeat` run, and the spread of their figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repeats {
    /// Repetitions asked for; `runs` holds those that ran (fewer after a stop).
    pub count: u32,
    pub runs: Vec<Repetition>,
    /// Per stage (by name, in the first repetition's order), each figure's spread.
    pub stages: Vec<StageSpread>,
    /// Which repetitions failed their thresholds, in words ("all 3 repetitions passed").
    pub said: String,
}

/// One repetition: when, how it ended, and its stages' figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repetition {
    /// From 1.
    pub repetition: u32,
    pub started_at: String,
    pub duration_s: f64,
    pub interrupted: bool,
    /// Its thresholds (and every stage having a success) held.
    pub passed: bool,
    /// Each threshold that failed: "stage: p99_ms < 500 (measured 512)".
    pub failed: Vec<String>,
    /// Stage name → figure → value.
    pub stages: BTreeMap<String, BTreeMap<String, f64>>,
}

/// One stage's figures across repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpread {
    pub name: String,
    pub figures: BTreeMap<String, Spread>,
}

/// A figure across the repetitions that have it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub n: u32,
    pub mean: f64,
    /// Sample standard deviation (n − 1); null for one repetition.
    pub sd: Option<f64>,
    /// The 95 % Student-t interval of the mean; null under two repetitions.
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub min: f64,
    pub max: f64,
}

impl Repetition {
    /// Repetition `k` (from 1) as its result says.
    pub fn of(k: u32, r: &RunResult) -> Repetition {
        let verdict = r.verdict.clone().unwrap_or_default();
        let failed = verdict
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| match t.measured {
                Some(m) => format!("{}: {} (measured {})", t.stage, t.threshold, round(m)),
                None => format!("{}: {} (not measured)", t.stage, t.threshold),
            })
            .chain(verdict.stages_without_success.iter().map(|s| format!("{s}: no request succeeded")))
            .collect();
        let stages = r
            .stages
            .iter()
            .map(|s| (s.name.clone(), FIGURES.iter().filter_map(|f| measure(s, f).map(|v| (f.to_string(), round(v)))).collect()))
            .collect();
        Repetition {
            repetition: k,
            started_at: r.started_at.clone(),
            duration_s: r.duration_s,
            interrupted: r.interrupted,
            passed: verdict.passed,
            failed,
            stages,
        }
    }
}

impl Repeats {
    /// The spread of `runs` (in order), `count` having been asked for.
    pub fn of(count: u32, runs: Vec<Repetition>, order: &[String]) -> Repeats {
        let stages = order
            .iter()
            .map(|name| {
                let mut figures = BTreeMap::new();
                for f in FIGURES {
                    let xs: Vec<f64> = runs.iter().filter_map(|r| r.stages.get(name).and_then(|s| s.get(f)).copied()).collect();
                    if let Some(s) = Spread::of(&xs) {
                        figures.insert(f.to_string(), s);
                    }
                }
                StageSpread { name: name.clone(), figures }
            })
            .collect();
        let failed: Vec<String> = runs.iter().filter(|r| !r.passed).map(|r| r.repetition.to_string()).collect();
        let said = match (failed.len(), runs.len()) {
            (0, n) => format!("all {n} repetitions passed"),
            (1, n) => format!("repetition {} of {n} failed its thresholds", failed[0]),
            (_, n) => format!("repetitions {} of {n} failed their thresholds", failed.join(", ")),
        };
        Repeats { count, runs, stages, said }
    }

    /// The repetition whose verdict speaks for the run: the first that failed, else
    /// the first.
    pub fn worst(&self) -> Option<&Repetition> {
        self.runs.iter().find(|r| !r.passed).or(self.runs.first())
    }
}

impl Spread {
    pub fn of(xs: &[f64]) -> Option<Spread> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        let half = sd.map(|sd| crate::stats::t_critical(crate::stats::LEVEL, n - 1) * sd / (n as f64).sqrt());
        let (min, max) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
        Some(Spread {
            n: n as u32,
            mean: round(mean),
            sd: sd.map(round),
            lo: half.map(|h| round(mean - h)),
            hi: half.map(|h| round(mean + h)),
            min,
            max,
        })
    }
}

/// A repeated run as one result: the first repetition's stages (as a run without
/// `--repeat`), the worst repetition's verdict, and every repetition's figures with
/// their spread in `repeats`. None for no repetition.
pub fn combine(mut results: Vec<RunResult>, count: u32) -> Option<RunResult> {
    let runs: Vec<Repetition> = results.iter().enumerate().map(|(i, r)| Repetition::of(i as u32 + 1, r)).collect();
    let verdict: Option<Verdict> =
        results.iter().find(|r| r.verdict.as_ref().is_some_and(|v| !v.passed)).or(results.first())?.verdict.clone();
    let last = results.last()?;
    let (finished_at, interrupted, aborted) = (last.finished_at.clone(), last.interrupted, last.aborted.clone());
    let duration_s = results.iter().map(|r| r.duration_s).sum();
    let mut first = results.swap_remove(0);
    let order: Vec<String> = first.stages.iter().map(|s| s.name.clone()).collect();
    first.repeats = Some(Repeats::of(count, runs, &order));
    (first.verdict, first.finished_at, first.duration_s) = (verdict, finished_at, duration_s);
    (first.interrupted, first.aborted) = (interrupted, aborted);
    Some(first)
}

impl Repeats {
    /// The table a repeated run ends with: per stage, its main figures' mean ± the
    /// interval's half-width, their standard deviation and range; then the verdict.
    pub fn text(&self, format: super::Format) -> String {
        let mut rows = vec![["stage", "figure", "mean", "±95 %", "sd", "min", "max"].map(String::from).to_vec()];
        let fmt = |x: f64| if x.abs() >= 100.0 { format!("{x:.1}") } else { format!("{x:.3}") };
        for s in &self.stages {
            for f in ["p50_ms", "p99_ms", "ttft_p50_ms", "itl_p50_ms", "ok_rps", "output_tps", "error_rate", "task_p50_ms"] {
                let Some(x) = s.figures.get(f) else { continue };
                let half = x.hi.map_or("–".into(), |hi| fmt(hi - x.mean));
                let sd = x.sd.map_or("–".into(), fmt);
                rows.push(vec![s.name.clone(), f.into(), fmt(x.mean), half, sd, fmt(x.min), fmt(x.max)]);
            }
        }
        let mut out = format!("\nacross {} repetitions (of {} asked):\n", self.runs.len(), self.count);
        out.push_str(&super::grid(&rows, format));
        out.push_str(&format!("repeats: {}\n", self.said));
        for r in self.runs.iter().filter(|r| !r.passed) {
            out.push_str(&format!("repetition {}: {}\n", r.repetition, r.failed.join("; ")));
        }
        out
    }
}

fn round(x: f64) -> f64 {
    if x.is_finite() { (x * 1e4).round() / 1e4 } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_mean_its_deviation_and_a_t_interval() {
        let s = Spread::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((s.n, s.mean, s.sd, s.min, s.max), (3, 12.0, Some(2.0), 10.0, 14.0));
        // t(0.975, 2) = 4.303: 12 ± 4.303 × 2 / √3.
        assert!((s.hi.unwrap() - (12.0 + 4.303 * 2.0 / 3f64.sqrt())).abs() < 1e-2, "{s:?}");
        let one = Spread::of(&[5.0]).unwrap();
        assert_eq!((one.sd, one.lo, one.hi), (None, None, None));
        assert!(Spread::of(&[]).is_none());
    }
}
