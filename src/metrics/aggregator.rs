//! The aggregator task: the only owner of the figures. The engine sends it events; it
//! publishes a Snapshot on a watch channel at a fixed interval, so watchers (progress
//! line, dashboard) never touch engine state or share a lock with the request path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::gauges::Gauges;
use super::info::{Attempts, Part, StageInfo};
use super::stage::{StageStats, output_tokens};
use crate::model::RequestRecord;
/// Engine → aggregator, in order: StageStarted, warmup records, Measuring, measured
/// records, StageFinished; then the next stage.
#[derive(Debug)]
// Records are nearly every event: boxed, each would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub enum EngineEvent {
    StageStarted(StageInfo),
    /// The measured window opens; its gauges count its requests as they start and
    /// end, and say when an arrival waits for a slot and when its last request ended (a
    /// cooldown runs on after that, outside the window's figures).
    Measuring {
        gauges: Gauges,
        /// The window's opening, on the wall clock (results record it absolute).
        opened: std::time::SystemTime,
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
    /// A task started.
    TaskStarted {
        part: Part,
    },
    /// A task ended (or was cut by the stage's end).
    TaskEnded {
        part: Part,
        task: Box<super::tasks::TaskDone>,
    },
    /// `abort_on_error_rate` ends the run after the stage just finished; why, in words.
    RunAborted {
        why: String,
    },
    /// The server's metrics endpoint was read: its latest figures.
    Server(super::ServerLive),
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
    /// The generator's own health so far, when it is watched.
    pub generator: Option<super::HealthView>,
    /// The server's latest figures, per endpoint read (none when none is).
    pub server: Vec<super::ServerLive>,
}

pub struct Aggregator {
    rx: mpsc::Receiver<EngineEvent>,
    tx: watch::Sender<Arc<Snapshot>>,
    interval: Duration,
    total_stages: usize,
    started: Instant,
    aborted: Option<String>,
    /// Counts what a record left uncounted (a stream's texts), here rather than on the
    /// request path.
    count: Option<Counter>,
    sink: Option<Box<dyn RecordSink>>,
    health: Option<Arc<super::Health>>,
    /// Each endpoint's latest server figures.
    server: Vec<super::ServerLive>,
    /// The counting tokenizer is the server's: texts are counted after their stage's
    /// window, never while it is measured.
    after_window: bool,
}

/// See [`Aggregator::with_counter`].
pub type Counter = Box<dyn FnMut(&mut RequestRecord) + Send>;

/// Takes every finished request as the aggregator does (`--requests-out`), on its
/// thread; flushed at each stage's end and when the run ends.
pub trait RecordSink: Send {
    fn record(&mut self, stage: &StageInfo, part: Part, rec: &RequestRecord, attempts: &Attempts);
    fn flush(&mut self);
}

/// Channel depth: deep enough that workers never wait on a busy aggregator, bounded so
/// memory stays flat even if it stalls.
const CHANNEL_DEPTH: usize = 1 << 14;

/// How often the aggregator takes in what was sent to it.
const DRAIN: Duration = Duration::from_millis(5);

/// The finished stages' figures, and the running one's.
#[derive(Default)]
struct Figures {
    finished: Vec<Arc<StageStats>>,
    current: Option<Live>,
}

/// The running stage: its figures, and once measuring, the engine's started counter
/// and when the measured window opened.
struct Live {
    stats: StageStats,
    measuring: Option<Measuring>,
    /// Measured records whose texts are counted once the window ends (their attempts
    /// and series are in `stats` already), and the bytes of text they hold.
    pending: Vec<RequestRecord>,
    pending_bytes: usize,
}

/// Most text held for counting after a window; past it, replies keep their chunk count.
const MOST_PENDING_BYTES: usize = 256 << 20;

/// The engine's live gauges of a measured window, and when it opened.
struct Measuring {
    gauges: Gauges,
    at: Instant,
}

