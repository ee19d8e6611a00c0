//! Interop: the official `openai` Python client talks to `llmload mock`.
//! scripts/test installs the client into .venv; LLMLOAD_PYTHON may point elsewhere.
//! Without them (a bare `cargo test`) each test says it skipped and why.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

/// One test at a time: each starts Python (importing openai alone takes a second of
/// CPU), and llmock's timing is read against its configured latencies, which a
/// neighbour's start-up on the same 2 cores would stretch.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn official_openai_client_accepts_the_mock() {
    let Some(py) = python(&["openai"]) else { return };
    let _serial = serial();
    let (mut mock, url) = spawn_mock(&["--base-latency-ms", "1", "--per-inflight-ms", "0"]);
    let (mut no_done, no_done_url) = spawn_mock(&["--base-latency-ms", "1", "--per-inflight-ms", "0", "--stream-end", "finish"]);
    let mut cmd = Command::new(py);
    cmd.arg(repo_path("tests/interop/openai_client.py")).arg(&url).arg(&no_done_url);
    cmd.env("NO_PROXY", "127.0.0.1").env_remove("OPENAI_API_KEY");
    let out = run(cmd, Duration::from_secs(60));
    for m in [&mut mock, &mut no_done] {
        let _ = m.kill();
        let _ = m.wait();
    }
    assert!(out.status.success(), "python client failed:\n{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(v["models"], serde_json::json!(["mock-model"]));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4.1");
    assert_eq!(v["content"].as_str().unwrap().split_whitespace().count(), 5, "max_tokens = 5 caps the reply");
    assert_eq!(v["finish_reason"], "length");
    // o200k: "be brief" 2 + "say five words please" 4.
    assert_eq!(v["usage"], serde_json::json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}));
    assert_eq!(v["error"], serde_json::json!({"type": "BadRequestError", "status": 400}));
    assert_eq!(v["streamed"], v["content"], "streaming gives the same text");
    assert_eq!(v["stream_chunks"], 5, "one token per chunk");
    assert_eq!(v["stream_usage"], v["usage"], "and the same usage");
    let c = &v["completions"];
    assert_eq!((c["object"].as_str(), c["text"].as_str()), (Some("text_completion"), Some("Load testing shows where latency")));
    assert_eq!(c["finish_reason"], "length");
    // o200k: "Once upon a time" is 4 tokens.
    assert_eq!(c["usage"], serde_json::json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}));
    assert_eq!(c["streamed"], c["text"], "streamed as text deltas");
    // What llmload counts as a whole answer, the official client reads as one too.
    assert_eq!((&v["no_done"], v["no_done_finish"].as_str()), (&v["content"], Some("length")));
}

/// `llmock` (an independent OpenAI-compatible mock from PyPI) on a free port; returns the
/// child and its API root. It reports the bound port on stderr once listening.
fn spawn_llmock(py: &std::path::Path, latency_ms: u32, chunk_delay_ms: u32) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let bin = py.with_file_name("llmock");
    let mut child = Command::new(&bin)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--tool-mode", "off", "--response-style", "static"])
        .args(["--latency-ms", &latency_ms.to_string(), "--stream-chunk-delay-ms", &chunk_delay_ms.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "llmock exited before listening");
        if let Some(at) = line.find("http://127.0.0.1:") {
            let addr: String = line[at..].chars().take_while(|c| !c.is_whitespace()).collect();
            break format!("{addr}/v1");
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in err.lines() {});
    (child, url)
}

