//! What a merge should say beside its result: shards that did not run together (their
//! windows barely overlap, so the merged rates are counts over a span no load filled),
//! and shards whose sessions came without histograms (their percentiles cannot add).

use std::path::PathBuf;
use std::time::SystemTime;

use crate::report::RunResult;

/// The part of the windows' span they may spend apart (start lag, a count-bounded
/// stage's shares ending at their own time) before the shards are said not to overlap.
const APART: f64 = 0.25;

fn at(t: Option<&String>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t?).ok()
}

/// For stage `k`: the span of the shards' windows together and the part all of them
/// were open, seconds; None when a window is missing.
fn spans(shards: &[(PathBuf, RunResult)], k: usize) -> Option<(f64, f64)> {
    let mut windows = Vec::new();
    for (_, r) in shards {
        let s = r.stages.get(k)?;
        windows.push((at(s.window_start.as_ref())?, at(s.window_end.as_ref())?));
    }
    let secs = |a: SystemTime, b: SystemTime| b.duration_since(a).map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64());
    let (first, last) = (windows.iter().map(|w| w.0).min()?, windows.iter().map(|w| w.1).max()?);
    let (latest_start, earliest_end) = (windows.iter().map(|w| w.0).max()?, windows.iter().map(|w| w.1).min()?);
    Some((secs(first, last), secs(latest_start, earliest_end).max(0.0)))
}

pub fn notes(shards: &[(PathBuf, RunResult)]) -> Vec<String> {
    let mut out = Vec::new();
    let stages = shards.first().map_or(0, |(_, r)| r.stages.len());
    let apart: Vec<String> = (0..stages)
        .filter_map(|k| {
            let (span, together) = spans(shards, k)?;
            (shards.len() > 1 && span > 0.0 && span - together > APART * span)
                .then(|| format!("{:?} ({:.0} % of {:.2} s)", shards[0].1.stages[k].name, together / span * 100.0, span))
        })
        .collect();
    if !apart.is_empty() {
        out.push(format!(
            "note: the shards' windows hardly overlap in stage {}: they did not run together (start them with --start-at), and the merged rates are over the whole span",
            apart.join(", ")
        ));
    }
    let countless = shards
        .iter()
        .flat_map(|(_, r)| &r.stages)
        .filter_map(|s| s.sessions.as_ref())
        .any(|x| x.turns.is_some() && x.histograms.turns.is_none());
    if countless {
        out.push(
            "note: a shard's sessions carry no histograms (an older result): their counts are merged, their percentiles left out".into(),
        );
    }
    out
}
