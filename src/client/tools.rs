//! A reply's tool calls, assembled from a stream's `delta.tool_calls` fragments or read
//! whole from `message.tool_calls`. Fragments are keyed by their `index` (each call's
//! first carries its id and name, later ones argument pieces); the id and name are
//! taken once, never joined (some servers repeat them on every fragment), and only the
//! arguments are concatenated. A server may send a call's name and its first arguments
//! as two entries of one chunk (vLLM), a header with no `arguments` at all (vLLM), or a
//! header that already carries arguments (llama.cpp): all read the same. Shapes in
//! tests/fixtures/tools (OpenAI's captures in openai-python's tests, vLLM's and
//! llama.cpp's from their sources).

use std::borrow::Cow;

use serde::Deserialize;

use crate::model::ToolCall;

/// One fragment of a streamed tool call.
#[derive(Deserialize)]
pub(super) struct DeltaToolCall<'a> {
    /// Which call it belongs to (OpenAI's SDK requires it; a missing one is the first).
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<DeltaFunction<'a>>,
}

#[derive(Deserialize)]
struct DeltaFunction<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// Most calls one reply is taken to make: past it, fragments are dropped (a hostile
/// index of 10⁹ must not allocate 10⁹ calls).
const MAX_CALLS: usize = 128;

/// The calls assembled so far.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    pub calls: Vec<ToolCall>,
    /// A server's index, where its calls shared one, → the call it is now.
    renumbered: std::collections::HashMap<usize, usize>,
}

impl Assembly {
    /// Takes one fragment; true when it carried a token (a name or an argument piece).
    pub fn fragment(&mut self, f: &DeltaToolCall<'_>) -> bool {
        let sent = f.index.unwrap_or(0);
        let mut index = self.renumbered.get(&sent).copied().unwrap_or(sent);
        // Some servers (SGLang, some vLLM parsers) send every call at index 0: a new id
        // on a call that has one already is the next call.
        if let Some(id) = f.id.as_deref().filter(|id| !id.is_empty())
            && self.calls.get(index).is_some_and(|c| !c.id.is_empty() && c.id != id)
        {
            index = self.calls.len();
            self.renumbered.insert(sent, index);
        }
        if index >= MAX_CALLS {
            return false;
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, ToolCall::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = f.id.as_deref().filter(|id| call.id.is_empty() && !id.is_empty()) {
            call.id = id.to_string();
        }
        let Some(func) = &f.function else { return false };
        let mut said = false;
        if let Some(name) = func.name.as_deref().filter(|n| !n.is_empty()) {
            if call.name.is_empty() {
                call.name = name.to_string();
            }
            said = true;
        }
        if let Some(args) = func.arguments.as_deref().filter(|a| !a.is_empty()) {
            call.arguments.push_str(args);
            said = true;
        }
        said
    }

    /// The calls made, None when there were none (calls never named are dropped:
    /// indices a server skipped).
    pub fn finish(mut self) -> Option<Vec<ToolCall>> {
        self.calls.retain(|c| !c.name.is_empty() || !c.arguments.is_empty());
        (!self.calls.is_empty()).then_some(self.calls)
    }
}

/// A whole reply's `message.tool_calls`: `[{id, type, function: {name, arguments}}]`
/// (an id or a name may be null).
#[derive(Deserialize)]
pub(super) struct WholeToolCall {
    id: Option<String>,
    function: Option<WholeFunction>,
}

#[derive(Deserialize)]
struct WholeFunction {
    name: Option<String>,
    /// A JSON-encoded string by OpenAI's shape; an object from some servers, kept as
    /// its JSON.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

impl WholeToolCall {
    pub fn call(self) -> ToolCall {
        let (name, arguments) = match self.function {
            Some(f) => {
                let args = match f.arguments {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
                (f.name.unwrap_or_default(), args)
            }
            None => (String::new(), String::new()),
        };
        ToolCall { id: self.id.unwrap_or_default(), name, arguments }
    }
}

#[cfg(test)]
mod tests;
