//! `--prometheus-listen` scraped by a real Prometheus (Debian's, installed by
//! scripts/test): two shards of one run serve their live figures, Prometheus scrapes
//! both every second (loopback only, a temporary data directory), and a PromQL `sum`
//! over its HTTP API equals the shards' own counts. Also the endpoint's text itself.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A GET on 127.0.0.1:`port`; the status and the body (HTTP/1.0: the server closes).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string())))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus(bin: &std::path::Path, dir: &std::path::Path, targets: &[u16]) -> (Killed, u16) {
    let port = free_port();
    let list: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: llmload\n    static_configs:\n      - targets: [{}]\n", list.join(", ")),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus: scripts/test installs Debian's prometheus package");
    let guard = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/-/ready").is_none_or(|(s, _)| s != 200) {
        assert!(Instant::now() < deadline, "prometheus did not get ready in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, port)
}

/// A series' latest value in Prometheus; None while it has none.
fn latest(port: u16, metric: &str) -> Option<f64> {
    let q: String = metric
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (_, body) = get(port, &format!("/api/v1/query?query={q}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn query(port: u16, promql: &str) -> f64 {
    let q: String = promql
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"_.-".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let (status, body) = get(port, &format!("/api/v1/query?query={q}")).expect("prometheus answers");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = &v["data"]["result"];
    assert_eq!(result.as_array().map(|a| a.len()), Some(1), "{promql}: {body}");
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

const SCENARIO: &str = "name = \"prom\"\n[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n[mock]\nbase_latency_ms = 10\nper_inflight_ms = 0\ninter_token_ms = 2\noutput_tokens = 4\n\
                        [prompts]\ntemplate = \"hi {i}\"\n[[stage]]\nname = \"steady\"\nconcurrency = 8\nduration = \"3s\"\n";

#[test]
fn prometheus_sums_two_shards_to_their_own_counts() {
    let Some(bin) = part(program("prometheus"), "Debian's prometheus (scripts/test installs it)") else { return };
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let ports = [free_port(), free_port()];
    let (_prom, prom_port) = prometheus(&bin, d.path(), &ports);
    let shards: Vec<Child> = (0..2)
        .map(|i| {
            let mut c = cmd(&["run", "--headless", "--shard", &format!("{i}/2"), "--run-id", "prom-test", "--prometheus-linger", "4s"]);
            c.arg("--prometheus-listen")
                .arg(format!("127.0.0.1:{}", ports[i]))
                .arg("--json")
                .arg(d.path().join(format!("shard-{i}.json")))
                .arg(&path);
            c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (i, s) in shards.into_iter().enumerate() {
        let out = wait(s, Duration::from_secs(60));
        assert!(out.status.success(), "shard {i}: {}", out.stderr);
    }
    let counted = |field: &str| {
        (0..2).map(|i| count(&read_json(&d.path().join(format!("shard-{i}.json")))["stages"][0]["requests"][field])).sum::<u64>()
    };
    let ok = counted("ok");
    assert!(ok > 100, "{ok} requests: the shards ran");
    // Counters only rise: each series' largest sample is its final value, also once the
    // exited shard's series have gone stale.
    let sum = |metric: &str| query(prom_port, &format!("sum(max_over_time({metric}{{run_id=\"prom-test\"}}[5m]))"));
    assert_eq!(sum("llmload_requests_total") as u64, ok + counted("failed") + counted("cancelled"));
    assert_eq!(query(prom_port, "sum(max_over_time(llmload_requests_total{run_id=\"prom-test\",outcome=\"ok\"}[5m]))") as u64, ok);
    assert_eq!(sum("llmload_request_duration_seconds_count") as u64, ok, "the latency histogram counts every success");
    assert_eq!(query(prom_port, "count(max_over_time(llmload_run_done{run_id=\"prom-test\"}[5m]))") as u64, 2, "both shards were scraped");
}

#[test]
fn the_endpoint_speaks_the_text_format_while_the_run_goes_on() {
    let (_d, path) = scenario(SCENARIO);
    let port = free_port();
    let mut c = cmd(&["run", "--headless", "--prometheus-listen", &format!("127.0.0.1:{port}"), "--prometheus-linger", "1s"]);
    c.arg(&path);
    let child = Killed(c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some((200, body)) = get(port, "/metrics")
            && body.contains("llmload_requests_total{")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "no live figures within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(child);
    for line in [
        "# TYPE llmload_requests_total counter",
        "# TYPE llmload_in_flight gauge",
        "# TYPE llmload_request_duration_seconds histogram",
        "# TYPE llmload_ttft_seconds histogram",
    ] {
        assert!(body.contains(line), "{line} missing:\n{body}");
    }
    assert!(body.contains("stage=\"steady\"") && body.contains("shard=\"0/1\"") && body.contains("le=\"+Inf\""), "{body}");
    // Every sample line is NAME{labels} VALUE with a number for its value.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let v = l.rsplit(' ').next().unwrap();
        assert!(v.parse::<f64>().is_ok(), "not a sample: {l}");
    }
}

#[test]
fn a_port_in_use_is_one_line_and_exit_2() {
    let (_d, path) = scenario(SCENARIO);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = cmd(&["run", "--headless", "--prometheus-listen", &taken.local_addr().unwrap().to_string()]);
    c.arg(&path);
    let out = run(c, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.lines().any(|l| l.starts_with("error: --prometheus-listen") && l.contains("cannot listen")), "{}", out.stderr);
}

/// An independent parser agrees with ours: Debian's Prometheus scrapes the mock's
/// `/metrics` while llmload reads it beside a run, and the counters it holds at the end
/// are the values llmload recorded in its last scrape.
#[test]
fn prometheus_reads_the_mocks_counters_as_llmload_does() {
    let Some(bin) = part(program("prometheus"), "Debian's prometheus (scripts/test installs it)") else { return };
    use llmload::mock::{MockConfig, MockServer};
    let cfg = MockConfig { base_latency_ms: 20.0, inter_token_ms: 2.0, ..MockConfig::default() };
    let mock = MockServer::start(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mock_port: u16 = mock.base_url().rsplit(':').next().unwrap().trim_end_matches("/v1").parse().unwrap();
    let d = tempfile::tempdir().unwrap();
    let (_prom, prom_port) = prometheus(&bin, d.path(), &[mock_port]);
    let text = format!(
        "name = \"agree\"\n[target]\nbase_url = \"{}\"\nmodel = \"m\"\nstream = true\n[prompts]\nsynthetic = \"D(50,10)\"\ntokenizer = \"o200k_base\"\n\
         [[stage]]\nname = \"steady\"\nconcurrency = 4\nduration = \"3s\"\n",
        mock.base_url()
    );
    let path = d.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    let json = d.path().join("r.json");
    let mut c = cmd(&["run", "--headless", "--no-progress", "--json"]);
    c.arg(&json).arg(&path);
    let out = run(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.stderr);
    let v = read_json(&json);
    let last = v["server_metrics"]["endpoints"][0]["series"].as_array().unwrap().last().unwrap().clone();
    // The mock is idle now: Prometheus holds the same final values once it scrapes
    // again (every second): polled, within a deadline.
    for (name, ours) in [("vllm:prompt_tokens_total", "prompt_tokens"), ("vllm:generation_tokens_total", "generation_tokens")] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let theirs = loop {
            let got = latest(prom_port, name);
            if got == Some(num(&last[ours])) || Instant::now() > deadline {
                break got;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(theirs, Some(num(&last[ours])), "{name}: Prometheus {theirs:?}, llmload {}", last[ours]);
        let theirs = theirs.unwrap_or_default();
        assert!(theirs > 0.0, "{name}");
    }
}
