//! What a merge should say beside its result: shards that did not run together (they
//! started a stage far apart, so the merged rates are counts over a span no load filled),
//! shards that aborted, stopped or did not finish (the merge is not the whole run), and
//! shards whose sessions came without histograms (their percentiles cannot add).

use std::path::PathBuf;
use std::time::SystemTime;

use crate::report::RunResult;

/// The part of a stage's span by which the shards' starts may differ (start lag, an
/// earlier count-bounded stage's shares ending at their own time) before they are said
/// not to have run together.
const APART: f64 = 0.25;

fn at(t: Option<&String>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t?).ok()
}

/// For stage `k`: the span from the earliest shard's stage start to the latest window's
/// end, and how far apart the shards started the stage, seconds; None with fewer than
/// two shards that ran it. Starts, not windows: a sparse open loop's windows are short
/// (its arrivals, phased per shard) though its shards run it together.
fn spans(shards: &[(PathBuf, RunResult)], k: usize) -> Option<(f64, f64)> {
    let mut runs = Vec::new();
    for (_, r) in shards {
        let s = r.stages.get(k)?;
        // A shard whose share of the stage was nothing (a low rate over many shards) has
        // no window worth comparing.
        if s.requests.started == 0 {
            continue;
        }
        let (Some(open), Some(end)) = (at(s.window_start.as_ref()), at(s.window_end.as_ref())) else { continue };
        let start = open.checked_sub(std::time::Duration::from_secs_f64(s.window_offset_s.unwrap_or(0.0).max(0.0)))?;
        runs.push((start, end));
    }
    if runs.len() < 2 {
        return None;
    }
    let secs = |a: SystemTime, b: SystemTime| b.duration_since(a).map_or(0.0, |d| d.as_secs_f64());
    let (first, last_start) = (runs.iter().map(|w| w.0).min()?, runs.iter().map(|w| w.0).max()?);
    let last_end = runs.iter().map(|w| w.1).max()?;
    Some((secs(first, last_end), secs(first, last_start)))
}

pub fn notes(shards: &[(PathBuf, RunResult)]) -> Vec<String> {
    let mut out = Vec::new();
    let stages = shards.first().map_or(0, |(_, r)| r.stages.len());
    let apart: Vec<String> = (0..stages)
        .filter_map(|k| {
            let (span, apart) = spans(shards, k)?;
            (span > 0.0 && apart > APART * span).then(|| {
                format!(
                    "{:?} (started {:.2} s apart, {:.0} % of its {:.2} s)",
                    shards[0].1.stages[k].name,
                    apart,
                    apart / span * 100.0,
                    span
                )
            })
        })
        .collect();
    if !apart.is_empty() {
        out.push(format!(
            "note: the shards did not run stage {} together (start them with --start-at), and the merged rates are over the whole span",
            apart.join(", ")
        ));
    }
    let which = |f: fn(&RunResult) -> bool| -> Vec<String> {
        shards.iter().filter(|(_, r)| f(r)).map(|(p, r)| format!("{} ({})", r.shard.map_or(0, |s| s.index), p.display())).collect()
    };
    for (what, list) in [
        ("aborted (its error rate)", which(|r| r.aborted.is_some())),
        ("stopped before its end", which(|r| r.interrupted)),
        ("a checkpoint of a run that did not finish", which(|r| !r.complete && !r.interrupted)),
    ] {
        if !list.is_empty() {
            out.push(format!("note: shard {} {what}: the merge is not the whole run's", list.join(", ")));
        }
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
