//! Cost of one dashboard frame (not a test): a realistic mid-run state — a 50-way
//! stage with 200k latencies spread over three decades — drawn to an in-memory
//! backend. `cargo bench --bench render`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmload::engine::Engine;
use llmload::metrics::{Snapshot, StageStats};
use llmload::model::{Outcome, RequestRecord, Usage};
use llmload::scenario::Scenario;
use llmload::tui::{App, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn main() {
    let s = Scenario::parse(include_str!("../scenarios/seed-comparison.toml"), "seed.toml", None).unwrap();
    let mut stages = Vec::new();
    for i in 0..4 {
        let mut st = StageStats::new(Engine::stage_info(&s, i, &s.stages[i]));
        for k in 0..200_000u64 {
            // 0.2 ms … 200 ms, skewed like real latencies.
            let us = 200 + (k * 7919 % 1000).pow(2) / 5;
            st.record(&RequestRecord {
                outcome: Outcome::Ok,
                latency: Duration::from_micros(us),
                status: Some(200),
                bytes: 400,
                usage: Some(Usage { prompt_tokens: Some(6), completion_tokens: Some(16), reasoning_tokens: None, cached_tokens: None }),
                detail: None,
                ..RequestRecord::default()
            });
        }
        st.started = 200_000;
        st.wall = Duration::from_secs(4);
        stages.push(st);
    }
    let current = stages.pop();
    let mut app = App::new(&s, "mock", true);
    for k in 0..600u64 {
        app.on_snapshot(Arc::new(Snapshot {
            finished: stages.iter().cloned().map(Arc::new).collect(),
            current: current.clone(),
            total_stages: 4,
            done: false,
            elapsed: Duration::from_millis(100 * k),
            generator: None,
            server: Vec::new(),
            aborted: None,
        }));
    }
    for (w, h) in [(80, 24), (160, 48)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        let n = 500;
        let t0 = Instant::now();
        for _ in 0..n {
            t.draw(|f| render(f, &app)).unwrap();
        }
        let per = t0.elapsed() / n;
        println!(
            "{w}x{h}: {:.0} µs per frame ({:.2} % of one core at 10 frames/s)",
            per.as_secs_f64() * 1e6,
            per.as_secs_f64() * 10.0 * 100.0
        );
    }
    // The snapshot side: what the aggregator pays per publish for the live stage.
    let cur = current.unwrap();
    let n = 500;
    let t0 = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cur.clone());
    }
    println!("stage snapshot clone: {:.0} µs", (t0.elapsed() / n).as_secs_f64() * 1e6);
}
