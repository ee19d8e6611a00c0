//! Shards and their exact merge, on the mock: four shards of a run together send the
//! unsharded run's requests (the same prompts, indices that do not clash), and `merge`
//! gives the very percentiles one histogram of every request would (rebuilt here from
//! the shards' `--requests-out` exports), not approximately. Bad input: a missing or
//! doubled shard, shards of another run or scenario, a result that is not a shard.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use llmload::metrics::Latency;

const SCENARIO: &str = "name = \"merge\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 8\nper_inflight_ms = 0.5\njitter_ms = 4\n\
                        [prompts]\ntemplate = \"hello {i}\"\n\
                        [thresholds]\np99_ms = \"< 5000\"\n\
                        [[stage]]\nname = \"closed\"\nconcurrency = 8\nrequests = 203\nwarmup = 6\n\
                        [[stage]]\nname = \"open\"\nrate = 80\narrival = \"poisson\"\nduration = \"1s\"\n";

fn run_shard(dir: &Path, shard: Option<&str>, extra: &[&str]) -> (PathBuf, PathBuf) {
    let scenario = dir.join("s.toml");
    if !scenario.exists() {
        std::fs::write(&scenario, SCENARIO).unwrap();
    }
    let tag = shard.map_or("whole".to_string(), |s| s.replace('/', "-of-"));
    let (json, jsonl) = (dir.join(format!("{tag}.json")), dir.join(format!("{tag}.jsonl")));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&jsonl).arg("--requests-out-text").args(extra);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c.arg(&scenario);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    (json, jsonl)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn merge(files: &[&Path], out: &Path) -> Output {
    let mut c = cmd(&["merge", "-o"]);
    c.arg(out).args(files);
    run(c, Duration::from_secs(30))
}

#[test]
fn four_shards_send_the_runs_requests_and_merge_to_its_exact_percentiles() {
    let d = tempfile::tempdir().unwrap();
    let shards: Vec<(PathBuf, PathBuf)> = (0..4).map(|i| run_shard(d.path(), Some(&format!("{i}/4")), &[])).collect();
    let (_, whole_jsonl) = run_shard(d.path(), None, &[]);
    // The closed stage's prompts: the shards' together are the unsharded run's, once each.
    let prompts = |files: &[&Path], phase: &str| {
        let mut p: Vec<String> = files
            .iter()
            .flat_map(|f| lines(f))
            .filter(|l| l["stage"] == "closed" && l["phase"] == phase)
            .map(|l| l["prompt"][0]["content"].as_str().unwrap().to_string())
            .collect();
        p.sort();
        p
    };
    let exports: Vec<&Path> = shards.iter().map(|s| s.1.as_path()).collect();
    for phase in ["warmup", "window"] {
        let (sharded, whole) = (prompts(&exports, phase), prompts(&[&whole_jsonl], phase));
        assert_eq!(sharded.len(), if phase == "warmup" { 6 } else { 203 });
        assert_eq!(sharded, whole, "the {phase} requests of the shards are the unsharded run's");
    }
    let mut indices: Vec<u64> = exports.iter().flat_map(|f| lines(f)).map(|l| l["index"].as_u64().unwrap()).collect();
    let n = indices.len();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), n, "request indices are unique across shards");

    let merged_path = d.path().join("merged.json");
    let files: Vec<&Path> = shards.iter().map(|s| s.0.as_path()).collect();
    let out = merge(&files, &merged_path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let merged = read_json(&merged_path);
    assert_schema_valid(&merged);
    assert_eq!(merged["merged_shards"], 4);
    let results: Vec<serde_json::Value> = files.iter().map(|f| read_json(f)).collect();
    // One histogram of every measured successful request, rebuilt from the exports.
    let mut all: BTreeMap<String, Latency> = BTreeMap::new();
    for l in exports.iter().flat_map(|f| lines(f)) {
        if l["phase"] == "window" && l["outcome"] == "ok" {
            let us = (l["e2e_ms"].as_f64().unwrap() * 1000.0).round() as u64;
            all.entry(l["stage"].as_str().unwrap().to_string()).or_default().record(Duration::from_micros(us));
        }
    }
    for (k, stage) in merged["stages"].as_array().unwrap().iter().enumerate() {
        let name = stage["name"].as_str().unwrap();
        let summed = |f: &dyn Fn(&serde_json::Value) -> u64| results.iter().map(|r| f(&r["stages"][k])).sum::<u64>();
        for field in ["started", "ok", "failed", "cancelled"] {
            assert_eq!(
                count(&stage["requests"][field]),
                summed(&|s| count(&s["requests"][field])),
                "{name}: requests.{field} is the shards' sum"
            );
        }
        let one = all[name].summary().unwrap();
        let l = &stage["latency_ms"];
        assert_eq!(count(&stage["histograms"]["e2e_us"]["count"]), all[name].count());
        for (q, want) in [("p50", one.p50), ("p90", one.p90), ("p99", one.p99), ("p999", one.p999), ("min", one.min), ("max", one.max)] {
            assert_eq!(num(&l[q]), want, "{name}: merged {q} is one histogram's of every request");
        }
        assert!((num(&l["mean"]) - one.mean).abs() < 1e-9 * one.mean, "{name}: mean {} vs {}", l["mean"], one.mean);
        assert!((num(&l["stddev"]) - one.stddev).abs() < 1e-6 * one.stddev.max(1.0), "{name}: stddev {} vs {}", l["stddev"], one.stddev);
    }
    assert_eq!(merged["stages"][0]["concurrency"], 8, "the whole run's concurrency");
    assert_eq!(merged["scenario"]["stages"][0]["requests"], 203);
    assert!((num(&merged["stages"][1]["open_loop"]["target_rate"]) - 80.0).abs() < 1e-9, "the shards' rates add up to the whole's");
    assert_eq!(merged["verdict"]["thresholds"][0]["passed"], true, "thresholds judged on the merge");
}

