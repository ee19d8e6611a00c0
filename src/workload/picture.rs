//! One image: drawn (seeded pixels, encoded as PNG or JPEG) or read from a file (decoded
//! whole, so a file that does not decode is refused before any request), with its
//! dimensions and encoded bytes. Drawn pixels are a seeded colour gradient under
//! seeded noise: never flat (an encoder would shrink a flat image to almost nothing,
//! and a server's decoder would do almost no work), and as costly to decode as a
//! photograph. Encoders: `png` (image-rs) and `jpeg-encoder` (no dependencies); JPEG
//! files are decoded by `zune-jpeg`.

use std::io::Cursor;

use rand::{Rng, SeedableRng};

/// The most pixels on a side of a drawn image (JPEG's own limit is 65,535).
pub const MAX_SIDE: u32 = 8192;
/// A file larger than this is refused: servers cap a request's body far below it.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// JPEG quality of drawn images: a photograph's usual.
const JPEG_QUALITY: u8 = 85;

/// An image format a drawn image is encoded in, or a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
        }
    }

    /// By its name in a scenario.
    pub fn named(name: &str) -> Option<Format> {
        match name {
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            _ => None,
        }
    }
}

/// An encoded image and what it is.
#[derive(Debug, Clone)]
pub struct Picture {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

impl Picture {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// A `width`×`height` image from `seed`, encoded as `format`.
    pub fn draw(width: u32, height: u32, format: Format, seed: u64) -> Picture {
        let (w, h) = (width.clamp(1, MAX_SIDE), height.clamp(1, MAX_SIDE));
        let rgb = pixels(w, h, seed);
        let mut bytes = Vec::new();
        match format {
            Format::Png => {
                let mut e = png::Encoder::new(&mut bytes, w, h);
                e.set_color(png::ColorType::Rgb);
                e.set_depth(png::BitDepth::Eight);
                // Fast: noise does not compress whatever the effort, and the build is
                // before every stage.
                e.set_compression(png::Compression::Fast);
                let mut writer = e.write_header().expect("a PNG header writes to memory");
                writer.write_image_data(&rgb).expect("pixels of the header's size encode");
                writer.finish().expect("a PNG ends in memory");
            }
            Format::Jpeg => jpeg_encoder::Encoder::new(&mut bytes, JPEG_QUALITY)
                .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
                .expect("pixels of their size encode"),
        }
        Picture { bytes, format, width: w, height: h }
    }

    /// An image file, read (within [`MAX_FILE_BYTES`]) and checked. Err names the file.
    pub fn open(path: &std::path::Path) -> Result<Picture, String> {
        let shown = path.display();
        let len = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot read: {e}"))?.len();
        if len > MAX_FILE_BYTES {
            return Err(format!("{shown}: {len} bytes, more than the {} MiB an image may be", MAX_FILE_BYTES >> 20));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        Picture::read(bytes).map_err(|e| format!("{shown}: {e}"))
    }

    /// An image file's bytes, checked: PNG or JPEG by its first bytes, decoded whole.
    pub fn read(bytes: Vec<u8>) -> Result<Picture, String> {
        let format = sniff(&bytes).ok_or("not a PNG or JPEG image (llmload reads those two)")?;
        let (width, height) = decode(&bytes, format)?;
        Ok(Picture { bytes, format, width, height })
    }
}

/// The format of encoded `bytes`, by their signature.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    match bytes {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some(Format::Png),
        [0xff, 0xd8, 0xff, ..] => Some(Format::Jpeg),
        _ => None,
    }
}

