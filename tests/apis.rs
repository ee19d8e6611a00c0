//! The APIs beyond chat and text completions, against the mock: OpenAI's Responses API
//! and Anthropic's Messages, streamed (typed events) and whole — tokens, TTFT, thinking
//! and why each reply ended read as for chat — and what reaches the server in each
//! API's own shape (a recording mock started here on 127.0.0.1): Anthropic's key as
//! `x-api-key` with its version, its system text apart, its required limit.

mod common;
use common::*;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use llmload::mock::{MockConfig, MockServer};
use serde_json::{Value, json};

/// A scenario on `base_url` speaking `api`, 10 requests of exactly 12 tokens (3 of them
/// the mock's thought), a system text.
fn scenario_text(base_url: &str, api: &str, stream: bool, request: &str) -> String {
    format!(
        "name = \"{api}\"\n[target]\nbase_url = \"{base_url}\"\nmodel = \"m\"\napi = \"{api}\"\nstream = {stream}\n\
         [prompts]\ntemplate = \"Say something about {{i}}\"\nsystem = \"be brief\"\n[request]\n{request}\n\
         [[stage]]\nname = \"two\"\nconcurrency = 2\nrequests = 10\n"
    )
}

fn run_text(text: &str, env: &[(&str, &str)]) -> (Output, Value) {
    run_headless(text, env)
}

#[test]
fn the_responses_api_and_anthropics_messages_run_streamed_and_whole() {
    for api in ["responses", "messages"] {
        for stream in [true, false] {
            let text = scenario_text("mock", api, stream, "max_tokens = 12\nignore_eos = true")
                .replace("[prompts]", "[mock]\nbase_latency_ms = 20\ninter_token_ms = 5\nreasoning_tokens = 3\n[prompts]");
            let (_, v) = run_text(&text, &[]);
            let s = &v["stages"][0];
            let what = format!("{api}, stream {stream}: {}", s["tokens"]);
            assert_eq!(count(&s["requests"]["ok"]), 10, "{what}");
            // The server's usage and the client's count agree: 12 a request, 3 of thought.
            assert_eq!((count(&s["tokens"]["output"]), count(&s["tokens"]["completion"])), (120, 120), "{what}");
            assert_eq!(count(&s["tokens"]["reasoning"]), 30, "{what}");
            assert_eq!(count(&s["finish_reasons"]["length"]), 10, "{what}: the limit ended each");
            if stream {
                // First token after the base latency; then one token every 5 ms.
                let (ttft, itl) = (num(&s["ttft_ms"]["p50"]), num(&s["itl_ms"]["p50"]));
                assert!((20.0..40.0).contains(&ttft) && (4.0..8.0).contains(&itl), "{what}: TTFT {ttft} ITL {itl}");
                assert!(num(&s["ttft_answer_ms"]["p50"]) > ttft, "{what}: the answer after the thought");
            }
        }
    }
}

#[test]
fn each_api_is_spoken_in_its_own_shape() {
    const KEY: &str = "sk-ant-test-0123456789";
    let mock = MockServer::start_recording(
        MockConfig { base_latency_ms: 1.0, ..MockConfig::default() },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .unwrap();
    // Anthropic's: its key from ANTHROPIC_API_KEY as x-api-key, its version, the system
    // text apart, and its required limit sent (its default) when the stage sets none.
    let (out, v) = run_text(&scenario_text(&mock.base_url(), "messages", true, ""), &[("ANTHROPIC_API_KEY", KEY)]);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        (seen.header("x-api-key"), seen.header("anthropic-version"), seen.header("authorization")),
        (Some(KEY), Some("2023-06-01"), None)
    );
    let body = seen.json();
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["messages"][0]["role"], "user", "{body}");
    assert_eq!((body["max_tokens"].as_u64(), body.get("stream_options")), (Some(1024), None), "{body}");
    assert_eq!(v["scenario"]["target"]["api_key_env"], "ANTHROPIC_API_KEY");
    assert!(!out.stdout.contains(KEY) && !out.stderr.contains(KEY) && !v.to_string().contains(KEY), "the key never shows");
    // The Responses API's: `input` messages, `max_output_tokens`, no stream_options
    // (its usage always ends its stream).
    let _ = run_text(&scenario_text(&mock.base_url(), "responses", true, "max_tokens = 7"), &[("OPENAI_API_KEY", KEY)]);
    let seen = mock.last_request().unwrap();
    assert_eq!((seen.path.as_str(), seen.header("authorization")), ("/v1/responses", Some(&*format!("Bearer {KEY}"))));
    let body = seen.json();
    assert_eq!(body["input"], json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": body["input"][1]["content"]}]));
    assert_eq!((body["max_output_tokens"].as_u64(), body.get("max_tokens"), body.get("stream_options")), (Some(7), None, None), "{body}");
}

