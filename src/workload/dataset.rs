//! ShareGPT-format datasets (a list of `{"conversations": [{"from": "human", "value":
//! …}, {"from": "gpt", "value": …}]}`, the format vLLM reads): the first human turn is
//! the prompt and the reply after it sets the output length, as vLLM does. Entries are
//! drawn in a seeded order, kept when their lengths pass the filters, and cycled when
//! fewer are usable than asked for.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::prompt::Prompt;
use super::prompts::{Followup, Prompts};
use super::tokens::Tokenizer;
use crate::model::Api;
use std::sync::Arc;

/// Which entries are used, and how many prompts are drawn.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Prompts drawn (entries cycle when fewer are usable); None: every usable entry.
    pub sample: Option<u64>,
    pub seed: u64,
    pub min_input: Option<u32>,
    pub max_input: Option<u32>,
    pub min_output: Option<u32>,
    pub max_output: Option<u32>,
    /// Keep each conversation's later human turns too (multi-turn sessions).
    pub turns: bool,
    /// Where an entry's `image` paths are found from (the dataset's folder).
    pub images_dir: Option<std::path::PathBuf>,
}

/// What a dataset gave, for the result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatasetInfo {
    /// Entries in the file.
    pub entries: u64,
    /// Entries with a human turn and a reply after it, within the length filters (of
    /// those looked at: with `sample`, entries are read only until enough are found).
    pub usable: u64,
    /// Entries looked at and left out (no reply, or outside a length filter).
    pub skipped: u64,
    /// Prompts drawn.
    pub prompts: u64,
    /// Fewer usable entries than prompts asked for: entries were used more than once.
    pub oversampled: bool,
}

#[derive(Deserialize)]
struct Entry {
    conversations: Vec<Turn>,
    /// LLaVA's and ShareGPT-4V's: the image (or images) the first human turn is about.
    #[serde(default)]
    image: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Turn {
    from: String,
    value: String,
}

/// Most bytes a dataset's prompts may take together.
const MAX_PROMPT_BYTES: u64 = 1 << 30;

/// Most shape errors named before the rest are summed up.
const MAX_NAMED: usize = 5;

/// A dataset's prompts, and (with `Selection::turns`) each one's later human turns.
pub type Drawn = (Vec<Prompt>, Vec<Arc<[Followup]>>);

/// The prompts of a ShareGPT file's text; Err with every problem, each naming its entry
/// (0-based, as the list indexes it) or the JSON's line and column.
pub fn sharegpt(api: Api, text: &str, tok: &Tokenizer, sel: &Selection) -> Result<(Drawn, DatasetInfo), Vec<String>> {
    let raw: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        vec![match e.classify() {
            serde_json::error::Category::Data => format!("expected a JSON list of conversations ({e})"),
            _ => format!("not JSON: {e}"),
        }]
    })?;
    let mut bad = Vec::new();
    let mut entries = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        match serde_json::from_str::<Entry>(r.get()) {
            Ok(e) => entries.push(e),
            Err(e) => bad.push(format!("entry {i}: expected {{\"conversations\": [{{\"from\": …, \"value\": …}}, …]}} ({})", brief(&e))),
        }
    }
    if !bad.is_empty() {
        if bad.len() > MAX_NAMED {
            let more = bad.len() - MAX_NAMED;
            bad.truncate(MAX_NAMED);
            bad.push(format!("… and {more} more entries of the wrong shape"));
        }
        return Err(bad);
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(sel.seed));
    let within = |n: u32, min: Option<u32>, max: Option<u32>| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
    let mut usable = Vec::new();
    let mut later: Vec<Arc<[Followup]>> = Vec::new();
    let mut skipped = 0u64;
    for i in order {
        if sel.sample.is_some_and(|s| usable.len() as u64 >= s) {
            break;
        }
        let Some((prompt, reply)) = first_exchange(&entries[i]) else {
            skipped += 1;
            continue;
        };
        // LLaVA's placeholder stands for the image, which goes in a part of its own.
        let cleaned;
        let prompt = match entries[i].image.is_some() {
            true => {
                cleaned = prompt.replace("<image>\n", "").replace("<image>", "");
                cleaned.as_str()
            }
            false => prompt,
        };
        let (input, output) = (tok.count(prompt).min(u64::from(u32::MAX)) as u32, tok.count(reply).min(u64::from(u32::MAX)) as u32);
        if output == 0 || !within(input, sel.min_input, sel.max_input) || !within(output, sel.min_output, sel.max_output) {
            skipped += 1;
            continue;
        }
        let mut made = Prompt::from_text(api, None, prompt);
        if let Some(image) = &entries[i].image {
            made = match with_images(api, made, image, sel.images_dir.as_deref()) {
                Ok(p) => p,
                Err(e) => return Err(vec![format!("entry {i}: {e}")]),
            };
        }
        usable.push(made.counted(u64::from(input), Some(output)));
        if sel.turns {
            later.push(followups(&entries[i], tok).into());
        }
    }
    if usable.is_empty() {
        return Err(vec![format!("none of its {} entries has a human turn and a reply within the length filters", entries.len())]);
    }
    let want = sel.sample.unwrap_or(usable.len() as u64);
    // Images make prompts large, and drawn prompts are copies of the entries.
    let bytes: u64 = usable.iter().map(|p| p.json.get().len() as u64).sum::<u64>().saturating_mul(want) / usable.len() as u64;
    if bytes > MAX_PROMPT_BYTES {
        let mib = |b: u64| b >> 20;
        return Err(vec![format!(
            "its prompts would take {} MiB (their images as base64), more than {} MiB: draw fewer with `sample`",
            mib(bytes),
            mib(MAX_PROMPT_BYTES)
        )]);
    }
    let info = DatasetInfo {
        entries: entries.len() as u64,
        usable: usable.len() as u64,
        skipped,
        prompts: want,
        oversampled: want > usable.len() as u64,
    };
    let prompts = (0..want as usize).map(|k| usable[k % usable.len()].clone()).collect();
    let later = match later.is_empty() {
        true => Vec::new(),
        false => (0..want as usize).map(|k| later[k % later.len()].clone()).collect(),
    };
    Ok(((prompts, later), info))
}

