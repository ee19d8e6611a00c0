//! What limited the server over a stage, in one sentence, from its own figures and the
//! client's — or nothing, where the figures do not say. The rules, in order:
//! - requests waited and the KV cache was ≥ 90 % full: the KV cache bound it;
//! - requests waited with the KV cache not full: admission bound it (the server runs at
//!   most that many at once: `max_num_seqs`, slots, `--capacity`);
//! - no request waited but the KV cache was ≥ 90 % full: it is at its limit;
//! - no request waited and the GPUs were ≥ 90 % busy: compute bound it;
//! - no request waited but a token took ≥ 1.5× (and 2 ms) as long as in the run's first
//!   stage (the client's ITL p50): decoding the larger batch bound it;
//! - the client's TTFT p50 exceeds the server's by more than half and 50 ms: the time
//!   went before the engine (a gateway, the network, the client);
//! - else, with requests running and none waiting: the server kept up.
//!
//! Where the server reports queue time and TTFT, the sentence says how much of the TTFT
//! was queue.

use super::summary::StageServer;

/// KV-cache usage from which a queue is blamed on it.
const KV_FULL: f64 = 0.9;
/// GPU utilization (%) from which a stage with no queue is compute-bound.
const GPU_BUSY: f64 = 90.0;

/// What the client saw of a stage.
#[derive(Debug, Clone, Default)]
pub struct ClientFigures {
    /// Streams: TTFT p50 and p99, ITL p50, ms.
    pub ttft_p50: Option<f64>,
    pub ttft_p99: Option<f64>,
    pub itl_p50: Option<f64>,
    /// Of successful requests: usage where sent, else counted here.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The run's first stage's ITL p50 and name (none for the first stage itself).
    pub first_itl_p50: Option<(f64, String)>,
}

/// Slower by this much than the first stage, a token's time is the batch's doing.
const ITL_GREW: f64 = 1.5;