/// Each API's shipped scenario runs on the mock (chat's are the seed table's and the
/// rest): every request answered; the answer's first token after the thought, text
/// completions decoded to their limit, or (embeddings, rerank) the texts carried counted
/// and the latency growing with them.
#[test]
fn the_shipped_scenarios_of_each_api_run_on_the_mock() {
    let shipped = [
        ("scenarios/responses-api.toml", "responses"),
        ("scenarios/anthropic-messages.toml", "messages"),
        ("scenarios/completions.toml", "completions"),
        ("scenarios/embeddings.toml", "embeddings"),
        ("scenarios/rerank.toml", "rerank"),
    ];
    for (file, api) in shipped {
        let (out, v) = run_shipped(file);
        assert_eq!(v["scenario"]["target"]["api"], api);
        for s in v["stages"].as_array().unwrap() {
            assert_eq!(count(&s["requests"]["failed"]), 0, "{file}: {}", s["name"]);
            match api {
                "embeddings" | "rerank" => assert!(count(&s["items"]["total"]) >= count(&s["requests"]["ok"]), "{file}: {}", s["items"]),
                // Every request decodes to its limit.
                "completions" => assert_eq!(count(&s["tokens"]["output"]), 48 * count(&s["requests"]["ok"]), "{file}: {}", s["tokens"]),
                _ => assert!(num(&s["ttft_answer_ms"]["p50"]) > num(&s["ttft_ms"]["p50"]), "{file}: {}", s["name"]),
            }
        }
        let p50 = |k: usize| num(&v["stages"][k]["latency_ms"]["p50"]);
        match api {
            "embeddings" => assert!(p50(0) < p50(1) && p50(1) < p50(2), "bigger batches take longer: {}", out.stdout),
            "rerank" => {
                assert!(out.stdout.contains("docs/s") && out.stdout.contains("p50 latency by documents per request"), "{}", out.stdout)
            }
            _ => {}
        }
    }
}

/// A quick run speaks any API with `--api`; Anthropic's without a limit says in one
/// line what it sends instead.
#[test]
fn quick_runs_take_the_api_and_say_the_default_limit() {
    let mut c = cmd(&[
        "run",
        "--base-url",
        "mock",
        "--api",
        "responses",
        "--concurrency",
        "2",
        "--requests",
        "6",
        "--stream",
        "--max-tokens",
        "8",
        "--headless",
        "--json",
    ]);
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    c.arg(&json);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_eq!((v["scenario"]["target"]["api"].as_str(), count(&v["stages"][0]["requests"]["ok"])), (Some("responses"), 6));
    let out = run(cmd(&["run", "--base-url", "mock", "--api", "messages", "--requests", "2", "--headless"]), Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let said: Vec<&str> = out.stderr.lines().filter(|l| l.contains("requires a limit")).collect();
    assert_eq!(said.len(), 1, "{}", out.stderr);
    assert!(
        said[0]
            .ends_with("target.api = \"messages\" requires a limit and request.max_tokens is not set: each request asks for 1024 tokens"),
        "{}",
        said[0]
    );
    let out = run(cmd(&["run", "--base-url", "mock", "--api", "embedding", "--headless"]), Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    // Embeddings and rerank with nothing more: the prompt as the input, or as the query
    // against the documented 16 documents.
    for (api, items) in [("embeddings", 1), ("rerank", 16)] {
        let d = tempfile::tempdir().unwrap();
        let json = d.path().join("r.json");
        let mut c = cmd(&["run", "--base-url", "mock", "--api", api, "--concurrency", "4", "--requests", "8", "--headless", "--json"]);
        c.arg(&json);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{api}: {}", out.stderr);
        let s = &read_json(&json)["stages"][0];
        assert_eq!((count(&s["requests"]["ok"]), count(&s["items"]["total"])), (8, 8 * items), "{api}: {s}");
    }
}

/// `llmload init --api …` writes a starter speaking that API, which validates and runs
/// on the mock as it is.
#[test]
fn init_writes_a_starter_for_each_api() {
    let d = tempfile::tempdir().unwrap();
    for api in ["chat", "completions", "embeddings", "rerank", "responses", "messages"] {
        let path = d.path().join(format!("{api}.toml"));
        let mut c = cmd(&["init", "--api", api]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(30));
        assert!(out.status.success(), "{api}: {}", out.stderr);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.contains(&format!("api = \"{api}\"")), api != "chat", "{api}: {text}");
        let mut c = cmd(&["run", "--headless", "--json"]);
        let json = d.path().join(format!("{api}.json"));
        c.arg(&json).arg(&path);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{api}: {}", out.stderr);
        assert_eq!(read_json(&json)["stages"][1]["requests"]["ok"], 100, "{api}");
    }
}

/// Anthropic's `529 overloaded_error` (the mock's injected `errors = { "529" = … }`, in
/// Anthropic's envelope, with `retry-after`) is retried like a 503, the server's wait
/// honoured; a request without `max_tokens` is Anthropic's 400.
#[test]
fn anthropics_overloaded_is_retried_like_a_503() {
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\napi = \"messages\"\n\
                [mock]\nbase_latency_ms = 5\nretry_after_ms = 10\nerrors = { \"529\" = 0.5 }\n\
                [prompts]\nlist = [\"hi\"]\n[request]\nmax_tokens = 8\n[retry]\nmax_attempts = 4\n\
                [[stage]]\nconcurrency = 2\nrequests = 20\n";
    let (_, v) = run_text(text, &[]);
    let s = &v["stages"][0];
    let r = &s["retries"];
    assert!(count(&r["total"]) > 0 && r["by_cause"]["http_5xx"] == r["total"], "{r}");
    assert_eq!(count(&r["retry_after_honoured"]), count(&r["total"]), "the server's wait honoured each time: {r}");
    // Every request is answered or failed its four attempts (draws vary with the order
    // requests arrive in: P(four 529s) = 1/16 a request).
    let (ok, failed) = (count(&s["requests"]["ok"]), count(&s["requests"]["failed"]));
    assert_eq!((ok + failed, failed), (20, count(&r["requests_retried"]) - count(&r["recovered"])), "{r}");
    // Anthropic's own 400 for a request without its limit, in its envelope.
    let mock = MockServer::start(MockConfig::default(), SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let (status, reply) = post(&mock.base_url(), "/messages", body);
    assert_eq!(status, 400);
    assert_eq!(reply, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}));
}

