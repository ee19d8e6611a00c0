//! The mock's injected faults, checked on the wire with raw HTTP/1.1 over loopback:
//! what a client of a failing endpoint actually receives, and the mock's own counts;
//! and how it models length: prefill, the prefix cache, output lengths asked for, long
//! prompts, the latency curve and another tokenizer.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use llmload::mock::{LatencyCurve, MockConfig, MockServer, MockStats};
use llmload::workload::Tokenizer;
use serde_json::{Value, json};

/// Longest wait for any one read: the slowest reply below takes well under a second.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A fast model: no latency unless a test asks for it.
fn quick() -> MockConfig {
    MockConfig { base_latency_ms: 0.0, per_inflight_ms: 0.0, output_tokens: 8, ..MockConfig::default() }
}

fn start(cfg: MockConfig) -> MockServer {
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    MockServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// One request and everything that came back until the server closed the connection.
struct Exchange {
    /// All bytes received, head included.
    raw: Vec<u8>,
    head_len: usize,
    status: u16,
    headers: Vec<(String, String)>,
    /// (bytes received so far, time since the request was sent) after every read.
    reads: Vec<(usize, Duration)>,
    /// How the connection ended: EOF, or the error (a reset).
    end: Result<(), ErrorKind>,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn body(&self) -> &[u8] {
        &self.raw[self.head_len..]
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| v.parse().unwrap())
    }

    /// The chunked body decoded, and whether its terminating chunk arrived.
    fn dechunked(&self) -> (Vec<u8>, bool) {
        assert_eq!(self.header("transfer-encoding"), Some("chunked"));
        let (mut rest, mut out) = (self.body(), Vec::new());
        loop {
            let Some(eol) = find(rest, b"\r\n") else { return (out, false) };
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                return (out, true);
            }
            let data = &rest[eol + 2..];
            if data.len() < size + 2 {
                out.extend_from_slice(data);
                return (out, false);
            }
            out.extend_from_slice(&data[..size]);
            rest = &data[size + 2..];
        }
    }

    /// When the read that completed the first occurrence of `needle` returned.
    fn time_of(&self, needle: &str) -> Duration {
        let end = find(&self.raw, needle.as_bytes()).unwrap_or_else(|| panic!("{needle:?} never came")) + needle.len();
        self.reads.iter().find(|(n, _)| *n >= end).unwrap().1
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.body()).unwrap()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> Exchange {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = Instant::now();
    s.write_all(req.as_bytes()).unwrap();
    let (mut raw, mut reads, mut buf) = (Vec::new(), Vec::new(), [0u8; 4096]);
    let end = loop {
        match s.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                reads.push((raw.len(), sent.elapsed()));
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!("no byte for {READ_TIMEOUT:?}"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e.kind()),
        }
    };
    let head_len = find(&raw, b"\r\n\r\n").expect("a response head") + 4;
    let head = std::str::from_utf8(&raw[..head_len]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Exchange { raw, head_len, status, headers, reads, end }
}

fn chat(addr: SocketAddr, stream: bool) -> Exchange {
    let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#);
    exchange(addr, "POST", "/v1/chat/completions", &body)
}

/// The mock's counts over HTTP, checked against `MockServer::stats`.
fn stats(mock: &MockServer) -> MockStats {
    let e = exchange(mock.addr, "GET", "/mock/stats", "");
    assert_eq!(e.status, 200);
    let s: MockStats = serde_json::from_slice(e.body()).unwrap();
    assert_eq!(s, mock.stats());
    // The most in flight depends on timing: these tests compare the counts.
    MockStats { most_in_flight: 0, ..s }
}

fn injected(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// `data:` payloads of an SSE body.
fn data_lines(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body).unwrap().lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
}

