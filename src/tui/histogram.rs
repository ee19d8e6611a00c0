//! The histogram panel: one stage's e2e latency, TTFT, ITL, input or output lengths as
//! bars, with the p50/p90/p99 marks and a line of figures under them.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use super::app::{App, HistView, Scale, buckets_of};
use super::fit::{count, ellipsize, field, fit_line};
use crate::metrics::{Latency, Lengths, StageStats};

/// Room kept right of the bars for the widest marker, " ◂p50,p90,p99".
const MARK_W: usize = 13;

/// A distribution to draw, in its own unit.
enum Dist<'a> {
    /// µs in the histogram, ms on screen.
    Time(&'a Latency),
    Tokens(&'a Lengths),
}

impl Dist<'_> {
    fn hist(&self) -> &Histogram<u64> {
        match self {
            Dist::Time(l) => l.histogram(),
            Dist::Tokens(l) => l.histogram(),
        }
    }

    fn range(&self) -> Option<(u64, u64)> {
        match self {
            Dist::Time(l) => l.range_us(),
            Dist::Tokens(l) => l.range(),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Dist::Time(_) => "ms",
            Dist::Tokens(_) => "tok",
        }
    }

    /// p50, p90, p99 in the histogram's unit, for the marks beside the bars.
    fn marks(&self) -> [u64; 3] {
        match self {
            Dist::Time(l) => l.summary().map_or([0; 3], |s| [s.p50, s.p90, s.p99].map(|ms| (ms * 1000.0).round() as u64)),
            Dist::Tokens(l) => l.summary().map_or([0; 3], |s| [s.p50, s.p90, s.p99]),
        }
    }

    /// Bar labels (each bucket's low edge), with as many decimals as the narrowest
    /// bucket needs to tell rows apart; and the figures line's values with their unit.
    fn labels(&self, lows: &[u64], step: u64) -> (Vec<String>, Vec<String>, &'static str) {
        match self {
            Dist::Time(l) => {
                let decimals = (-(step as f64 / 1000.0).log10()).ceil().clamp(0.0, 3.0) as usize;
                let labels = lows.iter().map(|us| format!("{:.decimals$}", *us as f64 / 1000.0)).collect();
                let s = l.summary().expect("drawn only with data");
                let (v, unit) = figures(&[s.p50, s.p90, s.p99, s.max], decimals);
                (labels, v, unit)
            }
            // Whole tokens on the bars (rows must differ); the figures as counts.
            Dist::Tokens(l) => {
                let s = l.summary().expect("drawn only with data");
                (lows.iter().map(u64::to_string).collect(), [s.p50, s.p90, s.p99, s.max].map(count).to_vec(), "tok")
            }
        }
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

/// The view's distribution of `stage`, or why there is none to draw.
fn dist<'a>(app: &App, stage: &'a StageStats, live: bool) -> Result<Dist<'a>, String> {
    let (d, empty) = match app.hist {
        HistView::Latency => (Dist::Time(&stage.latency), stage.latency.count() == 0),
        HistView::Ttft => (Dist::Time(&stage.ttft), stage.ttft.count() == 0),
        HistView::Itl => (Dist::Time(&stage.itl), stage.itl.count() == 0),
        HistView::Input => (Dist::Tokens(&stage.input_len), stage.input_len.histogram().is_empty()),
        HistView::Output => (Dist::Tokens(&stage.output_len), stage.output_len.histogram().is_empty()),
        HistView::Task => match &stage.tasks {
            Some(t) if t.latency.count() > 0 => (Dist::Time(&t.latency), false),
            _ if stage.info.task.is_none() => return Err("no task latency: this stage runs single requests".into()),
            _ if live => return Err("waiting for the first task to answer…".into()),
            _ => return Err("no task answered".into()),
        },
    };
    if !empty {
        return Ok(d);
    }
    // Nothing succeeded yet: every view waits for the same thing.
    if stage.latency.count() == 0 {
        return Err(if stage.failed > 0 {
            format!("no successful response yet ({} failed)", count(stage.failed))
        } else if live {
            "waiting for the first response…".to_string()
        } else {
            "no successful response".to_string()
        });
    }
    let streams = stage.ttft.count() > 0;
    let any_streams = app.snapshot.finished.iter().map(|s| &**s).chain(app.snapshot.current.as_ref()).any(|s| s.ttft.count() > 0);
    let no_stream = |what: &str| match any_streams {
        false => format!("no {what}: the stages do not stream"),
        true => format!("no {what}: this stage does not stream"),
    };
    Err(match app.hist {
        HistView::Ttft => no_stream("TTFT"),
        HistView::Itl if !streams => no_stream("ITL"),
        HistView::Itl => "no ITL: no reply had two tokens or more".to_string(),
        HistView::Input => "no input lengths: no prompt's tokens were counted".to_string(),
        HistView::Output => "no output lengths: no reply's tokens were counted".to_string(),
        HistView::Latency | HistView::Task => unreachable!("latency has data here, and tasks said above"),
    })
}

