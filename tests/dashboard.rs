//! The dashboard drawn from fixed snapshots (insta snapshots at 80×24 and 160×48), and
//! its loop driven with scripted keys on a TestBackend.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use llmload::engine::{Engine, Stop};
use llmload::metrics::{Snapshot, StageStats};
use llmload::model::{FailureKind, Outcome, RequestRecord, Usage};
use llmload::scenario::Scenario;
use llmload::tui::{App, Scale, buckets, render, run_loop};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::{mpsc, watch};

const SEED: &str = include_str!("../scenarios/seed-comparison.toml");

fn seed() -> Scenario {
    Scenario::parse(SEED, "seed-comparison.toml", None).unwrap()
}

fn record(ms: f64, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        outcome,
        latency: Duration::from_secs_f64(ms / 1000.0),
        status: Some(if outcome == Outcome::Ok { 200 } else { 500 }),
        bytes: 400,
        usage: Some(Usage { prompt_tokens: Some(6), completion_tokens: Some(16), reasoning_tokens: None, cached_tokens: None }),
        detail: None,
        ..RequestRecord::default()
    }
}

/// A stage's figures as the mock's model would give them: latencies around
/// 80 + 2 × concurrency ms with a deterministic spread and a small tail.
fn stage(s: &Scenario, index: usize, done: u64, failed_every: Option<u64>, finished: bool) -> StageStats {
    let info = Engine::stage_info(s, index, &s.stages[index]);
    let c = info.concurrency as f64;
    let mut st = StageStats::new(info);
    for i in 0..done {
        let ms = 80.0 + 2.0 * c + (i % 7) as f64 * 0.6 + if i % 50 == 49 { 25.0 } else { 0.0 };
        let outcome = match failed_every {
            Some(k) if i % k == k - 1 => Outcome::Failed(if (i / k) % 2 == 0 { FailureKind::Http5xx } else { FailureKind::Http429 }),
            _ => Outcome::Ok,
        };
        st.record(&record(ms, outcome));
    }
    st.started = if finished { done } else { done + st.info.concurrency as u64 };
    st.wall = Duration::from_secs_f64(done as f64 * (80.0 + 2.0 * c) / 1000.0 / c);
    st.finished = finished;
    st
}

fn snapshot(finished: Vec<StageStats>, current: Option<StageStats>, elapsed_ms: u64, done: bool) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        finished: finished.into_iter().map(Arc::new).collect(),
        current,
        total_stages: 4,
        done,
        elapsed: Duration::from_millis(elapsed_ms),
        generator: None,
        aborted: None,
        server: Vec::new(),
    })
}

/// An app fed a short history, so the throughput chart has points.
fn app_with(s: &Scenario, history: &[Arc<Snapshot>]) -> App {
    let mut app = App::new(s, "mock", false);
    for snap in history {
        app.on_snapshot(snap.clone());
    }
    app
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(f, app)).unwrap();
    t
}

fn mid_run_history(s: &Scenario) -> Vec<Arc<Snapshot>> {
    let seq = stage(s, 0, 100, None, true);
    (1..=10).map(|k| snapshot(vec![seq.clone()], Some(stage(s, 1, k * 6, None, false)), 8400 + k * 100, false)).collect()
}

#[test]
fn mid_run() {
    let s = seed();
    let app = app_with(&s, &mid_run_history(&s));
    insta::assert_snapshot!("mid_run_80x24", draw(&app, 80, 24).backend());
    insta::assert_snapshot!("mid_run_160x48", draw(&app, 160, 48).backend());
}

/// Embeddings and rerank: the running stage's inputs (documents) per second beside its
/// requests, and a column of them in the table.
#[test]
fn embeddings_show_their_inputs_per_second() {
    let text = SEED.replace("[target]", "[target]\napi = \"embeddings\"").replace("stream = true", "stream = false");
    let s = Scenario::parse(&text, "embeddings.toml", None).unwrap();
    let with_items = |mut st: StageStats| {
        let ok = st.ok;
        for _ in 0..ok {
            st.items.record(16, Duration::from_millis(90));
        }
        st
    };
    let seq = with_items(stage(&s, 0, 100, None, true));
    let now = with_items(stage(&s, 1, 60, None, false));
    let app = app_with(&s, &[snapshot(vec![seq], Some(now), 9000, false)]);
    let text = draw(&app, 160, 48).backend().to_string();
    // 60 requests of 16 inputs over the running stage's wall time (0.1 s a request,
    // 10-way: 0.6 s): 1600 inputs/s.
    assert!(text.contains("1600 inputs/s"), "{text}");
    assert_eq!(text.matches("inputs/s").count(), 2, "the status and the table's column: {text}");
}

