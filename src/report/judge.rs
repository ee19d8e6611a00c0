//! The run's verdict: each stage's thresholds against its figures, and the rule that a
//! stage (not a sweep point) with no successful request fails the run, so that CI
//! benchmarking a dead endpoint does not pass. What each metric name reads is here.

use super::result::{RunResult, StageResult, ThresholdResult, Verdict};
use crate::metrics::LatencySummary;
use crate::model::threshold::Threshold;
use crate::scenario::Scenario;

/// The names of a sweep's points: judged by the sweep, not here.
pub fn sweep_points(result: &RunResult) -> Vec<&str> {
    result.sweep.iter().flat_map(|s| s.points.iter().map(|p| p.stage.as_str())).collect()
}

/// The figure `metric` names in a stage, if it has one.
pub fn measure(s: &StageResult, metric: &str) -> Option<f64> {
    let q = |l: &Option<LatencySummary>, f: fn(&LatencySummary) -> f64| l.as_ref().map(f);
    let t = &s.throughput;
    match metric {
        "mean_ms" => q(&s.latency_ms, |l| l.mean),
        "p50_ms" => q(&s.latency_ms, |l| l.p50),
        "p90_ms" => q(&s.latency_ms, |l| l.p90),
        "p95_ms" => q(&s.latency_ms, |l| l.p95),
        "p99_ms" => q(&s.latency_ms, |l| l.p99),
        "max_ms" => q(&s.latency_ms, |l| l.max),
        "ttft_p50_ms" => q(&s.ttft_ms, |l| l.p50),
        "ttft_p90_ms" => q(&s.ttft_ms, |l| l.p90),
        "ttft_p95_ms" => q(&s.ttft_ms, |l| l.p95),
        "ttft_p99_ms" => q(&s.ttft_ms, |l| l.p99),
        "itl_p50_ms" => q(&s.itl_ms, |l| l.p50),
        "itl_p90_ms" => q(&s.itl_ms, |l| l.p90),
        "itl_p95_ms" => q(&s.itl_ms, |l| l.p95),
        "itl_p99_ms" => q(&s.itl_ms, |l| l.p99),
        // A stage that started nothing has no error rate to speak of.
        "error_rate" => (s.requests.started > 0).then_some(s.error_rate),
        "ok_rps" => Some(t.ok_per_s),
        "goodput_rps" => s.goodput.as_ref().map(|g| g.per_s),
        "output_tps" => Some(t.output_tokens_per_s),
        "items_per_s" => s.items.as_ref().map(|i| i.per_s),
        task if task.starts_with("task") || task == "cost_per_task" => s.tasks.as_ref().and_then(|x| x.measure(task)),
        _ => None,
    }
}

impl Verdict {
    /// Judges `result` by the thresholds `scenario` gives its stages.
    pub fn judge(scenario: &Scenario, result: &RunResult) -> Verdict {
        let points = sweep_points(result);
        let mut v = Verdict::default();
        let sharded = result.shard.is_some_and(|x| x.count > 1);
        for s in &result.stages {
            // A shard whose share of a stage was nothing (a low rate over many shards)
            // is judged on it by the merge, with the others'.
            if sharded && s.requests.started == 0 {
                continue;
            }
            let own: &[Threshold] = scenario.stages.iter().find(|st| st.name == s.name).map_or(&[], |st| &st.thresholds);
            for t in own {
                let measured = measure(s, t.metric.name);
                v.thresholds.push(ThresholdResult {
                    stage: s.name.clone(),
                    metric: t.metric.name.into(),
                    threshold: t.text(),
                    measured,
                    passed: measured.is_some_and(|m| t.holds(m)),
                });
            }
            if s.requests.ok == 0 && !points.contains(&s.name.as_str()) {
                v.stages_without_success.push(s.name.clone());
            }
        }
        v.passed = v.stages_without_success.is_empty() && v.thresholds.iter().all(|t| t.passed);
        v
    }

    /// Lines for the text after the table: every threshold with its figure, then the
    /// stages that had no success. Empty when there is nothing to say.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for t in &self.thresholds {
            let got = t.measured.map_or("not measured".to_string(), super::grid::fig);
            let mark = if t.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("{mark}  {}: {} (measured {got})\n", t.stage, t.threshold));
        }
        for s in &self.stages_without_success {
            out.push_str(&format!("FAIL  {s}: no successful request\n"));
        }
        out
    }
}
