//! Reading a sweep: where throughput stops growing (the knee) and where the SLO breaks,
//! as fields and as one sentence.

use serde::{Deserialize, Serialize};

use super::StageResult;
use crate::scenario::{Sweep, SweepKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResult {
    /// "concurrency" or "rate".
    pub kind: String,
    pub points: Vec<SweepPoint>,
    /// Throughput must grow at least this fraction per doubling, else it has plateaued.
    pub knee_gain: f64,
    /// The smallest point from which throughput grows less than `knee_gain` per
    /// doubling at every later point; null while it still grows at the last point.
    pub knee: Option<Knee>,
    /// With `[slo]`: the points judged against it.
    pub slo: Option<SloVerdict>,
    /// The answer in words, as the table and the dashboard show it.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub stage: String,
    /// Concurrency, or arrivals per second.
    pub load: f64,
    /// Successful requests per second.
    pub throughput: f64,
    pub p99_ms: Option<f64>,
    /// With `[slo]`: share of the point's finished requests meeting every objective.
    pub slo_met: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knee {
    pub stage: String,
    pub load: f64,
    /// The highest throughput from the knee on: the plateau.
    pub throughput: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloVerdict {
    /// Share of requests that must meet every objective.
    pub quantile: f64,
    /// The objectives, in words.
    pub objectives: String,
    /// The last point of the unbroken run of points meeting it, from the first.
    pub largest_meeting: Option<String>,
    pub largest_meeting_load: Option<f64>,
    /// The first point that does not meet it.
    pub first_breaking: Option<String>,
    pub first_breaking_load: Option<f64>,
}

/// Growth of throughput per doubling of the load between two points.
fn growth_per_doubling(x0: f64, t0: f64, x1: f64, t1: f64) -> f64 {
    if t0 <= 0.0 {
        return if t1 > 0.0 { f64::INFINITY } else { 0.0 };
    }
    (t1 / t0).powf(1.0 / (x1 / x0).log2()) - 1.0
}

/// Index of the knee: the first point after which every step grows less than `gain`
/// per doubling. None when the last step still grows (no plateau seen).
pub fn knee_index(points: &[(f64, f64)], gain: f64) -> Option<usize> {
    let steps: Vec<bool> = points.windows(2).map(|w| growth_per_doubling(w[0].0, w[0].1, w[1].0, w[1].1) < gain).collect();
    let flat_from = steps.iter().rposition(|flat| !flat).map_or(0, |i| i + 1);
    (flat_from < points.len().saturating_sub(1)).then_some(flat_from)
}

impl SweepResult {
    /// Judges the sweep's stages (those that ran; a stopped sweep is judged on what it has).
    pub fn build(sweep: &Sweep, stages: &[StageResult], slo: Option<&crate::metrics::Slo>) -> SweepResult {
        // Points that ran to their end, each matched to its load by its stage index.
        let ran: Vec<(&StageResult, f64)> = stages
            .iter()
            .filter(|s| !s.interrupted && !s.aborted)
            .filter_map(|s| s.index.checked_sub(sweep.first_stage).and_then(|k| sweep.points.get(k)).map(|&load| (s, load)))
            .collect();
        let unit = |load: f64| match sweep.kind {
            SweepKind::Concurrency => format!("{load}-way"),
            SweepKind::Rate => format!("{load} req/s offered"),
        };
        let points: Vec<SweepPoint> = ran
            .iter()
            .map(|&(s, load)| SweepPoint {
                stage: s.name.clone(),
                load,
                throughput: s.throughput.ok_per_s,
                p99_ms: s.latency_ms.map(|l| l.p99),
                slo_met: s.goodput.as_ref().map(|g| {
                    let n = s.requests.ok + s.requests.failed;
                    if n == 0 { 0.0 } else { g.requests as f64 / n as f64 }
                }),
            })
            .collect();
        let series: Vec<(f64, f64)> = points.iter().map(|p| (p.load, p.throughput)).collect();
        let knee = knee_index(&series, sweep.knee_gain).map(|i| Knee {
            stage: points[i].stage.clone(),
            load: points[i].load,
            throughput: points[i..].iter().map(|p| p.throughput).fold(0.0, f64::max),
        });
        let mut said = Vec::new();
        if points.len() < sweep.points.len() {
            said.push(format!("{} of {} points ran to their end (the run was stopped or aborted)", points.len(), sweep.points.len()));
        }
        let none_ok = !points.is_empty() && points.iter().all(|p| p.throughput <= 0.0);
        match (&knee, points.last()) {
            _ if none_ok => said.push("no request succeeded at any point".to_string()),
            (Some(k), _) => said.push(format!("throughput plateaus at {} req/s from {}", super::fmt_rate(k.throughput), unit(k.load))),
            (None, Some(last)) => said.push(format!(
                "throughput still grows at the last point ({}, {} req/s): sweep further to find the knee",
                unit(last.load),
                super::fmt_rate(last.throughput)
            )),
            (None, None) => said.push("no sweep point finished".to_string()),
        }
        let slo = slo.filter(|_| !points.is_empty()).map(|o| {
            let meets = |p: &SweepPoint| p.slo_met.is_some_and(|m| m >= sweep.slo_quantile);
            let broken = points.iter().position(|p| !meets(p));
            let last_ok = broken.map_or(Some(points.len() - 1), |b| b.checked_sub(1));
            let v = SloVerdict {
                quantile: sweep.slo_quantile,
                objectives: objectives(o),
                largest_meeting: last_ok.map(|i| points[i].stage.clone()),
                largest_meeting_load: last_ok.map(|i| points[i].load),
                first_breaking: broken.map(|i| points[i].stage.clone()),
                first_breaking_load: broken.map(|i| points[i].load),
            };
            let what = format!("the SLO ({}% of requests within {})", v.quantile * 100.0, v.objectives);
            said.push(match (last_ok, broken) {
                (Some(a), Some(b)) => format!("{what} holds up to {} and breaks at {}", unit(points[a].load), unit(points[b].load)),
                (Some(_), None) => format!("{what} holds at every point"),
                (None, _) => format!("{what} breaks already at {}", unit(points[0].load)),
            });
            v
        });
        SweepResult {
            kind: match sweep.kind {
                SweepKind::Concurrency => "concurrency",
                SweepKind::Rate => "rate",
            }
            .into(),
            points,
            knee_gain: sweep.knee_gain,
            knee,
            slo,
            summary: said.join("; "),
        }
    }
}

/// "e2e ≤ 2000 ms, TTFT ≤ 500 ms"
fn objectives(o: &crate::metrics::Slo) -> String {
    let ms = |d: std::time::Duration| format!("{} ms", super::fmt_rate(d.as_secs_f64() * 1000.0));
    [("TTFT", o.ttft), ("ITL", o.itl), ("e2e", o.e2e)]
        .into_iter()
        .filter_map(|(n, d)| d.map(|d| format!("{n} ≤ {}", ms(d))))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_where_growth_stops_for_good() {
        // A server sized for 20/s: 2, 4, 8, 16 then 20, 20, 20.
        let pts = [(1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 20.0), (32.0, 20.2), (64.0, 19.8)];
        assert_eq!(knee_index(&pts, 0.1), Some(4), "16→32 grows 1 %: the plateau starts at 16");
        // 8→16 grew 25 % per doubling: with a 30 % bar the plateau starts at 8.
        assert_eq!(knee_index(&pts, 0.3), Some(3));
    }

    #[test]
    fn no_knee_while_the_last_step_still_grows() {
        assert_eq!(knee_index(&[(1.0, 2.0), (2.0, 4.0), (4.0, 8.0)], 0.1), None);
        // A dip then growth again: not a plateau.
        assert_eq!(knee_index(&[(1.0, 10.0), (2.0, 10.0), (4.0, 20.0)], 0.1), None);
        assert_eq!(knee_index(&[(1.0, 5.0)], 0.1), None);
    }

    #[test]
    fn growth_is_per_doubling_for_uneven_steps() {
        // ×4 load, ×2 throughput: 41 % per doubling.
        assert!((growth_per_doubling(4.0, 10.0, 16.0, 20.0) - (2f64.sqrt() - 1.0)).abs() < 1e-9);
        assert_eq!(growth_per_doubling(1.0, 0.0, 2.0, 0.0), 0.0);
        assert!(growth_per_doubling(1.0, 0.0, 2.0, 1.0).is_infinite());
    }
}
