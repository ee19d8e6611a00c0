//! The load engine: runs stages in order (then an automatic sweep's points, chosen as
//! it goes) and turns every started request into exactly one RequestRecord sent to the
//! aggregator. It never knows who watches.
//!
//! Rooms: `phase` (a stage's parts and their signals), `closed` and `open` (the two
//! kinds of load), `arrivals` (open-loop schedules), `schedule` (the one open-loop
//! scheduler: due times, slots, behind and unsent, for requests, sessions and traces),
//! `session` and `trace` (loads whose timing is the workload's), `task` (tasks: steps,
//! fan-out, fan-in) with what they need (`taskrun`), `request` (one
//! request and its retries), `retry` (retry timing), `ratelimit` (client-side limits),
//! `abort` (`abort_on_error_rate`), `sweep` (choosing an automatic sweep's points, the
//! knee).

mod abort;
pub mod arrivals;
mod closed;
mod open;
mod phase;
mod ratelimit;
mod request;
mod retry;
mod schedule;
mod session;
pub mod sweep;
mod task;
mod taskrun;
mod trace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::metrics::{EngineEvent, Part, StageInfo, StageStats};
use crate::model::Aborted;
use crate::scenario::{Arrival, Load, Scenario, Stage};
use crate::workload::Workload;
use abort::AbortWatch;
use phase::{Parts, Phase, StageCtx};
use ratelimit::Limiter;

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

impl Stop {
    /// Stops the run: nothing new starts, and requests in flight get [`STOP_GRACE`] (or
    /// until `sooner` resolves: a second Ctrl-C) before they are cancelled.
    pub async fn gracefully(&self, sooner: impl Future<Output = ()>) {
        self.soft.cancel();
        tokio::select! {
            _ = tokio::time::sleep(STOP_GRACE) => {}
            _ = sooner => {}
        }
        self.hard.cancel();
    }
}

/// How the engine's run ended.
#[derive(Debug, Clone, Default)]
pub struct EngineEnd {
    /// A stop (Ctrl-C, SIGTERM) cut the run short.
    pub interrupted: bool,
    pub aborted: Option<Aborted>,
    /// The stages an automatic sweep ran, in order (the last may be cut short).
    pub swept: Vec<Stage>,
}

pub struct Engine {
    scenario: Arc<Scenario>,
    workload: Workload,
    client: Arc<Client>,
    /// Clients of the other APIs stages speak (a stage's own `api`).
    others: Vec<(crate::model::Api, Arc<Client>)>,
    events: mpsc::Sender<EngineEvent>,
    stop: Stop,
    /// The first stage's requests, built before a common start (`prepare_first`).
    first: std::sync::Mutex<Option<crate::workload::StageRequests>>,
    before_stage: Option<BeforeStage>,
    /// Where the run's watcher finds the part of a stage it may end early.
    watch: Arc<WatchHook>,
}

/// Which part of a stage a watcher may end: an automatic warmup once its series settle,
/// or the window once its figures are known (`until`) or its backlog runs away
/// (`stop_on_saturation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    Warmup,
    Window,
}

/// The part of the running stage a watcher judges, and the token it cancels to end it
/// (as at its deadline).
#[derive(Debug, Default)]
pub struct WatchHook {
    current: std::sync::Mutex<Option<(usize, Watched, CancellationToken)>>,
    saturated: std::sync::Mutex<std::collections::BTreeSet<usize>>,
}

impl WatchHook {
    /// The stage's index, the part watched, and its token.
    pub fn current(&self) -> Option<(usize, Watched, CancellationToken)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stage `index`'s window was ended because it could not keep up (said before its
    /// token is cancelled, so an automatic sweep reads it with the stage's figures).
    pub fn saturated(&self, index: usize) {
        self.saturated.lock().unwrap_or_else(|e| e.into_inner()).insert(index);
    }

    pub fn was_saturated(&self, index: usize) -> bool {
        self.saturated.lock().unwrap_or_else(|e| e.into_inner()).contains(&index)
    }
}

/// Longest a `warmup = "auto"` runs before the window opens anyway.
pub const AUTO_WARMUP_MAX: std::time::Duration = std::time::Duration::from_secs(120);

