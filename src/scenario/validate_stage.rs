//! The checks of every `[[stage]]`: its load (closed or open loop), bounds and name,
//! and the `[retry]` and `[rate_limit]` policies a stage inherits and may override.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::MAX_CONCURRENCY;
use super::error::Problems;
use super::file::{RateLimitFile, RetryFile, StageFile, ThresholdsFile};
use super::request::{Spoken, lengths};
use super::stage::{Arrival, DEFAULT_MAX_IN_FLIGHT, Load, MAX_RATE, MIN_RATE, RetryOn, RetryPolicy, Stage, default_stage_name, rate_name};
use crate::model::threshold::Threshold;
use crate::model::{MAX_RETRY_AFTER, Numbers, RateLimit, RequestParams};
use crate::workload::trace::Replay;

/// What a stage takes from the scenario where it does not override it.
pub(super) struct Defaults<'a> {
    pub request: &'a RequestParams,
    pub texts: &'a crate::workload::texts::TextsSpec,
    pub spoken: Spoken,
    pub retry: &'a RetryPolicy,
    pub rate_limit: RateLimit,
    /// `[thresholds]`: every stage's, unless it sets the same metric itself.
    pub thresholds: &'a [Threshold],
    /// Where a stage's files (its images' folder) are found from.
    pub base_dir: &'a std::path::Path,
    /// The `[[task]]`s a stage may run.
    pub tasks: &'a [Arc<crate::workload::task::TaskDef>],
}

