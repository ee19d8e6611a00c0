//! A scenario cut to one shard's part of every stage: a closed loop's workers and
//! requests dealt out (50 over 4: 13, 13, 12, 12), an open loop's rate divided with a
//! seed of the shard's own, client-side limits divided, and request numbers mapped so
//! the shards together send the unsharded run's requests. What cannot run sharded is
//! refused in one line.

use super::{Load, Scenario};
use crate::model::{Numbers, Shard};

impl Scenario {
    /// This scenario as shard `shard` runs it; the whole one for a single shard.
    pub fn shard(mut self, shard: Shard) -> Result<Scenario, String> {
        self.shard = shard;
        if shard.is_whole() {
            return Ok(self);
        }
        let n = u64::from(shard.count);
        if self.sweep.as_ref().is_some_and(|s| s.auto.is_some()) {
            return Err(format!(
                "an automatic sweep chooses each point from the figures of the last, which only the merged shards have: it cannot run as {n} shards; list the points instead (e.g. concurrency = [8, 16, 32, 64])"
            ));
        }
        for st in &mut self.stages {
            let name = st.name.clone();
            if st.warmup_auto {
                return Err(format!(
                    "stage {name:?}: warmup = \"auto\" opens a window when its own process's figures settle, so shards would measure different windows: give a count of warmup requests instead"
                ));
            }
            let mut workers_total = 0;
            match &mut st.load {
                Load::Closed { concurrency } => {
                    if u64::from(*concurrency) < n {
                        return Err(format!(
                            "stage {name:?}: concurrency {concurrency} is fewer than the {n} shards: each shard needs a worker"
                        ));
                    }
                    workers_total = u64::from(*concurrency);
                    *concurrency = shard.share(workers_total) as u32;
                }
                Load::Open { rate, max_in_flight, seed, .. } => {
                    if *max_in_flight < shard.count {
                        return Err(format!(
                            "stage {name:?}: max_in_flight {max_in_flight} is fewer than the {n} shards: each shard needs a slot"
                        ));
                    }
                    *rate /= n as f64;
                    // Dealt like workers, so the shards together hold the cap exactly.
                    *max_in_flight = shard.share(u64::from(*max_in_flight)) as u32;
                    // Independent streams: a seed of each shard's own.
                    *seed = seed.wrapping_add(u64::from(shard.index).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                }
            }
            if let Some(r) = st.requests {
                if r < n {
                    return Err(format!("stage {name:?}: {r} requests is fewer than the {n} shards"));
                }
                st.requests = Some(shard.share(r));
            }
            let warmup_total = st.warmup;
            st.warmup = shard.share(warmup_total);
            st.numbers = Numbers { shard, warmup_local: st.warmup, warmup_total, workers_total };
            st.rate_limit.rpm = st.rate_limit.rpm.map(|r| r / n as f64);
            st.rate_limit.tpm = st.rate_limit.tpm.map(|t| t / n as f64);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Shard;
    use crate::scenario::{Load, Scenario};

    const TEXT: &str = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[rate_limit]\nrpm = 600\n\
                        [[stage]]\nname = \"c\"\nconcurrency = 10\nrequests = 50\nwarmup = 5\n\
                        [[stage]]\nname = \"o\"\nrate = 20\narrival = \"poisson\"\nmax_in_flight = 10\nduration = \"2s\"\nseed = 3\n";

    fn shard(i: u32, n: u32) -> Result<Scenario, String> {
        Scenario::parse(TEXT, "s.toml", None).unwrap().shard(Shard { index: i, count: n })
    }

    #[test]
    fn each_stage_is_dealt_out_and_the_shares_add_up() {
        let shards: Vec<Scenario> = (0..4).map(|i| shard(i, 4).unwrap()).collect();
        let closed: Vec<(u32, u64, u64)> = shards
            .iter()
            .map(|s| match s.stages[0].load {
                Load::Closed { concurrency } => (concurrency, s.stages[0].requests.unwrap(), s.stages[0].warmup),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(closed, [(3, 13, 2), (3, 13, 1), (2, 12, 1), (2, 12, 1)]);
        let (mut seeds, mut caps) = (Vec::new(), Vec::new());
        for s in &shards {
            let Load::Open { rate, max_in_flight, seed, .. } = s.stages[1].load else { unreachable!() };
            assert_eq!((rate, s.stages[1].duration), (5.0, Some(std::time::Duration::from_secs(2))));
            caps.push(max_in_flight);
            assert_eq!(s.stages[1].rate_limit.rpm, Some(150.0));
            seeds.push(seed);
        }
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 4, "a seed per shard");
        assert_eq!(caps, [3, 3, 2, 2], "max_in_flight 10 dealt: the shards hold 10 together");
        assert_eq!(shard(0, 1).unwrap().stages[0].requests, Some(50), "one shard is the whole run");
    }

    #[test]
    fn what_cannot_run_sharded_is_refused() {
        assert_eq!(shard(0, 11).unwrap_err(), "stage \"c\": concurrency 10 is fewer than the 11 shards: each shard needs a worker");
        let capped = TEXT.replace("concurrency = 10", "concurrency = 20").replace("max_in_flight = 10", "max_in_flight = 4");
        let err = Scenario::parse(&capped, "s.toml", None).unwrap().shard(Shard { index: 0, count: 5 }).unwrap_err();
        assert_eq!(err, "stage \"o\": max_in_flight 4 is fewer than the 5 shards: each shard needs a slot");
        let auto = "[target]\nbase_url = \"mock\"\nmodel = \"m\"\n[prompts]\nlist = [\"hi\"]\n[sweep]\nconcurrency = \"auto\"\nduration = \"1s\"\n";
        let err = Scenario::parse(auto, "s.toml", None).unwrap().shard(Shard { index: 0, count: 2 }).unwrap_err();
        assert!(err.starts_with("an automatic sweep chooses each point"), "{err}");
    }
}
