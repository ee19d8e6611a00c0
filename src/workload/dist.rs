//! Token-length distributions of synthetic prompts: a fixed count, normal (clamped),
//! uniform, lognormal, or weighted (input, output) buckets; and the shorthand the field
//! already writes (genai-bench's `D(100,100)`, `N(480,240)/(300,150)`,
//! `U(50,100)/(200,300)`). Each request draws from a generator of its own, seeded by
//! (seed, stage, request number), so the same seed gives the same lengths whatever order
//! the workers take requests in.

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, LogNormal, Normal};

/// Longest length llmload builds or asks for: 1M tokens, far past any context window.
pub const MAX_TOKENS: u32 = 1 << 20;

/// z of the 99th percentile of a standard normal: `{ median, p99 }` → lognormal sigma.
const Z99: f64 = 2.326_347_874;

/// One length distribution, in tokens; every draw is within `1..=MAX_TOKENS`.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    Fixed(u32),
    /// Normal, clamped to `min..=max`.
    Normal {
        mean: f64,
        stdev: f64,
        min: u32,
        max: u32,
    },
    Uniform {
        min: u32,
        max: u32,
    },
    /// ln(length) is normal(mu, sigma); clamped to `min..=max`.
    LogNormal {
        mu: f64,
        sigma: f64,
        min: u32,
        max: u32,
    },
}

impl Dist {
    /// A lognormal whose median and 99th percentile are these.
    pub fn from_median_p99(median: f64, p99: f64, min: u32, max: u32) -> Result<Dist, String> {
        if !(median.is_finite() && median >= 1.0) {
            return Err(format!("median must be at least 1, got {median}"));
        }
        if !(p99.is_finite() && p99 >= median) {
            return Err(format!("p99 ({p99}) must be at least the median ({median})"));
        }
        Ok(Dist::LogNormal { mu: median.ln(), sigma: (p99 / median).ln() / Z99, min, max })
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        let range = |min: u32, max: u32| {
            if min == 0 {
                Some("min must be at least 1 token".to_string())
            } else if min > max {
                Some(format!("min ({min}) must not exceed max ({max})"))
            } else if max > MAX_TOKENS {
                Some(format!("max must be at most {MAX_TOKENS} tokens, got {max}"))
            } else {
                None
            }
        };
        match *self {
            Dist::Fixed(0) => Some("a length must be at least 1 token".into()),
            Dist::Fixed(n) if n > MAX_TOKENS => Some(format!("a length must be at most {MAX_TOKENS} tokens, got {n}")),
            Dist::Fixed(_) => None,
            Dist::Normal { mean, stdev, min, max } => {
                if !(mean.is_finite() && mean > 0.0) {
                    Some(format!("mean must be a positive number of tokens, got {mean}"))
                } else if !(stdev.is_finite() && stdev >= 0.0) {
                    Some(format!("stdev must be zero or more, got {stdev}"))
                } else {
                    range(min, max)
                }
            }
            Dist::Uniform { min, max } => range(min, max),
            Dist::LogNormal { mu, sigma, min, max } => {
                if !(mu.is_finite() && sigma.is_finite() && sigma >= 0.0) {
                    Some(format!("mu must be finite and sigma zero or more, got mu {mu}, sigma {sigma}"))
                } else {
                    range(min, max)
                }
            }
        }
    }

    /// The largest count it draws, as a scenario's bound is checked: open bounds are
    /// clamped when drawn, so a mean (or a median) past the most is what counts.
    pub fn bound(&self) -> u32 {
        match self {
            Dist::Fixed(n) => *n,
            Dist::Normal { mean, .. } => *mean as u32,
            Dist::LogNormal { mu, .. } => mu.exp() as u32,
            Dist::Uniform { max, .. } => *max,
        }
    }

    pub fn sample(&self, rng: &mut StdRng) -> u32 {
        let clamp = |x: f64, min: u32, max: u32| (x.round().clamp(f64::from(min), f64::from(max))) as u32;
        match *self {
            Dist::Fixed(n) => n,
            Dist::Uniform { min, max } => rng.random_range(min..=max),
            Dist::Normal { mean, stdev, min, max } => match Normal::new(mean, stdev) {
                Ok(n) => clamp(n.sample(rng), min, max),
                Err(_) => clamp(mean, min, max),
            },
            Dist::LogNormal { mu, sigma, min, max } => match LogNormal::new(mu, sigma) {
                Ok(l) => clamp(l.sample(rng), min, max),
                Err(_) => clamp(mu.exp(), min, max),
            },
        }
    }

    /// Bounds of a normal or lognormal when none are given: at least 1, at most
    /// [`MAX_TOKENS`].
    pub const OPEN: (u32, u32) = (1, MAX_TOKENS);
}

