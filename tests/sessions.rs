//! Multi-turn sessions end to end (issue 14): the shipped chat scenario on the mock's
//! prefix cache (TTFT falling from the first turn to the later ones, by the mock's
//! modelled prefill), later turns carrying the real replies of earlier ones as a server
//! the test runs sees them, a failed turn ending its session (counted with its turn
//! index), the session counts, and what sessions do not go with as located errors.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

#[test]
fn the_shipped_sessions_show_later_turns_prefilling_only_what_is_new() {
    let (_, v) = run_shipped("scenarios/chat-sessions.toml");
    assert_schema_valid(&v);
    for s in v["stages"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let x = &s["sessions"];
        let (started, finished, failed, cut) = (count(&x["started"]), count(&x["finished"]), count(&x["failed"]), count(&x["cut"]));
        assert_eq!(started, finished + failed + cut, "{name}: {x}");
        assert!(finished >= 8 && failed == 0, "{name}: {x}");
        let turns = x["by_turn"].as_array().unwrap();
        let ok: u64 = turns.iter().map(|t| count(&t["ok"])).sum();
        assert_eq!(ok, count(&s["requests"]["ok"]), "{name}: every turn counted by its index");
        assert_eq!(count(&turns[0]["ok"]), started, "{name}: every session has a first turn");
        assert!(num(&x["turns"]["max"]) <= 7.0 && num(&x["turns"]["min"]) >= 1.0, "{name}: {}", x["turns"]);
        // Turn 0 prefills its 2,000-token document and question (~42 ms at 20 ms per
        // 1,000); later turns only the last reply and the new question (~5 ms).
        let ttft = |k: usize| num(&turns[k]["ttft_ms"]["p50"]);
        for k in 1..4 {
            assert!(ttft(0) - ttft(k) > 25.0, "{name}: TTFT p50 turn 0 {} ms, turn {k} {} ms", ttft(0), ttft(k));
            assert!(num(&turns[k]["cached_share"]) > 0.8, "{name}: turn {k}: {}", turns[k]);
            // The history grows: each turn carries the last reply and its own question.
            assert!(num(&turns[k]["input_tokens"]["mean"]) > num(&turns[k - 1]["input_tokens"]["mean"]) + 150.0, "{name}");
        }
        assert_eq!(num(&turns[0]["cached_share"]), 0.0, "{name}: each session's document is its own");
    }
    let first = &v["stages"][0];
    assert_eq!(count(&first["requests"]["ok"]), 160, "requests counts turns");
}

/// Each request's messages and the reply the server gave it.
type Log = Arc<Mutex<Vec<(Vec<Value>, String)>>>;

/// A chat server answering `reply-N` (N counting requests); `fail` says which
/// requests get a 500, by their messages.
fn conversation_server(fail: fn(&[Value]) -> bool) -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                let mut log = seen.lock().unwrap();
                if fail(&messages) {
                    log.push((messages, String::new()));
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"message": "no"}})));
                }
                let reply = format!("reply-{}", log.len());
                log.push((messages, reply.clone()));
                let body = json!({
                    "id": "x", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
                });
                (axum::http::StatusCode::OK, axum::Json(body))
            }
        }),
    );
    (serve_app(app), log)
}

fn sessions_scenario(url: &str, conversation: &str, stage: &str) -> String {
    format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n[prompts]\nsynthetic = \"D(20,10)\"\n[retry]\nmax_attempts = 1\n\
         [conversation]\n{conversation}\n[[stage]]\n{stage}\n"
    )
}

