//! `trace = {…}` in `[prompts]` (or a stage's prompts) → a replay: the file read and
//! recorded with its sha256, every bad line named as `file:line: problem`, the cut
//! (`start`, `requests`, `duration`) applied, and what was kept recorded.

use toml::Spanned;

use super::error::Problems;
use super::file::TraceFile;
use crate::model::Api;
use crate::workload::blocks::BlockTexts;
use crate::workload::provenance::TraceUse;
use crate::workload::synth::WordPool;
use crate::workload::trace::{Cut, Format, MAX_BLOCK_TOKENS, Replay, read};
use crate::workload::{Prompts, Tokenizer};

/// Slowest and fastest a trace's clock may run.
pub const MIN_SPEED: f64 = 1e-3;
pub const MAX_SPEED: f64 = 1e4;

/// `speed` checked: a problem (at `span`) when it is out of range.
pub(super) fn check_speed(v: f64, what: &str, span: std::ops::Range<usize>, p: &mut Problems<'_>) -> f64 {
    if !(v.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&v)) {
        p.at(Some(span), format!("{what}: speed must be from {MIN_SPEED} to {MAX_SPEED} (2 = twice as fast), got {v}"));
        return 1.0;
    }
    v
}

/// What a trace is read with: the endpoint, the scenario's folder and tokenizer, the
/// words of its text, and the file's text (read and recorded by the caller).
pub(super) struct TraceCtx<'a> {
    pub api: Api,
    pub base_dir: &'a std::path::Path,
    pub tokenizer: &'a Tokenizer,
    pub pool: Result<std::sync::Arc<WordPool>, String>,
    pub text: String,
}

/// The prompts of a trace, and what was kept of it; None (with problems reported)
/// when it cannot be replayed.
pub(super) fn trace(s: TraceCtx<'_>, t: Spanned<TraceFile>, what: &str, seed: u64, p: &mut Problems<'_>) -> Option<(Prompts, TraceUse)> {
    let span = t.span();
    let t = t.into_inner();
    let format = match t.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
        None | Some(("mooncake", _)) => Format::Mooncake,
        Some(("jsonl", _)) => Format::Jsonl,
        Some((other, at)) => {
            p.at(Some(at), format!("{what}.trace.format must be \"mooncake\" or \"jsonl\", got {other:?}"));
            return None;
        }
    };
    let block_tokens = match &t.block_tokens {
        Some(b) if format == Format::Jsonl => {
            p.at(Some(b.span()), format!("{what}.trace.block_tokens goes with format = \"mooncake\" (its hash_ids)"));
            return None;
        }
        Some(b) if !(1..=MAX_BLOCK_TOKENS).contains(b.get_ref()) => {
            p.at(Some(b.span()), format!("{what}.trace.block_tokens must be from 1 to {MAX_BLOCK_TOKENS}, got {}", b.get_ref()));
            return None;
        }
        Some(b) => *b.get_ref(),
        None => 512,
    };
    let speed = t.speed.as_ref().map_or(1.0, |v| check_speed(*v.get_ref(), &format!("{what}.trace"), v.span(), p));
    if let Some(n) = t.requests.as_ref().filter(|n| *n.get_ref() == 0) {
        p.at(Some(n.span()), format!("{what}.trace.requests must be at least 1"));
    }
    if let Some(d) = t.duration.as_ref().filter(|d| d.get_ref().0.is_zero()) {
        p.at(Some(d.span()), format!("{what}.trace.duration must be greater than zero"));
    }
    let us = |d: &Spanned<super::file::DurationValue>| u64::try_from(d.get_ref().0.as_micros()).unwrap_or(u64::MAX);
    let cut = Cut {
        start_us: t.start.as_ref().map_or(0, us),
        duration_us: t.duration.as_ref().map(us),
        requests: t.requests.as_ref().map(|n| *n.get_ref()),
    };
    let rel = t.file.get_ref().clone();
    let path = s.base_dir.join(&rel);
    let trace = match read(s.api, &s.text, format, block_tokens, s.tokenizer, &cut) {
        Ok(trace) => trace,
        Err(bad) => {
            // Every line's problem, but not a screenful per broken file.
            let shown = bad.len().min(20);
            for (line, msg) in &bad[..shown] {
                p.at(Some(t.file.span()), format!("{what}.trace {}:{line}: {msg}", path.display()));
            }
            if bad.len() > shown {
                p.at(Some(t.file.span()), format!("{what}.trace {}: {} more bad lines", path.display(), bad.len() - shown));
            }
            return None;
        }
    };
    if trace.lines.is_empty() {
        p.at(Some(span), format!("{what}.trace {}: no line is left after `start`, `requests` and `duration`", path.display()));
        return None;
    }
    let pool = match s.pool {
        Ok(pool) => pool,
        Err(msg) => {
            p.at(Some(t.file.span()), msg);
            return None;
        }
    };
    let used = TraceUse {
        path: rel.clone(),
        used_by: what.to_string(),
        format,
        block_tokens,
        speed,
        start_s: cut.start_us as f64 / 1e6,
        span_s: trace.span_us as f64 / 1e6,
        lines_in_file: trace.in_file as u64,
        lines: trace.lines.len() as u64,
        sessions: trace.sessions as u64,
    };
    let source = format!("trace {rel} ({} lines)", trace.lines.len());
    let replay = Replay { trace, texts: BlockTexts::new(pool, seed, block_tokens), speed };
    Some((Prompts::trace(s.api, replay, s.tokenizer.clone(), source), used))
}
