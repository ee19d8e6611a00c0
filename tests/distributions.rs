//! Every distribution a stage keeps is in the result, decodable: each histogram read
//! back (V2 + deflate) gives the stage's own count, min, max, mean and percentiles.
//! And the run records where, when and how it ran.

mod common;
use common::*;

use llmload::metrics::hdr;
use serde_json::Value;

/// Checks `dist` decodes to the figures of `summary` (a latency, ms; or a length).
fn round_trip(name: &str, dist: &Value, summary: &Value, scale: f64) {
    let h = hdr::decode(dist["hdr"].as_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let zeros = dist["zeros"].as_u64().unwrap_or(0);
    let (count, min, max) = (count(&dist["count"]), count(&dist["min"]), count(&dist["max"]));
    assert_eq!(h.len() + zeros, count, "{name}: count");
    assert_eq!((min as f64 / scale, max as f64 / scale), (num(&summary["min"]), num(&summary["max"])), "{name}: min, max");
    let mean = num(&dist["sum"]) / count as f64 / scale;
    assert!((mean - num(&summary["mean"])).abs() < 1e-9 * mean.max(1.0), "{name}: mean {mean} vs {}", summary["mean"]);
    if zeros == 0 {
        // Lengths keep no p95.
        for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")].into_iter().filter(|(_, k)| !summary[*k].is_null()) {
            // A latency reads the middle of its bucket (docs/metrics.md); a length, its
            // bucket's top edge.
            let v = h.value_at_quantile(q);
            let v = if scale > 1.0 { h.median_equivalent(v) } else { v };
            let got = v.clamp(min, max) as f64 / scale;
            assert_eq!(got, num(&summary[key]), "{name}: {key}");
        }
    }
}

#[test]
fn every_distribution_decodes_to_the_stage_figures() {
    // A reasoning stream (TTFT, answer TTFT, thinking, ITL, chunk gaps, lengths), then an
    // open-loop stage under a client-side rate limit (uncorrected latency, schedule lag,
    // limiter waits); attempts in both.
    let text = "name = \"dists\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
        [mock]\nbase_latency_ms = 5\nper_inflight_ms = 0\ninter_token_ms = 1\noutput_tokens = 8\nreasoning_tokens = 3\n\
        [prompts]\ntemplate = \"hello {i}\"\n\
        [[stage]]\nname = \"closed\"\nconcurrency = 4\nrequests = 40\n\
        [[stage]]\nname = \"open\"\nrate = 200\nrequests = 40\nrate_limit = { rpm = 6000 }\n";
    let (_, v) = run_scenario(text);
    assert_schema_valid(&v);
    assert_eq!(v["schema_version"], 4);
    let pairs = [
        ("e2e_us", "latency_ms"),
        ("attempt_us", "attempt_latency_ms"),
        ("ttft_us", "ttft_ms"),
        ("ttft_answer_us", "ttft_answer_ms"),
        ("thinking_us", "thinking_ms"),
        ("itl_us", "itl_ms"),
        ("chunk_gap_us", "chunk_gap_ms"),
    ];
    for s in v["stages"].as_array().unwrap() {
        let h = &s["histograms"];
        for (dist, summary) in pairs {
            round_trip(&format!("{} {dist}", s["name"]), &h[dist], &s[summary], 1000.0);
        }
        round_trip("input_tokens", &h["input_tokens"], &s["tokens"]["input_length"], 1.0);
        round_trip("output_tokens", &h["output_tokens"], &s["tokens"]["output_length"], 1.0);
        // The window on the wall clock: its end is its start plus the wall time.
        let t = |k: &str| humantime::parse_rfc3339(s[k].as_str().unwrap()).unwrap();
        let wall = t("window_end").duration_since(t("window_start")).unwrap().as_secs_f64();
        assert!((wall - num(&s["wall_time_s"])).abs() < 1e-5, "{wall} vs {}", s["wall_time_s"]);
        // Each second's histogram holds that second's successes.
        for sec in s["series"].as_array().unwrap().iter().filter(|x| count(&x["ok"]) > 0) {
            assert_eq!(hdr::decode(sec["e2e_us"].as_str().unwrap()).unwrap().len(), count(&sec["ok"]), "{sec}");
        }
    }
    let open = &v["stages"][1];
    round_trip("uncorrected", &open["histograms"]["latency_uncorrected_us"], &open["open_loop"]["latency_uncorrected_ms"], 1000.0);
    round_trip("lag", &open["histograms"]["schedule_lag_us"], &open["open_loop"]["schedule_lag_ms"], 1000.0);
    if open["rate_limiter"]["delayed"].as_u64() > Some(0) {
        round_trip("limiter", &open["histograms"]["limiter_wait_us"], &open["rate_limiter"]["wait_ms"], 1000.0);
    }
    // Where, when and how: the host, the command line, the scenario's sha256.
    assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{}", v["host"]);
    let cl: Vec<&str> = v["command_line"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(cl.contains(&"run") && cl.last().unwrap().ends_with("s.toml"), "{cl:?}");
    let sha = v["scenario_sha256"].as_str().unwrap();
    assert_eq!(sha, llmload::workload::provenance::FileRecord::of("s", text.as_bytes()).sha256);
}

#[test]
fn credentials_in_a_url_never_reach_the_command_line() {
    let (_d, path) = scenario(&quick("base_latency_ms = 1\nper_inflight_ms = 0", "[[stage]]\nrequests = 3\n"));
    let dir = path.parent().unwrap().to_path_buf();
    let json = dir.join("r.json");
    // The mock in its own process, named by a URL with credentials and a secret query.
    let (mut mock, url) = spawn_mock(&["--base-latency-ms", "1"]);
    let with_creds = url.replace("http://", "http://user:s3cret@") + "?key=s3cret";
    let mut c = cmd(&["run", "--headless", "--json"]);
    c.arg(&json).arg(format!("--base-url={with_creds}")).arg(&path);
    let out = run(c, std::time::Duration::from_secs(30));
    let _ = mock.kill();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    assert!(!text.contains("s3cret"), "a secret in the result");
    let v: Value = serde_json::from_str(&text).unwrap();
    let arg = v["command_line"].as_array().unwrap().iter().find(|a| a.as_str().unwrap().starts_with("--base-url=")).unwrap().clone();
    assert!(arg.as_str().unwrap().ends_with("?REDACTED"), "{arg}");
}