/// The server's own figures, when its metrics are read, show in a panel of their own;
/// none read, no panel.
#[test]
fn the_servers_figures_show_when_read() {
    let s = seed();
    let mut history = mid_run_history(&s);
    let last = history.pop().unwrap();
    let live = llmload::metrics::ServerLive {
        endpoint: "server".into(),
        running: Some(4.0),
        waiting: Some(12.0),
        kv_cache_usage: Some(0.97),
        prefix_hit_rate: Some(0.35),
        gpu_util: None,
        gpu_power_w: None,
    };
    history.push(Arc::new(Snapshot { server: vec![live], ..(*last).clone() }));
    let app = app_with(&s, &history);
    let text = draw(&app, 160, 48).backend().to_string();
    assert!(text.contains("server (its /metrics)") && text.contains("running 4 · waiting 12 · KV 97 % · prefix 35 %"), "{text}");
    insta::assert_snapshot!("server_panel_80x24", draw(&app, 80, 24).backend());
    let text = draw(&app_with(&s, &mid_run_history(&s)), 160, 48).backend().to_string();
    assert!(!text.contains("(its /metrics)") && !text.contains("running 4"), "{text}");
}

#[test]
fn stage_with_errors() {
    let s = seed();
    let hist: Vec<_> = (1..=5).map(|k| snapshot(vec![], Some(stage(&s, 0, k * 10, Some(4), false)), k * 100, false)).collect();
    let app = app_with(&s, &hist);
    let t = draw(&app, 80, 24);
    let text = t.backend().to_string();
    assert!(text.contains("http_5xx") && text.contains("http_429"), "{text}");
    insta::assert_snapshot!("errors_80x24", t.backend());
    insta::assert_snapshot!("errors_160x48", draw(&app, 160, 48).backend());
}

/// Retries and the rate limiter at work: the errors panel says what the client did, and
/// the table gains its retries and limiter columns.
#[test]
fn retries_and_rate_limiter() {
    use llmload::metrics::{Attempts, FailedAttempt};
    let s = seed();
    let mut st = stage(&s, 1, 40, Some(8), false);
    st.info.rate_limit.rpm = Some(600.0);
    for i in 0..40u64 {
        let retried = FailedAttempt { kind: FailureKind::Http429, latency: Duration::from_millis(3), status: Some(429) };
        let earlier = if i % 4 == 0 { vec![retried] } else { vec![] };
        let att = Attempts {
            earlier,
            last: Duration::from_millis(100),
            retry_after_waits: (i % 4 == 0) as u32,
            retry_not_sent: false,
            limited: true,
            limiter_wait: Duration::from_millis(50 + i * 10),
            ..Attempts::default()
        };
        st.record_attempts(&record(100.0, if i % 8 == 4 { Outcome::Failed(FailureKind::Http429) } else { Outcome::Ok }), &att);
    }
    let app = app_with(&s, &[snapshot(vec![], Some(st), 500, false)]);
    let t = draw(&app, 160, 48);
    let text = t.backend().to_string();
    // Every 4th request retried once (10); every other one of those failed in the end.
    assert!(text.contains("retries") && text.contains("5 of 10 requests recovered"), "{text}");
    assert!(text.contains("rate limiter") && text.contains("40  held"), "{text}");
    insta::assert_snapshot!("retries_160x48", t.backend());
}

fn finished_app(s: &Scenario) -> App {
    let all: Vec<StageStats> = (0..4).map(|i| stage(s, i, 100, None, true)).collect();
    app_with(s, &[snapshot(all, None, 10_400, true)])
}

