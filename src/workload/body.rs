//! Request bodies: a stage's bodies differ only in their `messages`, so the bytes before
//! and after them are serialized once per stage and each body is one copy of three
//! slices — the same bytes as serializing the whole request at once.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::RequestParams;

/// The fields after `messages`, in the order a chat-completions body has them.
#[derive(Serialize)]
struct Rest {
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `{"model":…,"messages":` and `,"stream":…}`: a body is head + messages + tail.
#[derive(Debug, Clone)]
pub(super) struct BodyParts {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl BodyParts {
    /// With `stream`, `stream_usage` asks for a final usage chunk (some servers reject it).
    pub(super) fn new(model: &str, params: &RequestParams, stream: bool, stream_usage: bool) -> BodyParts {
        let model = serde_json::to_string(model).expect("a string serializes");
        let rest = Rest {
            stream,
            stream_options: (stream && stream_usage).then_some(StreamOptions { include_usage: true }),
            max_tokens: params.max_tokens,
            temperature: params.temperature,
        };
        let mut tail = serde_json::to_vec(&rest).expect("request fields serialize");
        // `{"stream":…}` → `,"stream":…}`: never empty, `stream` is always there.
        tail[0] = b',';
        BodyParts { head: format!("{{\"model\":{model},\"messages\":").into_bytes(), tail }
    }

    pub(super) fn body(&self, messages: &RawValue) -> Bytes {
        let m = messages.get().as_bytes();
        let mut out = Vec::with_capacity(self.head.len() + m.len() + self.tail.len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(m);
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request serialized whole, as bodies were before they were built from parts.
    #[derive(Serialize)]
    struct Whole<'a> {
        model: &'a str,
        messages: &'a RawValue,
        #[serde(flatten)]
        rest: Rest,
    }

    #[test]
    fn parts_make_the_same_bytes_as_one_serialization() {
        let messages = RawValue::from_string(r#"[{"role":"user","content":"hi \"there\""}]"#.to_string()).unwrap();
        for (stream, usage) in [(false, false), (false, true), (true, false), (true, true)] {
            for (max_tokens, temperature) in [(None, None), (Some(64), None), (None, Some(0.5)), (Some(1), Some(2.0))] {
                let params = RequestParams { max_tokens, temperature };
                let model = "gpt-4.1 \"quoted\" ☕";
                let parts = BodyParts::new(model, &params, stream, usage);
                let stream_options = (stream && usage).then_some(StreamOptions { include_usage: true });
                let rest = Rest { stream, stream_options, max_tokens, temperature };
                let whole = serde_json::to_vec(&Whole { model, messages: &messages, rest }).unwrap();
                assert_eq!(String::from_utf8(parts.body(&messages).to_vec()).unwrap(), String::from_utf8(whole).unwrap());
            }
        }
    }
}
