//! Tool calls against the mock: a reply made only of a call is a success whose first
//! token is its first fragment (TTFT at the mock's known time), streamed and whole,
//! counted (calls, argument bytes, arguments that parse), `tool_choice` honoured, and
//! what does not go refused in place.

mod common;
use common::*;

use std::time::Duration;

use serde_json::Value;

const TOOLS: &str = "tools = [{ type = \"function\", function = { name = \"get_weather\", parameters = { type = \"object\", \
                     properties = { city = { type = \"string\" }, units = { type = \"string\", enum = [\"c\", \"f\"] } }, required = [\"city\"] } } }]";

/// A chat scenario on the mock (50 ms to the first token, 10 ms a token), one at a time.
fn text(stream: bool, request: &str, mock: &str) -> String {
    format!(
        "name = \"tools\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = {stream}\n\
         [mock]\nbase_latency_ms = 50\ninter_token_ms = 10\n{mock}\n\
         [prompts]\ntemplate = \"What is the weather in city {{i}}?\"\n[request]\n{request}\n\
         [[stage]]\nname = \"one\"\nconcurrency = 1\nrequests = 6\n"
    )
}

fn run_ok(text: &str) -> (Output, Value) {
    run_headless(text, &[])
}

#[test]
fn a_reply_made_only_of_a_call_is_timed_and_counted() {
    for stream in [true, false] {
        let (out, v) = run_ok(&text(stream, TOOLS, ""));
        let s = &v["stages"][0];
        let t = &s["tool_calls"];
        let what = format!("stream {stream}: {t}");
        assert_eq!((count(&s["requests"]["ok"]), count(&t["replies"]), count(&t["calls"])), (6, 6, 6), "{what}");
        assert_eq!((count(&t["arguments_not_json"]), count(&s["finish_reasons"]["tool_calls"])), (0, 6), "{what}");
        assert!(count(&t["argument_bytes"]) >= 6 * "{\"city\":\"\"}".len() as u64, "{what}");
        // The server's usage counts the name and the arguments, as llmload does.
        assert!(count(&s["tokens"]["output"]) > 6 * 5, "{what}: {}", s["tokens"]);
        if stream {
            // Its first token is the call's first fragment: at the mock's 50 ms, not at
            // the end of the reply; then a token every 10 ms.
            let (ttft, first, itl) = (num(&s["ttft_ms"]["p50"]), num(&t["first_tool_ms"]["p50"]), num(&s["itl_ms"]["p50"]));
            assert!((50.0..70.0).contains(&ttft) && (first - ttft).abs() < 1.0, "{what}: TTFT {ttft}, first fragment {first}");
            assert!((7.0..12.0).contains(&itl), "{what}: ITL {itl}");
            assert!(num(&s["latency_ms"]["p50"]) > ttft + 50.0, "{what}");
            assert_eq!(count(&s["tokens"]["completion_disagree"]), 0, "{what}: {}", s["tokens"]);
        } else {
            assert!(t["first_tool_ms"].is_null(), "{what}");
        }
        assert!(out.stdout.contains("tool calls"), "the table's column: {}", out.stdout);
    }
}

/// `tool_choice`: "none" never calls, "required" always, "auto" at the mock's rate.
#[test]
fn the_tool_choice_is_honoured() {
    let calls = |choice: &str, rate: &str| {
        let (_, v) = run_ok(&text(true, &format!("{TOOLS}\ntool_choice = {choice}"), &format!("tool_call_rate = {rate}")));
        v["stages"][0]["tool_calls"]["calls"].as_u64().unwrap_or(0)
    };
    assert_eq!(calls("\"none\"", "1"), 0);
    assert_eq!(calls("\"required\"", "0"), 6);
    assert_eq!(calls("\"auto\"", "0"), 0);
    assert_eq!(calls("{ type = \"function\", function = { name = \"get_weather\" } }", "0"), 6);
}

/// `tools = "file.json"`: the list read from a JSON file beside the scenario, checked
/// as an inline one is; a file that cannot be read or is not JSON is refused in place.
#[test]
fn tools_are_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let list = r#"[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]"#;
    std::fs::write(dir.path().join("tools.json"), list).unwrap();
    std::fs::write(dir.path().join("broken.json"), "[{").unwrap();
    let at = |file: &str| text(true, &format!("tools = \"{}\"", dir.path().join(file).display()), "");
    let (_, v) = run_ok(&at("tools.json"));
    assert_eq!(count(&v["stages"][0]["tool_calls"]["calls"]), 6, "{}", v["stages"][0]["tool_calls"]);
    assert!(v["stages"][0]["tool_calls"]["invalid"].is_null(), "checked against the file's tools: {}", v["stages"][0]["tool_calls"]);
    for (file, says) in [("broken.json", "broken.json: not JSON"), ("missing.json", "request.tools: cannot read")] {
        let (_d, path) = scenario(&at(file));
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{file}: {}", out.stderr);
        assert!(out.stderr.contains(says) && out.stderr.contains("s.toml:"), "{file}: {}", out.stderr);
    }
}

