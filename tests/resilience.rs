//! Retries, the client-side rate limiter and abort_on_error_rate, against the embedded
//! mock (127.0.0.1) through the real binary and its result JSON.

mod common;
use common::*;

use serde_json::Value;
use std::time::Duration;

fn stage(v: &Value, i: usize) -> &Value {
    &v["stages"][i]
}

/// The figure: 600 RPM for 10 s is 100 ± 2 requests whatever the concurrency.
/// The limiter, not the server, is the bottleneck: 4 workers on a 20 ms mock could send
/// 200 requests/s.
#[test]
fn six_hundred_rpm_for_ten_seconds_is_a_hundred_requests_at_any_concurrency() {
    let text = quick(
        "base_latency_ms = 20\nper_inflight_ms = 0",
        "[rate_limit]\nrpm = 600\n\
         [[stage]]\nconcurrency = 4\nduration = \"10s\"\n\
         [[stage]]\nconcurrency = 64\nduration = \"10s\"\n",
    );
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    for i in 0..2 {
        let s = stage(&v, i);
        let started = count(&s["requests"]["started"]);
        assert!((98..=102).contains(&started), "{}: {started} requests in 10 s at 600 RPM", s["name"]);
        assert_eq!(count(&s["requests"]["ok"]), started);
        let rl = &s["rate_limiter"];
        assert_eq!(rl["rpm"], 600.0);
        // All but the first are held back; at 64-way most wait several intervals.
        assert!(count(&rl["delayed"]) >= started - 2, "{rl}");
        let wall = s["wall_time_s"].as_f64().unwrap();
        assert!((9.9..10.5).contains(&wall), "wall {wall}");
    }
    let deep = &stage(&v, 1)["rate_limiter"]["wait_ms"];
    assert!(deep["max"].as_f64().unwrap() > 1000.0, "64 workers queue for the 100 ms slots: {deep}");
}

