//! What the server's metrics say, as the result records it: each endpoint's per-second
//! series on the wall clock (the stage's own `series` use the same seconds), and per
//! stage, each known figure over the stage's window — gauges as mean, p50 and max;
//! counters as the window's delta and rate; histograms as the window's delta read at
//! p50 and p99 (linear within a bucket, as Prometheus' `histogram_quantile` reads them).

use serde::{Deserialize, Serialize};

use super::keep::KeptSeries;
use super::parse::Hist;
use super::scrape::{Point, Scraped};
use super::vocab::{Reading, Server};

/// The server's metrics over the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerMetrics {
    pub endpoints: Vec<EndpointRecord>,
    /// Why no endpoint was read, when the probe found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub name: String,
    pub url: String,
    pub server: Option<Server>,
    pub interval_s: f64,
    pub scrapes_ok: u64,
    pub scrapes_failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub series: Vec<SeriesPoint>,
    /// Families outside the vocabulary that `keep` matched, raw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<KeptSeries>,
    /// Series `keep` matched past the most kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One scrape in the vocabulary (histograms are summarised per stage, not per second).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SeriesPoint {
    /// Unix seconds.
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_queries: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hits: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_energy_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mib: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_sm_clock_mhz: Option<f64>,
}

impl SeriesPoint {
    fn of(p: &Point) -> SeriesPoint {
        let r = &p.reading;
        SeriesPoint {
            t: p.at,
            running: r.running,
            waiting: r.waiting,
            kv_cache_usage: r.kv_cache_usage,
            prefix_queries: r.prefix_queries,
            prefix_hits: r.prefix_hits,
            preemptions: r.preemptions,
            prompt_tokens: r.prompt_tokens,
            generation_tokens: r.generation_tokens,
            gpu_util: r.gpu_util,
            gpu_power_w: r.gpu_power_w,
            gpu_energy_j: r.gpu_energy_j,
            gpu_memory_mib: r.gpu_memory_mib,
            gpu_sm_clock_mhz: r.gpu_sm_clock_mhz,
        }
    }
}

impl EndpointRecord {
    pub fn of(s: &Scraped) -> EndpointRecord {
        EndpointRecord {
            name: s.name.clone(),
            url: s.url.clone(),
            server: s.server,
            interval_s: s.interval.as_secs_f64(),
            scrapes_ok: s.ok,
            scrapes_failed: s.failed,
            first_error: s.first_error.clone(),
            series: s.points.iter().map(SeriesPoint::of).collect(),
            kept: s.kept.series(),
            kept_dropped: s.kept.dropped,
        }
    }
}

/// A gauge over a window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Gauge {
    pub mean: f64,
    pub p50: f64,
    pub max: f64,
}

/// A counter over a window: what it grew by, per second.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Counter {
    pub delta: f64,
    pub per_s: f64,
}

/// A histogram's growth over a window, in ms.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
}

/// One endpoint's figures over one stage's window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageServer {
    pub endpoint: String,
    pub server: Option<Server>,
    /// Scrapes inside the window.
    pub scrapes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_w: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_sm_clock_mhz: Option<Gauge>,
    /// Each GPU's own gauges (DCGM), so one idle beside busy ones shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuStage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Counter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<Counter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptions: Option<Counter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_energy_j: Option<Counter>,
    /// Prefix-cache hits over queries in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_hit_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<Latency>,
    /// A request's time in prefill and in decode (vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_ms: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<Latency>,
    /// With GPU energy (DCGM): joules per output token the client received, and tokens
    /// per joule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_output_token: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_joule: Option<f64>,
    /// The client's figures against the server's over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beside_client: Option<Beside>,
    /// Its gauges on the stage's own seconds (the `t_s` of the stage's `series`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<ServerSecond>,
    /// What bound the server over the window, in a sentence (`diagnose.rs`), where its
    /// figures say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
}

/// One figure from both sides: `difference` is the client's less the server's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Pair {
    pub client: f64,
    pub server: f64,
    pub difference: f64,
}

impl Pair {
    pub fn of(client: f64, server: f64) -> Pair {
        Pair { client, server, difference: client - server }
    }
}

/// The client's figures against the server's over the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Beside {
    /// TTFT p50 and p99, ms: the server's read from its histogram (as coarse as its
    /// buckets; its mean is in `ttft_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<Pair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p99_ms: Option<Pair>,
    /// Prompt and output tokens of the window: the client's count against the server's
    /// counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Pair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<Pair>,
}

