//! Scraping a server's metrics while a run goes on: a task per endpoint, its own
//! timeout and kept connection, so a slow or dead endpoint never delays a request or a
//! chunk's timestamp. Each scrape is parsed and named in the vocabulary and kept with
//! its wall-clock time; failures are counted, the first one kept, and never fail the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use regex::RegexSet;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::keep::Kept;
use super::parse::{Exposition, parse};
use super::vocab::{Reading, Server};
use crate::client::ExtraHeader;
use crate::client::get::{Getter, shown};
use crate::metrics::{EngineEvent, ServerLive, Snapshot};

/// An endpoint to read: where, what to call it, how often (no Debug: its headers may
/// hold a secret).
#[derive(Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: url::Url,
    pub interval: Duration,
    pub headers: Vec<ExtraHeader>,
    /// Families outside the vocabulary to record raw.
    pub keep: Option<RegexSet>,
}

/// One scrape: when it was read (Unix seconds), and what it said.
#[derive(Debug, Clone)]
pub struct Point {
    pub at: f64,
    pub reading: Reading,
}

/// What an endpoint gave over a run.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    pub name: String,
    /// Shown without credentials or query.
    pub url: String,
    pub interval: Duration,
    pub server: Option<Server>,
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub points: Vec<Point>,
    pub kept: Kept,
}

/// What the scrapes read over a run, or why there were none.
#[derive(Debug, Clone, Default)]
pub struct ServerRead {
    pub scraped: Vec<Scraped>,
    pub note: Option<String>,
}

/// The longest a scrape may take: never longer than its interval, nor 5 s.
fn timeout_for(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// The scrapes under way; [`Scrapes::finish`] stops them and gives what they read.
pub struct Scrapes {
    tasks: Vec<Task>,
}

/// An endpoint's scraping: what it read so far, its reader, its task.
type Task = (Arc<Mutex<Scraped>>, Arc<Getter>, Option<RegexSet>, JoinHandle<()>);

impl Scrapes {
    /// Starts a task per endpoint, each scraping at once, then every interval and as a
    /// stage's window opens or closes (seen in `snapshots`, within their 100 ms), so a
    /// window's counters start and end with it.
    /// Each scrape's figures also go to `events` (the aggregator's queue, never waited
    /// on: a full queue skips one), for the live view.
    pub fn start(
        endpoints: Vec<Endpoint>,
        insecure: bool,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        events: Option<mpsc::Sender<EngineEvent>>,
    ) -> Result<Scrapes, String> {
        let mut tasks = Vec::new();
        for e in endpoints {
            let getter = Getter::new(&e.url, &e.headers, timeout_for(e.interval), insecure).map_err(|err| format!("{}: {err}", e.name))?;
            let getter = Arc::new(getter);
            let shared =
                Arc::new(Mutex::new(Scraped { name: e.name.clone(), url: shown(&e.url), interval: e.interval, ..Scraped::default() }));
            let (into, get, mut snaps, events) = (shared.clone(), getter.clone(), snapshots.clone(), events.clone());
            let keep = e.keep.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(e.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut seen = boundary(&snaps.borrow());
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        changed = snaps.changed() => {
                            let now = boundary(&snaps.borrow_and_update());
                            if changed.is_err() || now == seen {
                                if changed.is_err() {
                                    // The run is over: the ticks alone, until finished.
                                    std::future::pending::<()>().await;
                                }
                                continue;
                            }
                            seen = now;
                            tick.reset();
                        }
                    }
                    record(&into, scrape(&get).await, keep.as_ref());
                    if let Some(events) = &events {
                        let _ = events.try_send(EngineEvent::Server(live(&into.lock().unwrap_or_else(|p| p.into_inner()))));
                    }
                }
            });
            tasks.push((shared, getter, e.keep, task));
        }
        Ok(Scrapes { tasks })
    }

    /// Stops scraping, after one last scrape (so the last stage's counters end after
    /// its window); what each endpoint read.
    pub async fn finish(mut self) -> Vec<Scraped> {
        let mut out = Vec::new();
        for (shared, getter, keep, task) in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
            record(&shared, scrape(&getter).await, keep.as_ref());
            out.push(shared.lock().unwrap_or_else(|p| p.into_inner()).clone());
        }
        out
    }
}

