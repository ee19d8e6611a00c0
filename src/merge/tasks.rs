//! A task stage's tasks of every shard as one: shards are dealt whole tasks, so counts
//! and the sums behind every mean add, and the task and step distributions add exactly
//! (their percentiles those of the whole run). Means and rates are read again from the
//! sums, over the merged window.

use std::collections::BTreeMap;

use super::add::latency;
use crate::metrics::tasks::TaskTotals;
use crate::metrics::{Latency, LatencySummary};
use crate::report::Dist;
use crate::report::tasks::{EXEMPLARS, Step, StepHistograms, TaskCost, TaskExemplar, TaskFailure, TaskGoodput, TaskHistograms, Tasks};

/// One distribution of every shard, added: its summary and itself.
fn lat<'a>(dists: impl Iterator<Item = Option<&'a Dist>>) -> Result<(Option<LatencySummary>, Option<Dist>), String> {
    let all: Vec<Option<&Dist>> = dists.collect();
    let sum = latency(&all)?;
    Ok((sum.as_ref().and_then(Latency::summary), sum.as_ref().and_then(Dist::of_latency)))
}

/// The shards' tasks of one stage as one, over a window of `wall` seconds; None when no
/// shard ran any.
pub fn merge(parts: &[Option<&Tasks>], wall: f64) -> Result<Option<Tasks>, String> {
    let parts: Vec<&Tasks> = parts.iter().flatten().copied().collect();
    let Some(first) = parts.first() else { return Ok(None) };
    let sum = |f: fn(&Tasks) -> u64| parts.iter().map(|t| f(t)).sum::<u64>();
    let per_s = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let (ok, failed) = (sum(|t| t.ok), sum(|t| t.failed));
    let ended = ok + failed;
    let (latency_ms, latency_us) = lat(parts.iter().map(|t| t.histograms.latency_us.as_ref())).map_err(|e| format!("tasks: {e}"))?;
    let (first_token_ms, first_token_us) =
        lat(parts.iter().map(|t| t.histograms.first_token_us.as_ref())).map_err(|e| format!("tasks: {e}"))?;
    let totals = totals(&parts);
    let (steps, step_histograms) = steps(&parts, &totals, ended)?;
    let mut failures: BTreeMap<(String, String), u64> = BTreeMap::new();
    for f in parts.iter().flat_map(|t| &t.failures) {
        *failures.entry((f.step.clone(), f.cause.clone())).or_default() += f.tasks;
    }
    let per_task = |n: u64| (ended > 0).then(|| n as f64 / ended as f64);
    Ok(Some(Tasks {
        name: first.name.clone(),
        ok,
        failed,
        cut: sum(|t| t.cut),
        per_s: per_s(ok),
        latency_ms,
        first_token_ms,
        steps,
        requests_per_task: per_task(totals.requests),
        input_tokens_per_task: per_task(totals.input_tokens),
        output_tokens_per_task: per_task(totals.output_tokens),
        cost_per_task: cost(&parts, &totals),
        failures: failures.into_iter().map(|((step, cause), tasks)| TaskFailure { step, cause, tasks }).collect(),
        goodput: first.goodput.as_ref().map(|_| {
            let n = parts.iter().filter_map(|t| t.goodput.as_ref()).map(|g| g.tasks).sum();
            TaskGoodput { tasks: n, per_s: per_s(n) }
        }),
        totals,
        exemplars: latency_ms.as_ref().map_or_else(Vec::new, |l| exemplars(&parts, l)),
        histograms: TaskHistograms { latency_us, first_token_us, steps: step_histograms },
    }))
}

fn totals(parts: &[&Tasks]) -> TaskTotals {
    let mut t = TaskTotals::default();
    for p in parts {
        let x = &p.totals;
        t.requests += x.requests;
        t.input_tokens += x.input_tokens;
        t.output_tokens += x.output_tokens;
        t.cost_usd += x.cost_usd;
        t.priced += x.priced;
        t.cost_max_usd = t.cost_max_usd.max(x.cost_max_usd);
        add_up(&mut t.step_requests, &x.step_requests);
        add_up(&mut t.step_tool_calls, &x.step_tool_calls);
        add_up(&mut t.step_tool_us, &x.step_tool_us);
    }
    t
}

