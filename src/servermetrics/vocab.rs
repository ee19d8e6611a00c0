//! Each server's metric names mapped to one vocabulary, so every view is server-agnostic:
//! requests running and waiting, KV-cache usage (0–1), the prefix cache's queries and
//! hits, preemptions, prompt and generation tokens (counters), the server's TTFT, e2e,
//! queue-time and inter-token histograms (seconds), and a GPU's utilization, power,
//! energy and memory (DCGM). Every name was read in its project's source; the captured
//! expositions with their sources are `tests/fixtures/metrics/*.prom`, and
//! docs/server-metrics.md lists them.

use serde::{Deserialize, Serialize};

use super::parse::{Exposition, Hist};

/// Which server's names an exposition carries (the first found, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    Vllm,
    Sglang,
    Tgi,
    LlamaCpp,
    Triton,
    Dcgm,
}

impl Server {
    /// By the names an exposition carries.
    pub fn of(e: &Exposition) -> Option<Server> {
        let has = |prefix: &str| e.families.keys().any(|k| k.starts_with(prefix));
        [
            ("vllm:", Server::Vllm),
            ("sglang:", Server::Sglang),
            ("tgi_", Server::Tgi),
            ("llamacpp:", Server::LlamaCpp),
            ("nv_", Server::Triton),
            ("DCGM_FI_", Server::Dcgm),
        ]
        .into_iter()
        .find(|(p, _)| has(p))
        .map(|(_, s)| s)
    }
}

/// One scrape in the vocabulary; None where the server has no such figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    /// 0–1.
    pub kv_cache_usage: Option<f64>,
    /// Counters (tokens, for vLLM and SGLang).
    pub prefix_queries: Option<f64>,
    pub prefix_hits: Option<f64>,
    pub preemptions: Option<f64>,
    pub prompt_tokens: Option<f64>,
    pub generation_tokens: Option<f64>,
    /// Cumulative histograms, in seconds.
    pub ttft: Option<Hist>,
    pub e2e: Option<Hist>,
    pub queue: Option<Hist>,
    pub itl: Option<Hist>,
    /// A request's time in prefill and in decode (vLLM).
    pub prefill: Option<Hist>,
    pub decode: Option<Hist>,
    /// GPUs (DCGM): utilization % and SM clock MHz (means over GPUs), power W and memory
    /// used MiB (sums), energy J (a counter, summed); and each GPU's own.
    pub gpu_util: Option<f64>,
    pub gpu_power_w: Option<f64>,
    pub gpu_energy_j: Option<f64>,
    pub gpu_memory_mib: Option<f64>,
    pub gpu_sm_clock_mhz: Option<f64>,
    pub gpus: Vec<Gpu>,
}

/// One GPU's figures (DCGM), named by its `hostname` and `gpu` labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gpu {
    pub gpu: String,
    pub util: Option<f64>,
    pub power_w: Option<f64>,
    pub memory_mib: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
}

/// Where a DCGM family's value goes in a [`Gpu`].
type GpuField = fn(&mut Gpu) -> &mut Option<f64>;

/// Each GPU of DCGM's families, in the order first seen.
fn gpus(e: &Exposition) -> Vec<Gpu> {
    let mut out: Vec<Gpu> = Vec::new();
    let families: [(&str, GpuField); 4] = [
        ("DCGM_FI_DEV_GPU_UTIL", |g| &mut g.util),
        ("DCGM_FI_DEV_POWER_USAGE", |g| &mut g.power_w),
        ("DCGM_FI_DEV_FB_USED", |g| &mut g.memory_mib),
        ("DCGM_FI_DEV_SM_CLOCK", |g| &mut g.sm_clock_mhz),
    ];
    for (name, field) in families {
        for s in e.get(name).map_or(&[][..], |f| &f.series[..]) {
            let label = |k: &str| s.labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let Some(gpu) = label("gpu") else { continue };
            let id = match label("hostname").or(label("Hostname")) {
                Some(host) => format!("{host}:{gpu}"),
                None => gpu.to_string(),
            };
            let at = match out.iter().position(|g| g.gpu == id) {
                Some(i) => i,
                None => {
                    out.push(Gpu { gpu: id, ..Gpu::default() });
                    out.len() - 1
                }
            };
            *field(&mut out[at]) = Some(s.value);
        }
    }
    out
}

