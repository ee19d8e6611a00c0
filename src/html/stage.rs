//! The charts of one stage, every run laid over the others: its distributions as
//! histograms (decoded from the result's HDR histograms, so they are exact to the
//! histogram's precision, not a sample) and its per-second series with the seconds
//! outside the measured window shaded.

use hdrhistogram::Histogram;

use super::chart::{Chart, Draw, PANEL_HEIGHT, Series};
use super::{Figure, Run};
use crate::metrics::hdr;
use crate::report::{Dist, StageResult};

/// Bins: about two per square root of the count, 10 to 40 (few requests over many bins
/// draw noise, not a shape).
fn bins_for(count: u64) -> usize {
    ((count as f64).sqrt() * 2.0).round().clamp(10.0, 40.0) as usize
}
/// The x axis ends here: the last 0.5 % would stretch it over an empty tail (the
/// caption says how many requests fall beyond).
const CUT: f64 = 0.995;

/// One distribution of a stage: which one, its unit and how µs become it.
struct Kind {
    title: &'static str,
    x_label: &'static str,
    what: &'static str,
    get: fn(&StageResult) -> Option<&Dist>,
    /// From the histogram's unit to the axis's (µs → ms, or tokens as they are).
    scale: f64,
    /// Only worth a chart when the values vary (lengths fixed by the scenario do not).
    when_varied: bool,
}

const KINDS: [Kind; 5] = [
    Kind {
        title: "End-to-end latency",
        x_label: "latency (ms)",
        what: "end-to-end latency",
        get: |s| s.histograms.e2e_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
    },
    Kind {
        title: "Time to first token",
        x_label: "TTFT (ms)",
        what: "time to first token",
        get: |s| s.histograms.ttft_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
    },
    Kind {
        title: "Inter-token latency",
        x_label: "ITL (ms)",
        what: "inter-token latency",
        get: |s| s.histograms.itl_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
    },
    Kind {
        title: "Input length",
        x_label: "input tokens",
        what: "input length",
        get: |s| s.histograms.input_tokens.as_ref(),
        scale: 1.0,
        when_varied: true,
    },
    Kind {
        title: "Output length",
        x_label: "output tokens",
        what: "output length",
        get: |s| s.histograms.output_tokens.as_ref(),
        scale: 1.0,
        when_varied: true,
    },
];

/// Every run's stage of this name, with the run's index.
fn stages<'a>(runs: &'a [Run], name: &str) -> Vec<(usize, &'a Run, &'a StageResult)> {
    runs.iter().enumerate().filter_map(|(i, r)| r.result.stages.iter().find(|s| s.name == name).map(|s| (i, r, s))).collect()
}

/// The stage's histograms: a chart per distribution it has, and a line per one it lacks.
pub fn distributions(runs: &[Run], name: &str) -> (Option<Figure>, Vec<String>) {
    let here = stages(runs, name);
    let mut charts = Vec::new();
    let mut notes = Vec::new();
    let mut cut_notes = Vec::new();
    for k in &KINDS {
        let dists: Vec<(usize, &Run, Histogram<u64>, &Dist)> =
            here.iter().filter_map(|(i, r, s)| (k.get)(s).and_then(|d| hdr::decode(&d.hdr).ok().map(|h| (*i, *r, h, d)))).collect();
        if dists.is_empty() {
            if k.scale == 1e-3 && k.title != "End-to-end latency" {
                continue; // TTFT and ITL exist for streams only: nothing to say of the rest
            }
            if !k.when_varied {
                notes.push(format!("{name}: no {} histogram (no successful request)", k.what));
            }
            continue;
        }
        if k.when_varied && dists.iter().all(|(.., d)| d.min == d.max && d.zeros == 0) {
            continue;
        }
        let (chart, beyond) = histogram(k, runs, &dists);
        if beyond > 0 {
            cut_notes.push(format!("{beyond} above the {} axis", k.what));
        }
        charts.push(chart);
    }
    if charts.is_empty() {
        return (None, notes);
    }
    let mut caption = format!(
        "Stage “{name}”: the share of successful requests in equal bins, read from the result's exact histograms{}.",
        if runs.len() > 1 { ", every run laid over the others" } else { "" }
    );
    if !cut_notes.is_empty() {
        caption.push_str(&format!(" Each axis ends at the 99.5th percentile: {} not shown.", cut_notes.join(", ")));
    }
    (Some(Figure { caption, charts }), notes)
}

