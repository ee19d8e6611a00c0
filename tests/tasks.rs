//! Task stages against the mock's known timings: a fan-out then an answer takes its
//! critical path; the per-task and stage-wide limits hold (counted by the mock); a
//! step's first K; failures failing or skipped per policy with every request counted;
//! an open loop's tasks timed from when due; `--requests-out` naming task and step;
//! bad task definitions refused in one located line before any request.

mod common;
use common::*;

use std::io::{Read, Write};
use std::time::Duration;

/// The mock at 50 ms + 10 ms a token after the first, nothing per request in flight: an
/// analysis of 6 tokens takes 100 ms, an answer of 16 takes 200.
const MOCK: &str = "base_latency_ms = 50\nper_inflight_ms = 0\ninter_token_ms = 10\noutput_tokens = 16\n";

/// A scenario of the `rag` task: 10 analyses at most 5 at once, then one answer from
/// the first five; `step1` and `stages` add to the first step and after the task.
fn rag(target: &str, step1: &str, stages: &str) -> String {
    format!(
        "name = \"tasks\"\n{target}[prompts]\ntemplate = \"question {{i}}\"\n\
         [[task]]\nname = \"rag\"\n\
         [[task.step]]\nname = \"analyse\"\nprompt = \"Analyse document {{member}} for: {{prompt}}\"\nfan_out = 10\nconcurrency = 5\n\
         request = {{ max_tokens = 6 }}\n{step1}\
         [[task.step]]\nname = \"answer\"\nprompt = \"Answer {{prompt}} from:\\n{{answers[0..5]}}\"\nrequest = {{ max_tokens = 16 }}\n\
         {stages}"
    )
}

fn embedded(mock: &str) -> String {
    format!("[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\n{mock}")
}

fn stage(extra: &str) -> String {
    format!("[[stage]]\nname = \"rag\"\ntask = \"rag\"\n{extra}")
}

fn ms(v: &serde_json::Value) -> f64 {
    num(v)
}

/// Requests started = ok + failed + cancelled.
fn assert_accounted(stage: &serde_json::Value) {
    let r = &stage["requests"];
    assert_eq!(count(&r["started"]), count(&r["ok"]) + count(&r["failed"]) + count(&r["cancelled"]), "{r}");
}

#[test]
fn a_fan_out_then_an_answer_takes_its_critical_path() {
    let (out, v) = run_headless(&rag(&embedded(MOCK), "", &stage("concurrency = 1\nrequests = 4\n")), &[]);
    let s = &v["stages"][0];
    let t = &s["tasks"];
    assert_eq!((count(&t["ok"]), count(&t["failed"]), count(&t["cut"])), (4, 0, 0), "{t}");
    // Two waves of five 100 ms analyses, then a 200 ms answer: ~400 ms, not 300 (all
    // ten at once) nor 1,200 (one at a time). The debug build's own time per request
    // is a few ms.
    let p50 = ms(&t["latency_ms"]["p50"]);
    assert!((395.0..560.0).contains(&p50), "task p50 {p50} ms: {t}");
    let (analyse, answer) = (&t["steps"][0], &t["steps"][1]);
    assert!((195.0..280.0).contains(&ms(&analyse["duration_ms"]["mean"])), "{analyse}");
    assert!((195.0..280.0).contains(&ms(&answer["duration_ms"]["mean"])), "{answer}");
    assert!((0.4..0.6).contains(&num(&analyse["share"])), "the analyses take half the time: {t}");
    // Each step's own requests, apart: 100 ms analyses, 200 ms answers.
    assert!((98.0..140.0).contains(&ms(&analyse["latency_ms"]["mean"])), "{analyse}");
    assert!((198.0..260.0).contains(&ms(&answer["latency_ms"]["mean"])), "{answer}");
    assert_eq!(count(&t["histograms"]["steps"][0]["e2e_us"]["count"]), 40);
    assert_eq!((num(&analyse["requests_per_task"]), num(&t["requests_per_task"])), (10.0, 11.0), "{t}");
    // Every request is a request of the stage too.
    assert_eq!(count(&s["requests"]["ok"]), 44, "{}", s["requests"]);
    assert_accounted(s);
    assert_eq!(s["planned"]["requests"], 4, "a task stage's count is its tasks");
    assert!(out.stdout.contains("rag (rag)") && out.stdout.contains("time by step: analyse 5"), "{}", out.stdout);
}

