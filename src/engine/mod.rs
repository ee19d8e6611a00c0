//! The load engine: runs stages in order and turns every started request into exactly
//! one RequestRecord sent to the aggregator. It never knows who watches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::client::{Client, Outcome, RequestRecord};
use crate::metrics::{Attempts, EngineEvent, NONE_WAITING, Part, StageInfo};
use crate::ratelimit::Limiter;
use crate::scenario::{Load, RetryPolicy, Scenario, Stage};

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
    /// Warmup and ramp, the measured window, or the cooldown after it.
    part: Part,
    /// Next request number (within the stage).
    next: AtomicU64,
    /// Request numbers at or past this are not sent.
    end: u64,
    deadline: Option<Instant>,
    /// When the phase's window opens: an open loop's schedule counts from here, so its
    /// last arrival falls before the deadline however late the loop itself started.
    opens: Option<Instant>,
    started: Arc<AtomicU64>,
    /// Set when a stop cut the phase short (work was left undone).
    stopped: AtomicBool,
    /// Start nothing more: cancelled by a stop (it is a child of `stop.soft`) or by
    /// `abort_on_error_rate` tripping.
    halt: CancellationToken,
    /// Cancelled once the phase starts no more requests (its schedule or count is
    /// done, or it was halted): a cooldown's clock starts then.
    closed: CancellationToken,
    /// When the window ended: its deadline, or when its requests ran out.
    closed_at: std::sync::OnceLock<Instant>,
    /// Cancelled, and `ended` set, once every request of the phase has ended.
    drained: CancellationToken,
    ended: std::sync::OnceLock<Instant>,
    /// The same, in µs from `opens`, for the live view (`NONE_WAITING` until then).
    ended_us: Arc<AtomicU64>,
    /// Open loop: arrivals due inside the window that could not be sent before it
    /// closed (every slot under `max_in_flight` was taken).
    unsent: AtomicU64,
    /// Open loop: when the arrival waiting for a free slot was due (µs from `opens`),
    /// or `NONE_WAITING`; read live by the aggregator.
    waiting: Arc<AtomicU64>,
    /// Open loop: (first dispatch → last, first arrival due → last due, counting the
    /// unsent); unset for a closed loop.
    schedule: std::sync::OnceLock<(Duration, Duration)>,
    retry: RetryPolicy,
    /// Shared by the stage's workers (warmup and measured alike).
    limiter: Option<Arc<Limiter>>,
    /// Tokens one request weighs for a tokens-per-minute limit: max_tokens, plus the
    /// prompt's own count.
    tpm_max_tokens: Option<u64>,
    /// `abort_on_error_rate`, for the measured phase: finished and failed so far, and
    /// set once the rate is passed.
    abort: Option<AbortWatch>,
}

/// Counts a measured phase's outcomes to stop it once its error rate passes the
/// scenario's `abort_on_error_rate`.
struct AbortWatch {
    threshold: f64,
    /// Finished requests needed before the rate is judged mid-stage.
    min_done: u64,
    /// (finished, failed), under one lock so the rate is never read half-updated.
    counts: std::sync::Mutex<(u64, u64)>,
    /// The rate and the finished count when it tripped.
    tripped: std::sync::Mutex<Option<(f64, u64)>>,
}

/// Fewest finished requests before a stage is judged by its error rate mid-way: one
/// early failure must not abort a run.
const ABORT_MIN_REQUESTS: u64 = 20;

impl AbortWatch {
    fn new(threshold: f64, concurrency: u32) -> AbortWatch {
        // The first requests to finish are the fastest, and failures are often fast
        // (429s, refused connections): judging before every worker has finished two
        // would read a storm into a normal error rate.
        let min_done = ABORT_MIN_REQUESTS.max(2 * u64::from(concurrency));
        AbortWatch { threshold, min_done, counts: Default::default(), tripped: Default::default() }
    }

