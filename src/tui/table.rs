//! The comparison table: the report's rows, with counts abbreviated as elsewhere on the
//! dashboard and columns left out whole, least telling first, when the width is short.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Borders, Row, Table};
use unicode_width::UnicodeWidthStr;

use super::app::App;
use super::fit::{count, ellipsize, rate};
use crate::report::{Columns, StageResult, header, row};

/// Columns left out first when space is short, by title: p95, p50, max, the stream
/// columns out tok/s and ITL p50, then p99.
const DROP_FIRST: [&str; 6] = ["p95", "p50", "max", "out tok/s", "ITL p50", "p99"];
/// Stage names are cut (with an ellipsis) to this width before the optional columns
/// after `errors` go, and further only once those and `errors` have gone.
const MODE_W: u16 = 16;

/// What is drawn of the table: columns kept, the gap between them, the mode column's
/// width (stage names are cut to it).
#[derive(Debug, PartialEq)]
struct Fit {
    keep: Vec<usize>,
    gap: u16,
    mode_w: u16,
}

enum Step {
    Drop(usize),
    /// Cut the stage names to this width.
    Narrow(u16),
}

/// Fits the columns of `head` (of `widths`) in `avail` cells. The least telling
/// columns go first with gaps of 2; then gaps of 1, names cut to MODE_W, the other
/// optional columns from the right, errors, names cut to 4, and the seed columns from
/// the right; then what was freed is given back. A kept column always has its full
/// width: no figure is ever cut.
fn fit_columns(head: &[String], widths: &[u16], avail: u16) -> Fit {
    let mut fit = Fit { keep: (0..widths.len()).collect(), gap: 2, mode_w: widths.first().copied().unwrap_or(0) };
    let total = |fit: &Fit, gap: u16| -> u32 {
        let w = |i: usize| u32::from(if i == 0 { widths[0].min(fit.mode_w) } else { widths[i] });
        fit.keep.iter().map(|&i| w(i)).sum::<u32>() + u32::from(gap) * fit.keep.len().saturating_sub(1) as u32
    };
    let apply = |fit: &mut Fit, step: &Step| match *step {
        Step::Drop(i) => fit.keep.retain(|&k| k != i),
        Step::Narrow(w) => fit.mode_w = fit.mode_w.min(w),
    };
    let by_name = |n: &str| head.iter().position(|h| h == n);
    for step in DROP_FIRST.iter().filter_map(|n| by_name(n)).map(Step::Drop) {
        if total(&fit, 2) <= u32::from(avail) {
            return fit;
        }
        apply(&mut fit, &step);
    }
    if total(&fit, 2) <= u32::from(avail) {
        return fit;
    }
    fit.gap = 1;
    let errors = by_name("errors").unwrap_or(8);
    let mut later = vec![Step::Narrow(MODE_W)];
    later.extend((errors + 1..widths.len()).rev().map(Step::Drop));
    later.extend([Step::Drop(errors), Step::Narrow(4), Step::Drop(3), Step::Drop(2), Step::Drop(1)]);
    let mut dropped = Vec::new();
    for step in &later {
        if total(&fit, 1) <= u32::from(avail) {
            break;
        }
        apply(&mut fit, step);
        if let Step::Drop(i) = step {
            dropped.push(*i);
        }
    }
    // What a late drop freed may take back an earlier dropped column, the last dropped
    // (most telling) first; then the names take what is left.
    let dropped_first = DROP_FIRST.iter().filter_map(|n| by_name(n));
    for i in dropped.into_iter().rev().chain(dropped_first.rev()) {
        let at = fit.keep.partition_point(|&k| k < i);
        fit.keep.insert(at, i);
        if total(&fit, 1) > u32::from(avail) {
            fit.keep.remove(at);
        }
    }
    let spare = u32::from(avail).saturating_sub(total(&fit, 1)) as u16;
    fit.mode_w = widths[0].min(fit.mode_w.saturating_add(spare)).min(avail);
    fit
}