/// How a request's (input, output) lengths are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthSpec {
    /// Input and output drawn apart; no output distribution leaves the length limit as
    /// the request's `max_tokens` says.
    Apart { input: Dist, output: Option<Dist> },
    /// Weighted (input, output) pairs: one bucket drawn per request.
    Buckets(Vec<Bucket>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub input: u32,
    pub output: Option<u32>,
    pub weight: f64,
}

impl LengthSpec {
    /// Every problem, each in one line.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LengthSpec::Apart { input, output } => {
                let mut out: Vec<String> = input.problem().map(|p| format!("input: {p}")).into_iter().collect();
                out.extend(output.as_ref().and_then(Dist::problem).map(|p| format!("output: {p}")));
                out
            }
            LengthSpec::Buckets(buckets) if buckets.is_empty() => vec!["the bucket list is empty".into()],
            LengthSpec::Buckets(buckets) => buckets
                .iter()
                .enumerate()
                .flat_map(|(i, b)| {
                    let mut out = Vec::new();
                    if !(b.weight.is_finite() && b.weight > 0.0) {
                        out.push(format!("bucket {}: weight must be a positive number, got {}", i + 1, b.weight));
                    }
                    let lengths = std::iter::once(("input", b.input)).chain(b.output.map(|o| ("output", o)));
                    out.extend(lengths.filter_map(|(name, n)| Dist::Fixed(n).problem().map(|p| format!("bucket {}: {name}: {p}", i + 1))));
                    out
                })
                .collect(),
        }
    }

    /// The (input, output) lengths of one request.
    pub fn sample(&self, rng: &mut StdRng) -> (u32, Option<u32>) {
        match self {
            LengthSpec::Apart { input, output } => {
                let i = input.sample(rng);
                (i, output.as_ref().map(|o| o.sample(rng)))
            }
            LengthSpec::Buckets(buckets) => {
                let total: f64 = buckets.iter().map(|b| b.weight).sum();
                let mut u = rng.random::<f64>() * total;
                let last = buckets.last().expect("validated: not empty");
                let b = buckets
                    .iter()
                    .find(|b| {
                        u -= b.weight;
                        u < 0.0
                    })
                    .unwrap_or(last);
                (b.input, b.output)
            }
        }
    }

    /// Whether requests carry an output target of their own.
    pub fn has_output(&self) -> bool {
        match self {
            LengthSpec::Apart { output, .. } => output.is_some(),
            LengthSpec::Buckets(b) => b.iter().any(|b| b.output.is_some()),
        }
    }

    /// genai-bench's notation: `D(in,out)`, `N(mean_in,stdev_in)/(mean_out,stdev_out)`
    /// or `U(min_in,max_in)/(min_out,max_out)`.
    pub fn parse_shorthand(s: &str) -> Result<LengthSpec, String> {
        const FORMS: &str = "accepted: \"D(input,output)\", \"N(mean,stdev)/(mean,stdev)\", \"U(min,max)/(min,max)\"";
        let bad = |why: &str| format!("{s:?} {why}; {FORMS}");
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let (kind, rest) = t.split_at(t.char_indices().nth(1).map_or(t.len(), |(i, _)| i));
        let pair = |p: &str| -> Option<(f64, f64)> {
            let (a, b) = p.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let whole = |x: f64| (x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x)).then_some(x as u32);
        let count = |x: f64, what: &str| whole(x).ok_or_else(|| bad(&format!("has {what} {x}, not a whole number of tokens")));
        let spec = match kind.to_ascii_uppercase().as_str() {
            "D" => {
                let (i, o) = pair(rest).ok_or_else(|| bad("does not parse"))?;
                LengthSpec::Apart { input: Dist::Fixed(count(i, "input")?), output: Some(Dist::Fixed(count(o, "output")?)) }
            }
            k @ ("N" | "U") => {
                let (a, b) = rest.split_once('/').ok_or_else(|| bad("needs an input and an output pair, a `/` apart"))?;
                let ((a1, a2), (b1, b2)) = pair(a).zip(pair(b)).ok_or_else(|| bad("does not parse"))?;
                let (lo, hi) = Dist::OPEN;
                if k == "N" {
                    LengthSpec::Apart {
                        input: Dist::Normal { mean: a1, stdev: a2, min: lo, max: hi },
                        output: Some(Dist::Normal { mean: b1, stdev: b2, min: lo, max: hi }),
                    }
                } else {
                    LengthSpec::Apart {
                        input: Dist::Uniform { min: count(a1, "min")?, max: count(a2, "max")? },
                        output: Some(Dist::Uniform { min: count(b1, "min")?, max: count(b2, "max")? }),
                    }
                }
            }
            _ => return Err(bad("does not parse")),
        };
        let problems = spec.problems();
        match problems.first() {
            Some(p) => Err(format!("{s:?}: {p}")),
            None => Ok(spec),
        }
    }
}

