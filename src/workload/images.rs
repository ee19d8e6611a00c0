//! Images a stage's prompts carry (`[request] images`): drawn ones of the sizes asked
//! or files, sent as content parts of the last user message in the API's own shape
//! (chat's `image_url`, the Responses API's `input_image`, Anthropic's `image` block),
//! as base64 data URIs. Each stage builds a pool of images once, before its clock
//! runs — up to [`POOL_MAX`] distinct drawn images within [`POOL_PIXELS`], a length
//! that depends on the sizes drawn alone (never on the machine or the shard) — each image's
//! part serialized once; request *i* carries a seeded count of them, taken in turn
//! from the pool by the whole run's request number, so shards send the whole run's
//! images. Past the pool, images recur (a server's image cache may then hit: see
//! docs/scenario.md).

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::dist::Dist;
use super::image_server::ImageServer;
use super::picture::{Format, Picture};
use crate::model::{Api, Media};

/// Most images in one request.
pub const MAX_IMAGES: u32 = 64;
/// Most distinct images drawn for a stage, and the most pixels they may hold together
/// (the drawing's cost, some seconds on two cores, and its memory: a base64 part is
/// at most 4 bytes a pixel). The image that reaches the bound is the last.
const POOL_MAX: usize = 128;
const POOL_PIXELS: u64 = 32 << 20;

/// The images a stage's requests carry, as its scenario sets them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagesSpec {
    /// Images per request (0 sends the prompt as it is).
    pub count: Dist,
    pub source: Source,
    /// `detail` (`auto`, `low`, `high`), sent where the API has it.
    pub detail: Option<String>,
    /// Sent as URLs of a server llmload runs on 127.0.0.1, not as data URIs.
    pub as_url: bool,
    /// Seeds the draws (the scenario's prompt seed).
    pub seed: u64,
}

/// Where images come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Drawn, of these sizes, encoded as `format`.
    Drawn { sizes: Sizes, format: Format },
    /// Files, read and decoded when the scenario was (each checked), in name order.
    Files(Arc<[Picture]>),
}

