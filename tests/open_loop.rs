//! Open-loop (arrival-rate) stages against the embedded mock on 127.0.0.1: latency from
//! the scheduled start (coordinated omission), the uncorrected figure beside it, the
//! schedule kept, and arrivals the cap could not send counted, never dropped silently.

mod common;
use common::*;

use common::num as f;

/// The regression guard for the inverted-flag class of bug: one 1 s hiccup in a
/// constant 50/s stage with one request in flight at most. The ~50 arrivals due during
/// the hiccup wait inside llmload; counted from their scheduled start they show it,
/// counted from their actual send they do not.
#[test]
fn a_stall_shows_in_corrected_latency_and_not_in_uncorrected() {
    let text = quick(
        "base_latency_ms = 5\nper_inflight_ms = 0\nstall_once_at = 50\nstall_ms = 1000",
        "[[stage]]\nrate = 50\nmax_in_flight = 1\nduration = \"4s\"\n",
    );
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    assert_eq!(s["kind"], "open");
    let o = &s["open_loop"];
    let started = s["requests"]["started"].as_u64().unwrap();
    assert_eq!(started + o["not_sent"].as_u64().unwrap(), 200, "every arrival in the window was sent or counted");
    assert!(started >= 195, "the backlog clears well before the window ends: {started}");
    let (corrected, uncorrected) = (&s["latency_ms"], &o["latency_uncorrected_ms"]);
    // ~50 of 200 requests waited up to 1 s: a quarter of the distribution moves.
    assert!(f(&corrected["p99"]) > 800.0, "corrected p99 must show the stall: {corrected}");
    assert!(f(&corrected["p90"]) > 200.0, "{corrected}");
    assert!(f(&uncorrected["p99"]) < 150.0, "uncorrected p99 hides it: {uncorrected}");
    assert!(f(&uncorrected["max"]) >= 1000.0, "the stalled request itself: {uncorrected}");
    assert!(f(&o["schedule_lag_ms"]["max"]) > 900.0, "{o}");
    assert!(f(&corrected["mean"]) > 3.0 * f(&uncorrected["mean"]), "{corrected} vs {uncorrected}");
    // The time series shows when: one second's p99 carries the stall, most do not.
    let series = s["series"].as_array().unwrap();
    assert!((4..=6).contains(&series.len()), "{} seconds", series.len());
    assert_eq!(series.iter().map(|x| x["requests"].as_u64().unwrap()).sum::<u64>(), started);
    let slow = series.iter().filter(|x| x["p99_ms"].as_f64().is_some_and(|p| p > 500.0)).count();
    assert!((1..=2).contains(&slow), "{series:?}");
}