#[test]
fn finished_table() {
    let s = seed();
    let app = finished_app(&s);
    let t = draw(&app, 80, 24);
    let text = t.backend().to_string();
    for name in ["sequential", "10-way", "20-way", "50-way", "finished"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    insta::assert_snapshot!("finished_80x24", t.backend());
    insta::assert_snapshot!("finished_160x48", draw(&app, 160, 48).backend());
}

#[test]
fn help_overlay() {
    let s = seed();
    let mut app = app_with(&s, &mid_run_history(&s));
    app.on_key(key(KeyCode::Char('?')));
    assert!(app.help);
    insta::assert_snapshot!("help_80x24", draw(&app, 80, 24).backend());
    insta::assert_snapshot!("help_160x48", draw(&app, 160, 48).backend());
    app.on_key(key(KeyCode::Esc));
    assert!(!app.help, "Esc closes help without stopping");
    assert!(!app.stopping);
}

#[test]
fn cjk_names_keep_the_layout() {
    let text = SEED
        .replace("name = \"sequential\"", "name = \"順次実行\"")
        .replace("name = \"sequential vs 10/20/50-way\"", "name = \"並列比較テスト\"");
    let s = Scenario::parse(&text, "s.toml", None).unwrap();
    let app = finished_app(&s);
    let t = draw(&app, 80, 24);
    let out = t.backend().to_string();
    assert!(out.contains("順次実行"), "{out}");
    // Every drawn line has the terminal's width: wide glyphs did not push borders out.
    for line in out.lines() {
        // TestBackend prints `"cells"` and, after it, notes on wide glyphs.
        let Some(a) = line.find('"') else { continue };
        let Some(len) = line[a + 1..].find('"') else { continue };
        let inner = &line[a + 1..a + 1 + len];
        assert_eq!(unicode_width::UnicodeWidthStr::width(inner), 80, "{line}");
    }
    insta::assert_snapshot!("cjk_80x24", t.backend());
}

#[test]
fn no_color_draws_without_colors() {
    let s = seed();
    let hist = mid_run_history(&s);
    let colored = |color: bool| {
        let mut app = App::new(&s, "mock", color);
        for h in &hist {
            app.on_snapshot(h.clone());
        }
        let t = draw(&app, 80, 24);
        t.backend()
            .buffer()
            .content()
            .iter()
            .filter(|c| c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset)
            .count()
    };
    assert_eq!(colored(false), 0, "NO_COLOR: no cell may carry a color");
    assert!(colored(true) > 50);
}

#[test]
fn histogram_buckets_cover_every_value_in_both_scales() {
    let s = seed();
    let st = stage(&s, 3, 100, None, true);
    for scale in [Scale::Log, Scale::Linear] {
        let b = buckets(&st.latency, 12, scale);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 100, "{scale:?}");
        assert!(b.windows(2).all(|w| w[0].hi == w[1].lo), "{scale:?}: contiguous");
        assert!(b.len() <= 12);
    }
    // Log buckets are narrower at the low end.
    let log = buckets(&st.latency, 12, Scale::Log);
    assert!(log[0].hi - log[0].lo < log[log.len() - 1].hi - log[log.len() - 1].lo);
}

#[test]
fn keys_browse_stages_and_toggle_scale() {
    let s = seed();
    let mut app = app_with(&s, &mid_run_history(&s));
    assert_eq!(app.shown_stage().unwrap().0.info.name, "10-way", "follows the live stage");
    app.on_key(key(KeyCode::Left));
    assert_eq!(app.shown_stage().unwrap().0.info.name, "sequential");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.shown_stage().unwrap().0.info.name, "10-way");
    app.on_key(key(KeyCode::Char('l')));
    assert_eq!(app.scale, Scale::Linear);
    assert!(draw(&app, 80, 24).backend().to_string().contains("linear"));
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Drives run_loop with a snapshot channel and a key channel.
struct Harness {
    snaps: watch::Sender<Arc<Snapshot>>,
    keys: mpsc::UnboundedSender<std::io::Result<Event>>,
    stop: Stop,
    task: tokio::task::JoinHandle<(App, Terminal<TestBackend>)>,
}

fn harness() -> Harness {
    let s = seed();
    let (snaps, rx) = watch::channel(snapshot(vec![], None, 0, false));
    let (keys, mut key_rx) = mpsc::unbounded_channel();
    let stop = Stop::default();
    let stop2 = stop.clone();
    let task = tokio::spawn(async move {
        let mut app = App::new(&s, "mock", false);
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let input = futures_util::stream::poll_fn(move |cx| key_rx.poll_recv(cx));
        run_loop(&mut term, &mut app, rx, input, &stop2).await.unwrap();
        (app, term)
    });
    Harness { snaps, keys, stop, task }
}

async fn finish(task: tokio::task::JoinHandle<(App, Terminal<TestBackend>)>) -> (App, Terminal<TestBackend>) {
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the loop ends").unwrap()
}

#[tokio::test]
async fn q_stops_the_run_and_leaves_when_it_ends() {
    let s = seed();
    let h = harness();
    h.snaps.send_replace(snapshot(vec![], Some(stage(&s, 0, 10, None, false)), 900, false));
    h.keys.send(Ok(Event::Key(key(KeyCode::Char('q'))))).unwrap();
    h.stop.soft.cancelled().await;
    assert!(!h.stop.hard.is_cancelled(), "in-flight requests get a grace period");
    // The engine ends the stage; the loop leaves without waiting for another key.
    h.snaps.send_replace(snapshot(vec![stage(&s, 0, 11, None, true)], None, 1000, true));
    let (app, term) = finish(h.task).await;
    assert!(app.stopping);
    assert!(term.backend().to_string().contains("(stopped)"));
}