/// Request `i`'s generator in stage `stage` of a run seeded `seed`.
pub fn rng_for(seed: u64, stage: u64, i: u64) -> StdRng {
    rng_named(seed, stage, i, b"lengths\0")
}

/// Request `i`'s generator of the draws `name` names, apart from every other's.
pub fn rng_named(seed: u64, stage: u64, i: u64, name: &[u8; 8]) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&stage.to_le_bytes());
    key[16..24].copy_from_slice(&i.to_le_bytes());
    key[24..].copy_from_slice(name);
    StdRng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(spec: &LengthSpec, n: u64) -> Vec<(u32, Option<u32>)> {
        (0..n).map(|i| spec.sample(&mut rng_for(1, 0, i))).collect()
    }

    #[test]
    fn the_fields_shorthand_parses() {
        let d = LengthSpec::parse_shorthand("D(100,100)").unwrap();
        assert_eq!(d, LengthSpec::Apart { input: Dist::Fixed(100), output: Some(Dist::Fixed(100)) });
        let n = LengthSpec::parse_shorthand(" n(480, 240) / (300,150) ").unwrap();
        let LengthSpec::Apart { input: Dist::Normal { mean, stdev, min, .. }, output: Some(Dist::Normal { mean: om, .. }) } = n else {
            panic!("{n:?}")
        };
        assert_eq!((mean, stdev, min, om), (480.0, 240.0, 1, 300.0));
        let u = LengthSpec::parse_shorthand("U(50,100)/(200,300)").unwrap();
        assert_eq!(u, LengthSpec::Apart { input: Dist::Uniform { min: 50, max: 100 }, output: Some(Dist::Uniform { min: 200, max: 300 }) });
        for bad in ["D(100)", "X(1,2)", "N(1,2)", "U(100,50)/(1,2)", "D(0,5)", "D(1.5,2)", "", "U(1,2)/(3,x)"] {
            let e = LengthSpec::parse_shorthand(bad).unwrap_err();
            assert!(e.starts_with(&format!("{bad:?}")), "{e}");
            assert!(!e.contains('\n'));
        }
        assert!(LengthSpec::parse_shorthand("D(1)").unwrap_err().contains("accepted: \"D(input,output)\""));
        assert!(LengthSpec::parse_shorthand("U(100,50)/(1,2)").unwrap_err().contains("min (100) must not exceed max (50)"));
    }

    #[test]
    fn draws_follow_their_distribution_and_the_seed() {
        let n = LengthSpec::parse_shorthand("N(480,240)/(300,150)").unwrap();
        let d = draws(&n, 4000);
        assert_eq!(d, draws(&n, 4000), "same seed, same draws");
        let mean = d.iter().map(|(i, _)| f64::from(*i)).sum::<f64>() / 4000.0;
        // Clamping at 1 lifts the mean slightly (2.3 % of the mass lies below 0).
        assert!((475.0..500.0).contains(&mean), "{mean}");
        assert!(d.iter().all(|(i, o)| *i >= 1 && o.unwrap() >= 1));
        let u = LengthSpec::parse_shorthand("U(50,100)/(200,300)").unwrap();
        assert!(draws(&u, 1000).iter().all(|(i, o)| (50..=100).contains(i) && (200..=300).contains(&o.unwrap())));
        let l = LengthSpec::Apart { input: Dist::from_median_p99(1000.0, 8000.0, 1, MAX_TOKENS).unwrap(), output: None };
        let mut ins: Vec<u32> = draws(&l, 4000).iter().map(|d| d.0).collect();
        ins.sort();
        let (p50, p99) = (ins[2000], ins[3960]);
        assert!((900..1100).contains(&p50) && (6500..9500).contains(&p99), "p50 {p50}, p99 {p99}");
    }

    #[test]
    fn buckets_are_drawn_by_weight_and_checked() {
        let b = LengthSpec::Buckets(vec![
            Bucket { input: 128, output: Some(512), weight: 0.7 },
            Bucket { input: 2048, output: Some(128), weight: 0.3 },
        ]);
        assert!(b.problems().is_empty());
        let small = draws(&b, 10_000).iter().filter(|d| **d == (128, Some(512))).count();
        assert!((6800..7200).contains(&small), "{small}");
        let bad = LengthSpec::Buckets(vec![Bucket { input: 0, output: None, weight: 0.0 }]);
        assert_eq!(
            bad.problems(),
            ["bucket 1: weight must be a positive number, got 0", "bucket 1: input: a length must be at least 1 token"]
        );
        let normal = Dist::Normal { mean: 10.0, stdev: 1.0, min: 20, max: 5 };
        assert_eq!(normal.problem().unwrap(), "min (20) must not exceed max (5)");
    }
}
