//! Sweeps against the embedded mock (127.0.0.1): the knee found where the mock's
//! capacity puts it, and the SLO's limit, in the JSON and in words.

mod common;
use common::*;

fn knee_scenario(points: &str) -> String {
    let text = std::fs::read_to_string(repo_path("scenarios/find-the-knee.toml")).unwrap();
    assert!(text.contains("concurrency = \"auto\"") && text.contains("duration = \"4s\""));
    let text = text.replace("duration = \"4s\"", "duration = \"2s\"");
    match points {
        "\"auto\"" => text,
        // `max` is for automatic sweeps.
        list => text.replace("concurrency = \"auto\"", &format!("concurrency = {list}")).replace("max = 256", ""),
    }
}

/// The knee scenario as shipped (an automatic sweep), points cut to 2 s, against a
/// server with capacity 10 × 500 ms = 20/s. The ladder climbs 1…32 (8→16 still grows,
/// 16→32 is flat and breaks the SLO), then bisects 8..16 to one worker: 10 in flight
/// fit the 10 slots (500 ms), 11 queue (about 1 s) and break e2e ≤ 800 ms.
#[test]
fn the_knee_scenario_finds_the_capacity_the_mock_was_given() {
    let (out, v) = run_scenario(&knee_scenario("\"auto\""));
    assert_schema_valid(&v);
    let s = &v["sweep"];
    assert_eq!(s["kind"], "concurrency");
    assert_eq!(s["auto"], true);
    let points = s["points"].as_array().unwrap();
    let loads = |phase: &str| -> Vec<f64> { points.iter().filter(|p| p["phase"] == phase).map(|p| p["load"].as_f64().unwrap()).collect() };
    assert_eq!(loads("ladder"), [1.0, 2.0, 4.0, 8.0, 16.0, 32.0], "{}", s["summary"]);
    assert_eq!(loads("bisection"), [10.0, 11.0, 12.0], "{}", s["summary"]);
    // Every point ran as a stage, in the order chosen, and the scenario records them.
    let names: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|st| st["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sequential", "2-way", "4-way", "8-way", "16-way", "32-way", "12-way", "10-way", "11-way"]);
    assert_eq!(v["scenario"]["stages"].as_array().unwrap().len(), 9);
    assert_eq!(v["scenario"]["sweep"]["points"].as_array().unwrap().len(), 9);
    // The knee at the capacity, within one point: 8, 10 or 11 workers around its 10 slots.
    let knee = s["knee"]["load"].as_f64().unwrap();
    assert!([8.0, 10.0, 11.0].contains(&knee), "knee at {knee}: {}", s["summary"]);
    let plateau = s["knee"]["throughput"].as_f64().unwrap();
    assert!((16.0..=21.0).contains(&plateau), "plateau {plateau} req/s for a server sized for 20");
    assert_eq!(s["slo"]["largest_meeting"], "10-way", "{}", s["summary"]);
    assert_eq!(s["slo"]["first_breaking"], "11-way", "{}", s["summary"]);
    let summary = s["summary"].as_str().unwrap();
    assert!(summary.starts_with("auto sweep, 9 points (3 bisecting the SLO's limit); throughput plateaus at "), "{summary}");
    assert!(summary.ends_with("holds up to 10-way and breaks at 11-way"), "{summary}");
    assert!(out.stdout.contains(&format!("sweep: {summary}")), "{}", out.stdout);
}

/// The same server swept over a given list: the knee within one point of the capacity
/// (8 or 16 workers bracket its 10 slots).
#[test]
fn a_listed_sweep_finds_the_knee_within_one_point() {
    let (_, v) = run_scenario(&knee_scenario("[1, 2, 4, 8, 16, 32, 64]"));
    assert_schema_valid(&v);
    let s = &v["sweep"];
    assert_eq!(s["auto"], false);
    assert_eq!(s["points"].as_array().unwrap().len(), 7);
    assert!(s["points"].as_array().unwrap().iter().all(|p| p["phase"] == "list"));
    let knee = s["knee"]["stage"].as_str().unwrap();
    assert!(["8-way", "16-way"].contains(&knee), "knee at {knee}: {}", s["summary"]);
    let plateau = s["knee"]["throughput"].as_f64().unwrap();
    assert!((16.0..=21.0).contains(&plateau), "plateau {plateau} req/s for a server sized for 20");
    // 8 in flight fit the 10 slots (500 ms); 16 queue (about 1 s): e2e ≤ 800 ms breaks.
    assert_eq!(s["slo"]["largest_meeting"], "8-way");
    assert_eq!(s["slo"]["first_breaking"], "16-way");
    assert!(s["summary"].as_str().unwrap().starts_with("throughput plateaus at "), "{}", s["summary"]);
}

/// An automatic sweep over offered rates: the ladder climbs to where throughput stops
/// at the capacity, then bisects above its last rate meeting the SLO; `max_points`
/// bounds it.
#[test]
fn an_automatic_rate_sweep_brackets_the_capacity() {
    let text = quick(
        "base_latency_ms = 200\nper_inflight_ms = 0\ncapacity = 4",
        "[slo]\ne2e_ms = 400\n[sweep]\nrates = \"auto\"\nstart = 5\nmax_points = 6\nduration = \"1500ms\"\n",
    );
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["sweep"];
    assert_eq!(s["kind"], "rate");
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 6, "max_points: {}", s["summary"]);
    let ladder: Vec<f64> = points.iter().filter(|p| p["phase"] == "ladder").map(|p| p["load"].as_f64().unwrap()).collect();
    // 4 slots × 5/s = 20/s: 5 and 10 are served, 40 is not and waits far past 400 ms.
    assert!(ladder.starts_with(&[5.0, 10.0, 20.0]) && ladder.len() >= 4, "{ladder:?}: {}", s["summary"]);
    let meeting = s["slo"]["largest_meeting_load"].as_f64().unwrap();
    let breaking = s["slo"]["first_breaking_load"].as_f64().unwrap();
    // The ladder's bracket 20..40 (or 10..20) narrowed by two bisections to a quarter.
    assert!(meeting >= 10.0 && breaking > meeting && breaking - meeting <= 10.0, "{meeting}..{breaking}: {}", s["summary"]);
    assert!(points.iter().any(|p| p["phase"] == "bisection"), "{}", s["summary"]);
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
