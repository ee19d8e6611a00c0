//! `llmload compare`: two runs (or several baselines and a new run) side by side, stage
//! by stage matched by name, every metric of the vocabulary with its change, whether
//! that change is beyond run-to-run noise, and the gates of `--fail-on`.

mod gate;
mod noise;
mod render;

use std::path::Path;

use hdrhistogram::Histogram;

pub use gate::{FORMS as GATE_FORMS, Gate};
pub use render::render;

use crate::metrics::hdr;
use crate::model::threshold::{METRICS, Metric};
use crate::report::{RunResult, StageResult, measure};

/// The result-file versions this llmload reads.
pub const READS: [u64; 4] = [1, 2, 3, 4];

/// Reads a result file; one line naming the file and what is wrong, else.
pub fn load(path: &Path) -> Result<RunResult, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("{shown}: not JSON ({e})"))?;
    let version = v.get("schema_version").and_then(|x| x.as_u64());
    match version {
        None => return Err(format!("{shown}: not an llmload result (no schema_version)")),
        Some(n) if !READS.contains(&n) => return Err(format!("{shown}: schema_version {n} is not one this llmload reads (1 to 4)")),
        Some(_) => {}
    }
    serde_json::from_value(v).map_err(|e| format!("{shown}: not an llmload result ({e})"))
}

/// One metric of one stage: the baselines' figures (their mean stands for them), the
/// new run's, and whether the change is beyond noise.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: &'static Metric,
    pub bases: Vec<f64>,
    pub base: f64,
    pub new: f64,
    /// None where the baseline is zero.
    pub relative: Option<f64>,
    /// None when it has not moved.
    pub better: Option<bool>,
    pub beyond_noise: bool,
}

#[derive(Debug, Clone)]
pub struct StageComparison {
    pub name: String,
    pub rows: Vec<Row>,
    /// Why its figures are not like for like: a side whose stage was stopped, aborted
    /// or still going (a checkpoint). Its rows are shown, never judged.
    pub not_comparable: Option<String>,
}

/// A gate judged on one stage.
#[derive(Debug, Clone)]
pub struct GateResult {
    pub stage: String,
    pub gate: String,
    /// None when either side has no such figure: the gate then trips.
    pub base: Option<f64>,
    pub new: Option<f64>,
    pub tripped: bool,
    /// Set when the stage is not comparable: the gate trips, saying why.
    pub why: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub stages: Vec<StageComparison>,
    /// Stage names in one side only: listed, never guessed at.
    pub only_base: Vec<String>,
    pub only_new: Vec<String>,
    pub gates: Vec<GateResult>,
    /// The smallest relative change called beyond noise.
    pub min_effect: f64,
}

impl Comparison {
    pub fn tripped(&self) -> bool {
        self.gates.iter().any(|g| g.tripped)
    }
}

/// The distribution a metric reads, for the two-sample test.
fn dist_of<'a>(s: &'a StageResult, metric: &Metric) -> Option<&'a str> {
    let (name, h) = (metric.name, &s.histograms);
    let d = if name.starts_with("task_") && name.ends_with("_ms") {
        s.tasks.as_ref().and_then(|t| t.histograms.latency_us.as_ref())
    } else if name.starts_with("ttft_") {
        h.ttft_us.as_ref()
    } else if name.starts_with("itl_") {
        h.itl_us.as_ref()
    } else if name.ends_with("_ms") {
        h.e2e_us.as_ref()
    } else {
        None
    };
    d.map(|d| d.hdr.as_str())
}

fn decoded(s: &StageResult, metric: &Metric) -> Option<Histogram<u64>> {
    dist_of(s, metric).and_then(|t| hdr::decode(t).ok())
}

