//! One stage of every shard as one: distributions merged exactly (histograms added,
//! with the exact counts, sums, min and max beside them, so every percentile is the one
//! a single histogram of every request would give), counters summed, and every rate
//! taken over the union of the shards' absolute windows.

use std::collections::BTreeMap;

use super::add::{latency, lengths, sum_maps};
use crate::metrics::{Items, LatencySummary, LengthSummary};
use crate::report::images::{ImageHistograms, ImagesResult};
use crate::report::{
    Cached, Checks, Cost, Dist, Goodput, Histograms, ItemsResult, OpenLoop, RateLimiter, Requests, Retries, StageResult, TargetOutput,
    Throughput, Tokens, ToolCallsResult,
};

/// Every histogram of the stage, merged, and the summaries read from them.
struct Merged {
    h: Histograms,
    e2e: Option<LatencySummary>,
    attempt: Option<LatencySummary>,
    ttft: Option<LatencySummary>,
    ttft_answer: Option<LatencySummary>,
    partial_ttft: Option<LatencySummary>,
    thinking: Option<LatencySummary>,
    itl: Option<LatencySummary>,
    chunk_gap: Option<LatencySummary>,
    uncorrected: Option<LatencySummary>,
    lag: Option<LatencySummary>,
    wait: Option<LatencySummary>,
    input: Option<LengthSummary>,
    output: Option<LengthSummary>,
    target: Option<LengthSummary>,
}

fn histograms(parts: &[&StageResult]) -> Result<Merged, String> {
    let mut h = Histograms::default();
    macro_rules! lat {
        ($field:ident) => {{
            let l = latency(&parts.iter().map(|p| p.histograms.$field.as_ref()).collect::<Vec<_>>())
                .map_err(|e| format!("{}: {e}", stringify!($field)))?;
            h.$field = l.as_ref().and_then(Dist::of_latency);
            l.and_then(|l| l.summary())
        }};
    }
    macro_rules! len {
        ($field:ident) => {{
            let l = lengths(&parts.iter().map(|p| p.histograms.$field.as_ref()).collect::<Vec<_>>())
                .map_err(|e| format!("{}: {e}", stringify!($field)))?;
            h.$field = l.as_ref().and_then(Dist::of_lengths);
            l.and_then(|l| l.summary())
        }};
    }
    Ok(Merged {
        e2e: lat!(e2e_us),
        attempt: lat!(attempt_us),
        ttft: lat!(ttft_us),
        ttft_answer: lat!(ttft_answer_us),
        partial_ttft: lat!(partial_ttft_us),
        thinking: lat!(thinking_us),
        itl: lat!(itl_us),
        chunk_gap: lat!(chunk_gap_us),
        uncorrected: lat!(latency_uncorrected_us),
        lag: lat!(schedule_lag_us),
        wait: lat!(limiter_wait_us),
        input: len!(input_tokens),
        output: len!(output_tokens),
        target: len!(target_output_tokens),
        h,
    })
}

/// The shards' texts carried (embeddings, rerank), merged exactly; `wall`: the union of
/// their windows, for the rate.
fn items(parts: &[&StageResult], wall: f64) -> Result<Option<ItemsResult>, String> {
    let mut all: Option<Items> = None;
    let kind = parts.iter().find_map(|p| p.items.as_ref()).map_or("inputs", |i| i.kind.as_str());
    for p in parts.iter().filter_map(|p| p.items.as_ref()) {
        let one = p.to_items().ok_or("items: a group's latency distribution is missing or does not decode")?;
        all.get_or_insert_with(Items::default).add(&one);
    }
    Ok(all.and_then(|a| ItemsResult::of(kind, &a, if wall > 0.0 { a.total as f64 / wall } else { 0.0 }, true)))
}

