//! The load engine: runs stages in order and turns every started request into exactly
//! one RequestRecord sent to the aggregator. It never knows who watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, RequestRecord};
use crate::metrics::{EngineEvent, StageInfo};
use crate::scenario::{Load, Scenario, Stage};

/// Grace period for in-flight requests after a stop, before they are cancelled.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How a run is stopped from outside.
#[derive(Clone, Default)]
pub struct Stop {
    /// Start no new request; let in-flight ones finish.
    pub soft: CancellationToken,
    /// Abandon in-flight requests now; they end as `cancelled`.
    pub hard: CancellationToken,
}

pub struct Engine {
    scenario: Arc<Scenario>,
    client: Arc<Client>,
    events: mpsc::Sender<EngineEvent>,
    stop: Stop,
}

/// Shared by the workers of one phase (warmup or measured) of a stage.
struct Phase {
    scenario: Arc<Scenario>,
    client: Arc<Client>,
    events: mpsc::Sender<EngineEvent>,
    stop: Stop,
    model: String,
    warmup: bool,
    /// Next request number (within the stage).
    next: AtomicU64,
    /// Request numbers at or past this are not sent.
    end: u64,
    deadline: Option<Instant>,
    started: Arc<AtomicU64>,
    /// Set when a stop cut the phase short (work was left undone).
    stopped: AtomicBool,
}

impl Phase {
    /// Whether the phase's own limits (count or deadline) are reached.
    fn exhausted(&self) -> bool {
        self.next.load(Ordering::Relaxed) >= self.end || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Engine {
    pub fn new(scenario: Arc<Scenario>, client: Arc<Client>, events: mpsc::Sender<EngineEvent>, stop: Stop) -> Engine {
        Engine { scenario, client, events, stop }
    }

    pub fn stage_info(scenario: &Scenario, index: usize, stage: &Stage) -> StageInfo {
        StageInfo {
            index,
            name: stage.name.clone(),
            concurrency: stage.load.concurrency(),
            model: scenario.stage_model(stage).to_string(),
            planned_requests: stage.requests,
            planned_duration: stage.duration,
            warmup: stage.warmup,
            slo: scenario.slo,
        }
    }

    fn phase(&self, stage: &Stage, warmup: bool, first: u64, end: u64, deadline: Option<Instant>) -> Arc<Phase> {
        Arc::new(Phase {
            scenario: self.scenario.clone(),
            client: self.client.clone(),
            events: self.events.clone(),
            stop: self.stop.clone(),
            model: self.scenario.stage_model(stage).to_string(),
            warmup,
            next: AtomicU64::new(first),
            end,
            deadline,
            started: Arc::new(AtomicU64::new(0)),
            stopped: AtomicBool::new(false),
        })
    }

    /// Runs every stage in order; returns true if a stop cut the run short.
    pub async fn run(self) -> bool {
        for (index, stage) in self.scenario.stages.iter().enumerate() {
            if self.stop.soft.is_cancelled() {
                return true;
            }
            let info = Self::stage_info(&self.scenario, index, stage);
            if self.events.send(EngineEvent::StageStarted(info)).await.is_err() {
                return true;
            }
            let Load::Closed { concurrency } = stage.load;
            if stage.warmup > 0 {
                closed_loop(concurrency, self.phase(stage, true, 0, stage.warmup, None)).await;
            }
            let t0 = Instant::now();
            let end = stage.requests.map_or(u64::MAX, |n| stage.warmup.saturating_add(n));
            // Durations are capped at validation, so this never overflows in practice;
            // if it did, the stage would simply run to its request count.
            let phase = self.phase(stage, false, stage.warmup, end, stage.duration.and_then(|d| t0.checked_add(d)));
            let _ = self.events.send(EngineEvent::Measuring { started: phase.started.clone() }).await;
            closed_loop(concurrency, phase.clone()).await;
            let wall = t0.elapsed();
            let interrupted = phase.stopped.load(Ordering::SeqCst);
            let started = phase.started.load(Ordering::SeqCst);
            if self.events.send(EngineEvent::StageFinished { wall, started, interrupted }).await.is_err() || interrupted {
                return true;
            }
        }
        false
    }
}

/// N workers, each sending its next request as soon as its last one ends, until the
/// request numbers run out, the deadline passes or the run is stopped.
async fn closed_loop(concurrency: u32, phase: Arc<Phase>) {
    let workers = u64::from(concurrency).min(phase.end.saturating_sub(phase.next.load(Ordering::Relaxed))).max(1);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        set.spawn(worker(phase.clone()));
    }
    while let Some(res) = set.join_next().await {
        if let Err(e) = res
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn worker(p: Arc<Phase>) {
    loop {
        if p.stop.soft.is_cancelled() {
            if !p.exhausted() {
                p.stopped.store(true, Ordering::SeqCst);
            }
            return;
        }
        if p.deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let i = p.next.fetch_add(1, Ordering::Relaxed);
        if i >= p.end {
            return;
        }
        p.started.fetch_add(1, Ordering::SeqCst);
        let prompt = p.scenario.prompts.prompt(i);
        let body = p.client.body(&p.model, &prompt, &p.scenario.request);
        let t = Instant::now();
        let mut record = tokio::select! {
            biased;
            _ = p.stop.hard.cancelled() => {
                p.stopped.store(true, Ordering::SeqCst);
                RequestRecord::cancelled(t.elapsed())
            }
            r = p.client.send(body) => r,
        };
        // Checked here, in parallel across workers; only the verdict travels on.
        if let Some(expect) = &p.scenario.check
            && let Some(content) = record.content.take()
            && record.outcome == crate::client::Outcome::Ok
        {
            record.check = Some(crate::check::check(&content, expect));
        }
        // Counted here on the same terms as the completion: streams, or no usage.
        if record.client_completion_tokens.is_some() {
            record.client_prompt_tokens = Some(prompt.tokens());
        }
        if p.events.send(EngineEvent::Record { warmup: p.warmup, record }).await.is_err() {
            return;
        }
    }
}
