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

/// A server that answers each request with its `max_tokens` digits (half of them unless
/// `finish` is "length"), one per chunk, then `finish` (JSON: a string or null), no usage.
fn digits_server(finish: &'static str) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| async move {
            let max = body["max_tokens"].as_u64().unwrap_or(16) as usize;
            let n = if finish == "\"length\"" { max } else { max / 2 };
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
    let (out, v, lines) = run_text(&text);
    (out, v["stages"][0].clone(), lines)
}

/// Runs the scenario `text` headless: its output, result and requests-out lines.
fn run_text(text: &str) -> (Output, Value, Vec<Value>) {
    let (dir, path) = scenario(text);
    let (json, lines) = (dir.path().join("r.json"), dir.path().join("l.jsonl"));
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).arg(&path);
    let out = run(c, std::time::Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    let lines = std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out, v, lines)
}

#[test]
fn a_reply_the_limit_ended_met_its_target_whatever_the_count_here() {
    let url = digits_server("\"length\"");
    for stream in [true, false] {
        let (out, stage, lines) = run_against(&url, stream);
        let target = &stage["tokens"]["target_output"];
        // o200k reads 24 digits as 8 tokens: by its count every reply fell short. A
        // stream counts its chunks instead (one token each); a whole reply has none.
        match stream {
            true => assert_eq!(num(&target["achieved_mean"]), 24.0, "{target}"),
            false => assert!(num(&target["achieved_mean"]) < 24.0, "{target}"),
        }
        let source = if stream { "chunks" } else { "estimate" };
        assert_eq!(count(&stage["tokens"]["source"]["output"][source]), 8, "{}", stage["tokens"]);
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

/// What the words server saw: each prompt's length in its tokenizer (one token a word).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<usize>>>;

/// Gap between a words server's chunks (its ITL), and its wait before the first.
const WORD_GAP_MS: u64 = 25;

/// A server whose tokenizer llmload does not know — every word one token — streaming
/// `max_tokens` words, one per chunk every [`WORD_GAP_MS`], then `finish_reason:
/// "length"`, no usage; with `tokenize`, a tokenize endpoint of that server's shape in
/// its tokenizer (tests/fixtures/tokenize has each captured, with its source).
fn words_server(tokenize: Option<&'static str>, seen: Seen) -> String {
    use axum::body::{Body, Bytes};
    let words = |text: &str| text.split_whitespace().count();
    let mut app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: axum::Json<Value>| async move {
            let prompt: usize = body["messages"].as_array().unwrap().iter().map(|m| words(m["content"].as_str().unwrap_or(""))).sum();
            seen.lock().unwrap().push(prompt);
            let max = body["max_tokens"].as_u64().unwrap_or(16);
            let chunk = |delta: Value, why: &str| {
                Bytes::from(format!("data: {{\"id\":\"w\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{why}}}]}}\n\n"))
            };
            // On an interval's absolute schedule from the first chunk, so late ticks do
            // not add up (made on the body's first poll: a burst of ticks missed before
            // it would shorten the gaps).
            let stream = futures_util::stream::unfold((0u64, None), move |(i, mut tick): (u64, Option<tokio::time::Interval>)| async move {
                let out = match i {
                    i if i < max => {
                        tick.get_or_insert_with(|| tokio::time::interval(std::time::Duration::from_millis(WORD_GAP_MS))).tick().await;
                        chunk(json!({"content": format!(" w{i}")}), "null")
                    }
                    i if i == max => chunk(json!({}), "\"length\""),
                    i if i == max + 1 => Bytes::from_static(b"data: [DONE]\n\n"),
                    _ => return None,
                };
                Some((Ok::<_, std::convert::Infallible>(out), (i + 1, tick)))
            });
            ([("content-type", "text/event-stream")], Body::from_stream(stream)).into_response()
        }),
    );
    // Each endpoint refuses the others' bodies as its server does: a field missing.
    let ids =
        move |text: &str, bos: bool| -> Vec<u64> { bos.then_some(1).into_iter().chain((0..words(text) as u64).map(|i| 100 + i)).collect() };
    let handler = move |body: Value| -> axum::response::Response {
        let bad = |status: u16| axum::http::StatusCode::from_u16(status).unwrap().into_response();
        match tokenize {
            Some("llamacpp") => axum::Json(json!({"tokens": ids(body["content"].as_str().unwrap_or(""), false)})).into_response(),
            Some("vllm") => match (body["prompt"].as_str(), body["model"].as_str()) {
                (Some(p), Some("m")) if body["add_special_tokens"] == false => {
                    let t = ids(p, false);
                    axum::Json(json!({"count": t.len(), "max_model_len": 4096, "tokens": t, "token_strs": null})).into_response()
                }
                (Some(_), Some(_)) => bad(404),
                _ => bad(400),
            },
            // TGI and llama-cpp-python add BOS with no way to say no.
            Some("tgi") => match body["inputs"].as_str() {
                Some(t) => {
                    axum::Json(ids(t, true).iter().map(|id| json!({"id": id, "text": "", "start": 0, "stop": 0})).collect::<Vec<_>>())
                        .into_response()
                }
                None => bad(422),
            },
            Some("llama-cpp-python") => match body["input"].as_str() {
                Some(t) => axum::Json(json!({"tokens": ids(t, true)})).into_response(),
                None => bad(422),
            },
            _ => bad(404),
        }
    };
    let path = if tokenize == Some("llama-cpp-python") { "/extras/tokenize" } else { "/tokenize" };
    if tokenize.is_some() {
        app = app.route(path, post(move |body: axum::Json<Value>| async move { handler(body.0) }));
    }
    serve_app(app)
}