/// `all` plus `more`, element by element.
fn add_up(all: &mut Vec<u64>, more: &[u64]) {
    if all.len() < more.len() {
        all.resize(more.len(), 0);
    }
    for (a, n) in all.iter_mut().zip(more) {
        *a += n;
    }
}

/// Each step over the shards: its distributions added, its share read again from the
/// merged means.
fn steps(parts: &[&Tasks], totals: &TaskTotals, ended: u64) -> Result<(Vec<Step>, Vec<StepHistograms>), String> {
    let n = parts.iter().map(|t| t.steps.len()).max().unwrap_or(0);
    let mut steps = Vec::with_capacity(n);
    let mut hists = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for k in 0..n {
        let hist = |t: &&Tasks| t.histograms.steps.get(k).cloned().unwrap_or_default();
        let own: Vec<StepHistograms> = parts.iter().map(hist).collect();
        let at = |e: String| format!("tasks' step {}: {e}", k + 1);
        let (duration_ms, duration_us) = lat(own.iter().map(|h| h.duration_us.as_ref())).map_err(at)?;
        let (slowest_wait_ms, slowest_wait_us) = lat(own.iter().map(|h| h.slowest_wait_us.as_ref())).map_err(at)?;
        let (latency_ms, e2e_us) = lat(own.iter().map(|h| h.e2e_us.as_ref())).map_err(at)?;
        let (ttft_ms, ttft_us) = lat(own.iter().map(|h| h.ttft_us.as_ref())).map_err(at)?;
        let ran = duration_us.as_ref().map_or(0, |d| d.count);
        weights.push(duration_ms.as_ref().map_or(0.0, |d| d.mean * ran as f64 / ended.max(1) as f64));
        steps.push(
            Step {
                name: parts.iter().find_map(|t| t.steps.get(k)).map(|s| s.name.clone()).unwrap_or_default(),
                requests_per_task: totals.step_requests.get(k).filter(|_| ran > 0).map(|r| *r as f64 / ran as f64),
                failed_requests: parts.iter().filter_map(|t| t.steps.get(k)).map(|s| s.failed_requests).sum(),
                duration_ms,
                share: None,
                slowest_wait_ms,
                latency_ms,
                ttft_ms,
                tool_calls_per_task: None,
                tool_ms_per_task: None,
            }
            .with_tools(
                totals.step_tool_calls.get(k).copied().unwrap_or(0),
                totals.step_tool_us.get(k).copied().unwrap_or(0),
                ran,
            ),
        );
        hists.push(StepHistograms { duration_us, slowest_wait_us, e2e_us, ttft_us });
    }
    let total: f64 = weights.iter().sum();
    for (s, w) in steps.iter_mut().zip(weights) {
        s.share = (total > 0.0).then(|| w / total);
    }
    Ok((steps, hists))
}

/// The mean from the summed cost, in the shards' currency; absent when a shard's was.
fn cost(parts: &[&Tasks], totals: &TaskTotals) -> Option<TaskCost> {
    let costs: Vec<&TaskCost> = parts.iter().map(|t| t.cost_per_task.as_ref()).collect::<Option<_>>()?;
    let c = costs.first()?;
    let rate = if c.mean_usd > 0.0 { c.mean / c.mean_usd } else { 1.0 };
    let mean_usd = (totals.priced > 0).then(|| totals.cost_usd / totals.priced as f64)?;
    Some(TaskCost { currency: c.currency.clone(), mean: mean_usd * rate, max: costs.iter().map(|c| c.max).fold(0.0, f64::max), mean_usd })
}

/// For each quantile, of the shards' exemplar tasks the one nearest the merged
/// quantile: each shard kept its own sample, so this is nearest among their picks.
fn exemplars(parts: &[&Tasks], l: &LatencySummary) -> Vec<TaskExemplar> {
    EXEMPLARS
        .into_iter()
        .filter_map(|(q, at)| {
            let want = at(l);
            let all = parts.iter().flat_map(|t| &t.exemplars).filter(|e| e.quantile == q);
            all.min_by(|a, b| (a.latency_ms - want).abs().total_cmp(&(b.latency_ms - want).abs())).cloned()
        })
        .collect()
}