    /// Counts one outcome; true when this one trips the threshold.
    fn count(&self, failed: bool) -> bool {
        let (done, failed) = {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.0 += 1;
            c.1 += u64::from(failed);
            *c
        };
        let rate = failed as f64 / done as f64;
        if done < self.min_done || rate <= self.threshold {
            return false;
        }
        let mut t = self.tripped.lock().unwrap_or_else(|e| e.into_inner());
        t.is_none() && t.replace((rate, done)).is_none()
    }

    /// Whether the phase must end the run: the rate it tripped at, or the whole
    /// phase's when that passes the threshold, with the number of requests judged.
    fn verdict(&self) -> Option<(f64, u64, bool)> {
        if let Some((rate, done)) = *self.tripped.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some((rate, done, true));
        }
        let (done, failed) = *self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let rate = if done == 0 { 0.0 } else { failed as f64 / done as f64 };
        (rate > self.threshold).then_some((rate, done, false))
    }
}

/// Why a run ended before its last stage: `abort_on_error_rate` was passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Aborted {
    pub stage: String,
    /// The error rate judged, over `requests` finished requests.
    pub error_rate: f64,
    pub requests: u64,
    /// Judged mid-stage (the stage was cut short), or at its end.
    pub mid_stage: bool,
    pub threshold: f64,
}

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run aborted: stage {:?} {} with an error rate of {:.1}% over {} finished requests, above abort_on_error_rate {:.1}%",
            self.stage,
            if self.mid_stage { "cut short" } else { "ended" },
            self.error_rate * 100.0,
            self.requests,
            self.threshold * 100.0
        )
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
            rate_limit: stage.rate_limit,
            rate: stage.load.rate(),
            arrival: match stage.load {
                Load::Open { arrival, .. } => Some(arrival.name()),
                Load::Closed { .. } => None,
            },
        }
    }

    fn phase(
        &self,
        stage: &Stage,
        limiter: &Option<Arc<Limiter>>,
        part: Part,
        (first, end): (u64, u64),
        (opens, deadline): (Option<Instant>, Option<Instant>),
    ) -> Phase {
        let warmup = part != Part::Window;
        Phase {
            scenario: self.scenario.clone(),
            client: self.client.clone(),
            events: self.events.clone(),
            stop: self.stop.clone(),
            model: self.scenario.stage_model(stage).to_string(),
            part,
            next: AtomicU64::new(first),
            end,
            deadline,
            opens,
            started: Arc::new(AtomicU64::new(0)),
            stopped: AtomicBool::new(false),
            halt: self.stop.soft.child_token(),
            closed: CancellationToken::new(),
            closed_at: std::sync::OnceLock::new(),
            drained: CancellationToken::new(),
            ended: std::sync::OnceLock::new(),
            ended_us: Arc::new(AtomicU64::new(NONE_WAITING)),
            unsent: AtomicU64::new(0),
            waiting: Arc::new(AtomicU64::new(NONE_WAITING)),
            schedule: std::sync::OnceLock::new(),
            retry: stage.retry.clone(),
            limiter: limiter.clone(),
            tpm_max_tokens: stage.rate_limit.tpm.map(|_| self.scenario.request.max_tokens.map_or(0, u64::from)),
            abort: self.scenario.abort_on_error_rate.filter(|_| !warmup).map(|t| {
                // Judged once every request in flight could have ended twice: for an open
                // loop that is two seconds of arrivals, not its (large) cap.
                let in_flight = match stage.load {
                    Load::Closed { concurrency } => concurrency,
                    Load::Open { rate, max_in_flight, .. } => (rate.ceil() as u32).min(max_in_flight),
                };
                AbortWatch::new(t, in_flight)
            }),
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
        let slo = self.scenario.slo.map(|_| sweep.slo_quantile);
        let mut plan = crate::sweep::AutoPlan::new(sweep.kind, auto, sweep.knee_gain, slo);
        let mut ran = Vec::new();
        while let Some(load) = plan.next_point() {
            // Checked before the point is recorded: a point is listed only if it ran.
            if self.stop.soft.is_cancelled() {
                return EngineEnd { interrupted: true, swept: ran, ..EngineEnd::default() };
            }
            let mut stage = sweep.stage(load, ran.len());
            // A point named like an explicit stage keeps the rows of the table apart.
            if self.scenario.stages.iter().any(|s| s.name == stage.name) {
                stage.name.push_str(" (sweep)");
            }
            // Two rates apart in the fourth digit would share a name.
            if ran.iter().any(|s: &Stage| s.name == stage.name) {
                stage.name.push_str(&format!(" #{}", ran.len() + 1));
            }
            let index = self.scenario.stages.len() + ran.len();
            ran.push(stage.clone());
            match self.run_stage(index, &stage, true).await {
                Ok(Some(stats)) => plan.record(crate::sweep::Measured { load, throughput: stats.ok_per_s(), slo_met: stats.slo_share() }),
                Ok(None) => return EngineEnd { swept: ran, ..EngineEnd::default() },
                Err(end) => return EngineEnd { swept: ran, ..end },
            }
        }
        EngineEnd { swept: ran, ..EngineEnd::default() }
    }

    /// Runs one stage. Ok: go on, with the stage's figures when `judge` asked for them;
    /// Err: the run ends here (a stop, an abort, or nobody listening).
    async fn run_stage(&self, index: usize, stage: &Stage, judge: bool) -> Result<Option<Arc<crate::metrics::StageStats>>, EngineEnd> {
        // A stop that came since the caller checked still lets the stage start: it ends
        // at once, marked stopped, so every stage announced has a result.
        let interrupted = EngineEnd { interrupted: true, ..EngineEnd::default() };
        let info = Self::stage_info(&self.scenario, index, stage);
        if self.events.send(EngineEvent::StageStarted(info)).await.is_err() {
            return Err(interrupted);
        }
        let limiter = Limiter::new(stage.rate_limit.rpm, stage.rate_limit.tpm, Instant::now()).map(Arc::new);
        if stage.warmup > 0 {
            let warmup = Arc::new(self.phase(stage, &limiter, Part::Warmup, (0, stage.warmup), (None, None)));
            drive(stage.load, Parts { ramp: None, window: warmup, cooldown: None }).await;
        }
        // The measured window opens after the ramp, if any. Durations are capped at
        // validation, so this never overflows in practice; if it did, the stage
        // would simply run to its request count.
        let t0 = Instant::now() + stage.ramp.unwrap_or_default();
        let end = stage.requests.map_or(u64::MAX, |n| stage.warmup.saturating_add(n));
        let window = (Some(t0), stage.duration.and_then(|d| t0.checked_add(d)));
        let phase = Arc::new(self.phase(stage, &limiter, Part::Window, (stage.warmup, end), window));
        // The cooldown stops with the window (a stop or an abort), or once its last
        // request has ended, or when its time is up.
        let cooldown = stage.cooldown.map(|len| {
            let mut c = self.phase(stage, &limiter, Part::Cooldown, (COOLDOWN_NUMBERS, u64::MAX), (None, None));
            c.halt = phase.drained.child_token();
            (len, Arc::new(c))
        });
        // The ramp's prompts are numbered apart, so the window does not resend them (a
        // server's prompt cache would flatter it); so are the cooldown's.
        let ramp = stage.ramp.map(|r| (r, Arc::new(self.phase(stage, &limiter, Part::Warmup, (RAMP_NUMBERS, u64::MAX), (None, Some(t0))))));
        let measuring = async {
            // A stop during the ramp must not wait for its end.
            tokio::select! {
                _ = tokio::time::sleep_until(t0.into()) => {}
                _ = self.stop.soft.cancelled() => {}
            }
            let _ = self
                .events
                .send(EngineEvent::Measuring {
                    started: phase.started.clone(),
                    waiting: phase.waiting.clone(),
                    ended: phase.ended_us.clone(),
                })
                .await;
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
        // To the window's last request, not the cooldown's.
        let wall = phase.ended.get().map_or_else(|| t0.elapsed(), |e| e.saturating_duration_since(t0));
        let stopped = phase.stopped.load(Ordering::SeqCst);
        let started = phase.started.load(Ordering::SeqCst);
        let verdict = phase.abort.as_ref().and_then(|a| a.verdict().map(|v| (v, a.threshold)));
        let aborted = verdict.is_some_and(|((_, _, mid), _)| mid);
        let unsent = phase.unsent.load(Ordering::SeqCst);
        let schedule = phase.schedule.get().copied();
        let (reply, figures) = match judge {
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
            Some(rx) => rx.await.map(Some).map_err(|_| interrupted),
            None => Ok(None),
        }
    }
}

/// Request numbers of ramp requests start here, far from the window's.
const RAMP_NUMBERS: u64 = 1 << 48;

/// Request numbers of cooldown requests start here, apart from the window's and the ramp's.
const COOLDOWN_NUMBERS: u64 = 2 << 48;

/// The parts of a stage's load, run back to back by the same workers (closed loop) or
/// under one cap (open loop): the ramp's load rises and the window takes over without a
/// pause; after it the cooldown keeps the load on while the window's last requests end.
struct Parts {
    ramp: Option<(Duration, Arc<Phase>)>,
    window: Arc<Phase>,
    cooldown: Option<(Duration, Arc<Phase>)>,
}

impl Phase {
    /// The phase starts no more requests. It ended at its deadline, unless its requests
    /// ran out first (an open loop's dispatcher stops up to one gap before the deadline).
    fn close(&self) {
        let now = Instant::now();
        let at = match self.deadline {
            Some(d) if self.next.load(Ordering::Relaxed) < self.end => d,
            _ => now,
        };
        let _ = self.closed_at.set(at);
        self.closed.cancel();
    }

    /// When it closed (now, if it has not).
    fn closed_at(&self) -> Instant {
        self.closed_at.get().copied().unwrap_or_else(Instant::now)
    }

    /// Every request of the phase has ended.
    fn drain(&self) {
        let now = Instant::now();
        let _ = self.ended.set(now);
        if let Some(opens) = self.opens {
            self.ended_us.store(now.saturating_duration_since(opens).as_micros() as u64, Ordering::Relaxed);
        }
        self.close();
        self.drained.cancel();
    }
}

/// The cooldown's clock: from when the window closes, for its length at most.
async fn cooldown_timer(window: &Phase, cooldown: &Option<(Duration, Arc<Phase>)>) {
    if let Some((len, c)) = cooldown {
        window.closed.cancelled().await;
        tokio::select! {
            _ = tokio::time::sleep_until((window.closed_at() + *len).into()) => c.halt.cancel(),
            // A stop or an abort ends the cooldown too.
            _ = window.halt.cancelled() => c.halt.cancel(),
            _ = c.halt.cancelled() => {}
        }
    }
}

/// Runs a stage's parts with its kind of load.
async fn drive(load: Load, parts: Parts) {
    match load {
        Load::Closed { concurrency } => closed_loop(concurrency, parts).await,
        Load::Open { rate, arrival, max_in_flight, seed } => {
            let Parts { ramp, window, cooldown } = parts;
            // One cap for every part, so their overlap never exceeds it.
            let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight as usize));
            let rising = async {
                if let Some((len, p)) = &ramp {
                    open_loop(p.clone(), crate::arrivals::Arrivals::ramp(rate, *len), slots.clone()).await;
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
                open_loop(window.clone(), crate::arrivals::Arrivals::new(rate, arrival, seed), slots.clone()).await;
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
                        let arrivals = crate::arrivals::Arrivals::new(rate, arrival, seed ^ COOLDOWN_NUMBERS);
                        open_loop(c.clone(), arrivals, slots.clone()).await;
                    };
                    if !window.halt.is_cancelled() {
                        tokio::join!(schedule, cooldown_timer(&window, &cooldown));
                    }
                }
            };
            tokio::join!(rising, steady, cooling);
        }
    }
}