/// Scrapes left unfinished (a run that ended early) stop with it: their tasks hold a
/// sender of the aggregator's queue, which must close for the aggregator to end.
impl Drop for Scrapes {
    fn drop(&mut self) {
        for (.., task) in &self.tasks {
            task.abort();
        }
    }
}

/// An endpoint's latest figures for the live view; its prefix-cache hit rate since its
/// first scrape.
fn live(s: &Scraped) -> ServerLive {
    let Some(last) = s.points.last() else { return ServerLive { endpoint: s.name.clone(), ..ServerLive::default() } };
    let r = &last.reading;
    let first = &s.points[0].reading;
    let grew = |f: fn(&Reading) -> Option<f64>| Some(f(r)? - f(first)?);
    ServerLive {
        endpoint: s.name.clone(),
        running: r.running,
        waiting: r.waiting,
        kv_cache_usage: r.kv_cache_usage,
        prefix_hit_rate: grew(|x| x.prefix_hits).zip(grew(|x| x.prefix_queries)).filter(|(_, q)| *q > 0.0).map(|(h, q)| h / q),
        gpu_util: r.gpu_util,
        gpu_power_w: r.gpu_power_w,
    }
}

/// One scrape's outcome, kept.
fn record(into: &Mutex<Scraped>, read: Result<Read, String>, keep: Option<&RegexSet>) {
    let mut s = into.lock().unwrap_or_else(|p| p.into_inner());
    match read {
        Ok(Read { server, reading, exposition }) => {
            let at = unix_now();
            s.ok += 1;
            s.server = s.server.or(server);
            s.points.push(Point { at, reading });
            if let Some(keep) = keep {
                s.kept.record(keep, &exposition, at);
            }
        }
        Err(why) => {
            s.failed += 1;
            s.first_error.get_or_insert(why);
        }
    }
}

/// Where the run is: stages finished, and whether the running one's window is open.
fn boundary(snap: &Snapshot) -> (usize, bool) {
    (snap.finished.len(), snap.current.as_ref().is_some_and(|c| c.window_opened.is_some()))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// One scrape: whose names, what they say in the vocabulary, and all it said.
struct Read {
    server: Option<Server>,
    reading: Reading,
    exposition: Exposition,
}

/// One scrape: read, parsed, named. Err: one line.
async fn scrape(getter: &Getter) -> Result<Read, String> {
    let got = getter.get().await?;
    if got.status != 200 {
        return Err(format!("status {}", got.status));
    }
    let text = std::str::from_utf8(&got.body).map_err(|_| "not UTF-8 text".to_string())?;
    let exposition = parse(text).map_err(|e| format!("not the Prometheus text format: {e}"))?;
    let server = Server::of(&exposition);
    Ok(Read { server, reading: server.map(|s| Reading::of(&exposition, s)).unwrap_or_default(), exposition })
}

/// An endpoint named by the user, read once before the run: Err (one line) when it
/// does not answer 200 in the Prometheus text format.
pub async fn check(e: Endpoint, insecure: bool) -> Result<Endpoint, String> {
    let getter =
        Getter::new(&e.url, &e.headers, timeout_for(e.interval).max(Duration::from_secs(2)), insecure).map_err(|err| err.to_string())?;
    scrape(&getter).await.map(|_| e.clone()).map_err(|why| format!("{}: {why}", shown(&e.url)))
}

/// The automatic probe: `<origin>/metrics` read once, quickly, with no key. Ok when it
/// answers 200 in the Prometheus text format with a server's names; else why not.
pub async fn probe(base: &url::Url, insecure: bool) -> Result<Endpoint, String> {
    let mut url = base.clone();
    url.set_path("/metrics");
    url.set_query(None);
    let getter = Getter::new(&url, &[], Duration::from_secs(2), insecure).map_err(|e| e.to_string())?;
    let at = shown(&url);
    match scrape(&getter).await {
        Ok(Read { server: Some(_), .. }) => {
            Ok(Endpoint { name: "server".into(), url, interval: Duration::from_secs(1), headers: Vec::new(), keep: None })
        }
        Ok(_) => Err(format!("{at} answers, but with no server's metric names llmload knows")),
        Err(why) => Err(format!("{at}: {why}")),
    }
}
