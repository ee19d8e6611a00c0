//! The shards' per-second series of one stage as one: each shard's seconds placed on
//! the wall clock (its window's opening less its offset is its stage's start), shifted
//! to whole seconds from the earliest shard's start, and added; each second's p50 and
//! p99 read again from the seconds' histograms added (its TTFT and ITL ones too: the
//! merged intervals are formed from them).

use hdrhistogram::Histogram;

use crate::metrics::{SecondStats, hdr};
use crate::report::StageResult;

fn instant(t: &str) -> Option<f64> {
    let at = humantime::parse_rfc3339_weak(t).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// The merged seconds, and where the merged window opened in them.
pub fn merge(parts: &[&StageResult], window_start: Option<&str>) -> (Vec<SecondStats>, Option<f64>) {
    // Each shard's stage start, in seconds since the epoch, where it can be placed.
    let starts: Vec<Option<f64>> =
        parts.iter().map(|p| Some(instant(p.window_start.as_deref()?)? - p.window_offset_s.unwrap_or(0.0))).collect();
    let base = starts.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let base = if base.is_finite() { base } else { 0.0 };
    // Each second: its counts, and its e2e, TTFT and ITL histograms added.
    let mut out: Vec<(SecondStats, [Option<Histogram<u64>>; 3])> = Vec::new();
    for (p, start) in parts.iter().zip(&starts) {
        let shift = start.map_or(0, |s| (s - base).round().max(0.0) as u32);
        for s in &p.series {
            let t = s.t_s.saturating_add(shift);
            while out.len() <= t as usize {
                out.push((SecondStats::empty(out.len() as u32), [None, None, None]));
            }
            let (m, lat) = &mut out[t as usize];
            m.warmup += s.warmup;
            m.cooldown += s.cooldown;
            m.requests += s.requests;
            m.ok += s.ok;
            m.errors += s.errors;
            m.output_tokens += s.output_tokens;
            // Each shard's most in flight, added: the most the shards could have had at once.
            m.in_flight += s.in_flight;
            for (into, text) in lat.iter_mut().zip([&s.e2e_us, &s.ttft_us, &s.itl_us]) {
                let Some(h) = text.as_deref().and_then(|t| hdr::decode(t).ok()) else { continue };
                match into {
                    // Seconds' histograms share one layout; one that does not add is left out.
                    Some(l) => {
                        let _ = l.add(&h);
                    }
                    None => *into = Some(h),
                }
            }
        }
    }
    let seconds = out
        .into_iter()
        .map(|(mut s, [e2e, ttft, itl])| {
            let encoded = |h: Option<Histogram<u64>>| h.filter(|h| !h.is_empty()).map(|h| hdr::encode(&h));
            (s.ttft_us, s.itl_us) = (encoded(ttft), encoded(itl));
            if let Some(h) = e2e.filter(|h| !h.is_empty()) {
                let h = &h;
                // Read as a stage's latencies are: the middle of the bucket, within the
                // values seen.
                let q = |q: f64| h.median_equivalent(h.value_at_quantile(q)).clamp(h.min(), h.max()) as f64 / 1000.0;
                s.p50_ms = Some(q(0.5));
                s.p99_ms = Some(q(0.99));
                s.e2e_us = Some(hdr::encode(h));
            }
            s
        })
        .collect();
    let offset = window_start.and_then(instant).map(|w| (w - base).max(0.0)).filter(|_| base > 0.0);
    (seconds, offset)
}
