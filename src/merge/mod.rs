//! `llmload merge`: the shards of one run as one result. The files are checked first
//! (one run id, one scenario, every shard index once), then each stage is merged
//! exactly (`stage`: histograms added, counters summed, rates over the union of the
//! shards' windows) and the thresholds judged again on the merged figures; `notes` says
//! what the merge cannot fix (shards that did not run together). The merged file is a
//! normal result: `compare`, `report` and thresholds read it.

mod add;
mod check;
mod notes;
mod series;
mod sessions;
mod stage;
mod tasks;

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::Duration;

use crate::model::Slo;
use crate::model::threshold::Threshold;
use crate::report::{RunResult, SweepPlan, SweepResult, ThresholdResult, Verdict, ended_early, measure};
use crate::scenario::SweepKind;

pub use notes::notes;

/// Checks that `shards` are every shard of one run, and merges them.
pub fn merge(shards: Vec<(PathBuf, RunResult)>) -> Result<RunResult, String> {
    let shown = |p: &PathBuf| p.display().to_string();
    let Some((first_path, first)) = shards.first() else { return Err("merge: give the shards' result files".into()) };
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    let count = match first.shard {
        Some(s) => s.count,
        None => {
            return Err(format!(
                "{}: not a shard's result (no \"shard\"): merge takes the results of `run --shard I/N`",
                shown(first_path)
            ));
        }
    };
    for (path, r) in &shards {
        let Some(s) = r.shard else {
            return Err(format!("{}: not a shard's result (no \"shard\"): merge takes the results of `run --shard I/N`", shown(path)));
        };
        if s.count != count {
            return Err(format!("{}: shard {}/{}, but {} is of {count} shards", shown(path), s.index, s.count, shown(first_path)));
        }
        if r.run_id != first.run_id {
            return Err(format!(
                "{}: run id {} is not {}'s ({}): the files are of different runs",
                shown(path),
                r.run_id.as_deref().unwrap_or("(none)"),
                shown(first_path),
                first.run_id.as_deref().unwrap_or("(none)")
            ));
        }
        if r.scenario_sha256 != first.scenario_sha256 {
            return Err(format!("{}: another scenario than {}'s (its sha256 differs)", shown(path), shown(first_path)));
        }
        // The file's hash does not see command-line overrides, nor a quick run's flags.
        check::same_scenario(&first.scenario, &r.scenario)
            .map_err(|e| format!("{}: ran another scenario than {}: {e}", shown(path), shown(first_path)))?;
        let names = |x: &RunResult| x.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        if names(r) != names(first) {
            return Err(format!("{}: stages {:?}, but {} has {:?}", shown(path), names(r), shown(first_path), names(first)));
        }
        if let Some(other) = seen.insert(s.index, path) {
            return Err(format!("shard {}/{count} appears twice: {} and {}", s.index, shown(other), shown(path)));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !seen.contains_key(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard{} {} of {count} missing: every shard's result is needed for an exact merge",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ));
    }
    let results: Vec<&RunResult> = shards.iter().map(|(_, r)| r).collect();
    let mut stages = Vec::new();
    for k in 0..first.stages.len() {
        let parts: Vec<_> = results.iter().map(|r| &r.stages[k]).collect();
        stages.push(stage::merge(&parts).map_err(|e| format!("stage {:?}: {e}", first.stages[k].name))?);
    }
    Ok(run(&results, stages))
}

/// The run around the merged stages.
fn run(results: &[&RunResult], stages: Vec<crate::report::StageResult>) -> RunResult {
    let first = results[0];
    let earliest = |f: fn(&RunResult) -> &str| results.iter().map(|r| f(r).to_string()).min().unwrap_or_default();
    let latest = |f: fn(&RunResult) -> &str| results.iter().map(|r| f(r).to_string()).max().unwrap_or_default();
    let started_at = earliest(|r| &r.started_at);
    let finished_at = latest(|r| &r.finished_at);
    let parse = |t: &str| humantime::parse_rfc3339_weak(t).ok();
    let duration_s = match (parse(&started_at), parse(&finished_at)) {
        (Some(a), Some(b)) => b.duration_since(a).map_or(0.0, |d| d.as_secs_f64()),
        _ => results.iter().map(|r| r.duration_s).fold(0.0, f64::max),
    };
    let mut hosts: Vec<String> = results.iter().filter_map(|r| r.host.clone()).collect();
    hosts.dedup();
    let mut merged = RunResult {
        scenario: scenario(results),
        host: (!hosts.is_empty()).then(|| hosts.join(", ")),
        command_line: std::env::args().collect(),
        shard: None,
        merged_shards: Some(results.len() as u32),
        started_at,
        finished_at,
        duration_s,
        interrupted: results.iter().any(|r| r.interrupted),
        complete: results.iter().all(|r| r.complete),
        aborted: results.iter().find_map(|r| r.aborted.clone()),
        start_lag_ms: results.iter().filter_map(|r| r.start_lag_ms).reduce(f64::max),
        generator: busiest_generator(results),
        // One shard scrapes (shard 0): its series, once.
        server_metrics: results.iter().find_map(|r| r.server_metrics.clone()),
        sweep: None,
        cost: None,
        verdict: None,
        stages,
        ..first.clone()
    };
    let priced: Vec<&crate::report::Cost> = merged.stages.iter().filter_map(|s| s.cost.as_ref()).collect();
    if let Some(c) = priced.first() {
        let ok: u64 = merged.stages.iter().filter(|s| s.cost.is_some()).map(|s| s.requests.ok).sum();
        let (amount, usd) = (priced.iter().map(|c| c.amount).sum::<f64>(), priced.iter().map(|c| c.usd).sum::<f64>());
        let per_1k = if ok > 0 { amount / ok as f64 * 1000.0 } else { 0.0 };
        merged.cost = Some(crate::report::Cost { currency: c.currency.clone(), amount, usd, per_1k_requests: per_1k });
    }
    // The abort a shard judged on its share, told again over the whole stage.
    if let Some(a) = &mut merged.aborted
        && let Some(s) = merged.stages.iter().find(|s| s.name == a.stage)
    {
        a.requests = s.requests.ok + s.requests.failed;
        a.error_rate = s.error_rate;
    }
    merged.sweep = sweep(first, &merged);
    merged.verdict = Some(judge(first, &merged));
    merged
}

/// A list sweep judged again on the merged points: its knee and its SLO's limit. (An
/// automatic sweep cannot run sharded.)
fn sweep(first: &RunResult, merged: &RunResult) -> Option<SweepResult> {
    first.sweep.as_ref()?;
    let spec = first.scenario.get("sweep")?;
    let listed = spec.get("points")?.as_array()?.len();
    let plan = SweepPlan {
        kind: if spec.get("kind")?.as_str()? == "rate" { SweepKind::Rate } else { SweepKind::Concurrency },
        auto: None,
        first_stage: merged.stages.len().checked_sub(listed)?,
        knee_gain: spec.get("knee_gain")?.as_f64()?,
        slo_quantile: spec.get("slo_quantile").and_then(|q| q.as_f64()).unwrap_or(0.99),
        listed,
        task: spec.get("task").and_then(|t| t.as_str()).map(str::to_string),
    };
    let ms = |k: &str| first.scenario.get("slo")?.get(k)?.as_f64().map(|ms| Duration::from_secs_f64(ms / 1000.0));
    let slo = first.scenario.get("slo").filter(|s| !s.is_null()).map(|_| Slo {
        ttft: ms("ttft_ms"),
        itl: ms("itl_ms"),
        e2e: ms("e2e_ms"),
        task: ms("task_ms"),
    });
    let early = ended_early(merged.aborted.is_some(), merged.interrupted);
    Some(SweepResult::build(plan, &merged.stages, slo.as_ref(), early))
}

/// The shards' scenario as the whole run's: each stage's load and counts summed.
fn scenario(results: &[&RunResult]) -> serde_json::Value {
    let mut v = results[0].scenario.clone();
    let summed = ["concurrency", "requests", "warmup", "rate", "max_in_flight"];
    if let Some(stages) = v.get_mut("stages").and_then(|s| s.as_array_mut()) {
        for (k, st) in stages.iter_mut().enumerate() {
            for key in summed {
                let all: Option<Vec<f64>> = results.iter().map(|r| r.scenario["stages"][k].get(key).and_then(|x| x.as_f64())).collect();
                if let (Some(all), Some(slot)) = (all, st.get_mut(key)) {
                    let total: f64 = all.iter().sum();
                    *slot = if slot.is_u64() { serde_json::json!(total.round() as u64) } else { serde_json::json!(total) };
                }
            }
            // The client-side limits were divided too.
            for key in ["rpm", "tpm"] {
                let all: Option<Vec<f64>> = results.iter().map(|r| r.scenario["stages"][k]["rate_limit"].get(key)?.as_f64()).collect();
                if let (Some(all), Some(slot)) = (all, st.get_mut("rate_limit").and_then(|l| l.get_mut(key))) {
                    *slot = serde_json::json!(all.iter().sum::<f64>());
                }
            }
        }
    }
    v
}

/// The shard whose generator came nearest saturation: its figures, and its warning.
fn busiest_generator(results: &[&RunResult]) -> Option<crate::report::GeneratorInfo> {
    let mut best: Option<(usize, &crate::report::GeneratorInfo)> = None;
    for (i, r) in results.iter().enumerate() {
        if let Some(g) = &r.generator
            && best.is_none_or(|(_, b)| (g.near_saturation, g.cpu_cores_busiest_second) > (b.near_saturation, b.cpu_cores_busiest_second))
        {
            best = Some((i, g));
        }
    }
    best.map(|(i, g)| {
        let mut g = g.clone();
        g.warning = g.warning.map(|w| format!("shard {}: {w}", results[i].shard.map_or(0, |s| s.index)));
        g
    })
}

/// The first shard's thresholds (every shard has the scenario's) judged on the merge.
fn judge(first: &RunResult, merged: &RunResult) -> Verdict {
    let points = crate::report::sweep_points(first);
    let mut v = Verdict::default();
    for t in first.verdict.iter().flat_map(|v| &v.thresholds) {
        let expr = t.threshold.split_once(' ').map_or("", |x| x.1);
        let Ok(th) = Threshold::parse(&t.metric, expr) else { continue };
        let Some(stage) = merged.stages.iter().find(|s| s.name == t.stage) else { continue };
        let measured = measure(stage, th.metric.name);
        v.thresholds.push(ThresholdResult { measured, passed: measured.is_some_and(|m| th.holds(m)), ..t.clone() });
    }
    v.stages_without_success =
        merged.stages.iter().filter(|s| s.requests.ok == 0 && !points.contains(&s.name.as_str())).map(|s| s.name.clone()).collect();
    v.passed = v.stages_without_success.is_empty() && v.thresholds.iter().all(|t| t.passed);
    v
}
