//! Embeddings and rerank against the mock: batches and documents drawn as the scenario
//! says and sent in each API's shape (a recording mock on 127.0.0.1), the figures they
//! add (inputs/s or documents/s, latency by how many a request carried) in the result,
//! the table and a merge of shards; what does not go with them refused before any
//! request; and a server whose reply does not match what was sent, a `decode` failure
//! that says why.

mod common;
use common::*;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use llmload::mock::{MockConfig, MockServer};
use serde_json::Value;

/// A scenario speaking `api` to `base_url`, with `request` fields and `stages`.
fn text(base_url: &str, api: &str, prompts: &str, request: &str, stages: &str) -> String {
    format!(
        "name = \"{api}\"\n[target]\nbase_url = \"{base_url}\"\nmodel = \"m\"\napi = \"{api}\"\n\
         [prompts]\n{prompts}\n[request]\n{request}\n{stages}"
    )
}

/// `run --headless` of a scenario file, expected to be refused.
fn run_path(path: &Path) -> Output {
    let mut c = cmd(&["run", "--headless"]);
    c.arg(path);
    run(c, Duration::from_secs(20))
}

/// Runs `text`, expecting `code` (3: carried out, its verdict failed).
fn run_code(text: &str, code: i32) -> (Output, Value) {
    let (out, v, _) = run_lines(text, code);
    (out, v)
}

/// The same, with each request's `--requests-out` line.
fn run_lines(text: &str, code: i32) -> (Output, Value, Vec<Value>) {
    let (d, path) = scenario(text);
    let (json, lines) = (d.path().join("r.json"), d.path().join("r.jsonl"));
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg("--requests-out").arg(&lines).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(code), "{}", out.stderr);
    let v = read_json(&json);
    assert_schema_valid(&v);
    let lines = std::fs::read_to_string(&lines).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out, v, lines)
}

/// The mock's time grows with a batch's tokens: 16 inputs of 64 tokens at 40 ms per
/// 1,000 cost 15 × 64 × 0.04 = 38 ms more than one.
#[test]
fn embeddings_run_in_batches_and_a_batch_costs_its_tokens() {
    let stages = "[mock]\nbase_latency_ms = 20\nprefill_ms_per_1k_tokens = 40\n\
                  [[stage]]\nname = \"one\"\nconcurrency = 2\nrequests = 20\n\
                  [[stage]]\nname = \"sixteen\"\nconcurrency = 2\nrequests = 20\nrequest = { batch_size = 16 }\n";
    let (out, v, lines) = run_lines(&text("mock", "embeddings", "synthetic = { input = 64 }", "", stages), 0);
    // Each request's line says how many it carried.
    let carried: Vec<u64> = lines.iter().map(|l| count(&l["items"])).collect();
    assert_eq!((carried.iter().filter(|&&n| n == 1).count(), carried.iter().filter(|&&n| n == 16).count()), (20, 20));
    let (one, sixteen) = (&v["stages"][0], &v["stages"][1]);
    for (s, n) in [(one, 1), (sixteen, 16)] {
        let what = format!("{}: {}", s["name"], s["items"]);
        assert_eq!(count(&s["requests"]["ok"]), 20, "{what}");
        assert_eq!((s["items"]["kind"].as_str(), count(&s["items"]["total"])), (Some("inputs"), 20 * n), "{what}");
        let groups = s["items"]["by_size"].as_array().unwrap();
        assert_eq!((groups.len(), count(&groups[0]["min"]), count(&groups[0]["max"])), (1, n, n), "{what}");
        // The server's count: every input's 64 tokens, none out.
        assert_eq!((count(&s["tokens"]["prompt"]), count(&s["tokens"]["output"])), (20 * n * 64, 0), "{what}");
        assert!((num(&s["items"]["per_s"]) / num(&s["throughput"]["ok_per_s"]) - n as f64).abs() < 0.01, "{what}");
    }
    let cost = num(&sixteen["latency_ms"]["p50"]) - num(&one["latency_ms"]["p50"]);
    assert!((30.0..50.0).contains(&cost), "16 inputs cost {cost} ms more than one");
    assert!(out.stdout.contains("inputs/s"), "the table's column: {}", out.stdout);
}