/// Compares `new` with `bases` (one or more runs of the same scenario).
pub fn compare(bases: &[RunResult], new: &RunResult, gates: &[Gate], min_effect: f64) -> Comparison {
    let in_all_bases = |name: &str| bases.iter().all(|b| b.stages.iter().any(|s| s.name == name));
    let find = |r: &RunResult, name: &str| r.stages.iter().find(|s| s.name == name).cloned();
    let mut out = Comparison { stages: Vec::new(), only_base: Vec::new(), only_new: Vec::new(), gates: Vec::new(), min_effect };
    for b in bases {
        for s in &b.stages {
            if !new.stages.iter().any(|n| n.name == s.name) && !out.only_base.contains(&s.name) {
                out.only_base.push(s.name.clone());
            }
        }
    }
    for n in &new.stages {
        if !in_all_bases(&n.name) {
            out.only_new.push(n.name.clone());
            continue;
        }
        let base_stages: Vec<StageResult> = bases.iter().filter_map(|b| find(b, &n.name)).collect();
        let not_comparable = bases
            .iter()
            .enumerate()
            .find_map(|(i, b)| {
                let side = if bases.len() == 1 { "base".to_string() } else { format!("base {}", i + 1) };
                cut_short(b, &n.name).map(|why| format!("the {side} run's stage {why}"))
            })
            .or_else(|| cut_short(new, &n.name).map(|why| format!("the new run's stage {why}")));
        let mut rows = Vec::new();
        for metric in METRICS {
            let figures: Option<Vec<Vec<f64>>> = bases.iter().zip(&base_stages).map(|(r, b)| repeated(r, b, metric.name)).collect();
            let figures: Option<Vec<f64>> = figures.map(|f| f.concat());
            let new_figure = repeated(new, n, metric.name).map(|v| v.iter().sum::<f64>() / v.len() as f64);
            let (Some(figures), Some(new_figure)) = (figures, new_figure) else { continue };
            let mut r = row(metric, figures, new_figure, &base_stages, n, min_effect);
            r.beyond_noise &= not_comparable.is_none();
            rows.push(r);
        }
        for g in gates {
            let row = rows.iter().find(|r| r.metric.name == g.metric.name);
            out.gates.push(GateResult {
                stage: n.name.clone(),
                gate: g.text.clone(),
                base: row.map(|r| r.base),
                new: row.map(|r| r.new),
                tripped: not_comparable.is_some() || row.is_none_or(|r| g.trips(r.base, r.new)),
                why: not_comparable.clone(),
            });
        }
        out.stages.push(StageComparison { name: n.name.clone(), rows, not_comparable });
    }
    out
}

/// A stage's figure in each repetition of a `--repeat` run (the noise base a
/// comparison needs), else its one figure.
fn repeated(run: &RunResult, s: &StageResult, metric: &str) -> Option<Vec<f64>> {
    let each = run
        .repeats
        .as_ref()
        .filter(|r| r.runs.len() > 1 && crate::report::repeats::FIGURES.contains(&metric))
        .map(|r| r.runs.iter().filter_map(|x| x.stages.get(&s.name).and_then(|f| f.get(metric)).copied()).collect::<Vec<f64>>());
    match each.filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None => measure(s, metric).map(|v| vec![v]),
    }
}

/// Why `run`'s stage `name` did not run to its end, when it did not: stopped (Ctrl-C,
/// a deadline), aborted by `abort_on_error_rate`, or in progress in a checkpoint.
fn cut_short(run: &RunResult, name: &str) -> Option<&'static str> {
    let (i, s) = run.stages.iter().enumerate().find(|(_, s)| s.name == name)?;
    if s.interrupted {
        Some("was interrupted (stopped before its end)")
    } else if s.aborted {
        Some("was aborted (abort_on_error_rate)")
    } else if !run.complete && i + 1 == run.stages.len() {
        Some("was still running (a checkpoint, not a final result)")
    } else {
        None
    }
}

/// One line when the runs share no stage: comparing them would print nothing.
pub fn nothing_in_common(bases: &[RunResult], new: &RunResult) -> Option<String> {
    let common = new.stages.iter().any(|n| bases.iter().all(|b| b.stages.iter().any(|s| s.name == n.name)));
    let names = |r: &RunResult| r.stages.iter().map(|s| format!("{:?}", s.name)).collect::<Vec<_>>().join(", ");
    (!common).then(|| {
        let base = bases.iter().map(names).collect::<Vec<_>>().join("; ");
        format!("compare: no stage in common (stages are matched by name): base has {base}; new has {}", names(new))
    })
}

fn row(metric: &'static Metric, bases: Vec<f64>, new: f64, base_stages: &[StageResult], n: &StageResult, min_effect: f64) -> Row {
    let base = bases.iter().sum::<f64>() / bases.len() as f64;
    let delta = new - base;
    let relative = (base != 0.0).then(|| delta / base.abs());
    let moved = delta.abs() > 1e-12 * base.abs().max(1.0);
    let better = moved.then(|| (delta < 0.0) == (metric.better == crate::model::threshold::Better::Lower));
    // Beyond noise: a change of at least the minimum effect, outside the spread of the
    // baselines, and (where the metric has a distribution) a two-sample test that tells
    // the new run from every baseline.
    let effect = relative.map_or(moved, |r| r.abs() >= min_effect);
    let spread = bases.iter().fold(f64::MIN, |m, x| m.max(*x)) - bases.iter().fold(f64::MAX, |m, x| m.min(*x));
    let outside = delta.abs() > spread;
    let distinct = match decoded(n, metric) {
        Some(h) => base_stages.iter().all(|b| decoded(b, metric).and_then(|bh| noise::ks(&bh, &h)).is_none_or(|(_, p)| p < 0.01)),
        None => true,
    };
    Row { metric, bases, base, new, relative, better, beyond_noise: moved && effect && outside && distinct }
}