/// `p` with an entry's images after its text, each read from `dir` (and checked) or
/// sent by URL; LLaVA's `<image>` placeholder is left out of the text.
fn with_images(api: Api, p: Prompt, image: &OneOrMany, dir: Option<&std::path::Path>) -> Result<Prompt, String> {
    use super::images::{part, splice, url_part};
    if !matches!(api, Api::Chat | Api::Responses | Api::Messages) {
        return Err(format!("it carries an image: target.api = {:?} takes none (chat, responses and messages do)", api.name()));
    }
    let paths = match image {
        OneOrMany::One(one) => std::slice::from_ref(one),
        OneOrMany::Many(many) => many.as_slice(),
    };
    let mut parts = Vec::with_capacity(paths.len());
    let mut media = crate::model::Media::default();
    for path in paths {
        media.images += 1;
        if path.starts_with("http://") || path.starts_with("https://") {
            parts.push(url_part(api, path, None));
            continue;
        }
        let file = path.strip_prefix("file://").unwrap_or(path);
        let full = dir.map_or_else(|| std::path::PathBuf::from(file), |d| d.join(file));
        let picture = super::picture::Picture::open(&full).map_err(|e| format!("image {e}"))?;
        (media.pixels, media.bytes) = (media.pixels + picture.pixels(), media.bytes + picture.bytes.len() as u64);
        parts.push(part(api, None, &picture));
    }
    let json = splice(p.json.get(), api, parts.iter().map(String::as_str)).ok_or("it has no user message to carry its image")?;
    let mut out = Prompt::from_value(&serde_json::from_str(&json).map_err(|e| e.to_string())?);
    out.media = Some(media);
    Ok(out)
}

/// The human turns after the first, each with the reply after it (a turn without one
/// ends the conversation there).
fn followups(e: &Entry, tok: &Tokenizer) -> Vec<Followup> {
    let human = |t: &Turn| t.from == "human" || t.from == "user";
    let first = e.conversations.iter().position(human).unwrap_or(0);
    let mut out = Vec::new();
    let mut k = first + 2;
    while let (Some(ask), Some(reply)) = (e.conversations.get(k), e.conversations.get(k + 1)) {
        if !human(ask) || ask.value.trim().is_empty() {
            break;
        }
        let (tokens, output) = (tok.count(&ask.value), tok.count(&reply.value).max(1));
        out.push(Followup {
            text: ask.value.as_str().into(),
            tokens: tokens.min(u64::from(u32::MAX)) as u32,
            output: output.min(u64::from(u32::MAX)) as u32,
        });
        k += 2;
    }
    out
}

