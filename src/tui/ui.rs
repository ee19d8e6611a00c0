//! Drawing the dashboard from App state. Nothing here changes state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Sparkline};

use unicode_width::UnicodeWidthStr;

use super::app::App;
use super::fit::{Field, count, ellipsize, field, fit_line, fit_lines, rate};
use super::histogram::render_histogram;
use super::table::render_table;
use crate::metrics::StageStats;

pub fn render(f: &mut Frame, app: &App) {
    let area = f.area();
    // An automatic sweep's rows come as it chooses its points: the table grows.
    let rows = app.plans.len().max(app.snapshot.finished.len() + usize::from(app.snapshot.current.is_some()));
    let table_h = (rows as u16 + 3).min(area.height.saturating_sub(2 + 6 + 1)).max(3);
    let [head, body, table, keys] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(4), Constraint::Length(table_h), Constraint::Length(1)]).areas(area);
    render_header(f, app, head);
    if body.width >= 70 {
        let [left, right] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
        render_histogram(f, app, left);
        let errors_h = (right.height / 3).max(3).min(right.height);
        let server = server_lines(app, right.width.saturating_sub(2) as usize, right.height.saturating_sub(errors_h + 3 + 2));
        let server_h = if server.is_empty() { 0 } else { server.len() as u16 + 2 };
        let [tp, srv, errs] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(server_h), Constraint::Length(errors_h)]).areas(right);
        render_throughput(f, app, tp);
        render_server(f, app, srv, server);
        render_errors(f, app, errs);
    } else {
        let [hist, rest] = Layout::vertical([Constraint::Percentage(55), Constraint::Min(0)]).areas(body);
        let server = server_lines(app, rest.width.saturating_sub(2) as usize, rest.height.saturating_sub(3 + 3 + 2).min(1));
        let server_h = if server.is_empty() { 0 } else { server.len() as u16 + 2 };
        let [tp, srv, errs] = Layout::vertical([Constraint::Min(3), Constraint::Length(server_h), Constraint::Length(3)]).areas(rest);
        render_histogram(f, app, hist);
        render_throughput(f, app, tp);
        render_server(f, app, srv, server);
        render_errors(f, app, errs);
    }
    render_table(f, app, table);
    render_keys(f, app, keys);
    if app.help {
        render_help(f, app, area);
    }
}

/// mm:ss.s
fn clock(d: std::time::Duration) -> String {
    let tenths = d.as_millis() / 100;
    format!("{:02}:{:02}.{}", tenths / 600, tenths % 600 / 10, tenths % 10)
}

fn render_header(f: &mut Frame, app: &App, area: Rect) {
    let [top, gauge] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let clock = format!(" {} ", clock(app.snapshot.elapsed));
    // The clock keeps its place; a long scenario name is clipped instead.
    let [title_area, clock_area] = Layout::horizontal([Constraint::Min(0), Constraint::Length(clock.len() as u16)]).areas(top);
    // The scenario's name is cut first; the target only when it alone is too wide.
    let room = (title_area.width as usize).saturating_sub(9);
    let text = match room.checked_sub(app.target.width() + 3) {
        Some(left) if left >= app.scenario.width().min(4) => format!("{} · {}", ellipsize(&app.scenario, left), app.target),
        _ => ellipsize(&app.target, room),
    };
    let title = Line::from(vec![Span::styled(" llmload ", app.fg(Color::Cyan).add_modifier(Modifier::BOLD)), Span::raw(text)]);
    f.render_widget(Paragraph::new(title), title_area);
    f.render_widget(Paragraph::new(clock), clock_area);

    let snap = &app.snapshot;
    let total = snap.total_stages.max(1);
    let auto = app.sweep.as_ref().is_some_and(|(s, _)| s.auto.is_some());
    let w = gauge.width as usize;
    let (ratio, label) = if snap.done {
        let stopped = if app.stopping { " (stopped)" } else { "" };
        let of = if auto { String::new() } else { format!(" of {total}") };
        let stages = format!("{}{of} stages", snap.finished.len());
        match &snap.aborted {
            // The reason is left out whole when it does not fit: it holds figures.
            Some(why) => (1.0, fit_line(vec![field(1, why.as_str()), field(0, stages)], " · ", w)),
            None => (1.0, fit_line(vec![field(0, "finished"), field(0, format!("{stages}{stopped}"))], " · ", w)),
        }
    } else if let Some(c) = &snap.current {
        let (ratio, progress) = stage_progress(c);
        // An automatic sweep's points are chosen as it runs: no total to show.
        let stage = match c.info.index < snap.total_stages {
            true => format!("stage {}/{total}", c.info.index + 1),
            false => format!("auto sweep point {}", c.info.index + 1 - snap.total_stages),
        };
        let mut fields = vec![field(0, stage), field(2, c.info.name.as_str()), field(1, progress)];
        if app.stopping {
            fields.push(field(0, "stopping…"));
        }
        (ratio, fit_line(fields, " · ", w))
    } else {
        (0.0, "starting…".to_string())
    };
    let gauge_widget =
        Gauge::default().ratio(ratio.clamp(0.0, 1.0)).label(label).gauge_style(app.fg(Color::Blue).add_modifier(Modifier::BOLD));
    f.render_widget(gauge_widget, gauge);
}

