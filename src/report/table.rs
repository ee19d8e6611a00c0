//! The comparison table: the four seed columns (mode, wall time, mean latency,
//! throughput), then p50/p95/p99/max and errors, then the columns a run calls for
//! (embeddings' inputs/s or rerank's docs/s, streams' TTFT and ITL, …).

use unicode_width::UnicodeWidthStr;

use super::result::{Cost, StageResult};
use crate::metrics::LatencySummary;

/// "1 request", "8 requests".
pub fn requests(n: u64) -> String {
    match n {
        1 => "1 request".to_string(),
        n => format!("{n} requests"),
    }
}

/// Column titles. The time column reads "N requests" when every stage ran the same
/// planned count to the end, as in the seed table; "wall time" otherwise (and for task
/// stages, whose count is of tasks).
pub fn header(stages: &[StageResult]) -> Vec<String> {
    let same_count = stages
        .first()
        .and_then(|s| s.planned.requests)
        .filter(|n| stages.iter().all(|s| s.planned.requests == Some(*n) && !s.interrupted && s.tasks.is_none()));
    let time_header = match same_count {
        Some(n) => requests(n),
        None => "wall time".to_string(),
    };
    let mut h: Vec<String> =
        ["mode", &time_header, "mean latency", "throughput", "p50", "p95", "p99", "max", "errors"].iter().map(|s| s.to_string()).collect();
    let cols = Columns::of(stages);
    if let Some(unit) = cols.items {
        h.push(unit.into());
    }
    if cols.images {
        h.push("images".into());
    }
    if cols.tools {
        h.push("tool calls".into());
    }
    if cols.stream {
        h.extend(["TTFT p50", "ITL p50", "out tok/s"].map(String::from));
    }
    if cols.reasoning {
        h.extend(["answer TTFT p50", "thinking p50"].map(String::from));
    }
    if cols.lengths {
        h.extend(["in/out tok", "tok/s"].map(String::from));
    }
    if cols.open {
        h.push("sent / offered".into());
    }
    if cols.retries {
        h.push("retries".into());
    }
    if cols.limiter {
        h.push("limiter wait".into());
    }
    if cols.goodput {
        h.push("goodput".into());
    }
    if cols.checks {
        h.push("invalid".into());
    }
    if cols.cost {
        h.push("cost".into());
    }
    if cols.model {
        h.push("model".into());
    }
    h
}

/// The optional columns a set of stages calls for, after the fixed ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    /// Embeddings or rerank: inputs or documents per second (the unit).
    pub items: Option<&'static str>,
    /// Replies made tool calls: how many (and how many not JSON).
    pub tools: bool,
    /// Requests carried images: images per request and their size.
    pub images: bool,
    /// Streamed (TTFT measured): TTFT p50, ITL p50, output tokens/s.
    pub stream: bool,
    /// A model reasoned aloud: the first answer token and the thinking before it.
    pub reasoning: bool,
    /// Prompts asked for output lengths of their own, or stages sent prompts of
    /// different lengths: mean input/output lengths and total token throughput.
    pub lengths: bool,
    /// An open-loop stage: the rate sent against the rate offered, and arrivals not sent.
    pub open: bool,
    /// Some request was retried: retries sent.
    pub retries: bool,
    /// A client-side rate limit: the median wait of the requests it held back.
    pub limiter: bool,
    /// `[slo]` set: goodput.
    pub goodput: bool,
    /// `[check]` set: invalid responses.
    pub checks: bool,
    /// Priced model: cost.
    pub cost: bool,
    /// Stages send different models: the model, to compare them side by side.
    pub model: bool,
    /// `--ci`: each figure with its confidence interval's half-width.
    pub ci: bool,
}

impl Columns {
    pub fn of(stages: &[StageResult]) -> Columns {
        Columns {
            items: super::items::unit_of(stages.iter()),
            tools: stages.iter().any(|s| s.tool_calls.is_some()),
            images: stages.iter().any(|s| s.images.is_some()),
            stream: stages.iter().any(|s| s.ttft_ms.is_some()),
            reasoning: stages.iter().any(|s| s.thinking_ms.is_some()),
            // Lengths asked for, or stages that sent different lengths.
            lengths: stages.iter().any(|s| s.tokens.target_output.is_some()) || {
                let means: Vec<f64> = stages.iter().filter_map(|s| s.tokens.input_length.as_ref()).map(|l| l.mean).collect();
                let (lo, hi) = means.iter().fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(*m), hi.max(*m)));
                means.len() > 1 && hi > lo * 1.1
            },
            open: stages.iter().any(|s| s.open_loop.is_some()),
            retries: stages.iter().any(|s| s.retries.total > 0),
            limiter: stages.iter().any(|s| s.rate_limiter.is_some()),
            goodput: stages.iter().any(|s| s.goodput.is_some()),
            checks: stages.iter().any(|s| s.checks.is_some()),
            cost: stages.iter().any(|s| s.cost.is_some()),
            model: stages.windows(2).any(|w| w[0].model != w[1].model),
            ci: false,
        }
    }
}

