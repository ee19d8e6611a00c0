//! Task stages (`task = "name"`): each task runs its steps one after another; a step
//! sends its fan-out's members, at most its `concurrency` at once within the task and
//! under the stage's `max_in_flight` across tasks, and goes on when all have ended (or
//! the first K answered). Its answers fill a later step's prompt. A closed loop keeps
//! `concurrency` tasks going; an open loop starts them at `rate` per second, each
//! timed from when it was due. A stage's `requests` counts tasks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::arrivals::Arrivals;
use super::phase::{Parts, Phase};
use super::request::{Ended, run_request};
use super::rethrow;
use super::schedule::{Cost, spawn_each};
use super::taskrun::TaskRun;
use crate::metrics::EngineEvent;
use crate::metrics::tasks::{StepDone, TaskDone};
use crate::model::{Outcome, TaskStep};
use crate::scenario::Arrival;
use crate::workload::dist::rng_named;
use crate::workload::task::{Carried, FanOut, Fill, Join, OnError, StepDef, rank};

/// `concurrency` users, each running tasks back to back until the stage ends.
pub(super) async fn closed_tasks(concurrency: u32, run: Arc<TaskRun>, parts: Parts) {
    let p = parts.window;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let (p, run) = (p.clone(), run.clone());
        set.spawn(async move {
            while may_start(&p) {
                let Some(i) = p.take_number() else { break };
                if !task(&p, &run, i, None).await {
                    break;
                }
            }
        });
    }
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
    p.mark_stopped_if_unfinished();
    p.drain();
}

/// Most tasks of an open loop in flight at once: beyond, arrivals wait (the stage is
/// behind) and those the window closes on are counted unsent.
const MAX_TASKS_IN_FLIGHT: usize = 10_000;

/// Tasks starting at `rate` per second, `arrival`-spaced; each timed from when it was due.
pub(super) async fn open_tasks(rate: f64, arrival: Arrival, seed: u64, run: Arc<TaskRun>, parts: Parts) {
    let p = parts.window;
    let slots = Arc::new(Semaphore::new(MAX_TASKS_IN_FLIGHT));
    let arrivals = Arrivals::new(rate, arrival, seed).sharded(p.ctx.requests.numbers().shard);
    spawn_each(&p, slots, Cost::Request, arrivals, |phase, i, due| {
        let run = run.clone();
        async move {
            task(&phase, &run, i.unwrap_or_default(), Some(due)).await;
        }
    })
    .await;
}

fn may_start(p: &Phase) -> bool {
    !p.ctx.stop.soft.is_cancelled() && !p.halt.is_cancelled() && p.numbers_left() > 0 && p.deadline.is_none_or(|d| Instant::now() < d)
}

/// What a task's steps have so far.
struct Progress {
    done: TaskDone,
    /// Each step's answers, ranked where its reader asks.
    answers: Vec<Vec<Carried>>,
}

/// Task `i` of the stage, due at `due` (open loop); false once the run is over.
async fn task(p: &Phase, run: &TaskRun, i: u64, due: Option<Instant>) -> bool {
    let start = due.unwrap_or_else(Instant::now);
    let whole = p.ctx.requests.numbers().global(i);
    run.started.fetch_add(1, Ordering::Relaxed);
    // The task's input: the stage's prompt for its number.
    let input = p.ctx.requests.input_text(i);
    let done = TaskDone { cost_usd: Some(0.0), ..TaskDone::default() };
    let mut progress = Progress { done, answers: Vec::new() };
    let mut going_on = true;
    let last = run.def.steps.len() - 1;
    for k in 0..=last {
        let ended = run_step(p, run, k, (i, whole), &input, &mut progress).await;
        going_on &= ended.going_on;
        if let Some(why) = ended.failed {
            progress.done.failed_at = Some((k as u32, why));
            // A stop or the stage's end is no failure of the task's own.
            progress.done.cut = p.ctx.stop.soft.is_cancelled() || p.halt.is_cancelled() || !going_on;
            break;
        }
        if k == last {
            progress.done.ok = true;
            progress.done.first_token = ended.first_token.map(|t| t.saturating_duration_since(start));
        }
    }
    progress.done.latency = start.elapsed();
    let ended = EngineEvent::TaskEnded { part: p.part, task: Box::new(progress.done) };
    p.ctx.events.send(ended).await.is_ok() && going_on
}

/// How a step ended.
struct StepEnd {
    going_on: bool,
    /// Why the task fails here, if it does.
    failed: Option<&'static str>,
    /// When its first answer's first token came.
    first_token: Option<Instant>,
}

