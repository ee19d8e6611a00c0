//! The charts' data checked against the results they are drawn from (committed results
//! of real runs on the mock: the seed comparison, a streamed run, a sweep).

use super::across::{percentiles, throughput};
use super::chart::Chart;
use super::server;
use super::stage::{distributions, seconds};
use super::{Run, build};
use crate::report::RunResult;

fn run(name: &str, json: &str) -> Run {
    let result: RunResult = serde_json::from_str(json).expect("a committed result");
    Run { name: name.into(), result, requests: None }
}

fn seed() -> Run {
    run("seed", include_str!("../../tests/data/report/seed.json"))
}

fn streamed() -> Run {
    run("streamed", include_str!("../../tests/data/report/streamed.json"))
}

fn sweep() -> Run {
    run("sweep", include_str!("../../tests/data/report/sweep.json"))
}

fn with_server() -> Run {
    run("server", include_str!("../../tests/data/report/server.json"))
}

fn series<'a>(c: &'a Chart, label: &str) -> &'a [(f64, f64)] {
    &c.series.iter().find(|s| s.label == label).unwrap_or_else(|| panic!("no series {label}")).points
}

#[test]
fn percentile_points_are_the_stages_figures_at_their_loads() {
    let runs = [seed()];
    let f = percentiles(&runs, false).unwrap();
    let want: Vec<(f64, f64)> =
        runs[0].result.stages.iter().map(|s| (f64::from(s.concurrency), s.latency_ms.as_ref().unwrap().p99)).collect();
    assert_eq!(series(&f.charts[0], "p99"), want.as_slice());
    assert!(f.charts[0].x_log, "1 to 50 spans 50×: a log axis");
    assert_eq!(f.charts[0].x_ticks, [1.0, 10.0, 20.0, 50.0], "labelled at the loads that ran");
}

#[test]
fn each_percentile_has_its_confidence_interval_as_a_bar_where_it_has_one() {
    let mut r = seed();
    for s in &mut r.result.stages {
        s.ci = crate::report::ci::stage_ci(s, 0.95);
    }
    let f = percentiles(std::slice::from_ref(&r), false).unwrap();
    let bars = |label: &str| f.charts[0].series.iter().find(|s| s.label == label).unwrap().bars.clone();
    let want: Vec<(f64, f64, f64)> = r
        .result
        .stages
        .iter()
        .map(|s| {
            let i = &s.ci.as_ref().unwrap().figures["p50_ms"];
            (f64::from(s.concurrency), i.lo.unwrap(), i.hi.unwrap())
        })
        .collect();
    assert_eq!(bars("p50"), want);
    assert!(want.iter().all(|(_, lo, hi)| lo < hi));
    // 100 requests cannot bound a p99: no bar, and the caption says what bars are.
    assert!(bars("p99").is_empty());
    assert!(f.caption.contains("Bars: each figure's 95 % confidence interval"), "{}", f.caption);
    assert!(!percentiles(&[seed()], false).unwrap().caption.contains("Bars:"), "results before intervals draw none");
}

#[test]
fn percentile_curves_drawn_over_one_another_are_said_to_be() {
    let runs = [seed()];
    assert!(!percentiles(&runs, false).unwrap().caption.contains("one over the other"));
    let mut r = seed();
    for s in &mut r.result.stages {
        let l = s.latency_ms.as_mut().unwrap();
        l.p95 = l.p99;
    }
    let f = percentiles(std::slice::from_ref(&r), false).unwrap();
    assert!(f.caption.contains("Drawn one over the other, equal at every load: p95 and p99"), "{}", f.caption);
}

