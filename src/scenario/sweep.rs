//! A `[sweep]`: a series of stages over one load dimension, judged together — the
//! points given in the file, or chosen during the run (`"auto"`) from a template stage.
//! Its model, how a point's stage is made, and the checks of the table as written.

use std::collections::HashSet;

use serde::Serialize;

use super::error::Problems;
use super::file::SweepFile;
use super::stage::{Arrival, DEFAULT_MAX_IN_FLIGHT, Load, MAX_RATE, MIN_RATE, Stage, default_stage_name, rate_name};
use super::validate_stage::Defaults;
use super::{MAX_CONCURRENCY, Scenario};

/// A series of stages over one load dimension, judged together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    pub kind: SweepKind,
    /// The points, in the order they run. With `auto` they are chosen during the run:
    /// empty before it, and after it the ones that ran.
    pub points: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoSweep>,
    #[serde(skip)]
    pub first_stage: usize,
    /// Throughput must grow at least this fraction per doubling, else it has plateaued.
    pub knee_gain: f64,
    /// Share of a point's requests that must meet every `[slo]` objective.
    pub slo_quantile: f64,
    /// What every point's stage is but its load (and name).
    #[serde(skip)]
    pub template: Stage,
    /// The `[[task]]` every point runs, if it runs one: its load and throughput are
    /// tasks, its SLO `task_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// `concurrency = "auto"` / `rates = "auto"`: double from `start` until throughput
/// plateaus (and, with an SLO, until it breaks), then bisect to the SLO's limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AutoSweep {
    pub start: f64,
    pub max: f64,
    pub max_points: u32,
    /// The bisection stops when the bracket is narrower than this fraction of its
    /// lower end (and, for concurrency, than one worker).
    pub precision: f64,
}

/// Defaults of an automatic sweep.
pub const AUTO_MAX_POINTS: u32 = 16;
pub const AUTO_PRECISION: f64 = 0.05;
pub const AUTO_MAX_CONCURRENCY: f64 = 1024.0;

impl Scenario {
    /// Most requests an automatic concurrency sweep may have in flight at once.
    pub fn auto_sweep_max_concurrency(&self) -> Option<u32> {
        let sweep = self.sweep.as_ref()?;
        let auto = sweep.auto?;
        let template = sweep.stage(auto.max, 0);
        Some(template.requests_in_flight())
    }
}

impl Sweep {
    /// The stage of point `k` (run order) at `load` workers or arrivals per second.
    pub fn stage(&self, load: f64, k: usize) -> Stage {
        let mut stage = self.template.clone();
        stage.load = match (self.kind, self.template.load) {
            (SweepKind::Rate, Load::Open { arrival, max_in_flight, .. }) => {
                Load::Open { rate: load, arrival, max_in_flight, seed: k as u64 }
            }
            _ => Load::Closed { concurrency: load as u32 },
        };
        stage.name = match stage.load {
            Load::Closed { concurrency } => default_stage_name(concurrency),
            // Three significant digits at least, so bisected rates keep their names apart.
            Load::Open { rate, arrival, .. } => format!("{} {}/s", arrival.name(), rate_name(rate, 0)),
        };
        stage
    }

