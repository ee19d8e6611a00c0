//! One request from start to record: a rate-limiter slot, its attempts (retries with
//! their waits), its timing from the schedule (open loop) and its check, then the one
//! RequestRecord it leaves, sent to the aggregator.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::phase::Phase;
use super::retry;
use crate::client::Client;
use crate::metrics::{Attempts, EngineEvent, FailedAttempt, Part};
use crate::model::{Outcome, RequestRecord, RequestSpec};

/// Sends request `i` (retries included) and hands its record on. `due`: the open
/// loop's scheduled start, from which its latency then counts. False when it was not
/// started (no limiter slot before the deadline, or a stop) or the run is over.
pub(super) async fn run_one(p: &Phase, i: u64, due: Option<Instant>) -> bool {
    let spec = spec(p, i).await;
    run_spec(p, i, spec, due).await
}

/// [`run_one`] with request `i` built already (ahead of its due time).
pub(super) async fn run_spec(p: &Phase, i: u64, spec: RequestSpec, due: Option<Instant>) -> bool {
    run_turn(p, i, spec, due).await.0
}

/// A successful reply's answer text and length, for a conversation's history.
pub(super) struct Answer {
    pub text: String,
    pub tokens: u64,
}

/// [`run_spec`], also giving back the reply's answer when it succeeded (the client
/// keeps answers when a conversation runs).
pub(super) async fn run_turn(p: &Phase, i: u64, spec: RequestSpec, due: Option<Instant>) -> (bool, Option<Answer>) {
    let ended = run_request(p, i, spec, due, None).await;
    (ended.going_on, ended.answer)
}

/// How a request ended, for a task that adds its requests up.
pub(super) struct Ended {
    /// False when it was not started, or the run is over.
    pub going_on: bool,
    pub answer: Option<Answer>,
    /// Its outcome; None when it was never sent.
    pub outcome: Option<Outcome>,
    /// Prompt and completion tokens (the server's usage, else the client's counts).
    pub tokens: (u64, u64),
    pub ttft: Option<Duration>,
    /// The tools its reply called.
    pub calls: Vec<crate::model::ToolCall>,
    /// When its first attempt was sent (`ttft` counts from it).
    pub first_send: Option<Instant>,
}

/// A task's request: `cancel` ends it early (its record then `cancelled`), and it is
/// sent by its step's `client` (of the API the step speaks).
#[derive(Clone, Copy)]
pub(super) struct Within<'a> {
    pub cancel: &'a CancellationToken,
    pub client: &'a Client,
}

