//! Embedded OpenAI-compatible mock server (axum). Every scenario runs against it with
//! no API key and no network.
//!
//! Latency model: the first token comes `base_latency_ms` (± seeded jitter) after
//! arrival plus `per_inflight_ms` for every request in flight at that moment, itself
//! included; each further token `inter_token_ms` later (plus `batch_decode_ms` for every
//! other request running as it is due: a decode step that grows with the batch; 0 by
//! default). Closed-loop N-way load therefore sees about base + N × per_inflight: 82 ms
//! alone, 180 ms at 50-way with the defaults.
//! `latency_curve` replaces the base time with measured (in flight, ms) points — the
//! seed table's own rows — read at arrival and again when that time has passed (the
//! higher wins: a burst is as slow as its size). Prefill adds
//! `prefill_ms_per_1k_tokens` per 1,000 prompt tokens not in the prefix cache (vLLM's:
//! blocks of 16 tokens keyed by a hash chain, in an LRU; `usage.prompt_tokens_details.
//! cached_tokens` says what hit). Streams (`"stream": true`) send one token per SSE
//! chunk at those times; every token is one token of the mock's tokenizer (o200k by
//! default), so `usage` and a client-side count agree. The length is the mock's own,
//! unless the request sets `ignore_eos` (exactly its limit) or `min_tokens`.
//!
//! Faults, to reproduce a failing endpoint (all off by default). Each request gets at
//! most one, from one seeded uniform draw over the cumulative fractions `error_rate`
//! (HTTP 500), `errors` (status → fraction), `malformed_rate`, `disconnect_rate`,
//! `stall_rate` and `drip_rate`, which must sum to at most 1:
//! - status: an OpenAI-style error body after the base latency (± jitter), except 429s,
//!   which come at once as rate limiters answer. With `retry_after_ms`, 429s and 503s
//!   carry `Retry-After` (whole seconds, rounded up) and `retry-after-ms`.
//! - malformed: a 200 whose body is broken: non-stream, the JSON cut in half; stream, a
//!   `data: {"choices": [` line before the middle token, then the rest and `[DONE]` as
//!   usual, so only a client that parses every chunk notices.
//! - disconnect: the connection drops mid-body: non-stream, after half of the
//!   `Content-Length` bytes; stream, before the middle token (no `[DONE]`).
//! - stall: stream, nothing for `stall_ms` after the first content token, then the rest;
//!   non-stream, the headers come `stall_ms` late.
//! - drip: stream, tokens `drip_ms` apart instead of `inter_token_ms`; non-stream, the
//!   body in 16-byte pieces `drip_ms` apart.
//!
//! `rate_limit_rpm` (burst `rate_limit_burst`, default one second's worth) limits
//! requests server-side: over it, an immediate 429 that says when to retry, before the
//! latency model (not in flight, no draw). `GET /mock/stats` (and [`MockServer::stats`])
//! counts requests, plain successes, rate-limited requests and injected faults.
//!
//! Both endpoints are served, `/v1/chat/completions` and `/v1/completions`, streamed or
//! not, with the same latency model and faults. `reasoning_tokens` makes chat replies
//! think first (streamed as `reasoning_content`), and `stream_end` ends streams without
//! `[DONE]` ("finish") or without a finish chunk too ("bare").
//!
//! Images in a prompt cost tokens by OpenAI's tile rule (`images`), added to the
//! prompt's and so to its prefill.
//!
//! Rooms: `config` (the knobs and stats), `curve` (the latency curve), `draw` (each
//! request's random part), `state` (what requests share), `prefix` (the prefix cache),
//! `handler` (the routes), `request` (what a request asks, and its length), `reply`
//! (what an answer says), `deliver` (when and how its bytes go out), `server` (serving
//! it, on a thread of its own when embedded).

pub mod config;
mod curve;
mod deliver;
mod draw;
mod handler;
mod images;
mod metrics;
mod prefix;
mod reply;
mod request;
mod server;
mod state;
mod tools;
mod typed;
mod vectors;

pub use config::{MockConfig, MockStats, StreamEnd, parse_error_flag};
pub use curve::LatencyCurve;
pub use server::{MAX_BODY_BYTES, MockServer, serve, serve_with_tokenizer};
pub use state::SeenRequest;
