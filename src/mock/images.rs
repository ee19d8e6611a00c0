//! What the mock charges for the images a prompt carries, by OpenAI's published rule
//! for gpt-4o-class models (platform.openai.com/docs/guides/vision, "Calculating
//! costs"; tests/fixtures/tools/RESEARCH.md §6b): `detail = "low"` costs 85 tokens; any
//! other detail scales the image to fit 2048×2048, then its shortest side down to 768
//! (never up), and costs 85 + 170 per 512-px tile. The tokens join the prompt's, so a
//! vision stage's prefill (and TTFT) grows with its images' pixels as on a real server.
//! Images come as chat's `image_url` parts, the Responses API's `input_image` and
//! Anthropic's `image` blocks; a data URI's image is measured from its header, one that
//! is not a PNG or JPEG header is a 400 naming the part. An image by URL on 127.0.0.1
//! (llmload's own `as_url` server) is fetched and measured; any other URL is never
//! fetched (the mock makes no request off the machine): it costs one tile.

use base64::Engine;
use serde_json::Value;

use crate::workload::picture::dimensions;

/// The tokens of an image `w`×`h` asked at `detail`.
pub fn tile_tokens(w: u32, h: u32, detail: Option<&str>) -> u64 {
    if detail == Some("low") {
        return 85;
    }
    let (mut w, mut h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let fit = (2048.0 / w.max(h)).min(1.0);
    (w, h) = (w * fit, h * fit);
    let short = (768.0 / w.min(h)).min(1.0);
    (w, h) = (w * short, h * short);
    let tiles = (w / 512.0).ceil() * (h / 512.0).ceil();
    85 + 170 * tiles as u64
}

/// Base64 characters decoded to read a header: a JPEG's frame header follows its
/// tables, which rarely take more than a few kilobytes.
const HEADER_CHARS: usize = 64 * 1024;

/// An image to fetch from 127.0.0.1 before it is charged: its URL and detail.
pub(super) type Fetch = (String, Option<String>);

/// The image tokens of `messages` (chat's, or the Responses and Messages prompts made
/// into messages), and the images on 127.0.0.1 still to fetch; Err: the part at fault
/// and why.
pub(super) fn image_tokens(messages: &Value) -> Result<(u64, Vec<Fetch>), String> {
    let mut total = 0;
    let mut fetch = Vec::new();
    for (i, m) in messages.as_array().into_iter().flatten().enumerate() {
        let Some(parts) = m.get("content").and_then(Value::as_array) else { continue };
        for (j, part) in parts.iter().enumerate() {
            let at = || format!("messages[{i}].content[{j}]");
            let (data, detail) = match part.get("type").and_then(Value::as_str) {
                Some("image_url") => {
                    let url = &part["image_url"];
                    (url.get("url").or(Some(url)).and_then(Value::as_str), url.get("detail").and_then(Value::as_str))
                }
                Some("input_image") => (part["image_url"].as_str(), part.get("detail").and_then(Value::as_str)),
                Some("image") => match part["source"]["type"].as_str() {
                    Some("base64") => {
                        let data = part["source"]["data"].as_str().ok_or_else(|| format!("{}.source.data is missing", at()))?;
                        total += measure(data, None).map_err(|e| format!("{}: {e}", at()))?;
                        continue;
                    }
                    _ => (part["source"]["url"].as_str(), None),
                },
                _ => continue,
            };
            let url = data.ok_or_else(|| format!("{}: the image has no url", at()))?;
            total += match url.strip_prefix("data:") {
                Some(uri) => {
                    let (_, b64) = uri.split_once(";base64,").ok_or_else(|| format!("{}: a data URI must be base64", at()))?;
                    measure(b64, detail).map_err(|e| format!("{}: {e}", at()))?
                }
                None if loopback(url) => {
                    fetch.push((url.to_string(), detail.map(str::to_string)));
                    0
                }
                // Not fetched: one tile at any detail but low.
                None => tile_tokens(512, 512, detail),
            };
        }
    }
    Ok((total, fetch))
}

/// An http URL on this machine's loopback.
fn loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            }
    })
}