/// What does not go: one located line, exit 2, before any request.
#[test]
fn tools_that_cannot_be_sent_are_refused_in_place() {
    let cases = [
        (TOOLS.to_string(), "completions", "request.tools is spoken on target.api = \"chat\" only, not \"completions\""),
        (
            format!("{TOOLS}\ntool_choice = \"sometimes\""),
            "chat",
            "request.tool_choice must be \"auto\", \"none\", \"required\" or a function",
        ),
        (
            format!("{TOOLS}\ntool_choice = {{ type = \"function\", function = {{ name = \"nope\" }} }}"),
            "chat",
            "names \"nope\", which is not among the tools",
        ),
        ("tool_choice = \"auto\"".to_string(), "chat", "request.tool_choice needs tools"),
        (
            "tools = [{ type = \"function\", function = { name = \"f\", parameters = { type = 5 } } }]".to_string(),
            "chat",
            "request.tools[0].function.parameters is not a JSON Schema",
        ),
        (
            "tools = [{ type = \"function\", function = { name = \"f\" } }, { type = \"function\", function = { name = \"f\" } }]"
                .to_string(),
            "chat",
            "request.tools[1].function.name \"f\" is used twice",
        ),
        (
            "response_format = { type = \"json_schema\", json_schema = { name = \"x\", schema = { type = \"nope\" } } }".to_string(),
            "chat",
            "request.response_format.json_schema.schema is not a JSON Schema",
        ),
    ];
    for (request, api, says) in cases {
        let t = text(false, &request, "").replace("stream = false", &format!("stream = false\napi = \"{api}\""));
        let (_d, path) = scenario(&t);
        let mut c = cmd(&["run", "--headless"]);
        c.arg(&path);
        let out = run(c, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{request}: {}", out.stderr);
        assert!(out.stderr.contains(says) && out.stderr.contains("s.toml:"), "{request}: {}", out.stderr);
    }
}

/// Every shipped scenario of this kind runs on the mock: tool calls counted; structured
/// replies held to their schema, the prose among them caught.
#[test]
fn the_shipped_tool_and_structured_scenarios_run() {
    let (out, v) = run_shipped("scenarios/tools.toml");
    for s in v["stages"].as_array().unwrap() {
        let (ok, calls) = (count(&s["requests"]["ok"]), count(&s["tool_calls"]["calls"]));
        // 4 in 5 at the mock's rate: between half and all, by its draw.
        assert!(calls * 2 >= ok && calls <= ok && count(&s["tool_calls"]["arguments_not_json"]) == 0, "{}", s["tool_calls"]);
    }
    assert!(out.stdout.contains("tool calls"), "{}", out.stdout);
    let (_, v) = run_shipped("scenarios/structured.toml");
    for s in v["stages"].as_array().unwrap() {
        let c = &s["checks"];
        assert_eq!(count(&c["passed"]) + count(&c["failed"]), count(&s["requests"]["ok"]), "{c}");
        // 1 in 10 prose at the mock's rate; the JSON always fits.
        assert!(count(&c["failed"]) * 3 <= count(&s["requests"]["ok"]), "{c}");
        assert_eq!(count(&c["failed"]), count(&c["failures"]["no_json"]), "only prose fails: {c}");
    }
}

/// `[check] schema`: a reply that does not fit fails as `schema`, counted by where its
/// first violation was (never a value); a call's arguments are what a call-only reply is
/// checked by; a schema file that is not one is refused in place.
#[test]
fn replies_and_calls_are_checked_against_a_schema_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("needs.json"), r#"{"type": "object", "required": ["country"]}"#).unwrap();
    std::fs::write(d.path().join("bad.json"), r#"{"type": 5}"#).unwrap();
    let run_in = |text: &str| {
        let path = d.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        let json = d.path().join("r.json");
        let mut c = cmd(&["run", "--headless", "--json"]);
        c.arg(&json).arg(&path);
        let out = run(c, Duration::from_secs(60));
        (out, json)
    };
    // JSON answers that fit the request's schema, but not the check's.
    let format = "response_format = { type = \"json_schema\", json_schema = { name = \"c\", schema = { type = \"object\", properties = { city = { type = \"string\" } } } } }";
    let t = text(true, format, "json_rate = 1").replace("[[stage]]", "[check]\nschema = \"needs.json\"\n[[stage]]");
    let (out, json) = run_in(&t);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let c = read_json(&json)["stages"][0]["checks"].clone();
    assert_eq!((count(&c["failures"]["schema"]), count(&c["schema_failures"]["/required"])), (6, 6), "{c}");
    // A call-only reply: its arguments (which fit the tool, not the check).
    let t = text(true, TOOLS, "").replace("[[stage]]", "[check]\nschema = \"needs.json\"\n[[stage]]");
    let (out, json) = run_in(&t);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let c = read_json(&json)["stages"][0]["checks"].clone();
    assert_eq!(count(&c["failures"]["schema"]), 6, "{c}");
    // Not a schema: a located line, exit 2.
    let (out, _) = run_in(&text(true, "", "").replace("[[stage]]", "[check]\nschema = \"bad.json\"\n[[stage]]"));
    assert!(
        out.status.code() == Some(2) && out.stderr.contains("check.schema: ") && out.stderr.contains("is not a JSON Schema"),
        "{}",
        out.stderr
    );
}

/// A server whose calls do not do — arguments that are not JSON, a tool not offered,
/// arguments that break the tool's `parameters` — is caught call by call, by why.
#[test]
fn calls_are_checked_against_the_tools_offered() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let replies = [r#"{\"city\":\"Paris\"}"#, r#"{\"units\":\"k\"}"#, "not json", r#"{\"city\":\"Oslo\"}"#];
    let n = std::sync::Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move || {
        let i = n.fetch_add(1, Ordering::SeqCst) % 4;
        let name = if i == 3 { "get_time" } else { "get_weather" };
        let body = format!(
            r#"{{"id":"x","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_{i}","type":"function","function":{{"name":"{name}","arguments":"{}"}}}}]}},"finish_reason":"tool_calls"}}],"usage":{{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}}}"#,
            replies[i]
        );
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
    });
    let url = serve_app(app);
    let t = text(false, TOOLS, "")
        .replace("base_url = \"mock\"", &format!("base_url = \"{url}\""))
        .replace("requests = 6", "requests = 8")
        .replace("[mock]\nbase_latency_ms = 50\ninter_token_ms = 10\n", "[server_metrics]\nprobe = false\n");
    let (out, v) = run_ok(&t);
    let tc = &v["stages"][0]["tool_calls"];
    assert_eq!(count(&tc["calls"]), 8, "{tc}");
    assert_eq!(tc["invalid"], serde_json::json!({"not_json": 2, "unknown_tool": 2, "schema": 2}), "{tc}");
    assert!(out.stdout.contains("8 (6 invalid)"), "{}", out.stdout);
}

