//! The mock's knobs, shared by a scenario's `[mock]` table and `llmload mock` flags:
//! the latency model (with prefill and a prefix cache), completion lengths, capacity,
//! rate limit and injected faults, each checked with a message that names it; and what
//! the mock counts (`MockStats`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::curve::{LatencyCurve, MAX_KNOB_MS};

/// Largest prefix cache: 1M blocks of 16 tokens.
pub const MAX_PREFIX_CACHE_BLOCKS: u32 = 1 << 20;

/// Mock knobs, shared by the scenario's `[mock]` table and `llmload mock` flags.
/// The mock's embeddings' length (a small sentence-embedding model's, all-MiniLM's),
/// and the longest it makes.
pub const DEFAULT_EMBEDDING_DIMS: u32 = 384;
pub const MAX_EMBEDDING_DIMS: u32 = 16_384;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Time every request spends in the server before load-dependent time, in ms.
    pub base_latency_ms: f64,
    /// When set, replaces `base_latency_ms`: ms by requests in flight, interpolated.
    pub latency_curve: Option<LatencyCurve>,
    /// Time to read the prompt: ms per 1,000 prompt tokens not in the prefix cache,
    /// before the first token.
    pub prefill_ms_per_1k_tokens: f64,
    /// Prefix cache size in blocks of 16 prompt tokens (0: no cache).
    pub prefix_cache_blocks: u32,
    /// Extra ms per request in flight (itself included) when the base time has passed.
    pub per_inflight_ms: f64,
    /// Uniform jitter of ± this many ms on the base time, drawn from `seed`.
    pub jitter_ms: f64,
    /// Seed for jitter and injected errors, so runs are reproducible.
    pub seed: u64,
    /// Time between two tokens of a completion, in ms (streamed or not)...
    pub inter_token_ms: f64,
    /// ...plus this many ms for every other request running as the token is due: a
    /// decode step that grows with the batch (0: it does not).
    pub batch_decode_ms: f64,
    /// Completion length in tokens (capped by the request's limit, raised by its
    /// `min_tokens`; with `ignore_eos`, the limit itself)...
    pub output_tokens: u32,
    /// ...or, when set, a length drawn from `output_tokens..=output_tokens_max`.
    pub output_tokens_max: Option<u32>,
    /// Fraction of requests answered with HTTP 500, drawn from `seed`.
    pub error_rate: f64,
    /// Fraction of replies that carry a JSON object with `summary` and `key_points`
    /// (plain, fenced or inside prose); the rest are prose. For response checks.
    pub json_rate: f64,
    /// Fraction of requests answered with each HTTP status (400–599), e.g. `"503" = 0.05`.
    pub errors: BTreeMap<String, f64>,
    /// Injected 429s and 503s say to retry after this many ms.
    pub retry_after_ms: Option<f64>,
    /// Server-side request limit per minute; over it, 429 at once.
    pub rate_limit_rpm: Option<f64>,
    /// Requests the limit lets through at once (default: one second's worth, at least 1).
    pub rate_limit_burst: Option<f64>,
    /// Fraction of 200s whose body is not valid JSON.
    pub malformed_rate: f64,
    /// Fraction of requests whose connection drops mid-body.
    pub disconnect_rate: f64,
    /// Fraction of requests that stall `stall_ms` (streams: after the first token).
    pub stall_rate: f64,
    pub stall_ms: f64,
    /// Fraction of requests that drip: stream tokens, or 16-byte body pieces, `drip_ms` apart.
    pub drip_rate: f64,
    pub drip_ms: f64,
    /// A cold start: in the mock's first `cold_s` seconds a request's first token waits
    /// up to `cold_ms` more, falling linearly to none (a server's cold caches and graph
    /// capture; what `warmup = "auto"` finds).
    pub cold_ms: f64,
    pub cold_s: f64,
    /// Most requests served at once; the rest queue, in arrival order, before the
    /// latency model starts for them (a server's capacity, to make a knee).
    pub capacity: Option<u32>,
    /// A KV-cache budget in tokens: a request holds its prompt and its whole reply while
    /// it runs; one that does not fit waits, in arrival order, until enough is freed
    /// (a server whose KV cache is full queues; the knee of a memory-bound server).
    pub kv_cache_tokens: Option<u64>,
    /// Request number N (from 0, among valid requests) stalls `stall_ms`, once: one
    /// hiccup at a known point, e.g. to show coordinated omission.
    pub stall_once_at: Option<u64>,
    /// Chat replies think first: this many reasoning tokens (`reasoning_content`, and
    /// `completion_tokens_details.reasoning_tokens`) before the answer, at the same pace.
    pub reasoning_tokens: u32,
    /// Embeddings: the vectors' length when a request asks for none (`dimensions`).
    pub embedding_dims: u32,
    /// A chat request that offers tools under `tool_choice = "auto"` (or none) gets a
    /// call this often (0 to 1); `"required"` or a named function always, `"none"` never.
    pub tool_call_rate: f64,
    /// It sees images: false refuses a request that carries one with a 400, as a model
    /// without a vision encoder does.
    pub vision: bool,
    /// How a stream ends: "done" (a finish chunk, then `data: [DONE]`), "finish" (the
    /// finish chunk, no `[DONE]`) or "bare" (neither).
    pub stream_end: StreamEnd,
}