#[test]
fn later_turns_carry_the_real_replies_of_earlier_ones() {
    let (url, log) = conversation_server(|_| false);
    let (_out, v) = run_scenario(&sessions_scenario(&url, "turns = 3", "concurrency = 4\nrequests = 24"));
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 24);
    let mut later = 0;
    for (messages, _) in &log {
        if messages.len() == 1 {
            continue;
        }
        later += 1;
        // Turn k: the session's request before it, then the server's actual reply to
        // it, then a new user message.
        let n = messages.len();
        assert_eq!((messages[n - 2]["role"].as_str(), messages[n - 1]["role"].as_str()), (Some("assistant"), Some("user")));
        let before = log
            .iter()
            .find(|(m, reply)| m[..] == messages[..n - 2] && messages[n - 2]["content"] == reply.as_str())
            .unwrap_or_else(|| panic!("no earlier request and reply make this history: {messages:?}"));
        assert!(!before.1.is_empty());
    }
    // Every session sent a first turn; the rest were later turns. A session still
    // going when the 24 turns were used up was cut.
    let x = &v["stages"][0]["sessions"];
    let started = count(&x["started"]);
    assert_eq!(later, 24 - started, "{x}");
    assert!(started >= 8 && count(&x["finished"]) >= 6, "{x}");
    assert_eq!(count(&x["finished"]) + count(&x["cut"]), started, "{x}");
    let by_turn: Vec<u64> = x["by_turn"].as_array().unwrap().iter().map(|t| count(&t["ok"])).collect();
    assert_eq!((by_turn.len(), by_turn[0], by_turn.iter().sum::<u64>()), (3, started, 24));
}

#[test]
fn a_failed_turn_ends_its_session_and_the_user_starts_another() {
    // The second turn of every session fails (its messages: user, reply, user).
    let (url, log) = conversation_server(|m| m.len() == 3);
    let (_out, v) = run_scenario(&sessions_scenario(&url, "turns = 4\nthink_time = \"5ms\"", "concurrency = 2\nrequests = 12"));
    // 12 turns: each session a first turn and a failed second; the last one or two
    // may be cut when the turns run out.
    let x = &v["stages"][0]["sessions"];
    let (started, failed) = (count(&x["started"]), count(&x["failed"]));
    assert!(failed >= 5 && started >= 6, "{x}");
    assert_eq!(x["failed_at_turn"], json!({"1": failed}));
    assert_eq!((count(&x["finished"]), started), (0, failed + count(&x["cut"])), "{x}");
    assert!(log.lock().unwrap().iter().all(|(m, _)| m.len() <= 3), "no turn after a failed one");
    let turns = x["by_turn"].as_array().unwrap();
    assert_eq!((count(&turns[0]["ok"]), count(&turns[1]["failed"]), turns.len()), (started, failed, 2));
    assert_eq!(count(&v["stages"][0]["requests"]["failed"]), failed);
}

#[test]
fn what_sessions_do_not_go_with_is_a_located_error() {
    let (url, log) = conversation_server(|_| false);
    let cases = [
        (sessions_scenario(&url, "turns = 0", "concurrency = 1\nrequests = 2"), "conversation.turns:"),
        (
            sessions_scenario(&url, "turns = 2\nthink_time = \"soon\"", "concurrency = 1\nrequests = 2"),
            "conversation.think_time: invalid duration",
        ),
        (sessions_scenario(&url, "turns = 2", "concurrency = 1\nrequests = 2\nramp = \"1s\""), "`ramp` does not go with [conversation]"),
        (
            sessions_scenario(&url, "turns = 2", "concurrency = 1\nrequests = 2")
                .replace("model = \"m\"", "model = \"m\"\napi = \"completions\""),
            "[conversation] needs target.api = \"chat\"",
        ),
        (
            sessions_scenario(&url, "turns = 2\nmax_context_tokens = 0", "concurrency = 1\nrequests = 2"),
            "max_context_tokens must be at least 1",
        ),
    ];
    for (text, want) in cases {
        let (_dir, path) = scenario(&text);
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{want}: {}", out.stderr);
        assert!(out.stderr.contains(want) && out.stderr.contains("s.toml:"), "want {want:?} in {}", out.stderr);
    }
    assert!(log.lock().unwrap().is_empty(), "no request before the scenario is valid");
}

