//! Histograms as text: HdrHistogram's V2 encoding, deflated (what its Java, Python and
//! Go readers take: `decodeFromCompressedByteBuffer`, `HdrHistogram.decode`), in base64.

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

/// The base64 text of `h`, V2 + deflate.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut buf).expect("a histogram serializes to memory");
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// A histogram from its base64 text, V2 with or without deflate (results of schema 1
/// carried plain V2).
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("not an HdrHistogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_plain_v2_too() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [1, 250, 80_000, 80_001, 3_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!((back.len(), back.min(), back.max(), back.value_at_quantile(0.5)), (5, 1, h.max(), h.value_at_quantile(0.5)));
        let mut plain = Vec::new();
        hdrhistogram::serialization::V2Serializer::new().serialize(&h, &mut plain).unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode(&plain);
        assert_eq!(decode(&plain).unwrap(), h);
        assert!(decode("not base64!").unwrap_err().starts_with("not base64"));
        assert!(decode("AAAA").unwrap_err().starts_with("not an HdrHistogram"));
    }
}
