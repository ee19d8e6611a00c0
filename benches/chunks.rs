//! A stream's own cost (not a test): the bodies `benches/vs-oha.sh` serves (31 short
//! chunks; 30 chunks of a code answer full of escapes, with real usage) read as a request
//! reads them — SSE parsed, every chunk read, texts kept, gaps timed — beside two peers in
//! the same rounds: a byte reader that only finds each event's end (the floor: what oha
//! does with a body), and a serde_json `Value` per event (what a reader without a scan
//! pays). ns per stream, medians of alternating rounds. `cargo bench --bench chunks`
//! (`PROFILE=1`: the reader alone, to profile).

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};

/// The code answer of `benches/vs-oha.sh` (the same text, the same 28 pieces).
const CODE: &str = "def parse(line: str) -> dict:\n    \"\"\"Split a \"key=value\" line; values may hold \\t and quotes.\"\"\"\n    key, _, value = line.partition(\"=\")\n    if not key:\n        raise ValueError(f\"no key in {line!r}\")\n    return {key.strip(): value.strip().replace(\"\\\\\", \"\\\\\\\\\")}  # caf\u{e9}\n\nfor row in open(\"data.txt\"):\n\tprint(parse(row))\n";

/// An SSE body of these events, then `[DONE]`. serde_json writes non-ASCII as is where
/// Python's `ensure_ascii` escapes it: the one `é` differs, the cost hardly.
fn body(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn short() -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend((0..28).map(|i| {
        let word = ["hello", " world"][i % 2];
        chunk(json!({"content": word}), Value::Null)
    }));
    events.push(chunk(json!({}), json!("stop")));
    events.push(json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 28, "total_tokens": 29}}));
    body(&events)
}

fn code() -> Vec<u8> {
    let usage = json!({"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908,
                       "prompt_tokens_details": {"cached_tokens": 768}, "completion_tokens_details": {"reasoning_tokens": 0}});
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-9f2c1d", "object": "chat.completion.chunk", "created": 1733000000, "model": "m",
               "system_fingerprint": "fp_44709d6fcb",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let chars: Vec<char> = CODE.chars().collect();
    let step = chars.len().div_ceil(28);
    let mut events = vec![chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null)];
    events.extend(chars.chunks(step).map(|p| chunk(json!({"content": p.iter().collect::<String>()}), Value::Null)));
    events.push(chunk(json!({}), json!("stop")));
    events.push(json!({"id": "chatcmpl-9f2c1d", "object": "chat.completion.chunk", "created": 1733000000, "model": "m",
                       "system_fingerprint": "fp_44709d6fcb", "choices": [], "usage": usage}));
    body(&events)
}

/// The floor: each event's end found, nothing read.
fn bytes_only(body: &[u8]) -> usize {
    memchr::memmem::find_iter(body, b"\n\n").count()
}

/// Each event's data parsed into a `Value` tree.
fn values(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).unwrap();
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap().as_object().map_or(0, |o| o.len()))
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per call of `f` over `n` calls.
fn time(n: u32, mut f: impl FnMut() -> usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    // PROFILE=1: llmload's reader alone, for a while, under `perf record`.
    if std::env::var_os("PROFILE").is_some() {
        let bodies = [short(), code()];
        for _ in 0..200_000 {
            for body in &bodies {
                black_box(llmload::client::read_stream_body(black_box(body)).unwrap());
            }
        }
        return;
    }
    let n = 20_000;
    println!(
        "| body | chunks | llmload (ns/stream) | bytes only | serde Value per event | llmload ns/chunk | llmload / bytes | llmload / Value |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, body) in [("sse", short()), ("ssecode", code())] {
        let chunks = llmload::client::read_stream_body(&body).expect("the body reads");
        let (mut ours, mut floor, mut tree) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..9 {
            ours.push(time(n, || llmload::client::read_stream_body(black_box(&body)).unwrap() as usize));
            floor.push(time(n, || bytes_only(black_box(&body))));
            tree.push(time(n, || values(black_box(&body))));
        }
        let (o, f, t) = (median(ours), median(floor), median(tree));
        println!("| {name} | {chunks} | {o:.0} | {f:.0} | {t:.0} | {:.0} | {:.1}× | {:.2}× |", o / f64::from(chunks), o / f, o / t);
    }
}
