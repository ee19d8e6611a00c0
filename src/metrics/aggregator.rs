//! The aggregator task: the only owner of the figures. The engine sends it events; it
//! publishes a Snapshot on a watch channel at a fixed interval, so watchers (progress
//! line, dashboard) never touch engine state or share a lock with the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::StageStats;
use crate::client::RequestRecord;

/// What a stage is, as the aggregator and reports need it.
#[derive(Debug, Clone, Default)]
pub struct StageInfo {
    pub index: usize,
    pub name: String,
    pub concurrency: u32,
    pub model: String,
    pub planned_requests: Option<u64>,
    pub planned_duration: Option<Duration>,
    pub warmup: u64,
}

/// Engine → aggregator, in order: StageStarted, warmup records, Measuring, measured
/// records, StageFinished; then the next stage.
#[derive(Debug)]
pub enum EngineEvent {
    StageStarted(StageInfo),
    /// The measured window opens; `started` counts measured requests sent so far.
    Measuring {
        started: Arc<AtomicU64>,
    },
    Record {
        warmup: bool,
        record: RequestRecord,
    },
    /// `interrupted`: the stage was stopped early by the user.
    StageFinished {
        wall: Duration,
        started: u64,
        interrupted: bool,
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
}

pub struct Aggregator {
    rx: mpsc::Receiver<EngineEvent>,
    tx: watch::Sender<Arc<Snapshot>>,
    interval: Duration,
    total_stages: usize,
}

/// Channel depth: deep enough that workers never wait on a busy aggregator, bounded so
/// memory stays flat even if it stalls.
const CHANNEL_DEPTH: usize = 1 << 14;

impl Aggregator {
    pub fn new(total_stages: usize, interval: Duration) -> (Aggregator, mpsc::Sender<EngineEvent>, watch::Receiver<Arc<Snapshot>>) {
        let (etx, erx) = mpsc::channel(CHANNEL_DEPTH);
        let (stx, srx) = watch::channel(Arc::new(Snapshot {
            total_stages,
            ..Snapshot::default()
        }));
        (
            Aggregator {
                rx: erx,
                tx: stx,
                interval,
                total_stages,
            },
            etx,
            srx,
        )
    }

    /// Runs until the engine drops its sender; returns every stage's figures.
    pub async fn run(mut self) -> Vec<StageStats> {
        let mut finished: Vec<Arc<StageStats>> = Vec::new();
        let mut current: Option<(StageStats, Option<(Arc<AtomicU64>, Instant)>)> = None;
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
                                current = Some((StageStats::new(info), None));
                                changed_stage = true;
                            }
                            EngineEvent::Measuring { started } => {
                                if let Some((_, m)) = &mut current {
                                    *m = Some((started, Instant::now()));
                                }
                            }
                            EngineEvent::Record { warmup, record } => {
                                if let Some((stats, _)) = &mut current {
                                    if warmup { stats.warmup_done += 1 } else { stats.record(&record) }
                                }
                            }
                            EngineEvent::StageFinished { wall, started, interrupted } => {
                                if let Some((mut stats, _)) = current.take() {
                                    stats.wall = wall;
                                    stats.started = started;
                                    stats.interrupted = interrupted;
                                    stats.finished = true;
                                    finished.push(Arc::new(stats));
                                }
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
        if let Some((mut stats, m)) = current.take() {
            if let Some((started, at)) = m {
                stats.started = started.load(Ordering::SeqCst);
                stats.wall = at.elapsed();
            }
            stats.interrupted = true;
            finished.push(Arc::new(stats));
        }
        self.publish(&finished, &None, true);
        finished
            .into_iter()
            .map(|s| Arc::try_unwrap(s).unwrap_or_else(|a| (*a).clone()))
            .collect()
    }

    fn publish(&self, finished: &[Arc<StageStats>], current: &Option<(StageStats, Option<(Arc<AtomicU64>, Instant)>)>, done: bool) {
        let current = current.as_ref().map(|(stats, m)| {
            let mut s = stats.clone();
            if let Some((started, at)) = m {
                s.started = started.load(Ordering::SeqCst);
                s.wall = at.elapsed();
            }
            s
        });
        let snap = Snapshot {
            finished: finished.to_vec(),
            current,
            total_stages: self.total_stages,
            done,
        };
        self.tx.send_replace(Arc::new(snap));
    }
}