/// [`run_turn`], for a task's request `within` its step, telling all a task needs of it.
pub(super) async fn run_request(p: &Phase, i: u64, spec: RequestSpec, due: Option<Instant>, within: Option<Within<'_>>) -> Ended {
    let cancel = within.map(|w| w.cancel);
    let not_sent =
        |going_on| Ended { going_on, answer: None, outcome: None, tokens: (0, 0), ttft: None, calls: Vec::new(), first_send: None };
    let ctx = &p.ctx;
    // Counted at most once, and only when needed (a tokens-per-minute limit, or a
    // completion counted here): known already for built and listed prompts.
    let input = OnceLock::new();
    let input_tokens = || *input.get_or_init(|| spec.input_tokens.unwrap_or_else(|| ctx.requests.input_tokens(i)));
    // A request's own output length is what it may cost, else the stage's limit.
    let weight = ctx.tpm_max_tokens.map_or(1, |max| input_tokens() + spec.output_tokens.map_or(max, u64::from));
    let mut att = Attempts { ramp: p.part == Part::Warmup && i >= super::RAMP_NUMBERS, ..Attempts::default() };
    // A request whose slot falls past the deadline is never started, so never counted.
    if !slot(p, weight, p.deadline(), &mut att, cancel).await {
        // A task's member its step no longer needs: not sent, the task goes on.
        if cancel.is_some_and(CancellationToken::is_cancelled) {
            return not_sent(true);
        }
        // Request i was taken but never sent: a stop before the deadline left work
        // undone, whatever `next` says.
        if ctx.stop.soft.is_cancelled() && p.deadline().is_none_or(|d| Instant::now() < d) {
            p.tally.cut_short();
        } else if due.is_some() && spec.turn.is_none_or(|k| k == 0) && !p.halt.is_cancelled() {
            // An arrival the rate limiter had no slot for before the window closed:
            // due, not sent, and counted as such. A session's later turn is no arrival
            // (its session was counted started): it is cut, not counted unsent.
            p.tally.not_sent();
        }
        return not_sent(false);
    }
    p.gauges.start();
    let mut record = attempts(p, &spec, i, weight, &mut att, within).await;
    p.gauges.end();
    if let Some(due) = due {
        // Timed from the schedule: the wait for a slot or a late timer is the user's.
        let lag = att.first_send.map_or(Duration::ZERO, |t| t.saturating_duration_since(due));
        att.lag = Some(lag);
        record = finish(record, lag);
    }
    // Checked here, in parallel across workers; only the verdict travels on.
    let content = record.content.take().filter(|_| record.outcome == Outcome::Ok);
    if ctx.client.texts_out() {
        record.content = content.clone();
        record.sent_body = Some(spec.body.clone());
    }
    // A reply made only of a call is checked by its first call's arguments.
    let checked = match (&content, &record.tool_calls) {
        (Some(c), Some(calls)) if c.trim().is_empty() => calls.first().map(|c| c.arguments.as_str()),
        (c, _) => c.as_deref(),
    };
    if let (Some(tools), Some(calls)) = (&ctx.tools, &record.tool_calls) {
        record.tool_faults = Some(calls.iter().filter_map(|c| tools.check(c)).collect());
    }
    if let (Some(expect), Some(text)) = (&ctx.check, checked.filter(|_| record.outcome == Outcome::Ok)) {
        let verdict = crate::check::check_where(text, expect);
        record.check_where = verdict.as_ref().err().and_then(|(_, at)| at.clone());
        record.check = Some(verdict.map_err(|(f, _)| f));
    }
    let answer = content.map(|text| Answer { text, tokens: crate::metrics::output_tokens(&record) });
    // Counted on the same terms as the completion: streams, or no usage. A stream's is
    // counted with its texts, off the request path, unless known without counting.
    if record.client_completion_tokens.is_some() {
        record.client_prompt_tokens = Some(input_tokens());
    } else if let Some(u) = &mut record.uncounted {
        match input.get().copied().or(spec.input_tokens).map_or_else(|| ctx.requests.input_tokens_or_prompt(i), Ok) {
            Ok(n) => record.client_prompt_tokens = Some(n),
            Err(prompt) => u.prompt = Some(prompt),
        }
    }
    // What was sent, in the counting tokenizer where known without counting on the
    // request path (templates: where counted above; else the server's usage stands in).
    record.input_tokens = spec.input_tokens.or(record.client_prompt_tokens);
    record.input_by = record.input_tokens.map(|_| ctx.client.counts_by());
    record.target_output_tokens = spec.output_tokens;
    record.turn = spec.turn;
    record.items = spec.expect.items;
    record.media = spec.media;
    record.session = spec.session;
    if let Some(a) = &p.abort
        && record.outcome != Outcome::Cancelled
        && a.count(matches!(record.outcome, Outcome::Failed(_)))
    {
        p.halt.cancel();
    }
    // A task adds up its requests' tokens and answers its agent's calls; no other
    // request needs them here.
    let (tokens, calls) = match spec.task {
        Some(_) => {
            let input = record.usage.and_then(|u| u.prompt_tokens).or(record.input_tokens).unwrap_or(0);
            let calls = record.tool_calls.as_ref().filter(|_| record.outcome == Outcome::Ok).cloned().unwrap_or_default();
            ((input, crate::metrics::output_tokens(&record)), calls)
        }
        None => ((0, 0), Vec::new()),
    };
    let (outcome, ttft) = (Some(record.outcome), record.ttft);
    record.task = spec.task;
    let first_send = att.first_send;
    let going_on = ctx.events.send(EngineEvent::Record { part: p.part, record, attempts: att }).await.is_ok();
    Ended { going_on, answer, outcome, tokens, ttft, calls, first_send }
}

/// Request `i`, ready to send: a prompt not built ahead of the stage (past the ahead
/// bound, or a ramp or cooldown request) is built on the blocking pool, not on the
/// async workers whose timers every request in flight relies on.
pub(super) async fn spec(p: &Phase, i: u64) -> RequestSpec {
    if p.ctx.requests.ready(i) {
        return p.ctx.requests.request(i);
    }
    let ctx = p.ctx.clone();
    match tokio::task::spawn_blocking(move || ctx.requests.request(i)).await {
        Ok(spec) => spec,
        // Only a panic while building gets here: build it here, and panic here.
        Err(_) => p.ctx.requests.request(i),
    }
}

