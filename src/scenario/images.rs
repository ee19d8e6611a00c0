//! `[request] images = {…}` as written → the images a stage's requests carry: a count
//! (or a distribution), drawn images' `size` (`"WxH"`, a list, weighted entries) or
//! `width` and `height` distributions, their `format`, the `detail` asked, or a
//! `folder` of PNG and JPEG files, each read and decoded now — so a file that is
//! missing or does not decode is one located line before any request.

use std::path::Path;
use std::sync::Arc;

use toml::{Spanned, Value};

use super::error::Problems;
use crate::model::Api;
use crate::workload::dist::Dist;
use crate::workload::images::{ImagesSpec, MAX_IMAGES, Sizes, Source};
use crate::workload::picture::{Format, MAX_SIDE, Picture};

/// Most files a folder may give, and the most bytes they may hold together.
const MAX_FILES: usize = 4096;
const MAX_FOLDER_BYTES: u64 = 1 << 30;

/// The images `v` (named `what`.images) asks for, for requests to `api`; None with
/// its problems said at its place.
pub(super) fn images(v: &Spanned<Value>, what: &str, api: Api, base_dir: &Path, p: &mut Problems<'_>) -> Option<ImagesSpec> {
    let at = Some(v.span());
    let what = format!("{what}.images");
    if !matches!(api, Api::Chat | Api::Responses | Api::Messages) {
        p.at(at, format!("{what}: target.api = {:?} takes no images (chat, responses and messages do)", api.name()));
        return None;
    }
    match parse(v.get_ref(), base_dir) {
        Ok(spec) => Some(spec),
        Err(why) => {
            p.at(at, format!("{what}{why}"));
            None
        }
    }
}

/// Err: the field at fault (`.size`, …) and why.
fn parse(v: &Value, base_dir: &Path) -> Result<ImagesSpec, String> {
    let Value::Table(t) = v else {
        return Err(": a table such as { count = 1, size = \"1024x768\" } or { folder = \"shots\" }".into());
    };
    const KNOWN: [&str; 8] = ["count", "size", "width", "height", "format", "detail", "folder", "as_url"];
    if let Some(k) = t.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(": unknown field `{k}` (known: {})", KNOWN.join(", ")));
    }
    let count = match t.get("count") {
        None => Dist::Fixed(1),
        Some(Value::Integer(n)) if (0..=i64::from(MAX_IMAGES)).contains(n) => Dist::Fixed(*n as u32),
        Some(Value::Integer(n)) => return Err(format!(".count must be from 0 to {MAX_IMAGES}, got {n}")),
        // Uniform from min, which may be 0 (some requests carry none).
        Some(Value::Table(u)) if u.len() == 2 && u.contains_key("min") && u.contains_key("max") => {
            match (u["min"].as_integer(), u["max"].as_integer()) {
                (Some(lo), Some(hi)) if 0 <= lo && lo <= hi && hi <= i64::from(MAX_IMAGES) => {
                    Dist::Uniform { min: lo as u32, max: hi as u32 }
                }
                _ => return Err(format!(".count: min and max must be whole numbers, 0 <= min <= max <= {MAX_IMAGES}")),
            }
        }
        Some(d) => {
            // The token lengths' reader: its words are for tokens.
            let d = super::synthetic::dist(d).map_err(|e| format!(".count: {}", e.replace(" tokens", "").replace(" token", "")))?;
            if d.bound() > MAX_IMAGES {
                return Err(format!(".count: at most {MAX_IMAGES} images a request"));
            }
            d
        }
    };
    let detail = match t.get("detail") {
        None => None,
        Some(Value::String(d)) if matches!(d.as_str(), "auto" | "low" | "high") => Some(d.clone()),
        Some(d) => return Err(format!(".detail must be \"auto\", \"low\" or \"high\", got {d}")),
    };
    let format = match t.get("format") {
        None => None,
        Some(Value::String(f)) => Some(Format::named(f).ok_or_else(|| format!(".format must be \"png\" or \"jpeg\", got {f:?}"))?),
        Some(f) => return Err(format!(".format must be \"png\" or \"jpeg\", got {f}")),
    };
    let drawn = ["size", "width", "height"].into_iter().find(|k| t.contains_key(*k));
    let source = match (t.get("folder"), drawn) {
        (Some(_), Some(k)) => return Err(format!(": give a folder or drawn images' {k}, not both")),
        (Some(_), None) if format.is_some() => return Err(".format is for drawn images: a folder's files are sent as they are".into()),
        (Some(Value::String(folder)), None) => Source::Files(folder_files(&base_dir.join(folder))?),
        (Some(f), None) => return Err(format!(".folder must be a path, got {f}")),
        (None, _) => Source::Drawn { sizes: sizes(t)?, format: format.unwrap_or(Format::Png) },
    };
    let as_url = match t.get("as_url") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(v) => return Err(format!(".as_url must be true or false, got {v}")),
    };
    Ok(ImagesSpec { count, source, detail, seed: 0, as_url })
}