/// The stages as written, checked, with the scenario's defaults where a stage does not
/// override them; and the names taken.
/// `traces[k]`: the trace stage *k*'s prompts replay, if they do.
pub(super) fn stages(
    raw: Vec<Spanned<StageFile>>,
    traces: &[Option<Arc<Replay>>],
    d: &Defaults<'_>,
    p: &mut Problems<'_>,
) -> (Vec<Stage>, HashSet<String>) {
    let mut stages = Vec::with_capacity(raw.len());
    let mut names = HashSet::new();
    for (i, s) in raw.into_iter().enumerate() {
        let span = s.span();
        let s = s.into_inner();
        let concurrency = s.concurrency.map_or(1, |c| c.get());
        let replay = traces.get(i).and_then(Option::as_ref);
        let load = match replay {
            Some(r) => trace_load(&s, i, &span, r, p),
            None => stage_load(&s, i, &span, p),
        };
        let name = s.name.clone().unwrap_or_else(|| match load {
            Load::Open { arrival: Arrival::Trace { speed }, .. } => format!("trace ×{}", rate_name(speed, 2)),
            Load::Open { rate, arrival, .. } => format!("{} {}/s", arrival.name(), rate_name(rate, 2)),
            Load::Closed { .. } => default_stage_name(concurrency),
        });
        if concurrency > MAX_CONCURRENCY {
            p.at(Some(span.clone()), format!("stage {}: concurrency must be at most {MAX_CONCURRENCY}, got {concurrency}", i + 1));
        }
        if name.trim().is_empty() {
            p.at(Some(span.clone()), format!("stage {}: name must not be empty", i + 1));
        }
        if !names.insert(name.clone()) {
            p.at(Some(span.clone()), format!("stage {}: name {name:?} is used twice; stage names label the results", i + 1));
        }
        let (duration, until) = length(&s, (&name, &span), replay.is_some(), p);
        if let Some(m) = &s.model
            && m.trim().is_empty()
        {
            p.at(Some(span.clone()), format!("stage {name:?}: model must not be empty"));
        }
        let ramp = match &s.ramp {
            Some(r) if r.get_ref().0.is_zero() => {
                p.at(Some(r.span()), format!("stage {name:?}: ramp must be greater than zero"));
                None
            }
            r => r.as_ref().map(|r| r.get_ref().0),
        };
        let cooldown = match &s.cooldown {
            Some(c) if c.get_ref().0.is_zero() => {
                p.at(Some(c.span()), format!("stage {name:?}: cooldown must be greater than zero"));
                None
            }
            c => c.as_ref().map(|c| c.get_ref().0),
        };
        let api = s.api.unwrap_or(d.spoken.api);
        let spoken = Spoken { api, ..d.spoken };
        let request = match &s.request {
            None => d.request.clone(),
            Some(f) => {
                let what = format!("stage {name:?}: request");
                let own = super::request::request(f.get_ref(), &what, spoken, d.base_dir, p);
                let merged = d.request.overlay(&own);
                // Checked in its own table already when it sets both.
                if own.min_tokens.is_none() || own.max_output_tokens().is_none() {
                    lengths(&merged, Some(f.span()), &what, p);
                }
                super::tools::merged(&merged, api, &what, Some(f.span()), p);
                merged
            }
        };
        // A stage of another API inherits the scenario's chat-only fields: refused.
        if s.request.is_none() && s.api.is_some() {
            super::tools::merged(&request, api, &format!("stage {name:?}: request"), Some(span.clone()), p);
        }
        let texts = match &s.request {
            Some(f) => super::apis::fields(f.get_ref(), &format!("stage {name:?}: request"), api, d.base_dir, p).over(d.texts),
            None => d.texts.clone(),
        };
        let retry = s.retry.as_ref().map_or_else(|| d.retry.clone(), |f| retry_policy(d.retry, f, &format!("stage {name:?}: retry"), p));
        let rate_limit =
            s.rate_limit.as_ref().map_or(d.rate_limit, |f| self::rate_limit(&d.rate_limit, f, &format!("stage {name:?}: rate_limit"), p));
        // A trace stage runs its lines, or fewer.
        let lines = replay.map(|r| r.trace.lines.len() as u64);
        let requests = match (s.requests.map(|n| n.get()), lines) {
            (Some(n), Some(l)) => Some(n.min(l)),
            (n, l) => n.or(l),
        };
        let task = stage_task(&s, (&name, &span, replay.is_some()), d.tasks, p);
        let (warmup, warmup_auto, stop_on_saturation) = watched(&s, (&name, &span), load, replay.is_some(), p);
        let own = s.thresholds.as_ref().map_or_else(Vec::new, |f| thresholds(f, &format!("stage {name:?}: thresholds"), p));
        let mut thresholds: Vec<Threshold> = d.thresholds.iter().filter(|t| !own.iter().any(|o| o.metric == t.metric)).copied().collect();
        thresholds.extend(own);
        stages.push(Stage {
            name,
            load,
            requests,
            duration,
            until,
            model: s.model,
            warmup,
            warmup_auto,
            stop_on_saturation,
            ramp,
            cooldown,
            request,
            api,
            texts,
            retry,
            rate_limit,
            thresholds,
            numbers: Numbers::default(),
            task,
            max_requests_in_flight: s.max_in_flight.filter(|_| s.task.is_some()).map(|m| m.get()),
        });
    }
    (stages, names)
}

/// What the run's watcher may end early: (warmup requests, `warmup = "auto"`,
/// `stop_on_saturation`), refused where they do not go.
fn watched(s: &StageFile, (name, span): (&str, &Range<usize>), load: Load, replay: bool, p: &mut Problems<'_>) -> (u64, bool, bool) {
    let (warmup, warmup_auto) = warmup(s.warmup.as_ref(), &format!("stage {name:?}"), p);
    if let (true, Some(r)) = (warmup_auto, &s.ramp) {
        p.at(Some(r.span()), format!("stage {name:?}: warmup = \"auto\" does not go with a ramp (a ramp is a warm-up of its own)"));
    }
    let stop_on_saturation = s.stop_on_saturation.unwrap_or(false);
    if stop_on_saturation && (replay || !matches!(load, Load::Open { .. })) {
        let why = "it watches an open loop's backlog (a closed loop's cannot grow; a trace's rate is its own)";
        p.at(Some(span.clone()), format!("stage {name:?}: stop_on_saturation = true: {why}"));
    }
    (warmup, warmup_auto, stop_on_saturation)
}

