//! The open loop: requests on a schedule of arrivals, whether or not earlier ones have
//! finished, under one cap of requests in flight for the ramp, window and cooldown;
//! latency counts from each arrival's due time (no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::arrivals::Arrivals;
use super::phase::{Parts, Phase, cooldown_timer};
use super::request::run_one;
use super::schedule::{Cost, Scheduler};
use super::{COOLDOWN_NUMBERS, rethrow};
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
async fn open_loop(p: Arc<Phase>, arrivals: Arrivals, slots: Arc<Semaphore>) {
    let mut set = JoinSet::new();
    let mut workers = Workers::default();
    let schedule = Scheduler::new(p.clone(), slots, Cost::Request, arrivals.phase());
    let dues = arrivals.dues(schedule.t0());
    let dispatch = |slot, i: Option<u64>, due| {
        let i = i.expect("a request arrives with its number");
        workers.dispatch(&p, &mut set, Job { slot, i, due });
    };
    schedule.run(dues, dispatch).await;
    // The workers end once their channels close.
    drop(workers);
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
