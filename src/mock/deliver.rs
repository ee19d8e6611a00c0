//! When and how a reply goes out: at the latency model's times (base time or curve,
//! load, prefill), the whole body once its last token is due or one stream chunk per
//! token, with the request's fault (malformed, disconnect, stall, drip) worked into the
//! bytes, and the stream's end as configured.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::config::{Fault, MockConfig, StreamEnd};
use super::reply::Reply;
use super::state::{InFlight, MockState};

/// Bytes per piece of a dripped non-stream body.
const DRIP_BYTES: usize = 16;

type Chunk = Result<Bytes, std::io::Error>;

/// When a reply's first token is due: what is known at arrival, settled once the base
/// time has passed.
pub(super) struct Start {
    pub arrival: tokio::time::Instant,
    /// The seeded jitter, ms.
    jitter: f64,
    /// `base_latency_ms`, or `latency_curve` at the count in flight at arrival, plus
    /// jitter: ms from arrival to when the load is read again.
    pub base: f64,
    /// Uncached prompt tokens × `prefill_ms_per_1k_tokens` / 1000.
    pub prefill: f64,
    /// Seconds it waited for a `capacity` slot before arrival (its TTFT's first part).
    queued: f64,
    /// The prompt's tokens and, of them, those its prefix cache held: counted as
    /// prefilled at the first token.
    pub prompt: (u64, u64),
}

impl Start {
    /// `in_flight`: the count at arrival, the request itself included.
    pub fn new(cfg: &MockConfig, arrival: tokio::time::Instant, in_flight: u64, jitter: f64, queued: f64) -> Start {
        let base = cfg.latency_curve.as_ref().map_or(cfg.base_latency_ms, |c| c.at(in_flight as f64));
        Start { arrival, jitter, base: base + jitter, prefill: 0.0, queued, prompt: (0, 0) }
    }

    /// `seconds` more spent waiting (for KV-cache room): the model's clock starts after.
    pub fn wait(&mut self, seconds: f64) {
        self.arrival = tokio::time::Instant::now();
        self.queued += seconds;
    }

    /// The first token's time, in ms after arrival, once the base time has passed: then
    /// the count in flight n is read, and the curve at n counts if higher (a request
    /// that came in a burst is as slow as the burst, as in a server's batch), plus
    /// `per_inflight_ms` × n and the prefill.
    async fn first_token(&self, state: &MockState) -> f64 {
        sleep_until_ms(self.arrival, self.base).await;
        let n = state.in_flight.load(Ordering::SeqCst) as f64;
        let base = state.cfg.latency_curve.as_ref().map_or(self.base, |c| self.base.max(c.at(n) + self.jitter));
        let first = base + state.cfg.per_inflight_ms * n + self.prefill + state.cold_ms(self.arrival.into_std());
        state.metrics.first_token(self.queued + first / 1e3);
        state.metrics.prefilled(self.prompt.0, self.prompt.1);
        first
    }
}

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

/// A whole completion, once its last token is due (a stall adds its silence
/// before the headers); malformed, disconnect and drip faults shape its body.
pub(super) async fn whole_reply(state: &MockState, guard: InFlight, reply: Reply, start: Start, fault: Option<Fault>) -> Response {
    let cfg = &state.cfg;
    let (arrival, first) = (start.arrival, start.first_token(state).await);
    let stall = if fault == Some(Fault::Stall) { cfg.stall_ms } else { 0.0 };
    if cfg.batch_decode_ms > 0.0 {
        // Each step's time is known only when it comes: token by token.
        let mut due = first;
        for _ in 1..reply.pieces.len() {
            due += step_ms(state, cfg.inter_token_ms);
            sleep_until_ms(arrival, due).await;
        }
        sleep_until_ms(arrival, due + stall).await;
    } else {
        sleep_until_ms(arrival, first + cfg.inter_token_ms * reply.pieces.len().saturating_sub(1) as f64 + stall).await;
    }
    let body = super::typed::body(&reply);
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
    start: Start,
    include_usage: bool,
    fault: Option<Fault>,
) -> Response {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let _guard = guard;
        let cfg = &state.cfg;
        if tx.send(Ok(super::typed::chunk(&reply, None, None))).await.is_err() {
            return;
        }
        let (arrival, first) = (start.arrival, start.first_token(&state).await);
        let gap = if fault == Some(Fault::Drip) { cfg.drip_ms } else { cfg.inter_token_ms };
        let n = reply.pieces.len();
        let cut = n / 2;
        // Token i is due a step after token i − 1 (at `due` from `origin`); a stall
        // restarts the clock once the first token is out, so the silence is measured from
        // what the client saw.
        let (mut origin, mut due) = (arrival, first);
        for i in 0..=n {
            if i < n || i == cut {
                if i > 0 {
                    due += step_ms(&state, gap);
                }
                sleep_until_ms(origin, due).await;
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
            if tx.send(Ok(super::typed::chunk(&reply, Some(piece), None))).await.is_err() {
                return;
            }
            if i == 0 && fault == Some(Fault::Stall) {
                // Silence from when token 0 left (also before a lone token's finish chunk);
                // token 1 then follows one gap later.
                sleep_until_ms(tokio::time::Instant::now(), cfg.stall_ms).await;
                (origin, due) = (tokio::time::Instant::now(), 0.0);
            }
        }
        // How the stream ends: a finish chunk and [DONE] as most servers do, or as some
        // proxies and servers do, without [DONE], or without either.
        let mut tail = Vec::new();
        if cfg.stream_end != StreamEnd::Bare {
            tail.push(super::typed::chunk(&reply, None, Some(reply.finish)));
        }
        if include_usage {
            tail.push(super::typed::usage_chunk(&reply));
        }
        // Typed event streams end with their own last event, no [DONE].
        if cfg.stream_end == StreamEnd::Done && !reply.api.typed_events() {
            tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        for b in tail.into_iter().filter(|b| !b.is_empty()) {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// One decode step: `gap`, plus `batch_decode_ms` for every other request running now.
fn step_ms(state: &MockState, gap: f64) -> f64 {
    let batch = state.cfg.batch_decode_ms;
    if batch == 0.0 {
        return gap;
    }
    let running = state.metrics.running(state.in_flight.load(Ordering::SeqCst));
    gap + batch * running.saturating_sub(1) as f64
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
