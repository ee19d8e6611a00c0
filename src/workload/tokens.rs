//! Client-side token counts with the o200k_base encoding (GPT-4o / 4.1 family), shipped
//! inside tiktoken-rs: no download at run time. Used when a server sends no `usage`, and
//! beside `usage` to count the requests where the two disagree.

/// Tokens in `text`, as o200k_base splits it (no chat-template overhead).
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

/// Tokens of a chat message's text content: a string, or the text parts of an array.
pub fn message_tokens(m: &serde_json::Value) -> u64 {
    use serde_json::Value;
    match m.get("content") {
        Some(Value::String(s)) => count(s),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(count).sum(),
        _ => 0,
    }
}

/// Loads the encoding now, so the first request does not pay for it (~0.1 s).
pub fn warm_up() {
    let _ = count("warm up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_strings() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert!(count("Write Python code that computes 7!") >= 6);
        let m = serde_json::json!({"role": "user", "content": "hello world"});
        assert_eq!(message_tokens(&m), 2);
        let parts = serde_json::json!({"role": "user", "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}]});
        assert_eq!(message_tokens(&parts), 2);
    }
}