impl Live {
    /// The figures with `started` and the window's length read now.
    fn view(&self) -> StageStats {
        let mut s = self.stats.clone();
        for rec in &self.pending {
            s.record(rec);
        }
        if let Some(m) = &self.measuring {
            s.in_flight_now = Some(m.gauges.in_flight());
            s.started = m.gauges.started();
            s.wall = match m.gauges.drained() {
                None => m.at.elapsed(),
                Some(at) => at.min(m.at.elapsed()),
            };
            if let Some(due) = m.gauges.waiting() {
                s.behind = s.wall.saturating_sub(due);
            }
        }
        s
    }
}

impl Aggregator {
    pub fn new(total_stages: usize, interval: Duration) -> (Aggregator, mpsc::Sender<EngineEvent>, watch::Receiver<Arc<Snapshot>>) {
        let (etx, erx) = mpsc::channel(CHANNEL_DEPTH);
        let (stx, srx) = watch::channel(Arc::new(Snapshot { total_stages, ..Snapshot::default() }));
        (
            Aggregator {
                rx: erx,
                tx: stx,
                interval,
                total_stages,
                started: Instant::now(),
                aborted: None,
                count: None,
                sink: None,
                health: None,
                server: Vec::new(),
                after_window: false,
            },
            etx,
            srx,
        )
    }

    /// Counts each measured record's uncounted texts with `count` before it is taken in.
    pub fn with_counter(mut self, count: Counter) -> Aggregator {
        self.count = Some(count);
        self
    }

    /// Counts with the server's tokenizer: a measured record's texts wait for the
    /// window's end (live figures count its chunks until then), so no tokenize call
    /// competes with the requests measured.
    pub fn counting_after_window(mut self) -> Aggregator {
        self.after_window = true;
        self
    }

    /// Hands every finished request to `sink` too.
    pub fn with_sink(mut self, sink: Box<dyn RecordSink>) -> Aggregator {
        self.sink = Some(sink);
        self
    }

    /// Shows what `health` has seen in every snapshot.
    pub fn with_health(mut self, health: Arc<super::Health>) -> Aggregator {
        self.health = Some(health);
        self
    }