#[test]
fn a_datasets_conversation_gives_each_turn_its_next_human_message() {
    let (url, log) = conversation_server(|_| false);
    let convo = |k: usize| {
        let turns: Vec<Value> = (0..3)
            .flat_map(|t| [json!({"from": "human", "value": format!("c{k} q{t}")}), json!({"from": "gpt", "value": "some answer words"})])
            .collect();
        json!({"conversations": turns})
    };
    let text =
        sessions_scenario(&url, "turns = 5", "concurrency = 1\nrequests = 6").replace("synthetic = \"D(20,10)\"", "sharegpt = \"d.json\"");
    let (dir, path) = scenario(&text);
    std::fs::write(dir.path().join("d.json"), json!([convo(0), convo(1)]).to_string()).unwrap();
    let json_out = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json_out).arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    // Two sessions of three turns each (the conversations' length, under the draw of 5).
    let users: Vec<String> = log.lock().unwrap().iter().map(|(m, _)| m.last().unwrap()["content"].as_str().unwrap().to_string()).collect();
    let mut want: Vec<String> = (0..2).flat_map(|k| (0..3).map(move |t| format!("c{k} q{t}"))).collect();
    let mut got = users.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{users:?}");
    let x = &read_json(&json_out)["stages"][0]["sessions"];
    assert_eq!((count(&x["started"]), count(&x["finished"])), (2, 2), "{x}");
}

/// Sessions on an open loop share the one arrival scheduler: offered far more sessions
/// than the slots can hold (50/s into 2 slots of 2 turns × 200 ms, ~5/s), the stage
/// shows itself behind while it runs (the live row's "s behind" and below-rate mark),
/// records it (below target, arrivals not sent), and every session due in the window is
/// either started or counted not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_open_loop_of_sessions_shows_and_records_being_behind() {
    let text = format!(
        "{}[conversation]\nturns = 2\nthink_time = \"10ms\"\n",
        quick("base_latency_ms = 200\nper_inflight_ms = 0", "[[stage]]\nrate = 50\nmax_in_flight = 2\nduration = \"2s\"\n")
    );
    let (out, seen) = run_watching_behind(&text).await;
    // After 1 s, the session waiting for a slot was due ~0.9 s back (50/s against ~5/s).
    let (wall, late, _) = seen.iter().find(|(wall, _, below)| *below && *wall < 2.0).expect("flagged before the window closed");
    assert!(*wall < 1.5 && *late > 0.05, "{seen:?}");
    assert!(seen.iter().any(|(w, b, _)| *w > 1.0 && *w < 2.0 && *b > 0.5), "{seen:?}");
    let stage = &out.result.stages[0];
    let open = stage.open_loop.as_ref().unwrap();
    assert!(open.below_target, "{open:?}");
    let sessions = stage.sessions.as_ref().unwrap();
    // 50/s over 2 s: 100 sessions due; 2 slots held ~0.4 s each start ~10 of them.
    assert!((6..=14).contains(&sessions.started), "{sessions:?}");
    assert_eq!(sessions.started + open.not_sent, 100, "every session due is started or counted: {sessions:?} {open:?}");
}

/// A client-side rate limit under an open loop of sessions: a session whose first
/// turn finds no limiter slot before the window closes is an arrival not sent; a later
/// turn of a started session refused the same way is not (its session was counted):
/// sessions started + not sent is the sessions due, exactly.
#[test]
fn a_rate_limited_open_loop_counts_sessions_not_sent_not_turns() {
    // 10 sessions/s for 2 s, 3 turns each (30 turns/s asked), through 10 requests/s.
    let text = format!(
        "{}[conversation]\nturns = 3\nthink_time = \"10ms\"\n[rate_limit]\nrpm = 600\n",
        quick("base_latency_ms = 5\nper_inflight_ms = 0", "[[stage]]\nrate = 10\nduration = \"2s\"\n")
    );
    let (out, v) = run_scenario(&text);
    assert!(out.status.success(), "{}", out.stderr);
    let s = &v["stages"][0];
    let (started, not_sent) = (count(&s["sessions"]["started"]), count(&s["open_loop"]["not_sent"]));
    assert!(not_sent > 0 && count(&s["sessions"]["cut"]) > 0, "the limit refused first and later turns: {s}");
    assert_eq!(started + not_sent, 20, "10/s over 2 s: {}", s["sessions"]);
}