#[tokio::test]
async fn second_q_cancels_requests_in_flight() {
    let s = seed();
    let h = harness();
    h.snaps.send_replace(snapshot(vec![], Some(stage(&s, 0, 10, None, false)), 900, false));
    for _ in 0..2 {
        h.keys.send(Ok(Event::Key(key(KeyCode::Char('q'))))).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(1), h.stop.hard.cancelled()).await.expect("hard stop right away");
    h.snaps.send_replace(snapshot(vec![stage(&s, 0, 10, None, true)], None, 1000, true));
    finish(h.task).await;
}

#[tokio::test]
async fn the_final_dashboard_waits_for_a_key() {
    let s = seed();
    let h = harness();
    let all: Vec<StageStats> = (0..4).map(|i| stage(&s, i, 100, None, true)).collect();
    h.snaps.send_replace(snapshot(all, None, 10_400, true));
    // Navigation keys keep the final dashboard; any other key leaves it.
    h.keys.send(Ok(Event::Key(key(KeyCode::Left)))).unwrap();
    h.keys.send(Ok(Event::Key(key(KeyCode::Char('?'))))).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!h.task.is_finished(), "left before a key was pressed");
    h.keys.send(Ok(Event::Key(key(KeyCode::Enter)))).unwrap();
    h.keys.send(Ok(Event::Key(key(KeyCode::Enter)))).unwrap();
    let (app, _) = finish(h.task).await;
    assert!(!app.stopping);
    assert!(!h.stop.soft.is_cancelled(), "leaving a finished run stops nothing");
}

#[tokio::test]
async fn a_signal_stop_ends_the_dashboard_with_the_run() {
    let s = seed();
    let h = harness();
    h.snaps.send_replace(snapshot(vec![], Some(stage(&s, 0, 10, None, false)), 900, false));
    h.stop.soft.cancel();
    h.snaps.send_replace(snapshot(vec![stage(&s, 0, 10, None, true)], None, 1000, true));
    let (app, _) = finish(h.task).await;
    assert!(app.stopping);
}

#[test]
fn tiny_and_odd_terminals_draw_without_panicking() {
    let s = seed();
    let mut apps = vec![finished_app(&s), app_with(&s, &mid_run_history(&s)), App::new(&s, "mock", true)];
    apps[1].on_key(key(KeyCode::Char('?')));
    for app in &apps {
        for (w, h) in [(1, 1), (2, 2), (10, 3), (20, 5), (40, 10), (69, 12), (70, 8), (300, 100)] {
            draw(app, w, h);
        }
    }
}

#[test]
fn one_value_and_huge_values_draw() {
    let s = seed();
    let info = Engine::stage_info(&s, 0, &s.stages[0]);
    let mut one = StageStats::new(info.clone());
    one.record(&record(42.0, Outcome::Ok));
    let mut huge = StageStats::new(info);
    for ms in [0.001, 1.0, 3_600_000.0, 1e12] {
        huge.record(&record(ms, Outcome::Ok));
    }
    for st in [one, huge] {
        let app = app_with(&s, &[snapshot(vec![], Some(st), 100, false)]);
        let text = draw(&app, 80, 24).backend().to_string();
        assert!(text.contains("p50"), "{text}");
    }
}

