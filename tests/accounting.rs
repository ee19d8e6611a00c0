//! The accounting invariant under random fault mixes: every request started ends as
//! exactly one of ok, failed (by kind) or cancelled, in every live snapshot and at the
//! end; every attempt llmload counts reached the mock, and every fault the mock injected
//! is seen as a failed attempt of the right kind. Traffic: the embedded mock on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use llmload::engine::Stop;
use llmload::mock::{MockConfig, MockServer};
use llmload::run::{RunOptions, run_with_stop};
use llmload::scenario::Scenario;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Mix {
    e500: f64,
    e503: f64,
    e429: f64,
    malformed: f64,
    disconnect: f64,
    stall: f64,
    drip: f64,
}

fn mix() -> impl Strategy<Value = Mix> {
    // Each fault off or up to 15 %, so that any mix sums to at most 1.
    let f = || prop_oneof![Just(0.0), 0.01f64..0.15];
    (f(), f(), f(), f(), f(), f(), f()).prop_map(|(e500, e503, e429, malformed, disconnect, stall, drip)| Mix {
        e500,
        e503,
        e429,
        malformed,
        disconnect,
        stall,
        drip,
    })
}

fn mock_config(m: &Mix, seed: u64, rpm: Option<f64>) -> MockConfig {
    let mut errors = BTreeMap::new();
    for (status, rate) in [("500", m.e500), ("503", m.e503), ("429", m.e429)] {
        if rate > 0.0 {
            errors.insert(status.to_string(), rate);
        }
    }
    MockConfig {
        base_latency_ms: 2.0,
        per_inflight_ms: 0.0,
        inter_token_ms: 1.0,
        output_tokens: 6,
        seed,
        errors,
        retry_after_ms: Some(5.0),
        rate_limit_rpm: rpm,
        malformed_rate: m.malformed,
        disconnect_rate: m.disconnect,
        stall_rate: m.stall,
        stall_ms: 400.0,
        drip_rate: m.drip,
        drip_ms: 5.0,
        ..MockConfig::default()
    }
}

struct Case {
    stream: bool,
    concurrency: u32,
    requests: u64,
    max_attempts: u32,
    /// A client-side limit (requests per minute), so stops land in limiter waits too.
    client_rpm: Option<f64>,
    /// Stop once this many requests of the first stage have ended; hard at once, or
    /// soft (in-flight requests finish; retries and limiter waits are abandoned).
    stop_after: Option<(u64, bool)>,
}

