//! Everything measured in one stage: outcomes, failures by kind, latency histograms,
//! tokens, retries, limiter waits, the open-loop schedule — each request folded in as
//! it arrives, so memory stays flat in the number of requests.

use std::collections::BTreeMap;
use std::time::Duration;

use super::info::{Attempts, StageInfo};
use super::latency::Latency;
use super::lengths::Lengths;
use super::series::Series;
use super::sessions::SessionStats;
use crate::model::{CheckFailure, FailureKind, FinishReason, FinishReasons, Outcome, RequestRecord, Slo, TokenSource, TokenSources};

/// Everything measured in one stage. Warmup requests are counted apart and touch no
/// other figure.
/// Most places a stage's schema-check failures are told apart by.
pub const CHECK_PLACES: usize = 32;

#[derive(Debug, Clone)]
pub struct StageStats {
    pub info: StageInfo,
    /// Measured requests started; equals ok + failed + cancelled once the stage ends.
    pub started: u64,
    /// While the stage runs: requests in flight by the engine's counts (started, not
    /// yet ended), read with `started`.
    pub in_flight_now: Option<u64>,
    pub ok: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub warmup_done: u64,
    /// Requests sent after the window while its last ones ended (outside the figures).
    pub cooldown_done: u64,
    pub failures: BTreeMap<FailureKind, u64>,
    /// First explanation seen per failure kind, to tell the user *why*.
    pub failure_examples: BTreeMap<FailureKind, Box<str>>,
    pub status_codes: BTreeMap<u16, u64>,
    /// End-to-end latency of successful requests.
    pub latency: Latency,
    /// Streams: time to first content chunk of successful requests.
    pub ttft: Latency,
    /// Streams: per-request inter-token latency, (e2e − TTFT) / (output tokens − 1).
    pub itl: Latency,
    /// Streams: every gap between two content chunks.
    pub chunk_gap: Latency,
    /// TTFT of streams that failed after their first token (kept apart).
    pub partial_ttft: Latency,
    /// Streams: time to the first answer (`content`) token, reasoning before it included.
    pub ttft_answer: Latency,
    /// Streams that reasoned: first reasoning token → first answer token.
    pub thinking: Latency,
    /// Of the output tokens, the reasoning's: the server's count where sent, else here.
    pub reasoning_tokens: u64,
    /// Successful streams that ended after a `finish_reason` without `[DONE]`.
    pub streams_without_done: u64,
    /// Requests sent again on a new connection after their reused one ended unanswered.
    pub reconnects: u64,
    /// From the server's `usage`.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Successful requests whose response carried `usage`.
    pub with_usage: u64,
    /// Multi-turn sessions, when a conversation runs.
    pub sessions: SessionStats,
    /// A task stage's tasks, once one has ended.
    pub tasks: Option<Box<super::tasks::TaskStats>>,
    /// Successful requests whose usage said `cached_tokens`: how many, the cached
    /// tokens, and the prompt tokens they were of.
    pub with_cached: u64,
    pub cached_tokens: u64,
    pub cached_of: u64,
    /// Counted here (o200k), where counted.
    pub client_prompt_tokens: u64,
    pub client_completion_tokens: u64,
    /// Requests where the server's usage and the count here differ.
    pub prompt_disagree: u64,
    pub completion_disagree: u64,
    /// Requests where both the server's and the count here exist (what the two above
    /// are out of): none, and a disagreement is not known, not 0.
    pub prompt_compared: u64,
    pub completion_compared: u64,
    /// Output tokens of successful requests: usage where sent, else the count here.
    pub output_tokens: u64,
    /// Prompt tokens of successful requests, on the same rule (for cost).
    pub input_tokens: u64,
    /// Successful requests: tokens sent (counting tokenizer) and received (usage where
    /// sent, else counted here), as distributions.
    pub input_len: Lengths,
    pub output_len: Lengths,
    /// Successful requests with an output target: the targets, and how many replies
    /// ended before theirs.
    pub target_output: Lengths,
    /// Output lengths of the replies to those requests.
    pub target_achieved: Lengths,
    pub ended_short: u64,
    /// Of the replies with a target, those judged by their `finish_reason` (`length`
    /// met the target, any other reason ended short); the rest by their count.
    pub ended_by_reason: u64,
    /// Successful replies by why they ended.
    pub finish_reasons: FinishReasons,
    /// Successful requests by where their output and input counts came from.
    pub output_sources: TokenSources,
    pub input_sources: TokenSources,
    /// Σ output tokens / e2e seconds over successful requests (mean per-user speed).
    pub user_tokens_per_s_sum: f64,
    /// Σ 1 / ITL seconds over successful streams with an ITL: the decode speed one user
    /// sees once tokens flow (AIPerf's "output token throughput per user").
    pub user_itl_rate_sum: f64,
    /// Successful requests that met every SLO (when the scenario sets one).
    pub slo_met: u64,
    /// Response checks: passed, and failed by reason.
    pub checks_passed: u64,
    pub checks_failed: BTreeMap<CheckFailure, u64>,
    /// Schema checks' failures by where (at most [`CHECK_PLACES`], the rest "other").
    pub check_where: BTreeMap<Box<str>, u64>,
    pub bytes_received: u64,
    /// Every attempt's own latency, failed ones and retries included.
    pub attempt_latency: Latency,
    /// Attempts sent (≥ requests finished: retries add to it).
    pub attempts: u64,
    /// Requests sent more than once, and those of them that ended ok.
    pub retried: u64,
    pub recovered: u64,
    /// Retries by the failure that caused them.
    pub retries_by_cause: BTreeMap<FailureKind, u64>,
    /// Retries that waited the server's Retry-After.
    pub retry_after_waits: u64,
    /// Retries the policy called for that a stop prevented.
    pub retries_not_sent: u64,
    /// Requests the client-side rate limiter held back, and how long (each request's sum).
    pub limited: u64,
    pub limiter_wait: Latency,
    /// Measured window: first measured request sent → last one finished.
    pub wall: Duration,
    /// When the window opened, on the wall clock.
    pub window_opened: Option<std::time::SystemTime>,
    /// When it opened, counted from the stage's start (its per-second series' zero).
    pub window_offset: Option<Duration>,
    pub finished: bool,
    /// Stopped early (Ctrl-C): figures cover only what ran.
    pub interrupted: bool,
    /// Cut short by `abort_on_error_rate`.
    pub aborted: bool,
    /// Open loop: arrivals due in the window that found no free slot before it closed.
    pub unsent: u64,
    /// Open loop, live: how long the arrival waiting for a free slot has been due
    /// (zero when none waits); the dashboard warns from it before the stage ends.
    pub behind: Duration,
    /// Open loop, once the stage has ended: (first → last dispatch, first → last
    /// arrival due, the unsent included).
    pub schedule: Option<(Duration, Duration)>,
    /// Open loop: e2e of successful requests from their actual send, beside `latency`
    /// (which counts from the scheduled start).
    pub latency_uncorrected: Latency,
    /// Open loop: first send − scheduled start, every request sent.
    pub schedule_lag: Latency,
    /// Per-second figures since the stage started, warmup included.
    pub series: Series,
    /// Embeddings' inputs and rerank's documents, and latency by their count.
    pub items: super::Items,
    /// The tool calls replies made.
    pub tools: super::ToolStats,
    pub images: super::images::ImageStats,
}

