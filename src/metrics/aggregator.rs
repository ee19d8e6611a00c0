//! The aggregator task: the only owner of the figures. The engine sends it events; it
//! publishes a Snapshot on a watch channel at a fixed interval, so watchers (progress
//! line, dashboard) never touch engine state or share a lock with the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::info::{Attempts, NONE_WAITING, Part, StageInfo};
use super::stage::{StageStats, output_tokens};
use crate::model::RequestRecord;
/// Engine → aggregator, in order: StageStarted, warmup records, Measuring, measured
/// records, StageFinished; then the next stage.
#[derive(Debug)]
pub enum EngineEvent {
    StageStarted(StageInfo),
    /// The measured window opens; `started` counts measured requests sent so far.
    Measuring {
        started: Arc<AtomicU64>,
        /// Open loop: when the arrival waiting for a slot was due, in µs from the
        /// window's opening; `NONE_WAITING` when none waits.
        waiting: Arc<AtomicU64>,
        /// When the window's last request ended, in µs from its opening; `NONE_WAITING`
        /// until then. A cooldown runs on after it, outside the window's figures.
        ended: Arc<AtomicU64>,
    },
    Record {
        part: Part,
        record: RequestRecord,
        attempts: Attempts,
    },
    /// `interrupted`: the stage was stopped early by the user; `aborted`: by
    /// `abort_on_error_rate`.
    StageFinished {
        wall: Duration,
        started: u64,
        interrupted: bool,
        aborted: bool,
        /// Open loop: arrivals due in the window that no slot was free for, and the
        /// spans (first → last) of the dispatches and of the arrivals due.
        unsent: u64,
        schedule: Option<(Duration, Duration)>,
        /// The stage's figures are sent back here once it is closed: an automatic
        /// sweep chooses its next point from them.
        reply: Option<tokio::sync::oneshot::Sender<Arc<StageStats>>>,
    },
    /// A multi-turn session ended, after `turns` turns sent.
    SessionEnded {
        part: Part,
        end: super::sessions::SessionEnd,
        turns: u32,
        duration: Duration,
    },
    /// `abort_on_error_rate` ends the run after the stage just finished; why, in words.
    RunAborted {
        why: String,
    },
}

/// The live view of a run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub finished: Vec<Arc<StageStats>>,
    /// The running stage, with `started` read at publish time.
    pub current: Option<StageStats>,
    pub total_stages: usize,
    /// True once the engine has sent everything.
    pub done: bool,
    /// `abort_on_error_rate` ended the run: why, in words.
    pub aborted: Option<String>,
    /// Time since the run started.
    pub elapsed: Duration,
}

pub struct Aggregator {
    rx: mpsc::Receiver<EngineEvent>,
    tx: watch::Sender<Arc<Snapshot>>,
    interval: Duration,
    total_stages: usize,
    started: Instant,
    aborted: Option<String>,
}

/// Channel depth: deep enough that workers never wait on a busy aggregator, bounded so
/// memory stays flat even if it stalls.
const CHANNEL_DEPTH: usize = 1 << 14;

/// The running stage: its figures, and once measuring, the engine's started counter
/// and when the measured window opened.
struct Live {
    stats: StageStats,
    measuring: Option<Measuring>,
}

/// The engine's live counters of a measured window, and when it opened.
struct Measuring {
    started: Arc<AtomicU64>,
    waiting: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
    at: Instant,
}

impl Live {
    /// The figures with `started` and the window's length read now.
    fn view(&self) -> StageStats {
        let mut s = self.stats.clone();
        if let Some(m) = &self.measuring {
            s.started = m.started.load(Ordering::SeqCst);
            s.wall = match m.ended.load(Ordering::Relaxed) {
                NONE_WAITING => m.at.elapsed(),
                us => Duration::from_micros(us).min(m.at.elapsed()),
            };
            let due = m.waiting.load(Ordering::Relaxed);
            if due != NONE_WAITING {
                s.behind = s.wall.saturating_sub(Duration::from_micros(due));
            }
        }
        s
    }
}