/// (done fraction, text) of a running stage: warmup first, then by requests, or by time
/// for duration stages.
fn stage_progress(c: &StageStats) -> (f64, String) {
    if c.info.warmup_auto && c.window_offset.is_none() {
        return (0.0, format!("warmup until settled: {} requests", count(c.warmup_done)));
    }
    if c.info.warmup > 0 && c.warmup_done < c.info.warmup && c.started == 0 {
        return (c.warmup_done as f64 / c.info.warmup as f64, format!("warmup {}/{}", count(c.warmup_done), count(c.info.warmup)));
    }
    match (c.info.planned_requests, c.info.planned_duration) {
        (Some(n), d) => {
            // A task stage counts tasks.
            let (done, what) = match (&c.tasks, &c.info.task) {
                (Some(t), _) => (t.ended_count() + t.cut, "tasks"),
                (None, Some(_)) => (0, "tasks"),
                (None, None) => (c.done(), "requests"),
            };
            let by_count = done as f64 / n as f64;
            let by_time = d.map_or(0.0, |d| c.wall.as_secs_f64() / d.as_secs_f64().max(1e-9));
            (by_count.max(by_time), format!("{}/{} {what}", count(done), count(n)))
        }
        (None, Some(d)) => {
            (c.wall.as_secs_f64() / d.as_secs_f64().max(1e-9), format!("{:.0}/{:.0} s", c.wall.as_secs_f64(), d.as_secs_f64()))
        }
        (None, None) => (0.0, format!("{} requests", count(c.done()))),
    }
}

fn render_throughput(f: &mut Frame, app: &App, area: Rect) {
    let w = area.width.saturating_sub(2) as usize;
    let title = fit_line(vec![field(1, "throughput"), field(0, format!("{} req/s", rate(app.rate_now)))], " ", w.saturating_sub(2));
    let block = Block::default().borders(Borders::ALL).title(if title.is_empty() { title } else { format!(" {title} ") });
    let inner = block.inner(area);
    f.render_widget(block, area);
    // Up to three status lines while the chart keeps at least three rows.
    let max_lines = (inner.height.saturating_sub(3) as usize).clamp(1, 3);
    let status = fit_lines(status(app), " · ", inner.width as usize, max_lines);
    let [chart, status_area] = Layout::vertical([Constraint::Min(0), Constraint::Length(status.len() as u16)]).areas(inner);
    // Whole history squeezed into the width (means of equal slices), scaled before
    // rounding so that rates below 1 req/s still draw.
    let width = chart.width.max(1) as usize;
    let pts: Vec<f64> = app.throughput.iter().copied().collect();
    let per = pts.len().div_ceil(width).max(1);
    let points: Vec<u64> = pts.chunks(per).map(|c| (c.iter().sum::<f64>() / c.len() as f64 * 1000.0).round() as u64).collect();
    f.render_widget(Sparkline::default().data(&points).style(app.fg(Color::Cyan)), chart);
    f.render_widget(Paragraph::new(status.into_iter().map(Line::raw).collect::<Vec<_>>()), status_area);
}

