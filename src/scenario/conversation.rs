//! `[conversation]` as written → multi-turn sessions: turns a count or a distribution,
//! think time a duration or a distribution of milliseconds, history and its limit;
//! and what does not go with sessions (the completions endpoint, trace prompts, a
//! stage's ramp, cooldown or warmup), each reported at its place.

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::{Spanned, Value};

use super::error::Problems;
use super::file::{ConversationFile, DurationValue};
use super::synthetic::dist;
use crate::model::Api;
use crate::workload::conversation::{Conversation, Think};
use crate::workload::dist::Dist;

/// Most turns a session may have.
pub const MAX_TURNS: u32 = 10_000;

pub(super) fn conversation(f: Spanned<ConversationFile>, api: Api, seed: u64, p: &mut Problems<'_>) -> Option<Conversation> {
    let span = f.span();
    let f = f.into_inner();
    if api != Api::Chat {
        p.at(Some(span.clone()), "[conversation] needs target.api = \"chat\": a session's history is a list of messages");
    }
    let turns = match dist(f.turns.get_ref()) {
        Ok(d) if max_of(&d) > MAX_TURNS => {
            p.at(Some(f.turns.span()), format!("conversation.turns must be at most {MAX_TURNS}"));
            None
        }
        Ok(d) => Some(d),
        Err(msg) => {
            p.at(Some(f.turns.span()), format!("conversation.turns: {}", msg.replace("tokens", "turns")));
            None
        }
    };
    let think = match &f.think_time {
        None => Some(Think::Fixed(std::time::Duration::ZERO)),
        Some(v) => think(v.get_ref()).map_err(|msg| p.at(Some(v.span()), format!("conversation.think_time: {msg}"))).ok(),
    };
    let max_context_tokens = f.max_context_tokens.map(|m| {
        if *m.get_ref() == 0 {
            p.at(Some(m.span()), "conversation.max_context_tokens must be at least 1");
        }
        m.into_inner()
    });
    Some(Conversation { turns: turns?, think: think?, history: f.history.unwrap_or(true), max_context_tokens, seed })
}

/// A duration ("2s", or seconds), or a distribution of milliseconds.
fn think(v: &Value) -> Result<Think, String> {
    match v {
        Value::Table(_) => dist(v).map(Think::Millis).map_err(|m| format!("{} (milliseconds)", m.replace(" tokens", " ms"))),
        other => {
            let d = DurationValue::deserialize(other.clone().into_deserializer()).map_err(|e| e.message().to_string())?;
            Ok(Think::Fixed(d.0))
        }
    }
}

fn max_of(d: &Dist) -> u32 {
    match *d {
        Dist::Fixed(n) => n,
        Dist::Normal { max, .. } | Dist::Uniform { max, .. } | Dist::LogNormal { max, .. } => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_time_is_a_duration_or_a_distribution_of_ms() {
        assert_eq!(think(&Value::String("1.5s".into())).unwrap(), Think::Fixed(std::time::Duration::from_millis(1500)));
        assert_eq!(think(&Value::Integer(2)).unwrap(), Think::Fixed(std::time::Duration::from_secs(2)));
        let t: Value = toml::from_str::<toml::Table>("t = { min = 100, max = 300 }").unwrap()["t"].clone();
        assert_eq!(think(&t).unwrap(), Think::Millis(Dist::Uniform { min: 100, max: 300 }));
        assert!(think(&Value::String("soon".into())).unwrap_err().contains("invalid duration"));
    }
}
