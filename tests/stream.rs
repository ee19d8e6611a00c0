//! Streaming end to end: broken streams from a server started here, and servers that
//! send no usage. (Timing accuracy has a file of its own, so it runs alone.)

mod common;
use common::*;

use axum::body::Body;
use axum::response::IntoResponse;

/// A server that streams what the test asks for, by model name.
fn stream_server() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: axum::Json<serde_json::Value>| async move {
            let chunk = |c: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{c}\"}}}}]}}\n\n");
            let text = match body["model"].as_str().unwrap_or("") {
                // Two tokens, then the connection ends: no [DONE].
                "cut" => format!("{}{}", chunk("a"), chunk(" b")),
                "malformed" => format!("{}data: {{not json\n\n", chunk("a")),
                "error-event" => format!("{}data: {{\"error\":{{\"message\":\"overloaded\"}}}}\n\n", chunk("a")),
                // No usage anywhere: tokens are counted here.
                _ => format!(": keep-alive\n\n{}{}{}data: [DONE]\n\n", chunk(""), chunk("hello"), chunk(" world")),
            };
            ([("content-type", "text/event-stream")], Body::from(text)).into_response()
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move { axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap() });
    });
    url
}

fn stream_run(url: &str, model: &str) -> serde_json::Value {
    let text = format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"{model}\"\nstream = true\n[prompts]\nlist = [\"hi\"]\n\
         [[stage]]\nname = \"s\"\nconcurrency = 2\nrequests = 6\n"
    );
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    v["stages"][0].clone()
}

#[test]
fn broken_streams_fail_by_kind_with_partial_timings_apart() {
    let url = stream_server();
    for (model, kind, example) in [
        ("cut", "stream_cut", "stream ended without [DONE] after 2 content chunks"),
        ("malformed", "decode", "malformed chunk"),
        ("error-event", "decode", "overloaded"),
    ] {
        let s = stream_run(&url, model);
        assert_eq!(s["requests"]["failed"], 6, "{model}");
        assert_eq!(s["failures"][kind], 6, "{model}");
        assert!(s["failure_examples"][kind].as_str().unwrap().contains(example), "{model}: {}", s["failure_examples"]);
        assert!(s["ttft_ms"].is_null(), "{model}: failed streams stay out of TTFT");
        assert!(s["partial_ttft_ms"]["max"].as_f64().is_some(), "{model}: partial TTFT kept apart");
    }
}

#[test]
fn streams_without_usage_are_counted_here() {
    let s = stream_run(&stream_server(), "plain");
    assert_eq!(s["requests"]["ok"], 6);
    let t = &s["tokens"];
    assert_eq!(t["requests_with_usage"], 0);
    // "hello world": 2 o200k tokens; the empty first chunk and the keep-alive are skipped.
    assert_eq!((t["client_completion"].as_u64(), t["output"].as_u64()), (Some(12), Some(12)));
    assert!(s["itl_ms"]["p50"].as_f64().is_some(), "ITL from the client count when usage is missing");
}