/// One of the stage's seconds as the server saw it: its last scrape in that second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerSecond {
    /// The stage's second, as in its `series`.
    pub t_s: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_power_w: Option<f64>,
    /// Tokens the server counted per second, from the scrape before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_per_s: Option<f64>,
}

/// One GPU over a window: its `hostname:gpu` (or `gpu`) and its gauges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GpuStage {
    pub gpu: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub util: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<Gauge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<Gauge>,
}

/// Each GPU's gauges over the scrapes `inside` a window.
fn gpus(inside: &[&Point]) -> Vec<GpuStage> {
    let mut names: Vec<&str> = Vec::new();
    for g in inside.iter().flat_map(|p| &p.reading.gpus) {
        if !names.contains(&g.gpu.as_str()) {
            names.push(&g.gpu);
        }
    }
    let of = |name: &str, f: fn(&super::vocab::Gpu) -> Option<f64>| {
        summarise(inside.iter().flat_map(|p| &p.reading.gpus).filter(|g| g.gpu == name).filter_map(f).collect())
    };
    names
        .into_iter()
        .map(|n| GpuStage {
            gpu: n.to_string(),
            util: of(n, |g| g.util),
            power_w: of(n, |g| g.power_w),
            memory_mib: of(n, |g| g.memory_mib),
            sm_clock_mhz: of(n, |g| g.sm_clock_mhz),
        })
        .collect()
}

/// How long after a window closes its own scrape comes (the snapshots' 100 ms, and the
/// scrape's trip).
const CLOSE_SCRAPE_WITHIN: f64 = 1.0;

/// `s`'s figures over the window `from`..`to` (Unix seconds); None without a scrape in
/// it or on both sides of it.
pub fn stage(s: &Scraped, from: f64, to: f64) -> Option<StageServer> {
    let inside: Vec<&Point> = s.points.iter().filter(|p| p.at >= from && p.at <= to).collect();
    // A counter is read between the scrapes nearest the window's opening and its
    // closing: the scraper reads one as each happens (within the snapshots' 100 ms),
    // else the nearest tick stands in, a scrape's interval at most away.
    let (before, after) = (s.points.iter().rev().find(|p| p.at < from), s.points.iter().find(|p| p.at > to));
    if inside.is_empty() && (before.is_none() || after.is_none()) {
        return None;
    }
    let nearest =
        |at: f64, from_on: f64| s.points.iter().filter(|p| p.at >= from_on).min_by(|a, b| (a.at - at).abs().total_cmp(&(b.at - at).abs()));
    let first = nearest(from, f64::MIN)?;
    // A counter that grows as a request ends (llama.cpp's) must be read after the
    // window's last request: the close's own scrape (the first within a second after
    // it), not a tick just before it that happens to be nearer.
    let closing = after.filter(|p| p.at <= to + CLOSE_SCRAPE_WITHIN);
    let last = match closing {
        Some(p) => p,
        None => nearest(to, first.at)?,
    };
    let span = last.at - first.at;
    let gauge = |f: fn(&Reading) -> Option<f64>| summarise(inside.iter().filter_map(|p| f(&p.reading)).collect());
    let counter = |f: fn(&Reading) -> Option<f64>| {
        let delta = f(&last.reading)? - f(&first.reading)?;
        Some(Counter { delta, per_s: if span > 0.0 { delta / span } else { 0.0 } })
    };
    let latency = |f: fn(&Reading) -> Option<&Hist>| grown(f(&first.reading), f(&last.reading)?);
    let hits = counter(|r| r.prefix_hits);
    let queries = counter(|r| r.prefix_queries);
    Some(StageServer {
        endpoint: s.name.clone(),
        server: s.server,
        scrapes: inside.len() as u64,
        running: gauge(|r| r.running),
        waiting: gauge(|r| r.waiting),
        kv_cache_usage: gauge(|r| r.kv_cache_usage),
        gpu_util: gauge(|r| r.gpu_util),
        gpu_power_w: gauge(|r| r.gpu_power_w),
        gpu_sm_clock_mhz: gauge(|r| r.gpu_sm_clock_mhz),
        gpus: gpus(&inside),
        prompt_tokens: counter(|r| r.prompt_tokens),
        generation_tokens: counter(|r| r.generation_tokens),
        preemptions: counter(|r| r.preemptions),
        gpu_energy_j: counter(|r| r.gpu_energy_j),
        prefix_hit_rate: hits.zip(queries).filter(|(_, q)| q.delta > 0.0).map(|(h, q)| h.delta / q.delta),
        ttft_ms: latency(|r| r.ttft.as_ref()),
        e2e_ms: latency(|r| r.e2e.as_ref()),
        queue_ms: latency(|r| r.queue.as_ref()),
        itl_ms: latency(|r| r.itl.as_ref()),
        prefill_ms: latency(|r| r.prefill.as_ref()),
        decode_ms: latency(|r| r.decode.as_ref()),
        joules_per_output_token: None,
        output_tokens_per_joule: None,
        beside_client: None,
        seconds: Vec::new(),
        bound: None,
    })
}

