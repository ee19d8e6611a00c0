//! What the mock answers: a completion of one-token words (or a JSON answer), streamed
//! one token per SSE chunk or sent whole, at the latency model's times, with the
//! request's fault (malformed, disconnect, stall, drip) worked into the bytes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::Fault;
use super::draw::Draw;
use super::state::{InFlight, MockState};

/// The completion's words: each, with its leading space, is one o200k token.
const WORDS: [&str; 16] = [
    "Load", " testing", " shows", " where", " latency", " bends", " under", " load", " so", " measure", " first", " then", " tune", " the",
    " pool", " again",
];

/// Token `i` of a completion.
fn word(i: usize) -> &'static str {
    if i == 0 { WORDS[0] } else { WORDS[1 + (i - 1) % (WORDS.len() - 1)] }
}

/// Bytes per piece of a dripped non-stream body.
const DRIP_BYTES: usize = 16;

type Chunk = Result<Bytes, std::io::Error>;

/// A body fed by a writer task. hyper drops what it has buffered when a body fails, so
/// an error is held back one poll (reporting Pending, waking at once): hyper flushes the
/// bytes before it, and a disconnect comes after the data it promised.
fn channel_body() -> (tokio::sync::mpsc::Sender<Chunk>, axum::body::Body) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let mut held: Option<std::io::Error> = None;
    let stream = futures_util::stream::poll_fn(move |cx| {
        if let Some(e) = held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                held = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    });
    (tx, axum::body::Body::from_stream(stream))
}

/// What a completion will say, streamed or not.
pub(super) struct Reply {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    /// The text, one piece per stream chunk.
    pieces: Vec<String>,
    /// Completion tokens for `usage`.
    tokens: u64,
    finish: &'static str,
}

impl Reply {
    fn usage(&self) -> Value {
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": self.tokens, "total_tokens": self.prompt_tokens + self.tokens})
    }

    /// One `chat.completion.chunk` as an SSE event.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        Bytes::from(format!("data: {v}\n\n"))
    }
}

impl Reply {
    /// Request `seq`'s completion: the drawn length of words, capped by `max_tokens`,
    /// or a JSON answer (not capped: its pieces are split at spaces and its usage is
    /// its o200k count).
    pub(super) fn new(seq: u64, d: &Draw, model: String, prompt_tokens: u64, max_tokens: u64) -> Reply {
        let (pieces, tokens, finish) = if d.json {
            let text = json_reply(seq);
            let tokens = crate::workload::tokens::count(&text);
            (split_pieces(&text), tokens, "stop")
        } else {
            let n = u64::from(d.output_tokens).min(max_tokens);
            ((0..n as usize).map(|i| word(i).to_string()).collect(), n, if n == max_tokens { "length" } else { "stop" })
        };
        Reply {
            id: format!("chatcmpl-mock-{seq}"),
            created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            model,
            prompt_tokens,
            pieces,
            tokens,
            finish,
        }
    }
}