#[tokio::test]
async fn lost_input_mid_run_hands_the_terminal_back() {
    let s = seed();
    let (tx, rx) = watch::channel(snapshot(vec![], Some(stage(&s, 0, 3, None, false)), 300, false));
    let mut app = App::new(&s, "mock", false);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let end =
        tokio::time::timeout(Duration::from_secs(5), run_loop(&mut term, &mut app, rx, futures_util::stream::empty(), &Stop::default()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(end, llmload::tui::LoopEnd::InputLost);
    drop(tx);
}

#[test]
fn slow_rates_read_steadily() {
    // One request every 3 s (1-way, 3 s latency): 0.33 req/s, not 0 or 1 in turns.
    let s = seed();
    let mut app = App::new(&s, "mock", false);
    for tick in 1..=150u64 {
        let t = Duration::from_millis(tick * 100);
        let mut st = stage(&s, 0, 0, None, false);
        for _ in 0..tick / 30 {
            st.record(&record(3000.0, Outcome::Ok));
        }
        st.wall = t;
        app.on_snapshot(snapshot(vec![], Some(st), tick * 100, false));
        if tick >= 60 {
            assert!((0.2..0.45).contains(&app.rate_now), "at {t:?}: {}", app.rate_now);
        }
    }
}

#[test]
fn best_row_counts_successes_not_fast_failures() {
    let s = seed();
    let good = stage(&s, 0, 100, None, true);
    let mut failing = stage(&s, 1, 100, Some(1), true);
    failing.record(&record(90.0, Outcome::Ok));
    failing.wall = Duration::from_millis(100);
    let app = app_with(&s, &[snapshot(vec![good, failing], None, 9000, true)]);
    assert_eq!(app.best_row(), Some(0));
}

#[test]
fn warmup_shows_in_the_gauge() {
    let text = SEED.replacen("requests = 100", "requests = 100\nwarmup = 5", 1);
    let s = Scenario::parse(&text, "s.toml", None).unwrap();
    let mut st = stage(&s, 0, 0, None, false);
    st.started = 0;
    st.warmup_done = 2;
    let app = app_with(&s, &[snapshot(vec![], Some(st), 200, false)]);
    assert!(draw(&app, 80, 24).backend().to_string().contains("warmup 2/5"));
}

#[test]
fn narrow_spread_gets_honest_buckets() {
    // Four requests within 1 µs of each other near 3 s: one bar holding all four.
    let s = seed();
    let mut st = stage(&s, 0, 0, None, false);
    for us in [3_000_000u64, 3_000_000, 3_000_001, 3_000_001] {
        st.record(&record(us as f64 / 1000.0, Outcome::Ok));
    }
    let b = buckets(&st.latency, 16, Scale::Log);
    assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 4);
    assert_eq!(b.iter().filter(|b| b.count > 0).count(), 1, "{b:?}");
    assert!(b.len() <= 2, "no empty rows finer than the histogram resolves: {b:?}");
}

/// A finished sweep puts its answer in words over the comparison table.
#[test]
fn a_finished_sweep_says_its_answer() {
    let text = include_str!("../scenarios/find-the-knee.toml").replace("\"auto\"", "[1, 2, 4, 8, 16, 32, 64]").replace("max = 256", "");
    let s = Scenario::parse(&text, "find-the-knee.toml", None).unwrap();
    let all: Vec<StageStats> = (0..s.stages.len()).map(|i| stage(&s, i, 100, None, true)).collect();
    let mut app = App::new(&s, "mock", false);
    app.on_snapshot(Arc::new(Snapshot {
        finished: all.into_iter().map(Arc::new).collect(),
        current: None,
        total_stages: s.stages.len(),
        done: true,
        elapsed: Duration::from_secs(30),
        generator: None,
        server: Vec::new(),
        aborted: None,
    }));
    let text = draw(&app, 160, 48).backend().to_string();
    // This model's server never saturates (80 + 2 ms per request in flight).
    assert!(text.contains("sweep: throughput still grows at the last point (64-way"), "{text}");
}

/// An automatic sweep: the gauge counts its points (there is no total to show), the
/// table grows with them, and the answer comes once it ends.
#[test]
fn an_automatic_sweep_counts_its_points() {
    let s = Scenario::parse(include_str!("../scenarios/find-the-knee.toml"), "find-the-knee.toml", None).unwrap();
    assert!(s.stages.is_empty());
    let sweep = s.sweep.clone().unwrap();
    // The stages as the sweep ran them, to build their figures from.
    let mut ran = s.clone();
    ran.stages.extend([1.0, 2.0, 4.0, 8.0, 16.0].map(|x| sweep.stage(x, 0)));
    let mut app = App::new(&s, "mock", false);
    let finished: Vec<StageStats> = (0..4).map(|i| stage(&ran, i, 100, None, true)).collect();
    let snap = |current: Option<StageStats>, done: bool, aborted: Option<&str>| {
        Arc::new(Snapshot {
            finished: finished.iter().cloned().map(Arc::new).collect(),
            current,
            total_stages: 0,
            done,
            elapsed: Duration::from_secs(20),
            generator: None,
            server: Vec::new(),
            aborted: aborted.map(String::from),
        })
    };
    app.on_snapshot(snap(Some(stage(&ran, 4, 30, None, false)), false, None));
    let text = draw(&app, 160, 48).backend().to_string();
    // While it runs: what the finished points show, no advice yet.
    assert!(text.contains("sweep so far: 4 points; throughput still grows; the SLO holds "), "{text}");
    assert!(text.contains("auto sweep point 5 · 16-way"), "{text}");
    assert!(text.contains("8-way"), "the finished points are rows: {text}");
    app.on_snapshot(snap(None, true, None));
    let text = draw(&app, 160, 48).backend().to_string();
    assert!(text.contains("finished · 4 stages"), "{text}");
    assert!(text.contains("sweep: auto sweep, 4 points"), "{text}");
    // Ended by abort_on_error_rate after a stage: the gauge and the answer say so.
    app.on_snapshot(snap(None, true, Some("run aborted: stage \"8-way\" ended with an error rate of 60.0%")));
    let text = draw(&app, 160, 48).backend().to_string();
    assert!(text.contains("run aborted: stage \"8-way\" ended with an error rate of 60.0% · 4 stages"), "{text}");
    assert!(text.contains("the sweep was aborted after 4 points"), "{text}");
}

/// An open-loop stage falling behind its rate is flagged while it runs: its row in
/// the comparison table and the throughput panel say so before the window closes.
#[test]
fn a_running_stage_behind_its_rate_is_flagged() {
    let text = SEED.replace("name = \"10-way\"\nconcurrency = 10", "name = \"at 100/s\"\nrate = 100\nmax_in_flight = 10");
    let s = Scenario::parse(&text, "seed-comparison.toml", None).unwrap();
    assert_eq!(s.stages[1].load.rate(), Some(100.0));
    let seq = stage(&s, 0, 100, None, true);
    let mut running = stage(&s, 1, 120, None, false);
    let app = |running: &StageStats| app_with(&s, &[snapshot(vec![seq.clone()], Some(running.clone()), 9000, false)]);
    let text = draw(&app(&running), 160, 48).backend().to_string();
    assert!(!text.contains("below rate") && !text.contains("behind"), "keeping up: {text}");
    running.behind = Duration::from_millis(900);
    let text = draw(&app(&running), 160, 48).backend().to_string();
    assert!(text.contains("at 100/s (below rate)"), "{text}");
    assert!(text.contains("100 req/s offered · 0.9 s behind"), "{text}");
}

/// Streamed replies of varied lengths: TTFT, ITL and both token lengths have data.
fn streamed_stage(s: &Scenario, index: usize, n: u64) -> StageStats {
    let mut st = StageStats::new(Engine::stage_info(s, index, &s.stages[index]));
    for i in 0..n {
        let out = 20 + i * 37 % 480;
        let ttft = 40.0 + (i % 9) as f64 * 5.0;
        st.record(&RequestRecord {
            ttft: Some(Duration::from_secs_f64(ttft / 1000.0)),
            input_tokens: Some(128 + i * 53 % 3900),
            usage: Some(Usage { prompt_tokens: None, completion_tokens: Some(out), reasoning_tokens: None, cached_tokens: None }),
            ..record(ttft + out as f64 * 4.0, Outcome::Ok)
        });
    }
    st.started = n + 4;
    st.wall = Duration::from_secs(5);
    st
}

/// `h` cycles the histogram through e2e latency, TTFT, ITL, input and output lengths
/// (`H` back), the title says which, the scale key holds for each, and a view without
/// data says so in a line.
#[test]
fn the_histogram_switches_between_latencies_and_lengths() {
    let s = seed();
    let app = |st: StageStats| app_with(&s, &[snapshot(vec![], Some(st), 5000, false)]);
    let mut streamed = app(streamed_stage(&s, 1, 400));
    let titles = [" e2e latency · 10-way", " TTFT · 10-way", " ITL · 10-way", " input tokens · 10-way", " output tokens · 10-way"];
    for (i, title) in titles.iter().enumerate() {
        let text = draw(&streamed, 80, 24).backend().to_string();
        assert!(text.contains(title), "{title}:\n{text}");
        assert!(text.contains("p50") && text.contains("p99"), "{title}:\n{text}");
        let unit = if i >= 3 { " tok" } else { " ms" };
        assert!(text.contains(&format!("{unit} ")), "{title}: bars labelled in{unit}\n{text}");
        if i == 1 {
            insta::assert_snapshot!("hist_ttft_80x24", draw(&streamed, 80, 24).backend());
        }
        if i == 3 {
            insta::assert_snapshot!("hist_input_80x24", draw(&streamed, 80, 24).backend());
            streamed.on_key(key(KeyCode::Char('l')));
            let text = draw(&streamed, 80, 24).backend().to_string();
            assert!(text.contains(" input tokens · 10-way (live) · linear "), "{text}");
            insta::assert_snapshot!("hist_input_linear_80x24", draw(&streamed, 80, 24).backend());
            streamed.on_key(key(KeyCode::Char('l')));
        }
        streamed.on_key(key(KeyCode::Char('h')));
    }
    assert!(draw(&streamed, 80, 24).backend().to_string().contains(" e2e latency · "), "wraps around");
    streamed.on_key(key(KeyCode::Char('H')));
    assert!(draw(&streamed, 80, 24).backend().to_string().contains(" output tokens · "), "H steps back");

    // The seed's replies do not stream: TTFT and ITL say so instead of drawing nothing.
    let mut plain = app(stage(&s, 1, 60, None, false));
    for (view, says) in [("TTFT", "no TTFT: the stages do not stream"), ("ITL", "no ITL: the stages do not stream")] {
        plain.on_key(key(KeyCode::Char('h')));
        let text = draw(&plain, 80, 24).backend().to_string();
        assert!(text.contains(&format!(" {view} · 10-way")) && text.contains(says), "{text}");
    }
    // Before any success, every view waits for the first response.
    let mut waiting = app(stage(&s, 1, 0, None, false));
    for _ in 0..5 {
        waiting.on_key(key(KeyCode::Char('h')));
        assert!(draw(&waiting, 80, 24).backend().to_string().contains("waiting for the first response"));
    }
    // Replies with no token count at all: output lengths are all zero, none to draw.
    let mut uncounted = stage(&s, 1, 0, None, false);
    uncounted.record(&RequestRecord { usage: None, ..record(90.0, Outcome::Ok) });
    let mut uncounted = app(uncounted);
    uncounted.hist = llmload::tui::HistView::Output;
    let text = draw(&uncounted, 80, 24).backend().to_string();
    assert!(text.contains("no output lengths: no reply"), "{text}");
}

/// Maximal runs of digits (with `.`, `,` and a k/M/G/T/P/E or % suffix) not glued to a
/// word before them ("p50", "http_429" are names, not figures).
fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let glued = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !chars[i].is_ascii_digit() || glued {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || ".,".contains(chars[i])) {
            i += 1;
        }
        if i < chars.len() && "kMGTPE%".contains(chars[i]) {
            i += 1;
        }
        let cut = i < chars.len() && chars[i] == '…';
        out.push(format!("{}{}", chars[start..i].iter().collect::<String>(), if cut { "…" } else { "" }));
    }
    out
}

