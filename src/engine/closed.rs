//! The closed loop: N workers, each sending its next request as soon as its last one
//! ends — through the ramp, the window and the cooldown, one worker per slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::task::JoinSet;

use super::phase::{Parts, Phase, cooldown_timer};
use super::request::run_one;
use super::rethrow;

/// N workers, each sending its next request as soon as its last one ends, until the
/// request numbers run out, the deadline passes or the run is stopped.
/// With a ramp, worker k of N joins at k/N of it (a shard's at its place among the
/// whole run's workers) and, when the ramp ends, goes on
/// into the window as soon as its last ramp request is done. With a cooldown, a worker
/// done with the window goes on sending until the window's last request has ended.
pub(super) async fn closed_loop(concurrency: u32, parts: Parts) {
    let Parts { ramp, window, cooldown } = parts;
    let workers = u64::from(concurrency).min(window.numbers_left()).max(1);
    // Workers still in the window: the last one out has seen its last request end.
    let left = Arc::new(AtomicU64::new(workers));
    let mut set = JoinSet::new();
    // A shard's worker k is the whole run's k·N + I: it joins the ramp at its place there.
    let numbers = window.ctx.requests.numbers();
    let place = move |k: u64| match numbers.workers_total {
        0 => (k, workers),
        total => (numbers.shard.dealt(k), total),
    };
    for k in 0..workers {
        let (ramp, window, cooldown, left) = (ramp.clone(), window.clone(), cooldown.clone(), left.clone());
        set.spawn(async move {
            if let Some((len, p)) = ramp {
                let (at, of) = place(k);
                let delay = len.mul_f64(at as f64 / of as f64);
                tokio::select! {
                    _ = p.halt.cancelled() => {}
                    _ = tokio::time::sleep(delay) => worker(p.clone()).await,
                }
            }
            worker(window.clone()).await;
            // Only a window that is done closes (not a worker the rate limiter turned
            // away), and not a stopped or aborted one: those end the load.
            let done = window.exhausted() && !window.halt.is_cancelled();
            if done {
                window.close();
            }
            // AcqRel, as a reference count: the last one out sees every other worker done.
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                window.drain();
            }
            if let Some((_, c)) = cooldown.filter(|_| done) {
                worker(c).await;
            }
        });
    }
    let workers = async {
        while let Some(res) = set.join_next().await {
            rethrow(res);
        }
    };
    tokio::join!(workers, cooldown_timer(&window, &cooldown));
}

/// `concurrency` users of the window, each running `user` (sessions or tasks back to
/// back); returns once every one has ended, the window drained.
pub(super) async fn users<W, F>(p: &Arc<Phase>, concurrency: u32, user: W)
where
    W: Fn(Arc<Phase>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        set.spawn(user(p.clone()));
    }
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
    p.mark_stopped_if_unfinished();
    p.drain();
}

async fn worker(p: Arc<Phase>) {
    loop {
        if p.ctx.stop.soft.is_cancelled() {
            p.mark_stopped_if_unfinished();
            return;
        }
        if p.halt.is_cancelled() || p.deadline().is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let Some(i) = p.take_number() else { return };
        if !run_one(&p, i, None).await {
            return;
        }
    }
}