/// `warmup`: a count of requests, or "auto" (then 0 requests and `true`).
pub(super) fn warmup(v: Option<&Spanned<toml::Value>>, what: &str, p: &mut Problems<'_>) -> (u64, bool) {
    match v.map(|v| (v.get_ref(), v.span())) {
        None => (0, false),
        Some((toml::Value::Integer(n), span)) => match u64::try_from(*n) {
            Ok(n) => (n, false),
            Err(_) => {
                p.at(Some(span), format!("{what}: warmup must be a count of requests (0 or more) or \"auto\", got {n}"));
                (0, false)
            }
        },
        Some((toml::Value::String(s), _)) if s == "auto" => (0, true),
        Some((other, span)) => {
            p.at(Some(span), format!("{what}: warmup must be a count of requests or \"auto\", got {other}"));
            (0, false)
        }
    }
}

/// How long a stage runs: its `duration` (or `until`'s `max`) and its `until`; a stage
/// given no length at all (a trace's is its own) is said to need one.
fn length(
    s: &StageFile,
    (name, span): (&str, &Range<usize>),
    replay: bool,
    p: &mut Problems<'_>,
) -> (Option<std::time::Duration>, Option<crate::model::UntilSpec>) {
    let until = s.until.as_ref().and_then(|u| super::until::until(u, &format!("stage {name:?}"), p));
    if let (Some(u), true) = (&s.until, s.requests.is_some() || s.duration.is_some()) {
        let why = "until ends the stage (at its max at the latest): give no requests or duration too";
        p.at(Some(u.span()), format!("stage {name:?}: {why}"));
    }
    let duration = match &s.duration {
        Some(d) if d.get_ref().0.is_zero() => {
            p.at(Some(d.span()), format!("stage {name:?}: duration must be greater than zero"));
            None
        }
        Some(d) => Some(d.get_ref().0),
        None => until.as_ref().map(|u| u.max),
    };
    if s.requests.is_none() && s.duration.is_none() && !replay && s.until.is_none() {
        p.at(Some(span.clone()), format!("stage {name:?}: give `requests` or `duration` (or both; the first reached ends the stage)"));
    }
    (duration, until)
}

/// The `[[task]]` a stage's `task` names; one that is not defined is reported, and so
/// is what a task stage does not take: its requests are its steps' (their model,
/// fields and API), and its load has no ramp or cooldown yet.
fn stage_task(
    s: &StageFile,
    (name, span, replay): (&str, &Range<usize>, bool),
    tasks: &[Arc<crate::workload::task::TaskDef>],
    p: &mut Problems<'_>,
) -> Option<Arc<crate::workload::task::TaskDef>> {
    let t = s.task.as_ref()?;
    let found = tasks.iter().find(|d| d.name == *t.get_ref()).cloned();
    if found.is_none() {
        let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        p.at(Some(t.span()), format!("stage {name:?}: task {:?} is not defined (tasks: {known:?})", t.get_ref()));
    }
    let steps_own = "set it on the task's steps ([[task.step]])";
    for (set, field, why) in [
        (s.model.is_some(), "model", steps_own),
        (s.request.is_some(), "request", steps_own),
        (s.api.is_some(), "api", steps_own),
        (s.ramp.is_some(), "ramp", "not for task stages yet"),
        (s.cooldown.is_some(), "cooldown", "not for task stages yet"),
        (replay, "trace prompts", "a task's input is a prompt, not a trace's line"),
    ] {
        if set {
            p.at(Some(span.clone()), format!("stage {name:?}: `{field}` does not go with `task`: {why}"));
        }
    }
    found
}

