//! The intervals' coverage, measured: seeded samples from a known distribution —
//! independent, and autocorrelated as a loaded server's are (AR(1), ρ = 0.5) — whose
//! true p50 and p99 are known; a correct 95 % interval contains them in 95 % of
//! repetitions. With 2,000 repetitions the observed share's standard error is 0.49 %,
//! so 93–97 % is ±4 standard errors: a correct method lands there with near certainty
//! (200 repetitions would fail a correct method one time in five).

mod common;

use llmload::stats::{Below, Bounds, LEVEL, order_statistic, quantile};

/// Repetitions of each case, and samples in each (20 batches of 500).
const REPS: usize = 2000;
const N: usize = 10_000;
const BATCHES: usize = 20;

/// The standard normal's p50 and p99: each sample's marginal is N(0, 1).
const TRUE: [(f64, f64); 2] = [(0.5, 0.0), (0.99, 2.326_347_874_040_841)];

/// SplitMix64: a fast, well-spread seeded generator (debug builds run this test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Two independent standard normals (Box–Muller).
    fn normals(&mut self) -> (f64, f64) {
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let a = std::f64::consts::TAU * v;
        (r * a.cos(), r * a.sin())
    }
}

/// `N` samples in time order: x[t] = ρ·x[t−1] + √(1−ρ²)·e[t], each N(0, 1).
fn samples(rng: &mut Rng, rho: f64, out: &mut Vec<f64>) {
    out.clear();
    let s = (1.0 - rho * rho).sqrt();
    let mut x = rng.normals().0;
    while out.len() < N {
        let (a, b) = rng.normals();
        for e in [a, b] {
            x = rho * x + s * e;
            out.push(x);
        }
    }
    out.truncate(N);
}

/// The sample at quantile `q` of `xs`: rank ⌈q·n⌉, as a histogram reads it (found in
/// place, in linear time: the order of `xs` is not kept).
fn at(xs: &mut [f64], q: f64) -> f64 {
    let k = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    *xs.select_nth_unstable_by(k - 1, f64::total_cmp).1
}

/// Of `REPS` repetitions, the share whose interval held the true quantile, by
/// quantile; `batch`: batch means over 20 batches in time order, else order statistics.
fn coverage(seed: u64, rho: f64, batch: bool) -> Vec<f64> {
    let mut rng = Rng(seed);
    let (mut xs, mut scratch) = (Vec::with_capacity(N), Vec::with_capacity(N));
    let mut held = [0usize; 2];
    for _ in 0..REPS {
        samples(&mut rng, rho, &mut xs);
        scratch.clone_from(&xs);
        let scratch = std::cell::RefCell::new(&mut scratch);
        let at = |q: f64| at(&mut scratch.borrow_mut(), q);
        for (k, (p, truth)) in TRUE.iter().enumerate() {
            let b: Bounds = match batch {
                true => {
                    let estimate = at(*p);
                    let below: Vec<Below> = xs
                        .chunks(N / BATCHES)
                        .map(|c| Below { n: c.len() as u64, below: c.iter().filter(|&&x| x <= estimate).count() as u64 })
                        .collect();
                    quantile(*p, LEVEL, &below, at).unwrap()
                }
                false => order_statistic(*p, LEVEL, N as u64, at).unwrap(),
            };
            held[k] += usize::from(b.lo <= *truth && *truth <= b.hi);
        }
    }
    held.iter().map(|&h| h as f64 / REPS as f64).collect()
}

fn assert_covers(what: &str, shares: &[f64]) {
    for ((p, _), share) in TRUE.iter().zip(shares) {
        println!("{what}: p{} held in {:.1} % of {REPS}", p * 100.0, share * 100.0);
        assert!(
            (0.93..=0.97).contains(share),
            "{what}: the p{} interval held the truth in {:.1} % of {REPS} repetitions",
            p * 100.0,
            share * 100.0
        );
    }
}

#[test]
fn batch_means_intervals_hold_95_percent_of_the_time_for_dependent_samples() {
    let (iid, ar) = std::thread::scope(|s| {
        let iid = s.spawn(|| coverage(1, 0.0, true));
        let ar = s.spawn(|| coverage(2, 0.5, true));
        (iid.join().unwrap(), ar.join().unwrap())
    });
    assert_covers("batch means, independent", &iid);
    assert_covers("batch means, AR(1) rho 0.5", &ar);
}

#[test]
fn order_statistic_intervals_hold_95_percent_of_the_time_for_independent_samples() {
    assert_covers("order statistics, independent", &coverage(3, 0.0, false));
}

/// The same on the mock, end to end: a window of 11 s is batched by its seconds, a
/// 100-request one falls back to order statistics and leaves its p99 unbounded, and
/// shards merged form their intervals again from the merged seconds.
mod end_to_end {
    use super::common::*;
    use std::time::Duration;

    const MOCK: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\nstream = true\n[mock]\nbase_latency_ms = 20\njitter_ms = 10\nseed = 3\n[prompts]\ntemplate = \"q {i}\"\n";