impl Aggregator {
    pub fn new(total_stages: usize, interval: Duration) -> (Aggregator, mpsc::Sender<EngineEvent>, watch::Receiver<Arc<Snapshot>>) {
        let (etx, erx) = mpsc::channel(CHANNEL_DEPTH);
        let (stx, srx) = watch::channel(Arc::new(Snapshot { total_stages, ..Snapshot::default() }));
        (Aggregator { rx: erx, tx: stx, interval, total_stages, started: Instant::now(), aborted: None }, etx, srx)
    }

    /// Runs until the engine drops its sender; returns every stage's figures.
    pub async fn run(mut self) -> Vec<StageStats> {
        let mut finished: Vec<Arc<StageStats>> = Vec::new();
        let mut current: Option<Live> = None;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                n = self.rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    let mut changed_stage = false;
                    for ev in batch.drain(..) {
                        match ev {
                            EngineEvent::StageStarted(info) => {
                                let mut stats = StageStats::new(info);
                                stats.series.start(Instant::now());
                                current = Some(Live { stats, measuring: None });
                                changed_stage = true;
                            }
                            EngineEvent::Measuring { started, waiting, ended } => {
                                if let Some(live) = &mut current {
                                    live.measuring = Some(Measuring { started, waiting, ended, at: Instant::now() });
                                }
                            }
                            EngineEvent::Record { part, record, attempts } => {
                                if let Some(live) = &mut current {
                                    match part {
                                        Part::Warmup => live.stats.warmup_done += 1,
                                        Part::Cooldown => live.stats.cooldown_done += 1,
                                        Part::Window => {
                                            live.stats.record(&record);
                                            live.stats.record_attempts(&record, &attempts);
                                        }
                                    }
                                    let in_flight = live.measuring.as_ref().filter(|_| part == Part::Window).map_or(0, |m| {
                                        m.started.load(Ordering::Relaxed).saturating_sub(live.stats.done())
                                    });
                                    let out = output_tokens(&record);
                                    live.stats.series.record(Instant::now(), part, &record, out, in_flight);
                                }
                            }
                            EngineEvent::SessionEnded { part: Part::Window, end, turns, duration } => {
                                if let Some(live) = &mut current {
                                    live.stats.sessions.ended(end, turns, duration);
                                }
                            }
                            EngineEvent::SessionEnded { .. } => {}
                            EngineEvent::StageFinished { wall, started, interrupted, aborted, unsent, schedule, reply } => {
                                if let Some(Live { mut stats, .. }) = current.take() {
                                    stats.wall = wall;
                                    stats.started = started;
                                    stats.interrupted = interrupted;
                                    stats.aborted = aborted;
                                    stats.unsent = unsent;
                                    stats.schedule = schedule;
                                    stats.finished = true;
                                    let stats = Arc::new(stats);
                                    if let Some(reply) = reply {
                                        let _ = reply.send(stats.clone());
                                    }
                                    finished.push(stats);
                                }
                                changed_stage = true;
                            }
                            EngineEvent::RunAborted { why } => {
                                self.aborted = Some(why);
                                changed_stage = true;
                            }
                        }
                    }
                    if changed_stage {
                        self.publish(&finished, &current, false);
                    }
                }
                _ = tick.tick() => self.publish(&finished, &current, false),
            }
        }
        // A stage cut short by an interrupt still counts: close it with what it has.
        if let Some(live) = current.take() {
            let mut stats = live.view();
            stats.interrupted = true;
            finished.push(Arc::new(stats));
        }
        self.publish(&finished, &None, true);
        finished.into_iter().map(|s| Arc::try_unwrap(s).unwrap_or_else(|a| (*a).clone())).collect()
    }

    fn publish(&self, finished: &[Arc<StageStats>], current: &Option<Live>, done: bool) {
        let snap = Snapshot {
            finished: finished.to_vec(),
            current: current.as_ref().map(Live::view),
            total_stages: self.total_stages,
            done,
            elapsed: self.started.elapsed(),
            aborted: self.aborted.clone(),
        };
        self.tx.send_replace(Arc::new(snap));
    }
}
