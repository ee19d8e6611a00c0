//! Trace replay end to end (issue 14): the shipped Mooncake-format scenario at speed 1
//! and 4 on the mock (exact lengths, the cached share the trace's reuse predicts), each
//! request sent at its due time as a server the test runs sees it, AIPerf's sessions
//! waiting for each other, and every bad trace line as `file:line: problem`, exit 2,
//! before any request.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Taken by every test here: two time requests, and the others load the CPU (the mock
/// tokenizing 120,000-token prompts), so timings are never taken while this binary's
/// other tests contend for the 2 cores.
static TIMING: Mutex<()> = Mutex::new(());

fn timing() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A trace's lines, parsed.
fn lines(rel: &str) -> Vec<Value> {
    std::fs::read_to_string(repo_path(rel)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Tokens of each block of a Mooncake line (the last one partial).
fn block_lengths(l: &Value) -> Vec<u64> {
    let (n, len) = (l["hash_ids"].as_array().unwrap().len() as u64, count(&l["input_length"]));
    (0..n).map(|k| (len - 512 * k).min(512)).collect()
}

/// The prompt tokens a vLLM-style prefix cache of 16-token blocks holds when the lines
/// arrive in order: each line's longest token prefix shared with an earlier line (equal
/// ids give equal text, a partial block is the start of the whole one), in whole
/// blocks, never the prompt's last token.
fn expected_cached(lines: &[Value]) -> u64 {
    let mut cached = 0;
    for (j, l) in lines.iter().enumerate() {
        let best = lines[..j]
            .iter()
            .map(|m| {
                let mut shared = 0;
                let pairs = l["hash_ids"].as_array().unwrap().iter().zip(m["hash_ids"].as_array().unwrap());
                for ((a, b), (la, lb)) in pairs.zip(block_lengths(l).into_iter().zip(block_lengths(m))) {
                    if a != b {
                        break;
                    }
                    shared += la.min(lb);
                    if la != lb {
                        break;
                    }
                }
                shared
            })
            .max()
            .unwrap_or(0);
        cached += (best / 16).min((count(&l["input_length"]) - 1) / 16) * 16;
    }
    cached
}

#[test]
fn the_shipped_trace_replays_at_speed_1_and_4_with_exact_lengths_and_the_traces_reuse() {
    let _cpu = timing();
    let (_, v) = run_shipped("scenarios/trace-replay.toml");
    assert_schema_valid(&v);
    let trace = lines("scenarios/data/conversation-trace.jsonl");
    let n = trace.len() as u64;
    let input: u64 = trace.iter().map(|l| count(&l["input_length"])).sum();
    let output: u64 = trace.iter().map(|l| count(&l["output_length"])).sum();
    let t = &v["scenario"]["workload"]["traces"][0];
    assert_eq!((t["format"].as_str(), count(&t["lines"]), count(&t["lines_in_file"])), (Some("mooncake"), n, n), "{t}");
    let bytes = std::fs::read(repo_path("scenarios/data/conversation-trace.jsonl")).unwrap();
    let file = &v["scenario"]["workload"]["files"][0];
    assert_eq!(file["sha256"], llmload::workload::provenance::FileRecord::of("x", &bytes).sha256.as_str());
    let span = trace.last().unwrap()["timestamp"].as_f64().unwrap() / 1000.0;
    let want_cached = expected_cached(&trace);
    for (s, speed) in v["stages"].as_array().unwrap().iter().zip([1.0, 4.0]) {
        let name = s["name"].as_str().unwrap();
        assert_eq!((count(&s["requests"]["ok"]), count(&s["requests"]["failed"])), (n, 0), "{name}");
        assert_eq!(v["scenario"]["stages"][if speed == 1.0 { 0 } else { 1 }]["arrival"], json!({"process": "trace", "speed": speed}));
        // Every prompt exactly its input_length (partial last blocks too), as the mock
        // counts it in o200k; every reply its output_length (ignore_eos).
        assert_eq!((count(&s["tokens"]["prompt"]), count(&s["tokens"]["completion"])), (input, output), "{name}");
        // Each stage's blocks are its own: both start cold and see the trace's reuse.
        let cached = &s["tokens"]["cached"];
        let got = count(&cached["tokens"]) as f64;
        assert!((got / want_cached as f64 - 1.0).abs() < 0.01, "{name}: cached {got} tokens, the trace's reuse gives {want_cached}");
        assert!(num(&cached["share"]) > 0.5, "{cached}");
        // On the trace's clock: the span over the speed, and the replies' tail after it.
        let wall = num(&s["wall_time_s"]);
        assert!(wall > span / speed && wall < span / speed + 2.0, "{name}: {wall} s for a {span} s trace at {speed}×");
        assert_eq!(count(&s["open_loop"]["not_sent"]), 0);
    }
}

#[test]
fn the_mock_takes_a_120000_token_line_and_counts_it_exactly() {
    let _cpu = timing();
    let (dir, path) = scenario(
        "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\ntrace = { file = \"t.jsonl\" }\n[request]\nignore_eos = true\n[[stage]]\n",
    );
    let ids: Vec<String> = (0..235).map(|i| (i % 7).to_string()).collect();
    let line = format!("{{\"timestamp\": 0, \"input_length\": 120000, \"output_length\": 3, \"hash_ids\": [{}]}}\n", ids.join(", "));
    std::fs::write(dir.path().join("t.jsonl"), line.repeat(2)).unwrap();
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let s = &read_json(&json)["stages"][0];
    assert_eq!((count(&s["requests"]["ok"]), count(&s["tokens"]["prompt"])), (2, 240_000), "{}", s["tokens"]);
}

/// What a server the test runs saw: the prompt of each request, when it came.
type Seen = Arc<Mutex<Vec<(String, Instant)>>>;

/// A chat server that notes each request and answers after `delay`.
fn recording_server(delay: Duration) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::Json<Value>| {
            let log = log.clone();
            async move {
                let prompt = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
                log.lock().unwrap().push((prompt, Instant::now()));
                tokio::time::sleep(delay).await;
                axum::Json(json!({
                    "id": "x", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
                }))
            }
        }),
    );
    (serve_app(app), seen)
}

