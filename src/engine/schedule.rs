//! The one open-loop arrival scheduler. Requests (`open`), sessions (`session`) and a
//! trace's lines (`trace`) arrive on a schedule, whether or not earlier ones have
//! finished, under one cap of arrivals in flight (`max_in_flight`). For each arrival it
//! waits for the due instant, then for a free slot — marking the stage behind while it
//! waits, so the live view can say so — and counts as unsent every arrival due inside
//! the window that found no slot before the window closed, or was never reached. It
//! records the schedule's spans (first → last sent, first → last due) for the rates.
//!
//! What an arrival takes from the stage's request numbers is its kind's (`Cost`): a
//! request or a trace line takes one as it comes due, sent or not, so `requests` is
//! honoured; a session takes none (its turns take theirs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::arrivals::Arrivals;
use super::phase::Phase;

/// An open loop whose arrivals each run `work` (a session, a task) on a task of its
/// own, at most `slots` at once; returns once every one has ended, the phase drained.
pub(super) async fn spawn_each<W, F>(p: &Arc<Phase>, slots: Arc<Semaphore>, cost: Cost, arrivals: Arrivals, work: W)
where
    W: Fn(Arc<Phase>, Option<u64>, Instant) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let schedule = Scheduler::new(p.clone(), slots, cost, arrivals.phase());
    let mut set = tokio::task::JoinSet::new();
    let dispatch = |permit: OwnedSemaphorePermit, i, due| {
        let job = work(p.clone(), i, due);
        set.spawn(async move {
            let _slot = permit;
            job.await;
        });
        while let Some(res) = set.try_join_next() {
            super::rethrow(res);
        }
    };
    schedule.run(arrivals.dues(schedule.t0()), dispatch).await;
    while let Some(res) = set.join_next().await {
        super::rethrow(res);
    }
    p.mark_stopped_if_unfinished();
    p.drain();
}

/// What an arrival takes from the stage's request numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cost {
    /// One number, as it comes due: a request, or a trace's line.
    Request,
    /// None: a session, whose turns take theirs.
    Session,
}

/// Whether an arrival got a slot.
pub(super) enum Slot {
    Free(OwnedSemaphorePermit),
    /// A stop or an abort came first.
    Halted,
    /// The window closed first: the arrival was counted unsent.
    Late,
}

pub(super) struct Scheduler {
    p: Arc<Phase>,
    slots: Arc<Semaphore>,
    cost: Cost,
    /// The clock's start (the window's opening): the behind mark counts from here.
    t0: Instant,
    /// When the first arrival is due: the spans count from here.
    first: Instant,
    /// The last send and the last arrival due, µs from `first`: atomics, since a
    /// trace's sessions send their later lines from tasks of their own.
    last_sent: AtomicU64,
    last_due: AtomicU64,
    waiters: Mutex<Waiters>,
}

impl Scheduler {
    /// A schedule for `p` from its opening (now, for a part that has none), its first
    /// arrival due `phase` after it, under the cap `slots` (shared by a stage's parts).
    pub fn new(p: Arc<Phase>, slots: Arc<Semaphore>, cost: Cost, phase: Duration) -> Scheduler {
        let t0 = p.opens.unwrap_or_else(Instant::now);
        Scheduler {
            p,
            slots,
            cost,
            t0,
            first: t0 + phase,
            last_sent: AtomicU64::new(0),
            last_due: AtomicU64::new(0),
            waiters: Mutex::default(),
        }
    }

    pub fn t0(&self) -> Instant {
        self.t0
    }

