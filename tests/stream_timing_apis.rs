//! Streaming timing on the embedded mock's known timings for the completions endpoint
//! and for a reasoning model. Alone in its file (and its two runs one after the other),
//! so no other test's processes share the CPU while it measures.

mod common;
use common::*;

/// First token at 200 ms, then one every 20 ms: within 5 % of the mock's. At 10-way after
/// a warm-up wave: 50 first tokens due in the same millisecond queue behind each other in
/// a debug build on a busy box (+17 ms at the median seen in CI), which is the box's cost,
/// not the parsing of these APIs that this test is about.
fn timed(target: &str, mock: &str) -> serde_json::Value {
    let text = format!(
        "name = \"s\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n{target}\n\
         [mock]\nbase_latency_ms = 200\nper_inflight_ms = 0\ninter_token_ms = 20\noutput_tokens = 20\n{mock}\n\
         [prompts]\ntemplate = \"hello {{i}}\"\n[[stage]]\nname = \"10\"\nconcurrency = 10\nwarmup = 10\nrequests = 30\n"
    );
    let (_, v) = run_scenario(&text);
    assert_schema_valid(&v);
    let s = v["stages"][0].clone();
    assert_eq!(s["requests"]["ok"], 30, "{}", s["failure_examples"]);
    s
}

#[track_caller]
fn within_5_percent(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 0.05 * want, "{what} p50 {got} ms, mock {want} ms");
}

#[test]
fn completions_and_reasoning_streams_match_the_mock() {
    let s = timed("api = \"completions\"", "");
    within_5_percent("TTFT", num(&s["ttft_ms"]["p50"]), 200.0);
    within_5_percent("ITL", num(&s["itl_ms"]["p50"]), 20.0);
    assert_eq!(s["tokens"]["completion_disagree"], 0);

    // 10 tokens of thought first: the first token at 200 ms, the first answer token
    // 10 gaps later, the thinking in between.
    let s = timed("", "reasoning_tokens = 10");
    within_5_percent("TTFT", num(&s["ttft_ms"]["p50"]), 200.0);
    within_5_percent("answer TTFT", num(&s["ttft_answer_ms"]["p50"]), 400.0);
    within_5_percent("thinking", num(&s["thinking_ms"]["p50"]), 200.0);
    within_5_percent("ITL", num(&s["itl_ms"]["p50"]), 20.0);
    assert_eq!((s["tokens"]["reasoning"].as_u64(), s["tokens"]["output"].as_u64()), (Some(300), Some(900)));
}
