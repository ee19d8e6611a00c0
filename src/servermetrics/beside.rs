//! The server's figures over one stage, beside the client's: each endpoint's window
//! (`summary`), the client's TTFT and token counts against the server's (what differs
//! is the network, the client and anything in front of the engine), its gauges on the
//! stage's own seconds (the `t_s` of the stage's `series`, to join on), the joules a
//! token took where it reports energy, and what bound it (`diagnose`).

use super::diagnose::{ClientFigures, bound};
use super::scrape::{Point, Scraped, ServerRead};
use super::summary::{Beside, Pair, ServerSecond, StageServer, stage};

/// When a stage ran, Unix seconds: its start (warm-up included), its window's opening
/// and close, its end (after a cooldown); and how many seconds its `series` has.
#[derive(Debug, Clone, Copy)]
pub struct StageTimes {
    pub start: f64,
    pub from: f64,
    pub to: f64,
    pub end: f64,
    pub seconds: usize,
}

/// Each endpoint's figures over a stage, beside the client's. A server's bound is
/// judged with the GPUs' utilization from any endpoint (a DCGM exporter beside it) when
/// it reports none itself.
pub fn per_stage(read: &ServerRead, times: StageTimes, client: &ClientFigures) -> Vec<StageServer> {
    let mut windows: Vec<StageServer> = read
        .scraped
        .iter()
        .filter_map(|x| {
            let mut w = stage(x, times.from, times.to)?;
            w.beside_client = beside(&w, client);
            w.seconds = seconds(x, times);
            let (joules, tokens) = (w.gpu_energy_j.map_or(0.0, |e| e.delta), client.output_tokens as f64);
            if joules > 0.0 && tokens > 0.0 {
                (w.joules_per_output_token, w.output_tokens_per_joule) = (Some(joules / tokens), Some(tokens / joules));
            }
            Some(w)
        })
        .collect();
    let gpus = windows.iter().find_map(|w| w.gpu_util);
    for w in &mut windows {
        let judged = StageServer { gpu_util: w.gpu_util.or(gpus), ..w.clone() };
        w.bound = bound(&judged, client);
    }
    windows
}

fn beside(w: &StageServer, c: &ClientFigures) -> Option<Beside> {
    let b = Beside {
        ttft_p50_ms: c.ttft_p50.zip(w.ttft_ms).map(|(c, s)| Pair::of(c, s.p50)),
        ttft_p99_ms: c.ttft_p99.zip(w.ttft_ms).map(|(c, s)| Pair::of(c, s.p99)),
        prompt_tokens: w.prompt_tokens.map(|s| Pair::of(c.input_tokens as f64, s.delta)),
        output_tokens: w.generation_tokens.map(|s| Pair::of(c.output_tokens as f64, s.delta)),
    };
    (b != Beside::default()).then_some(b)
}

/// The stage's seconds that a scrape fell in, each read from its last scrape.
fn seconds(x: &Scraped, t: StageTimes) -> Vec<ServerSecond> {
    let mut out: Vec<ServerSecond> = Vec::new();
    let mut before: Option<&Point> = x.points.iter().rev().find(|p| p.at < t.start);
    // Its last second may be partial: a scrape after the stage ended is the next one's.
    let end = t.end.min(t.start + t.seconds as f64);
    for (i, p) in x.points.iter().enumerate().filter(|(_, p)| p.at >= t.start && p.at < end) {
        let t_s = (p.at - t.start) as u32;
        let r = &p.reading;
        let rate = before.filter(|b| p.at > b.at).and_then(|b| Some((r.generation_tokens? - b.reading.generation_tokens?) / (p.at - b.at)));
        let second = ServerSecond {
            t_s,
            running: r.running,
            waiting: r.waiting,
            kv_cache_usage: r.kv_cache_usage,
            gpu_util: r.gpu_util,
            gpu_power_w: r.gpu_power_w,
            generation_tokens_per_s: rate,
        };
        // A second scraped twice (at a window's opening or close) keeps its last.
        match out.last_mut() {
            Some(last) if last.t_s == t_s => *last = second,
            _ => out.push(second),
        }
        before = x.points.get(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servermetrics::vocab::Reading;

    #[test]
    fn gauges_sit_on_the_stages_seconds_and_the_client_beside_the_server() {
        let at = |t: f64, running: f64, tokens: f64| Point {
            at: t,
            reading: Reading { running: Some(running), generation_tokens: Some(tokens), ..Reading::default() },
        };
        let s = Scraped {
            name: "server".into(),
            points: vec![at(99.5, 0.0, 0.0), at(100.25, 1.0, 0.0), at(100.75, 2.0, 70.0), at(101.25, 3.0, 120.0), at(103.5, 0.0, 400.0)],
            ..Scraped::default()
        };
        let times = StageTimes { start: 100.0, from: 100.125, to: 101.5, end: 102.75, seconds: 3 };
        let got = seconds(&s, times);
        let t: Vec<(u32, Option<f64>)> = got.iter().map(|x| (x.t_s, x.running)).collect();
        assert_eq!(t, [(0, Some(2.0)), (1, Some(3.0))], "second 0 keeps its last scrape; second 2 had none; 103.5 is past the stage");
        assert_eq!(got[0].generation_tokens_per_s, Some(140.0), "70 tokens in the 0.5 s since the scrape before");
        assert_eq!(got[1].generation_tokens_per_s, Some(100.0));
        let read = ServerRead { scraped: vec![s], note: None };
        let client = ClientFigures { output_tokens: 118, input_tokens: 40, ..ClientFigures::default() };
        let w = &per_stage(&read, times, &client)[0];
        let b = w.beside_client.as_ref().unwrap();
        assert_eq!(b.output_tokens, Some(Pair { client: 118.0, server: 120.0, difference: -2.0 }));
        assert_eq!((b.prompt_tokens, b.ttft_p50_ms), (None, None), "the server said no prompt count, the client no TTFT");
    }
}