/// `GET /mock/stats` of a mock at `root` (its `/v1` API root).
fn mock_stats(root: &str) -> serde_json::Value {
    let addr = root.trim_start_matches("http://").trim_end_matches("/v1");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /mock/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn the_fan_out_limit_holds_within_a_task_and_max_in_flight_across_tasks() {
    for (tasks, max_in_flight, most) in [(1, None, 5), (4, Some(6), 6)] {
        let (mut mock, url) = spawn_mock(&["--base-latency-ms", "50", "--per-inflight-ms", "0"]);
        let target = format!("[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n");
        let limit = max_in_flight.map_or(String::new(), |m| format!("max_in_flight = {m}\n"));
        let (_, v) = run_headless(&rag(&target, "", &stage(&format!("concurrency = {tasks}\nrequests = 8\n{limit}"))), &[]);
        let stats = mock_stats(&url);
        let _ = mock.kill();
        // Four tasks want 20 analyses at once: the stage's limit holds them to 6; one
        // task alone never has more than its step's 5.
        assert_eq!(count(&stats["most_in_flight"]), most, "{tasks} tasks, max_in_flight {max_in_flight:?}: {stats}");
        assert_eq!(count(&stats["ok"]), 88, "{stats}");
        assert_eq!(count(&v["stages"][0]["tasks"]["ok"]), 8);
    }
}

#[test]
fn a_requests_per_minute_limit_holds_across_tasks() {
    // 600 a minute, 10 a second, for two tasks of 11 requests each at once: at least
    // 2.1 s, against 0.4 s unlimited; every request waits its turn, none is lost.
    let (_, v) = run_headless(
        &rag(
            &embedded(MOCK),
            "",
            &stage(
                "concurrency = 2
requests = 2
rate_limit = { rpm = 600 }
",
            ),
        ),
        &[],
    );
    let s = &v["stages"][0];
    assert_eq!((count(&s["tasks"]["ok"]), count(&s["requests"]["ok"])), (2, 22), "{}", s["tasks"]);
    let wall = num(&s["wall_time_s"]);
    assert!((2.0..4.0).contains(&wall), "22 requests at 10/s took {wall} s");
    assert!(count(&s["rate_limiter"]["delayed"]) >= 15, "{}", s["rate_limiter"]);
}

#[test]
fn a_step_goes_on_after_its_first_answers_and_cancels_the_rest() {
    // Analyses of 20-180 ms: the first three answer well before the slowest.
    let mock = "base_latency_ms = 100\njitter_ms = 80\nper_inflight_ms = 0\nseed = 7\n";
    let (_, v) = run_headless(
        &rag(&embedded(mock), "first = 3\n", &stage("concurrency = 2\nrequests = 6\n")).replace("concurrency = 5", "concurrency = 10"),
        &[],
    );
    let s = &v["stages"][0];
    let t = &s["tasks"];
    assert_eq!(count(&t["ok"]), 6, "{t}");
    assert_accounted(s);
    // Each task sent its ten analyses; those still out after the third answer were
    // cancelled, not failed.
    assert_eq!(count(&s["requests"]["started"]), 6 * 11, "{}", s["requests"]);
    assert!(count(&s["requests"]["cancelled"]) >= 6, "{}", s["requests"]);
    assert_eq!(count(&s["requests"]["failed"]), 0);
    assert!(ms(&t["steps"][0]["duration_ms"]["max"]) < 175.0, "the step waited for more than three: {t}");
}

#[test]
fn a_failed_member_fails_its_task_or_is_skipped_per_policy() {
    let mock = "base_latency_ms = 20\nper_inflight_ms = 0\nerror_rate = 0.2\nseed = 3\n";
    let (_, v) = run_headless(&rag(&embedded(mock), "", &stage("concurrency = 2\nrequests = 20\n")), &[]);
    let s = &v["stages"][0];
    let t = &s["tasks"];
    // One in five fails: a task of ten analyses rarely has none failed.
    assert!(count(&t["failed"]) >= 10, "{t}");
    assert_eq!(count(&t["ok"]) + count(&t["failed"]), 20, "{t}");
    let f = &t["failures"][0];
    assert_eq!((f["step"].as_str(), f["cause"].as_str()), (Some("analyse"), Some("http_5xx")), "{t}");
    assert_accounted(s);

    let skip = "on_error = \"skip\"\nquorum = 5\n";
    let (_, v) = run_headless(&rag(&embedded(mock), skip, &stage("concurrency = 2\nrequests = 20\n")), &[]);
    let s = &v["stages"][0];
    let t = &s["tasks"];
    // Failed analyses are left out; a task fails only when fewer than five answered
    // (or its answer failed): about one in five.
    assert!(count(&t["ok"]) >= 10, "{t}");
    assert!(count(&t["steps"][0]["failed_requests"]) > 0, "{t}");
    assert!(t["failures"].as_array().unwrap().iter().all(|f| f["step"] == "answer" || f["cause"] == "quorum"), "{t}");
    assert_accounted(s);
}

#[test]
fn open_loop_tasks_are_timed_from_when_they_were_due() {
    use axum::routing::post;
    use std::sync::atomic::{AtomicU64, Ordering};
    // The first request stalls a second; the rest answer at once. One request at a time
    // (max_in_flight = 1): the tasks due during the stall wait for it.
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                axum::Json(serde_json::json!({
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1}
                }))
            }
        }),
    );
    let url = serve_app(app);
    let text = format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n[prompts]\ntemplate = \"q {{i}}\"\n\
         [[task]]\nname = \"one\"\n[[task.step]]\nprompt = \"{{prompt}}\"\n\
         [[stage]]\nname = \"open\"\ntask = \"one\"\nrate = 10\nrequests = 10\nmax_in_flight = 1\n"
    );
    let (_, v) = run_headless(&text, &[]);
    let s = &v["stages"][0];
    let t = &s["tasks"];
    assert_eq!(count(&t["ok"]), 10, "{t}");
    // Tasks due 0.1 … 0.9 s into the stall waited for it: from when due, the slowest
    // took most of a second, while each request, from its send, took a moment.
    assert!(ms(&t["latency_ms"]["p50"]) > 300.0, "task latency from the schedule: {t}");
    assert!(ms(&t["latency_ms"]["max"]) > 900.0, "{t}");
    assert!(ms(&s["latency_ms"]["p50"]) < 100.0, "requests from their send: {}", s["latency_ms"]);
}

