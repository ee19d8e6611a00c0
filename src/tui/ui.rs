//! Drawing the dashboard from App state. Nothing here changes state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Row, Sparkline, Table};

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, Scale, buckets};
use crate::metrics::StageStats;
use crate::report::{Columns, StageResult, fmt_rate, header, row};

impl App {
    fn fg(&self, c: Color) -> Style {
        if self.color { Style::default().fg(c) } else { Style::default() }
    }
}

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
        let [tp, errs] = Layout::vertical([Constraint::Min(3), Constraint::Length(errors_h)]).areas(right);
        render_throughput(f, app, tp);
        render_errors(f, app, errs);
    } else {
        let [hist, tp, errs] = Layout::vertical([Constraint::Percentage(55), Constraint::Min(3), Constraint::Length(3)]).areas(body);
        render_histogram(f, app, hist);
        render_throughput(f, app, tp);
        render_errors(f, app, errs);
    }
    render_table(f, app, table);
    render_keys(f, app, keys);
    if app.help {
        render_help(f, app, area);
    }
}

/// `s` cut to `w` display columns, with an ellipsis when cut.
fn fit(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if out.width() + c.width().unwrap_or(0) + 1 > w {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
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
    let title = Line::from(vec![
        Span::styled(" llmload ", app.fg(Color::Cyan).add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "{} · {}",
            fit(&app.scenario, (title_area.width as usize).saturating_sub(9 + 3 + app.target.width())),
            app.target
        )),
    ]);
    f.render_widget(Paragraph::new(title), title_area);
    f.render_widget(Paragraph::new(clock), clock_area);

    let snap = &app.snapshot;
    let total = snap.total_stages.max(1);
    let auto = app.sweep.as_ref().is_some_and(|(s, _)| s.auto.is_some());
    let (ratio, label) = if snap.done {
        let stopped = if app.stopping { " (stopped)" } else { "" };
        let of = if auto { String::new() } else { format!(" of {total}") };
        match &snap.aborted {
            Some(why) => (1.0, format!("{why} · {}{of} stages", snap.finished.len())),
            None => (1.0, format!("finished · {}{of} stages{stopped}", snap.finished.len())),
        }
    } else if let Some(c) = &snap.current {
        let (ratio, progress) = stage_progress(c);
        let stopping = if app.stopping { " · stopping…" } else { "" };
        // An automatic sweep's points are chosen as it runs: no total to show.
        let stage = match c.info.index < snap.total_stages {
            true => format!("stage {}/{total}", c.info.index + 1),
            false => format!("auto sweep point {}", c.info.index + 1 - snap.total_stages),
        };
        (ratio, format!("{stage} · {} · {progress}{stopping}", c.info.name))
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
    if c.info.warmup > 0 && c.warmup_done < c.info.warmup && c.started == 0 {
        return (c.warmup_done as f64 / c.info.warmup as f64, format!("warmup {}/{}", c.warmup_done, c.info.warmup));
    }
    match (c.info.planned_requests, c.info.planned_duration) {
        (Some(n), d) => {
            let by_count = c.done() as f64 / n as f64;
            let by_time = d.map_or(0.0, |d| c.wall.as_secs_f64() / d.as_secs_f64().max(1e-9));
            (by_count.max(by_time), format!("{}/{n} requests", c.done()))
        }
        (None, Some(d)) => {
            (c.wall.as_secs_f64() / d.as_secs_f64().max(1e-9), format!("{:.0}/{:.0} s", c.wall.as_secs_f64(), d.as_secs_f64()))
        }
        (None, None) => (0.0, format!("{} requests", c.done())),
    }
}

/// Figures sharing one unit, so a line of them stays short: ms, or s from 10 s up. At
/// least `min_decimals` decimals, so the figures of a narrow spread differ.
fn figures(ms: &[f64], min_decimals: usize) -> (Vec<String>, &'static str) {
    let top = ms.iter().cloned().fold(0.0, f64::max);
    if top >= 10_000.0 {
        return (ms.iter().map(|v| format!("{:.1}", v / 1000.0)).collect(), "s");
    }
    let d = [(100.0, 0), (1.0, 1), (0.0, 2)].iter().find(|(from, _)| top >= *from).map_or(2, |(_, d)| *d).max(min_decimals);
    (ms.iter().map(|v| format!("{v:.d$}")).collect(), "ms")
}

const BLOCKS: [&str; 8] = ["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"];

fn bar(width: usize, fraction: f64) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push_str(BLOCKS[eighths % 8 - 1]);
    }
    s
}