#[test]
fn llmock_streaming_and_not_measures_what_it_was_told() {
    let Some(py) = python(&["llmock"]) else { return };
    let _serial = serial();
    // llmock sleeps --latency-ms before answering, then waits --stream-chunk-delay-ms
    // before every event after the role chunk: first content at 200 + 20 ms, then 20 ms
    // apart. `--response-style static` says "Mock response from {model}." (4 words,
    // one chunk each); it counts usage as characters / 4.
    let (mut llmock, url) = spawn_llmock(&py, 200, 20);
    let run_one = |stream: bool| {
        let text = format!(
            "[target]\nbase_url = \"{url}\"\nmodel = \"gpt-4o-mini\"\nstream = {stream}\n[prompts]\nlist = [\"hello there\"]\n\
             [[stage]]\nname = \"s\"\nconcurrency = 4\nrequests = 12\n"
        );
        run_scenario(&text).1
    };
    let streamed = run_one(true);
    let plain = run_one(false);
    let _ = llmock.kill();
    let _ = llmock.wait();

    assert_schema_valid(&streamed);
    let s = &streamed["stages"][0];
    assert_eq!(s["requests"]["ok"], 12, "{s}");
    let ttft = s["ttft_ms"]["p50"].as_f64().unwrap();
    let gap = s["chunk_gap_ms"]["p50"].as_f64().unwrap();
    assert!((ttft - 220.0).abs() <= 22.0, "TTFT p50 {ttft} ms, llmock told 200 + 20 ms");
    assert!((gap - 20.0).abs() <= 4.0, "chunk gap p50 {gap} ms, llmock told 20 ms");
    let t = &s["tokens"];
    // "Mock response from gpt-4o-mini." is 31 characters: llmock says 7 tokens; o200k
    // counts 10 here, and the disagreement is reported, not hidden.
    assert_eq!(t["requests_with_usage"], 12);
    assert_eq!(t["completion"], 12 * 7);
    assert_eq!(t["client_completion"], 12 * 10);
    assert_eq!(t["completion_disagree"], 12);

    let p = &plain["stages"][0];
    assert_eq!(p["requests"]["ok"], 12);
    assert!(p["ttft_ms"].is_null());
    let e2e = p["latency_ms"]["p50"].as_f64().unwrap();
    assert!((e2e - 200.0).abs() <= 30.0, "non-streaming e2e p50 {e2e} ms, llmock told 200 ms");
    assert_eq!(p["tokens"]["completion"], 12 * 7);
}

/// The result's histograms decode with HdrHistogram's own Python reader: the same
/// values and counts as llmload's own decoding, the stage's count.
#[test]
fn hdrhistogram_python_reads_the_results_histograms() {
    let Some(python) = python(&["hdrh"]) else { return };
    let _serial = serial();
    let text = "name = \"hdr\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
        [mock]\nbase_latency_ms = 5\nper_inflight_ms = 0\ninter_token_ms = 1\noutput_tokens = 8\njitter_ms = 3\n\
        [prompts]\ntemplate = \"hello {i}\"\n[[stage]]\nname = \"s\"\nconcurrency = 4\nrequests = 60\n";
    let (d, path) = scenario(text);
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(&path);
    assert!(run(c, Duration::from_secs(60)).status.success());
    let v = read_json(&json);
    let mut py = Command::new(&python);
    py.arg(repo_path("tests/interop/hdr_read.py")).arg(&json);
    let out = run(py, Duration::from_secs(60));
    assert!(out.status.success(), "the Python reader failed:\n{}", out.stderr);
    let read: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let hists = v["stages"][0]["histograms"].as_object().unwrap();
    assert_eq!(read.as_object().unwrap().len(), hists.len(), "every distribution read");
    assert!(hists.len() >= 6, "{hists:?}");
    for (name, dist) in hists {
        let r = &read[format!("s/{name}")];
        assert_eq!(r["count"], dist["count"], "{name}");
        let ours = llmload::metrics::hdr::decode(dist["hdr"].as_str().unwrap()).unwrap();
        let ours: Vec<[u64; 2]> = ours.iter_recorded().map(|x| [x.value_iterated_to(), x.count_at_value()]).collect();
        let theirs: Vec<[u64; 2]> = serde_json::from_value(r["recorded"].clone()).unwrap();
        assert_eq!(theirs, ours, "{name}");
    }
}

