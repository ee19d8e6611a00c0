//! The definitions of a result's figures, in words, that travel with every result
//! (`definitions`): what each figure measures, for a reader without the docs.

use std::collections::BTreeMap;

/// Each figure's name and what it means.
pub fn definitions() -> BTreeMap<String, String> {
    [
        ("latency_ms", "end-to-end latency of successful requests: request sent -> last byte of the response read, in ms"),
        ("wall_time_s", "measured window of a stage: first measured request sent -> last one finished (warmup excluded)"),
        ("throughput.requests_per_s", "finished requests (ok + failed) / wall_time_s"),
        ("throughput.ok_per_s", "successful requests / wall_time_s"),
        ("throughput.output_tokens_per_s", "tokens.output / wall_time_s"),
        ("error_rate", "failed / (ok + failed)"),
        ("requests", "started = ok + failed + cancelled once a stage ends"),
        (
            "percentiles",
            "HDR histogram values, 3 significant digits (the per-second series and sessions' by-turn figures: 2), 1 us resolution, each read as the middle of its bucket (within 0.05 %; 0.5 % at 2 digits) and clamped to the exact min and max; mean, min, max and stddev are exact",
        ),
        ("ttft_ms", "streams: request sent -> first chunk with non-empty content of any kind (reasoning included), successful requests"),
        ("ttft_answer_ms", "streams: request sent -> first answer (content) token, successful requests; thinking_ms: first reasoning token -> first answer token"),
        (
            "tokens.reasoning",
            "of tokens.output, the reasoning's: usage.completion_tokens_details.reasoning_tokens where sent, else counted here from the reasoning text (each text counted by itself)",
        ),
        ("streams_without_done", "successful streams that ended cleanly after a finish_reason but without data: [DONE] (a complete answer)"),
        (
            "finish_reasons",
            "successful replies by their finish_reason (the first choice's): stop, length, tool_calls, content_filter, other (any other name), unsaid (none given)",
        ),
        (
            "tokens.target_output.ended_short",
            "replies that ended before their target length: by their finish_reason where the server gave one (length met it, any other reason did not; judged_by_finish_reason counts these), else by the output count",
        ),
        (
            "reconnects",
            "requests sent again, once, on a new connection because the reused connection they went out on ended before any byte of the response (a server closing kept-alive connections unannounced); not failures",
        ),
        ("itl_ms", "streams: per request (e2e - ttft) / (output tokens - 1); TPOT means this and nothing else"),
        ("chunk_gap_ms", "streams: time between consecutive content chunks, all requests pooled"),
        ("tokens.output", "completion tokens of successful requests: the server's usage where sent, else counted here (o200k_base)"),
        ("throughput.output_tokens_per_s_per_user", "mean over successful requests of output tokens / e2e seconds, TTFT included (AIPerf's E2E output token throughput)"),
        (
            "throughput.output_tokens_per_s_per_user_itl",
            "mean over successful streams of 1 / itl: the decode speed once tokens flow, TTFT left out (AIPerf's output token throughput per user); null without streams",
        ),
        ("goodput", "successful requests meeting every [slo] objective / wall_time_s"),
        ("latency_ms (retries)", "a retried request counts from its first send to its final outcome, backoff waits included"),
        (
            "latency_ms (open loop)",
            "open-loop stages: from each request's scheduled start, so a wait inside llmload counts (coordinated omission); open_loop.latency_uncorrected_ms counts from the actual send",
        ),
        ("open_loop.schedule_lag_ms", "first send - scheduled start of every request sent"),
        (
            "open_loop.achieved_rate",
            "requests sent / (first dispatch -> last dispatch + one mean gap); scheduled_rate: arrivals due / (first -> last due + one gap); below_target when over 5 % of the arrivals due were not sent or sending ended over 5 % (and 50 ms) behind the schedule",
        ),
        (
            "sweep.knee",
            "the smallest sweep point from which ok requests/s grow less than knee_gain per doubling of the load at every later point; an automatic sweep reads it from its ladder, narrowed to the smallest bisection point below it that no later point beats by knee_gain",
        ),
        ("sweep.slo", "a point meets the SLO when at least slo_quantile of its finished requests meet every [slo] objective"),
        ("attempt_latency_ms", "each attempt's own latency, request sent -> last byte, failed attempts included"),
        ("retries.total", "attempts sent again after a failure the [retry] policy covers; failures counts final outcomes only"),
        ("rate_limiter.wait_ms", "per delayed request: total time waiting for the client-side rate limiter before its attempts"),
        ("cost", "prompt and output tokens times the price per million of the stage's model, in the scenario's currency"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