#[test]
fn each_is_sent_in_its_own_shape_and_checked() {
    let mock = MockServer::start_recording(
        MockConfig { base_latency_ms: 1.0, ..MockConfig::default() },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .unwrap();
    let stage = "[[stage]]\nconcurrency = 2\nrequests = 6\n";
    let prompts = "template = \"passage {i}\"";
    // Embeddings: a batch as `input`, the encoding and length asked; nothing of chat's.
    let request = "batch_size = 3\nencoding_format = \"base64\"\ndimensions = 64";
    let (_, v) = run_code(&text(&mock.base_url(), "embeddings", prompts, request, stage), 0);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.path, "/v1/embeddings");
    let body = seen.json();
    assert_eq!(body["input"].as_array().map(Vec::len), Some(3), "{body}");
    assert!(body["input"][0].as_str().unwrap().starts_with("passage "), "{body}");
    assert_eq!((body["encoding_format"].as_str(), body["dimensions"].as_u64()), (Some("base64"), Some(64)), "{body}");
    for absent in ["stream", "max_tokens", "messages", "stream_options"] {
        assert!(body.get(absent).is_none(), "{absent} sent: {body}");
    }
    assert_eq!(count(&v["stages"][0]["requests"]["ok"]), 6, "{}", v["stages"][0]);
    // Rerank: the prompt as the query, documents of the length asked, top_n.
    let request = "documents = 6\ndocument_tokens = 20\ntop_n = 2";
    let (_, v) = run_code(&text(&mock.base_url(), "rerank", prompts, request, stage), 0);
    let seen = mock.last_request().unwrap();
    let body = seen.json();
    assert_eq!((seen.path.as_str(), body["top_n"].as_u64()), ("/v1/rerank", Some(2)), "{body}");
    assert!(body["query"].as_str().unwrap().starts_with("passage "), "{body}");
    let tok = llmload::workload::Tokenizer::o200k();
    let docs = body["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 6, "{body}");
    assert!(docs.iter().all(|d| tok.count(d.as_str().unwrap()) == 20), "{body}");
    let s = &v["stages"][0];
    assert_eq!((count(&s["requests"]["ok"]), s["items"]["kind"].as_str(), count(&s["items"]["total"])), (6, Some("documents"), 36));
    // `/rerank`, by path, the same.
    let (_, v) = run_code(&text(&mock.base_url(), "rerank", prompts, request, stage).replace("api = ", "path = \"/rerank\"\napi = "), 0);
    assert_eq!((mock.last_request().unwrap().path.as_str(), count(&v["stages"][0]["requests"]["ok"])), ("/rerank", 6));
}

/// What does not go with embeddings or rerank: one line naming the place, exit 2,
/// before any request.
#[test]
fn what_does_not_go_with_them_is_refused_in_place() {
    let stage = "[[stage]]\nconcurrency = 1\nrequests = 1\n";
    let cases = [
        ("embeddings", "", "stream = true", "target.stream: target.api = \"embeddings\" does not stream"),
        ("embeddings", "max_tokens = 8", "", ".toml:10:14: request.max_tokens: target.api = \"embeddings\" generates no text"),
        ("rerank", "temperature = 0.5", "", "request.temperature: target.api = \"rerank\" generates no text"),
        ("chat", "batch_size = 4", "", "request.batch_size: is for target.api = \"embeddings\", not \"chat\""),
        ("embeddings", "top_n = 4", "", "request.top_n: is for target.api = \"rerank\", not \"embeddings\""),
        ("embeddings", "encoding_format = \"bytes\"", "", "request.encoding_format must be \"float\" or \"base64\""),
        ("rerank", "documents = 5000", "", "request.documents: at most 2048 documents per query, got up to 5000"),
        ("embeddings", "batch_size = { min = 4 }", "", "request.batch_size: "),
    ];
    for (api, request, target, says) in cases {
        let t = text("mock", api, "template = \"x {i}\"", request, stage).replace("api = ", &format!("{target}\napi = "));
        let (_d, path) = scenario(&t);
        let out = run_path(&path);
        assert_eq!(out.status.code(), Some(2), "{api} {request} {target}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{api} {request} {target}: {}", out.stderr);
    }
    // A response check reads text, which these replies hold none of.
    let t = text("mock", "embeddings", "template = \"x {i}\"", "", &format!("[check]\nexpect = \"json\"\n{stage}"));
    let (_d, path) = scenario(&t);
    let out = run_path(&path);
    assert!(out.status.code() == Some(2) && out.stderr.contains("check: stage \"sequential\" speaks \"embeddings\""), "{}", out.stderr);
    // A tokens-per-minute limit needs no output limit: they write nothing.
    let t = text("mock", "embeddings", "template = \"x {i}\"", "", &format!("[rate_limit]\ntpm = 600000\n{stage}"));
    let _ = run_code(&t, 0);
    // A stage's own request table is checked as the scenario's.
    let t = text("mock", "rerank", "template = \"x {i}\"", "", "[[stage]]\nrequests = 1\nrequest = { batch_size = 2 }\n");
    let (_d, path) = scenario(&t);
    let out = run_path(&path);
    assert!(out.status.code() == Some(2) && out.stderr.contains("stage \"sequential\": request.batch_size"), "{}", out.stderr);
    // A prompts file of chat messages for an API that takes text: its line named.
    let (d, path) = scenario(&text("mock", "embeddings", "file = \"p.jsonl\"", "", stage));
    std::fs::write(d.path().join("p.jsonl"), "{\"prompt\": \"fine\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n")
        .unwrap();
    let out = run_path(&path);
    assert!(out.status.code() == Some(2) && out.stderr.contains("p.jsonl:2"), "{}", out.stderr);
    assert!(out.stderr.contains("a `messages` prompt needs a chat API"), "{}", out.stderr);
}

/// A server that answers short, or in another API's shape: every request a `decode`
/// failure whose example says why (never a value it sent).
#[test]
fn a_reply_that_does_not_match_what_was_sent_is_a_decode_failure() {
    let replies = [
        (
            "embeddings",
            "batch_size = 4",
            r#"{"data":[{"index":0,"embedding":[0.5,0.5]}],"usage":{"prompt_tokens":3}}"#,
            "1 embeddings for 4 inputs",
        ),
        (
            "embeddings",
            "",
            r#"{"id":"x","choices":[{"message":{"content":"sk-echo"}}]}"#,
            "expected an embeddings list (`data`), came a chat or text completion",
        ),
        (
            "rerank",
            "documents = 3\ntop_n = 1",
            r#"{"results":[{"index":0,"relevance_score":0.9},{"index":2,"relevance_score":0.1}]}"#,
            "2 results for top_n = 1",
        ),
        ("rerank", "documents = 3", r#"{"results":[{"index":7,"relevance_score":0.9}]}"#, "result index 7 for 3 documents"),
    ];
    for (api, request, reply, says) in replies {
        let reply = reply.to_string();
        let app = axum::Router::new().fallback(move || {
            let reply = reply.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], reply) }
        });
        let url = serve_app(app);
        let (out, v) =
            run_code(&text(&url, api, "template = \"x {i}\"", request, "[server_metrics]\nprobe = false\n[[stage]]\nrequests = 3\n"), 3);
        let s = &v["stages"][0];
        assert_eq!((count(&s["requests"]["failed"]), count(&s["failures"]["decode"])), (3, 3), "{api}: {s}");
        let example = s["failure_examples"]["decode"].as_str().unwrap();
        assert_eq!(example, format!("HTTP 200: {says}"), "{api}");
        assert!(!out.stdout.contains("sk-echo") && !v.to_string().contains("sk-echo"));
    }
}

