//! The client against hostile servers: each test starts a raw TCP server on 127.0.0.1
//! that misbehaves in one way, sends one request through `llmload::client::Client` and
//! checks the failure kind, that the detail explains it, and that the call returned in
//! bounded time. Lower time bounds come from the configured timeouts; upper bounds are
//! generous (the machine may be busy).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use llmload::client::{ERROR_BODY_BYTES, MAX_BODY_BYTES};
use llmload::model::{FailureKind, Outcome, RequestRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

/// A whole-request timeout, said as one: "timed out after 1s", not a body decode error.
fn assert_timed_out(rec: &RequestRecord, timeout: Duration) {
    let detail = assert_failed(rec, FailureKind::Timeout, "timed out");
    assert_eq!(detail, format!("timed out after {timeout:?}"));
}

/// Checks the outcome, and that the detail is one readable, secret-free line with `needle`.
#[track_caller]
fn assert_failed(rec: &RequestRecord, kind: FailureKind, needle: &str) -> String {
    let detail = rec.detail.as_deref().unwrap_or_default().to_string();
    // Shown with --nocapture: what the client (hyper, under ours) reports for each case.
    eprintln!("{:?} {}: {detail}", rec.outcome, rec.bytes);
    assert_eq!(rec.outcome, Outcome::Failed(kind), "detail: {detail}");
    assert!(detail.to_lowercase().contains(&needle.to_lowercase()), "{detail:?} lacks {needle:?}");
    assert!(!detail.contains('\n') && !detail.contains('\r'), "{detail:?}");
    assert!(!detail.contains(&KEY[..10]), "{detail:?}");
    detail
}

#[tokio::test]
async fn ok_200_with_a_body_that_is_not_json() {
    let addr = fixed(response("200 OK", "Content-Type: application/json\r\n", b"Hello, world")).await;
    let (rec, took) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Decode, "HTTP 200: not a chat completion (invalid JSON at line 1 column 1)");
    assert_eq!((rec.status, rec.bytes), (Some(200), 12));
    // The whole reply came at once: nothing was waited for until a timer ran out.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn html_502_page_reads_as_its_text() {
    let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n\
                <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let addr = fixed(response("502 Bad Gateway", "Content-Type: text/html\r\n", page.as_bytes())).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    let detail = assert_failed(&rec, FailureKind::Http5xx, "HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx");
    assert!(!detail.contains('<'), "{detail}");
    assert_eq!(rec.retry_after, None);
}

#[tokio::test]
async fn ok_200_with_invalid_utf8_is_a_decode_failure() {
    // The bad byte sits in a string the client would otherwise skip unchecked.
    let body = b"{\"choices\":[{\"message\":{\"content\":\"caf\xE9\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}";
    let addr = fixed(response("200 OK", "Content-Type: application/json\r\n", body)).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Decode, "HTTP 200: not a chat completion (invalid UTF-8 at byte 38)");
}

#[tokio::test]
async fn stream_chunk_with_invalid_utf8_is_a_decode_failure() {
    let mut reply = STREAM_HEAD.to_vec();
    reply.extend(chunk(content_event("a").as_bytes()));
    reply.extend(chunk(b"data: {\"choices\":[{\"delta\":{\"content\":\"\xFF\xFE\"}}]}\n\n"));
    reply.extend(chunk(b"data: [DONE]\n\n"));
    reply.extend(b"0\r\n\r\n");
    let addr = fixed(reply).await;
    let (rec, _) = send(&client(addr, Cfg { stream: true, ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::Decode, "HTTP 200: malformed event stream (server-sent event data is not valid UTF-8)");
    assert_eq!(rec.chunks, 1);
}

#[tokio::test]
async fn error_body_with_invalid_utf8_is_still_readable() {
    let addr = fixed(response("500 Internal Server Error", "", b"engine \xFF\xFE crashed\n")).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Http5xx, "HTTP 500: engine \u{FFFD}\u{FFFD} crashed");
}

#[tokio::test]
async fn huge_error_body_is_read_only_to_its_start() {
    // 30 MiB of `[0,0,0,…`: read whole and parsed as a JSON value, it would cost the
    // client about a GiB.
    let body = format!("[{}", "0,".repeat(15 * 1024 * 1024));
    let addr = fixed(response("500 Internal Server Error", "Content-Type: application/json\r\n", body.as_bytes())).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Http5xx, "HTTP 500: [0,0,0,0");
    assert_eq!(rec.status, Some(500));
    // The limit and the last piece read, which hyper caps at its read buffer (~400 KiB).
    assert!(rec.bytes >= ERROR_BODY_BYTES as u64 && rec.bytes <= (ERROR_BODY_BYTES + 512 * 1024) as u64, "bytes {}", rec.bytes);
}

