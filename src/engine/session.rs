//! Multi-turn sessions (`[conversation]`): each virtual user runs a session turn by
//! turn — the history (its own earlier messages and the server's actual replies) plus a
//! new message, then its think time — and starts a new one when it ends or a turn
//! fails. A closed loop keeps `concurrency` sessions going; an open loop starts
//! sessions at `rate` per second (user-centric load), at most `max_in_flight` at once.
//! A stage's `requests` counts turns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::arrivals::Arrivals;
use super::closed::users;
use super::phase::{Parts, Phase};
use super::request::run_turn;
use super::schedule::{Cost, spawn_each};
use crate::metrics::EngineEvent;
use crate::metrics::sessions::SessionEnd;
use crate::scenario::Arrival;
use crate::workload::conversation::{Conversation, History};

/// `concurrency` users, each running sessions back to back until the stage ends.
pub(super) async fn closed_sessions(concurrency: u32, conv: Arc<Conversation>, parts: Parts) {
    users(&parts.window, concurrency, |p| {
        let conv = conv.clone();
        async move {
            while p.may_start(Instant::now()) {
                if !session(&p, &conv, None).await {
                    break;
                }
            }
        }
    })
    .await;
}

/// Sessions starting at `rate` per second, `arrival`-spaced, at most `max_in_flight`
/// at once; a session due when every slot is taken waits (the stage is behind), and
/// its first turn's latency counts from when it was due.
pub(super) async fn open_sessions(rate: f64, arrival: Arrival, max_in_flight: u32, seed: u64, conv: Arc<Conversation>, parts: Parts) {
    let p = parts.window;
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let arrivals = Arrivals::new(rate, arrival, seed).sharded(p.ctx.requests.numbers().shard);
    spawn_each(&p, slots, Cost::Session, arrivals, |phase, _, due| {
        let conv = conv.clone();
        async move {
            session(&phase, &conv, Some(due)).await;
        }
    })
    .await;
}

/// One session, its first turn due at `due` (open loop); false once the run is over.
async fn session(p: &Phase, conv: &Conversation, due: Option<Instant>) -> bool {
    let ctx = &p.ctx;
    let stage = ctx.requests.stage_number();
    let s = ctx.sessions.fetch_add(1, Ordering::Relaxed);
    // Drawn by the whole run's session number: the shards' sessions together are the
    // unsharded run's.
    let whole = ctx.requests.numbers().session(s);
    let turns = conv.turns_of(stage, whole);
    let start = Instant::now();
    let mut history = History::default();
    let (mut due, mut sent, mut end) = (due, 0u32, SessionEnd::Finished);
    let mut going_on = true;
    for k in 0..turns {
        // A dataset's conversation may run out of human turns before the draw: done.
        if !ctx.requests.has_turn(s, k) {
            break;
        }
        // An open loop's turn is due when scheduled; a closed loop's now.
        if !p.may_start(due.unwrap_or_else(Instant::now)) {
            end = SessionEnd::Cut;
            break;
        }
        let Some(i) = p.take_number() else {
            end = SessionEnd::Cut;
            break;
        };
        let Some(input) = ctx.requests.turn(s, k, i) else { break };
        let output = input.output;
        let (messages, tokens) = history.next(input, conv.history, conv.max_context_tokens);
        let spec = ctx.requests.conversation_request(messages, tokens, output, (whole, k));
        let (on, answer) = run_turn(p, i, spec, due).await;
        going_on = on;
        if !on {
            end = SessionEnd::Cut;
            break;
        }
        sent += 1;
        let Some(answer) = answer else {
            end = if p.halt.is_cancelled() || ctx.stop.hard.is_cancelled() { SessionEnd::Cut } else { SessionEnd::Failed { turn: k } };
            break;
        };
        history.reply(answer.text, answer.tokens);
        if k + 1 < turns && ctx.requests.has_turn(s, k + 1) {
            // The stage's end (its deadline, its last turn taken, a stop) does not wait
            // for a user to finish thinking.
            let think = conv.think_after(stage, whole, k);
            let cut = tokio::select! {
                biased;
                _ = p.halt.cancelled() => true,
                _ = p.deadline_passed() => true,
                _ = tokio::time::sleep(think) => false,
            };
            if cut || p.numbers_left() == 0 {
                end = SessionEnd::Cut;
                break;
            }
            // Open loop: the next turn is due when the user is done thinking.
            due = due.map(|_| Instant::now());
        }
    }
    // A session that never sent its first turn (the stage's last was taken) was not one.
    if sent == 0 && end == SessionEnd::Cut {
        return going_on;
    }
    let ended = EngineEvent::SessionEnded { part: p.part, end, turns: sent, duration: start.elapsed() };
    ctx.events.send(ended).await.is_ok() && going_on
}