#[test]
fn a_merge_refuses_what_is_not_one_whole_run_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let a: Vec<PathBuf> = (0..2).map(|i| run_shard(d.path(), Some(&format!("{i}/2")), &["--run-id", "run-a"]).0).collect();
    let other = tempfile::tempdir().unwrap();
    let b0 = run_shard(other.path(), Some("0/2"), &["--run-id", "run-b"]).0;
    let whole = run_shard(other.path(), None, &[]).0;
    let out_path = d.path().join("merged.json");
    let cases: Vec<(Vec<&Path>, &str)> = vec![
        (vec![&a[0]], "shard 1 of 2 missing"),
        (vec![&a[0], &a[0], &a[1]], "shard 0/2 appears twice"),
        (vec![&a[0], &b0], "run id run-b is not"),
        (vec![&a[0], &whole], "not a shard's result"),
    ];
    for (files, says) in cases {
        let out = merge(&files, &out_path);
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
        assert!(out.stderr.contains(says), "wanted {says:?}: {}", out.stderr);
        assert!(!out_path.exists(), "no partial file");
    }
    // The same run id on another scenario (a file changed between the shards).
    let mut v = read_json(&a[1]);
    v["scenario_sha256"] = "0".repeat(64).into();
    let changed = d.path().join("changed.json");
    std::fs::write(&changed, serde_json::to_string(&v).unwrap()).unwrap();
    let out = merge(&[&a[0], &changed], &out_path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("another scenario"), "{}", out.stderr);
    // The same file and run id with a flag that changes what ran (the hash cannot see it).
    let dir = d.path().join("overridden");
    std::fs::create_dir_all(&dir).unwrap();
    let other = run_shard(&dir, Some("1/2"), &["--run-id", "run-a", "--model", "other"]).0;
    let out = merge(&[&a[0], &other], &out_path);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("ran another scenario than") && out.stderr.contains("its target.model differs (\"other\" against \"m\")"),
        "{}",
        out.stderr
    );
    assert!(!out_path.exists(), "no partial file");
    let out = merge(&[&a[0], &a[1]], &out_path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    // Those shards ran one after the other: merged, but said.
    assert!(out.stderr.contains("the shards did not run stage \"closed\" (started"), "{}", out.stderr);
}

