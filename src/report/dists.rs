//! A stage's distributions as the result carries them: every histogram it keeps,
//! lossless (HdrHistogram V2 + deflate, base64), with the exact count, sum, min and max
//! beside each (they live outside the histogram, and a merge needs them).

use serde::{Deserialize, Serialize};

use crate::metrics::{Latency, Lengths, StageStats, hdr};

/// One distribution, decodable with any HdrHistogram reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub count: u64,
    /// Exact, in the distribution's unit (µs, or tokens).
    pub sum: f64,
    pub min: u64,
    pub max: u64,
    /// Lengths only: zeros, counted beside the histogram (which holds 1 and up).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub zeros: u64,
    /// Latencies: the exact sum of squares (µs²), so a merge's standard deviation is
    /// exact too. Absent from results before it: 0, and the histogram's is used.
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub sum_sq: f64,
    /// The histogram: V2 + deflate, base64.
    pub hdr: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(x: &f64) -> bool {
    *x == 0.0
}

/// Every distribution a stage keeps; absent where nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// e2e latency of successful requests, µs.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "dist_or_v1")]
    pub e2e_us: Option<Dist>,
    /// Every attempt's latency, failed ones and retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "dist_or_v1")]
    pub ttft_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_answer_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_ttft_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "dist_or_v1")]
    pub itl_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_gap_us: Option<Dist>,
    /// Open loop: e2e from the actual send, and the send's lag behind its schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_lag_us: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limiter_wait_us: Option<Dist>,
    /// Tokens sent and received per successful request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<Dist>,
    /// The output lengths asked for (`tokens.target_output.target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_output_tokens: Option<Dist>,
}

/// A distribution as schema 2 writes it, or as schema 1 did: a plain-V2 string (empty
/// when nothing was recorded), whose exact sum is then the histogram's.
fn dist_or_v1<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Dist>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Dist(Dist),
        V1(String),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        Some(Either::Dist(x)) => Some(x),
        Some(Either::V1(s)) if !s.is_empty() => {
            let h = hdr::decode(&s).map_err(serde::de::Error::custom)?;
            (!h.is_empty()).then(|| Dist {
                count: h.len(),
                sum: h.mean() * h.len() as f64,
                min: h.min(),
                max: h.max(),
                zeros: 0,
                sum_sq: 0.0,
                hdr: s,
            })
        }
        _ => None,
    })
}

fn latency(l: &Latency) -> Option<Dist> {
    let (min, max) = l.range_us()?;
    Some(Dist { count: l.count(), sum: l.sum_us(), min, max, zeros: 0, sum_sq: l.sum_sq_us(), hdr: hdr::encode(l.histogram()) })
}

fn lengths(l: &Lengths) -> Option<Dist> {
    let (min, max) = l.range()?;
    Some(Dist { count: l.count(), sum: l.sum() as f64, min, max, zeros: l.zeros(), sum_sq: 0.0, hdr: hdr::encode(l.histogram()) })
}

impl Dist {
    /// The latency distribution this carries; why not, when it does not decode or is
    /// not one llmload keeps.
    pub fn latency(&self) -> Result<Latency, String> {
        let h = hdr::decode(&self.hdr)?;
        // Before sum_sq was kept: the histogram's spread stands in for it.
        let sum_sq = if self.sum_sq > 0.0 { self.sum_sq } else { (h.stdev().powi(2) + h.mean().powi(2)) * h.len() as f64 };
        Latency::from_parts(h, self.sum, sum_sq, (self.min, self.max))
            .ok_or_else(|| "a histogram of another range or precision".to_string())
    }

    pub fn lengths(&self) -> Result<Lengths, String> {
        let h = hdr::decode(&self.hdr)?;
        Lengths::from_parts(h, self.sum as u64, (self.min, self.max), self.zeros)
            .ok_or_else(|| "a histogram of another range or precision".to_string())
    }

    pub fn of_latency(l: &Latency) -> Option<Dist> {
        latency(l)
    }

    pub fn of_lengths(l: &Lengths) -> Option<Dist> {
        lengths(l)
    }
}

impl Histograms {
    pub fn of(s: &StageStats) -> Histograms {
        Histograms {
            e2e_us: latency(&s.latency),
            attempt_us: latency(&s.attempt_latency),
            ttft_us: latency(&s.ttft),
            ttft_answer_us: latency(&s.ttft_answer),
            partial_ttft_us: latency(&s.partial_ttft),
            thinking_us: latency(&s.thinking),
            itl_us: latency(&s.itl),
            chunk_gap_us: latency(&s.chunk_gap),
            latency_uncorrected_us: latency(&s.latency_uncorrected),
            schedule_lag_us: latency(&s.schedule_lag),
            limiter_wait_us: latency(&s.limiter_wait),
            input_tokens: lengths(&s.input_len),
            output_tokens: lengths(&s.output_len),
            target_output_tokens: lengths(&s.target_output),
        }
    }
}
