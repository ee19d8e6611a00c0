//! The binary end to end, against the embedded mock or servers started here on 127.0.0.1.

mod common;
use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn fast_stages(n: u32, c: u32) -> String {
    format!("[[stage]]\nname = \"a\"\nconcurrency = {c}\nrequests = {n}\n")
}

#[test]
fn json_dash_puts_json_on_stdout_and_table_on_stderr() {
    let (_d, path) = scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0", &fast_stages(20, 4)));
    let out = run(
        {
            let mut c = bin();
            c.args(["run", "--headless", "--json", "-"]).arg(&path);
            c
        },
        LIMIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is only JSON");
    assert_schema_valid(&v);
    assert_eq!(v["stages"][0]["requests"]["ok"], 20);
    assert!(out.stderr.contains("mean latency"), "table goes to stderr: {}", out.stderr);
    // Progress is drawn only on a terminal; here stderr is a pipe.
    assert!(!out.stderr.contains("in flight"), "{}", out.stderr);
}

#[test]
fn json_file_is_written_and_table_printed() {
    let (d, path) = scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0", &fast_stages(10, 2)));
    let json = d.path().join("r.json");
    let out = run(
        {
            let mut c = bin();
            c.args(["run", "--headless", "--json"]).arg(&json).arg(&path);
            c
        },
        LIMIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.starts_with("mode"), "{}", out.stdout);
    let v = read_json(&json);
    assert_schema_valid(&v);
    assert_eq!(v["schema_version"], 4);
    assert_eq!(v["tool"]["name"], "llmload");
    assert_eq!(v["interrupted"], false);
    // No temp file is left beside the result.
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn schema_rejects_a_broken_result() {
    // Guards the schema test itself: a result missing a required count must fail.
    let (_, mut v) = run_scenario(&quick("base_latency_ms = 0\nper_inflight_ms = 0", &fast_stages(3, 1)));
    v["stages"][0]["requests"].as_object_mut().unwrap().remove("started");
    let r = std::panic::catch_unwind(|| assert_schema_valid(&v));
    assert!(r.is_err(), "schema accepted a stage without requests.started");
}

#[test]
fn every_request_is_accounted_and_failures_counted_by_kind() {
    let stages =
        "[[stage]]\nname = \"a\"\nconcurrency = 8\nrequests = 400\nwarmup = 16\n[[stage]]\nname = \"b\"\nconcurrency = 3\nrequests = 50\n";
    let (out, v) = run_scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0\nerror_rate = 0.3\nseed = 7", stages));
    assert_schema_valid(&v);
    for (s, planned) in v["stages"].as_array().unwrap().iter().zip([400, 50]) {
        let r = &s["requests"];
        let (started, ok, failed, cancelled) =
            (r["started"].as_u64().unwrap(), r["ok"].as_u64().unwrap(), r["failed"].as_u64().unwrap(), r["cancelled"].as_u64().unwrap());
        assert_eq!(started, planned, "warmup is not counted as measured");
        assert_eq!(started, ok + failed + cancelled);
        assert_eq!(s["failures"]["http_5xx"].as_u64().unwrap(), failed);
        assert_eq!(s["status_codes"]["500"].as_u64().unwrap(), failed);
        assert!(s["failure_examples"]["http_5xx"].as_str().unwrap().contains("HTTP 500: mock: injected failure"));
    }
    let a = &v["stages"][0];
    assert_eq!(a["warmup_requests"], 16);
    let rate = a["error_rate"].as_f64().unwrap();
    assert!((0.2..0.4).contains(&rate), "error rate {rate} far from the mock's 0.3");
    assert!(out.stdout.contains("a: http_5xx ×"), "failure notes name the kind:\n{}", out.stdout);
}

#[test]
fn duration_stage_stops_near_its_duration() {
    // 4 workers × 50 ms per request for 0.5 s: about 40 requests, all finished.
    let stages = "[[stage]]\nname = \"d\"\nconcurrency = 4\nduration = \"500ms\"\n";
    let (out, v) = run_scenario(&quick("base_latency_ms = 50\nper_inflight_ms = 0", stages));
    let s = &v["stages"][0];
    let ok = s["requests"]["ok"].as_u64().unwrap();
    let wall = s["wall_time_s"].as_f64().unwrap();
    assert!((32..=44).contains(&ok), "ok = {ok}");
    assert!((0.5..0.65).contains(&wall), "wall = {wall}");
    assert_eq!(out.stdout.lines().next().unwrap().split("  ").nth(1).map(str::trim), Some("wall time"));
}

#[test]
fn validate_explains_every_problem_with_location() {
    let (_d, path) = scenario("[target]\nbase_url = \"mock\"\nmodel = \"\"\n[prompts]\nlist = []\n[[stage]]\nconcurrency = 2\n");
    let out = run(
        {
            let mut c = bin();
            c.arg("validate").arg(&path);
            c
        },
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let lines: Vec<&str> = out.stderr.lines().collect();
    let shown = path.display().to_string();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(lines[0].starts_with(&format!("{shown}:3:9: target.model must not be empty")), "{}", lines[0]);
    assert!(lines[1].starts_with(&format!("{shown}:5:8: prompts.list is empty")), "{}", lines[1]);
    assert!(lines[2].starts_with(&format!("{shown}:6:1: stage \"2-way\": give `requests` or `duration`")), "{}", lines[2]);
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    let mut c = bin();
    c.arg("validate");
    for e in std::fs::read_dir(repo_path("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            c.arg(p);
        }
    }
    let out = run(c, LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("seed-comparison.toml: ok"), "{}", out.stdout);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let (_d, path) = scenario(&quick("", &fast_stages(1, 1)));
    for (args, expect) in [
        (vec!["run", "--base-url", "not a url"], "error: --base-url: base_url \"not a url\" is not a URL"),
        (vec!["run", "--model", " "], "error: --model: must not be empty"),
    ] {
        let out = run(
            {
                let mut c = bin();
                c.args(&args).arg(&path);
                c
            },
            LIMIT,
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with(expect), "{}", out.stderr);
    }
    let out = run(
        {
            let mut c = bin();
            c.args(["run", "--no-such-flag"]).arg(&path);
            c
        },
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        {
            let mut c = bin();
            c.args(["run", "/no/such/scenario.toml"]);
            c
        },
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.starts_with("/no/such/scenario.toml: cannot read scenario"), "{}", out.stderr);
}

/// One exit-code policy: the README's table is the one `src/exit.rs` holds, and every
/// command's `--help` ends with its own lines of it.
#[test]
fn the_exit_codes_are_one_table_in_the_readme_and_every_help() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    assert!(
        readme.contains(&llmload::exit::markdown()),
        "README.md's exit-code table is not src/exit.rs's:\n{}",
        llmload::exit::markdown()
    );
    for command in llmload::exit::COMMANDS {
        let out = run(cmd(&[command, "--help"]), LIMIT);
        assert!(out.status.success(), "{command}: {}", out.stderr);
        assert!(out.stdout.trim_end().ends_with(llmload::exit::help(command).trim_end()), "{command} --help:\n{}", out.stdout);
    }
}

/// `--min-effect` and `--fail-on` are checked once, by the command line, for `compare`
/// and `report` alike: refused (exit 2) before any file is read.
#[test]
fn gates_and_the_least_effect_are_refused_alike_by_compare_and_report() {
    for command in ["compare", "report"] {
        for (flag, value, says) in [
            ("--min-effect", "-1", "must be a percentage ≥ 0, got -1"),
            ("--min-effect", "NaN", "must be a percentage ≥ 0, got NaN"),
            ("--fail-on", "p99:+10%", "unknown metric `p99`"),
        ] {
            let out = run(cmd(&[command, flag, value, "/no/such/a.json", "/no/such/b.json"]), LIMIT);
            assert_eq!(out.status.code(), Some(2), "{command} {flag} {value}: {}", out.stderr);
            assert!(out.stderr.contains(says) && !out.stderr.contains("/no/such"), "{command} {flag} {value}: {}", out.stderr);
        }
    }
}

#[test]
fn mock_jitter_spreads_latencies_within_bounds() {
    // base 40 ms ± 20 ms, one request at a time: every latency within [20, 60] ms plus
    // client overhead, and spread out. (Seeding is unit-tested in the mock.)
    let stages = "[[stage]]\nname = \"j\"\nconcurrency = 1\nrequests = 30\n";
    let (_, v) = run_scenario(&quick("base_latency_ms = 40\nper_inflight_ms = 0\njitter_ms = 20\nseed = 42", stages));
    let l = &v["stages"][0]["latency_ms"];
    let (min, p90, sd) = (l["min"].as_f64().unwrap(), l["p90"].as_f64().unwrap(), l["stddev"].as_f64().unwrap());
    // p90, not max: one request of 30 delayed by a busy box (seen: 72.8 ms) is the
    // client's, not the jitter's.
    assert!(min >= 20.0 && p90 <= 70.0 && l["max"].as_f64().unwrap() <= 120.0, "min {min} p90 {p90} max {}", l["max"]);
    assert!(sd > 4.0, "jitter should spread latencies, stddev {sd}");
}

#[test]
fn a_closed_stdout_does_not_lose_the_result() {
    // As when `llmload run … | head` exits first: the JSON file must still be written.
    let (d, path) = scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0", &fast_stages(5, 1)));
    let json = d.path().join("r.json");
    let mut child = cmd(&["run", "--json"])
        .arg(&json)
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(read_json(&json)["stages"][0]["requests"]["ok"], 5);
}