/// The first human turn and the reply right after it.
fn first_exchange(e: &Entry) -> Option<(&str, &str)> {
    let at = e.conversations.iter().position(|t| t.from == "human" || t.from == "user")?;
    let reply = e.conversations.get(at + 1).filter(|t| t.from == "gpt" || t.from == "assistant" || t.from == "chatgpt")?;
    (!e.conversations[at].value.trim().is_empty()).then_some((e.conversations[at].value.as_str(), reply.value.as_str()))
}

/// serde's message without its position (which is within the entry, not the file).
fn brief(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl Prompts {
    /// Prompts of a dataset, each asking for its reply's length.
    pub fn dataset(api: Api, items: Vec<Prompt>, tokenizer: Tokenizer, source: String) -> Option<Prompts> {
        Some(Prompts::fixed(api, items, source, None)?.with_tokenizer(tokenizer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(human: &str, gpt: &str) -> String {
        format!(r#"{{"id": "x", "conversations": [{{"from": "human", "value": "{human}"}}, {{"from": "gpt", "value": "{gpt}"}}]}}"#)
    }

    #[test]
    fn prompts_are_first_human_turns_with_their_reply_lengths() {
        let text = format!(
            "[{}, {}, {}, {}]",
            convo("hello world", "one two three"),
            r#"{"conversations": [{"from": "gpt", "value": "no human"}]}"#,
            convo("a longer question here", "yes"),
            r#"{"conversations": [{"from": "human", "value": "unanswered"}]}"#
        );
        let tok = Tokenizer::o200k();
        let ((prompts, later), info) = sharegpt(Api::Chat, &text, &tok, &Selection::default()).unwrap();
        assert!(later.is_empty(), "later turns only when asked for");
        assert_eq!(info, DatasetInfo { entries: 4, usable: 2, skipped: 2, prompts: 2, oversampled: false });
        let mut outs: Vec<_> = prompts.iter().map(|p| (p.tokens(&tok), p.output)).collect();
        outs.sort();
        assert_eq!(outs, [(2, Some(3)), (4, Some(1))]);
        // Oversampled: more prompts than usable entries, said so; filters apply.
        let sel = Selection { sample: Some(5), seed: 9, min_input: Some(3), ..Selection::default() };
        let ((prompts, _), info) = sharegpt(Api::Completions, &text, &tok, &sel).unwrap();
        assert_eq!((prompts.len(), info.usable, info.oversampled), (5, 1, true));
        assert!(prompts.iter().all(|p| p.json.get() == r#""a longer question here""#));
        // The same seed draws the same order.
        let text = format!("[{}]", (0..50).map(|i| convo(&format!("q{i}"), "a")).collect::<Vec<_>>().join(","));
        let draw = |seed| {
            let sel = Selection { sample: Some(10), seed, ..Selection::default() };
            sharegpt(Api::Chat, &text, &tok, &sel).unwrap().0.0.iter().map(|p| p.json.get().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn conversations_keep_their_later_human_turns_when_asked() {
        let text = r#"[{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "hello"},
            {"from": "human", "value": "how are you"}, {"from": "gpt", "value": "fine thanks you"},
            {"from": "human", "value": "unanswered"}]}]"#;
        let tok = Tokenizer::o200k();
        let sel = Selection { turns: true, sample: Some(2), ..Selection::default() };
        let ((prompts, later), _) = sharegpt(Api::Chat, text, &tok, &sel).unwrap();
        assert_eq!((prompts.len(), later.len()), (2, 2));
        assert_eq!(later[0].len(), 1, "the last human turn has no reply");
        assert_eq!((&*later[0][0].text, later[0][0].tokens, later[0][0].output), ("how are you", 3, 3));
    }

    #[test]
    fn wrong_shapes_are_named_by_entry() {
        let tok = Tokenizer::o200k();
        let sel = Selection::default();
        let e = sharegpt(Api::Chat, r#"[{"conversations": []}, {"conversation": 1}, 7]"#, &tok, &sel).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("entry 1: expected {\"conversations\""), "{e:?}");
        assert!(e[1].starts_with("entry 2:"), "{e:?}");
        assert!(sharegpt(Api::Chat, "{\"a\": 1}", &tok, &sel).unwrap_err()[0].starts_with("expected a JSON list"));
        assert!(sharegpt(Api::Chat, "[1,", &tok, &sel).unwrap_err()[0].starts_with("not JSON"));
        let none = sharegpt(Api::Chat, r#"[{"conversations": []}]"#, &tok, &sel).unwrap_err();
        assert!(none[0].starts_with("none of its 1 entries"), "{none:?}");
    }
}
