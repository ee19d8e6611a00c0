//! Kept-alive connections a server closes unannounced. llama.cpp's llama-server closes
//! its connection after every streamed response although its headers say
//! `Keep-Alive: timeout=5, max=100`, and closes idle ones after 5 s: a request sent on
//! such a connection never reached the server. The client sends it again, once, on a
//! new connection and counts it as a reconnect, not a failure; a request that got part
//! of its response, or failed on a new connection, stays a failure. Raw servers on
//! 127.0.0.1 make each case happen every time, not by a race.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::raw::*;
use llmload::model::{FailureKind, Outcome};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A whole, valid streamed answer: two tokens, usage, `[DONE]`, the chunked end.
fn streamed_answer() -> Vec<u8> {
    let mut out = STREAM_HEAD.to_vec();
    for piece in [content_event("Hello"), content_event(" there")] {
        out.extend(chunk(piece.as_bytes()));
    }
    let usage = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
    out.extend(chunk(usage.as_bytes()));
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Serves every connection with `handler`, counting the connections accepted.
async fn counting<F, Fut>(handler: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let addr = serve(move |s| {
        seen.fetch_add(1, Ordering::SeqCst);
        handler(s)
    })
    .await;
    (addr, connections)
}

/// llama-server's streamed replies, as far as the client can tell: every connection
/// answers one request and then ends, without `Connection: close`. It ends only once the
/// next request arrived, so that request was sent on a connection that looked open: the
/// case the pre-reuse check cannot see.
async fn one_answer_per_connection() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    counting(|mut s: TcpStream| async move {
        if read_request(&mut s).await.is_none() || s.write_all(&streamed_answer()).await.is_err() {
            return;
        }
        // The next request arrives; the connection ends under it, unanswered.
        let _ = read_request(&mut s).await;
    })
    .await
}

#[tokio::test]
async fn a_connection_closed_after_each_stream_is_resent_not_failed() {
    let (addr, connections) = one_answer_per_connection().await;
    let client = client(addr, Cfg { stream: true, ..Cfg::default() });
    for i in 0..10 {
        let (rec, _) = send(&client).await;
        assert_eq!(rec.outcome, Outcome::Ok, "request {i}: {:?}", rec.detail);
        assert_eq!(rec.chunks, 2, "request {i}: the whole answer read");
        // The first went out on a new connection; each later one first on the kept one.
        assert_eq!(rec.reconnected, i > 0, "request {i}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 10, "one new connection per request, no more");
}

#[tokio::test]
async fn a_reply_cut_after_its_first_bytes_stays_a_failure() {
    let (addr, connections) = counting(|mut s: TcpStream| async move {
        if read_request(&mut s).await.is_none() || s.write_all(&streamed_answer()).await.is_err() {
            return;
        }
        // The second request gets the start of a head, then the end.
        if read_request(&mut s).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty").await;
        }
    })
    .await;
    let client = client(addr, Cfg { stream: true, ..Cfg::default() });
    assert_eq!(send(&client).await.0.outcome, Outcome::Ok);
    let (rec, _) = send(&client).await;
    assert_eq!(rec.outcome, Outcome::Failed(FailureKind::Transport), "{:?}", rec.detail);
    assert!(!rec.reconnected);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "a request that heard from the server is never sent twice");
}

#[tokio::test]
async fn a_new_connection_that_ends_unanswered_is_a_failure_sent_once() {
    let (addr, connections) = counting(|mut s: TcpStream| async move {
        let _ = read_request(&mut s).await;
    })
    .await;
    let client = client(addr, Cfg::default());
    let (rec, _) = send(&client).await;
    let detail = rec.detail.as_deref().unwrap_or_default();
    assert_eq!(rec.outcome, Outcome::Failed(FailureKind::Transport), "{detail}");
    assert!(detail.contains("connection closed before message completed"), "{detail}");
    assert!(!rec.reconnected);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_never_sent_on() {
    let (closed_tx, mut closed) = mpsc::channel::<()>(4);
    let (addr, connections) = counting({
        move |mut s: TcpStream| {
            let closed_tx = closed_tx.clone();
            async move {
                if read_request(&mut s).await.is_none() {
                    return;
                }
                let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
                let _ = s.write_all(&response("200 OK", "Content-Type: application/json\r\nKeep-Alive: timeout=5, max=100\r\n", body)).await;
                // Its keep-alive timeout: the idle connection ends, and the test hears so.
                drop(s);
                let _ = closed_tx.send(()).await;
            }
        }
    })
    .await;
    let client = client(addr, Cfg::default());
    for i in 0..3 {
        let (rec, _) = send(&client).await;
        assert_eq!(rec.outcome, Outcome::Ok, "request {i}: {:?}", rec.detail);
        // Seen ended before reuse: no request went out on it, so none was resent.
        assert!(!rec.reconnected, "request {i}");
        tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("the server closed").unwrap();
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

/// The whole run: `llmload run` against the server that closes after every stream,
/// 1- and 4-way, reports no failures and says how many requests it sent again.
#[test]
fn a_run_against_it_has_no_failures_and_counts_reconnects() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, _) = rt.block_on(one_answer_per_connection());
    for concurrency in ["1", "4"] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let mut cmd = common::bin();
        cmd.args(["run", "--base-url", &format!("http://{addr}/v1"), "--model", "m", "--stream", "--max-tokens", "4"]);
        cmd.args(["--requests", "30", "--concurrency", concurrency, "--headless", "--no-progress", "--json"]).arg(&json);
        let out = common::run(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{}", out.stderr);
        let v = common::read_json(&json);
        common::assert_schema_valid(&v);
        let stage = &v["stages"][0];
        assert_eq!(common::count(&stage["requests"]["failed"]), 0, "{concurrency}-way: {}", out.stdout);
        assert_eq!(common::count(&stage["requests"]["ok"]), 30);
        let reconnects = common::count(&stage["reconnects"]);
        // Each connection answers once, and ends only under the next request: 1-way,
        // every request after the first is resent; 4-way, all but the few that opened
        // the stage's connections.
        match concurrency {
            "1" => assert_eq!(reconnects, 29),
            _ => assert!((26..=29).contains(&reconnects), "{concurrency}-way: {reconnects}"),
        }
        assert!(out.stdout.contains("requests sent again on a new connection"), "{}", out.stdout);
    }
    drop(rt);
}