/// One stage's cells, in header order.
pub fn row(s: &StageResult, cols: Columns) -> Vec<String> {
    let lat = s.latency_ms.as_ref();
    let ms = |f: fn(&LatencySummary) -> f64| lat.map_or("-".to_string(), |l| fmt_ms(f(l)));
    let mut mode = s.name.clone();
    if s.interrupted {
        mode.push_str(" (stopped)");
    } else if s.aborted {
        mode.push_str(" (aborted)");
    }
    // Also in the dashboard's comparison table, which draws these rows.
    if s.open_loop.as_ref().is_some_and(|o| o.below_target) {
        mode.push_str(" (below rate)");
    }
    let ci = |cell: String, metric: &str| if cols.ci { with_ci(cell, s, metric) } else { cell };
    let mut cells = vec![
        mode,
        fmt_secs(s.wall_time_s),
        ms(|l| l.mean),
        // Successful requests: a stage of fast 429s must not read as throughput.
        ci(format!("{} req/s", fmt_rate(s.throughput.ok_per_s)), "ok_rps"),
        ci(ms(|l| l.p50), "p50_ms"),
        ci(ms(|l| l.p95), "p95_ms"),
        ci(ms(|l| l.p99), "p99_ms"),
        ms(|l| l.max),
        ci(fmt_errors(s), "error_rate"),
    ];
    if cols.items.is_some() {
        cells.push(s.items.as_ref().map_or("-".into(), |i| fmt_rate(i.per_s)));
    }
    if cols.images {
        cells.push(s.images.as_ref().map_or("-".into(), |i| i.cell()));
    }
    if cols.tools {
        cells.push(match &s.tool_calls {
            None => "-".into(),
            // Checked against the tools offered, else only whether the arguments parse.
            Some(t) if !t.invalid.is_empty() => format!("{} ({} invalid)", t.calls, t.invalid.values().sum::<u64>()),
            Some(t) if t.arguments_not_json > 0 => format!("{} ({} not JSON)", t.calls, t.arguments_not_json),
            Some(t) => t.calls.to_string(),
        });
    }
    if cols.stream {
        cells.push(ci(s.ttft_ms.as_ref().map_or("-".into(), |l| fmt_ms(l.p50)), "ttft_p50_ms"));
        cells.push(ci(s.itl_ms.as_ref().map_or("-".into(), |l| fmt_ms(l.p50)), "itl_p50_ms"));
        cells.push(ci(fmt_rate(s.throughput.output_tokens_per_s), "output_tps"));
    }
    if cols.reasoning {
        cells.push(s.ttft_answer_ms.as_ref().map_or("-".into(), |l| fmt_ms(l.p50)));
        cells.push(s.thinking_ms.as_ref().map_or("-".into(), |l| fmt_ms(l.p50)));
    }
    if cols.lengths {
        let t = &s.tokens;
        let mean = |l: Option<&crate::metrics::LengthSummary>| l.map_or("-".to_string(), |l| format!("{:.0}", l.mean));
        cells.push(format!("{}/{}", mean(t.input_length.as_ref()), mean(t.output_length.as_ref())));
        cells.push(fmt_rate(s.throughput.total_tokens_per_s));
    }
    if cols.open {
        cells.push(s.open_loop.as_ref().map_or("-".into(), |o| {
            let unsent = if o.not_sent > 0 { format!(", {} unsent", o.not_sent) } else { String::new() };
            // A conversation's open loop starts sessions at its rate.
            let unit = if s.sessions.is_some() { "sessions/s" } else { "req/s" };
            format!("{}/{} {unit}{unsent}", fmt_rate(o.achieved_rate), fmt_rate(o.target_rate))
        }));
    }
    if cols.retries {
        let r = &s.retries;
        cells.push(if r.total == 0 { "0".into() } else { format!("{} ({} recovered)", r.total, r.recovered) });
    }
    if cols.limiter {
        cells.push(s.rate_limiter.as_ref().and_then(|l| l.wait_ms.as_ref()).map_or("-".into(), |w| fmt_ms(w.p50)));
    }
    if cols.goodput {
        cells.push(s.goodput.as_ref().map_or("-".into(), |g| format!("{} req/s", fmt_rate(g.per_s))));
    }
    if cols.checks {
        cells.push(s.checks.as_ref().map_or("-".into(), |c| format!("{} ({:.1}%)", c.failed, c.invalid_rate * 100.0)));
    }
    if cols.cost {
        cells.push(s.cost.as_ref().map_or("-".into(), fmt_cost));
    }
    if cols.model {
        cells.push(s.model.clone());
    }
    cells
}