/// The same drawn sizes, or the same files (by their bytes' length and size: files
/// are compared when stages are, never byte by byte).
impl PartialEq for Source {
    fn eq(&self, o: &Source) -> bool {
        match (self, o) {
            (Source::Drawn { sizes: a, format: f }, Source::Drawn { sizes: b, format: g }) => (a, f) == (b, g),
            (Source::Files(a), Source::Files(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Drawn images' sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Sizes {
    /// `"1024x768"`, or several, each with its weight.
    Listed(Vec<((u32, u32), u32)>),
    /// A width and a height, each drawn.
    Drawn { width: Dist, height: Dist },
}

impl Sizes {
    fn draw(&self, rng: &mut rand::rngs::StdRng) -> (u32, u32) {
        use rand::Rng;
        match self {
            Sizes::Listed(list) => {
                let total: u64 = list.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut at = rng.random_range(0..total.max(1));
                for (size, w) in list {
                    if at < u64::from(*w) {
                        return *size;
                    }
                    at -= u64::from(*w);
                }
                list.last().map_or((512, 512), |(s, _)| *s)
            }
            Sizes::Drawn { width, height } => (width.sample(rng), height.sample(rng)),
        }
    }
}

/// One image, its content part serialized.
#[derive(Debug)]
struct Part {
    json: String,
    pixels: u64,
    bytes: u64,
}

/// A stage's images: its pool, built once (before the stage, or at its first request).
#[derive(Debug)]
pub(super) struct StageImages {
    spec: ImagesSpec,
    api: Api,
    stage: u64,
    pool: OnceLock<Pool>,
}

/// The parts, and the server of the images they name by URL (`as_url`).
#[derive(Debug)]
struct Pool {
    parts: Vec<Part>,
    _server: Option<ImageServer>,
}

fn rng(seed: u64, stage: u64, i: u64, name: &[u8; 8]) -> rand::rngs::StdRng {
    super::dist::rng_named(seed, stage, i, name)
}

impl StageImages {
    pub(super) fn new(spec: ImagesSpec, api: Api, stage: u64) -> StageImages {
        StageImages { spec, api, stage, pool: OnceLock::new() }
    }

    /// Builds the pool now (on every core) if not built yet. `requests`: when the stage
    /// sends exactly the requests numbered below it in the whole run, no more images
    /// than they carry are drawn (pool image *j* is the same whatever the pool's length,
    /// and none of them wraps past it: a shard's requests carry the whole run's).
    pub(super) fn prepare(&self, requests: Option<u64>) {
        let most = requests.map_or(POOL_MAX as u64, |n| n.saturating_mul(u64::from(most(&self.spec.count))));
        self.pool_of(most.clamp(1, POOL_MAX as u64) as usize);
    }

    fn pool(&self) -> &[Part] {
        self.pool_of(POOL_MAX)
    }

    fn pool_of(&self, most: usize) -> &[Part] {
        &self
            .pool
            .get_or_init(|| {
                let drawn;
                let pictures: &[Picture] = match &self.spec.source {
                    Source::Files(files) => files,
                    Source::Drawn { sizes, format } => {
                        drawn = self.draw(sizes, *format, most);
                        &drawn
                    }
                };
                let detail = self.spec.detail.as_deref();
                let measured = |p: &Picture, json| Part { json, pixels: p.pixels(), bytes: p.bytes.len() as u64 };
                if self.spec.as_url {
                    // Served from here: the request carries the URL; a server fetches it.
                    match ImageServer::start(pictures) {
                        Ok(server) => {
                            let parts = pictures
                                .iter()
                                .enumerate()
                                .map(|(k, p)| measured(p, url_part(self.api, &server.url(k, p.format.extension()), detail)))
                                .collect();
                            return Pool { parts, _server: Some(server) };
                        }
                        Err(e) => eprintln!("warning: could not serve images from 127.0.0.1 ({e}): sending them as data URIs"),
                    }
                }
                Pool { parts: pictures.iter().map(|p| measured(p, part(self.api, detail, p))).collect(), _server: None }
            })
            .parts
    }

    /// Up to `most` distinct images, within [`POOL_PIXELS`]: their sizes drawn first,
    /// one after another (so the pool's length is the sizes' alone), then their pixels
    /// in rounds of one image a core.
    fn draw(&self, sizes: &Sizes, format: Format, most: usize) -> Vec<Picture> {
        let mut planned: Vec<(u32, u32)> = Vec::new();
        let mut pixels = 0u64;
        while planned.len() < most && pixels < POOL_PIXELS {
            let (w, h) = sizes.draw(&mut rng(self.spec.seed, self.stage, planned.len() as u64, b"imgsize\0"));
            pixels += u64::from(w) * u64::from(h);
            planned.push((w, h));
        }
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        let mut pool: Vec<Picture> = Vec::with_capacity(planned.len());
        for round in planned.chunks(threads) {
            let lo = pool.len();
            let drawn: Vec<Picture> = std::thread::scope(|s| {
                let handles: Vec<_> = round
                    .iter()
                    .enumerate()
                    .map(|(k, &(w, h))| s.spawn(move || Picture::draw(w, h, format, self.spec.seed ^ (self.stage << 48) ^ (lo + k) as u64)))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("drawing an image does not panic")).collect()
            });
            pool.extend(drawn);
        }
        pool
    }

    /// Request `i`'s (the whole run's number) prompt with its images, and what they
    /// are; the prompt as it is when it carries none (or has no user message).
    pub(super) fn attach(&self, prompt: &str, i: u64) -> (Option<String>, Media) {
        let n = self.spec.count.sample(&mut rng(self.spec.seed, self.stage, i, b"images\0\0")).min(MAX_IMAGES);
        let pool = self.pool();
        if n == 0 || pool.is_empty() {
            return (None, Media::default());
        }
        let stride = u64::from(most(&self.spec.count));
        let picked: Vec<&Part> = (0..u64::from(n)).map(|k| &pool[((i * stride + k) % pool.len() as u64) as usize]).collect();
        let Some(json) = splice(prompt, self.api, picked.iter().map(|p| p.json.as_str())) else {
            return (None, Media::default());
        };
        let media = Media { images: n, pixels: picked.iter().map(|p| p.pixels).sum(), bytes: picked.iter().map(|p| p.bytes).sum() };
        (Some(json), media)
    }
}

/// `p` as a content part of `api`, a base64 data URI, serialized.
pub(crate) fn part(api: Api, detail: Option<&str>, p: &Picture) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(&p.bytes);
    let mime = p.format.mime();
    let v = match api {
        Api::Responses => {
            json!({"type": "input_image", "image_url": format!("data:{mime};base64,{data}"), "detail": detail.unwrap_or("auto")})
        }
        Api::Messages => json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}),
        _ => {
            let mut url = json!({"url": format!("data:{mime};base64,{data}")});
            if let Some(d) = detail {
                url["detail"] = json!(d);
            }
            json!({"type": "image_url", "image_url": url})
        }
    };
    v.to_string()
}