/// How the mock ends a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamEnd {
    #[default]
    Done,
    Finish,
    Bare,
}

impl std::str::FromStr for StreamEnd {
    type Err = String;
    /// The names serde reads, for `llmload mock --stream-end`.
    fn from_str(s: &str) -> Result<StreamEnd, String> {
        use serde::de::IntoDeserializer;
        StreamEnd::deserialize(s.into_deserializer()).map_err(|e: serde::de::value::Error| e.to_string())
    }
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            base_latency_ms: 80.0,
            cold_ms: 0.0,
            cold_s: 0.0,
            latency_curve: None,
            prefill_ms_per_1k_tokens: 0.0,
            prefix_cache_blocks: 65_536,
            per_inflight_ms: 2.0,
            jitter_ms: 0.0,
            seed: 0,
            inter_token_ms: 0.0,
            batch_decode_ms: 0.0,
            output_tokens: 16,
            output_tokens_max: None,
            error_rate: 0.0,
            json_rate: 0.0,
            errors: BTreeMap::new(),
            retry_after_ms: None,
            rate_limit_rpm: None,
            rate_limit_burst: None,
            malformed_rate: 0.0,
            disconnect_rate: 0.0,
            stall_rate: 0.0,
            stall_ms: 30_000.0,
            drip_rate: 0.0,
            drip_ms: 500.0,
            capacity: None,
            kv_cache_tokens: None,
            stall_once_at: None,
            reasoning_tokens: 0,
            embedding_dims: DEFAULT_EMBEDDING_DIMS,
            tool_call_rate: 1.0,
            vision: true,
            stream_end: StreamEnd::Done,
        }
    }
}