/// A stage's tool fields are checked with what it inherits: its choice alone among the
/// scenario's tools, a choice of a tool its own list dropped refused, and chat's fields
/// on a stage of another API refused.
#[test]
fn a_stages_tool_fields_are_checked_with_what_it_inherits() {
    let stage = |own: &str| {
        let t = text(true, TOOLS, "").replace("[[stage]]\nname = \"one\"", &format!("[[stage]]\nname = \"one\"\n{own}"));
        let (_d, path) = scenario(&t);
        let mut c = cmd(&["validate"]);
        c.arg(&path);
        run(c, Duration::from_secs(20))
    };
    let out = stage("request = { tool_choice = \"required\" }");
    assert_eq!(out.status.code(), Some(0), "a choice alone takes the scenario's tools: {}", out.stderr);
    let out = stage(
        "request = { tool_choice = { type = \"function\", function = { name = \"get_weather\" } }, tools = [{ type = \"function\", function = { name = \"other\" } }] }",
    );
    assert!(out.status.code() == Some(2) && out.stderr.contains("names \"get_weather\", which is not among the tools"), "{}", out.stderr);
    let out = stage("api = \"embeddings\"\nrequest = { batch_size = 2 }");
    assert!(
        out.status.code() == Some(2) && out.stderr.contains("tools is spoken on api = \"chat\" only, and this stage speaks \"embeddings\""),
        "{}",
        out.stderr
    );
    let out = stage("api = \"completions\"");
    assert!(out.status.code() == Some(2) && out.stderr.contains("this stage speaks \"completions\""), "{}", out.stderr);
}
