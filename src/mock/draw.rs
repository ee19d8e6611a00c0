//! The random part of each request: jitter, completion length, JSON or prose, and its
//! fault if any — drawn from (seed, request number), so a run is reproducible without a
//! lock shared by every request.

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::config::{Fault, MockConfig};

/// The random part of request number `seq`: jitter in ms, length, JSON or prose, and
/// its fault if any. One generator per request, derived from (seed, arrival number):
/// reproducible without a lock shared by all requests.
pub(super) fn draw(cfg: &MockConfig, seq: u64) -> Draw {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let jitter = if cfg.jitter_ms > 0.0 { rng.random_range(-cfg.jitter_ms..=cfg.jitter_ms) } else { 0.0 };
    let output_tokens = match cfg.output_tokens_max {
        Some(max) if max > cfg.output_tokens => rng.random_range(cfg.output_tokens..=max),
        _ => cfg.output_tokens,
    };
    let json = cfg.json_rate > 0.0 && rng.random_bool(cfg.json_rate);
    Draw { jitter, output_tokens, json, fault: fault_for(cfg, seq) }
}

/// Request `seq`'s fault: one uniform draw over the cumulative fractions, from a
/// generator of its own, so fault knobs never shift the other draws nor they the faults.
fn fault_for(cfg: &MockConfig, seq: u64) -> Option<Fault> {
    if cfg.stall_once_at == Some(seq) {
        return Some(Fault::Stall);
    }
    let total: f64 = cfg.faults().map(|(_, p)| p.max(0.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    seed[8..16].copy_from_slice(&seq.to_le_bytes());
    seed[16..22].copy_from_slice(b"faults");
    let u: f64 = StdRng::from_seed(seed).random();
    let mut acc = 0.0;
    cfg.faults().find_map(|(f, p)| {
        acc += p.max(0.0);
        (u < acc).then_some(f)
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Draw {
    pub jitter: f64,
    pub output_tokens: u32,
    pub json: bool,
    pub fault: Option<Fault>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A config with every fault at once: 50% of requests.
    fn faulty() -> MockConfig {
        MockConfig {
            seed: 9,
            error_rate: 0.05,
            errors: [("503".to_string(), 0.1), ("429".to_string(), 0.05)].into(),
            malformed_rate: 0.1,
            disconnect_rate: 0.05,
            stall_rate: 0.05,
            drip_rate: 0.1,
            ..MockConfig::default()
        }
    }

    #[test]
    fn draws_are_seeded_bounded_and_spread() {
        let cfg = MockConfig { jitter_ms: 20.0, error_rate: 0.25, seed: 42, output_tokens_max: Some(40), ..MockConfig::default() };
        let a: Vec<Draw> = (0..1000).map(|i| draw(&cfg, i)).collect();
        let b: Vec<Draw> = (0..1000).map(|i| draw(&cfg, i)).collect();
        assert_eq!(a, b, "same seed, same draws");
        let other: Vec<Draw> = (0..1000).map(|i| draw(&MockConfig { seed: 43, ..cfg.clone() }, i)).collect();
        assert_ne!(a, other, "another seed, other draws");
        assert!(a.iter().all(|d| (-20.0..=20.0).contains(&d.jitter)));
        let mean = a.iter().map(|d| d.jitter).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 1.5, "uniform around 0, mean {mean}");
        let fails = a.iter().filter(|d| d.fault == Some(Fault::Status(500))).count();
        assert!((200..300).contains(&fails), "error_rate 0.25 gave {fails}/1000");
        assert!(a.iter().all(|d| (16..=40).contains(&d.output_tokens)));
        let mean_len = a.iter().map(|d| d.output_tokens as f64).sum::<f64>() / 1000.0;
        assert!((26.0..30.0).contains(&mean_len), "uniform 16..=40, mean {mean_len}");
    }

    #[test]
    fn faults_are_drawn_near_their_rates() {
        let cfg = faulty();
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        const N: u64 = 10_000;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for seq in 0..N {
            *counts.entry(draw(&cfg, seq).fault.map_or("none".into(), Fault::key)).or_default() += 1;
        }
        let expect = [
            ("none", 0.5),
            ("500", 0.05),
            ("503", 0.1),
            ("429", 0.05),
            ("malformed", 0.1),
            ("disconnect", 0.05),
            ("stall", 0.05),
            ("drip", 0.1),
        ];
        assert_eq!(counts.len(), expect.len(), "{counts:?}");
        for (key, p) in expect {
            // Binomial: within 4.5 standard deviations (±98 at 5%, ±135 at 10%, ±225 at 50%).
            let (mean, sd) = (N as f64 * p, (N as f64 * p * (1.0 - p)).sqrt());
            let got = counts[key] as f64;
            assert!((got - mean).abs() <= 4.5 * sd, "{key}: {got} of {N}, expected {mean} ± {}", 4.5 * sd);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = |cfg: &MockConfig| (0..2000).map(|i| draw(cfg, i).fault).collect::<Vec<_>>();
        let cfg = faulty();
        assert_eq!(faults(&cfg), faults(&cfg.clone()));
        assert_ne!(faults(&cfg), faults(&MockConfig { seed: 10, ..cfg.clone() }), "another seed, other faults");
        // Faults and the other draws do not shift each other.
        let shaped = MockConfig { jitter_ms: 20.0, output_tokens_max: Some(40), json_rate: 0.5, ..cfg.clone() };
        assert_eq!(faults(&cfg), faults(&shaped));
        let quiet =
            MockConfig { jitter_ms: 20.0, output_tokens_max: Some(40), json_rate: 0.5, ..MockConfig { seed: 9, ..MockConfig::default() } };
        let rest = |cfg: &MockConfig| (0..2000).map(|i| draw(cfg, i)).map(|d| (d.jitter, d.output_tokens, d.json)).collect::<Vec<_>>();
        assert_eq!(rest(&quiet), rest(&shaped));
    }

    #[test]
    fn a_fraction_of_one_is_certain() {
        for (cfg, fault) in [
            (MockConfig { errors: [("429".to_string(), 1.0)].into(), ..MockConfig::default() }, Fault::Status(429)),
            (MockConfig { disconnect_rate: 1.0, ..MockConfig::default() }, Fault::Disconnect),
            (MockConfig { drip_rate: 1.0, ..MockConfig::default() }, Fault::Drip),
        ] {
            assert!((0..1000).all(|i| draw(&cfg, i).fault == Some(fault)), "{fault:?}");
        }
        assert!((0..1000).all(|i| draw(&MockConfig::default(), i).fault.is_none()));
    }
}