impl MockConfig {
    /// Problems with the knobs, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            ("base_latency_ms", self.base_latency_ms),
            ("prefill_ms_per_1k_tokens", self.prefill_ms_per_1k_tokens),
            ("per_inflight_ms", self.per_inflight_ms),
            ("jitter_ms", self.jitter_ms),
            ("inter_token_ms", self.inter_token_ms),
            ("batch_decode_ms", self.batch_decode_ms),
            ("stall_ms", self.stall_ms),
            ("cold_ms", self.cold_ms),
            ("cold_s", self.cold_s),
            ("drip_ms", self.drip_ms),
            ("retry_after_ms", self.retry_after_ms.unwrap_or(0.0)),
        ] {
            if !(v.is_finite() && (0.0..=MAX_KNOB_MS).contains(&v)) {
                out.push(format!("{name} must be between 0 and {MAX_KNOB_MS} (one hour), got {v}"));
            }
        }
        if self.output_tokens > MAX_OUTPUT_TOKENS {
            out.push(format!("output_tokens must be at most {MAX_OUTPUT_TOKENS}, got {}", self.output_tokens));
        }
        if !(0.0..=1.0).contains(&self.tool_call_rate) {
            out.push(format!("tool_call_rate must be between 0 and 1, got {}", self.tool_call_rate));
        }
        if !(1..=MAX_EMBEDDING_DIMS).contains(&self.embedding_dims) {
            out.push(format!("embedding_dims must be from 1 to {MAX_EMBEDDING_DIMS}, got {}", self.embedding_dims));
        }
        if self.reasoning_tokens > MAX_OUTPUT_TOKENS {
            out.push(format!("reasoning_tokens must be at most {MAX_OUTPUT_TOKENS}, got {}", self.reasoning_tokens));
        }
        match self.output_tokens_max {
            Some(m) if m > MAX_OUTPUT_TOKENS => out.push(format!("output_tokens_max must be at most {MAX_OUTPUT_TOKENS}, got {m}")),
            Some(m) if m < self.output_tokens => {
                out.push(format!("output_tokens_max ({m}) must be at least output_tokens ({})", self.output_tokens))
            }
            _ => {}
        }
        // Jitter must never make the time before the first token negative.
        match &self.latency_curve {
            Some(curve) => {
                let problems = curve.problems();
                if problems.is_empty() && self.jitter_ms > curve.min_ms() {
                    out.push(format!("jitter_ms ({}) must not exceed latency_curve's lowest ms ({})", self.jitter_ms, curve.min_ms()));
                }
                out.extend(problems);
            }
            None if self.jitter_ms > self.base_latency_ms => {
                out.push(format!("jitter_ms ({}) must not exceed base_latency_ms ({})", self.jitter_ms, self.base_latency_ms))
            }
            None => {}
        }
        let fractions_before = out.len();
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("json_rate", self.json_rate),
            ("malformed_rate", self.malformed_rate),
            ("disconnect_rate", self.disconnect_rate),
            ("stall_rate", self.stall_rate),
            ("drip_rate", self.drip_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        for (key, &v) in &self.errors {
            if status_key(key).is_none() {
                out.push(format!("errors key {key:?} must be an HTTP status from 400 to 599, e.g. \"503\""));
            }
            if !(0.0..=1.0).contains(&v) {
                out.push(format!("errors.\"{key}\" must be between 0 and 1, got {v}"));
            }
        }
        // The sum only means something once every fraction is valid.
        let total: f64 = self.faults().map(|(_, p)| p).sum();
        if out.len() == fractions_before && total > 1.0 + 1e-9 {
            out.push(format!(
                "error_rate + errors + malformed_rate + disconnect_rate + stall_rate + drip_rate must sum to at most 1 \
                 (one fault per request), got {total}"
            ));
        }
        match self.rate_limit_rpm {
            Some(r) if !(r.is_finite() && r > 0.0) => out.push(format!("rate_limit_rpm must be a positive number, got {r}")),
            None if self.rate_limit_burst.is_some() => out.push("rate_limit_burst needs rate_limit_rpm".to_string()),
            _ => {}
        }
        if let Some(b) = self.rate_limit_burst.filter(|b| !(b.is_finite() && *b >= 1.0)) {
            out.push(format!("rate_limit_burst must be at least 1, got {b}"));
        }
        if self.capacity == Some(0) {
            out.push("capacity must be at least 1".to_string());
        }
        if let Some(n) = self.kv_cache_tokens.filter(|n| !(1..=1 << 40).contains(n)) {
            out.push(format!("kv_cache_tokens must be from 1 to 2^40, got {n}"));
        }
        // The cache's table is sized up front: a bound keeps a typo from taking the memory.
        if self.prefix_cache_blocks > MAX_PREFIX_CACHE_BLOCKS {
            out.push(format!(
                "prefix_cache_blocks must be at most {MAX_PREFIX_CACHE_BLOCKS} (16M tokens), got {}",
                self.prefix_cache_blocks
            ));
        }
        out
    }

    /// Every fault with its fraction, in draw order. Unparsable status keys are skipped
    /// (problems() names them).
    pub(super) fn faults(&self) -> impl Iterator<Item = (Fault, f64)> + '_ {
        let statuses = self.errors.iter().filter_map(|(k, &p)| Some((Fault::Status(status_key(k)?), p)));
        std::iter::once((Fault::Status(500), self.error_rate)).chain(statuses).chain([
            (Fault::Malformed, self.malformed_rate),
            (Fault::Disconnect, self.disconnect_rate),
            (Fault::Stall, self.stall_rate),
            (Fault::Drip, self.drip_rate),
        ])
    }
}

/// An `errors` key as a status: canonical digits in 400..=599, so "503" and "0503" can
/// not both name 503.
fn status_key(key: &str) -> Option<u16> {
    key.parse::<u16>().ok().filter(|s| (400..=599).contains(s) && s.to_string() == key)
}

/// Parses `STATUS=FRACTION` for `llmload mock --error`.
pub fn parse_error_flag(s: &str) -> Result<(String, f64), String> {
    let (status, fraction) = s.split_once('=').ok_or_else(|| format!("expected STATUS=FRACTION, e.g. 503=0.05, got {s:?}"))?;
    let status = status.trim();
    if status_key(status).is_none() {
        return Err(format!("status must be an HTTP status from 400 to 599, got {status:?}"));
    }
    let fraction: f64 = fraction.trim().parse().map_err(|_| format!("fraction must be a number between 0 and 1, got {fraction:?}"))?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(format!("fraction must be between 0 and 1, got {fraction}"));
    }
    Ok((status.to_string(), fraction))
}

