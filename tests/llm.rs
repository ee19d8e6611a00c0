//! LLM figures end to end on the embedded mock: goodput under SLOs, response checks,
//! and cost in the scenario's currency.

mod common;
use common::*;

fn scenario_with(mock: &str, extra: &str, stages: &str) -> String {
    format!(
        "name = \"llm\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\n{mock}\n[prompts]\ntemplate = \"hello {{i}}\"\n{extra}\n{stages}"
    )
}

const STAGE: &str = "[[stage]]\nname = \"s\"\nconcurrency = 4\nrequests = 200\n";

#[test]
fn goodput_counts_requests_meeting_every_slo() {
    // e2e uniform over 10..90 ms (50 ± 40): an e2e SLO of 50 ms is met by about half.
    let mock = "base_latency_ms = 50\nper_inflight_ms = 0\njitter_ms = 40\nseed = 3";
    let (_, v) = run_scenario(&scenario_with(mock, "[slo]\ne2e_ms = 50", STAGE));
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    let good = s["goodput"]["requests"].as_u64().unwrap();
    assert!((60..=140).contains(&good), "{good} of 200 met e2e <= 50 ms");
    let per_s = s["goodput"]["per_s"].as_f64().unwrap();
    let wall = s["wall_time_s"].as_f64().unwrap();
    assert!((per_s - good as f64 / wall).abs() < 1e-6);
    assert!(per_s < s["throughput"]["requests_per_s"].as_f64().unwrap());

    let (_, all) = run_scenario(&scenario_with(mock, "[slo]\ne2e_ms = 10000", STAGE));
    assert_eq!(all["stages"][0]["goodput"]["requests"], 200);
}

#[test]
fn ttft_slo_needs_a_first_token_in_time() {
    let mock = "base_latency_ms = 60\nper_inflight_ms = 0\ninter_token_ms = 1";
    let text = scenario_with(mock, "[slo]\nttft_ms = 20", STAGE).replace("model = \"m\"", "model = \"m\"\nstream = true");
    let (out, v) = run_scenario(&text);
    assert_eq!(v["stages"][0]["goodput"]["requests"], 0, "TTFT is 60 ms, the SLO 20 ms");
    assert!(out.stdout.contains("goodput"), "{}", out.stdout);
    let (_, loose) = run_scenario(&text.replace("ttft_ms = 20", "ttft_ms = 500\nitl_ms = 50"));
    assert_eq!(loose["stages"][0]["goodput"]["requests"], 200, "every request meets 500 ms TTFT and 50 ms ITL");
}

#[test]
fn response_checks_count_invalid_replies() {
    // 70 % of the mock's replies carry JSON (bare, fenced or in prose); 30 % are prose.
    let mock = "base_latency_ms = 1\nper_inflight_ms = 0\njson_rate = 0.7\nseed = 11";
    let check = "[check]\nexpect = \"json\"\nrequired_keys = [\"summary\", \"key_points\"]";
    for stream in [false, true] {
        let mut text = scenario_with(mock, check, STAGE);
        if stream {
            text = text.replace("model = \"m\"", "model = \"m\"\nstream = true");
        }
        let (out, v) = run_scenario(&text);
        assert_schema_valid(&v);
        let c = &v["stages"][0]["checks"];
        let (passed, failed) = (c["passed"].as_u64().unwrap(), c["failed"].as_u64().unwrap());
        assert_eq!(passed + failed, 200, "stream={stream}");
        assert_eq!(c["failures"]["no_json"].as_u64().unwrap(), failed);
        let rate = c["invalid_rate"].as_f64().unwrap();
        assert!((0.2..0.4).contains(&rate), "stream={stream}: invalid rate {rate}, mock 0.3");
        assert!(out.stdout.contains("invalid"), "{}", out.stdout);
    }
}

#[test]
fn cost_uses_the_scenario_prices_and_currency() {
    let pricing = "[pricing]\ncurrency = \"JPY\"\nper_usd = 7.3\n[pricing.models.m]\ninput_per_million = 1.0\noutput_per_million = 8.0";
    let (out, v) = run_scenario(&scenario_with("base_latency_ms = 1\nper_inflight_ms = 0", pricing, STAGE));
    assert_schema_valid(&v);
    let s = &v["stages"][0];
    let (prompt, output) = (s["tokens"]["prompt"].as_f64().unwrap(), s["tokens"]["output"].as_f64().unwrap());
    let usd = (prompt * 1.0 + output * 8.0) / 1e6;
    let cost = &s["cost"];
    assert_eq!(cost["currency"], "JPY");
    assert!((cost["usd"].as_f64().unwrap() - usd).abs() < 1e-12);
    assert!((cost["amount"].as_f64().unwrap() - usd * 7.3).abs() < 1e-12);
    assert!((cost["per_1k_requests"].as_f64().unwrap() - usd * 7.3 * 1000.0 / 200.0).abs() < 1e-12);
    assert!((v["cost"]["amount"].as_f64().unwrap() - usd * 7.3).abs() < 1e-12, "the run's total");
    assert!(out.stdout.contains("JPY"), "{}", out.stdout);
    assert!(out.stdout.contains("cost of the run"), "{}", out.stdout);
}

#[test]
fn unpriced_models_have_no_cost() {
    let (out, v) = run_scenario(&scenario_with("base_latency_ms = 1\nper_inflight_ms = 0", "", STAGE));
    assert!(v["stages"][0]["cost"].is_null());
    assert!(v["cost"].is_null());
    assert!(!out.stdout.contains("cost"), "{}", out.stdout);
}
