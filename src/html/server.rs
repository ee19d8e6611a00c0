//! The server's own metrics in the report: over the run, its series under the client's
//! per-second figures on one time axis (seconds since the run started, each stage's
//! start marked); and across stages, its queue, running requests, KV-cache usage and
//! GPU utilization against load, beside the latency and throughput charts.

use super::across::{Axis, load_of};
use super::chart::{Chart, Draw, PANEL_HEIGHT, Series};
use super::{Figure, Run};
use crate::report::StageResult;
use crate::servermetrics::summary::{EndpointRecord, SeriesPoint};

/// Unix seconds of an RFC 3339 time.
fn unix(t: &str) -> Option<f64> {
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    at.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

/// When a stage started, Unix seconds: its window's opening less the warm-up before it.
fn stage_start(s: &StageResult) -> Option<f64> {
    Some(unix(s.window_start.as_deref()?)? - s.window_offset_s.unwrap_or(0.0))
}

fn panel(title: &str, x: &str, y: &str) -> Chart {
    Chart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        y_zero: true,
        x_zero: true,
        height: PANEL_HEIGHT,
        ..Chart::default()
    }
}

/// A figure's line of `f` over an endpoint's points, where it has one.
fn line(e: &EndpointRecord, t0: f64, f: impl Fn(&SeriesPoint) -> Option<f64>) -> Vec<(f64, f64)> {
    e.series.iter().filter_map(|p| Some((p.t - t0, f(p)?))).collect()
}

/// The prefix cache's hits over its queries between one scrape and the next, %.
fn hit_rates(e: &EndpointRecord, t0: f64) -> Vec<(f64, f64)> {
    e.series
        .windows(2)
        .filter_map(|w| {
            let q = w[1].prefix_queries? - w[0].prefix_queries?;
            let h = w[1].prefix_hits? - w[0].prefix_hits?;
            (q > 0.0).then(|| (w[1].t - t0, 100.0 * h / q))
        })
        .collect()
}

/// The run second by second, the client's figures over the server's: None when the
/// run read no server metrics.
pub fn timeline(run: &Run) -> Option<Result<Figure, String>> {
    let endpoints = &run.result.server_metrics.as_ref()?.endpoints;
    if endpoints.is_empty() {
        return None;
    }
    let Some(t0) = unix(&run.result.started_at) else {
        return Some(Err(format!("{}: the server over the run: the result has no start time to put it on", run.name)));
    };
    let x = "seconds since the run started";
    let mut rate = panel("Client: requests finished per second", x, "requests/s");
    let mut flight = panel("Client: requests in flight", x, "in flight (most seen)");
    let (mut stage_lines, mut ok, mut inflight) = (Vec::new(), Vec::new(), Vec::new());
    for s in &run.result.stages {
        let Some(start) = stage_start(s) else { continue };
        let at = |t: u32| start - t0 + f64::from(t) + 0.5;
        stage_lines.push((start - t0, format!(" {}", s.name)));
        // One line through the stages, broken between them: they follow one another,
        // and the marks say where each starts.
        ok.extend(s.series.iter().map(|x| (at(x.t_s), x.ok as f64)));
        inflight.extend(s.series.iter().map(|x| (at(x.t_s), if x.requests > 0 { x.in_flight as f64 } else { f64::NAN })));
        // The stages run one after another (a stage's last, partial second may be drawn
        // past the next one's start): in order, each line broken where a stage ends.
        let gap = (ok.last().map_or(0.0, |p| p.0), f64::NAN);
        ok.push(gap);
        inflight.push(gap);
    }
    rate.series.push(Series::new("ok requests/s", 0, Draw::LineMarked, ok));
    flight.series.push(Series::new("in flight", 0, Draw::LineMarked, inflight));
    let mut queue = panel("Server: requests running and waiting", x, "requests");
    let mut cache = panel("Server: KV-cache usage and prefix-cache hits", x, "%");
    let mut gpu = panel("Server: GPU utilization", x, "%");
    let mut power = panel("Server: GPU power", x, "W");
    let many = endpoints.len() > 1;
    for (k, e) in endpoints.iter().enumerate() {
        let named = |what: &str| if many { format!("{what} · {}", e.name) } else { what.to_string() };
        let add = |c: &mut Chart, what: &str, colour: usize, dash: usize, points: Vec<(f64, f64)>| {
            if !points.is_empty() {
                c.series.push(Series { dash, marker: dash, ..Series::new(named(what), (colour + 2 * k) % 6, Draw::LineMarked, points) });
            }
        };
        add(&mut queue, "running", 0, 0, line(e, t0, |p| p.running));
        add(&mut queue, "waiting", 1, 1, line(e, t0, |p| p.waiting));
        add(&mut cache, "KV-cache usage", 2, 0, line(e, t0, |p| p.kv_cache_usage.map(|u| 100.0 * u)));
        add(&mut cache, "prefix-cache hits", 3, 1, hit_rates(e, t0));
        add(&mut gpu, "GPU utilization", 4, 0, line(e, t0, |p| p.gpu_util));
        add(&mut power, "GPU power", 5, 0, line(e, t0, |p| p.gpu_power_w));
    }
    let charts: Vec<Chart> = [rate, flight, queue, cache, gpu, power]
        .into_iter()
        .filter(|c| c.series.iter().any(|s| s.points.iter().any(|p| p.1.is_finite())))
        .map(|mut c| {
            c.vlines = stage_lines.clone();
            c
        })
        .collect();
    if charts.len() <= 2 {
        return Some(Err(format!("{}: the server over the run: its endpoints gave no figure to draw", run.name)));
    }
    let caption = "The run second by second: the client's requests finished and in flight above, the server's own figures below \
                   (as it reported them at each scrape), on one clock; each stage's start is marked."
        .to_string();
    Some(Ok(Figure { caption, charts }))
}