fn render_histogram(f: &mut Frame, app: &App, area: Rect) {
    let scale = match app.scale {
        Scale::Log => "log",
        Scale::Linear => "linear",
    };
    let Some((stage, live)) = app.shown_stage() else {
        let block = Block::default().borders(Borders::ALL).title(" latency ");
        f.render_widget(Paragraph::new("waiting for the first stage…").block(block), area);
        return;
    };
    let state = if live { "live" } else { "finished" };
    let block = Block::default().borders(Borders::ALL).title(format!(" latency · {} ({state}) · {scale} ", stage.info.name));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(sum) = stage.latency.summary() else {
        let text = if stage.failed > 0 {
            format!("no successful response yet ({} failed)", stage.failed)
        } else if live {
            "waiting for the first response…".to_string()
        } else {
            "no successful response".to_string()
        };
        f.render_widget(Paragraph::new(text), inner);
        return;
    };
    let rows = inner.height.saturating_sub(1) as usize;
    let bs = buckets(&stage.latency, rows, app.scale);
    let max_count = bs.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let count_w = max_count.to_string().len();
    // Labels carry as many decimals as the narrowest bucket needs to tell rows apart.
    let step_ms = bs.iter().map(|b| (b.hi_us - b.lo_us) as f64 / 1000.0).fold(f64::INFINITY, f64::min);
    let decimals = (-step_ms.log10()).ceil().clamp(0.0, 3.0) as usize;
    let labels: Vec<String> = bs.iter().map(|b| format!("{:.decimals$}", b.lo_us as f64 / 1000.0)).collect();
    let label_w = labels.iter().map(String::len).max().unwrap_or(1);
    let marks = [(sum.p50, "p50"), (sum.p90, "p90"), (sum.p99, "p99")];
    // Room for the widest marker, " ◂p50,p90,p99".
    let bar_w = (inner.width as usize).saturating_sub(label_w + 4 + count_w + 1 + 13);
    let mut lines: Vec<Line> = bs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let here: Vec<&str> = marks
                .iter()
                .filter(|(v, _)| {
                    let us = (v * 1000.0).round() as u64;
                    us >= b.lo_us && us < b.hi_us
                })
                .map(|(_, n)| *n)
                .collect();
            let mark = if here.is_empty() { String::new() } else { format!(" ◂{}", here.join(",")) };
            Line::from(vec![
                Span::styled(format!("{:>label_w$} ms ", labels[i]), app.fg(Color::DarkGray)),
                Span::styled(bar(bar_w, b.count as f64 / max_count as f64), app.fg(Color::Green)),
                Span::raw(format!(" {}", b.count)),
                Span::styled(mark, app.fg(Color::Yellow)),
            ])
        })
        .collect();
    lines.truncate(rows);
    while lines.len() < rows {
        lines.push(Line::raw(""));
    }
    let (v, unit) = figures(&[sum.p50, sum.p90, sum.p99, sum.max], decimals);
    lines.push(Line::from(Span::styled(
        format!("p50 {}  p90 {}  p99 {}  max {} {unit}", v[0], v[1], v[2], v[3]),
        Style::default().add_modifier(Modifier::BOLD),
    )));
    f.render_widget(Paragraph::new(lines), inner);
}

fn render_throughput(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(format!(" throughput {} req/s ", fmt_rate(app.rate_now)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [chart, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    // Whole history squeezed into the width (means of equal slices), scaled before
    // rounding so that rates below 1 req/s still draw.
    let width = chart.width.max(1) as usize;
    let pts: Vec<f64> = app.throughput.iter().copied().collect();
    let per = pts.len().div_ceil(width).max(1);
    let points: Vec<u64> = pts.chunks(per).map(|c| (c.iter().sum::<f64>() / c.len() as f64 * 1000.0).round() as u64).collect();
    f.render_widget(Sparkline::default().data(&points).style(app.fg(Color::Cyan)), chart);
    let text = match app.current() {
        Some(c) => match c.info.rate {
            Some(r) => {
                let behind = match c.behind.as_secs_f64() {
                    b if b >= 0.05 => format!(" · {} s behind", fmt_rate(b)),
                    _ => String::new(),
                };
                format!(
                    "in flight {} (cap {}) · {} req/s offered{behind} · ok {} · err {}",
                    c.in_flight(),
                    c.info.concurrency,
                    r,
                    c.ok,
                    c.failed
                )
            }
            None => format!("in flight {}/{} · ok {} · err {}", c.in_flight(), c.info.concurrency, c.ok, c.failed),
        },
        None if app.done() => "run finished; rate of the last stage".to_string(),
        None => "—".to_string(),
    };
    f.render_widget(Paragraph::new(text), status);
}

fn render_errors(f: &mut Frame, app: &App, area: Rect) {
    let stage = app.shown_stage().map(|(s, _)| s);
    let title = format!(" errors{} ", stage.map_or(String::new(), |s| format!(" · {}", s.info.name)));
    let block = Block::default().borders(Borders::ALL).title(title);
    let mut lines = Vec::new();
    if let Some(s) = stage {
        let total = (s.ok + s.failed).max(1) as f64;
        for (kind, n) in &s.failures {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", kind.as_str()), app.fg(Color::Red).add_modifier(Modifier::BOLD)),
                Span::raw(format!("{n:>7}  {:.1}%", *n as f64 / total * 100.0)),
            ]));
        }
        if s.cancelled > 0 {
            lines.push(Line::raw(format!("{:<14}{:>7}", "cancelled", s.cancelled)));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("none", app.fg(Color::Green))));
    }
    // What the client did about failures and quotas: retries and the rate limiter.
    if let Some(s) = stage {
        let retries = s.retries();
        if retries > 0 {
            let line = format!("{:<14}{retries:>7}  {} of {} requests recovered", "retries", s.recovered, s.retried);
            lines.push(Line::from(Span::styled(line, app.fg(Color::Yellow))));
        }
        if let Some(w) = s.limiter_wait.summary() {
            let line = format!("{:<14}{:>7}  held, p50 wait {}", "rate limiter", s.limited, crate::report::fmt_ms(w.p50));
            lines.push(Line::from(Span::styled(line, app.fg(Color::Yellow))));
        }
    }
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// Table columns in drop order when space is short: p95, p50, max, then the stream
/// columns out tok/s and ITL p50, then p99.
const DROP_ORDER: [usize; 6] = [5, 4, 7, 11, 10, 6];