/// `base` with the fields `f` sets; problems reported at `f`, prefixed with `what`.
pub(super) fn retry_policy(base: &RetryPolicy, f: &Spanned<RetryFile>, what: &str, p: &mut Problems<'_>) -> RetryPolicy {
    let span = f.span();
    let f = f.get_ref();
    let mut r = base.clone();
    if let Some(n) = f.max_attempts {
        r.max_attempts = n.get();
        if r.max_attempts > MAX_ATTEMPTS {
            p.at(Some(span.clone()), format!("{what}.max_attempts must be at most {MAX_ATTEMPTS}, got {}", r.max_attempts));
        }
    }
    r.backoff = f.backoff.map_or(r.backoff, |d| d.0);
    r.max_backoff = f.max_backoff.map_or(r.max_backoff, |d| d.0);
    r.max_retry_after = f.max_retry_after.map_or(r.max_retry_after, |d| d.0);
    r.after_window = f.after_window.map_or(r.after_window, |d| d.0);
    if r.max_retry_after > MAX_RETRY_AFTER {
        p.at(Some(span.clone()), format!("{what}.max_retry_after must be at most {} s", MAX_RETRY_AFTER.as_secs()));
    }
    r.respect_retry_after = f.respect_retry_after.unwrap_or(r.respect_retry_after);
    if r.backoff > r.max_backoff {
        p.at(Some(span.clone()), format!("{what}.backoff ({:?}) must not exceed max_backoff ({:?})", r.backoff, r.max_backoff));
    }
    if let Some(on) = &f.on {
        r.on = Vec::new();
        for o in on {
            match RetryOn::parse(o.get_ref()) {
                Some(c) if !r.on.contains(&c) => r.on.push(c),
                Some(_) => {}
                None => {
                    let names: Vec<&str> = RetryOn::ALL.iter().map(|(n, _)| *n).collect();
                    p.at(Some(o.span()), format!("{what}.on: unknown outcome {:?}, expected one of {}", o.get_ref(), names.join(", ")))
                }
            }
        }
    }
    r
}

/// Why a tokens-per-minute limit needs `max_tokens`, for the scenario and `--tpm`.
pub const TPM_NEEDS_MAX_TOKENS: &str = "needs request.max_tokens (or max_completion_tokens): a request weighs its prompt plus its output limit, as providers count it; without one completions would go uncounted";

/// Most attempts per request: enough for any sane policy, bounded so a typo cannot
/// multiply the load a thousandfold.
pub const MAX_ATTEMPTS: u32 = 20;
/// Highest rate accepted, per minute.
const MAX_PER_MINUTE: f64 = 1e9;

pub(super) fn rate_limit(base: &RateLimit, f: &Spanned<RateLimitFile>, what: &str, p: &mut Problems<'_>) -> RateLimit {
    let span = f.span();
    let f = f.get_ref();
    let mut check = |name: &str, v: Option<f64>, old: Option<f64>| match v {
        Some(v) if !(v.is_finite() && v > 0.0 && v <= MAX_PER_MINUTE) => {
            p.at(Some(span.clone()), format!("{what}.{name} must be a positive number per minute (at most 1e9), got {v}"));
            old
        }
        Some(v) => Some(v),
        None => old,
    };
    let limit = RateLimit { rpm: check("rpm", f.rpm, base.rpm), tpm: check("tpm", f.tpm, base.tpm) };
    if f.rpm.is_none() && f.tpm.is_none() {
        p.at(Some(span), format!("{what} sets no limit: give rpm, tpm or both"));
    }
    limit
}

/// The stage's load: closed (`concurrency`) or open (`rate`, `arrival`, …); problems
/// reported at the stage.
/// A stage whose prompts are a trace: open loop on the trace's clock, at its speed.
fn trace_load(s: &StageFile, i: usize, span: &Range<usize>, r: &Replay, p: &mut Problems<'_>) -> Load {
    let why = "its prompts are a trace, which runs open loop on the trace's clock";
    for (set, field, instead) in [
        (s.concurrency.is_some(), "concurrency", " (scale the clock with `speed`, cap it with `max_in_flight`)"),
        (s.rate.is_some(), "rate", " (scale the clock with `speed`)"),
        (s.arrival.is_some(), "arrival", ""),
        (s.burstiness.is_some(), "burstiness", ""),
        (s.seed.is_some(), "seed", " (the prompts' `seed` sets the text)"),
        (s.ramp.is_some(), "ramp", ""),
        (s.cooldown.is_some(), "cooldown", ""),
        (s.warmup.is_some(), "warmup", " (skip into it with the trace's `start`)"),
    ] {
        if set {
            p.at(Some(span.clone()), format!("stage {}: {why}: `{field}` does not go with it{instead}", i + 1));
        }
    }
    let speed = s.speed.as_ref().map_or(r.speed, |v| super::trace::check_speed(*v.get_ref(), &format!("stage {}", i + 1), v.span(), p));
    let max_in_flight = s.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |m| m.get());
    if max_in_flight > MAX_CONCURRENCY {
        p.at(Some(span.clone()), format!("stage {}: max_in_flight must be at most {MAX_CONCURRENCY}, got {max_in_flight}", i + 1));
    }
    // The mean rate, for figures that want one: lines over the span, on this clock.
    let secs = r.trace.span_us as f64 / 1e6 / speed;
    let rate = if secs > 0.0 { r.trace.lines.len() as f64 / secs } else { MAX_RATE };
    Load::Open { rate: rate.clamp(MIN_RATE, MAX_RATE), arrival: Arrival::Trace { speed }, max_in_flight, seed: 0 }
}

