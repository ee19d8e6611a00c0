//! Streaming end to end: broken streams from a server started here, and servers that
//! send no usage. (Timing accuracy has a file of its own, so it runs alone.)

mod common;
use common::*;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;

/// A server that streams what the test asks for, by model name; it also notes the
/// client port of every request, to count connections.
fn stream_server() -> (String, Arc<Mutex<HashSet<u16>>>) {
    let ports: Arc<Mutex<HashSet<u16>>> = Arc::default();
    let seen = ports.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |ConnectInfo(peer): ConnectInfo<SocketAddr>, body: axum::Json<serde_json::Value>| async move {
            seen.lock().unwrap().insert(peer.port());
            let chunk = |c: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{c}\"}}}}]}}\n\n");
            if body["model"] == "reset" {
                // Two chunks, then the body fails: the connection is cut mid-stream.
                let parts: Vec<Result<String, std::io::Error>> = vec![Ok(chunk("a")), Ok(chunk(" b")), Err(std::io::Error::other("reset"))];
                // Paced, so the first chunks are on the wire before the cut.
                let paced = futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    p
                });
                return ([("content-type", "text/event-stream")], Body::from_stream(paced)).into_response();
            }
            if body["model"] == "paced" {
                // [DONE], then the body's end a little later, as streaming servers write it.
                let parts: Vec<Result<String, std::io::Error>> =
                    vec![Ok(chunk("hello")), Ok(chunk(" world")), Ok("data: [DONE]\n\n".into()), Ok(String::new())];
                let paced = futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    p
                });
                return ([("content-type", "text/event-stream")], Body::from_stream(paced)).into_response();
            }
            if body["model"] == "no-stream" {
                // A server that ignores "stream": true and answers with a whole completion.
                let reply =
                    r#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
                return ([("content-type", "application/json")], reply).into_response();
            }
            let text = match body["model"].as_str().unwrap_or("") {
                // Two tokens, then the connection ends: no [DONE].
                "cut" => format!("{}{}", chunk("a"), chunk(" b")),
                "malformed" => format!("{}data: {{not json\n\n", chunk("a")),
                "error-event" => format!("{}data: {{\"error\":{{\"message\":\"overloaded\"}}}}\n\n", chunk("a")),
                // The body ends inside an event.
                "truncated" => format!("{}data: {{\"choices\":[{{\"delta\":{{\"con", chunk("a")),
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
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap()
        });
    });
    (url, ports)
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
    let (url, _) = stream_server();
    for (model, kind, example) in [
        ("cut", "stream_cut", "stream ended without [DONE] after 2 content chunks"),
        ("truncated", "stream_cut", "stream ended inside an event"),
        ("reset", "stream_cut", "error"),
        ("malformed", "decode", "malformed chunk"),
        ("error-event", "decode", "overloaded"),
    ] {
        let s = stream_run(&url, model);
        assert_eq!(s["requests"]["failed"], 6, "{model}");
        assert_eq!(s["failures"][kind], 6, "{model}: {}", s["failure_examples"]);
        assert!(s["failure_examples"][kind].as_str().unwrap().contains(example), "{model}: {}", s["failure_examples"]);
        assert!(s["ttft_ms"].is_null(), "{model}: failed streams stay out of TTFT");
        assert!(s["partial_ttft_ms"]["max"].as_f64().is_some(), "{model}: partial TTFT kept apart");
    }
}

#[test]
fn a_server_that_ignores_stream_true_is_a_decode_failure() {
    let (url, _) = stream_server();
    let s = stream_run(&url, "no-stream");
    assert_eq!(s["failures"]["decode"], 6, "{}", s["failure_examples"]);
    let example = s["failure_examples"]["decode"].as_str().unwrap();
    assert!(example.contains("got Content-Type application/json (the server ignores \"stream\": true)"), "{example}");
}

#[test]
fn connections_are_reused_after_done() {
    let (url, ports) = stream_server();
    let s = stream_run(&url, "paced");
    assert_eq!(s["requests"]["ok"], 6);
    // 2 workers, 6 requests: after [DONE] the body is read to its end, so connections
    // go back to the pool and serve the next requests. (A pool can race a worker and
    // open one more; a connection per request would be 6.)
    let ports = ports.lock().unwrap().clone();
    assert!(ports.len() <= 3, "connections: {ports:?}");
}

#[test]
fn streams_without_usage_are_counted_here() {
    let (url, _) = stream_server();
    let s = stream_run(&url, "plain");
    assert_eq!(s["requests"]["ok"], 6);
    let t = &s["tokens"];
    assert_eq!(t["requests_with_usage"], 0);
    // "hello world": 2 o200k tokens; the empty first chunk and the keep-alive are skipped.
    assert_eq!((t["client_completion"].as_u64(), t["output"].as_u64()), (Some(12), Some(12)));
    assert!(s["itl_ms"]["p50"].as_f64().is_some(), "ITL from the client count when usage is missing");
}