/// 8 streams asking 16 tokens in, 24 out, counted by `tokenizer` (none: the default).
fn words_run(url: &str, tokenizer: Option<&str>) -> (Output, Value, Value, Vec<Value>) {
    let tok = tokenizer.map(|t| format!("tokenizer = \"{t}\"\n")).unwrap_or_default();
    let text = format!(
        "name = \"words\"\n[target]\nbase_url = \"{url}\"\nmodel = \"m\"\nstream = true\n\
         [prompts]\nsynthetic = \"D(16,24)\"\n{tok}[[stage]]\nname = \"words\"\nconcurrency = 2\nrequests = 8\n"
    );
    let (out, v, lines) = run_text(&text);
    (out, v["stages"][0].clone(), v["scenario"]["workload"].clone(), lines)
}

#[test]
fn without_usage_or_the_models_tokenizer_output_is_counted_in_chunks_and_itl_is_right() {
    let seen = Seen::default();
    let url = words_server(None, seen.clone());
    let (out, stage, workload, lines) = words_run(&url, None);
    let t = &stage["tokens"];
    // 24 words, one chunk each: the server's 24 tokens, not o200k's count of " w0 w1 …".
    assert_eq!(count(&t["output"]), 8 * 24, "{t}");
    assert_eq!(count(&t["source"]["output"]["chunks"]), 8, "{t}");
    assert_eq!(count(&t["source"]["input"]["estimate"]), 8, "{t}");
    assert_ne!(count(&t["client_completion"]), 8 * 24, "o200k's count kept beside: {t}");
    assert_eq!(count(&t["target_output"]["ended_short"]), 0, "{t}");
    let itl = num(&stage["itl_ms"]["p50"]);
    assert!((itl - WORD_GAP_MS as f64).abs() <= 0.02 * WORD_GAP_MS as f64, "ITL p50 {itl} ms against the server's {WORD_GAP_MS} ms");
    // "auto" found no tokenize endpoint, and says the counts are estimates.
    assert!(workload["tokenizer_note"].as_str().unwrap().contains("no tokenize endpoint answered"), "{workload}");
    assert!(out.stdout.contains("output tokens of 8 of 8 requests are content chunks, one token each"), "{}", out.stdout);
    assert!(out.stdout.contains("token counts are estimates in o200k_base"), "{}", out.stdout);
    assert!(!out.stdout.contains("ended before their target"), "{}", out.stdout);
    assert!(lines.iter().all(|l| l["output_tokens"] == 24 && l["output_source"] == "chunks"), "{lines:?}");
    // Asked for by name, a server without one is refused before any request.
    let before = seen.lock().unwrap().len();
    let text = format!(
        "name = \"w\"\n[target]\nbase_url = \"{url}\"\nmodel = \"m\"\n[prompts]\nsynthetic = \"D(16,24)\"\ntokenizer = \"server\"\n[[stage]]\nname = \"w\"\nrequests = 1\n"
    );
    let (_dir, path) = scenario(&text);
    let mut c = cmd(&["run", "--headless", "--no-progress"]);
    c.arg(&path);
    let out = run(c, std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let line = out.stderr.trim();
    assert!(
        !line.contains('\n') && line.contains("no tokenize endpoint answered") && line.contains("/tokenize as llama.cpp: status 404"),
        "{line}"
    );
    assert_eq!(seen.lock().unwrap().len(), before, "no request sent");
}

#[test]
fn with_the_servers_tokenizer_prompts_are_exact_and_replies_counted_in_it() {
    for (kind, shown) in [
        ("llamacpp", "server: llama.cpp POST http://127.0.0.1:"),
        ("vllm", "server: vLLM/SGLang POST http://127.0.0.1:"),
        ("tgi", "server: TGI POST http://127.0.0.1:"),
        ("llama-cpp-python", "server: llama-cpp-python POST http://127.0.0.1:"),
    ] {
        let seen = Seen::default();
        let url = words_server(Some(kind), seen.clone());
        let (out, stage, workload, lines) = words_run(&url, Some("server"));
        // Every prompt 16 tokens in the server's tokenizer, as asked (a BOS it adds cut).
        assert_eq!(*seen.lock().unwrap(), vec![16; 8], "{kind}");
        let t = &stage["tokens"];
        assert_eq!((count(&t["output"]), count(&t["input"])), (8 * 24, 8 * 16), "{kind}: {t}");
        assert_eq!(count(&t["source"]["output"]["server_tokenizer"]), 8, "{kind}: {t}");
        assert_eq!(count(&t["source"]["input"]["server_tokenizer"]), 8, "{kind}: {t}");
        assert_eq!(count(&t["client_completion"]), 8 * 24, "{kind}: {t}");
        assert!(workload["tokenizer"].as_str().unwrap().starts_with(shown), "{kind}: {workload}");
        assert!(count(&workload["tokenize"]["calls"]) > 0 && count(&workload["tokenize"]["estimated"]) == 0, "{kind}: {workload}");
        assert!(!out.stdout.contains("estimates") && !out.stdout.contains("content chunks"), "{kind}: {}", out.stdout);
        // Written while the window ran: counted by chunks then, and said so.
        assert!(lines.iter().all(|l| l["output_source"] == "chunks"), "{kind}: {lines:?}");
    }
}
