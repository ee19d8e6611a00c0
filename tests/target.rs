//! Pointing llmload at other servers (started here, on 127.0.0.1): overrides, the API
//! key, stop on SIGINT, and the standalone mock.

mod common;
use common::*;
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);
const KEY: &str = "sk-test-SECRET-4f9a2c";

/// A minimal OpenAI-style server that records the Authorization headers it sees and
/// answers model "bad" with a 401 that echoes the key, as some real servers do.
fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = s2.clone();
            async move {
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                seen.lock().unwrap().push(auth.clone());
                let key = auth.trim_start_matches("Bearer ").to_string();
                match body["model"].as_str() {
                    // The ways a server can echo a key back: in an error message, in a
                    // value that fails to parse, deep in a plain-text page.
                    Some("bad") => {
                        let msg = format!("Incorrect API key provided: {key}");
                        (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"message": msg, "type": "invalid_request_error"}})))
                            .into_response()
                    }
                    Some("decode") => {
                        (StatusCode::OK, axum::Json(json!({"choices": [{}], "usage": {"prompt_tokens": key}}))).into_response()
                    }
                    Some("limited") => {
                        let msg = format!("Rate limit reached for key {key}");
                        let body = axum::Json(json!({"error": {"message": msg, "type": "rate_limit_exceeded"}}));
                        (StatusCode::TOO_MANY_REQUESTS, [("retry-after-ms", "1")], body).into_response()
                    }
                    Some("text") => (StatusCode::BAD_GATEWAY, format!("<html>{}{key}</html>", " \n".repeat(1500))).into_response(),
                    _ => (
                        StatusCode::OK,
                        axum::Json(json!({
                            "id": "x", "object": "chat.completion", "model": body["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
                        })),
                    )
                        .into_response(),
                }
            }
        }),
    );
    (serve_app(app), seen)
}

fn seed_with(url: &str, model: &str, json: &std::path::Path) -> std::process::Command {
    let mut c = bin();
    c.args(["run", "--headless", "--base-url", url, "--model", model, "--json"]).arg(json).arg(repo_path("scenarios/seed-comparison.toml"));
    c
}

#[test]
fn base_url_and_model_flags_retarget_the_scenario_and_send_the_key() {
    let (url, seen) = recording_server();
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    let mut c = seed_with(&url, "served-model", &json);
    c.env("OPENAI_API_KEY", KEY);
    let out = run(c, LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    assert_eq!(v["target"]["base_url"], url.as_str());
    assert_eq!(v["stages"][3]["model"], "served-model");
    assert_eq!(v["stages"].as_array().unwrap().iter().map(|s| s["requests"]["ok"].as_u64().unwrap()).sum::<u64>(), 400);
    assert_eq!(v["stages"][0]["tokens"]["completion"], 700, "usage from the server is summed");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 400);
    assert!(seen.iter().all(|a| a == &format!("Bearer {KEY}")));
}

#[test]
fn the_key_never_appears_in_any_output() {
    let (url, _seen) = recording_server();
    let d = tempfile::tempdir().unwrap();
    for (model, kind, example) in [
        ("bad", "http_4xx", "HTTP 401: Incorrect API key provided: [REDACTED]"),
        ("decode", "decode", "HTTP 200: not a chat completion (JSON of the wrong shape at line 1 column"),
        ("text", "http_5xx", "HTTP 502: (3034 byte body without text)"),
    ] {
        let json = d.path().join(format!("{model}.json"));
        let mut c = seed_with(&url, model, &json);
        c.env("OPENAI_API_KEY", KEY);
        let out = run(c, LIMIT);
        // Every request failed: the run is carried out, and fails its verdict.
        assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
        let text = std::fs::read_to_string(&json).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["stages"][0]["failures"][kind], 100, "{model}");
        let got = v["stages"][0]["failure_examples"][kind].as_str().unwrap();
        assert!(got.starts_with(example), "{model}: {got}");
        // Not the key, nor any telling piece of it.
        for (what, s) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("json", &text)] {
            assert!(!s.contains(&KEY[..10]), "{model}: the key leaked into {what}");
        }
    }
}

