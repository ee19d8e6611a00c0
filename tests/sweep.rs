//! Sweeps against the embedded mock (127.0.0.1): the knee found where the mock's
//! capacity puts it, and the SLO's limit, in the JSON and in words.

mod common;
use common::*;

/// The knee scenario, points cut to 2 s: a server with capacity 10 × 500 ms = 20/s.
/// Throughput doubles up to 8-way (16/s) and stops at ~20/s: the knee is found within
/// one sweep point of the capacity (8 or 16 workers bracket its 10 slots).
#[test]
fn the_knee_scenario_finds_the_capacity_the_mock_was_given() {
    let text =
        std::fs::read_to_string(repo_path("scenarios/find-the-knee.toml")).unwrap().replace("duration = \"4s\"", "duration = \"2s\"");
    let (out, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["sweep"];
    assert_eq!(s["kind"], "concurrency");
    assert_eq!(s["points"].as_array().unwrap().len(), 7);
    let knee = s["knee"]["stage"].as_str().unwrap();
    assert!(["8-way", "16-way"].contains(&knee), "knee at {knee}: {}", s["summary"]);
    let plateau = s["knee"]["throughput"].as_f64().unwrap();
    assert!((16.0..=21.0).contains(&plateau), "plateau {plateau} req/s for a server sized for 20");
    // 8 in flight fit the 10 slots (500 ms); 16 queue (about 1 s): e2e ≤ 800 ms breaks.
    assert_eq!(s["slo"]["largest_meeting"], "8-way");
    assert_eq!(s["slo"]["first_breaking"], "16-way");
    let summary = s["summary"].as_str().unwrap();
    assert!(summary.starts_with("throughput plateaus at "), "{summary}");
    assert!(out.stdout.contains(&format!("sweep: {summary}")), "{}", out.stdout);
}

/// An open-loop sweep over offered rates: below the capacity every offer is served,
/// above it throughput stays at the capacity and the knee is said in words.
#[test]
fn a_rate_sweep_plateaus_at_the_capacity() {
    let text =
        quick("base_latency_ms = 200\nper_inflight_ms = 0\ncapacity = 4", "[sweep]\nrates = [5, 10, 20, 40, 80]\nduration = \"2s\"\n");
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["sweep"];
    assert_eq!(s["kind"], "rate");
    let tp: Vec<f64> = s["points"].as_array().unwrap().iter().map(|p| p["throughput"].as_f64().unwrap()).collect();
    // 4 slots × 5/s = 20/s: 5 and 10 are served in full, 20 and 40 at about 20.
    assert!(tp[0] > 4.0 && tp[1] > 8.0, "{tp:?}");
    assert!(tp[3] < 24.0 && tp[4] < 24.0, "{tp:?}");
    // Within one point of the capacity: 20 (or 40, when a hiccup dents the 20 point).
    let knee = s["knee"]["stage"].as_str().unwrap();
    assert!(["constant 20/s", "constant 40/s"].contains(&knee), "{}", s["summary"]);
    assert!(s["summary"].as_str().unwrap().contains("req/s offered"), "{}", s["summary"]);
    // The open loop counts the queue's wait: latency at 40/s offered is far above 200 ms.
    assert!(v["stages"][3]["latency_ms"]["p50"].as_f64().unwrap() > 400.0);
}
