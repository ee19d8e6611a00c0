//! Runs without a file, and a starter file: `run --base-url mock --concurrency 1,4`
//! builds the scenario from flags (shown by `--print-scenario`), and `init` writes one
//! that validates and runs on the mock.

mod common;
use common::*;

use std::time::Duration;

#[test]
fn a_quick_run_on_the_mock_needs_no_file() {
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--base-url", "mock", "--concurrency", "1,4", "--requests", "12", "--stream", "--json"]);
    c.arg(&json);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    let names: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sequential", "4-way"]);
    assert!(v["stages"].as_array().unwrap().iter().all(|s| s["requests"]["ok"] == 12 && !s["ttft_ms"].is_null()));
}

#[test]
fn print_scenario_shows_the_toml_the_flags_make() {
    let out = run(
        cmd(&[
            "run",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--rate",
            "5,10",
            "--duration",
            "30s",
            "--prompt",
            "say \"hi\"",
            "--max-tokens",
            "16",
            "--print-scenario",
        ]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let doc: toml::Table = toml::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(doc["target"]["base_url"].as_str(), Some("http://127.0.0.1:9/v1"));
    assert_eq!(doc["prompts"]["list"][0].as_str(), Some("say \"hi\""));
    assert_eq!(doc["request"]["max_tokens"].as_integer(), Some(16));
    let stages = doc["stage"].as_array().unwrap();
    assert_eq!((stages.len(), stages[1]["rate"].as_float(), stages[0]["duration"].as_str()), (2, Some(10.0), Some("30s")));
    // It is a scenario like any other: it validates.
    let (_d, path) = scenario(&out.stdout);
    let mut c = cmd(&["validate"]);
    c.arg(&path);
    assert!(run(c, Duration::from_secs(10)).status.success());
}

#[test]
fn quick_flags_that_do_not_fit_are_bad_input() {
    for (args, says) in [
        (vec!["run", "--base-url", "http://127.0.0.1:9/v1"], "needs --model"),
        (vec!["run", "--base-url", "mock", "--concurrency", "2", "--rate", "3"], "not both"),
        (vec!["run"], "give a scenario file, or --base-url"),
        (vec!["run", "--base-url", "mock", "--prompt", "a", "--synthetic", "N(10,1)/(5,1)"], "not both"),
        (vec!["run", "scenarios/seed-comparison.toml", "--concurrency", "3"], "--concurrency is for a run without a scenario file"),
    ] {
        let out = run(cmd(&args), Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says) && out.stderr.trim().lines().count() == 1, "{args:?}: {}", out.stderr);
    }
}

#[test]
fn init_writes_a_starter_that_runs_on_the_mock() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("llmload.toml");
    let mut c = cmd(&["init", "--stream"]);
    c.arg(&path);
    assert!(run(c, Duration::from_secs(10)).status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("stream = true") && text.starts_with("# A starter llmload scenario"), "{text}");
    // Not over an existing file.
    let mut c = cmd(&["init"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(10));
    assert!(out.status.code() == Some(2) && out.stderr.contains("exists"), "{}", out.stderr);
    let (_, v) = run_scenario(&text);
    assert_eq!(v["verdict"]["passed"], true, "{}", v["verdict"]);
    assert!(v["stages"].as_array().unwrap().iter().all(|s| s["requests"]["failed"] == 0));
}