/// The `--junit` file parses as XML the way CI tools read it, with a case per threshold
/// and per stage and the failures where the verdict has them.
#[test]
fn the_junit_file_is_read_by_an_xml_parser() {
    let Some(python) = python(&["xml.etree.ElementTree"]) else { return };
    let _serial = serial();
    let text = "name = \"j & <k>\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 5\nper_inflight_ms = 0\n\
        [prompts]\ntemplate = \"hello {i}\"\n[thresholds]\np99_ms = \"< 1000\"\nok_rps = \"> 1000000\"\n\
        [[stage]]\nname = \"a \\\"quoted\\\" & <odd> stage\"\nconcurrency = 2\nrequests = 10\n";
    let (d, path) = scenario(text);
    let xml = d.path().join("junit.xml");
    let mut c = cmd(&["run", "--headless", "--junit"]);
    c.arg(&xml).arg(&path);
    assert_eq!(run(c, Duration::from_secs(60)).status.code(), Some(3));
    let mut py = Command::new(&python);
    py.arg(repo_path("tests/interop/junit_read.py")).arg(&xml);
    let out = run(py, Duration::from_secs(30));
    assert!(out.status.success(), "the XML parser failed:\n{}", out.stderr);
    let r: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((r["tests"].as_u64(), r["failures"].as_u64()), (Some(3), Some(1)), "{r}");
    let stage = "a \"quoted\" & <odd> stage";
    let case = |name: String| {
        r["cases"].as_array().unwrap().iter().find(|c| c["name"] == name.as_str()).cloned().unwrap_or_else(|| panic!("{name}: {r}"))
    };
    assert!(case(format!("{stage}: p99_ms < 1000"))["failure"].is_null());
    assert!(case(format!("{stage}: ok_rps > 1000000"))["failure"].as_str().unwrap().starts_with("measured "));
    assert!(case(format!("{stage}: a successful request"))["failure"].is_null());
}