/// Step `k` of task `i` (`whole` in the whole run): its members sent and joined.
async fn run_step(p: &Phase, run: &TaskRun, k: usize, (i, whole): (u64, u64), input: &(String, u64), progress: &mut Progress) -> StepEnd {
    let step = &run.def.steps[k];
    let stage = p.ctx.requests.stage_number();
    let n = match &step.fan_out {
        FanOut::Fixed(n) => *n,
        FanOut::Drawn(d) => d.sample(&mut rng_named(k as u64, stage, whole, b"fan_out\0")),
    };
    let mut carried = step.answers_from.and_then(|f| progress.answers.get(f)).cloned().unwrap_or_default();
    if let Some(field) = &step.top_by {
        rank(&mut carried, field);
    }
    let t0 = Instant::now();
    let local = Semaphore::new(step.concurrency.min(n).max(1) as usize);
    let cancel = CancellationToken::new();
    let fill = |member| Fill { prompt: (&input.0, input.1), task: whole, member, answers: &carried, seed: (0, stage) };
    let mut members: FuturesUnordered<_> = (0..n).map(|m| member(p, run, k, (i, whole), m, fill(m), &local, &cancel)).collect();
    let (mut answers, mut failed, mut sent, mut first_token) = (Vec::new(), 0u32, 0u32, None::<Instant>);
    let (mut ends, mut going_on, mut why) = (Vec::with_capacity(n as usize), true, None);
    while let Some((m, ended)) = members.next().await {
        let Some((ended, sent_at)) = ended else { continue };
        going_on &= ended.going_on;
        if ended.outcome.is_none() {
            continue;
        }
        sent += 1;
        ends.push(Instant::now());
        let d = &mut progress.done;
        (d.tokens.0, d.tokens.1) = (d.tokens.0 + ended.tokens.0, d.tokens.1 + ended.tokens.1);
        d.cost_usd = d.cost_usd.zip(run.cost_usd(k, ended.tokens)).map(|(a, c)| a + c);
        match (ended.outcome, ended.answer) {
            (Some(Outcome::Ok), Some(a)) => {
                if first_token.is_none() {
                    first_token = ended.ttft.map(|t| sent_at + t);
                }
                answers.push((m, Carried { text: a.text.into(), tokens: a.tokens }));
            }
            // Cancelled: the step no longer needed it (or a stop came).
            (Some(Outcome::Cancelled), _) => {}
            (outcome, _) => {
                failed += 1;
                if step.on_error == OnError::FailTask && why.is_none() {
                    why = Some(cause(outcome));
                    cancel.cancel();
                }
            }
        }
        if let Join::First(want) = step.join
            && answers.len() as u32 >= want
        {
            cancel.cancel();
        }
        if !going_on {
            cancel.cancel();
        }
    }
    drop(members);
    progress.done.requests += sent;
    let wall = t0.elapsed();
    ends.sort();
    let slowest_wait = match ends.len() {
        0 | 1 => Duration::ZERO,
        l => ends[l - 1].saturating_duration_since(ends[l - 2]),
    };
    progress.done.steps.push(StepDone { wall, slowest_wait, members: sent, failed });
    if why.is_none() && (answers.len() as u32) < needed(step, n) {
        why = Some(if answers.is_empty() && failed == 0 { "cancelled" } else { "quorum" });
    }
    // Answers in member order, as a fan-out's documents were numbered.
    answers.sort_by_key(|(m, _)| *m);
    progress.answers.push(answers.into_iter().map(|(_, a)| a).collect());
    StepEnd { going_on, failed: why, first_token }
}

/// Answers the step needs to go on.
fn needed(step: &StepDef, n: u32) -> u32 {
    match (step.join, step.on_error) {
        (Join::First(k), _) => k,
        (Join::All, OnError::FailTask) => n,
        (Join::All, OnError::Skip) => step.quorum.min(n),
    }
}

fn cause(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        Some(Outcome::Failed(kind)) => kind.as_str(),
        Some(Outcome::Cancelled) | None => "cancelled",
        // A reply without an answer's text to carry on.
        Some(Outcome::Ok) => "no_answer",
    }
}

/// Member `m` of step `k`: its slot within the task, then under the stage's cap, then
/// its request, and when it was sent. None when the step no longer needed it before.
#[allow(clippy::too_many_arguments)]
async fn member(
    p: &Phase,
    run: &TaskRun,
    k: usize,
    (i, whole): (u64, u64),
    m: u32,
    fill: Fill<'_>,
    local: &Semaphore,
    cancel: &CancellationToken,
) -> (u32, Option<(Ended, Instant)>) {
    let halted = async {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = p.halt.cancelled() => {}
        }
    };
    tokio::pin!(halted);
    let _mine = tokio::select! {
        biased;
        _ = &mut halted => return (m, None),
        permit = local.acquire() => permit.ok(),
    };
    let _stage = match &run.limit {
        Some(limit) => tokio::select! {
            biased;
            _ = &mut halted => return (m, None),
            permit = limit.acquire() => permit.ok(),
        },
        None => None,
    };
    let (requests, texts) = &run.steps[k];
    let step = &run.def.steps[k];
    let (text, tokens) = step.render(&fill, run.def.words.as_deref(), texts);
    let message = serde_json::json!({"role": "user", "content": text});
    let mut spec = requests.messages_request(vec![message], tokens, None);
    spec.task = Some(TaskStep { task: whole, step: k as u32, member: m });
    let sent_at = Instant::now();
    (m, Some((run_request(p, i, spec, None, Some(cancel)).await, sent_at)))
}