/// What the mock did, for `GET /mock/stats` and `MockServer::stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Every `POST /v1/chat/completions`, including rate-limited and invalid ones (400s).
    pub requests: u64,
    /// Valid requests answered without any fault.
    pub ok: u64,
    /// Requests refused by `rate_limit_rpm`.
    pub rate_limited: u64,
    /// Requests refused as malformed (HTTP 400): requests = ok + rate_limited + invalid
    /// + Σ injected.
    #[serde(default)]
    pub invalid: u64,
    /// Injected faults by kind: the status ("500", "503", "429", …), "malformed",
    /// "disconnect", "stall" or "drip". Kinds never injected are absent.
    pub injected: BTreeMap<String, u64>,
    /// `POST /reset_prefix_cache` calls (vLLM's route): each empties the prefix cache.
    #[serde(default)]
    pub prefix_cache_resets: u64,
    /// The most requests it had in flight at once.
    #[serde(default)]
    pub most_in_flight: u64,
}

/// Largest completion the mock writes, so a typo (or a request) cannot exhaust memory.
pub(super) const MAX_OUTPUT_TOKENS: u32 = 100_000;

/// At most one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// An HTTP error status, from `error_rate` (500) or `errors`.
    Status(u16),
    Malformed,
    Disconnect,
    Stall,
    Drip,
}