/// The sentence for `s`, with what the client saw of the stage.
pub fn bound(s: &StageServer, client: &ClientFigures) -> Option<String> {
    let client_ttft_p50 = client.ttft_p50;
    let waited = s.waiting.filter(|w| w.max > 0.0);
    let running = s.running?;
    let queue_part = match (s.queue_ms, s.ttft_ms) {
        (Some(q), Some(t)) if t.mean > 0.0 => format!("; of its TTFT (mean {:.0} ms), {:.0} ms was queue time", t.mean, q.mean),
        _ => String::new(),
    };
    if let Some(w) = waited {
        let queued = format!("requests queued (waiting p50 {:.0}, max {:.0})", w.p50, w.max);
        if let Some(kv) = s.kv_cache_usage.filter(|k| k.max >= KV_FULL) {
            return Some(format!("{queued} with the KV cache {:.0} % full: the KV cache bound it{queue_part}", kv.max * 100.0));
        }
        return Some(format!(
            "{queued} while at most {:.0} ran, the KV cache {}: the server admits at most {:.0} at once{queue_part}",
            running.max,
            s.kv_cache_usage.map_or("not reported".to_string(), |k| format!("{:.0} % full at most", k.max * 100.0)),
            running.max
        ));
    }
    if let Some(kv) = s.kv_cache_usage.filter(|k| k.max >= KV_FULL) {
        return Some(format!(
            "no request waited yet, but the KV cache was {:.0} % full with {:.0} running: at its limit, more load will queue",
            kv.max * 100.0,
            running.max
        ));
    }
    if let Some(g) = s.gpu_util.filter(|g| g.mean >= GPU_BUSY) {
        return Some(format!("no request waited with the GPUs {:.0} % busy: compute bound it", g.mean));
    }
    if let (Some(itl), Some((first, name))) = (client.itl_p50, &client.first_itl_p50)
        && itl >= first * ITL_GREW + 2.0
    {
        return Some(format!(
            "no request waited ({:.0} running at most), but a token took {:.1}× as long as in {name} (ITL p50 {itl:.0} ms against {first:.0} ms): decoding the larger batch bound it",
            running.max,
            itl / first
        ));
    }
    if let (Some(client), Some(server)) = (client_ttft_p50, s.ttft_ms.map(|t| t.mean))
        && client > server * 1.5 + 50.0
    {
        return Some(format!(
            "the server's TTFT (mean {server:.0} ms) is far under the client's (p50 {client:.0} ms): the time went before the engine (a gateway, the network, the client — see the generator's self-check)"
        ));
    }
    (running.max > 0.0).then(|| format!("no request waited ({:.0} running at most): the server kept up", running.max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servermetrics::summary::{Gauge, Latency};

    fn g(p50: f64, max: f64) -> Option<Gauge> {
        Some(Gauge { mean: p50, p50, max })
    }

    fn stage(running: (f64, f64), waiting: (f64, f64)) -> StageServer {
        StageServer {
            endpoint: "server".into(),
            server: None,
            scrapes: 5,
            running: g(running.0, running.1),
            waiting: g(waiting.0, waiting.1),
            kv_cache_usage: None,
            gpu_util: None,
            gpu_power_w: None,
            gpu_sm_clock_mhz: None,
            gpus: Vec::new(),
            prompt_tokens: None,
            generation_tokens: None,
            preemptions: None,
            gpu_energy_j: None,
            prefix_hit_rate: None,
            ttft_ms: None,
            e2e_ms: None,
            queue_ms: None,
            itl_ms: None,
            prefill_ms: None,
            decode_ms: None,
            joules_per_output_token: None,
            output_tokens_per_joule: None,
            beside_client: None,
            seconds: Vec::new(),
            bound: None,
        }
    }

    #[test]
    fn each_bound_is_named_by_its_rule() {
        let none = ClientFigures::default();
        let ttft = |p50| ClientFigures { ttft_p50: Some(p50), ..ClientFigures::default() };
        let kv = StageServer { kv_cache_usage: g(0.95, 0.97), ..stage((8.0, 12.0), (11.0, 19.0)) };
        assert!(bound(&kv, &none).unwrap().contains("KV cache 97 % full: the KV cache bound it"), "{:?}", bound(&kv, &none));
        let admit = stage((8.0, 8.0), (20.0, 24.0));
        let said = bound(&admit, &none).unwrap();
        assert!(
            said.contains(
                "requests queued (waiting p50 20, max 24) while at most 8 ran, the KV cache not reported: the server admits at most 8"
            ),
            "{said}"
        );
        let lat = |mean| Some(Latency { count: 10.0, mean, p50: mean, p99: mean });
        let queued = StageServer { ttft_ms: lat(480.0), queue_ms: lat(420.0), ..stage((8.0, 8.0), (3.0, 5.0)) };
        assert!(bound(&queued, &none).unwrap().ends_with("of its TTFT (mean 480 ms), 420 ms was queue time"));
        let full = StageServer { kv_cache_usage: g(0.9, 1.0), ..stage((4.0, 4.0), (0.0, 0.0)) };
        assert!(bound(&full, &none).unwrap().contains("KV cache was 100 % full with 4 running: at its limit"));
        let gpu = StageServer { gpu_util: g(99.0, 100.0), ..stage((4.0, 6.0), (0.0, 0.0)) };
        assert!(bound(&gpu, &none).unwrap().contains("compute bound it"));
        let before = StageServer { ttft_ms: lat(40.0), ..stage((2.0, 2.0), (0.0, 0.0)) };
        assert!(bound(&before, &ttft(900.0)).unwrap().contains("the time went before the engine"));
        assert!(bound(&before, &ttft(60.0)).unwrap().contains("the server kept up"));
        assert_eq!(bound(&stage((0.0, 0.0), (0.0, 0.0)), &none), None, "nothing ran: nothing claimed");
        let itl = |p50| ClientFigures { itl_p50: Some(p50), first_itl_p50: Some((10.0, "1-way".into())), ..ClientFigures::default() };
        let batch = stage((8.0, 8.0), (0.0, 0.0));
        let said = bound(&batch, &itl(25.0)).unwrap();
        assert!(said.contains("a token took 2.5× as long as in 1-way (ITL p50 25 ms against 10 ms): decoding the larger batch"), "{said}");
        assert!(bound(&batch, &itl(16.0)).unwrap().contains("the server kept up"), "under 1.5×: not the batch");
    }
}