fn run_headless(path: &std::path::Path) -> Output {
    let mut c = cmd(&["run", "--headless"]);
    c.arg(path);
    run(c, Duration::from_secs(30))
}

fn trace_scenario(url: &str, trace: &str, stages: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = scenario(&format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n[prompts]\ntrace = {{ file = \"trace.jsonl\", format = \"jsonl\" }}\n{stages}"
    ));
    std::fs::write(dir.path().join("trace.jsonl"), trace).unwrap();
    (dir, path)
}

#[test]
fn each_line_reaches_the_server_at_its_due_time_at_speed_1_and_4() {
    let _cpu = timing();
    // Bursts of 16 on one millisecond, as in the public Mooncake trace, then gaps.
    let due_ms: Vec<u64> = (0..48).map(|i| [0, 300, 310, 700][(i / 16).min(3)] + if i >= 40 { 200 } else { 0 }).collect();
    let trace: String = due_ms.iter().enumerate().map(|(i, t)| format!("{{\"timestamp\": {t}, \"prompt\": \"line {i}\"}}\n")).collect();
    for speed in [1.0, 4.0] {
        let (url, seen) = recording_server(Duration::from_millis(20));
        let stages = format!("[[stage]]\nname = \"replay\"\nspeed = {speed}\n");
        let (dir, path) = trace_scenario(&url, &trace, &stages);
        let json = dir.path().join("r.json");
        let mut c = cmd(&["run", "--headless", "--json"]);
        c.arg(&json).arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert!(out.status.success(), "{}", out.stderr);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), due_ms.len());
        // Each arrival less its due time: the same for all but the lag (the first
        // arrival's own lag is the common offset).
        let first = seen.iter().map(|(_, t)| *t).min().unwrap();
        let offsets: Vec<f64> = seen
            .iter()
            .map(|(p, t)| {
                let i: usize = p.strip_prefix("line ").unwrap().parse().unwrap();
                (t.duration_since(first).as_secs_f64() - due_ms[i] as f64 / 1000.0 / speed) * 1000.0
            })
            .collect();
        let spread = offsets.iter().cloned().fold(f64::MIN, f64::max) - offsets.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 10.0, "speed {speed}: arrivals off their due times by up to {spread:.1} ms: {offsets:?}");
        let lag = &read_json(&json)["stages"][0]["open_loop"]["schedule_lag_ms"];
        // Bursts of 16 due in one millisecond: the debug build sends them one by one on
        // two cores, so the burst's median waits a few ms (1.5–3.0 ms alone, 4–5.3 ms
        // seen in full-suite runs). The spread above is the yardstick; this bounds the lag.
        assert!(num(&lag["p50"]) < 6.0 && num(&lag["max"]) < 15.0, "speed {speed}: {lag}");
    }
}