/// POST `body` to `path` under the API root `api`: the status and the JSON reply.
fn post(api: &str, path: &str, body: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = api.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /v1{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A server answering in another API's shape (chat chunks where Messages events were
/// expected; a chat completion where a Responses API reply was): each request a
/// `decode` failure whose message names what was expected.
#[test]
fn another_apis_answer_is_named_a_decode_failure() {
    use axum::routing::post;
    let chat_stream =
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    let chat_whole =
        r#"{"id":"c","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let app = axum::Router::new()
        .route("/v1/messages", post(move || async move { ([("content-type", "text/event-stream")], chat_stream) }))
        .route("/v1/responses", post(move || async move { ([("content-type", "application/json")], chat_whole) }));
    let url = serve_app(app);
    for (api, stream, want) in [
        ("messages", true, "an event without a `type`, not Anthropic's Messages'"),
        ("responses", false, "not a Responses API response (no `output`; came a chat or text completion)"),
    ] {
        let text = scenario_text(&url, api, stream, "max_tokens = 8");
        let (d, path) = scenario(&text);
        let (lines, json) = (d.path().join("r.jsonl"), d.path().join("r.json"));
        let mut c = cmd(&["run", "--headless", "--requests-out"]);
        c.arg(&lines).arg("--json").arg(&json).arg(&path);
        let out = run(c, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(3), "{api}: a stage with no success fails its verdict: {}", out.stderr);
        let first: Value = serde_json::from_str(std::fs::read_to_string(&lines).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["outcome"], "decode", "{api}: {first}");
        let v = read_json(&json);
        assert!(v["stages"][0].to_string().contains(want) || out.stdout.contains(want), "{api}: {}\n{}", v["stages"][0], out.stdout);
    }
}

/// `target.path` replaces the API's path: after the API root, or from the host's root
/// when it starts with `/` (a server that mounts an API elsewhere); a broken one is a
/// located error.
#[test]
fn a_path_of_its_own_replaces_the_apis() {
    let mock = MockServer::start_recording(
        MockConfig { base_latency_ms: 1.0, ..MockConfig::default() },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .unwrap();
    let text = scenario_text(&mock.base_url(), "chat", false, "max_tokens = 4");
    // The mock serves the Responses API at /v1/responses: reached from the host's root…
    let (_, v) = run_text(&text.replace("api = \"chat\"", "api = \"responses\"\npath = \"/v1/responses\""), &[]);
    assert_eq!((mock.last_request().unwrap().path.as_str(), count(&v["stages"][0]["requests"]["ok"])), ("/v1/responses", 10));
    assert_eq!(v["scenario"]["target"]["path"], "/v1/responses");
    // … and after the API root.
    let (_, v) = run_text(&text.replace("api = \"chat\"", "api = \"messages\"\npath = \"messages\""), &[]);
    assert_eq!((mock.last_request().unwrap().path.as_str(), count(&v["stages"][0]["requests"]["ok"])), ("/v1/messages", 10));
    let (_d, path) = scenario(&text.replace("api = \"chat\"", "path = \"v2/chat?x=1\""));
    let mut c = cmd(&["validate"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("s.toml:5:8: target.path is a path: no query, fragment or space"), "{}", out.stderr);
}
