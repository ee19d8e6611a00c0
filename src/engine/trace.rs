//! A trace's replay: each line sent at its timestamp (scaled by `speed`), whether or not
//! earlier ones have finished, under `max_in_flight`, timed from its due time like any
//! open-loop arrival (no coordinated omission). The later lines of a session wait for
//! the one before them to end, then for their `delay`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::phase::Parts;
use super::request::{run_spec, spec};
use super::rethrow;
use super::schedule::{Cost, Scheduler, Slot};
use crate::workload::trace::Replay;

/// The replay's clock: trace time → instants.
#[derive(Clone, Copy)]
struct Clock {
    t0: Instant,
    speed: f64,
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
///
/// The scheduler's own loop (`Scheduler::run`) takes a slot before it hands an
/// arrival on; a trace's session cannot: its later lines come due from the task that
/// sent the line before them, once that one has ended. So the replay reaches each
/// session's first line on the scheduler's clock here, and every line takes its slot
/// from the same scheduler in its session's task (`send_at`).
pub(super) async fn trace_parts(replay: Arc<Replay>, speed: f64, max_in_flight: u32, parts: Parts) {
    let p = parts.window;
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let schedule = Arc::new(Scheduler::new(p.clone(), slots, Cost::Request, Duration::ZERO));
    let clock = Clock { t0: schedule.t0(), speed };
    let mut set = JoinSet::new();
    // A shard replays every Nth session (a line alone is a session of one): a
    // session's turns, and the prefix they share, stay on one shard.
    let shard = p.ctx.requests.numbers().shard;
    let mut heads = replay.trace.heads().enumerate().filter(move |(j, _)| shard.owns(*j as u64)).map(|(_, h)| h).peekable();
    while let Some(&(line, at)) = heads.peek() {
        let Some(due) = clock.at(at) else { break };
        if schedule.reach(due, due.checked_sub(BUILD_AHEAD).unwrap_or(due)).await.is_none() {
            break;
        }
        heads.next();
        let (schedule, replay) = (schedule.clone(), replay.clone());
        set.spawn(async move { session(&schedule, &replay, clock, (line, due)).await });
        while let Some(res) = set.try_join_next() {
            rethrow(res);
        }
    }
    // Heads come in time order and this loop never waits for a slot, so at the
    // deadline nothing due before it is left here; counted all the same, as any
    // schedule's end is (and the phase marked if a stop cut it).
    schedule.count_unreached(heads.map_while(|(_, at)| clock.at(at)));
    // With sessions, lines still start after the clock's last one: closed when they end.
    if !replay.trace.lines.iter().any(|l| l.follows) {
        p.close();
    }
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
    schedule.record_spans();
    p.mark_stopped_if_unfinished();
    p.drain();
}

/// How long before its due time a line's request is built: building a long prompt is
/// then no part of its send lag, and few are held built at once.
const BUILD_AHEAD: Duration = Duration::from_millis(50);

/// Sends line `first` at `due` (its number taken), then each later line of its
/// session once the one before it has ended: at its own timestamp if that is later,
/// else after its delay.
async fn session(schedule: &Scheduler, replay: &Replay, clock: Clock, (first, due): (u32, Instant)) {
    let lines = &replay.trace.lines;
    let (mut line, mut due) = (first, due);
    loop {
        if !send_at(schedule, line, due).await {
            return;
        }
        let Some(next) = lines[line as usize].next else { return };
        let now = Instant::now();
        let l = &lines[next as usize];
        due = match l.at_us {
            Some(at) => clock.at(at).map_or(now, |t| t.max(now)),
            None => now.checked_add(clock.scale(l.delay_us)).unwrap_or(now),
        };
        if schedule.reach(due, due.checked_sub(BUILD_AHEAD).unwrap_or(due)).await.is_none() {
            return;
        }
        line = next;
    }
}

/// Builds line `line`'s request, waits for `due` and a slot under `max_in_flight`, and
/// sends it. False when it was not sent (a stop, or no slot before the deadline: then
/// counted unsent), or the run is over. Built ahead only while slots are free: a
/// replay held at `max_in_flight` keeps no growing pile of bodies.
async fn send_at(schedule: &Scheduler, line: u32, due: Instant) -> bool {
    let p = schedule.phase();
    let ahead = match schedule.free_slots() {
        0 => None,
        _ => Some(spec(p, u64::from(line)).await),
    };
    tokio::select! {
        biased;
        _ = p.halt.cancelled() => {
            p.mark_stopped_if_stop();
            return false;
        }
        _ = tokio::time::sleep_until(due.into()) => {}
    }
    let Slot::Free(permit) = schedule.slot(due).await else { return false };
    let spec = match ahead {
        Some(spec) => spec,
        None => spec(p, u64::from(line)).await,
    };
    schedule.mark_sent(Instant::now());
    let sent = run_spec(p, u64::from(line), spec, Some(due)).await;
    drop(permit);
    sent
}
