//! The parts of a stage and their shared state: what every request of the stage needs
//! (`StageCtx`), and each part's counters and signals (`Phase`) — its request numbers,
//! when it closes (starts no more requests) and when it drains (its last request ended).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Stop;
use super::abort::AbortWatch;
use super::ratelimit::Limiter;
use crate::client::Client;
use crate::metrics::{EngineEvent, Gauges, Part};
use crate::scenario::RetryPolicy;
use crate::workload::StageRequests;

/// What every request of one stage needs, whichever part it belongs to.
pub(super) struct StageCtx {
    pub client: Arc<Client>,
    /// The stage's requests, ready to send by number.
    pub requests: StageRequests,
    pub events: mpsc::Sender<EngineEvent>,
    pub stop: Stop,
    /// `[check]`: what every response's content must be.
    pub check: Option<crate::check::Expect>,
    /// The tools the stage offers, a reply's calls checked against.
    pub tools: Option<Arc<crate::check::ToolSchemas>>,
    pub retry: RetryPolicy,
    /// Shared by the stage's workers (warmup and measured alike).
    pub limiter: Option<Arc<Limiter>>,
    /// Tokens one request weighs for a tokens-per-minute limit: max_tokens, plus the
    /// prompt's own count.
    pub tpm_max_tokens: Option<u64>,
    /// `[conversation]`: the stage runs multi-turn sessions, numbered by `sessions`.
    pub conversation: Option<Arc<crate::workload::conversation::Conversation>>,
    pub sessions: AtomicU64,
    /// `task = "name"`: the stage runs tasks, numbered by its request numbers.
    pub task: Option<Arc<super::taskrun::TaskRun>>,
}

/// Shared by the workers of one part (warmup, ramp, window or cooldown) of a stage.
///
/// Memory orderings: `next` and the tally are Relaxed. `next` hands out unique numbers
/// (a fetch_add is atomic whatever its ordering) and publishes nothing else; the tally
/// is read only once every task that wrote it has been joined, and the join orders
/// those writes before the read. The gauges say their own (metrics::Gauges).
pub(super) struct Phase {
    pub ctx: Arc<StageCtx>,
    /// Warmup and ramp, the measured window, or the cooldown after it.
    pub part: Part,

    // What it may send: request numbers `next..end`, in the window `opens..deadline`.
    /// Next request number (within the stage).
    pub next: AtomicU64,
    /// Request numbers at or past this are not sent.
    pub end: u64,
    /// When it stops starting requests; an `until` brings it forward once its figures
    /// are known.
    deadline: Deadline,
    /// When the phase's window opens: an open loop's schedule counts from here, so its
    /// last arrival falls before the deadline however late the loop itself started.
    pub opens: Option<Instant>,

    /// Its requests as they start and end, the arrival waiting for a slot and when the
    /// last request ended: read live by the aggregator.
    pub gauges: Gauges,

    // Its course: halted, closed, drained.
    /// Start nothing more: cancelled by a stop (it is a child of `stop.soft`) or by
    /// `abort_on_error_rate` tripping.
    pub halt: CancellationToken,
    /// Cancelled once the phase starts no more requests (its schedule or count is
    /// done, or it was halted): a cooldown's clock starts then.
    pub closed: CancellationToken,
    /// When the window ended: its deadline, or when its requests ran out.
    closed_at: OnceLock<Instant>,
    /// Cancelled, and `ended` set, once every request of the phase has ended.
    pub drained: CancellationToken,
    pub ended: OnceLock<Instant>,

    /// What the stage's result says of it.
    pub tally: Tally,
    /// `abort_on_error_rate`, for the measured phase: finished and failed so far, and
    /// set once the rate is passed.
    pub abort: Option<AbortWatch>,
    /// `stop_on_saturation`: cancelled when the window is ended as saturated, and its
    /// requests in flight are then dropped (a runaway backlog would take as long to
    /// drain as it took to build). None elsewhere: a request waits on nothing more.
    pub dropped: Option<CancellationToken>,
}

/// What a phase did that its stage's result reports. Relaxed throughout (see `Phase`).
#[derive(Default)]
pub(super) struct Tally {
    /// A stop cut the phase short (work was left undone).
    stopped: AtomicBool,
    /// Open loop: arrivals due inside the window that could not be sent before it
    /// closed (every slot under `max_in_flight` was taken, or the rate limiter's were).
    unsent: AtomicU64,
    /// Open loop: (first dispatch → last, first arrival due → last due, counting the
    /// unsent); unset for a closed loop.
    pub schedule: OnceLock<(Duration, Duration)>,
}