#[test]
fn bad_shard_flags_are_one_line_and_exit_2() {
    let (_d, path) = scenario(SCENARIO);
    for (args, says) in [
        (vec!["--shard", "4/4"], "outside 0 ≤ I < 4"),
        (vec!["--shard", "0/0"], "N = 0"),
        (vec!["--shard", "0/9"], "concurrency 8 is fewer than the 9 shards"),
        (vec!["--shards", "2"], "none is set"),
        (vec!["--start-at", "2001-01-01T00:00:00Z"], "ago; give a moment still to come"),
        (vec!["--start-at", "soon"], "--start-at \"soon\""),
    ] {
        let mut c = cmd(&["run", "--headless"]);
        c.args(&args).arg(&path).env_remove("JOB_COMPLETION_INDEX").env_remove("SLURM_ARRAY_TASK_ID");
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.lines().any(|l| l.starts_with("error: ") && l.contains(says)), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn shards_started_together_record_the_moment_and_their_lag() {
    let d = tempfile::tempdir().unwrap();
    let start = "+2s";
    let out = run_shard(d.path(), Some("1/2"), &["--start-at", start]).0;
    let v = read_json(&out);
    assert!(v["start_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{}", v["start_at"]);
    let lag = num(&v["start_lag_ms"]);
    assert!((0.0..200.0).contains(&lag), "started {lag} ms after the moment");
    assert_eq!(v["shard"], serde_json::json!({"index": 1, "count": 2}));
    // Two shards started at one moment run their stages together: no note.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("s.toml"), SCENARIO).unwrap();
    let start = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3)).to_string();
    let (dir, args) = (d.path(), ["--start-at", start.as_str()]);
    let files: Vec<PathBuf> = std::thread::scope(|s| {
        let shards: Vec<_> = (0..2).map(|i| s.spawn(move || run_shard(dir, Some(&format!("{i}/2")), &args).0)).collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let out = merge(&[&files[0], &files[1]], &d.path().join("merged.json"));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("did not run"), "{}", out.stderr);
}

#[test]
fn a_sharded_list_sweep_is_judged_again_on_the_merged_points() {
    let d = tempfile::tempdir().unwrap();
    let text = "name = \"sweep\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 10\nper_inflight_ms = 0\ncapacity = 1\n\
                [prompts]\ntemplate = \"hi {i}\"\n[slo]\ne2e_ms = 25\n[sweep]\nconcurrency = [2, 4, 8]\nrequests = 32\n";
    let scenario = d.path().join("s.toml");
    std::fs::write(&scenario, text).unwrap();
    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let json = d.path().join(format!("shard-{i}.json"));
            let mut c = cmd(&["run", "--headless", "--shard", &format!("{i}/2"), "--json"]);
            c.arg(&json).arg(&scenario);
            let out = run(c, Duration::from_secs(60));
            assert!(out.status.success(), "{}", out.stderr);
            json
        })
        .collect();
    let merged_path = d.path().join("merged.json");
    let out = merge(&[&files[0], &files[1]], &merged_path);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", out.stderr);
    let m = read_json(&merged_path);
    let points = m["sweep"]["points"].as_array().expect("the merged result has the sweep's verdict");
    let loads: Vec<f64> = points.iter().map(|p| num(&p["load"])).collect();
    assert_eq!(loads, [2.0, 4.0, 8.0], "the whole run's loads, not a shard's");
    for (p, s) in points.iter().zip(m["stages"].as_array().unwrap()) {
        assert_eq!(p["throughput"], s["throughput"]["ok_per_s"], "points read the merged stages");
    }
    // One request at a time per shard's mock, 10 ms each: 2 workers already saturate it.
    assert_eq!(m["sweep"]["knee"]["load"], 2.0, "{}", m["sweep"]["summary"]);
    assert!(m["sweep"]["summary"].as_str().unwrap().contains("plateaus"), "{}", m["sweep"]["summary"]);
}

