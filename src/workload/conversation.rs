//! Multi-turn sessions (`[conversation]`): how many turns a session has, how long its
//! user thinks between them, and the history each turn carries — the session's own
//! earlier user messages and the server's actual replies, dropped oldest first beyond
//! `max_context_tokens`. Everything a session needs is in its `History`, so sessions
//! can be split across shards whole.

use std::time::Duration;

use serde_json::{Value, json};

use super::dist::{Dist, rng_for};

/// Keeps session draws apart from prompt lengths drawn from the same seed.
const TURNS_SALT: u64 = 0x7E55_1045;
const THINK_SALT: u64 = 0x7411_4C00;

/// How long a user waits after a reply before the next turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Think {
    Fixed(Duration),
    /// Drawn per turn, in milliseconds.
    Millis(Dist),
}

/// `[conversation]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub turns: Dist,
    pub think: Think,
    /// Send the history (false: each turn only its own message, sessions kept).
    pub history: bool,
    pub max_context_tokens: Option<u32>,
    pub seed: u64,
}

impl Conversation {
    /// Turns of session `session` of stage `stage`: the same on every run.
    pub fn turns_of(&self, stage: u64, session: u64) -> u32 {
        self.turns.sample(&mut rng_for(self.seed ^ TURNS_SALT, stage, session)).max(1)
    }

    /// The think time after turn `turn` of a session.
    pub fn think_after(&self, stage: u64, session: u64, turn: u32) -> Duration {
        match &self.think {
            Think::Fixed(d) => *d,
            Think::Millis(dist) => {
                let mut rng = rng_for(self.seed ^ THINK_SALT, stage, session.wrapping_mul(1 << 20).wrapping_add(u64::from(turn)));
                Duration::from_millis(u64::from(dist.sample(&mut rng)))
            }
        }
    }
}

/// One turn's own messages (system ones on a first turn, then the user's), each with
/// its tokens in the counting tokenizer, and the output length it asks for.
#[derive(Debug, Clone)]
pub struct TurnInput {
    pub messages: Vec<(Value, u64)>,
    pub output: Option<u32>,
}

/// A session's messages so far: the first turn's system messages (kept), then user
/// messages and replies in order.
#[derive(Debug, Default)]
pub struct History {
    head: Vec<(Value, u64)>,
    turns: std::collections::VecDeque<(Value, u64)>,
    tokens: u64,
}

impl History {
    /// The messages turn `new` sends after the history (all of it, or none when
    /// `history` is off), oldest turns dropped until the whole fits `max` tokens; and
    /// their tokens. The new messages become part of the history.
    pub fn next(&mut self, new: TurnInput, history: bool, max: Option<u32>) -> (Vec<Value>, u64) {
        let own: u64 = new.messages.iter().map(|(_, t)| t).sum();
        if !history {
            self.head.clear();
            self.turns.clear();
            self.tokens = 0;
        }
        let first = self.head.is_empty() && self.turns.is_empty();
        for (m, t) in new.messages {
            let system = first && m.get("role").and_then(Value::as_str) == Some("system");
            self.tokens += t;
            if system { self.head.push((m, t)) } else { self.turns.push_back((m, t)) }
        }
        if let Some(max) = max.map(u64::from) {
            // Oldest first, a user message with the reply after it; never the new turn.
            while self.tokens > max && self.turns.len() > 2 && own < self.tokens {
                for _ in 0..2 {
                    if let Some((_, t)) = self.turns.pop_front() {
                        self.tokens -= t;
                    }
                }
            }
        }
        let messages = self.head.iter().chain(self.turns.iter()).map(|(m, _)| m.clone()).collect();
        (messages, self.tokens)
    }

    /// The server's reply to the last turn, `tokens` long.
    pub fn reply(&mut self, text: String, tokens: u64) {
        self.tokens += tokens;
        self.turns.push_back((json!({"role": "assistant", "content": text}), tokens));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str, tokens: u64) -> TurnInput {
        TurnInput { messages: vec![(json!({"role": "user", "content": text}), tokens)], output: None }
    }

    #[test]
    fn later_turns_carry_the_replies_and_the_oldest_go_first_past_the_limit() {
        let mut h = History::default();
        let first = TurnInput {
            messages: vec![(json!({"role": "system", "content": "sys"}), 5), (json!({"role": "user", "content": "u0"}), 10)],
            output: None,
        };
        let (m, t) = h.next(first, true, Some(60));
        assert_eq!((m.len(), t), (2, 15));
        h.reply("r0".into(), 20);
        let (m, t) = h.next(user("u1", 10), true, Some(60));
        let contents: Vec<&str> = m.iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!((contents, t), (vec!["sys", "u0", "r0", "u1"], 45));
        assert_eq!(m[2]["role"], "assistant");
        h.reply("r1".into(), 20);
        // 45 + 20 + 10 = 75 > 60: the first exchange goes; the system message stays.
        let (m, t) = h.next(user("u2", 10), true, Some(60));
        let contents: Vec<&str> = m.iter().map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!((contents, t), (vec!["sys", "u1", "r1", "u2"], 45));
        // Without history, each turn is itself alone.
        let mut h = History::default();
        h.next(user("a", 3), false, None);
        h.reply("b".into(), 3);
        assert_eq!(h.next(user("c", 3), false, None).1, 3);
    }

    #[test]
    fn draws_are_the_same_every_run() {
        let c = Conversation {
            turns: Dist::Uniform { min: 2, max: 9 },
            think: Think::Millis(Dist::Uniform { min: 100, max: 200 }),
            history: true,
            max_context_tokens: None,
            seed: 3,
        };
        let turns: Vec<u32> = (0..50).map(|s| c.turns_of(0, s)).collect();
        assert_eq!(turns, (0..50).map(|s| c.turns_of(0, s)).collect::<Vec<_>>());
        assert!(turns.iter().all(|t| (2..=9).contains(t)) && turns.iter().any(|t| *t != turns[0]));
        let think = c.think_after(0, 1, 2);
        assert!(think >= Duration::from_millis(100) && think <= Duration::from_millis(200));
    }
}