    pub fn phase(&self) -> &Phase {
        &self.p
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Runs arrivals due at `dues` (in order) until the window or the numbers end or a
    /// stop: each gets its slot, then goes to `dispatch` with its request number (none
    /// for a session) and due time. Then counts what was due and never reached, and
    /// records the spans.
    pub async fn run(&self, mut dues: impl Iterator<Item = Instant>, mut dispatch: impl FnMut(OwnedSemaphorePermit, Option<u64>, Instant)) {
        for due in dues.by_ref() {
            let Some(i) = self.reach(due, due).await else { break };
            match self.slot(due).await {
                Slot::Free(permit) => {
                    self.mark_sent(Instant::now());
                    dispatch(permit, i, due);
                }
                Slot::Halted | Slot::Late => break,
            }
        }
        self.finish(dues);
    }

    /// Waits until `wake` (the arrival's due time, or earlier to build it ahead) for an
    /// arrival due at `due`, and takes its request number (a session takes none:
    /// `Some(None)`). None when it is not to come: due at or past the deadline, the
    /// numbers run out, or a stop or an abort.
    pub async fn reach(&self, due: Instant, wake: Instant) -> Option<Option<u64>> {
        let p = &self.p;
        if p.deadline().is_some_and(|d| due >= d) || p.numbers_left() == 0 || p.halt.is_cancelled() {
            return None;
        }
        // The timer only when the arrival is ahead: at high rates several are due per
        // timer tick, and those already due go out at once.
        if wake > Instant::now() {
            tokio::select! {
                biased;
                _ = p.halt.cancelled() => return None,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            // An `until` met while it slept brought the deadline forward.
            if p.deadline().is_some_and(|d| due >= d) {
                return None;
            }
        }
        match self.cost {
            Cost::Request => p.take_number().map(Some),
            Cost::Session => Some(None),
        }
    }

    /// A slot under `max_in_flight` for the arrival due at `due` (reached already).
    /// While every slot is taken the stage is marked behind since `due` (the earliest
    /// due of those waiting: a trace's sessions may wait side by side); the window's
    /// deadline passing first counts the arrival unsent. An arrival taken but halted
    /// by a stop marks the phase cut short. The last due mark counts the arrivals sent
    /// or counted unsent, not those a stop or an abort took.
    pub async fn slot(&self, due: Instant) -> Slot {
        let p = &self.p;
        if p.halt.is_cancelled() {
            p.mark_stopped_if_stop();
            return Slot::Halted;
        }
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            self.mark(&self.last_due, due);
            return Slot::Free(permit);
        }
        let since = due.saturating_duration_since(self.t0);
        self.waiting(since, true);
        let slot = tokio::select! {
            biased;
            _ = p.halt.cancelled() => {
                p.mark_stopped_if_stop();
                Slot::Halted
            }
            permit = self.slots.clone().acquire_owned() => Slot::Free(permit.expect("the semaphore is never closed")),
            _ = p.deadline_passed() => {
                p.tally.not_sent();
                Slot::Late
            }
        };
        self.waiting(since, false);
        if !matches!(slot, Slot::Halted) {
            self.mark(&self.last_due, due);
        }
        slot
    }

    /// An arrival due `since` the opening starts (or stops) waiting for a slot: the
    /// gauge shows the earliest due of those waiting. Only on the contended path.
    fn waiting(&self, since: Duration, starts: bool) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        match waiters.change(since, starts) {
            Some(earliest) => self.p.gauges.waiting_since(earliest),
            None => self.p.gauges.none_waiting(),
        }
    }

    /// An arrival went out at `at`.
    pub fn mark_sent(&self, at: Instant) {
        self.mark(&self.last_sent, at);
    }

    fn mark(&self, last: &AtomicU64, at: Instant) {
        last.fetch_max(at.saturating_duration_since(self.first).as_micros() as u64, Ordering::Relaxed);
    }

    /// The schedule is done: what was due and never reached is counted
    /// (`count_unreached`), the spans recorded (`record_spans`).
    pub fn finish(&self, rest: impl Iterator<Item = Instant>) {
        self.count_unreached(rest);
        self.record_spans();
    }

    /// The arrivals of `rest` due before the deadline were never reached (every slot
    /// was taken until the window closed): each is counted unsent, a request's taking
    /// its number as a sent one would. Not after a stop or an abort, which end the
    /// schedule rather than leave it unserved. Then, as the schedule ends, the phase
    /// is marked cut short if a stop came before its work was done (for sessions and
    /// traces too, before the turns in flight end: the stop cut the schedule).
    pub fn count_unreached(&self, rest: impl Iterator<Item = Instant>) {
        let p = &self.p;
        if let Some(d) = p.deadline()
            && !p.halt.is_cancelled()
            && p.numbers_left() > 0
        {
            for due in rest.take_while(|due| *due < d) {
                if self.cost == Cost::Request && p.take_number().is_none() {
                    break;
                }
                p.tally.not_sent();
                self.mark(&self.last_due, due);
            }
        }
        p.mark_stopped_if_unfinished();
    }

    /// The schedule's spans, for its rates (once every arrival has been marked).
    pub fn record_spans(&self) {
        let us = |m: &AtomicU64| Duration::from_micros(m.load(Ordering::Relaxed));
        let _ = self.p.tally.schedule.set((us(&self.last_sent), us(&self.last_due)));
    }
}

/// The arrivals waiting for a slot, by due time (from the opening), with how many wait
/// at each: a trace's sessions may wait side by side.
#[derive(Default)]
struct Waiters(BTreeMap<Duration, u32>);

impl Waiters {
    /// One due `since` starts (or stops) waiting; the earliest due still waiting.
    fn change(&mut self, since: Duration, starts: bool) -> Option<Duration> {
        if starts {
            *self.0.entry(since).or_default() += 1;
        } else if let Some(n) = self.0.get_mut(&since) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&since);
            }
        }
        self.0.keys().next().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_shows_the_earliest_due_of_those_waiting() {
        let (mut w, s) = (Waiters::default(), Duration::from_secs);
        assert_eq!(w.change(s(5), true), Some(s(5)));
        assert_eq!(w.change(s(3), true), Some(s(3)), "an earlier one waits too");
        assert_eq!(w.change(s(3), true), Some(s(3)), "two due at once");
        assert_eq!(w.change(s(3), false), Some(s(3)), "one of the two is still waiting");
        assert_eq!(w.change(s(3), false), Some(s(5)), "the earliest got its slot: the next");
        assert_eq!(w.change(s(5), false), None, "none waits");
        assert_eq!(w.change(s(9), false), None, "a stop never started is nothing");
    }
}