/// Runs two stages against a mock with the mix; returns the result JSON, the problems
/// seen in live snapshots, and the mock's own counts.
fn run(m: &Mix, seed: u64, rpm: Option<f64>, c: &Case) -> (serde_json::Value, Vec<String>, llmload::mock::MockStats) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mock = MockServer::start(mock_config(m, seed, rpm), SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let text = format!(
        "[target]\nbase_url = \"{}\"\nmodel = \"m\"\nstream = {}\ntimeout = \"3s\"\nidle_timeout = \"150ms\"\n\
         [prompts]\ntemplate = \"hello {{i}}\"\n\
         {}\
         [retry]\nmax_attempts = {}\nbackoff = \"1ms\"\nmax_backoff = \"4ms\"\non = [\"429\", \"5xx\", \"connect\", \"timeout\", \"transport\"]\n\
         [[stage]]\nname = \"a\"\nconcurrency = {}\nrequests = {}\n\
         [[stage]]\nname = \"b\"\nconcurrency = 1\nrequests = 5\n",
        mock.base_url(),
        c.stream,
        c.client_rpm.map_or(String::new(), |r| format!("[rate_limit]\nrpm = {r}\n")),
        c.max_attempts,
        c.concurrency,
        c.requests
    );
    let scenario = Scenario::parse(&text, "mix.toml", None).unwrap();
    let problems = Arc::new(Mutex::new(Vec::new()));
    let seen = problems.clone();
    let stop_after = c.stop_after;
    let watcher: llmload::run::Watcher = Box::new(move |mut rx, stop: Stop| {
        tokio::spawn(async move {
            loop {
                {
                    let snap = rx.borrow_and_update().clone();
                    if let Some((n, hard)) = stop_after
                        && snap.current.as_ref().is_some_and(|s| s.done() >= n)
                    {
                        stop.soft.cancel();
                        if hard {
                            stop.hard.cancel();
                        }
                    }
                    let mut p = seen.lock().unwrap();
                    for s in &snap.finished {
                        if s.started != s.ok + s.failed + s.cancelled {
                            p.push(format!("finished {}: started {} != {} + {} + {}", s.info.name, s.started, s.ok, s.failed, s.cancelled));
                        }
                    }
                    if let Some(s) = &snap.current
                        && s.ok + s.failed + s.cancelled > s.started
                    {
                        p.push(format!("live {}: {} ended of {} started", s.info.name, s.done(), s.started));
                    }
                    for s in snap.finished.iter().map(|s| &**s).chain(&snap.current) {
                        if s.failed != s.failures.values().sum::<u64>() {
                            p.push(format!("{}: failed {} != sum of kinds {:?}", s.info.name, s.failed, s.failures));
                        }
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
    let outcome = rt.block_on(run_with_stop(scenario, opts, Stop::default())).unwrap();
    let stats = mock.stats();
    drop(mock);
    let problems = problems.lock().unwrap().clone();
    (serde_json::to_value(&outcome.result).unwrap(), problems, stats)
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_request_and_every_fault_is_accounted(
        m in mix(),
        seed in any::<u64>(),
        stream in any::<bool>(),
        concurrency in 1u32..12,
        requests in 20u64..60,
        max_attempts in 1u32..4,
        limited in any::<bool>(),
        client_rpm in prop_oneof![Just(None), Just(Some(3000.0)), Just(Some(12000.0))],
        stop_after in proptest::option::of((1u64..20, any::<bool>())),
    ) {
        // A server-side limit above the mock's pace but hit by bursts, sometimes.
        let rpm = limited.then_some(3000.0);
        let case = Case { stream, concurrency, requests, max_attempts, client_rpm, stop_after };
        let (v, problems, mock) = run(&m, seed, rpm, &case);
        prop_assert!(problems.is_empty(), "live snapshots broke the invariant: {problems:?}");
        let stages = v["stages"].as_array().unwrap();
        prop_assert!(!stages.is_empty() && stages.len() <= 2);
        if stop_after.is_none() {
            prop_assert_eq!(stages.len(), 2);
        }
        let (mut attempts, mut cancelled, mut http_5xx, mut http_429) = (0, 0, 0, 0);
        for s in stages {
            let r = &s["requests"];
            prop_assert_eq!(u(&r["started"]), u(&r["ok"]) + u(&r["failed"]) + u(&r["cancelled"]), "{}", s);
            let failures: u64 = s["failures"].as_object().unwrap().values().map(u).sum();
            prop_assert_eq!(u(&r["failed"]), failures);
            let retries: u64 = s["retries"]["by_cause"].as_object().unwrap().values().map(u).sum();
            prop_assert_eq!(u(&s["retries"]["total"]), retries);
            // Each attempt sent ended ok, failed (finally, or before a retry), or was
            // cancelled by a stop.
            prop_assert_eq!(u(&s["retries"]["attempts"]), u(&r["ok"]) + failures + u(&r["cancelled"]) + retries, "{}", s);
            prop_assert!(u(&s["retries"]["attempts"]) <= u(&r["started"]) * u64::from(max_attempts));
            attempts += u(&s["retries"]["attempts"]);
            cancelled += u(&r["cancelled"]);
            let seen = |k: &str| u(&s["failures"][k]) + u(&s["retries"]["by_cause"][k]);
            http_5xx += seen("http_5xx");
            http_429 += seen("http_429");
        }
        // Every attempt counted here reached the mock (a cancelled one may not have),
        // and no other request did.
        prop_assert!(mock.requests <= attempts && mock.requests + cancelled >= attempts, "{attempts} attempts, mock: {:?}", mock);
        // Every status the mock injected was seen as a failed attempt of its kind
        // (unless a stop cancelled the attempt before its answer was read).
        let injected = |k: &str| mock.injected.get(k).copied().unwrap_or(0);
        let (inj_5xx, inj_429) = (injected("500") + injected("503"), injected("429") + mock.rate_limited);
        if cancelled == 0 {
            prop_assert_eq!(http_5xx, inj_5xx, "mock: {:?}", mock);
            prop_assert_eq!(http_429, inj_429, "mock: {:?}", mock);
        } else {
            prop_assert!(http_5xx <= inj_5xx && http_5xx + cancelled >= inj_5xx, "mock: {:?}", mock);
            prop_assert!(http_429 <= inj_429 && http_429 + cancelled >= inj_429, "mock: {:?}", mock);
        }
    }
}