#[test]
fn sharded_sessions_merge_by_turn_exactly() {
    let d = tempfile::tempdir().unwrap();
    let text = SESSIONS.replace("requests = 60", "requests = 150");
    let scenario = d.path().join("s.toml");
    std::fs::write(&scenario, text).unwrap();
    let go = |shard: Option<usize>| {
        let tag = shard.map_or("whole".to_string(), |i| format!("shard-{i}"));
        let (json, jsonl) = (d.path().join(format!("{tag}.json")), d.path().join(format!("{tag}.jsonl")));
        let mut c = cmd(&["run", "--headless", "--json"]);
        c.arg(&json).arg("--requests-out").arg(&jsonl);
        if let Some(i) = shard {
            c.args(["--shard", &format!("{i}/2")]);
        }
        c.arg(&scenario);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{}", out.stderr);
        (json, jsonl)
    };
    let shards: Vec<(PathBuf, PathBuf)> = (0..2).map(|i| go(Some(i))).collect();
    // The shards' sessions are the unsharded run's: each whole-run session number has
    // the length it has unsharded (but the few each run cut at the stage's end).
    let lengths = |files: &[&Path]| {
        let mut n: BTreeMap<u64, u64> = BTreeMap::new();
        for l in files.iter().flat_map(|f| lines(f)) {
            let e = n.entry(l["session"].as_u64().expect("a conversation's export names each request's session")).or_default();
            *e = (*e).max(l["turn"].as_u64().unwrap() + 1);
        }
        n
    };
    let whole = lengths(&[&go(None).1]);
    let sharded = lengths(&[&shards[0].1, &shards[1].1]);
    let same = sharded.iter().filter(|(s, n)| whole.get(s) == Some(n)).count();
    assert!(sharded.len() >= 40 && same + 8 >= sharded.len(), "{same} of {} sessions as long as unsharded", sharded.len());
    let merged_path = d.path().join("merged.json");
    let out = merge(&[&shards[0].0, &shards[1].0], &merged_path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let m = read_json(&merged_path);
    assert_schema_valid(&m);
    let s = &m["stages"][0]["sessions"];
    assert!(s.is_object(), "the merged stage has its sessions: {}", m["stages"][0]);
    let parts: Vec<serde_json::Value> = shards.iter().map(|(j, _)| read_json(j)["stages"][0]["sessions"].clone()).collect();
    for field in ["started", "finished", "failed", "cut"] {
        assert_eq!(count(&s[field]), parts.iter().map(|p| count(&p[field])).sum::<u64>(), "sessions.{field} is the shards' sum");
    }
    assert!(count(&s["started"]) >= 2 * 4, "every worker ran sessions: {s}");
    assert_eq!(count(&s["histograms"]["turns"]["count"]), count(&s["started"]), "one length per ended session");
    // Each turn's TTFT and e2e: one histogram (at the turn's 2 digits) of every such
    // request of both shards, rebuilt from their exports.
    let mut ttft: BTreeMap<u64, Latency> = BTreeMap::new();
    let mut e2e: BTreeMap<u64, Latency> = BTreeMap::new();
    for l in shards.iter().flat_map(|(_, jsonl)| lines(jsonl)) {
        if l["phase"] == "window" && l["outcome"] == "ok" {
            let turn = l["turn"].as_u64().expect("a conversation's export names each request's turn");
            let us = |v: &serde_json::Value| Duration::from_micros((v.as_f64().unwrap() * 1000.0).round() as u64);
            e2e.entry(turn).or_insert_with(|| Latency::with_digits(2)).record(us(&l["e2e_ms"]));
            ttft.entry(turn).or_insert_with(|| Latency::with_digits(2)).record(us(&l["ttft_ms"]));
        }
    }
    let by_turn = s["by_turn"].as_array().unwrap();
    assert_eq!(by_turn.len(), e2e.len(), "a row per turn index seen");
    assert!(by_turn.len() >= 2, "sessions of two turns or more: {s}");
    for (k, row) in by_turn.iter().enumerate() {
        let k = k as u64;
        assert_eq!(count(&row["ok"]), e2e[&k].count(), "turn {k}: ok is every such request");
        for (name, want) in [("e2e_ms", &e2e[&k]), ("ttft_ms", &ttft[&k])] {
            let one = want.summary().unwrap();
            for (q, v) in [("p50", one.p50), ("p90", one.p90), ("p99", one.p99), ("min", one.min), ("max", one.max)] {
                assert_eq!(num(&row[name][q]), v, "turn {k}: merged {name}.{q} is one histogram's of every such request");
            }
        }
        let (cached, of) = parts
            .iter()
            .filter_map(|p| p["by_turn"].get(k as usize))
            .fold((0, 0), |(c, o), r| (c + count(&r["cached_tokens"]), o + count(&r["cached_of"])));
        assert!(of > 0, "turn {k}: the mock's usage says what its prefix cache held");
        assert!((num(&row["cached_share"]) - cached as f64 / of as f64).abs() < 1e-12, "turn {k}: the share of the summed counts");
    }
    assert!(num(&by_turn[1]["cached_share"]) > num(&by_turn[0]["cached_share"]), "later turns find their history cached: {s}");
    // The stage's cached share and output targets, from the shards' counts and histograms.
    let stages: Vec<serde_json::Value> = shards.iter().map(|(j, _)| read_json(j)["stages"][0].clone()).collect();
    let summed = |f: &dyn Fn(&serde_json::Value) -> u64| stages.iter().map(f).sum::<u64>();
    let (cached, of) = (summed(&|s| count(&s["tokens"]["cached"]["tokens"])), summed(&|s| count(&s["tokens"]["cached"]["of"])));
    let merged = &m["stages"][0];
    assert!(of > 0 && (num(&merged["tokens"]["cached"]["share"]) - cached as f64 / of as f64).abs() < 1e-12, "{}", merged["tokens"]);
    let targets = summed(&|s| count(&s["histograms"]["target_output_tokens"]["count"]));
    assert_eq!(count(&merged["histograms"]["target_output_tokens"]["count"]), targets);
    let most = stages.iter().map(|s| num(&s["tokens"]["target_output"]["target"]["max"])).fold(0.0, f64::max);
    assert_eq!(num(&merged["tokens"]["target_output"]["target"]["max"]), most, "the targets' distribution added");
}

/// Runs `text` as shards `0/n` … of `n`, together (from one `--start-at`); their results
/// and exit codes.
fn shards_of(dir: &Path, text: &str, n: u32) -> Vec<(PathBuf, Option<i32>)> {
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, text).unwrap();
    let start = humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_millis(1500)).to_string();
    let (scenario, start) = (&scenario, &start);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    let json = dir.join(format!("shard-{i}.json"));
                    let mut c = cmd(&["run", "--headless", "--shard", &format!("{i}/{n}"), "--start-at", start, "--json"]);
                    c.arg(&json).arg(scenario);
                    (json, run(c, Duration::from_secs(60)).status.code())
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a_merge_of_aborted_shards_fails_as_the_run_would() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "abort_on_error_rate = 0.5\n{}",
        quick(
            "base_latency_ms = 1\nper_inflight_ms = 0\nerror_rate = 0.9\nseed = 3",
            "[[stage]]\nname = \"bad\"\nconcurrency = 4\nrequests = 200\n[[stage]]\nname = \"never\"\nconcurrency = 2\nrequests = 10\n",
        )
    );
    let shards = shards_of(d.path(), &text, 2);
    assert!(shards.iter().all(|(_, code)| *code == Some(1)), "each shard aborts: {shards:?}");
    let merged = d.path().join("merged.json");
    let out = merge(&[&shards[0].0, &shards[1].0], &merged);
    assert_eq!(out.status.code(), Some(1), "an aborted run's merge fails as the run does: {}", out.stderr);
    assert!(out.stderr.contains("aborted (its error rate): the merge is not the whole run's"), "{}", out.stderr);
    let m = read_json(&merged);
    let stage = &m["stages"][0];
    assert_eq!(
        count(&m["aborted"]["requests"]),
        count(&stage["requests"]["ok"]) + count(&stage["requests"]["failed"]),
        "judged over the whole stage"
    );
    assert_eq!(num(&m["aborted"]["error_rate"]), num(&stage["error_rate"]));
}

