//! Stopping a run through the library: requests in flight end as `cancelled`, exactly
//! once each, and the partial stage is kept. Traffic goes to a listener started here.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_stop_lets_requests_in_flight_finish() {
    // The embedded mock answers in 1 s; a soft stop once 4 requests are in flight
    // lets exactly those 4 finish and starts no more.
    let text = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[mock]\nbase_latency_ms = 1000\nper_inflight_ms = 0\n\
                [prompts]\nlist = [\"x\"]\n[[stage]]\nname = \"s\"\nconcurrency = 4\nrequests = 100\n";
    let scenario = Scenario::parse(text, "inline.toml", None).unwrap();
    let stop = Stop::default();
    let soft = stop.soft.clone();
    let run = tokio::spawn(run_with_stop(scenario, RunOptions::quiet(), stop));
    // Well inside the first 1 s round: the 4 first requests are out, none back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    soft.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops").unwrap().unwrap();
    let s = &outcome.result.stages[0];
    assert!(s.interrupted);
    assert_eq!((s.requests.started, s.requests.ok, s.requests.cancelled), (4, 4, 0));
}