/// `[thresholds]` (or a stage's): each `metric = "< bound"` parsed, a bad one reported at
/// its place with the forms and names accepted.
pub(super) fn thresholds(f: &ThresholdsFile, what: &str, p: &mut Problems<'_>) -> Vec<Threshold> {
    let mut out = Vec::new();
    for (name, expr) in f {
        match Threshold::parse(name, expr.get_ref()) {
            Ok(t) => out.push(t),
            Err(e) => p.at(Some(expr.span()), format!("{what}: {e}")),
        }
    }
    out
}

fn stage_load(s: &StageFile, i: usize, span: &Range<usize>, p: &mut Problems<'_>) -> Load {
    let concurrency = s.concurrency.map_or(1, |c| c.get());
    let at = |v: Option<Range<usize>>| Some(v.unwrap_or_else(|| span.clone()));
    if let Some(v) = &s.speed {
        p.at(Some(v.span()), format!("stage {}: speed is for stages whose prompts are a trace", i + 1));
    }
    let Some(rate) = &s.rate else {
        for (set, field) in [
            (s.arrival.is_some(), "arrival"),
            (s.burstiness.is_some(), "burstiness"),
            // A task stage's is the most requests in flight across its tasks.
            (s.max_in_flight.is_some() && s.task.is_none(), "max_in_flight"),
            (s.seed.is_some(), "seed"),
        ] {
            if set {
                p.at(at(None), format!("stage {}: {field} is for open-loop stages: give `rate` (requests/s) too", i + 1));
            }
        }
        return Load::Closed { concurrency };
    };
    if s.concurrency.is_some() {
        p.at(at(None), format!("stage {}: give `concurrency` (closed loop) or `rate` (open loop), not both", i + 1));
    }
    let r = *rate.get_ref();
    if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
        p.at(at(Some(rate.span())), format!("stage {}: rate must be from {MIN_RATE} to {MAX_RATE} requests/s, got {r}", i + 1));
    }
    let burstiness = s.burstiness.as_ref().map(|b| {
        let v = *b.get_ref();
        if !(v.is_finite() && v > 0.0 && v <= 100.0) {
            p.at(at(Some(b.span())), format!("stage {}: burstiness must be above 0 and at most 100, got {v}", i + 1));
        }
        (v, b.span())
    });
    let arrival = match s.arrival.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
        None | Some(("constant", _)) => Arrival::Constant,
        Some(("poisson", _)) => Arrival::Poisson,
        Some(("gamma", _)) => Arrival::Gamma { burstiness: burstiness.as_ref().map_or(2.0, |b| b.0) },
        Some((other, sp)) => {
            p.at(at(Some(sp)), format!("stage {}: arrival must be \"constant\", \"poisson\" or \"gamma\", got {other:?}", i + 1));
            Arrival::Constant
        }
    };
    if let Some((_, sp)) = burstiness
        && !matches!(arrival, Arrival::Gamma { .. })
    {
        p.at(at(Some(sp)), format!("stage {}: burstiness is for arrival = \"gamma\"", i + 1));
    }
    let max_in_flight = s.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |m| m.get());
    if max_in_flight > MAX_CONCURRENCY {
        p.at(at(None), format!("stage {}: max_in_flight must be at most {MAX_CONCURRENCY}, got {max_in_flight}", i + 1));
    }
    Load::Open { rate: r, arrival, max_in_flight, seed: s.seed.unwrap_or(i as u64) }
}
