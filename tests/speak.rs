//! Speaking to every OpenAI-compatible server: request fields and extra headers reach
//! the server (a recording mock started here on 127.0.0.1 shows what it got), header
//! secrets never show, the completions endpoint, streams that end without `[DONE]`, and
//! reasoning models' tokens counted apart. Bad input is one line and exit 2.

mod common;
use common::*;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use llmload::mock::{MockConfig, MockServer, StreamEnd};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

fn recording(cfg: MockConfig) -> MockServer {
    MockServer::start_recording(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap()
}

fn fast() -> MockConfig {
    MockConfig { base_latency_ms: 1.0, per_inflight_ms: 0.0, ..MockConfig::default() }
}

/// Runs `text` (a scenario) with `run --json` and `args`; the output and the result.
fn run_with(text: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, Option<Value>) {
    let (d, path) = scenario(text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c, LIMIT);
    let v = json.exists().then(|| read_json(&json));
    (out, v)
}

/// `llmload validate PATH`.
fn validate(path: &std::path::Path) -> Output {
    let mut c = cmd(&["validate"]);
    c.arg(path);
    run(c, LIMIT)
}

#[test]
fn request_fields_reach_the_server_and_a_stage_overrides_them() {
    let mock = recording(fast());
    let text = format!(
        "[target]\nbase_url = \"{}\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n\
         [request]\nmax_completion_tokens = 32\ntemperature = 0.7\ntop_p = 0.9\nseed = 42\nstop = [\"END\", \"\\n\\n\"]\n\
         ignore_eos = true\nmin_tokens = 4\nextra_body = {{ top_k = 20, max_tokens = 6, chat_template_kwargs = {{ enable_thinking = false }} }}\n\
         [[stage]]\nname = \"short\"\nrequests = 3\nrequest = {{ max_tokens = 8, seed = 5 }}\n",
        mock.base_url()
    );
    let (out, v) = run_with(&text, &[], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let seen = mock.last_request().expect("the mock got a request");
    assert_eq!(seen.path, "/v1/chat/completions");
    let body = seen.json();
    // The stage's length limit replaces the scenario's (either name); its seed wins.
    assert_eq!(body.get("max_completion_tokens"), None, "{body}");
    assert_eq!((body["seed"].as_i64(), body["temperature"].as_f64(), body["top_p"].as_f64()), (Some(5), Some(0.7), Some(0.9)));
    assert_eq!(body["stop"], json!(["END", "\n\n"]));
    assert_eq!((body["ignore_eos"].as_bool(), body["min_tokens"].as_u64(), body["top_k"].as_u64()), (Some(true), Some(4), Some(20)));
    assert_eq!(body["chat_template_kwargs"], json!({"enable_thinking": false}));
    // extra_body wins over [request] and the stage (its 6 over the stage's 8), once, and
    // is said to.
    assert_eq!(body["max_tokens"], 6);
    assert_eq!(String::from_utf8_lossy(&seen.body).matches("\"max_tokens\"").count(), 1, "sent once");
    assert!(
        out.stderr.contains("warning: request.extra_body sets `max_tokens`, a [request] field: extra_body's value is sent"),
        "{}",
        out.stderr
    );
    let v = v.unwrap();
    assert_schema_valid(&v);
    // The mock honours the limit sent: 6 tokens of its 16.
    assert_eq!(v["stages"][0]["tokens"]["output"], 18);
    assert_eq!(v["scenario"]["stages"][0]["request"]["max_tokens"], 8);
    assert_eq!(v["scenario"]["request"]["max_completion_tokens"], 32);
}

#[test]
fn a_tokens_per_minute_limit_counts_max_completion_tokens() {
    let mock = recording(fast());
    let text = format!(
        "[target]\nbase_url = \"{}\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[request]\nmax_completion_tokens = 100\n[[stage]]\nrequests = 5\n",
        mock.base_url()
    );
    let (out, v) = run_with(&text, &["--tpm", "600000"], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(v.unwrap()["stages"][0]["rate_limiter"]["tpm"], 600000.0);
    // The newer name goes out as it is, and alone.
    let body = mock.last_request().unwrap().json();
    assert_eq!((body["max_completion_tokens"].as_u64(), body.get("max_tokens")), (Some(100), None), "{body}");
    // Without either limit it is refused, naming both.
    let (out, _) = run_with(&quick("base_latency_ms = 1", "[[stage]]\nrequests = 5\n"), &["--tpm", "600000"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--tpm needs request.max_tokens (or max_completion_tokens)"), "{}", out.stderr);
}

const SECRET: &str = "hdr-SECRET-0123456789abcdef";

#[test]
fn headers_reach_the_server_and_their_secrets_never_show() {
    let mock = recording(fast());
    let text = format!(
        "[target]\nbase_url = \"{}\"\nmodel = \"m\"\nheaders = {{ \"api-key\" = {{ env = \"LLMLOAD_TEST_HEADER\" }}, \"X-Team\" = \"search\" }}\n\
         [prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 2\n",
        mock.base_url()
    );
    let (out, v) = run_with(&text, &[], &[("LLMLOAD_TEST_HEADER", SECRET), ("OPENAI_API_KEY", "sk-test-key")]);
    assert!(out.status.success(), "{}", out.stderr);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.header("api-key"), Some(SECRET));
    assert_eq!(seen.header("x-team"), Some("search"));
    assert_eq!(seen.header("authorization"), Some("Bearer sk-test-key"), "the key still goes as Bearer");
    let v = v.unwrap();
    assert_schema_valid(&v);
    // Names and sources only.
    assert_eq!(v["scenario"]["target"]["headers"], json!({"api-key": {"env": "LLMLOAD_TEST_HEADER"}, "X-Team": "literal"}));
    let json = v.to_string();
    for (what, s) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("json", &json)] {
        assert!(!s.contains(&SECRET[..12]), "the header secret leaked into {what}");
    }

    // An Authorization header of its own replaces the Bearer key.
    let text = text.replace("\"X-Team\" = \"search\"", "Authorization = \"Token abc\"");
    let (out, _) = run_with(&text, &[], &[("LLMLOAD_TEST_HEADER", SECRET), ("OPENAI_API_KEY", "sk-test-key")]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(mock.last_request().unwrap().header("authorization"), Some("Token abc"));

    // An unset variable: one line naming the header and the variable, exit 2, nothing sent.
    let before = mock.stats().requests;
    let (out, v) = run_with(&text, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.trim(), "error: target.headers.\"api-key\": $LLMLOAD_TEST_HEADER is not set (or empty)");
    assert!(v.is_none());
    assert_eq!(mock.stats().requests, before);
}

#[test]
fn the_completions_endpoint_streamed_and_not() {
    let mock = recording(MockConfig { inter_token_ms: 1.0, ..fast() });
    for stream in [false, true] {
        let text = format!(
            "[target]\nbase_url = \"{}\"\nmodel = \"m\"\napi = \"completions\"\nstream = {stream}\n\
             [prompts]\ntemplate = \"Once upon a time {{i}}\"\n[check]\nexpect = \"json\"\n[[stage]]\nrequests = 4\n",
            mock.base_url()
        );
        let (out, v) = run_with(&text, &[], &[]);
        assert!(out.status.success(), "{}", out.stderr);
        let seen = mock.last_request().unwrap();
        assert_eq!(seen.path, "/v1/completions");
        let body = seen.json();
        assert_eq!((body["prompt"].as_str(), body.get("messages")), (Some("Once upon a time 3"), None), "{body}");
        let v = v.unwrap();
        assert_schema_valid(&v);
        assert_eq!(v["target"]["api"], "completions");
        let s = &v["stages"][0];
        assert_eq!(s["requests"]["ok"], 4, "stream {stream}: {}", s["failure_examples"]);
        // The mock's 16 one-token words, by its usage and by the count here alike (a
        // stream is counted here; a whole reply with usage is not: not known then).
        let t = &s["tokens"];
        assert_eq!((t["output"].as_u64(), t["completion_disagree"].as_u64()), (Some(64), stream.then_some(0)), "{t}");
        // The text reached the check: prose, not JSON.
        assert_eq!(s["checks"]["failures"]["no_json"], 4);
        assert_eq!(s["ttft_ms"].is_null(), !stream);
    }
}

#[test]
fn a_messages_prompt_with_the_completions_endpoint_names_its_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("p.jsonl"), "{\"prompt\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}\n").unwrap();
    let path = d.path().join("s.toml");
    std::fs::write(
        &path,
        "[target]\nbase_url = \"mock\"\nmodel = \"m\"\napi = \"completions\"\n[prompts]\nfile = \"p.jsonl\"\n[[stage]]\nrequests = 1\n",
    )
    .unwrap();
    let out = validate(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("p.jsonl:2: a `messages` prompt needs a chat API; target.api = \"completions\" takes a `prompt` text"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_stream_that_ends_after_its_finish_reason_without_done_is_an_answer() {
    for (end, ok) in [(StreamEnd::Finish, true), (StreamEnd::Bare, false)] {
        let mock = recording(MockConfig { stream_end: end, ..fast() });
        let text = format!(
            "[target]\nbase_url = \"{}\"\nmodel = \"m\"\nstream = true\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 5\n",
            mock.base_url()
        );
        let (out, v) = run_with(&text, &[], &[]);
        let v = v.unwrap();
        assert_schema_valid(&v);
        let s = &v["stages"][0];
        if ok {
            assert!(out.status.success(), "{}", out.stderr);
            assert_eq!((s["requests"]["ok"].as_u64(), s["streams_without_done"].as_u64()), (Some(5), Some(5)));
            assert!(out.stdout.contains("5 streams ended after a finish_reason without data: [DONE] (counted ok"), "{}", out.stdout);
        } else {
            assert_eq!(s["failures"]["stream_cut"], 5, "{}", s["failure_examples"]);
            assert!(s["failure_examples"]["stream_cut"].as_str().unwrap().contains("no finish_reason"));
        }
    }
}

#[test]
fn reasoning_tokens_are_counted_apart_from_the_answer() {
    for stream in [true, false] {
        let text = quick(
            "base_latency_ms = 1\nper_inflight_ms = 0\nreasoning_tokens = 12\noutput_tokens = 5",
            "[check]\nexpect = \"json\"\n[[stage]]\nrequests = 4\n",
        )
        .replace("model = \"m\"", &format!("model = \"m\"\nstream = {stream}"));
        let (out, v) = run_with(&text, &[], &[]);
        assert!(out.status.success(), "{}", out.stderr);
        let v = v.unwrap();
        assert_schema_valid(&v);
        let s = &v["stages"][0];
        let t = &s["tokens"];
        // 12 of thought, then 5 of answer: the server says so, and the count here agrees
        // where there is one (streams); a reply with usage is not counted here, so
        // whether it would agree is not known.
        assert_eq!((t["output"].as_u64(), t["reasoning"].as_u64()), (Some(68), Some(48)), "stream {stream}: {t}");
        match stream {
            true => assert_eq!(t["completion_disagree"], 0, "{t}"),
            false => assert_eq!(t["completion_disagree"], serde_json::Value::Null, "{t}"),
        }
        // The check reads the answer only.
        assert_eq!(s["checks"]["failures"]["no_json"], 4);
        if stream {
            assert!(s["thinking_ms"]["p50"].as_f64().is_some(), "{s}");
            assert!(num(&s["ttft_answer_ms"]["p50"]) >= num(&s["ttft_ms"]["p50"]));
            assert!(out.stdout.contains("answer TTFT p50"), "{}", out.stdout);
        } else {
            assert!(s["thinking_ms"].is_null());
        }
    }
}

#[test]
fn bad_request_and_target_fields_are_one_line_each_naming_the_place() {
    let base = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 1\n";
    for (edit, want) in [
        ("[request]\nextra_body = \"x\"\n", "s.toml:9:14: request: invalid type: string \"x\", expected a map"),
        (
            "[request]\nmax_tokens = 8\nmax_completion_tokens = 8\n",
            "s.toml:10:25: request: give max_tokens or max_completion_tokens, not both",
        ),
        ("[request]\ntop_p = 0\n", "s.toml:9:9: request.top_p must be above 0 and at most 1, got 0"),
        ("[request]\nstop = [1]\n", "s.toml:9:8: request: a string or a list of strings"),
        (
            "[request]\nmin_tokens = 9\nmax_tokens = 8\n",
            "s.toml:9:14: request.min_tokens (9) must not exceed the most output tokens asked (8)",
        ),
        ("[request]\nextra_body = { x = nan }\n", "s.toml:9:14: request.extra_body.x: NaN has no JSON form"),
        ("[request]\nextra_body = { stream = true }\n", "s.toml:9:14: request.extra_body.stream: set target.stream instead"),
        (
            "[request]\nmax_tokens = 8\n[[stage]]\nname = \"b\"\nrequests = 1\nrequest = { min_tokens = 16 }\n",
            "s.toml:13:11: stage \"b\": request.min_tokens (16) must not exceed the most output tokens asked (8)",
        ),
    ] {
        let (_d, path) = scenario(&format!("{base}{edit}"));
        let out = validate(&path);
        assert_eq!(out.status.code(), Some(2), "{edit}");
        let line = out.stderr.lines().find(|l| l.contains("s.toml:")).unwrap_or_default().replace(path.to_str().unwrap(), "s.toml");
        assert!(line.starts_with(want), "{edit}: {}", out.stderr);
    }
    for (target, want) in [
        ("api = \"completion\"", "target: unknown variant `completion`, expected one of `chat`, `completions`, `responses`, `messages`"),
        ("headers = { \"\" = \"x\" }", "target.headers: \"\" is not an HTTP header name"),
        ("headers = { \"X-A\" = 5 }", "target.headers.\"X-A\" must be a string, or { env = \"VARIABLE\" }"),
        ("headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }", "target.headers.\"x-a\": given twice (header names are case-insensitive)"),
        ("headers = { \"Content-Type\" = \"text/plain\" }", "target.headers.\"Content-Type\": llmload sets Content-Type itself"),
        ("headers = { \"X-A\" = { env = \"\" } }", "target.headers.\"X-A\": env must name an environment variable"),
    ] {
        let (_d, path) = scenario(&base.replace("model = \"m\"", &format!("model = \"m\"\n{target}")));
        let out = validate(&path);
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(want), "{target}: {}", out.stderr);
    }
}

/// A server started here that reasons and leaves the count to the client: by model,
/// "stream" streams `delta.reasoning` then the answer with a usage whose
/// reasoning_tokens is a placeholder 0; "whole" answers with `message.reasoning_content`
/// and a usage without details.
fn thinking_server() -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: axum::Json<Value>| async move {
            let usage = |details: bool| {
                let mut u = json!({"prompt_tokens": 1, "completion_tokens": 6});
                if details {
                    u["completion_tokens_details"] = json!({"reasoning_tokens": 0});
                }
                u
            };
            if body["model"] == "whole" {
                let reply = json!({"choices": [{"message": {"role": "assistant", "content": "hello world", "reasoning_content": "let me see now"}}], "usage": usage(false)});
                return axum::Json(reply).into_response();
            }
            let delta = |d: Value| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": d}]}));
            let text = [delta(json!({"reasoning": "let me"})), delta(json!({"reasoning": " see now"})), delta(json!({"content": "hello world"}))]
                .concat()
                + &format!("data: {}\n\ndata: [DONE]\n\n", json!({"choices": [], "usage": usage(true)}));
            ([("content-type", "text/event-stream")], text).into_response()
        }),
    );
    serve_app(app)
}

#[test]
fn reasoning_the_server_does_not_count_is_counted_here() {
    let url = thinking_server();
    for (model, stream) in [("stream", true), ("whole", false)] {
        let text = format!(
            "[target]\nbase_url = \"{url}\"\nmodel = \"{model}\"\nstream = {stream}\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 3\n"
        );
        let (out, v) = run_with(&text, &[], &[]);
        assert!(out.status.success(), "{}", out.stderr);
        let v = v.unwrap();
        assert_schema_valid(&v);
        let t = &v["stages"][0]["tokens"];
        // "let me see now" is 4 o200k tokens; the server's usage (6 output) stands.
        assert_eq!((t["reasoning"].as_u64(), t["output"].as_u64()), (Some(12), Some(18)), "{model}: {t}");
    }
}

#[test]
fn validate_says_its_warnings_and_a_bad_header_secret_is_exit_2() {
    let (_d, path) = scenario(
        "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[request]\nextra_body = { model = \"x\" }\n[[stage]]\nrequests = 1\n",
    );
    let out = validate(&path);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains(":7:14: warning: request.extra_body sets `model`, which llmload sets itself"), "{}", out.stderr);
    // A variable whose value is no header value: named, never shown, exit 2, nothing sent.
    let mock = recording(fast());
    let text = format!(
        "[target]\nbase_url = \"{}\"\nmodel = \"m\"\nheaders = {{ \"api-key\" = {{ env = \"LLMLOAD_TEST_HEADER\" }} }}\n[prompts]\nlist = [\"hi\"]\n[[stage]]\nrequests = 1\n",
        mock.base_url()
    );
    let (out, _) = run_with(&text, &[], &[("LLMLOAD_TEST_HEADER", "bad\u{1}SECRET")]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("target.headers.\"api-key\": the value in $LLMLOAD_TEST_HEADER is not a valid HTTP header value"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("SECRET"));
    assert_eq!(mock.stats().requests, 0);
}