/// The throughput panel's status: the running stage's counts, then tokens/s, as
/// groups of fields ranked by how much they tell (errors and falling behind first).
fn status(app: &App) -> Vec<Vec<Field>> {
    let counts = match app.current() {
        Some(c) => {
            let mut v = match c.info.rate {
                Some(r) => {
                    let mut v = vec![field(3, format!("in flight {} (cap {})", count(c.in_flight()), c.info.concurrency))];
                    v.push(field(4, format!("{} req/s offered", rate(r))));
                    if c.behind.as_secs_f64() >= 0.05 {
                        v.push(field(0, format!("{} s behind", rate(c.behind.as_secs_f64()))));
                    }
                    v
                }
                None => vec![field(3, format!("in flight {}/{}", count(c.in_flight()), c.info.concurrency))],
            };
            v.extend([field(1, format!("ok {}", count(c.ok))), field(0, format!("err {}", count(c.failed)))]);
            if let Some(t) = &c.tasks {
                v.extend([field(1, format!("tasks in flight {}", count(t.in_flight()))), field(2, format!("answered {}", count(t.ok)))]);
                if t.failed > 0 {
                    v.push(field(0, format!("tasks failed {}", count(t.failed))));
                }
            }
            v
        }
        None if app.done() => vec![field(1, "run finished"), field(5, "last stage's rates")],
        None => vec![field(0, "—")],
    };
    let mut tokens = Vec::new();
    // Embeddings' inputs or rerank's documents: the running (or last) stage's rate.
    let stage = app.current().or_else(|| app.snapshot.finished.last().map(|l| &**l));
    if let Some(s) = stage.filter(|s| s.items.requests > 0) {
        tokens.push(field(1, format!("{} {}/s", rate(s.items_per_s()), s.info.items.unwrap_or("inputs"))));
    }
    if let Some(out) = app.out_tokens_now {
        tokens.push(field(2, format!("{} tok/s out", rate(out))));
    }
    if let Some(input) = app.in_tokens_now {
        tokens.push(field(6, format!("{} tok/s in", rate(input))));
    }
    if let Some(w) = app.snapshot.generator.as_ref().and_then(|g| g.short()) {
        tokens.insert(0, field(0, w));
    }
    vec![counts, tokens]
}

/// The server panel's lines, at most `most` of `width`: its first endpoint's latest
/// figures (queue first, then memory, then GPUs). None when no metrics are read.
fn server_lines(app: &App, width: usize, most: u16) -> Vec<String> {
    let Some(live) = app.snapshot.server.first() else { return Vec::new() };
    let fields: Vec<Field> = live.fields().into_iter().enumerate().map(|(i, text)| field(i.min(4) as u8, text)).collect();
    if fields.is_empty() || most == 0 {
        return Vec::new();
    }
    fit_lines(vec![fields], " · ", width, most as usize)
}

/// The server's own view, in a panel of its own, when its metrics are read.
fn render_server(f: &mut Frame, app: &App, area: Rect, lines: Vec<String>) {
    if lines.is_empty() || area.height == 0 {
        return;
    }
    let name = app.snapshot.server.first().map_or("server", |s| s.endpoint.as_str());
    let title = ellipsize(&format!(" {name} (its /metrics) "), area.width.saturating_sub(2) as usize);
    let block = Block::default().borders(Borders::ALL).title(title).border_style(app.fg(Color::Magenta));
    f.render_widget(Paragraph::new(lines.into_iter().map(Line::raw).collect::<Vec<_>>()).block(block), area);
}