    /// Runs [`run`](Self::run) on a thread of its own (a current-thread runtime on
    /// tokio's blocking pool): the figures, snapshots and token counts then never take
    /// an async worker from the requests in flight.
    pub fn spawn(self) -> tokio::task::JoinHandle<Vec<StageStats>> {
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime builds");
            rt.block_on(self.run())
        })
    }

    /// Runs until the engine drops its sender; returns every stage's figures. It
    /// drains its queue every [`DRAIN`] rather than waiting on it: waiting, every record
    /// sent would wake it (a cross-thread wake, a syscall, per request).
    pub async fn run(mut self) -> Vec<StageStats> {
        let mut figures = Figures::default();
        let mut published = Instant::now();
        loop {
            let mut changed_stage = false;
            let closed = loop {
                match self.rx.try_recv() {
                    Ok(ev) => changed_stage |= self.take(ev, &mut figures),
                    Err(mpsc::error::TryRecvError::Empty) => break false,
                    Err(mpsc::error::TryRecvError::Disconnected) => break true,
                }
            };
            if closed {
                if let Some(sink) = &mut self.sink {
                    sink.flush();
                }
                break;
            }
            if changed_stage || published.elapsed() >= self.interval {
                self.publish(&figures.finished, &figures.current, false);
                published = Instant::now();
            }
            tokio::time::sleep(DRAIN).await;
        }
        let Figures { mut finished, mut current } = figures;
        // A stage cut short by an interrupt still counts: close it with what it has.
        if let Some(live) = current.take() {
            let mut stats = live.view();
            stats.interrupted = true;
            finished.push(Arc::new(stats));
        }
        self.publish(&finished, &None, true);
        finished.into_iter().map(|s| Arc::try_unwrap(s).unwrap_or_else(|a| (*a).clone())).collect()
    }

    /// Takes one event in; true when a stage started or ended (or the run was aborted).
    fn take(&mut self, ev: EngineEvent, figures: &mut Figures) -> bool {
        let Figures { finished, current } = figures;
        match ev {
            EngineEvent::StageStarted(info) => {
                let mut stats = StageStats::new(info);
                stats.series.start(Instant::now());
                *current = Some(Live { stats, measuring: None, pending: Vec::new(), pending_bytes: 0 });
                true
            }
            EngineEvent::Measuring { gauges, opened } => {
                if let Some(live) = current {
                    live.measuring = Some(Measuring { gauges, at: Instant::now() });
                    live.stats.window_opened = Some(opened);
                    live.stats.window_offset = live.stats.series.since_start(Instant::now());
                }
                false
            }
            EngineEvent::Record { part, mut record, attempts } => {
                // Held texts' bytes, reckoned only where texts may be held.
                let text = match (self.after_window, &record.uncounted) {
                    (true, Some(u)) => {
                        let calls: usize = record.tool_calls.iter().flatten().map(|c| c.name.len() + c.arguments.len()).sum();
                        u.answer.len() + u.reasoning.len() + u.prompt.as_ref().map_or(0, |p| p.len()) + calls
                    }
                    _ => 0,
                };
                let wait = self.after_window
                    && part == Part::Window
                    && record.uncounted.is_some()
                    && current.as_ref().is_some_and(|l| l.pending_bytes + text <= MOST_PENDING_BYTES);
                if let (Some(count), Part::Window, false) = (&mut self.count, part, wait) {
                    count(&mut record);
                }
                if let (Some(sink), Some(live)) = (&mut self.sink, current.as_ref()) {
                    sink.record(&live.stats.info, part, &record, &attempts);
                }
                if let Some(live) = current {
                    match part {
                        Part::Warmup => live.stats.warmup_done += 1,
                        Part::Cooldown => live.stats.cooldown_done += 1,
                        Part::Window => {
                            if !wait {
                                live.stats.record(&record);
                            }
                            live.stats.record_attempts(&record, &attempts);
                        }
                    }
                    let in_flight = live.measuring.as_ref().filter(|_| part == Part::Window).map_or(0, |m| m.gauges.in_flight());
                    let out = output_tokens(&record);
                    live.stats.series.record(Instant::now(), part, &record, out, in_flight);
                    if wait {
                        live.pending_bytes += text;
                        live.pending.push(record);
                    }
                }
                false
            }
            EngineEvent::SessionEnded { part: Part::Window, end, turns, duration } => {
                if let Some(live) = current {
                    live.stats.sessions.ended(end, turns, duration);
                }
                false
            }
            EngineEvent::SessionEnded { .. } => false,
            EngineEvent::TaskEnded { part: Part::Window, task } => {
                if let Some(live) = current {
                    let slo = live.stats.info.slo.and_then(|s| s.task);
                    live.stats.tasks.get_or_insert_with(Default::default).ended(&task, slo);
                }
                false
            }
            EngineEvent::TaskEnded { .. } => false,
            EngineEvent::TaskStarted { part: Part::Window } => {
                if let Some(live) = current {
                    live.stats.tasks.get_or_insert_with(Default::default).started += 1;
                }
                false
            }
            EngineEvent::TaskStarted { .. } => false,
            EngineEvent::StageFinished { wall, started, interrupted, aborted, unsent, schedule, reply } => {
                if let Some(sink) = &mut self.sink {
                    sink.flush();
                }
                if let Some(Live { mut stats, pending, .. }) = current.take() {
                    // The window is closed (the engine waits for these figures): the
                    // server's tokenizer may be asked now.
                    for mut rec in pending {
                        if let Some(count) = &mut self.count {
                            count(&mut rec);
                        }
                        stats.record(&rec);
                    }
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
                true
            }
            EngineEvent::RunAborted { why } => {
                self.aborted = Some(why);
                true
            }
            EngineEvent::Server(live) => {
                match self.server.iter_mut().find(|s| s.endpoint == live.endpoint) {
                    Some(s) => *s = live,
                    None => self.server.push(live),
                }
                false
            }
        }
    }

    fn publish(&self, finished: &[Arc<StageStats>], current: &Option<Live>, done: bool) {
        let snap = Snapshot {
            finished: finished.to_vec(),
            current: current.as_ref().map(Live::view),
            total_stages: self.total_stages,
            done,
            elapsed: self.started.elapsed(),
            aborted: self.aborted.clone(),
            generator: self.health.as_ref().map(|h| h.view()),
            server: self.server.clone(),
        };
        self.tx.send_replace(Arc::new(snap));
    }
}
