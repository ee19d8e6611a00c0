//! Shards: one of N generators running its share of every stage, and how its request
//! and session numbers map to the whole run's, so the shards together send exactly the
//! unsharded run's requests and their exports pool without clashes.

use serde::{Deserialize, Serialize};

/// Request numbers are kept in ranges this wide (warmup and window from 0, then the
/// ramp's, then the cooldown's), so no part resends another's prompts.
pub const NUMBER_RANGE: u64 = 1 << 48;

/// Shard `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// More generators than this is a typo, not a cluster.
pub const MAX_SHARDS: u32 = 10_000;

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole run: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("a run has at least one shard (N = 0 given)".into());
        }
        if count > u64::from(MAX_SHARDS) {
            return Err(format!("{count} shards is more than {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!("shard {index} of {count} is outside 0 ≤ I < {count} (shards count from 0)"));
        }
        Ok(Shard { index: index as u32, count: count as u32 })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(spec: &str) -> Result<Shard, String> {
        let (i, n) = spec.split_once('/').ok_or_else(|| format!("--shard {spec:?}: give I/N, e.g. 0/4 (shard 0 of 4)"))?;
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| format!("--shard {spec:?}: {s:?} is not a whole number ≥ 0"));
        Shard::new(num(i)?, num(n)?)
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// This shard's part of `total` (50 over 4 shards: 13, 13, 12, 12): what the shards
    /// with numbers ≡ index (mod count) in 0..total get.
    pub fn share(self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// Whether item `j` of a sequence dealt round-robin is this shard's.
    pub fn owns(self, j: u64) -> bool {
        j % u64::from(self.count) == u64::from(self.index)
    }

    /// The whole run's number of this shard's `j`th item dealt round-robin.
    pub fn dealt(self, j: u64) -> u64 {
        j * u64::from(self.count) + u64::from(self.index)
    }
}

/// How a stage's request numbers on this shard map to the whole run's: warmup numbers
/// are dealt round-robin over `0..warmup_total`, the window's over the numbers after
/// it, and each later range (ramp, cooldown) over its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Numbers {
    pub shard: Shard,
    /// The stage's warmup on this shard, and in the whole run.
    pub warmup_local: u64,
    pub warmup_total: u64,
    /// A closed stage's workers in the whole run (0: not a sharded closed stage), so a
    /// ramp brings the whole run's workers in one by one, not each shard's at once.
    pub workers_total: u64,
}

impl Numbers {
    pub fn global(&self, j: u64) -> u64 {
        let s = self.shard;
        if s.is_whole() {
            return j;
        }
        if j >= NUMBER_RANGE {
            let base = j / NUMBER_RANGE * NUMBER_RANGE;
            return base + s.dealt(j - base);
        }
        if j < self.warmup_local { s.dealt(j) } else { self.warmup_total + s.dealt(j - self.warmup_local) }
    }

    /// The whole run's number of this shard's `s`th session.
    pub fn session(&self, s: u64) -> u64 {
        self.shard.dealt(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_one_at_most() {
        let shares: Vec<u64> = (0..4).map(|i| Shard::new(i, 4).unwrap().share(50)).collect();
        assert_eq!(shares, [13, 13, 12, 12]);
        for (total, n) in [(0, 3), (1, 3), (7, 7), (1000, 7), (5, 1)] {
            assert_eq!((0..n).map(|i| Shard::new(i, n).unwrap().share(total)).sum::<u64>(), total);
        }
    }

    #[test]
    fn the_shards_numbers_are_the_whole_runs_each_once() {
        // Warmup 5 and 50 measured requests over 4 shards, and 10 ramp numbers each.
        let mut seen = Vec::new();
        for i in 0..4 {
            let shard = Shard::new(i, 4).unwrap();
            let n = Numbers { shard, warmup_local: shard.share(5), warmup_total: 5, workers_total: 0 };
            let warmup: Vec<u64> = (0..n.warmup_local).map(|j| n.global(j)).collect();
            assert!(warmup.iter().all(|g| *g < 5), "warmup numbers stay warmup: {warmup:?}");
            seen.extend(warmup);
            seen.extend((n.warmup_local..n.warmup_local + shard.share(50)).map(|j| n.global(j)));
            seen.extend((NUMBER_RANGE..NUMBER_RANGE + 10).map(|j| n.global(j)));
        }
        seen.sort_unstable();
        let whole: Vec<u64> = (0..55).chain((0..40).map(|j| NUMBER_RANGE + j)).collect();
        assert_eq!(seen, whole);
        assert_eq!(Numbers::default().global(17), 17, "unsharded numbers are themselves");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        assert!(Shard::parse("4/4").unwrap_err().contains("outside 0 ≤ I < 4"));
        assert!(Shard::parse("0/0").unwrap_err().contains("N = 0"));
        assert!(Shard::parse("1").unwrap_err().contains("give I/N"));
        assert!(Shard::parse("a/4").unwrap_err().contains("\"a\" is not a whole number"));
        assert!(Shard::parse("-1/4").is_err());
    }
}