/// The report's cells with counts and rates as the dashboard shows them (`count`,
/// `rate`): throughput, errors and retries, which grow with the run.
fn cells(results: &[StageResult], head: &[String]) -> Vec<Vec<String>> {
    let cols = Columns::of(results);
    let at = |n: &str| head.iter().position(|h| h == n);
    results
        .iter()
        .map(|r| {
            let mut c = row(r, cols);
            if let Some(i) = at("throughput") {
                c[i] = format!("{} req/s", rate(r.throughput.requests_per_s));
            }
            if let Some(i) = at("errors").filter(|_| r.requests.failed > 0) {
                c[i] = format!("{} ({:.1}%)", count(r.requests.failed), r.error_rate * 100.0);
            }
            if let Some(i) = at("retries").filter(|_| r.retries.total > 0) {
                c[i] = format!("{} ({} recovered)", count(r.retries.total), count(r.retries.recovered));
            }
            c
        })
        .collect()
}

pub fn render_table(f: &mut Frame, app: &App, area: Rect) {
    let mut results: Vec<StageResult> = app.rows.clone();
    let live = app.current().map(StageResult::summary);
    results.extend(live);
    let head = header(&results);
    let cells = cells(&results, &head);
    let mut widths: Vec<u16> = head.iter().map(|h| h.width() as u16).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.width() as u16);
        }
    }
    let fit = fit_columns(&head, &widths, area.width.saturating_sub(2));
    let width = |i: usize| if i == 0 { widths[0].min(fit.mode_w) } else { widths[i] };
    // Only stage names are ever cut, and with an ellipsis.
    let pick = |v: &[String]| -> Vec<String> {
        fit.keep.iter().map(|&i| if i == 0 { ellipsize(&v[0], fit.mode_w as usize) } else { v[i].clone() }).collect()
    };
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
        Some(answer) => answer,
        None if skip > 0 => format!("comparison ({skip} earlier stages above)"),
        None => "comparison (best throughput highlighted)".into(),
    };
    let title = ellipsize(&title, area.width.saturating_sub(4) as usize);
    let table = Table::new(rows, fit.keep.iter().map(|&i| Constraint::Length(width(i))))
        .header(Row::new(pick(&head)).style(Style::default().add_modifier(Modifier::BOLD)))
        .column_spacing(fit.gap)
        .block(Block::default().borders(Borders::ALL).title(if title.is_empty() { title } else { format!(" {title} ") }));
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    const SEED: [&str; 9] = ["mode", "wall time", "mean latency", "throughput", "p50", "p95", "p99", "max", "errors"];

    #[test]
    fn the_least_telling_columns_go_first_then_the_gaps_narrow() {
        let h = head(&SEED);
        let widths = [10, 9, 12, 10, 6, 6, 6, 6, 10];
        let all: u16 = widths.iter().sum::<u16>() + 2 * 8;
        assert_eq!(fit_columns(&h, &widths, all), Fit { keep: (0..9).collect(), gap: 2, mode_w: 10 });
        // p95 and p50 go, in that order.
        let f = fit_columns(&h, &widths, all - 9);
        assert_eq!((f.keep, f.gap), (vec![0, 1, 2, 3, 6, 7, 8], 2));
        // Seed columns and errors with gaps of 1.
        let seed: u16 = [10, 9, 12, 10, 10].iter().sum::<u16>();
        let f = fit_columns(&h, &widths, seed + 4);
        assert_eq!((f.keep, f.gap, f.mode_w), (vec![0, 1, 2, 3, 8], 1, 10));
    }

    #[test]
    fn long_names_are_cut_before_columns_go_and_figures_never_are() {
        let h = head(&[&SEED[..], &["retries", "limiter wait"]].concat());
        let widths = [42, 9, 12, 10, 6, 6, 6, 6, 14, 18, 12];
        // 78 columns: names to 16, then limiter wait and retries go; limiter wait fits again.
        let f = fit_columns(&h, &widths, 78);
        assert_eq!((f.keep.clone(), f.gap, f.mode_w), (vec![0, 1, 2, 3, 8, 10], 1, 16));
        let drawn = |f: &Fit| f.keep.iter().map(|&i| if i == 0 { f.mode_w } else { widths[i] }).sum::<u16>() + f.keep.len() as u16 - 1;
        assert!(drawn(&f) <= 78);
        // Very narrow: errors, then seed columns go whole.
        for avail in [0, 5, 20, 30, 40, 50, 60] {
            let f = fit_columns(&h, &widths, avail);
            assert!(drawn(&f) <= avail.max(f.mode_w), "{avail}: {f:?}");
            assert!(f.keep.contains(&0));
        }
    }
}