/// How a figure is taken from a family: summed over its label sets, averaged, or only
/// the sets with one label's value; a histogram's sum standing in for a counter.
#[derive(Clone, Copy)]
enum Take {
    Sum(&'static str),
    Mean(&'static str),
    SumWhere(&'static str, &'static str, &'static str),
    HistSum(&'static str),
    /// Two families added (both present).
    Both(&'static str, &'static str),
}

fn take(e: &Exposition, picks: &[Take]) -> Option<f64> {
    picks.iter().find_map(|t| match *t {
        Take::Sum(name) => e.get(name).filter(|f| !f.series.is_empty()).map(|f| f.series.iter().map(|s| s.value).sum()),
        Take::Mean(name) => {
            let f = e.get(name).filter(|f| !f.series.is_empty())?;
            Some(f.series.iter().map(|s| s.value).sum::<f64>() / f.series.len() as f64)
        }
        Take::SumWhere(name, key, value) => {
            let v: Vec<f64> =
                e.get(name)?.series.iter().filter(|s| s.labels.iter().any(|(k, v)| k == key && v == value)).map(|s| s.value).collect();
            (!v.is_empty()).then(|| v.iter().sum())
        }
        Take::Both(a, b) => Some(take(e, &[Take::Sum(a)])? + take(e, &[Take::Sum(b)])?),
        Take::HistSum(name) => e.get(name).filter(|f| !f.hists.is_empty()).map(|f| f.hists.iter().map(|h| h.sum).sum()),
    })
}

/// A histogram's label sets added together, its bounds scaled to seconds.
fn hist(e: &Exposition, names: &[&str], to_seconds: f64) -> Option<Hist> {
    let f = names.iter().find_map(|n| e.get(n).filter(|f| !f.hists.is_empty()))?;
    let mut out = Hist::default();
    for h in &f.hists {
        out.sum += h.sum * to_seconds;
        out.count += h.count;
        for &(le, n) in &h.buckets {
            let le = le * to_seconds;
            match out.buckets.iter_mut().find(|b| b.0 == le) {
                Some(b) => b.1 += n,
                None => out.buckets.push((le, n)),
            }
        }
    }
    out.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(out)
}

impl Reading {
    /// `e` in the vocabulary, by `server`'s names (DCGM's GPU figures from any).
    pub fn of(e: &Exposition, server: Server) -> Reading {
        use Take::*;
        let mut r = match server {
            Server::Vllm => Reading {
                running: take(e, &[Sum("vllm:num_requests_running")]),
                waiting: take(e, &[Sum("vllm:num_requests_waiting")]),
                // 0–1 despite "perc"; gpu_cache_usage_perc before vLLM 0.10.
                kv_cache_usage: take(e, &[Mean("vllm:kv_cache_usage_perc"), Mean("vllm:gpu_cache_usage_perc")]),
                prefix_queries: take(e, &[Sum("vllm:prefix_cache_queries_total"), Sum("vllm:gpu_prefix_cache_queries_total")]),
                prefix_hits: take(e, &[Sum("vllm:prefix_cache_hits_total"), Sum("vllm:gpu_prefix_cache_hits_total")]),
                preemptions: take(e, &[Sum("vllm:num_preemptions_total")]),
                prompt_tokens: take(e, &[Sum("vllm:prompt_tokens_total")]),
                generation_tokens: take(e, &[Sum("vllm:generation_tokens_total")]),
                ttft: hist(e, &["vllm:time_to_first_token_seconds"], 1.0),
                e2e: hist(e, &["vllm:e2e_request_latency_seconds"], 1.0),
                queue: hist(e, &["vllm:request_queue_time_seconds"], 1.0),
                itl: hist(e, &["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"], 1.0),
                prefill: hist(e, &["vllm:request_prefill_time_seconds"], 1.0),
                decode: hist(e, &["vllm:request_decode_time_seconds"], 1.0),
                ..Reading::default()
            },
            // SGLang keeps no prefix-cache queries counter: its prompt tokens are the
            // queries and its cached tokens the hits (its hit-rate gauge flaps to 0).
            Server::Sglang => Reading {
                running: take(e, &[Sum("sglang:num_running_reqs")]),
                waiting: take(e, &[Sum("sglang:num_queue_reqs")]),
                kv_cache_usage: take(e, &[Mean("sglang:token_usage")]),
                prefix_queries: take(e, &[Sum("sglang:cached_tokens_total")]).and(take(e, &[Sum("sglang:prompt_tokens_total")])),
                prefix_hits: take(e, &[Sum("sglang:cached_tokens_total")]),
                preemptions: take(e, &[Sum("sglang:num_retracted_requests_total")]),
                prompt_tokens: take(e, &[Sum("sglang:prompt_tokens_total")]),
                generation_tokens: take(e, &[Sum("sglang:generation_tokens_total")]),
                ttft: hist(e, &["sglang:time_to_first_token_seconds"], 1.0),
                e2e: hist(e, &["sglang:e2e_request_latency_seconds"], 1.0),
                queue: hist(e, &["sglang:queue_time_seconds"], 1.0),
                itl: hist(e, &["sglang:inter_token_latency_seconds"], 1.0),
                ..Reading::default()
            },
            // TGI counts tokens only as its length histograms' sums; its per-token
            // figure is a per-request mean.
            Server::Tgi => Reading {
                running: take(e, &[Sum("tgi_batch_current_size")]),
                waiting: take(e, &[Sum("tgi_queue_size")]),
                prompt_tokens: take(e, &[HistSum("tgi_request_input_length")]),
                generation_tokens: take(e, &[HistSum("tgi_request_generated_tokens")]),
                e2e: hist(e, &["tgi_request_duration"], 1.0),
                queue: hist(e, &["tgi_request_queue_duration"], 1.0),
                itl: hist(e, &["tgi_request_mean_time_per_token_duration"], 1.0),
                ..Reading::default()
            },
            Server::LlamaCpp => Reading {
                running: take(e, &[Sum("llamacpp:requests_processing")]),
                waiting: take(e, &[Sum("llamacpp:requests_deferred")]),
                // Older builds only.
                kv_cache_usage: take(e, &[Mean("llamacpp:kv_cache_usage_ratio")]),
                // Newer builds count the prompt tokens processed apart from those its
                // cache held: all of them are the prompt, the held ones the hits.
                prefix_queries: take(e, &[Both("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")]),
                prefix_hits: take(e, &[Sum("llamacpp:prompt_tokens_cached_total")]),
                prompt_tokens: take(
                    e,
                    &[Both("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total"), Sum("llamacpp:prompt_tokens_total")],
                ),
                generation_tokens: take(e, &[Sum("llamacpp:tokens_predicted_total")]),
                ..Reading::default()
            },
            // TensorRT-LLM's figures are gauges keyed by a category label; Triton's TTFT
            // histogram is in milliseconds.
            Server::Triton => Reading {
                running: take(e, &[SumWhere("nv_trt_llm_request_metrics", "request_type", "active")]),
                waiting: take(e, &[SumWhere("nv_trt_llm_request_metrics", "request_type", "waiting")]),
                kv_cache_usage: take(e, &[SumWhere("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "fraction")]),
                prompt_tokens: take(e, &[HistSum("nv_llm_input_token_len")]),
                generation_tokens: take(e, &[HistSum("nv_llm_output_token_len")]),
                ttft: hist(e, &["nv_inference_first_response_histogram_ms"], 1e-3),
                ..Reading::default()
            },
            Server::Dcgm => Reading::default(),
        };
        r.gpu_util = take(e, &[Mean("DCGM_FI_DEV_GPU_UTIL")]);
        r.gpu_power_w = take(e, &[Sum("DCGM_FI_DEV_POWER_USAGE")]);
        // mJ.
        r.gpu_energy_j = take(e, &[Sum("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")]).map(|mj| mj / 1e3);
        r.gpu_memory_mib = take(e, &[Sum("DCGM_FI_DEV_FB_USED")]);
        r.gpu_sm_clock_mhz = take(e, &[Mean("DCGM_FI_DEV_SM_CLOCK")]);
        r.gpus = gpus(e);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (Server, Reading) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics").join(name);
        let e = super::super::parse::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let server = Server::of(&e).unwrap();
        (server, Reading::of(&e, server))
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
    }

    /// Every captured exposition maps to the values its fixture was written with
    /// (listed beside each in the fixture's comments and the research notes).
    #[test]
    fn each_servers_names_map_to_the_vocabulary() {
        let (s, r) = fixture("vllm.prom");
        assert_eq!(s, Server::Vllm);
        assert!(close(r.running, 3.0) && close(r.waiting, 5.0) && close(r.kv_cache_usage, 0.83), "{r:?}");
        assert!(close(r.prefix_queries, 125000.0) && close(r.prefix_hits, 47500.0) && close(r.preemptions, 2.0), "{r:?}");
        assert!(close(r.prompt_tokens, 184320.0) && close(r.generation_tokens, 92160.0), "{r:?}");
        let ttft = r.ttft.as_ref().unwrap();
        assert_eq!((ttft.count, ttft.sum), (180.0, 51.25));
        assert_eq!((r.queue.as_ref().unwrap().sum, r.e2e.as_ref().unwrap().sum, r.itl.as_ref().unwrap().count), (37.5, 1280.0, 91980.0));
        assert_eq!((r.prefill.as_ref().unwrap().count, r.decode.as_ref().unwrap().count), (180.0, 180.0));

        let (s, r) = fixture("sglang.prom");
        assert_eq!(s, Server::Sglang);
        assert!(close(r.running, 3.0) && close(r.waiting, 5.0) && close(r.kv_cache_usage, 0.83), "{r:?}");
        assert!(close(r.prefix_queries, 184320.0) && close(r.prefix_hits, 69632.0) && close(r.preemptions, 2.0), "{r:?}");
        assert_eq!((r.queue.as_ref().unwrap().sum, r.ttft.as_ref().unwrap().sum, r.itl.as_ref().unwrap().sum), (20.625, 51.25, 1998.75));

        let (s, r) = fixture("tgi.prom");
        assert_eq!(s, Server::Tgi);
        assert!(close(r.running, 3.0) && close(r.waiting, 5.0) && r.kv_cache_usage.is_none(), "{r:?}");
        assert!(close(r.prompt_tokens, 184320.0) && close(r.generation_tokens, 92160.0), "{r:?}");
        assert_eq!((r.e2e.as_ref().unwrap().sum, r.queue.as_ref().unwrap().sum, r.itl.as_ref().unwrap().sum), (1280.0, 20.625, 5.625));

        let (s, r) = fixture("llamacpp.prom");
        assert_eq!(s, Server::LlamaCpp);
        assert!(
            close(r.running, 3.0) && close(r.waiting, 5.0) && close(r.prompt_tokens, 184320.0) && close(r.generation_tokens, 92160.0),
            "{r:?}"
        );

        let (s, r) = fixture("trtllm.prom");
        assert_eq!(s, Server::Triton);
        assert!(close(r.running, 3.0) && close(r.waiting, 5.0) && close(r.kv_cache_usage, 0.83), "{r:?}");
        let ttft = r.ttft.as_ref().unwrap();
        assert!((ttft.sum - 51.25).abs() < 1e-9 && ttft.buckets[0] == (0.1, 40.0), "ms read as seconds: {ttft:?}");

        let (s, r) = fixture("dcgm.prom");
        assert_eq!(s, Server::Dcgm);
        assert!(close(r.gpu_util, 96.0) && close(r.gpu_power_w, 612.345 + 598.125), "{r:?}");
        assert!(close(r.gpu_energy_j, (123456789012.0 + 121234567890.0) / 1e3) && close(r.gpu_memory_mib, 74120.0 + 73920.0), "{r:?}");
        assert!(close(r.gpu_sm_clock_mhz, 1980.0), "{r:?}");
        let each: Vec<(&str, Option<f64>, Option<f64>)> = r.gpus.iter().map(|g| (g.gpu.as_str(), g.power_w, g.memory_mib)).collect();
        assert_eq!(each, [("gpu-node-01:0", Some(612.345), Some(74120.0)), ("gpu-node-01:1", Some(598.125), Some(73920.0))]);
    }
}