/// An amount with as many decimals as small LLM costs need, and its currency.
pub fn fmt_cost(c: &Cost) -> String {
    let a = c.amount;
    let d = if a >= 100.0 {
        0
    } else if a >= 1.0 {
        2
    } else {
        4
    };
    format!("{a:.d$} {}", c.currency)
}

/// Renders stages as an aligned text table, one row per stage.
pub fn render_table(stages: &[StageResult]) -> String {
    render(stages, Columns::of(stages))
}

/// [`render_table`] with `cols`' columns (`--ci`'s intervals).
pub fn render(stages: &[StageResult], cols: Columns) -> String {
    let mut rows = vec![header(stages)];
    rows.extend(stages.iter().map(|s| row(s, cols)));
    // Display width, not chars: CJK stage names take two columns each.
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].width()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.width();
                // Text left, figures right, so digits line up.
                if c == 0 { format!("{cell}{}", " ".repeat(pad)) } else { format!("{}{cell}", " ".repeat(pad)) }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"─".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// Share of replies ending before their target length from which the table warns: a
/// few short replies are a model's stop; this many mean the length is not honoured.
pub const ENDED_SHORT_WARNING: f64 = 0.1;

/// One line per failure kind per stage, with the first message seen: what went wrong,
/// not only how often.
pub fn failure_notes(stages: &[StageResult]) -> String {
    let mut out = String::new();
    for s in stages {
        for (kind, n) in &s.failures {
            let example = s.failure_examples.get(kind).map(|e| format!(" — {e}")).unwrap_or_default();
            out.push_str(&format!("{}: {kind} ×{n}{example}\n", s.name));
        }
        if let Some(o) = &s.open_loop
            && o.below_target
        {
            let unit = if s.sessions.is_some() { "sessions/s" } else { "req/s" };
            out.push_str(&format!(
                "{}: WARNING: sent {} {unit} of the {} {unit} scheduled ({:.0}%){}\n",
                s.name,
                fmt_rate(o.achieved_rate),
                fmt_rate(o.scheduled_rate),
                o.achieved_rate / o.scheduled_rate.max(f64::MIN_POSITIVE) * 100.0,
                if o.not_sent > 0 {
                    format!("; {} arrivals found all {} slots (max_in_flight) taken and were not sent", o.not_sent, o.max_in_flight)
                } else {
                    String::new()
                }
            ));
        }
        let r = &s.retries;
        if r.not_sent > 0 {
            out.push_str(&format!("{}: {} retries not sent: the run was stopped first\n", s.name, r.not_sent));
        }
        if r.total > 0 {
            let causes: Vec<String> = r.by_cause.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            let honoured = if r.retry_after_honoured > 0 {
                format!("; {} waited the server's Retry-After", r.retry_after_honoured)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{}: {} retries ({}) for {}, {} of them recovered{honoured}\n",
                s.name,
                r.total,
                causes.join(", "),
                requests(r.requests_retried),
                r.recovered
            ));
        }
        if let Some(t) = s.tokens.target_output.as_ref().filter(|t| t.ended_short_share >= ENDED_SHORT_WARNING) {
            // The replies with a target, read back from the share (over the threshold, > 0).
            let n = (t.ended_short as f64 / t.ended_short_share).round() as u64;
            let by = match t.judged_by_finish_reason {
                0 => "by the token count: the server sent no finish_reason".to_string(),
                k if k >= n => "by their finish_reason: not \"length\"".to_string(),
                k => format!("{k} of {n} by their finish_reason, the rest by the token count"),
            };
            out.push_str(&format!(
                "{}: WARNING: {:.0} % of replies ended before their target length ({by}): does the server honour ignore_eos?\n",
                s.name,
                t.ended_short_share * 100.0
            ));
        }
        if s.requests.cancelled > 0 {
            let by = if s.saturated.is_some() { "dropped at saturation (not waited for)" } else { "cancelled by stop" };
            out.push_str(&format!("{}: {} {by}\n", s.name, requests(s.requests.cancelled)));
        }
        if s.streams_without_done > 0 {
            out.push_str(&format!(
                "{}: {} streams ended after a finish_reason without data: [DONE] (counted ok: a complete answer)\n",
                s.name, s.streams_without_done
            ));
        }
        if s.reconnects > 0 {
            out.push_str(&format!(
                "{}: {} sent again on a new connection: the server had closed the kept-alive one unannounced (not failures)\n",
                s.name,
                requests(s.reconnects)
            ));
        }
    }
    out
}

