//! The watcher's judges of a stage's course over time: have an automatic warmup's
//! per-second throughput and latency settled (MSER, `trend::mser`), and is an
//! open-loop window's backlog running away (backlog and latency both climbing,
//! significantly and by a lot: `trend::line`)? The rules are in docs/metrics.md.

use std::time::Instant;

use crate::metrics::StageStats;
use crate::report::Saturated;
use crate::trend::{self, Line};

/// Whether the warmup's per-second series have settled: said in words, if so.
pub(super) fn settled(stats: &StageStats) -> Option<String> {
    let secs = stats.series.closed();
    let rate: Vec<f64> = secs.iter().map(|s| s.warmup as f64).collect();
    // A second in which no warmup request succeeded keeps the latency before it (the
    // first known one, for those before any).
    let first = secs.iter().find_map(|s| s.warmup_ms).unwrap_or(0.0);
    let mut last = first;
    let latency: Vec<f64> = secs
        .iter()
        .map(|s| {
            last = s.warmup_ms.unwrap_or(last);
            last
        })
        .collect();
    let (by_rate, by_latency) = (trend::mser(&rate)?, trend::mser(&latency)?);
    Some(format!(
        "settled after {} s (MSER on the per-second throughput: {by_rate} s, mean latency: {by_latency} s), told at {} s",
        by_rate.max(by_latency),
        secs.len()
    ))
}

/// Fewest seconds of the window a saturation is called on.
const MIN_SECONDS: usize = 5;

/// The latest seconds judged: a stage that saturates late is judged on its late course.
const SPAN: usize = 60;

/// One-sided level of each slope's test.
const LEVEL: f64 = 0.999;

/// An open-loop window's backlog, sampled each second it is watched.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    index: Option<usize>,
    /// (seconds into the window, requests in flight + arrivals overdue).
    points: Vec<(f64, f64)>,
}

impl Backlog {
    /// Samples stage `index`'s backlog now; a verdict once it runs away.
    pub fn judge(&mut self, index: usize, stats: &StageStats) -> Option<Saturated> {
        if self.index != Some(index) {
            *self = Backlog { index: Some(index), points: Vec::new() };
        }
        let rate = stats.info.rate?;
        let offset = stats.window_offset?.as_secs_f64();
        let into = stats.series.since_start(Instant::now())?.as_secs_f64() - offset;
        let backlog = stats.in_flight_now.unwrap_or(0) as f64 + stats.behind.as_secs_f64() * rate;
        self.points.push((into, backlog));
        if self.points.len() > SPAN {
            self.points.remove(0);
        }
        // Until requests have had their time to end, a steady backlog still fills and
        // the seconds' p50 still rises (only the quick have ended): judged from there.
        let fill = if stats.latency.count() > 0 { stats.latency.quantile_ms(0.5) / 1e3 } else { into };
        let latency: Vec<(f64, f64)> = stats
            .series
            .closed()
            .iter()
            .filter_map(|s| Some((f64::from(s.t_s) + 0.5 - offset, s.p50_ms?)))
            .filter(|(t, _)| *t >= fill)
            .collect();
        let latency = &latency[latency.len().saturating_sub(SPAN)..];
        let backlog: Vec<(f64, f64)> = self.points.iter().copied().filter(|(t, _)| *t >= fill).collect();
        if backlog.len() < MIN_SECONDS || latency.len() < MIN_SECONDS {
            return None;
        }
        let (b, l) = (trend::line(&backlog)?, trend::line(latency)?);
        let rising = |x: &Line| x.slope > 0.0 && x.t > trend::t_one_sided(LEVEL, x.n - 2);
        // Significant is not enough over many looks: it must also have doubled (the
        // backlog) and risen by a quarter (the latency) along the fitted lines.
        let material = b.last >= 2.0 * b.first.max(1.0) && l.last >= 1.25 * l.first.max(1e-3);
        (rising(&b) && rising(&l) && material).then(|| Saturated {
            after_s: round2(into),
            backlog: [round2(b.first), round2(b.last)],
            p50_ms: [round2(l.first), round2(l.last)],
            said: format!(
                "the server could not keep up with {rate}/s: its backlog (in flight + overdue) rose from {:.0} to {:.0} and the e2e p50 from {:.0} to {:.0} ms over {:.0} s, both climbing (slopes at {} % one-sided); the window ended after {:.1} s",
                b.first,
                b.last,
                l.first,
                l.last,
                backlog.last().map_or(0.0, |p| p.0) - backlog[0].0,
                LEVEL * 100.0,
                into
            ),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