#[test]
fn requests_out_lines_name_their_task_step_and_member() {
    let (d, path) = scenario(&rag(&embedded(MOCK), "", &stage("concurrency = 1\nrequests = 2\n")));
    let lines = d.path().join("r.jsonl");
    let mut c = cmd(&["run", "--headless", "--requests-out"]);
    c.arg(&lines).arg(&path);
    assert!(run(c, Duration::from_secs(60)).status.success());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 22);
    let of = |task: u64, step: u64| lines.iter().filter(|l| l["task"] == task && l["step"] == step).count();
    assert_eq!((of(0, 0), of(0, 1), of(1, 0), of(1, 1)), (10, 1, 10, 1));
    let mut members: Vec<u64> = lines.iter().filter(|l| l["task"] == 1 && l["step"] == 0).map(|l| count(&l["member"])).collect();
    members.sort();
    assert_eq!(members, (0..10).collect::<Vec<_>>());
}

#[test]
fn bad_task_definitions_are_one_located_line_before_any_request() {
    let cases = [
        (rag(&embedded(MOCK), "", &stage("requests = 1\n").replace("task = \"rag\"", "task = \"nope\"")), "task \"nope\" is not defined"),
        (rag(&embedded(MOCK), "", &stage("requests = 1\n")).replace("{member}", "{membr}"), "unknown placeholder `{membr}`"),
        (
            rag(&embedded(MOCK), "quorum = 3\non_error = \"skip\"\n", &stage("requests = 1\n")).replace("quorum = 3", "quorum = 11"),
            "quorum must be from 1 to the fan-out's least (10), got 11",
        ),
        (
            rag(&embedded(MOCK), "", &stage("requests = 1\n")).replace("request = { max_tokens = 16 }", "top_by = \"relevance\""),
            "top_by = \"relevance\": step \"analyse\"'s answers do not carry it",
        ),
        (
            rag(&embedded(MOCK), "answers_from = \"answer\"\n", &stage("requests = 1\n")),
            "no step of that name runs before it (a later one would be a cycle)",
        ),
        (
            rag(&embedded(MOCK), "api = \"embeddings\"\n", &stage("requests = 1\n")).replace("request = { max_tokens = 6 }\n", ""),
            "the prompt takes {answers} of step \"analyse\", which speaks \"embeddings\": its replies carry no text",
        ),
        (
            rag(&embedded(MOCK), "", "[sweep]\ntask = \"nope\"\nconcurrency = [1, 2]\nrequests = 2\n"),
            "sweep: task \"nope\" is not defined (tasks: [\"rag\"])",
        ),
    ];
    for (i, (text, said)) in cases.into_iter().enumerate() {
        let (_d, path) = scenario(&text);
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "case {i}: {}", out.stderr);
        let line = out.stderr.trim();
        assert_eq!(line.lines().count(), 1, "case {i}: {line}");
        assert!(line.contains(said) && line.contains("s.toml:"), "case {i}: {line}");
    }
}