/// " {view} · {stage} ({state}) · {scale} " within `w` columns: the stage's name is
/// cut first, then left out.
fn title(view: &str, name: &str, state: &str, scale: &str, w: usize) -> String {
    let bare = format!(" {view} ·  ({state}) · {scale} ");
    let room = w.saturating_sub(bare.width());
    if room >= name.width().min(6) {
        return format!(" {view} · {} ({state}) · {scale} ", ellipsize(name, room));
    }
    let line = fit_line(vec![field(0, view), field(1, scale)], " · ", w.saturating_sub(2));
    if line.is_empty() { String::new() } else { format!(" {line} ") }
}

pub fn render_histogram(f: &mut Frame, app: &App, area: Rect) {
    let scale = match app.scale {
        Scale::Log => "log",
        Scale::Linear => "linear",
    };
    let view = app.hist.title();
    let Some((stage, live)) = app.shown_stage() else {
        let block = Block::default().borders(Borders::ALL).title(format!(" {view} "));
        f.render_widget(Paragraph::new("waiting for the first stage…").block(block), area);
        return;
    };
    let state = if live { "live" } else { "finished" };
    let block =
        Block::default().borders(Borders::ALL).title(title(view, &stage.info.name, state, scale, area.width.saturating_sub(2) as usize));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let d = match dist(app, stage, live) {
        Ok(d) => d,
        // Wrapped at spaces: a figure in it stays whole.
        Err(why) => return f.render_widget(Paragraph::new(why).wrap(Wrap { trim: true }), inner),
    };
    let rows = inner.height.saturating_sub(1) as usize;
    let bs = buckets_of(d.hist(), d.range(), rows, app.scale);
    let max_count = bs.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let counts: Vec<String> = bs.iter().map(|b| count(b.count)).collect();
    let count_w = counts.iter().map(String::len).max().unwrap_or(1);
    let step = bs.iter().map(|b| b.hi - b.lo).min().unwrap_or(1);
    let lows: Vec<u64> = bs.iter().map(|b| b.lo).collect();
    let (labels, values, unit) = d.labels(&lows, step);
    let label_w = labels.iter().map(String::len).max().unwrap_or(1);
    let width = inner.width as usize;
    // Whole pieces or none: the label first, then the count, then bars and marks.
    let head_w = label_w + d.unit().len() + 2;
    let show_count = width >= head_w + 1 + count_w;
    let rest = width.saturating_sub(head_w + if show_count { 1 + count_w } else { 0 });
    let bar_w = rest.saturating_sub(MARK_W);
    let marks = d.marks();
    let mut lines: Vec<Line> = bs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if width < head_w {
                return Line::raw("");
            }
            let here: Vec<&str> =
                marks.iter().zip(["p50", "p90", "p99"]).filter(|(v, _)| (b.lo..b.hi).contains(*v)).map(|(_, n)| n).collect();
            let bar = bar(bar_w, b.count as f64 / max_count as f64);
            let mut mark = if here.is_empty() { String::new() } else { format!(" ◂{}", here.join(",")) };
            if bar.width() + mark.width() > rest {
                mark.clear();
            }
            let mut spans = vec![
                Span::styled(format!("{:>label_w$} {} ", labels[i], d.unit()), app.fg(Color::DarkGray)),
                Span::styled(bar, app.fg(Color::Green)),
            ];
            if show_count {
                spans.push(Span::raw(format!(" {}", counts[i])));
            }
            spans.push(Span::styled(mark, app.fg(Color::Yellow)));
            Line::from(spans)
        })
        .collect();
    lines.truncate(rows);
    while lines.len() < rows {
        lines.push(Line::raw(""));
    }
    // p50 and p99 stay longest; the unit goes with whatever is left.
    let names = ["p50", "p90", "p99", "max"];
    let fields = names.iter().zip(&values).zip([0, 3, 1, 2]).map(|((n, v), rank)| field(rank, format!("{n} {v}"))).collect();
    let figures = fit_line(fields, "  ", width.saturating_sub(unit.len() + 1));
    let figures = if figures.is_empty() { figures } else { format!("{figures} {unit}") };
    lines.push(Line::from(Span::styled(figures, Style::default().add_modifier(Modifier::BOLD))));
    f.render_widget(Paragraph::new(lines), inner);
}