fn summarise(mut v: Vec<f64>) -> Option<Gauge> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Gauge { mean: v.iter().sum::<f64>() / v.len() as f64, p50: v[(v.len() - 1) / 2], max: v[v.len() - 1] })
}

/// What a histogram gained from `before` to `after`, in ms; None when nothing was added.
fn grown(before: Option<&Hist>, after: &Hist) -> Option<Latency> {
    let was = |le: f64| before.and_then(|b| b.buckets.iter().find(|x| x.0 == le)).map_or(0.0, |x| x.1);
    let buckets: Vec<(f64, f64)> = after.buckets.iter().map(|&(le, n)| (le, (n - was(le)).max(0.0))).collect();
    let count = after.count - before.map_or(0.0, |b| b.count);
    let sum = after.sum - before.map_or(0.0, |b| b.sum);
    (count > 0.0).then(|| Latency {
        count,
        mean: sum / count * 1e3,
        p50: quantile(&buckets, 0.5) * 1e3,
        p99: quantile(&buckets, 0.99) * 1e3,
    })
}

/// The `q` quantile of cumulative `buckets`, linear within the bucket it falls in; the
/// last finite bound when it falls in +Inf's.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let width = n - prev.1;
            return if width > 0.0 { prev.0 + (le - prev.0) * (rank - prev.1) / width } else { le };
        }
        prev = (le, n);
    }
    prev.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: f64, running: f64, tokens: f64, ttft: (f64, f64, f64)) -> Point {
        let hist =
            Hist { labels: vec![], buckets: vec![(0.1, ttft.0), (0.5, ttft.1), (f64::INFINITY, ttft.1)], sum: ttft.2, count: ttft.1 };
        Point { at, reading: Reading { running: Some(running), generation_tokens: Some(tokens), ttft: Some(hist), ..Reading::default() } }
    }

    #[test]
    fn a_window_reads_gauges_counters_and_histogram_growth() {
        let s = Scraped {
            name: "server".into(),
            points: vec![
                point(9.5, 0.0, 100.0, (10.0, 10.0, 0.5)),
                point(10.5, 2.0, 300.0, (10.0, 20.0, 3.0)),
                point(11.5, 4.0, 500.0, (30.0, 40.0, 5.0)),
                point(12.5, 3.0, 700.0, (30.0, 50.0, 8.0)),
            ],
            ..Scraped::default()
        };
        let w = stage(&s, 10.0, 12.6).unwrap();
        assert_eq!(w.scrapes, 3);
        assert_eq!(w.running, Some(Gauge { mean: 3.0, p50: 3.0, max: 4.0 }));
        // From the scrape nearest the window's opening (9.5, at 10.0) to the one
        // nearest its close (12.5, at 12.6).
        assert_eq!(w.generation_tokens, Some(Counter { delta: 600.0, per_s: 200.0 }));
        assert_eq!(stage(&s, 10.6, 11.4).unwrap().generation_tokens, Some(Counter { delta: 200.0, per_s: 200.0 }));
        let ttft = w.ttft_ms.unwrap();
        // 40 new: 20 under 0.1 s, 20 between 0.1 and 0.5 s; sum 7.5 s. p99: rank 39.6,
        // 19.6 of the second bucket's 20: 0.1 + 0.4 × 0.98 s.
        assert_eq!((ttft.count, ttft.mean), (40.0, 187.5));
        assert!((ttft.p50 - 100.0).abs() < 1e-9 && (ttft.p99 - 492.0).abs() < 1e-9, "{ttft:?}");
        assert!(stage(&s, 20.0, 30.0).is_none(), "no scrape in the window");
    }
}