#[test]
fn the_shipped_rag_pipeline_prices_both_models_and_slows_under_a_global_limit() {
    let (out, v) = run_shipped("scenarios/rag-pipeline.toml");
    let stages = v["stages"].as_array().unwrap();
    let t = |k: usize| &stages[k]["tasks"];
    for (k, s) in stages.iter().enumerate() {
        assert_eq!(count(&t(k)["ok"]), count(&s["planned"]["requests"]), "{}", t(k));
        assert_eq!(num(&t(k)["requests_per_task"]), 51.0, "{}", t(k));
        // Priced per step: between all tokens at the cheap model's price and all at the
        // strong one's, and well above the cheap one's (the answer is gpt-4.1's).
        let (input, output) = (num(&t(k)["input_tokens_per_task"]), num(&t(k)["output_tokens_per_task"]));
        let cost = num(&t(k)["cost_per_task"]["mean_usd"]);
        let (cheap, dear) = ((input * 0.28 + output * 0.42) / 1e6, (input * 2.0 + output * 8.0) / 1e6);
        assert!(cost > 1.1 * cheap && cost < 0.5 * dear, "{cheap} < {cost} < {dear}: {}", t(k));
        assert_accounted(s);
    }
    let p50 = |k: usize| num(&t(k)["latency_ms"]["p50"]);
    // More users crowd the server (2 ms per request in flight); the same users behind a
    // limit of 64 requests wait for each other's fan-outs.
    assert!(p50(0) < p50(1) && p50(1) < p50(2) && p50(2) * 1.2 < p50(3), "{} {} {} {}", p50(0), p50(1), p50(2), p50(3));
    assert!(num(&t(3)["steps"][0]["share"]) > num(&t(0)["steps"][0]["share"]), "the analyses' share grows");
    assert!(out.stdout.contains("1 user (rag)") && out.stdout.contains("cost/task"), "{}", out.stdout);
}

#[test]
fn shards_are_dealt_whole_tasks_and_merge_to_exact_percentiles() {
    let d = tempfile::tempdir().unwrap();
    let scenario = d.path().join("s.toml");
    let mock = "base_latency_ms = 20\nper_inflight_ms = 0\njitter_ms = 15\nseed = 5\n";
    std::fs::write(&scenario, rag(&embedded(mock), "", &stage("concurrency = 2\nrequests = 9\n"))).unwrap();
    let shard = |i: u32| {
        let (json, jsonl) = (d.path().join(format!("{i}.json")), d.path().join(format!("{i}.jsonl")));
        let mut c = cmd(&["run", "--headless", "--shard", &format!("{i}/2"), "--json"]);
        c.arg(&json).arg("--requests-out").arg(&jsonl).arg(&scenario);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{}", out.stderr);
        (json, jsonl)
    };
    let shards = [shard(0), shard(1)];
    // Each task is one shard's whole: its eleven requests there, none in the other.
    let mut owner: std::collections::BTreeMap<u64, (usize, u64)> = Default::default();
    for (k, (_, jsonl)) in shards.iter().enumerate() {
        for l in std::fs::read_to_string(jsonl).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()) {
            let e = owner.entry(count(&l["task"])).or_insert((k, 0));
            assert_eq!(e.0, k, "task {} in both shards", l["task"]);
            e.1 += 1;
        }
    }
    assert_eq!(owner.keys().copied().collect::<Vec<_>>(), (0..9).collect::<Vec<_>>(), "the shards' tasks are the run's");
    assert!(owner.values().all(|(_, n)| *n == 11), "{owner:?}");
    let merged = d.path().join("merged.json");
    let mut c = cmd(&["merge", "-o"]);
    c.arg(&merged).arg(&shards[0].0).arg(&shards[1].0);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let m = read_json(&merged);
    assert_schema_valid(&m);
    let t = &m["stages"][0]["tasks"];
    assert_eq!(count(&t["ok"]), 9, "{t}");
    assert_eq!(num(&t["requests_per_task"]), 11.0);
    // The merged percentiles are those of one histogram of every task.
    let mut all: Option<llmload::metrics::Latency> = None;
    for (json, _) in &shards {
        let h: llmload::report::Dist =
            serde_json::from_value(read_json(json)["stages"][0]["tasks"]["histograms"]["latency_us"].clone()).unwrap();
        let l = h.latency().unwrap();
        match &mut all {
            None => all = Some(l),
            Some(a) => a.merge(&l),
        }
    }
    let all = all.unwrap().summary().unwrap();
    assert_eq!((num(&t["latency_ms"]["p50"]), num(&t["latency_ms"]["p99"])), (all.p50, all.p99), "{t}");
    assert_eq!(count(&t["histograms"]["latency_us"]["count"]), 9);
    // Each quantile's exemplar is one of the shards' own, the nearest the merged one.
    for (k, q) in ["p50", "p99"].iter().enumerate() {
        let picked = num(&t["exemplars"][k]["latency_ms"]);
        let theirs: Vec<f64> =
            shards.iter().map(|(json, _)| num(&read_json(json)["stages"][0]["tasks"]["exemplars"][k]["latency_ms"])).collect();
        let want = num(&t["latency_ms"][q]);
        let best = theirs.iter().copied().min_by(|a, b| (a - want).abs().total_cmp(&(b - want).abs())).unwrap();
        assert_eq!(picked, best, "{q}: {theirs:?} against {want}");
    }
}