impl Default for StageStats {
    fn default() -> Self {
        Self {
            info: StageInfo::default(),
            started: 0,
            in_flight_now: None,
            ok: 0,
            failed: 0,
            cancelled: 0,
            warmup_done: 0,
            cooldown_done: 0,
            failures: BTreeMap::new(),
            failure_examples: BTreeMap::new(),
            status_codes: BTreeMap::new(),
            latency: Latency::default(),
            ttft: Latency::default(),
            itl: Latency::default(),
            chunk_gap: Latency::default(),
            partial_ttft: Latency::default(),
            ttft_answer: Latency::default(),
            thinking: Latency::default(),
            reasoning_tokens: 0,
            streams_without_done: 0,
            reconnects: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            with_usage: 0,
            sessions: SessionStats::default(),
            tasks: None,
            with_cached: 0,
            cached_tokens: 0,
            cached_of: 0,
            client_prompt_tokens: 0,
            client_completion_tokens: 0,
            prompt_disagree: 0,
            completion_disagree: 0,
            prompt_compared: 0,
            completion_compared: 0,
            output_tokens: 0,
            input_tokens: 0,
            input_len: Lengths::default(),
            output_len: Lengths::default(),
            target_output: Lengths::default(),
            target_achieved: Lengths::default(),
            ended_short: 0,
            ended_by_reason: 0,
            finish_reasons: FinishReasons::default(),
            output_sources: TokenSources::default(),
            input_sources: TokenSources::default(),
            user_tokens_per_s_sum: 0.0,
            user_itl_rate_sum: 0.0,
            slo_met: 0,
            checks_passed: 0,
            checks_failed: BTreeMap::new(),
            check_where: BTreeMap::new(),
            bytes_received: 0,
            // 1 %: these are the second view of a latency, kept small for snapshots.
            attempt_latency: Latency::default(),
            attempts: 0,
            retried: 0,
            recovered: 0,
            retries_by_cause: BTreeMap::new(),
            retry_after_waits: 0,
            retries_not_sent: 0,
            limited: 0,
            limiter_wait: Latency::default(),
            wall: Duration::ZERO,
            window_opened: None,
            window_offset: None,
            finished: false,
            interrupted: false,
            aborted: false,
            unsent: 0,
            behind: Duration::ZERO,
            schedule: None,
            latency_uncorrected: Latency::default(),
            schedule_lag: Latency::default(),
            series: Series::default(),
            items: super::Items::default(),
            tools: super::ToolStats::default(),
            images: Default::default(),
        }
    }
}

