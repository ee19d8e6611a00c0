//! `--prometheus-listen`: the run's live figures in the Prometheus text format, served
//! from the aggregator's latest snapshot while the run goes on: requests by outcome and
//! started (counters), requests in flight (a gauge), and e2e latency and TTFT as
//! histograms, labelled by run id, shard and stage. Every shard uses one bucket layout,
//! so `sum` and `histogram_quantile` over shards are sound.

use std::fmt::Write;
use std::sync::Arc;

use crate::metrics::{Latency, Snapshot, StageStats};

/// Bucket bounds, seconds: the same on every shard and every run.
pub const BUCKETS_S: [f64; 16] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0];

/// What every series of this process carries.
#[derive(Debug, Clone)]
pub struct Labels {
    pub run_id: String,
    /// "I/N", or "0/1" unsharded.
    pub shard: String,
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(l: &Labels, stage: &StageStats) -> String {
    format!("run_id=\"{}\",shard=\"{}\",stage=\"{}\"", value(&l.run_id), value(&l.shard), value(&stage.info.name))
}

fn histogram(out: &mut String, name: &str, base: &str, lat: &Latency) {
    let h = lat.histogram();
    for le in BUCKETS_S {
        // Values up to the bound, read from the HDR histogram (its precision, 0.1 %).
        let n = if h.is_empty() { 0 } else { h.count_between(0, (le * 1e6) as u64) };
        let _ = writeln!(out, "{name}_bucket{{{base},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{base},le=\"+Inf\"}} {}", lat.count());
    let _ = writeln!(out, "{name}_sum{{{base}}} {}", lat.sum_us() / 1e6);
    let _ = writeln!(out, "{name}_count{{{base}}} {}", lat.count());
}

/// The snapshot as a scrape's body.
pub fn text(snap: &Snapshot, l: &Labels) -> String {
    let stages: Vec<&StageStats> = snap.finished.iter().map(Arc::as_ref).chain(snap.current.as_ref()).collect();
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(&mut out, "llmload_requests_total", "counter", "Measured requests that ended, by outcome (ok, failed, cancelled).");
    for s in &stages {
        let base = labels(l, s);
        for (outcome, n) in [("ok", s.ok), ("failed", s.failed), ("cancelled", s.cancelled)] {
            let _ = writeln!(out, "llmload_requests_total{{{base},outcome=\"{outcome}\"}} {n}");
        }
    }
    head(&mut out, "llmload_requests_started_total", "counter", "Measured requests sent.");
    for s in &stages {
        let _ = writeln!(out, "llmload_requests_started_total{{{}}} {}", labels(l, s), s.started);
    }
    head(&mut out, "llmload_in_flight", "gauge", "Measured requests in flight now (0 once a stage ended).");
    for s in &stages {
        let _ = writeln!(out, "llmload_in_flight{{{}}} {}", labels(l, s), s.in_flight_now.unwrap_or(0));
    }
    head(&mut out, "llmload_request_duration_seconds", "histogram", "End-to-end latency of successful measured requests.");
    for s in &stages {
        histogram(&mut out, "llmload_request_duration_seconds", &labels(l, s), &s.latency);
    }
    head(&mut out, "llmload_ttft_seconds", "histogram", "Streams: time to the first token of successful measured requests.");
    for s in stages.iter().filter(|s| s.ttft.count() > 0) {
        histogram(&mut out, "llmload_ttft_seconds", &labels(l, s), &s.ttft);
    }
    head(&mut out, "llmload_run_done", "gauge", "1 once the run has sent everything.");
    let _ = writeln!(out, "llmload_run_done{{run_id=\"{}\",shard=\"{}\"}} {}", value(&l.run_id), value(&l.shard), u8::from(snap.done));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_buckets_are_cumulative() {
        assert_eq!(value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut lat = Latency::default();
        for ms in [3, 30, 300, 3000] {
            lat.record(std::time::Duration::from_millis(ms));
        }
        let mut out = String::new();
        histogram(&mut out, "x", "stage=\"s\"", &lat);
        let counts: Vec<u64> =
            out.lines().filter(|l| l.starts_with("x_bucket")).map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative: {counts:?}");
        assert_eq!((counts[0], counts[3], *counts.last().unwrap()), (1, 2, 4), "le 5 ms: 1, le 50 ms: 2, +Inf: 4");
        assert!(out.contains("x_sum{stage=\"s\"} 3.333") && out.contains("x_count{stage=\"s\"} 4"), "{out}");
    }
}
