//! The server's own metrics read beside a run, end to end: the embedded mock's (vLLM's
//! names, found at its /metrics with nothing configured) agree with what the client
//! counted, and a capacity-bound mock is named admission-bound; an endpoint named with
//! `--server-metrics` that is not the Prometheus format is refused before any request;
//! one that dies or serves garbage mid-run costs the run nothing but its count of failed
//! scrapes.

mod common;
use common::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::Value;

/// The mock with `capacity`, 100 ms to the first token and 20 ms a token, streams of 16
/// tokens: a 2-way stage and an 8-way one of `n` requests each.
fn mock_run(capacity: Option<u32>, n: u32, args: &[&str]) -> (Output, Value) {
    mock_run_with(capacity, n, "", args)
}

/// As [`mock_run`], with `section` (TOML) added to the scenario.
fn mock_run_with(capacity: Option<u32>, n: u32, section: &str, args: &[&str]) -> (Output, Value) {
    let cap = capacity.map(|c| format!("capacity = {c}\n")).unwrap_or_default();
    let text = format!(
        "name = \"server\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
         [mock]\nbase_latency_ms = 100\ninter_token_ms = 20\n{cap}\
         [prompts]\nsynthetic = \"D(64,16)\"\n[request]\nignore_eos = true\n{section}\
         [[stage]]\nname = \"2-way\"\nconcurrency = 2\nrequests = {n}\n[[stage]]\nname = \"8-way\"\nconcurrency = 8\nrequests = {n}\n"
    );
    let (dir, path) = scenario(&text);
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).args(args).arg(&path);
    let out = run(c, Duration::from_secs(120));
    let v = if json.exists() { read_json(&json) } else { Value::Null };
    if !v.is_null() {
        assert_schema_valid(&v);
    }
    (out, v)
}

