//! Interop: the official `openai` Python client talks to `llmload mock`.
//! scripts/test installs the client into .venv; LLMLOAD_PYTHON may point elsewhere.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("LLMLOAD_PYTHON") {
        return p.into();
    }
    let venv = repo_path(".venv/bin/python");
    assert!(venv.exists(), "no Python with the openai client: run scripts/test (it creates .venv) or set LLMLOAD_PYTHON");
    venv
}

#[test]
fn official_openai_client_accepts_the_mock() {
    let py = python();
    let (mut mock, url) = spawn_mock(&["--base-latency-ms", "1", "--per-inflight-ms", "0"]);
    let mut cmd = Command::new(py);
    cmd.arg(repo_path("tests/interop/openai_client.py")).arg(&url).env("NO_PROXY", "127.0.0.1").env_remove("OPENAI_API_KEY");
    let out = run(cmd, Duration::from_secs(60));
    let _ = mock.kill();
    let _ = mock.wait();
    assert!(out.status.success(), "python client failed:\n{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(v["models"], serde_json::json!(["mock-model"]));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4.1");
    assert_eq!(v["content"].as_str().unwrap().split_whitespace().count(), 5, "max_tokens = 5 caps the reply");
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"], serde_json::json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}));
    assert_eq!(v["error"], serde_json::json!({"type": "BadRequestError", "status": 400}));
}
