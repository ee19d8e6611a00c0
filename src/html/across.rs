//! The charts drawn across stages: latency percentiles and throughput against load
//! (with the SLO, the ideal linear scaling, the knee and the SLO's limit), the
//! interactivity/throughput trade-off, and TTFT against input length from a per-request
//! export. Each returns a figure, or the one line saying why there is nothing to draw.

use super::chart::{Chart, Draw, Series};
use super::{Figure, RequestPoint, Run};
use crate::report::{StageResult, measure};

/// What a stage's load is measured in: a closed loop's concurrency, an open loop's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Concurrency,
    Rate,
}

impl Axis {
    pub fn label(self) -> &'static str {
        match self {
            Axis::Concurrency => "concurrency (requests in flight)",
            Axis::Rate => "arrival rate (requests/s)",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Axis::Concurrency => "concurrency",
            Axis::Rate => "arrival rate",
        }
    }
}

/// A stage's load and what it is counted in; None for a load of zero (a trace's own).
pub fn load_of(s: &StageResult) -> Option<(Axis, f64)> {
    let (axis, x) = match &s.open_loop {
        Some(o) => (Axis::Rate, o.target_rate),
        None => (Axis::Concurrency, f64::from(s.concurrency)),
    };
    (x > 0.0 && x.is_finite()).then_some((axis, x))
}