/// The key read from a file: sent, and never shown, also when every request is retried
/// against a server that echoes it in its 429s.
#[test]
fn a_key_file_is_used_and_never_shown() {
    let (url, seen) = recording_server();
    let d = tempfile::tempdir().unwrap();
    let key_file = d.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let json = d.path().join("r.json");
    let mut c = seed_with(&url, "limited", &json);
    c.arg("--api-key-file").arg(&key_file).args(["--max-attempts", "2"]);
    let out = run(c, LIMIT);
    assert_eq!(out.status.code(), Some(3), "every request ends a 429: {}", out.stderr);
    let text = std::fs::read_to_string(&json).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let s = &v["stages"][0];
    assert_eq!(s["failures"]["http_429"], 100);
    assert_eq!(s["retries"]["by_cause"]["http_429"], 100, "each request retried once");
    assert_eq!(s["retries"]["retry_after_honoured"], 100);
    assert_eq!(seen.lock().unwrap().len(), 800);
    assert!(seen.lock().unwrap().iter().all(|a| a == &format!("Bearer {KEY}")), "the file's key, newline trimmed");
    for (what, s) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("json", &text)] {
        assert!(!s.contains(&KEY[..10]), "the key leaked into {what}");
    }
    // A missing file, and an empty one: bad input, a one-line error naming the file,
    // exit 2, nothing sent.
    let missing = d.path().join("nope");
    let mut c = seed_with(&url, "m", &json);
    c.arg("--api-key-file").arg(&missing);
    let out = run(c, LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot read target.api_key_file") && out.stderr.contains("nope"), "{}", out.stderr);
    let empty = d.path().join("empty");
    std::fs::write(&empty, "\n  \n").unwrap();
    let mut c = seed_with(&url, "m", &json);
    c.arg("--api-key-file").arg(&empty);
    let out = run(c, LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("target.api_key_file") && out.stderr.contains("is empty"), "{}", out.stderr);
    assert_eq!(seen.lock().unwrap().len(), 800);
}

#[test]
fn a_missing_key_is_a_note_not_an_error() {
    let (url, seen) = recording_server();
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    let out = run(seed_with(&url, "m", &json), LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("note: $OPENAI_API_KEY is not set"), "{}", out.stderr);
    assert!(seen.lock().unwrap().iter().all(String::is_empty));
}

#[test]
fn unreachable_server_fails_as_connect_not_panic() {
    // Bind then drop: nothing listens on that port now.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    let out = run(seed_with(&format!("http://127.0.0.1:{port}/v1"), "m", &json), LIMIT);
    assert_eq!(out.status.code(), Some(3), "a dead endpoint fails the run: {}", out.stderr);
    let v = read_json(&json);
    assert_eq!(v["stages"][0]["failures"]["connect"], 100);
    assert!(v["stages"][0]["latency_ms"].is_null());
    assert_schema_valid(&v);
}

