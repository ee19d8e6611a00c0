//! Stopping a run through the library: requests in flight end as `cancelled`, exactly
//! once each, and the partial stage is kept. Traffic goes to a listener started here.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::Notify;

use llmload::engine::Stop;
use llmload::run::{RunOptions, run_with_stop};
use llmload::scenario::Scenario;

/// Accepts `n` connections and holds them open without answering; reports when all
/// `n` are in.
fn black_hole(n: usize) -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(n) {
            held.push(conn.unwrap());
        }
        let _ = tx.send(());
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    (url, rx)
}

fn scenario(url: &str, concurrency: u32) -> Scenario {
    let text = format!(
        "[target]\nbase_url = \"{url}\"\nmodel = \"m\"\ntimeout = \"30s\"\n[prompts]\nlist = [\"x\"]\n\
         [[stage]]\nname = \"held\"\nconcurrency = {concurrency}\nrequests = 1000\n[[stage]]\nname = \"never\"\nrequests = 1\n"
    );
    Scenario::parse(&text, "inline.toml", None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_stop_cancels_every_request_in_flight_once() {
    let (url, all_in) = black_hole(8);
    let stop = Stop::default();
    let run = tokio::spawn(run_with_stop(scenario(&url, 8), RunOptions::quiet(), stop.clone()));
    // All 8 workers have a request on the wire: stop now.
    tokio::task::spawn_blocking(move || all_in.recv_timeout(Duration::from_secs(20)).expect("8 connections")).await.unwrap();
    stop.soft.cancel();
    stop.hard.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops promptly").unwrap().unwrap();
    assert!(outcome.interrupted);
    let r = &outcome.result;
    assert!(r.interrupted);
    assert_eq!(r.stages.len(), 1, "the next stage never starts");
    let s = &r.stages[0];
    assert!(s.interrupted);
    assert_eq!((s.requests.started, s.requests.ok, s.requests.failed, s.requests.cancelled), (8, 0, 0, 8));
    assert!(s.latency_ms.is_none());
}

/// A server that holds every request until released, and says how many it holds.
fn gate_server() -> (String, Arc<AtomicUsize>, Arc<Notify>) {
    let held = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (h, r) = (held.clone(), release.clone());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let (h, r) = (h.clone(), r.clone());
            async move {
                let released = r.notified();
                h.fetch_add(1, Ordering::SeqCst);
                released.await;
                axum::Json(
                    serde_json::json!({"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}),
                )
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
    });
    (url, held, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_stop_lets_requests_in_flight_finish() {
    let (url, held, release) = gate_server();
    let stop = Stop::default();
    let soft = stop.soft.clone();
    let run = tokio::spawn(run_with_stop(scenario(&url, 4), RunOptions::quiet(), stop));
    // All 4 workers have a request held by the server: stop, then let those 4 answer.
    while held.load(Ordering::SeqCst) < 4 {
        tokio::task::yield_now().await;
    }
    soft.cancel();
    release.notify_waiters();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops").unwrap().unwrap();
    let s = &outcome.result.stages[0];
    assert!(s.interrupted);
    assert_eq!((s.requests.started, s.requests.ok, s.requests.cancelled), (4, 4, 0));
    assert_eq!(held.load(Ordering::SeqCst), 4, "no request started after the stop");
}

/// A stop while requests wait for the rate limiter's slots: they are never sent, the
/// stage and the run are marked interrupted (work was left undone), nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_rate_limiter_waits_marks_the_stage_interrupted() {
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 1\nper_inflight_ms = 0\n\
                [prompts]\nlist = [\"x\"]\n[rate_limit]\nrpm = 60\n\
                [[stage]]\nconcurrency = 5\nrequests = 5\n";
    let scenario = Scenario::parse(text, "inline.toml", None).unwrap();
    let stop = Stop::default();
    // The first request goes at once, the other four wait 1–4 s for their slots: stop
    // as soon as the first has ended.
    let watcher: llmload::run::Watcher = Box::new(|mut rx, stop: Stop| {
        tokio::spawn(async move {
            loop {
                if rx.borrow_and_update().current.as_ref().is_some_and(|s| s.done() >= 1) {
                    stop.soft.cancel();
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
    let outcome = tokio::time::timeout(Duration::from_secs(20), run_with_stop(scenario, opts, stop)).await.expect("stops").unwrap();
    assert!(outcome.interrupted);
    let s = &outcome.result.stages[0];
    assert!(s.interrupted, "four requests were left unsent");
    assert_eq!((s.requests.started, s.requests.ok), (1, 1));
    assert!(s.wall_time_s < 1.0, "the waits were abandoned, not sat out: {}", s.wall_time_s);
}

/// A stop during a long ramp ends the run at once (not at the ramp's end), with the
/// stage marked interrupted: its window never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_ramp_does_not_wait_for_its_end() {
    for load in ["concurrency = 4", "rate = 20"] {
        let text = format!(
            "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 1\nper_inflight_ms = 0\n\
             [prompts]\nlist = [\"x\"]\n[[stage]]\n{load}\nramp = \"60s\"\nduration = \"10s\"\n"
        );
        let scenario = Scenario::parse(&text, "inline.toml", None).unwrap();
        let watcher: llmload::run::Watcher = Box::new(|mut rx, stop: Stop| {
            tokio::spawn(async move {
                loop {
                    if rx.borrow_and_update().current.as_ref().is_some_and(|s| s.warmup_done >= 1) {
                        stop.soft.cancel();
                        return;
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            })
        });
        let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
        let t = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(20), run_with_stop(scenario, opts, Stop::default()))
            .await
            .expect("a stop must not wait out a 60 s ramp")
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{load}: {:?}", t.elapsed());
        assert!(outcome.interrupted, "{load}");
        assert!(outcome.result.stages[0].interrupted, "{load}");
        assert_eq!(outcome.result.stages[0].requests.started, 0, "{load}");
    }
}

/// A stop between the points of an automatic sweep: every point listed in the result's
/// scenario ran and has its stage, and the answer says the sweep was stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_automatic_sweep_keeps_what_ran() {
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 20\nper_inflight_ms = 0\n\
                [prompts]\nlist = [\"x\"]\n[sweep]\nconcurrency = \"auto\"\nmax = 64\nrequests = 64\n";
    let scenario = Scenario::parse(text, "inline.toml", None).unwrap();
    let watcher: llmload::run::Watcher = Box::new(|mut rx, stop: Stop| {
        tokio::spawn(async move {
            loop {
                if rx.borrow_and_update().finished.len() >= 2 {
                    stop.soft.cancel();
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    });
    let opts = RunOptions { watcher: Some(watcher), ..RunOptions::quiet() };
    let outcome =
        tokio::time::timeout(Duration::from_secs(30), run_with_stop(scenario, opts, Stop::default())).await.expect("stops").unwrap();
    assert!(outcome.interrupted);
    let r = &outcome.result;
    let listed = r.scenario["stages"].as_array().unwrap().len();
    assert!((2..=3).contains(&listed), "{listed} points listed");
    assert_eq!(r.stages.len(), listed, "every point listed has its stage");
    assert_eq!(r.scenario["sweep"]["points"].as_array().unwrap().len(), listed);
    let summary = &r.sweep.as_ref().unwrap().summary;
    assert!(summary.contains("stopped"), "{summary}");
    assert!(!summary.contains("raise"), "no advice to sweep further after a stop: {summary}");
}