    /// The stage of an automatic sweep's next point, at `load`, after the `ran` ones,
    /// named apart from the scenario's `explicit` stages and from the points before it.
    pub fn auto_point(&self, load: f64, explicit: &[Stage], ran: &[Stage]) -> Stage {
        let mut stage = self.stage(load, ran.len());
        // A point named like an explicit stage keeps the rows of the table apart.
        if explicit.iter().any(|s| s.name == stage.name) {
            stage.name.push_str(" (sweep)");
        }
        // Two rates apart in the fourth digit would share a name.
        if ran.iter().any(|s| s.name == stage.name) {
            stage.name.push_str(&format!(" #{}", ran.len() + 1));
        }
        stage
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    Concurrency,
    Rate,
}

/// Appends the stages of a `[sweep]`, one per point, after the explicit ones. An
/// automatic sweep appends none: its points are chosen as it runs.
pub(super) fn sweep_stages(
    f: &toml::Spanned<SweepFile>,
    stages: &mut Vec<Stage>,
    names: &mut HashSet<String>,
    d: &Defaults<'_>,
    p: &mut Problems<'_>,
) -> Option<Sweep> {
    let span = f.span();
    let f = f.get_ref();
    let (kind, value) = match (&f.concurrency, &f.rates) {
        (Some(c), None) => (SweepKind::Concurrency, c),
        (None, Some(r)) => (SweepKind::Rate, r),
        _ => {
            p.at(Some(span), "sweep: give `concurrency = [1, 2, 4, …]` or `rates = [5, 10, …]` (one of them), or set it to \"auto\"");
            return None;
        }
    };
    let field = match kind {
        SweepKind::Concurrency => "concurrency",
        SweepKind::Rate => "rates",
    };
    let points = sweep_points(kind, field, value, p)?;
    let mut bad = |msg: String| p.at(Some(span.clone()), format!("sweep: {msg}"));
    if let Some(points) = &points {
        check_listed(f, kind, field, points, &mut bad);
    }
    let (arrival, knee_gain, slo_quantile) = check_every(f, kind, &mut bad);
    let auto = points.is_none().then(|| auto_sweep(f, kind, &mut bad));
    let mut template = template(f, kind, arrival, d);
    if f.task.is_some() && f.cooldown.is_some() {
        bad("cooldown is not for task sweeps yet".into());
    }
    (template.warmup, template.warmup_auto) = super::validate_stage::warmup(f.warmup.as_ref(), "sweep", p);
    // A rate sweep's point that cannot keep up is over the limit: said early, by default.
    template.stop_on_saturation = kind == SweepKind::Rate && f.stop_on_saturation != Some(false);
    if kind == SweepKind::Concurrency && f.stop_on_saturation == Some(true) {
        p.at(Some(span.clone()), "sweep: stop_on_saturation watches an open loop's backlog: a concurrency sweep's cannot grow");
    }
    if let Some(u) = &f.until {
        if f.requests.is_some() || f.duration.is_some() {
            p.at(Some(u.span()), "sweep: until ends each point (at its max at the latest): give no requests or duration too");
        }
        template.until = super::until::until(u, "sweep", p);
        template.duration = template.duration.or(template.until.as_ref().map(|u| u.max));
    }
    let task = f.task.as_ref().map(|t| {
        template.task = d.tasks.iter().find(|d| d.name == *t.get_ref()).cloned();
        template.max_requests_in_flight = f.max_in_flight.map(|m| m.get());
        if template.task.is_none() {
            let known: Vec<&str> = d.tasks.iter().map(|t| t.name.as_str()).collect();
            p.at(Some(t.span()), format!("sweep: task {:?} is not defined (tasks: {known:?})", t.get_ref()));
        }
        t.get_ref().clone()
    });
    let first_stage = stages.len();
    let sweep = Sweep { kind, points: points.unwrap_or_default(), auto, first_stage, knee_gain, slo_quantile, template, task };
    for (k, &x) in sweep.points.iter().enumerate() {
        let stage = sweep.stage(x, k);
        if !names.insert(stage.name.clone()) {
            p.at(Some(span.clone()), format!("sweep: point {:?} has the name of another stage", stage.name));
        }
        stages.push(stage);
    }
    Some(sweep)
}

/// A listed sweep's points, and what is for an automatic one only.
fn check_listed(f: &SweepFile, kind: SweepKind, field: &str, points: &[f64], bad: &mut dyn FnMut(String)) {
    if points.len() < 2 || !points.windows(2).all(|w| w[0] < w[1]) {
        bad("needs at least two points, in increasing order".into());
    }
    if points.iter().any(|&x| !(x.is_finite() && (MIN_RATE..=MAX_RATE).contains(&x))) || points.len() > 64 {
        bad(format!("points must be from {MIN_RATE} to {MAX_RATE} (requests/s or workers), at most 64 of them"));
    }
    if points.iter().any(|&x| kind == SweepKind::Concurrency && x > f64::from(MAX_CONCURRENCY)) {
        bad(format!("concurrency must be at most {MAX_CONCURRENCY}"));
    }
    if f.start.is_some() || f.max.is_some() || f.max_points.is_some() || f.precision.is_some() {
        bad(format!("start, max, max_points and precision are for `{field} = \"auto\"`"));
    }
}

/// What every sweep's points share: their length, arrivals, and how the sweep is
/// judged (the knee's gain, the SLO's quantile).
fn check_every(f: &SweepFile, kind: SweepKind, bad: &mut dyn FnMut(String)) -> (Arrival, f64, f64) {
    if f.max_in_flight.is_some_and(|m| m.get() > MAX_CONCURRENCY) {
        bad(format!("max_in_flight must be at most {MAX_CONCURRENCY}"));
    }
    if f.requests.is_none() && f.duration.is_none() && f.until.is_none() {
        bad("give `requests`, `duration` or `until` for each point".into());
    }
    if f.duration.is_some_and(|d| d.0.is_zero()) {
        bad("duration must be greater than zero".into());
    }
    if f.cooldown.is_some_and(|d| d.0.is_zero()) {
        bad("cooldown must be greater than zero".into());
    }
    let arrival = match f.arrival.as_deref() {
        None | Some("constant") => Arrival::Constant,
        Some("poisson") => Arrival::Poisson,
        Some(other) => {
            bad(format!("arrival must be \"constant\" or \"poisson\", got {other:?}"));
            Arrival::Constant
        }
    };
    // A task sweep's `max_in_flight` caps requests across its tasks, in either kind.
    if kind == SweepKind::Concurrency && (f.arrival.is_some() || (f.max_in_flight.is_some() && f.task.is_none())) {
        bad("arrival and max_in_flight are for `rates` sweeps (and max_in_flight for task sweeps)".into());
    }
    let knee_gain = f.knee_gain.unwrap_or(0.1);
    if !(knee_gain > 0.0 && knee_gain < 1.0) {
        bad(format!("knee_gain must be between 0 and 1 (a fraction per doubling), got {knee_gain}"));
    }
    let slo_quantile = f.slo_quantile.unwrap_or(0.99);
    if !(slo_quantile > 0.0 && slo_quantile <= 1.0) {
        bad(format!("slo_quantile must be above 0 and at most 1, got {slo_quantile}"));
    }
    (arrival, knee_gain, slo_quantile)
}

/// `concurrency = "auto"` / `rates = "auto"`: its bounds and precision, checked.
fn auto_sweep(f: &SweepFile, kind: SweepKind, bad: &mut dyn FnMut(String)) -> AutoSweep {
    let (lowest, highest, default_max) = match kind {
        SweepKind::Concurrency => (1.0, f64::from(MAX_CONCURRENCY), AUTO_MAX_CONCURRENCY),
        SweepKind::Rate => (MIN_RATE, MAX_RATE, MAX_RATE),
    };
    let start = f.start.unwrap_or(1.0);
    let max = f.max.unwrap_or(default_max);
    let whole = |x: f64| kind == SweepKind::Rate || x.fract() == 0.0;
    let number = if kind == SweepKind::Rate { "a number" } else { "a whole number" };
    if !(start.is_finite() && (lowest..=highest).contains(&start) && whole(start)) {
        bad(format!("start must be {number} from {lowest} to {highest}, got {start}"));
    }
    if !(max.is_finite() && max >= start * 2.0 && max <= highest && whole(max)) {
        bad(format!("max must be at least twice start ({start}) and at most {highest}, got {max}"));
    }
    let max_points = f.max_points.map_or(AUTO_MAX_POINTS, |n| n.get());
    if !(3..=64).contains(&max_points) {
        bad(format!("max_points must be from 3 to 64, got {max_points}"));
    }
    let precision = f.precision.unwrap_or(AUTO_PRECISION);
    // Below 1 % the midpoints, rounded to three digits, would land on the bracket.
    if !(0.01..1.0).contains(&precision) {
        bad(format!("precision must be from 0.01 to below 1 (a fraction of the load), got {precision}"));
    }
    if let Some(n) = f.requests.filter(|n| kind == SweepKind::Concurrency && max > n.get() as f64) {
        bad(format!(
            "max ({max}) is more than requests ({n}): a point can never have more than {n} in flight, so throughput would plateau at llmload's limit, not the server's; lower max, or give a duration instead of requests"
        ));
    }
    AutoSweep { start, max, max_points, precision }
}

/// What every point's stage is but its load (and name).
fn template(f: &SweepFile, kind: SweepKind, arrival: Arrival, d: &Defaults<'_>) -> Stage {
    Stage {
        name: String::new(),
        load: match kind {
            SweepKind::Concurrency => Load::Closed { concurrency: 1 },
            SweepKind::Rate => {
                Load::Open { rate: 1.0, arrival, max_in_flight: f.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |m| m.get()), seed: 0 }
            }
        },
        requests: f.requests.map(|n| n.get()),
        duration: f.duration.map(|d| d.0),
        until: None,
        model: None,
        warmup: 0,
        warmup_auto: false,
        stop_on_saturation: false,
        ramp: None,
        cooldown: f.cooldown.map(|d| d.0),
        request: d.request.clone(),
        api: d.spoken.api,
        texts: d.texts.clone(),
        retry: d.retry.clone(),
        rate_limit: d.rate_limit,
        // A sweep's points are judged by the sweep (its knee, its SLO), not by thresholds.
        thresholds: Vec::new(),
        numbers: crate::model::Numbers::default(),
        task: None,
        max_requests_in_flight: None,
    }
}

/// A sweep's list of points, or None for "auto"; problems reported at the value.
fn sweep_points(kind: SweepKind, field: &str, value: &toml::Spanned<toml::Value>, p: &mut Problems<'_>) -> Option<Option<Vec<f64>>> {
    let at = Some(value.span());
    let what = match kind {
        SweepKind::Concurrency => "worker counts (whole numbers)",
        SweepKind::Rate => "requests per second",
    };
    let number = |v: &toml::Value| match (kind, v) {
        (_, toml::Value::Integer(n)) if *n >= 1 => Some(*n as f64),
        (SweepKind::Rate, toml::Value::Float(x)) => Some(*x),
        _ => None,
    };
    match value.get_ref() {
        toml::Value::String(s) if s == "auto" => Some(None),
        toml::Value::Array(items) => match items.iter().map(number).collect::<Option<Vec<f64>>>() {
            Some(points) => Some(Some(points)),
            None => {
                p.at(at, format!("sweep: {field} must list {what}"));
                None
            }
        },
        _ => {
            p.at(at, format!("sweep: {field} must be a list of {what} or \"auto\""));
            None
        }
    }
}