/// (load, stage) of a run's stages on `axis`, in increasing load.
fn points(run: &Run, axis: Axis) -> Vec<(f64, &StageResult)> {
    let mut v: Vec<(f64, &StageResult)> =
        run.result.stages.iter().filter_map(|s| load_of(s).filter(|(a, _)| *a == axis).map(|(_, x)| (x, s))).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The axis most stages load on, when at least two distinct loads ran on it.
fn axis(runs: &[Run]) -> Result<Axis, String> {
    let count = |a: Axis| runs.iter().flat_map(|r| &r.result.stages).filter(|s| load_of(s).is_some_and(|(x, _)| x == a)).count();
    let axis = if count(Axis::Rate) > count(Axis::Concurrency) { Axis::Rate } else { Axis::Concurrency };
    let mut loads: Vec<f64> = runs.iter().flat_map(|r| points(r, axis)).map(|(x, _)| x).collect();
    loads.sort_by(f64::total_cmp);
    loads.dedup();
    if loads.len() < 2 {
        return Err("every stage ran at one load: there is no curve to draw".into());
    }
    Ok(axis)
}

/// Loads spanning 20× or more go on a log axis, labelled at the loads that ran when
/// they are few.
fn log_axis(c: &mut Chart) {
    let mut loads: Vec<f64> = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    loads.sort_by(f64::total_cmp);
    loads.dedup();
    let (lo, hi) = (loads.first().copied().unwrap_or(0.0), loads.last().copied().unwrap_or(0.0));
    c.x_log = lo > 0.0 && hi / lo >= 20.0;
    if c.x_log && loads.len() <= 10 {
        c.x_ticks = loads;
    }
}

/// A series' name: the figure alone for one run, with the run's name beside it for more.
fn named(what: &str, runs: &[Run], i: usize) -> String {
    if runs.len() == 1 { what.to_string() } else { format!("{what} · {}", runs[i].name) }
}

/// e2e (or TTFT) p50/p95/p99 against load, with the SLO's bound as a line.
pub fn percentiles(runs: &[Run], ttft: bool) -> Result<Figure, String> {
    let what = if ttft { "TTFT" } else { "End-to-end latency" };
    let axis = axis(runs).map_err(|e| format!("{what} against load: {e}"))?;
    let prefix = if ttft { "ttft_" } else { "" };
    let mut c = Chart {
        title: format!("{what} percentiles against {}", axis.word()),
        x_label: axis.label().into(),
        y_label: format!("{} (ms)", if ttft { "time to first token" } else { "latency" }),
        y_zero: true,
        ..Chart::default()
    };
    for (i, run) in runs.iter().enumerate() {
        let pts = points(run, axis);
        for (k, q) in ["p50", "p95", "p99"].iter().enumerate() {
            let metric = format!("{prefix}{q}_ms");
            let p: Vec<(f64, f64)> = pts.iter().filter_map(|(x, s)| measure(s, &metric).map(|y| (*x, y))).collect();
            if p.len() >= 2 {
                let bars = bars(&pts, &metric);
                c.series.push(Series { dash: i, marker: i, bars, ..Series::new(named(q, runs, i), k, Draw::LineMarked, p) });
            }
        }
    }
    if c.series.is_empty() {
        let why = if ttft { "no stage streamed at two loads" } else { "no two loads had a successful request" };
        return Err(format!("{what} against load: {why}"));
    }
    log_axis(&mut c);
    let key = if ttft { "ttft_ms" } else { "e2e_ms" };
    if let Some(bound) = runs[0].result.scenario.get("slo").and_then(|s| s.get(key)).and_then(|v| v.as_f64()) {
        c.hlines.push((bound, format!("SLO: each request ≤ {bound} ms")));
    }
    // A threshold is a stage's: one line per bound, naming its stages unless all have it.
    let wanted = ["p50_ms", "p95_ms", "p99_ms"].map(|m| format!("{prefix}{m}"));
    let mut bounds: Vec<(f64, String, Vec<String>)> = Vec::new();
    for t in runs.iter().flat_map(|r| r.result.verdict.iter().flat_map(|v| &v.thresholds)) {
        let expr = t.threshold.split_once(' ').map_or("", |x| x.1);
        let Ok(th) = crate::model::threshold::Threshold::parse(&t.metric, expr) else { continue };
        if !wanted.contains(&t.metric) {
            continue;
        }
        match bounds.iter_mut().find(|b| b.1 == t.threshold) {
            Some(b) if !b.2.contains(&t.stage) => b.2.push(t.stage.clone()),
            Some(_) => {}
            None => bounds.push((th.value, t.threshold.clone(), vec![t.stage.clone()])),
        }
    }
    let all_stages = runs[0].result.stages.len();
    for (value, text, stages) in bounds {
        let whose = if stages.len() >= all_stages { String::new() } else { format!(" ({})", stages.join(", ")) };
        c.hlines.push((value, format!("threshold {text}{whose}")));
    }
    // A bound far above every figure would squash the curves to the floor: say it instead.
    let top = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let (shown, far): (Vec<_>, Vec<_>) = c.hlines.drain(..).partition(|h| h.0 <= top * 2.5);
    c.hlines = shown;
    let mut caption = format!(
        "How {} grows with {}: the median (p50) and the tail (p95, p99) of successful requests per stage{}.",
        if ttft { "the time to first token" } else { "end-to-end latency" },
        axis.word(),
        if c.hlines.is_empty() { String::new() } else { "; the dashed line is the bound the scenario sets".into() }
    );
    if !far.is_empty() {
        let bounds: Vec<String> = far.into_iter().map(|h| h.1).collect();
        caption.push_str(&format!(" Far above the curves, not drawn: {}.", bounds.join(", ")));
    }
    caption.push_str(&coinciding(&c));
    caption.push_str(&bars_said(&c));
    Ok(Figure { caption, charts: vec![c] })
}

/// What a chart's error bars are, when it has any.
fn bars_said(c: &Chart) -> String {
    match c.series.iter().any(|s| !s.bars.is_empty()) {
        true => " Bars: each figure's 95 % confidence interval (a figure without one could not be bounded; docs/metrics.md).".into(),
        false => String::new(),
    }
}

/// A sentence naming the curves drawn exactly over one another (p95 = p99 at every load
/// of a small stage, whose top requests are both): the one beneath would be lost.
fn coinciding(c: &Chart) -> String {
    let mut pairs = Vec::new();
    for (i, a) in c.series.iter().enumerate() {
        for b in &c.series[i + 1..] {
            if a.points == b.points {
                pairs.push(format!("{} and {}", a.label, b.label));
            }
        }
    }
    match pairs.is_empty() {
        true => String::new(),
        false => {
            format!(" Drawn one over the other, equal at every load: {} (too few requests a stage to tell them apart).", pairs.join("; "))
        }
    }
}

/// Each stage's confidence interval of `metric`, where it has one: an error bar.
fn bars(pts: &[(f64, &StageResult)], metric: &str) -> Vec<(f64, f64, f64)> {
    let of = |s: &StageResult| s.ci.as_ref()?.figures.get(metric).and_then(|i| Some((i.lo?, i.hi?)));
    pts.iter().filter_map(|(x, s)| of(s).map(|(lo, hi)| (*x, lo, hi))).collect()
}

/// Successful requests/s against load, beside the line a linear scaling from the lowest
/// load would draw; the knee and the SLO's limit marked.
pub fn throughput(runs: &[Run]) -> Result<Figure, String> {
    let axis = axis(runs).map_err(|e| format!("Throughput against load: {e}"))?;
    let mut c = Chart {
        title: format!("Throughput against {}", axis.word()),
        x_label: axis.label().into(),
        y_label: "successful requests/s".into(),
        y_zero: true,
        ..Chart::default()
    };
    for (i, run) in runs.iter().enumerate() {
        let p: Vec<(f64, f64)> = points(run, axis).iter().map(|(x, s)| (*x, s.throughput.ok_per_s)).collect();
        if let Some(&(x0, y0)) = p.first().filter(|_| p.len() >= 2) {
            // The first run's ideal only: one per run would be grey lines no one tells apart.
            if c.references.is_empty() {
                let last = p.last().map_or(x0, |l| l.0);
                let top = p.iter().map(|q| q.1).fold(0.0, f64::max);
                let (name, slope) = match axis {
                    // An open loop's ideal serves every arrival: ok/s = the rate offered.
                    Axis::Rate => ("every arrival served", 1.0),
                    Axis::Concurrency => ("ideal linear scaling", if x0 > 0.0 { y0 / x0 } else { 0.0 }),
                };
                let label = if runs.len() == 1 { name.to_string() } else { format!("{name}, {}", run.name) };
                c.references.push((label, ideal(slope, x0, last, top * 1.5)));
            }
            let bars = bars(&points(run, axis), "ok_rps");
            c.series.push(Series { marker: i, dash: i, bars, ..Series::new(named("ok requests/s", runs, i), i, Draw::LineMarked, p) });
        }
        let on_axis = |kind: &str| (kind == "rate") == (axis == Axis::Rate);
        // A task sweep's knee and limit are its tasks': marked on the task chart.
        if let Some(sweep) = run.result.sweep.as_ref().filter(|s| on_axis(&s.kind) && s.task.is_none()) {
            if let Some(k) = &sweep.knee {
                c.vlines.push((k.load, named("knee", runs, i)));
            }
            if let Some(l) = sweep.slo.as_ref().and_then(|s| s.largest_meeting_load) {
                c.vlines.push((l, named("SLO limit", runs, i)));
            }
        }
    }
    if c.series.is_empty() {
        return Err("Throughput against load: no run has two loads".into());
    }
    log_axis(&mut c);
    let caption = match axis {
        Axis::Concurrency => {
            "Successful requests per second at each load, and the dashed line a perfect scaling from the lowest load would follow: \
                              where the two part, the server stops keeping up with more load."
        }
        Axis::Rate => {
            "Successful requests per second at each arrival rate, and the dashed line where every arrival is served: \
                       where the two part, the server (or the client's max_in_flight) stops keeping up."
        }
    }
    .to_string()
        + &bars_said(&c);
    Ok(Figure { caption, charts: vec![c] })
}

/// y = slope·x from `x0` to `x1`, sampled geometrically (so it stays straight on a log
/// axis too) and cut where it passes `cap` (so it does not squash the measured curve).
fn ideal(slope: f64, x0: f64, x1: f64, cap: f64) -> Vec<(f64, f64)> {
    let x1 = if slope > 0.0 { x1.min(cap / slope).max(x0) } else { x1 };
    const SAMPLES: u32 = 48;
    (0..=SAMPLES)
        .map(|k| {
            let x = x0 * (x1 / x0).powf(f64::from(k) / f64::from(SAMPLES));
            (x, slope * x)
        })
        .collect()
}

/// Output tokens/s per user against total output tokens/s, a point per stage.
pub fn tradeoff(runs: &[Run]) -> Result<Figure, String> {
    let mut c = Chart {
        title: "Interactivity against throughput".into(),
        x_label: "output tokens/s per user (output ÷ e2e, TTFT included)".into(),
        y_label: "output tokens/s, all users".into(),
        y_zero: true,
        x_zero: true,
        ..Chart::default()
    };
    for (i, run) in runs.iter().enumerate() {
        let mut stages: Vec<(f64, &StageResult)> = run.result.stages.iter().filter_map(|s| load_of(s).map(|(_, x)| (x, s))).collect();
        stages.sort_by(|a, b| a.0.total_cmp(&b.0));
        let stages: Vec<&StageResult> = stages.into_iter().map(|x| x.1).filter(|s| s.tokens.output > 0).collect();
        if stages.len() < 2 {
            continue;
        }
        let p: Vec<(f64, f64)> =
            stages.iter().map(|s| (s.throughput.output_tokens_per_s_per_user, s.throughput.output_tokens_per_s)).collect();
        if i == 0 {
            c.annotations.extend(stages.iter().zip(&p).map(|(s, (x, y))| (*x, *y, s.name.clone())));
        }
        c.series.push(Series { marker: i, dash: i, ..Series::new(named("stages", runs, i), i, Draw::LineMarked, p) });
    }
    if c.series.is_empty() {
        return Err("Interactivity against throughput: fewer than two stages produced output tokens".into());
    }
    let caption = "Each point is a stage: how fast one user receives tokens (output tokens over each request's latency, TTFT included, averaged: \
                   throughput.output_tokens_per_s_per_user; the decode speed alone, 1 / ITL, is output_tokens_per_s_per_user_itl in the result) \
                   against the output tokens/s of all users together. Up and to the right is better; more load usually moves a stage up and left."
        .to_string();
    Ok(Figure { caption, charts: vec![c] })
}

/// TTFT against input length, a point per request of a per-request export.
pub fn ttft_by_input(runs: &[Run]) -> Result<Figure, String> {
    let varies = runs
        .iter()
        .flat_map(|r| &r.result.stages)
        .any(|s| s.tokens.input_length.as_ref().is_some_and(|l| l.max > l.min) && s.ttft_ms.is_some());
    if !varies {
        return Err("TTFT against input length: no streamed stage with input lengths that vary".into());
    }
    let caption = "Each point is a successful streamed request: the prompt's length against its time to first token, a colour per stage \
                   (or per run). Within one stage, the slope is what a longer prompt costs the server in prefill.";
    let against = Against { what: "input length", x_label: "input tokens", x: |r| Some(r.input_tokens as f64), caption };
    ttft_by(runs, against)
}

/// TTFT against the pixels of the images a request carried.
pub fn ttft_by_pixels(runs: &[Run]) -> Result<Figure, String> {
    let caption = "Each point is a successful streamed request that carried images: their pixels (all of a request's together) against \
                   its time to first token, a colour per stage (or per run). The slope is what the server's image encoding and the \
                   image tokens' prefill cost per megapixel.";
    let against = Against { what: "image pixels", x_label: "megapixels", x: |r| r.pixels.map(|p| p as f64 / 1e6), caption };
    ttft_by(runs, against)
}

/// What TTFT is drawn against: its name, its axis, a request's value and the caption.
struct Against {
    what: &'static str,
    x_label: &'static str,
    x: fn(&RequestPoint) -> Option<f64>,
    caption: &'static str,
}

/// TTFT against `a`'s value, a point per request of a per-request export.
fn ttft_by(runs: &[Run], a: Against) -> Result<Figure, String> {
    let mut c = Chart {
        title: format!("Time to first token against {}", a.what),
        x_label: a.x_label.into(),
        y_label: "time to first token (ms)".into(),
        y_zero: true,
        x_zero: true,
        ..Chart::default()
    };
    let given = runs.iter().any(|r| r.requests.is_some());
    for (i, run) in runs.iter().enumerate() {
        let Some(requests) = &run.requests else { continue };
        // Every nth request: a few thousand points show the shape; more only weigh the page.
        let step = requests.len().div_ceil(3000).max(1);
        let kept: Vec<&RequestPoint> = requests.iter().step_by(step).collect();
        // One run: a colour per stage, since queueing at a higher load lifts a stage's
        // TTFT whatever its prompts. Several: a colour per run.
        let stages: Vec<&str> = if runs.len() == 1 { run.result.stages.iter().map(|s| s.name.as_str()).collect() } else { vec![""] };
        for (k, stage) in stages.iter().enumerate() {
            let p: Vec<(f64, f64)> =
                kept.iter().filter(|r| runs.len() > 1 || r.stage == *stage).filter_map(|r| Some(((a.x)(r)?, r.ttft_ms))).collect();
            if p.is_empty() {
                continue;
            }
            let (label, colour) = if runs.len() == 1 { (format!("stage {stage}"), k) } else { (run.name.clone(), i) };
            c.series.push(Series { marker: colour, ..Series::new(label, colour, Draw::Points, p) });
        }
    }
    if c.series.is_empty() {
        let why = if given {
            "the --requests files hold no successful streamed request of the measured window"
        } else {
            "needs each request's figures; pass --requests FILE.jsonl, written by `run --requests-out`"
        };
        return Err(format!("TTFT against {}: {why}", a.what));
    }
    Ok(Figure { caption: a.caption.to_string(), charts: vec![c] })
}