#[tokio::test]
async fn reset_mid_error_body_keeps_the_status_and_retry_after() {
    let head = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 1000\r\n\r\n";
    let addr = resetting(format!("{head}{{\"error\":{{\"message\":\"over").into_bytes()).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    let detail = assert_failed(&rec, FailureKind::Http5xx, r#"HTTP 503: {"error":{"message":"over (body cut: "#);
    assert!(detail.to_lowercase().contains("connection reset"), "{detail}");
    assert_eq!(rec.status, Some(503));
    assert_eq!(rec.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn stalled_error_body_keeps_the_status() {
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        if s.write_all(b"HTTP/1.1 429 Too Many Requests\r\nretry-after-ms: 250\r\nContent-Length: 100\r\n\r\nslow").await.is_ok() {
            until_closed(&mut s).await;
        }
    })
    .await;
    let idle = Duration::from_millis(300);
    let (rec, took) = send(&client(addr, Cfg { idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::Http429, "HTTP 429: slow (body cut: no data for 300ms)");
    assert_eq!(rec.retry_after, Some(Duration::from_millis(250)));
    assert!(took >= idle && took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn stream_answered_with_a_whole_completion_is_a_decode_failure() {
    let body = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
    let addr = fixed(response("200 OK", "Content-Type: application/json\r\n", body)).await;
    let (rec, _) = send(&client(addr, Cfg { stream: true, ..Cfg::default() })).await;
    assert_failed(
        &rec,
        FailureKind::Decode,
        "HTTP 200: asked for a stream, got Content-Type application/json (the server ignores \"stream\": true)",
    );
    assert_eq!((rec.status, rec.chunks), (Some(200), 0));
    assert!(rec.bytes <= body.len() as u64, "{}", rec.bytes);
}

#[tokio::test]
async fn stream_answered_as_a_dripping_completion_fails_on_its_headers() {
    // The head says JSON, then the body comes a byte a second: no reason to wait for it.
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        if s.write_all(head).await.is_err() {
            return;
        }
        for _ in 0..99 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await;
    let timeout = Duration::from_secs(5);
    let (rec, took) = send(&client(addr, Cfg { stream: true, timeout, ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::Decode, "asked for a stream, got Content-Type application/json");
    assert!(took < timeout / 2, "{took:?}: it waited for the body");
}

#[tokio::test]
async fn stream_with_content_type_parameters_is_a_stream() {
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    reply.extend(chunk(content_event("a").as_bytes()));
    reply.extend(chunk(b"data: [DONE]\n\n"));
    reply.extend(b"0\r\n\r\n");
    let addr = fixed(reply).await;
    let (rec, _) = send(&client(addr, Cfg { stream: true, ..Cfg::default() })).await;
    assert_eq!(rec.outcome, Outcome::Ok, "{:?}", rec.detail);
    assert_eq!(rec.chunks, 1);
}

/// A server that writes `head` and then `piece` until the client goes away; reports on
/// `done` how many body bytes it wrote.
async fn endless(head: &'static [u8], first: Vec<u8>, piece: Vec<u8>, done: mpsc::Sender<usize>) -> SocketAddr {
    let (first, piece) = (Arc::new(first), Arc::new(piece));
    serve(move |mut s| {
        let (first, piece, done) = (first.clone(), piece.clone(), done.clone());
        async move {
            read_request(&mut s).await;
            let mut written = 0;
            if s.write_all(head).await.is_ok() && s.write_all(&first).await.is_ok() {
                written += first.len();
                while s.write_all(&piece).await.is_ok() {
                    written += piece.len();
                }
            }
            let _ = done.send(written).await;
        }
    })
    .await
}

/// The record of a body cut at the cap: a little over it, never the whole endless body.
#[track_caller]
fn assert_cut_at_cap(rec: &RequestRecord) {
    let cap = MAX_BODY_BYTES as u64;
    assert!(rec.bytes > cap && rec.bytes <= cap + 1024 * 1024, "bytes {}", rec.bytes);
}

#[tokio::test]
async fn endless_body_stops_at_the_cap() {
    let (tx, mut rx) = mpsc::channel(1);
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    let addr = endless(head, b"{\"choices\":[".to_vec(), vec![b' '; 64 * 1024], tx).await;
    let (rec, _) = send(&client(addr, Cfg { timeout: Duration::from_secs(60), ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::BodyTooLarge, "HTTP 200: body larger than 33554432 bytes");
    assert_cut_at_cap(&rec);
    // The client closed the connection: the server's writes failed soon after.
    let written = tokio::time::timeout(BOUND, rx.recv()).await.expect("the server stops writing").unwrap();
    assert!(written < MAX_BODY_BYTES + 16 * 1024 * 1024, "{written}");
}

#[tokio::test]
async fn endless_bodies_at_once_share_one_budget() {
    // Ten endless bodies at once against a 4 MiB budget: each fails as too large well
    // before its own 32 MiB cap, so the run never holds more than the budget.
    let (tx, _rx) = mpsc::channel(16);
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    let addr = endless(head, b"{\"choices\":[".to_vec(), vec![b' '; 64 * 1024], tx).await;
    let budget = 4 * 1024 * 1024;
    let c = Arc::new(client(addr, Cfg { timeout: Duration::from_secs(60), pool_size: 10, body_budget: budget, ..Cfg::default() }));
    let all = (0..10).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { send(&c).await.0 })
    });
    let mut over = 0;
    for rec in futures_util::future::join_all(all).await {
        let rec = rec.unwrap();
        let detail = assert_failed(&rec, FailureKind::BodyTooLarge, "HTTP 200: body");
        assert!(rec.bytes <= budget as u64 + 64 * 1024, "{} bytes held by one body", rec.bytes);
        over += usize::from(detail.contains("body budget (4194304 bytes for all bodies being read at once)"));
    }
    assert!(over >= 9, "{over} of 10 failed on the shared budget");
    // Given back: one more body gets the whole budget again before it fails.
    let (rec, _) = send(&c).await;
    assert!(rec.bytes > budget as u64 / 2, "{}: the budget was not given back", rec.bytes);
}

#[tokio::test]
async fn endless_stream_stops_at_the_cap() {
    let (tx, mut rx) = mpsc::channel(1);
    // Keep-alive comments after one token: small valid events, forever.
    let comments = chunk(format!(": {}\n\n", "x".repeat(1020)).repeat(64).as_bytes());
    let addr = endless(STREAM_HEAD, chunk(content_event("a").as_bytes()), comments, tx).await;
    let (rec, _) = send(&client(addr, Cfg { stream: true, timeout: Duration::from_secs(60), ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::BodyTooLarge, "HTTP 200: stream larger than 33554432 bytes");
    assert_cut_at_cap(&rec);
    assert_eq!(rec.chunks, 1);
    let written = tokio::time::timeout(BOUND, rx.recv()).await.expect("the server stops writing").unwrap();
    assert!(written < MAX_BODY_BYTES + 16 * 1024 * 1024, "{written}");
}

/// A stream that sends one token, then nothing, holding the connection open.
async fn silent_stream() -> SocketAddr {
    serve(|mut s| async move {
        read_request(&mut s).await;
        let mut reply = STREAM_HEAD.to_vec();
        reply.extend(chunk(content_event("a").as_bytes()));
        if s.write_all(&reply).await.is_ok() {
            until_closed(&mut s).await;
        }
    })
    .await
}

#[tokio::test]
async fn silent_stream_ends_at_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let addr = silent_stream().await;
    let (rec, took) = send(&client(addr, Cfg { stream: true, idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::IdleTimeout, "HTTP 200: stream stalled: no data for 300ms after 1 content chunks");
    assert!(took >= idle && took < Duration::from_secs(5), "{took:?}");
    assert!(rec.ttft.is_some());
}

#[tokio::test]
async fn silent_stream_without_idle_timeout_ends_at_the_request_timeout() {
    let timeout = Duration::from_secs(1);
    let addr = silent_stream().await;
    let (rec, took) = send(&client(addr, Cfg { stream: true, timeout, ..Cfg::default() })).await;
    assert_timed_out(&rec, timeout);
    assert!(took >= timeout && took < BOUND, "{took:?}");
}

#[tokio::test]
async fn silent_body_ends_at_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choices\":").await.is_ok() {
            until_closed(&mut s).await;
        }
    })
    .await;
    let (rec, took) = send(&client(addr, Cfg { idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::IdleTimeout, "HTTP 200: body stalled: no data for 300ms after 11 body bytes");
    assert!(took >= idle && took < Duration::from_secs(5), "{took:?}");
}

/// How long the servers below keep quiet before the first token (or body bytes): longer
/// than the idle timeout, well within the request timeout.
const PREFILL: Duration = Duration::from_millis(900);

#[tokio::test]
async fn long_wait_for_the_first_token_is_not_an_idle_timeout() {
    // Headers and the role chunk at once, as vLLM and OpenAI send them, then nothing
    // while the request queues and prefills.
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        let mut head = STREAM_HEAD.to_vec();
        head.extend(chunk(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"));
        if s.write_all(&head).await.is_err() {
            return;
        }
        tokio::time::sleep(PREFILL).await;
        let mut rest = chunk(content_event("a").as_bytes());
        rest.extend(chunk(content_event(" b").as_bytes()));
        rest.extend(chunk(b"data: [DONE]\n\n"));
        rest.extend(b"0\r\n\r\n");
        if s.write_all(&rest).await.is_ok() {
            until_closed(&mut s).await;
        }
    })
    .await;
    let idle = Duration::from_millis(300);
    let (rec, _) = send(&client(addr, Cfg { stream: true, idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_eq!(rec.outcome, Outcome::Ok, "{:?}", rec.detail);
    assert_eq!(rec.chunks, 2);
    assert!(rec.ttft.is_some_and(|t| t >= PREFILL), "{:?}", rec.ttft);
}

#[tokio::test]
async fn long_wait_for_the_first_body_bytes_is_not_an_idle_timeout() {
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        let body = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        tokio::time::sleep(PREFILL).await;
        if s.write_all(body).await.is_ok() {
            until_closed(&mut s).await;
        }
    })
    .await;
    let idle = Duration::from_millis(300);
    let (rec, took) = send(&client(addr, Cfg { idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_eq!(rec.outcome, Outcome::Ok, "{:?}", rec.detail);
    assert!(took >= PREFILL, "{took:?}");
}

#[tokio::test]
async fn trickling_keep_alives_defeat_the_idle_timeout_but_not_the_request_timeout() {
    // Pings 100 ms apart, the idle timeout 10 times that: the server shares the test's
    // one thread with the client, and a busy machine may delay either.
    let (idle, timeout) = (Duration::from_secs(1), Duration::from_secs(3));
    let addr = serve(|mut s| async move {
        read_request(&mut s).await;
        let mut reply = STREAM_HEAD.to_vec();
        reply.extend(chunk(content_event("a").as_bytes()));
        if s.write_all(&reply).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if s.write_all(&chunk(b": ping\n\n")).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (rec, took) = send(&client(addr, Cfg { stream: true, timeout, idle_timeout: Some(idle), ..Cfg::default() })).await;
    assert_timed_out(&rec, timeout);
    assert!(took >= timeout && took < BOUND, "{took:?}");
    // The pings were read: more than the first event (57 bytes) arrived.
    assert!(rec.bytes > 100, "{}", rec.bytes);
}

/// A server that writes `reply` and then resets the connection (SO_LINGER 0).
async fn resetting(reply: Vec<u8>) -> SocketAddr {
    let reply = Arc::new(reply);
    serve(move |mut s| {
        let reply = reply.clone();
        async move {
            read_request(&mut s).await;
            let _ = s.write_all(&reply).await;
            s.set_zero_linger().unwrap();
            drop(s);
        }
    })
    .await
}

#[tokio::test]
async fn reset_mid_body() {
    let addr = resetting(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"choices\":[".to_vec()).await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Body, "connection reset");
    assert_eq!(rec.status, Some(200));
}

#[tokio::test]
async fn reset_mid_stream() {
    let mut reply = STREAM_HEAD.to_vec();
    reply.extend(chunk(content_event("a").as_bytes()));
    let addr = resetting(reply).await;
    let (rec, _) = send(&client(addr, Cfg { stream: true, ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::StreamCut, "connection reset");
    assert_eq!(rec.chunks, 1);
}

#[tokio::test]
async fn server_that_never_answers_hits_the_request_timeout() {
    let (tx, mut rx) = mpsc::channel(1);
    let addr = serve(move |mut s| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(()).await;
            until_closed(&mut s).await;
        }
    })
    .await;
    let timeout = Duration::from_secs(1);
    let (rec, took) = send(&client(addr, Cfg { timeout, ..Cfg::default() })).await;
    assert_timed_out(&rec, timeout);
    assert!(took >= timeout && took < BOUND, "{took:?}");
    assert_eq!(rec.status, None);
    // The connection was made: this was not a connect failure.
    assert!(rx.try_recv().is_ok());
}

#[tokio::test]
async fn connection_refused() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (rec, took) = send(&client(addr, Cfg::default())).await;
    // It names where it tried: the address, never a URL (which could carry userinfo).
    let detail = assert_failed(&rec, FailureKind::Connect, "refused");
    assert!(detail.starts_with(&format!("connect to {addr}: ")), "{detail}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // An IPv6 host in brackets, as in a URL (where the loopback has IPv6).
    if let Ok(l) = std::net::TcpListener::bind("[::1]:0") {
        let addr = l.local_addr().unwrap();
        drop(l);
        let (rec, _) = send(&client(addr, Cfg::default())).await;
        let detail = assert_failed(&rec, FailureKind::Connect, "refused");
        assert!(detail.starts_with(&format!("connect to [::1]:{}: ", addr.port())), "{detail}");
    }
}

/// A listener that never accepts, its backlog filled: further SYNs go unanswered. This
/// relies on Linux, which drops SYNs while the accept queue is full (others may refuse).
async fn unanswered() -> (TcpListener, Vec<TcpStream>, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    let full = loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) if fillers.len() < 64 => fillers.push(s),
            Ok(Ok(_)) => break false,
            Ok(Err(e)) => panic!("filler connect: {e}"),
            Err(_) => break true,
        }
    };
    assert!(full, "the backlog never filled: SYNs are answered");
    (listener, fillers, addr)
}

#[tokio::test]
async fn connect_timeout_when_syns_go_unanswered() {
    let (listener, fillers, addr) = unanswered().await;
    let connect_timeout = Duration::from_millis(300);
    let (rec, took) = send(&client(addr, Cfg { connect_timeout, ..Cfg::default() })).await;
    assert_failed(&rec, FailureKind::ConnectTimeout, "connect timed out after 300ms");
    assert!(took >= connect_timeout && took < Duration::from_secs(4), "{took:?}");
    drop((fillers, listener));
}

#[tokio::test]
async fn connect_timeout_even_when_the_request_timeout_is_shorter() {
    let (listener, fillers, addr) = unanswered().await;
    let timeout = Duration::from_millis(500);
    let (rec, took) = send(&client(addr, Cfg { timeout, connect_timeout: Duration::from_secs(2), ..Cfg::default() })).await;
    // The connection is what failed, though the total timeout was the shorter.
    assert_failed(&rec, FailureKind::ConnectTimeout, "connect timed out after 490ms");
    assert!(took >= timeout / 2 && took < Duration::from_secs(4), "{took:?}");
    drop((fillers, listener));
}

/// A server answering every request with 429 and `headers`.
async fn storm(headers: &'static str) -> SocketAddr {
    let body = br#"{"error":{"message":"Rate limit reached","type":"rate_limit_exceeded"}}"#;
    fixed(response("429 Too Many Requests", headers, body)).await
}

#[tokio::test]
async fn storm_of_429_with_retry_after() {
    let addr = storm("Retry-After: 2\r\n").await;
    let client = client(addr, Cfg::default());
    for _ in 0..20 {
        let (rec, _) = send(&client).await;
        assert_failed(&rec, FailureKind::Http429, "HTTP 429: Rate limit reached");
        assert_eq!(rec.retry_after, Some(Duration::from_secs(2)));
    }
}

#[tokio::test]
async fn retry_after_ms_wins_over_retry_after() {
    let addr = storm("Retry-After: 2\r\nretry-after-ms: 1500\r\n").await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::Http429, "HTTP 429");
    assert_eq!(rec.retry_after, Some(Duration::from_millis(1500)));
}

#[tokio::test]
async fn redirect_is_not_followed() {
    // The redirect's target: any connection to it would carry the key.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let location = format!("Location: http://{}/v1/chat/completions\r\n", target.local_addr().unwrap());
    let (tx, mut rx) = mpsc::channel(1);
    let reply = Arc::new(response("307 Temporary Redirect", &location, b""));
    let addr = serve(move |mut s| {
        let (reply, tx) = (reply.clone(), tx.clone());
        async move {
            if let Some(head) = read_request(&mut s).await {
                let _ = tx.send(head).await;
                let _ = s.write_all(&reply).await;
            }
        }
    })
    .await;
    let (rec, _) = send(&client(addr, Cfg::default())).await;
    assert_failed(&rec, FailureKind::HttpOther, "HTTP 307: (empty body)");
    assert_eq!(rec.status, Some(307));
    let head = rx.recv().await.unwrap();
    assert!(head.to_lowercase().contains(&format!("authorization: bearer {}", KEY.to_lowercase())), "{head}");
    // The client has returned, so a followed redirect would be in the queue by now.
    assert_eq!(target.accept().map(|_| ()).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
}

/// A TLS server with the self-signed certificate in tests/data/tls (for 127.0.0.1, valid
/// to 2126), answering every request with a whole completion.
async fn tls_server() -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls");
    let cert = CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else { return };
                let mut buf = vec![0u8; 64 * 1024];
                // One read holds the whole small request here.
                if matches!(s.read(&mut buf).await, Ok(1..)) {
                    let body = br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
                    let _ = s.write_all(&response("200 OK", "Content-Type: application/json\r\nConnection: close\r\n", body)).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_unless_insecure() {
    let addr = tls_server().await;
    let (rec, _) = send(&client(addr, Cfg { tls: Some(false), ..Cfg::default() })).await;
    // Untrusted by any store (its words vary with the store: "invalid peer certificate: …").
    assert_failed(&rec, FailureKind::Connect, "TLS handshake: ");
    let (rec, _) = send(&client(addr, Cfg { tls: Some(true), ..Cfg::default() })).await;
    assert_eq!(rec.outcome, Outcome::Ok, "{:?}", rec.detail);
    assert_eq!(rec.usage.and_then(|u| u.completion_tokens), Some(1));
}