impl StageStats {
    pub fn new(info: StageInfo) -> Self {
        Self { info, ..Self::default() }
    }

    pub fn record(&mut self, rec: &RequestRecord) {
        if let Some(s) = rec.status {
            *self.status_codes.entry(s).or_insert(0) += 1;
        }
        self.bytes_received += rec.bytes;
        self.reconnects += u64::from(rec.reconnected);
        if let Some(turn) = rec.turn {
            self.sessions.record(turn, rec);
        }
        if let Some(t) = rec.task.filter(|_| rec.outcome == Outcome::Ok) {
            self.tasks.get_or_insert_with(Default::default).request(t.step, rec.latency, rec.ttft);
        }
        match rec.outcome {
            Outcome::Ok => {
                self.ok += 1;
                self.latency.record(rec.latency);
                if let Some(n) = rec.items {
                    self.items.record(n, rec.latency);
                }
                self.tools.record(rec);
                self.images.record(rec);
                let out = output_tokens(rec);
                self.record_tokens(rec, out);
                // ITL: defined for streams of 2+ tokens.
                let itl = rec.itl(out);
                if let Some(ttft) = rec.ttft {
                    self.ttft.record(ttft);
                }
                if let Some(answer) = rec.ttft_answer {
                    self.ttft_answer.record(answer);
                    // Thinking is the reasoning before the answer, none when it came after.
                    if let Some(thought) = rec.first_reasoning.filter(|t| *t <= answer) {
                        self.thinking.record(answer - thought);
                    }
                }
                self.streams_without_done += u64::from(rec.without_done);
                if let Some(itl) = itl {
                    self.itl.record(itl);
                    if !itl.is_zero() {
                        self.user_itl_rate_sum += 1.0 / itl.as_secs_f64();
                    }
                }
                for g in &rec.gaps_us {
                    self.chunk_gap.record(Duration::from_micros(u64::from(*g)));
                }
                if let Some(slo) = &self.info.slo {
                    self.slo_met += u64::from(slo.met(rec.latency, rec.ttft, itl));
                }
                match rec.check {
                    Some(Ok(())) => self.checks_passed += 1,
                    Some(Err(why)) => {
                        *self.checks_failed.entry(why).or_insert(0) += 1;
                        if let Some(at) = &rec.check_where {
                            let known = self.check_where.contains_key(at) || self.check_where.len() < CHECK_PLACES;
                            *self.check_where.entry(if known { at.clone() } else { "other".into() }).or_insert(0) += 1;
                        }
                    }
                    None => {}
                }
            }
            Outcome::Failed(kind) => {
                self.failed += 1;
                if let Some(ttft) = rec.ttft {
                    self.partial_ttft.record(ttft);
                }
                *self.failures.entry(kind).or_insert(0) += 1;
                if let Some(d) = &rec.detail {
                    self.failure_examples.entry(kind).or_insert_with(|| d.clone());
                }
            }
            Outcome::Cancelled => self.cancelled += 1,
        }
    }