/// A whole chat completion, once its last token is due (a stall adds its silence
/// before the headers); malformed, disconnect and drip faults shape its body.
pub(super) async fn whole_reply(
    state: &MockState,
    guard: InFlight,
    reply: Reply,
    arrival: tokio::time::Instant,
    base: f64,
    fault: Option<Fault>,
) -> Response {
    let cfg = &state.cfg;
    sleep_until_ms(arrival, base).await;
    let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
    let stall = if fault == Some(Fault::Stall) { cfg.stall_ms } else { 0.0 };
    sleep_until_ms(arrival, first + cfg.inter_token_ms * reply.pieces.len().saturating_sub(1) as f64 + stall).await;
    let content: String = reply.pieces.concat();
    let body = json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": reply.finish
        }],
        "usage": reply.usage()
    });
    let body = Bytes::from(body.to_string());
    let half = body.slice(..body.len() / 2);
    let headers =
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::CONTENT_LENGTH, HeaderValue::from(body.len()))];
    match fault {
        Some(Fault::Malformed) => ([(header::CONTENT_TYPE, "application/json")], half).into_response(),
        Some(Fault::Disconnect) => {
            let (tx, out) = channel_body();
            tokio::spawn(async move {
                let _guard = guard;
                if tx.send(Ok(half)).await.is_ok() {
                    let _ = tx.send(Err(std::io::Error::other("mock: injected disconnect"))).await;
                }
            });
            (headers, out).into_response()
        }
        Some(Fault::Drip) => {
            let (tx, out) = channel_body();
            let drip_ms = cfg.drip_ms;
            tokio::spawn(async move {
                let _guard = guard;
                let start = tokio::time::Instant::now();
                for (i, piece) in body.chunks(DRIP_BYTES).enumerate() {
                    sleep_until_ms(start, drip_ms * i as f64).await;
                    if tx.send(Ok(body.slice_ref(piece))).await.is_err() {
                        return;
                    }
                }
            });
            (headers, out).into_response()
        }
        _ => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// An SSE stream: the role chunk at once (as real servers do, so TTFT must skip it),
/// one token per chunk at the model's times, the finish chunk, usage if asked, [DONE].
/// A writer task feeds the body; a client that hangs up ends it (and its in-flight count).
/// Malformed and disconnect faults strike before the middle token (`n / 2`).
pub(super) fn stream_reply(
    state: Arc<MockState>,
    guard: InFlight,
    reply: Reply,
    arrival: tokio::time::Instant,
    base: f64,
    include_usage: bool,
    fault: Option<Fault>,
) -> Response {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let _guard = guard;
        let cfg = &state.cfg;
        if tx.send(Ok(reply.chunk(json!({"role": "assistant", "content": ""}), None))).await.is_err() {
            return;
        }
        sleep_until_ms(arrival, base).await;
        let first = base + cfg.per_inflight_ms * state.in_flight.load(Ordering::SeqCst) as f64;
        let gap = if fault == Some(Fault::Drip) { cfg.drip_ms } else { cfg.inter_token_ms };
        let n = reply.pieces.len();
        let cut = n / 2;
        // Token i is due at origin + offset + gap × i; a stall restarts the clock once the
        // first token is out, so the silence is measured from what the client saw.
        let (mut origin, mut offset) = (arrival, first);
        for i in 0..=n {
            if i < n || i == cut {
                sleep_until_ms(origin, offset + gap * i as f64).await;
            }
            if i == cut && fault == Some(Fault::Disconnect) {
                let _ = tx.send(Err(std::io::Error::other("mock: injected disconnect"))).await;
                return;
            }
            if i == cut && fault == Some(Fault::Malformed) && tx.send(Ok(Bytes::from_static(b"data: {\"choices\": [\n\n"))).await.is_err() {
                return;
            }
            let Some(piece) = reply.pieces.get(i) else {
                if n == 0 && fault == Some(Fault::Stall) {
                    // No token to stall after: the silence comes before the finish chunk.
                    sleep_until_ms(tokio::time::Instant::now(), cfg.stall_ms).await;
                }
                break;
            };
            if tx.send(Ok(reply.chunk(json!({"content": piece}), None))).await.is_err() {
                return;
            }
            if i == 0 && fault == Some(Fault::Stall) {
                // Silence from when token 0 left (also before a lone token's finish chunk);
                // token 1 then follows one gap later.
                sleep_until_ms(tokio::time::Instant::now(), cfg.stall_ms).await;
                (origin, offset) = (tokio::time::Instant::now(), 0.0);
            }
        }
        let mut tail = vec![reply.chunk(json!({}), Some(reply.finish))];
        if include_usage {
            let v = json!({
                "id": reply.id, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model,
                "system_fingerprint": null, "choices": [], "usage": reply.usage()
            });
            tail.push(Bytes::from(format!("data: {v}\n\n")));
        }
        tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
        for b in tail {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A JSON answer in one of three wrappings real models use: bare, fenced, in prose.
fn json_reply(seq: u64) -> String {
    let obj = format!(
        r#"{{"summary": "Document {seq} explains where the load test found its limit.", "key_points": ["throughput plateaus", "latency rises with load"]}}"#
    );
    match seq % 3 {
        0 => obj,
        1 => format!("```json\n{obj}\n```"),
        _ => format!("Here is the summary you asked for: {obj} Let me know if you need more."),
    }
}

/// Text cut before each space, so every piece but the first starts with one.
fn split_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(text[start..i].to_string());
            start = i;
        }
    }
    out.push(text[start..].to_string());
    out
}

pub(super) async fn sleep_until_ms(from: tokio::time::Instant, ms: f64) {
    if ms > 0.0 {
        // Saturating: knobs are validated, but an unchecked config must not panic here.
        let d = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
        match from.checked_add(d) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(d).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_replies_pass_checks_and_split_back_whole() {
        let expect = crate::check::Expect::Json { required_keys: vec!["summary".into(), "key_points".into()] };
        for seq in 0..3 {
            let text = json_reply(seq);
            assert_eq!(crate::check::check(&text, &expect), Ok(()), "{text}");
            assert_eq!(split_pieces(&text).concat(), text);
        }
        let prose: String = (0..10).map(word).collect();
        assert!(crate::check::check(&prose, &expect).is_err());
    }

    #[test]
    fn every_word_is_one_token() {
        let text: String = (0..100).map(word).collect();
        assert_eq!(crate::workload::tokens::count(&text), 100, "{text}");
    }
}