/// The shards' tool calls: counts summed, the first-fragment distribution merged.
fn tool_calls(parts: &[&StageResult]) -> Result<Option<ToolCallsResult>, String> {
    let all: Vec<&ToolCallsResult> = parts.iter().filter_map(|p| p.tool_calls.as_ref()).collect();
    if all.is_empty() {
        return Ok(None);
    }
    let sum = |f: fn(&ToolCallsResult) -> u64| all.iter().map(|t| f(t)).sum::<u64>();
    let first = latency(&all.iter().map(|t| t.first_tool_us.as_ref()).collect::<Vec<_>>()).map_err(|e| format!("tool_calls: {e}"))?;
    let (replies, calls) = (sum(|t| t.replies), sum(|t| t.calls));
    Ok(Some(ToolCallsResult {
        replies,
        calls,
        per_reply: calls as f64 / replies.max(1) as f64,
        argument_bytes: sum(|t| t.argument_bytes),
        arguments_not_json: sum(|t| t.arguments_not_json),
        invalid: sum_maps(all.iter().map(|t| t.invalid.clone())),
        first_tool_ms: first.as_ref().and_then(|l| l.summary()),
        first_tool_us: first.as_ref().and_then(Dist::of_latency),
    }))
}

/// The shards' images: counts summed, each distribution merged exactly.
fn images(parts: &[&StageResult]) -> Result<Option<ImagesResult>, String> {
    let all: Vec<&ImagesResult> = parts.iter().filter_map(|p| p.images.as_ref()).collect();
    if all.is_empty() {
        return Ok(None);
    }
    let field = |f: fn(&ImagesResult) -> (Option<&LengthSummary>, Option<&Dist>)| {
        super::sessions::len(all.iter().map(|i| f(i))).map_err(|e| format!("images: {e}"))
    };
    let (per_request, per_request_d) = field(|i| (i.per_request.as_ref(), i.histograms.per_request.as_ref()))?;
    let (pixels, pixels_d) = field(|i| (i.pixels.as_ref(), i.histograms.pixels.as_ref()))?;
    let (bytes, bytes_d) = field(|i| (i.bytes.as_ref(), i.histograms.bytes.as_ref()))?;
    let (prompt_tokens, prompt_d) = field(|i| (i.prompt_tokens.as_ref(), i.histograms.prompt_tokens.as_ref()))?;
    Ok(Some(ImagesResult {
        requests: all.iter().map(|i| i.requests).sum(),
        images: all.iter().map(|i| i.images).sum(),
        per_request,
        pixels,
        bytes,
        prompt_tokens,
        histograms: ImageHistograms { per_request: per_request_d, pixels: pixels_d, bytes: bytes_d, prompt_tokens: prompt_d },
    }))
}

/// The union of the shards' windows on the wall clock: its start, end and length.
fn window(parts: &[&StageResult]) -> (Option<String>, Option<String>, f64) {
    let starts: Vec<&String> = parts.iter().filter_map(|p| p.window_start.as_ref()).collect();
    let ends: Vec<&String> = parts.iter().filter_map(|p| p.window_end.as_ref()).collect();
    let (start, end) = (starts.iter().min().map(|s| s.to_string()), ends.iter().max().map(|s| s.to_string()));
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let wall = match (parse(&start), parse(&end)) {
        (Some(a), Some(b)) => b.duration_since(a).map_or(0.0, |d| d.as_secs_f64()),
        // No window opened anywhere: the longest shard's.
        _ => parts.iter().map(|p| p.wall_time_s).fold(0.0, f64::max),
    };
    (start, end, wall)
}