/// Done before each stage's requests, given its index (the server's prefix cache
/// emptied): awaited, so the stage's first request follows it.
pub type BeforeStage = Box<dyn Fn(usize) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Request numbers of ramp requests start here, far from the window's.
const RAMP_NUMBERS: u64 = crate::model::NUMBER_RANGE;

/// Request numbers of cooldown requests start here, apart from the window's and the ramp's.
const COOLDOWN_NUMBERS: u64 = 2 * crate::model::NUMBER_RANGE;

impl Engine {
    pub fn new(scenario: Arc<Scenario>, workload: Workload, client: Arc<Client>, events: mpsc::Sender<EngineEvent>, stop: Stop) -> Engine {
        let first = std::sync::Mutex::new(None);
        Engine { scenario, workload, client, others: Vec::new(), events, stop, first, before_stage: None, watch: Arc::default() }
    }

    /// The hook a watcher ends parts of stages through.
    pub fn watch_hook(&self) -> Arc<WatchHook> {
        self.watch.clone()
    }

    /// A part the watcher may end early (an automatic warmup; a window with `until` or
    /// `stop_on_saturation`) ends once it says so, or at its deadline as any; with
    /// `watched` None, nothing of the stage is watched from here on.
    fn watch_part(&self, index: usize, watched: Option<Watched>, phase: &Arc<Phase>) {
        let mut current = self.watch.current.lock().unwrap_or_else(|e| e.into_inner());
        *current = None;
        let Some(watched) = watched else { return };
        let known = CancellationToken::new();
        *current = Some((index, watched, known.clone()));
        let (phase, hook) = (phase.clone(), self.watch.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = known.cancelled() => {
                    phase.end_now();
                    // A saturated window's backlog is dropped, not waited for.
                    if let Some(d) = phase.dropped.as_ref().filter(|_| hook.was_saturated(index)) {
                        d.cancel();
                    }
                }
                _ = phase.closed.cancelled() => {}
            }
        });
    }

    /// Stages that speak another API than the target's send through these clients.
    pub fn with_clients(mut self, others: Vec<(crate::model::Api, Arc<Client>)>) -> Engine {
        self.others = others;
        self
    }

    /// The client of the API `stage` speaks.
    fn client_of(&self, stage: &Stage) -> Arc<Client> {
        self.client_of_api(stage.api)
    }

    /// The client that speaks `api` (the target's, for its own).
    fn client_of_api(&self, api: crate::model::Api) -> Arc<Client> {
        self.others.iter().find(|(a, _)| *a == api).map_or_else(|| self.client.clone(), |(_, c)| c.clone())
    }

    /// Does `f` before each stage's first request.
    pub fn before_each_stage(mut self, f: BeforeStage) -> Engine {
        self.before_stage = Some(f);
        self
    }

    /// Builds the first stage's requests now: shards waiting for one `--start-at` then
    /// start at once, not each when its own prompts are built.
    pub async fn prepare_first(&self) {
        if let Some(stage) = self.scenario.stages.first() {
            let r = self.requests_of(0, stage).await;
            *self.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
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
            warmup_auto: stage.warmup_auto,
            slo: scenario.slo,
            rate_limit: stage.rate_limit,
            rate: stage.load.rate(),
            arrival: match stage.load {
                Load::Open { arrival, .. } => Some(arrival.name()),
                Load::Closed { .. } => None,
            },
            items: stage.api.items(),
            task: stage.task.as_ref().map(|t| (t.name.clone(), t.steps.iter().map(|s| s.name.clone()).collect())),
        }
    }

    /// Runs every stage in order, then an automatic sweep's points as it chooses them,
    /// until the last, a stop, or `abort_on_error_rate`.
    pub async fn run(self) -> EngineEnd {
        for (index, stage) in self.scenario.stages.iter().enumerate() {
            if self.stop.soft.is_cancelled() {
                return EngineEnd { interrupted: true, ..EngineEnd::default() };
            }
            if let Err(end) = self.run_stage(index, stage, false).await {
                return end;
            }
        }
        match self.scenario.sweep.as_ref().filter(|s| s.auto.is_some()) {
            Some(sweep) => self.auto_sweep(sweep).await,
            None => EngineEnd::default(),
        }
    }

    /// Runs an automatic sweep: each point's stage is made once the one before it is
    /// judged, from the figures the aggregator closed it with.
    async fn auto_sweep(&self, sweep: &crate::scenario::Sweep) -> EngineEnd {
        let auto = sweep.auto.expect("an automatic sweep");
        // A task sweep is judged by its tasks' SLO, `task_ms`.
        let slo = match sweep.task {
            Some(_) => self.scenario.slo.filter(|s| s.task.is_some()),
            None => self.scenario.slo.filter(crate::model::Slo::for_requests),
        };
        let slo = slo.map(|_| sweep.slo_quantile);
        let mut plan = sweep::AutoPlan::new(sweep.kind, auto, sweep.knee_gain, slo);
        let mut ran = Vec::new();
        while let Some(load) = plan.next_point() {
            // Checked before the point is recorded: a point is listed only if it ran.
            if self.stop.soft.is_cancelled() {
                return EngineEnd { interrupted: true, swept: ran, ..EngineEnd::default() };
            }
            let stage = sweep.auto_point(load, &self.scenario.stages, &ran);
            let index = self.scenario.stages.len() + ran.len();
            ran.push(stage.clone());
            match self.run_stage(index, &stage, true).await {
                Ok(Some(stats)) => {
                    let (throughput, slo_met) = stats.judged();
                    let saturated = self.watch.was_saturated(index);
                    plan.record(sweep::Measured { load, throughput, slo_met, saturated });
                }
                Ok(None) => return EngineEnd { swept: ran, ..EngineEnd::default() },
                Err(end) => return EngineEnd { swept: ran, ..end },
            }
        }
        EngineEnd { swept: ran, ..EngineEnd::default() }
    }

    /// What every request of stage `index` needs; prompts that cost to build are built
    /// here, before its clock runs.
    /// A stage's requests, with the prompts it will send built ahead (off the runtime).
    async fn requests_of(&self, index: usize, stage: &Stage) -> crate::workload::StageRequests {
        let mut requests = self.workload.stage(index, self.scenario.stage_model(stage), &stage.request, &stage.texts, stage.numbers);
        let ahead = stage.warmup.saturating_add(match (stage.requests, stage.load, stage.duration) {
            (Some(n), ..) => n,
            (None, Load::Open { rate, .. }, Some(d)) => (rate * d.as_secs_f64() * 1.1) as u64,
            (None, Load::Closed { concurrency }, _) => u64::from(concurrency) * 256,
            (None, ..) => 0,
        });
        // A stage of so many requests sends exactly those (its warmup's too).
        let exact = stage.requests.is_some();
        match tokio::task::spawn_blocking(move || {
            requests.prepare(ahead, exact);
            requests
        })
        .await
        {
            Ok(r) => r,
            // Only a panic while building gets here; the requests build prompts as needed.
            Err(_) => self.workload.stage(index, self.scenario.stage_model(stage), &stage.request, &stage.texts, stage.numbers),
        }
    }

    async fn stage_ctx(&self, index: usize, stage: &Stage) -> Arc<StageCtx> {
        let ready = if index == 0 { self.first.lock().unwrap_or_else(|e| e.into_inner()).take() } else { None };
        let requests = match ready {
            Some(r) => r,
            None => self.requests_of(index, stage).await,
        };
        Arc::new(StageCtx {
            client: self.client_of(stage),
            requests,
            events: self.events.clone(),
            stop: self.stop.clone(),
            check: self.scenario.check.clone(),
            tools: crate::check::ToolSchemas::of(stage.request.tools.as_ref()).map(Arc::new),
            retry: stage.retry.clone(),
            limiter: Limiter::new(stage.rate_limit.rpm, stage.rate_limit.tpm, Instant::now()).map(Arc::new),
            tpm_max_tokens: stage.rate_limit.tpm.map(|_| stage.request.max_output_tokens().map_or(0, u64::from)),
            conversation: self.scenario.conversation.clone().map(Arc::new),
            sessions: std::sync::atomic::AtomicU64::new(0),
            task: self.task_run(index, stage),
        })
    }

    /// A task stage's steps, each with its own model and fields.
    fn task_run(&self, index: usize, stage: &Stage) -> Option<Arc<taskrun::TaskRun>> {
        let def = stage.task.clone()?;
        let builders = def
            .steps
            .iter()
            .map(|s| (self.workload.step(index, s.api, &s.model, &s.request, &s.texts, stage.numbers), self.client_of_api(s.api)))
            .collect();
        Some(Arc::new(taskrun::TaskRun::new(def, builders, self.scenario.pricing.clone(), stage.max_requests_in_flight)))
    }

    /// Runs one stage. Ok: go on, with the stage's figures when `judge` asked for them;
    /// Err: the run ends here (a stop, an abort, or nobody listening).
    async fn run_stage(&self, index: usize, stage: &Stage, judge: bool) -> Result<Option<Arc<StageStats>>, EngineEnd> {
        // A stop that came since the caller checked still lets the stage start: it ends
        // at once, marked stopped, so every stage announced has a result.
        let interrupted = EngineEnd { interrupted: true, ..EngineEnd::default() };
        let info = Self::stage_info(&self.scenario, index, stage);
        if self.events.send(EngineEvent::StageStarted(info)).await.is_err() {
            return Err(interrupted);
        }
        let ctx = self.stage_ctx(index, stage).await;
        if let Some(f) = &self.before_stage {
            f(index).await;
        }
        if stage.warmup > 0 {
            let warmup = Arc::new(Phase::new(&ctx, Part::Warmup, (0, stage.warmup), (None, None)));
            drive(stage.load, Parts { ramp: None, window: warmup, cooldown: None }).await;
        }
        if stage.warmup_auto {
            // Numbered apart, as a ramp's (which it does not go with).
            let cap = Instant::now().checked_add(AUTO_WARMUP_MAX);
            let warmup = Arc::new(Phase::new(&ctx, Part::Warmup, (RAMP_NUMBERS, u64::MAX), (None, cap)));
            self.watch_part(index, Some(Watched::Warmup), &warmup);
            drive(stage.load, Parts { ramp: None, window: warmup, cooldown: None }).await;
        }
        // The measured window opens after the ramp, if any. Durations are capped at
        // validation, so this never overflows in practice; if it did, the stage
        // would simply run to its request count.
        let t0 = Instant::now() + stage.ramp.unwrap_or_default();
        let end = stage.requests.map_or(u64::MAX, |n| stage.warmup.saturating_add(n));
        let mut window = Phase::new(&ctx, Part::Window, (stage.warmup, end), (Some(t0), stage.duration.and_then(|d| t0.checked_add(d))));
        window.abort = self.scenario.abort_on_error_rate.map(|t| AbortWatch::for_load(t, stage.load));
        window.dropped = stage.stop_on_saturation.then(CancellationToken::new);
        let phase = Arc::new(window);
        let watched = (stage.until.is_some() || stage.stop_on_saturation).then_some(Watched::Window);
        self.watch_part(index, watched, &phase);
        // The cooldown stops with the window (a stop or an abort), or once its last
        // request has ended, or when its time is up.
        let cooldown = stage.cooldown.map(|len| {
            let mut c = Phase::new(&ctx, Part::Cooldown, (COOLDOWN_NUMBERS, u64::MAX), (None, None));
            c.halt = phase.drained.child_token();
            (len, Arc::new(c))
        });
        // The ramp's prompts are numbered apart, so the window does not resend them (a
        // server's prompt cache would flatter it); so are the cooldown's.
        let ramp = stage.ramp.map(|r| (r, Arc::new(Phase::new(&ctx, Part::Warmup, (RAMP_NUMBERS, u64::MAX), (None, Some(t0))))));
        let measuring = async {
            // A stop during the ramp must not wait for its end.
            tokio::select! {
                _ = tokio::time::sleep_until(t0.into()) => {}
                _ = self.stop.soft.cancelled() => {}
            }
            let gauges = phase.gauges.clone();
            // t0 on the wall clock (a stop may open the window early: then it is now).
            let opened = std::time::SystemTime::now() - Instant::now().saturating_duration_since(t0);
            // The server's tokenizer is not asked while the server is measured.
            if let Some(remote) = self.scenario.prompts.tokenizer().remote() {
                remote.hold(true);
            }
            let _ = self.events.send(EngineEvent::Measuring { gauges, opened }).await;
        };
        let parts = Parts { ramp, window: phase.clone(), cooldown };
        match parts.ramp {
            Some(_) => {
                tokio::join!(drive(stage.load, parts), measuring);
            }
            None => {
                measuring.await;
                drive(stage.load, parts).await;
            }
        }
        self.finish_stage(stage, &phase, t0, judge).await
    }

    /// Tells the aggregator the stage's window has ended; says when the run must end
    /// here (a stop, or `abort_on_error_rate`).
    async fn finish_stage(&self, stage: &Stage, phase: &Phase, t0: Instant, judge: bool) -> Result<Option<Arc<StageStats>>, EngineEnd> {
        let interrupted = EngineEnd { interrupted: true, ..EngineEnd::default() };
        // To the window's last request, not the cooldown's.
        let wall = phase.ended.get().map_or_else(|| t0.elapsed(), |e| e.saturating_duration_since(t0));
        let stopped = phase.tally.was_cut_short();
        let started = phase.gauges.started();
        let verdict = phase.abort.as_ref().and_then(|a| a.verdict().map(|v| (v, a.threshold)));
        let aborted = verdict.is_some_and(|((_, _, mid), _)| mid);
        let unsent = phase.tally.unsent();
        let schedule = phase.tally.schedule.get().copied();
        // The window is closed: its replies may be counted by the server's tokenizer,
        // which the aggregator does before it answers (the next stage waits for it).
        let remote = self.scenario.prompts.tokenizer().remote();
        if let Some(remote) = remote {
            remote.hold(false);
        }
        let (reply, figures) = match judge || remote.is_some() {
            true => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let finished = EngineEvent::StageFinished { wall, started, interrupted: stopped, aborted, unsent, schedule, reply };
        if self.events.send(finished).await.is_err() || stopped {
            return Err(interrupted);
        }
        if let Some(((error_rate, requests, mid_stage), threshold)) = verdict {
            let aborted = Aborted { stage: stage.name.clone(), error_rate, requests, mid_stage, threshold };
            // Short enough for the dashboard's gauge line.
            let why = format!("aborted at {:?}: {:.1}% errors > {:.1}%", aborted.stage, error_rate * 100.0, threshold * 100.0);
            let _ = self.events.send(EngineEvent::RunAborted { why }).await;
            return Err(EngineEnd { interrupted: false, aborted: Some(aborted), ..EngineEnd::default() });
        }
        match figures {
            Some(rx) => rx.await.map(|f| Some(f).filter(|_| judge)).map_err(|_| interrupted),
            None => Ok(None),
        }
    }
}