#[test]
fn thresholds_and_compare_read_the_task_figures() {
    let text = rag(&embedded(MOCK), "", &stage("concurrency = 1\nrequests = 2\nthresholds = { task_p99_ms = \"< 300\", task_error_rate = \"< 0.01\", cost_per_task = \"< 1\" }\n"))
        .replace("[[task]]", "[pricing.models.m]\ninput_per_million = 1.0\noutput_per_million = 2.0\n\n[[task]]");
    let (d, path) = scenario(&text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    // ~400 ms a task: the latency threshold fails the run, the others hold.
    assert_eq!(out.status.code(), Some(3), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL  rag: task_p99_ms < 300 (measured 4"), "{}", out.stdout);
    assert!(out.stdout.contains("pass  rag: task_error_rate < 0.01 (measured 0)"), "{}", out.stdout);
    assert!(out.stdout.contains("pass  rag: cost_per_task < 1 (measured 0.000"), "{}", out.stdout);
    // Compared with itself: the task rows are there, unchanged; a gate on them holds.
    let mut c = cmd(&["compare", "--fail-on", "task_p99_ms:+10%"]);
    c.arg(&json).arg(&json);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    for metric in ["task_p50_ms", "task_p99_ms", "tasks_per_s", "cost_per_task"] {
        assert!(out.stdout.lines().any(|l| l.split_whitespace().nth(1) == Some(metric) && l.contains("same")), "{metric}: {}", out.stdout);
    }
}

/// An agent step of one tool, on `target`, at most `max_steps` model calls.
fn agent(target: &str, max_steps: u32, stages: &str) -> String {
    format!(
        "name = \"agent\"\n{target}[prompts]\ntemplate = \"order {{i}}\"\n\
         [[task]]\nname = \"agent\"\n[[task.step]]\nname = \"loop\"\nprompt = \"Where is {{prompt}}?\"\nmax_steps = {max_steps}\n\
         [[task.step.tool]]\nname = \"lookup\"\nlatency_ms = 30\nresult_tokens = 40\n{stages}"
    )
}

#[test]
fn an_agent_that_always_calls_a_tool_stops_at_max_steps() {
    let mock = "base_latency_ms = 10\nper_inflight_ms = 0\ntool_call_rate = 1.0\n";
    let (_, v) =
        run_headless(&agent(&embedded(mock), 4, "[[stage]]\nname = \"a\"\ntask = \"agent\"\nconcurrency = 2\nrequests = 4\n"), &[]);
    let s = &v["stages"][0];
    let t = &s["tasks"];
    assert_eq!((count(&t["ok"]), count(&t["failed"])), (0, 4), "{t}");
    assert_eq!(t["failures"][0]["cause"], "max_steps", "{t}");
    // Four model calls each, three tools run between them (none after the last).
    assert_eq!(num(&t["requests_per_task"]), 4.0, "{t}");
    assert_eq!(num(&t["steps"][0]["tool_calls_per_task"]), 3.0, "{t}");
    let tool_ms = num(&t["steps"][0]["tool_ms_per_task"]);
    assert!((88.0..200.0).contains(&tool_ms), "three 30 ms tools: {tool_ms}");
    assert_eq!(count(&s["requests"]["ok"]), 16);
    assert_accounted(s);
}

#[test]
fn an_agent_carries_each_tool_result_in_its_next_request() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    // An independent server: it calls the tool until the history holds two results,
    // then answers; it keeps every history it was sent.
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                let results = messages.iter().filter(|m| m["role"] == "tool").count();
                kept.lock().unwrap().push(body.clone());
                let message = if results < 2 {
                    serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
                        {"id": format!("call_{results}"), "type": "function", "function": {"name": "lookup", "arguments": "{\"query\":\"x\"}"}}]})
                } else {
                    serde_json::json!({"role": "assistant", "content": "it ships tomorrow"})
                };
                axum::Json(serde_json::json!({
                    "choices": [{"index": 0, "message": message, "finish_reason": if results < 2 { "tool_calls" } else { "stop" }}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5}
                }))
            }
        }),
    );
    let url = serve_app(app);
    let target = format!("[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n");
    let (_, v) = run_headless(&agent(&target, 8, "[[stage]]\nname = \"a\"\ntask = \"agent\"\nconcurrency = 1\nrequests = 2\n"), &[]);
    let t = &v["stages"][0]["tasks"];
    assert_eq!((count(&t["ok"]), num(&t["requests_per_task"])), (2, 3.0), "{t}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6);
    for (k, body) in seen.iter().enumerate() {
        let m = body["messages"].as_array().unwrap();
        // user; user, the call, its result; … : each request the one before plus its call
        // and the tool's answer to it.
        assert_eq!(m.len(), 1 + 2 * (k % 3), "request {k}: {body}");
        assert_eq!(body["tools"][0]["function"]["name"], "lookup");
        assert_eq!(body["tool_choice"], "auto");
        for r in 0..k % 3 {
            let (call, result) = (&m[1 + 2 * r], &m[2 + 2 * r]);
            assert_eq!(call["tool_calls"][0]["id"], format!("call_{r}"), "{body}");
            assert_eq!((result["role"].as_str(), result["tool_call_id"].as_str()), (Some("tool"), Some(format!("call_{r}").as_str())));
            // The tool's 40 tokens of text.
            let words = result["content"].as_str().unwrap().split_whitespace().count();
            assert!((30..=50).contains(&words), "{result}");
        }
    }
}

