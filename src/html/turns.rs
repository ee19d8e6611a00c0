//! A stage's multi-turn sessions drawn by turn: the TTFT (e2e when nothing streamed)
//! p50 and p99 of each turn, and the share of its prompt tokens the server's prefix
//! cache held — where a prefix cache at work shows, later turns prefilling only what is
//! new.

use super::chart::{Chart, Draw, PANEL_HEIGHT, Series};
use super::{Figure, Run};
use crate::metrics::LatencySummary;
use crate::report::{Sessions, Turn};

/// The figure; None when no run's stage `name` ran sessions (nothing to say).
pub fn by_turn(runs: &[Run], name: &str) -> Option<Result<Figure, String>> {
    let here: Vec<(usize, &Run, &Sessions)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.result.stages.iter().find(|s| s.name == name)?.sessions.as_ref().map(|x| (i, r, x)))
        .collect();
    if here.is_empty() {
        return None;
    }
    let streamed = here.iter().any(|(_, _, x)| x.by_turn.iter().any(|t| t.ttft_ms.is_some()));
    let (what, of): (&str, fn(&Turn) -> Option<&LatencySummary>) =
        if streamed { ("TTFT", |t| t.ttft_ms.as_ref()) } else { ("e2e latency", |t| t.e2e_ms.as_ref()) };
    let panel = |title: String, y: &str| Chart {
        title,
        x_label: "turn in the session".into(),
        y_label: y.into(),
        y_zero: true,
        x_whole: true,
        height: PANEL_HEIGHT,
        ..Chart::default()
    };
    let mut latency = panel(format!("{what} by turn"), &format!("{what} (ms)"));
    let mut cached = panel("Prompt tokens found in the prefix cache, by turn".into(), "cached (%)");
    let at = |t: &Turn| f64::from(t.turn) + 1.0;
    for (i, run, x) in &here {
        let named = |q: &str| if runs.len() == 1 { q.to_string() } else { format!("{q} · {}", run.name) };
        for (k, (q, pick)) in
            [("p50", (|l: &LatencySummary| l.p50) as fn(&LatencySummary) -> f64), ("p99", |l| l.p99)].into_iter().enumerate()
        {
            let points: Vec<(f64, f64)> = x.by_turn.iter().filter_map(|t| of(t).map(|l| (at(t), pick(l)))).collect();
            let colour = if runs.len() == 1 { k } else { *i };
            latency.series.push(Series { dash: k, marker: *i, ..Series::new(named(q), colour, Draw::LineMarked, points) });
        }
        let shares: Vec<(f64, f64)> = x.by_turn.iter().filter_map(|t| t.cached_share.map(|c| (at(t), c * 100.0))).collect();
        if !shares.is_empty() {
            cached.series.push(Series { marker: *i, dash: *i, ..Series::new(named("cached"), *i, Draw::LineMarked, shares) });
        }
    }
    let turns = here.iter().map(|(_, _, x)| x.by_turn.iter().filter(|t| of(t).is_some()).count()).max().unwrap_or(0);
    if turns < 2 {
        return Some(Err(format!("{name}: sessions by turn: only {turns} turn has figures, no curve to draw")));
    }
    let later = here.iter().flat_map(|(_, _, x)| x.by_turn.last()).find(|t| t.and_later).map(|t| t.turn + 1);
    let charts: Vec<Chart> = [latency, cached].into_iter().filter(|c| !c.series.is_empty()).collect();
    let caption = format!(
        "Stage “{name}”, its sessions turn by turn: the {what} p50 and p99 of each turn (1 = a session's first request), and the share \
         of the turn's prompt tokens that the server said its prefix cache held (when its usage said). A prefix cache at work shows as \
         later turns starting sooner while their prompts, history included, grow.{}",
        later.map_or(String::new(), |k| format!(" Turn {k} also counts every later turn."))
    );
    Some(Ok(Figure { caption, charts }))
}