/// Decodes `bytes` whole; its width and height, or why it does not decode.
pub fn decode(bytes: &[u8], format: Format) -> Result<(u32, u32), String> {
    match format {
        Format::Png => {
            // Room for the largest side taken (8192² of 16-bit RGBA), no more.
            let limits = png::Limits { bytes: (MAX_SIDE as usize).pow(2) * 8 };
            let mut reader =
                png::Decoder::new_with_limits(Cursor::new(bytes), limits).read_info().map_err(|e| format!("PNG does not decode: {e}"))?;
            let (w, h) = reader.info().size();
            if w.max(h) > MAX_SIDE {
                return Err(format!("{w}×{h}: more than {MAX_SIDE} pixels on a side"));
            }
            let size = reader.output_buffer_size().ok_or("PNG too large to decode")?;
            let mut buf = vec![0; size];
            let info = reader.next_frame(&mut buf).map_err(|e| format!("PNG does not decode: {e}"))?;
            Ok((info.width, info.height))
        }
        Format::Jpeg => {
            let options =
                zune_jpeg::zune_core::options::DecoderOptions::default().set_max_width(MAX_SIDE as usize).set_max_height(MAX_SIDE as usize);
            let mut d = zune_jpeg::JpegDecoder::new_with_options(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes), options);
            d.decode().map_err(|e| format!("JPEG does not decode: {e:?}"))?;
            let info = d.info().ok_or("JPEG without a frame header")?;
            Ok((u32::from(info.width), u32::from(info.height)))
        }
    }
}

/// Width and height from an encoded image's header alone (the mock's: it charges
/// tokens by size and needs no pixels); None when the header is not one.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    match sniff(bytes)? {
        Format::Png => {
            let be = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
            // IHDR is the first chunk: width and height after its length and type.
            (bytes.get(12..16)? == b"IHDR").then_some(())?;
            Some((be(16)?, be(20)?))
        }
        Format::Jpeg => {
            let mut d = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
            d.decode_headers().ok()?;
            d.info().map(|i| (u32::from(i.width), u32::from(i.height)))
        }
    }
}

/// RGB pixels: a gradient between two seeded colours, each pixel moved by up to ±32 of
/// seeded noise per channel. Integer arithmetic: a pool of large images is drawn before
/// every stage.
fn pixels(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let from: [i32; 3] = std::array::from_fn(|_| rng.random_range(0..256));
    let to: [i32; 3] = std::array::from_fn(|_| rng.random_range(0..256));
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    // A xorshift per pixel: the rng's cost per byte would dominate a large image.
    let mut x = seed | 1;
    let span = i64::from(w + h).max(1);
    for row in 0..h {
        for col in 0..w {
            let t = (i64::from(row + col) * 256 / span) as i32;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for c in 0..3 {
                let noise = ((x >> (8 * c)) & 0x3f) as i32 - 32;
                out.push((from[c] + (((to[c] - from[c]) * t) >> 8) + noise).clamp(0, 255) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_images_decode_to_their_size_differ_by_seed_and_are_not_flat() {
        for format in [Format::Png, Format::Jpeg] {
            let a = Picture::draw(64, 48, format, 1);
            assert_eq!((a.width, a.height, a.pixels()), (64, 48, 3072));
            assert_eq!(sniff(&a.bytes), Some(format));
            assert_eq!(decode(&a.bytes, format), Ok((64, 48)));
            assert_eq!(dimensions(&a.bytes), Some((64, 48)));
            assert_eq!(Picture::draw(64, 48, format, 1).bytes, a.bytes, "seeded");
            assert_ne!(Picture::draw(64, 48, format, 2).bytes, a.bytes);
        }
        // Noise keeps a PNG near its raw size: a flat image would shrink to a few hundred bytes.
        let png = Picture::draw(256, 256, Format::Png, 7);
        assert!(png.bytes.len() > 256 * 256 * 3 / 2, "{} bytes", png.bytes.len());
        let jpeg = Picture::draw(256, 256, Format::Jpeg, 7);
        assert!(jpeg.bytes.len() > 10_000, "{} bytes", jpeg.bytes.len());
    }

    #[test]
    fn a_file_that_is_not_an_image_or_is_cut_is_refused() {
        assert!(Picture::read(b"GIF89a....".to_vec()).unwrap_err().contains("not a PNG or JPEG"));
        let mut cut = Picture::draw(32, 32, Format::Png, 3).bytes;
        cut.truncate(cut.len() / 2);
        assert!(Picture::read(cut).unwrap_err().contains("PNG does not decode"), "a cut PNG");
        let mut cut = Picture::draw(32, 32, Format::Jpeg, 3).bytes;
        cut.truncate(40);
        assert!(Picture::read(cut).is_err(), "a cut JPEG");
        let ok = Picture::read(Picture::draw(20, 10, Format::Jpeg, 3).bytes).unwrap();
        assert_eq!((ok.width, ok.height, ok.format), (20, 10, Format::Jpeg));
    }
}