/// Shards of an embeddings run merge to the run's texts exactly: totals summed, each
/// size's distribution added.
#[test]
fn shards_merge_their_inputs_exactly() {
    let t = text(
        "mock",
        "embeddings",
        "synthetic = { input = 16 }",
        "batch_size = { min = 1, max = 24 }",
        "[mock]\nbase_latency_ms = 5\n[[stage]]\nname = \"s\"\nconcurrency = 2\nrequests = 40\n",
    );
    let (d, path) = scenario(&t);
    let shard = |which: &str| {
        let json = d.path().join(format!("{}.json", which.replace('/', "-")));
        let mut c = cmd(&["run", "--headless", "--json"]);
        c.arg(&json).args(["--shard", which]).arg(&path);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{}", out.stderr);
        json
    };
    let (a, b) = (shard("0/2"), shard("1/2"));
    let merged = d.path().join("merged.json");
    let mut c = cmd(&["merge", "-o"]);
    c.arg(&merged).arg(&a).arg(&b);
    let out = run(c, Duration::from_secs(30));
    assert!(out.status.success(), "{}", out.stderr);
    let (va, vb, m) = (read_json(&a), read_json(&b), read_json(&merged));
    assert_schema_valid(&m);
    let items = |v: &Value| v["stages"][0]["items"].clone();
    assert_eq!(count(&items(&m)["total"]), count(&items(&va)["total"]) + count(&items(&vb)["total"]));
    // Each size's requests are the shards' together; 40 requests in all.
    let by = |v: &Value| -> std::collections::BTreeMap<u64, u64> {
        items(v)["by_size"].as_array().unwrap().iter().map(|g| (count(&g["group"]), count(&g["requests"]))).collect()
    };
    let mut want = by(&va);
    for (k, n) in by(&vb) {
        *want.entry(k).or_default() += n;
    }
    assert_eq!(by(&m), want);
    assert_eq!(want.values().sum::<u64>(), 40);
    // The same batches as the whole run would send: the draws follow the run's numbers.
    let whole = d.path().join("whole.json");
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&whole).arg(&path);
    assert!(run(c, Duration::from_secs(60)).status.success());
    assert_eq!(count(&items(&read_json(&whole))["total"]), count(&items(&m)["total"]));
}

