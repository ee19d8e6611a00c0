//! Stages that run until their figures are known (`until`), on the mock: a steady
//! server's median is known to ±5 % once ten seconds can be batched, and the stage ends
//! then, well before its `max`; a precision it cannot reach runs to `max` and says so,
//! without failing the run; what `until` does not go with is refused in one line.

mod common;
use common::*;

use std::time::Duration;

const MOCK: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 20\njitter_ms = 10\nseed = 4\n[prompts]\ntemplate = \"q {i}\"\n";

#[test]
fn a_stage_ends_once_its_figures_are_known() {
    let (out, v) = run_headless(
        &format!("{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 4\nuntil = {{ metric = \"p50_ms\", within = \"5%\", max = \"60s\" }}\n"),
        &[],
    );
    let s = &v["stages"][0];
    let u = &s["until"];
    assert_eq!(u["converged"], true, "{u}");
    // Batch means need ten seconds (the last may be a part); a steady median is known then.
    let after = num(&u["after_s"]);
    assert!((9.0..20.0).contains(&after), "{u}");
    assert!(num(&s["wall_time_s"]) < after + 2.0, "the window ended when it converged: {}", s["wall_time_s"]);
    assert!(num(&u["figures"]["p50_ms"]["reached"]) <= 0.05, "{u}");
    assert!(count(&u["requests"]) > 100, "{u}");
    assert_eq!(v["scenario"]["stages"][0]["until"]["max_s"], 60.0);
    assert!(out.stdout.contains("s: until p50_ms ±5 %: converged after"), "{}", out.stdout);
}

#[test]
fn a_precision_never_reached_runs_to_max_and_says_so_without_failing() {
    let (out, v) = run_headless(
        &format!(
            "{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 4\nuntil = [{{ metric = \"p99_ms\", within = 0.001, max = \"11s\" }}, {{ metric = \"ok_rps\", within = \"50%\" }}]\n"
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "not converging is reported, not failed");
    let s = &v["stages"][0];
    let u = &s["until"];
    assert_eq!((u["converged"].as_bool(), u["after_s"].is_null()), (Some(false), true), "{u}");
    assert!((10.5..13.0).contains(&num(&s["wall_time_s"])), "ran to its max: {}", s["wall_time_s"]);
    let said = u["said"].as_str().unwrap();
    assert!(said.starts_with("did not converge in 11") && said.contains("p99_ms ±") && !said.contains("ok_rps"), "{said}");
    assert!(out.stdout.contains("did not converge in"), "{}", out.stdout);
}

#[test]
fn what_until_does_not_go_with_is_one_located_line() {
    for (until, said) in [
        (
            "until = { metric = \"p99_ms\", within = \"5%\" }\nrequests = 10",
            "until ends the stage (at its max at the latest): give no requests or duration too",
        ),
        ("until = { metric = \"max_ms\", within = \"5%\" }", "\"max_ms\" has no interval"),
        ("until = { metric = \"p99_ms\", within = \"150%\" }", "within must be a share of the figure above 0 and below 100 %"),
    ] {
        let (_d, path) = scenario(&format!("{MOCK}[[stage]]\nname = \"s\"\nconcurrency = 1\n{until}\n"));
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{until}: {}", out.stderr);
        let line = out.stderr.trim();
        assert!(line.lines().count() == 1 && line.contains(said) && line.contains("s.toml:"), "{until}: {line}");
    }
}

#[test]
fn a_sweep_runs_each_point_until_it_is_known() {
    let (_, v) = run_headless(
        &format!("{MOCK}[sweep]\nconcurrency = [1, 4]\nuntil = {{ metric = \"p50_ms\", within = \"5%\", max = \"40s\" }}\n"),
        &[],
    );
    for s in v["stages"].as_array().unwrap() {
        let u = &s["until"];
        assert_eq!(u["converged"], true, "{}: {u}", s["name"]);
        assert!(num(&s["wall_time_s"]) < 20.0, "{}: ended when known, not at 40 s", s["name"]);
    }
    assert!(v["sweep"]["summary"].as_str().is_some_and(|s| !s.is_empty()));
}

/// Two shards that each ran until their median was known merge into a stage whose goal
/// is judged again on the merged intervals: converged after the later shard, with both
/// shards' requests.
#[test]
fn merged_shards_judge_their_until_again() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.toml");
    let stage = "[[stage]]\nname = \"s\"\nconcurrency = 4\nuntil = { metric = \"p50_ms\", within = \"5%\", max = \"40s\" }\n";
    std::fs::write(&path, format!("{MOCK}{stage}")).unwrap();
    let shard = |i: u32| {
        let json = d.path().join(format!("{i}.json"));
        let mut c = cmd(&["run", "--headless", "--shard", &format!("{i}/2"), "--json"]);
        c.arg(&json).arg(&path);
        (json, std::thread::spawn(move || run(c, Duration::from_secs(90))))
    };
    let mut files = Vec::new();
    for (json, h) in [shard(0), shard(1)] {
        let out = h.join().unwrap();
        assert!(out.status.success(), "{}", out.stderr);
        files.push(json);
    }
    let shards: Vec<serde_json::Value> = files.iter().map(|f| read_json(f)).collect();
    let merged = d.path().join("m.json");
    let mut c = cmd(&["merge", "-o"]);
    c.arg(&merged).args(&files);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    let m = read_json(&merged);
    assert_schema_valid(&m);
    let u = &m["stages"][0]["until"];
    assert_eq!(u["converged"], true, "{u}");
    let after: Vec<f64> = shards.iter().map(|s| num(&s["stages"][0]["until"]["after_s"])).collect();
    assert_eq!(num(&u["after_s"]), after.iter().cloned().fold(0.0, f64::max), "{u}");
    let requests: u64 = shards.iter().map(|s| count(&s["stages"][0]["until"]["requests"])).sum();
    assert_eq!(count(&u["requests"]), requests, "{u}");
    assert!(num(&u["figures"]["p50_ms"]["reached"]) <= 0.05, "{u}");
}