#[test]
fn the_ideal_line_is_linear_from_the_lowest_load_at_every_point() {
    let runs = [seed()];
    let c = &throughput(&runs).unwrap().charts[0];
    let (x0, y0) = series(c, "ok requests/s")[0];
    let ideal = &c.references[0].1;
    assert!(ideal.len() > 10, "sampled, so it stays straight on the log axis");
    for (x, y) in ideal {
        assert!((y - y0 * x / x0).abs() < 1e-9 * y.max(1.0), "({x}, {y}) is off y = {}·x", y0 / x0);
    }
    let top = series(c, "ok requests/s").iter().map(|p| p.1).fold(0.0, f64::max);
    assert!(ideal.last().unwrap().1 <= top * 1.5 + 1e-9, "cut at 1.5× the highest figure");
}

#[test]
fn a_sweep_marks_its_knee_and_slo_limit_at_their_loads() {
    let runs = [sweep()];
    let c = &throughput(&runs).unwrap().charts[0];
    let s = runs[0].result.sweep.as_ref().unwrap();
    let at = |label: &str| c.vlines.iter().find(|v| v.1 == label).map(|v| v.0);
    assert_eq!(at("knee"), Some(s.knee.as_ref().unwrap().load));
    assert_eq!(at("SLO limit"), s.slo.as_ref().unwrap().largest_meeting_load);
}

#[test]
fn histogram_shares_add_up_to_every_request_over_the_stages_range() {
    let runs = [streamed()];
    for stage in &runs[0].result.stages {
        let (f, notes) = distributions(&runs, &stage.name);
        assert!(notes.is_empty(), "{notes:?}");
        let f = f.unwrap();
        assert_eq!(f.charts.len(), 5, "e2e, TTFT, ITL, input and output lengths");
        for c in &f.charts {
            let p = &c.series[0].points;
            // Steps: (lo, 0), then two points per bin, then (hi, 0).
            let total: f64 = p[1..p.len() - 1].chunks(2).map(|b| b[0].1).sum();
            let cut = f.caption.contains(&format!("above the {}", c.title.to_lowercase()));
            assert!(total <= 100.0 + 1e-6 && (cut || (total - 100.0).abs() < 1e-6), "{}: {total} %: {}", c.title, f.caption);
            assert!(total > 99.0, "{}: all but the tail past p99.5 is drawn ({total} %)", c.title);
        }
        let e2e = &f.charts[0].series[0].points;
        let l = stage.latency_ms.as_ref().unwrap();
        assert!(e2e[0].0 <= l.min + 1e-9 && e2e.last().unwrap().0 >= l.p99, "the axis covers min to p99 at least");
    }
}

#[test]
fn lengths_bins_follow_the_histograms_buckets_without_a_comb() {
    // Lengths keep 2 significant digits: 970 to 1030 lie in buckets 4 and 8 wide. Spread
    // over the bins they overlap, no bin inside the range is empty.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 20, 2).unwrap();
    for v in 970..=1030 {
        h.record_n(v, 10).unwrap();
    }
    let d =
        crate::report::Dist { count: h.len(), sum: 0.0, min: 970, max: 1030, zeros: 0, sum_sq: 0.0, hdr: crate::metrics::hdr::encode(&h) };
    let mut r = streamed();
    r.result.stages.truncate(1);
    r.result.stages[0].histograms.input_tokens = Some(d);
    let (f, _) = distributions(std::slice::from_ref(&r), &r.result.stages[0].name.clone());
    let c = f.unwrap().charts.into_iter().find(|c| c.title == "Input length").unwrap();
    let bins: Vec<f64> = c.series[0].points[1..c.series[0].points.len() - 1].chunks(2).map(|b| b[0].1).collect();
    let inner = &bins[1..bins.len() - 1];
    assert!(inner.iter().all(|y| *y > 0.0), "an empty bin inside a uniform range: {bins:?}");
}

#[test]
fn a_stage_too_short_for_seconds_says_so_and_a_long_one_shades_its_cooldown() {
    let runs = [streamed()];
    assert!(seconds(&runs, "1 user").unwrap_err().contains("too short"));
    let f = seconds(&runs, "16 users").unwrap();
    let s = runs[0].result.stages.iter().find(|s| s.name == "16 users").unwrap();
    let close = s.window_offset_s.unwrap() + s.wall_time_s;
    let span = f.charts[0].spans.iter().find(|sp| sp.2.contains("cooldown")).expect("the cooldown shaded");
    assert!((span.0 - close).abs() < 1e-9, "shaded from the window's end, {close} s");
}

