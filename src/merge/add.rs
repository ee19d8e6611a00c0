//! The adding every merge is made of: counters by key summed, and distributions added
//! exactly (the same range and precision, or an error).

use std::collections::BTreeMap;

use crate::metrics::{Latency, Lengths};
use crate::report::Dist;

pub fn sum_maps(maps: impl Iterator<Item = BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            let e = out.entry(k).or_insert(0u64);
            *e = e.saturating_add(v);
        }
    }
    out
}

/// The shards' distributions of one kind, added; an error when they do not add exactly.
pub fn latency(parts: &[Option<&Dist>]) -> Result<Option<Latency>, String> {
    let mut out: Option<Latency> = None;
    for d in parts.iter().flatten() {
        let l = d.latency()?;
        match &mut out {
            None => out = Some(l),
            Some(m) if m.same_layout(&l) => m.merge(&l),
            Some(_) => return Err("histograms of different precision: they do not add exactly".into()),
        }
    }
    Ok(out)
}

pub fn lengths(parts: &[Option<&Dist>]) -> Result<Option<Lengths>, String> {
    let mut out: Option<Lengths> = None;
    for d in parts.iter().flatten() {
        let l = d.lengths()?;
        match &mut out {
            None => out = Some(l),
            Some(m) if !m.same_shape(&l) => return Err("histograms of different ranges".into()),
            Some(m) => m.merge(&l),
        }
    }
    Ok(out)
}