/// The official `openai` client reads the mock's Responses API and embeddings and the
/// official `anthropic` client its Messages, whole and streamed, each through its own
/// parser: the mock's shapes are the real ones.
#[test]
fn official_clients_read_the_mocks_responses_messages_and_embeddings() {
    let Some(py) = python(&["openai", "anthropic"]) else { return };
    let _serial = serial();
    let (mut mock, url) = spawn_mock(&["--base-latency-ms", "1", "--per-inflight-ms", "0"]);
    let mut cmd = Command::new(py);
    cmd.arg(repo_path("tests/interop/typed_clients.py")).arg(&url);
    cmd.env("NO_PROXY", "127.0.0.1").env_remove("OPENAI_API_KEY").env_remove("ANTHROPIC_API_KEY");
    let out = run(cmd, Duration::from_secs(60));
    let _ = mock.kill();
    let _ = mock.wait();
    assert!(out.status.success(), "python clients failed:\n{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let r = &v["responses"];
    assert_eq!((r["status"].as_str(), r["incomplete"].as_str()), (Some("incomplete"), Some("max_output_tokens")), "{r}");
    assert_eq!(r["text"].as_str().unwrap().split_whitespace().count(), 5, "{r}");
    // o200k: "be brief" 2 + "say five words please" 4.
    assert_eq!(r["usage"], serde_json::json!({"input": 6, "output": 5}));
    let s = &v["responses_stream"];
    assert_eq!((s["deltas"].as_u64(), s["output"].as_u64(), s["status"].as_str()), (Some(16), Some(16), Some("completed")), "{s}");
    assert_eq!(s["text"], s["final_text"], "the SDK's accumulation is the deltas: {s}");
    let m = &v["messages"];
    assert_eq!((m["stop_reason"].as_str(), m["usage"].clone()), (Some("max_tokens"), serde_json::json!({"input": 6, "output": 5})), "{m}");
    assert_eq!(m["text"].as_str().unwrap().split_whitespace().count(), 5, "{m}");
    let s = &v["messages_stream"];
    assert_eq!((s["deltas"].as_u64(), s["output"].as_u64(), s["stop_reason"].as_str()), (Some(5), Some(5), Some("max_tokens")), "{s}");
    assert_eq!(s["text"], s["final_text"], "{s}");
    // Embeddings: three vectors of the mock's 384 floats in order, decoded by the SDK
    // from base64; the same text the same unit vector; o200k: "a cat" and "a dog" 2 each.
    let e = &v["embeddings"];
    assert_eq!(
        (e["count"].as_u64(), e["dims"].clone(), e["indices"].clone()),
        (Some(3), serde_json::json!([384, 384, 384]), serde_json::json!([0, 1, 2])),
        "{e}"
    );
    assert_eq!((e["same_text_same_vector"].as_bool(), e["differ"].as_bool()), (Some(true), Some(true)), "{e}");
    assert!((e["norm"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{e}");
    assert_eq!(e["usage"], serde_json::json!({"prompt": 6, "total": 6}), "{e}");
    assert_eq!(v["embeddings_float"]["dims"].as_u64(), Some(8), "{}", v["embeddings_float"]);
}

/// The official `openai` client's stream helper accumulates the mock's streamed tool
/// call into the very call llmload assembled from the same stream (name and arguments;
/// the id the mock gives each request), and reads the whole reply's call.
#[test]
fn the_official_client_assembles_the_mocks_tool_calls_as_llmload_does() {
    let Some(py) = python(&["openai"]) else { return };
    let _serial = serial();
    let (mut mock, url) = spawn_mock(&["--base-latency-ms", "1", "--per-inflight-ms", "0"]);
    let mut cmd = Command::new(py);
    cmd.arg(repo_path("tests/interop/tool_calls.py")).arg(&url);
    cmd.env("NO_PROXY", "127.0.0.1").env_remove("OPENAI_API_KEY");
    let out = run(cmd, Duration::from_secs(60));
    // llmload, against the same mock, the same prompt and tool.
    let tools = "tools = [{ type = \"function\", function = { name = \"get_weather\", strict = true, parameters = { type = \"object\", \
                 properties = { city = { type = \"string\" }, units = { type = \"string\", enum = [\"c\", \"f\"] } }, \
                 required = [\"city\", \"units\"], additionalProperties = false } } }]";
    let text = format!(
        "name = \"tools\"\n[target]\nbase_url = \"{url}\"\nmodel = \"m\"\nstream = true\n[prompts]\nlist = [\"What is the weather in Paris?\"]\n\
         [request]\n{tools}\n[[stage]]\nrequests = 1\n"
    );
    let (d, path) = scenario(&text);
    let lines = d.path().join("r.jsonl");
    let mut c = common::cmd(&["run", "--headless", "--requests-out-text", "--requests-out"]);
    c.arg(&lines).arg(&path);
    let ran = run(c, Duration::from_secs(60));
    let _ = mock.kill();
    let _ = mock.wait();
    assert!(out.status.success(), "python client failed:\n{}", out.stderr);
    assert!(ran.status.success(), "{}", ran.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&lines).unwrap().lines().next().unwrap()).unwrap();
    let ours = &line["tool_calls"][0];
    let (s, w) = (&v["stream"], &v["whole"]);
    assert_eq!((&ours["name"], &ours["arguments"]), (&s["name"], &s["arguments"]), "llmload {ours}, the SDK {s}");
    assert_eq!((s["finish"].as_str(), w["finish"].as_str()), (Some("tool_calls"), Some("tool_calls")), "{v}");
    assert!(s["fragments"].as_u64().unwrap() > 1 && s["parsed"]["units"].is_string(), "{s}");
    assert_eq!((&w["name"], &w["arguments"], &w["content"]), (&s["name"], &s["arguments"], &serde_json::Value::Null), "{w}");
    assert!(ours["id"].as_str().unwrap().starts_with("call_mock") && s["id"].as_str().unwrap().starts_with("call_mock"), "{ours} {s}");
}
