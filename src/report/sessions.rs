//! A stage's multi-turn sessions in the result: how they ended, how long they lasted,
//! and figures by turn index, so the prefix cache's benefit to later turns shows. The
//! distributions travel too (as the stage's do), so shards merge exactly.

use serde::{Deserialize, Serialize};

use super::Dist;
use crate::metrics::sessions::TURNS_TRACKED;
use crate::metrics::{LatencySummary, LengthSummary, StageStats};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sessions {
    /// Started = finished + failed + cut (by the stage's end).
    pub started: u64,
    pub finished: u64,
    pub failed: u64,
    pub cut: u64,
    /// Failed sessions by the turn that failed (0-based).
    pub failed_at_turn: std::collections::BTreeMap<String, u64>,
    pub turns: Option<LengthSummary>,
    pub duration_ms: Option<LatencySummary>,
    pub by_turn: Vec<Turn>,
    /// The distributions behind `turns` and `duration_ms`; absent in results before them.
    #[serde(default, skip_serializing_if = "SessionHistograms::is_empty")]
    pub histograms: SessionHistograms,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionHistograms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<Dist>,
}

impl SessionHistograms {
    fn is_empty(&self) -> bool {
        *self == SessionHistograms::default()
    }
}

/// The distributions behind a turn's summaries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnHistograms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<Dist>,
}

impl TurnHistograms {
    fn is_empty(&self) -> bool {
        *self == TurnHistograms::default()
    }
}

/// The figures of one turn index (0 = first); the last tracked also counts later turns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Turn {
    pub turn: u32,
    /// Whether this row also counts every later turn.
    pub and_later: bool,
    pub ok: u64,
    pub failed: u64,
    pub ttft_ms: Option<LatencySummary>,
    pub e2e_ms: Option<LatencySummary>,
    pub input_tokens: Option<LengthSummary>,
    /// Of those turns' prompt tokens, what the server's prefix cache held.
    pub cached_share: Option<f64>,
    /// The counts behind `cached_share` (cached of prompt tokens), so it merges exactly.
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub cached_of: u64,
    #[serde(default, skip_serializing_if = "TurnHistograms::is_empty")]
    pub histograms: TurnHistograms,
}

/// The stage's sessions; None when it ran none.
pub fn sessions(s: &StageStats) -> Option<Sessions> {
    let x = &s.sessions;
    if x.started() == 0 && x.by_turn.is_empty() {
        return None;
    }
    let by_turn = x
        .by_turn
        .iter()
        .enumerate()
        .map(|(k, t)| Turn {
            turn: k as u32,
            and_later: k == TURNS_TRACKED - 1,
            ok: t.ok,
            failed: t.failed,
            ttft_ms: t.ttft.summary(),
            e2e_ms: t.e2e.summary(),
            input_tokens: t.input.summary(),
            cached_share: t.cached_share(),
            cached_tokens: t.cached_tokens,
            cached_of: t.cached_of,
            histograms: TurnHistograms {
                ttft_us: Dist::of_latency(&t.ttft),
                e2e_us: Dist::of_latency(&t.e2e),
                input_tokens: Dist::of_lengths(&t.input),
            },
        })
        .collect();
    Some(Sessions {
        started: x.started(),
        finished: x.finished,
        failed: x.failed,
        cut: x.cut,
        failed_at_turn: x.failed_at_turn.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        turns: x.turns.summary(),
        duration_ms: x.duration.summary(),
        by_turn,
        histograms: SessionHistograms { turns: Dist::of_lengths(&x.turns), duration_us: Dist::of_latency(&x.duration) },
    })
}