/// The server's figures over each stage's window against its load: None when no stage
/// has them.
pub fn across(runs: &[Run]) -> Option<Result<Figure, String>> {
    let any = runs.iter().flat_map(|r| &r.result.stages).any(|s| !s.server.is_empty());
    if !any {
        return None;
    }
    let on = |a: Axis| runs.iter().flat_map(|r| &r.result.stages).filter(|s| load_of(s).is_some_and(|(x, _)| x == a)).count();
    let axis = if on(Axis::Rate) > on(Axis::Concurrency) { Axis::Rate } else { Axis::Concurrency };
    let x = axis.label();
    let mut queue = panel("Server: requests waiting and running against load", x, "requests");
    let mut kv = panel("Server: KV-cache usage against load", x, "%");
    let mut gpu = panel("Server: GPU utilization against load", x, "%");
    for (i, run) in runs.iter().enumerate() {
        let named = |what: &str| if runs.len() == 1 { what.to_string() } else { format!("{what} · {}", run.name) };
        let mut points: Vec<(f64, &StageResult)> =
            run.result.stages.iter().filter_map(|s| load_of(s).filter(|(a, _)| *a == axis).map(|(_, x)| (x, s))).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let of = |f: &dyn Fn(&crate::servermetrics::summary::StageServer) -> Option<f64>| -> Vec<(f64, f64)> {
            points.iter().filter_map(|(x, s)| Some((*x, f(s.server.first()?)?))).collect()
        };
        let add = |c: &mut Chart, what: &str, colour: usize, dash: usize, p: Vec<(f64, f64)>| {
            if p.len() >= 2 {
                let colour = if runs.len() == 1 { colour } else { i };
                c.series.push(Series { dash, marker: dash, ..Series::new(named(what), colour, Draw::LineMarked, p) });
            }
        };
        add(&mut queue, "waiting (max)", 1, 1, of(&|s| Some(s.waiting?.max)));
        add(&mut queue, "waiting (mean)", 1, 2, of(&|s| Some(s.waiting?.mean)));
        add(&mut queue, "running (max)", 0, 0, of(&|s| Some(s.running?.max)));
        add(&mut kv, "KV-cache usage (max)", 2, 0, of(&|s| Some(100.0 * s.kv_cache_usage?.max)));
        add(&mut kv, "KV-cache usage (mean)", 2, 2, of(&|s| Some(100.0 * s.kv_cache_usage?.mean)));
        add(&mut gpu, "GPU utilization (mean)", 4, 0, of(&|s| Some(s.gpu_util?.mean)));
        if let Some(k) = run.result.sweep.as_ref().and_then(|s| s.knee.as_ref()) {
            for c in [&mut queue, &mut kv, &mut gpu] {
                c.vlines.push((k.load, named("knee")));
            }
        }
    }
    let charts: Vec<Chart> = [queue, kv, gpu].into_iter().filter(|c| !c.series.is_empty()).collect();
    if charts.is_empty() {
        return Some(Err("The server against load: no run has its figures at two loads".into()));
    }
    let caption = "What the server reported over each stage's window, against the load: requests waiting in its queue and \
                   running at once, its KV cache's use and its GPUs' — where the queue starts to grow, the server has stopped \
                   keeping up, and the panel beside it says what ran out."
        .to_string();
    Some(Ok(Figure { caption, charts }))
}