fn errors(pairs: &[(&str, f64)]) -> std::collections::BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn injected_429s_come_at_once_and_503s_after_the_base_latency_both_saying_when_to_retry() {
    let base = 300.0;
    let mock429 = start(MockConfig { base_latency_ms: base, errors: errors(&[("429", 1.0)]), retry_after_ms: Some(1500.0), ..quick() });
    for stream in [false, true] {
        let e = chat(mock429.addr, stream);
        assert_eq!(e.status, 429);
        assert!(e.time_of("\r\n\r\n") < Duration::from_secs_f64(base / 1000.0), "a 429 waits for no model: {:?}", e.reads);
        assert_eq!((e.header("retry-after"), e.header("retry-after-ms")), (Some("2"), Some("1500")));
        let err = &e.json()["error"];
        assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("requests"), Some("rate_limit_exceeded")), "{err}");
    }
    assert_eq!(
        stats(&mock429),
        MockStats {
            requests: 2,
            ok: 0,
            rate_limited: 0,
            invalid: 0,
            injected: injected(&[("429", 2)]),
            prefix_cache_resets: 0,
            most_in_flight: 0
        }
    );

    let mock503 = start(MockConfig { base_latency_ms: 100.0, errors: errors(&[("503", 1.0)]), retry_after_ms: Some(250.5), ..quick() });
    let e = chat(mock503.addr, false);
    assert_eq!(e.status, 503);
    assert!(e.time_of("\r\n\r\n") >= Duration::from_millis(100));
    assert_eq!((e.header("retry-after"), e.header("retry-after-ms")), (Some("1"), Some("250.5")));
    assert_eq!(e.json()["error"]["type"], "server_error");
    assert!(e.json()["error"]["message"].as_str().unwrap().contains("errors.\"503\""));

    // Other statuses, and error_rate's 500s, carry no retry hint.
    let mock500 = start(MockConfig { error_rate: 0.5, errors: errors(&[("502", 0.5)]), retry_after_ms: Some(10.0), ..quick() });
    let seen: Vec<u16> =
        (0..10).map(|_| chat(mock500.addr, false)).inspect(|e| assert_eq!(e.header("retry-after"), None)).map(|e| e.status).collect();
    assert!(seen.iter().all(|s| [500, 502].contains(s)), "{seen:?}");
    let n500 = seen.iter().filter(|&&s| s == 500).count() as u64;
    assert_eq!(stats(&mock500).injected, injected(&[("500", n500), ("502", 10 - n500)]).into_iter().filter(|(_, n)| *n > 0).collect());
}

#[test]
fn the_rate_limit_lets_the_burst_through_then_says_how_long_to_wait() {
    // 60 a minute is one a second (long enough that a slow machine never sees a slot
    // drain between two requests); three at once.
    let mock = start(MockConfig { rate_limit_rpm: Some(60.0), rate_limit_burst: Some(3.0), ..quick() });
    for _ in 0..3 {
        assert_eq!(chat(mock.addr, false).status, 200);
    }
    let wait_of = |e: &Exchange| {
        assert_eq!(e.status, 429);
        assert_eq!(e.header("retry-after"), Some("1"), "whole seconds, rounded up");
        assert_eq!(e.json()["error"]["code"], "rate_limit_exceeded");
        let ms: u64 = e.header("retry-after-ms").unwrap().parse().unwrap();
        assert!((1..=1000).contains(&ms), "at most one interval: {ms} ms");
        Duration::from_millis(ms)
    };
    // The burst is spent: refused at once (a very slow machine may slip in one more, as
    // a slot drains every second), with the wait to the next slot.
    let mut ok = 3;
    let wait = loop {
        let e = chat(mock.addr, ok % 2 == 0);
        if e.status != 200 {
            break wait_of(&e);
        }
        ok += 1;
        assert!(ok <= 5, "the limit never refused");
    };
    std::thread::sleep(wait);
    assert_eq!(chat(mock.addr, false).status, 200, "the reported wait was enough");
    // That took the slot just freed: the next one waits about a whole interval again.
    wait_of(&chat(mock.addr, false));
    assert_eq!(
        stats(&mock),
        MockStats {
            requests: ok + 3,
            ok: ok + 1,
            rate_limited: 2,
            invalid: 0,
            injected: injected(&[]),
            prefix_cache_resets: 0,
            most_in_flight: 0
        }
    );
}

#[test]
fn malformed_replies_are_not_json() {
    let mock = start(MockConfig { malformed_rate: 1.0, ..quick() });
    let e = chat(mock.addr, false);
    assert_eq!((e.status, e.header("content-type")), (200, Some("application/json")));
    assert_eq!(e.content_length(), Some(e.body().len()), "the whole (broken) body arrived");
    assert!(serde_json::from_slice::<Value>(e.body()).is_err(), "{}", String::from_utf8_lossy(e.body()));

    // Streams: valid chunks, one broken line before the middle token, then the rest.
    let e = chat(mock.addr, true);
    let (body, complete) = e.dechunked();
    assert!(complete);
    let lines = data_lines(&body);
    let bad: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] != "[DONE]" && serde_json::from_str::<Value>(&lines[i]).is_err()).collect();
    assert_eq!(bad.len(), 1, "{lines:?}");
    assert_eq!(lines[bad[0]], r#"{"choices": ["#);
    // Role chunk and 4 of 8 tokens before it; 4 tokens, finish chunk and [DONE] after.
    assert_eq!((bad[0], lines.len()), (5, 12), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        stats(&mock),
        MockStats {
            requests: 2,
            ok: 0,
            rate_limited: 0,
            invalid: 0,
            injected: injected(&[("malformed", 2)]),
            prefix_cache_resets: 0,
            most_in_flight: 0
        }
    );
}