fn fmt_errors(s: &StageResult) -> String {
    if s.requests.failed == 0 { "0".to_string() } else { format!("{} ({:.1}%)", s.requests.failed, s.error_rate * 100.0) }
}

/// A cell with its figure's interval: `181 ms ±3` (half the interval's width, the
/// wider side, in the figure's unit), `1.2 s ±38 %` when wider than ±10 % of it, `±∞`
/// when it could not be bounded, unchanged when the figure has none.
fn with_ci(cell: String, s: &StageResult, metric: &str) -> String {
    let Some(i) = s.ci.as_ref().and_then(|c| c.figures.get(metric)) else { return cell };
    match (i.lo, i.hi, i.relative()) {
        (_, _, Some(r)) if r > 0.10 => format!("{cell} ±{:.0} %", r * 100.0),
        (Some(lo), Some(hi), _) => {
            let half = (hi - i.value).max(i.value - lo);
            let unit = match metric {
                "error_rate" => format!("{:.1}%", half * 100.0),
                m if m.ends_with("_ms") && cell.ends_with(" ms") => trim_unit(&fmt_ms(half)),
                m if m.ends_with("_ms") => fmt_ms(half),
                _ => fmt_rate(half),
            };
            format!("{cell} ±{unit}")
        }
        _ => format!("{cell} ±∞"),
    }
}

/// "3.0 ms" → "3.0": the unit is the figure's, beside it.
fn trim_unit(s: &str) -> String {
    s.trim_end_matches(" ms").to_string()
}

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 99.95 {
        format!("{ms:.0} ms")
    } else if ms >= 0.995 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub fn fmt_secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.2} s")
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 100.0 { format!("{r:.0}") } else { format!("{r:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_is_not_plural() {
        assert_eq!((requests(1), requests(0), requests(8)), ("1 request".into(), "0 requests".into(), "8 requests".into()));
    }

    #[test]
    fn cjk_names_keep_columns_aligned() {
        let mut a = sample();
        a.name = "順次".into();
        let mut b = a.clone();
        b.name = "ab".into();
        let t = render_table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        let col = |l: &str| l.find("req/s").map(|i| l[..i].width());
        assert_eq!(col(lines[2]), col(lines[3]), "\n{t}");
    }

    fn sample() -> StageResult {
        let mut s = StageResult::summary(&crate::metrics::StageStats::default());
        s.planned.requests = Some(10);
        s.wall_time_s = 1.0;
        s.throughput.requests_per_s = 10.0;
        s
    }

    #[test]
    fn different_models_get_a_model_column() {
        let mut a = sample();
        a.model = "gpt-4.1".into();
        let mut b = sample();
        b.name = "t".into();
        b.model = "deepseek-v3.2".into();
        let t = render_table(&[a.clone(), b]);
        assert!(t.lines().next().unwrap().ends_with("model"), "{t}");
        assert!(t.contains("deepseek-v3.2"), "{t}");
        assert!(!render_table(&[a.clone(), a]).contains("model"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_ms(82.04), "82.0 ms");
        assert_eq!(fmt_ms(180.4), "180 ms");
        assert_eq!(fmt_ms(0.5), "0.50 ms");
        assert_eq!(fmt_ms(99.97), "100 ms", "rounding never shows 100.0");
        assert_eq!(fmt_ms(0.999), "1.0 ms");
        assert_eq!(fmt_ms(12_345.0), "12.3 s");
        assert_eq!(fmt_secs(8.234), "8.23 s");
        assert_eq!(fmt_rate(12.17), "12.2");
        assert_eq!(fmt_rate(277.7), "278");
    }
}
