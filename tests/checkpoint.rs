//! Nothing measured is lost: while a run goes on, `--json`'s file is checkpointed
//! (about every 2 s and at every stage end, the stage in progress included, marked
//! `complete: false`), so SIGKILL leaves the figures up to the last checkpoint.

mod common;
use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_stage_leaves_a_readable_checkpoint() {
    // A first stage that ends quickly, then one far longer than the test waits.
    let text = quick(
        "base_latency_ms = 10\nper_inflight_ms = 0",
        "[[stage]]\nname = \"first\"\nconcurrency = 4\nrequests = 40\n\
         [[stage]]\nname = \"long\"\nconcurrency = 4\nrequests = 1000000\n",
    );
    let (d, path) = scenario(&text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg(&path).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    // Wait (bounded) for a checkpoint that holds the long stage with some successes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        assert!(Instant::now() < deadline, "no checkpoint of the second stage within 30 s");
        if let Ok(bytes) = std::fs::read(&json)
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && v["stages"].as_array().is_some_and(|s| s.len() == 2 && s[1]["requests"]["ok"].as_u64() > Some(0))
        {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL: no handler runs, nothing is flushed
    child.wait().unwrap();
    // What was on disk when it died: the last checkpoint, whole (written atomically).
    let after = read_json(&json);
    assert_schema_valid(&after);
    assert_eq!(after["complete"], false);
    let stages = after["stages"].as_array().unwrap();
    assert!(stages.len() == 2, "{}", after["stages"]);
    assert_eq!(stages[0]["requests"]["ok"], 40, "the finished stage whole");
    let r = &stages[1]["requests"];
    let (started, ok, failed, cancelled) = (count(&r["started"]), count(&r["ok"]), count(&r["failed"]), count(&r["cancelled"]));
    // Live accounting: what ended is at most what started (records still queued to the
    // aggregator are started, not yet counted as ended).
    assert!(ok > 0 && failed == 0 && ok + failed + cancelled <= started, "{r}");
    assert!(num(&stages[1]["latency_ms"]["p50"]) >= 10.0, "{}", stages[1]["latency_ms"]);
    // The one seen while it ran was an earlier (or the same) checkpoint of the same run.
    assert_eq!(v["started_at"], after["started_at"]);
}

#[test]
fn the_final_write_is_complete() {
    let (_, v) = run_scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0", "[[stage]]\nrequests = 5\n"));
    assert_eq!(v["complete"], true);
}