/// An image by URL as a content part of `api` (a server that fetches it).
pub(crate) fn url_part(api: Api, url: &str, detail: Option<&str>) -> String {
    match api {
        Api::Responses => json!({"type": "input_image", "image_url": url, "detail": detail.unwrap_or("auto")}),
        Api::Messages => json!({"type": "image", "source": {"type": "url", "url": url}}),
        _ => match detail {
            Some(d) => json!({"type": "image_url", "image_url": {"url": url, "detail": d}}),
            None => json!({"type": "image_url", "image_url": {"url": url}}),
        },
    }
    .to_string()
}

/// The images in messages' content parts (a dataset line's own: chat's `image_url`),
/// checked: a data URI's image decoded and measured, an http(s) URL counted (its
/// pixels unknown). Err: the part at fault and why. None when there is no image.
pub(crate) fn media_of(messages: &[Value]) -> Result<Option<Media>, String> {
    use base64::Engine;
    let mut media = Media::default();
    for (i, m) in messages.iter().enumerate() {
        let Some(parts) = m.get("content").and_then(Value::as_array) else { continue };
        for (j, part) in parts.iter().enumerate().filter(|(_, p)| p.get("type").and_then(Value::as_str) == Some("image_url")) {
            let at = format!("messages[{i}].content[{j}].image_url");
            let url = part["image_url"].get("url").and_then(Value::as_str).ok_or_else(|| format!("{at}.url is missing"))?;
            media.images += 1;
            if url.starts_with("http://") || url.starts_with("https://") {
                continue;
            }
            let b64 = url
                .strip_prefix("data:")
                .and_then(|u| u.split_once(";base64,"))
                .map(|(_, b)| b)
                .ok_or_else(|| format!("{at}.url must be a base64 data URI or an http(s) URL"))?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| format!("{at}: the data URI is not base64"))?;
            let p = Picture::read(bytes).map_err(|e| format!("{at}: {e}"))?;
            (media.pixels, media.bytes) = (media.pixels + p.pixels(), media.bytes + p.bytes.len() as u64);
        }
    }
    Ok((media.images > 0).then_some(media))
}

/// The most `d` draws.
/// A request's share of the pool: the most a count draws (a normal's or a log-normal's
/// centre: their open bounds would space requests far apart in a small pool).
fn most(d: &Dist) -> u32 {
    d.bound().clamp(1, MAX_IMAGES)
}

/// Stands for the image parts while the prompt is serialized; no text holds it.
const MARK: &str = "\u{1}llmload-images\u{1}";

/// `prompt` (a messages list, or Anthropic's `{system, messages}`) with `parts` after
/// the text of its last user message (a text becomes a text part); None when it has
/// no user message.
pub(crate) fn splice<'a>(prompt: &str, api: Api, parts: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut v: Value = serde_json::from_str(prompt).ok()?;
    let messages = match &mut v {
        Value::Array(m) => m,
        Value::Object(o) => o.get_mut("messages")?.as_array_mut()?,
        _ => return None,
    };
    let last = messages.iter_mut().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    let content = last.get_mut("content")?;
    let mut list = match content.take() {
        Value::Array(list) => list,
        Value::String(text) if text.is_empty() => Vec::new(),
        Value::String(text) => vec![text_part(api, text)],
        other => vec![other],
    };
    list.push(Value::String(MARK.into()));
    *content = Value::Array(list);
    let text = v.to_string();
    let mark = serde_json::to_string(MARK).expect("a string serializes");
    let at = text.find(&mark)?;
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(&text[..at]);
    for (k, p) in parts.enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(p);
    }
    out.push_str(&text[at + mark.len()..]);
    Some(out)
}

