//! The text of a whole completion, read only when it is needed (a response check, or a
//! reply without usage): the first choice's answer (a chat message's content, a string
//! or an array of text parts, or a completion's `text`) and its reasoning; everything
//! else is skipped without being kept, however large.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The text of the first choice, read only when it is needed (a check, or no usage).
/// Other choices, and everything but the text, are skipped without being kept.
#[derive(Deserialize)]
struct CompletionText {
    #[serde(default, deserialize_with = "first")]
    choices: Option<TextChoice>,
}

#[derive(Deserialize)]
struct TextChoice {
    /// Chat completions.
    message: Option<TextMessage>,
    /// Text completions.
    #[serde(default, deserialize_with = "message_content")]
    text: Option<String>,
}

#[derive(Deserialize)]
struct TextMessage {
    /// A string, or an array of parts with `text`.
    #[serde(default, deserialize_with = "message_content")]
    content: Option<String>,
    /// A reasoning model's thinking, by either name in use.
    #[serde(default, deserialize_with = "message_content")]
    reasoning_content: Option<String>,
    #[serde(default, deserialize_with = "message_content")]
    reasoning: Option<String>,
}

/// The first choice's texts.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Texts {
    pub answer: String,
    pub reasoning: String,
}

/// The first element of an array; the others are skipped (a reply with `n` = 10⁶ choices
/// costs no more than one with a single choice).
pub(super) fn first<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct First<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for First<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of choices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    d.deserialize_seq(First(std::marker::PhantomData))
}

fn message_content<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    TextAt::Content.deserialize(d)
}

/// Where [`message_content`] is reading: a message's `content` (a string, or an array of
/// parts), one part (an object with `text`), or a part's `text`. Any other value is no
/// text and is skipped unkept, however large.
#[derive(Clone, Copy, PartialEq)]
enum TextAt {
    Content,
    Part,
    Text,
}

/// A part's keys: only `text` is read.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PartKey {
    Text,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for TextAt {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextAt {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("message content")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok((self != TextAt::Part).then(|| v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<String>, E> {
        Ok((self != TextAt::Part).then_some(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        if self != TextAt::Content {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        }
        let mut text = String::new();
        while let Some(part) = seq.next_element_seed(TextAt::Part)? {
            text.push_str(part.as_deref().unwrap_or(""));
        }
        Ok(Some(text))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut text = None;
        while let Some(key) = map.next_key::<PartKey>()? {
            match key {
                PartKey::Text if self == TextAt::Part => text = map.next_value_seed(TextAt::Text)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(text)
    }
}

/// The first choice's text of a completion body, if it has one.
pub(super) fn completion_text(body: &[u8]) -> Texts {
    let Ok(c) = serde_json::from_slice::<CompletionText>(body) else { return Texts::default() };
    let Some(choice) = c.choices else { return Texts::default() };
    match choice.message {
        Some(m) => Texts {
            answer: m.content.unwrap_or_default(),
            // Either name, once: some servers send both with the same text.
            reasoning: m.reasoning.filter(|r| !r.is_empty()).or(m.reasoning_content).unwrap_or_default(),
        },
        None => Texts { answer: choice.text.unwrap_or_default(), reasoning: String::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_text_keeps_the_first_choice_only() {
        let text = |body: &str| completion_text(body.as_bytes()).answer;
        assert_eq!(text(r#"{"choices":[{"message":{"content":"one"}},{"message":{"content":"two"}}]}"#), "one");
        let parts = r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},"x",{"text":5},{"text":"b","extra":[1]},7]}}]}"#;
        assert_eq!(text(parts), "ab");
        assert_eq!(text(r#"{"choices":[{"message":{"content":null}}]}"#), "");
        assert_eq!(text(r#"{"choices":[{"message":{"content":{"text":"no"}}}]}"#), "");
        assert_eq!(text(r#"{"choices":[{"message":{"role":"assistant"}}]}"#), "");
        assert_eq!(text(r#"{"choices":[]}"#), "");
        assert_eq!(text(r#"{"id":"x"}"#), "");
        assert_eq!(text("not json"), "");
        // The other choices may be anything, and many.
        let many = format!(r#"{{"choices":[{{"message":{{"content":"first"}}}},{}0]}}"#, "[0],".repeat(10_000));
        assert_eq!(text(&many), "first");
        // A text completion, and a reasoning model's thinking beside its answer.
        assert_eq!(text(r#"{"choices":[{"text":"Once","index":0}]}"#), "Once");
        let thought = completion_text(br#"{"choices":[{"message":{"content":"42","reasoning_content":"let me see"}}]}"#);
        assert_eq!(thought, Texts { answer: "42".into(), reasoning: "let me see".into() });
        assert_eq!(completion_text(br#"{"choices":[{"message":{"content":"42","reasoning":"hm"}}]}"#).reasoning, "hm");
    }
}
