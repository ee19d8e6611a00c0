//! `--requests-out`: one JSON line per finished request, as it ends: exactly one
//! `window` line per measured request, warmup and ramp apart, times on the wall clock.

mod common;
use common::*;

use std::collections::HashSet;
use std::time::Duration;

#[test]
fn one_line_per_request_with_its_phase_and_times() {
    let text = quick(
        "base_latency_ms = 10\nper_inflight_ms = 0",
        "[[stage]]\nname = \"closed\"\nconcurrency = 4\nwarmup = 5\nrequests = 40\n\
         [[stage]]\nname = \"open\"\nrate = 200\nramp = \"100ms\"\nrequests = 30\n",
    );
    let (d, path) = scenario(&text);
    let (json, lines) = (d.path().join("r.json"), d.path().join("requests.jsonl"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |stage: &str, phase: &str| rows.iter().filter(|r| r["stage"] == stage && r["phase"] == phase).count() as u64;
    // Exactly one window line per measured request, as the result counts them.
    for (i, stage) in ["closed", "open"].into_iter().enumerate() {
        assert_eq!(count(stage, "window"), v["stages"][i]["requests"]["started"].as_u64().unwrap(), "{stage}");
    }
    assert_eq!(count("closed", "window"), 40);
    assert_eq!(count("closed", "warmup"), 5);
    let ramp = v["stages"][1]["warmup_requests"].as_u64().unwrap();
    assert!(ramp > 0 && count("open", "ramp") == ramp, "{ramp} ramp requests");
    let indexes: HashSet<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes.len(), rows.len(), "indexes are unique");
    let t = |r: &serde_json::Value, k: &str| humantime::parse_rfc3339(r[k].as_str().unwrap()).unwrap();
    let (start, end) = (
        humantime::parse_rfc3339(v["started_at"].as_str().unwrap()).unwrap(),
        humantime::parse_rfc3339(v["finished_at"].as_str().unwrap()).unwrap(),
    );
    for r in &rows {
        assert_eq!((r["outcome"].as_str(), r["status"].as_u64(), r["attempts"].as_u64()), (Some("ok"), Some(200), Some(1)), "{r}");
        assert!(num(&r["e2e_ms"]) >= 10.0 && r["output_tokens"].as_u64() > Some(0), "{r}");
        // A template prompt's count is the server's usage, as the stage's input length.
        assert!(r["input_tokens"].as_u64() > Some(0), "{r}");
        let (sched, sent) = (t(r, "scheduled_at"), t(r, "sent_at"));
        assert!(sched <= sent && sent + Duration::from_millis(1) >= start && sent <= end, "{r}");
    }
    // Closed loop: sent when scheduled. Open loop: scheduled on the rate's grid.
    assert!(rows.iter().filter(|r| r["stage"] == "closed").all(|r| r["scheduled_at"] == r["sent_at"]));
}

#[test]
fn text_only_when_asked() {
    let text = quick("base_latency_ms = 1\nper_inflight_ms = 0\noutput_tokens = 4", "[[stage]]\nconcurrency = 2\nrequests = 6\n");
    let (d, path) = scenario(&text);
    let lines = d.path().join("requests.jsonl");
    for (flag, stream) in [(None, false), (Some("--requests-out-text"), false), (Some("--requests-out-text"), true)] {
        let mut c = cmd(&["run", "--headless", "--requests-out"]);
        c.arg(&lines).args(flag).arg(&path);
        if stream {
            // The same scenario, streamed: the reply is the joined chunks.
            let streamed = text.replace("model = \"m\"", "model = \"m\"\nstream = true");
            std::fs::write(&path, streamed).unwrap();
        }
        assert!(run(c, Duration::from_secs(30)).status.success());
        let rows: Vec<serde_json::Value> =
            std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 6);
        for r in &rows {
            if flag.is_none() {
                assert!(r.get("prompt").is_none() && r.get("reply").is_none(), "{r}");
            } else {
                let prompt = r["prompt"].to_string();
                assert!(prompt.contains("hello "), "{r}");
                assert_eq!(r["reply"].as_str().unwrap().split_whitespace().count(), 4, "stream {stream}: {r}");
            }
        }
    }
}