/// Every figure drawn at `w`×`h` is whole: it is also a figure of the same frame drawn
/// 400 columns wide (where nothing needs to give way) and no figure ends in an ellipsis.
fn assert_figures_whole(app: &App, w: u16, h: u16) -> String {
    let text = draw(app, w, h).backend().to_string();
    let wide: std::collections::BTreeSet<String> = numbers(&draw(app, 400, h).backend().to_string()).into_iter().collect();
    for n in numbers(&text) {
        assert!(!n.ends_with('…') && wide.contains(&n), "{n:?} at {w}x{h} is not a whole figure:\n{text}");
    }
    text
}

/// `l` doubled `times` times: counts in the millions without recording each.
fn doubled<T: Clone>(mut l: T, times: u32, merge: impl Fn(&mut T, &T)) -> T {
    for _ in 0..times {
        let c = l.clone();
        merge(&mut l, &c);
    }
    l
}

/// The weekend spike at the scale a long run reaches: hundreds of thousands of 429s,
/// millions of requests, retries, limiter holds and tokens.
fn weekend_at_scale() -> (Scenario, Vec<StageStats>, StageStats) {
    let s = Scenario::parse(include_str!("../scenarios/weekend-spike.toml"), "weekend-spike.toml", None).unwrap();
    let base = |i: usize| {
        let mut st = streamed_stage(&s, i, 1000);
        st.ttft = llmload::metrics::Latency::default();
        st.itl = llmload::metrics::Latency::with_digits(2);
        st.latency = doubled(st.latency.clone(), 13, |a, b| a.merge(b));
        st.input_len = doubled(st.input_len.clone(), 13, |a, b| a.merge(b));
        st.output_len = doubled(st.output_len.clone(), 13, |a, b| a.merge(b));
        st.wall = Duration::from_secs(8);
        st.finished = true;
        st
    };
    let mut spike = base(0);
    (spike.ok, spike.failed) = (3_456, 193_297);
    spike.failures.clear();
    spike.failures.insert(FailureKind::Http429, 190_001);
    spike.failures.insert(FailureKind::Http5xx, 3_296);
    let mut retried = base(1);
    (retried.ok, retried.failed) = (2_345_678, 5_432);
    retried.failures.insert(FailureKind::Http429, 5_432);
    retried.retries_by_cause.insert(FailureKind::Http429, 1_234_567);
    (retried.retried, retried.recovered) = (456_789, 456_000);
    let mut limited = base(2);
    (limited.ok, limited.failed, limited.cancelled) = (12_345_678, 193_297, 1_234);
    limited.started = limited.ok + limited.failed + limited.cancelled + 50;
    limited.finished = false;
    limited.failures.insert(FailureKind::Http429, 193_297);
    limited.retries_by_cause.insert(FailureKind::Http429, 23_456_789);
    (limited.retried, limited.recovered) = (9_876_543, 9_800_000);
    limited.limited = 9_876_543;
    limited.limiter_wait.record(Duration::from_millis(120));
    (limited.output_tokens, limited.input_tokens) = (740_740_680, 1_234_567_890);
    for st in [&mut spike, &mut retried] {
        (st.output_tokens, st.input_tokens) = (st.ok * 60, st.ok * 2_100);
        st.started = st.ok + st.failed;
    }
    (s, vec![spike, retried], limited)
}

