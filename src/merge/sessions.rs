//! A stage's multi-turn sessions of every shard as one: counts summed, and the
//! distributions behind each summary (session length and duration; TTFT, e2e and input
//! length by turn) added exactly, as the stage's are. A summary whose shard kept no
//! distribution (a result from before they travelled) cannot be added: it is left out.

use super::add::{latency, lengths, sum_maps};
use crate::metrics::{Latency, LatencySummary, LengthSummary, Lengths};
use crate::report::{Dist, SessionHistograms, Sessions, Turn, TurnHistograms};

/// How one kind of distribution adds (`add::latency`, `add::lengths`).
type Add<T> = fn(&[Option<&Dist>]) -> Result<Option<T>, String>;

/// Summaries and their distributions, one pair per shard, added with `add` and read
/// again with `summary`; `to_dist` writes the sum back.
fn added<'a, S, T>(
    parts: impl Iterator<Item = (Option<&'a S>, Option<&'a Dist>)>,
    add: Add<T>,
    summary: fn(&T) -> Option<S>,
    to_dist: fn(&T) -> Option<Dist>,
) -> Result<(Option<S>, Option<Dist>), String>
where
    S: 'a,
{
    let (summaries, dists): (Vec<_>, Vec<_>) = parts.unzip();
    if summaries.iter().zip(&dists).any(|(s, d)| s.is_some() && d.is_none()) {
        return Ok((None, None));
    }
    let sum = add(&dists)?;
    Ok((sum.as_ref().and_then(summary), sum.as_ref().and_then(to_dist)))
}

fn lat<'a>(
    parts: impl Iterator<Item = (Option<&'a LatencySummary>, Option<&'a Dist>)>,
) -> Result<(Option<LatencySummary>, Option<Dist>), String> {
    added(parts, latency, Latency::summary, Dist::of_latency)
}

pub(super) fn len<'a>(
    parts: impl Iterator<Item = (Option<&'a LengthSummary>, Option<&'a Dist>)>,
) -> Result<(Option<LengthSummary>, Option<Dist>), String> {
    added(parts, lengths, Lengths::summary, Dist::of_lengths)
}

fn turn(k: usize, rows: &[&Turn]) -> Result<Turn, String> {
    let (ttft_ms, ttft_us) = lat(rows.iter().map(|t| (t.ttft_ms.as_ref(), t.histograms.ttft_us.as_ref())))?;
    let (e2e_ms, e2e_us) = lat(rows.iter().map(|t| (t.e2e_ms.as_ref(), t.histograms.e2e_us.as_ref())))?;
    let (input, input_dist) = len(rows.iter().map(|t| (t.input_tokens.as_ref(), t.histograms.input_tokens.as_ref())))?;
    let cached_tokens: u64 = rows.iter().map(|t| t.cached_tokens).sum();
    let cached_of: u64 = rows.iter().map(|t| t.cached_of).sum();
    // A share without its counts (an older result) does not add.
    let countless = rows.iter().any(|t| t.cached_share.is_some() && t.cached_of == 0);
    Ok(Turn {
        turn: k as u32,
        and_later: rows.iter().any(|t| t.and_later),
        ok: rows.iter().map(|t| t.ok).sum(),
        failed: rows.iter().map(|t| t.failed).sum(),
        ttft_ms,
        e2e_ms,
        input_tokens: input,
        cached_share: (cached_of > 0 && !countless).then(|| cached_tokens as f64 / cached_of as f64),
        cached_tokens,
        cached_of,
        histograms: TurnHistograms { ttft_us, e2e_us, input_tokens: input_dist },
    })
}

/// The shards' sessions of one stage as one; None when no shard ran any.
pub fn merge(parts: &[Option<&Sessions>]) -> Result<Option<Sessions>, String> {
    let parts: Vec<&Sessions> = parts.iter().flatten().copied().collect();
    if parts.is_empty() {
        return Ok(None);
    }
    let sum = |f: fn(&Sessions) -> u64| parts.iter().map(|s| f(s)).sum::<u64>();
    let (turns, turns_dist) =
        len(parts.iter().map(|s| (s.turns.as_ref(), s.histograms.turns.as_ref()))).map_err(|e| format!("sessions' turns: {e}"))?;
    let (duration_ms, duration_us) = lat(parts.iter().map(|s| (s.duration_ms.as_ref(), s.histograms.duration_us.as_ref())))
        .map_err(|e| format!("sessions' duration: {e}"))?;
    let depth = parts.iter().map(|s| s.by_turn.len()).max().unwrap_or(0);
    let by_turn = (0..depth)
        .map(|k| {
            let rows: Vec<&Turn> = parts.iter().filter_map(|s| s.by_turn.get(k)).collect();
            turn(k, &rows).map_err(|e| format!("sessions' turn {k}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Sessions {
        started: sum(|s| s.started),
        finished: sum(|s| s.finished),
        failed: sum(|s| s.failed),
        cut: sum(|s| s.cut),
        failed_at_turn: sum_maps(parts.iter().map(|s| s.failed_at_turn.clone())),
        turns,
        duration_ms,
        by_turn,
        histograms: SessionHistograms { turns: turns_dist, duration_us },
    }))
}