/// Every attempt fails with a 500: each request is sent `max_attempts` times, the
/// retries are counted by cause, the outcome is the last failure, and each attempt's
/// latency is kept.
#[test]
fn retries_are_counted_per_attempt_and_the_outcome_is_the_last_one() {
    let text = quick(
        "base_latency_ms = 5\nper_inflight_ms = 0\nerror_rate = 1.0",
        "[retry]\nmax_attempts = 3\nbackoff = \"20ms\"\nmax_backoff = \"40ms\"\n\
         [[stage]]\nconcurrency = 4\nrequests = 20\n",
    );
    let (out, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = stage(&v, 0);
    assert_eq!(s["requests"]["failed"], 20);
    assert_eq!(s["failures"]["http_5xx"], 20, "final outcomes only");
    let r = &s["retries"];
    assert_eq!((count(&r["attempts"]), count(&r["total"])), (60, 40), "{r}");
    assert_eq!(r["by_cause"]["http_5xx"], 40);
    assert_eq!((count(&r["requests_retried"]), count(&r["recovered"])), (20, 0));
    assert!(s["attempt_latency_ms"]["min"].as_f64().unwrap() >= 5.0, "each attempt takes the mock's 5 ms: {s}");
    assert!(s["latency_ms"].is_null(), "no request succeeded");
    assert_eq!(s["status_codes"]["500"], 60, "every attempt's status");
    assert!(out.stdout.contains("retries"), "the table shows retries:\n{}", out.stdout);
}

/// A retry policy that does not cover the failure sends each request once.
#[test]
fn failures_outside_the_policy_are_not_retried() {
    let text = quick(
        "base_latency_ms = 1\nper_inflight_ms = 0\nerror_rate = 1.0",
        "[retry]\nmax_attempts = 5\non = [\"429\"]\n[[stage]]\nconcurrency = 2\nrequests = 10\n",
    );
    let (_, v) = run_scenario(&text);
    let r = &stage(&v, 0)["retries"];
    assert_eq!((count(&r["attempts"]), count(&r["total"])), (10, 0), "{r}");
}

/// A stage whose error rate passes abort_on_error_rate ends the run: later stages are
/// not run, the result says why, and the exit code is 1.
#[test]
fn abort_on_error_rate_skips_the_remaining_stages() {
    let text = format!(
        "abort_on_error_rate = 0.5\n{}",
        quick(
            "base_latency_ms = 1\nper_inflight_ms = 0\nerror_rate = 0.9\nseed = 3",
            "[[stage]]\nname = \"bad\"\nconcurrency = 2\nrequests = 200\n[[stage]]\nname = \"never\"\nrequests = 10\n",
        )
    );
    let (d, path) = scenario(&text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    assert_eq!(v["stages"].as_array().unwrap().len(), 1);
    assert_eq!(v["aborted"]["stage"], "bad");
    assert!(v["aborted"]["error_rate"].as_f64().unwrap() > 0.5);
    // Judged mid-stage once 20 requests have ended: it stops well before its 200.
    let s = stage(&v, 0);
    let started = count(&s["requests"]["started"]);
    assert!(started < 100, "stopped early, not after all 200: {started}");
    assert_eq!(started, count(&s["requests"]["ok"]) + count(&s["requests"]["failed"]) + count(&s["requests"]["cancelled"]));
    assert!(out.stdout.contains("run aborted: stage \"bad\" cut short with an error rate of"), "{}", out.stdout);
    assert!(out.stdout.contains("bad (aborted)"), "{}", out.stdout);
    assert_eq!(s["aborted"], true);
    assert_eq!(v["aborted"]["mid_stage"], true);
    assert!(count(&v["aborted"]["requests"]) >= 20);
}

/// Without abort_on_error_rate a failing stage does not stop the run.
#[test]
fn a_failed_stage_does_not_abort_by_default() {
    let text = quick(
        "base_latency_ms = 1\nper_inflight_ms = 0\nerror_rate = 1.0",
        "[[stage]]\nname = \"bad\"\nrequests = 30\n[[stage]]\nname = \"next\"\nrequests = 5\n",
    );
    let (_, v) = run_scenario(&text);
    assert_eq!(v["stages"].as_array().unwrap().len(), 2);
    assert!(v["aborted"].is_null());
}

/// The weekend-spike example, its stages cut to 3 s: without protection the provider's
/// limit turns most requests into 429s; retries that honour Retry-After get most of
/// them through; a client-side limit under the quota leaves no 429 in the outcomes.
#[test]
fn weekend_spike_shows_429s_retries_and_the_limiter_at_work() {
    let text =
        std::fs::read_to_string(repo_path("scenarios/weekend-spike.toml")).unwrap().replace("duration = \"8s\"", "duration = \"3s\"");
    let (out, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let rate = |i: usize| stage(&v, i)["error_rate"].as_f64().unwrap();
    let (bare, retried, limited) = (stage(&v, 0), stage(&v, 1), stage(&v, 2));
    assert!(rate(0) > 0.9, "a 429 storm: {}", bare["failures"]);
    assert_eq!(count(&bare["retries"]["total"]), 0);
    assert!(count(&retried["retries"]["by_cause"]["http_429"]) > 0);
    assert!(count(&retried["retries"]["retry_after_honoured"]) > 0);
    assert!(count(&retried["retries"]["recovered"]) > 0);
    assert!(rate(1) < rate(0) / 2.0, "retries recover most requests: {} vs {}", rate(1), rate(0));
    assert!(count(&limited["rate_limiter"]["delayed"]) > 0);
    assert!(limited["failures"]["http_429"].is_null(), "no request ends as a 429 under the limit: {}", limited["failures"]);
    assert!(rate(2) < 0.05, "{}", limited["failures"]);
    for column in ["retries", "limiter wait", "(99."] {
        assert!(out.stdout.contains(column), "{column} missing from the table:\n{}", out.stdout);
    }
}

#[test]
fn every_example_scenario_validates() {
    let mut c = cmd(&["validate"]);
    for entry in std::fs::read_dir(repo_path("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            c.arg(path);
        }
    }
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("weekend-spike.toml: ok"), "{}", out.stdout);
}

/// Tokens per minute: each request weighs its prompt plus max_tokens. At 60,000 TPM
/// (1,000 tokens/s, a burst of one second's worth) requests of ~100 tokens go ~10 per
/// second after a first burst of ~10.
#[test]
fn tokens_per_minute_paces_by_prompt_plus_max_tokens() {
    let text = quick(
        "base_latency_ms = 5\nper_inflight_ms = 0\noutput_tokens = 4",
        "[request]\nmax_tokens = 96\n[rate_limit]\ntpm = 60000\n[[stage]]\nconcurrency = 16\nduration = \"3s\"\n",
    );
    let (_, v) = run_scenario(&text);
    let s = stage(&v, 0);
    let started = count(&s["requests"]["started"]);
    // Prompts "hello N" are 2–3 tokens: 98–99 per request; 4,000 tokens fit in 3 s.
    assert!((37..=44).contains(&started), "{started} requests of ~98 tokens in 3 s at 60k TPM");
    assert_eq!(s["rate_limiter"]["tpm"], 60000.0);
}

/// --insecure is said loudly and recorded.
#[test]
fn insecure_is_loud_and_recorded() {
    let (d, path) = scenario(&quick("base_latency_ms = 1", "[[stage]]\nrequests = 2\n"));
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--insecure", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("WARNING: --insecure: TLS certificates are NOT verified"), "{}", out.stderr);
    let v = read_json(&json);
    assert_eq!(v["target"]["insecure"], true);
    assert_eq!(v["scenario"]["target"]["insecure"], true);
    // Said even when a later flag is refused: the warning, then the error, exit 2.
    let mut c = cmd(&["run", "--headless", "--insecure", "--tpm", "1000"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].starts_with("WARNING: --insecure") && lines[1].starts_with("error: --tpm needs"),
        "{}",
        out.stderr
    );
}

/// Fast failures finish first: at 64-way with 15 % instant 429s and 200 ms successes,
/// the first 20 requests to end are mostly 429s. That early burst must not pass for a
/// 25 % error rate: the stage is judged once every worker has finished twice.
#[test]
fn abort_is_not_tripped_by_the_first_fast_failures() {
    let text = format!(
        "abort_on_error_rate = 0.25\n{}",
        quick(
            "base_latency_ms = 200\nper_inflight_ms = 0\nseed = 5\nerrors = { \"429\" = 0.15 }",
            "[[stage]]\nconcurrency = 64\nrequests = 400\n[[stage]]\nname = \"next\"\nrequests = 2\n",
        )
    );
    let (_, v) = run_scenario(&text);
    assert!(v["aborted"].is_null(), "{}", v["aborted"]);
    assert_eq!(v["stages"].as_array().unwrap().len(), 2);
    let rate = stage(&v, 0)["error_rate"].as_f64().unwrap();
    assert!((0.08..0.22).contains(&rate), "about 15 %: {rate}");
}
