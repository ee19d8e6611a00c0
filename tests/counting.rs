//! Counting against servers whose tokenizer llmload does not know: replies of digits
//! streamed one per chunk, as a model whose every digit is a token sends them (o200k
//! reads three digits as one token), with no usage, ending with the `finish_reason` the
//! test picks. Whether a reply met its target length is the server's word where it
//! gives one; the count decides only where it does not.

mod common;
use common::*;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

/// A server that answers each request with its `max_tokens` digits (half of them when
/// `finish` is "stop"), one per chunk, then `finish` (JSON: a string or null), no usage.
fn digits_server(finish: &'static str) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| async move {
            let max = body["max_tokens"].as_u64().unwrap_or(16) as usize;
            let n = if finish == "\"stop\"" { max / 2 } else { max };
            let digits: String = (0..n).map(|i| char::from(b'0' + (i % 10) as u8)).collect();
            if body["stream"] != true {
                let reply = json!({"id": "d", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": digits},
                                 "finish_reason": serde_json::from_str::<Value>(finish).unwrap()}]});
                return axum::Json(reply).into_response();
            }
            let chunk = |delta: Value, why: &str| {
                format!("data: {{\"id\":\"d\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{why}}}]}}\n\n")
            };
            let mut text: String = digits.chars().map(|d| chunk(json!({"content": d.to_string()}), "null")).collect();
            text.push_str(&chunk(json!({}), finish));
            text.push_str("data: [DONE]\n\n");
            ([("content-type", "text/event-stream")], text).into_response()
        }),
    );
    serve_app(app)
}

/// 8 requests asking 24 tokens each, against `url`; the result's only stage.
fn run_against(url: &str, stream: bool) -> (Output, Value, Vec<Value>) {
    let text = format!(
        "name = \"digits\"\n[target]\nbase_url = \"{url}\"\nmodel = \"m\"\nstream = {stream}\n\
         [prompts]\nsynthetic = \"D(16,24)\"\n[request]\nignore_eos = true\n[[stage]]\nname = \"digits\"\nconcurrency = 2\nrequests = 8\n"
    );
    let (dir, path) = scenario(&text);
    let (json, lines) = (dir.path().join("r.json"), dir.path().join("l.jsonl"));
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).arg(&path);
    let out = run(c, std::time::Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    let lines = std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out, v["stages"][0].clone(), lines)
}

#[test]
fn a_reply_the_limit_ended_met_its_target_whatever_the_count_here() {
    let url = digits_server("\"length\"");
    for stream in [true, false] {
        let (out, stage, lines) = run_against(&url, stream);
        let target = &stage["tokens"]["target_output"];
        // o200k reads 24 digits as 8 tokens: by the count every reply fell short.
        assert!(num(&target["achieved_mean"]) < 24.0, "{target}");
        assert_eq!(count(&target["ended_short"]), 0, "stream {stream}: {target}");
        assert_eq!(count(&target["judged_by_finish_reason"]), 8, "{target}");
        assert!(!out.stdout.contains("ended before their target"), "{}", out.stdout);
        assert_eq!(stage["finish_reasons"], json!({"stop": 0, "length": 8, "tool_calls": 0, "content_filter": 0, "other": 0, "unsaid": 0}));
        assert!(lines.iter().all(|l| l["finish_reason"] == "length"), "{lines:?}");
        // No usage: whether the counts here agree with the server's is not known.
        let t = &stage["tokens"];
        assert_eq!((&t["prompt_disagree"], &t["completion_disagree"]), (&Value::Null, &Value::Null), "{t}");
        assert_eq!((count(&t["prompt_compared"]), count(&t["completion_compared"])), (0, 0), "{t}");
    }
}

#[test]
fn a_reply_the_model_stopped_early_ended_short_by_its_finish_reason() {
    let url = digits_server("\"stop\"");
    let (out, stage, lines) = run_against(&url, true);
    let target = &stage["tokens"]["target_output"];
    assert_eq!(count(&target["ended_short"]), 8, "{target}");
    assert_eq!(count(&stage["finish_reasons"]["stop"]), 8);
    assert!(
        out.stdout.contains("100 % of replies ended before their target length (by their finish_reason: not \"length\")"),
        "{}",
        out.stdout
    );
    assert!(lines.iter().all(|l| l["finish_reason"] == "stop"));
}

#[test]
fn without_a_finish_reason_the_count_decides_and_says_so() {
    let url = digits_server("null");
    let (out, stage, lines) = run_against(&url, true);
    let target = &stage["tokens"]["target_output"];
    assert_eq!(count(&target["judged_by_finish_reason"]), 0, "{target}");
    assert_eq!(count(&target["ended_short"]), 8, "{target}");
    assert_eq!(count(&stage["finish_reasons"]["unsaid"]), 8);
    assert!(out.stdout.contains("(by the token count: the server sent no finish_reason)"), "{}", out.stdout);
    assert!(lines.iter().all(|l| l.get("finish_reason").is_none()));
}
