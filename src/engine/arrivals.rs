//! Open-loop arrival schedules: when each request of a stage is due, as offsets from
//! the stage's start. Seeded, so a schedule is the same on every run.

use std::time::{Duration, Instant};

use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Exp, Gamma};

use crate::scenario::Arrival;

pub struct Arrivals {
    rate: f64,
    gaps: Gaps,
    rng: StdRng,
    /// Arrivals handed out so far.
    n: u64,
    /// Offset of the next arrival, seconds.
    t: f64,
    /// Constant spacing and ramps: this shard's place in the union, as a fraction of
    /// an arrival (shard I of N is I/N of one late).
    shift: f64,
}

enum Gaps {
    Constant,
    /// Seconds of a linear ramp.
    Ramp(f64),
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
}

impl Arrivals {
    /// `rate` per second (validated positive and finite) with the given spacing.
    pub fn new(rate: f64, arrival: Arrival, seed: u64) -> Arrivals {
        let gaps = match arrival {
            // A trace's stage runs on the trace's own clock (engine/trace.rs), not here.
            Arrival::Constant | Arrival::Trace { .. } => Gaps::Constant,
            Arrival::Poisson => Exp::new(rate).map_or(Gaps::Constant, Gaps::Exp),
            // Shape 1/cv² and mean 1/rate give gaps with coefficient of variation cv.
            Arrival::Gamma { burstiness } => {
                let shape = 1.0 / (burstiness * burstiness);
                Gamma::new(shape, 1.0 / (rate * shape)).map_or(Gaps::Constant, Gaps::Gamma)
            }
        };
        Arrivals { rate, gaps, rng: StdRng::seed_from_u64(seed ^ 0x5EED_A771_7A15), n: 0, t: 0.0, shift: 0.0 }
    }

    /// A rate rising linearly from 0 to `rate` over `ramp`: arrival k is due when the
    /// integral of the rate reaches k, at √(2k·ramp/rate).
    /// Shard `shard`'s part of a schedule split N ways (each shard at `rate` = the
    /// whole's / N): constant arrivals start `index` whole-run gaps late, so the union
    /// is evenly spaced again, and a ramp's arrival k is the whole ramp's k·N + index.
    /// Random ones need nothing: independent Poisson streams add up to a Poisson stream
    /// of the summed rate (gamma streams do not add up to gamma).
    pub fn sharded(mut self, shard: crate::model::Shard) -> Arrivals {
        if matches!(self.gaps, Gaps::Constant | Gaps::Ramp(_)) {
            self.shift = f64::from(shard.index) / f64::from(shard.count);
        }
        self
    }

    /// When the first arrival is due (a constant shard's phase): the schedule's spans
    /// count from there, or a later shard's rate would read low by its phase.
    pub fn phase(&self) -> Duration {
        match self.gaps {
            Gaps::Constant => Duration::from_secs_f64(self.shift / self.rate),
            _ => Duration::ZERO,
        }
    }

    pub fn ramp(rate: f64, ramp: Duration) -> Arrivals {
        Arrivals { rate, gaps: Gaps::Ramp(ramp.as_secs_f64()), rng: StdRng::seed_from_u64(0), n: 0, t: 0.0, shift: 0.0 }
    }

    /// The arrivals' due instants, counted from `t0`; they end past any instant that
    /// can be represented.
    pub fn dues(mut self, t0: Instant) -> impl Iterator<Item = Instant> {
        std::iter::from_fn(move || t0.checked_add(self.next_offset()))
    }

    /// The offset at which the next request is due; the first is due at once.
    pub fn next_offset(&mut self) -> Duration {
        let now = match self.gaps {
            // n / rate, not a running sum: no drift over millions of arrivals.
            Gaps::Constant => (self.n as f64 + self.shift) / self.rate,
            Gaps::Ramp(secs) => (2.0 * (self.n as f64 + self.shift) * secs / self.rate).sqrt(),
            _ => self.t,
        };
        let gap = match &self.gaps {
            Gaps::Constant | Gaps::Ramp(_) => 0.0,
            Gaps::Exp(d) => d.sample(&mut self.rng),
            Gaps::Gamma(d) => d.sample(&mut self.rng),
        };
        self.t = now + gap;
        self.n += 1;
        Duration::try_from_secs_f64(now).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and coefficient of variation of `n` gaps.
    fn gaps(arrival: Arrival, rate: f64, n: usize) -> (f64, f64) {
        let mut a = Arrivals::new(rate, arrival, 42);
        let times: Vec<f64> = (0..=n).map(|_| a.next_offset().as_secs_f64()).collect();
        let g: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = g.iter().sum::<f64>() / n as f64;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var.sqrt() / mean)
    }