/// Issue 13: at 80×24 the weekend spike's throughput panel read `err 193` for 193,297
/// errors. Counts are abbreviated one way everywhere and a line that still does not
/// fit loses whole fields: no figure is ever cut, in any panel, at any size.
#[test]
fn huge_figures_are_never_cut() {
    let (s, finished, current) = weekend_at_scale();
    let snap = |cur: Option<StageStats>, done: bool| {
        Arc::new(Snapshot {
            finished: finished.iter().cloned().map(Arc::new).collect(),
            current: cur,
            total_stages: 3,
            done,
            elapsed: Duration::from_secs(22),
            generator: None,
            server: Vec::new(),
            aborted: None,
        })
    };
    let mut live = app_with(&s, &[snap(Some(current.clone()), false)]);
    let text = assert_figures_whole(&live, 80, 24);
    for want in ["err 193k", "ok 12.3M", "92.5M tok/s out", "http_429         193k", "23.4M", "stage 3/3"] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    insta::assert_snapshot!("huge_80x24", draw(&live, 80, 24).backend());
    // The first stage, finished, in the errors panel and the histogram.
    live.on_key(key(KeyCode::Left));
    live.on_key(key(KeyCode::Left));
    let text = assert_figures_whole(&live, 80, 24);
    assert!(text.contains("errors · spike, no retries") && text.contains("193k (98.2%)"), "{text}");
    let mut done = app_with(&s, &[snap(None, true)]);
    let mut open = current.clone();
    open.info.rate = Some(25_000.0);
    open.behind = Duration::from_millis(12_345_600);
    let mut open = app_with(&s, &[snap(Some(open), false)]);
    for app in [&mut live, &mut done, &mut open] {
        for _ in 0..5 {
            for (w, h) in [(80, 24), (100, 30), (120, 40), (160, 48)] {
                assert_figures_whole(app, w, h);
            }
            app.on_key(key(KeyCode::Char('h')));
        }
    }
    let text = draw(&open, 160, 48).backend().to_string();
    assert!(text.contains("25k req/s offered") && text.contains("12.3k s behind") && text.contains("err 193k"), "{text}");
}