    /// Retries and rate-limiter waits of a measured request (its outcome is in `record`).
    /// Every attempt sent counts (a cancelled one too): attempts = ok + failed +
    /// cancelled + retries. Only attempts that ended have a latency.
    pub fn record_attempts(&mut self, rec: &RequestRecord, a: &Attempts) {
        self.attempts += 1 + a.earlier.len() as u64;
        for f in &a.earlier {
            self.attempt_latency.record(f.latency);
            *self.retries_by_cause.entry(f.kind).or_insert(0) += 1;
            // Every attempt's status: the 429s a retried request met show here too.
            if let Some(s) = f.status {
                *self.status_codes.entry(s).or_insert(0) += 1;
            }
        }
        if rec.outcome != Outcome::Cancelled {
            self.attempt_latency.record(a.last);
        }
        if !a.earlier.is_empty() {
            self.retried += 1;
            self.recovered += u64::from(rec.outcome == Outcome::Ok);
        }
        if let Some(lag) = a.lag {
            self.schedule_lag.record(lag);
            if rec.outcome == Outcome::Ok {
                self.latency_uncorrected.record(rec.latency.saturating_sub(lag));
            }
        }
        self.retry_after_waits += u64::from(a.retry_after_waits);
        self.retries_not_sent += u64::from(a.retry_not_sent);
        if a.limited {
            self.limited += 1;
            self.limiter_wait.record(a.limiter_wait);
        }
    }

    /// Retries sent, all causes.
    pub fn retries(&self) -> u64 {
        self.retries_by_cause.values().sum()
    }