#[test]
fn a_sessions_later_line_waits_for_the_one_before_it_and_its_delay() {
    let _cpu = timing();
    let trace = "{\"timestamp\": 0, \"session_id\": \"a\", \"prompt\": \"a1\"}\n\
                 {\"timestamp\": 10, \"prompt\": \"lone\"}\n\
                 {\"session_id\": \"a\", \"delay\": 200, \"prompt\": \"a2\"}\n\
                 {\"session_id\": \"a\", \"delay\": 0, \"prompt\": \"a3\"}\n";
    let (url, seen) = recording_server(Duration::from_millis(100));
    let (_dir, path) = trace_scenario(&url, trace, "[[stage]]\nname = \"sessions\"\n");
    let out = run_headless(&path);
    assert!(out.status.success(), "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    let at = |p: &str| seen.iter().find(|(q, _)| q == p).unwrap_or_else(|| panic!("{p} not sent: {seen:?}")).1;
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
    // a2: a1's 100 ms reply, then 200 ms; a3: a2's reply, no delay; "lone" on the clock.
    let (a12, a23, lone) = (ms(at("a1"), at("a2")), ms(at("a2"), at("a3")), ms(at("a1"), at("lone")));
    assert!((300.0..340.0).contains(&a12), "a1 → a2 {a12:.1} ms");
    assert!((100.0..140.0).contains(&a23), "a2 → a3 {a23:.1} ms");
    // "lone" goes on the clock (10 ms), not after a1's 100 ms reply; a1, the run's
    // first request, pays for opening its connection, so the gap may be a little short.
    assert!((3.0..40.0).contains(&lone), "a1 → lone {lone:.1} ms");
}

#[test]
fn bad_traces_and_stages_are_one_located_line_each_before_any_request() {
    let _cpu = timing();
    let (url, seen) = recording_server(Duration::ZERO);
    let cases: &[(&str, &str, &str)] = &[
        ("{\"timestamp\": 5, \"prompt\": \"a\"}\nnot json\n", "", "trace.jsonl:2: not JSON"),
        (
            "{\"timestamp\": 5, \"prompt\": \"a\"}\n{\"timestamp\": 4, \"prompt\": \"b\"}\n",
            "",
            "trace.jsonl:2: timestamp 4 ms is before line 1's 5 ms",
        ),
        ("{\"prompt\": \"a\"}\n", "", "trace.jsonl:1: missing `timestamp`"),
        ("{\"timestamp\": 0, \"prompt\": \"a\"}\n", "concurrency = 4\n", "`concurrency` does not go with it"),
        ("{\"timestamp\": 0, \"prompt\": \"a\"}\n", "rate = 4.0\n", "`rate` does not go with it"),
        ("{\"timestamp\": 0, \"prompt\": \"a\"}\n", "speed = 0.0\n", "speed must be from"),
        ("{\"timestamp\": 0, \"prompt\": \"a\"}\n", "[sweep]\nconcurrency = [1, 2]\n", "a [sweep] does not go with trace prompts"),
    ];
    for (trace, stage, want) in cases {
        let (_dir, path) = trace_scenario(&url, trace, &format!("[[stage]]\n{stage}"));
        let out = run_headless(&path);
        assert_eq!(out.status.code(), Some(2), "{want}: {}", out.stderr);
        assert!(out.stderr.contains(want), "want {want:?} in {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // Mooncake: lengths and hash ids that do not fit, a negative length.
    let (dir, path) = scenario(&format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n[prompts]\ntrace = {{ file = \"t.jsonl\", block_tokens = 16 }}\n[[stage]]\n"
    ));
    let bad = "{\"timestamp\": 0, \"input_length\": 33, \"output_length\": 4, \"hash_ids\": [1, 2]}\n\
               {\"timestamp\": 1, \"input_length\": -5, \"output_length\": 4}\n";
    std::fs::write(dir.path().join("t.jsonl"), bad).unwrap();
    let out = run_headless(&path);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("t.jsonl:1: 2 hash_ids do not fit input_length 33 in blocks of 16 tokens: it needs 3"), "{}", out.stderr);
    assert!(out.stderr.contains("t.jsonl:2: input_length must be a whole number"), "{}", out.stderr);
    assert!(seen.lock().unwrap().is_empty(), "no request before the scenario is valid");
}