fn render_errors(f: &mut Frame, app: &App, area: Rect) {
    let stage = app.shown_stage().map(|(s, _)| s);
    let w = area.width.saturating_sub(2) as usize;
    let title = match stage {
        Some(s) if w >= " errors ·  ".width() + s.info.name.width().min(6) => {
            format!(" errors · {} ", ellipsize(&s.info.name, w - " errors ·  ".width()))
        }
        _ => " errors ".to_string(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    // A kind and its count, then what is said of it when there is room.
    let line = |head: String, tail: Vec<String>| {
        let tail = tail.into_iter().find(|t| head.width() + 2 + t.width() <= w);
        fit_line(std::iter::once(field(0, head)).chain(tail.map(|t| field(1, t))).collect(), "  ", w)
    };
    let head = |what: &str, n: u64| format!("{what:<14}{:>7}", count(n));
    let mut lines = Vec::new();
    if let Some(s) = stage {
        let total = (s.ok + s.failed).max(1) as f64;
        for (kind, n) in &s.failures {
            let text = line(head(kind.as_str(), *n), vec![format!("{:.1}%", *n as f64 / total * 100.0)]);
            let (name, figures) = text.split_at(text.len().min(14));
            lines.push(Line::from(vec![
                Span::styled(name.to_string(), app.fg(Color::Red).add_modifier(Modifier::BOLD)),
                Span::raw(figures.to_string()),
            ]));
        }
        if s.cancelled > 0 {
            lines.push(Line::raw(line(head("cancelled", s.cancelled), vec![])));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("none", app.fg(Color::Green))));
    }
    // What the client did about failures and quotas: retries and the rate limiter.
    if let Some(s) = stage {
        let retries = s.retries();
        if retries > 0 {
            let (a, b) = (count(s.recovered), count(s.retried));
            let text = line(head("retries", retries), vec![format!("{a} of {b} requests recovered"), format!("{a}/{b} recovered")]);
            lines.push(Line::from(Span::styled(text, app.fg(Color::Yellow))));
        }
        if let Some(wait) = s.limiter_wait.summary() {
            let p50 = crate::report::fmt_ms(wait.p50);
            let text = line(head("rate limiter", s.limited), vec![format!("held, p50 wait {p50}"), format!("p50 {p50}")]);
            lines.push(Line::from(Span::styled(text, app.fg(Color::Yellow))));
        }
    }
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_keys(f: &mut Frame, app: &App, area: Rect) {
    let fields = if app.done() {
        vec![
            field(0, "finished"),
            field(0, "Enter or q: exit and print the table"),
            field(1, "←/→ stage"),
            field(2, "h view"),
            field(3, "l log/linear"),
        ]
    } else if app.stopping {
        vec![field(0, "stopping: waiting for requests in flight"), field(0, "q again: stop now")]
    } else {
        vec![field(0, "q stop"), field(0, "? help"), field(1, "←/→ stage"), field(2, "h e2e/TTFT/ITL/tokens"), field(3, "l log/linear")]
    };
    let text = fit_line(fields, " · ", area.width as usize);
    f.render_widget(Paragraph::new(Span::styled(text, Style::default().add_modifier(Modifier::DIM))), area);
}

fn render_help(f: &mut Frame, app: &App, area: Rect) {
    let w = 56.min(area.width);
    let h = 12.min(area.height);
    let r = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    let lines = vec![
        Line::raw("q, Esc, Ctrl-C  stop the run; in-flight requests"),
        Line::raw("                get a grace period; again: stop now"),
        Line::raw("←/→, Tab        histogram of another stage"),
        Line::raw("h, H            histogram of e2e latency, TTFT, ITL,"),
        Line::raw("                input or output tokens"),
        Line::raw("l               log / linear buckets"),
        Line::raw("?               this help"),
        Line::raw(""),
        Line::raw("Results (table, JSON) are written whatever way"),
        Line::raw("the run ends."),
    ];
    f.render_widget(Clear, r);
    let block = Block::default().borders(Borders::ALL).title(" keys ").border_style(app.fg(Color::Yellow));
    f.render_widget(Paragraph::new(lines).block(block), r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_shows_its_warmup_then_its_window() {
        let mut c = StageStats::default();
        c.info.warmup = 10;
        c.warmup_done = 4;
        assert_eq!(stage_progress(&c), (0.4, "warmup 4/10".to_string()));
        // An automatic warmup has no count to reach: it says what it waits for.
        c.info.warmup_auto = true;
        c.warmup_done = 1234;
        assert_eq!(stage_progress(&c), (0.0, "warmup until settled: 1234 requests".to_string()));
        c.window_offset = Some(std::time::Duration::from_secs(12));
        c.info.planned_duration = Some(std::time::Duration::from_secs(10));
        c.wall = std::time::Duration::from_secs(5);
        assert_eq!(stage_progress(&c).1, "5/10 s");
    }
}
