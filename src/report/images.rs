//! The images a stage's successful requests carried, in the result: requests that
//! carried any and the images, and per such request their count, pixels, encoded bytes
//! and the server's prompt tokens (its image tokens show there), each distribution
//! encoded so shards merge exactly.

use serde::{Deserialize, Serialize};

use super::Dist;
use crate::metrics::{LengthSummary, StageStats};

/// Absent when no request carried an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagesResult {
    pub requests: u64,
    pub images: u64,
    /// Per request that carried any: images, pixels (all its images'), encoded bytes
    /// (before base64) and the server's `usage.prompt_tokens` where it sent one.
    pub per_request: Option<LengthSummary>,
    pub pixels: Option<LengthSummary>,
    pub bytes: Option<LengthSummary>,
    pub prompt_tokens: Option<LengthSummary>,
    /// Their distributions, for merges; absent from a live view's.
    #[serde(default, skip_serializing_if = "ImageHistograms::is_empty")]
    pub histograms: ImageHistograms,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageHistograms {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Dist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Dist>,
}

impl ImageHistograms {
    fn is_empty(&self) -> bool {
        self.per_request.is_none() && self.pixels.is_none() && self.bytes.is_none() && self.prompt_tokens.is_none()
    }
}

/// The stage's images; with `full`, their distributions too.
pub fn images(s: &StageStats, full: bool) -> Option<ImagesResult> {
    let m = &s.images;
    let dist = |l| if full { Dist::of_lengths(l) } else { None };
    (m.requests > 0).then(|| ImagesResult {
        requests: m.requests,
        images: m.images,
        per_request: m.per_request.summary(),
        pixels: m.pixels.summary(),
        bytes: m.bytes.summary(),
        prompt_tokens: m.prompt_tokens.summary(),
        histograms: ImageHistograms {
            per_request: dist(&m.per_request),
            pixels: dist(&m.pixels),
            bytes: dist(&m.bytes),
            prompt_tokens: dist(&m.prompt_tokens),
        },
    })
}

impl ImagesResult {
    /// A short cell: images per request and the mean megapixels of a request's.
    pub fn cell(&self) -> String {
        let per = self.images as f64 / self.requests.max(1) as f64;
        let mpx = self.pixels.map_or(0.0, |p| p.mean / 1e6);
        format!("{} × {:.2} MP", trim(per), mpx / per.max(1e-9))
    }
}

/// `1` for 1.0, `1.5` for 1.5.
fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
