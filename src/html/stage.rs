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
    /// Whole numbers (tokens): bins of whole widths, centred on the counts.
    whole: bool,
    /// Recorded for streams only: nothing to say of a stage that did not stream.
    streams_only: bool,
}

const KINDS: [Kind; 5] = [
    Kind {
        title: "End-to-end latency",
        x_label: "latency (ms)",
        what: "end-to-end latency",
        get: |s| s.histograms.e2e_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
        whole: false,
        streams_only: false,
    },
    Kind {
        title: "Time to first token",
        x_label: "TTFT (ms)",
        what: "time to first token",
        get: |s| s.histograms.ttft_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
        whole: false,
        streams_only: true,
    },
    Kind {
        title: "Inter-token latency",
        x_label: "ITL (ms)",
        what: "inter-token latency",
        get: |s| s.histograms.itl_us.as_ref(),
        scale: 1e-3,
        when_varied: false,
        whole: false,
        streams_only: true,
    },
    Kind {
        title: "Input length",
        x_label: "input tokens",
        what: "input length",
        get: |s| s.histograms.input_tokens.as_ref(),
        scale: 1.0,
        when_varied: true,
        whole: true,
        streams_only: false,
    },
    Kind {
        title: "Output length",
        x_label: "output tokens",
        what: "output length",
        get: |s| s.histograms.output_tokens.as_ref(),
        scale: 1.0,
        when_varied: true,
        whole: true,
        streams_only: false,
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
        let present = here.iter().filter(|(_, _, s)| (k.get)(s).is_some()).count();
        if present > dists.len() {
            notes.push(format!("{name}: a {} histogram in the result does not decode (HdrHistogram V2 + deflate, base64)", k.what));
        }
        if dists.is_empty() {
            // TTFT and ITL exist for streams only: nothing to say of a stage that did not.
            if !k.streams_only && !k.when_varied && present == 0 {
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
    // The end of the bucket holding the 99.5th percentile, so that bucket is drawn whole.
    let mut hi = dists.iter().map(|(_, _, h, _)| h.highest_equivalent(h.value_at_quantile(CUT)).saturating_add(1)).max().unwrap_or(0)
        as f64
        * k.scale;
    if hi - lo < (lo * 0.02).max(k.scale) {
        hi = lo + (lo * 0.02).max(k.scale * 10.0);
    }
    let mut bins_n = bins_for(dists.iter().map(|(.., d)| d.count).min().unwrap_or(0));
    let (lo, width) = if k.whole {
        // Whole tokens: bins of whole widths centred on the counts, none left empty by
        // rounding.
        let width = ((hi - lo + 1.0) / bins_n as f64).ceil().max(1.0);
        bins_n = ((hi - lo + 1.0) / width).ceil() as usize;
        (lo - 0.5, width)
    } else {
        (lo, (hi - lo) / bins_n as f64)
    };
    let hi = lo + width * bins_n as f64;
    let mut beyond = 0.0;
    let mut c = Chart {
        title: k.title.into(),
        x_label: k.x_label.into(),
        y_label: "share of requests (%)".into(),
        y_zero: true,
        ..Chart::default()
    };
    for (i, run, h, d) in dists {
        let mut bins = vec![0.0; bins_n];
        bins[0] += d.zeros as f64;
        for v in h.iter_recorded() {
            // A histogram bucket holds every value from its lowest to its highest
            // equivalent (4 tokens wide at 512, 0.1 ms at 20 ms): its count is spread
            // over the bins it overlaps, else bins narrower than it would draw a comb.
            let at = v.value_iterated_to();
            let (a, b) = (h.lowest_equivalent(at) as f64, h.highest_equivalent(at) as f64 + 1.0);
            let (a, b) = if k.whole { (a - 0.5, b - 0.5) } else { (a * k.scale, b * k.scale) };
            beyond += spread(&mut bins, lo, width, (a, b), v.count_at_value() as f64);
        }
        let total = h.len().saturating_add(d.zeros).max(1) as f64;
        let mut p = vec![(lo, 0.0)];
        for (b, n) in bins.iter().enumerate() {
            let y = 100.0 * *n / total;
            p.push((lo + b as f64 * width, y));
            p.push((lo + (b + 1) as f64 * width, y));
        }
        p.push((hi, 0.0));
        let label = if runs.len() == 1 { crate::report::requests(d.count) } else { run.name.clone() };
        c.series.push(Series { dash: *i, fill: true, ..Series::new(label, *i, Draw::Line, p) });
    }
    (c, beyond.round() as u64)
}

/// Adds `count`, spread evenly over `[a, b)`, to the bins from `lo` of `width` each: a
/// part below `lo` to the first bin, and returns the part past the last.
fn spread(bins: &mut [f64], lo: f64, width: f64, (a, b): (f64, f64), count: f64) -> f64 {
    let hi = lo + width * bins.len() as f64;
    let span = b - a;
    if !(span > 0.0 && width > 0.0) || bins.is_empty() {
        return 0.0;
    }
    let mut beyond = 0.0;
    if b > hi {
        beyond = count * (b - a.max(hi)) / span;
    }
    if a < lo {
        bins[0] += count * (b.min(lo) - a) / span;
    }
    let (a, b) = (a.max(lo), b.min(hi));
    if b > a {
        let first = ((a - lo) / width) as usize;
        let last = (((b - lo) / width).ceil() as usize).min(bins.len());
        for (j, bin) in bins.iter_mut().enumerate().take(last).skip(first) {
            let (e0, e1) = (lo + j as f64 * width, lo + (j + 1) as f64 * width);
            *bin += count * (e1.min(b) - e0.max(a)).max(0.0) / span;
        }
    }
    beyond
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
        // One run's lines differ by colour; several runs' by colour per run, and the
        // kinds by dash and marker.
        let colour = |own: usize| if runs.len() == 1 { own } else { *i };
        rate.series.push(Series { marker: *i, ..Series::new(named("ok"), *i, Draw::LineMarked, ok) });
        if errors.iter().any(|e| e.1 > 0.0) {
            rate.series.push(Series { dash: 1, marker: 3, ..Series::new(named("errors"), colour(1), Draw::LineMarked, errors) });
        }
        let outside: Vec<(f64, f64)> = s.series.iter().map(|x| (at(x.t_s), x.warmup.saturating_add(x.cooldown) as f64)).collect();
        if outside.iter().any(|e| e.1 > 0.0) {
            let label = named("outside the window (warmup, ramp, cooldown)");
            rate.series.push(Series { dash: 2, marker: 2, ..Series::new(label, colour(4), Draw::LineMarked, outside) });
        }
        // A second in which nothing measured ended says nothing of what was in flight:
        // a gap in the line, not a zero.
        let inflight: Vec<(f64, f64)> =
            s.series.iter().map(|x| (at(x.t_s), if x.requests > 0 { x.in_flight as f64 } else { f64::NAN })).collect();
        if inflight.iter().any(|p| p.1.is_finite()) {
            flight.series.push(Series { marker: *i, dash: *i, ..Series::new(named("in flight"), *i, Draw::LineMarked, inflight) });
        }
        let tail: Vec<(f64, f64)> = s.series.iter().map(|x| (at(x.t_s), x.p99_ms.unwrap_or(f64::NAN))).collect();
        if tail.iter().any(|p| p.1.is_finite()) {
            p99.series.push(Series { marker: *i, dash: *i, ..Series::new(named("p99"), *i, Draw::LineMarked, tail) });
        }
        if *i == here[0].0 {
            let spans = spans(s);
            for c in [&mut rate, &mut flight, &mut p99] {
                c.spans.extend(spans.iter().cloned());
            }
        }
    }
    let charts: Vec<Chart> = [rate, flight, p99].into_iter().filter(|c| !c.series.is_empty()).collect();
    let mut caption = format!(
        "Stage “{name}”, second by second: requests that ended in each second (ok, and errors when there were any), the most requests \
         in flight, and the p99 of that second's successful requests. Shaded seconds are outside the measured window (warmup, ramp, cooldown)."
    );
    // What the run's watcher found, in its words.
    for (_, _, s) in &here {
        for said in
            [s.warmup_said.as_ref().map(|w| format!("Warmup found: {w}.")), s.saturated.as_ref().map(|x| format!("Saturated: {}.", x.said))]
                .into_iter()
                .flatten()
        {
            caption.push(' ');
            caption.push_str(&said);
        }
    }
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
            // Long requests leave seconds with nothing ended: the leading (trailing) run
            // of seconds with no measured request, when warmup (cooldown) ended in it.
            let lead: Vec<_> = s.series.iter().take_while(|x| x.requests == 0).collect();
            let trail: Vec<_> = s.series.iter().rev().take_while(|x| x.requests == 0).collect();
            let open = if lead.iter().any(|x| x.warmup > 0) { lead.len() as f64 } else { 0.0 };
            let tail = if trail.iter().any(|x| x.cooldown > 0) { trail.len() as f64 } else { 0.0 };
            (open, end - tail)
        }
    };
    let mut out = Vec::new();
    if open > 0.05 && s.warmup_requests > 0 {
        let what = if s.warmup_detected_s.is_some() { " warmup (auto)" } else { " warmup, ramp" };
        out.push((0.0, open, what.to_string()));
    }
    if close < end - 0.05 && s.cooldown_requests > 0 {
        out.push((close, end, " cooldown".to_string()));
    }
    out
}
