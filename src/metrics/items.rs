//! What embeddings and rerank requests carried — an embeddings batch's inputs, a rerank
//! query's documents — over a stage's successful requests: their total, and latency by
//! how many a request carried. Every size below 16 is its own group; from 16, four
//! groups per doubling (16–19, 20–23, … 32–39 …), each saying the sizes it saw, so a
//! stage of one batch size reads as that size exactly. Latencies at 1 % (two digits):
//! a stage may keep some forty of them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::latency::Latency;

/// A stage's texts carried, and latency by their count.
#[derive(Debug, Clone, Default)]
pub struct Items {
    /// Over successful requests.
    pub total: u64,
    /// Successful requests that carried them.
    pub requests: u64,
    /// By group (its lowest size).
    pub by_size: BTreeMap<u32, SizeGroup>,
}

/// Requests of one group of sizes.
#[derive(Debug, Clone)]
pub struct SizeGroup {
    /// The sizes seen in the group.
    pub min: u32,
    pub max: u32,
    pub latency: Latency,
}

/// The group `n` falls in: `n` itself below 16, else `n` with all but its top three
/// bits cleared.
pub fn group(n: u32) -> u32 {
    if n <= 16 {
        return n;
    }
    let shift = 32 - n.leading_zeros() - 3;
    (n >> shift) << shift
}

impl Items {
    /// A successful request that carried `n`, in `latency`.
    pub fn record(&mut self, n: u32, latency: Duration) {
        self.total += u64::from(n);
        self.requests += 1;
        let g = self.by_size.entry(group(n)).or_insert_with(|| SizeGroup { min: n, max: n, latency: Latency::with_digits(2) });
        g.min = g.min.min(n);
        g.max = g.max.max(n);
        g.latency.record(latency);
    }

    /// Another's added (a shard's): totals summed, each group's distribution merged.
    pub fn add(&mut self, o: &Items) {
        self.total += o.total;
        self.requests += o.requests;
        for (k, g) in &o.by_size {
            match self.by_size.get_mut(k) {
                Some(mine) => {
                    (mine.min, mine.max) = (mine.min.min(g.min), mine.max.max(g.max));
                    mine.latency.merge(&g.latency);
                }
                None => {
                    self.by_size.insert(*k, g.clone());
                }
            }
        }
    }

    /// Texts per successful request that carried any.
    pub fn mean(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.total as f64 / self.requests as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_group_exactly_to_16_then_four_to_a_doubling() {
        let groups: Vec<u32> = [1, 16, 17, 20, 21, 31, 32, 39, 40, 2048].into_iter().map(group).collect();
        assert_eq!(groups, [1, 16, 16, 20, 20, 28, 32, 32, 40, 2048]);
        let mut items = Items::default();
        for (n, ms) in [(8, 10), (8, 30), (33, 50), (37, 70)] {
            items.record(n, Duration::from_millis(ms));
        }
        assert_eq!((items.total, items.requests, items.mean()), (86, 4, Some(21.5)));
        let g = &items.by_size[&32];
        assert_eq!((g.min, g.max, g.latency.count()), (33, 37, 2));
        assert_eq!(items.by_size[&8].latency.mean_ms(), Some(20.0));
    }
}