/// A text content part of `api`.
pub(crate) fn text_part(api: Api, text: String) -> Value {
    match api {
        Api::Responses => json!({"type": "input_text", "text": text}),
        _ => json!({"type": "text", "text": text}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(count: Dist, sizes: Sizes) -> ImagesSpec {
        ImagesSpec { count, source: Source::Drawn { sizes, format: Format::Png }, detail: Some("low".into()), seed: 3, as_url: false }
    }

    #[test]
    fn a_prompt_gets_its_images_after_its_text_in_the_apis_shape() {
        let s = StageImages::new(spec(Dist::Fixed(2), Sizes::Listed(vec![((32, 16), 1)])), Api::Chat, 0);
        let prompt = r#"[{"role":"system","content":"be brief"},{"role":"user","content":"what is this?"}]"#;
        let (json, media) = s.attach(prompt, 5);
        let v: Value = serde_json::from_str(&json.unwrap()).unwrap();
        assert_eq!(v[0]["content"], "be brief");
        let parts = v[1]["content"].as_array().unwrap();
        assert_eq!(parts[0], json!({"type": "text", "text": "what is this?"}));
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1]["image_url"]["detail"], "low");
        assert!(parts[1]["image_url"]["url"].as_str().unwrap().starts_with("data:image/png;base64,iVBOR"));
        assert_eq!((media.images, media.pixels), (2, 2 * 32 * 16));
        assert_eq!(media.bytes, s.pool()[10].bytes + s.pool()[11].bytes, "request 5's: the pool's 10th and 11th, encoded");
        // The same request, the same images; the next, the next in the pool.
        assert_eq!(s.attach(prompt, 5).0, s.attach(prompt, 5).0);
        assert_ne!(s.attach(prompt, 5).0, s.attach(prompt, 6).0);

        let m = StageImages::new(spec(Dist::Fixed(1), Sizes::Listed(vec![((8, 8), 1)])), Api::Messages, 0);
        let (json, _) = m.attach(r#"{"system":"s","messages":[{"role":"user","content":"hi"}]}"#, 0);
        let v: Value = serde_json::from_str(&json.unwrap()).unwrap();
        assert_eq!(v["messages"][0]["content"][1]["source"]["media_type"], "image/png");
        let r = StageImages::new(spec(Dist::Fixed(1), Sizes::Listed(vec![((8, 8), 1)])), Api::Responses, 0);
        let v: Value = serde_json::from_str(&r.attach(r#"[{"role":"user","content":"hi"}]"#, 0).0.unwrap()).unwrap();
        assert_eq!((v[0]["content"][0]["type"].as_str(), v[0]["content"][1]["type"].as_str()), (Some("input_text"), Some("input_image")));
    }

    #[test]
    fn counts_and_sizes_are_drawn_within_their_bounds() {
        let sizes = Sizes::Drawn { width: Dist::Uniform { min: 16, max: 64 }, height: Dist::Fixed(8) };
        let s = StageImages::new(spec(Dist::Uniform { min: 0, max: 3 }, sizes), Api::Chat, 1);
        let counts: Vec<u32> = (0..40).map(|i| s.attach(r#"[{"role":"user","content":"x"}]"#, i).1.images).collect();
        assert!(counts.iter().all(|&n| n <= 3) && counts.contains(&0) && counts.contains(&3), "{counts:?}");
        assert!(s.pool().iter().all(|p| (16 * 8..=64 * 8).contains(&p.pixels)));
        assert!(s.pool().iter().any(|p| p.pixels != s.pool()[0].pixels), "widths drawn");
        assert_eq!(s.pool().len(), POOL_MAX);
        // No user message: sent as it is.
        assert_eq!(s.attach(r#"[{"role":"system","content":"x"}]"#, 3).0, None);
    }
}
