//! What the engine and the aggregator share of a running part of a stage: requests
//! started and ended (counted where each happens, so in flight is started − ended
//! whatever the aggregator's queue holds), when the arrival waiting for a slot was due,
//! and when the part's last request ended. The engine writes them; the aggregator reads
//! them live for the dashboard. Every memory ordering they use is here, with its reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A moment that has not come yet (no arrival waiting, the last request not ended).
const UNSET: u64 = u64::MAX;

#[derive(Debug)]
struct Cells {
    started: AtomicU64,
    ended: AtomicU64,
    /// µs from the part's opening; `UNSET` when none waits.
    waiting: AtomicU64,
    /// µs from the part's opening; `UNSET` until then.
    drained: AtomicU64,
}

/// One part's gauges; clones share them.
#[derive(Debug, Clone)]
pub struct Gauges(Arc<Cells>);

impl Default for Gauges {
    fn default() -> Gauges {
        Gauges(Arc::new(Cells {
            started: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            waiting: AtomicU64::new(UNSET),
            drained: AtomicU64::new(UNSET),
        }))
    }
}

impl Gauges {
    /// A request was sent. Relaxed: nothing is published through it; a reader learns
    /// of it through `ended` (see `in_flight`) or reads a momentary count.
    pub fn start(&self) {
        self.0.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended. Release: whoever sees this end sees its start too.
    pub fn end(&self) {
        self.0.ended.fetch_add(1, Ordering::Release);
    }

    /// Requests sent so far.
    pub fn started(&self) -> u64 {
        self.0.started.load(Ordering::Relaxed)
    }

    /// Requests in flight now. `ended` is read first, with Acquire: every start of an
    /// end it counts is then seen, so the difference never goes below zero.
    pub fn in_flight(&self) -> u64 {
        let ended = self.0.ended.load(Ordering::Acquire);
        self.started().saturating_sub(ended)
    }

    /// An arrival due `due` after the opening waits for a slot (open loop; the earliest
    /// of them, when several wait). Relaxed: a momentary value for the live view,
    /// which nothing else depends on.
    pub fn waiting_since(&self, due: Duration) {
        self.0.waiting.store(micros(due), Ordering::Relaxed);
    }

    /// No arrival waits for a slot.
    pub fn none_waiting(&self) {
        self.0.waiting.store(UNSET, Ordering::Relaxed);
    }

    /// When the arrival waiting for a slot was due, from the opening.
    pub fn waiting(&self) -> Option<Duration> {
        known(self.0.waiting.load(Ordering::Relaxed))
    }

    /// The part's last request ended `at` after its opening. Relaxed, as `waiting`.
    pub fn drained_at(&self, at: Duration) {
        self.0.drained.store(micros(at), Ordering::Relaxed);
    }

    /// When its last request ended, from the opening; None while any may still run.
    pub fn drained(&self) -> Option<Duration> {
        known(self.0.drained.load(Ordering::Relaxed))
    }
}

fn micros(d: Duration) -> u64 {
    // UNSET stays reserved: 584,000 years of µs is no real offset.
    u64::try_from(d.as_micros()).unwrap_or(UNSET - 1).min(UNSET - 1)
}

fn known(us: u64) -> Option<Duration> {
    (us != UNSET).then(|| Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_started_less_ended_and_the_moments_start_unset() {
        let g = Gauges::default();
        let shared = g.clone();
        assert_eq!((g.waiting(), g.drained()), (None, None));
        g.start();
        g.start();
        shared.end();
        assert_eq!((g.started(), g.in_flight()), (2, 1));
        g.waiting_since(Duration::from_millis(1500));
        assert_eq!(shared.waiting(), Some(Duration::from_millis(1500)));
        g.none_waiting();
        assert_eq!(shared.waiting(), None);
        g.drained_at(Duration::from_secs(3));
        assert_eq!(shared.drained(), Some(Duration::from_secs(3)));
    }
}