/// llmload near saturation says so on screen, in a few words; a healthy run does not.
#[test]
fn a_saturated_generator_is_shown() {
    let s = Scenario::parse(include_str!("../scenarios/seed-comparison.toml"), "seed-comparison.toml", None).unwrap();
    let running = stage(&s, 1, 40, None, false);
    let healthy = llmload::metrics::HealthView {
        cores: 2,
        cpu_mean: 0.3,
        cpu_busiest: 0.4,
        machine_busiest: Some(0.5),
        late_p50: Duration::from_micros(80),
        late_p99: Duration::from_micros(900),
        late_max: Duration::from_millis(2),
        ticks: 300,
    };
    let with = |g: llmload::metrics::HealthView| {
        let mut app = App::new(&s, "mock", false);
        let snap = Snapshot { generator: Some(g), ..(*snapshot(vec![], Some(running.clone()), 1000, false)).clone() };
        app.on_snapshot(Arc::new(snap));
        draw(&app, 80, 24).backend().to_string()
    };
    assert!(!with(healthy.clone()).contains("llmload busy"));
    let busy = with(llmload::metrics::HealthView { cpu_busiest: 1.9, ..healthy });
    assert!(busy.contains("⚠ llmload busy 1.9/2 cores"), "{busy}");
}

/// A task stage: the progress counts tasks, the status line says how many are in
/// flight and answered, and the histogram gains a task latency view (only then).
#[test]
fn a_task_stage_shows_its_tasks_and_their_latency() {
    use llmload::metrics::tasks::{StepDone, TaskDone, TaskStats};
    let s = seed();
    let mut st = stage(&s, 1, 40, None, false);
    st.info.task = Some(("rag".into(), vec!["analyse".into(), "answer".into()]));
    st.info.planned_requests = Some(20);
    let mut t = TaskStats { started: 7, ..TaskStats::default() };
    for ms in [300, 400, 500] {
        t.ended(
            &TaskDone { ok: true, latency: Duration::from_millis(ms), steps: vec![StepDone::default(); 2], ..TaskDone::default() },
            None,
        );
    }
    st.tasks = Some(Box::new(t));
    let mut app = app_with(&s, &[snapshot(vec![], Some(st), 5000, false)]);
    let text = draw(&app, 120, 30).backend().to_string();
    assert!(text.contains("3/20 tasks"), "{text}");
    assert!(text.contains("tasks in flight 4") && text.contains("answered 3"), "{text}");
    for _ in 0..5 {
        app.on_key(key(KeyCode::Char('h')));
    }
    let text = draw(&app, 120, 30).backend().to_string();
    assert!(text.contains(" task latency · 10-way") && text.contains("p50") && text.contains(" ms "), "{text}");
    app.on_key(key(KeyCode::Char('h')));
    assert!(draw(&app, 120, 30).backend().to_string().contains(" e2e latency · "), "wraps around");
}
