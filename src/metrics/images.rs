//! The images a stage's successful requests carried: how many requests carried any,
//! images per request, their pixels and encoded bytes per request, and the prompt
//! tokens the server counted for them (where its image tokens show).

use super::lengths::Lengths;
use crate::model::RequestRecord;

#[derive(Debug, Clone)]
pub struct ImageStats {
    /// Successful requests that carried an image, and the images.
    pub requests: u64,
    pub images: u64,
    /// Per such request.
    pub per_request: Lengths,
    pub pixels: Lengths,
    pub bytes: Lengths,
    /// The server's `usage.prompt_tokens`, where it sent one.
    pub prompt_tokens: Lengths,
}

impl Default for ImageStats {
    fn default() -> Self {
        ImageStats {
            requests: 0,
            images: 0,
            per_request: Lengths::default(),
            pixels: Lengths::wide(),
            bytes: Lengths::wide(),
            prompt_tokens: Lengths::default(),
        }
    }
}

impl ImageStats {
    /// A successful request's images.
    pub fn record(&mut self, rec: &RequestRecord) {
        let Some(m) = rec.media.filter(|m| m.images > 0) else { return };
        self.requests += 1;
        self.images += u64::from(m.images);
        self.per_request.record(u64::from(m.images));
        self.pixels.record(m.pixels);
        self.bytes.record(m.bytes);
        if let Some(n) = rec.usage.and_then(|u| u.prompt_tokens) {
            self.prompt_tokens.record(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Media, Usage};

    #[test]
    fn requests_with_images_are_counted_with_their_pixels_bytes_and_prompt_tokens() {
        let mut s = ImageStats::default();
        let usage = Some(Usage { prompt_tokens: Some(773), ..Usage::default() });
        // 4 images of 4096² are past the token lengths' bound: pixels are kept apart.
        let big = Media { images: 4, pixels: 4 * 4096 * 4096, bytes: 9_000_000 };
        s.record(&RequestRecord { media: Some(big), usage, ..Default::default() });
        s.record(&RequestRecord { media: Some(Media { images: 1, pixels: 1 << 20, bytes: 1000 }), ..Default::default() });
        s.record(&RequestRecord { media: Some(Media::default()), ..Default::default() });
        s.record(&RequestRecord::default());
        assert_eq!((s.requests, s.images), (2, 5));
        assert_eq!(s.pixels.range(), Some((1 << 20, 4 * 4096 * 4096)));
        assert_eq!(s.bytes.sum(), 9_001_000);
        assert_eq!((s.prompt_tokens.count(), s.prompt_tokens.sum()), (1, 773));
    }
}
