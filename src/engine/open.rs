//! The open loop: requests on a schedule of arrivals, whether or not earlier ones have
//! finished, under one cap of requests in flight for the ramp, window and cooldown;
//! latency counts from each arrival's due time (no coordinated omission).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::arrivals::Arrivals;
use super::phase::{Parts, Phase, cooldown_timer};
use super::request::run_one;
use super::{COOLDOWN_NUMBERS, rethrow};
use crate::metrics::NONE_WAITING;
use crate::scenario::Arrival;

/// Runs a stage's parts at `rate` arrivals per second, `arrival`-spaced (seeded by
/// `seed`), at most `max_in_flight` at once.
pub(super) async fn open_parts(rate: f64, arrival: Arrival, max_in_flight: u32, seed: u64, parts: Parts) {
    let Parts { ramp, window, cooldown } = parts;
    // One cap for every part, so their overlap never exceeds it.
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let rising = async {
        if let Some((len, p)) = &ramp {
            let shard = p.ctx.requests.numbers().shard;
            open_loop(p.clone(), Arrivals::ramp(rate, *len).sharded(shard), slots.clone()).await;
        }
    };
    let steady = async {
        if let Some((len, _)) = &ramp {
            tokio::select! {
                _ = tokio::time::sleep(*len) => {}
                // Stopped during the ramp: the window still runs, to find itself
                // stopped and say so (the stage is then marked interrupted).
                _ = window.halt.cancelled() => {}
            }
        }
        let shard = window.ctx.requests.numbers().shard;
        open_loop(window.clone(), Arrivals::new(rate, arrival, seed).sharded(shard), slots.clone()).await;
        window.drain();
    };
    let cooling = async {
        if let Some((_, c)) = &cooldown {
            window.closed.cancelled().await;
            // Its own draw of the same process, going on from the window's end.
            let schedule = async {
                tokio::select! {
                    _ = tokio::time::sleep_until(window.closed_at().into()) => {}
                    _ = c.halt.cancelled() => return,
                }
                let arrivals = Arrivals::new(rate, arrival, seed ^ COOLDOWN_NUMBERS).sharded(c.ctx.requests.numbers().shard);
                open_loop(c.clone(), arrivals, slots.clone()).await;
            };
            if !window.halt.is_cancelled() {
                tokio::join!(schedule, cooldown_timer(&window, &cooldown));
            }
        }
    };
    tokio::join!(rising, steady, cooling);
}

/// Requests on a schedule, whether or not earlier ones have finished: each is due at
/// its arrival time and is timed from it, so a wait inside llmload (every slot under
/// `max_in_flight` taken, a late timer) is part of its latency, not hidden by it.
async fn open_loop(p: Arc<Phase>, mut arrivals: Arrivals, slots: Arc<Semaphore>) {
    let mut set = JoinSet::new();
    let mut workers = Workers::default();
    let t0 = p.opens.unwrap_or_else(Instant::now);
    let (mut last_dispatch, mut last_due) = (t0, t0);
    // A schedule past any instant we can represent has ended.
    while let Some(due) = t0.checked_add(arrivals.next_offset()) {
        if p.deadline.is_some_and(|d| due >= d) || p.next.load(Ordering::Relaxed) >= p.end {
            break;
        }
        // The timer only when the arrival is ahead: at high rates several are due per
        // timer tick, and those already due go out at once.
        if due > Instant::now() {
            tokio::select! {
                biased;
                _ = p.halt.cancelled() => break,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
        // Since when the arrival waiting for a slot is due: live, the dashboard can say
        // the stage is behind its rate before the window ends.
        p.waiting.store(due.saturating_duration_since(t0).as_micros() as u64, Ordering::Relaxed);
        let permit = tokio::select! {
            biased;
            _ = p.halt.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            // Due inside the window but no slot before it closed: not sent, counted.
            _ = p.deadline_passed() => {
                // It takes its request number like any other, so `requests` is honoured.
                if p.next.fetch_add(1, Ordering::Relaxed) < p.end {
                    p.unsent.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
        };
        p.waiting.store(NONE_WAITING, Ordering::Relaxed);
        let i = p.next.fetch_add(1, Ordering::Relaxed);
        if i >= p.end {
            break;
        }
        (last_dispatch, last_due) = (Instant::now(), due);
        workers.dispatch(&p, &mut set, Job { slot: permit, i, due });
    }
    // The workers end once their channels close.
    drop(workers);
    p.waiting.store(NONE_WAITING, Ordering::Relaxed);
    // Arrivals due before the deadline that the cap left unsent are counted too.
    if let Some(d) = p.deadline
        && !p.halt.is_cancelled()
    {
        loop {
            let due = t0.checked_add(arrivals.next_offset()).unwrap_or(d);
            if due >= d || p.next.fetch_add(1, Ordering::Relaxed) >= p.end {
                break;
            }
            p.unsent.fetch_add(1, Ordering::SeqCst);
            last_due = due;
        }
    }
    p.mark_stopped_if_unfinished();
    let first = t0 + arrivals.phase();
    let _ = p.schedule.set((last_dispatch.saturating_duration_since(first), last_due.saturating_duration_since(first)));
    p.close();
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
}

/// One arrival handed to a worker: its slot under `max_in_flight`, its number, when due.
struct Job {
    slot: OwnedSemaphorePermit,
    i: u64,
    due: Instant,
}

/// The open loop's workers, reused from arrival to arrival: a task spawned per arrival
/// costs an allocation and a copy of its (large) future, which at 20,000 arrivals a
/// second was half a request's CPU. A worker takes one arrival at a time; one is added
/// when none is idle (never more than the slots, which bound the arrivals in flight).
#[derive(Default)]
struct Workers {
    senders: Vec<mpsc::Sender<Job>>,
    /// Workers waiting for an arrival, by index, the last idle first.
    idle: Arc<Mutex<Vec<usize>>>,
}

impl Workers {
    fn dispatch(&mut self, p: &Arc<Phase>, set: &mut JoinSet<()>, job: Job) {
        let ready = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let w = match ready {
            Some(w) => w,
            None => {
                let w = self.senders.len();
                let (tx, mut rx) = mpsc::channel::<Job>(1);
                let (phase, idle) = (p.clone(), self.idle.clone());
                set.spawn(async move {
                    while let Some(Job { slot, i, due }) = rx.recv().await {
                        run_one(&phase, i, Some(due)).await;
                        drop(slot);
                        idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
                    }
                });
                self.senders.push(tx);
                w
            }
        };
        // An idle worker's channel is empty: this never waits, and never fails while
        // the worker runs (a worker that panicked is rethrown when the set is joined).
        let _ = self.senders[w].try_send(job);
    }
}
