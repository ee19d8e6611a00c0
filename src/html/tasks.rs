//! Tasks in the report: task latency (p50, p90, p99) against load (a task sweep's knee
//! and limit marked), and a task stage's steps laid end to end — a waterfall of where a
//! median and a p99 task's time goes, each one task measured.

use super::across::{Axis, load_of};
use super::chart::{Chart, Draw, Series};
use super::{Figure, Run};
use crate::report::StageResult;

/// Task latency percentiles against load, when a run has task stages at two loads; None
/// when no stage ran tasks.
pub fn against_load(runs: &[Run]) -> Option<Result<Figure, String>> {
    runs.iter().flat_map(|r| &r.result.stages).find(|s| s.tasks.is_some())?;
    let axis =
        runs.iter().flat_map(|r| &r.result.stages).filter(|s| s.tasks.is_some()).find_map(load_of).map_or(Axis::Concurrency, |a| a.0);
    let mut c = Chart {
        title: "Task latency against load".into(),
        x_label: tasks_axis(axis).into(),
        y_label: "task latency (ms)".into(),
        y_zero: true,
        ..Chart::default()
    };
    for (i, run) in runs.iter().enumerate() {
        let mut pts: Vec<(f64, &StageResult)> = run
            .result
            .stages
            .iter()
            .filter(|s| s.tasks.is_some())
            .filter_map(|s| load_of(s).filter(|l| l.0 == axis).map(|l| (l.1, s)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let on_axis = |kind: &str| (kind == "rate") == (axis == Axis::Rate);
        if let Some(sweep) = run.result.sweep.as_ref().filter(|s| on_axis(&s.kind) && s.task.is_some()) {
            let named = |what: &str| if runs.len() == 1 { what.to_string() } else { format!("{what}, {}", run.name) };
            if let Some(k) = &sweep.knee {
                c.vlines.push((k.load, named("knee (tasks/s)")));
            }
            if let Some(l) = sweep.slo.as_ref().and_then(|s| s.largest_meeting_load) {
                c.vlines.push((l, named("task SLO limit")));
            }
        }
        for (k, q) in ["p50", "p90", "p99"].iter().enumerate() {
            let metric = format!("task_{q}_ms");
            let p: Vec<(f64, f64)> = pts.iter().filter_map(|(x, s)| s.tasks.as_ref()?.measure(&metric).map(|y| (*x, y))).collect();
            if p.len() >= 2 {
                let label = if runs.len() == 1 { q.to_string() } else { format!("{}, {q}", run.name) };
                c.series.push(Series { dash: i, marker: i, ..Series::new(label, k, Draw::LineMarked, p) });
            }
        }
    }
    if c.series.is_empty() {
        return Some(Err("Task latency against load: no two task stages of one load kind answered a task".into()));
    }
    let caption = format!(
        "How long a user waits for a whole task — from its start (an open loop's: when it was due) to its last step's end — \
         as the {} grows: the median and the tail of answered tasks per task stage.",
        tasks_axis(axis)
    );
    Some(Ok(Figure { caption, charts: vec![c] }))
}

/// What a task stage's load counts.
fn tasks_axis(axis: Axis) -> &'static str {
    match axis {
        Axis::Concurrency => "tasks in flight (concurrency)",
        Axis::Rate => "task arrivals per second",
    }
}

/// Stage `name`'s steps end to end: a median and a p99 task, each one task measured
/// (results before them: each step's median and p99); None when the stage ran no tasks.
pub fn waterfall(runs: &[Run], name: &str) -> Option<Result<Figure, String>> {
    let run = runs.iter().find(|r| r.result.stages.iter().any(|s| s.name == name && s.tasks.is_some()))?;
    let tasks = run.result.stages.iter().find(|s| s.name == name)?.tasks.as_ref()?;
    let mut c = Chart {
        title: format!("Where a task's time goes: {name}"),
        x_label: "time from the task's start (ms)".into(),
        y_label: "p99 row (1), median row (2)".into(),
        y_zero: true,
        x_zero: true,
        ..Chart::default()
    };
    let measured = tasks.exemplars.len() == 2;
    for (row, (q, y)) in [("median", 2.0), ("p99", 1.0)].into_iter().enumerate() {
        // Time before the first step, then each step's.
        let (before, took): (f64, Vec<Option<f64>>) = match tasks.exemplars.get(row).filter(|_| measured) {
            Some(e) => (e.before_ms, e.steps_ms.iter().map(|&t| Some(t)).collect()),
            None => (0.0, tasks.steps.iter().map(|s| s.duration_ms.map(|d| if row == 0 { d.p50 } else { d.p99 })).collect()),
        };
        let mut at = before;
        for (k, (step, took)) in tasks.steps.iter().zip(took).enumerate() {
            let Some(took) = took else { continue };
            let label = format!("{}: {q} {}", step.name, crate::report::fmt_ms(took));
            c.series.push(Series { dash: row, ..Series::new(label, k, Draw::LineMarked, vec![(at, y), (at + took, y)]) });
            at += took;
        }
        let what = match tasks.exemplars.get(row).filter(|_| measured) {
            Some(e) => format!("a {q} task ({})", crate::report::fmt_ms(e.latency_ms)),
            None => format!("{q} of each step"),
        };
        c.annotations.push((0.0, y - 0.2, what));
    }
    if c.series.is_empty() {
        return Some(Err(format!("Where a task's time goes ({name}): no step ran")));
    }
    c.hlines.clear();
    let caption = match measured {
        true => {
            "Two answered tasks laid out step by step: the one nearest the median task latency (top) and the one \
                 nearest the p99 (below), each measured whole (from a uniform sample of up to 1,024 of the stage's \
                 tasks); a gap before the first step is the task's wait to start. Which step a slow task waits on."
        }
        false => {
            "Each step's duration laid end to end, at its median (top) and its p99 (below): which step a task waits on. \
                  A step's p99 and the next one's need not fall in one task, so the lower row is an upper view of a slow \
                  task, not one task measured."
        }
    }
    .to_string();
    Some(Ok(Figure { caption, charts: vec![c] }))
}