/// Runs a stage's parts with its kind of load.
async fn drive(load: Load, parts: Parts) {
    let replay = parts.window.ctx.requests.replay().cloned();
    if let Some(run) = parts.window.ctx.task.clone() {
        return match load {
            Load::Closed { concurrency } => task::closed_tasks(concurrency, run, parts).await,
            Load::Open { rate, arrival, seed, .. } => task::open_tasks(rate, arrival, seed, run, parts).await,
        };
    }
    if let Some(conv) = parts.window.ctx.conversation.clone() {
        return match load {
            Load::Closed { concurrency } => session::closed_sessions(concurrency, conv, parts).await,
            Load::Open { rate, arrival, max_in_flight, seed } => {
                session::open_sessions(rate, arrival, max_in_flight, seed, conv, parts).await
            }
        };
    }
    match load {
        Load::Open { arrival: Arrival::Trace { speed }, max_in_flight, .. } if let Some(replay) = replay => {
            trace::trace_parts(replay, speed, max_in_flight, parts).await
        }
        Load::Closed { concurrency } => closed::closed_loop(concurrency, parts).await,
        Load::Open { rate, arrival, max_in_flight, seed } => open::open_parts(rate, arrival, max_in_flight, seed, parts).await,
    }
}

/// A worker's panic is the engine's: carried on, not swallowed.
fn rethrow(res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}