impl Fault {
    /// Its key in [`MockStats::injected`].
    pub(super) fn key(self) -> String {
        match self {
            Fault::Status(s) => s.to_string(),
            Fault::Malformed => "malformed".into(),
            Fault::Disconnect => "disconnect".into(),
            Fault::Stall => "stall".into(),
            Fault::Drip => "drip".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_model() {
        let c = MockConfig::default();
        assert_eq!((c.base_latency_ms, c.per_inflight_ms), (80.0, 2.0));
        assert!(c.problems().is_empty());
    }

    #[test]
    fn bad_knobs_are_named() {
        let c = MockConfig { error_rate: 1.5, base_latency_ms: -1.0, ..MockConfig::default() };
        let p = c.problems().join("; ");
        assert!(p.contains("error_rate"), "{p}");
        assert!(p.contains("base_latency_ms"), "{p}");
    }

    #[test]
    fn bad_fault_knobs_are_named() {
        let p = |cfg: MockConfig| cfg.problems().join("; ");
        let errors = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let bad_keys =
            p(MockConfig { errors: errors(&[("abc", 0.1), ("600", 0.1), ("0503", 0.1), ("399", 0.1)]), ..MockConfig::default() });
        for key in ["\"abc\"", "\"600\"", "\"0503\"", "\"399\""] {
            assert!(bad_keys.contains(&format!("errors key {key} must be an HTTP status from 400 to 599")), "{bad_keys}");
        }
        let big = p(MockConfig { errors: errors(&[("503", 1.5)]), stall_rate: -0.1, drip_rate: f64::NAN, ..MockConfig::default() });
        for name in
            ["errors.\"503\" must be between 0 and 1, got 1.5", "stall_rate must be between 0 and 1", "drip_rate must be between 0 and 1"]
        {
            assert!(big.contains(name), "{big}");
        }
        assert!(!big.contains("sum"), "no sum while a fraction is itself wrong: {big}");
        let sum = p(MockConfig { error_rate: 0.5, errors: errors(&[("429", 0.3)]), malformed_rate: 0.3, ..MockConfig::default() });
        assert_eq!(
            sum,
            "error_rate + errors + malformed_rate + disconnect_rate + stall_rate + drip_rate must sum to at most 1 (one fault per request), got 1.1"
        );
        // Exactly 1 (in float sums) is fine.
        let one = MockConfig { error_rate: 0.1, errors: errors(&[("503", 0.2)]), drip_rate: 0.7, ..MockConfig::default() };
        assert!(one.problems().is_empty(), "{:?}", one.problems());
        let limits =
            p(MockConfig { rate_limit_burst: Some(0.5), stall_ms: -1.0, retry_after_ms: Some(f64::INFINITY), ..MockConfig::default() });
        for name in [
            "rate_limit_burst needs rate_limit_rpm",
            "rate_limit_burst must be at least 1",
            "stall_ms must be between",
            "retry_after_ms must be between",
        ] {
            assert!(limits.contains(name), "{limits}");
        }
        assert!(
            p(MockConfig { rate_limit_rpm: Some(0.0), ..MockConfig::default() })
                .contains("rate_limit_rpm must be a positive number, got 0")
        );
    }

    #[test]
    fn error_flags_parse_or_say_why() {
        assert_eq!(parse_error_flag("503=0.05"), Ok(("503".to_string(), 0.05)));
        assert_eq!(parse_error_flag(" 429 = 1 "), Ok(("429".to_string(), 1.0)));
        for (bad, why) in [
            ("503", "expected STATUS=FRACTION"),
            ("200=0.1", "status must be an HTTP status from 400 to 599"),
            ("x=0.1", "status must be"),
            ("503=2", "fraction must be between 0 and 1, got 2"),
            ("503=NaN", "fraction must be between 0 and 1"),
            ("503=lots", "fraction must be a number"),
        ] {
            let e = parse_error_flag(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn fault_knobs_round_trip_through_toml() {
        let cfg: MockConfig = toml::from_str(
            "errors = { \"503\" = 0.05, 429 = 0.1 }\nretry_after_ms = 1500\nrate_limit_rpm = 60\nmalformed_rate = 0.1\nstall_ms = 300\n",
        )
        .unwrap();
        assert_eq!(cfg.errors, BTreeMap::from([("429".to_string(), 0.1), ("503".to_string(), 0.05)]));
        assert_eq!((cfg.retry_after_ms, cfg.rate_limit_rpm, cfg.rate_limit_burst), (Some(1500.0), Some(60.0), None));
        assert_eq!((cfg.malformed_rate, cfg.stall_ms, cfg.drip_ms), (0.1, 300.0, 500.0));
        assert!(cfg.problems().is_empty());
    }

    #[test]
    fn length_knobs_are_checked_and_read_from_toml() {
        let cfg: MockConfig = toml::from_str(
            "latency_curve = [[1, 82], [10, 110], [20, 120], [50, 180]]\nprefill_ms_per_1k_tokens = 12.5\nprefix_cache_blocks = 0\njitter_ms = 10\n",
        )
        .unwrap();
        assert_eq!(cfg.latency_curve.as_ref().map(|c| c.at(5.5)), Some(96.0));
        assert_eq!((cfg.prefill_ms_per_1k_tokens, cfg.prefix_cache_blocks), (12.5, 0));
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        assert_eq!(MockConfig::default().prefix_cache_blocks, 65_536);
        let p = |cfg: MockConfig| cfg.problems().join("; ");
        let curve = |points: &[[f64; 2]]| Some(LatencyCurve(points.to_vec()));
        assert_eq!(
            p(MockConfig { prefill_ms_per_1k_tokens: -1.0, ..MockConfig::default() }),
            "prefill_ms_per_1k_tokens must be between 0 and 3600000 (one hour), got -1"
        );
        assert_eq!(
            p(MockConfig { latency_curve: curve(&[]), ..MockConfig::default() }),
            "latency_curve needs at least one [in-flight count, ms] point"
        );
        let unsorted = p(MockConfig { latency_curve: curve(&[[5.0, 1.0], [2.0, 1.0]]), jitter_ms: 3.0, ..MockConfig::default() });
        assert!(unsorted.starts_with("latency_curve points must be sorted"), "{unsorted}");
        assert!(!unsorted.contains("jitter_ms"), "no jitter bound from a wrong curve: {unsorted}");
        // With a curve, jitter is bounded by its lowest point, not base_latency_ms.
        assert_eq!(
            p(MockConfig {
                latency_curve: curve(&[[1.0, 8.0], [4.0, 50.0]]),
                jitter_ms: 9.0,
                base_latency_ms: 100.0,
                ..MockConfig::default()
            }),
            "jitter_ms (9) must not exceed latency_curve's lowest ms (8)"
        );
        assert!(
            p(MockConfig { latency_curve: curve(&[[1.0, 80.0]]), jitter_ms: 9.0, base_latency_ms: 0.0, ..MockConfig::default() })
                .is_empty()
        );
        assert!(toml::from_str::<MockConfig>("latency_curve = [[1, 82, 3]]").is_err(), "a point is two numbers");
    }

    #[test]
    fn huge_knobs_are_refused() {
        let c = MockConfig { base_latency_ms: 1e300, output_tokens: 4_000_000_000, ..MockConfig::default() };
        let p = c.problems().join("; ");
        assert!(p.contains("base_latency_ms must be between 0 and 3600000"), "{p}");
        assert!(p.contains("output_tokens must be at most 100000"), "{p}");
    }
}
