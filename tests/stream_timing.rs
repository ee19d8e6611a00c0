//! Streaming timing accuracy on the embedded mock's known timings. Alone in its file:
//! test binaries run one after another, so no other test's processes share the CPU
//! while it measures.

mod common;
use common::*;

/// The yardstick: first token at 200 ms, then one every 20 ms, at 50-way, after a
/// warm-up wave (so the 50 connects are not in the first tokens measured).
#[test]
fn ttft_and_itl_match_the_mock_at_50_way() {
    let text = "name = \"s\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
                [mock]\nbase_latency_ms = 200\nper_inflight_ms = 0\ninter_token_ms = 20\noutput_tokens = 20\n\
                [prompts]\ntemplate = \"hello {i}\"\n[[stage]]\nname = \"50\"\nconcurrency = 50\nwarmup = 50\nrequests = 100\n";
    let (out, v) = run_scenario(text);
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    assert_eq!(s["requests"]["ok"], 100);
    let ttft = s["ttft_ms"]["p50"].as_f64().unwrap();
    let itl = s["itl_ms"]["p50"].as_f64().unwrap();
    let gap = s["chunk_gap_ms"]["p50"].as_f64().unwrap();
    assert!((ttft - 200.0).abs() <= 10.0, "TTFT p50 {ttft} ms, mock 200 ms");
    assert!((itl - 20.0).abs() <= 1.0, "ITL p50 {itl} ms, mock 20 ms");
    assert!((gap - 20.0).abs() <= 1.0, "chunk gap p50 {gap} ms, mock 20 ms");
    // Per user, the two figures the field names: 1 / ITL is the mock's 50 tokens/s;
    // over e2e (TTFT included), 20 tokens in 200 + 19 × 20 ms = 34.5 tokens/s.
    let th = &s["throughput"];
    let (itl_rate, e2e_rate) = (th["output_tokens_per_s_per_user_itl"].as_f64().unwrap(), num(&th["output_tokens_per_s_per_user"]));
    assert!((itl_rate - 50.0).abs() <= 2.5, "1 / ITL per user {itl_rate} tokens/s, mock 50");
    assert!((e2e_rate - 34.5).abs() <= 2.0, "output / e2e per user {e2e_rate} tokens/s, mock 34.5");
    // 20 tokens each, counted by the server and here alike.
    let t = &s["tokens"];
    assert_eq!(
        (t["completion"].as_u64(), t["client_completion"].as_u64(), t["completion_disagree"].as_u64()),
        (Some(2000), Some(2000), Some(0))
    );
    assert_eq!(t["prompt_disagree"], 0);
    assert!(out.stdout.contains("TTFT p50"), "{}", out.stdout);
}
