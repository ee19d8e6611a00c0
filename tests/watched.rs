//! What the run's watcher ends early, on the mock: an automatic warmup once the
//! per-second series settle (the mock given a cold start of known length), and an
//! open-loop window whose backlog runs away (a rate over the mock's capacity) — but
//! never a stable one (a rate well within it); what these do not go with is refused.

mod common;
use common::*;

const MOCK: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\ntemplate = \"q {i}\"\n";

/// A server 200 ms slower at its start, falling to nothing over 6 s: the warmup ends
/// only once that is over (MSER needs the settled part to outweigh the transient, so
/// it is told some seconds later), and the window measures the warm server.
#[test]
fn an_automatic_warmup_drops_a_cold_start_and_measures_the_warm_server() {
    let (out, v) = run_headless(
        &format!(
            "{MOCK}[mock]\nbase_latency_ms = 20\njitter_ms = 4\ncold_ms = 200\ncold_s = 6\nseed = 3\n[[stage]]\nname = \"s\"\nconcurrency = 8\nwarmup = \"auto\"\nduration = \"3s\"\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    let at = num(&s["warmup_detected_s"]);
    // Settled at the cold start's end (6 s), told once the settled seconds outweigh it.
    assert!((6.0..30.0).contains(&at), "{}", s["warmup_said"]);
    let said = s["warmup_said"].as_str().unwrap();
    let settled: f64 = said.strip_prefix("settled after ").and_then(|x| x.split(' ').next()).and_then(|x| x.parse().ok()).unwrap();
    assert!((5.0..=8.0).contains(&settled), "the transient is 6 s long: {said}");
    assert!((num(&s["window_offset_s"]) - at).abs() < 0.01, "{}", s["window_offset_s"]);
    assert!(count(&s["warmup_requests"]) > 100, "{}", s["warmup_requests"]);
    // The warm server: 20 ± 4 ms and the stream; the cold one was up to 200 ms slower.
    let p99 = num(&s["latency_ms"]["p99"]);
    let warm = s["series"].as_array().unwrap().iter().rev().find_map(|x| x["warmup_ms"].as_f64()).unwrap();
    assert!(p99 < warm + 15.0, "p99 {p99} ms against a warm {warm} ms");
    let first = num(&s["series"][0]["warmup_ms"]);
    assert!(first > warm + 100.0, "the cold start was seen: {first} ms then {warm} ms");
    assert!(out.stdout.contains("s: warmup auto: settled after"), "{}", out.stdout);
    // The report shades the warmup found and says how.
    let d = tempfile::tempdir().unwrap();
    let (json, html) = (d.path().join("r.json"), d.path().join("r.html"));
    std::fs::write(&json, v.to_string()).unwrap();
    let mut c = cmd(&["report", "-o"]);
    c.arg(&html).arg(&json);
    let out = run(c, std::time::Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("warmup (auto)") && page.contains("Warmup found: settled after"), "the report says it");
}

/// Offered 4× what the mock can serve (4 at once, 50 ms: 80/s), the window is ended a
/// few seconds in, its backlog dropped, with the verdict; the run's exit is the
/// thresholds' (none: 0). Offered a third of it, the window runs its whole duration.
#[test]
fn a_rate_the_server_cannot_keep_up_with_is_stopped_early_and_a_stable_one_never() {
    let (out, v) = run_headless(
        &format!(
            "{MOCK}[mock]\nbase_latency_ms = 50\njitter_ms = 5\ncapacity = 4\nseed = 3\n[[stage]]\nname = \"over\"\nrate = 320\narrival = \"poisson\"\nstop_on_saturation = true\nduration = \"40s\"\n[[stage]]\nname = \"within\"\nrate = 27\narrival = \"poisson\"\nstop_on_saturation = true\nduration = \"15s\"\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "a saturation is a verdict, not a failure: {}", out.stderr);
    assert_schema_valid(&v);
    let over = &v["stages"][0];
    let sat = &over["saturated"];
    // GuideLLM's stop waits 30 s at least; this one is called in seconds.
    assert!((4.0..15.0).contains(&num(&sat["after_s"])), "{sat}");
    assert!(num(&over["wall_time_s"]) < num(&sat["after_s"]) + 2.0, "the backlog was dropped, not drained: {}", over["wall_time_s"]);
    assert!(num(&sat["backlog"][1]) >= 2.0 * num(&sat["backlog"][0]), "{sat}");
    assert!(count(&over["requests"]["cancelled"]) > 0, "{}", over["requests"]);
    assert!(sat["said"].as_str().unwrap().starts_with("the server could not keep up with 320/s"), "{sat}");
    assert!(out.stdout.contains("over: saturated: the server could not keep up"), "{}", out.stdout);
    assert!(out.stdout.contains("dropped at saturation"), "{}", out.stdout);
    let within = &v["stages"][1];
    assert!(within["saturated"].is_null(), "a stable rate is never called: {}", within["saturated"]);
    assert!(num(&within["wall_time_s"]) > 14.5, "{}", within["wall_time_s"]);
    assert_eq!(within["requests"]["cancelled"], 0);
}

/// A rate sweep watches its points by default: the one over the limit ends early and
/// the sweep stops climbing there, its knee at the point before.
#[test]
fn a_rate_sweep_treats_a_saturated_point_as_over_the_limit() {
    let (out, v) = run_headless(
        &format!(
            "{MOCK}[mock]\nbase_latency_ms = 50\njitter_ms = 5\ncapacity = 4\nseed = 3\n[sweep]\nrates = \"auto\"\nstart = 20\nmax = 640\nduration = \"12s\"\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_schema_valid(&v);
    let s = &v["sweep"];
    let points = s["points"].as_array().unwrap();
    let loads: Vec<f64> = points.iter().map(|p| num(&p["load"])).collect();
    // 20, 40 (half the 80/s), 80 (at it: it may or may not keep up), 160 (twice over).
    let last = points.last().unwrap();
    assert_eq!(last["saturated"], true, "the climb ends at the first point over the limit: {loads:?}");
    assert!(loads.len() <= 4 && *loads.last().unwrap() <= 160.0, "{loads:?}");
    assert!(points.iter().take(2).all(|p| p["saturated"].is_null()), "{loads:?}");
    let summary = s["summary"].as_str().unwrap();
    assert!(summary.contains("could not keep up, stopped early:") && summary.contains("throughput plateaus at"), "{summary}");
    assert!(num(&s["knee"]["load"]) < num(&last["load"]), "{}", s["knee"]);
}

#[test]
fn what_the_watcher_does_not_go_with_is_one_located_line() {
    for (stage, said) in [
        ("concurrency = 2\nwarmup = \"soon\"\nduration = \"1s\"", "warmup must be a count of requests or \"auto\""),
        ("concurrency = 2\nwarmup = \"auto\"\nramp = \"2s\"\nduration = \"1s\"", "warmup = \"auto\" does not go with a ramp"),
        ("concurrency = 2\nstop_on_saturation = true\nduration = \"1s\"", "stop_on_saturation = true: it watches an open loop's backlog"),
    ] {
        let (_d, path) = scenario(&format!("{MOCK}[[stage]]\nname = \"s\"\n{stage}\n"));
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, std::time::Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
        let line = out.stderr.lines().find(|l| l.contains(said)).unwrap_or_else(|| panic!("{said}: {}", out.stderr));
        assert!(line.contains("s.toml:"), "located: {line}");
    }
    let (_d, path) = scenario(&format!("{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 2\nwarmup = \"auto\"\nduration = \"1s\"\n"));
    let mut c = cmd(&["run", "--headless", "--shard", "0/2"]);
    c.arg(&path);
    let out = run(c, std::time::Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stderr.contains("shards would measure different windows"), "{}", out.stderr);
}