/// A cap the server cannot sustain: 100 arrivals/s, 2 in flight, 200 ms a request
/// (10/s at most). The shortfall is flagged, the unsent arrivals counted, and the
/// waiting shows in the corrected latency.
#[test]
fn a_full_cap_is_flagged_and_unsent_arrivals_are_counted() {
    let text = quick(
        "base_latency_ms = 200\nper_inflight_ms = 0",
        "[[stage]]\nname = \"over\"\nrate = 100\nmax_in_flight = 2\nduration = \"2s\"\n",
    );
    let (out, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    let o = &s["open_loop"];
    let started = s["requests"]["started"].as_u64().unwrap();
    assert!((18..=24).contains(&started), "2 slots × 10/s × 2 s: {started}");
    assert_eq!(o["below_target"], true);
    let not_sent = o["not_sent"].as_u64().unwrap();
    assert_eq!(started + not_sent, 200, "every arrival due in the window is sent or counted");
    assert!(f(&s["latency_ms"]["p50"]) > 2.0 * f(&o["latency_uncorrected_ms"]["p50"]), "{s}");
    assert!(out.stdout.contains("over: WARNING: sent"), "{}", out.stdout);
    assert!(out.stdout.contains("over (below rate)"), "the row says so too:\n{}", out.stdout);
    assert!(out.stdout.contains("arrivals found all 2 slots (max_in_flight) taken"), "{}", out.stdout);
    // The table's open-loop column: sent against offered, and the unsent.
    assert!(out.stdout.contains("sent / offered"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("/100 req/s, {not_sent} unsent")), "{}", out.stdout);
}

/// Poisson arrivals at 200/s for 2 s: about 400 requests (a Poisson count has a
/// standard deviation of 20 here, so ±15 % is over 3 sigma), no warning, small lag.
#[test]
fn poisson_arrivals_keep_their_rate() {
    let text =
        quick("base_latency_ms = 2\nper_inflight_ms = 0", "[[stage]]\nrate = 200\narrival = \"poisson\"\nseed = 7\nduration = \"2s\"\n");
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    assert_eq!(s["name"], "poisson 200/s");
    let o = &s["open_loop"];
    assert_eq!(o["arrival"], "poisson");
    let started = s["requests"]["started"].as_u64().unwrap();
    assert!((340..=460).contains(&started), "{started}");
    assert_eq!(o["below_target"], false, "{o}");
    assert!(f(&o["schedule_lag_ms"]["p50"]) < 20.0, "{o}");
}

/// A ramp raises the rate linearly before the measured window: its requests are left
/// out of the figures (counted as warmup) and kept, marked, in the time series.
#[test]
fn a_ramp_comes_before_the_window_and_stays_in_the_series() {
    let text = quick("base_latency_ms = 5\nper_inflight_ms = 0", "[[stage]]\nrate = 50\nramp = \"2s\"\nduration = \"2s\"\n");
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    // Rising to 50/s over 2 s: 50 arrivals, then 100 in the 2 s window.
    assert_eq!(s["warmup_requests"], 50);
    assert_eq!(s["requests"]["started"], 100);
    let series = s["series"].as_array().unwrap();
    let count = |k: &str| series.iter().map(|x| x[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((count("warmup"), count("requests")), (50, 100), "{series:?}");
    // The first ramp second carries a quarter of the ramp's arrivals, the second the rest.
    assert!(series[0]["warmup"].as_u64().unwrap() < series[1]["warmup"].as_u64().unwrap(), "{series:?}");
    assert!(series.windows(2).all(|w| w[1]["t_s"].as_u64() == w[0]["t_s"].as_u64().map(|t| t + 1)), "one entry a second");
}

/// A closed-loop ramp: workers join one by one (about half the full load's requests
/// over the ramp), then go on into the window, which runs at full load.
#[test]
fn a_closed_loop_ramp_rises_then_runs_a_full_window() {
    let text = quick("base_latency_ms = 100\nper_inflight_ms = 0", "[[stage]]\nconcurrency = 8\nramp = \"1s\"\nduration = \"1s\"\n");
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    // 8 workers joining over 1 s at 100 ms a request: about 8 × 10 / 2 ramp requests.
    let ramped = s["warmup_requests"].as_u64().unwrap();
    assert!((25..=50).contains(&ramped), "{ramped}");
    // The window at full load: 8 workers × 10 requests a second.
    let started = s["requests"]["started"].as_u64().unwrap();
    assert!((72..=90).contains(&started), "{started}");
}

/// The schedule counts from the window's opening, not from when the dispatcher got
/// going: at 1000/s for 1 s the last arrival is due 1 ms before the end, and it is
/// sent (or counted), however late the loop started.
#[test]
fn every_arrival_due_in_the_window_is_accounted() {
    let text = quick("base_latency_ms = 1\nper_inflight_ms = 0", "[[stage]]\nrate = 1000\nduration = \"1s\"\n");
    let (_, v) = run_scenario(&text);
    let s = &v["stages"][0];
    assert_eq!(count(&s["requests"]["started"]) + count(&s["open_loop"]["not_sent"]), 1000);
}

/// Live, before the stage ends: a stage behind its rate says so in the running row (the
/// dashboard draws it), and one that keeps up never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_behind_its_rate_is_flagged_while_it_runs() {
    // (rate, cap, mock latency): 100/s into 2 × 5/s falls behind; 20/s into 10 × 200/s keeps up.
    for (rate, cap, latency, behind) in [(100, 2, 200, true), (20, 10, 5, false)] {
        let text = quick(
            &format!("base_latency_ms = {latency}\nper_inflight_ms = 0"),
            &format!("[[stage]]\nrate = {rate}\nmax_in_flight = {cap}\nduration = \"2s\"\n"),
        );
        let (out, seen) = run_watching_behind(&text).await;
        let live_warning = seen.iter().find(|(wall, _, below)| *below && *wall < 2.0);
        if behind {
            // 100/s against 10/s: after 1 s the waiting arrival is ~0.9 s overdue.
            let (wall, late, _) = live_warning.expect("flagged before the window closed");
            assert!(*wall < 1.5 && *late > 0.05, "{seen:?}");
            assert!(seen.iter().any(|(w, b, _)| *w > 1.0 && *w < 2.0 && *b > 0.5), "{seen:?}");
            assert!(out.result.stages[0].open_loop.as_ref().unwrap().below_target);
        } else {
            assert!(live_warning.is_none(), "{seen:?}");
            assert!(seen.iter().all(|(_, b, _)| *b < 0.05), "{seen:?}");
            assert!(!out.result.stages[0].open_loop.as_ref().unwrap().below_target);
        }
        assert!(seen.len() >= 5, "snapshots every 100 ms over 2 s: {}", seen.len());
    }
}

/// A closed loop's last requests run while it drains: with 10 workers and a mock that
/// adds 10 ms per request in flight, the last 5 of 55 requests (the workers go in
/// rounds of 10) run 5 in flight, not 10, and look faster than the load they were part
/// of. A cooldown keeps the workers
/// sending until the window's last request has ended: every measured request then ran
/// under the stage's load, and the cooldown's own requests are left out of the figures
/// but kept in the series. It ends with the window's last request, not its length.
#[test]
fn a_cooldown_keeps_the_load_on_while_the_window_drains() {
    let stage = |cooldown: &str| {
        quick("base_latency_ms = 50\nper_inflight_ms = 10", &format!("[[stage]]\nconcurrency = 10\nrequests = 55\n{cooldown}"))
    };
    let (_, plain) = run_scenario(&stage(""));
    let (_, cooled) = run_scenario(&stage("cooldown = \"10s\"\n"));
    assert_schema_valid(&cooled);
    let (p, c) = (&plain["stages"][0], &cooled["stages"][0]);
    // Drained: the last round took base + 5 × 10 ms; kept on: 10 in flight, 150 ms.
    assert!(f(&p["latency_ms"]["min"]) < 110.0, "{}", p["latency_ms"]);
    assert!(f(&c["latency_ms"]["min"]) > 130.0, "{}", c["latency_ms"]);
    assert_eq!(c["requests"]["started"], 55);
    assert_eq!(c["requests"]["ok"], 55);
    let cooldown = c["cooldown_requests"].as_u64().unwrap();
    assert!((1..=30).contains(&cooldown), "{cooldown}");
    let series = c["series"].as_array().unwrap();
    assert_eq!(series.iter().map(|s| s["cooldown"].as_u64().unwrap()).sum::<u64>(), cooldown);
    assert_eq!(series.iter().map(|s| s["requests"].as_u64().unwrap()).sum::<u64>(), 55);
    assert_eq!(cooled["scenario"]["stages"][0]["cooldown_s"], 10.0);
    // 6 rounds of ~150 ms, then the cooldown ends with the last of them: not 10 s.
    assert!(f(&cooled["duration_s"]) < 3.0, "{}", cooled["duration_s"]);
    assert!(f(&c["wall_time_s"]) < 1.2, "the window's wall time stops at its last request: {}", c["wall_time_s"]);
}

/// An open loop's cooldown: arrivals go on at the rate after the window until its last
/// request has ended, then stop; only the window's are measured. The window ends at its
/// deadline, or when its requests run out first (then the cooldown starts there, not at
/// the far deadline).
#[test]
fn an_open_loop_cooldown_ends_when_the_window_drains() {
    for bound in ["duration = \"1s\"", "requests = 50\nduration = \"60s\""] {
        let text = quick(
            "base_latency_ms = 100\nper_inflight_ms = 0",
            &format!("[[stage]]\nrate = 50\n{bound}\ncooldown = \"5s\"\n[[stage]]\nname = \"next\"\nconcurrency = 1\nrequests = 1\n"),
        );
        open_loop_cooldown(&text);
    }
}

fn open_loop_cooldown(text: &str) {
    let (_, v) = run_scenario(text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    assert_eq!(s["requests"]["started"], 50);
    // The window's last request ends ~100 ms after it closes: about 5 arrivals of cooldown.
    let cooldown = s["cooldown_requests"].as_u64().unwrap();
    assert!((1..=15).contains(&cooldown), "{cooldown}");
    assert!(f(&v["duration_s"]) < 3.0, "not the cooldown's 5 s: {}", v["duration_s"]);
    assert_eq!(v["stages"][1]["requests"]["ok"], 1);
}