/// Sends `signals` to a run whose one request hangs; returns the output and the result,
/// and how long the run took to end after the first signal.
fn stop_with(signals: &[&str]) -> (Output, Value, Duration) {
    use std::io::BufRead;
    // A server that accepts and never answers: requests hang until the stop cancels them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("r.json");
    let mut child =
        seed_with(&format!("http://127.0.0.1:{port}/v1"), "m", &json).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The first connection that carries a completion proves a request is in flight;
    // those before it (the probes of its tokenize and metrics endpoints) are dropped.
    let _conn = loop {
        let (conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        let _ = std::io::BufReader::new(&conn).read_line(&mut line);
        if line.contains("/chat/completions") {
            break conn;
        }
    };
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let t0 = std::time::Instant::now();
    let mut seen = String::new();
    for (i, sig) in signals.iter().enumerate() {
        if i > 0 {
            // The next signal only once the first was acted on, else the two coalesce.
            while !seen.contains("stopping") {
                assert!(err.read_line(&mut seen).unwrap() > 0, "stderr closed before the stop was announced");
            }
        }
        let kill = std::process::Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut out = wait(child, LIMIT);
    let took = t0.elapsed();
    out.stderr = seen + &rest.join().unwrap();
    let v = read_json(&json);
    assert_schema_valid(&v);
    (out, v, took)
}

#[test]
fn sigint_and_sigterm_stop_the_run_and_still_write_the_result() {
    for sig in ["INT", "TERM"] {
        let (out, v, _) = stop_with(&[sig]);
        assert_eq!(out.status.code(), Some(130), "{sig}: {}", out.stderr);
        assert!(out.stderr.contains("stopping"), "{sig}: {}", out.stderr);
        assert_eq!(v["interrupted"], true);
        let s = &v["stages"][0];
        assert_eq!(s["interrupted"], true);
        assert_eq!(s["requests"]["started"], 1);
        assert_eq!(s["requests"]["cancelled"], 1, "{sig}: the hung request is cancelled after the grace period");
        assert_eq!(v["stages"].as_array().unwrap().len(), 1, "no stage starts after a stop");
        assert!(out.stdout.contains("sequential (stopped)"), "{}", out.stdout);
    }
}

/// A second Ctrl-C ends the run at once, without the 2 s grace, and still writes.
#[test]
fn a_second_sigint_ends_at_once_and_still_writes() {
    let (out, v, took) = stop_with(&["INT", "INT"]);
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert!(took < llmload::engine::STOP_GRACE, "ended {took:?} after the first signal; the grace is {:?}", llmload::engine::STOP_GRACE);
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["stages"][0]["requests"]["cancelled"], 1);
}

#[test]
fn standalone_mock_serves_openai_shapes() {
    let (mut child, url) = spawn_mock(&["--base-latency-ms", "5", "--output-tokens", "4"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = rt.block_on(async {
        let http = reqwest::Client::new();
        let models: Value = http.get(format!("{url}/models")).send().await?.json().await?;
        let ok = http
            .post(format!("{url}/chat/completions"))
            .json(&json!({"model": "x", "messages": [{"role": "user", "content": "one two three"}]}))
            .send()
            .await?;
        let ok_status = ok.status().as_u16();
        let ok: Value = ok.json().await?;
        let bad = http.post(format!("{url}/chat/completions")).body("{not json").send().await?;
        let bad_status = bad.status().as_u16();
        let bad: Value = bad.json().await?;
        let nomsg = http.post(format!("{url}/chat/completions")).json(&json!({"model": "x"})).send().await?;
        let nomsg_status = nomsg.status().as_u16();
        let nomsg: Value = nomsg.json().await?;
        Ok::<_, reqwest::Error>((models, ok_status, ok, bad_status, bad, nomsg_status, nomsg))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (models, ok_status, ok, bad_status, bad, nomsg_status, nomsg) = result.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(ok_status, 200);
    assert_eq!(ok["object"], "chat.completion");
    assert_eq!(ok["model"], "x");
    assert_eq!(
        ok["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(ok["choices"][0]["message"]["content"].as_str().unwrap().split_whitespace().count(), 4);
    assert_eq!(bad_status, 400);
    assert_eq!(bad["error"]["type"], "invalid_request_error");
    assert_eq!((nomsg_status, nomsg["error"]["param"].as_str()), (400, Some("messages")));
}

#[test]
fn mock_rejects_bad_knobs() {
    let out = run(
        {
            let mut c = bin();
            c.args(["mock", "--port", "0", "--error-rate", "3"]);
            c
        },
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stderr.trim(), "error: --error-rate must be between 0 and 1, got 3");
}