/// The tokens of images on 127.0.0.1, each fetched (within 10 s) and measured; Err:
/// which could not be, and why.
pub(super) async fn fetched_tokens(images: &[Fetch]) -> Result<u64, String> {
    let mut total = 0;
    for (url, detail) in images {
        let bytes = tokio::time::timeout(std::time::Duration::from_secs(10), get(url))
            .await
            .unwrap_or_else(|_| Err("no answer within 10 s".into()))
            .map_err(|e| format!("could not fetch the image at {url}: {e}"))?;
        let (w, h) = dimensions(&bytes).ok_or_else(|| format!("the image at {url} is not a valid PNG or JPEG"))?;
        total += tile_tokens(w, h, detail.as_deref());
    }
    Ok(total)
}

/// `GET url` on a connection of its own; the body of a 200.
async fn get(url: &str) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((host, u.port_or_known_default().unwrap_or(80))).await.map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(u.path())
        .header(http::header::HOST, u.authority())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = send.send_request(req).await.map_err(|e| e.to_string())?;
    if res.status() != http::StatusCode::OK {
        return Err(format!("HTTP {}", res.status().as_u16()));
    }
    // No more than an image file may be.
    let body = http_body_util::Limited::new(res.into_body(), crate::workload::picture::MAX_FILE_BYTES as usize);
    Ok(body.collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec())
}

/// The tokens of a base64 image, measured from its header.
fn measure(b64: &str, detail: Option<&str>) -> Result<u64, String> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let bad = || "the image is not a valid PNG or JPEG".to_string();
    // A whole number of base64 quads from the start decodes alone.
    let head = &b64.as_bytes()[..b64.len().min(HEADER_CHARS) / 4 * 4];
    let bytes = engine.decode(head).map_err(|_| "the image's data is not base64".to_string())?;
    let (w, h) = match dimensions(&bytes) {
        Some(d) => d,
        None if head.len() < b64.len() => dimensions(&engine.decode(b64).map_err(|_| bad())?).ok_or_else(bad)?,
        None => return Err(bad()),
    };
    Ok(tile_tokens(w, h, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::picture::{Format, Picture};
    use serde_json::json;

    #[test]
    fn the_tile_rule_gives_openais_worked_examples() {
        // The guide's: 1024² at high → 768² → 4 tiles → 765; 2048×4096 → 1024×2048 →
        // 768×1536 → 6 tiles → 1105; low is always 85.
        assert_eq!(tile_tokens(1024, 1024, Some("high")), 765);
        assert_eq!(tile_tokens(2048, 4096, None), 1105);
        assert_eq!(tile_tokens(4096, 8192, Some("low")), 85);
        // Small images are not scaled up: 512² is one tile.
        assert_eq!(tile_tokens(512, 512, Some("auto")), 255);
        assert_eq!(tile_tokens(100, 100, None), 255);
    }

    #[test]
    fn images_of_every_apis_shape_are_charged_and_a_broken_one_is_named() {
        use base64::Engine;
        let b64 = |p: &Picture| base64::engine::general_purpose::STANDARD.encode(&p.bytes);
        let png = b64(&Picture::draw(1024, 1024, Format::Png, 1));
        let jpeg = b64(&Picture::draw(2048, 4096, Format::Jpeg, 1));
        let messages = json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}"), "detail": "high"}},
                {"type": "input_image", "image_url": format!("data:image/jpeg;base64,{jpeg}"), "detail": "auto"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png", "detail": "low"}},
            ]},
        ]);
        assert_eq!(image_tokens(&messages), Ok((765 + 1105 + 765 + 85, Vec::new())));
        let broken = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]);
        // Not base64, and cut inside a character: refused, never a panic.
        let hostile = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAé"}}]}]);
        assert!(image_tokens(&hostile).is_err());
        assert_eq!(image_tokens(&broken), Err("messages[0].content[0]: the image is not a valid PNG or JPEG".into()));
        assert_eq!(image_tokens(&json!([{"role": "user", "content": "no images"}])), Ok((0, Vec::new())));
        // On 127.0.0.1: fetched before it is charged.
        let local = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/images/0.png"}}]}]);
        assert_eq!(image_tokens(&local), Ok((0, vec![("http://127.0.0.1:9/images/0.png".into(), None)])));
    }
}