pub fn merge(parts: &[&StageResult]) -> Result<StageResult, String> {
    let first = parts[0];
    let m = histograms(parts)?;
    let (window_start, window_end, wall) = window(parts);
    let per_s = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let sum = |f: fn(&StageResult) -> u64| parts.iter().map(|p| f(p)).fold(0u64, u64::saturating_add);
    let requests = Requests {
        started: sum(|p| p.requests.started),
        ok: sum(|p| p.requests.ok),
        failed: sum(|p| p.requests.failed),
        cancelled: sum(|p| p.requests.cancelled),
    };
    let finished = requests.ok + requests.failed;
    let tokens = tokens(parts, &m);
    let weighted = |f: fn(&StageResult) -> f64| {
        let ok = requests.ok.max(1) as f64;
        parts.iter().map(|p| f(p) * p.requests.ok as f64).sum::<f64>() / ok
    };
    let throughput = Throughput {
        requests_per_s: per_s(finished),
        ok_per_s: per_s(requests.ok),
        output_tokens_per_s: per_s(tokens.output),
        // A mean over successful requests: each shard's weighs its successes.
        output_tokens_per_s_per_user: weighted(|p| p.throughput.output_tokens_per_s_per_user),
        output_tokens_per_s_per_user_itl: itl_weighted(parts),
        input_tokens_per_s: per_s(tokens.input),
        total_tokens_per_s: per_s(tokens.input.saturating_add(tokens.output)),
    };
    let mut failure_examples = BTreeMap::new();
    for p in parts {
        for (k, v) in &p.failure_examples {
            failure_examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let goodput: Option<Goodput> = first.goodput.as_ref().map(|_| {
        let n = parts.iter().filter_map(|p| p.goodput.as_ref()).map(|g| g.requests).sum();
        Goodput { requests: n, per_s: per_s(n) }
    });
    let (series, window_offset_s) = super::series::merge(parts, window_start.as_deref());
    let items = items(parts, wall)?;
    let tool_calls = tool_calls(parts)?;
    let images = images(parts)?;
    let mut merged = StageResult {
        concurrency: parts.iter().map(|p| p.concurrency).fold(0u32, u32::saturating_add),
        planned: crate::report::Planned { requests: parts.iter().map(|p| p.planned.requests).sum(), duration_s: first.planned.duration_s },
        warmup_requests: sum(|p| p.warmup_requests),
        cooldown_requests: sum(|p| p.cooldown_requests),
        interrupted: parts.iter().any(|p| p.interrupted),
        aborted: parts.iter().any(|p| p.aborted),
        wall_time_s: wall,
        window_start,
        window_end,
        window_offset_s,
        requests,
        error_rate: if finished > 0 { requests.failed as f64 / finished as f64 } else { 0.0 },
        failures: sum_maps(parts.iter().map(|p| p.failures.clone())),
        failure_examples,
        status_codes: sum_maps(parts.iter().map(|p| p.status_codes.clone())),
        latency_ms: m.e2e,
        ttft_ms: m.ttft,
        itl_ms: m.itl,
        chunk_gap_ms: m.chunk_gap,
        partial_ttft_ms: m.partial_ttft,
        ttft_answer_ms: m.ttft_answer,
        thinking_ms: m.thinking,
        streams_without_done: sum(|p| p.streams_without_done),
        reconnects: sum(|p| p.reconnects),
        finish_reasons: parts.iter().fold(Default::default(), |mut all, p| {
            all.add(&p.finish_reasons);
            all
        }),
        throughput,
        tokens,
        items,
        tool_calls,
        images,
        sessions: super::sessions::merge(&parts.iter().map(|p| p.sessions.as_ref()).collect::<Vec<_>>())?,
        tasks: super::tasks::merge(&parts.iter().map(|p| p.tasks.as_ref()).collect::<Vec<_>>(), wall)?,
        goodput,
        checks: checks(parts),
        // One shard scrapes the server: its figures, once.
        server: parts.iter().map(|p| &p.server).find(|s| !s.is_empty()).cloned().unwrap_or_default(),
        prefix_cache_reset: parts.iter().find_map(|p| p.prefix_cache_reset.clone()),
        cost: cost(parts, requests.ok),
        bytes_received: sum(|p| p.bytes_received),
        retries: retries(parts),
        attempt_latency_ms: m.attempt,
        rate_limiter: first.rate_limiter.as_ref().map(|r| RateLimiter {
            rpm: r.rpm.map(|_| parts.iter().filter_map(|p| p.rate_limiter.as_ref().and_then(|x| x.rpm)).sum()),
            tpm: r.tpm.map(|_| parts.iter().filter_map(|p| p.rate_limiter.as_ref().and_then(|x| x.tpm)).sum()),
            delayed: parts.iter().filter_map(|p| p.rate_limiter.as_ref()).map(|x| x.delayed).sum(),
            wait_ms: m.wait,
        }),
        open_loop: first.open_loop.as_ref().map(|o| {
            let all: Vec<&OpenLoop> = parts.iter().filter_map(|p| p.open_loop.as_ref()).collect();
            let total = |f: fn(&OpenLoop) -> f64| all.iter().map(|x| f(x)).sum::<f64>();
            OpenLoop {
                arrival: o.arrival.clone(),
                target_rate: total(|x| x.target_rate),
                scheduled_rate: total(|x| x.scheduled_rate),
                achieved_rate: total(|x| x.achieved_rate),
                below_target: all.iter().any(|x| x.below_target),
                max_in_flight: all.iter().map(|x| x.max_in_flight).fold(0u32, u32::saturating_add),
                not_sent: all.iter().map(|x| x.not_sent).sum(),
                schedule_lag_ms: m.lag,
                latency_uncorrected_ms: m.uncorrected,
            }
        }),
        series,
        histograms: m.h,
        ci: None,
        until: None, // judged again below; a shard that saturated speaks for all
        saturated: parts.iter().find_map(|p| p.saturated.clone()),
        ..first.clone()
    };
    // Formed again from the merged seconds and histograms, never averaged.
    merged.ci = crate::report::ci::stage_ci(&merged, first.ci.as_ref().map_or(crate::stats::LEVEL, |c| c.level));
    merged.until = until(parts, &merged);
    Ok(merged)
}

/// An `until` stage merged: its goals judged again on the merged intervals; converged
/// when every shard did, after the last of them, with all their requests.
fn until(parts: &[&StageResult], merged: &StageResult) -> Option<crate::report::ci::UntilResult> {
    let each: Vec<&crate::report::ci::UntilResult> = parts.iter().map(|p| p.until.as_ref()).collect::<Option<_>>()?;
    let first = each.first()?;
    let goals = first.figures.iter().map(|(m, f)| crate::model::Until { metric: m.clone(), within: f.within, confidence: f.confidence });
    let spec = crate::model::UntilSpec { goals: goals.collect(), max: std::time::Duration::from_secs_f64(first.max_s) };
    let when = each.iter().map(|u| u.after_s.zip(u.requests)).collect::<Option<Vec<_>>>();
    let when = when.map(|w| w.iter().fold((0.0, 0), |(t, n), (a, r)| (f64::max(t, *a), n + r)));
    Some(crate::report::ci::until_result(merged, &spec, when))
}

/// The mean of 1 / ITL over every shard's streams: each shard's weighs its ITL count.
fn itl_weighted(parts: &[&StageResult]) -> Option<f64> {
    let with: Vec<(f64, u64)> = parts
        .iter()
        .filter_map(|p| p.throughput.output_tokens_per_s_per_user_itl.zip(p.histograms.itl_us.as_ref().map(|d| d.count)))
        .collect();
    let n: u64 = with.iter().map(|w| w.1).sum();
    (n > 0).then(|| with.iter().map(|(r, k)| r * *k as f64).sum::<f64>() / n as f64)
}

/// The sum of the shards' figures that are known; null when none is.
fn known(figures: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    figures.flatten().reduce(u64::saturating_add)
}

fn tokens(parts: &[&StageResult], m: &Merged) -> Tokens {
    let sum = |f: fn(&Tokens) -> u64| parts.iter().map(|p| f(&p.tokens)).fold(0u64, u64::saturating_add);
    // From every shard that has one (shard 0's share may have had none).
    let targets: Vec<(&TargetOutput, u64)> = parts
        .iter()
        .filter_map(|p| {
            p.tokens.target_output.as_ref().map(|t| (t, p.histograms.target_output_tokens.as_ref().map_or(p.requests.ok, |d| d.count)))
        })
        .collect();
    let target_output = targets.first().map(|(t, _)| {
        let n: u64 = targets.iter().map(|x| x.1).sum::<u64>().max(1);
        let short: u64 = targets.iter().map(|x| x.0.ended_short).sum();
        TargetOutput {
            // The targets' distribution added; shard 0's summary for results without it.
            target: m.target.unwrap_or(t.target),
            achieved_mean: targets.iter().map(|(x, k)| x.achieved_mean * *k as f64).sum::<f64>() / n as f64,
            ended_short: short,
            ended_short_share: short as f64 / n as f64,
            judged_by_finish_reason: targets.iter().map(|x| x.0.judged_by_finish_reason).sum(),
        }
    });
    let all: Vec<&Cached> = parts.iter().filter_map(|p| p.tokens.cached.as_ref()).collect();
    let cached = (!all.is_empty()).then(|| {
        let tokens: u64 = all.iter().map(|c| c.tokens).sum();
        // The share's denominator, summed: each shard's own, or (results before it was
        // kept) weighed back from its share.
        let prompt: f64 = all
            .iter()
            .map(|c| match c.of {
                0 if c.share > 0.0 => c.tokens as f64 / c.share,
                of => of as f64,
            })
            .sum();
        let of = all.iter().map(|c| c.of).sum();
        Cached {
            requests: all.iter().map(|c| c.requests).sum(),
            tokens,
            share: if prompt > 0.0 { tokens as f64 / prompt } else { 0.0 },
            of,
        }
    });
    Tokens {
        prompt: sum(|t| t.prompt),
        completion: sum(|t| t.completion),
        requests_with_usage: sum(|t| t.requests_with_usage),
        output: sum(|t| t.output),
        input: sum(|t| t.input),
        client_prompt: sum(|t| t.client_prompt),
        client_completion: sum(|t| t.client_completion),
        prompt_disagree: known(parts.iter().map(|p| p.tokens.prompt_disagree)),
        completion_disagree: known(parts.iter().map(|p| p.tokens.completion_disagree)),
        prompt_compared: sum(|t| t.prompt_compared),
        completion_compared: sum(|t| t.completion_compared),
        reasoning: sum(|t| t.reasoning),
        input_length: m.input,
        output_length: m.output,
        target_output,
        cached,
        source: {
            let mut source = crate::report::CountSources::default();
            for p in parts {
                source.output.add(&p.tokens.source.output);
                source.input.add(&p.tokens.source.input);
            }
            source
        },
    }
}

fn checks(parts: &[&StageResult]) -> Option<Checks> {
    let all: Vec<&Checks> = parts.iter().filter_map(|p| p.checks.as_ref()).collect();
    if all.is_empty() {
        return None;
    }
    let (passed, failed) = (all.iter().map(|c| c.passed).sum::<u64>(), all.iter().map(|c| c.failed).sum::<u64>());
    let n = passed + failed;
    Some(Checks {
        passed,
        failed,
        invalid_rate: if n > 0 { failed as f64 / n as f64 } else { 0.0 },
        failures: sum_maps(all.iter().map(|c| c.failures.clone())),
        schema_failures: sum_maps(all.iter().map(|c| c.schema_failures.clone())),
    })
}

fn cost(parts: &[&StageResult], ok: u64) -> Option<Cost> {
    let all: Vec<&Cost> = parts.iter().filter_map(|p| p.cost.as_ref()).collect();
    let first = all.first()?;
    let amount: f64 = all.iter().map(|c| c.amount).sum();
    Some(Cost {
        currency: first.currency.clone(),
        amount,
        usd: all.iter().map(|c| c.usd).sum(),
        per_1k_requests: if ok > 0 { amount / ok as f64 * 1000.0 } else { 0.0 },
    })
}

fn retries(parts: &[&StageResult]) -> Retries {
    let sum = |f: fn(&Retries) -> u64| parts.iter().map(|p| f(&p.retries)).fold(0u64, u64::saturating_add);
    Retries {
        attempts: sum(|r| r.attempts),
        total: sum(|r| r.total),
        by_cause: sum_maps(parts.iter().map(|p| p.retries.by_cause.clone())),
        requests_retried: sum(|r| r.requests_retried),
        recovered: sum(|r| r.recovered),
        retry_after_honoured: sum(|r| r.retry_after_honoured),
        not_sent: sum(|r| r.not_sent),
    }
}