/// A histogram chart over common bins; the count beyond the axis's end.
fn histogram(k: &Kind, runs: &[Run], dists: &[(usize, &Run, Histogram<u64>, &Dist)]) -> (Chart, u64) {
    let lo = dists.iter().map(|(.., d)| if d.zeros > 0 { 0 } else { d.min }).min().unwrap_or(0) as f64 * k.scale;
    let mut hi = dists.iter().map(|(_, _, h, _)| h.value_at_quantile(CUT)).max().unwrap_or(0) as f64 * k.scale;
    if hi - lo < (lo * 0.02).max(k.scale) {
        hi = lo + (lo * 0.02).max(k.scale * 10.0);
    }
    let mut bins_n = bins_for(dists.iter().map(|(.., d)| d.count + d.zeros).min().unwrap_or(0));
    let (lo, width) = if k.scale == 1.0 {
        // Whole tokens: bins of whole widths centred on the counts, none left empty by
        // rounding.
        let width = ((hi - lo + 1.0) / bins_n as f64).ceil().max(1.0);
        bins_n = ((hi - lo + 1.0) / width).ceil() as usize;
        (lo - 0.5, width)
    } else {
        (lo, (hi - lo) / bins_n as f64)
    };
    let hi = lo + width * bins_n as f64;
    let mut beyond = 0;
    let mut c = Chart {
        title: k.title.into(),
        x_label: k.x_label.into(),
        y_label: "share of requests (%)".into(),
        y_zero: true,
        ..Chart::default()
    };
    for (i, run, h, d) in dists {
        let mut bins = vec![0u64; bins_n];
        bins[0] += d.zeros;
        for v in h.iter_recorded() {
            let x = h.median_equivalent(v.value_iterated_to()) as f64 * k.scale;
            if x > hi {
                beyond += v.count_at_value();
                continue;
            }
            let b = (((x - lo) / width) as usize).min(bins_n - 1);
            bins[b] += v.count_at_value();
        }
        let total = (h.len() + d.zeros).max(1) as f64;
        let mut p = vec![(lo, 0.0)];
        for (b, n) in bins.iter().enumerate() {
            let y = 100.0 * *n as f64 / total;
            p.push((lo + b as f64 * width, y));
            p.push((lo + (b + 1) as f64 * width, y));
        }
        p.push((hi, 0.0));
        let label = if runs.len() == 1 { format!("{} requests", d.count + d.zeros) } else { run.name.clone() };
        c.series.push(Series { dash: *i, fill: true, ..Series::new(label, *i, Draw::Line, p) });
    }
    (c, beyond)
}

/// Fewer seconds than this draw a point or two, not a series.
const MIN_SECONDS: usize = 3;

/// The stage's seconds: ok and failed requests, requests in flight and p99, with the
/// warmup/ramp and cooldown seconds shaded.
pub fn seconds(runs: &[Run], name: &str) -> Result<Figure, String> {
    let here: Vec<_> = stages(runs, name).into_iter().filter(|(_, _, s)| s.series.len() >= MIN_SECONDS).collect();
    if here.is_empty() {
        let longest = stages(runs, name).iter().map(|(_, _, s)| s.series.len()).max().unwrap_or(0);
        return Err(format!("{name}: per-second series: the stage lasted {longest} s, too short for one (it takes {MIN_SECONDS})"));
    }
    let panel = |title: &str, y: &str| Chart {
        title: title.into(),
        x_label: "seconds since the stage started".into(),
        y_label: y.into(),
        y_zero: true,
        x_zero: true,
        height: PANEL_HEIGHT,
        ..Chart::default()
    };
    let mut rate = panel("Requests finished per second", "requests/s");
    let mut flight = panel("Requests in flight", "in flight (most seen)");
    let mut p99 = panel("p99 latency per second", "p99 (ms)");
    for (i, run, s) in &here {
        let named = |what: &str| if runs.len() == 1 { what.to_string() } else { format!("{what} · {}", run.name) };
        let at = |t: u32| f64::from(t) + 0.5;
        let ok: Vec<(f64, f64)> = s.series.iter().map(|x| (at(x.t_s), x.ok as f64)).collect();
        let errors: Vec<(f64, f64)> = s.series.iter().map(|x| (at(x.t_s), x.errors as f64)).collect();
        rate.series.push(Series { marker: *i, ..Series::new(named("ok"), *i, Draw::LineMarked, ok) });
        if errors.iter().any(|e| e.1 > 0.0) {
            rate.series.push(Series { dash: 1, marker: 3, ..Series::new(named("errors"), (*i + 1) % 6, Draw::LineMarked, errors) });
        }
        let inflight: Vec<(f64, f64)> = s.series.iter().filter(|x| x.requests > 0).map(|x| (at(x.t_s), x.in_flight as f64)).collect();
        flight.series.push(Series { marker: *i, dash: *i, ..Series::new(named("in flight"), *i, Draw::LineMarked, inflight) });
        let tail: Vec<(f64, f64)> = s.series.iter().filter_map(|x| x.p99_ms.map(|p| (at(x.t_s), p))).collect();
        if !tail.is_empty() {
            p99.series.push(Series { marker: *i, dash: *i, ..Series::new(named("p99"), *i, Draw::LineMarked, tail) });
        }
        if *i == here[0].0 {
            let spans = spans(s);
            for c in [&mut rate, &mut flight, &mut p99] {
                c.spans.extend(spans.iter().cloned());
            }
        }
    }
    let mut charts = vec![rate, flight];
    if !p99.series.is_empty() {
        charts.push(p99);
    }
    let caption = format!(
        "Stage “{name}”, second by second: requests that ended in each second (ok, and errors when there were any), the most requests \
         in flight, and the p99 of that second's successful requests. Shaded seconds are outside the measured window (warmup, ramp, cooldown)."
    );
    Ok(Figure { caption, charts })
}

/// Warmup/ramp before the window opened, cooldown after it closed, in seconds since
/// the stage started. A result without the window's offset is read from its seconds:
/// the leading ones where only warmup requests ended, the trailing cooldown ones.
fn spans(s: &StageResult) -> Vec<(f64, f64, String)> {
    let end = s.series.last().map_or(0.0, |x| f64::from(x.t_s) + 1.0);
    let (open, close) = match s.window_offset_s {
        Some(o) => (o, o + s.wall_time_s),
        None => {
            let open = s.series.iter().take_while(|x| x.requests == 0 && x.warmup > 0).count() as f64;
            let tail = s.series.iter().rev().take_while(|x| x.requests == 0 && x.cooldown > 0).count() as f64;
            (open, end - tail)
        }
    };
    let mut out = Vec::new();
    if open > 0.05 && s.warmup_requests > 0 {
        out.push((0.0, open, " warmup, ramp".to_string()));
    }
    if close < end - 0.05 && s.cooldown_requests > 0 {
        out.push((close, end, " cooldown".to_string()));
    }
    out
}
