//! The run's verdict: thresholds pass and fail as configured, a stage without a
//! successful request fails the run (a dead endpoint must not pass CI), the exit codes,
//! the JUnit file and the errors of thresholds that do not parse.

mod common;
use common::*;

use std::time::Duration;

/// Runs `text` with `--json` and `--junit`; returns the exit code, the output, the result
/// and the JUnit XML.
fn judged(text: &str) -> (Option<i32>, Output, serde_json::Value, String) {
    let (d, path) = scenario(text);
    let (json, xml) = (d.path().join("r.json"), d.path().join("junit.xml"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg("--junit").arg(&xml).arg(&path);
    let out = run(c, Duration::from_secs(60));
    let v = read_json(&json);
    assert_schema_valid(&v);
    (out.status.code(), out, v, std::fs::read_to_string(&xml).unwrap())
}

/// 40 requests at 4-way on a mock of 20 ms: p99 near 20 ms, no errors.
fn mock_run(thresholds: &str, stage_thresholds: &str) -> String {
    quick(
        "base_latency_ms = 20\nper_inflight_ms = 0",
        &format!("{thresholds}\n[[stage]]\nname = \"4-way\"\nconcurrency = 4\nrequests = 40\n{stage_thresholds}\n"),
    )
}

#[test]
fn thresholds_that_hold_pass_with_their_figures() {
    let (code, out, v, xml) =
        judged(&mock_run("[thresholds]\np99_ms = \"< 1000\"\nerror_rate = \"<= 0\"", "thresholds = { ok_rps = \"> 10\" }"));
    assert_eq!(code, Some(0), "{}{}", out.stdout, out.stderr);
    let verdict = &v["verdict"];
    assert_eq!(verdict["passed"], true);
    let t = verdict["thresholds"].as_array().unwrap();
    let names: Vec<&str> = t.iter().map(|t| t["threshold"].as_str().unwrap()).collect();
    // The scenario's, by metric name, then the stage's own.
    assert_eq!(names, ["error_rate <= 0", "p99_ms < 1000", "ok_rps > 10"]);
    // Each records what was measured: the stage's own figures.
    let s = &v["stages"][0];
    assert_eq!(t[1]["measured"], s["latency_ms"]["p99"]);
    assert!((19.0..1000.0).contains(&num(&t[1]["measured"])), "{}", t[1]);
    assert_eq!(t[0]["measured"], 0.0);
    assert_eq!(t[2]["measured"], s["throughput"]["ok_per_s"]);
    assert!(out.stdout.contains("pass  4-way: p99_ms < 1000 (measured "), "{}", out.stdout);
    assert!(xml.contains("tests=\"4\" failures=\"0\"") && xml.contains("name=\"4-way: ok_rps &gt; 10\"/>"), "{xml}");
    // The scenario as it ran records them too.
    assert_eq!(v["scenario"]["stages"][0]["thresholds"], serde_json::json!(["error_rate <= 0", "p99_ms < 1000", "ok_rps > 10"]));
}

#[test]
fn a_broken_threshold_exits_3_and_says_which() {
    // A stage's own bound replaces the scenario's for the same metric; a stream metric on
    // a stage that does not stream is not measured, and fails.
    let (code, out, v, xml) = judged(&mock_run(
        "[thresholds]\np99_ms = \"< 1000\"\nttft_p95_ms = \"< 100\"",
        "thresholds = { p99_ms = \"< 5\", ok_rps = \"> 10\" }",
    ));
    assert_eq!(code, Some(3), "{}{}", out.stdout, out.stderr);
    let t = &v["verdict"]["thresholds"];
    assert_eq!(v["verdict"]["passed"], false);
    let by = |name: &str| t.as_array().unwrap().iter().find(|x| x["threshold"] == name).cloned().unwrap_or_else(|| panic!("{name}: {t}"));
    assert_eq!((by("p99_ms < 5")["passed"].as_bool(), by("ok_rps > 10")["passed"].as_bool()), (Some(false), Some(true)));
    assert_eq!((by("ttft_p95_ms < 100")["measured"].is_null(), by("ttft_p95_ms < 100")["passed"].as_bool()), (true, Some(false)));
    assert!(t.as_array().unwrap().iter().all(|x| x["threshold"] != "p99_ms < 1000"), "the stage's own p99 replaces it: {t}");
    assert!(out.stdout.contains("FAIL  4-way: p99_ms < 5 (measured "), "{}", out.stdout);
    assert!(out.stdout.contains("FAIL  4-way: ttft_p95_ms < 100 (measured not measured)"), "{}", out.stdout);
    assert!(xml.contains("failures=\"2\"") && xml.contains("<failure message=\"measured "), "{xml}");
}

#[test]
fn a_dead_endpoint_fails_the_run_with_exit_3() {
    // A port nothing listens on: every request a `connect` failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "name = \"dead\"\n[target]\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n\
         [retry]\nmax_attempts = 1\n[[stage]]\nname = \"dead\"\nconcurrency = 4\nrequests = 40\n"
    );
    let (code, out, v, xml) = judged(&text);
    assert_eq!(code, Some(3), "{}{}", out.stdout, out.stderr);
    assert_eq!(v["stages"][0]["requests"]["failed"], 40);
    assert_eq!(v["verdict"]["stages_without_success"], serde_json::json!(["dead"]));
    assert!(out.stdout.contains("FAIL  dead: no successful request"), "{}", out.stdout);
    assert!(xml.contains("name=\"dead: a successful request\">") && xml.contains("no successful request"), "{xml}");
    // The table's throughput is of successful requests: none here.
    let row = out.stdout.lines().find(|l| l.starts_with("dead ")).unwrap();
    assert!(row.contains(" 0.0 req/s"), "{row}");
}

#[test]
fn thresholds_that_do_not_parse_are_bad_input() {
    let (_d, path) = scenario(&mock_run("[thresholds]\np99_ms = \"500\"\np99 = \"< 5\"", ""));
    let mut c = cmd(&["validate"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let line =
        |needle: &str| out.stderr.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {}", out.stderr)).to_string();
    let forms = line("p99_ms = \"500\"");
    assert!(forms.contains("s.toml:") && forms.contains("expected \"< N\", \"<= N\""), "{forms}");
    let unknown = line("unknown metric `p99`");
    assert!(unknown.contains("expected one of mean_ms, p50_ms") && unknown.contains("goodput_rps"), "{unknown}");
}

#[test]
fn run_help_lists_the_exit_codes() {
    let out = run(cmd(&["run", "--help"]), Duration::from_secs(10));
    assert!(out.status.success());
    for code in ["0 ", "1 ", "2 ", "3 ", "130"] {
        assert!(out.stdout.lines().any(|l| l.trim_start().starts_with(code)), "{code}: {}", out.stdout);
    }
    assert!(out.stdout.contains("3    a threshold failed, or a stage had no successful request"), "{}", out.stdout);
}
