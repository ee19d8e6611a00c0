//! The load engine: runs stages in order and turns every started request into exactly
//! one RequestRecord sent to the aggregator. It never knows who watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, RequestRecord};
use crate::metrics::{EngineEvent, StageInfo};
use crate::scenario::{Load, Scenario, Stage};

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
}

impl Engine {
    pub fn new(scenario: Arc<Scenario>, client: Arc<Client>, events: mpsc::Sender<EngineEvent>, stop: Stop) -> Engine {
        Engine {
            scenario,
            client,
            events,
            stop,
        }
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
        }
    }

    /// Runs every stage in order; returns true if the run was stopped early.
    pub async fn run(self) -> bool {
        for (index, stage) in self.scenario.stages.iter().enumerate() {
            if self.stop.soft.is_cancelled() {
                return true;
            }
            let info = Self::stage_info(&self.scenario, index, stage);
            if self.events.send(EngineEvent::StageStarted(info)).await.is_err() {
                return true;
            }
            let model = self.scenario.stage_model(stage).to_string();
            let Load::Closed { concurrency } = stage.load;
            if stage.warmup > 0 {
                self.closed_loop(concurrency, model.clone(), true, 0, stage.warmup, None, Arc::new(AtomicU64::new(0)))
                    .await;
            }
            let started = Arc::new(AtomicU64::new(0));
            let _ = self.events.send(EngineEvent::Measuring { started: started.clone() }).await;
            let t0 = Instant::now();
            let end = stage.requests.map_or(u64::MAX, |n| stage.warmup + n);
            self.closed_loop(
                concurrency,
                model,
                false,
                stage.warmup,
                end,
                stage.duration.map(|d| t0 + d),
                started.clone(),
            )
            .await;
            let wall = t0.elapsed();
            let interrupted = self.stop.soft.is_cancelled();
            let started = started.load(Ordering::SeqCst);
            if self
                .events
                .send(EngineEvent::StageFinished {
                    wall,
                    started,
                    interrupted,
                })
                .await
                .is_err()
                || interrupted
            {
                return true;
            }
        }
        false
    }

    /// N workers, each sending its next request as soon as its last one ends, until the
    /// request numbers run out, the deadline passes or the run is stopped.
    #[allow(clippy::too_many_arguments)]
    async fn closed_loop(
        &self,
        concurrency: u32,
        model: String,
        warmup: bool,
        first: u64,
        end: u64,
        deadline: Option<Instant>,
        started: Arc<AtomicU64>,
    ) {
        let phase = Arc::new(Phase {
            scenario: self.scenario.clone(),
            client: self.client.clone(),
            events: self.events.clone(),
            stop: self.stop.clone(),
            model,
            warmup,
            next: AtomicU64::new(first),
            end,
            deadline,
            started,
        });
        let workers = u64::from(concurrency).min(end - first).max(1);
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
}

async fn worker(p: Arc<Phase>) {
    loop {
        if p.stop.soft.is_cancelled() || p.deadline.is_some_and(|d| Instant::now() >= d) {
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
        let record = tokio::select! {
            biased;
            _ = p.stop.hard.cancelled() => RequestRecord::cancelled(t.elapsed()),
            r = p.client.send(body) => r,
        };
        if p.events.send(EngineEvent::Record { warmup: p.warmup, record }).await.is_err() {
            return;
        }
    }
}

/// Grace period for in-flight requests after a stop, before they are cancelled.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
