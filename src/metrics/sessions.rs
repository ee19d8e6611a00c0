//! A stage's multi-turn sessions: how many started, finished, failed (and at which
//! turn) or were cut by the window's end, how long they lasted, and figures by turn
//! index (TTFT, e2e, input tokens, cached share), so a prefix cache's benefit to later
//! turns shows.

use std::collections::BTreeMap;
use std::time::Duration;

use super::latency::Latency;
use super::lengths::Lengths;
use crate::model::{Outcome, RequestRecord};

/// Turns with figures of their own; later ones are counted with the last.
pub const TURNS_TRACKED: usize = 32;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Every turn answered.
    Finished,
    /// This turn (0-based) failed; the user starts a new session.
    Failed { turn: u32 },
    /// The stage ended (its count, deadline or a stop) before the session did.
    Cut,
}

/// The figures of one turn index over the stage's sessions.
#[derive(Debug, Clone)]
pub struct TurnStats {
    pub ok: u64,
    pub failed: u64,
    pub ttft: Latency,
    pub e2e: Latency,
    pub input: Lengths,
    pub cached_tokens: u64,
    /// Prompt tokens of the requests whose usage said `cached_tokens`.
    pub cached_of: u64,
}

impl Default for TurnStats {
    fn default() -> Self {
        // Two digits: a stage keeps up to TURNS_TRACKED of these, and views clone them.
        TurnStats {
            ok: 0,
            failed: 0,
            ttft: Latency::with_digits(2),
            e2e: Latency::with_digits(2),
            input: Lengths::default(),
            cached_tokens: 0,
            cached_of: 0,
        }
    }
}

impl TurnStats {
    pub fn cached_share(&self) -> Option<f64> {
        (self.cached_of > 0).then(|| self.cached_tokens as f64 / self.cached_of as f64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    pub finished: u64,
    pub failed: u64,
    pub cut: u64,
    /// Failed sessions by the turn that failed.
    pub failed_at_turn: BTreeMap<u32, u64>,
    /// Turns sent per ended session.
    pub turns: Lengths,
    pub duration: Latency,
    /// Index k: the k-th turn (the last also counts those after it).
    pub by_turn: Vec<TurnStats>,
}

impl SessionStats {
    /// Sessions that ended, whichever way.
    pub fn started(&self) -> u64 {
        self.finished + self.failed + self.cut
    }

    pub fn ended(&mut self, end: SessionEnd, turns: u32, duration: Duration) {
        match end {
            SessionEnd::Finished => self.finished += 1,
            SessionEnd::Failed { turn } => {
                self.failed += 1;
                *self.failed_at_turn.entry(turn).or_default() += 1;
            }
            SessionEnd::Cut => self.cut += 1,
        }
        self.turns.record(u64::from(turns));
        self.duration.record(duration);
    }

    /// A turn's record.
    pub fn record(&mut self, turn: u32, rec: &RequestRecord) {
        let k = (turn as usize).min(TURNS_TRACKED - 1);
        if self.by_turn.len() <= k {
            self.by_turn.resize_with(k + 1, TurnStats::default);
        }
        let t = &mut self.by_turn[k];
        match rec.outcome {
            Outcome::Ok => {
                t.ok += 1;
                t.e2e.record(rec.latency);
                if let Some(ttft) = rec.ttft {
                    t.ttft.record(ttft);
                }
                if let Some(n) = rec.input_tokens.or(rec.usage.and_then(|u| u.prompt_tokens)) {
                    t.input.record(n);
                }
                if let Some((cached, of)) = rec.usage.and_then(|u| u.cached_tokens.zip(u.prompt_tokens)) {
                    t.cached_tokens += cached;
                    t.cached_of += of;
                }
            }
            Outcome::Failed(_) => t.failed += 1,
            Outcome::Cancelled => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Usage;

    #[test]
    fn sessions_are_counted_by_how_they_ended_and_turns_by_index() {
        let mut s = SessionStats::default();
        s.ended(SessionEnd::Finished, 3, Duration::from_secs(2));
        s.ended(SessionEnd::Failed { turn: 1 }, 2, Duration::from_secs(1));
        s.ended(SessionEnd::Cut, 1, Duration::from_secs(1));
        assert_eq!((s.started(), s.finished, s.failed, s.cut), (3, 1, 1, 1));
        assert_eq!(s.failed_at_turn.get(&1), Some(&1));
        let usage = Usage { prompt_tokens: Some(100), cached_tokens: Some(80), ..Usage::default() };
        let rec = RequestRecord { usage: Some(usage), latency: Duration::from_millis(50), ..RequestRecord::default() };
        s.record(1, &rec);
        s.record(40, &rec);
        assert_eq!(s.by_turn.len(), TURNS_TRACKED);
        assert_eq!((s.by_turn[0].ok, s.by_turn[1].ok, s.by_turn[TURNS_TRACKED - 1].ok), (0, 1, 1));
        assert_eq!(s.by_turn[1].cached_share(), Some(0.8));
    }
}
