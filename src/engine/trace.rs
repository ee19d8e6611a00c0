//! A trace's replay: each line sent at its timestamp (scaled by `speed`), whether or not
//! earlier ones have finished, under `max_in_flight`, timed from its due time like any
//! open-loop arrival (no coordinated omission). The later lines of a session wait for
//! the one before them to end, then for their `delay`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::phase::{Parts, Phase};
use super::request::{run_spec, spec};
use super::rethrow;
use crate::metrics::NONE_WAITING;
use crate::workload::trace::Replay;

/// The replay's clock: trace time → instants.
#[derive(Clone, Copy)]
struct Clock {
    t0: Instant,
    speed: f64,
}

/// The schedule as it went, in µs from the clock's start: the last send, and the last
/// line due (sent or not), over every line, a session's later ones included.
#[derive(Default)]
struct Marks {
    sent: AtomicU64,
    due: AtomicU64,
}

impl Marks {
    fn mark(mark: &AtomicU64, clock: &Clock, at: Instant) {
        mark.fetch_max(at.saturating_duration_since(clock.t0).as_micros() as u64, Ordering::Relaxed);
    }
}

impl Clock {
    fn scale(&self, us: u64) -> Duration {
        Duration::try_from_secs_f64(us as f64 / 1e6 / self.speed).unwrap_or(Duration::MAX)
    }

    fn at(&self, us: u64) -> Option<Instant> {
        self.t0.checked_add(self.scale(us))
    }
}

/// Replays `replay` as the stage's window (a trace stage has no ramp or cooldown).
pub(super) async fn trace_parts(replay: Arc<Replay>, speed: f64, max_in_flight: u32, parts: Parts) {
    let window = parts.window;
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let clock = Clock { t0: window.opens.unwrap_or_else(Instant::now), speed };
    replay_loop(window.clone(), replay, clock, slots).await;
    window.drain();
}

/// How long before its due time a line's request is built: building a long prompt is
/// then no part of its send lag, and few are held built at once.
const BUILD_AHEAD: Duration = Duration::from_millis(50);

async fn replay_loop(p: Arc<Phase>, replay: Arc<Replay>, clock: Clock, slots: Arc<Semaphore>) {
    let mut set = JoinSet::new();
    let marks = Arc::new(Marks::default());
    // A shard replays every Nth session (a line alone is a session of one): a
    // session's turns, and the prefix they share, stay on one shard.
    let shard = p.ctx.requests.numbers().shard;
    let mut heads = replay.trace.heads().enumerate().filter(move |(j, _)| shard.owns(*j as u64)).map(|(_, h)| h).peekable();
    while let Some(&(line, at)) = heads.peek() {
        let Some(due) = clock.at(at) else { break };
        if p.deadline.is_some_and(|d| due >= d) || p.next.load(Ordering::Relaxed) >= p.end {
            break;
        }
        let wake = due.checked_sub(BUILD_AHEAD).unwrap_or(due);
        if wake > Instant::now() {
            tokio::select! {
                biased;
                _ = p.halt.cancelled() => break,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        heads.next();
        if p.next.fetch_add(1, Ordering::Relaxed) >= p.end {
            break;
        }
        let (phase, replay, slots, marks) = (p.clone(), replay.clone(), slots.clone(), marks.clone());
        set.spawn(async move { session(&phase, &replay, clock, (line, due), &slots, &marks).await });
        while let Some(res) = set.try_join_next() {
            rethrow(res);
        }
    }
    // Lines due before the deadline that were never reached are counted unsent.
    if let Some(d) = p.deadline
        && !p.halt.is_cancelled()
    {
        for (_, at) in heads {
            let due = clock.at(at).unwrap_or(d);
            if due >= d || p.next.fetch_add(1, Ordering::Relaxed) >= p.end {
                break;
            }
            p.unsent.fetch_add(1, Ordering::SeqCst);
            Marks::mark(&marks.due, &clock, due);
        }
    }
    // With sessions, lines still start after the clock's last one: closed when they end.
    if !replay.trace.lines.iter().any(|l| l.follows) {
        p.mark_stopped_if_unfinished();
        p.close();
    }
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
    let us = |m: &AtomicU64| Duration::from_micros(m.load(Ordering::Relaxed));
    let _ = p.schedule.set((us(&marks.sent), us(&marks.due)));
    p.mark_stopped_if_unfinished();
    p.close();
}

/// Sends line `first` at `due` (its number taken), then each later line of its
/// session once the one before it has ended: at its own timestamp if that is later,
/// else after its delay.
async fn session(p: &Phase, replay: &Replay, clock: Clock, (first, due): (u32, Instant), slots: &Arc<Semaphore>, marks: &Marks) {
    let lines = &replay.trace.lines;
    let (mut line, mut due) = (first, due);
    loop {
        if !send_at(p, line, due, clock, slots, marks).await {
            return;
        }
        let Some(next) = lines[line as usize].next else { return };
        let now = Instant::now();
        let l = &lines[next as usize];
        due = match l.at_us {
            Some(at) => clock.at(at).map_or(now, |t| t.max(now)),
            None => now.checked_add(clock.scale(l.delay_us)).unwrap_or(now),
        };
        if p.deadline.is_some_and(|d| due >= d) {
            return;
        }
        let wake = due.checked_sub(BUILD_AHEAD).unwrap_or(due);
        tokio::select! {
            biased;
            _ = p.halt.cancelled() => return,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if p.next.fetch_add(1, Ordering::Relaxed) >= p.end {
            return;
        }
        line = next;
    }
}

/// Builds line `line`'s request, waits for `due` and a slot under `max_in_flight`, and
/// sends it. False when it was not sent (a stop, or no slot before the deadline: then
/// counted unsent), or the run is over. Built ahead only while slots are free: a
/// replay held at `max_in_flight` keeps no growing pile of bodies.
async fn send_at(p: &Phase, line: u32, due: Instant, clock: Clock, slots: &Arc<Semaphore>, marks: &Marks) -> bool {
    Marks::mark(&marks.due, &clock, due);
    let ahead = match slots.available_permits() {
        0 => None,
        _ => Some(spec(p, u64::from(line)).await),
    };
    tokio::select! {
        biased;
        _ = p.halt.cancelled() => return halted(p),
        _ = tokio::time::sleep_until(due.into()) => {}
    }
    let permit = match slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            // Live, the dashboard can say the replay is behind before the window ends.
            p.waiting.store(due.saturating_duration_since(clock.t0).as_micros() as u64, Ordering::Relaxed);
            let permit = tokio::select! {
                biased;
                _ = p.halt.cancelled() => None,
                permit = slots.clone().acquire_owned() => Some(permit.expect("the semaphore is never closed")),
                _ = p.deadline_passed() => {
                    p.unsent.fetch_add(1, Ordering::SeqCst);
                    None
                }
            };
            p.waiting.store(NONE_WAITING, Ordering::Relaxed);
            match permit {
                Some(permit) => permit,
                None if p.halt.is_cancelled() => return halted(p),
                None => return false,
            }
        }
    };
    let spec = match ahead {
        Some(spec) => spec,
        None => spec(p, u64::from(line)).await,
    };
    Marks::mark(&marks.sent, &clock, Instant::now());
    let sent = run_spec(p, u64::from(line), spec, Some(due)).await;
    drop(permit);
    sent
}

/// A line taken but never sent because of a stop: the stage was cut short.
fn halted(p: &Phase) -> bool {
    if p.ctx.stop.soft.is_cancelled() {
        p.stopped.store(true, Ordering::SeqCst);
    }
    false
}