/// Requests on a schedule, whether or not earlier ones have finished: each is due at
/// its arrival time and is timed from it, so a wait inside llmload (every slot under
/// `max_in_flight` taken, a late timer) is part of its latency, not hidden by it.
async fn open_loop(p: Arc<Phase>, mut arrivals: crate::arrivals::Arrivals, slots: Arc<tokio::sync::Semaphore>) {
    let mut set = JoinSet::new();
    let t0 = p.opens.unwrap_or_else(Instant::now);
    let (mut last_dispatch, mut last_due) = (t0, t0);
    // A schedule past any instant we can represent has ended.
    while let Some(due) = t0.checked_add(arrivals.next_offset()) {
        if p.deadline.is_some_and(|d| due >= d) || p.next.load(Ordering::Relaxed) >= p.end {
            break;
        }
        // The timer only when the arrival is ahead: at high rates several are due per
        // timer tick, and those already due go out at once.
        if due > Instant::now() {
            tokio::select! {
                biased;
                _ = p.halt.cancelled() => break,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
        let deadline = async {
            match p.deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        // Since when the arrival waiting for a slot is due: live, the dashboard can say
        // the stage is behind its rate before the window ends.
        p.waiting.store(due.saturating_duration_since(t0).as_micros() as u64, Ordering::Relaxed);
        let permit = tokio::select! {
            biased;
            _ = p.halt.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            // Due inside the window but no slot before it closed: not sent, counted.
            _ = deadline => {
                // It takes its request number like any other, so `requests` is honoured.
                if p.next.fetch_add(1, Ordering::Relaxed) < p.end {
                    p.unsent.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
        };
        p.waiting.store(NONE_WAITING, Ordering::Relaxed);
        let i = p.next.fetch_add(1, Ordering::Relaxed);
        if i >= p.end {
            break;
        }
        (last_dispatch, last_due) = (Instant::now(), due);
        let phase = p.clone();
        set.spawn(async move {
            let _slot = permit;
            run_one(&phase, i, Some(due)).await;
        });
        // Reap as we go, so a long stage keeps no finished task around.
        while let Some(res) = set.try_join_next() {
            rethrow(res);
        }
    }
    p.waiting.store(NONE_WAITING, Ordering::Relaxed);
    // Arrivals due before the deadline that the cap left unsent are counted too.
    if let Some(d) = p.deadline
        && !p.halt.is_cancelled()
    {
        loop {
            let due = t0.checked_add(arrivals.next_offset()).unwrap_or(d);
            if due >= d || p.next.fetch_add(1, Ordering::Relaxed) >= p.end {
                break;
            }
            p.unsent.fetch_add(1, Ordering::SeqCst);
            last_due = due;
        }
    }
    if p.stop.soft.is_cancelled() && !p.exhausted() {
        p.stopped.store(true, Ordering::SeqCst);
    }
    let _ = p.schedule.set((last_dispatch - t0, last_due - t0));
    p.close();
    while let Some(res) = set.join_next().await {
        rethrow(res);
    }
}

fn rethrow(res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// N workers, each sending its next request as soon as its last one ends, until the
/// request numbers run out, the deadline passes or the run is stopped.
/// With a ramp, worker k of N joins at k/N of it and, when the ramp ends, goes on
/// into the window as soon as its last ramp request is done. With a cooldown, a worker
/// done with the window goes on sending until the window's last request has ended.
async fn closed_loop(concurrency: u32, parts: Parts) {
    let Parts { ramp, window, cooldown } = parts;
    let workers = u64::from(concurrency).min(window.end.saturating_sub(window.next.load(Ordering::Relaxed))).max(1);
    // Workers still in the window: the last one out has seen its last request end.
    let left = Arc::new(AtomicU64::new(workers));
    let mut set = JoinSet::new();
    for k in 0..workers {
        let (ramp, window, cooldown, left) = (ramp.clone(), window.clone(), cooldown.clone(), left.clone());
        set.spawn(async move {
            if let Some((len, p)) = ramp {
                let delay = len.mul_f64(k as f64 / workers as f64);
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
            if left.fetch_sub(1, Ordering::SeqCst) == 1 {
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

async fn worker(p: Arc<Phase>) {
    loop {
        if p.stop.soft.is_cancelled() {
            if !p.exhausted() {
                p.stopped.store(true, Ordering::SeqCst);
            }
            return;
        }
        if p.halt.is_cancelled() || p.deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let i = p.next.fetch_add(1, Ordering::Relaxed);
        if i >= p.end || !run_one(&p, i, None).await {
            return;
        }
    }
}

/// Sends request `i` (retries included) and hands its record on. `due`: the open
/// loop's scheduled start, from which its latency then counts. False when it was not
/// started (no limiter slot before the deadline, or a stop) or the run is over.
async fn run_one(p: &Phase, i: u64, due: Option<Instant>) -> bool {
    {
        let prompt = p.scenario.prompts.prompt(i);
        let weight = p.tpm_max_tokens.map_or(1, |max| prompt.tokens() + max);
        let mut att = Attempts::default();
        // A request whose slot falls past the deadline is never started, so never counted.
        if !slot(p, weight, p.deadline, &mut att).await {
            // Request i was taken but never sent: a stop before the deadline left work
            // undone, whatever `next` says.
            if p.stop.soft.is_cancelled() && p.deadline.is_none_or(|d| Instant::now() < d) {
                p.stopped.store(true, Ordering::SeqCst);
            } else if due.is_some() && !p.halt.is_cancelled() {
                // An arrival the rate limiter had no slot for before the window closed:
                // due, not sent, and counted as such.
                p.unsent.fetch_add(1, Ordering::SeqCst);
            }
            return false;
        }
        p.started.fetch_add(1, Ordering::SeqCst);
        let mut record = attempts(p, &prompt, i, weight, &mut att).await;
        if let Some(due) = due {
            // Timed from the schedule: the wait for a slot or a late timer is the user's.
            let lag = att.first_send.map_or(Duration::ZERO, |t| t.saturating_duration_since(due));
            att.lag = Some(lag);
            record = finish(record, lag);
        }
        // Checked here, in parallel across workers; only the verdict travels on.
        if let Some(expect) = &p.scenario.check
            && let Some(content) = record.content.take()
            && record.outcome == Outcome::Ok
        {
            record.check = Some(crate::check::check(&content, expect));
        }
        // Counted here on the same terms as the completion: streams, or no usage.
        if record.client_completion_tokens.is_some() {
            record.client_prompt_tokens = Some(prompt.tokens());
        }
        if let Some(a) = &p.abort
            && record.outcome != Outcome::Cancelled
            && a.count(matches!(record.outcome, Outcome::Failed(_)))
        {
            p.halt.cancel();
        }
        p.events.send(EngineEvent::Record { part: p.part, record, attempts: att }).await.is_ok()
    }
}

/// Waits for the rate limiter's next slot for a request of `weight` tokens. False when
/// there is none before `deadline`, or a stop (or an abort) came first.
async fn slot(p: &Phase, weight: u64, deadline: Option<Instant>, att: &mut Attempts) -> bool {
    let Some(limiter) = &p.limiter else {
        return !p.halt.is_cancelled();
    };
    let now = Instant::now();
    let Some(at) = limiter.reserve(now, weight, deadline) else {
        return false;
    };
    if at > now {
        att.limited = true;
        let halted = tokio::select! {
            biased;
            _ = p.halt.cancelled() => true,
            _ = tokio::time::sleep_until(at.into()) => false,
        };
        att.limiter_wait += now.elapsed();
        if halted {
            return false;
        }
    }
    !p.halt.is_cancelled()
}

/// Sends request `i` until it succeeds, fails in a way the policy does not retry, or
/// runs out of attempts; a stop, an abort or `retry.after_window` ends the retries early. The record is the final
/// attempt's, its timings counted from the first attempt's send.
async fn attempts(p: &Phase, prompt: &crate::scenario::Prompt, i: u64, weight: u64, att: &mut Attempts) -> RequestRecord {
    let mut first = None;
    // Seeded per request number: the jitter is reproducible and needs no shared state.
    let mut rng: Option<StdRng> = None;
    loop {
        let body = p.client.body(&p.model, prompt, &p.scenario.request);
        let t = Instant::now();
        let first_send = *first.get_or_insert(t);
        att.first_send = Some(first_send);
        // A cooldown request is dropped when the cooldown ends: it is never measured,
        // and waiting for it would hold up the next stage.
        let cut = async {
            match p.part {
                Part::Cooldown => p.halt.cancelled().await,
                _ => std::future::pending().await,
            }
        };
        let rec = tokio::select! {
            biased;
            _ = p.stop.hard.cancelled() => {
                p.stopped.store(true, Ordering::SeqCst);
                RequestRecord::cancelled(t.elapsed())
            }
            _ = cut => RequestRecord::cancelled(t.elapsed()),
            r = p.client.send(body) => r,
        };
        att.last = rec.latency;
        let retry = match rec.outcome {
            Outcome::Failed(kind) if att.earlier.len() + 1 < p.retry.max_attempts as usize && p.retry.retries(kind) => Some(kind),
            _ => None,
        };
        // Retries may start this long after the window closes; later ones are not sent.
        let retry_deadline = p.deadline.map(|d| d + p.retry.after_window);
        let Some(kind) = retry else {
            // From the first send: with retries, the user waited for all of them.
            return finish(rec, t - first_send);
        };
        // Full jitter: a uniform draw below the attempt's cap, so failed requests do not
        // come back in step.
        let n = att.earlier.len() as u32;
        let cap = p.retry.backoff.saturating_mul(1u32 << n.min(30)).min(p.retry.max_backoff);
        let rng = rng.get_or_insert_with(|| StdRng::seed_from_u64(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let jitter = cap.mul_f64(rng.random::<f64>());
        // The server's word is a floor, never cut short (up to max_retry_after); the
        // jitter goes on top, or every request told "in 50 ms" returns at that instant
        // and all but one are refused again.
        let asked = rec.retry_after.filter(|_| p.retry.respect_retry_after).map(|a| a.min(p.retry.max_retry_after));
        let wait = asked.map_or(jitter, |a| a.saturating_add(jitter));
        // A request started inside the window is carried on, retries included, like one
        // in flight when the window closes, for up to `after_window` past it. A stop, an
        // abort or that limit ends it early: it keeps this failure, the retry not sent.
        att.retry_not_sent = true;
        let resume = Instant::now() + wait;
        if retry_deadline.is_some_and(|d| resume >= d) {
            return finish(rec, t - first_send);
        }
        tokio::select! {
            biased;
            _ = p.halt.cancelled() => return finish(rec, t - first_send),
            _ = tokio::time::sleep_until(resume.into()) => {}
        }
        if !slot(p, weight, retry_deadline, att).await {
            return finish(rec, t - first_send);
        }
        att.retry_not_sent = false;
        att.retry_after_waits += u32::from(asked.is_some());
        att.earlier.push(crate::metrics::FailedAttempt { kind, latency: rec.latency, status: rec.status });
    }
}

/// A final record whose timings count from the first send, `offset` before its own.
fn finish(mut rec: RequestRecord, offset: Duration) -> RequestRecord {
    rec.latency += offset;
    rec.ttft = rec.ttft.map(|x| x + offset);
    rec
}
