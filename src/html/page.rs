//! The page around the charts: one self-contained HTML file (inline CSS and SVG, one
//! small inline script, nothing from the network), its tables (stages, thresholds,
//! comparison verdicts and gates) and the check the page runs on itself: every chart
//! laid out with data marks beyond its legend, no script error. A browser test reads
//! that check back.

use std::fmt::Write;

use super::Run;
use crate::compare::Comparison;
use crate::report::{escape, fig, fmt_ms, fmt_rate};

const STYLE: &str = "
:root { color-scheme: light; }
body { font: 16px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #1a1a1a; background: #fff;
       max-width: 980px; margin: 0 auto; padding: 12px 16px 48px; }
h1 { font-size: 1.6em; margin: .4em 0 .2em; } h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
figure { margin: 1.2em 0; break-inside: avoid; page-break-inside: avoid; }
figure svg.chart { display: block; width: 100%; height: auto; max-width: 760px; }
figcaption { color: #333; font-size: .95em; margin-top: .3em; max-width: 760px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9em; margin: .6em 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
th { background: #f4f4f4; }
.pass { color: #00623f; font-weight: 600; } .fail { color: #a33200; font-weight: 600; } td.same { color: #666; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 16px; font-size: .9em; margin: 2px 0 0 8px; max-width: 760px; }
.key { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
.note { color: #555; font-size: .92em; margin: .2em 0; } .warn { color: #a33200; }
@media (max-width: 600px) { body { font-size: 15px; padding: 8px; } th, td { padding: 2px 5px; }
  /* Charts keep a readable size and scroll sideways rather than shrink their text. */
  figure { overflow-x: auto; } figure svg.chart { min-width: 540px; } }
@media print { body { max-width: none; } h2 { break-after: avoid; } a { color: inherit; text-decoration: none; } }
";

/// The page's check of itself, run once the page is laid out. It counts the marks drawn
/// in the palette's colours (lines of two points or more, markers, filled shapes) in
/// each chart (keys are HTML outside the charts, and axes and references are grey, so
/// every such mark is data) and writes what it found on the root element, where a test
/// reads it.
const CHECK: &str = "
(function () {
  var palette = PALETTE;
  var charts = document.querySelectorAll('svg.chart'), drawn = 0;
  charts.forEach(function (svg) {
    var marks = 0;
    svg.querySelectorAll('polyline, circle, rect, polygon, path').forEach(function (e) {
      var c = ((e.getAttribute('stroke') || '') + ' ' + (e.getAttribute('fill') || '')).toLowerCase();
      if (!palette.some(function (p) { return c.indexOf(p) >= 0; })) return;
      var b = e.getBBox();
      var pts = e.tagName === 'polyline' ? (e.getAttribute('points') || '').trim().split(/\\s+/).length : 2;
      if (pts >= 2 && (b.width > 0 || b.height > 0)) marks++;
    });
    var box = svg.getBoundingClientRect();
    var ok = marks > 0 && box.width > 0 && box.height > 0;
    svg.setAttribute('data-marks', marks);
    svg.setAttribute('data-drawn', ok ? 'yes' : 'no');
    if (ok) drawn++;
  });
  var root = document.documentElement;
  // Wide tables scroll inside their box, never the page: its width, and any table
  // outside a scrolling box.
  root.setAttribute('data-page-width', root.scrollWidth);
  root.setAttribute('data-loose-tables', Array.prototype.filter.call(document.querySelectorAll('table'), function (t) { return !t.closest('.scroll'); }).length);
  root.setAttribute('data-charts', charts.length);
  root.setAttribute('data-charts-drawn', drawn);
  root.setAttribute('data-checked', 'yes');
})();
";

const ONERROR: &str = "window.onerror = function (m) { document.documentElement.setAttribute('data-error', String(m)); };";

/// The whole page: `body` inside the head (styles, the error marker) and the check.
pub fn document(title: &str, body: &str) -> String {
    let palette: Vec<String> = super::chart::PALETTE.iter().map(|c| format!("'#{:02x}{:02x}{:02x}'", c.0, c.1, c.2)).collect();
    let check = CHECK.replace("PALETTE", &format!("[{}]", palette.join(", ")));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<script>{ONERROR}</script>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n<script>{check}</script>\n</body>\n</html>\n",
        escape(title)
    )
}

fn verdict_cell(passed: bool) -> &'static str {
    if passed { "<span class=\"pass\">pass</span>" } else { "<span class=\"fail\">FAIL</span>" }
}

/// The runs: what ran where and when, and each run's verdict.
pub fn runs_table(runs: &[Run]) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table>\n<tr><th>run</th><th class=\"text\">scenario</th><th class=\"text\">target</th><th class=\"text\">started</th><th>duration</th><th>verdict</th></tr>\n",
    );
    for r in runs {
        let x = &r.result;
        let name = x.scenario.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let verdict = match &x.verdict {
            Some(v) => verdict_cell(v.passed).to_string(),
            None => "—".into(),
        };
        let state = if !x.complete {
            " (checkpoint)"
        } else if x.interrupted {
            " (interrupted)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{} · {}</td><td class=\"text\">{}</td><td>{:.1} s{state}</td><td>{verdict}</td></tr>",
            escape(&r.name),
            escape(name),
            escape(&x.target.base_url),
            escape(&x.target.model),
            escape(&x.started_at),
            x.duration_s
        );
    }
    out.push_str("</table></div>\n");
    out
}

/// The comparison table: a row per stage (and run), the figures people quote.
pub fn stages_table(runs: &[Run], names: &[String]) -> String {
    let streamed = runs.iter().flat_map(|r| &r.result.stages).any(|s| s.ttft_ms.is_some());
    // Embeddings' inputs/s or rerank's docs/s.
    let items = crate::report::unit_of(runs.iter().flat_map(|r| &r.result.stages));
    // Tool calls made, and replies a check found invalid.
    let tools = runs.iter().flat_map(|r| &r.result.stages).any(|s| s.tool_calls.is_some());
    let checked = runs.iter().flat_map(|r| &r.result.stages).any(|s| s.checks.is_some());
    let images = runs.iter().flat_map(|r| &r.result.stages).any(|s| s.images.is_some());
    let mut out = String::from("<div class=\"scroll\"><table>\n<tr><th>stage</th>");
    if runs.len() > 1 {
        out.push_str("<th class=\"text\">run</th>");
    }
    out.push_str("<th>load</th><th>ok</th><th>failed</th><th>wall</th><th>mean</th><th>p50</th><th>p95</th><th>p99</th><th>ok/s</th><th>out tok/s</th>");
    if let Some(unit) = items {
        let _ = write!(out, "<th>{unit}</th>");
    }
    if images {
        out.push_str("<th>images</th><th>prompt tok p50</th>");
    }
    if tools {
        out.push_str("<th>tool calls</th>");
    }
    if checked {
        out.push_str("<th>invalid</th>");
    }
    if streamed {
        out.push_str("<th>TTFT p50</th><th>TTFT p99</th><th>ITL p50</th>");
    }
    out.push_str("</tr>\n");
    let ms = |v: Option<f64>| v.map_or("—".to_string(), fmt_ms);
    for name in names {
        for r in runs {
            let Some(s) = r.result.stages.iter().find(|s| &s.name == name) else { continue };
            let load = match super::across::load_of(s) {
                Some((super::across::Axis::Rate, x)) => format!("{} /s", fmt_rate(x)),
                Some((_, x)) => format!("{x}"),
                None => "—".into(),
            };
            let l = s.latency_ms.as_ref();
            let _ = write!(out, "<tr><td>{}</td>", escape(name));
            if runs.len() > 1 {
                let _ = write!(out, "<td class=\"text\">{}</td>", escape(&r.name));
            }
            let _ = write!(
                out,
                "<td>{load}</td><td>{}</td><td>{}</td><td>{:.2} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                s.requests.ok,
                s.requests.failed,
                s.wall_time_s,
                ms(l.map(|l| l.mean)),
                ms(l.map(|l| l.p50)),
                ms(l.map(|l| l.p95)),
                ms(l.map(|l| l.p99)),
                fmt_rate(s.throughput.ok_per_s),
                fmt_rate(s.throughput.output_tokens_per_s)
            );
            if items.is_some() {
                let _ = write!(out, "<td>{}</td>", s.items.as_ref().map_or("—".into(), |i| fmt_rate(i.per_s)));
            }
            if images {
                let i = s.images.as_ref();
                let prompt = i.and_then(|i| i.prompt_tokens).map_or("—".into(), |p| p.p50.to_string());
                let _ = write!(out, "<td>{}</td><td>{prompt}</td>", i.map_or("—".into(), |i| escape(&i.cell())));
            }
            if tools {
                let _ = write!(out, "<td>{}</td>", s.tool_calls.as_ref().map_or("—".into(), |t| t.calls.to_string()));
            }
            if checked {
                let _ = write!(
                    out,
                    "<td>{}</td>",
                    s.checks.as_ref().map_or("—".into(), |c| format!("{} of {}", c.failed, c.passed + c.failed))
                );
            }
            if streamed {
                let t = s.ttft_ms.as_ref();
                let _ = write!(
                    out,
                    "<td>{}</td><td>{}</td><td>{}</td>",
                    ms(t.map(|t| t.p50)),
                    ms(t.map(|t| t.p99)),
                    ms(s.itl_ms.as_ref().map(|t| t.p50))
                );
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</table></div>\n");
    out
}

/// Every run's thresholds with what was measured; None when no run has any.
pub fn thresholds_table(runs: &[Run]) -> Option<String> {
    let any =
        runs.iter().any(|r| r.result.verdict.as_ref().is_some_and(|v| !v.thresholds.is_empty() || !v.stages_without_success.is_empty()));
    if !any {
        return None;
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table>\n<tr><th class=\"text\">run</th><th class=\"text\">stage</th><th class=\"text\">threshold</th><th>measured</th><th>result</th></tr>\n",
    );
    for r in runs {
        let Some(v) = &r.result.verdict else { continue };
        for t in &v.thresholds {
            let measured = t.measured.map_or("not measured".to_string(), fig);
            let _ = writeln!(
                out,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{measured}</td><td>{}</td></tr>",
                escape(&r.name),
                escape(&t.stage),
                escape(&t.threshold),
                verdict_cell(t.passed)
            );
        }
        for s in &v.stages_without_success {
            let _ = writeln!(
                out,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">a successful request</td><td>0</td><td>{}</td></tr>",
                escape(&r.name),
                escape(s),
                verdict_cell(false)
            );
        }
    }
    out.push_str("</table></div>\n");
    Some(out)
}

/// One run compared with the first: a row per metric, a column per stage, each cell
/// the new figure and its change, marked better or worse when beyond noise; the gates.
pub fn comparison(base: &Run, new: &Run, c: &Comparison) -> String {
    let mut out = format!("<h3>{} against {}</h3>\n", escape(&new.name), escape(&base.name));
    let mut metrics: Vec<&'static str> = Vec::new();
    for r in c.stages.iter().flat_map(|s| &s.rows) {
        if !metrics.contains(&r.metric.name) {
            metrics.push(r.metric.name);
        }
    }
    if metrics.is_empty() {
        out.push_str("<p class=\"note\">No stage of the same name to compare.</p>\n");
    } else {
        out.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"text\">metric</th>");
        for s in &c.stages {
            let mark = if s.not_comparable.is_some() { " (not comparable)" } else { "" };
            let _ = write!(out, "<th>{}{mark}</th>", escape(&s.name));
        }
        out.push_str("</tr>\n");
        for m in &metrics {
            let _ = write!(out, "<tr><td class=\"text\">{m}</td>");
            for s in &c.stages {
                let Some(r) = s.rows.iter().find(|r| r.metric.name == *m) else {
                    out.push_str("<td>—</td>");
                    continue;
                };
                let change = r.relative.map_or(String::new(), |x| format!(" ({:+.1} %)", x * 100.0));
                let (class, word) = match (r.beyond_noise, r.better) {
                    (true, Some(true)) => ("pass", " better"),
                    (true, Some(false)) => ("fail", " worse"),
                    _ => ("same", ""),
                };
                let _ = write!(out, "<td class=\"{class}\" title=\"base {}\">{}{change}{word}</td>", fig(r.base), fig(r.new));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table></div>\n<p class=\"note\">Each cell: the new figure and its change from the base; “better” and “worse” mark changes beyond run-to-run noise, the rest are within it.</p>\n");
    }
    for s in &c.stages {
        if let Some(why) = &s.not_comparable {
            let _ = writeln!(
                out,
                "<p class=\"note warn\">{}: not comparable: {}; its figures are shown, not judged.</p>",
                escape(&s.name),
                escape(why)
            );
        }
    }
    let unmatched: Vec<String> = c.only_base.iter().chain(&c.only_new).map(|s| escape(s)).collect();
    if !unmatched.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">Stages on one side only, not compared: {}.</p>", unmatched.join(", "));
    }
    if !c.gates.is_empty() {
        out.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"text\">stage</th><th class=\"text\">gate</th><th>base</th><th>new</th><th>result</th></tr>\n");
        for g in &c.gates {
            let f = |v: Option<f64>| v.map_or("—".to_string(), fig);
            let _ = writeln!(
                out,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&g.stage),
                escape(&g.gate),
                f(g.base),
                f(g.new),
                verdict_cell(!g.tripped)
            );
        }
        out.push_str("</table></div>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_loads_nothing_from_the_network() {
        let d = document("t", "<p>x</p>");
        assert!(!d.contains("http://") && !d.contains("https://") && !d.contains(" src="), "{d}");
        assert!(d.contains("'#0072b2'"), "the check knows the palette");
    }
}
