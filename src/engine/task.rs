//! Task stages (`task = "name"`): each task runs its steps one after another; a step
//! sends its fan-out's members, at most its `concurrency` at once within the task and
//! under the stage's `max_in_flight` across tasks, and goes on when all have ended (or
//! the first K answered). Its answers fill a later step's prompt. A closed loop keeps
//! `concurrency` tasks going; an open loop starts them at `rate` per second, each
//! timed from when it was due. A stage's `requests` counts tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::arrivals::Arrivals;
use super::closed::users;
use super::phase::{Parts, Phase};
use super::request::{Ended, Within, run_request};
use super::schedule::{Cost, spawn_each};
use super::taskrun::TaskRun;
use serde_json::{Value, json};

use crate::metrics::EngineEvent;
use crate::metrics::tasks::{StepDone, TaskDone};
use crate::model::{Outcome, TaskStep, ToolCall};
use crate::scenario::Arrival;
use crate::workload::StageRequests;
use crate::workload::dist::rng_named;
use crate::workload::synth::WordPool;
use crate::workload::task::{Agent, Carried, FanOut, Fill, Join, MAX_FAN_OUT, OnError, StepDef, TaskDef, rank};

/// `concurrency` users, each running tasks back to back until the stage ends.
pub(super) async fn closed_tasks(concurrency: u32, run: Arc<TaskRun>, parts: Parts) {
    users(&parts.window, concurrency, |p| {
        let run = run.clone();
        async move {
            while p.may_start(Instant::now()) {
                let Some(i) = p.take_number() else { break };
                if !task(&p, &run, i, None).await {
                    break;
                }
            }
        }
    })
    .await;
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

/// A task's input: the stage's prompt for it (its text and length), and by step the
/// items of the list it fans out over, each counted.
struct Input {
    text: String,
    tokens: u64,
    items: Vec<Vec<Carried>>,
}

impl Input {
    fn of(requests: &StageRequests, def: &TaskDef, i: u64) -> Input {
        let (text, tokens, lists) = requests.task_input(i);
        let items = def
            .steps
            .iter()
            .map(|s| match (&s.fan_out, &lists) {
                (FanOut::Field { name: f, .. }, Some(lists)) => {
                    let list = lists.get(f).unwrap_or_default();
                    list.iter().take(MAX_FAN_OUT as usize).map(|t| Carried { text: t.clone(), tokens: requests.count(t) }).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        Input { text, tokens, items }
    }
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
    if p.ctx.events.send(EngineEvent::TaskStarted { part: p.part }).await.is_err() {
        return false;
    }
    // The task's input: the stage's prompt for its number, counted off the async
    // workers (a tokenizer, or the server's, may take its time).
    let (ctx, def) = (p.ctx.clone(), run.def.clone());
    let input = match tokio::task::spawn_blocking(move || Input::of(&ctx.requests, &def, i)).await {
        Ok(input) => input,
        Err(_) => Input::of(&p.ctx.requests, &run.def, i),
    };
    let done = TaskDone { cost_usd: Some(0.0), ..TaskDone::default() };
    let mut progress = Progress { done, answers: Vec::new() };
    let mut going_on = true;
    let last = run.def.steps.len() - 1;
    for k in 0..=last {
        let ended = run_step(p, run, k, (i, whole), &input, &mut progress).await;
        going_on &= ended.going_on;
        if let Some(why) = ended.failed {
            progress.done.failed_at = Some((k as u32, why));
            // A stop, or a request the window's end left unsent, is no failure of the
            // task's own.
            let past = p.deadline().is_some_and(|d| Instant::now() >= d) && why == "cancelled";
            progress.done.cut = p.ctx.stop.soft.is_cancelled() || p.halt.is_cancelled() || !going_on || past;
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
async fn run_step(p: &Phase, run: &TaskRun, k: usize, (i, whole): (u64, u64), input: &Input, progress: &mut Progress) -> StepEnd {
    let step = &run.def.steps[k];
    let stage = p.ctx.requests.stage_number();
    let n = match &step.fan_out {
        FanOut::Fixed(n) => *n,
        FanOut::Drawn(d) => d.sample(&mut rng_named(k as u64, stage, whole, b"fan_out\0")),
        FanOut::Field { .. } => input.items[k].len() as u32,
    };
    let mut carried = step.answers_from.and_then(|f| progress.answers.get(f)).cloned().unwrap_or_default();
    if let Some(field) = &step.top_by {
        rank(&mut carried, field);
    }
    let t0 = Instant::now();
    let local = Semaphore::new(step.concurrency.min(n).max(1) as usize);
    let cancel = CancellationToken::new();
    let fill = |member: u32| {
        let item = input.items[k].get(member as usize);
        Fill { prompt: (&input.text, input.tokens), task: whole, member, answers: &carried, item, seed: (0, stage) }
    };
    let mut members: FuturesUnordered<_> = (0..n).map(|m| member(p, run, k, (i, whole), m, fill(m), &local, &cancel)).collect();
    let mut j = Joined {
        answers: Vec::new(),
        done: StepDone::default(),
        ends: Vec::with_capacity(n as usize),
        going_on: true,
        why: None,
        first_token: None,
    };
    while let Some(m) = members.next().await {
        j.member(m, step, run, k, &mut progress.done);
        if j.why.is_some() || !j.going_on || matches!(step.join, Join::First(want) if j.answers.len() as u32 >= want) {
            cancel.cancel();
        }
    }
    drop(members);
    progress.done.requests += j.done.members;
    j.done.wall = t0.elapsed();
    j.ends.sort();
    if let [.., before, last] = j.ends[..] {
        j.done.slowest_wait = last.saturating_duration_since(before);
    }
    progress.done.steps.push(j.done);
    if j.why.is_none() && (j.answers.len() as u32) < needed(step, n) {
        j.why = Some(if j.answers.is_empty() && j.done.failed == 0 { "cancelled" } else { "quorum" });
    }
    // Answers in member order, as a fan-out's documents were numbered.
    j.answers.sort_by_key(|(m, _)| *m);
    progress.answers.push(j.answers.into_iter().map(|(_, a)| a).collect());
    StepEnd { going_on: j.going_on, failed: j.why, first_token: j.first_token }
}

/// A step's members as they end.
struct Joined {
    answers: Vec<(u32, Carried)>,
    done: StepDone,
    /// When each member that was sent ended.
    ends: Vec<Instant>,
    going_on: bool,
    /// Why the task fails at this step.
    why: Option<&'static str>,
    /// The earliest first token of an answer.
    first_token: Option<Instant>,
}

impl Joined {
    /// Takes in member `m`'s requests (an agent's several): counted, priced, and the
    /// last one's outcome its member's.
    fn member(&mut self, m: Member, step: &StepDef, run: &TaskRun, k: usize, task: &mut TaskDone) {
        for e in &m.sent {
            self.going_on &= e.going_on;
            let d = &mut *task;
            (d.tokens.0, d.tokens.1) = (d.tokens.0 + e.tokens.0, d.tokens.1 + e.tokens.1);
            d.cost_usd = d.cost_usd.zip(run.cost_usd(k, e.tokens)).map(|(a, c)| a + c);
        }
        self.done.members += m.sent.iter().filter(|e| e.outcome.is_some()).count() as u32;
        self.done.tool_calls += m.tools.0;
        self.done.tool_time += m.tools.1;
        let Some(last) = m.sent.into_iter().rev().find(|e| e.outcome.is_some()) else { return };
        self.ends.push(Instant::now());
        self.done.fanned += 1;
        let failure = match (last.outcome, last.answer) {
            // An agent still calling tools at its last step did not answer.
            (Some(Outcome::Ok), Some(_)) if !last.calls.is_empty() => Some("max_steps"),
            // Embeddings and rerank answer with numbers: answered, with no text to carry.
            (Some(Outcome::Ok), None) if !step.api.generates() => {
                self.answers.push((m.m, Carried { text: "".into(), tokens: 0 }));
                None
            }
            (Some(Outcome::Ok), Some(a)) => {
                let first = last.first_send.zip(last.ttft).map(|(s, t)| s + t);
                self.first_token = match (self.first_token, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.answers.push((m.m, Carried { text: a.text.into(), tokens: a.tokens }));
                None
            }
            // Cancelled: the step no longer needed it (or a stop came).
            (Some(Outcome::Cancelled), _) => return,
            (outcome, _) => Some(cause(outcome)),
        };
        if let Some(why) = failure {
            self.done.failed += 1;
            if step.on_error == OnError::FailTask && self.why.is_none() {
                self.why = Some(why);
            }
        }
    }
}

/// Answers the step needs to go on (a list shorter than `first` asks: all of it).
fn needed(step: &StepDef, n: u32) -> u32 {
    match (step.join, step.on_error) {
        (Join::First(k), _) => k.min(n),
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

/// Spreads tasks' draws apart from their steps' and members' (a step has fewer than
/// 2^20 members).
const MAX_FAN_OUT_DRAWS: u64 = 1 << 32;

/// What one member did: its requests in order (an agent's several), and its tools'
/// calls and the time they took.
struct Member {
    m: u32,
    sent: Vec<Ended>,
    tools: (u32, Duration),
}

/// Member `m` of step `k`: its slot within the task, then for each request a slot
/// under the stage's cap, and its request; an agent's model called again with its
/// tools' results while it calls tools. Nothing sent when the step no longer needed it.
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
) -> Member {
    let mut out = Member { m, sent: Vec::new(), tools: (0, Duration::ZERO) };
    let halted = async {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = p.halt.cancelled() => {}
        }
    };
    tokio::pin!(halted);
    let _mine = tokio::select! {
        biased;
        _ = &mut halted => return out,
        permit = local.acquire() => permit.ok(),
    };
    let (requests, texts) = &run.steps[k];
    let step = &run.def.steps[k];
    let (text, mut tokens) = step.render(&fill, run.def.words.as_deref(), texts);
    let mut messages = vec![serde_json::json!({"role": "user", "content": text})];
    let rounds = step.agent.as_ref().map_or(1, |a| a.max_steps);
    for round in 0..rounds {
        let slot = match &run.limit {
            Some(limit) => tokio::select! {
                biased;
                _ = &mut halted => return out,
                permit = limit.acquire() => permit.ok(),
            },
            None => None,
        };
        // Each member's and step's rerank documents their own.
        let draw = whole.wrapping_mul(MAX_FAN_OUT_DRAWS) ^ (k as u64) << 20 ^ u64::from(m);
        let mut spec = requests.step_request(messages.clone(), tokens, draw);
        spec.task = Some(TaskStep { task: whole, step: k as u32, member: m });
        let ended = run_request(p, i, spec, None, Some(Within { cancel, client: &run.clients[k] })).await;
        drop(slot);
        // The join sees them too: a last reply still calling tools did not answer.
        let calls = ended.calls.clone();
        let answered = ended.outcome == Some(Outcome::Ok);
        tokens += ended.tokens.1;
        out.sent.push(ended);
        let Some(agent) = step.agent.as_ref().filter(|_| answered && !calls.is_empty() && round + 1 < rounds) else { break };
        let seed = (p.ctx.requests.stage_number(), whole, round);
        let (wait, added) = tool_results(agent, &calls, seed, run.def.words.as_deref(), &mut messages);
        tokens += added;
        out.tools.0 += calls.len() as u32;
        let t = Instant::now();
        let cut = tokio::select! {
            biased;
            _ = &mut halted => true,
            _ = tokio::time::sleep(wait) => false,
        };
        out.tools.1 += t.elapsed();
        if cut {
            break;
        }
    }
    out
}

/// The assistant's calls and each tool's result appended to the conversation: the
/// longest tool's time (one reply's calls run side by side) and the tokens added.
fn tool_results(
    agent: &Agent,
    calls: &[ToolCall],
    (stage, task, round): (u64, u64, u32),
    words: Option<&WordPool>,
    messages: &mut Vec<Value>,
) -> (Duration, u64) {
    let listed: Vec<Value> =
        calls.iter().map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})).collect();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": listed}));
    let (mut wait, mut tokens) = (Duration::ZERO, 0);
    for (j, c) in calls.iter().enumerate() {
        let run = agent.run(&c.name, words, (stage, task, u64::from(round) << 16 | j as u64));
        // A call to a tool it was not offered is answered as a framework would: an error.
        let (took, text, n) = run.unwrap_or_else(|| (Duration::ZERO, format!("error: there is no tool named {:?}", c.name), 8));
        wait = wait.max(took);
        tokens += n;
        messages.push(json!({"role": "tool", "tool_call_id": c.id, "content": text}));
    }
    (wait, tokens)
}