/// A stage may speak an API of its own — a RAG service's three calls, each measured
/// apart: the scenario's prompts made for it, its own fields checked against it.
#[test]
fn a_stage_speaks_an_api_of_its_own() {
    let stages = "[[stage]]\nname = \"embed\"\napi = \"embeddings\"\nconcurrency = 2\nrequests = 8\nrequest = { batch_size = 4 }\n\
                  [[stage]]\nname = \"rerank\"\napi = \"rerank\"\nconcurrency = 2\nrequests = 8\nrequest = { documents = 5, top_n = 2 }\n\
                  [[stage]]\nname = \"answer\"\nconcurrency = 2\nrequests = 8\n";
    let t = text("mock", "chat", "template = \"why {i}?\"", "max_tokens = 8", stages)
        .replace("api = \"chat\"", "api = \"chat\"\nstream = true");
    let (out, v) = run_code(&t, 0);
    let s = v["stages"].as_array().unwrap();
    assert_eq!((s[0]["items"]["kind"].as_str(), count(&s[0]["items"]["total"])), (Some("inputs"), 32), "{}", s[0]);
    assert_eq!((s[1]["items"]["kind"].as_str(), count(&s[1]["items"]["total"])), (Some("documents"), 40), "{}", s[1]);
    assert!(s[2].get("items").is_none() && s[2]["ttft_ms"]["p50"].is_number(), "{}", s[2]);
    assert!(s.iter().all(|s| count(&s["requests"]["ok"]) == 8));
    assert_eq!(v["scenario"]["stages"][1]["api"], "rerank");
    assert!(out.stdout.contains("items/s"), "inputs and documents in one column: {}", out.stdout);
    // Its fields are checked against its API, and sessions speak chat.
    let bad = text("mock", "chat", "template = \"x\"", "", "[[stage]]\nrequests = 1\napi = \"rerank\"\nrequest = { batch_size = 2 }\n");
    let (_d, path) = scenario(&bad);
    let out = run_path(&path);
    assert!(out.status.code() == Some(2) && out.stderr.contains("is for target.api = \"embeddings\", not \"rerank\""), "{}", out.stderr);
    let bad = text("mock", "chat", "template = \"x\"", "", "[conversation]\nturns = 2\n[[stage]]\nrequests = 1\napi = \"embeddings\"\n");
    let (_d, path) = scenario(&bad);
    let out = run_path(&path);
    assert!(out.status.code() == Some(2) && out.stderr.contains("does not go with [conversation]"), "{}", out.stderr);
}