/// Drawn images' sizes: `size` (one, a list, or `{ size, weight }` entries) or `width`
/// and `height` (each a count or a distribution); 512×512 when none is given.
fn sizes(t: &toml::Table) -> Result<Sizes, String> {
    match (t.get("size"), t.get("width"), t.get("height")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(": give size, or width and height, not both".into()),
        (None, None, None) => Ok(Sizes::Listed(vec![((512, 512), 1)])),
        (None, Some(w), Some(h)) => {
            let side = |v: &Value, name: &str| {
                let d = super::synthetic::dist(v).map_err(|e| format!(".{name}: {e}"))?;
                match d.bound() {
                    b if b > MAX_SIDE => Err(format!(".{name}: at most {MAX_SIDE} pixels, got up to {b}")),
                    _ => Ok(d),
                }
            };
            Ok(Sizes::Drawn { width: side(w, "width")?, height: side(h, "height")? })
        }
        (None, ..) => Err(": give width and height together".into()),
        (Some(Value::String(s)), ..) => Ok(Sizes::Listed(vec![(size(s).map_err(|e| format!(".size: {e}"))?, 1)])),
        (Some(Value::Array(list)), ..) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let at = |e: String| format!(".size[{i}]: {e}");
                match e {
                    Value::String(s) => Ok((size(s).map_err(at)?, 1)),
                    Value::Table(t) => {
                        let s = t.get("size").and_then(Value::as_str).ok_or_else(|| at("needs size = \"WxH\"".into()))?;
                        let w = match t.get("weight") {
                            None => 1,
                            Some(Value::Integer(w)) if (1..=1_000_000).contains(w) => *w as u32,
                            Some(w) => return Err(at(format!("weight must be a whole number from 1 to 1000000, got {w}"))),
                        };
                        Ok((size(s).map_err(at)?, w))
                    }
                    other => Err(at(format!("\"WxH\" or {{ size = \"WxH\", weight = n }}, got {other}"))),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Sizes::Listed),
        (Some(other), ..) => Err(format!(".size: \"WxH\", or a non-empty list of them, got {other}")),
    }
}

/// `"1024x768"` → (1024, 768).
pub(super) fn size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not WxH (such as \"1024x768\")");
    let (w, h) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
    let side = |x: &str| x.trim().parse::<u32>().ok().filter(|n| (1..=MAX_SIDE).contains(n));
    match (side(w), side(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ if w.trim().parse::<u32>().is_ok() && h.trim().parse::<u32>().is_ok() => {
            Err(format!("{s:?}: each side must be from 1 to {MAX_SIDE} pixels"))
        }
        _ => Err(bad()),
    }
}

/// A folder's PNG and JPEG files (by extension), in name order, each read and decoded.
fn folder_files(dir: &Path) -> Result<Arc<[Picture]>, String> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir).map_err(|e| format!(".folder {shown}: cannot read: {e}"))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!(".folder {shown}: no .png, .jpg or .jpeg file in it"));
    }
    if paths.len() > MAX_FILES {
        return Err(format!(".folder {shown}: {} images, at most {MAX_FILES}", paths.len()));
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let picture = Picture::open(&path).map_err(|e| format!(": {e}"))?;
        total += picture.bytes.len() as u64;
        if total > MAX_FOLDER_BYTES {
            return Err(format!(".folder {shown}: more than {} MiB of images", MAX_FOLDER_BYTES >> 20));
        }
        out.push(picture);
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<ImagesSpec, String> {
        let v: Value = toml::from_str::<toml::Table>(&format!("images = {s}")).unwrap()["images"].clone();
        parse(&v, Path::new("."))
    }

    #[test]
    fn sizes_counts_and_formats_are_read_and_bad_ones_named() {
        let s = parse_str(r#"{ count = 2, size = "1024x768", format = "jpeg", detail = "high" }"#).unwrap();
        assert_eq!(s.count, Dist::Fixed(2));
        assert_eq!(s.source, Source::Drawn { sizes: Sizes::Listed(vec![((1024, 768), 1)]), format: Format::Jpeg });
        let s = parse_str(r#"{ size = ["512x512", { size = "2048x1024", weight = 3 }] }"#).unwrap();
        assert_eq!(s.source, Source::Drawn { sizes: Sizes::Listed(vec![((512, 512), 1), ((2048, 1024), 3)]), format: Format::Png });
        let s = parse_str("{ width = { min = 256, max = 1024 }, height = 512 }").unwrap();
        assert!(matches!(s.source, Source::Drawn { sizes: Sizes::Drawn { .. }, .. }));
        for (bad, says) in [
            (r#"{ size = "1024by768" }"#, ".size: \"1024by768\" is not WxH"),
            (r#"{ size = "0x768" }"#, "each side must be from 1 to 8192"),
            (r#"{ size = ["1x1", 5] }"#, ".size[1]"),
            ("{ count = 65 }", ".count must be from 0 to 64"),
            (r#"{ detail = "medium" }"#, ".detail must be"),
            (r#"{ format = "gif" }"#, ".format must be \"png\" or \"jpeg\""),
            ("{ width = 100 }", "width and height together"),
            (r#"{ size = "1x1", width = 5, height = 5 }"#, "not both"),
            ("{ colour = 1 }", "unknown field `colour`"),
            (r#"{ folder = "no/such/folder" }"#, "no/such/folder: cannot read"),
        ] {
            let e = parse_str(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_folders_images_are_read_and_one_that_does_not_decode_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.png"), Picture::draw(30, 20, Format::Png, 1).bytes).unwrap();
        std::fs::write(dir.path().join("a.jpg"), Picture::draw(10, 10, Format::Jpeg, 1).bytes).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
        let files = folder_files(dir.path()).unwrap();
        assert_eq!(files.iter().map(|p| (p.width, p.height)).collect::<Vec<_>>(), [(10, 10), (30, 20)], "name order");
        std::fs::write(dir.path().join("c.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
        let e = folder_files(dir.path()).unwrap_err();
        assert!(e.contains("c.png") && e.contains("PNG does not decode"), "{e}");
    }
}