    fn figure<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        &s["ci"]["figures"][name]
    }

    #[test]
    fn a_long_window_is_batched_by_its_seconds_and_shards_merge_from_theirs() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.toml");
        std::fs::write(&path, format!("{MOCK}[[stage]]\nname = \"long\"\nconcurrency = 4\nduration = \"11s\"\n")).unwrap();
        let shard = |i: u32| {
            let json = d.path().join(format!("{i}.json"));
            let mut c = cmd(&["run", "--headless", "--ci", "--shard", &format!("{i}/2"), "--json"]);
            c.arg(&json).arg(&path);
            (json, std::thread::spawn(move || run(c, Duration::from_secs(60))))
        };
        let shards = [shard(0), shard(1)];
        let mut files = Vec::new();
        for (json, h) in shards {
            let out = h.join().unwrap();
            assert!(out.status.success(), "{}", out.stderr);
            assert!(out.stdout.contains(" ±") && out.stdout.contains("±: half the 95 % confidence interval"), "{}", out.stdout);
            files.push(json);
        }
        for json in &files {
            let v = read_json(json);
            assert_schema_valid(&v);
            let s = &v["stages"][0];
            assert!(count(&s["ci"]["seconds"]) >= 10, "{}", s["ci"]);
            for name in ["p50_ms", "p90_ms", "ttft_p50_ms", "itl_p50_ms", "ok_rps", "output_tps", "error_rate"] {
                let f = figure(s, name);
                assert_eq!(f["method"], "batch_means", "{name}: {f}");
                assert!((10..=20).contains(&count(&f["batches"])), "{name}: {f}");
                assert!(num(&f["lo"]) <= num(&f["value"]) && num(&f["value"]) <= num(&f["hi"]), "{name}: {f}");
            }
            // A p99 from a loaded box's ~800 requests a shard (about 8 beyond it) may be
            // bounded or not (CI22 saw "their batches disagree"); either way it is honest.
            let p99 = figure(s, "p99_ms");
            if p99["lo"].is_null() {
                assert!(p99["why"].as_str().unwrap().contains("beyond the p99"), "{p99}");
            } else {
                assert_eq!(p99["method"], "batch_means", "{p99}");
                assert!(num(&p99["lo"]) <= num(&p99["value"]) && num(&p99["value"]) <= num(&p99["hi"]), "{p99}");
            }
            // A steady mock: its median known within a few per cent.
            let p50 = figure(s, "p50_ms");
            assert!(num(&p50["hi"]) - num(&p50["lo"]) < 0.1 * num(&p50["value"]), "{p50}");
        }
        let merged = d.path().join("m.json");
        let mut c = cmd(&["merge", "--ci", "-o"]);
        c.arg(&merged).args(&files);
        let out = run(c, Duration::from_secs(30));
        assert!(out.status.success(), "{}", out.stderr);
        let m = read_json(&merged);
        assert_schema_valid(&m);
        let s = &m["stages"][0];
        let f = figure(s, "ok_rps");
        // Formed from the merged seconds: about the merged rate, both shards' requests.
        assert_eq!(f["method"], "batch_means", "{f}");
        assert_eq!(num(&f["value"]), num(&s["throughput"]["ok_per_s"]));
        assert!(num(&f["lo"]) < num(&f["value"]) && num(&f["value"]) < num(&f["hi"]), "{f}");
        let shard0 = read_json(&files[0]);
        assert!(num(&f["value"]) > 1.5 * num(&figure(&shard0["stages"][0], "ok_rps")["value"]), "{f}");
    }

    #[test]
    fn a_short_window_takes_its_requests_as_independent_and_leaves_a_p99_unbounded() {
        let (out, v) = run_headless(&format!("{MOCK}[[stage]]\nname = \"short\"\nconcurrency = 4\nrequests = 100\n"), &[]);
        let s = &v["stages"][0];
        assert_eq!(figure(s, "p50_ms")["method"], "order_statistic", "{}", s["ci"]);
        let p99 = figure(s, "p99_ms");
        assert!(p99["lo"].is_null() && p99["why"].as_str().unwrap().contains("needs at least 368"), "{p99}");
        let rate = figure(s, "ok_rps");
        assert!(rate["lo"].is_null() && rate["why"].as_str().unwrap().contains("fewer than 10"), "{rate}");
        // No failure in 100 requests: at most 3.6 %.
        let errors = figure(s, "error_rate");
        assert!((num(&errors["hi"]) - 0.0362).abs() < 0.001, "{errors}");
        assert!(!out.stdout.contains('±'), "the table shows intervals only with --ci");
    }

    /// The same check as above, end to end on the mock, where it is cheap: 40 short
    /// stages of 100 requests (order-statistic intervals, the requests of a steady
    /// closed loop taken as independent), each p50 interval against the median of all
    /// 4,000 requests. At 95 % (exact, so at least that), 33 or fewer of 40 holding it
    /// happens with probability 0.003 for a correct method; one that held 80 % would
    /// pass one time in six.
    #[test]
    fn short_stages_intervals_hold_the_pooled_median_on_the_mock() {
        let stages: String = (0..40).map(|i| format!("[[stage]]\nname = \"s{i}\"\nconcurrency = 4\nrequests = 100\n")).collect();
        let (_, v) = run_headless(&(MOCK.replace("seed = 3", "seed = 11") + &stages), &[]);
        let stages = v["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 40);
        let mut pooled: Option<hdrhistogram::Histogram<u64>> = None;
        for s in stages {
            let h = llmload::metrics::hdr::decode(s["histograms"]["e2e_us"]["hdr"].as_str().unwrap()).unwrap();
            match &mut pooled {
                Some(p) => p.add(&h).unwrap(),
                None => pooled = Some(h),
            }
        }
        let truth = pooled.unwrap().value_at_quantile(0.5) as f64 / 1e3;
        let held = stages
            .iter()
            .filter(|s| {
                let f = figure(s, "p50_ms");
                assert_eq!(f["method"], "order_statistic", "{f}");
                num(&f["lo"]) <= truth && truth <= num(&f["hi"])
            })
            .count();
        assert!(held >= 34, "{held} of 40 p50 intervals hold the pooled median {truth} ms");
    }
}