#[test]
fn disconnects_end_the_connection_mid_body() {
    let mock = start(MockConfig { disconnect_rate: 1.0, ..quick() });
    let e = chat(mock.addr, false);
    assert_eq!(e.status, 200);
    let promised = e.content_length().expect("Content-Length of the full body");
    assert!(!e.body().is_empty() && e.body().len() < promised, "{} of {promised} bytes, then {:?}", e.body().len(), e.end);

    let e = chat(mock.addr, true);
    assert_eq!(e.status, 200);
    let (body, complete) = e.dechunked();
    assert!(!complete, "no terminating chunk");
    let lines = data_lines(&body);
    assert!(!lines.iter().any(|l| l == "[DONE]"), "{lines:?}");
    // Role chunk and the first half of the 8 tokens made it.
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(
        stats(&mock),
        MockStats {
            requests: 2,
            ok: 0,
            rate_limited: 0,
            invalid: 0,
            injected: injected(&[("disconnect", 2)]),
            prefix_cache_resets: 0,
            most_in_flight: 0
        }
    );
}

#[test]
fn stalls_hold_the_reply_for_stall_ms() {
    let (stall, inter) = (600u64, 50u64);
    let mock = start(MockConfig { stall_rate: 1.0, stall_ms: stall as f64, inter_token_ms: inter as f64, output_tokens: 4, ..quick() });
    let e = chat(mock.addr, true);
    // Token 1 leaves stall + inter after token 0; the slack is for reading token 0 late
    // on a loaded machine.
    let gap = e.time_of(r#""content":" testing""#) - e.time_of(r#""content":"Load""#);
    assert!(gap >= Duration::from_millis(stall + inter - 200), "gap {gap:?}");
    assert!(gap < Duration::from_secs(3), "gap {gap:?}");
    let (body, complete) = e.dechunked();
    assert!(complete && data_lines(&body).last().is_some_and(|l| l == "[DONE]"), "then the rest");

    // Non-stream: the headers come after the 4 tokens' time (3 gaps) plus the stall.
    let e = chat(mock.addr, false);
    assert_eq!(e.status, 200);
    assert!(e.time_of("\r\n\r\n") >= Duration::from_millis(3 * inter + stall), "{:?}", e.reads);
    assert_eq!(e.json()["choices"][0]["message"]["content"], "Load testing shows where");
    assert_eq!(
        stats(&mock),
        MockStats {
            requests: 2,
            ok: 0,
            rate_limited: 0,
            invalid: 0,
            injected: injected(&[("stall", 2)]),
            prefix_cache_resets: 0,
            most_in_flight: 0
        }
    );
}

#[test]
fn drips_spread_the_reply_over_time() {
    let drip = 40u64;
    let mock = start(MockConfig { drip_rate: 1.0, drip_ms: drip as f64, output_tokens: 6, ..quick() });
    let e = chat(mock.addr, false);
    assert_eq!(e.status, 200);
    let len = e.body().len();
    assert_eq!(e.content_length(), Some(len));
    assert_eq!(e.json()["usage"]["completion_tokens"], 6, "the body is whole");
    // 16-byte pieces, `drip` ms apart from the first; the slack is for reading the first late.
    let pieces = len.div_ceil(16) as u64;
    let body_reads: Vec<Duration> = e.reads.iter().filter(|(n, _)| *n > e.head_len).map(|r| r.1).collect();
    let spread = *body_reads.last().unwrap() - body_reads[0];
    assert!(spread >= Duration::from_millis(drip * (pieces - 1) - 150), "{pieces} pieces over {spread:?}");
    assert!(body_reads.len() >= 5, "{} reads", body_reads.len());

    // Streams: tokens `drip` ms apart instead of inter_token_ms (0 here).
    let drip = 80u64;
    let mock = start(MockConfig { drip_rate: 1.0, drip_ms: drip as f64, output_tokens: 6, ..quick() });
    let e = chat(mock.addr, true);
    let spread = e.time_of(r#""content":" bends""#) - e.time_of(r#""content":"Load""#);
    assert!(spread >= Duration::from_millis(5 * drip - 150), "5 gaps over {spread:?}");
    let token_reads = e.reads.iter().filter(|(n, _)| *n > e.head_len).count();
    assert!(token_reads >= 4, "{token_reads} reads");
}

#[test]
fn stats_match_what_was_seen_on_the_wire_and_the_seed_repeats_it() {
    let cfg = MockConfig {
        seed: 5,
        error_rate: 0.1,
        errors: errors(&[("503", 0.2), ("429", 0.1)]),
        malformed_rate: 0.15,
        disconnect_rate: 0.15,
        retry_after_ms: Some(10.0),
        ..quick()
    };
    let observe = |mock: &MockServer| -> Vec<String> {
        (0..60)
            .map(|_| {
                let e = chat(mock.addr, false);
                if e.status != 200 {
                    e.status.to_string()
                } else if e.body().len() < e.content_length().unwrap() {
                    "disconnect".into()
                } else if serde_json::from_slice::<Value>(e.body()).is_err() {
                    "malformed".into()
                } else {
                    "ok".into()
                }
            })
            .collect()
    };
    let mock = start(cfg.clone());
    let seen = observe(&mock);
    let mut counts = injected(&[]);
    for kind in seen.iter().filter(|k| *k != "ok") {
        *counts.entry(kind.clone()).or_default() += 1;
    }
    assert!(counts.len() >= 4, "a mix of faults: {seen:?}");
    let ok = seen.iter().filter(|k| *k == "ok").count() as u64;
    // A malformed request is refused, counted apart, and draws no fault.
    assert_eq!(exchange(mock.addr, "POST", "/v1/chat/completions", "{not json").status, 400);
    assert_eq!(
        stats(&mock),
        MockStats { requests: 61, ok, rate_limited: 0, invalid: 1, injected: counts, prefix_cache_resets: 0, most_in_flight: 0 }
    );
    // The same seed, the same faults in the same order.
    assert_eq!(observe(&start(cfg)), seen);
}

// ---- Length: prefill, the prefix cache, output lengths, long prompts, the curve ----

/// `n` o200k tokens of one word: each " hello" after the first is one token.
fn hellos(n: usize) -> String {
    let text = format!("hello{}", " hello".repeat(n - 1));
    assert_eq!(Tokenizer::o200k().count(&text), n as u64);
    text
}

fn post(addr: SocketAddr, body: &Value) -> Exchange {
    exchange(addr, "POST", "/v1/chat/completions", &body.to_string())
}

/// A chat request: an optional system prompt, a user message, and `extra` fields.
fn ask(system: Option<&str>, user: &str, extra: Value) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.push(json!({"role": "user", "content": user}));
    let mut body = json!({"model": "m", "messages": messages});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// The time a whole reply took: with one token and no token gap, its first token's time.
fn took(e: &Exchange) -> Duration {
    assert_eq!(e.status, 200, "{}", String::from_utf8_lossy(e.body()));
    e.time_of("\r\n\r\n")
}

/// The fastest of three tries: the model's time with as little of a busy box's noise
/// as three tries leave (the mock never answers early, so the minimum is the closest).
fn fastest(addr: SocketAddr, body: &Value) -> Duration {
    (0..3).map(|_| took(&post(addr, body))).min().unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `(prompt_tokens, cached_tokens)` of a usage object.
fn prompt_usage(u: &Value) -> (u64, u64) {
    (u["prompt_tokens"].as_u64().unwrap(), u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap())
}

/// The usage chunk of a stream that asked for one: the last `data:` line before [DONE].
fn usage_chunk(e: &Exchange) -> Value {
    let (body, complete) = e.dechunked();
    assert!(complete);
    let lines = data_lines(&body);
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
    serde_json::from_str::<Value>(&lines[lines.len() - 2]).unwrap()["usage"].clone()
}

/// One token, no load terms: what is left of the latency is prefill.
fn prefilling(ms_per_1k: f64, cache_blocks: u32) -> MockConfig {
    MockConfig { prefill_ms_per_1k_tokens: ms_per_1k, prefix_cache_blocks: cache_blocks, output_tokens: 1, ..quick() }
}

#[test]
fn prefill_time_grows_with_the_prompt() {
    // 50 ms per 1k tokens, no cache: 2,000 tokens cost 100 ms, 200 cost 10 ms.
    let mock = start(prefilling(50.0, 0));
    let (long, short) = (ask(None, &hellos(2000), json!({})), ask(None, &hellos(200), json!({})));
    assert_eq!(prompt_usage(&post(mock.addr, &long).json()["usage"]), (2000, 0));
    let (t_long, t_short) = (fastest(mock.addr, &long), fastest(mock.addr, &short));
    assert!(t_long >= Duration::from_millis(100) && t_short >= Duration::from_millis(10), "{t_long:?} {t_short:?}");
    let gap = ms(t_long) - ms(t_short);
    assert!((70.0..=150.0).contains(&gap), "90 ms more prefill for 1,800 more tokens, got {gap:.1} ms");
}

#[test]
fn a_shared_system_prompt_is_read_once() {
    let mock = start(prefilling(50.0, 65_536));
    let system = hellos(2000);
    // Cold: all 2,002 tokens are read (100 ms).
    let first = post(mock.addr, &ask(Some(&system), "question one", json!({})));
    assert_eq!(prompt_usage(&first.json()["usage"]), (2002, 0));
    let cold = took(&first);
    assert!(cold >= Duration::from_millis(100), "{cold:?}");
    // Another question after it: the system prompt's 125 blocks of 16 hit, 2 tokens are
    // read (0.1 ms).
    let second = post(mock.addr, &ask(Some(&system), "question two", json!({})));
    assert_eq!(prompt_usage(&second.json()["usage"]), (2002, 2000));
    let warm = took(&second);
    assert!(ms(cold) - ms(warm) >= 70.0, "100 ms less prefill: cold {cold:?}, warm {warm:?}");
    // The same 2,000 tokens alone: all but the block of the last token, which vLLM
    // computes again for its logits.
    assert_eq!(prompt_usage(&post(mock.addr, &ask(None, &system, json!({}))).json()["usage"]), (2000, 1984));
    // A stream's usage chunk says it too; an unrelated prompt does not hit.
    let streamed = json!({"stream": true, "stream_options": {"include_usage": true}});
    assert_eq!(prompt_usage(&usage_chunk(&post(mock.addr, &ask(Some(&system), "question three", streamed.clone())))), (2002, 2000));
    let bye = "bye ".repeat(300);
    let other = ask(Some(&bye), "question one", streamed.clone());
    assert_eq!(prompt_usage(&usage_chunk(&post(mock.addr, &other))), (Tokenizer::o200k().count(&bye) + 2, 0));
    // No cache: never a hit, however often the prompt comes.
    let off = start(prefilling(0.0, 0));
    for _ in 0..2 {
        assert_eq!(prompt_usage(&post(off.addr, &ask(Some(&system), "q", json!({}))).json()["usage"]), (2001, 0));
    }
}

#[test]
fn a_small_cache_forgets_the_least_recent_prompt() {
    let (a, b) = (ask(None, &hellos(2000), json!({})), ask(None, &format!("bye{}", " bye".repeat(1999)), json!({})));
    // Room for 125 blocks: one 2,000-token prompt, not two.
    let mock = start(prefilling(0.0, 125));
    let cached = |body: &Value| prompt_usage(&post(mock.addr, body).json()["usage"]).1;
    assert_eq!((cached(&a), cached(&a)), (0, 1984));
    assert_eq!((cached(&b), cached(&a)), (0, 0), "b pushed a out");
    // Room for 130: b pushes out a's tail first, so a's first 5 blocks still hit.
    let mock = start(prefilling(0.0, 130));
    let cached = |body: &Value| prompt_usage(&post(mock.addr, body).json()["usage"]).1;
    assert_eq!((cached(&a), cached(&b), cached(&a)), (0, 0, 80));
}

/// What a reply said: (completion tokens, words of content, finish_reason).
fn written(e: &Exchange) -> (u64, usize, String) {
    assert_eq!(e.status, 200, "{}", String::from_utf8_lossy(e.body()));
    let v = e.json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let finish = v["choices"][0]["finish_reason"].as_str().unwrap().to_string();
    (v["usage"]["completion_tokens"].as_u64().unwrap(), content.split(' ').count(), finish)
}

#[test]
fn output_lengths_are_the_mocks_own_unless_asked_otherwise() {
    // The mock's own length is 16.
    let mock = start(MockConfig { output_tokens: 16, ..quick() });
    let reply = |extra: Value| written(&post(mock.addr, &ask(None, "hi", extra)));
    // Asking for up to 300 does not make 300: the model ends at its own length.
    assert_eq!(reply(json!({"max_tokens": 300})), (16, 16, "stop".into()));
    assert_eq!(reply(json!({"max_tokens": 10})), (10, 10, "length".into()));
    // ignore_eos: exactly the limit.
    assert_eq!(reply(json!({"max_tokens": 300, "ignore_eos": true})), (300, 300, "length".into()));
    assert_eq!(reply(json!({"max_completion_tokens": 40, "max_tokens": 300, "ignore_eos": true})), (40, 40, "length".into()));
    // min_tokens raises the own length; the limit still caps it.
    assert_eq!(reply(json!({"min_tokens": 40, "max_tokens": 300})), (40, 40, "stop".into()));
    assert_eq!(reply(json!({"min_tokens": 8})), (16, 16, "stop".into()));
    // A stream writes as many chunks as tokens.
    let e = post(mock.addr, &ask(None, "hi", json!({"max_tokens": 120, "ignore_eos": true, "stream": true})));
    let (body, _) = e.dechunked();
    let contents = data_lines(&body).iter().filter(|l| l.contains(r#""content":""#) && !l.contains(r#""content":"""#)).count();
    assert_eq!(contents, 120);
    // vLLM's check: min_tokens may not exceed the limit.
    let e = post(mock.addr, &ask(None, "hi", json!({"min_tokens": 50, "max_tokens": 20})));
    assert_eq!(e.status, 400);
    let err = &e.json()["error"];
    assert_eq!((err["type"].as_str(), err["param"].as_str()), (Some("invalid_request_error"), Some("min_tokens")));
    assert_eq!(err["message"], "min_tokens must be less than or equal to max_tokens=20, got 50.");
}

#[test]
fn a_128k_token_prompt_fits() {
    // 100,000 tokens in 600 KB, answered and counted.
    let mock = start(prefilling(0.0, 65_536));
    let e = post(mock.addr, &ask(None, &" hello".repeat(100_000), json!({})));
    assert_eq!(prompt_usage(&e.json()["usage"]), (100_000, 0));
    // Past axum's 2 MB default (128k tokens of CJK text, JSON-escaped, come close); the
    // first 100,000 tokens are the prompt before.
    let e = post(mock.addr, &ask(None, &" hello".repeat(500_000), json!({})));
    assert_eq!(prompt_usage(&e.json()["usage"]), (500_000, 100_000));
}

#[test]
fn the_latency_curve_sets_the_time_by_load() {
    // 60 ms alone, 300 ms at 4 in flight.
    let curve = LatencyCurve(vec![[1.0, 60.0], [4.0, 300.0]]);
    let mock = start(MockConfig { latency_curve: Some(curve), base_latency_ms: 5000.0, output_tokens: 1, ..quick() });
    let alone = fastest(mock.addr, &ask(None, "hi", json!({})));
    assert!((60.0..=140.0).contains(&ms(alone)), "the curve, not base_latency_ms: {alone:?}");
    // Four at once: each as slow as four in flight, also the first in (a batch of four).
    let times: Vec<Duration> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..4).map(|_| s.spawn(|| took(&post(mock.addr, &ask(None, "hi", json!({})))))).collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(times.iter().all(|t| (300.0..=500.0).contains(&ms(*t))), "{times:?}");
}

#[test]
fn another_tokenizer_counts_prompts_and_replies() {
    let cl100k = Tokenizer::built_in("cl100k_base").unwrap();
    let o200k = Tokenizer::o200k();
    // Text the two encodings split differently.
    let text = "Ünïcödé façade naïveté — 東京都 déjà vu".repeat(20);
    assert_ne!(cl100k.count(&text), o200k.count(&text));
    let mock = MockServer::start_with_tokenizer(quick(), "127.0.0.1:0".parse().unwrap(), cl100k.clone()).unwrap();
    let e = post(mock.addr, &ask(None, &text, json!({"max_tokens": 50, "ignore_eos": true})));
    assert_eq!(prompt_usage(&e.json()["usage"]), (cl100k.count(&text), 0));
    let content = e.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert_eq!((e.json()["usage"]["completion_tokens"].as_u64(), cl100k.count(&content)), (Some(50), 50));
}