    // Tolerances: with 100k gaps the standard error of the mean is cv/√n ≈ 0.3 % and of
    // the CV about 0.3–1 %; the bounds are several times wider, and the seed is fixed.
    #[test]
    fn poisson_gaps_have_mean_one_over_rate_and_cv_one() {
        let (mean, cv) = gaps(Arrival::Poisson, 50.0, 100_000);
        assert!((mean * 50.0 - 1.0).abs() < 0.02, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn constant_shards_interleave_into_one_even_schedule() {
        let mut all: Vec<f64> = (0..4)
            .flat_map(|k| {
                let mut a = Arrivals::new(25.0, Arrival::Constant, 0).sharded(crate::model::Shard { index: k, count: 4 });
                (0..50).map(move |_| a.next_offset().as_secs_f64())
            })
            .collect();
        all.sort_by(f64::total_cmp);
        for (j, t) in all.iter().enumerate() {
            assert!((t - j as f64 / 100.0).abs() < 1e-9, "arrival {j} at {t}, not {}", j as f64 / 100.0);
        }
    }

    #[test]
    fn ramp_shards_interleave_into_the_whole_ramp() {
        let mut whole = Arrivals::ramp(100.0, Duration::from_secs(2));
        let want: Vec<f64> = (0..200).map(|_| whole.next_offset().as_secs_f64()).collect();
        let mut all: Vec<f64> = (0..4)
            .flat_map(|k| {
                let mut a = Arrivals::ramp(25.0, Duration::from_secs(2)).sharded(crate::model::Shard { index: k, count: 4 });
                (0..50).map(move |_| a.next_offset().as_secs_f64())
            })
            .collect();
        all.sort_by(f64::total_cmp);
        for (j, (t, w)) in all.iter().zip(&want).enumerate() {
            assert!((t - w).abs() < 1e-9, "ramp arrival {j} at {t}, not {w}");
        }
    }

    #[test]
    fn constant_gaps_are_exact() {
        let (mean, cv) = gaps(Arrival::Constant, 10_000.0, 100_000);
        assert!((mean * 10_000.0 - 1.0).abs() < 1e-9, "mean gap {mean}");
        assert!(cv < 1e-6, "cv {cv}");
        // No drift: the millionth arrival is due at exactly 100 s.
        let mut a = Arrivals::new(10_000.0, Arrival::Constant, 0);
        let last = (0..=1_000_000).map(|_| a.next_offset()).last().unwrap();
        assert_eq!(last, Duration::from_secs(100));
    }

    #[test]
    fn gamma_gaps_have_the_asked_burstiness() {
        for cv_want in [0.5, 2.0, 4.0] {
            let (mean, cv) = gaps(Arrival::Gamma { burstiness: cv_want }, 20.0, 200_000);
            assert!((mean * 20.0 - 1.0).abs() < 0.03, "cv {cv_want}: mean gap {mean}");
            assert!((cv / cv_want - 1.0).abs() < 0.06, "asked {cv_want}, got {cv}");
        }
    }

    #[test]
    fn a_ramp_rises_linearly() {
        // To 100/s over 10 s: 500 arrivals, a quarter of them in the first half.
        let mut a = Arrivals::new(100.0, Arrival::Constant, 0);
        let _ = a.next_offset();
        let mut r = Arrivals::ramp(100.0, Duration::from_secs(10));
        let times: Vec<f64> = std::iter::from_fn(|| Some(r.next_offset().as_secs_f64())).take_while(|t| *t < 10.0).collect();
        assert_eq!(times.len(), 500);
        assert_eq!(times.iter().filter(|t| **t < 5.0).count(), 125);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let mut a = Arrivals::new(5.0, Arrival::Poisson, seed);
            (0..100).map(|_| a.next_offset()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