#[test]
fn a_shard_with_nothing_to_send_in_a_stage_passes_and_one_shard_merges() {
    let d = tempfile::tempdir().unwrap();
    // Two arrivals a second for 1 s over 4 shards: shards 2 and 3 send nothing.
    let text = quick(
        "base_latency_ms = 5\nper_inflight_ms = 0",
        "[[stage]]\nname = \"slow\"\nrate = 2\narrival = \"constant\"\nduration = \"1s\"\n",
    );
    let shards = shards_of(d.path(), &text, 4);
    assert!(shards.iter().all(|(_, code)| *code == Some(0)), "an empty share is not a stage without success: {shards:?}");
    let started: Vec<u64> = shards.iter().map(|(j, _)| count(&read_json(j)["stages"][0]["requests"]["started"])).collect();
    assert_eq!(started.iter().sum::<u64>(), 2, "{started:?}");
    let merged = d.path().join("merged.json");
    let files: Vec<&Path> = shards.iter().map(|(j, _)| j.as_path()).collect();
    let out = merge(&files, &merged);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("did not run"), "the empty shards' windows are not compared: {}", out.stderr);
    // One shard of one (a one-pod Job) is a shard's result all the same.
    let one_dir = d.path().join("one");
    std::fs::create_dir_all(&one_dir).unwrap();
    let one = shards_of(&one_dir, &text, 1);
    assert_eq!(read_json(&one[0].0)["shard"], serde_json::json!({"index": 0, "count": 1}));
    assert_eq!(merge(&[&one[0].0], &merged).status.code(), Some(0));
}