/// Indices of the columns that fit in `avail` cells with `gap` between columns.
fn fit_columns(widths: &[u16], avail: u16, gap: u16) -> Vec<usize> {
    let mut keep: Vec<usize> = (0..widths.len()).collect();
    let total = |keep: &[usize]| keep.iter().map(|&i| widths[i]).sum::<u16>() + gap * keep.len().saturating_sub(1) as u16;
    for drop in DROP_ORDER {
        if total(&keep) <= avail {
            break;
        }
        keep.retain(|&i| i != drop);
    }
    keep
}

fn render_table(f: &mut Frame, app: &App, area: Rect) {
    let mut results: Vec<StageResult> = app.rows.clone();
    let live = app.current().map(StageResult::summary);
    results.extend(live);
    let head = header(&results);
    let cols = Columns::of(&results);
    let cells: Vec<Vec<String>> = results.iter().map(|r| row(r, cols)).collect();
    let mut widths: Vec<u16> = head.iter().map(|h| h.chars().count() as u16).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.width() as u16);
        }
    }
    // Narrow terminals lose the least telling columns first, never the seed ones, then
    // the gaps narrow.
    let avail = area.width.saturating_sub(2);
    let keep = fit_columns(&widths, avail, 2);
    let width_of = |gap: u16| keep.iter().map(|&i| widths[i]).sum::<u16>() + gap * keep.len().saturating_sub(1) as u16;
    let gap = if width_of(2) <= avail { 2 } else { 1 };
    let pick = |v: &[String]| -> Vec<String> { keep.iter().map(|&i| v[i].clone()).collect() };
    let best = app.best_row();
    // More stages than rows: the latest stay in view (the running one above all).
    let visible = area.height.saturating_sub(3) as usize;
    let skip = cells.len().saturating_sub(visible);
    let rows: Vec<Row> = cells
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, c)| {
            let style = if i >= app.rows.len() {
                Style::default().add_modifier(Modifier::DIM | Modifier::ITALIC)
            } else if Some(i) == best {
                if app.color {
                    Style::default().fg(Color::Green).add_modifier(Modifier::BOLD)
                } else {
                    Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
                }
            } else {
                Style::default()
            };
            Row::new(pick(c)).style(style)
        })
        .collect();
    let title = match app.sweep_summary() {
        Some(answer) => format!(" {answer} "),
        None if skip > 0 => format!(" comparison ({skip} earlier stages above) "),
        None => " comparison (best throughput highlighted) ".into(),
    };
    let table = Table::new(rows, keep.iter().map(|&i| Constraint::Length(widths[i])))
        .header(Row::new(pick(&head)).style(Style::default().add_modifier(Modifier::BOLD)))
        .column_spacing(gap)
        .block(Block::default().borders(Borders::ALL).title(title));
    f.render_widget(table, area);
}

fn render_keys(f: &mut Frame, app: &App, area: Rect) {
    let text = if app.done() {
        "finished · Enter or q: exit and print the table · ←/→ browse stages · l log/linear"
    } else if app.stopping {
        "stopping: waiting for requests in flight · q again: stop now"
    } else {
        "q stop · ? help · ←/→ stage histogram · l log/linear"
    };
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
        Line::raw("l               log / linear latency buckets"),
        Line::raw("?               this help"),
        Line::raw(""),
        Line::raw("Results (table, JSON) are written whatever way"),
        Line::raw("the run ends."),
    ];
    f.render_widget(Clear, r);
    let block = Block::default().borders(Borders::ALL).title(" keys ").border_style(app.fg(Color::Yellow));
    f.render_widget(Paragraph::new(lines).block(block), r);
}