#[test]
fn odd_figures_leave_a_chart_out_rather_than_hang_or_panic() {
    let mut r = seed();
    r.result.stages[1].throughput.ok_per_s = f64::INFINITY;
    r.result.stages[2].throughput.ok_per_s = 1e300;
    r.result.stages[0].series.clear();
    if let Some(l) = r.result.stages[3].latency_ms.as_mut() {
        l.p99 = f64::NAN;
    }
    let report = build(&[r], &[], 0.05).expect("a report all the same");
    assert!(report.html.contains("<figure id=\"latency-load\">"));
}

#[test]
fn the_server_against_load_is_each_stages_window_figures() {
    let runs = [with_server()];
    let f = server::across(&runs).expect("server figures").unwrap();
    let titles: Vec<&str> = f.charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        ["Server: requests waiting and running against load", "Server: KV-cache usage against load"],
        "no GPU: no GPU panel"
    );
    let stages = &runs[0].result.stages;
    let at = |f: &dyn Fn(&crate::servermetrics::summary::StageServer) -> f64| -> Vec<(f64, f64)> {
        stages.iter().map(|s| (f64::from(s.concurrency), f(&s.server[0]))).collect()
    };
    assert_eq!(series(&f.charts[0], "waiting (max)"), at(&|s| s.waiting.unwrap().max).as_slice());
    assert_eq!(series(&f.charts[0], "running (max)"), at(&|s| s.running.unwrap().max).as_slice());
    assert_eq!(series(&f.charts[1], "KV-cache usage (max)"), at(&|s| 100.0 * s.kv_cache_usage.unwrap().max).as_slice());
    // The committed run: 2-way kept up; 8-way filled the KV cache (4 fit) and queued.
    assert_eq!(series(&f.charts[0], "waiting (max)"), [(2.0, 0.0), (8.0, 4.0)]);
    assert!(server::across(&[seed()]).is_none() && server::timeline(&seed()).is_none(), "no server data: no server figure");
}

#[test]
fn the_servers_series_lie_under_the_clients_on_the_runs_clock() {
    let run = with_server();
    let f = server::timeline(&run).expect("server metrics").unwrap();
    let titles: Vec<&str> = f.charts.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Client: requests finished per second",
            "Client: requests in flight",
            "Server: requests running and waiting",
            "Server: KV-cache usage and prefix-cache hits"
        ]
    );
    let unix = |t: &str| humantime::parse_rfc3339_weak(t).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let t0 = unix(&run.result.started_at);
    let starts: Vec<f64> =
        run.result.stages.iter().map(|s| unix(s.window_start.as_deref().unwrap()) - s.window_offset_s.unwrap() - t0).collect();
    for c in &f.charts {
        let marks: Vec<(f64, &str)> = c.vlines.iter().map(|(x, l)| (*x, l.as_str())).collect();
        assert_eq!(marks, [(starts[0], " 2-way"), (starts[1], " 8-way")], "{}: each stage's start marked", c.title);
    }
    // The server's points at their scrape times on the same clock.
    let e = &run.result.server_metrics.as_ref().unwrap().endpoints[0];
    let running: Vec<(f64, f64)> = e.series.iter().map(|p| (p.t - t0, p.running.unwrap())).collect();
    assert_eq!(series(&f.charts[2], "running"), running.as_slice());
    // The client's line: each stage's seconds from its start, broken between stages.
    let rate = series(&f.charts[0], "ok requests/s");
    let first_of_second = 1 + rate.iter().position(|p| p.1.is_nan()).unwrap();
    assert_eq!(rate[first_of_second], (starts[1] + 0.5, run.result.stages[1].series[0].ok as f64));
    assert_eq!(rate.iter().filter(|p| p.1.is_nan()).count(), 2, "one break after each stage");
}