impl Tally {
    pub fn cut_short(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn was_cut_short(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// One more arrival due in the window was not sent.
    pub fn not_sent(&self) {
        self.unsent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unsent(&self) -> u64 {
        self.unsent.load(Ordering::Relaxed)
    }
}

/// A phase's deadline, which may be brought forward (never back) while it runs: as
/// nanoseconds after `base` (u64::MAX: none), read on every request without a lock.
struct Deadline {
    base: Instant,
    at: AtomicU64,
    moved: tokio::sync::Notify,
}

impl Deadline {
    fn new(at: Option<Instant>) -> Deadline {
        let base = Instant::now();
        let nanos = at.map_or(u64::MAX, |d| d.saturating_duration_since(base).as_nanos().min(u128::from(u64::MAX - 1)) as u64);
        Deadline { base, at: AtomicU64::new(nanos), moved: tokio::sync::Notify::new() }
    }

    fn get(&self) -> Option<Instant> {
        match self.at.load(Ordering::Acquire) {
            u64::MAX => None,
            n => Some(self.base + std::time::Duration::from_nanos(n)),
        }
    }

    fn bring_forward(&self, to: Instant) {
        let n = to.saturating_duration_since(self.base).as_nanos().min(u128::from(u64::MAX - 1)) as u64;
        self.at.fetch_min(n, Ordering::AcqRel);
        self.moved.notify_waiters();
    }
}

impl Phase {
    /// Request numbers `first..end`, in the window `opens..deadline` (either open-ended).
    pub fn new(ctx: &Arc<StageCtx>, part: Part, (first, end): (u64, u64), (opens, deadline): (Option<Instant>, Option<Instant>)) -> Phase {
        Phase {
            ctx: ctx.clone(),
            part,
            next: AtomicU64::new(first),
            end,
            deadline: Deadline::new(deadline),
            opens,
            gauges: Gauges::default(),
            halt: ctx.stop.soft.child_token(),
            closed: CancellationToken::new(),
            closed_at: OnceLock::new(),
            drained: CancellationToken::new(),
            ended: OnceLock::new(),
            tally: Tally::default(),
            abort: None,
            dropped: None,
        }
    }

    /// Whether a session's turn or a task due at `at` may start: one due inside the
    /// window is sent however late a slot let it start, as any open-loop arrival is.
    pub fn may_start(&self, at: Instant) -> bool {
        !self.ctx.stop.soft.is_cancelled() && !self.halt.is_cancelled() && self.numbers_left() > 0 && self.deadline().is_none_or(|d| at < d)
    }

    /// Whether the phase's own limits (count or deadline) are reached.
    pub fn exhausted(&self) -> bool {
        self.numbers_left() == 0 || self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Request numbers not yet taken.
    pub fn numbers_left(&self) -> u64 {
        self.end.saturating_sub(self.next.load(Ordering::Relaxed))
    }

    /// Takes the next request number; None once they have run out.
    pub fn take_number(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.end).then_some(i)
    }

    /// The phase starts no more requests. It ended at its deadline, unless its requests
    /// ran out first (an open loop's dispatcher stops up to one gap before the deadline).
    pub fn close(&self) {
        let now = Instant::now();
        let at = match self.deadline() {
            Some(d) if self.numbers_left() > 0 => d,
            _ => now,
        };
        let _ = self.closed_at.set(at);
        self.closed.cancel();
    }

    /// When it closed (now, if it has not).
    pub fn closed_at(&self) -> Instant {
        self.closed_at.get().copied().unwrap_or_else(Instant::now)
    }

    /// Every request of the phase has ended.
    pub fn drain(&self) {
        let now = Instant::now();
        let _ = self.ended.set(now);
        if let Some(opens) = self.opens {
            self.gauges.drained_at(now.saturating_duration_since(opens));
        }
        self.close();
        self.drained.cancel();
    }

    /// When it stops starting requests, if it does.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }

    /// Its window ends now, as if its deadline were now (an `until` met).
    pub fn end_now(&self) {
        self.deadline.bring_forward(Instant::now());
    }

    /// Resolves when the phase's deadline passes (brought forward or not); never,
    /// without one.
    pub async fn deadline_passed(&self) {
        loop {
            let moved = self.deadline.moved.notified();
            tokio::pin!(moved);
            // Registered before the deadline is read: a move between them is not missed.
            moved.as_mut().enable();
            match self.deadline() {
                Some(d) => tokio::select! {
                    _ = tokio::time::sleep_until(d.into()) => return,
                    _ = moved => {}
                },
                None => moved.await,
            }
        }
    }

    /// A stop came while the phase still had work: it is marked cut short.
    pub fn mark_stopped_if_unfinished(&self) {
        if self.ctx.stop.soft.is_cancelled() && !self.exhausted() {
            self.tally.cut_short();
        }
    }

    /// Work taken but not done because of a stop (not an abort): the phase was cut short.
    pub fn mark_stopped_if_stop(&self) {
        if self.ctx.stop.soft.is_cancelled() {
            self.tally.cut_short();
        }
    }
}

/// The parts of a stage's load, run back to back by the same workers (closed loop) or
/// under one cap (open loop): the ramp's load rises and the window takes over without a
/// pause; after it the cooldown keeps the load on while the window's last requests end.
pub(super) struct Parts {
    pub ramp: Option<(Duration, Arc<Phase>)>,
    pub window: Arc<Phase>,
    pub cooldown: Option<(Duration, Arc<Phase>)>,
}

/// The cooldown's clock: from when the window closes, for its length at most.
pub(super) async fn cooldown_timer(window: &Phase, cooldown: &Option<(Duration, Arc<Phase>)>) {
    if let Some((len, c)) = cooldown {
        window.closed.cancelled().await;
        tokio::select! {
            _ = tokio::time::sleep_until((window.closed_at() + *len).into()) => c.halt.cancel(),
            // A stop or an abort ends the cooldown too.
            _ = window.halt.cancelled() => c.halt.cancel(),
            _ = c.halt.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RequestParams;
    use crate::workload::{Prompts, Workload};

    /// A stage context whose client is never used (port 9 on loopback, discard).
    fn ctx(stop: Stop) -> Arc<StageCtx> {
        let client = crate::client::tests::unsent(None);
        let requests = Workload::new(Prompts::from_texts(&["hi"]).unwrap(), false, false).stage(
            0,
            "m",
            &RequestParams::default(),
            &Default::default(),
            Default::default(),
        );
        let (events, _) = mpsc::channel(1);
        Arc::new(StageCtx {
            client: Arc::new(client),
            requests,
            events,
            stop,
            check: None,
            tools: None,
            retry: RetryPolicy::default(),
            limiter: None,
            tpm_max_tokens: None,
            conversation: None,
            sessions: AtomicU64::new(0),
            task: None,
        })
    }

    #[test]
    fn a_window_closes_at_its_deadline_unless_its_requests_ran_out_first() {
        let ctx = ctx(Stop::default());
        let deadline = Instant::now() + Duration::from_secs(60);
        // Requests left when it closes (a duration-bound stage): it ended at the deadline.
        let p = Phase::new(&ctx, Part::Window, (0, 10), (Some(Instant::now()), Some(deadline)));
        assert!(!p.closed.is_cancelled() && !p.exhausted());
        p.close();
        assert!(p.closed.is_cancelled());
        assert_eq!(p.closed_at(), deadline);
        // Its requests ran out: it ended then, not at the deadline.
        let p = Phase::new(&ctx, Part::Window, (10, 10), (Some(Instant::now()), Some(deadline)));
        assert!(p.exhausted());
        let before = Instant::now();
        p.close();
        assert!(p.closed_at() >= before && p.closed_at() < deadline);
        // The first close stands.
        let first = p.closed_at();
        p.close();
        assert_eq!(p.closed_at(), first);
    }

    #[test]
    fn draining_ends_the_phase_for_the_live_view_and_closes_it() {
        let ctx = ctx(Stop::default());
        let opens = Instant::now();
        let p = Phase::new(&ctx, Part::Window, (0, 5), (Some(opens), None));
        assert_eq!(p.gauges.drained(), None);
        p.drain();
        assert!(p.drained.is_cancelled() && p.closed.is_cancelled());
        let ended = *p.ended.get().unwrap();
        assert_eq!(p.gauges.drained(), Some(Duration::from_micros(ended.duration_since(opens).as_micros() as u64)));
        // No deadline: it closed when it drained.
        assert!(p.closed_at() >= ended && p.closed_at() - ended < Duration::from_secs(1));
    }

    #[test]
    fn a_stop_halts_every_part_and_marks_unfinished_ones() {
        let stop = Stop::default();
        let ctx = ctx(stop.clone());
        let unfinished = Phase::new(&ctx, Part::Window, (0, 5), (None, None));
        let finished = Phase::new(&ctx, Part::Window, (5, 5), (None, None));
        assert!(!unfinished.halt.is_cancelled());
        stop.soft.cancel();
        assert!(unfinished.halt.is_cancelled() && finished.halt.is_cancelled());
        unfinished.mark_stopped_if_unfinished();
        finished.mark_stopped_if_unfinished();
        assert!(unfinished.tally.was_cut_short());
        assert!(!finished.tally.was_cut_short(), "a part whose work was done is not cut short");
    }

    #[tokio::test]
    async fn a_cooldown_runs_its_length_from_the_window_close_or_ends_with_a_halt() {
        let ctx = ctx(Stop::default());
        let window = Phase::new(&ctx, Part::Window, (0, 0), (None, None));
        let cooling = Arc::new(Phase::new(&ctx, Part::Cooldown, (0, u64::MAX), (None, None)));
        let len = Duration::from_millis(30);
        window.close();
        let t = Instant::now();
        cooldown_timer(&window, &Some((len, cooling.clone()))).await;
        assert!(cooling.halt.is_cancelled(), "the cooldown's time is up");
        assert!(t.elapsed() + Duration::from_millis(2) >= len, "it ran {:?} of {len:?}", t.elapsed());

        // A halted window (a stop, an abort) ends it at once, however long it is.
        let window = Phase::new(&ctx, Part::Window, (0, 0), (None, None));
        let cooling = Arc::new(Phase::new(&ctx, Part::Cooldown, (0, u64::MAX), (None, None)));
        window.close();
        window.halt.cancel();
        let long = Some((Duration::from_secs(3600), cooling.clone()));
        tokio::time::timeout(Duration::from_secs(10), cooldown_timer(&window, &long)).await.expect("ends at once");
        assert!(cooling.halt.is_cancelled());
    }
}