#[test]
fn constant_arrivals_phased_per_shard_keep_each_shards_rate() {
    let d = tempfile::tempdir().unwrap();
    let text = quick(
        "base_latency_ms = 5\nper_inflight_ms = 0",
        "[[stage]]\nname = \"even\"\nrate = 40\narrival = \"constant\"\nduration = \"1s\"\n",
    );
    let shards = shards_of(d.path(), &text, 4);
    for (json, code) in &shards {
        assert_eq!(*code, Some(0));
        let o = &read_json(json)["stages"][0]["open_loop"];
        // Each shard's 10 arrivals, a gap of 0.1 s apart from its phase on: 10 a second.
        assert!((num(&o["scheduled_rate"]) - 10.0).abs() < 1e-6, "a later phase is no lower rate: {o}");
    }
    let merged = d.path().join("merged.json");
    let files: Vec<&Path> = shards.iter().map(|(j, _)| j.as_path()).collect();
    assert_eq!(merge(&files, &merged).status.code(), Some(0));
    let o = &read_json(&merged)["stages"][0]["open_loop"];
    assert!((num(&o["scheduled_rate"]) - 40.0).abs() < 1e-6, "the shards' rates add up to the whole's: {o}");
}

#[test]
fn a_sharded_ramp_brings_the_whole_runs_workers_in_one_by_one() {
    let d = tempfile::tempdir().unwrap();
    // 4 workers over a 1 s ramp, 50 ms a request: worker k joins at k/4 s, so the ramp
    // sends ~20 + 15 + 10 + 5 requests; were each shard's one worker to join at once, 80.
    let text = quick(
        "base_latency_ms = 50\nper_inflight_ms = 0",
        "[[stage]]\nname = \"rising\"\nconcurrency = 4\nramp = \"1s\"\nduration = \"1s\"\n",
    );
    let shards = shards_of(d.path(), &text, 4);
    let ramped: u64 = shards.iter().map(|(j, _)| count(&read_json(j)["stages"][0]["warmup_requests"])).sum();
    let whole_dir = d.path().join("whole");
    std::fs::create_dir_all(&whole_dir).unwrap();
    let whole = &shards_of(&whole_dir, &text, 1)[0].0;
    let unsharded = count(&read_json(whole)["stages"][0]["warmup_requests"]);
    assert!((40..=60).contains(&unsharded), "unsharded, the ramp sent {unsharded}");
    assert!(ramped.abs_diff(unsharded) <= 6, "the shards' ramps sent {ramped}, the unsharded run's {unsharded}");
}

#[test]
fn shards_build_their_first_prompts_before_the_moment_and_start_on_it() {
    let d = tempfile::tempdir().unwrap();
    // 2,048 prompts of 2,000 tokens built ahead (8 workers × 256): over a second of work
    // in a debug build, done while the shard waits, not after the moment.
    let text = "name = \"big\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 5\nper_inflight_ms = 0\n\
                [prompts]\nsynthetic = { input = 2000, output = 4 }\n[[stage]]\nname = \"c\"\nconcurrency = 8\nduration = \"0.3s\"\n";
    let scenario = d.path().join("s.toml");
    std::fs::write(&scenario, text).unwrap();
    let start = humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(5)).to_string();
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--shard", "0/2", "--start-at", &start, "--json"]);
    c.arg(&json).arg(&scenario);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let at = |t: &serde_json::Value| humantime::parse_rfc3339(t.as_str().unwrap()).unwrap();
    let opened = at(&v["stages"][0]["window_start"]).duration_since(at(&v["start_at"])).unwrap().as_secs_f64() * 1000.0;
    let lag = num(&v["start_lag_ms"]);
    assert!(opened < 300.0, "the window opened {opened:.0} ms after the moment (start lag {lag:.0} ms)");
    assert!(lag <= opened + 1.0, "the lag ({lag:.1} ms) is no more than the window's delay ({opened:.1} ms)");
}
