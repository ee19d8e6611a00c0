//! `--repeat K` on the mock: every repetition kept with the spread of its figures, the
//! thresholds judged on each (the exit code the worst repetition's, named), the mock
//! restarted each time, `compare` taking repetitions as its noise base, and the report
//! drawing them.

mod common;
use common::*;

use std::time::Duration;

/// The embedded mock, its `[mock]` table last (a test adds to it).
const MOCK: &str =
    "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\ntemplate = \"q {i}\"\n[mock]\nbase_latency_ms = 10\njitter_ms = 4\n";

fn repeated(text: &str, extra: &[&str]) -> (tempfile::TempDir, Output, serde_json::Value) {
    let (d, path) = scenario(text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--repeat", "3", "--json"]);
    c.arg(&json).args(extra).arg(&path);
    let out = run(c, Duration::from_secs(120));
    let v = read_json(&json);
    (d, out, v)
}

#[test]
fn every_repetition_is_kept_with_the_spread_of_its_figures() {
    let (_d, out, v) = repeated(
        &format!(
            "{MOCK}[thresholds]\np99_ms = \"< 1000\"\n[[stage]]\nname = \"a\"\nconcurrency = 2\nrequests = 60\n[[stage]]\nname = \"b\"\nconcurrency = 6\nrequests = 120\n"
        ),
        &["--repeat-pause", "200ms"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_schema_valid(&v);
    let r = &v["repeats"];
    assert_eq!(r["count"], 3);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|x| count(&x["repetition"])).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(runs.iter().all(|x| x["passed"] == true && x["failed"].as_array().unwrap().is_empty()), "{r}");
    // Run one after the other, each on its own mock: the started_at advance.
    let starts: Vec<&str> = runs.iter().map(|x| x["started_at"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    for (i, stage) in ["a", "b"].iter().enumerate() {
        let spread = &r["stages"][i];
        assert_eq!(spread["name"], *stage);
        let p50 = &spread["figures"]["p50_ms"];
        let each: Vec<f64> = runs.iter().map(|x| num(&x["stages"][*stage]["p50_ms"])).collect();
        let mean = each.iter().sum::<f64>() / 3.0;
        assert!((num(&p50["mean"]) - mean).abs() < 1e-3, "{p50} vs {each:?}");
        assert_eq!(count(&p50["n"]), 3);
        assert!(num(&p50["lo"]) <= mean && mean <= num(&p50["hi"]), "{p50}");
        assert_eq!(
            (num(&p50["min"]), num(&p50["max"])),
            (each.iter().cloned().fold(f64::MAX, f64::min), each.iter().cloned().fold(0.0, f64::max))
        );
        // The mock's 10 ± 4 ms: its repetitions agree within a few ms.
        assert!(num(&p50["sd"]) < 3.0, "{p50}");
    }
    // The stages at the top are the first repetition's.
    assert_eq!(num(&v["stages"][0]["latency_ms"]["p50"]), num(&runs[0]["stages"]["a"]["p50_ms"]));
    assert_eq!(r["said"], "all 3 repetitions passed");
    assert!(out.stdout.contains("across 3 repetitions (of 3 asked):"), "{}", out.stdout);
    assert!(out.stderr.contains("repetition 3 of 3"), "{}", out.stderr);
    // The report draws them.
    let d = tempfile::tempdir().unwrap();
    let (json, html) = (d.path().join("r.json"), d.path().join("r.html"));
    std::fs::write(&json, v.to_string()).unwrap();
    let mut c = cmd(&["report", "-o"]);
    c.arg(&html).arg(&json);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("p50 (ms) in each repetition") && page.contains("the scenario run 3 times"), "the report draws the spread");
}

/// A threshold that one repetition fails fails the run (exit 3), the verdict naming
/// which: here the mock's seeded errors make every repetition's error rate the same,
/// so the threshold trips in each and each is named.
#[test]
fn thresholds_are_judged_on_every_repetition_and_the_worst_decides() {
    let (_d, out, v) = repeated(
        &format!(
            "{MOCK}error_rate = 0.1\nseed = 9\n[thresholds]\nerror_rate = \"< 0.02\"\n[retry]\nmax_attempts = 1\n[[stage]]\nname = \"a\"\nconcurrency = 2\nrequests = 100\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    assert_schema_valid(&v);
    let r = &v["repeats"];
    assert!(r["runs"].as_array().unwrap().iter().all(|x| x["passed"] == false), "{r}");
    assert_eq!(r["said"], "repetitions 1, 2, 3 of 3 failed their thresholds");
    let failed = r["runs"][1]["failed"][0].as_str().unwrap();
    assert!(failed.starts_with("a: error_rate < 0.02 (measured "), "{failed}");
    assert!(out.stdout.contains("repetition 2: a: error_rate < 0.02"), "{}", out.stdout);
    assert_eq!(v["verdict"]["passed"], false);
}

/// `compare` takes a repeated base's repetitions as its noise: the same scenario run
/// again is within it, a server twice as slow beyond it.
#[test]
fn compare_uses_the_repetitions_as_its_noise_base() {
    let stages = "[[stage]]\nname = \"a\"\nconcurrency = 4\nrequests = 150\n";
    let (_d1, out, base) = repeated(&format!("{MOCK}{stages}"), &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let (_d2, _, same) = repeated(&format!("{MOCK}{stages}"), &[]);
    let slow = MOCK.replace("base_latency_ms = 10", "base_latency_ms = 20");
    let (_d3, _, slower) = repeated(&format!("{slow}{stages}"), &[]);
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        let p = d.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let (b, s, w) = (write("base.json", &base), write("same.json", &same), write("slower.json", &slower));
    let line = |out: &Output| out.stdout.lines().find(|l| l.contains("p50_ms")).unwrap_or_default().to_string();
    let mut c = cmd(&["compare"]);
    c.arg(&b).arg(&w);
    let out = run(c, Duration::from_secs(30));
    assert!(line(&out).contains("beyond noise"), "{}", out.stdout);
    let mut c = cmd(&["compare"]);
    c.arg(&b).arg(&s);
    let out = run(c, Duration::from_secs(30));
    assert!(line(&out).contains("within noise"), "{}", out.stdout);
    // The base is the repetitions' mean, not the first repetition's figure alone.
    let mut c = cmd(&["compare", "--format", "csv"]);
    c.arg(&b).arg(&s);
    let out = run(c, Duration::from_secs(30));
    let row = out.stdout.lines().find(|l| l.starts_with("a,p50_ms,")).unwrap_or_else(|| panic!("{}", out.stdout)).to_string();
    let shown: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
    let mean = num(&base["repeats"]["stages"][0]["figures"]["p50_ms"]["mean"]);
    assert!((shown - mean).abs() < 0.01, "{row} against the repetitions' mean {mean}");
}

#[test]
fn repeat_does_not_go_with_shards() {
    let (_d, path) = scenario(&format!("{MOCK}[[stage]]\nname = \"a\"\nconcurrency = 2\nrequests = 10\n"));
    let mut c = cmd(&["run", "--headless", "--repeat", "2", "--shard", "0/2"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--repeat") && out.stderr.contains("--shard"), "{}", out.stderr);
}