#[test]
fn the_report_draws_task_latency_against_load_and_each_stages_waterfall() {
    let stages = "[[stage]]\nname = \"one\"\ntask = \"rag\"\nconcurrency = 1\nrequests = 2\n\
                  [[stage]]\nname = \"two\"\ntask = \"rag\"\nconcurrency = 2\nrequests = 4\n";
    let (d, path) = scenario(&rag(&embedded("base_latency_ms = 20\nper_inflight_ms = 1\n"), "", stages));
    let (json, html) = (d.path().join("r.json"), d.path().join("r.html"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    assert!(run(c, Duration::from_secs(60)).status.success());
    let mut c = cmd(&["report", "-o"]);
    c.arg(&html).arg(&json);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    for id in ["task-load", "stage-0-tasks", "stage-1-tasks"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} drawn");
    }
    assert!(page.contains("Task latency against load") && page.contains("analyse: median "), "the waterfall names each step");
    // Its rows are two tasks measured whole, the ones nearest the median and the p99.
    assert!(page.contains("a median task (") && page.contains("a p99 task ("), "the waterfall's rows are measured tasks");
    let v = read_json(&json);
    for s in v["stages"].as_array().unwrap() {
        let t = &s["tasks"];
        let ex = t["exemplars"].as_array().unwrap();
        assert_eq!(ex.len(), 2, "{t}");
        for (e, q) in ex.iter().zip(["p50", "p99"]) {
            let steps: f64 = e["steps_ms"].as_array().unwrap().iter().map(num).sum();
            // Its steps end to end, and the moment before its first, are its latency.
            assert!((steps + num(&e["before_ms"]) - num(&e["latency_ms"])).abs() < 0.01, "{e}");
            assert_eq!(e["steps_ms"].as_array().unwrap().len(), 2);
            // Nearest the quantile among few tasks: within the spread of them.
            let l = &t["latency_ms"];
            assert!((num(&l["min"])..=num(&l["max"]) + 0.01).contains(&num(&e["latency_ms"])), "{q}: {e} {l}");
        }
    }
    assert!(!out.stderr.contains("Task latency against load:"), "{}", out.stderr);
}

#[test]
fn the_shipped_agent_calls_its_tools_and_its_history_hits_the_cache() {
    let (out, v) = run_shipped("scenarios/agent.toml");
    for s in v["stages"].as_array().unwrap() {
        let t = &s["tasks"];
        assert_eq!(count(&t["ok"]) + count(&t["failed"]), count(&s["planned"]["requests"]), "{t}");
        let (requests, step) = (num(&t["requests_per_task"]), &t["steps"][0]);
        // 7 in 10 replies call a tool: 3.3 model calls a task on average, fewer drawn.
        assert!((1.5..5.5).contains(&requests), "{t}");
        // The mock calls one tool a reply; none follows the last call.
        let calls = num(&step["tool_calls_per_task"]);
        assert!((calls - (requests - 1.0)).abs() < 1e-9, "{t}");
        let tool_ms = num(&step["tool_ms_per_task"]);
        assert!(tool_ms > 20.0 * calls && tool_ms < 950.0 * calls, "{t}");
        assert!(t["failures"].as_array().unwrap().iter().all(|f| f["cause"] == "max_steps"), "{t}");
        assert_accounted(s);
    }
    // Each call sends the history again: the mock's prefix cache holds most of it.
    let cached = num(&v["stages"][2]["tokens"]["cached"]["share"]);
    assert!(cached > 0.3, "cached share {cached}");
    assert!(out.stdout.contains("tool calls taking"), "{}", out.stdout);
}

#[test]
fn each_step_speaks_its_own_api_and_a_later_step_reads_the_text_ones() {
    // Embeddings, rerank, the Responses API, Messages, completions and chat in one
    // task: the mock's parser of each endpoint refuses another's body (a 400).
    let steps = [
        ("embed", "embeddings", "{prompt}", ""),
        ("rerank", "rerank", "{prompt}", "request = { documents = 20, document_tokens = 64, top_n = 5 }\n"),
        ("draft", "responses", "Draft: {prompt}", ""),
        ("polish", "messages", "Polish: {answer}", ""),
        ("legacy", "completions", "Complete: {answer}", ""),
        ("final", "chat", "Final: {answer}", ""),
    ];
    let mut text = format!("{}[prompts]\ntemplate = \"question {{i}}\"\n[[task]]\nname = \"all\"\n", embedded(MOCK));
    for (name, api, prompt, extra) in steps {
        text += &format!("[[task.step]]\nname = \"{name}\"\napi = \"{api}\"\nprompt = \"{prompt}\"\n{extra}");
    }
    text += "[[stage]]\nname = \"s\"\ntask = \"all\"\nconcurrency = 2\nrequests = 4\n";
    let (d, path) = scenario(&text);
    let lines = d.path().join("r.jsonl");
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--requests-out-text", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let s = &v["stages"][0];
    assert_eq!((count(&s["tasks"]["ok"]), count(&s["requests"]["ok"]), count(&s["requests"]["failed"])), (4, 24, 0), "{s}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |task: u64, step: u64| lines.iter().find(|l| l["task"] == task && l["step"] == step).unwrap();
    for t in 0..4 {
        let question = format!("question {t}");
        // One input; a query with its 20 documents; messages, of which the next reads the
        // reply; one text for completions.
        assert_eq!((of(t, 0)["prompt"].as_str(), &of(t, 0)["items"]), (Some(question.as_str()), &serde_json::json!(1)));
        assert_eq!((of(t, 1)["prompt"].as_str(), &of(t, 1)["items"]), (Some(question.as_str()), &serde_json::json!(20)));
        assert!(count(&of(t, 1)["input_tokens"]) > 20 * 60, "{}", of(t, 1));
        assert_eq!(of(t, 2)["prompt"][0]["content"], format!("Draft: {question}"));
        for (k, prompt) in [(3, &of(t, 3)["prompt"][0]["content"]), (4, &of(t, 4)["prompt"]), (5, &of(t, 5)["prompt"][0]["content"])] {
            let before = of(t, k - 1)["reply"].as_str().unwrap();
            assert!(!before.is_empty() && prompt.as_str().unwrap().ends_with(before), "step {k} reads step {}'s reply: {prompt}", k - 1);
        }
    }
}

#[test]
fn a_step_fans_out_over_each_lines_own_list() {
    // Query k retrieved k + 1 documents: each read; then checked one at a time until
    // two pass (or all of a shorter list), and the answer reads those.
    let lines: String = (0..4)
        .map(|k| {
            let docs: Vec<String> = (0..=k).map(|j| format!("passage {k}.{j} about the report")).collect();
            serde_json::json!({"prompt": format!("question {k}"), "documents": docs, "id": k}).to_string() + "\n"
        })
        .collect();
    let text = format!(
        "{}[prompts]\nfile = \"q.jsonl\"\n[[task]]\nname = \"rag\"\n\
         [[task.step]]\nname = \"read\"\nprompt = \"Does it answer {{prompt}}? {{item}}\"\nfan_out = {{ field = \"documents\" }}\n\
         concurrency = 2\n\
         [[task.step]]\nname = \"check\"\nprompt = \"Check {{item}}\"\nfan_out = {{ field = \"documents\" }}\nfirst = 2\n\
         concurrency = 1\n\
         [[task.step]]\nname = \"answer\"\nprompt = \"{{prompt}} from {{answers}}\"\n\
         [[stage]]\nname = \"s\"\ntask = \"rag\"\nconcurrency = 1\nrequests = 4\n",
        embedded(MOCK)
    );
    let (d, path) = scenario(&text);
    std::fs::write(d.path().join("q.jsonl"), &lines).unwrap();
    let (json, out_lines) = (d.path().join("r.json"), d.path().join("r.jsonl"));
    let mut c = cmd(&["run", "--headless", "--requests-out-text", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&out_lines).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let t = &v["stages"][0]["tasks"];
    assert_eq!((count(&t["ok"]), count(&t["failed"])), (4, 0), "{t}");
    let sent: Vec<serde_json::Value> =
        std::fs::read_to_string(&out_lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for k in 0..4u64 {
        let reads: Vec<&serde_json::Value> = sent.iter().filter(|l| l["task"] == k && l["step"] == 0).collect();
        // One member per document, each with its own.
        assert_eq!(reads.len() as u64, k + 1, "task {k}");
        for r in &reads {
            let m = count(&r["member"]);
            let prompt = r["prompt"][0]["content"].as_str().unwrap();
            assert_eq!(prompt, format!("Does it answer question {k}? passage {k}.{m} about the report"));
        }
        let checks = sent.iter().filter(|l| l["task"] == k && l["step"] == 1).count() as u64;
        assert_eq!(checks, (k + 1).min(2), "task {k}: the checks stop at the second answer");
        // The answer reads the first two checks (or the one of a single document).
        let answer = sent.iter().find(|l| l["task"] == k && l["step"] == 2).unwrap();
        let carried = answer["prompt"][0]["content"].as_str().unwrap().split("\n\n").count() as u64;
        assert_eq!(carried, (k + 1).min(2), "task {k}: {answer}");
    }
    // A line without the list: refused before any request, at its line.
    std::fs::write(d.path().join("q.jsonl"), lines + "{\"prompt\": \"no documents\"}\n").unwrap();
    let mut c = cmd(&["run", "--headless"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.trim().ends_with("q.jsonl:5: the line has no list \"documents\" (task \"rag\" step \"read\" fans out over it)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sweep_of_tasks_is_judged_by_its_tasks() {
    // 20 ms + 2 ms per request in flight: a task of four reads then an answer slows as
    // tasks are added. An automatic sweep of tasks in flight, judged against
    // `task_ms`, and a listed one read back from its stages.
    let base = format!(
        "{}[prompts]\ntemplate = \"q {{i}}\"\n[[task]]\nname = \"rag\"\n\
         [[task.step]]\nname = \"read\"\nprompt = \"{{prompt}} {{member}}\"\nfan_out = 4\n\
         [[task.step]]\nname = \"answer\"\nprompt = \"{{answers}}\"\n[slo]\ntask_ms = 150\n",
        embedded("base_latency_ms = 20\nper_inflight_ms = 2\noutput_tokens = 4\n")
    );
    let (out, v) = run_headless(&(base.clone() + "[sweep]\ntask = \"rag\"\nconcurrency = \"auto\"\nmax = 16\nrequests = 24\n"), &[]);
    let sw = &v["sweep"];
    assert_eq!(sw["task"], "rag", "{sw}");
    assert_eq!(v["scenario"]["sweep"]["task"], "rag");
    let stages = v["stages"].as_array().unwrap();
    for p in sw["points"].as_array().unwrap() {
        let s = stages.iter().find(|s| s["name"] == p["stage"]).unwrap();
        let t = &s["tasks"];
        // Each point is its stage's tasks: answered per second, their p99, the share
        // of ended tasks within task_ms.
        assert_eq!((count(&t["ok"]), count(&t["failed"])), (24, 0), "{t}");
        assert_eq!(num(&p["throughput"]), num(&t["per_s"]), "{p}");
        assert_eq!(num(&p["p99_ms"]), num(&t["latency_ms"]["p99"]), "{p}");
        assert_eq!(num(&p["slo_met"]), num(&t["goodput"]["tasks"]) / 24.0, "{p}");
    }
    // The limit: the largest point whose tasks met task_ms, the first that did not.
    let slo = &sw["slo"];
    let met = |load: &serde_json::Value| num(&sw["points"].as_array().unwrap().iter().find(|p| &p["load"] == load).unwrap()["slo_met"]);
    assert!(met(&slo["largest_meeting_load"]) >= 0.99 && met(&slo["first_breaking_load"]) < 0.99, "{sw}");
    assert!(num(&slo["first_breaking_load"]) > 1.0, "one task at a time meets 150 ms: {sw}");
    assert_eq!(slo["objectives"], "task latency ≤ 150 ms");
    assert!(out.stdout.contains("tasks/s") && out.stdout.contains("99% of tasks within task latency ≤ 150 ms"), "{}", out.stdout);

    // A listed sweep, judged the same way.
    let (_, v) = run_headless(&(base + "[sweep]\ntask = \"rag\"\nconcurrency = [1, 4]\nrequests = 8\n"), &[]);
    let p = &v["sweep"]["points"];
    assert_eq!(num(&p[1]["throughput"]), num(&v["stages"][1]["tasks"]["per_s"]), "{p}");
    assert!(num(&p[1]["throughput"]) > 2.0 * num(&p[0]["throughput"]), "four at once answer faster: {p}");
}