/// Waits for the rate limiter's next slot for a request of `weight` tokens. False when
/// there is none before `deadline`, or a stop (or an abort) came first.
async fn slot(p: &Phase, weight: u64, deadline: Option<Instant>, att: &mut Attempts, cancel: Option<&CancellationToken>) -> bool {
    let cancelled = || cancel.is_some_and(CancellationToken::is_cancelled);
    let Some(limiter) = &p.ctx.limiter else {
        return !p.halt.is_cancelled() && !cancelled();
    };
    let now = Instant::now();
    let Some(at) = limiter.reserve(now, weight, deadline) else {
        return false;
    };
    if at > now {
        att.limited = true;
        let halted = tokio::select! {
            biased;
            _ = p.halt.cancelled() => true,
            _ = until_cancelled(cancel) => true,
            _ = tokio::time::sleep_until(at.into()) => false,
        };
        att.limiter_wait += now.elapsed();
        if halted {
            return false;
        }
    }
    !p.halt.is_cancelled() && !cancelled()
}

/// Resolves when `cancel` (if any) is cancelled.
async fn until_cancelled(cancel: Option<&CancellationToken>) {
    match cancel {
        Some(c) => c.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Sends request `i` until it succeeds, fails in a way the policy does not retry, or
/// runs out of attempts; a stop, an abort or `retry.after_window` ends the retries
/// early. The record is the final attempt's, its timings counted from the first
/// attempt's send.
async fn attempts(p: &Phase, spec: &RequestSpec, i: u64, weight: u64, att: &mut Attempts, within: Option<Within<'_>>) -> RequestRecord {
    let ctx = &p.ctx;
    let (cancel, client) = (within.map(|w| w.cancel), within.map_or(&*ctx.client, |w| w.client));
    let mut first = None;
    let mut rng = None;
    loop {
        let t = Instant::now();
        let first_send = *first.get_or_insert(t);
        att.first_send = Some(first_send);
        // A cooldown request is dropped when the cooldown ends: it is never measured,
        // and waiting for it would hold up the next stage. A task's member is dropped
        // when its step no longer needs it.
        let cut = async {
            match (p.part, cancel, &p.dropped) {
                (Part::Cooldown, ..) => p.halt.cancelled().await,
                (_, Some(c), None) => c.cancelled().await,
                (_, Some(c), Some(d)) => tokio::select! {
                    _ = c.cancelled() => {}
                    _ = d.cancelled() => {}
                },
                (_, None, Some(d)) => d.cancelled().await,
                (_, None, None) => std::future::pending().await,
            }
        };
        let rec = tokio::select! {
            biased;
            _ = ctx.stop.hard.cancelled() => {
                p.tally.cut_short();
                RequestRecord::cancelled(t.elapsed())
            }
            _ = cut => RequestRecord::cancelled(t.elapsed()),
            r = client.send(spec.body.clone(), spec.expect) => r,
        };
        att.last = rec.latency;
        // Retries may start this long after the window closes; later ones are not sent.
        let retry_deadline = p.deadline().map(|d| d + ctx.retry.after_window);
        let Some(kind) = retry::retry_kind(&ctx.retry, rec.outcome, att.earlier.len() + 1) else {
            // From the first send: with retries, the user waited for all of them.
            return finish(rec, t - first_send);
        };
        // A task's members draw apart: they share its number, and must not retry as one.
        let seed = spec.task.map_or(i, |t| i ^ (u64::from(t.step) << 48) ^ (u64::from(t.member) << 24));
        let draw = retry::draw(rng.get_or_insert_with(|| retry::jitter_rng(seed)));
        let (wait, asked) = retry::wait(&ctx.retry, att.earlier.len() as u32, draw, rec.retry_after);
        // A request started inside the window is carried on, retries included, like one
        // in flight when the window closes, for up to `after_window` past it. A stop, an
        // abort or that limit ends it early: it keeps this failure, the retry not sent.
        att.retry_not_sent = true;
        let resume = Instant::now() + wait;
        if retry_deadline.is_some_and(|d| resume >= d) {
            return finish(rec, t - first_send);
        }
        tokio::select! {
            biased;
            _ = p.halt.cancelled() => return finish(rec, t - first_send),
            _ = until_cancelled(cancel) => return finish(rec, t - first_send),
            _ = tokio::time::sleep_until(resume.into()) => {}
        }
        if !slot(p, weight, retry_deadline, att, cancel).await {
            return finish(rec, t - first_send);
        }
        att.retry_not_sent = false;
        att.retry_after_waits += u32::from(asked);
        att.earlier.push(FailedAttempt { kind, latency: rec.latency, status: rec.status });
    }
}

/// A final record whose timings count from the first send, `offset` before its own.
fn finish(mut rec: RequestRecord, offset: Duration) -> RequestRecord {
    rec.latency += offset;
    rec.ttft = rec.ttft.map(|x| x + offset);
    rec
}