    /// Token sums: the server's usage and the counts made here, each field by itself;
    /// output and input take the server's figure where sent, else the count here.
    fn record_tokens(&mut self, rec: &RequestRecord, out: u64) {
        let (up, uc) = rec.usage.map_or((None, None), |u| (u.prompt_tokens, u.completion_tokens));
        if rec.usage.is_some() {
            self.with_usage += 1;
        }
        self.prompt_tokens = self.prompt_tokens.saturating_add(up.unwrap_or(0));
        if let Some((cached, of)) = rec.usage.and_then(|u| u.cached_tokens.zip(u.prompt_tokens)) {
            self.with_cached += 1;
            self.cached_tokens = self.cached_tokens.saturating_add(cached);
            self.cached_of = self.cached_of.saturating_add(of);
        }
        self.completion_tokens = self.completion_tokens.saturating_add(uc.unwrap_or(0));
        // Images cost the server tokens no text count sees: such prompts are not compared.
        let client_prompt = rec.client_prompt_tokens.filter(|_| rec.media.is_none_or(|m| m.images == 0));
        self.prompt_disagree += u64::from(up.zip(client_prompt).is_some_and(|(u, c)| u != c));
        self.completion_disagree += u64::from(uc.zip(rec.client_completion_tokens).is_some_and(|(u, c)| u != c));
        self.prompt_compared += u64::from(up.is_some() && client_prompt.is_some());
        self.completion_compared += u64::from(uc.is_some() && rec.client_completion_tokens.is_some());
        self.client_prompt_tokens = self.client_prompt_tokens.saturating_add(rec.client_prompt_tokens.unwrap_or(0));
        self.client_completion_tokens = self.client_completion_tokens.saturating_add(rec.client_completion_tokens.unwrap_or(0));
        self.input_tokens = self.input_tokens.saturating_add(up.or(rec.client_prompt_tokens).unwrap_or(0));
        self.output_tokens = self.output_tokens.saturating_add(out);
        if let Some(n) = rec.input_tokens.or(up) {
            self.input_len.record(n);
        }
        self.output_len.record(out);
        self.finish_reasons.record(rec.finish_reason);
        if let Some(src) = output_source(rec) {
            self.output_sources.record(src);
        }
        if let Some(src) = input_source(rec) {
            self.input_sources.record(src);
        }
        if let Some(target) = rec.target_output_tokens {
            self.target_output.record(u64::from(target));
            self.target_achieved.record(out);
            // The server's word where it gave one: a count made here, in another
            // tokenizer than the model's, can read short of a reply the limit ended.
            let short = match rec.finish_reason {
                Some(why) => why != FinishReason::Length,
                None => out < u64::from(target),
            };
            self.ended_short += u64::from(short);
            self.ended_by_reason += u64::from(rec.finish_reason.is_some());
        }
        // The server's count, unless it says 0 (a placeholder some send) where reasoning
        // text came: then the count here.
        let reasoning = rec.usage.and_then(|u| u.reasoning_tokens).filter(|&n| n > 0).or(rec.client_reasoning_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(reasoning.unwrap_or(0));
        let secs = rec.latency.as_secs_f64();
        if secs > 0.0 {
            self.user_tokens_per_s_sum += out as f64 / secs;
        }
    }

    /// Of the prompt tokens of requests that said, the share the server's cache held.
    pub fn cached_share(&self) -> Option<f64> {
        (self.cached_of > 0).then(|| self.cached_tokens as f64 / self.cached_of as f64)
    }

    /// Mean output tokens/s one user sees: output tokens / e2e, averaged over requests.
    pub fn tokens_per_s_per_user(&self) -> f64 {
        if self.ok == 0 { 0.0 } else { self.user_tokens_per_s_sum / self.ok as f64 }
    }

    /// Mean over successful streams of 1 / ITL: tokens/s one user sees while its reply
    /// streams, TTFT left out. None without streams of two tokens or more.
    pub fn itl_tokens_per_s_per_user(&self) -> Option<f64> {
        let n = self.itl.count();
        (n > 0).then(|| self.user_itl_rate_sum / n as f64)
    }

    /// Requests that ended (ok, failed or cancelled).
    pub fn done(&self) -> u64 {
        self.ok + self.failed + self.cancelled
    }

    /// Requests in flight: the engine's live count while the stage runs, else what
    /// was started and not taken in.
    pub fn in_flight(&self) -> u64 {
        self.in_flight_now.unwrap_or_else(|| self.started.saturating_sub(self.done()))
    }

    /// Finished requests (ok + failed) per second of the measured window.
    pub fn requests_per_s(&self) -> f64 {
        per_s(self.ok + self.failed, self.wall)
    }

    pub fn ok_per_s(&self) -> f64 {
        per_s(self.ok, self.wall)
    }

    pub fn output_tokens_per_s(&self) -> f64 {
        per_s(self.output_tokens, self.wall)
    }

    pub fn input_tokens_per_s(&self) -> f64 {
        per_s(self.input_tokens, self.wall)
    }

    /// Embeddings' inputs or rerank's documents of successful requests per second.
    pub fn items_per_s(&self) -> f64 {
        per_s(self.items.total, self.wall)
    }

    /// Share of successful requests with a target whose reply ended before it.
    pub fn ended_short_share(&self) -> Option<f64> {
        let n = self.target_output.count();
        (n > 0).then(|| self.ended_short as f64 / n as f64)
    }

    /// Successful requests meeting every SLO per second of the measured window.
    pub fn goodput(&self) -> Option<f64> {
        self.info.slo.filter(Slo::for_requests).map(|_| per_s(self.slo_met, self.wall))
    }

    /// With `[slo]`: the share of finished requests (ok or failed) meeting every
    /// objective, by which a sweep point is judged.
    pub fn slo_share(&self) -> Option<f64> {
        let n = self.ok + self.failed;
        self.info.slo.filter(Slo::for_requests).map(|_| if n == 0 { 0.0 } else { self.slo_met as f64 / n as f64 })
    }

    /// What a sweep judges the stage by: successful requests per second and the share
    /// meeting the SLO; a task stage's answered tasks per second and the share of
    /// ended tasks within `task_ms`.
    pub fn judged(&self) -> (f64, Option<f64>) {
        if self.info.task.is_none() {
            return (self.ok_per_s(), self.slo_share());
        }
        let slo = self.info.slo.filter(|s| s.task.is_some());
        match &self.tasks {
            Some(t) => {
                let n = t.ok + t.failed;
                (per_s(t.ok, self.wall), slo.map(|_| if n == 0 { 0.0 } else { t.slo_met as f64 / n as f64 }))
            }
            None => (0.0, slo.map(|_| 0.0)),
        }
    }

    pub fn error_rate(&self) -> f64 {
        let n = self.ok + self.failed;
        if n == 0 { 0.0 } else { self.failed as f64 / n as f64 }
    }
}

/// Where a request's output count comes from: the server's usage where sent; else, for
/// a stream not counted in the model's own tokenizer (an estimate, or not counted yet:
/// the server's tokenizer is asked after the window), its content chunks, one token
/// each; else the count made here, in the tokenizer that made it.
pub fn output_source(rec: &RequestRecord) -> Option<TokenSource> {
    if rec.usage.is_some_and(|u| u.completion_tokens.is_some()) {
        return Some(TokenSource::Usage);
    }
    if rec.chunks > 0 && !rec.counted_by.is_some_and(TokenSource::is_models) {
        return Some(TokenSource::Chunks);
    }
    rec.counted_by.filter(|_| rec.client_completion_tokens.is_some())
}

/// A request's output tokens, from [`output_source`].
pub fn output_tokens(rec: &RequestRecord) -> u64 {
    match output_source(rec) {
        Some(TokenSource::Usage) => rec.usage.and_then(|u| u.completion_tokens).unwrap_or(0),
        Some(TokenSource::Chunks) => u64::from(rec.chunks),
        _ => rec.client_completion_tokens.unwrap_or(0),
    }
}

/// Where a request's input count comes from: the server's usage where sent, else the
/// tokenizer that counted the prompt.
pub fn input_source(rec: &RequestRecord) -> Option<TokenSource> {
    match rec.usage.and_then(|u| u.prompt_tokens) {
        Some(_) => Some(TokenSource::Usage),
        None => rec.input_by.filter(|_| rec.input_tokens.or(rec.client_prompt_tokens).is_some()),
    }
}

fn per_s(n: u64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    fn rec(outcome: Outcome, ms: u64) -> RequestRecord {
        RequestRecord {
            outcome,
            latency: Duration::from_millis(ms),
            status: Some(200),
            bytes: 10,
            usage: Some(Usage { prompt_tokens: Some(3), completion_tokens: Some(5), reasoning_tokens: None, cached_tokens: None }),
            detail: Some("why".into()),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn output_counts_come_from_usage_then_chunks_unless_counted_in_the_models_tokens() {
        let usage = |n| Some(Usage { prompt_tokens: Some(3), completion_tokens: n, reasoning_tokens: None, cached_tokens: None });
        let r = |usage, chunks, counted_by| RequestRecord {
            usage,
            chunks,
            client_completion_tokens: Some(7),
            counted_by,
            ..RequestRecord::default()
        };
        let cases = [
            (r(usage(Some(5)), 9, Some(TokenSource::Estimate)), Some(TokenSource::Usage), 5),
            // A stream counted in another model's tokens, or not counted yet: its chunks.
            (r(usage(None), 9, Some(TokenSource::Estimate)), Some(TokenSource::Chunks), 9),
            (r(None, 9, None), Some(TokenSource::Chunks), 9),
            // In the model's own tokens: that count.
            (r(None, 9, Some(TokenSource::ServerTokenizer)), Some(TokenSource::ServerTokenizer), 7),
            (r(None, 9, Some(TokenSource::LocalTokenizer)), Some(TokenSource::LocalTokenizer), 7),
            // A whole reply has no chunks: the estimate, said to be one.
            (r(None, 0, Some(TokenSource::Estimate)), Some(TokenSource::Estimate), 7),
        ];
        for (rec, source, n) in cases {
            assert_eq!((output_source(&rec), output_tokens(&rec)), (source, n), "{rec:?}");
        }
        let mut s = StageStats::default();
        for rec in [r(usage(Some(5)), 9, None), r(None, 9, None)] {
            s.record(&RequestRecord { input_tokens: Some(4), input_by: Some(TokenSource::ServerTokenizer), ..rec });
        }
        assert_eq!((s.output_sources.usage, s.output_sources.chunks, s.output_tokens), (1, 1, 14));
        assert_eq!((s.input_sources.usage, s.input_sources.server_tokenizer), (1, 1));
    }

    #[test]
    fn every_latency_of_a_stage_keeps_three_digits() {
        let s = StageStats::default();
        let all = [
            &s.latency,
            &s.ttft,
            &s.itl,
            &s.chunk_gap,
            &s.partial_ttft,
            &s.ttft_answer,
            &s.thinking,
            &s.attempt_latency,
            &s.limiter_wait,
            &s.latency_uncorrected,
            &s.schedule_lag,
        ];
        assert!(all.iter().all(|l| l.histogram().sigfig() == 3), "docs/metrics.md promises 0.1 %");
    }

    #[test]
    fn outcomes_are_counted_apart_and_failures_by_kind() {
        let mut s = StageStats { started: 4, ..StageStats::default() };
        s.record(&rec(Outcome::Ok, 100));
        s.record(&rec(Outcome::Failed(FailureKind::Http429), 5));
        s.record(&rec(Outcome::Failed(FailureKind::Http429), 5));
        s.record(&rec(Outcome::Cancelled, 1));
        assert_eq!((s.ok, s.failed, s.cancelled, s.in_flight()), (1, 2, 1, 0));
        assert_eq!(s.failures[&FailureKind::Http429], 2);
        assert_eq!(s.latency.count(), 1, "only successful requests enter latency");
        assert_eq!((s.prompt_tokens, s.completion_tokens, s.with_usage), (3, 5, 1));
    }
}