#[test]
fn the_mocks_own_metrics_agree_with_the_client_and_name_its_admission_limit() {
    let (out, v) = mock_run(Some(2), 24, &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let e = &v["server_metrics"]["endpoints"][0];
    assert_eq!((e["server"].as_str(), count(&e["scrapes_failed"])), (Some("vllm"), 0), "{e}");
    let series = e["series"].as_array().unwrap();
    assert!(series.iter().all(|p| num(&p["running"]) <= 2.0), "capacity 2: {series:?}");
    for s in v["stages"].as_array().unwrap() {
        let server = &s["server"][0];
        // The server's counters over the window: every token the client counted.
        assert_eq!(num(&server["generation_tokens"]["delta"]), num(&s["tokens"]["output"]), "{}: {server}", s["name"]);
        assert_eq!(num(&server["prompt_tokens"]["delta"]), num(&s["tokens"]["prompt"]), "{}: {server}", s["name"]);
        // Its TTFT histogram's mean is the client's, within what the wire adds.
        let (mock_ttft, client_ttft) = (num(&server["ttft_ms"]["mean"]), num(&s["ttft_ms"]["mean"]));
        assert!((client_ttft - mock_ttft).abs() < 15.0, "{}: server TTFT {mock_ttft} ms, client {client_ttft} ms", s["name"]);
        // Side by side: the client's count less the server's counter is nothing.
        let beside = &server["beside_client"];
        assert_eq!(num(&beside["output_tokens"]["difference"]), 0.0, "{}: {beside}", s["name"]);
        assert_eq!(num(&beside["output_tokens"]["client"]), num(&s["tokens"]["output"]));
        // The server's seconds are the stage's own: every one a second of its series,
        // running never above the capacity.
        let own: Vec<u64> = s["series"].as_array().unwrap().iter().map(|x| count(&x["t_s"])).collect();
        let seconds = server["seconds"].as_array().unwrap();
        assert!(seconds.len() >= own.len().saturating_sub(2), "about a scrape a second: {} of {}", seconds.len(), own.len());
        assert!(seconds.iter().all(|x| own.contains(&count(&x["t_s"])) && num(&x["running"]) <= 2.0), "{seconds:?} against {own:?}");
    }
    let eight = &v["stages"][1]["server"][0];
    assert!(num(&eight["waiting"]["max"]) > 0.0, "8 asked of 2: some wait: {eight}");
    let bound = eight["bound"].as_str().unwrap();
    assert!(bound.contains("the server admits at most 2 at once"), "{bound}");
    assert!(out.stdout.contains("8-way: server (server): requests queued"), "{}", out.stdout);
    // Of the 8-way TTFT, most was queue: said, with the queue's mean.
    assert!(bound.contains("ms was queue time"), "{bound}");
    assert!(v["stages"][0]["server"][0]["bound"].as_str().unwrap().contains("the server kept up"), "{}", v["stages"][0]["server"][0]);
}

/// A metrics server on loopback: `/metrics` as `answer` says for the k-th scrape.
fn metrics_server(answer: fn(u64) -> (u16, String)) -> (String, Arc<AtomicU64>) {
    slow_metrics_server(move |k| {
        let (status, body) = answer(k);
        (status, body, Duration::ZERO)
    })
}

/// As [`metrics_server`], each answer after its delay.
fn slow_metrics_server(answer: impl Fn(u64) -> (u16, String, Duration) + Clone + Send + Sync + 'static) -> (String, Arc<AtomicU64>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let seen = scrapes.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let k = seen.fetch_add(1, Ordering::Relaxed);
            let (status, body, delay) = answer(k);
            async move {
                tokio::time::sleep(delay).await;
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let base = serve_app(app);
    (base.replace("/v1", "/metrics"), scrapes)
}

#[test]
fn an_endpoint_named_that_is_not_the_format_is_refused_before_any_request() {
    let (url, scrapes) = metrics_server(|_| (200, "<!doctype html><html><body>Grafana</body></html>".into()));
    let (out, v) = mock_run(None, 4, &["--server-metrics", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let line = out.stderr.trim();
    assert!(line.contains("--server-metrics http://127.0.0.1:") && line.contains("not the Prometheus text format"), "{line}");
    assert!(!line.contains("Grafana"), "the body is never echoed: {line}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(v.is_null(), "no run, no result");
    assert_eq!(scrapes.load(Ordering::Relaxed), 1, "checked once");
}

#[test]
fn an_endpoint_that_dies_mid_run_costs_the_run_nothing() {
    // Good twice (the check and the first scrape), then garbage, a 500, then 3 s slow
    // (past its 1 s timeout) from then on.
    let (url, _) = slow_metrics_server(|k| match k {
        0 | 1 => (200, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n".into(), Duration::ZERO),
        2 => (200, "x{a=\"b\" 1\n".into(), Duration::ZERO),
        3 => (500, "down".into(), Duration::ZERO),
        _ => (200, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n".into(), Duration::from_secs(3)),
    });
    // Only the broken endpoint is read (`probe = false`), against a run reading none.
    let (out, v) = mock_run_with(None, 40, "[server_metrics]\nprobe = false\n", &["--server-metrics", &url]);
    let (quiet_out, quiet) = mock_run_with(None, 40, "[server_metrics]\nprobe = false\n", &[]);
    assert_eq!(out.status.code(), quiet_out.status.code(), "{}", out.stderr);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(quiet.get("server_metrics").is_none());
    let e = &v["server_metrics"]["endpoints"][0];
    assert!(count(&e["scrapes_failed"]) >= 3 && count(&e["scrapes_ok"]) >= 1, "{e}");
    assert!(e["first_error"].as_str().unwrap().contains("not the Prometheus text format"), "{e}");
    // The request figures are the run's without scraping: every request, the mock's
    // timings (100 ms + 15 × 20 ms at 2-way) within a few ms.
    for (s, q) in v["stages"].as_array().unwrap().iter().zip(quiet["stages"].as_array().unwrap()) {
        assert_eq!((count(&s["requests"]["ok"]), count(&s["requests"]["failed"])), (40, 0), "{}", s["name"]);
        let (p50, quiet_p50) = (num(&s["latency_ms"]["p50"]), num(&q["latency_ms"]["p50"]));
        assert!((p50 - quiet_p50).abs() < 15.0, "{}: e2e p50 {p50} ms scraping, {quiet_p50} ms not", s["name"]);
        let (ttft, quiet_ttft) = (num(&s["ttft_ms"]["p50"]), num(&q["ttft_ms"]["p50"]));
        assert!((ttft - quiet_ttft).abs() < 15.0, "{}: TTFT p50 {ttft} ms scraping, {quiet_ttft} ms not", s["name"]);
    }
    let p50 = num(&v["stages"][0]["latency_ms"]["p50"]);
    assert!((400.0..440.0).contains(&p50), "2-way e2e p50 {p50} ms");
}

/// A proxy in front of the mock that holds every request 300 ms before forwarding it:
/// the mock's own TTFT stays ~100 ms while the client's grows, and the stage says the
/// time went before the engine.
#[test]
fn time_spent_in_front_of_the_engine_is_named_so() {
    use llmload::mock::{MockConfig, MockServer};
    let cfg = MockConfig { base_latency_ms: 100.0, inter_token_ms: 5.0, ..MockConfig::default() };
    let mock = MockServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let upstream = format!("{}/chat/completions", mock.base_url());
    let app = Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let upstream = upstream.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let resp =
                    reqwest::Client::new().post(&upstream).header("content-type", "application/json").body(body).send().await.unwrap();
                let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("text/event-stream").to_string();
                ([("content-type", kind)], resp.bytes().await.unwrap())
            }
        }),
    );
    let proxy = serve_app(app);
    let text = format!(
        "name = \"proxied\"\n[target]\nbase_url = \"{proxy}\"\nmodel = \"m\"\nstream = true\n\
         [prompts]\nsynthetic = \"D(32,8)\"\ntokenizer = \"o200k_base\"\n[[stage]]\nname = \"behind a proxy\"\nconcurrency = 2\nrequests = 12\n"
    );
    let (dir, path) = scenario(&text);
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg("--server-metrics").arg(mock.base_url().replace("/v1", "/metrics")).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let s = &v["stages"][0];
    let bound = s["server"][0]["bound"].as_str().unwrap_or_default();
    assert!(bound.contains("the time went before the engine"), "{bound}: client TTFT {}", s["ttft_ms"]);
    assert!(num(&s["server"][0]["ttft_ms"]["mean"]) < 150.0 && num(&s["ttft_ms"]["p50"]) > 380.0, "{}", s["server"][0]);
}

/// A GPU exporter's energy counter (DCGM: mJ) beside the run gives joules per output
/// token over each window.
#[test]
fn gpu_energy_becomes_joules_per_output_token() {
    let (url, _) = metrics_server(|k| {
        let text = format!(
            "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{gpu=\"0\",UUID=\"GPU-1\"}} {}\n\
             # TYPE DCGM_FI_DEV_POWER_USAGE gauge\nDCGM_FI_DEV_POWER_USAGE{{gpu=\"0\",UUID=\"GPU-1\"}} 350.000000\n\
             # TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{{gpu=\"0\",UUID=\"GPU-1\"}} 40\nDCGM_FI_DEV_GPU_UTIL{{gpu=\"1\",UUID=\"GPU-2\"}} 0\n\
             # TYPE DCGM_FI_DEV_SM_CLOCK gauge\nDCGM_FI_DEV_SM_CLOCK{{gpu=\"0\",UUID=\"GPU-1\"}} 1980\nDCGM_FI_DEV_SM_CLOCK{{gpu=\"1\",UUID=\"GPU-2\"}} 210\n",
            1_000_000 + k * 350_000
        );
        (200, text)
    });
    let (out, v) = mock_run(None, 24, &["--server-metrics", &url]);
    assert!(out.status.success(), "{}", out.stderr);
    for s in v["stages"].as_array().unwrap() {
        let g = &s["server"][0];
        assert_eq!(g["server"], "dcgm", "{g}");
        assert_eq!(num(&g["gpu_power_w"]["max"]), 350.0, "{g}");
        let (joules, per_token) = (num(&g["gpu_energy_j"]["delta"]), num(&g["joules_per_output_token"]));
        assert!(joules > 0.0, "{g}");
        assert!((per_token * num(&s["tokens"]["output"]) - joules).abs() < 1e-6, "{g}");
        assert!((num(&g["output_tokens_per_joule"]) * per_token - 1.0).abs() < 1e-9, "{g}");
        // Each GPU apart: the second sat idle at its lowest clock beside the first.
        let each: Vec<(&str, f64, f64)> = g["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["gpu"].as_str().unwrap(), num(&x["util"]["max"]), num(&x["sm_clock_mhz"]["max"])))
            .collect();
        assert_eq!(each, [("0", 40.0, 1980.0), ("1", 0.0, 210.0)], "{g}");
        assert_eq!((num(&g["gpu_util"]["max"]), num(&g["gpu_sm_clock_mhz"]["max"])), (20.0, 1095.0), "means over the GPUs");
    }
}

/// `[server_metrics]` names endpoints with a name, an interval and headers (a bearer token
/// from the environment, sent and never shown); a broken section is a located error
/// before any request; `probe = false` reads nothing.
#[test]
fn the_scenario_names_endpoints_with_their_headers() {
    let secret = "s3cret-metrics-token-93ab";
    let seen_auth = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = seen_auth.clone();
    let app = Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            seen.lock().unwrap().push(auth.clone());
            async move {
                match auth == format!("Bearer {secret}") {
                    true => {
                        (axum::http::StatusCode::OK, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 55\n".to_string())
                    }
                    false => (axum::http::StatusCode::UNAUTHORIZED, "no".to_string()),
                }
            }
        }),
    );
    let url = serve_app(app).replace("/v1", "/metrics");
    let body = |section: &str| {
        format!(
            "name = \"named\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\ntemplate = \"hi {{i}}\"\n{section}\n\
             [[stage]]\nname = \"one\"\nconcurrency = 2\nrequests = 20\n"
        )
    };
    let section = format!(
        "[server_metrics]\nendpoints = [{{ url = \"{url}\", name = \"gpu\", interval = \"250ms\", headers = {{ Authorization = {{ env = \"LLMLOAD_TEST_METRICS_AUTH\" }} }} }}]\n"
    );
    let (dir, path) = scenario(&body(&section));
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.env("LLMLOAD_TEST_METRICS_AUTH", format!("Bearer {secret}")).arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(!text.contains(secret) && !out.stdout.contains(secret) && !out.stderr.contains(secret), "the token is never shown");
    let v: Value = serde_json::from_str(&text).unwrap();
    let e = &v["server_metrics"]["endpoints"][0];
    assert_eq!((e["name"].as_str(), e["server"].as_str(), e["interval_s"].as_f64()), (Some("gpu"), Some("dcgm"), Some(0.25)), "{e}");
    assert_eq!(count(&e["scrapes_failed"]), 0, "{e}");
    assert!(seen_auth.lock().unwrap().iter().all(|a| a.ends_with(secret)), "every scrape carried the token");
    assert_eq!(num(&v["stages"][0]["server"][0]["gpu_util"]["max"]), 55.0);
    // The scenario as asked is recorded, the header by its variable's name only.
    let asked = &v["scenario"]["server_metrics"]["endpoints"][0];
    assert_eq!((asked["name"].as_str(), asked["interval"].as_f64()), (Some("gpu"), Some(0.25)), "{asked}");
    assert_eq!(asked["headers"]["Authorization"], serde_json::json!({"env": "LLMLOAD_TEST_METRICS_AUTH"}));

    // A broken section: located, before any request.
    let (_d, path) = scenario(&body("[server_metrics]\nendpoints = [{ url = \"ftp://example.invalid/m\" }]\n"));
    let mut c = cmd(&["run", "--headless", "--no-progress"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("s.toml:8:22: ")
            && out.stderr.contains("server_metrics.endpoints[0].url \"ftp://example.invalid/m\" is not an http(s) URL"),
        "{}",
        out.stderr
    );

    // probe = false: nothing read, nothing said.
    let (dir, path) = scenario(&body("[server_metrics]\nprobe = false\n"));
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    assert!(read_json(&json).get("server_metrics").is_none());
}

/// The shipped `scenarios/server-knee.toml`: the mock's KV cache holds 4 requests, and
/// llmload names the KV cache as the bound at the knee and beyond, from the mock's own
/// metrics read with nothing configured.
#[test]
fn the_shipped_knee_is_named_the_kv_cache() {
    let (out, v) = run_shipped("scenarios/server-knee.toml");
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(v["sweep"]["knee"]["stage"], "4-way", "{}", v["sweep"]);
    let at_knee = out.stdout.lines().find(|l| l.starts_with("at the knee (4-way):")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(at_knee.contains("the KV cache was 100 % full with 4 running"), "{at_knee}");
    for s in v["stages"].as_array().unwrap() {
        let server = &s["server"][0];
        assert!(num(&server["running"]["max"]) <= 4.0, "{}: {server}", s["name"]);
        let load = count(&s["concurrency"]);
        if load > 4 {
            assert!(
                server["bound"].as_str().unwrap().contains("with the KV cache 100 % full: the KV cache bound it"),
                "{}: {server}",
                s["name"]
            );
            assert!(num(&server["waiting"]["max"]) >= (load - 4) as f64 - 1.0, "{}: {server}", s["name"]);
        }
    }
}

/// `--reset-prefix-cache` empties the server's prefix cache before each stage (the mock
/// serves vLLM's `POST /reset_prefix_cache`): a second stage sending the first's prompts
/// again finds them cached without it, and not with it; the result says it worked. A
/// route the server does not serve is said, per stage, not to have worked, and the run
/// goes on. `keep` records the families it names raw.
#[test]
fn the_prefix_cache_is_emptied_before_each_stage_when_asked() {
    // Each prompt starts with its number: no two share a block, so only a prompt sent
    // before (the same number, in the stage before) can hit.
    let text = "name = \"reset\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 5\n\
                [prompts]\ntemplate = \"{i} Summarise the history of the printing press in Europe, from the first movable type to the steam press, in plain words for a young reader who has never seen one.\"\n\
                [server_metrics]\nkeep = [\"^vllm:prefix_cache_(queries|hits)_total$\"]\n\
                [[stage]]\nname = \"first\"\nconcurrency = 2\nrequests = 12\n[[stage]]\nname = \"again\"\nconcurrency = 2\nrequests = 12\n";
    let (dir, path) = scenario(text);
    let ran = |flag: Option<&str>| {
        let json = dir.path().join("r.json");
        let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
        c.arg(&json).args(flag).arg(&path);
        let out = run(c, Duration::from_secs(60));
        assert!(out.status.success(), "{flag:?}: {}", out.stderr);
        let v = read_json(&json);
        assert_schema_valid(&v);
        (out, v)
    };
    let hits = |v: &Value, i: usize| num(&v["stages"][i]["server"][0]["prefix_hit_rate"]);

    let (_, kept) = ran(None);
    assert!(hits(&kept, 1) > 0.8, "without a reset the second stage finds its prompts: {}", kept["stages"][1]["server"][0]);
    assert!(kept["stages"][1].get("prefix_cache_reset").is_none());
    assert_eq!(kept["scenario"]["server_metrics"]["keep"], serde_json::json!(["^vllm:prefix_cache_(queries|hits)_total$"]));
    // keep: both counters, raw, one point a scrape; the last reads what the series does.
    let e = &kept["server_metrics"]["endpoints"][0];
    let raw = e["kept"].as_array().unwrap();
    let names: Vec<&str> = raw.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"], "{}", e["kept"]);
    let last = |k: &Value| num(&k["points"].as_array().unwrap().last().unwrap()[1]);
    assert_eq!(raw[1]["points"].as_array().unwrap().len(), e["series"].as_array().unwrap().len());
    assert_eq!(last(&raw[1]), num(&e["series"].as_array().unwrap().last().unwrap()["prefix_queries"]));

    let (_, reset) = ran(Some("--reset-prefix-cache"));
    assert!(hits(&reset, 1) < 0.05, "emptied before the second stage: {}", reset["stages"][1]["server"][0]);
    for s in reset["stages"].as_array().unwrap() {
        assert_eq!(s["prefix_cache_reset"], serde_json::json!({"ok": true, "path": "/reset_prefix_cache"}), "{}", s["name"]);
    }

    let (out, failed) = ran(Some("--reset-prefix-cache=/flush"));
    let r = &failed["stages"][1]["prefix_cache_reset"];
    assert_eq!((r["ok"].as_bool(), r["error"].as_str()), (Some(false), Some("POST /flush: status 404")), "{r}");
    assert_eq!(out.stderr.matches("the prefix cache could not be emptied").count(), 1, "said once: {}", out.stderr);
    assert!(hits(&failed, 1) > 0.8);

    let mut c = cmd(&["run", "--headless", "--no-progress", "--reset-prefix-cache=flush"]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--reset-prefix-cache=\"flush\": give the server's path"), "{}", out.stderr);
}

/// The mock's decode step grows with the batch (`batch_decode_ms`): each token comes
/// `inter_token_ms + batch_decode_ms × (running − 1)` after the one before, so a 6-way
/// stage's ITL is 10 + 5 × 5 = 35 ms against 1-way's 10, with no queue — and the
/// stage's sentence says decoding the larger batch bound it. Off by default.
#[test]
fn a_decode_step_that_grows_with_the_batch_is_named() {
    let text = "name = \"batch\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n\
                [mock]\nbase_latency_ms = 20\ninter_token_ms = 10\nbatch_decode_ms = 5\n\
                [prompts]\ntemplate = \"hi {i}\"\n[request]\nmax_tokens = 12\nignore_eos = true\n\
                [[stage]]\nname = \"1-way\"\nconcurrency = 1\nrequests = 8\n[[stage]]\nname = \"6-way\"\nconcurrency = 6\nrequests = 24\n";
    let (dir, path) = scenario(text);
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let itl = |i: usize| num(&v["stages"][i]["itl_ms"]["p50"]);
    assert!((9.5..14.0).contains(&itl(0)), "1-way: the step alone: {}", itl(0));
    assert!((33.0..42.0).contains(&itl(1)), "6-way: 10 + 5 × 5 ms: {}", itl(1));
    let server = &v["stages"][1]["server"][0];
    assert_eq!(num(&server["waiting"]["max"]), 0.0, "{server}");
    let said = server["bound"].as_str().unwrap();
    assert!(said.contains("as long as in 1-way") && said.ends_with("decoding the larger batch bound it"), "{said}");
    assert!(out.stdout.contains("6-way: server (server): no request waited"), "{}", out.stdout);
}

/// A DCGM exporter named beside the server adds to the target's own metrics (still
/// probed): with its GPUs busy, the server's stage with no queue is named compute-bound
/// from the GPUs' figures; the exporter alone claims nothing (it runs no requests).
#[test]
fn busy_gpus_beside_the_server_are_named_compute_bound() {
    let (url, _) = metrics_server(|_| {
        (200, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 99\nDCGM_FI_DEV_GPU_UTIL{gpu=\"1\"} 97\n".to_string())
    });
    // No capacity: nothing waits.
    let text = "name = \"gpu\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 50\n\
                [prompts]\ntemplate = \"hi {i}\"\n[[stage]]\nname = \"4-way\"\nconcurrency = 4\nrequests = 40\n";
    let (dir, path) = scenario(text);
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).args(["--server-metrics", &url]).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let names: Vec<(&str, &str)> = v["server_metrics"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["server"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("server", "dcgm"), ("target", "vllm")], "the flag's endpoint, then the target's own");
    let servers = v["stages"][0]["server"].as_array().unwrap();
    let bound = |kind: &str| servers.iter().find(|s| s["server"] == kind).map(|s| s["bound"].clone()).unwrap();
    assert_eq!(bound("dcgm"), Value::Null, "an exporter of GPUs alone runs no requests: nothing claimed");
    let said = bound("vllm");
    assert!(said.as_str().unwrap().contains("no request waited with the GPUs 98 % busy: compute bound it"), "{said}");
    assert!(out.stdout.contains("4-way: server (target): no request waited with the GPUs 98 % busy"), "{}", out.stdout);
}

/// GET `path` of the server at `api` (an API root, `…/v1`): its body.
fn http_get(api: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = api.trim_start_matches("http://").trim_end_matches("/v1");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// Against `llmload mock` on its own (its /mock/stats the truth, read after the run):
/// the requests the server's e2e histogram grew by over the windows are every request
/// it served, and it was asked to empty its prefix cache once a stage.
#[test]
fn the_series_agree_with_the_mocks_own_stats() {
    let (mut mock, url) = spawn_mock(&["--capacity", "2", "--base-latency-ms", "40", "--inter-token-ms", "5"]);
    let text = format!(
        "name = \"truth\"\n[target]\nbase_url = \"{url}\"\nmodel = \"m\"\nstream = true\n[prompts]\ntemplate = \"hi {{i}}\"\n\
         [request]\nmax_tokens = 8\nignore_eos = true\n\
         [[stage]]\nname = \"2-way\"\nconcurrency = 2\nrequests = 12\n[[stage]]\nname = \"6-way\"\nconcurrency = 6\nrequests = 24\n"
    );
    let (dir, path) = scenario(&text);
    let json = dir.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--reset-prefix-cache", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    let stats: Value = serde_json::from_str(&http_get(&url, "/mock/stats")).unwrap();
    let _ = mock.kill();
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    assert_eq!((count(&stats["ok"]), count(&stats["prefix_cache_resets"])), (36, 2), "{stats}");
    let served: f64 = v["stages"].as_array().unwrap().iter().map(|s| num(&s["server"][0]["e2e_ms"]["count"])).sum();
    assert_eq!(served, 36.0, "the server's e2e histogram grew by every request it served");
    // 6 asked of 2: the server's own queue-time histogram says they waited (a gauge
    // read once a second may miss a queue a second long).
    let six = &v["stages"][1]["server"][0];
    assert!(num(&six["running"]["max"]) <= 2.0 && num(&six["queue_ms"]["mean"]) > 50.0, "{six}");
}
